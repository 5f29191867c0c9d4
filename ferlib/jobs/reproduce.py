"""``python -m ferlib reproduce TARGET...``: a paper's table rows in one call, within a wall budget.

    python -m ferlib reproduce densenet-cl --profile full --device cuda --minutes 10
    python -m ferlib reproduce densenet-bc densenet-bc-center --workers 2 --device cpu
    python -m ferlib reproduce densenet-cl --profile full --device cuda --dry-run --minutes 10

**Targets.**  A paper key (a recipe's ``paper`` field: ``densenet-cl``, ``cl-resnet50``,
``dnnrl``) stands for all its rows, in registry order (the order in which the paper's
recipe module registers them); anything else must be a recipe name.  Each
row is named once even if two targets name it.

**One row = one ordinary training command.**  Each row runs in a worker *process*,
``python -m ferlib train RECIPE --profile P --device D --seed S --precision X
--threads T``, so its run folder, resume-from-checkpoint, results file and provenance
are exactly those of ``train``.  The worker's output goes to
``runs/<run name>/reproduce.log`` (appended, one header per call, unbuffered so that
``tail -f`` follows it); the call prints one line when a row starts and one when it
ends.  A bounded pool (:class:`concurrent.futures.ThreadPoolExecutor`, each thread
waiting on one :class:`subprocess.Popen`) keeps ``--workers`` rows running at once:
on CUDA by default ``min(rows, 8)`` (rows share the device: several processes on one
GPU), on a CPU one after another unless ``--workers`` is given.  Each worker gets
``--threads max(1, cores // workers)`` so concurrent rows do not oversubscribe the
cores.  Workers run in their own session (``start_new_session``): a Ctrl-C in the
terminal reaches this process only, which forwards exactly one SIGINT to each row,
so the trainer's :class:`~ferlib.train.callbacks.SaveOnInterrupt` saves and exits
130 (a second Ctrl-C forwards a second SIGINT, which stops a row at once; a third
kills the rows).  The worker's ``PYTHONPATH`` starts with this checkout, so the rows
run this code even from another folder.

**Skip, resume, never overwrite.**  A row is *done* (skipped) when its results file
(``default_results_path``: ``results/RECIPE.json``, quick: ``results/quick/``)
exists, holds the same seed, was made on the same kind of data (SYNTHETIC or not) as
the data found now, and was made by the current code: its provenance's
``code_fingerprint`` (a hash of the ``ferlib/`` sources on disk, see
:func:`~ferlib.train.results.code_fingerprint`) equals the checkout's; for results
files older than that field, its ``git_sha``'s ``ferlib/`` tree
(``git rev-parse SHA:ferlib``) equals ``HEAD:ferlib`` and neither that run nor the
checkout had uncommitted changes under ``ferlib/``; and for those, where git is
unavailable, an existing results file counts as done.  Any other existing result is *stale*: a quick
one is re-run (quick results are always re-runnable, as ``train`` does); a full one
only with ``--overwrite`` (otherwise reported "stale: pass --overwrite to re-run").
When a stale row is re-run, its run folder is first renamed ``RUN.old-<time>`` (as
``train --fresh`` does; :func:`~ferlib.train.results.keep_old_run`) -- unless its
``latest.pt`` is newer than the results file, i.e. it is a re-run that a previous
call started and could not finish, which then resumes.  A row without a results file
whose run folder has a checkpoint resumes from it (``train`` does that by itself).

**Wall budget** ``--minutes M`` (this call's wall clock; unlike ``train --minutes``
it does not change the rows' epochs).  At ``M`` minus a margin for the last
checkpoint writes (10 % of M, at most 60 s) every running row gets SIGINT (it
finishes its step, saves ``latest.pt`` and exits 130); at ``M`` a second SIGINT; 30 s
later any row still running is killed (its last saved checkpoint remains).  Rows not
yet started are not started.  Interrupted rows are reported "interrupted -- run the
same command again to continue"; the exit status is then 3 (no traceback).  Exit
status: 0 every row done or skipped (stale full rows are reported, not run); 1 a row
failed (its log's last line is shown); 3 the budget ran out; 130 Ctrl-C; 2 a usage
mistake, before anything runs.

**Summary.**  ``results/reproduce/<targets>-<profile>-<device type>.json`` (quick:
``results/quick/reproduce/``), rewritten by every call (it is a report built from the
rows' results files, which are never touched here), and a printed table: the paper's
row, the paper's numbers, ours (PublicTest / PrivateTest accuracy from the row's
results file), status, wall seconds of the row's run (its results file's
``wall_time_s``; this call's seconds beside it), training images/s
(``train_images_per_s``) and GPU utilisation: ``nvidia-smi --query-gpu=utilization.gpu``
sampled every 5 s while rows run on CUDA (the device's, shared by all rows running at
that moment -- the per-row figure is the mean over the samples taken while it ran);
"n/a" on a CPU or without ``nvidia-smi``.  Provenance: git sha, code fingerprint,
device, CPU / GPU name, workers, threads, wall time, library versions.

**Plan** (``--dry-run``): nothing is trained or written.  For every row that would
run, the row's own model, criterion, optimiser, augmentation and precision are built
by :func:`~ferlib.train.build.build_run` on a stratified subset of the data that
would be used (a few batches of the row's batch size), and a few training steps are
timed on the chosen device (one warm-up step, then three timed, synchronised).  Then
expected seconds = epochs x (training images / measured img/s + one PublicTest pass)
+ the final evaluation (the best epoch and the last-five ensemble on PublicTest and
PrivateTest; a k-NN readout embeds the three splits) + data loading as measured here;
an evaluation pass costs a third of a training step per image (a forward pass,
:class:`~ferlib.train.callbacks.TimeBudget`'s rule).  Full-profile epochs are the
recipe's maximum; the plateau rule or early stopping may end a row sooner.  The
total for N workers assumes the rows share one device: between the sum of the rows
divided by N (if the device has room for N rows at once without slowing each) and
the plain sum (if one row already keeps it busy); on a CPU, the cores are shared, so
the plain sum.  The plan says whether that fits M.

**Not here.**  Further GPU accelerations -- several CUDA streams in one
process, batching same-architecture rows (seeds) into one model with ``torch.func``,
CUDA graphs -- are not implemented: rows share a GPU only as separate processes.
None of the CUDA paths (concurrent rows on one GPU, the ``nvidia-smi`` sampling) has
been run by the tests, which run on a CPU; the goal -- the DenseNet paper's Table II
(eight rows) at the papers' epoch budget in one 10-minute call on one H100/H200 --
is not yet measured.
"""
from __future__ import annotations

