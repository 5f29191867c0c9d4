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
# Generated from solutions/lab03_center_loss.py by `python -m ferlib.labs sync`; edit that file, not this one.

# %% [markdown]
# # Lab 03 — Center loss (exercise)
#
# Chapter 03 used `ferlib`'s center loss. Here you write its three pieces yourself:
#
# 1. the loss $L_C = \tfrac12 \sum_i \lVert x_i - c_{y_i}\rVert^2$ (densenet Eq. 2);
# 2. its gradient with respect to the features, $\partial L_C/\partial x_i = x_i - c_{y_i}$ (Eq. 3);
# 3. Wen et al.'s center update (Eq. 4 and 6).
#
# **Use NumPy** (float64 arrays in, a NumPy number or array out). `features` has shape
# (m, d) — one deep feature per row — `labels` is an integer array of shape (m,) with
# values 0 … K−1, and `centers` has shape (K, d), one row per class. In this lab $L_C$
# is the **sum** over the batch, exactly Eq. 2 (ferlib's default divides by m; see
# chapter 03, §1).
#
# Replace each `raise NotImplementedError()` with your code and run the check after it:
# it compares your function with `ferlib`'s on small batches — including a class that is
# absent from the batch — prints `PASS` with the tolerance it used, or says what is
# wrong and gives a hint.

# %%
import numpy as np

from ferlib.checks import check_center_loss_forward, check_center_loss_grad, check_center_update

# %% [markdown]
# ## Exercise 1 — the loss (Eq. 2)
#
# $$ L_C = \frac12 \sum_{i=1}^{m} \lVert x_i - c_{y_i} \rVert_2^2 $$
#
# `centers[labels]` gives each sample's own center, row by row (NumPy fancy indexing).
# Return one number. On the chapter's worked example — centers (0, 0), (2, 2), (5, −5);
# features (2, 0), (0, 4) of class 0 and (4, 2) of class 1 — the answer is 12.

# %% tags=["raises-exception"]
def center_loss_forward(features, labels, centers):
    """1/2 sum_i ||x_i - c_{y_i}||^2 over the batch: (m, d), (m,), (K, d) -> float."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_center_loss_forward(center_loss_forward)

# %% [markdown]
# ## Exercise 2 — the gradient (Eq. 3)
#
# Derive $\partial L_C / \partial x_i$ on paper first: only the $i$-th term of the sum
# contains $x_i$, and the ½ cancels the 2 from the square. Return an array shaped like
# `features`: row $i$ is the gradient with respect to $x_i$. The check compares it with a
# numerical gradient of Eq. 2 (central differences, `ferlib.numerics.numerical_gradient`)
# and tells you the relative error it expects in float64.

# %% tags=["raises-exception"]
def center_loss_grad(features, labels, centers):
    """dL_C/dx_i = x_i - c_{y_i}: (m, d), (m,), (K, d) -> (m, d)."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_center_loss_grad(center_loss_grad)

# %% [markdown]
# ## Exercise 3 — the center update (Eq. 4, 6)
#
# For each class $j$, with $n_j = \sum_i \delta(y_i = j)$ the number of its samples in
# the batch,
#
# $$ \Delta c_j = \frac{\sum_{i=1}^m \delta(y_i = j)\,(c_j - x_i)}{1 + n_j}, \qquad
# c_j^\text{new} = c_j - \alpha\,\Delta c_j . $$
#
# Return the new centers, shape (K, d), **without modifying the arrays passed in**
# (start from a copy). A class absent from the batch keeps its center. A loop over the
# K classes is fine; `np.bincount` and `np.add.at` do it without one.
#
# On the worked example with $\alpha = 0.5$ the new centers are $(\tfrac13, \tfrac23)$,
# $(2.5, 2)$ and $(5, -5)$.

# %% tags=["raises-exception"]
def center_update(features, labels, centers, alpha):
    """Wen et al.'s rule, Eq. 4 and 6: returns new centers (K, d); the inputs are left unchanged."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_center_update(center_update)

# %% [markdown]
# ## Going further
#
# * Apply your `center_update` many times to one fixed batch. Show that the centers
#   converge to the class means of the batch for α = 0.5 and α = 1.9, and not for
#   α = 2.5 with large classes. By what factor does the distance shrink per step?
# * Write the `"mean"` version of the loss and gradient (divide by m) and compare with
#   `ferlib.losses.center.center_loss(..., reduction="mean")` on torch tensors.
# * Make the centers a parameter instead and take one SGD step on $L_C$ with
#   learning rate η. Which α makes your rule take the same step for a class with
#   $n_j$ samples? Check your answer with `ferlib.losses.center.rule_alpha_from_sgd`.
