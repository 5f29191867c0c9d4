"""A run's identity, and finding runs: the one module that builds or parses run names.

A run is keyed by :class:`RunKey`: the recipe, its **budget** (a profile, ``quick`` or
``full``, or a wall-clock budget tag such as ``60min-cpu-2threads``), the seed, and the
**kind of data** it trained on (real FER-2013, or the embedded synthetic faces).  From the
key come

* its name, ``densenet-bc-60min-cpu-2threads-seed0`` or ``densenet-bc-quick-synthetic-seed0``
  (a run on synthetic faces says so, so adding the real data later starts a new run instead
  of resuming the old one);
* its run folder, ``runs/NAME/`` (checkpoints; resumed when the same command runs again);
* its results file.  **Your own runs** write under ``results/local/`` (ignored by git:
  ``results/local/RECIPE.json`` for the full profile, ``results/local/budget/RECIPE-TAG.json``,
  ``results/local/quick/RECIPE.json``); only a run started with ``--publish`` writes the kit's
  tracked ``results/`` (how the kit's maintainers commit a real run).  The kit's committed rows
  are therefore never replaced by a run a student makes, and the chapters show both, each
  labelled.
* the kit's committed small model, ``models/RECIPE-TAG.pt`` (``python -m ferlib export``).

:func:`find_runs` finds every run of a recipe -- the kit's committed results and models, your
results and run folders -- largest budget first; chapters, ``predict``, ``ensemble`` and the
chapter-03 pairs all go through it.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .provenance import read_json

PROFILES = ("quick", "full")
BUDGET_PROFILE = "budget"  # the "profile" a wall-clock-budget results file records
OWN_RESULTS = "local"  # results/local/: your runs (git-ignored)

_BUDGET_TAG = re.compile(r"(?P<minutes>\d+(\.\d+)?)min-(?P<kind>cpu|cuda)(-(?P<threads>\d+)threads?)?"
                         r"(-(?P<processes>\d+)(gpus|procs))?")
_RUN_NAME = re.compile(r"(?P<recipe>.+?)-(?P<budget>quick|full|" + _BUDGET_TAG.pattern.replace("?P<", "?P<b_") + r")"
                       r"(?P<synthetic>-synthetic)?(-seed(?P<seed>\d+))?")


def budget_tag(minutes: float, device=None, threads: int | None = None, processes: int | None = None) -> str:
    """``60min-cpu-2threads`` (a CPU run's thread count is part of its name) or ``10min-cuda``;
    ``10min-cuda-4gpus`` / ``60min-cpu-1thread-2procs`` for several processes under torchrun.

    Two wall-clock runs of one recipe on different thread counts are different results
    (a 2-thread hour trains about twice the epochs), so neither overwrites the other;
    nor do runs on different numbers of processes (``processes``: default ``WORLD_SIZE``).
    """
    import torch

    kind = torch.device(device or "cpu").type
    processes = processes or _world_size()
    several = "" if processes == 1 else f"-{processes}{'gpus' if kind == 'cuda' else 'procs'}"
    if kind != "cpu":
        return f"{minutes:g}min-{kind}{several}"
    n = threads or torch.get_num_threads()
    return f"{minutes:g}min-cpu-{n}thread{'s' if n > 1 else ''}{several}"


def _world_size() -> int:
    """torchrun's ``WORLD_SIZE`` (1 without torchrun); the command line has already refused a malformed one
    (:func:`ferlib.train.distributed.world_size_from_env`)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def is_budget_tag(text: str) -> bool:
    return _BUDGET_TAG.fullmatch(text) is not None


def budget_size(tag: str) -> tuple[int, float]:
    """How much training a budget buys, to put the larger of two runs first.

    ``full`` (a paper's epochs) > any CUDA budget > CPU budgets by minutes x threads x processes
    > ``quick``.  ``ValueError`` for a string that is neither a profile nor a budget tag.
    """
    if tag in PROFILES:
        return (3, 0.0) if tag == "full" else (0, 0.0)
    m = _BUDGET_TAG.fullmatch(tag)
    if m is None:
        raise ValueError(f"{tag!r} is not a budget such as quick, full, 60min-cpu-2threads or 10min-cuda")
    return (2 if m["kind"] == "cuda" else 1, float(m["minutes"]) * int(m["threads"] or 1) * int(m["processes"] or 1))


def is_budget_result(result: dict) -> bool:
    """Whether a results file is a wall-clock-budget run (``--minutes``).  Files written before the
    field said ``"budget"`` recorded ``"profile": "quick"`` with a ``budget`` block of kind ``wall-clock``."""
    return result.get("profile") == BUDGET_PROFILE or (result.get("budget") or {}).get("kind") == "wall-clock"


def split_sizes(result: dict, recipe) -> tuple[int | None, int | None]:
    """``(train_per_class, eval_per_class)`` the run of ``result`` was trained and evaluated on, for
    :func:`~ferlib.data.splits.prepare_splits` to rebuild its splits: ``(None, None)`` (the whole
    splits) for a wall-clock budget or the full profile, the quick profile's subsets otherwise."""
    if is_budget_result(result):
        return None, None
    budget = recipe.budget(result["profile"])
    return budget.train_per_class, budget.eval_per_class


@dataclass(frozen=True)
class RunKey:
    """Recipe, budget (``quick``, ``full`` or a budget tag), seed and kind of data of one run."""

    recipe: str
    budget: str
    seed: int = 0
    synthetic: bool = False

    def __post_init__(self):
        if self.budget not in PROFILES and not is_budget_tag(self.budget):
            raise ValueError(f"{self.budget!r} is not a budget such as quick, full or 60min-cpu-2threads")

    @classmethod
    def for_training(cls, recipe: str, profile: str, *, seed: int = 0, minutes: float | None = None,
                     device=None, synthetic: bool = False) -> "RunKey":
        """The key of ``python -m ferlib train RECIPE --profile P [--minutes M] --seed S`` on this machine."""
        return cls(recipe, budget_tag(minutes, device) if minutes else profile, seed, synthetic)

    @classmethod
    def parse(cls, name: str) -> "RunKey | None":
        """The key of a run folder or file name (``RECIPE-BUDGET[-synthetic][-seedS]``), else None."""
        m = _RUN_NAME.fullmatch(name)
        if m is None:
            return None
        return cls(m["recipe"], m["budget"], int(m["seed"] or 0), bool(m["synthetic"]))

    @property
    def is_budget(self) -> bool:
        return self.budget not in PROFILES

    @property
    def profile(self) -> str:
        """The ``profile`` its results file records: ``quick``, ``full`` or ``budget``."""
        return BUDGET_PROFILE if self.is_budget else self.budget

    @property
    def minutes(self) -> float | None:
        return float(_BUDGET_TAG.fullmatch(self.budget)["minutes"]) if self.is_budget else None

    @property
    def size(self) -> tuple[int, float]:
        return budget_size(self.budget)

    @property
    def stem(self) -> str:
        """``RECIPE-BUDGET[-synthetic]``: the run's name without its seed (committed models and budget results)."""
        return f"{self.recipe}-{self.budget}" + ("-synthetic" if self.synthetic else "")

    @property
    def name(self) -> str:
        return f"{self.stem}-seed{self.seed}"

    def run_dir(self) -> Path:
        return paths.runs_dir() / self.name

    def results_path(self, *, published: bool = False) -> Path:
        """Where this run's results file is: the kit's tracked ``results/`` when ``published``, else yours."""
        root = paths.results_dir() if published else paths.results_dir() / OWN_RESULTS
        seed = f"-seed{self.seed}" if self.seed else ""
        data = "-synthetic" if self.synthetic else ""
        if self.is_budget:
            return root / "budget" / f"{self.recipe}-{self.budget}{data}{seed}.json"
        return (root / "quick" if self.budget == "quick" else root) / f"{self.recipe}{data}{seed}.json"

    def model_path(self) -> Path:
        """The kit's committed float16 export of this run (``models/RECIPE-BUDGET.pt``)."""
        return paths.kit_root() / "models" / f"{self.stem}.pt"


def keep_old_run(run_dir: Path) -> Path:
    """Rename ``run_dir`` to ``RUN.old-YYYYmmdd-HHMMSS`` (a fresh start deletes nothing) and say how much old copies take."""
    kept = run_dir.with_name(run_dir.name + _dt.datetime.now().strftime(".old-%Y%m%d-%H%M%S"))
    run_dir.rename(kept)
    print(f"[ferlib] previous run kept as {kept}")
    old = sorted(run_dir.parent.glob(run_dir.name + ".old-*"))
    if len(old) > 1:
        size = sum(f.stat().st_size for d in old for f in d.rglob("*") if f.is_file()) / 2**20
        print(f"[ferlib] {len(old)} old copies of this run take {size:.0f} MB; to remove all but the newest: "
              f"rm -r {' '.join(str(d) for d in old[:-1])}")
    return kept


@dataclass
class FoundRun:
    """One run of a recipe, as found on disk: the kit's committed one or yours."""

    key: RunKey
    origin: str  # "kit" (committed results/ and models/) or "yours" (results/local/, runs/)
    results_path: Path | None = None
    run_dir: Path | None = None
    model_path: Path | None = None

    def results(self) -> dict | None:
        return read_json(self.results_path) if self.results_path else None

    @property
    def checkpoint(self) -> Path | None:
        """A loadable model: the run folder's ``best.pt``, else the committed export."""
        if self.run_dir is not None and (self.run_dir / "best.pt").is_file():
            return self.run_dir / "best.pt"
        return self.model_path

    @property
    def label(self) -> str:
        return f"{self.key.stem} ({'the kit' if self.origin == 'kit' else 'your run'})"


def _kit_and_own_results(recipe: str) -> list[tuple[str, Path]]:
    root = paths.results_dir()
    found = []
    for origin, base in (("kit", root), ("yours", root / OWN_RESULTS)):
        for path in [*base.glob("*.json"), *(base / "budget").glob("*.json"), *(base / "quick").glob("*.json")]:
            found.append((origin, path))
    return [(o, p) for o, p in found if p.stem == recipe or p.stem.startswith(recipe + "-")]


def _key_of_results_file(path: Path, recipe: str) -> RunKey | None:
    """The key of ``[budget/|quick/]RECIPE[-BUDGET][-synthetic][-seedS].json``, or None (another recipe's file)."""
    rest, seed = path.stem[len(recipe):], 0
    if (m := re.search(r"-seed(\d+)$", rest)) is not None:
        rest, seed = rest[:m.start()], int(m[1])
    synthetic = rest.endswith("-synthetic")
    rest = rest[:-len("-synthetic")] if synthetic else rest
    folder = path.parent.name
    if rest:
        if not rest.startswith("-") or folder != "budget":
            return None  # e.g. densenet-bc-center.json when looking for densenet-bc
        budget = rest[1:]
    elif folder == "budget":
        return None
    else:
        budget = "quick" if folder == "quick" else "full"
    try:
        return RunKey(recipe, budget, seed, synthetic)
    except ValueError:
        return None


def find_runs(recipe: str, *, synthetic: bool | None = False, seed: int | None = 0, budgets=None,
              own: bool = True) -> list[FoundRun]:
    """Every run of ``recipe`` found on disk, largest budget first (real data before synthetic, then the
    kit's before yours on a tie).

    Looks at the kit's committed results (``results/``, ``results/budget/``) and models
    (``models/``), and -- with ``own`` -- your results (``results/local/``) and run folders
    (``runs/``).  ``synthetic``: the kind of data (None: either); ``seed``: None for any;
    ``budgets``: keep only these budgets (e.g. ``("full",)``, or budget tags).
    """
    found: dict[tuple[RunKey, str], FoundRun] = {}
    if not recipe or "/" in recipe or "\\" in recipe or "*" in recipe:  # not a recipe name: nothing to glob for
        return []

    def entry(key: RunKey, origin: str) -> FoundRun | None:
        if synthetic is not None and key.synthetic != synthetic or seed is not None and key.seed != seed:
            return None
        if budgets is not None and key.budget not in budgets:
            return None
        return found.setdefault((key, origin), FoundRun(key, origin))

    for origin, path in _kit_and_own_results(recipe):
        key = _key_of_results_file(path, recipe)
        if key is not None and (e := entry(key, origin)) is not None:
            e.results_path = path
    for path in (paths.kit_root() / "models").glob(f"{recipe}-*.pt"):
        key = RunKey.parse(path.stem)
        if key is not None and key.recipe == recipe and (e := entry(key, "kit")) is not None:
            e.model_path = path
    if own and paths.runs_dir().is_dir():
        for path in paths.runs_dir().glob(f"{recipe}-*"):
            key = RunKey.parse(path.name)
            if key is not None and key.recipe == recipe and path.is_dir() and (e := entry(key, "yours")) is not None:
                e.run_dir = path
    runs = list(found.values())
    if not own:
        runs = [r for r in runs if r.origin == "kit"]
    return sorted(runs, key=lambda r: (r.key.size, not r.key.synthetic, r.origin == "kit", -r.key.seed), reverse=True)


def find_run(recipe: str, **kw) -> FoundRun | None:
    """The run of ``recipe`` with the largest budget (see :func:`find_runs`), or None."""
    runs = find_runs(recipe, **kw)
    return runs[0] if runs else None


def find_trained(recipe: str, **kw) -> FoundRun | None:
    """The largest-budget run of ``recipe`` that has a loadable model (a run folder or a committed export)."""
    return next((r for r in find_runs(recipe, **kw) if r.checkpoint is not None), None)


def resolve_model(spec: str | Path, **kw) -> FoundRun | Path:
    """A model named on a command line: a checkpoint file, a run folder, a run name or a recipe name.

    Returns the path for a file or folder that exists, else the :class:`FoundRun` of a run
    name or recipe (largest budget first); raises ``LookupError`` when nothing matches.
    """
    path = Path(spec)
    if path.exists():
        return path
    text = str(spec)
    if "/" in text or "\\" in text or path.suffix in (".pt", ".pth"):  # a path that is not there, not a name
        raise LookupError(text)
    key = RunKey.parse(text)
    if key is not None:
        for run in find_runs(key.recipe, synthetic=key.synthetic, seed=key.seed, budgets=(key.budget,)):
            if run.checkpoint is not None:
                return run
    run = find_trained(text, **kw)
    if run is None:
        raise LookupError(text)
    return run
