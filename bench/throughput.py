"""Training throughput (and, optionally, time-to-accuracy): ferlib's trainer vs a conventional pipeline.

DESIGN.md §6: FER images are 48x48, so a PIL + ``DataLoader`` input pipeline leaves a
GPU idle.  This script measures, side by side in one run, training images/s of

(a) **conventional** -- a ``torch.utils.data.Dataset`` that turns each uint8 48x48 row
    into a PIL image and applies torchvision transforms (``RandomCrop(48, padding=4)``,
    ``RandomHorizontalFlip()``, ``RandomRotation(15)``, ``Resize(42)``, ``ToTensor()``,
    ``Normalize(mean, std)`` with scalar mean/std), a ``DataLoader`` with ``--workers``
    worker processes (persistent; ``pin_memory`` + non-blocking copies on CUDA), and a
    plain fp32 step: ``model(x)``, cross-entropy, ``SGD(nesterov=True)`` with torch's
    default implementation -- no autocast, no ``channels_last``, no fused optimiser;

(b) **ferlib** -- the production code path: a :class:`ferlib.train.trainer.Trainer`
    built from the ``densenet-bc`` / ``wide-densenet-bc`` recipe, timed by calling the
    trainer's own ``train_epoch`` on a prepared dataset whose Training split holds
    exactly ``steps * batch_size`` images (so one "epoch" is one timed round of
    ``--steps`` full batches).  That is ``DeviceBatchSource`` (whole split on the device
    as uint8, per-pixel normalisation and one affine-grid augmentation per batch), and
    on CUDA bf16 autocast + ``channels_last`` + the fused SGD.

Same architecture (same seed, same init), same batch size, same augmentation
(densenet preset: 4-px-margin crop, flip, +-15 deg, resized to 42), same optimiser
hyper-parameters.  For each model the pipelines alternate in ``--rounds`` rounds
of ``--steps`` steps after ``--warmup`` steps each (the order flips every round, so
drift on a shared machine hits all), and the median images/s of each and the ratios
are reported.  Each pipeline's round runs in a **fresh process** (``--pipeline-worker``):
on a CPU, pipelines timed in one process slow each other down (``bench/cpu_paths.py``
measured fp32 at about 185 img/s alone and 106-139 after the bf16 paths had run in the
same process), so the one-process numbers measured the interference as much as the
pipelines; ``--same-process`` keeps that mode for comparison.  On CUDA the clock is read
after ``torch.cuda.synchronize()``.

Optional, CUDA-oriented (off by default; smoke-test them on a CPU with tiny settings):

* ``--time-to-accuracy``: wall time until PublicTest accuracy reaches ``--target``
  (checked after every epoch, capped at ``--max-epochs``) for each pipeline, on the
  whole Training split; the ferlib side runs ``Trainer.fit`` one epoch at a time.
* ``--full-run``: a complete run of the ``densenet-bc`` recipe, full profile
  (100 epochs), through :func:`ferlib.train.results.run_recipe`; the bar on one H100
  is < 5 min.

Output: a table on stdout and a JSON (``--out``, default
``results/bench_throughput_<device>.json``) with all settings, every round, and
provenance (git sha, device, library versions, wall time).

Usage::

    PYTHONPATH=. python bench/throughput.py --device cpu --steps 5 --rounds 2 --models densenet-bc
    PYTHONPATH=. python bench/throughput.py --device cpu ... --threads 1   # steadier on a shared CPU
    PYTHONPATH=. python bench/throughput.py --device cpu --models densenet-bc --compile   # + torch.compile
    PYTHONPATH=. python bench/throughput.py --device cuda                      # both models, 3 x 20 steps
    PYTHONPATH=. python bench/throughput.py --device cuda --time-to-accuracy --full-run
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/throughput.py` without PYTHONPATH=.
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

PIPELINES = ("conventional", "ferlib-fp32", "ferlib")
COMPILE_PIPELINE = "ferlib-compile"  # ferlib's default precision with the training forward under torch.compile
WORKER_PREFIX = "PIPELINE-WORKER-RESULT "
TTA_PIPELINES = ("conventional", "ferlib-fp32", "ferlib")  # ferlib = the default precision (bf16 where fast)
# |PublicTest(default) - PublicTest(fp32)| per epoch, same seed and steps: 2 points, about 2.4 binomial
# standard errors of one accuracy on 3,589 faces at 50 % (0.83 points) -- bf16 rounding changes the
# trajectory the way a different seed does, and early epochs swing by about a point between seeds.
BF16_ACCURACY_TOLERANCE = 0.02
DEFAULT_MODELS = "densenet-bc,wide-densenet-bc"
BASE_RECIPE = "densenet-bc"  # recipe whose settings a bare model name (e.g. tiny-densenet) borrows
H100_RATIO_BAR = 10.0
FULL_RUN_BAR_S = 300.0


# ---------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------

def _shared_data_dirs() -> list[Path]:
    """Where the project keeps real FER-2013 for CI and benchmarks (DESIGN.md §5)."""
    return [REPO.parent / "shared" / "data", REPO / "shared" / "data"]


def load_dataset(data_dir: str | None, synthetic: bool, synthetic_per_class: int):
    """FER-2013 from ``--data-dir`` / ``$FERLIB_DATA_DIR`` / ``../shared/data`` / ``./data``, else synthetic.

    Returns ``(dataset, how)`` where ``how`` says which was chosen and why.
    """
    from ferlib.data.discovery import DATA_ENV, load_fer2013
    from ferlib.data.synthetic import make_synthetic_faces

    if synthetic:
        return make_synthetic_faces(n_per_class=synthetic_per_class), "--synthetic"
    if data_dir is not None:
        return load_fer2013(data_dir), f"--data-dir {data_dir}"
    if os.environ.get(DATA_ENV):
        return load_fer2013(None), f"${DATA_ENV}={os.environ[DATA_ENV]}"
    for cand in _shared_data_dirs():
        if (cand / "fer2013" / "fer2013.npz.xz").is_file():
            return load_fer2013(cand), f"shared data folder {cand}"
    ds = load_fer2013(None, synthetic_per_class=synthetic_per_class)  # ./data, else synthetic with a notice
    return ds, "./data" if not ds.synthetic else "no FER-2013 found (synthetic fallback)"


def take(ds, n: int, seed: int):
    """``n`` rows of ``ds`` in a seeded random order, repeating rows if ``ds`` has fewer."""
    rng = np.random.default_rng(seed)
    reps = math.ceil(n / len(ds))
    idx = np.concatenate([rng.permutation(len(ds)) for _ in range(reps)])[:n]
    return ds.subset(idx)


class PILFaces(torch.utils.data.Dataset):
    """The conventional dataset: each uint8 48x48 row becomes a PIL image, then ``transform``.

    Like ``torchvision.datasets.FER2013``: PIL conversion per sample in ``__getitem__``.
    """

    def __init__(self, pixels: np.ndarray, labels: np.ndarray, transform):
        self.pixels, self.labels, self.transform = pixels, labels.astype(np.int64), transform

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i):
        from PIL import Image

        img = Image.fromarray(self.pixels[i])  # uint8 (48, 48) -> mode "L"
        return self.transform(img), int(self.labels[i])


def conventional_transforms(input_size: int, mean: float, std: float, train: bool = True):
    """torchvision equivalent of ferlib's ``densenet`` preset (crop margin 4, flip, +-15 deg, resize)."""
    from torchvision import transforms as T

    tail = [T.Resize(input_size), T.ToTensor(), T.Normalize((mean,), (std,))]
    if not train:
        return T.Compose(tail)
    return T.Compose([T.RandomCrop(48, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(15), *tail])


def conventional_loader(pixels, labels, *, input_size, batch_size, workers, device, train=True, seed=0,
                        norm=None):
    """DataLoader over :class:`PILFaces`; ``norm`` = (mean, std) in [0, 1] units, else fitted on ``pixels``."""
    mean, std = norm if norm is not None else (float(pixels.mean() / 255.0), float(pixels.std() / 255.0))
    ds = PILFaces(pixels, labels, conventional_transforms(input_size, mean, std, train=train))
    g = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=train, drop_last=False, num_workers=workers,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0, generator=g), (mean, std)


