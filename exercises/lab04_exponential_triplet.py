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
# Generated from solutions/lab04_exponential_triplet.py by `python -m ferlib.labs sync`; edit that file, not this one.

# %% [markdown]
# # Lab 04 — Exponential triplet loss (exercise)
#
# DNNRL (Guo et al. 2016) trains its network with an *exponential* triplet loss and then
# classifies with k-NN on the embeddings. Here you write the three pieces of its training
# signal yourself:
#
# 1. the loss (DNNRL Eq. 1, with the sign that the rest of the paper requires);
# 2. its gradients with respect to the three embeddings (DNNRL Eq. 2–4);
# 3. batch-hard mining: which triplets of a batch to feed it.
#
# **Use NumPy** (float64 arrays in, a NumPy number or arrays out). A batch of triplets is
# three arrays `anchor`, `positive`, `negative` of shape (N, d): row $i$ holds
# $f(p_i)$, $f(p_i^+)$ (same class as the anchor) and $f(p_i^-)$ (another class).
# Mining gets `embeddings` of shape (B, d) and integer `labels` of shape (B,).
#
# Replace each `raise NotImplementedError()` with your code and run the check after it:
# it compares your function with `ferlib.losses.triplet` on small batches, prints `PASS`
# with the tolerance it used (values within atol = 1e-8; gradients within a relative error
# of 1e-7 of a numerical gradient), or names the mistake and gives a hint.

# %%
import numpy as np

from ferlib.checks import check_batch_hard_triplets, check_exponential_triplet_grad, check_exponential_triplet_loss

# %% [markdown]
# ## Exercise 1 — the loss (DNNRL Eq. 1)
#
# With squared Euclidean distances
# $d_i^+ = \lVert f(p_i) - f(p_i^+)\rVert^2$ and $d_i^- = \lVert f(p_i) - f(p_i^-)\rVert^2$,
# call $r_i = d_i^- - d_i^+$ the *relative distance*: positive when the triplet is
# correctly ordered (the negative is farther than the positive).
#
# The paper prints $L_i = e^{-\alpha \max\{d_i^+ - d_i^- - \gamma,\ 0\}}$. Read literally
# that is 1, with zero gradient, for *every* correctly ordered triplet, and where it is
# active it is minimised by making $r_i$ smaller — the wrong way. The gradients Eq. 2–4
# are non-zero exactly when $d_i^- - d_i^+ > \gamma$, Fig. 3 shows a loss that falls as the
# relative distance grows, and γ is described as a margin that stops the loss from learning
# triplets whose relative distance is below γ. All of that fits one loss only:
#
# $$ L = \sum_i L_i, \qquad L_i = e^{-\alpha \max\{r_i - \gamma,\ 0\}}, \qquad r_i = d_i^- - d_i^+ . $$
#
# Return one number: the **sum** over the N triplets. Worked example: anchor (0, 0),
# positive (1, 0), negative (0, 2), α = 0.2, γ = 0 gives $d^+ = 1$, $d^- = 4$, $r = 3$
# and $L = e^{-0.6}$.

# %% tags=["raises-exception"]
def exponential_triplet_loss(anchor, positive, negative, alpha, gamma):
    """L = sum_i exp(-alpha * max(d-_i - d+_i - gamma, 0)), squared distances: (N, d) x 3 -> float."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_exponential_triplet_loss(exponential_triplet_loss)

# %% [markdown]
# ## Exercise 2 — the gradients (DNNRL Eq. 2–4)
#
# Where $r_i \le \gamma$ the term $L_i = e^0$ is constant: its gradient is 0. Where
# $r_i > \gamma$, $L_i = e^{-\alpha(r_i - \gamma)}$, so $\partial L_i/\partial r_i = -\alpha\Delta_i$
# with $\Delta_i = e^{-\alpha (r_i - \gamma)}$ — the paper prints Δ without these
# parentheses, which cannot be meant. The chain rule through $r_i = d_i^- - d_i^+$ gives
#
# $$ \frac{\partial L_i}{\partial f(p_i)} = -2\alpha\Delta_i\,\bigl(f(p_i^+) - f(p_i^-)\bigr), \quad
#    \frac{\partial L_i}{\partial f(p_i^+)} = -2\alpha\Delta_i\,\bigl(f(p_i) - f(p_i^+)\bigr), \quad
#    \frac{\partial L_i}{\partial f(p_i^-)} = -2\alpha\Delta_i\,\bigl(f(p_i^-) - f(p_i)\bigr). $$
#
# Derive one of them on paper before you code it. Return `(dA, dP, dN)`, each of shape
# (N, d): row $i$ is the gradient of $L$ with respect to row $i$ of that input. The check
# compares with a numerical gradient of the loss (central differences, float64) and
# prints the relative error; it expects less than 1e-7.

# %% tags=["raises-exception"]
def exponential_triplet_grad(anchor, positive, negative, alpha, gamma):
    """DNNRL Eq. 2-4: (dL/d anchor, dL/d positive, dL/d negative), each (N, d)."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_exponential_triplet_grad(exponential_triplet_grad)