import datetime as _dt
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from .. import paths
from ..errors import UsageError
from ..models.pretrained import MissingWeightsError
from ..provenance import CodeVersion, read_json
from ..runs import OWN_RESULTS, RunKey, keep_old_run

BUDGET_EXIT = 3  # the wall budget ran out: some rows interrupted or not started; the same command continues
INTERRUPT_EXIT = 130  # Ctrl-C, as train
MAX_CUDA_WORKERS = 8
MARGIN_FRACTION, MARGIN_MAX_S = 0.1, 60.0  # SIGINT at M - min(10 % of M, 60 s): time to save checkpoints
KILL_GRACE_S = 30.0  # after the budget's end (and a second SIGINT), a row still running is killed
GPU_SAMPLE_INTERVAL_S = 5.0
DRY_RUN_WARMUP_STEPS, DRY_RUN_TIMED_STEPS = 1, 3
CONTINUE = "run the same command again to continue"


# -- targets ------------------------------------------------------------------------------
def papers() -> dict[str, list]:
    """Paper key -> its recipes in registry order (the demo recipes, paper ``none``, are left out)."""
    from ..train.recipes import RECIPES

    out: dict[str, list] = {}
    for recipe in RECIPES.values():
        if recipe.paper != "none":
            out.setdefault(recipe.paper, []).append(recipe)
    return out


