"""Graders of lab 07 (transfer learning): freezing a pretrained block, standardising the BOVW input, and the
ensemble's weights fitted on PublicTest and scored on PrivateTest.

The student writes

* ``freeze(model)``: freeze EmoNet's conv block ``model.conv_block`` for the first phase (EmoNet §5) --
  no gradients for any of its parameters, **and** its BatchNorm layers kept in evaluation mode (the
  pretrained running statistics used, never updated), even after ``model.train()``, which a trainer
  calls at the start of every epoch.  The head (``model.dense``, ``model.classifier``) still trains.
* ``standardise_bovw(train_bovw, x) -> (M, D)``: ``x`` standardised column by column with the
  **Training** vectors' mean and (population) standard deviation, the standard deviation floored at
  :data:`EPS` so a column that does not vary gives 0, not NaN (:meth:`ferlib.models.emonet.EmoNetFusion.
  fit_side_inputs`).
* ``ensemble_report(probs, labels, fit_weights) -> dict``: ``probs[split]`` (M, N, K) and ``labels[split]``
  for Training, PublicTest and PrivateTest; fit the weights with ``fit_weights(p, y, split)`` on
  **PublicTest**, choose the best single member on PublicTest too, and score PrivateTest once:
  ``{"weights", "de", "mean", "best_single"}`` (accuracies as fractions).

Each grader runs the student's function on small cases, compares with ferlib's reference and, on a
mismatch, names the mistake: BatchNorm left in training mode, an ``eval()`` undone by ``model.train()``,
only some parameters frozen, the head frozen too; a standard deviation without its floor, the
statistics of the split being standardised, the sample standard deviation; weights fitted on
PrivateTest or Training, PublicTest reported, the best member chosen on PrivateTest.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..evaluate import ensemble as ens
from .core import call_student, fail, grader, passed

__all__ = ["check_freeze", "check_standardise_bovw", "check_ensemble_report", "reference_standardise_bovw",
           "ensemble_case", "EPS"]

EPS = 1e-6  # ferlib.models.emonet's floor on the BOVW columns' standard deviation
SPLITS = ("Training", ens.FIT_SPLIT, ens.TEST_SPLIT)
K = 7


# -- Exercise 1: freezing ---------------------------------------------------------------------------------
class _TinyFusion(nn.Module):
    """EmoNet's layout at a tiny cost: ``conv_block`` (convolutions + BatchNorm) -> ``dense`` -> ``classifier``."""

    def __init__(self):
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                        nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dense = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.5))
        self.classifier = nn.Linear(32, K)

    def forward(self, x, bovw=None):
        return self.classifier(self.dense(self.conv_block(x)))


def _freeze_models():
    """(description, model): the tiny stand-in and ferlib's EmoNetFusion on EfficientNet-Lite0 (random init)."""
    from ..models.emonet import EmoNetFusion

    torch.manual_seed(0)
    tiny = _TinyFusion()
    torch.manual_seed(0)
    emonet = EmoNetFusion(backbone="efficientnet-lite0", weights="none")
    return [("a small two-input network", tiny), ("EmoNetFusion (EfficientNet-Lite0 block)", emonet)]


