"""Lab 01 graders: pass on correct functions, fail with the right hint on the blank and each planted bug."""
from __future__ import annotations

import numpy as np
import pytest

from ferlib.checks import CheckFailed, check_choose_C, check_emonet_hog, check_window_hog
from ferlib.checks.hand_crafted import reference_by_rule, reference_window_hog


def window_hog(window, *, signed=False, counts=False, border=False, no_clip=False, reverse=False, column_major=False):
    w = np.asarray(window, dtype=np.float64)
    if border:
        g_row, g_col = np.gradient(w)
    else:
        g_row, g_col = np.zeros_like(w), np.zeros_like(w)
        g_row[1:-1] = w[2:] - w[:-2]
        g_col[:, 1:-1] = w[:, 2:] - w[:, :-2]
    rows, cols = w.shape[0] // 8, w.shape[1] // 8
    full = 360 if signed else 180
    mag = (np.ones_like(w) if counts else np.hypot(g_row, g_col))[:8 * rows, :8 * cols]
    ang = (np.degrees(np.arctan2(g_row, g_col)) % full)[:8 * rows, :8 * cols]
    bins = np.minimum((ang // (full / 8)).astype(int), 7)
    order = [(r, c) for c in range(cols) for r in range(rows)] if column_major else \
        [(r, c) for r in range(rows) for c in range(cols)]
    out = []
    for r, c in order:
        sl = (slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8))
        h = np.bincount(bins[sl].ravel(), weights=mag[sl].ravel(), minlength=8) / 64
        h = h / np.sqrt((h ** 2).sum() + 1e-10)
        if not no_clip:
            h = np.minimum(h, 0.2)
            h = h / np.sqrt((h ** 2).sum() + 1e-10)
        out.append(h[::-1] if reverse else h)
    return np.concatenate(out)


def emonet_hog(face, window_hog, *, whole_only=False, transposed=False):
    parts = []
    for a in range(0, 48, 6):
        for b in range(0, 48, 6):
            top, left = (b, a) if transposed else (a, b)
            win = face[top:top + 24, left:left + 24]
            if whole_only and (top > 24 or left > 24):
                continue
            if min(win.shape) >= 8:
                parts.append(window_hog(win))
    return np.concatenate(parts)


def choose_C(grid, fit, accuracy, *, on="PublicTest", ties="first", peek=False):
    best = None
    for C in grid:
        m = fit(C)
        a = accuracy(m, on)
        if peek:
            accuracy(m, "PrivateTest")
        if best is None or a > best[0] or (ties == "last" and a == best[0]):
            best = (a, C, m)
    return best[1], accuracy(best[2], "PrivateTest")


def blank(*args, **kwargs):
    raise NotImplementedError()


def test_correct_functions_pass(capsys):
    check_window_hog(window_hog)
    check_emonet_hog(emonet_hog, window_hog)
    check_choose_C(choose_C)
    assert capsys.readouterr().out.count("PASS") == 3


def test_reference_by_rule_is_the_reference_when_no_rule_is_changed():
    window = np.random.default_rng(5).integers(0, 256, (24, 24), dtype=np.uint8)
    np.testing.assert_allclose(reference_by_rule(window.astype(float)), reference_window_hog(window), atol=1e-6)


@pytest.mark.parametrize("check", [check_window_hog, lambda f: check_emonet_hog(f, window_hog), check_choose_C])
def test_blank_says_not_implemented(check):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(blank)


@pytest.mark.parametrize("bug, hint", [
    ("signed", "unsigned"), ("counts", "magnitude"), ("border", "np.gradient"), ("no_clip", "clipping"),
    ("reverse", "backwards"), ("column_major", "row-major"),
])
def test_window_hog_bugs_are_caught_with_their_hint(bug, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_window_hog(lambda w: window_hog(w, **{bug: True}))


@pytest.mark.parametrize("bug, hint", [("whole_only", "cut windows"), ("transposed", "row-major order")])
def test_emonet_hog_bugs_are_caught(bug, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_emonet_hog(lambda f, wh: emonet_hog(f, wh, **{bug: True}), window_hog)


@pytest.mark.parametrize("kwargs, hint", [
    ({"on": "PrivateTest"}, "choose on PublicTest only"), ({"ties": "last"}, "first C"),
    ({"peek": True}, "PrivateTest is scored once"),
])
def test_choose_C_bugs_are_caught(kwargs, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_choose_C(lambda g, f, a: choose_C(g, f, a, **kwargs))
