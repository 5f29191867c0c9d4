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
# Generated from solutions/lab07_transfer.py by `python -m ferlib.labs sync`; edit that file, not this one.

# %% [markdown]
# # Lab 07 — Transfer learning and feature fusion (exercise)
#
# EmoNet (§3.2, §5) starts from a pretrained convolutional block, keeps it frozen for five epochs
# while a new head learns, feeds the head a second input — the 2,728-value BOVW vector — and
# averages four networks with weights found by differential evolution. Three small pieces of that
# system are easy to get subtly wrong, and a wrong one still runs:
#
# 1. `freeze` — freeze the block so that *nothing* of it changes while the head trains:
#    no gradients, and BatchNorm in evaluation mode, even after `model.train()`;
# 2. `standardise_bovw` — put the BOVW columns on one scale with the **Training** split's
#    statistics;
# 3. `ensemble_report` — fit the ensemble's weights and choose the best member on **PublicTest**,
#    then score **PrivateTest** once.
#
# Chapter 07 explains each; the checks compare with `ferlib`'s reference and name the usual
# mistakes.

# %%
import numpy as np
import torch
from IPython.display import display
from torch import nn

from ferlib.checks import check_ensemble_report, check_freeze, check_standardise_bovw, completed

torch.set_num_threads(2)

# %% [markdown]
# ## Exercise 1 — freeze the conv block
#
# `model` has EmoNet's layout: `model.conv_block` (the pretrained block, with BatchNorm layers),
# then `model.dense` and `model.classifier` (the head). Write `freeze(model)` so that, for the
# frozen phase:
#
# * no parameter of `model.conv_block` gets a gradient (`requires_grad = False` — all of them,
#   BatchNorm's weight and bias included), while the head still trains;
# * the block's BatchNorm layers stay in **evaluation mode**: they normalise with the pretrained
#   running statistics and never update them. A trainer calls `model.train()` at the start of every
#   epoch, which calls `train(True)` on every child module — so a single `.eval()` is not enough.
#
# Hint: `nn.Module.train(mode)` sets `self.training` and calls `child.train(mode)` for each child.
# An instance attribute named `train` on the block takes the place of the method.

# %% tags=["raises-exception"]
def freeze(model):
    """Freeze model.conv_block: no gradients, and evaluation mode even after model.train()."""
    block = model.conv_block
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_freeze(freeze)

# %% [markdown]
# ## Your `freeze` on EmoNet's network
#
# The cell below builds chapter 07's network — EfficientNet-Lite0 with its ImageNet weights, at
# 64 px — freezes it with your function, and takes one training step on a few faces (real FER-2013
# when it is here, the synthetic faces otherwise). It counts what changed in the block and in the
# head, and compares with `ferlib`'s own `set_pretrained_frozen(True)`.

# %% tags=["raises-exception"]
from ferlib.data.dataset import stratified_subset
from ferlib.data.discovery import load_fer2013
from ferlib.data.normalize import MeanCentering
from ferlib.data.transforms import PRESETS
from ferlib.models.emonet import EmoNetFusion

ds = load_fer2013(verbose=False)
train = ds.split("Training")
faces = stratified_subset(train, 2, seed=0)
x = PRESETS["emonet"](64).eval_transform(MeanCentering.fit(train.pixels)(torch.from_numpy(faces.pixels).float().unsqueeze(1)))
y = torch.from_numpy(faces.labels)