def _state(module: nn.Module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _is_statistic(key: str) -> bool:
    return "running_" in key or "num_batches_tracked" in key


def _train_step(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 3, 32, 32, generator=g), torch.randint(0, K, (8,), generator=g)
    model.train()  # what a trainer calls at the start of every epoch
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _batchnorms(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@grader(points=2)
def check_freeze(fn: Callable) -> None:
    """``fn(model)`` freezes ``model.conv_block``: no gradients, BatchNorm in evaluation mode even after ``model.train()``."""
    name = "freeze the conv block"
    for what, model in _freeze_models():
        block = model.conv_block
        call_student(fn, model)
        eval_right_after = not any(m.training for m in _batchnorms(block))
        model.train()
        eval_after_train = not any(m.training for m in _batchnorms(block))
        trainable = [k for k, p in block.named_parameters() if p.requires_grad]
        n_block = len(list(block.parameters()))
        if trainable:
            fail(name, f"on {what}: {len(trainable)} of the block's {n_block} parameter tensors still require gradients "
                       f"(e.g. conv_block.{trainable[0]})",
                 "freeze every parameter of model.conv_block, BatchNorm's weight and bias included: "
                 "for p in model.conv_block.parameters(): p.requires_grad_(False)")
        head = [k for k, p in model.named_parameters() if not k.startswith("conv_block.") and not p.requires_grad]
        if head:
            fail(name, f"on {what}: the head's {head[0]} no longer requires gradients",
                 "freeze model.conv_block only: the dense and softmax layers are what the frozen phase trains")
        before = _state(model)
        _train_step(model, seed=1)
        model.eval()
        model.train()  # a second epoch's start
        _train_step(model, seed=2)
        after = _state(model)
        moved = [k for k in before if k.startswith("conv_block.") and not torch.equal(before[k], after[k])]
        if moved:
            stats = [k for k in moved if _is_statistic(k)]
            if not eval_right_after:
                hint = ("BatchNorm is left in training mode: it normalises with each batch's statistics and updates "
                        "its running mean and variance on every forward pass, gradients or not. Keep the block in "
                        "evaluation mode while frozen (Keras does so for a BatchNorm with trainable=False)")
            elif not eval_after_train:
                hint = ("the block was put in evaluation mode once, but model.train() -- which the trainer calls at "
                        "every epoch -- put it back into training mode. Make the block's train() keep it in "
                        "evaluation mode: replace model.conv_block.train by a function that always calls "
                        "nn.Module.train(model.conv_block, False)")
            else:
                hint = "nothing of the frozen block may change in a training step: no gradients, evaluation mode"
            fail(name, f"on {what}: two training steps changed {len(moved)} of the block's tensors "
                       f"({len(stats)} BatchNorm statistics, e.g. {moved[0]})", hint)
        head_moved = [k for k in before if not k.startswith("conv_block.") and not torch.equal(before[k], after[k])]
        if not head_moved:
            fail(name, f"on {what}: a training step did not change the head", "the head (model.dense, model.classifier) "
                                                                             "must still train")
        model.eval()  # evaluation mode still reachable, and the model still runs
        with torch.no_grad():
            model(torch.zeros(2, 3, 32, 32))
    passed(name, "2 networks: every block parameter without gradient, two train() steps leave every block tensor "
                 "(weights and BatchNorm statistics) bit-identical, and the head trains")


# -- Exercise 2: the BOVW standardisation ---------------------------------------------------------------------
def reference_standardise_bovw(train_bovw, x, eps: float = EPS) -> np.ndarray:
    """``(x - mean) / max(std, eps)`` with Training's column mean and population std (EmoNetFusion.fit_side_inputs)."""
    t = np.asarray(train_bovw, dtype=np.float64)
    return (np.asarray(x, dtype=np.float64) - t.mean(0)) / np.maximum(t.std(0), eps)


def _bovw_case(seed: int = 0, n: int = 300, m: int = 40, d: int = 2728):
    """Training-like and test-like vectors: HOG-like columns in [0, 1], landmark-like columns in pixels, one
    constant column (7), and a test split drawn from another distribution than Training."""
    rng = np.random.default_rng(seed)
    hog = d - 136

    def draw(k, shift):
        v = np.empty((k, d))
        v[:, :hog] = np.clip(rng.beta(2, 5, size=(k, hog)) + shift, 0, 1)
        v[:, hog:] = rng.normal(24 + 10 * shift, 6, size=(k, d - hog))
        v[:, 7] = 0.25
        return v.astype(np.float32)

    return draw(n, 0.0), draw(m, 0.1)


def _close(a, b, atol=1e-5, rtol=1e-5) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


@grader(points=1)
def check_standardise_bovw(fn: Callable) -> None:
    """``fn(train_bovw (N, D), x (M, D)) -> (M, D)``: ``x`` standardised with Training's statistics, std floored."""
    name = "standardise BOVW with Training's statistics"
    train, x = _bovw_case()
    train_copy, x_copy = train.copy(), x.copy()
    got = call_student(fn, train, x)
    got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
    if not (np.array_equal(train, train_copy) and np.array_equal(x, x_copy)):
        fail(name, "your function changed its inputs in place", "return a new array; leave train_bovw and x as they are")
    want = reference_standardise_bovw(train, x)
    if got.shape != want.shape:
        fail(name, f"shape {got.shape}, expected {want.shape}", "one standardised row per row of x, every column kept")
    got = got.astype(np.float64)
    plus_eps = (x - train.astype(np.float64).mean(0)) / (train.astype(np.float64).std(0) + EPS)
    if _close(got, want) or _close(got, plus_eps):
        alone = np.asarray(call_student(fn, train, x[:1]), dtype=np.float64)
        if _close(alone, want[:1]) or _close(alone, plus_eps[:1]):
            passed(name, f"{x.shape[0]} vectors of {x.shape[1]:,} values agree with (x - mean) / max(std, {EPS:g}) of "
                         f"Training, a constant column gives 0 (tolerance atol=1e-05, rtol=1e-05)")
            return
        fail(name, "one vector standardised alone differs from the same vector in a batch",
             "the statistics must be Training's, fixed before any test face is seen, never those of x")
    t64 = train.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        variants = [
            ((x - t64.mean(0)) / t64.std(0),
             "a column that does not vary over Training has std 0: floor it, np.maximum(std, 1e-6), so that column "
             "standardises to 0 instead of NaN"),
            ((x - x.mean(0)) / np.maximum(x.std(0), EPS),
             "you used the statistics of x, the split being standardised: use Training's mean and std, fixed before "
             "any test face is seen (a test split's own statistics leak it, and one face alone has std 0)"),
            ((x - t64.mean(0)) / np.maximum(t64.std(0, ddof=1), EPS),
             "use the population standard deviation (np.std's default ddof=0), as EmoNetFusion.fit_side_inputs does"),
            ((x - t64.mean()) / np.maximum(t64.std(), EPS),
             "standardise column by column: mean and std over the faces (axis 0), one pair per column, not one "
             "mean and std for the whole array"),
            ((x - t64.mean(0)) / np.maximum(t64.std(), EPS),
             "standardise column by column: mean and std over the faces (axis 0), one pair per column"),
            ((x - t64.mean()) / np.maximum(t64.std(0), EPS),
             "subtract each column's own mean (axis 0), not the mean of the whole array"),
        ]
    for variant, hint in variants:
        if _close(got, variant):
            break
    else:
        hint = "z = (x - train.mean(axis=0)) / np.maximum(train.std(axis=0), 1e-6)"
    bad = ~np.isclose(got, want, atol=1e-5, rtol=1e-5)
    where = np.argwhere(bad)[0] if bad.any() else (0, 0)
    fail(name, f"{int(bad.sum())} of {bad.size:,} values differ; e.g. row {where[0]}, column {where[1]}: "
               f"{got[tuple(where)]:.4g}, expected {want[tuple(where)]:.4g}", hint)


# -- Exercise 3: the ensemble, fitted on PublicTest and scored on PrivateTest ----------------------------------------
def ensemble_case(seed: int = 3, n: int = 400):
    """Simulated members on the three splits: overfitted on Training (member 3 perfect there), member 0 best on
    PublicTest, member 2 best on PrivateTest -- so where weights are fitted and a best member is chosen shows.

    Returns ``(probs, labels)``: ``probs[split]`` (4, n, 7), ``labels[split]`` (n,).
    """
    rng = np.random.default_rng(seed)
    strengths = {"Training": (3.0, 3.0, 3.0, 6.0), ens.FIT_SPLIT: (1.7, 1.2, 0.9, 0.5),
                 ens.TEST_SPLIT: (0.9, 1.2, 1.7, 0.5)}
    probs, labels = {}, {}
    for split in SPLITS:
        b = np.asarray(strengths[split])[:, None, None]
        y = rng.integers(0, K, n)
        noise = np.sqrt(0.6) * rng.normal(size=(1, n, K)) + np.sqrt(0.4) * rng.normal(size=(len(b), n, K))  # shared part
        z = b * (b * np.eye(K)[y][None] + noise)
        z -= z.max(2, keepdims=True)
        p = np.exp(z)
        probs[split], labels[split] = p / p.sum(2, keepdims=True), y
    return probs, labels


def _accuracy(p2d: np.ndarray, y: np.ndarray) -> float:
    return float((p2d.argmax(1) == y).mean())


class _Fitter:
    """``fit_weights(p, y, split)`` for the student: DE weights (seed 0), recording which split's arrays it was given.

    It never raises on the test split (ferlib's own function would): the grader names that mistake afterwards."""

    def __init__(self, probs, labels):
        self.probs, self.labels, self.calls, self._memo = probs, labels, [], {}

    def which(self, p) -> str:
        p = np.asarray(p)
        for split, q in self.probs.items():
            if p.shape == q.shape and np.array_equal(p, q):
                return split
        return "other"

    def __call__(self, p, y, split=None):
        given = self.which(p)
        self.calls.append((given, split))
        key = given if given != "other" else id(p)
        if key not in self._memo:
            self._memo[key] = ens.differential_evolution_weights(np.asarray(p, dtype=np.float64), np.asarray(y),
                                                                 split=ens.FIT_SPLIT, seed=0)
        return self._memo[key].copy()


def _number(name: str, out: dict, key: str) -> float:
    try:
        v = float(out[key])
    except (KeyError, TypeError, ValueError):
        v = None
    if v is None or not np.isfinite(v):
        fail(name, f"the result has no number under {key!r}",
             'return {"weights": ..., "de": ..., "mean": ..., "best_single": ...}')
    if v > 1.0 + 1e-9:
        fail(name, f"{key} = {v:g}", "give accuracies as fractions in [0, 1], not percentages")
    return v


@grader(points=2)
def check_ensemble_report(fn: Callable) -> None:
    """``fn(probs, labels, fit_weights) -> {"weights", "de", "mean", "best_single"}``: fitted and chosen on PublicTest,
    PrivateTest scored."""
    name = "ensemble weights on PublicTest, PrivateTest scored"
    probs, labels = ensemble_case()
    fitter = _Fitter(probs, labels)
    out = call_student(fn, {s: p.copy() for s, p in probs.items()}, {s: y.copy() for s, y in labels.items()}, fitter)
    if not isinstance(out, dict):
        fail(name, f"returned {type(out).__name__}", 'return a dict {"weights": ..., "de": ..., "mean": ..., '
                                                    '"best_single": ...}')
    if "weights" not in out:
        fail(name, "the result has no 'weights'", "return the weights fit_weights gave you under 'weights'")
    w = np.asarray(out["weights"], dtype=np.float64).ravel()
    m = probs[ens.FIT_SPLIT].shape[0]
    if w.shape != (m,) or not np.isfinite(w).all() or (w < -1e-9).any() or not np.isclose(w.sum(), 1.0, atol=1e-6):
        fail(name, f"weights {np.round(w, 4).tolist()}", f"{m} weights >= 0 summing to 1, as fit_weights returns them")
    if not fitter.calls:
        fail(name, "fit_weights was never called", "fit the weights with fit_weights(probs[split], labels[split], split)")
    fitted_on = [given for given, _ in fitter.calls]
    if ens.TEST_SPLIT in fitted_on:
        fail(name, "fit_weights was given PrivateTest's probabilities",
             "fit on PublicTest, the validation split (EmoNet's 'held-out' data); PrivateTest is scored once, with "
             "the weights fixed -- weights fitted on the split they are scored on make its accuracy optimistic")
    if "Training" in fitted_on:
        fail(name, "fit_weights was given Training's probabilities",
             "the members have seen the Training faces: their probabilities there are overconfident, and the weights "
             "would favour the member that memorised most. Fit on PublicTest, which no member trained on")
    if set(fitted_on) != {ens.FIT_SPLIT}:
        fail(name, f"fit_weights was given other arrays ({fitted_on})", "pass probs['PublicTest'], labels['PublicTest']")
    want_w = fitter._memo[ens.FIT_SPLIT]
    if not np.allclose(w, want_w, atol=1e-6):
        fail(name, f"weights {np.round(w, 4).tolist()}, but fit_weights on PublicTest gave {np.round(want_w, 4).tolist()}",
             "return the weights fit_weights returned, unchanged")
    p_test, y_test = probs[ens.TEST_SPLIT], labels[ens.TEST_SPLIT]
    p_fit, y_fit = probs[ens.FIT_SPLIT], labels[ens.FIT_SPLIT]
    de, mean, single = (_number(name, out, k) for k in ("de", "mean", "best_single"))
    want_de = _accuracy(ens.weighted_probabilities(p_test, want_w), y_test)
    if abs(de - want_de) > 1e-9:
        on_fit = _accuracy(ens.weighted_probabilities(p_fit, want_w), y_fit)
        fail(name, f"de = {de:.4f}, expected PrivateTest's {want_de:.4f}",
             "you reported PublicTest, where the weights were fitted: score PrivateTest" if abs(de - on_fit) < 1e-9 else
             "de is the PrivateTest accuracy of sum_m w_m p_m (argmax of the weighted average)")
    want_mean = _accuracy(p_test.mean(0), y_test)
    if abs(mean - want_mean) > 1e-9:
        fail(name, f"mean = {mean:.4f}, expected {want_mean:.4f}",
             "mean is the PrivateTest accuracy of the plain average of the members' probabilities")
    member_fit = [_accuracy(p, y_fit) for p in p_fit]
    member_test = [_accuracy(p, y_test) for p in p_test]
    chosen = int(np.argmax(member_fit))
    if abs(single - member_test[chosen]) > 1e-9:
        hint = ("you chose the best member by its PrivateTest accuracy: choose it on PublicTest (member "
                f"{chosen}), then report its PrivateTest accuracy" if abs(single - max(member_test)) < 1e-9 else
                "you reported the best member's PublicTest accuracy: report its PrivateTest accuracy"
                if abs(single - max(member_fit)) < 1e-9 else
                "best_single: the member with the best PublicTest accuracy, scored on PrivateTest")
        fail(name, f"best_single = {single:.4f}, expected {member_test[chosen]:.4f}", hint)
    passed(name, f"weights {np.round(w, 3).tolist()} fitted on PublicTest only; PrivateTest: DE {de:.3f}, mean "
                 f"{mean:.3f}, best single member (chosen on PublicTest: {chosen}) {single:.3f}")
