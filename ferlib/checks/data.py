"""Graders of lab 00 (FER-2013 data): per-pixel statistics, standardisation, the FER+ majority vote.

* ``pixel_statistics(train_pixels uint8 (N, H, W)) -> (mean (H, W), std (H, W))``: DenseNet-CL
  §IV-C's per-pixel mean image and (population) standard deviation over Training;
* ``standardize(pixels, mean, std) -> (pixels - mean) / std`` with the Training statistics;
* ``majority_label(votes (10,)) -> int``: the FER+ majority label (Barsoum et al.; the
  rule of microsoft/FERPlus, :func:`ferlib.data.ferplus.process_votes`), or -1.

Each grader compares with ferlib's reference and, on a mismatch, names the usual
mistake: statistics over the wrong axis, sums in uint8, the sample std (``ddof=1``),
statistics recomputed on the images being standardised, single votes kept, "at least
half" instead of "more than half", an ``unknown``/``NF`` winner returned as a label.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .core import assert_close, call_student, fail, grader, passed

__all__ = ["check_pixel_statistics", "check_standardize", "check_majority_label"]


def _random_pixels(seed: int, n: int = 64, size: int = 8) -> np.ndarray:
    """uint8 (n, size, size) faces-like images: a common pattern plus noise of a different size per pixel."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, size, size))
    return np.clip(base + rng.normal(0, 30, size=(n, size, size)) * rng.uniform(0.2, 2, size=(1, size, size)),
                   0, 255).astype(np.uint8)


def _matches(got, want) -> bool:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    return got.shape == want.shape and bool(np.allclose(got, want, atol=1e-4))


@grader(points=1)
def check_pixel_statistics(fn: Callable) -> None:
    """``fn(train_pixels uint8 (N,H,W)) -> (mean (H,W), std (H,W))``, per pixel position over the images."""
    name = "pixel statistics"
    x = _random_pixels(0, n=300)  # 300 images near 255: a sum in uint8 (or uint16) overflows
    out = call_student(fn, x)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail(name, f"returned {type(out).__name__}, expected a tuple (mean, std)", "return mean, std")
    mean, std = (np.asarray(v) for v in out)
    xf = x.astype(np.float64)
    want_mean, want_std = xf.mean(0), xf.std(0)
    if mean.shape != want_mean.shape:
        fail(name + " mean", f"shape {mean.shape}, expected {want_mean.shape} (one value per pixel position)",
             "average over the images, axis 0: (N, H, W) -> (H, W)")
    if not _matches(mean, want_mean):
        wrapped = x.sum(0, dtype=np.uint8) / len(x)
        hint = ("the sum overflowed: uint8 holds 0..255, so summing 300 images wraps around -- convert to "
                "float first (np.asarray(x, dtype=np.float64))" if _matches(mean, wrapped)
                else "average over the images (axis 0), one value per pixel position, in float")
        assert_close(name + " mean", mean, want_mean, atol=1e-4, hint=hint)
    if _matches(std, xf.std(0, ddof=1)):
        fail(name + " std", "you used the sample std (ddof=1)",
             "DenseNet-CL's per-pixel statistics are the population std: np.std(..., axis=0) with ddof=0")
    if _matches(std, xf.var(0)):
        fail(name + " std", "that is the variance", "take the square root: the standard deviation")
    assert_close(name + " mean", mean, want_mean, atol=1e-4)
    assert_close(name + " std", std, want_std, atol=1e-4,
                 hint="standard deviation over axis 0 (the images), per pixel position")