def target_groups() -> dict[str, tuple[str, ...]]:
    """Named parts of a paper, as targets: Sobel-Laplacian-CL's tables and its λ sweep (the paper key runs all 17);
    EmoNet's Table 2 rows and its offline EfficientNet-Lite0 variants (the paper key runs those and the ResNet-50
    ImageNet pair); CL-ResNet50's Table 3 pair (ImageNet weights), the same pair from random initialisation, and
that pair at 64 px for a CPU budget; DNNRL's Table 2 rows and their 64-px CPU variants."""
    from ..train.recipes.dnnrl import CPU_VARIANTS as DNNRL_CPU
    from ..train.recipes.dnnrl import TABLE_2 as DNNRL_TABLE_2
    from ..train.recipes.emonet import OFFLINE_RECIPES, TABLE_2_RECIPES
    from ..train.recipes.ferplus import SWEEP_RECIPES, TABLE_I_RECIPES, TABLE_II_RECIPES

    return {"sobel-laplacian-cl-table1": TABLE_I_RECIPES, "sobel-laplacian-cl-table2": TABLE_II_RECIPES,
            "sobel-laplacian-cl-lambda-sweep": SWEEP_RECIPES, "emonet-table2": TABLE_2_RECIPES,
            "emonet-offline": OFFLINE_RECIPES, "cl-resnet50-table3": ("resnet50", "cl-resnet50"),
            "cl-resnet50-offline": ("resnet50-random", "cl-resnet50-random"),
            "cl-resnet50-cpu": ("resnet50-random-64px", "cl-resnet50-random-64px"),
            "dnnrl-table2": tuple(DNNRL_TABLE_2), "dnnrl-cpu": tuple(DNNRL_CPU)}


def expand_targets(targets) -> list:
    """Paper keys, named parts (:func:`target_groups`) and recipe names -> recipes, each once, in the order given
    (a paper's rows in registry order)."""
    from ..train.recipes import RECIPES

    by_paper, groups, recipes = papers(), target_groups(), []
    for target in targets:
        if target in by_paper:
            recipes += by_paper[target]
        elif target in groups:
            recipes += [RECIPES[name] for name in groups[target]]
        elif target in RECIPES:
            recipes.append(RECIPES[target])
        else:
            raise UsageError(f"unknown target {target!r}: neither a paper nor a recipe",
                             f"give a paper ({', '.join(by_paper)}), a part of one ({', '.join(groups)}) or recipe names "
                             f"(python -m ferlib recipes lists them)")
    seen, unique = set(), []
    for r in recipes:
        if r.name not in seen:
            seen.add(r.name)
            unique.append(r)
    return unique


# -- rows -------------------------------------------------------------------------------
@dataclass
class Row:
    """One table row: where its results and run folder are, what this call does with it, and how it went."""

    recipe: object
    results_path: Path
    run_dir: Path
    action: str = "run"  # "run", "skip" (done for this code) or "keep" (stale full result, no --overwrite)
    status: str = "to run"  # done, skipped, stale, interrupted, not started, failed
    note: str = ""
    keep_old_run: bool = False  # rename the run folder first (a stale result is re-run from scratch)
    overwrite: bool = False
    resumes: bool = False
    returncode: int | None = None
    started: float | None = None  # time.monotonic()
    ended: float | None = None
    results: dict | None = None

    @property
    def log(self) -> Path:
        return self.run_dir / "reproduce.log"

    @property
    def seconds(self) -> float | None:
        return None if self.started is None else (self.ended or time.monotonic()) - self.started


