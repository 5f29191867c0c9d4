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
# # Lab 06 — Ensembles (solution)
#
# Chapter 06 combined trained models with `ferlib.evaluate.ensemble`. Here you write the
# pieces of EmoNet's weighted ensemble (§5, Tables 1–2) yourself, and flip test-time
# augmentation:
#
# 1. the weighted average of the members' probabilities;
# 2. the objective differential evolution minimises: the ensemble's negative log-likelihood;
# 3. the fit: weights found by `scipy.optimize.differential_evolution` on **PublicTest**,
#    reported on PrivateTest;
# 4. flip TTA: the mean of the predictions of a face and of its mirror image.
#
# **Shapes.** `probs` has shape (M members, N samples, K classes): `probs[m, i]` is member
# `m`'s probability row for sample `i`. `labels` is an integer array (N,), `weights` an
# array (M,) of non-negative numbers.
#
# Replace each `raise NotImplementedError()` with your code and run the check after it:
# it compares your function with `ferlib`'s, prints `PASS` with the tolerance it used, or
# says what is wrong and gives a hint.

# %%
import numpy as np
import pandas as pd
import torch
from IPython.display import display
from scipy.optimize import differential_evolution

from ferlib.checks.ensemble import (
    EMONET_TABLE_1_WEIGHTS,
    EMONET_TABLE_2_ACCURACY,
    check_ensemble_nll,
    check_fit_weights,
    check_flip_tta,
    check_weighted_average,
    example_members,
)

# %% [markdown]
# ## Four members
#
# Training EmoNet's four networks takes a GPU and chapter 07. This lab uses a stand-in:
# `example_members` **simulates** the probabilities of four members whose test accuracies are
# set to EmoNet Table 2's, whose errors are correlated (part of the noise is shared, as it
# is between real networks trained on the same faces) and which are calibrated. They are
# not real predictions; they are there so that you can check your code against numbers
# whose cause you know.

# %%
names, probs, labels = example_members(n_per_split=1000, seed=0)
accuracy = {split: (probs[split].argmax(2) == labels[split]).mean(1) for split in probs}
pd.DataFrame({"EmoNet Table 2 (paper, %)": EMONET_TABLE_2_ACCURACY,
              "simulated PublicTest (%)": 100 * accuracy["PublicTest"],
              "simulated PrivateTest (%)": 100 * accuracy["PrivateTest"]}, index=names).round(2)

# %% [markdown]
# ## Exercise 1 — the weighted average
#
# $$ \bar p_i = \sum_{m=1}^{M} w_m\, p_{m,i}, \qquad w_m \ge 0,\ \sum_m w_m = 1 . $$
#
# The `weights` you receive are non-negative but **of any scale** (differential evolution
# hands you raw vectors from the box $[0, 1]^M$): normalise them first, $w \leftarrow w /
# \sum_m w_m$. Average the members' **probability rows**, not their argmax labels. Return
# an (N, K) array whose rows sum to 1; leave the inputs unchanged.

# %%
def weighted_average(probs, weights):
    """(M, N, K) probabilities, (M,) weights >= 0 of any scale -> (N, K): sum_m w_m p_m with sum_m w_m = 1."""
    ### BEGIN SOLUTION
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return np.tensordot(w, probs, axes=1)  # sum over the member axis
    ### END SOLUTION


# %% tags=["grader"]
check_weighted_average(weighted_average)

# %% [markdown]
# ## Exercise 2 — the objective
#
# EmoNet learns the weights "by minimizing some loss objective" on held-out data. We take
# the negative log-likelihood of the true class under the weighted average,
#
# $$ \mathrm{NLL}(w) = -\frac1N \sum_{i=1}^{N} \log \bar p_i(y_i) = -\frac1N \sum_{i} \log \sum_m w_m\, p_{m,i}(y_i), $$
#
# with the weights normalised as in Exercise 1. The log is *outside* the sum over members:
# it is the likelihood of the ensemble, not the average likelihood of the members. Return
# one number. (`probs[:, np.arange(N), labels]` picks every member's probability of each
# sample's true class, shape (M, N).)

# %%
def ensemble_nll(weights, probs, labels):
    """Mean over samples of -log sum_m w_m p_m(y_i), with w = weights / sum(weights)."""
    ### BEGIN SOLUTION
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    p_true = w @ probs[:, np.arange(len(labels)), labels]  # (N,)
    return float(-np.mean(np.log(p_true)))
    ### END SOLUTION


# %% tags=["grader"]
check_ensemble_nll(ensemble_nll)

