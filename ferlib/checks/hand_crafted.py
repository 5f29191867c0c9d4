"""Graders of lab 01 (hand-crafted features): one window's HOG by hand, EmoNet's 2,592 sliding-window
HOG, and choosing C on PublicTest.

The student writes

* ``window_hog(window) -> (cells_down * cells_across * 8,)``: scikit-image's HOG of one window
  with 8 unsigned orientations, 8x8-px cells and 1x1-cell blocks (L2-Hys), by hand in NumPy;
* ``emonet_hog(face, window_hog) -> (2592,)``: EmoNet's sliding-window HOG of a 48x48 face
  (24-px windows every 6 px, cut at the border; a window narrower than a cell gives nothing);
* ``choose_C(c_grid, fit, accuracy) -> (C, test_accuracy)``: fit each C on Training, keep the
  one with the best PublicTest accuracy (the first of ties), and score PrivateTest once, with it.

Each grader compares with the reference (``skimage.feature.hog``, :func:`ferlib.features.sliding_window_hog`)
and names the usual mistakes: signed orientations, counts instead of magnitudes, no block
normalisation, gradients at the window border, windows not cut at the border, the test split used
to choose.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from skimage.feature import hog as skimage_hog

from ..features.hog import EMONET_HOG_LENGTH, sliding_window_hog
from .core import call_student, fail, grader, passed

__all__ = ["check_window_hog", "check_emonet_hog", "check_choose_C", "reference_window_hog"]

HOG_TOLERANCE = 1e-6


def reference_window_hog(window) -> np.ndarray:
    """scikit-image's HOG of one window: 8 orientations, 8x8-px cells, 1x1-cell blocks, L2-Hys."""
    return skimage_hog(np.asarray(window), orientations=8, pixels_per_cell=(8, 8), cells_per_block=(1, 1),
                       block_norm="L2-Hys", feature_vector=True)


def _windows(seed: int = 0):
    """Test windows: a vertical edge, a diagonal ramp, an edge on the window's border, random textures;
    sizes 24x24, 16x24 and 18x12 (only whole cells count)."""
    rng = np.random.default_rng(seed)
    edge = np.zeros((24, 24), np.uint8)
    edge[:, 13:] = 200
    ramp = (np.add.outer(np.arange(24), 2 * np.arange(24)) * 3).astype(np.uint8)
    border = np.zeros((24, 24), np.uint8)
    border[:, 1:] = 90  # the gradient of this step falls on column 0, where scikit-image sets it to zero
    border[20:, :] += 60
    return [("a vertical edge", edge), ("a ramp", ramp), ("steps at the window's border", border),
            ("random 24x24 texture", rng.integers(0, 256, (24, 24), dtype=np.uint8)),
            ("random 16x24 window", rng.integers(0, 256, (16, 24), dtype=np.uint8)),
            ("random 18x12 window (a 2x1-cell window, 2 px left over each way)",
             rng.integers(0, 256, (18, 12), dtype=np.uint8))]


def _hog_hint(got: np.ndarray, want: np.ndarray, window: np.ndarray) -> str:
    """Name the likely mistake by recomputing the reference with it planted."""
    w = window.astype(np.float64)
    if got.shape != want.shape:
        return ("one histogram of 8 bins per whole 8x8 cell: (rows // 8) * (cols // 8) * 8 values, cells "
                "row-major, bins inside each cell")
    planted = [
        (dict(signed=True), "orientations are unsigned: take arctan2 in degrees modulo 180, not 360 (8 bins of "
                            "22.5 deg)"),
        (dict(counts=True), "each pixel adds its gradient *magnitude* to its bin, not 1"),
        (dict(border=True), "scikit-image's gradient is zero on the window's first and last row (for g_row) and "
                            "column (for g_col); np.gradient's one-sided differences there differ"),
        (dict(column_major=True), "cells go row-major: all cells of the first row of cells, then the second row, ..."),
        (dict(no_clip=True), "L2-Hys is three steps: divide by the L2 norm, clip at 0.2, divide by the L2 norm "
                             "again; the clipping is missing"),
        (dict(no_norm=True), "each cell's histogram is normalised (L2-Hys): divide by its L2 norm, clip at 0.2, "
                             "renormalise"),
    ]
    for rule, hint in planted:
        if np.allclose(got, reference_by_rule(w, **rule), atol=1e-5):
            return hint
    if np.allclose(got.reshape(-1, 8)[:, ::-1].ravel(), want, atol=1e-5):
        return ("the bins run backwards: bin 0 is 0-22.5 deg, with orientation = arctan2(g_row, g_col) in "
                "degrees, modulo 180")
    if np.any(got < -1e-9):
        return "HOG values are normalised histograms of magnitudes: they are never negative"
    return ("compare step by step with the recipe above: central differences, magnitude and unsigned angle, "
            "hard binning into 8 bins, cell mean, L2-Hys")