def plan_rows(recipes, *, profile: str, device, seed: int, overwrite: bool, synthetic: bool,
              code: CodeVersion, publish: bool = False) -> list[Row]:
    """Decide for each recipe: skip (done for this code), keep (stale full result), or run (and how)."""
    rows = []
    for recipe in recipes:
        key = RunKey.for_training(recipe.name, profile, seed=seed, synthetic=synthetic)
        row = Row(recipe, key.results_path(published=publish), key.run_dir())
        latest = row.run_dir / "latest.pt"
        if row.results_path.is_file():
            results = read_json(row.results_path)
            if results is None:
                current, why = False, "its results file cannot be read"
            elif results.get("seed") != seed:
                current, why = False, f"it holds seed {results.get('seed')}, not {seed}"
            elif bool(results.get("synthetic")) != synthetic:
                current, why = False, ("it was made on the SYNTHETIC faces and FER-2013 is found now"
                                       if results.get("synthetic") else "it was made on FER-2013 and only the "
                                       "SYNTHETIC faces are found now")
            else:
                current, why = code.made_this(results.get("provenance", {}))
            if current:
                row.action, row.status, row.results = "skip", "skipped", results
                row.note = why or "done for this code version"
            elif profile == "full" and not overwrite:
                row.action, row.status, row.results = "keep", "stale", results
                row.note = f"{why}: pass --overwrite to re-run"
            else:
                row.overwrite = True
                resuming = latest.is_file() and latest.stat().st_mtime > row.results_path.stat().st_mtime
                row.keep_old_run = row.run_dir.exists() and not resuming
                row.resumes = resuming
                row.note = f"re-run: {why}" + ("; resumes the re-run a previous call started" if resuming else "")
        else:
            row.resumes = latest.is_file()
            if row.resumes:
                row.note = "resumes from its checkpoint"
        rows.append(row)
    return rows


def default_workers(device, rows_to_run: int) -> int:
    """CUDA: min(rows, 8) rows share the device; CPU: one after another."""
    return max(1, min(rows_to_run, MAX_CUDA_WORKERS)) if device.type == "cuda" else 1


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def worker_command(row: Row, *, profile: str, device, seed: int, precision: str, threads: int,
                   data_dir: str | None, quiet: bool, publish: bool = False) -> list[str]:
    """The row's ordinary ``python -m ferlib train`` command line."""
    cmd = [sys.executable, "-m", "ferlib", "train", row.recipe.name, "--profile", profile, "--device", str(device),
           "--seed", str(seed), "--precision", precision, "--threads", str(threads)]
    if data_dir:
        cmd += ["--data-dir", str(data_dir)]
    if row.overwrite:
        cmd.append("--overwrite")
    if publish:
        cmd.append("--publish")
    if quiet:
        cmd.append("--quiet")
    return cmd