@grader(points=1)
def check_standardize(fn: Callable) -> None:
    """``fn(pixels uint8 (N,H,W), mean, std) -> float (N,H,W)``: zero mean, unit std per pixel over Training."""
    name = "per-pixel standardisation"
    train, other = _random_pixels(1), _random_pixels(2, n=5)
    x = train.astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    z = np.asarray(call_student(fn, train, mean, std), dtype=np.float64)
    if z.shape != train.shape:
        fail(name, f"shape {z.shape}, expected {train.shape}", "return one standardised image per input image")
    if _matches(z, x - mean / std):
        fail(name, "Training does not have mean 0 and std 1 per pixel",
             "operator precedence: write (pixels - mean) / std, with the parentheses")
    if _matches(z, (x - mean) * std):
        fail(name, "Training does not have mean 0 and std 1 per pixel", "divide by the std, do not multiply")
    assert_close(name + " (Training mean 0)", z.mean(0), np.zeros_like(mean), atol=1e-6,
                 hint="subtract the Training mean image")
    assert_close(name + " (Training std 1)", z.std(0), np.ones_like(std), atol=1e-6,
                 hint="divide by the Training per-pixel std")
    got = np.asarray(call_student(fn, other, mean, std), dtype=np.float64)
    o = other.astype(np.float64)
    if _matches(got, (o - o.mean(0)) / np.maximum(o.std(0), 1e-12)):
        fail(name + " (other images use Training stats)", "you recomputed the statistics on the images given",
             "never recompute statistics on validation/test images: use the mean and std passed in")
    assert_close(name + " (other images use Training stats)", got, (o - mean) / std, atol=1e-6,
                 hint="use the mean and std passed in, for every split")


def _reference_majority(votes: np.ndarray) -> int:
    from ..data.ferplus import process_votes

    top = int(np.argmax(process_votes(np.asarray(votes), "majority")))
    return -1 if top >= 8 else top


def _majority(votes, *, drop_single: bool = True, strict: bool = True, reject_unknown: bool = True) -> int:
    """The rule, and (by the keyword arguments) the usual ways of getting it wrong."""
    v = np.asarray(votes).copy()
    if drop_single:
        v[v <= 1] = 0
    total = v.sum()
    if total == 0:
        return -1
    top = int(np.argmax(v))
    ok = v[top] > 0.5 * total if strict else v[top] >= 0.5 * total
    if not ok or (reject_unknown and top >= 8):
        return -1
    return top


@grader(points=1)
def check_majority_label(fn: Callable) -> None:
    """``fn(votes int (10,)) -> int``: the FER+ majority label, or -1 when there is none.

    FER+ rule (microsoft/FERPlus ``_process_data``): drop single votes (a count of 1
    becomes 0); the top class wins if it has more than half the remaining votes;
    otherwise, or when the winner is ``unknown`` (8) or ``NF`` (9), return -1.
    """
    name = "FER+ majority vote"
    cases = [
        [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [6, 0, 0, 1, 0, 0, 0, 0, 2, 1],  # single votes removed: 6 of 8 -> neutral
        [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],  # 4 of 9 after removing the single vote: no majority
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
        [0, 5, 0, 0, 0, 0, 0, 0, 5, 0],  # tie with unknown: exactly half, no majority
        [0, 0, 3, 0, 0, 0, 4, 0, 0, 0],  # fear 4 of 7
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # all single votes: nothing left
        [0, 0, 0, 0, 0, 0, 0, 6, 4, 0],  # contempt
        [5, 0, 0, 0, 0, 5, 0, 0, 0, 0],  # exactly half each: no majority
        [3, 0, 0, 0, 0, 0, 0, 0, 7, 0],  # unknown wins
    ]
    rng = np.random.default_rng(0)
    for _ in range(40):
        cases.append(list(rng.multinomial(10, rng.dirichlet(np.ones(10) * 0.5))))
    answers = []
    for votes in cases:
        got = call_student(fn, np.array(votes))
        if got is None or not np.isscalar(got) and np.ndim(got) != 0:
            fail(name, f"votes {votes}: returned {got!r}, expected one integer", "return an int: 0..7, or -1")
        answers.append(int(got))
    wrong = [(v, g) for v, g in zip(cases, answers) if g != _reference_majority(np.array(v))]
    if not wrong:
        passed(name, f"{len(cases)} vote rows agree with the FER+ rule (exact match)")
        return
    mistakes = [
        (dict(drop_single=False), "single votes must be removed first: a count of 1 becomes 0 before anything else"),
        (dict(strict=False), "'more than half' is strict: exactly half the votes is no majority"),
        (dict(reject_unknown=False), "an unknown (index 8) or NF (index 9) winner is no label: return -1"),
    ]
    hint = "remove single votes first (counts of 1 -> 0); 'more than half' is strict; unknown/NF winners mean -1"
    for kwargs, why in mistakes:
        if all(g == _majority(v, **kwargs) for v, g in zip(cases, answers)):
            hint = why
            break
    votes, got = wrong[0]
    fail(name, f"votes {votes}: got {got}, expected {_reference_majority(np.array(votes))}", hint)
