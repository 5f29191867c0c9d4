r"""Graders of lab 06 (ensembles): the weighted average, the DE objective, fitting the weights, flip TTA.

The student writes four functions (NumPy arrays in; a torch tensor returned is accepted):

* ``weighted_average(probs (M, N, K), weights (M,)) -> (N, K)``: the members' probabilities
  averaged with weights ``w_m >= 0`` of any scale, normalised to sum to 1 first
  (EmoNet §5: ``sum_m w_m p_m`` with ``sum_m w_m = 1``);
* ``ensemble_nll(weights (M,), probs, labels (N,)) -> float``: the objective differential
  evolution minimises, the mean of ``-log sum_m w_m p_m(y_i)`` with normalised weights;
* ``fit_weights(probs, labels, seed) -> (M,)``: ``probs`` and ``labels`` are dicts keyed by
  split; weights fitted with ``scipy.optimize.differential_evolution`` on **PublicTest**;
* ``flip_tta(model, x (B, C, H, W)) -> (B, K)``: the mean of the softmax of the batch and
  of its left-right mirror.

Each grader compares with ferlib's reference (:mod:`ferlib.evaluate.ensemble`,
:mod:`ferlib.evaluate.tta`) and, on a mismatch, names the usual mistake: weights not
normalised, argmax labels averaged instead of probabilities, the weights fitted on the
test split, the image flipped upside down (the vertical axis) instead of mirrored,
logits averaged instead of probabilities.

:func:`example_members` simulates four members with EmoNet Table 2's test accuracies,
for the lab to fit and compare with EmoNet Table 1's weights.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import nn

from ..evaluate import ensemble as ens
from .core import call_student, fail, grader, passed

__all__ = ["check_weighted_average", "check_ensemble_nll", "check_fit_weights", "check_flip_tta",
           "example_members", "EMONET_TABLE_1_WEIGHTS", "EMONET_TABLE_2_ACCURACY", "EMONET_MEMBERS"]

ATOL, RTOL = 1e-8, 1e-6
TTA_ATOL = 1e-6  # a float32 forward pass of the float64 model is still right
K = 7

# EmoNet's tables (paper constants, as printed): members, their test accuracy (Table 2, %) and learnt weights (Table 1)
EMONET_MEMBERS = ("Inception-ResNet v2 (pixels only)", "Inception-ResNet v2 (pixels + BOVW)",
                  "ResNet-50 (pixels only)", "ResNet-50 (pixels + BOVW)")
EMONET_TABLE_2_ACCURACY = (62.75, 64.55, 68.92, 70.97)
EMONET_TABLE_1_WEIGHTS = (0.146737, 0.210536, 0.285459, 0.357268)


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _close(got, want, atol=ATOL, rtol=RTOL) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, atol=atol, rtol=rtol, equal_nan=True))


def _diagnose(results, variants, default: str, atol: float = ATOL) -> str:
    """The hint of the first mistake that explains *every* answer."""
    for predict, why in variants:
        if all(_close(got, predict(*args), atol=atol) for args, got in results):
            return why
    return default


def _one_hot_votes(probs: np.ndarray) -> np.ndarray:
    return np.eye(probs.shape[2])[probs.argmax(2)]


# -- data ---------------------------------------------------------------------------------------------

def _members(rng, n: int, strengths, temperatures, rho: float = 0.5):
    """Simulated members: scores ``z = b_m e_y + noise`` (unit-variance noise, part of it shared).

    ``softmax(b_m z)`` is then the exact posterior of the class (a calibrated member);
    a temperature ``t_m`` divides those logits (t > 1: under-confident, t < 1: over-confident).
    """
    y = rng.integers(0, K, n)
    shared = rng.normal(size=(n, K))
    own = rng.normal(size=(len(strengths), n, K))
    noise = np.sqrt(rho) * shared[None] + np.sqrt(1 - rho) * own
    b = np.asarray(strengths)[:, None, None]
    z = b * np.eye(K)[y][None] + noise
    logits = b * z / np.asarray(temperatures)[:, None, None]  # b z: the calibrated posterior; t != 1 miscalibrates
    z = logits - logits.max(2, keepdims=True)
    p = np.exp(z)
    return p / p.sum(2, keepdims=True), y


def _strength_for(accuracy: float, rho: float = 0.5, n: int = 20000) -> float:
    """The logit margin that gives a member ``accuracy`` (bisection on a fixed draw)."""
    rng = np.random.default_rng(12345)
    y = np.zeros(n, dtype=np.int64)
    noise = rng.normal(size=(n, K))
    lo, hi = 0.0, 10.0
    for _ in range(50):
        mid = (lo + hi) / 2
        acc = float(((mid * np.eye(K)[y] + noise).argmax(1) == y).mean())
        lo, hi = (mid, hi) if acc < accuracy else (lo, mid)
    return (lo + hi) / 2


def example_members(n_per_split: int = 1000, seed: int = 0, accuracies=EMONET_TABLE_2_ACCURACY,
                    temperatures=(1.0, 1.0, 1.0, 1.0), rho: float = 0.5):
    """Simulated probabilities of four members on PublicTest and PrivateTest (a teaching stand-in).

    Each member's accuracy is set to EmoNet Table 2's (in %); their errors share noise
    (``rho``: the part of the noise all members see, so errors are correlated, as real
    members' are).  With the default temperatures of 1 every member is calibrated; other
    temperatures make them over- (t < 1) or under-confident (t > 1).  Returns
    ``(names, probs, labels)`` with ``probs[split]`` of shape (4, n, 7).
    """
    strengths = [_strength_for(a / 100.0) for a in accuracies]
    rng = np.random.default_rng(seed)
    probs, labels = {}, {}
    for split in (ens.FIT_SPLIT, ens.TEST_SPLIT):
        probs[split], labels[split] = _members(rng, n_per_split, strengths, temperatures, rho)
    return list(EMONET_MEMBERS[:len(accuracies)]), probs, labels


def _cases(seed: int = 0):
    """(probs (M, N, K), raw weights (M,), labels (N,)): different M, weights of any scale, one zero weight."""
    rng = np.random.default_rng(seed)
    out = []
    for m, n, weights in ((3, 12, [2.0, 1.0, 1.0]), (2, 9, [0.3, 0.9]), (4, 15, [0.5, 0.0, 1.5, 3.0]),
                          (3, 10, [0.2, 0.5, 0.3])):
        probs = rng.dirichlet(np.ones(K) * 0.7, size=(m, n))
        out.append((probs, np.array(weights), rng.integers(0, K, n)))
    return out


# -- graders -------------------------------------------------------------------------------------------

@grader(points=1)
def check_weighted_average(fn: Callable) -> None:
    """``fn(probs (M, N, K), weights (M,)) -> (N, K)``: ``sum_m w_m p_m`` with the weights normalised to sum to 1."""
    name = "weighted average (EmoNet §5)"
    results = []
    for probs, w, _ in _cases(0):
        p0, w0 = probs.copy(), w.copy()
        got = _np(call_student(fn, p0, w0))
        if not (np.array_equal(p0, probs) and np.array_equal(w0, w)):
            fail(name, "your function changed its inputs in place", "compute new arrays: w = weights / weights.sum()")
        if got.shape != probs.shape[1:]:
            if got.shape == probs.shape:
                hint = "you weighted the members but did not add them up: sum over the members (axis 0)"
            elif got.shape == (probs.shape[0], probs.shape[2]):
                hint = "that is one row per member: you summed over the samples; sum over the members (axis 0)"
            else:
                hint = "one row per sample, one column per class: (N, K)"
            fail(name, f"shape {got.shape}, expected {probs.shape[1:]}", hint)
        results.append(((probs, w), got))
    worst = 0.0
    for (probs, w), got in results:
        want = ens.weighted_probabilities(probs, ens.simplex_weights(w))
        if _close(got, want):
            worst = max(worst, float(np.abs(got - want).max()))
            continue
        hint = _diagnose(results, [
            (lambda p, w: np.tensordot(w, p, axes=1),
             "weights not normalised: divide the weights by their sum first, so that each row of the result "
             "is a probability distribution (sums to 1)"),
            (lambda p, w: np.tensordot(ens.simplex_weights(w), _one_hot_votes(p), axes=1),
             "you averaged argmax labels (one-hot votes) instead of probabilities: weight each member's whole "
             "probability row, probs[m], not np.eye(K)[probs[m].argmax(1)]"),
            (lambda p, w: np.tensordot(w, _one_hot_votes(p), axes=1),
             "you averaged argmax labels (one-hot votes) instead of probabilities, and the weights are not normalised"),
            (lambda p, w: p.mean(0), "the weights are ignored: that is the plain mean of the members"),
            (lambda p, w: _geometric(p, ens.simplex_weights(w)),
             "you averaged log-probabilities (a geometric mean); EmoNet's ensemble averages the probabilities"),
        ], "w = weights / weights.sum(), then sum over m of w[m] * probs[m]: np.tensordot(w, probs, axes=1)")
        rows = got.sum(1)
        fail(name, f"weights {w.tolist()}: max abs difference {np.abs(got - want).max():.3g} (tolerance "
                   f"atol={ATOL:g}); your rows sum to {rows.min():.4g}..{rows.max():.4g}", hint)
    passed(name, f"{len(results)} ensembles (2-4 members, weights of any scale, a zero weight) agree with "
                 f"sum_m w_m p_m, w normalised (max abs difference {worst:.2g}, tolerance atol={ATOL:g}, "
                 f"rtol={RTOL:g})")


def _geometric(p, w):
    g = np.exp(np.tensordot(w, np.log(np.maximum(p, 1e-300)), axes=1))
    return g / g.sum(1, keepdims=True)


@grader(points=1)
def check_ensemble_nll(fn: Callable) -> None:
    """``fn(weights (M,), probs (M, N, K), labels (N,)) -> float``: mean ``-log sum_m w_m p_m(y_i)``, w normalised."""
    name = "DE objective: ensemble NLL"
    results = []
    for probs, w, y in _cases(1):
        got = _np(call_student(fn, w.copy(), probs.copy(), y.copy()))
        if got.size != 1:
            fail(name, f"returned an array of shape {got.shape}, expected one number",
                 "differential evolution minimises a single number: average -log p(true class) over the samples")
        results.append(((w, probs, y), got.reshape(())))
    worst = 0.0
    for (w, probs, y), got in results:
        want = ens.ensemble_objective(w, probs, y, "nll")
        if _close(got, want):
            worst = max(worst, abs(float(got) - want))
            continue
        true = lambda p, y: p[:, np.arange(len(y)), y]  # noqa: E731  (M, N)
        hint = _diagnose(results, [
            (lambda w, p, y: -np.log(w @ true(p, y)).mean(),
             "weights not normalised: differential evolution hands you raw weights in [0, 1]; divide them by "
             "their sum before averaging (else a larger scale looks like a higher likelihood)"),
            (lambda w, p, y: (ens.simplex_weights(w) @ -np.log(true(p, y))).mean(),
             "that is the weighted mean of the members' NLLs; the objective is the NLL of the *averaged* "
             "probabilities: -log(sum_m w_m p_m(y)), the log outside the sum"),
            (lambda w, p, y: -np.log(ens.simplex_weights(w) @ true(p, y)).sum(),
             "you summed over the samples; use the mean, so the objective does not grow with N"),
            (lambda w, p, y: np.log(ens.simplex_weights(w) @ true(p, y)).mean(),
             "wrong sign: the negative log-likelihood is -log p; minimising log p would make the ensemble wrong"),
            (lambda w, p, y: -np.log(np.maximum(ens.simplex_weights(w) @ true(_one_hot_votes(p), y),
                                                ens.PROB_FLOOR)).mean(),
             "you averaged argmax labels (one-hot votes) instead of probabilities"),
            (lambda w, p, y: float((ens.weighted_probabilities(p, ens.simplex_weights(w)).argmax(1) != y).mean()),
             "that is the error rate; this objective is the negative log-likelihood (the error is piecewise "
             "constant in the weights: see chapter 06)"),
        ], "w = weights / weights.sum(); p_true = sum_m w[m] * probs[m, i, labels[i]]; return -mean(log(p_true))")
        fail(name, f"weights {w.tolist()}: got {float(got):.6g}, expected {want:.6g}", hint)
    passed(name, f"{len(results)} cases agree with mean -log sum_m w_m p_m(y), w normalised "
                 f"(max abs difference {worst:.2g}, tolerance atol={ATOL:g}, rtol={RTOL:g})")


class _SplitDict(dict):
    """A dict that remembers which splits were read (to name a fit on the test split)."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


def _fit_case(seed: int = 7, n: int = 300):
    """PublicTest favours member 0, PrivateTest member 2: weights reveal where they were fitted."""
    rng = np.random.default_rng(seed)
    probs, labels = {}, {}
    for split, good in ((ens.FIT_SPLIT, 0), (ens.TEST_SPLIT, 2)):
        y = rng.integers(0, K, n)
        members = rng.dirichlet(np.ones(K), size=(3, n))
        sharp = np.full((n, K), 0.35 / (K - 1))
        sharp[np.arange(n), y] = 0.65
        members[good] = sharp
        members[1] = 0.5 * members[1] + 0.5 * sharp  # a middling member
        probs[split], labels[split] = members, y
    return probs, labels


@grader(points=2)
def check_fit_weights(fn: Callable) -> None:
    """``fn(probs: {split: (M, N, K)}, labels: {split: (N,)}, seed) -> (M,)``: DE weights fitted on PublicTest."""
    name = "fit the weights with DE on PublicTest"
    probs, labels = _fit_case()
    tracked_p, tracked_y = _SplitDict(probs), _SplitDict(labels)
    got = _np(call_student(fn, tracked_p, tracked_y, 0)).ravel()
    m = probs[ens.FIT_SPLIT].shape[0]
    if got.shape != (m,) or not np.isfinite(got).all():
        fail(name, f"returned shape {got.shape}, expected ({m},) finite weights", "one weight per member")
    if (got < -1e-9).any():
        fail(name, f"negative weight {got.min():.3g}", "search raw weights in the box [0, 1]^M: bounds=[(0, 1)] * M")
    if not np.isclose(got.sum(), 1.0, atol=1e-6):
        fail(name, f"weights not normalised: they sum to {got.sum():.6g}",
             "differential evolution returns the raw vector result.x; return result.x / result.x.sum()")
    touched_test = ens.TEST_SPLIT in (tracked_p.read | tracked_y.read)
    fit = {s: ens.ensemble_objective(got, probs[s], labels[s]) for s in probs}
    best = {s: ens.ensemble_objective(ens.differential_evolution_weights(probs[s], labels[s], split=ens.FIT_SPLIT,
                                                                           seed=0), probs[s], labels[s])
            for s in probs}
    slack = 0.01
    if fit[ens.FIT_SPLIT] > best[ens.FIT_SPLIT] + slack:
        on_test = fit[ens.TEST_SPLIT] <= best[ens.TEST_SPLIT] + slack
        hint = ("fitting on the test split: these weights minimise the NLL on PrivateTest. Fit on "
                "probs['PublicTest'] (the validation split) and only report PrivateTest -- weights fitted on the "
                "split they are scored on make its accuracy optimistic" if on_test or touched_test else
                "minimise your ensemble_nll on probs['PublicTest'] with differential_evolution(ensemble_nll, "
                "bounds=[(0, 1)] * M, args=(probs['PublicTest'], labels['PublicTest']), rng=seed), then normalise")
        fail(name, f"PublicTest NLL {fit[ens.FIT_SPLIT]:.4f} at your weights {np.round(got, 3).tolist()}, but "
                   f"{best[ens.FIT_SPLIT]:.4f} is reachable (tolerance {slack})", hint)
    if touched_test:
        fail(name, "your function read PrivateTest",
             "fitting on the test split, even in part, leaks it: fit on probs['PublicTest'] only; "
             "PrivateTest is for reporting after the weights are fixed")
    passed(name, f"weights {np.round(got, 3).tolist()} (>= 0, sum 1); PublicTest NLL {fit[ens.FIT_SPLIT]:.4f} "
                 f"vs the optimum {best[ens.FIT_SPLIT]:.4f} (tolerance {slack}); PrivateTest not read")


class _Lopsided(nn.Module):
    """Not mirror-invariant: a linear map of the flattened image (then a second, nonlinear one)."""

    def __init__(self, pixels: int, classes: int = 5, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w1 = nn.Parameter(torch.randn(pixels, 16, generator=g, dtype=torch.float64) / pixels ** 0.5)
        self.w2 = nn.Parameter(torch.randn(16, classes, generator=g, dtype=torch.float64))

    def forward(self, x):
        return torch.tanh(x.flatten(1) @ self.w1) @ self.w2 * 2.0


def _sm(model, v):
    return torch.softmax(model(v), 1)


def _reference_flip_tta(model, x):
    with torch.no_grad():
        return (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(-1)), 1)) / 2


