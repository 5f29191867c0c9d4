"""Does the default precision keep training quality?  fp32 against it over the same steps, several seeds.

For each seed the same recipe is trained twice on the same data order and augmentation -- once at
``--precision fp32``, once at ferlib's default (bf16 autocast + ``channels_last`` on a CPU with bf16
kernels, detected) -- for ``--epochs`` epochs under a one-epoch warm-up and a cosine that reaches 0
at the last step.  The last epoch's PublicTest accuracy is therefore that of a settled model,
not a snapshot taken at the peak learning rate, where two runs of the *same* precision and
different seeds differ by several points (``bench/throughput.py``'s two-epoch comparison was of
that kind).

Judged against ``BF16_ACCURACY_TOLERANCE`` (bench/throughput.py, 2 points of PublicTest accuracy):
the mean over seeds of (default - fp32) final PublicTest accuracy, beside the seed-to-seed spread
of fp32 itself, which is the noise any precision change has to be compared with.  Train-loss
curves are compared epoch by epoch.  Writes ``results/bench_precision_quality.json``.

    python bench/precision_quality.py                                     # densenet-bc, 4 epochs, seeds 0,1
    python bench/precision_quality.py --train-per-class 100 --epochs 2    # a minute
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for p in (REPO, REPO / "bench"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import torch  # noqa: E402

from throughput import BF16_ACCURACY_TOLERANCE, _subset, load_dataset  # noqa: E402


def train_once(recipe, data, *, precision: str, seed: int, epochs: int, log) -> dict:
    """``epochs`` epochs of ``recipe`` at ``precision`` under warm-up + cosine to 0; the epoch records."""
    from ferlib.train.build import build_run

    run_dir = Path(tempfile.mkdtemp(prefix="ferlib-bench-precision-"))
    try:
        t0 = time.perf_counter()
        run = build_run(replace(recipe, schedule="warmup-cosine"), data, profile="full", seed=seed, device="cpu",
                        run_dir=run_dir, precision=precision, epochs=epochs, progress=False,
                        checkpoint_interval_s=float("inf"))
        trainer = run.trainer
        trainer.schedule_total_steps(epochs * len(trainer.train_source))
        trainer.fit(resume=False)
        history = [{k: h[k] for k in ("epoch", "train_loss", "val_accuracy", "val_loss", "lr", "images_per_s")}
                   for h in trainer.state.history]
        for h in history:
            log(f"   seed {seed} {trainer.precision:<5s} epoch {h['epoch']}: train loss {h['train_loss']:.4f}  "
                f"PublicTest {h['val_accuracy']:.4f}  ({h['images_per_s']:.0f} img/s)")
        return {"precision": trainer.precision, "seed": seed, "history": history,
                "final_val_accuracy": history[-1]["val_accuracy"], "seconds": time.perf_counter() - t0}
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def compare(runs: list[dict], tolerance: float = BF16_ACCURACY_TOLERANCE) -> dict:
    """Per-seed and mean differences (default - fp32) of final PublicTest accuracy and train loss,
    the fp32 seed-to-seed spread, and whether the mean difference is within ``tolerance``."""
    by = {(r["precision"] == "fp32", r["seed"]): r for r in runs}
    seeds = sorted({r["seed"] for r in runs})
    per_seed = []
    for s in seeds:
        a, b = by[(True, s)], by[(False, s)]
        per_seed.append({"seed": s, "val_accuracy_fp32": a["final_val_accuracy"],
                         "val_accuracy_default": b["final_val_accuracy"],
                         "difference": b["final_val_accuracy"] - a["final_val_accuracy"],
                         "train_loss_relative_difference": [
                             (y["train_loss"] - x["train_loss"]) / x["train_loss"]
                             for x, y in zip(a["history"], b["history"])]})
    mean_diff = statistics.mean(p["difference"] for p in per_seed)
    fp32_final = [by[(True, s)]["final_val_accuracy"] for s in seeds]
    default_final = [by[(False, s)]["final_val_accuracy"] for s in seeds]
    return {"per_seed": per_seed, "mean_difference": mean_diff,
            "fp32_seed_spread": max(fp32_final) - min(fp32_final) if len(seeds) > 1 else None,
            "default_seed_spread": max(default_final) - min(default_final) if len(seeds) > 1 else None,
            "tolerance": tolerance, "within_tolerance": abs(mean_diff) <= tolerance}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="densenet-bc")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--train-per-class", type=int, default=None, help="Training faces per class (default: all)")
    p.add_argument("--eval-per-class", type=int, default=None, help="PublicTest faces per class (default: all)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--synthetic", action="store_true", help="use the embedded synthetic faces")
    p.add_argument("--synthetic-per-class", type=int, default=200)
    p.add_argument("--out", default=str(REPO / "results" / "bench_precision_quality.json"))
    args = p.parse_args(argv)

    from ferlib.data.splits import PreparedData
    from ferlib.train.precision import resolve_precision
    from ferlib.train.recipes import RECIPES
    from ferlib.provenance import record, write_json

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.recipe not in RECIPES:
        raise SystemExit(f"unknown recipe {args.recipe!r}; known: {', '.join(sorted(RECIPES))}")
    default = resolve_precision("auto", torch.device("cpu"))
    if default == "fp32":
        raise SystemExit("this CPU has no fast bf16 kernels, so the default precision is fp32: nothing to compare")
    recipe = RECIPES[args.recipe]
    dataset, tag = load_dataset(args.data_dir, args.synthetic, args.synthetic_per_class)
    train = _subset(dataset.split("Training"), args.train_per_class, 0)
    val = _subset(dataset.split("PublicTest"), args.eval_per_class, 1)
    test = _subset(dataset.split("PrivateTest"), args.eval_per_class, 2)  # never evaluated here
    data = PreparedData(train, val, test, class_names=tuple(dataset.class_names), synthetic=dataset.synthetic,
                        description={"source": dataset.source, "Training": len(train), "PublicTest": len(val)})
    started = time.time()

    def log(msg=""):
        print(msg, flush=True)

    log(f"{args.recipe}: {args.epochs} epochs (warm-up + cosine to 0), Training {len(train)}, PublicTest "
        f"{len(val)}, {tag}; fp32 vs {default}; {torch.get_num_threads()} thread(s)")
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        for precision in ("fp32", "auto"):
            runs.append(train_once(recipe, data, precision=precision, seed=seed, epochs=args.epochs, log=log))
    verdict = compare(runs)
    spread = verdict["fp32_seed_spread"]
    log(f"\nfinal PublicTest, default - fp32, mean over seeds: {100 * verdict['mean_difference']:+.2f} points "
        f"(tolerance ±{100 * verdict['tolerance']:.0f}: {'within' if verdict['within_tolerance'] else 'OUTSIDE'}); "
        + (f"fp32 seed-to-seed spread {100 * spread:.2f} points" if spread is not None else "one seed"))
    out = {"benchmark": "training quality: default precision vs fp32 over the same steps",
           "recipe": args.recipe, "epochs": args.epochs, "schedule": "warmup-cosine to 0 at the last step",
           "default_precision": default, "data": {"tag": tag, "Training": len(train), "PublicTest": len(val)},
           "runs": runs, "comparison": verdict,
           "provenance": record("cpu", wall_time_s=time.time() - started, command=" ".join(["python", *sys.argv]))}
    write_json(out, args.out)
    log(f"-> {args.out}")
    return out


if __name__ == "__main__":
    main()
