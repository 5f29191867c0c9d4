"""Graders of lab 00 (FER-2013 data): per-pixel statistics, standardisation, FER+ majority vote."""
from __future__ import annotations

from typing import Callable

import numpy as np

from .core import CheckFailed, _call, _fail, _passed, assert_close  # noqa: F401


def _random_pixels(seed: int, n: int = 64, size: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(1, size, size))
    return np.clip(base + rng.normal(0, 30, size=(n, size, size)) * rng.uniform(0.2, 2, size=(1, size, size)),
                   0, 255).astype(np.uint8)


def check_pixel_statistics(fn: Callable) -> None:
    """``fn(train_pixels uint8 (N,H,W)) -> (mean (H,W), std (H,W))`` per pixel over images."""
    name = "pixel statistics"
    x = _random_pixels(0)
    out = _call(fn, x)
    if not (isinstance(out, tuple) and len(out) == 2):
        _fail(name, f"returned {type(out).__name__}, expected a tuple (mean, std)", "return mean, std")
    mean, std = out
    want_mean, want_std = x.astype(np.float64).mean(0), x.astype(np.float64).std(0)
    assert_close(name + " mean", mean, want_mean, atol=1e-4,
                 hint="average over the images (axis 0), one value per pixel position, in float (uint8 overflows)")
    if np.allclose(std, x.astype(np.float64).std(0, ddof=1), atol=1e-4) and not np.allclose(std, want_std, atol=1e-4):
        _fail(name + " std", "you used the sample std (ddof=1)",
              "DenseNet-CL's per-pixel statistics are population std (ddof=0)")
    assert_close(name + " std", std, want_std, atol=1e-4, hint="standard deviation over axis 0, per pixel position")


def check_standardize(fn: Callable) -> None:
    """``fn(pixels uint8 (N,H,W), mean, std) -> float (N,H,W)``: zero mean, unit std per pixel."""
    name = "per-pixel standardisation"
    train, other = _random_pixels(1), _random_pixels(2, n=5)
    x = train.astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    z = _call(fn, train, mean, std)
    assert_close(name + " (Training mean 0)", np.asarray(z).mean(0), np.zeros_like(mean), atol=1e-6,
                 hint="subtract the Training mean image")
    assert_close(name + " (Training std 1)", np.asarray(z).std(0), np.ones_like(std), atol=1e-6,
                 hint="divide by the Training per-pixel std")
    assert_close(name + " (other images use Training stats)", _call(fn, other, mean, std),
                 (other - mean) / std, atol=1e-6,
                 hint="never recompute statistics on validation/test images: use the ones passed in")


def check_majority_label(fn: Callable) -> None:
    """``fn(votes int (10,)) -> int``: the FER+ majority label, or -1 when there is none.

    FER+ rule (microsoft/FERPlus ``_process_data``): drop single votes (a count of 1
    becomes 0); the top class wins if it has more than half the remaining votes;
    otherwise, or when the winner is ``unknown`` (8) or ``NF`` (9), return -1.
    """
    from ..data.ferplus import process_votes

    name = "FER+ majority vote"
    cases = [
        [10, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        [6, 0, 0, 1, 0, 0, 0, 0, 2, 1],  # single votes removed: 6 of 8 -> neutral
        [4, 0, 0, 1, 3, 2, 0, 0, 0, 0],  # 4 of 9 after removing the single vote: no majority
        [0, 0, 0, 0, 0, 0, 0, 0, 0, 10],  # not a face
        [0, 5, 0, 0, 0, 0, 0, 0, 5, 0],  # tie with unknown: no majority
        [0, 0, 3, 0, 0, 0, 4, 0, 0, 0],  # fear 4 of 7
        [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],  # all single votes: nothing left
        [0, 0, 0, 0, 0, 0, 0, 6, 4, 0],  # contempt
    ]
    rng = np.random.default_rng(0)
    for _ in range(40):
        cases.append(list(rng.multinomial(10, rng.dirichlet(np.ones(10) * 0.5))))
    for votes in cases:
        t = process_votes(np.array(votes), "majority")
        want = int(np.argmax(t))
        want = -1 if want >= 8 else want
        got = _call(fn, np.array(votes))
        if got is None or int(got) != want:
            _fail(name, f"votes {votes}: got {got}, expected {want}",
                  "remove single votes first (counts of 1 -> 0); 'more than half' is strict; "
                  "unknown (index 8) and NF (index 9) winners mean -1")
    _passed(name, f"{len(cases)} vote rows agree with the FER+ rule")