# ---------------------------------------------------------------------------------------
# The two pipelines
# ---------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_recipe(name: str, batch_size: int):
    """A recipe name (densenet-bc, ...) as is; a bare model name on the densenet-bc recipe."""
    from ferlib.models import MODELS
    from ferlib.train.recipes import RECIPES, get_recipe

    if name in RECIPES:
        recipe = get_recipe(name)
    elif name in MODELS:
        recipe = replace(get_recipe(BASE_RECIPE), name=f"{BASE_RECIPE}[model={name}]", model=name)
    else:
        raise SystemExit(f"unknown model/recipe {name!r}; recipes: {sorted(RECIPES)}; models: {sorted(MODELS)}")
    return replace(recipe, batch_size=batch_size)


class ConventionalStep:
    """Model + plain SGD + CE; ``run(n_steps)`` pulls batches from a persistent DataLoader."""

    def __init__(self, recipe, train, *, device, workers, seed):
        from ferlib.models import build_model

        self.device = device
        torch.manual_seed(seed)
        self.model = build_model(recipe.model, num_classes=7, in_channels=1, **recipe.model_kwargs).to(device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                         nesterov=recipe.nesterov, weight_decay=recipe.weight_decay)
        self.loss_fn = nn.CrossEntropyLoss()
        self.loader, self.norm = conventional_loader(train.pixels, train.labels, input_size=recipe.input_size,
                                                     batch_size=recipe.batch_size, workers=workers,
                                                     device=device, seed=seed)

    def step(self, x, y):
        x = x.to(self.device, non_blocking=True)
        y = y.to(self.device, non_blocking=True)
        loss = self.loss_fn(self.model(x), y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def epoch(self, max_steps: int | None = None) -> int:
        """One pass over the loader (or its first ``max_steps`` batches); returns images seen."""
        self.model.train()
        seen = 0
        for k, (x, y) in enumerate(self.loader):
            if max_steps is not None and k >= max_steps:
                break
            self.step(x, y)
            seen += y.shape[0]
        return seen


class FerlibStep:
    """The production trainer on a Training split of exactly ``steps * batch_size`` images."""

    def __init__(self, recipe, data, *, device, seed, run_dir, precision="auto", compile=False):
        from ferlib.train.build import build_run

        self.run = build_run(recipe, data, profile="full", seed=seed, device=device, run_dir=run_dir,
                             progress=False, checkpoint_interval_s=float("inf"), precision=precision,
                             compile=compile)
        self.trainer = self.run.trainer
        self.model = self.trainer.model

    def epoch(self, max_steps: int | None = None) -> int:
        """``Trainer.train_epoch`` over the whole prepared Training split (or its first ``max_steps``)."""
        from ferlib.train.callbacks import StopAfterSteps, StopTraining

        t = self.trainer
        s = t.state
        s.next_batch, seen0 = 0, s.seen
        stop = StopAfterSteps(s.steps + max_steps) if max_steps else None
        if stop:
            t.callbacks.append(stop)
        try:
            t.train_epoch()
        except StopTraining:  # the planned stop after max_steps (Ctrl-C propagates)
            pass
        finally:
            if stop:
                t.callbacks.remove(stop)
        s.epoch += 1
        return s.seen - seen0


def timed(fn, device) -> tuple[int, float]:
    sync(device)
    t0 = time.perf_counter()
    n = fn()
    sync(device)
    return n, time.perf_counter() - t0


def _bench_data(name: str, dataset, args):
    from ferlib.data.splits import PreparedData

    recipe = resolve_recipe(name, args.batch_size)
    n_train = args.steps * args.batch_size
    train = take(dataset.split("Training"), n_train, args.seed)
    val = take(dataset.split("PublicTest"), min(256, len(dataset.split("PublicTest"))), args.seed + 1)
    test = take(dataset.split("PrivateTest"), min(256, len(dataset.split("PrivateTest"))), args.seed + 2)
    data = PreparedData(train, val, test, class_names=tuple(dataset.class_names), synthetic=dataset.synthetic,
                        description={"source": dataset.source, "Training": len(train)})
    return recipe, n_train, train, data


def _build_runner(pipeline: str, recipe, train, data, args, device, run_dir: Path):
    if pipeline == "conventional":
        return ConventionalStep(recipe, train, device=device, workers=args.workers, seed=args.seed)
    precision = "fp32" if pipeline == "ferlib-fp32" else args.precision
    return FerlibStep(recipe, data, device=device, seed=args.seed, run_dir=run_dir / pipeline, precision=precision,
                      compile=pipeline == COMPILE_PIPELINE)


def pipelines(args) -> tuple:
    """The pipelines this run times: the three, and ``ferlib-compile`` with ``--compile``."""
    return PIPELINES + ((COMPILE_PIPELINE,) if args.compile else ())


def pipeline_worker(name: str, pipeline: str, dataset, args, device) -> dict:
    """``--pipeline-worker``: warm-up and one timed round of one pipeline, alone in this process."""
    recipe, n_train, train, data = _bench_data(name, dataset, args)
    run_dir = Path(tempfile.mkdtemp(prefix="ferlib-bench-"))
    try:
        runner = _build_runner(pipeline, recipe, train, data, args, device, run_dir)
        if args.warmup > 0:
            timed(lambda: runner.epoch(args.warmup), device)
        n, sec = timed(runner.epoch, device)
        info = {"images": n, "seconds": sec, "params": sum(p.numel() for p in runner.model.parameters())}
        if pipeline == "conventional":
            info["norm"] = list(runner.norm)
        else:
            info["precision"] = runner.trainer.precision
        del runner
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return info


def _worker_command(args, *extra: str) -> list[str]:
    """This script with this run's data, device and model settings, plus ``extra``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), *extra,
           "--device", args.device, "--precision", args.precision, "--batch-size", str(args.batch_size),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--workers", str(args.workers),
           "--seed", str(args.seed), "--synthetic-per-class", str(args.synthetic_per_class)]
    cmd += ["--synthetic"] if args.synthetic else []
    cmd += ["--data-dir", args.data_dir] if args.data_dir else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    return cmd


def _worker_result(cmd: list[str], what: str, log=None) -> dict:
    """Run a worker process; its ``WORKER_PREFIX`` line is the result, other lines go to ``log``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    result = None
    for line in proc.stdout:
        if line.startswith(WORKER_PREFIX):
            result = json.loads(line[len(WORKER_PREFIX):])
        elif log is not None and line.startswith("   "):  # the worker's progress lines
            log(line.rstrip())
    err = proc.stderr.read()
    if proc.wait() != 0 or result is None:
        raise RuntimeError(f"the {what} worker failed (exit {proc.returncode}):\n{err[-2000:]}")
    return result


def _run_worker(name: str, pipeline: str, args) -> dict:
    """One pipeline's round in a fresh Python process (same settings, ``--rounds 1``)."""
    return _worker_result(_worker_command(args, "--pipeline-worker", pipeline, "--models", name), pipeline)


def bench_model(name: str, dataset, args, device, log) -> dict:
    recipe, n_train, train, data = _bench_data(name, dataset, args)
    log(f"\n== {name}: model {recipe.model}, batch {recipe.batch_size}, input {recipe.input_size}x"
        f"{recipe.input_size}, {args.rounds} rounds x {args.steps} steps after {args.warmup} warm-up steps, "
        + ("all pipelines in this process" if args.same_process else "each pipeline and round in a fresh process"))
    timed_pipelines = pipelines(args)
    rounds = {p: [] for p in timed_pipelines}
    info = {}
    if args.same_process:
        run_dir = Path(tempfile.mkdtemp(prefix="ferlib-bench-"))
        try:
            runners = {p: _build_runner(p, recipe, train, data, args, device, run_dir) for p in timed_pipelines}
            for p in timed_pipelines if args.warmup > 0 else ():
                _, sec = timed(lambda p=p: runners[p].epoch(args.warmup), device)
                log(f"   warm-up {p:<12s} {args.warmup} steps in {sec:.2f} s")
            for r in range(args.rounds):
                for p in (timed_pipelines if r % 2 == 0 else timed_pipelines[::-1]):
                    n, sec = timed(runners[p].epoch, device)
                    rounds[p].append({"round": r, "images": n, "seconds": sec, "images_per_s": n / sec})
            info = {"params": sum(q.numel() for q in runners["ferlib"].model.parameters()),
                    "norm": list(runners["conventional"].norm), "precision": runners["ferlib"].trainer.precision}
            del runners  # shuts the DataLoader workers down and frees the models before the next one
            if device.type == "cuda":
                torch.cuda.empty_cache()
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    else:
        for r in range(args.rounds):
            for p in (timed_pipelines if r % 2 == 0 else timed_pipelines[::-1]):
                w = _run_worker(name, p, args)
                rounds[p].append({"round": r, "images": w["images"], "seconds": w["seconds"],
                                  "images_per_s": w["images"] / w["seconds"]})
                info.setdefault("params", w["params"])
                if "norm" in w:
                    info["norm"] = w["norm"]
                if p == "ferlib":
                    info["precision"] = w["precision"]
    for p in timed_pipelines:
        for x in rounds[p]:
            if x["images"] != n_train:
                raise RuntimeError(f"{p} round {x['round']} saw {x['images']} images, expected {n_train}")
            log(f"   round {x['round'] + 1}/{args.rounds} {p:<12s} {x['images']} images in {x['seconds']:.2f} s = "
                f"{x['images_per_s']:8.1f} img/s")
    out = {"model": recipe.model, "recipe": recipe.name, "params": info["params"], "batch_size": recipe.batch_size,
           "input_size": recipe.input_size, "images_per_round": n_train,
           "isolation": "one process" if args.same_process else "a fresh process per pipeline and round",
           "conventional_normalize": {"mean": info["norm"][0], "std": info["norm"][1]}}
    for p in timed_pipelines:
        ips = [x["images_per_s"] for x in rounds[p]]
        out[p] = {"images_per_s_median": statistics.median(ips), "images_per_s_rounds": ips, "rounds": rounds[p]}
    out["ferlib_precision"] = info["precision"]
    out["ratio_ferlib_over_conventional"] = (out["ferlib"]["images_per_s_median"]
                                             / out["conventional"]["images_per_s_median"])
    out["ratio_ferlib_over_ferlib_fp32"] = (out["ferlib"]["images_per_s_median"]
                                            / out["ferlib-fp32"]["images_per_s_median"])
    if COMPILE_PIPELINE in out:
        for base in ("conventional", "ferlib-fp32", "ferlib"):
            out[f"ratio_ferlib_compile_over_{base.replace('-', '_')}"] = (
                out[COMPILE_PIPELINE]["images_per_s_median"] / out[base]["images_per_s_median"])
    return out


# ---------------------------------------------------------------------------------------
# Time to accuracy
# ---------------------------------------------------------------------------------------

def _subset(split, per_class, seed):
    from ferlib.data.dataset import stratified_subset

    return stratified_subset(split, per_class, seed)


def tta_conventional(recipe, train, val, args, device, log) -> dict:
    from ferlib.train.schedules import build_schedule

    sync(device)
    t0 = time.perf_counter()
    runner = ConventionalStep(recipe, train, device=device, workers=args.workers, seed=args.seed)
    schedule = build_schedule(recipe.schedule, recipe, runner.optimizer, len(runner.loader))
    # evaluation: Resize + ToTensor + Normalize with the *training* mean/std; in the main process
    val_loader, _ = conventional_loader(val.pixels, val.labels, input_size=recipe.input_size, batch_size=256,
                                        workers=0, device=device, train=False, norm=runner.norm)
    history, reached = [], None
    for epoch in range(1, args.max_epochs + 1):
        runner.model.train()
        loss_sum = torch.zeros((), device=device, dtype=torch.float64)
        for x, y in runner.loader:
            loss_sum += runner.step(x, y).double() * y.shape[0]
        schedule.after_epoch(float(loss_sum) / len(train))
        runner.model.eval()
        correct = torch.zeros((), device=device, dtype=torch.int64)
        with torch.no_grad():
            for x, y in val_loader:
                pred = runner.model(x.to(device, non_blocking=True)).argmax(1)
                correct += (pred == y.to(device, non_blocking=True)).sum()
        acc = int(correct) / len(val)
        sync(device)
        history.append({"epoch": epoch, "val_accuracy": acc, "elapsed_s": time.perf_counter() - t0})
        log(f"   conventional epoch {epoch}: PublicTest acc {acc:.4f}  ({history[-1]['elapsed_s']:.1f} s)")
        if acc >= args.target:
            reached = epoch
            break
    return {"reached_target": reached is not None, "epochs": len(history), "target_epoch": reached,
            "seconds": history[-1]["elapsed_s"], "best_val_accuracy": max(h["val_accuracy"] for h in history),
            "history": history}


def tta_ferlib(recipe, data, args, device, log, precision=None) -> dict:
    from ferlib.train.build import build_run

    run_dir = Path(tempfile.mkdtemp(prefix="ferlib-bench-tta-"))
    try:
        sync(device)
        t0 = time.perf_counter()
        trainer = build_run(recipe, data, profile="full", seed=args.seed, device=device, run_dir=run_dir,
                            progress=False, epochs=args.max_epochs, precision=precision or args.precision).trainer
        label = "ferlib" if precision is None else f"ferlib-{precision}"
        history, reached = [], None
        for epoch in range(1, args.max_epochs + 1):
            trainer.epochs = epoch  # fit() trains up to self.epochs: one more epoch, then we check
            trainer.fit(resume=False)
            acc = trainer.state.history[-1]["val_accuracy"]
            sync(device)
            history.append({"epoch": epoch, "val_accuracy": acc, "train_loss": trainer.state.history[-1]["train_loss"],
                            "elapsed_s": time.perf_counter() - t0})
            log(f"   {label:<12s} epoch {epoch}: PublicTest acc {acc:.4f}  train loss "
                f"{history[-1]['train_loss']:.4f}  ({history[-1]['elapsed_s']:.1f} s)")
            if acc >= args.target:
                reached = epoch
                break
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    return {"reached_target": reached is not None, "epochs": len(history), "target_epoch": reached,
            "seconds": history[-1]["elapsed_s"], "best_val_accuracy": max(h["val_accuracy"] for h in history),
            "history": history}


def precision_quality(fp32: list, default: list) -> dict:
    """The default precision against fp32 over the same epochs (same seed, data order, augmentation):
    per-epoch train-loss and PublicTest differences, judged against ``BF16_ACCURACY_TOLERANCE``."""
    pairs = list(zip(fp32, default))
    rows = [{"epoch": a["epoch"], "train_loss_fp32": a["train_loss"], "train_loss_default": b["train_loss"],
             "val_accuracy_fp32": a["val_accuracy"], "val_accuracy_default": b["val_accuracy"]} for a, b in pairs]
    worst = max((abs(r["val_accuracy_default"] - r["val_accuracy_fp32"]) for r in rows), default=None)
    return {"epochs_compared": len(rows), "per_epoch": rows, "max_abs_val_accuracy_difference": worst,
            "tolerance": BF16_ACCURACY_TOLERANCE,
            "within_tolerance": None if worst is None else worst <= BF16_ACCURACY_TOLERANCE}


def _tta_data(name, dataset, args):
    from ferlib.data.splits import PreparedData

    recipe = resolve_recipe(name, args.batch_size)
    train = _subset(dataset.split("Training"), args.tta_train_per_class, args.seed)
    val = _subset(dataset.split("PublicTest"), args.tta_eval_per_class, args.seed + 1)
    test = _subset(dataset.split("PrivateTest"), args.tta_eval_per_class, args.seed + 2)  # never evaluated here
    data = PreparedData(train, val, test, class_names=tuple(dataset.class_names), synthetic=dataset.synthetic,
                        description={"source": dataset.source, "Training": len(train), "PublicTest": len(val)})
    return recipe, train, val, data


def tta_pipeline(pipeline, recipe, train, val, data, args, device, log) -> dict:
    """Time to ``--target`` of one pipeline (the clock starts when its model is built)."""
    if pipeline == "conventional":
        return tta_conventional(recipe, train, val, args, device, log)
    return tta_ferlib(recipe, data, args, device, log, precision="fp32" if pipeline == "ferlib-fp32" else None)


def time_to_accuracy(name, dataset, args, device, log) -> dict:
    """Each pipeline's time to ``--target``, one after the other, each in a fresh process (``--same-process``:
    all in this one, where the earlier ones slow the later ones down)."""
    recipe, train, val, data = _tta_data(name, dataset, args)
    log(f"\n== time to PublicTest accuracy >= {args.target} ({name}, Training {len(train)}, PublicTest "
        f"{len(val)}, at most {args.max_epochs} epochs; clock includes setup and per-epoch evaluation)")
    out = {"model": recipe.model, "recipe": recipe.name, "target": args.target, "max_epochs": args.max_epochs,
           "train_images": len(train), "val_images": len(val)}
    out["isolation"] = "one process" if args.same_process else "a fresh process per pipeline"
    for pipeline in TTA_PIPELINES:
        if args.same_process:
            out[pipeline] = tta_pipeline(pipeline, recipe, train, val, data, args, device, log)
        else:
            cmd = _worker_command(args, "--tta-worker", pipeline, "--tta-model", name, "--target", str(args.target),
                                  "--max-epochs", str(args.max_epochs))
            cmd += ["--tta-train-per-class", str(args.tta_train_per_class)] if args.tta_train_per_class else []
            cmd += ["--tta-eval-per-class", str(args.tta_eval_per_class)] if args.tta_eval_per_class else []
            out[pipeline] = _worker_result(cmd, f"time-to-accuracy {pipeline}", log)
    out["precision_quality"] = precision_quality(out["ferlib-fp32"]["history"], out["ferlib"]["history"])
    if out["conventional"]["reached_target"] and out["ferlib"]["reached_target"]:
        out["speedup"] = out["conventional"]["seconds"] / out["ferlib"]["seconds"]
    else:
        out["speedup"] = None
    return out


# ---------------------------------------------------------------------------------------
# Full 100-epoch run
# ---------------------------------------------------------------------------------------

def full_run(dataset, args, device, log) -> dict:
    from ferlib.train.recipes import get_recipe
    from ferlib.train.results import run_recipe

    recipe = get_recipe(args.full_run_recipe)
    if args.full_run_model:
        recipe = replace(recipe, name=f"{recipe.name}[model={args.full_run_model}]", model=args.full_run_model)
    epochs = args.full_run_epochs or recipe.full.epochs
    results_path = Path(args.full_run_results or REPO / "results" / f"bench_full_run_{recipe.name}_{device.type}.json")
    run_dir = Path(tempfile.mkdtemp(prefix="ferlib-bench-full-"))
    log(f"\n== full run: recipe {recipe.name}, profile full, {epochs} epochs, on {dataset.tag} -> {results_path}")
    try:
        sync(device)
        t0 = time.perf_counter()
        res = run_recipe(recipe, dataset=dataset, profile="full", device=device, seed=args.seed,
                         results_path=results_path, run_dir=run_dir, resume=False, progress=False,
                         epochs=epochs)
        sync(device)
        wall = time.perf_counter() - t0
        hist = res["history"]
        for h in hist:
            if h["epoch"] == 1 or h["epoch"] % 10 == 0 or h["epoch"] == len(hist):
                log(f"   epoch {h['epoch']:3d}: train loss {h['train_loss']:.4f}  PublicTest acc "
                    f"{h['val_accuracy']:.4f}  lr {h['lr']:.2g}  {h['train_seconds']:.1f} s")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    canonical = (args.full_run_recipe == "densenet-bc" and not args.full_run_model and epochs == 100
                 and not dataset.synthetic and device.type == "cuda")
    return {"recipe": recipe.name, "epochs": res["epochs_run"], "wall_s": wall,
            "train_seconds": res["train_seconds"], "train_images_per_s": res["train_images_per_s"],
            "PublicTest": res["metrics"]["PublicTest"]["accuracy"],
            "PrivateTest": res["metrics"]["PrivateTest"]["accuracy"], "selected_epoch": res["selected_epoch"],
            "results_file": str(results_path), "synthetic": dataset.synthetic,
            "bar_s": FULL_RUN_BAR_S, "canonical": canonical,
            "meets_bar": (wall < FULL_RUN_BAR_S) if canonical else None}


# ---------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--precision", default="auto", help="ferlib's precision: auto (default), fp32 or bf16")
    p.add_argument("--models", default=DEFAULT_MODELS,
                   help=f"comma-separated recipes or model names (default {DEFAULT_MODELS}); a bare model "
                        f"name such as tiny-densenet runs on the {BASE_RECIPE} recipe")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=20, help="training steps per timed round")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps per pipeline before the rounds")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds per pipeline (interleaved)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="DataLoader workers of the conventional pipeline (default min(4, cpu count))")
    p.add_argument("--data-dir", default=None, help="FER-2013 folder or file (else $FERLIB_DATA_DIR, "
                                                    "../shared/data, ./data, synthetic)")
    p.add_argument("--synthetic", action="store_true", help="use the embedded synthetic faces")
    p.add_argument("--synthetic-per-class", type=int, default=1000)
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads of the main process (default: torch's); on a shared CPU "
                        "--threads 1 makes the two pipelines' timings far less noisy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON path (default results/bench_throughput_<device>.json)")
    p.add_argument("--skip-throughput", action="store_true", help="only the optional measurements")
    p.add_argument("--same-process", action="store_true",
                   help="time all pipelines in this one process (they then slow each other down; the default "
                        "runs each pipeline's round in a fresh process)")
    p.add_argument("--compile", action="store_true",
                   help="also time ferlib with the training forward under torch.compile (compiles in the warm-up)")
    p.add_argument("--pipeline-worker", default=None, choices=PIPELINES + (COMPILE_PIPELINE,),
                   help=argparse.SUPPRESS)
    p.add_argument("--tta-worker", default=None, choices=TTA_PIPELINES, help=argparse.SUPPRESS)
    g = p.add_argument_group("time to accuracy (CUDA-oriented)")
    g.add_argument("--time-to-accuracy", action="store_true")
    g.add_argument("--target", type=float, default=0.65, help="PublicTest accuracy to reach (default 0.65)")
    g.add_argument("--max-epochs", type=int, default=30)
    g.add_argument("--tta-model", default=BASE_RECIPE, help=f"recipe or model (default {BASE_RECIPE})")
    g.add_argument("--tta-train-per-class", type=int, default=None, help="stratified subset (default: all)")
    g.add_argument("--tta-eval-per-class", type=int, default=None, help="stratified subset (default: all)")
    g = p.add_argument_group("full run (CUDA-oriented)")
    g.add_argument("--full-run", action="store_true")
    g.add_argument("--full-run-recipe", default="densenet-bc")
    g.add_argument("--full-run-epochs", type=int, default=None, help="default: the recipe's full budget (100)")
    g.add_argument("--full-run-model", default=None, help="swap the model (smoke tests only)")
    g.add_argument("--full-run-results", default=None,
                   help="results JSON of the run (default results/bench_full_run_<recipe>_<device>.json)")
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "rounds", "max_epochs"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.warmup < 0 or args.workers < 0:
        p.error("--warmup and --workers must be >= 0")
    return args


