# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 01 — Hand-crafted features (solution)
#
# EmoNet (§3.2, §5) feeds its second branch a 2,728-value vector: "HOG feature extraction with a
# sliding window size of 24 and a window step of 6", binned into 8 unsigned orientations, plus
# 68 facial landmarks. You build that vector from the ground up, then fit the classic classifier
# on it the honest way:
#
# 1. `window_hog` — one window's histogram of oriented gradients, by hand, equal to
#    scikit-image's `hog(window, orientations=8, pixels_per_cell=(8, 8), cells_per_block=(1, 1),
#    block_norm="L2-Hys")`;
# 2. `emonet_hog` — the sliding windows over a 48×48 face: 2,592 values;
# 3. `choose_C` — the regularisation strength chosen on PublicTest, PrivateTest reported once.
#
# **Use NumPy** for 1 and 2. Chapter 01 explains each step; the checks compare with
# scikit-image and with `ferlib.features`.

# %%
import numpy as np

from ferlib.checks import check_choose_C, check_emonet_hog, check_window_hog, completed

# %% [markdown]
# ## Exercise 1 — one window's HOG
#
# `window` is an (H, W) uint8 array. Follow scikit-image exactly:
#
# 1. **Gradients** by central differences, as floats: `g_row[1:-1, :] = w[2:, :] - w[:-2, :]`
#    and `g_col[:, 1:-1] = w[:, 2:] - w[:, :-2]`; **zero** on the first and last row (for
#    `g_row`) and column (for `g_col`) — not `np.gradient`, which uses one-sided differences there.
# 2. **Magnitude** `hypot(g_col, g_row)` and **unsigned orientation**
#    `degrees(arctan2(g_row, g_col)) % 180`.
# 3. **Cells** of 8×8 pixels; only whole cells count (an 18-px side holds 2 cells). In each cell,
#    every pixel adds its *magnitude* to orientation bin `int(angle // 22.5)` (8 bins, no
#    interpolation); divide the histogram by 64 (the cell's mean).
# 4. **L2-Hys** per cell (a block of 1×1 cells): `v / sqrt(sum(v²) + eps²)` with `eps = 1e-5`,
#    clip at 0.2, and normalise the same way again.
#
# Return the cells row-major (first row of cells left to right, then the next), each its 8
# bins: a flat array of `(H // 8) * (W // 8) * 8` values.