def worker_env() -> dict:
    """The caller's environment, with this checkout first on PYTHONPATH and unbuffered output (live logs)."""
    env = dict(os.environ)
    root = str(paths.kit_root())
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- GPU utilisation ----------------------------------------------------------------------
class GpuUtilisation:
    """``nvidia-smi`` samples of the device's utilisation (%) every few seconds, in a thread.

    ``available`` is False on a CPU, without ``nvidia-smi``, or when it does not answer;
    then every figure is None ("n/a" in the table).
    """

    def __init__(self, device, interval_s: float = GPU_SAMPLE_INTERVAL_S):
        self.samples: list[tuple[float, float]] = []  # (time.monotonic(), percent)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = None
        exe = shutil.which("nvidia-smi") if device.type == "cuda" else None
        index = device.index or 0
        visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
        self._cmd = None if exe is None else [exe, "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                              "-i", visible[index] if index < len(visible) else str(index)]
        self.available = self._cmd is not None and self._sample() is not None

    def _sample(self) -> float | None:
        try:
            out = subprocess.run(self._cmd, capture_output=True, text=True, timeout=10)
            return float(out.stdout.strip().splitlines()[0]) if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            value = self._sample()
            if value is not None:
                self.samples.append((time.monotonic(), value))

    def start(self) -> None:
        if self.available:
            self._thread = threading.Thread(target=self._loop, name="nvidia-smi sampler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def mean(self, start: float | None = None, end: float | None = None) -> float | None:
        values = [v for t, v in self.samples if (start is None or t >= start) and (end is None or t <= end)]
        return round(sum(values) / len(values), 1) if values else None

    def summary(self) -> dict | None:
        if not self.available:
            return None
        values = [v for _, v in self.samples]
        return {"samples": len(values), "interval_s": self.interval_s, "mean_percent": self.mean(),
                "max_percent": max(values) if values else None, "source": " ".join(self._cmd[:-2])}


# -- the pool -----------------------------------------------------------------------------
class RowPool:
    """Runs rows as worker processes, ``workers`` at a time, and stops them on the budget or Ctrl-C."""

    def __init__(self, rows, *, workers: int, command_for, budget_s: float | None, quiet: bool = False,
                 env: dict | None = None):
        self.rows, self.workers, self.command_for = rows, workers, command_for
        self.budget_s, self.quiet, self.env = budget_s, quiet, env
        self.running: dict[int, subprocess.Popen] = {}
        self.lock = threading.Lock()
        self.stop_reason: str | None = None  # "budget" or "ctrl-c"
        self.signals_sent = 0

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[reproduce] {text}", flush=True)

    # one thread per running row
    def _run(self, row: Row) -> None:
        with self.lock:
            if self.stop_reason:
                row.status, row.note = "not started", CONTINUE
                return
            if row.keep_old_run and row.run_dir.exists():
                keep_old_run(row.run_dir)
            row.run_dir.mkdir(parents=True, exist_ok=True)
            log = open(row.log, "a")
            cmd = self.command_for(row)
            log.write(f"\n=== reproduce {_dt.datetime.now().isoformat(timespec='seconds')}: {' '.join(cmd)}\n")
            log.flush()
            row.started = time.monotonic()
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self.env, start_new_session=True)
            self.running[id(row)] = proc
        self.say(f"start {row.recipe.name} ({row.recipe.row}){' -- ' + row.note if row.note else ''}; "
                 f"log {row.log}")
        try:
            row.returncode = proc.wait()
        finally:
            log.close()
            row.ended = time.monotonic()
            with self.lock:
                self.running.pop(id(row), None)
        self._finish(row)

    def _finish(self, row: Row) -> None:
        rc = row.returncode
        fresh = row.results_path.is_file() and row.results_path.stat().st_mtime >= time.time() - row.seconds - 1
        if rc == 0 and fresh:
            row.status, row.results = "done", read_json(row.results_path)
            self.say(f"done {row.recipe.name} in {row.seconds:.0f} s: {ours_text(row.results)}")
        elif rc in (INTERRUPT_EXIT, -signal.SIGINT, -signal.SIGKILL) or (self.stop_reason and rc != 0):
            row.status, row.note = "interrupted", CONTINUE
            self.say(f"interrupted {row.recipe.name} after {row.seconds:.0f} s -- {CONTINUE}")
        else:
            row.status = "failed"
            row.note = f"exit status {rc}: {last_line(row.log)} (log: {row.log})"
            if "out of memory" in row.note.lower():
                row.note += "; fewer --workers leave each row more device memory"
            self.say(f"failed {row.recipe.name}: {row.note}")

    def _signal_all(self, kill: bool = False) -> None:
        with self.lock:
            for proc in self.running.values():
                try:
                    proc.kill() if kill else proc.send_signal(signal.SIGINT)
                except OSError:  # it has just ended
                    pass

    def stop(self, reason: str) -> None:
        """Start no more rows; SIGINT the running ones (again on a repeated call; kill on the third)."""
        with self.lock:
            self.stop_reason = self.stop_reason or reason
            self.signals_sent += 1
            n = self.signals_sent
        if n == 1:
            self.say(f"{'wall budget nearly spent' if reason == 'budget' else 'Ctrl-C'}: stopping the running rows "
                     f"(each saves a checkpoint); no more rows start")
        self._signal_all(kill=n >= 3)

    def run(self) -> None:
        """Run every row; returns when all have ended (or were never started)."""
        start = time.monotonic()
        soft = hard = None
        if self.budget_s is not None:
            hard = start + self.budget_s
            soft = hard - min(MARGIN_MAX_S, MARGIN_FRACTION * self.budget_s)
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="row") as pool:
            pending = {pool.submit(self._run, row) for row in self.rows}
            budget_stage = 0
            while pending:
                try:
                    now = time.monotonic()
                    if soft is not None and budget_stage == 0 and now >= soft:
                        budget_stage = 1
                        self.stop("budget")
                    elif hard is not None and budget_stage == 1 and now >= hard:
                        budget_stage = 2
                        self.stop("budget")  # a second SIGINT: rows stop at once; their last checkpoint remains
                    elif hard is not None and budget_stage == 2 and now >= hard + KILL_GRACE_S:
                        budget_stage = 3
                        self.stop("budget")
                    waits = [t - now for t in (soft, hard, hard + KILL_GRACE_S if hard else None)
                             if t is not None and t > now]
                    done, pending = wait(pending, timeout=min(waits + [1.0]), return_when=FIRST_COMPLETED)
                    for future in done:
                        future.result()  # a bug in a row's thread surfaces here, with its traceback
                except KeyboardInterrupt:
                    self.stop("ctrl-c")