def one_step_changes(net):
    before = {k: v.clone() for k, v in net.state_dict().items()}
    net.train()
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    loss = nn.functional.cross_entropy(net(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = net.state_dict()
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    return {"block tensors changed": sum(k.startswith("conv_block.") for k in moved),
            "head tensors changed": sum(not k.startswith("conv_block.") for k in moved)}


torch.manual_seed(0)
mine = EmoNetFusion(backbone="efficientnet-lite0", weights="imagenet")
torch.manual_seed(0)
reference = EmoNetFusion(backbone="efficientnet-lite0", weights="imagenet")
reference.set_pretrained_frozen(True)
with completed("Exercise 1"):
    freeze(mine)
    print(f"your freeze:            {one_step_changes(mine)}")
print(f"set_pretrained_frozen:  {one_step_changes(reference)}  [{ds.tag}]")

# %% [markdown]
# ## Exercise 2 — standardise the BOVW vector with Training's statistics
#
# The BOVW vector puts 2,592 HOG values (in [0, 1]) beside 136 landmark coordinates (in pixels,
# 0..48). Write `standardise_bovw(train_bovw, x)`: standardise each column of `x` (M, D) with the
# **mean and standard deviation of that column over `train_bovw`** (N, D), the Training split's
# vectors:
#
# $$ z_{ij} = \frac{x_{ij} - \mu_j}{\max(\sigma_j, \varepsilon)}, \qquad
#    \mu_j = \tfrac1N \sum_n t_{nj}, \quad \sigma_j = \sqrt{\tfrac1N \sum_n (t_{nj} - \mu_j)^2}, \quad
#    \varepsilon = 10^{-6}. $$
#
# The floor $\varepsilon$ matters: a column that does not vary over Training (a HOG cell that is
# always empty) has $\sigma_j = 0$. Never use the statistics of `x` itself — a test face must be
# standardised with numbers fixed before it was seen, and one face alone has no spread at all.

# %% tags=["raises-exception"]
def standardise_bovw(train_bovw, x, eps=1e-6):
    """x standardised column by column with train_bovw's mean and (population) std, the std floored at eps."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_standardise_bovw(standardise_bovw)

# %% [markdown]
# ## On real faces
#
# The BOVW vectors of a few Training and PublicTest faces (dlib's landmarks and EmoNet's
# sliding-window HOG, chapter 01), standardised with your function, and compared with what
# `EmoNetFusion` computes from the statistics it stores in its checkpoints:

# %% tags=["raises-exception"]
from ferlib.features import EMONET_HOG_LENGTH, emonet_bovw_features

train_faces = stratified_subset(train, 6, seed=1).pixels
test_faces = stratified_subset(ds.split("PublicTest"), 2, seed=1).pixels
train_bovw, test_bovw = emonet_bovw_features(train_faces), emonet_bovw_features(test_faces)
net = EmoNetFusion(backbone="efficientnet-lite0", weights="none", bovw=True)
net.fit_side_inputs({"bovw": train_bovw})
theirs = ((torch.from_numpy(test_bovw) - net.bovw_mean) / net.bovw_std).numpy()
with completed("Exercise 2"):
    z = standardise_bovw(train_bovw, test_bovw)


def share(v):
    return float(np.mean((v[:, EMONET_HOG_LENGTH:] ** 2).sum(1) / (v ** 2).sum(1)))


print(f"{len(test_bovw)} PublicTest vectors; largest difference from EmoNetFusion's: {np.abs(z - theirs).max():.2g}")
print(f"landmarks' share of the vector's squared length: raw {share(test_bovw.astype(float)):.0%}, "
      f"standardised {share(z):.0%} [{ds.tag}]")

# %% [markdown]
# ## Exercise 3 — the ensemble: fit on PublicTest, score PrivateTest once
#
# Four members have given their probabilities on the three splits: `probs[split]` of shape
# (M members, N faces, K classes) and `labels[split]` (N,), for `"Training"`, `"PublicTest"` and
# `"PrivateTest"`. `fit_weights(p, y, split)` returns differential-evolution weights (M,) fitted on
# the probabilities `p` and labels `y` you give it, `split` naming where they come from
# (`ferlib.evaluate.ensemble.differential_evolution_weights`, chapter 06).
#
# Write `ensemble_report(probs, labels, fit_weights)` returning a dict of PrivateTest numbers:
#
# * `"weights"`: the weights, fitted on **PublicTest**;
# * `"de"`: the PrivateTest accuracy of the weighted average $\sum_m w_m p_m$;
# * `"mean"`: the PrivateTest accuracy of the plain average;
# * `"best_single"`: the PrivateTest accuracy of the member with the best **PublicTest** accuracy.
#
# Accuracies as fractions (argmax of the probabilities against the labels). Why not Training?
# The members have seen those faces.

# %% tags=["raises-exception"]
def ensemble_report(probs, labels, fit_weights):
    """DE weights and the best member chosen on PublicTest; PrivateTest accuracies of DE, mean and best member."""
    raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_ensemble_report(ensemble_report)

# %% [markdown]
# ## EmoNet's four members, simulated
#
# `ferlib.checks.ensemble.example_members` simulates four calibrated members with EmoNet Table 2's
# test accuracies (correlated errors, as real members have). Your report on them, with the weights
# beside EmoNet's Table 1:

# %% tags=["raises-exception"]
import pandas as pd

from ferlib.checks.ensemble import EMONET_TABLE_1_WEIGHTS, example_members
from ferlib.evaluate.ensemble import differential_evolution_weights

names, sim_probs, sim_labels = example_members(n_per_split=1000, seed=0)


def fit_weights(p, y, split):
    return differential_evolution_weights(p, y, split=split, seed=0)


with completed("Exercise 3"):
    report = ensemble_report(sim_probs, sim_labels, fit_weights)
display(pd.DataFrame({"member": names, "DE weight (simulated members)": np.round(report["weights"], 3),
                      "EmoNet Table 1": EMONET_TABLE_1_WEIGHTS}).set_index("member"))
print(f"PrivateTest (simulated): DE {report['de']:.3f}, mean {report['mean']:.3f}, best single member "
      f"{report['best_single']:.3f}")

# %% [markdown]
# ## Going further
#
# * Freeze with `requires_grad_(False)` alone and run the real-network cell again: how many of the
#   block's tensors change in one step, and which ones?
# * Register a forward pre-hook that calls `module.eval()` instead of replacing `train`. Does the
#   grader accept it? What does `model.conv_block.training` say after `model.train()`?
# * Standardise with `x`'s own statistics and feed one face: what does the network see?
# * Fit the weights on PrivateTest in the simulation and compare the two `de` numbers. Which would a
#   new set of faces reproduce?
