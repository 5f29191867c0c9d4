"""What slows the light network's start?  One change at a time, on the same FER+ subset, same seed.

Chapter 08's 30-minute CPU runs of the light network (``light-base-*``) sit at the majority class
(neutral, 37 % of PublicTest) for their first five to eight epochs while the training loss creeps
down to the class prior's entropy.  This script trains ``light-base-sl``'s real pipeline
(:func:`ferlib.train.results.run_recipe`: the same data path, augmentation, schedule and
evaluation as a real row) on a subset of FER+ for a few epochs, once per *arm*, each arm changing
one thing:

* ``base``    -- the recipe as it is (bf16 autocast where the CPU has fast bf16 kernels);
* ``fp32``    -- float32 instead (does the precision slow learning?);
* ``noaug``   -- no augmentation (the ``none`` preset: resize only);
* ``nodrop``  -- the light network without its dropout (0.25 after each block, 0.5 before the output);
* ``lr10``    -- Adam at 10x the paper's learning rate (3e-3 instead of 3e-4).

Every arm keeps the seed, so the arms differ only by their change (two runs of one arm are
bitwise equal on a CPU).  The per-epoch training loss and PublicTest accuracy of each arm are
written to ``results/bench_light_net_start.json``; the class prior's entropy is recorded beside
them (a training loss at that level is what predicting the class frequencies alone gives).

    python bench/light_net_start.py                                  # the 5 arms, 6000 faces, 3 epochs (about 10 core-minutes)
    python bench/light_net_start.py --arms base,nodrop --threads 1   # some arms
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ARMS = ("base", "fp32", "noaug", "nodrop", "lr10")


def arm_recipe(recipe, arm: str):
    """(recipe, precision) of one arm: the recipe with one change."""
    if arm not in ARMS:
        raise SystemExit(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    if arm == "noaug":
        return replace(recipe, augment="none", augment_kwargs={}), "auto"
    if arm == "nodrop":
        return replace(recipe, model_kwargs={**recipe.model_kwargs, "dropout": (0.0, 0.0)}), "auto"
    if arm == "lr10":
        return replace(recipe, lr=10 * recipe.lr), "auto"
    return recipe, ("fp32" if arm == "fp32" else "auto")


def subset(dataset, sizes: dict, seed: int = 0):
    """The same random rows of each split for every arm (``sizes``: split -> number of faces)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    keep = np.zeros(len(dataset), bool)
    for split, n in sizes.items():
        rows = np.flatnonzero(dataset.usage == split)
        keep[rng.choice(rows, min(n, len(rows)), replace=False)] = True
    return dataset.subset(keep)


def prior_entropy(labels, num_classes: int) -> float:
    """Cross-entropy (nats) of predicting the class frequencies of ``labels`` for every face."""
    import numpy as np
    from scipy.stats import entropy

    return float(entropy(np.bincount(labels, minlength=num_classes)))  # natural log; counts are normalised


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default="light-base-sl")
    p.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated, from {', '.join(ARMS)}")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train", type=int, default=6000, help="Training faces")
    p.add_argument("--eval", type=int, default=1000, help="PublicTest faces")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=str(REPO / "results" / "bench_light_net_start.json"))
    args = p.parse_args(argv)

    import tempfile

    import numpy as np
    import torch

    from ferlib.data.ferplus import load_ferplus
    from ferlib.provenance import record, write_json
    from ferlib.train.recipes import get_recipe
    from ferlib.train.results import run_recipe

    if args.threads:
        torch.set_num_threads(args.threads)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    base = get_recipe(args.recipe)
    for arm in arms:
        arm_recipe(base, arm)  # an unknown arm stops before any training
    dataset = subset(load_ferplus(args.data_dir, verbose=False)[0],
                     {"Training": args.train, "PublicTest": args.eval, "PrivateTest": 100})
    train = dataset.split("Training")
    started = time.time()
    out = {"benchmark": "the light network's first epochs, one change per arm", "recipe": args.recipe,
           "epochs": args.epochs, "seed": 0, "data": {"tag": dataset.tag, "Training": len(train),
                                                      "PublicTest": int((dataset.usage == "PublicTest").sum())},
           "prior_entropy": prior_entropy(train.labels, len(dataset.class_names)),
           "majority_publictest": float(np.bincount(dataset.split("PublicTest").labels).max()
                                        / (dataset.usage == "PublicTest").sum()),
           "arms": {}}
    print(f"{args.recipe}: arms {', '.join(arms)}; {len(train)} Training faces, {args.epochs} epochs, "
          f"{torch.get_num_threads()} thread(s) [{dataset.tag}]; prior entropy {out['prior_entropy']:.3f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="light-net-start-") as scratch:
        for arm in arms:
            recipe, precision = arm_recipe(base, arm)
            t = time.time()
            r = run_recipe(recipe, dataset=dataset, profile="full", epochs=args.epochs, precision=precision,
                           progress=False, resume=False, results_path=Path(scratch) / f"{arm}.json",
                           run_dir=Path(scratch) / arm)
            out["arms"][arm] = {"precision": r["precision"], "lr": recipe.lr, "augment": recipe.augment,
                                "model_kwargs": recipe.model_kwargs, "seconds": time.time() - t,
                                "train_loss": [h["train_loss"] for h in r["history"]],
                                "publictest": [h["val_accuracy"] for h in r["history"]]}
            a = out["arms"][arm]
            print(f"  {arm:7s} train loss {' '.join(f'{x:.3f}' for x in a['train_loss'])}   PublicTest "
                  f"{' '.join(f'{x:.3f}' for x in a['publictest'])}   ({a['seconds']:.0f} s, {a['precision']})", flush=True)
    out["provenance"] = record("cpu", wall_time_s=time.time() - started, command=" ".join(["python", *sys.argv]))
    write_json(out, args.out)
    print(f"-> {args.out}")
    return out


if __name__ == "__main__":
    main()