# %% [markdown]
# ## Exercise 3 — batch-hard mining
#
# A batch of B embeddings holds far more triplets than the network needs. *Batch-hard*
# mining (Hermans et al. 2017) keeps one per anchor: the **farthest positive** (same
# class, not the anchor itself) and the **nearest negative** (any other class). Anchors
# with no positive or no negative in the batch are skipped.
#
# Build the (B, B) matrix of squared distances, a same-class mask and the identity mask;
# `np.where(mask, d, -np.inf).argmax(1)` picks the farthest positive in one line, the
# same with `np.inf` and `argmin` the nearest negative. Return three integer arrays
# `(a_idx, p_idx, n_idx)` of equal length, one entry per kept anchor (any order).

# %% tags=["raises-exception"]
def batch_hard_triplets(embeddings, labels):
    """Per anchor: farthest positive and nearest negative; (B, d), (B,) -> (a_idx, p_idx, n_idx)."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_batch_hard_triplets(batch_hard_triplets)

# %% [markdown]
# ## What the three pieces say together
#
# An untrained network maps faces to embeddings that barely depend on the expression.
# Take such a batch — random 16-D vectors, 128 of them, 7 classes — mine it and count
# how many mined triplets the exponential loss learns from with γ = 0, as in the paper
# (a triplet gives a gradient iff $r > \gamma$). The cell uses `ferlib`'s versions of
# your functions (`ferlib.losses.triplet`), so it runs before you have written yours.

# %%
import torch

from ferlib.losses.triplet import mine_triplets, relative_distance

generator = torch.Generator().manual_seed(0)
embeddings = torch.randn(128, 16, generator=generator)
labels = torch.randint(0, 7, (128,), generator=generator)
for strategy in ("batch-hard", "all", "semi-hard"):
    a, p, n = mine_triplets(embeddings, labels, strategy, margin=0.2)
    r = relative_distance(embeddings[a], embeddings[p], embeddings[n])
    print(f"{strategy:>10}: {len(a):6d} triplets, {(r > 0).double().mean().item():6.1%} with a non-zero gradient")

# %% [markdown]
# If the batch-hard share printed above is zero, batch-hard mining gives the exponential
# loss nothing to learn from: the hardest triplet of each anchor is wrongly ordered
# ($r < 0 = \gamma$), and this loss ignores wrongly ordered triplets. Semi-hard mining
# keeps the triplets with $0 < r <$ margin, exactly those just past the margin where the
# gradient is largest; that is why `ferlib`'s `ExponentialTripletConfig` mines semi-hard.
#
# ## Going further
#
# * Plot $L_i$ and $|\partial L_i / \partial r_i|$ against $r$ for α = 0.2 and γ = 0 and 0.5
#   (the paper's Fig. 3), and the same for Eq. 1 as printed
#   (`ferlib.losses.triplet.exponential_triplet_loss_as_printed`).
# * Write semi-hard mining (FaceNet: $d^+ < d^- < d^+ + m$, the hardest such negative per
#   anchor–positive pair) and compare with `ferlib.losses.triplet.mine_triplets(...,
#   "semi-hard")` on torch tensors.
# * FaceNet's hinge $\max(d^+ - d^- + m, 0)$ learns from exactly the triplets this loss
#   ignores. What does each do to a triplet with $r = -1$? With $r = 5$?
