r"""Graders of lab 03 (center loss): the loss, its gradient, and the center update.

The student writes three NumPy functions (float64 arrays in, NumPy out; a torch tensor
returned is accepted too):

* ``center_loss_forward(features (m, d), labels (m,), centers (K, d)) -> float``:
  :math:`L_C = \tfrac12 \sum_i \|x_i - c_{y_i}\|^2` (DenseNet-CL Eq. 2), *summed* over the batch;
* ``center_loss_grad(features, labels, centers) -> (m, d)``:
  :math:`\partial L_C / \partial x_i = x_i - c_{y_i}` (Eq. 3);
* ``center_update(features, labels, centers, alpha) -> (K, d)``: the new centers,
  :math:`c_j - \alpha \Delta c_j` with
  :math:`\Delta c_j = \sum_i \delta(y_i=j)(c_j - x_i) / (1 + \sum_i \delta(y_i=j))` (Eq. 4, 6).

Each grader compares with ferlib's reference on small random batches (one class
always absent, classes of different sizes) and, on a mismatch, tests the answer
against the usual mistakes -- a missing 1/2, a mean instead of a sum, a flipped sign,
the +1 left out, centers updated from the wrong samples -- to say which one it is.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .core import call_student, fail, grader, passed

__all__ = ["check_center_loss_forward", "check_center_loss_grad", "check_center_update"]

ATOL, RTOL = 1e-8, 1e-6

# The worked example of chapter 03 (3 classes, class 2 absent), alpha = 0.5.
EXAMPLE_FEATURES = np.array([[2.0, 0.0], [0.0, 4.0], [4.0, 2.0]])
EXAMPLE_LABELS = np.array([0, 0, 1])
EXAMPLE_CENTERS = np.array([[0.0, 0.0], [2.0, 2.0], [5.0, -5.0]])
EXAMPLE_ALPHA = 0.5
EXAMPLE_NEW_CENTERS = np.array([[1 / 3, 2 / 3], [2.5, 2.0], [5.0, -5.0]])
EXAMPLE_LOSS = 12.0


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def _cases(seed: int = 0, n: int = 4):
    """Small batches: (features (m, d), labels (m,), centers (K, d)); the last class is absent."""
    rng = np.random.default_rng(seed)
    out = [(EXAMPLE_FEATURES, EXAMPLE_LABELS, EXAMPLE_CENTERS)]
    for _ in range(n):
        k, d = int(rng.integers(3, 6)), int(rng.integers(2, 5))
        present = np.arange(k - 1)
        labels = np.concatenate([present, rng.choice(present, size=int(rng.integers(2, 7)))])  # uneven counts
        labels = rng.permutation(labels)
        features = rng.normal(size=(len(labels), d)) * 2.0
        centers = rng.normal(size=(k, d))
        out.append((features, labels.astype(np.int64), centers))
    return out


def _fresh(x, y, c):
    return x.copy(), y.copy(), c.copy()


def _close(got, want) -> bool:
    return got.shape == want.shape and bool(np.allclose(got, want, atol=ATOL, rtol=RTOL))


def _err(got, want) -> float:
    return float(np.max(np.abs(got - want))) if got.shape == want.shape and got.size else float("inf")


# -- reference and the usual mistakes ---------------------------------------------------------

def _loss(x, y, c):
    return 0.5 * float(np.sum((x - c[y]) ** 2))


def _update(x, y, c, alpha, *, plus_one=True, sign=1.0, labels_for_centers=None, all_samples=False):
    """Eq. 4 + 6, and (by the keyword arguments) the usual ways of getting it wrong."""
    k = c.shape[0]
    lab = y if labels_for_centers is None else labels_for_centers
    new = c.copy()
    for j in range(k):
        mask = np.ones(len(y), bool) if all_samples else lab == j
        n = int(mask.sum())
        numer = np.sum(c[j] - x[mask], axis=0) if n else np.zeros(c.shape[1])
        # without the +1 an absent class gives 0/0; count that as "left alone" (a NaN gets its own hint)
        delta = numer / (1.0 + n) if plus_one else (numer / n if n else np.zeros(c.shape[1]))
        new[j] = c[j] - sign * alpha * delta
    return new


# -- graders ------------------------------------------------------------------------------------

def _diagnose(results, variants, default: str) -> str:
    """The hint of the first mistake that explains *every* answer (one batch can match by chance)."""
    for predict, why in variants:
        if all(_close_nan(got, predict(*args)) for args, got in results):
            return why
    return default


def _close_nan(got, want) -> bool:
    want = np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, atol=ATOL, rtol=RTOL, equal_nan=True))


@grader(points=1)
def check_center_loss_forward(fn: Callable) -> None:
    """``fn(features (m,d), labels (m,), centers (K,d)) -> float``: ``1/2 sum_i ||x_i - c_{y_i}||^2`` (Eq. 2)."""
    name = "center loss forward (Eq. 2)"
    results = []
    for x, y, c in _cases(0):
        got = _np(call_student(fn, *_fresh(x, y, c)))
        if got.size != 1:
            fail(name, f"returned an array of shape {got.shape}, expected one number",
                  "sum the per-sample terms 1/2 ||x_i - c_{y_i}||^2 over the whole batch (reduction 'sum')")
        results.append(((x, y, c), got.reshape(())))
    worst = 0.0
    for (x, y, c), got in results:
        want = np.float64(_loss(x, y, c))
        if _close(got, want):
            worst = max(worst, _err(got, want))
            continue
        hint = _diagnose(results, [
            (lambda x, y, c: 2 * _loss(x, y, c), "your value is twice Eq. 2: the 1/2 in front of the sum is missing"),
            (lambda x, y, c: _loss(x, y, c) / len(y),
             "you averaged over the batch; Eq. 2 (and this lab) sums over the samples: no 1/m"),
            (lambda x, y, c: 2 * _loss(x, y, c) / len(y),
             "that is the mean of ||x_i - c_{y_i}||^2 (no 1/2, divided by m); Eq. 2 is 1/2 times the sum"),
            (lambda x, y, c: 0.5 * np.sum(np.linalg.norm(x - c[y], axis=1)),
             "the norm must be squared: ||x_i - c_{y_i}||^2, not ||x_i - c_{y_i}||"),
            (lambda x, y, c: 0.5 * np.sum((x[:, None, :] - c[None]) ** 2),
             "you compared each sample with every center; use only its own class's center, centers[labels]"),
            (lambda x, y, c: -_loss(x, y, c),
             "wrong sign: the loss is a sum of squares, never negative (Sobel-Laplacian-CL Eq. 1 prints a spurious minus)"),
        ], "for each sample take centers[labels[i]], the squared distance to it, sum, and halve")
        fail(name, f"got {float(got):.6g}, expected {float(want):.6g} (labels {y.tolist()})", hint)
    passed(name, f"{len(results)} batches agree with 1/2 sum ||x - c_y||^2 "
                  f"(max abs difference {worst:.2g}, tolerance atol={ATOL:g}, rtol={RTOL:g}); "
                  f"worked example = {EXAMPLE_LOSS:g}")


@grader(points=2)
def check_center_loss_grad(fn: Callable) -> None:
    """``fn(features (m,d), labels, centers) -> (m,d)``: ``dL_C/dx_i = x_i - c_{y_i}`` (Eq. 3).

    Compared with ferlib's numerical gradient of Eq. 2 (central differences, float64;
    the relative error and its tolerance are printed) and with the analytic Eq. 3.
    """
    from ..numerics import numerical_gradient, relative_error

    name = "center loss gradient (Eq. 3)"
    tol = 1e-7
    results = []
    for x, y, c in _cases(1):
        got = _np(call_student(fn, *_fresh(x, y, c)))
        want = x - c[y]
        if got.shape != want.shape:
            hint = ("that is the shape of the centers: return the gradient w.r.t. the features, one row per sample"
                    if got.shape == c.shape else "one row per sample, one column per feature dimension: shape (m, d)")
            fail(name, f"shape {got.shape}, expected {want.shape}", hint)
        results.append(((x, y, c), got))
    worst_rel = 0.0
    for (x, y, c), got in results:
        num = numerical_gradient(lambda z: _loss(z, y, c), x.copy())
        rel = relative_error(got, num, elementwise=False)
        worst_rel = max(worst_rel, rel)
        want = x - c[y]
        if rel <= tol and _close(got, want):
            continue
        hint = _diagnose(results, [
            (lambda x, y, c: c[y] - x, "wrong sign: the gradient points from the center to the feature, x_i - c_{y_i}"),
            (lambda x, y, c: (x - c[y]) / len(y),
             "you divided by the batch size: that is the gradient of the *mean*; this lab's L_C is the sum"),
            (lambda x, y, c: 2 * (x - c[y]), "d/dx of 1/2 ||x - c||^2 is (x - c), not 2 (x - c): the 1/2 cancels the 2"),
            (lambda x, y, c: x - c[(y + 1) % len(c)], "wrong center: sample i uses centers[labels[i]]"),
            (lambda x, y, c: x - c[y - 1], "wrong center: sample i uses centers[labels[i]]"),
        ], "Eq. 3: subtract each sample's own class center, features - centers[labels]")
        fail(name, f"relative error {rel:.1e} against the numerical gradient (expect < {tol:.0e} in float64); "
                    f"max abs difference from x - c_y {_err(got, want):.3g}", hint)
    passed(name, f"relative error vs numerical gradient {worst_rel:.1e} (expect < {tol:.0e} in float64); "
                  f"equal to x_i - c_(y_i) within atol={ATOL:g}")


@grader(points=2)
def check_center_update(fn: Callable) -> None:
    """``fn(features (m,d), labels (m,), centers (K,d), alpha) -> new centers (K,d)`` (Eq. 4, 6)."""
    name = "center update (Eq. 4, 6)"
    alphas = (EXAMPLE_ALPHA, 0.5, 0.9, 0.2, 1.9)  # none is 1, so a forgotten alpha shows
    results = []
    for (x, y, c), alpha in zip(_cases(2), alphas):
        x0, y0, c0 = _fresh(x, y, c)
        got = _np(call_student(fn, x0, y0, c0, alpha))
        if not (np.array_equal(c0, c) and np.array_equal(x0, x) and np.array_equal(y0, y)):
            fail(name, "your function changed its inputs in place",
                  "return new centers and leave the arguments alone: start from centers.copy()")
        if got.shape != c.shape:
            fail(name, f"shape {got.shape}, expected {c.shape}", "return all K centers, one row per class")
        results.append(((x, y, c, alpha), got))
    worst = 0.0
    for (x, y, c, alpha), got in results:
        want = _update(x, y, c, alpha)
        if _close(got, want):
            worst = max(worst, _err(got, want))
            continue
        absent = [j for j in range(len(c)) if not np.any(y == j)]
        hint = _diagnose(results, [
            (lambda x, y, c, a: _update(x, y, c, a, sign=-1.0),
             "wrong sign: Delta c_j = sum (c_j - x_i) / (1 + n_j), and the step is c_j - alpha * Delta c_j "
             "(the center must move *toward* its features)"),
            (lambda x, y, c, a: _update(x, y, c, a, plus_one=False),
             "the +1 in the denominator is missing: divide by 1 + n_j, not n_j"),
            (lambda x, y, c, a: _update(x, y, c, a, all_samples=True),
             "you used every sample of the batch; only the samples of class j (labels == j) move center j"),
            (lambda x, y, c, a: _update(x, y, c, a, labels_for_centers=y + 1),
             "labels off by one: sample i belongs to center labels[i] (classes start at 0)"),
            (lambda x, y, c, a: _update(x, y, c, a, labels_for_centers=y - 1),
             "labels off by one: sample i belongs to center labels[i] (classes start at 0)"),
            (lambda x, y, c, a: _update(x, y, c, 1.0), "alpha is missing: the step is c_j - alpha * Delta c_j"),
        ], "")
        if not hint and np.isnan(got).any():
            hint = ("NaN: without the +1 a class absent from the batch gives 0/0 -- the +1 in the denominator "
                    "keeps it defined, and the absent class's center stays where it is")
        if not hint and absent and not np.allclose(got[absent], c[absent], atol=ATOL, rtol=RTOL):
            hint = f"class {absent} is absent from this batch: its center must not move (the numerator is 0)"
        if not hint:
            hint = ("for each class j: n_j = number of samples with label j, Delta c_j = sum over those samples "
                    "of (c_j - x_i) / (1 + n_j), then c_j - alpha * Delta c_j")
        j = int(np.nanargmax(np.abs(got - want).max(1))) if not np.isnan(got).all() else 0
        fail(name, f"alpha={alpha}, labels {y.tolist()}: center {j} is {np.round(got[j], 4).tolist()}, "
                    f"expected {np.round(want[j], 4).tolist()}", hint)
    passed(name, f"{len(results)} batches (worked example, absent classes, alpha up to 1.9) agree with Eq. 4 "
                  f"and 6 (max abs difference {worst:.2g}, tolerance atol={ATOL:g}, rtol={RTOL:g})")