# %%
def window_hog(window):
    """HOG of one window: 8 unsigned orientations, 8x8-px cells, 1x1-cell blocks (L2-Hys); flat, row-major."""
    ### BEGIN SOLUTION
    w = np.asarray(window, dtype=np.float64)
    g_row, g_col = np.zeros_like(w), np.zeros_like(w)
    g_row[1:-1, :] = w[2:, :] - w[:-2, :]
    g_col[:, 1:-1] = w[:, 2:] - w[:, :-2]
    rows, cols = w.shape[0] // 8, w.shape[1] // 8
    magnitude = np.hypot(g_col, g_row)[:8 * rows, :8 * cols]
    angle = (np.degrees(np.arctan2(g_row, g_col)) % 180)[:8 * rows, :8 * cols]
    bins = np.minimum((angle // 22.5).astype(int), 7)
    eps = 1e-5
    out = []
    for r in range(rows):
        for c in range(cols):
            cell = (slice(8 * r, 8 * r + 8), slice(8 * c, 8 * c + 8))
            hist = np.bincount(bins[cell].ravel(), weights=magnitude[cell].ravel(), minlength=8) / 64
            hist = hist / np.sqrt(np.sum(hist ** 2) + eps ** 2)
            hist = np.minimum(hist, 0.2)
            out.append(hist / np.sqrt(np.sum(hist ** 2) + eps ** 2))
    return np.concatenate(out) if out else np.zeros(0)
    ### END SOLUTION


# %% tags=["grader"]
check_window_hog(window_hog)

# %% [markdown]
# ## Exercise 2 — EmoNet's sliding windows: 2,592 values
#
# Windows of 24×24 start at every 6 pixels, `0, 6, …, 42`, along each axis, **cut at the
# border**: the window starting at 30 is `face[30:54]` = 18 pixels long, at 36 it is 12, at 42
# it is 6. A window narrower than one 8-px cell holds no cell and gives nothing. Concatenate
# `window_hog(window)` of every window, windows row-major by their (top, left) corner.
#
# Before you run it, count on paper: how many cells does each start give along one axis, and
# why does that make 18 × 18 × 8 = 2,592?

# %%
def emonet_hog(face, window_hog):
    """EmoNet's sliding-window HOG of a 48x48 face: 24-px windows every 6 px, cut at the border."""
    ### BEGIN SOLUTION
    parts = []
    for top in range(0, 48, 6):
        for left in range(0, 48, 6):
            window = face[top:top + 24, left:left + 24]
            if min(window.shape) >= 8:
                parts.append(window_hog(window))
    return np.concatenate(parts)
    ### END SOLUTION


# %% tags=["grader"]
check_emonet_hog(emonet_hog, window_hog)

# %% [markdown]
# ## The 2,728-value vector, on real faces
#
# EmoNet appends the 68 landmarks, (x, y) each, to the 2,592 HOG values. The cell below builds
# the vector for a few faces with your `emonet_hog` and ferlib's landmarks (dlib's 68-point
# predictor, chapter 01), and compares it with `ferlib.features.emonet_bovw_features`.

# %% tags=["raises-exception"]
from ferlib.data.dataset import stratified_subset
from ferlib.data.discovery import load_fer2013
from ferlib.features import emonet_bovw_features, facial_landmarks

ds = load_fer2013(verbose=False)
faces = stratified_subset(ds.split("Training"), 1, seed=0).pixels
with completed("Exercises 1 and 2"):
    points = facial_landmarks(faces)
    mine = np.stack([np.concatenate([emonet_hog(f, window_hog), p.ravel()]) for f, p in zip(faces, points)])
print(f"{len(faces)} faces -> {mine.shape[1]:,} values each; largest difference from ferlib's: "
      f"{np.abs(mine - emonet_bovw_features(faces, points)).max():.2g} [{ds.tag}]")

# %% [markdown]
# ## Exercise 3 — choosing C on PublicTest, reporting PrivateTest
#
# A linear classifier on standardised features has one knob, the regularisation strength C.
# Write `choose_C(c_grid, fit, accuracy)`:
#
# * `fit(C)` returns a model fitted on Training with that C;
# * `accuracy(model, split)` scores it on `"PublicTest"` or `"PrivateTest"`.
#
# Fit every C, keep the one with the best **PublicTest** accuracy (the first one if several
# tie), and only then score **PrivateTest**, once, with that model. Return `(C, test_accuracy)`.

# %%
def choose_C(c_grid, fit, accuracy):
    """C with the best PublicTest accuracy (first of ties) and its model's PrivateTest accuracy."""
    ### BEGIN SOLUTION
    best_C, best_acc, best_model = None, -1.0, None
    for C in c_grid:
        model = fit(C)
        acc = accuracy(model, "PublicTest")
        if acc > best_acc:
            best_C, best_acc, best_model = C, acc, model
    return best_C, accuracy(best_model, "PrivateTest")
    ### END SOLUTION


# %% tags=["grader"]
check_choose_C(choose_C)

# %% [markdown]
# ## Your classifier on real features
#
# The cell below fits a logistic regression on EmoNet's HOG features of a stratified subset of
# each split (real FER-2013 when it is here, the synthetic faces otherwise) with your `choose_C`,
# and prints the row chapter 01's table would hold. `ferlib.jobs.hand_crafted` does the same on
# the whole data set (`python -m ferlib hand-crafted --profile full`).

# %% tags=["raises-exception"]
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ferlib.features import sliding_window_hog

parts = {s: stratified_subset(ds.split(s), n, seed=0) for s, n in
         (("Training", 150), ("PublicTest", 40), ("PrivateTest", 40))}
X = {s: sliding_window_hog(p.pixels) for s, p in parts.items()}
y = {s: p.labels for s, p in parts.items()}


def fit(C):
    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=500)).fit(X["Training"], y["Training"])


def accuracy(model, split):
    return float((model.predict(X[split]) == y[split]).mean())


with completed("Exercise 3"):
    C, test_accuracy = choose_C((1e-4, 1e-3, 1e-2, 1e-1), fit, accuracy)
print(f"C = {C:g} chosen on PublicTest; PrivateTest accuracy {test_accuracy:.3f} on "
      f"{len(y['PrivateTest'])} faces [{ds.tag}]")

# %% [markdown]
# ## Going further
#
# * Replace `window_hog` in `emonet_hog` with scikit-image's own call: how much faster is
#   `ferlib.features.sliding_window_hog`, which computes all windows of a batch at once?
# * Which other (window, step, cell) settings give exactly 2,592 values? Count them with
#   `ferlib.features.sliding_window_hog_layout(window=..., step=..., cell=...)`.
# * Fit the classifier with C chosen on PrivateTest instead, for the whole grid, and compare the
#   two PrivateTest numbers. Which one would a new set of faces reproduce?
