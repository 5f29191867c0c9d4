"""Where a recorded number came from, and how it is written: one home for every results file.

Training (:mod:`ferlib.train.results`), the jobs over runs (:mod:`ferlib.jobs`) and the
benchmarks (``bench/``) all record the same block: :func:`record` -- git sha and whether the
checkout had uncommitted changes, a fingerprint of the ``ferlib/`` sources
(:func:`code_fingerprint`), the device and CPU model, torch's thread count, the library
versions, when it started and how long it took -- and write their JSON with
:func:`write_json`, atomically (a killed writer never leaves half a file where a reader
looks).  :class:`CodeVersion` answers "did the code checked out now make this file?".
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import paths


def _git(*args) -> str | None:
    """``git ARGS`` in the kit's checkout: its stdout, or None when git or the checkout is not there or it fails."""
    try:
        done = subprocess.run(["git", *args], cwd=paths.kit_root(), capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_fingerprint() -> str:
    """SHA-256 of the ``ferlib/`` sources as they are on disk, committed or not.

    What ``python -m ferlib reproduce`` compares to decide that a results file was made
    by the code now checked out, even in a checkout with uncommitted edits (where the
    git sha alone cannot tell).  The files are those git tracks or would track under
    ``ferlib/`` (``git ls-files --cached --others --exclude-standard``); without git,
    every ``*.py`` under ``ferlib/``.
    """
    repo = paths.kit_root()
    listed = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "ferlib")
    names = sorted(n for n in (listed or "").split("\0") if n)
    files = [repo / n for n in names] or sorted((repo / "ferlib").rglob("*.py"))
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():  # a file deleted but not yet committed is listed by git and absent here
            digest.update(f.relative_to(repo).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def git_info() -> dict:
    """``git_sha`` (``"unknown"`` without git), ``git_dirty`` (tracked files changed) and ``code_fingerprint``."""
    sha = _git("rev-parse", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no")) if sha else False
    return {"git_sha": sha or "unknown", "git_dirty": dirty, "code_fingerprint": code_fingerprint()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device) -> dict:
    """The device, its name (the GPU's, else the CPU model), torch's CPU threads and the CUDA build."""
    import torch

    device = torch.device(device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"device": str(device), "device_name": name, "cpu_model": cpu_model(),
            "cpu_threads": torch.get_num_threads(), "cuda": torch.version.cuda}


def library_versions() -> dict:
    import numpy
    import sklearn
    import torch
    import torchvision

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "scikit-learn": sklearn.__version__, "platform": platform.platform()}


def utc_iso(seconds_since_epoch: float) -> str:
    return _dt.datetime.fromtimestamp(seconds_since_epoch, _dt.timezone.utc).isoformat(timespec="seconds")


class Clock:
    """When a recorded job started (wall clock, for the record) and how long it has run (monotonic)."""

    def __init__(self):
        self.started_wall, self.started = time.time(), time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def record(device, *, code: dict | None = None, clock: Clock | None = None, **extra) -> dict:
    """The provenance block of a results file.

    ``code``: :func:`git_info` taken when the job started (default: now); ``clock``: gives
    ``started`` and ``wall_time_s``; ``extra``: anything else the job records (command, ...).
    """
    block = {**(code or git_info()), **device_info(device), "versions": library_versions()}
    if clock is not None:
        block.update(started=utc_iso(clock.started_wall), wall_time_s=clock.elapsed())
    block.update(extra)
    return block


def write_json(obj, path, *, indent: int = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (a temporary file beside it, then a rename); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=indent))
    os.replace(tmp, path)
    return path


def read_json(path) -> dict | None:
    """A results file's contents, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class CodeVersion:
    """The checkout's code, as ``reproduce``'s skip rule compares it with a results file's provenance."""

    fingerprint: str
    head_tree: str | None  # git rev-parse HEAD:ferlib; None without git
    ferlib_dirty: bool  # uncommitted changes to tracked files under ferlib/

    @classmethod
    def here(cls) -> "CodeVersion":
        head = _git("rev-parse", "HEAD:ferlib")
        status = _git("status", "--porcelain", "--untracked-files=no", "--", "ferlib") if head else None
        return cls(code_fingerprint(), head, bool(status))

    def made_this(self, provenance: dict) -> tuple[bool, str]:
        """Whether a results file's provenance says the current code made it; and if not, why not."""
        if provenance.get("code_fingerprint"):
            same = provenance["code_fingerprint"] == self.fingerprint
            return same, "" if same else "made by other code (its ferlib/ sources differ from this checkout's)"
        if self.head_tree is None:
            return True, "git is unavailable here: an existing results file counts as done"
        sha = str(provenance.get("git_sha") or "unknown")
        if sha == "unknown":
            return False, "its code version is unknown (no git sha)"
        if provenance.get("git_dirty"):
            return False, f"made from uncommitted changes on git {sha[:8]}: its code cannot be told"
        tree = _git("rev-parse", f"{sha}:ferlib")
        if tree is None:
            return False, f"made at git {sha[:8]}, which this checkout does not have"
        if tree != self.head_tree or self.ferlib_dirty:
            return False, f"made at git {sha[:8]}, whose ferlib/ differs from this checkout's"
        return True, ""