def reference_by_rule(w: np.ndarray, *, signed=False, counts=False, border=False, column_major=False,
                      no_clip=False, no_norm=False) -> np.ndarray:
    """The window HOG with one rule changed (how the hints recognise a planted mistake)."""
    h, wd = (w.shape[0] // 8) * 8, (w.shape[1] // 8) * 8
    if border:
        g_row, g_col = np.gradient(w)
    else:
        g_row, g_col = np.zeros_like(w), np.zeros_like(w)
        g_row[1:-1] = w[2:] - w[:-2]
        g_col[:, 1:-1] = w[:, 2:] - w[:, :-2]
    g_row, g_col = g_row[:h, :wd], g_col[:h, :wd]
    mag = np.ones_like(g_row) if counts else np.hypot(g_row, g_col)
    ang = np.rad2deg(np.arctan2(g_row, g_col)) % (360 if signed else 180)
    bins = np.clip((ang // ((360 if signed else 180) / 8)).astype(int), 0, 7)
    cells = []
    for r in range(h // 8):
        for c in range(wd // 8):
            sl = (slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8))
            cells.append(np.bincount(bins[sl].ravel(), weights=mag[sl].ravel(), minlength=8) / 64)
    hist = np.array(cells)
    if column_major:
        hist = hist.reshape(h // 8, wd // 8, 8).transpose(1, 0, 2).reshape(-1, 8)
    if no_norm:
        return hist.ravel()
    eps = 1e-5
    out = hist / np.sqrt((hist ** 2).sum(1, keepdims=True) + eps ** 2)
    if not no_clip:
        out = np.minimum(out, 0.2)
        out = out / np.sqrt((out ** 2).sum(1, keepdims=True) + eps ** 2)
    return out.ravel()


@grader(points=2)
def check_window_hog(fn: Callable) -> None:
    """``fn(window (H, W) uint8) -> (H//8 * W//8 * 8,)`` equal to scikit-image's HOG of that window."""
    name = "window HOG (8 orientations, 8x8 cells, L2-Hys)"
    worst = 0.0
    for what, window in _windows():
        got = np.asarray(call_student(fn, window.copy()), dtype=np.float64).ravel()
        want = reference_window_hog(window)
        if got.shape != want.shape or not np.allclose(got, want, atol=HOG_TOLERANCE):
            err = "" if got.shape != want.shape else f", max abs difference {np.max(np.abs(got - want)):.3g}"
            fail(name, f"on {what}: {got.shape[0]} values{err}; scikit-image gives {want.shape[0]} values "
                       f"{np.round(want[:8], 3).tolist()}... (tolerance {HOG_TOLERANCE:g})",
                 _hog_hint(got, want, window))
        worst = max(worst, float(np.max(np.abs(got - want))) if got.size else 0.0)
    passed(name, f"{len(_windows())} windows agree with skimage.feature.hog, max abs difference {worst:.2g} "
                 f"(tolerance {HOG_TOLERANCE:g})")


@grader(points=2)
def check_emonet_hog(fn: Callable, window_hog: Callable = reference_window_hog) -> None:
    """``fn(face (48, 48) uint8, window_hog) -> (2592,)`` equal to :func:`ferlib.features.sliding_window_hog`."""
    name = "EmoNet's sliding-window HOG (2,592)"
    rng = np.random.default_rng(1)
    faces = [rng.integers(0, 256, (48, 48), dtype=np.uint8),
             np.add.outer(np.arange(48) ** 2 % 97, np.arange(48) * 5).astype(np.uint8)]
    for i, face in enumerate(faces):
        got = np.asarray(call_student(fn, face.copy(), window_hog), dtype=np.float64).ravel()
        want = sliding_window_hog(face[None])[0].astype(np.float64)
        if got.shape != want.shape:
            n = got.shape[0]
            hint = ("windows start at 0, 6, ..., 42 along each axis and are cut at the border (a window starting "
                    "at 30 is 18 px long); a window narrower than one 8-px cell is skipped: 18 x 18 cells x 8 = 2,592")
            if n == 25 * 9 * 8:
                hint = "the windows must not stop at the last start that fits whole (24): keep the cut windows " \
                       "at 30 and 36 too (" + hint + ")"
            fail(name, f"face {i}: {n} values, expected {EMONET_HOG_LENGTH}", hint)
        if not np.allclose(got, want, atol=1e-5):
            fail(name, f"face {i}: 2,592 values but max abs difference {np.max(np.abs(got - want)):.3g}",
                 "windows in row-major order of their (top, left) corner (every left for top 0, then top 6, ...), "
                 "each window's HOG as window_hog gives it, from face[top:top + 24, left:left + 24]")
    passed(name, f"{len(faces)} faces: 2,592 values equal to ferlib.features.sliding_window_hog (atol 1e-05)")


class _Model:
    def __init__(self, C: float):
        self.C = C


@grader(points=1)
def check_choose_C(fn: Callable) -> None:
    """``fn(c_grid, fit, accuracy) -> (C, test_accuracy)``: C chosen on PublicTest, PrivateTest scored once."""
    name = "choose C on PublicTest, report PrivateTest"
    grid = (0.001, 0.01, 0.1, 1.0)
    public = {0.001: 0.40, 0.01: 0.47, 0.1: 0.47, 1.0: 0.44}  # a tie: the first (0.01) wins
    private = {0.001: 0.41, 0.01: 0.45, 0.1: 0.46, 1.0: 0.49}  # PrivateTest would prefer 1.0
    calls = []

    def fit(C):
        calls.append(("fit", C))
        return _Model(C)

    def accuracy(model, split):
        if not isinstance(model, _Model):
            fail(name, f"accuracy() was given {type(model).__name__}, not a model from fit()",
                 "pass accuracy() the model fit(C) returned")
        calls.append((split, model.C))
        table = {"PublicTest": public, "PrivateTest": private}
        if split not in table:
            fail(name, f"accuracy() was asked for split {split!r}", "the splits are 'PublicTest' and 'PrivateTest'")
        return table[split][model.C]

    out = call_student(fn, grid, fit, accuracy)
    try:
        C, test_acc = out
    except (TypeError, ValueError):
        fail(name, f"returned {out!r}", "return a pair (chosen C, its PrivateTest accuracy)")
    fitted = [c for kind, c in calls if kind == "fit"]
    tested = [c for kind, c in calls if kind == "PrivateTest"]
    if sorted(fitted) != sorted(grid):
        fail(name, f"fit() was called for C = {fitted}", "fit every C of the grid once, on Training")
    if C == 1.0 or len(tested) > 1:
        fail(name, f"chose C = {C} after scoring PrivateTest for {tested}",
             "choose on PublicTest only; PrivateTest is scored once, for the chosen C: choosing on it reports a "
             "number no new face would reproduce")
    if C == 0.1:
        fail(name, "chose C = 0.1 of the two tied on PublicTest (0.01 and 0.1)",
             "keep the first C with the best PublicTest accuracy (use > not >= when you update the best)")
    if C != 0.01:
        fail(name, f"chose C = {C}; PublicTest accuracies were {public}", "take the C with the largest PublicTest accuracy")
    if tested != [0.01] or abs(float(test_acc) - private[0.01]) > 1e-12:
        fail(name, f"reported {test_acc!r} after scoring PrivateTest for {tested}",
             "report accuracy(model of the chosen C, 'PrivateTest')")
    passed(name, "C = 0.01 chosen on PublicTest (first of a tie), PrivateTest scored once: 0.45")