def last_line(path: Path) -> str:
    """The last non-empty line of a log (progress bars' carriage returns cut), or '(empty log)'."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    lines = [part.strip() for line in text.splitlines() for part in line.split("\r") if part.strip()]
    return lines[-1] if lines else "(empty log)"


# -- summary ------------------------------------------------------------------------------
def ours(results: dict | None) -> dict:
    """PublicTest / PrivateTest accuracy (%) of a results file."""
    metrics = (results or {}).get("metrics") or {}
    return {split: round(100 * metrics[split]["accuracy"], 1) for split in ("PublicTest", "PrivateTest")
            if split in metrics and "accuracy" in metrics[split]}


def ours_text(results: dict | None) -> str:
    o = ours(results)
    return " / ".join(f"{k} {v:.1f} %" for k, v in o.items()) or "no metrics"


def summary_path(targets, profile: str, device, *, publish: bool = False) -> Path:
    """``results/local/reproduce/<targets>-<profile>-<device type>.json`` (quick: ``results/local/quick/reproduce/``);
    with ``publish`` under the kit's tracked ``results/``."""
    name = "+".join(targets)
    name = re.sub(r"[^A-Za-z0-9.+_-]", "_", name)
    if len(name) > 120:
        name = f"{name[:100]}-and-more-{len(targets)}-targets"
    base = paths.results_dir() if publish and profile != "quick" else paths.results_dir() / OWN_RESULTS
    root = base / ("quick" if profile == "quick" else "") / "reproduce"
    return root / f"{name}-{profile}-{device.type}.json"


def row_summary(row: Row, gpu: GpuUtilisation) -> dict:
    results = row.results or {}
    prov = results.get("provenance") or {}
    return {"recipe": row.recipe.name, "row": row.recipe.row, "paper": row.recipe.paper,
            "paper_results": row.recipe.paper_results, "ours": ours(results) if results else {},
            "status": row.status, "note": row.note,
            "results_file": str(row.results_path) if row.results_path.is_file() else None,
            "run_dir": str(row.run_dir), "log": str(row.log) if row.log.is_file() else None,
            "wall_time_s": prov.get("wall_time_s"), "this_call_s": row.seconds,
            "epochs_run": results.get("epochs_run"), "train_images_per_s": results.get("train_images_per_s"),
            "gpu_utilisation_percent": gpu.mean(row.started, row.ended) if row.started else None,
            "results_git_sha": prov.get("git_sha"), "synthetic": results.get("synthetic")}


