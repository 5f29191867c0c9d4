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
# Generated from solutions/lab00_data.py by `python -m ferlib.labs sync`; edit that file, not this one.

# %% [markdown]
# # Lab 00 — FER-2013 data (exercise)
#
# Chapter 00 used `ferlib`'s versions of three small functions. Here you write them
# yourself:
#
# 1. the per-pixel mean and standard deviation over the Training images (densenet §IV-C);
# 2. per-pixel standardisation with those statistics;
# 3. the FER+ majority-vote label of one image from its ten crowd votes (ferplus).
#
# Replace each `raise NotImplementedError()` with your code and run the cell after it:
# the check compares your function with `ferlib`'s on small inputs, prints `PASS` with
# the tolerance it used, or tells you what is wrong and gives a hint. Use NumPy only.

# %%
import numpy as np

from ferlib.checks import check_majority_label, check_pixel_statistics, check_standardize
from ferlib.data.classes import FERPLUS_VOTE_COLUMNS

# %% [markdown]
# ## Exercise 1 — per-pixel statistics
#
# `train_pixels` is a uint8 array of shape (N, H, W): N Training images. Return two
# float arrays of shape (H, W): for each pixel position (i, j), the mean and the
# standard deviation of that pixel over the N images,
#
# $$ \mu_{ij} = \frac1N \sum_n x_{n,ij}, \qquad \sigma_{ij} = \sqrt{\frac1N \sum_n (x_{n,ij} - \mu_{ij})^2}. $$
#
# Two traps: summing uint8 values overflows (convert to float first), and the
# statistics are the *population* standard deviation (divide by N, not N − 1).

# %% tags=["raises-exception"]
def pixel_statistics(train_pixels):
    """Per-pixel mean and standard deviation over images: uint8 (N, H, W) -> (mean (H, W), std (H, W))."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_pixel_statistics(pixel_statistics)

# %% [markdown]
# ## Exercise 2 — standardise with the Training statistics
#
# Return `(pixels - mean) / std` as a float array of the same shape as `pixels`
# (N, H, W). `mean` and `std` are the Training statistics from Exercise 1: use them as
# given, for every split — never recompute them from the images you are standardising.
# The check verifies that standardised Training has mean 0 and standard deviation 1 at
# every pixel, and that other images are standardised with the statistics passed in.

# %% tags=["raises-exception"]
def standardize(pixels, mean, std):
    """Per-pixel standardisation: uint8 (N, H, W) with Training mean/std (H, W) -> float (N, H, W)."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_standardize(standardize)

# %% [markdown]
# ## Exercise 3 — the FER+ majority label
#
# `votes` is an integer array of 10 counts, one per column of `fer2013new.csv`, in this
# order (index: name):

# %%
print(", ".join(f"{i}: {name}" for i, name in enumerate(FERPLUS_VOTE_COLUMNS)))

# %% [markdown]
# The FER+ rule (the FER+ authors' code, used by ferplus):
#
# 1. remove single votes as noise: a count of 1 becomes 0;
# 2. the class with the most remaining votes wins **if it has more than half** of the
#    remaining votes (strictly);
# 3. otherwise — or if nothing is left, or if the winner is `unknown` (8) or `NF` (9) —
#    there is no label: return `-1`.
#
# Return the winner's index (0–7) as an `int`, or `-1`.

# %% tags=["raises-exception"]
def majority_label(votes):
    """FER+ majority vote: 10 vote counts -> class index 0..7, or -1 when there is no usable majority."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_majority_label(majority_label)

# %% [markdown]
# ## Going further
#
# * Apply `pixel_statistics` to the real Training images (`ferlib.data.discovery.load_fer2013()`
#   then `.split("Training").pixels`) and compare with `ferlib.data.normalize.PixelStandardizer.fit`.
# * Count how many FER+ rows per split your `majority_label` keeps
#   (`ferlib.data.ferplus.read_ferplus_votes`), and compare with chapter 00, section 6.
