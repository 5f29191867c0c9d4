r"""Graders of lab 04 (exponential triplet loss): the loss, its gradient Eq. 2-4, batch-hard mining.

The student writes three NumPy functions (float64 arrays in; a torch tensor returned is
accepted too):

* ``exponential_triplet_loss(anchor, positive, negative, alpha, gamma) -> float``:
  :math:`L = \sum_i e^{-\alpha \max\{d^-_i - d^+_i - \gamma,\, 0\}}` with squared
  distances -- DNNRL Eq. 1 with the sign that Eq. 2-4 and Fig. 3 require;
* ``exponential_triplet_grad(anchor, positive, negative, alpha, gamma) -> (dA, dP, dN)``:
  DNNRL Eq. 2-4 with :math:`\Delta = e^{-\alpha (d^- - d^+ - \gamma)}`, zero where
  :math:`d^- - d^+ \le \gamma`;
* ``batch_hard_triplets(embeddings, labels) -> (a_idx, p_idx, n_idx)``: per anchor the
  farthest positive and the nearest negative (Hermans et al. 2017), anchors without a
  positive or a negative skipped.

Each grader compares with ferlib's reference (:mod:`ferlib.losses.triplet`) and, on a
mismatch, tests the answer against the usual mistakes -- Eq. 1's printed sign, the
printed :math:`\Delta` without its parentheses, distances not squared, the anchor as its
own positive, a same-class negative, the easiest instead of the hardest triplet -- to
say which one it is.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..losses.triplet import (
    exponential_triplet_gradients,
    exponential_triplet_loss,
    exponential_triplet_loss_as_printed,
    mine_triplets,
)
from .core import call_student, fail, grader, passed

__all__ = ["check_exponential_triplet_loss", "check_exponential_triplet_grad", "check_batch_hard_triplets"]

ATOL, RTOL = 1e-8, 1e-6
PARAMS = ((0.2, 0.0), (0.5, 0.3), (0.7, 0.1), (0.3, 0.0))  # (alpha, gamma): never 1, so a lost alpha shows

# A worked example: d+ = 1, d- = 4, so r = 3; alpha = 0.2, gamma = 0 -> L = exp(-0.6)
EXAMPLE_ANCHOR = np.array([[0.0, 0.0]])
EXAMPLE_POSITIVE = np.array([[1.0, 0.0]])
EXAMPLE_NEGATIVE = np.array([[0.0, 2.0]])
EXAMPLE_LOSS = float(np.exp(-0.6))


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def _cases(seed: int):
    """(anchor, positive, negative, alpha, gamma): relative distances on both sides of gamma."""
    rng = np.random.default_rng(seed)
    out = [(EXAMPLE_ANCHOR, EXAMPLE_POSITIVE, EXAMPLE_NEGATIVE, 0.2, 0.0)]
    for alpha, gamma in PARAMS:
        n, d = int(rng.integers(5, 9)), int(rng.integers(2, 5))
        a = rng.normal(size=(n, d))
        p = a + rng.normal(size=(n, d)) * 0.8
        neg = a + rng.normal(size=(n, d)) * 1.0
        r = np.sum((a - neg) ** 2, 1) - np.sum((a - p) ** 2, 1)
        if not ((r > gamma + 1e-3).any() and (r < gamma - 1e-3).any()):  # make sure both branches occur
            neg[0], p[0] = p[0].copy(), neg[0].copy()
        out.append((a, p, neg, alpha, gamma))
    return out


def _fresh(*arrays):
    return tuple(x.copy() for x in arrays)


def _close(got, want) -> bool:
    want = np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, atol=ATOL, rtol=RTOL, equal_nan=True))


def _diagnose(results, variants, default: str) -> str:
    """The hint of the first mistake that explains *every* answer (one case can match by chance)."""
    for predict, why in variants:
        try:
            if all(_close_any(got, predict(*args)) for args, got in results):
                return why
        except (ValueError, FloatingPointError):
            continue
    return default


def _close_any(got, want) -> bool:
    if isinstance(got, tuple):
        return len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want))
    return _close(got, want)


# -- the loss and its usual mistakes (NumPy, float64) ----------------------------------------------

def _sq(x, y):
    return np.sum((x - y) ** 2, axis=1)


def _r(a, p, n):
    return _sq(a, n) - _sq(a, p)


def _loss(a, p, n, alpha, gamma):
    return float(exponential_triplet_loss(_t(a), _t(p), _t(n), alpha, gamma, reduction="sum"))


_LOSS_MISTAKES = [
    (lambda a, p, n, al, ga: float(exponential_triplet_loss_as_printed(_t(a), _t(p), _t(n), al, ga)),
     "that is Eq. 1 *as printed*, max{d+ - d- - gamma, 0}: it is 1 for every correctly ordered triplet and "
     "pushes the wrong ones the wrong way. Use the relative distance r = d- - d+ (Eq. 2-4: active iff r > gamma)"),
    (lambda a, p, n, al, ga: float(np.sum(np.exp(-al * np.maximum(
        np.linalg.norm(a - n, axis=1) - np.linalg.norm(a - p, axis=1) - ga, 0)))),
     "the distances must be squared: d+ = ||f(p) - f(p+)||^2, not ||f(p) - f(p+)||"),
    (lambda a, p, n, al, ga: _loss(a, p, n, al, ga) / len(a),
     "you averaged over the triplets; Eq. 1 (and this lab) sums them: L = sum_i L_i"),
    (lambda a, p, n, al, ga: float(np.sum(np.exp(-al * (_r(a, p, n) - ga)))),
     "the max{., 0} is missing: a triplet with d- - d+ <= gamma must contribute exactly e^0 = 1"),
    (lambda a, p, n, al, ga: float(np.sum(np.exp(-al * np.maximum(_r(a, p, n) + ga, 0)))),
     "gamma is subtracted from the relative distance: max{d- - d+ - gamma, 0}"),
    (lambda a, p, n, al, ga: float(np.sum(np.exp(-np.maximum(_r(a, p, n) - ga, 0)))),
     "alpha is missing: the exponent is -alpha * max{d- - d+ - gamma, 0}"),
    (lambda a, p, n, al, ga: float(np.sum(np.exp(al * np.maximum(_r(a, p, n) - ga, 0)))),
     "the exponent needs its minus sign: the loss must *decrease* as the triplet gets easier"),
]


@grader(points=1)
def check_exponential_triplet_loss(fn: Callable) -> None:
    """``fn(anchor, positive, negative, alpha, gamma) -> float``: DNNRL Eq. 1 (consistent sign), summed."""
    name = "exponential triplet loss (DNNRL Eq. 1)"
    results = []
    for a, p, n, alpha, gamma in _cases(0):
        got = _np(call_student(fn, *_fresh(a, p, n), alpha, gamma))
        if got.size != 1:
            fail(name, f"returned an array of shape {got.shape}, expected one number",
                  "sum the per-triplet terms L_i over all triplets: L = sum_i L_i")
        results.append(((a, p, n, alpha, gamma), got.reshape(())))
    worst = 0.0
    for (a, p, n, alpha, gamma), got in results:
        want = np.float64(_loss(a, p, n, alpha, gamma))
        if _close(got, want):
            worst = max(worst, float(abs(got - want)))
            continue
        hint = _diagnose(results, _LOSS_MISTAKES,
                         "per triplet: d+ and d- (squared), r = d- - d+, L_i = exp(-alpha * max(r - gamma, 0)); sum")
        fail(name, f"alpha={alpha}, gamma={gamma}: got {float(got):.6g}, expected {float(want):.6g}", hint)
    passed(name, f"{len(results)} batches (correctly and wrongly ordered triplets, gamma 0 to 0.3) agree "
                  f"(max abs difference {worst:.2g}, tolerance atol={ATOL:g}, rtol={RTOL:g}); "
                  f"worked example = exp(-0.6) = {EXAMPLE_LOSS:.6f}")


# -- the gradient (Eq. 2-4) and its usual mistakes ---------------------------------------------------

def _grads(a, p, n, alpha, gamma, delta=None, active=None, factor=2.0, alpha_front=None):
    """Eq. 2-4 with a given Delta / activity / constant (the keyword arguments plant mistakes)."""
    r = _r(a, p, n)
    delta = np.exp(-alpha * (r - gamma)) if delta is None else delta
    active = (r > gamma) if active is None else active
    c = np.where(active, -factor * (alpha if alpha_front is None else alpha_front) * delta, 0.0)[:, None]
    return c * (p - n), c * (a - p), c * (n - a)


def _autograd(loss_fn, a, p, n):
    ts = [_t(x).requires_grad_() for x in (a, p, n)]
    loss_fn(*ts).backward()
    return tuple(t.grad.numpy() for t in ts)


def _reference_grads(a, p, n, alpha, gamma):
    return tuple(g.numpy() for g in exponential_triplet_gradients(_t(a), _t(p), _t(n), alpha, gamma))


def _not_squared_loss(alpha, gamma):
    def f(a, p, n):
        r = (a - n).norm(dim=1) - (a - p).norm(dim=1)
        return torch.exp(-alpha * (r - gamma).clamp(min=0)).sum()
    return f


_GRAD_MISTAKES = [
    (lambda a, p, n, al, ga: _grads(a, p, n, al, ga, delta=np.exp(-al * _sq(a, n) - _sq(a, p) - ga)),
     "Delta without its parentheses (as printed): Delta = exp(-alpha * (d- - d+ - gamma)), "
     "not exp(-alpha * d- - d+ - gamma)"),
    (lambda a, p, n, al, ga: _grads(a, p, n, al, ga, delta=np.exp(-al * _sq(a, n)) - _sq(a, p) - ga),
     "Delta without its parentheses: Delta = exp(-alpha * (d- - d+ - gamma)), not exp(-alpha * d-) - d+ - gamma"),
    (lambda a, p, n, al, ga: _autograd(lambda x, y, z: exponential_triplet_loss_as_printed(x, y, z, al, ga), a, p, n),
     "that is the gradient of Eq. 1 *as printed*, which is zero for every correctly ordered triplet; "
     "Eq. 2-4 are non-zero exactly where d- - d+ > gamma"),
    (lambda a, p, n, al, ga: _grads(a, p, n, al, ga, active=np.ones(len(a), bool)),
     "the gradient must be 0 where d- - d+ <= gamma (there L_i = e^0 = 1 is constant)"),
    (lambda a, p, n, al, ga: tuple(-g for g in _reference_grads(a, p, n, al, ga)),
     "wrong sign: each gradient carries -2 alpha Delta; a gradient step must *increase* d- - d+"),
    (lambda a, p, n, al, ga: _grads(a, p, n, al, ga, factor=1.0),
     "the factor 2 from differentiating the squares is missing: -2 alpha Delta"),
    (lambda a, p, n, al, ga: _grads(a, p, n, al, ga, alpha_front=1.0),
     "alpha in front is missing: d/dr exp(-alpha (r - gamma)) = -alpha exp(...), so -2 alpha Delta"),
    (lambda a, p, n, al, ga: _autograd(_not_squared_loss(al, ga), a, p, n),
     "the distances must be squared: d+ = ||f(p) - f(p+)||^2"),
]


@grader(points=2)
def check_exponential_triplet_grad(fn: Callable) -> None:
    """``fn(anchor, positive, negative, alpha, gamma) -> (dA, dP, dN)``: DNNRL Eq. 2-4 of the summed loss.

    Compared with ferlib's numerical gradient of the loss (central differences, float64;
    the relative error and its tolerance are printed) and with Eq. 2-4.
    """
    from ..numerics import numerical_gradient, relative_error

    name = "exponential triplet gradient (DNNRL Eq. 2-4)"
    tol = 1e-7
    results = []
    for a, p, n, alpha, gamma in _cases(1):
        got = call_student(fn, *_fresh(a, p, n), alpha, gamma)
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            what = f"{len(got)} values" if isinstance(got, (tuple, list)) else type(got).__name__
            fail(name, f"returned {what}, expected a tuple of three arrays (dA, dP, dN)",
                  "return the three gradients w.r.t. f(p_i), f(p_i+), f(p_i-), each shaped like anchor")
        got = tuple(_np(g) for g in got)
        for g, what in zip(got, ("dA", "dP", "dN")):
            if g.shape != a.shape:
                fail(name, f"{what} has shape {g.shape}, expected {a.shape}",
                      "one row per triplet, one column per embedding dimension")
        results.append(((a, p, n, alpha, gamma), got))
    worst_rel = 0.0
    for (a, p, n, alpha, gamma), got in results:
        want = _reference_grads(a, p, n, alpha, gamma)
        rels = []
        for k in range(3):
            def f(x, k=k):
                args = [a, p, n]
                args[k] = x
                return _loss(*args, alpha, gamma)
            rels.append(relative_error(got[k], numerical_gradient(f, [a, p, n][k].copy()), elementwise=False))
        rel = max(rels)
        worst_rel = max(worst_rel, rel)
        if rel <= tol and _close_any(got, want):
            continue
        hint = _diagnose(results, _GRAD_MISTAKES,
                         "r = d- - d+; where r > gamma: Delta = exp(-alpha (r - gamma)), dA = -2 alpha Delta (p - n), "
                         "dP = -2 alpha Delta (a - p), dN = -2 alpha Delta (n - a); elsewhere 0")
        worst = ("dA", "dP", "dN")[int(np.argmax(rels))]
        fail(name, f"alpha={alpha}, gamma={gamma}: relative error {rel:.1e} of {worst} against the numerical "
                    f"gradient (expect < {tol:.0e} in float64)", hint)
    passed(name, f"relative error vs numerical gradient {worst_rel:.1e} (expect < {tol:.0e} in float64); "
                  f"equal to Eq. 2-4 within atol={ATOL:g}, zero where d- - d+ <= gamma")


# -- batch-hard mining --------------------------------------------------------------------------------

def _mining_cases(seed: int = 2):
    """(embeddings, labels): one class with a single sample (no positive) in every batch."""
    rng = np.random.default_rng(seed)
    out = []
    for b, classes in ((10, 3), (14, 4), (16, 3), (12, 5)):
        labels = rng.integers(0, classes, size=b)
        labels[0] = classes          # a lone sample: no positive
        labels[1:3] = 0              # class 0 has at least two
        out.append((rng.normal(size=(b, int(rng.integers(2, 5)))), labels.astype(np.int64)))
    out.append((rng.normal(size=(6, 2)), np.zeros(6, dtype=np.int64)))  # one class: no negatives at all
    return out


def _as_triplets(got) -> np.ndarray:
    a, p, n = (np.asarray(_np(x)).reshape(-1) for x in got)
    return np.stack([a, p, n], 1) if len(a) else np.zeros((0, 3))


def _sorted(trip: np.ndarray) -> np.ndarray:
    return trip[np.lexsort(trip.T[::-1])] if len(trip) else trip


def _reference_batch_hard(x, y):
    a, p, n = mine_triplets(_t(x), torch.as_tensor(y), "batch-hard")
    return np.stack([a.numpy(), p.numpy(), n.numpy()], 1).astype(np.float64)


def _variant_batch_hard(x, y, *, positive="farthest", negative="nearest", self_positive=False):
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    same = y[:, None] == y[None, :]
    pos = same if self_positive else same & ~np.eye(len(y), dtype=bool)
    neg = ~same
    rows = []
    for i in range(len(y)):
        if not pos[i].any() or not neg[i].any():
            continue
        dp = np.where(pos[i], d[i], np.nan)
        dn = np.where(neg[i], d[i], np.nan)
        rows.append((i, np.nanargmax(dp) if positive == "farthest" else np.nanargmin(dp),
                     np.nanargmin(dn) if negative == "nearest" else np.nanargmax(dn)))
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


_MINING_MISTAKES = [
    (lambda x, y: _variant_batch_hard(x, y, positive="nearest", negative="farthest"),
     "you picked the *easiest* triplet: batch-hard takes the farthest positive and the nearest negative"),
    (lambda x, y: _variant_batch_hard(x, y, positive="nearest"),
     "the hardest positive is the *farthest* one of the anchor's class (argmax), not the nearest"),
    (lambda x, y: _variant_batch_hard(x, y, negative="farthest"),
     "the hardest negative is the *nearest* one of another class (argmin), not the farthest"),
]


@grader(points=2)
def check_batch_hard_triplets(fn: Callable) -> None:
    """``fn(embeddings (B, d), labels (B,)) -> (a_idx, p_idx, n_idx)``: batch-hard mining."""
    name = "batch-hard mining"
    results = []
    for x, y in _mining_cases():
        got = call_student(fn, x.copy(), y.copy())
        if not isinstance(got, (tuple, list)) or len(got) != 3:
            what = f"{len(got)} values" if isinstance(got, (tuple, list)) else type(got).__name__
            fail(name, f"returned {what}, expected a tuple of three index arrays (a_idx, p_idx, n_idx)",
                  "return three integer arrays of the same length: anchors, positives, negatives")
        lengths = {np.asarray(_np(g)).reshape(-1).shape[0] for g in got}
        if len(lengths) != 1:
            fail(name, f"index arrays of different lengths {sorted(lengths)}", "one (a, p, n) per kept anchor")
        trip = _as_triplets(got)
        if len(trip) and not np.all(trip == np.round(trip)):
            fail(name, "returned non-integer indices", "return row indices into embeddings (np.argmax gives them)")
        ti = trip.astype(np.int64)
        if len(ti) and (ti.min() < 0 or ti.max() >= len(y)):
            fail(name, f"an index is outside 0..{len(y) - 1}", "return row indices into embeddings")
        if len(ti) and np.any(ti[:, 0] == ti[:, 1]):
            i = int(ti[ti[:, 0] == ti[:, 1]][0, 0])
            fail(name, f"anchor {i} is its own positive (labels {y.tolist()})",
                  "an anchor is never its own positive: mask the diagonal out of the same-class mask "
                  "(same & ~eye), and skip anchors whose class has no other sample")
        if len(ti) and np.any(y[ti[:, 2]] == y[ti[:, 0]]):
            i = int(ti[y[ti[:, 2]] == y[ti[:, 0]]][0, 0])
            fail(name, f"anchor {i} got a negative of its own class {int(y[i])}",
                  "negatives must come from *other* classes: use ~same, not ~eye")
        if len(ti) and np.any(y[ti[:, 1]] != y[ti[:, 0]]):
            fail(name, "a positive from another class", "positives share the anchor's label: labels[p] == labels[a]")
        results.append(((x, y), _sorted(trip)))
    for (x, y), got in results:
        want = _reference_batch_hard(x, y)
        if _close(got, want):
            continue
        if len(y) and len(np.unique(y)) == 1 and len(got):
            fail(name, "all samples share one class, so no anchor has a negative, but triplets were returned",
                  "skip anchors without a negative in the batch (and those without a positive)")
        missing = sorted(set(want[:, 0].astype(int)) - set(got[:, 0].astype(int)))
        extra = sorted(set(got[:, 0].astype(int)) - set(want[:, 0].astype(int)))
        hint = _diagnose([((x_, y_), _sorted(g)) for (x_, y_), g in results],
                         [(lambda x_, y_, f=f: _sorted(f(x_, y_)), why) for f, why in _MINING_MISTAKES], "")
        if not hint and (missing or extra):
            hint = (f"anchors {extra} should be skipped (no positive or no negative)" if extra else
                    f"anchors {missing} are missing: every anchor with a positive and a negative gives one triplet")
        if not hint:
            hint = ("per anchor: squared distances to all samples; the positive = argmax over same-class samples "
                    "other than the anchor, the negative = argmin over samples of other classes")
        bad = next((i for i in range(min(len(got), len(want))) if not np.array_equal(got[i], want[i])), None)
        detail = (f"anchor {int(want[bad, 0])} got (p, n) = ({int(got[bad, 1])}, {int(got[bad, 2])}), expected "
                  f"({int(want[bad, 1])}, {int(want[bad, 2])})" if bad is not None and got[bad, 0] == want[bad, 0]
                  else f"{len(got)} triplets, expected {len(want)}")
        fail(name, f"labels {y.tolist()}: {detail}", hint)
    passed(name, f"{len(results)} batches (a lone-class sample, a one-class batch): one triplet per valid anchor, "
                  "farthest positive and nearest negative, exactly as ferlib's mine_triplets(..., 'batch-hard')")