def _print_table(results, device, log) -> None:
    log(f"\nTraining throughput on {device} (images/s; median of rounds, then every round):")
    head = f"{'model':<18s} {'pipeline':<13s} {'median':>9s}   rounds"
    log(head)
    log("-" * max(len(head), 60))
    for r in results:
        for p in PIPELINES + (COMPILE_PIPELINE,) * (COMPILE_PIPELINE in r):
            rounds = ", ".join(f"{v:.1f}" for v in r[p]["images_per_s_rounds"])
            log(f"{r['model']:<18s} {p:<13s} {r[p]['images_per_s_median']:9.1f}   [{rounds}]")
        log(f"{r['model']:<18s} {'ratio':<13s} {r['ratio_ferlib_over_conventional']:8.2f}x   "
            f"ferlib ({r['ferlib_precision']}) / conventional")
        log(f"{r['model']:<18s} {'ratio':<13s} {r['ratio_ferlib_over_ferlib_fp32']:8.2f}x   "
            f"ferlib ({r['ferlib_precision']}) / ferlib fp32")
        if COMPILE_PIPELINE in r:
            log(f"{r['model']:<18s} {'ratio':<13s} {r['ratio_ferlib_compile_over_conventional']:8.2f}x   "
                f"ferlib compiled / conventional ({r['ratio_ferlib_compile_over_ferlib']:.2f}x ferlib eager)")