def print_table(entries: list[dict], file=sys.stdout) -> None:
    def num(v, fmt):
        return "-" if v is None else format(v, fmt)

    table = [("row", "paper", "ours (Pub / Priv)", "status", "wall s", "img/s", "GPU %")]
    for e in entries:
        o = e["ours"]
        table.append((f"{e['recipe']}: {e['row']}", paper_text_from(e["paper_results"]),
                      " / ".join(f"{o[k]:.1f}" for k in ("PublicTest", "PrivateTest") if k in o) or "-",
                      e["status"] + (" (SYNTHETIC)" if e.get("synthetic") else ""),
                      num(e["wall_time_s"], ".0f") if e["wall_time_s"] is not None else num(e["this_call_s"], ".0f"),
                      num(e["train_images_per_s"], ".0f"),
                      "n/a" if e["gpu_utilisation_percent"] is None else f"{e['gpu_utilisation_percent']:.0f}"))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip(), file=file)
    for e in entries:
        if e["status"] in ("stale", "failed", "interrupted", "not started") and e["note"]:
            print(f"  {e['recipe']}: {e['status']} -- {e['note']}", file=file)


def paper_text_from(paper_results: dict) -> str:
    short = {"PublicTest": "Pub", "PrivateTest": "Priv"}
    items = [(short.get(k, k), v) for k, v in paper_results.items() if not k.startswith("ensemble")]
    return " / ".join(f"{k} {v}" for k, v in items) or "-"


# -- plan (--dry-run) ---------------------------------------------------------------------
class _StepTimer:
    """Times training steps after ``warmup`` ones (synchronised), within one epoch."""

    def __init__(self, warmup: int):
        self.warmup, self.times = warmup, []

    def on_fit_start(self, trainer) -> None: ...

    def on_epoch_end(self, trainer, record) -> None:
        self.times.append(None)  # an epoch boundary: evaluation time is not a step

    def on_fit_end(self, trainer) -> None: ...

    def on_step_end(self, trainer) -> None:
        if trainer.state.steps >= self.warmup:
            trainer.sync()
            self.times.append(time.perf_counter())

    def step_seconds(self) -> float | None:
        gaps = [b - a for a, b in zip(self.times, self.times[1:]) if a is not None and b is not None]
        return sum(gaps) / len(gaps) if gaps else None


def measure_images_per_s(recipe, dataset, *, profile: str, device, precision: str, seed: int = 0) -> float:
    """Training images/s of ``recipe`` on ``device``: its own built run, a few timed steps at its batch size."""
    import tempfile

    from ..data.splits import prepare_splits
    from ..train.build import build_run
    from ..train.callbacks import StopTraining, TrainingInterrupted

    batch = recipe.batch_size_for(profile)
    steps = DRY_RUN_WARMUP_STEPS + DRY_RUN_TIMED_STEPS
    per_class = math.ceil(batch * (steps + 1) / len(dataset.class_names))
    data = prepare_splits(dataset, per_class, 2, seed)
    timer = _StepTimer(DRY_RUN_WARMUP_STEPS)
    with tempfile.TemporaryDirectory(prefix="ferlib-plan-") as tmp:
        run = build_run(recipe, data, profile=profile, seed=seed, device=device, run_dir=tmp, precision=precision,
                        progress=False, stop_after_steps=steps, extra_callbacks=[timer])
        try:
            run.trainer.fit(resume=False)
        except StopTraining:  # the planned stop after the timed steps
            pass
        except TrainingInterrupted:  # Ctrl-C during the measurement
            raise KeyboardInterrupt from None
    step_s = timer.step_seconds()
    if step_s is None:
        raise RuntimeError(f"{recipe.name}: no training step could be timed")
    return min(batch, len(data.train)) / step_s


