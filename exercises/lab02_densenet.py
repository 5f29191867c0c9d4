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
# Generated from solutions/lab02_densenet.py by `python -m ferlib.labs sync`; edit that file, not this one.

# %% [markdown]
# # Lab 02 — DenseNet from blocks (exercise)
#
# Chapter 02 built DenseNet-BC from `ferlib`'s modules. Here you write the three
# pieces yourself, in PyTorch, and then assemble Table I's DenseNet-BC from them:
#
# 1. the DenseNet-B **bottleneck layer** (densenet §III-A, Fig. 2);
# 2. the **transition** with compression θ (§III-A);
# 3. the **dense block** x_l = H_l([x_0, …, x_{l−1}]) built from your bottleneck layer.
#
# Replace each `raise NotImplementedError()` with your code and run the check below it.
# A check builds your module and `ferlib`'s for several sizes and compares output
# shapes, parameter counts, and the outputs themselves after copying `ferlib`'s weights
# into your module. It prints `PASS` with the tolerance it used, or says what is wrong
# and gives a hint.
#
# **How the weights are copied.** Not by name: the check takes `ferlib`'s tensors of
# each kind (`weight`, `bias`, `running_mean`, `running_var`) and shape, in order, and
# puts them into your module's tensors of the same kind and shape, in the order your
# `__init__` creates them. So name your attributes as you like, but build the layers
# from `nn.BatchNorm2d` and `nn.Conv2d(..., bias=False)` modules (convolutions have no
# bias: the BatchNorm that follows them has one), one per operation, and create the
# first BN before the second.
#
# **One convention** (the one `ferlib` uses, see `ferlib.models.densenet`): a layer
# returns only its k *new* feature maps H_l(x); the *block* concatenates.

# %%
import math

import torch
from torch import nn

from ferlib.checks import check_bottleneck, check_dense_block, check_densenet_bc, check_transition

torch.manual_seed(0)

# %% [markdown]
# ## Exercise 1 — the bottleneck layer
#
# A dense layer's composite function is BN → ReLU → Conv 3×3 producing k maps (k is the
# growth rate). Its input has many more channels than k, so DenseNet-B first squeezes
# it with a 1×1 convolution to 4k maps:
#
# $$ H_l(x) = \mathrm{Conv}_{3\times3}^{4k\to k}\Big(\mathrm{ReLU}\big(\mathrm{BN}\big(\mathrm{Conv}_{1\times1}^{c\to 4k}(\mathrm{ReLU}(\mathrm{BN}(x)))\big)\big)\Big) $$
#
# with `in_channels` = c. The 3×3 conv uses `padding=1`, so height and width do not
# change. The layer has 2c (first BN) + 4k·c (1×1 conv) + 2·4k (second BN) + 9·4k·k
# (3×3 conv) parameters; with c = 24, k = 12 (Table I's first layer) that is 6,480.
#
# Return the k new maps only, shape (B, k, H, W). One trap: `nn.ReLU(inplace=True)`
# applied directly to the input would overwrite x — which a dense block also passes on
# to its output. After a BN it is safe (BN returns a new tensor).

# %% tags=["raises-exception"]
class MyBottleneck(nn.Module):
    """DenseNet-B layer: BN-ReLU-Conv1×1 (4k maps), BN-ReLU-Conv3×3 (k maps); returns the k new maps."""

    def __init__(self, in_channels, growth_rate):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x):
        raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_bottleneck(MyBottleneck)

# %% [markdown]
# ## Exercise 2 — the transition
#
# Between two dense blocks, a transition halves the spatial size and (optionally)
# compresses the channels: BN → ReLU → Conv 1×1 to ⌊θ·p⌋ maps → 2×2 average pooling
# with stride 2. Here p = `in_channels` is the number of maps the preceding block
# produced and θ = `compression` ∈ (0, 1]; θ = 0.5 is the "C" in DenseNet-BC, θ = 1
# keeps every channel.
#
# Use the floor: ⌊0.5 · 27⌋ = 13, whereas `round` gives 14 and `ceil` gives 14. (The
# ReLU is not in the paper's text, but in every reference implementation; `ferlib`'s
# docstring explains why. It has no parameters.)

# %% tags=["raises-exception"]
class MyTransition(nn.Module):
    """Transition: BN-ReLU-Conv1×1 to ⌊θ·p⌋ maps, then 2×2 average pooling, stride 2."""

    def __init__(self, in_channels, compression):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x):
        raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_transition(MyTransition)

# %% [markdown]
# ## Exercise 3 — the dense block
#
# A block of L layers, each receiving the concatenation of all earlier feature maps:
#
# $$ x_l = H_l([x_0, x_1, \dots, x_{l-1}]), \qquad l = 1, \dots, L, $$
#
# where x_0 is the block's input (k_0 channels) and [·] concatenates on the **channel
# axis** — axis 1 of a (B, C, H, W) tensor. Layer l (counting from 0 in Python) therefore
# gets k_0 + l·k input channels, and the block returns [x_0, x_1, …, x_L]: k_0 + L·k
# channels, input first. Build the layers from your `MyBottleneck` in an `nn.ModuleList`
# (a plain Python list would hide their parameters from PyTorch).

# %% tags=["raises-exception"]
class MyDenseBlock(nn.Module):
    """``num_layers`` bottleneck layers, densely connected; output [x_0, …, x_L] on the channel axis."""

    def __init__(self, num_layers, in_channels, growth_rate):
        super().__init__()
        raise NotImplementedError()

    def forward(self, x):
        raise NotImplementedError()


# %% tags=["grader", "raises-exception"]
check_dense_block(MyDenseBlock)

# %% [markdown]
# ## Putting it together — Table I's DenseNet-BC
#
# The last check builds DenseNet-BC (L = 12 layers per block, k = 12, θ = 0.5) from
# `ferlib`'s stem, *your* three dense blocks and two transitions, and `ferlib`'s last
# transition and classifier; runs a 42×42 image through it; and compares the layer
# sizes with Table I, the parameter count with `ferlib.models.densenet.densenet_bc()`
# and, with the same weights, the logits.

# %% tags=["grader", "raises-exception"]
check_densenet_bc(MyDenseBlock, MyTransition)

# %% [markdown]
# ## To think about
#
# 1. Your bottleneck layer returns H(x) only. Rewrite (on paper) the block's `forward`
#    for the other convention, where a layer returns `torch.cat([x, H(x)], 1)`. Which
#    one makes the layer reusable outside a dense block?
# 2. Each `torch.cat` in your block copies all earlier maps. How many channels are
#    copied in total over a block of L layers, as a function of k_0, k and L? What does
#    that mean for memory during training?
# 3. Exercise 2 with θ = 0.5 and p = 27 gives 13 maps. Does the choice between floor
#    and round change any size in Table I's networks? (Compute p for each transition of
#    DenseNet-BC with k = 12 and of WideDenseNet-BC with k = 32.)