# %% [markdown]
# ## Exercise 3 — fit on PublicTest, report on PrivateTest
#
# `probs` and `labels` are now dicts keyed by split, `"PublicTest"` and `"PrivateTest"`.
# FER-2013's PublicTest is the validation split: fit the weights there, with
#
# ```python
# differential_evolution(ensemble_nll, bounds=[(0, 1)] * M, args=(probs["PublicTest"], labels["PublicTest"]), rng=seed)
# ```
#
# and return the normalised `result.x`. Do not touch PrivateTest: it is reported once the
# weights are fixed. (Weights fitted on the split they are scored on make that score
# optimistic — the check tells you if your weights were fitted there.)

# %%
def fit_weights(probs, labels, seed=0):
    """Weights (M,) >= 0 summing to 1, fitted with differential evolution on probs['PublicTest']."""
    ### BEGIN SOLUTION
    fit_probs, fit_labels = probs["PublicTest"], labels["PublicTest"]
    m = fit_probs.shape[0]
    result = differential_evolution(ensemble_nll, bounds=[(0.0, 1.0)] * m, args=(fit_probs, fit_labels),
                                    rng=seed, tol=1e-6)
    return result.x / result.x.sum()
    ### END SOLUTION


# %% tags=["grader"]
check_fit_weights(fit_weights)

# %% [markdown]
# Now fit the four simulated members and compare the weights with EmoNet's Table 1
# (paper constants, as printed), then score every ensemble on PrivateTest:

# %%
try:
    weights = fit_weights(probs, labels, seed=0)
except NotImplementedError:
    print("complete Exercises 1-3 first")
else:
    test_acc = lambda p: float((p.argmax(1) == labels["PrivateTest"]).mean())  # noqa: E731
    display(pd.DataFrame({"EmoNet Table 1 weight (paper)": EMONET_TABLE_1_WEIGHTS, "your weight": weights,
                          "PrivateTest accuracy": accuracy["PrivateTest"]}, index=names).round(3))
    uniform = np.ones(len(names))
    print(f"PrivateTest accuracy: best member {accuracy['PrivateTest'].max():.3f}, "
          f"plain mean {test_acc(weighted_average(probs['PrivateTest'], uniform)):.3f}, "
          f"weighted {test_acc(weighted_average(probs['PrivateTest'], weights)):.3f}")

# %% [markdown]
# ## Exercise 4 — flip test-time augmentation
#
# A face and its mirror image show the same expression. Predict both and average the
# **probabilities**:
#
# $$ p_\text{TTA}(x) = \tfrac12\big(\mathrm{softmax}(f(x)) + \mathrm{softmax}(f(\text{mirror}(x)))\big). $$
#
# `x` is a float batch (B, C, H, W) — channels, then height, then **width** — and `model(x)`
# returns logits (B, K). Mirroring swaps left and right: it reverses the width axis. Here
# is a face, its mirror image, and what reversing the *other* spatial axis does:

# %%
import matplotlib.pyplot as plt

from ferlib.data.synthetic import make_synthetic_faces

face = torch.as_tensor(make_synthetic_faces(n_per_class=3, seed=0).pixels[:1, None].astype(np.float32))
fig, axes = plt.subplots(1, 3, figsize=(6, 2.2))
for ax, (title, img) in zip(axes, [("x", face), ("x.flip(-1): mirror", face.flip(-1)),
                                   ("x.flip(-2): upside down", face.flip(-2))]):
    ax.imshow(img[0, 0], cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
plt.show()

# %%
def flip_tta(model, x):
    """(B, K) probabilities: the mean of softmax(model(x)) and softmax(model(x mirrored left-right))."""
    ### BEGIN SOLUTION
    with torch.no_grad():
        plain = torch.softmax(model(x), dim=1)
        mirrored = torch.softmax(model(x.flip(-1)), dim=1)  # the width axis
    return (plain + mirrored) / 2
    ### END SOLUTION


# %% tags=["grader"]
check_flip_tta(flip_tta)

# %% [markdown]
# ## Going further
#
# * Fit the weights with the **error** (1 − accuracy) as the objective instead of the NLL,
#   with seeds 0 … 4. Why do the weights change from seed to seed while the error does
#   not? (Chapter 06 plots both objectives over the simplex.)
# * `example_members(temperatures=(1, 0.3, 3, 1))` makes two members badly calibrated.
#   Refit: how do the weights move, and what happens if you average the members'
#   *logits* instead (`ferlib.evaluate.ensemble.logit_average_probabilities`)?
# * Fit your weights on PrivateTest, just once, and report PrivateTest accuracy. By how
#   much does it beat the honest number? Repeat with 200 samples per split instead of
#   1000: why does the gap grow?
# * Write the ten-crop TTA: pad the batch by 4 pixels of zeros, take the four corner
#   windows and the centre window of the input size, each also mirrored, and compare with
#   `ferlib.evaluate.tta.tta_views(x, "tencrop", margin=4)`.