def expected_seconds(recipe, sizes: dict, images_per_s: float, profile: str, startup_s: float) -> float:
    """Epochs x (training + one PublicTest pass) + final evaluation + start-up; see the module docstring."""
    from ..train.build import final_eval_passes

    epochs = recipe.budget(profile).epochs
    train_s = sizes["train"] / images_per_s
    eval_pass_s = sizes["val"] / images_per_s / 3  # a forward pass: a third of a training step per image
    return epochs * (train_s + eval_pass_s) + final_eval_passes(recipe, sizes) * eval_pass_s + startup_s


def fmt_duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def dry_run(rows, *, profile: str, device, precision: str, seed: int, data_dir, workers: int, minutes,
            quiet: bool) -> int:
    """Print the expected time of each row that would run, and whether the whole fits ``minutes``; writes nothing."""
    from ..data.discovery import load_fer2013
    from ..data.splits import prepare_splits

    t0 = time.perf_counter()
    dataset = load_fer2013(data_dir, verbose=not quiet)
    startup_s = time.perf_counter() - t0
    by_kind = {"fer2013": dataset}
    table = [("row", "epochs", "train images", "img/s", "expected", "note")]
    times = []
    for row in rows:
        r = row.recipe
        if row.action != "run":
            table.append((r.name, "-", "-", "-", "0 s", row.status + (f": {row.note}" if row.note else "")))
            continue
        budget = r.budget(profile)
        if r.dataset not in by_kind:  # FER+ (Sobel-Laplacian-CL): its relabelled rows, 8 classes
            from ..data.ferplus import load_ferplus

            by_kind[r.dataset] = load_ferplus(data_dir, verbose=False)[0]
        rows_data = by_kind[r.dataset]
        data = prepare_splits(rows_data, budget.train_per_class, budget.eval_per_class, seed)
        sizes = {"train": len(data.train), "val": len(data.val), "test": len(data.test)}
        note = row.note
        try:
            ips = measure_images_per_s(r, rows_data, profile=profile, device=device, precision=precision, seed=seed)
        except MissingWeightsError as e:  # a plan needs the architecture, not the values: time it without them
            ips = measure_images_per_s(replace(r, model_kwargs={**r.model_kwargs, "load_weights": False}), rows_data,
                                       profile=profile, device=device, precision=precision, seed=seed)
            note = "; ".join(filter(None, [note, f"NEEDS WEIGHTS, missing here: {e.what} (python -m ferlib train {r.name} says where to put them)"]))
        seconds = expected_seconds(r, sizes, ips, profile, startup_s)
        times.append(seconds)
        epochs = f"{'up to ' if profile == 'full' else ''}{budget.epochs}"
        table.append((r.name, epochs, str(sizes["train"]), f"{ips:.0f}", fmt_duration(seconds), note))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    where = f"{device}" + (f", {precision}" if precision else "")
    print(f"plan: {len(times)} row(s) to run, {profile} profile, on {where}, {workers} worker(s)"
          f"{' (SYNTHETIC faces)' if getattr(dataset, 'synthetic', False) else ''}; "
          f"img/s measured here, one row at a time, over {DRY_RUN_TIMED_STEPS} steps")
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip())
    total = sum(times)
    if not times:
        print("nothing to run")
        return 0
    if device.type == "cuda" and workers > 1:
        low = max(max(times), total / min(workers, len(times)))
        print(f"expected total with {workers} workers sharing {device}: between {fmt_duration(low)} (if the device "
              f"has room for {min(workers, len(times))} rows at once) and {fmt_duration(total)} (if one row already "
              f"keeps it busy); concurrent rows were not measured together")
    else:
        low = total
        share = f", the cores shared by {workers} workers" if workers > 1 else ""
        print(f"expected total: {fmt_duration(total)} (one after another{share})")
    if minutes is not None:
        usable = 60 * minutes - min(MARGIN_MAX_S, MARGIN_FRACTION * 60 * minutes)
        verdict = ("fits" if total <= usable else "may fit" if low <= usable else
                   "does not fit: rows still running are interrupted at the budget, and the same command "
                   "continues them")
        print(f"--minutes {minutes:g}: {verdict}")
    return 0