def main(argv=None) -> dict:
    args = parse_args(argv)
    from ferlib.provenance import device_info, record, write_json
    from ferlib.train.build import resolve_device

    started = time.time()
    t_start = time.perf_counter()
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")

    def log(msg=""):
        print(msg, flush=True)

    t_load = time.perf_counter()
    dataset, how = load_dataset(args.data_dir, args.synthetic, args.synthetic_per_class)
    load_s = time.perf_counter() - t_load
    log(f"data: {dataset.tag} -- {how}; splits {dataset.split_counts()}")
    if dataset.synthetic:
        log("      (SYNTHETIC faces: images/s does not depend on content, accuracies do)")

    if args.pipeline_worker:  # one round of one pipeline for the parent process: a result line, nothing else
        name = args.models.split(",")[0].strip()
        print(WORKER_PREFIX + json.dumps(pipeline_worker(name, args.pipeline_worker, dataset, args, device)),
              flush=True)
        return {}

    if args.tta_worker:  # one pipeline's time to accuracy for the parent process
        recipe, train, val, data = _tta_data(args.tta_model, dataset, args)
        result = tta_pipeline(args.tta_worker, recipe, train, val, data, args, device, log)
        print(WORKER_PREFIX + json.dumps(result), flush=True)
        return {}

    results = []
    if not args.skip_throughput:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            results.append(bench_model(name, dataset, args, device, log))
        _print_table(results, device, log)
        if device.type == "cuda":
            for r in results:
                log(f"bar (one H100: ferlib >= {H100_RATIO_BAR:.0f}x conventional), {r['model']}: "
                    f"{'met' if r['ratio_ferlib_over_conventional'] >= H100_RATIO_BAR else 'NOT met'} "
                    f"({r['ratio_ferlib_over_conventional']:.2f}x on {device_info(device)['device_name']})")
        else:
            log(f"note: on a CPU the conventional and ferlib-fp32 pipelines run the same fp32 model on the same "
                f"{torch.get_num_threads()} thread(s); ferlib's default adds bf16 autocast + channels_last where "
                f"the CPU has bf16 kernels.  On a shared CPU the rounds swing with the load.")

    tta = time_to_accuracy(args.tta_model, dataset, args, device, log) if args.time_to_accuracy else None
    if tta is not None:
        for p in TTA_PIPELINES:
            t = tta[p]
            log(f"time to accuracy {p:<12s}: "
                + (f"{t['seconds']:.1f} s ({t['target_epoch']} epochs)" if t["reached_target"]
                   else f"target not reached in {t['epochs']} epochs ({t['seconds']:.1f} s, "
                        f"best {t['best_val_accuracy']:.4f})"))
        if tta["speedup"] is not None:
            log(f"time to accuracy speed-up (conventional / ferlib): {tta['speedup']:.2f}x")
        q = tta["precision_quality"]
        if q["epochs_compared"]:
            log(f"default precision vs fp32 over {q['epochs_compared']} epochs: largest PublicTest difference "
                f"{q['max_abs_val_accuracy_difference']:.4f} (tolerance {q['tolerance']}): "
                f"{'within' if q['within_tolerance'] else 'OUTSIDE'} tolerance")

    full = full_run(dataset, args, device, log) if args.full_run else None
    if full is not None:
        verdict = ("bar met" if full["meets_bar"] else "bar NOT met") if full["canonical"] else \
            "not the canonical run (densenet-bc, 100 epochs, FER-2013, CUDA): bar not judged"
        log(f"full run {full['recipe']}: {full['epochs']} epochs in {full['wall_s']:.1f} s end to end "
            f"(training {full['train_seconds']:.1f} s), PublicTest {full['PublicTest']:.4f}, PrivateTest "
            f"{full['PrivateTest']:.4f}; bar < {FULL_RUN_BAR_S:.0f} s: {verdict}")

    out_path = Path(args.out) if args.out else REPO / "results" / f"bench_throughput_{device.type}.json"
    report = {
        "benchmark": "training throughput: ferlib trainer vs conventional PIL + DataLoader pipeline",
        "settings": {**vars(args), "device": str(device)},
        "data": {"tag": dataset.tag, "source": dataset.source, "format": dataset.format,
                 "synthetic": dataset.synthetic, "chosen_by": how, "splits": dataset.split_counts(),
                 "load_seconds": load_s},
        "pipelines": {
            "conventional": "Dataset of PIL images + torchvision RandomCrop(48, padding=4), RandomHorizontalFlip, "
                            "RandomRotation(15), Resize(42), ToTensor, Normalize(scalar mean, std); DataLoader "
                            f"(workers={args.workers}, persistent, pin_memory on CUDA); fp32 (torch defaults), "
                            "SGD nesterov (default implementation), CE; no autocast, no channels_last",
            "ferlib": "ferlib.train.trainer.Trainer.train_epoch: DeviceBatchSource (uint8 split on the device, "
                      "per-pixel normalisation, one affine-grid augmentation per batch); on CUDA bf16 autocast, "
                      "channels_last, fused SGD; on CPU bf16 autocast + channels_last where oneDNN has bf16 "
                      "kernels (else fp32), foreach SGD",
            "ferlib-fp32": "the same trainer with --precision fp32",
            "ferlib-compile": "ferlib with the training forward under torch.compile (inductor); only with --compile",
        },
        "throughput": results,
        "time_to_accuracy": tta,
        "full_run": full,
        "provenance": record(
            device, cpu_count=os.cpu_count(), cudnn_benchmark=torch.backends.cudnn.benchmark,
            cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            float32_matmul_precision=torch.get_float32_matmul_precision(),
            started=_dt.datetime.fromtimestamp(started, _dt.timezone.utc).isoformat(timespec="seconds"),
            wall_time_s=time.perf_counter() - t_start,
            command=" ".join(["python bench/throughput.py", *(argv if argv is not None else sys.argv[1:])])),
    }
    write_json(report, out_path)
    log(f"\nwrote {out_path} (wall time {report['provenance']['wall_time_s']:.1f} s)")
    return report


if __name__ == "__main__":
    main()
