"""Where the kit keeps what runs write: one module, used by every reader and writer.

* :func:`kit_root` -- the folder that holds ``ferlib/``, ``notebooks/`` and
  ``results/`` (the repository checkout), whatever the current folder is.  A
  student who trains from JupyterLab's terminal in ``notebooks/`` writes where the
  chapters read.
* :func:`results_dir` -- ``$FERLIB_RESULTS_DIR``, else ``<kit root>/results``.
  Quick-profile results go to its ``quick/`` sub-folder (never beside real ones),
  wall-clock-budget runs to ``budget/``.
* :func:`runs_dir` -- checkpoints: ``$FERLIB_RUNS_DIR``, else ``<kit root>/runs``.

The overrides are read at each call, so tests and notebooks can redirect them.
"""
from __future__ import annotations

import os
from pathlib import Path

RESULTS_ENV = "FERLIB_RESULTS_DIR"
RUNS_ENV = "FERLIB_RUNS_DIR"


def kit_root() -> Path:
    """The checkout that holds this package (``ferlib/..``)."""
    return Path(__file__).resolve().parent.parent


def results_dir() -> Path:
    """Results files of real runs (JSON with provenance)."""
    return Path(os.environ.get(RESULTS_ENV) or kit_root() / "results")


def runs_dir() -> Path:
    """Run folders with checkpoints (``runs/RECIPE-PROFILE-seedS``)."""
    return Path(os.environ.get(RUNS_ENV) or kit_root() / "runs")
