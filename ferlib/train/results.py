"""Run a recipe end to end and record the result with its provenance.

``run_recipe`` loads the data, trains (resuming if a run was interrupted), selects
the epoch on PublicTest, evaluates PrivateTest, and writes ``RECIPE.json``:
metrics per split, per-class report, confusion matrix, selected epoch, checkpoint
ensemble, history, config, git sha, device, library versions, wall time and
training throughput.  Full-profile results go to ``results/``; quick-profile ones
to ``results/quick/`` so a laptop run never overwrites a GPU result.

Recipes read out by k-NN (DNNRL §4; ``recipe.classifier == "knn"``, or
``report_knn`` beside a softmax head) also get a ``knn`` block: the selected
checkpoint embeds the whole Training split, PublicTest and PrivateTest (evaluation
transform), k is chosen on PublicTest (:func:`ferlib.evaluate.knn.knn_evaluate`),
and the k, the PublicTest sweep over k and the metrics of both splits are written.
For ``classifier == "knn"`` those metrics are the recipe's ``metrics``; there is no
softmax, hence no checkpoint ensemble (``ensemble_last5`` is None).
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import paths
from ..data.dataset import FERDataset
from ..data.splits import prepare_splits
from ..evaluate.ensemble import checkpoint_epoch, last_checkpoints, mean_softmax
from ..evaluate.knn import DEFAULT_KS, knn_evaluate
from ..evaluate.metrics import classification_metrics
from ..profiles import get_profile
from .build import build_run, resolve_device
from .checkpoint import load_checkpoint_dict
from .distributed import current as current_process_group
from .distributed import world_size_from_env
from .recipes import Recipe
from .trainer import KEEP_LAST, train_images_per_s
from .validation import predict_embeddings

REPO = paths.kit_root()


def git_info() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        sha, dirty = "", False
    return {"git_sha": sha or "unknown", "git_dirty": dirty, "code_fingerprint": code_fingerprint()}


def code_fingerprint() -> str:
    """SHA-256 of the ``ferlib/`` sources as they are on disk, committed or not.

    What ``python -m ferlib reproduce`` compares to decide that a results file was made
    by the code now checked out, even in a checkout with uncommitted edits (where the
    git sha alone cannot tell).  The files are those git tracks or would track under
    ``ferlib/`` (``git ls-files --cached --others --exclude-standard``); without git,
    every ``*.py`` under ``ferlib/``.
    """
    import hashlib

    root = REPO / "ferlib"
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "ferlib"],
                                cwd=REPO, capture_output=True, text=True, timeout=10)
        names = sorted(n for n in listed.stdout.split("\0") if n) if listed.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        names = []
    files = [REPO / n for n in names] or sorted(root.rglob("*.py"))
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():  # a file deleted but not yet committed is listed by git and absent here
            digest.update(f.relative_to(REPO).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(device: torch.device) -> dict:
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    return {"device": str(device), "device_name": name, "cpu_model": cpu_model(),
            "cpu_threads": torch.get_num_threads(), "cuda": torch.version.cuda}


def library_versions() -> dict:
    import numpy
    import sklearn
    import torchvision

    return {"python": sys.version.split()[0], "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": numpy.__version__, "scikit-learn": sklearn.__version__, "platform": platform.platform()}


_BUDGET_TAG = re.compile(r"(?P<minutes>\d+(\.\d+)?)min-(?P<kind>cpu|cuda)(-(?P<threads>\d+)threads?)?"
                         r"(-(?P<processes>\d+)(gpus|procs))?")


def budget_tag(minutes: float, device: torch.device | None = None, threads: int | None = None,
               processes: int | None = None) -> str:
    """``60min-cpu-2threads`` (a CPU run's thread count is part of its name) or ``10min-cuda``;
    ``10min-cuda-4gpus`` / ``60min-cpu-1thread-2procs`` for several processes under torchrun.

    Two wall-clock runs of one recipe on different thread counts are different results
    (a 2-thread hour trains about twice the epochs), so neither overwrites the other;
    nor do runs on different numbers of processes (``processes``: default ``WORLD_SIZE``).
    """
    kind = (device or torch.device("cpu")).type
    processes = processes or world_size_from_env()
    several = "" if processes == 1 else f"-{processes}{'gpus' if kind == 'cuda' else 'procs'}"
    if kind != "cpu":
        return f"{minutes:g}min-{kind}{several}"
    n = threads or torch.get_num_threads()
    return f"{minutes:g}min-cpu-{n}thread{'s' if n > 1 else ''}{several}"


def budget_size(tag: str) -> tuple[int, float]:
    """How much training a budget tag buys, to pick the larger of two runs: ``(1 on CUDA else 0,
    minutes x threads x processes)``.  ``60min-cpu-2threads`` > ``60min-cpu-1thread``; any CUDA
    budget > any CPU one.  ``ValueError`` for a string that is not a budget tag."""
    m = _BUDGET_TAG.fullmatch(tag)
    if m is None:
        raise ValueError(f"{tag!r} is not a budget tag such as 60min-cpu-2threads or 10min-cuda")
    return (int(m["kind"] == "cuda"), float(m["minutes"]) * int(m["threads"] or 1) * int(m["processes"] or 1))


BUDGET_PROFILE = "budget"


def is_budget_result(result: dict) -> bool:
    """Whether a results file is a wall-clock-budget run (``--minutes``).  Files written before the
    field said ``"budget"`` recorded ``"profile": "quick"`` with a ``budget`` block of kind ``wall-clock``."""
    return result.get("profile") == BUDGET_PROFILE or (result.get("budget") or {}).get("kind") == "wall-clock"


def split_sizes(result: dict, recipe: Recipe) -> tuple[int | None, int | None]:
    """``(train_per_class, eval_per_class)`` the run of ``result`` was trained and evaluated on, for
    :func:`~ferlib.data.splits.prepare_splits` to rebuild its splits: ``(None, None)`` (the whole
    splits) for a wall-clock budget or the full profile, the quick profile's subsets otherwise."""
    if is_budget_result(result):
        return None, None
    budget = recipe.budget(result["profile"])
    return budget.train_per_class, budget.eval_per_class


def is_budget_name(stem: str, name: str, suffix: str = "") -> bool:
    """Whether ``stem`` is ``NAME-<budget tag><suffix>`` (e.g. ``densenet-bc-60min-cpu-1thread``)."""
    return (stem.startswith(name + "-") and stem.endswith(suffix)
            and _BUDGET_TAG.fullmatch(stem[len(name) + 1:len(stem) - len(suffix)]) is not None)


def run_name(recipe: Recipe, profile: str, seed: int = 0, minutes: float | None = None,
             device: torch.device | None = None) -> str:
    """``RECIPE-PROFILE-seedS``, or ``RECIPE-60min-cpu-2threads-seedS`` for a wall-clock budget."""
    if minutes:
        return f"{recipe.name}-{budget_tag(minutes, device)}-seed{seed}"
    return f"{recipe.name}-{profile}-seed{seed}"


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


def default_results_path(recipe: Recipe, profile: str, minutes: float | None = None,
                         device: torch.device | None = None) -> Path:
    """``results/RECIPE.json`` (full), ``results/quick/RECIPE.json``,
    ``results/budget/RECIPE-60min-cpu-2threads.json`` (wall-clock budget)."""
    root = paths.results_dir()
    if minutes:
        return root / "budget" / f"{recipe.name}-{budget_tag(minutes, device)}.json"
    return (root / "quick" if profile == "quick" else root) / f"{recipe.name}.json"


def evaluate_selected(run) -> dict:
    """Metrics of the epoch selected on PublicTest, and of the last-five checkpoint ensemble (DenseNet-CL §IV-C)."""
    t, names = run.trainer, run.data.class_names
    sources = {"PublicTest": t.val_source, "PrivateTest": run.test_source}
    best = load_checkpoint_dict(t.run_dir / "best.pt")
    files = last_checkpoints(t.run_dir, KEEP_LAST)
    dtype = torch.bfloat16 if t.precision == "bf16" else None
    probs = mean_softmax(t.model, [best["model"]], sources, autocast_dtype=dtype)
    labels = {k: s.labels.cpu().numpy() for k, s in sources.items()}
    out = {"selected_epoch": best["epoch"],
           "metrics": {k: classification_metrics(p, labels[k], names) for k, p in probs.items()}}
    ens = mean_softmax(t.model, [load_checkpoint_dict(f)["model"] for f in files], sources, autocast_dtype=dtype)
    out["ensemble_last5"] = {"epochs": [checkpoint_epoch(f) for f in files], "combine": "mean of softmax",
                             **{k: classification_metrics(p, labels[k], names)["accuracy"] for k, p in ens.items()}}
    t.model.load_state_dict(best["model"])
    return out


def load_selected(run) -> dict:
    """Load ``best.pt`` (the epoch selected on PublicTest) into the run's model; returns the checkpoint."""
    best = load_checkpoint_dict(run.trainer.run_dir / "best.pt")
    run.trainer.model.load_state_dict(best["model"])
    return best


def one_hot(predictions, num_classes: int):
    """(N,) class predictions as (N, C) one-hot scores, for :func:`classification_metrics`."""
    return np.eye(num_classes, dtype=np.float32)[np.asarray(predictions)]


def evaluate_knn(run, ks=DEFAULT_KS) -> dict:
    """DNNRL §4's readout with the model's current weights (the selected epoch after :func:`load_selected`).

    Embeds the whole Training split, PublicTest and PrivateTest (evaluation transform),
    chooses k among ``ks`` (those not above the Training size) on PublicTest and
    classifies PrivateTest with it.  Returns ``{"k", "metric", "sweep": {k: PublicTest
    accuracy}, "reference", "PublicTest": metrics, "PrivateTest": metrics}``.
    """
    t, names = run.trainer, run.data.class_names
    sources = {"Training": run.eval_source(run.data.train), "PublicTest": t.val_source, "PrivateTest": run.test_source}
    emb = {k: predict_embeddings(t.model, s, autocast_dtype=t.autocast_dtype) for k, s in sources.items()}
    n_train = emb["Training"][0].shape[0]
    usable = [k for k in ks if k <= n_train]
    if not usable:
        raise ValueError(f"every k in {tuple(ks)} exceeds the {n_train} Training embeddings")
    out = knn_evaluate(emb["Training"], emb["PublicTest"], emb["PrivateTest"], ks=usable,
                       metric=run.recipe.knn_metric, num_classes=len(names))
    metrics = {split: classification_metrics(one_hot(out["predictions"][split], len(names)),
                                             emb[split][1].numpy(), names) for split in ("PublicTest", "PrivateTest")}
    return {"k": out["k"], "metric": out["metric"], "sweep": {str(k): acc for k, acc in out["sweep"].items()},
            "selection": "k with the best PublicTest accuracy (the smallest on ties); PrivateTest classified once",
            "reference": {"split": "Training", "n": n_train, "transform": "evaluation (deterministic)"},
            **metrics}


def run_recipe(recipe: Recipe, *, dataset: FERDataset | None = None, profile: str | None = None,
               data_dir=None, device=None, seed: int = 0, results_path: str | Path | None = None,
               run_dir: str | Path | None = None, resume: bool = True, progress: bool = True,
               overwrite: bool = True, minutes: float | None = None, precision: str | None = "auto",
               **build_kwargs) -> dict:
    """Train ``recipe`` and write its results file; returns the results dict.

    ``minutes``: a wall-clock budget on the whole splits (see :mod:`ferlib.train.build`).
    Under torchrun (:mod:`ferlib.train.distributed`) every process trains; rank 0 alone
    prints, evaluates the selected epoch and writes the results file, and the other
    ranks return None once training ends.
    """
    group = current_process_group()
    progress = progress and (group is None or group.rank == 0)
    started = time.time()
    code_version = git_info()  # at the start: the code this run was started from
    profile = get_profile(profile)
    device = resolve_device(device)
    results_path = Path(results_path) if results_path else default_results_path(recipe, profile, minutes, device)
    if results_path.exists() and not overwrite:
        raise FileExistsError(f"{results_path} exists; pass --overwrite to replace it or --out to write elsewhere")
    if recipe.dataset != "fer2013":
        raise NotImplementedError(f"recipe {recipe.name!r} needs dataset {recipe.dataset!r}")
    if dataset is None:
        from ..data.discovery import load_fer2013

        dataset = load_fer2013(data_dir, verbose=progress)
    budget = recipe.budget(profile)
    data = prepare_splits(dataset, None if minutes else budget.train_per_class,
                          None if minutes else budget.eval_per_class, seed)
    run_dir = Path(run_dir) if run_dir else paths.runs_dir() / run_name(recipe, profile, seed, minutes, device)
    run = build_run(recipe, data, profile=profile, seed=seed, device=device, run_dir=run_dir, precision=precision,
                    minutes=minutes, progress=progress, started=started, **build_kwargs)
    trainer = run.trainer
    state = trainer.fit(resume=resume)
    if group is not None and group.rank != 0:
        return None
    world = group.world_size if group else 1
    images_per_s = train_images_per_s(state)  # this process's; every process trains as many (+-1 per epoch)
    if recipe.classifier == "softmax":
        final = evaluate_selected(run)  # leaves the selected epoch's weights in the model
    else:
        final = {"selected_epoch": load_selected(run)["epoch"], "ensemble_last5": None}
    knn = evaluate_knn(run) if recipe.uses_knn else None
    if recipe.classifier == "knn":
        final["metrics"] = {split: knn[split] for split in ("PublicTest", "PrivateTest")}
    selection = ("epoch with the lowest PublicTest validation loss" if trainer.select_on == "loss"
                 else "epoch with the best PublicTest accuracy")
    results = {
        "recipe": recipe.name,
        "paper": recipe.paper,
        "row": recipe.row,
        "profile": BUDGET_PROFILE if minutes else profile,  # a budget run uses no profile's epochs or subsets
        "budget": ({"kind": "wall-clock", "minutes": minutes, "plan": state.plan} if minutes
                   else {"kind": "profile", "epochs": trainer.epochs}),
        "schedule": run.schedule_name,
        "precision": trainer.precision,
        "compiled": trainer.train_forward is not None,  # torch.compile of the training forward (--compile)
        "synthetic": data.synthetic,
        "data": data.description,
        "seed": seed,
        "selected_epoch": final["selected_epoch"],
        "selection": f"{selection}; PrivateTest is reported, never used to select",
        "classifier": recipe.classifier,
        "metrics": final["metrics"],
        "ensemble_last5": final["ensemble_last5"],
        "knn": knn,
        "validation": trainer.validator.describe(),
        "protocol": ({"name": recipe.protocol, **state.callback_state.get(recipe.protocol, {})}
                     if recipe.protocol and not minutes else None),
        "paper_results": recipe.paper_results,
        "history": state.history,
        "epochs_run": state.epoch,
        "train_images_per_s": images_per_s and images_per_s * world,
        "train_seconds": state.train_seconds,
        "config": recipe.to_dict(),
        "model_weights": getattr(trainer.model, "weights_source", None),
        "augment": run.augment.to_dict(),
        "provenance": {**code_version, **device_info(device), "versions": library_versions(),
                       "started": _dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(timespec="seconds"),
                       "wall_time_s": time.time() - started, "command": " ".join(sys.argv),
                       "run_dir": str(run_dir),
                       "distributed": ({**group.describe(), "global_batch": trainer.train_source.batch_size,
                                        "per_process_batch": trainer.train_source.batch_size // group.world_size}
                                       if group else {"world_size": 1})},
    }
    results_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = results_path.with_name(results_path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(results_path)
    if progress:
        m = results["metrics"]
        note = "  (SYNTHETIC data)" if data.synthetic else ""
        if profile == "quick" and not minutes:
            note += "  -- quick profile: a smoke test of the pipeline, not a result"
        how = f" ({recipe.classifier}{', k = ' + str(knn['k']) if recipe.classifier == 'knn' else ''})"
        print(f"[{recipe.name}] selected epoch {results['selected_epoch']}{how}: PublicTest "
              f"{m['PublicTest']['accuracy']:.4f}, PrivateTest {m['PrivateTest']['accuracy']:.4f}{note} "
              f"-> {results_path}")
    return results


def load_results(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


NOT_RUN = "not yet run"
HOW_TO_RUN = "needs a GPU: python -m ferlib train {name} --profile full"


def _ours(results: dict, key: str):
    """Our number (in %) for a ``paper_results`` key, or ``None`` when the results file lacks it.

    ``PublicTest`` / ``PrivateTest``: accuracy on that split; ``ensemble_<split>``: the
    last-five checkpoint ensemble; ``accuracy`` / ``f1`` (CL-ResNet50 Table 3, whose
    evaluation split is not stated): PrivateTest accuracy / macro F1.
    """
    metrics = results.get("metrics", {})
    if key in metrics:
        return round(100 * metrics[key]["accuracy"], 1)
    if key.startswith("ensemble_"):
        v = (results.get("ensemble_last5") or {}).get(key[len("ensemble_"):])
        return None if v is None else round(100 * v, 1)
    test = metrics.get("PrivateTest", {})
    field = {"accuracy": "accuracy", "f1": "macro_f1", "macro_f1": "macro_f1",
             "weighted_f1": "weighted_f1"}.get(key)
    if field in test:
        return round(100 * test[field], 1)
    return None


def run_label(results: dict) -> str:
    """What kind of run a results file holds: ``full profile`` or ``60-min budget``, with its device."""
    prov = results.get("provenance", {})
    budget = results.get("budget") or {}
    kind = f"{budget['minutes']:g}-min budget" if budget.get("kind") == "wall-clock" else f"{results.get('profile')} profile"
    threads = f", {prov.get('cpu_threads')} thread(s)" if str(prov.get("device", "")).startswith("cpu") else ""
    return f"{kind}, {prov.get('device_name')}{threads}, {results.get('epochs_run')} epochs, {results.get('precision', 'fp32')}"


def budget_results(name: str, results_dir: Path) -> list[Path]:
    """Wall-clock-budget results files of recipe ``name`` (``budget/NAME-<budget tag>.json``)."""
    return sorted(p for p in (results_dir / "budget").glob(f"{name}-*min-*.json") if is_budget_name(p.stem, name))


def paper_vs_ours(names, *, results_dir: str | Path | None = None, recipes=None, budget_runs: bool = True):
    """Paper numbers beside ours for each recipe name (pandas DataFrame).

    One row per recipe for the full-profile run (``results/<name>.json``; "not yet run"
    and the command when it is missing), plus one row per wall-clock-budget run
    (``results/budget/<name>-<M>min-<device>.json``) when ``budget_runs``.  The ``run``
    column names the budget, device, threads, epochs and precision; ``status`` the file
    and git sha.  A name that is not a registered recipe gets a row that says so.
    """
    import pandas as pd

    if recipes is None:
        from .recipes import RECIPES as recipes
    results_dir = Path(results_dir) if results_dir is not None else paths.results_dir()
    rows = []
    for name in names:
        recipe = recipes.get(name)
        if recipe is None:
            rows.append({"recipe": name, "row": "(not a registered recipe in this version of ferlib)"})
            continue
        full = results_dir / f"{name}.json"
        files = [full] + (budget_results(name, results_dir) if budget_runs else [])
        for path in files:
            results = load_results(path) if path.is_file() else None
            if results is None and path is not full:
                continue
            row = {"recipe": name, "row": recipe.row,
                   "run": run_label(results) if results else "full profile"}
            for key, value in recipe.paper_results.items():
                row[f"paper {key}"] = value
                ours = _ours(results, key) if results else NOT_RUN
                row[f"ours {key}"] = ours if ours is not None else "not in results file"
            if results is None:
                row["status"] = HOW_TO_RUN.format(name=name)
            else:
                prov = results.get("provenance", {})
                row["status"] = (f"{path.relative_to(results_dir)}: git {str(prov.get('git_sha', ''))[:8]}"
                                 + (", SYNTHETIC data" if results.get("synthetic") else ""))
            rows.append(row)
    return pd.DataFrame(rows)