@grader(points=1)
def check_flip_tta(fn: Callable) -> None:
    """``fn(model, x (B, C, H, W)) -> (B, K)``: the mean of softmax(model(x)) and softmax(model(x mirrored))."""
    name = "flip test-time augmentation"
    g = torch.Generator().manual_seed(3)
    results = []
    for seed, (b, h, w) in enumerate(((6, 8, 8), (3, 6, 10), (5, 7, 7))):
        model = _Lopsided(h * w, seed=seed)
        x = torch.randn(b, 1, h, w, generator=g, dtype=torch.float64)
        x0 = x.clone()
        got = _np(call_student(fn, model, x0))
        if not torch.equal(x0, x):
            fail(name, "your function changed the batch in place", "x.flip(-1) returns a new tensor; keep x as it is")
        if got.shape != (b, 5):
            fail(name, f"shape {got.shape}, expected {(b, 5)}", "one row of class probabilities per image: (B, K)")
        results.append(((model, x), got))
    worst = 0.0
    for (model, x), got in results:
        want = _reference_flip_tta(model, x).numpy()
        if _close(got, want, atol=TTA_ATOL):
            worst = max(worst, float(np.abs(got - want).max()))
            continue
        with torch.no_grad():
            variants = [
                (lambda model, x: ((_sm(model, x) + _sm(model, x.flip(-2))) / 2).numpy(),
                 "you flipped the vertical axis (dim -2): that turns the face upside down. A mirror image swaps "
                 "left and right, the width axis: x.flip(-1) (or x.flip(3))"),
                (lambda model, x: ((_sm(model, x) + _sm(model, x.flip(-1, -2))) / 2).numpy(),
                 "you flipped both axes (a 180-degree rotation); mirror only the width axis: x.flip(-1)"),
                (lambda model, x: ((_sm(model, x) + _sm(model, x.transpose(-1, -2))) / 2).numpy(),
                 "you transposed the image (rows become columns): that is not a mirror image; use x.flip(-1)"),
                (lambda model, x: ((_sm(model, x) + _sm(model, x.flip(0))) / 2).numpy(),
                 "you reversed the order of the batch (dim 0), not the image: x.flip(-1)"),
                (lambda model, x: torch.softmax((model(x) + model(x.flip(-1))) / 2, 1).numpy(),
                 "you averaged the logits and then applied softmax; average the probabilities: the softmax of "
                 "each view first"),
                (lambda model, x: (torch.eye(5, dtype=torch.float64)[_sm(model, x).argmax(1)]
                                   + torch.eye(5, dtype=torch.float64)[_sm(model, x.flip(-1)).argmax(1)]).numpy() / 2,
                 "you averaged argmax labels (one-hot votes) instead of probabilities"),
                (lambda model, x: _sm(model, x).numpy(),
                 "that is the plain prediction: add the mirrored view and average"),
                (lambda model, x: _sm(model, x.flip(-1)).numpy(),
                 "only the mirrored view: average it with the plain one"),
                (lambda model, x: (_sm(model, x) + _sm(model, x.flip(-1))).numpy(),
                 "divide the sum of the two views by 2"),
            ]
            hint = _diagnose(results, variants, "(softmax(model(x), 1) + softmax(model(x.flip(-1)), 1)) / 2",
                             atol=TTA_ATOL)
        fail(name, f"max abs difference {np.abs(got - want).max():.3g} (tolerance atol={TTA_ATOL:g})", hint)
    # a mirror-symmetric face: flip TTA must change nothing
    model, _ = results[0][0]
    half = torch.randn(4, 1, 8, 4, generator=g, dtype=torch.float64)
    sym = torch.cat([half, half.flip(-1)], -1)
    got = _np(call_student(fn, model, sym))
    with torch.no_grad():
        plain = torch.softmax(model(sym), 1).numpy()
    if not _close(got, plain, atol=TTA_ATOL):
        fail(name, "on a mirror-symmetric face your TTA differs from the plain prediction",
             "the mirror of a symmetric face is the same face: flip the width axis, x.flip(-1)")
    passed(name, f"{len(results)} batches agree with (softmax(x) + softmax(x mirrored)) / 2 (max abs difference "
                 f"{worst:.2g}, tolerance atol={TTA_ATOL:g}); a symmetric face keeps its plain prediction")
