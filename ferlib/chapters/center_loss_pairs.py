"""Pairs of runs that differ only in the loss -- softmax alone, and softmax + center loss.

Defined in chapter 03 (``notebooks/03_center_loss``).

Chapter 03 compares the deep features of such a pair (DenseNet-CL Fig. 6, t-SNE;
CL-ResNet50 Fig. 1, PCA) and their accuracies:

* :data:`CENTER_LOSS_PAIRS` -- the recipe pairs, in the order the chapter prefers them;
* :func:`real_checkpoint` / :func:`real_checkpoint_pair` -- the selected checkpoint
  (``best.pt``, epoch chosen on PublicTest) of real runs: a full-profile run, else a
  wall-clock-budget run;
* :func:`quick_pair_recipes` and :func:`train_quick_pair` -- when there is no real
  pair: two tiny DenseNet-BCs trained for seconds through the ordinary
  :func:`~ferlib.train.build.build_run` and :class:`~ferlib.train.trainer.Trainer`;
* :func:`pair_features` -- the deep features of each checkpoint, through
  :meth:`ferlib.train.checkpoint.LoadedModel.features` (the evaluation path);
* :func:`real_pair_results` -- the results files of a real pair, for the accuracy
  difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from ..train.checkpoint import load_model
from ..train.criteria import CenterLossConfig
from ..train.recipes import Budget, Recipe, smoke_recipe

__all__ = ["CENTER_LOSS_PAIRS", "PAIR_LABELS", "real_checkpoint", "real_checkpoint_pair", "quick_pair_recipes",
           "QuickPair", "train_quick_pair", "pair_features", "real_pair_results"]

#: (softmax only, softmax + center loss) recipe names, the chapter's first choice first.
CENTER_LOSS_PAIRS = (("wide-densenet-bc", "wide-densenet-bc-center"), ("wide-densenet", "wide-densenet-center"),
                     ("densenet-bc", "densenet-bc-center"), ("densenet", "densenet-center"),
                     ("resnet50", "cl-resnet50"))
PAIR_LABELS = ("softmax only", "softmax + center loss")


def _real_runs(name: str) -> dict[str, object]:
    """``{budget: FoundRun}`` of the real-data seed-0 runs of recipe ``name`` that have a model (largest first)."""
    from ..runs import find_runs

    found = {}
    for run in find_runs(name, synthetic=False, seed=0):
        if run.checkpoint is not None and run.key.budget != "quick":
            found.setdefault(run.key.budget, run)
    return found


def real_checkpoint(name: str) -> Path | None:
    """The selected model of the real run of recipe ``name`` with the largest budget (the full profile,
    else the largest wall-clock budget): your run folder's ``best.pt``, else the kit's committed
    float16 copy ``models/NAME-<budget>.pt``; None when there is none."""
    found = _real_runs(name)
    return next(iter(found.values())).checkpoint if found else None


def real_checkpoint_pair() -> dict[str, Path] | None:
    """``{label: model}`` of the first pair of :data:`CENTER_LOSS_PAIRS` with both runs on the same budget
    (the largest such), labels ``"softmax only (NAME)"`` and ``"softmax + center loss (NAME)"``; None when
    there is none."""
    for pair in CENTER_LOSS_PAIRS:
        found = [_real_runs(name) for name in pair]
        common = [b for b in found[0] if b in found[1]]  # largest budget first
        if common:
            return {f"{label} ({name})": f[common[0]].checkpoint for label, name, f in zip(PAIR_LABELS, pair, found)}
    return None


def quick_pair_recipes() -> dict[str, Recipe]:
    """Two tiny DenseNet-BC recipes, identical except for the criterion (seconds on a CPU).

    To show an effect in seconds they use Adam at a constant 5e-3, no augmentation and
    a larger lambda than DenseNet-CL's -- not the paper's SGD, plateau schedule and
    separate center-term rate (those are the ``densenet-*-center`` recipes).
    """
    common = dict(paper="none", paper_results={}, augment="none", optimizer="adam", lr=5e-3, schedule="constant",
                  batch_size=64, quick=Budget(epochs=4, train_per_class=120, eval_per_class=40),
                  full=Budget(epochs=4, train_per_class=120, eval_per_class=40))
    return {
        PAIR_LABELS[0]: smoke_recipe(name="ch03-softmax", row="chapter 03 pair: tiny DenseNet-BC, softmax", **common),
        PAIR_LABELS[1]: smoke_recipe(name="ch03-center", row="chapter 03 pair: tiny DenseNet-BC, + center loss",
                                     criterion=CenterLossConfig(lambda_=0.1, alpha=0.5), **common),
    }


@dataclass
class QuickPair:
    """What :func:`train_quick_pair` made: the selected checkpoints, the epoch histories, the data subsets."""

    checkpoints: dict  # {label: best.pt}
    histories: dict  # {label: [epoch records]}
    data: object  # the PreparedData both runs trained and were evaluated on


def train_quick_pair(dataset, workdir: str | Path, *, recipes: Mapping[str, Recipe] | None = None, seed: int = 0,
                     device="cpu", threads: int | None = 1) -> QuickPair:
    """Train each recipe's quick budget on ``dataset`` into ``workdir/<recipe>``, on the same subsets.

    The subsets follow the first recipe's quick budget (the pair's recipes share it).
    ``threads``: torch threads while training (tiny convolutions run fastest on one).
    """
    from ..data.splits import prepare_splits
    from ..train.build import build_run
    from ..train.precision import torch_threads

    recipes = dict(recipes or quick_pair_recipes())
    budget = next(iter(recipes.values())).quick
    data = prepare_splits(dataset, budget.train_per_class, budget.eval_per_class, seed=seed)
    checkpoints, histories = {}, {}
    with torch_threads(threads):
        for label, recipe in recipes.items():
            run_dir = Path(workdir) / recipe.name
            run = build_run(recipe, data, profile="quick", seed=seed, device=device, run_dir=run_dir,
                            progress=False, precision="fp32")
            state = run.trainer.fit(resume=False)
            checkpoints[label], histories[label] = run_dir / "best.pt", list(state.history)
    return QuickPair(checkpoints, histories, data)


def pair_features(checkpoints: Mapping[str, str | Path], train, test, *, device="cpu") -> dict[str, dict]:
    """Deep features and accuracy of each checkpoint on two :class:`~ferlib.data.dataset.FERDataset` s.

    Returns ``{label: {"Training": (features, labels), "PrivateTest": (features, labels),
    "accuracy": PrivateTest accuracy}}`` (``train`` is the first set, ``test`` the second),
    computed by :class:`~ferlib.train.checkpoint.LoadedModel` exactly as evaluation does.
    """
    out = {}
    for label, path in checkpoints.items():
        loaded = load_model(path, device=device)
        logits, test_features = loaded.predict_outputs(test.pixels)
        out[label] = {"Training": (loaded.features(train.pixels), np.asarray(train.labels)),
                      "PrivateTest": (test_features.numpy(), np.asarray(test.labels)),
                      "accuracy": float((logits.argmax(1).numpy() == np.asarray(test.labels)).mean())}
    return out


def real_pair_results(base: str):
    """``(softmax results, center-loss results)`` of the same kind of real run of ``base`` and
    ``base-center`` -- the full-profile pair, else the wall-clock-budget pair on the same budget
    with the largest budget -- or None."""
    from ..runs import find_runs

    def by_budget(name):
        out = {}
        for run in find_runs(name, synthetic=False, seed=0):
            if run.key.budget != "quick" and (results := run.results()) is not None:
                out.setdefault(run.key.budget, results)
        return out

    plain, center = by_budget(base), by_budget(f"{base}-center")
    common = [b for b in plain if b in center]
    return (plain[common[0]], center[common[0]]) if common else None
