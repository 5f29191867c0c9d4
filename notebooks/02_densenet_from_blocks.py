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
# # 02 — DenseNet from blocks
#
# The densenet paper (Dinh et al., "Discriminative deep feature learning for facial
# emotion recognition") trains four DenseNets on FER-2013 — DenseNet, DenseNet-BC,
# WideDenseNet and WideDenseNet-BC — and adds center loss (chapter 03). This chapter
# builds the networks one piece at a time and checks every number against the modules
# themselves:
#
# 1. dense connectivity x_l = H_l([x_0, …, x_{l−1}]) and the composite function: a dense
#    layer, a bottleneck layer, a dense block and a transition, each run on a tensor;
# 2. channel bookkeeping: k_0 + k·l, and compression ⌊θ·p⌋;
# 3. depth 3L + 4 and Table I regenerated from the model — and why the input is 42×42;
# 4. how the growth rate k, the bottleneck (B) and compression (C) move parameters and FLOPs;
# 5. a training run driven by the profile (quick here; the paper's recipe with
#    `FERLIB_PROFILE=full` on a GPU);
# 6. the paper's Table II beside our full-profile results, when they exist.
#
# The code is `ferlib.models.densenet`; its docstring records every choice the paper
# leaves open (input size, the ReLU in the transition, initialisation). Lab 02 has you
# write the bottleneck layer, the transition and the dense block yourself.

# %% tags=["hide-input"]
# %matplotlib inline
import math
import tempfile
import time
from dataclasses import replace as dc_replace
from pathlib import Path

import pandas as pd
import torch
from IPython.display import Markdown, display
from torch import nn

from ferlib.data.discovery import DATA_ENV, load_fer2013
from ferlib.data.readers import IMAGE_SIZE
from ferlib.data.transforms import get_augment
from ferlib.evaluate.ensemble import mean_softmax
from ferlib.losses.base import CrossEntropy
from ferlib.models.densenet import (DENSENET_VARIANTS, PAPER_INPUT_SIZE, BottleneckLayer, DenseBlock, DenseLayer,
                                    DenseNet, Transition, densenet, densenet_bc)
from ferlib.models.summary import count_flops, count_parameters, layer_table, variant_table
from ferlib.profiles import PROFILE_ENV, get_profile
from ferlib.train.build import build_optimizer
from ferlib.train.recipes import get_recipe
from ferlib.evaluate.wording import difference_phrase
from ferlib.jobs.tables import paper_vs_ours, run_label
from ferlib.train.results import run_recipe
from ferlib.runs import find_run, find_runs
from ferlib.train.schedules import build_schedule
from ferlib.train.trainer import KEEP_LAST
from ferlib.viz import model_plots
from ferlib.viz.tables import paper_vs_ours_long, wrapped
from ferlib.viz.source import show_code

T0 = time.perf_counter()
PROFILE = get_profile()
torch.manual_seed(0)
pd.set_option("display.width", 140)
pd.set_option("display.max_colwidth", 100)
print(f"profile: {PROFILE}  (set {PROFILE_ENV}=full for the paper's budgets; sections 1–4 are the same in both)")


def io_summary(module, x):
    """Run ``module`` on ``x`` and report shapes and parameters (eval mode: BN uses its running statistics)."""
    module.eval()
    with torch.no_grad():
        y = module(x)
    print(f"{type(module).__name__}: input {tuple(x.shape)} -> output {tuple(y.shape)}, "
          f"{count_parameters(module):,} parameters")
    return y


def param_breakdown(module):
    """One row per parameter tensor: where it lives, its shape and size."""
    return pd.DataFrame([{"tensor": n, "shape": tuple(p.shape), "numel": p.numel()}
                         for n, p in module.named_parameters()])


# %% [markdown]
# ## 1. Dense connectivity
#
# In a plain convolutional network layer l sees only its predecessor, x_l = H_l(x_{l−1});
# a ResNet adds an identity path, x_l = H_l(x_{l−1}) + x_{l−1}. DenseNet (§III-A, after
# Huang et al.) gives layer l **all** earlier feature maps of its block, *concatenated*:
#
# $$ x_l = H_l\big([x_0, x_1, \dots, x_{l-1}]\big), $$
#
# where x_0 is the block's input and [·] stacks feature maps along the channel axis. Nothing
# is summed, so nothing is lost: every layer can read the raw output of every earlier
# layer, and the gradient reaches early layers directly.
#
# H_l is the **composite function** BN → ReLU → Conv 3×3 with k output maps; k is the
# **growth rate**, the amount of new information each layer adds to the block's "global
# state". Convolutions have no bias (the next BatchNorm would cancel it).
#
# ### A dense layer
#
# Table I's first block receives the stem's 2k = 24 maps of 21×21, with k = 12. One dense
# layer on that input:

# %%
k0, k = 24, 12
x0 = torch.randn(8, k0, 21, 21)
layer = DenseLayer(k0, k)
print(layer)
h = io_summary(layer, x0)
param_breakdown(layer)

# %% [markdown]
# The layer returns only its **k new maps** (in `ferlib` a layer computes H_l; the *block*
# does the concatenation). Its parameters: the BN has a scale and a shift per input
# channel (2·k_0), the 3×3 conv 3·3·k_0·k weights:

# %%
formula = 2 * k0 + 9 * k0 * k
print(f"2·k0 + 9·k0·k = {formula:,}   count_parameters = {count_parameters(layer):,}")
assert formula == count_parameters(layer)

# %% [markdown]
# ### A bottleneck layer (the "B")
#
# A layer deep in a block has many more inputs than the k maps it produces. DenseNet-B puts
# a 1×1 convolution to 4k maps in front of the 3×3 conv (Fig. 2):
# BN → ReLU → Conv 1×1 (4k) → BN → ReLU → Conv 3×3 (k).

# %%
bottleneck = BottleneckLayer(k0, k)
print(bottleneck)
h = io_summary(bottleneck, x0)
formula = 2 * k0 + 4 * k * k0 + 2 * 4 * k + 9 * 4 * k * k
print(f"2·k0 + 4k·k0 + 2·4k + 9·4k·k = {formula:,}   count_parameters = {count_parameters(bottleneck):,}")
assert formula == count_parameters(bottleneck)

# %% [markdown]
# With c input channels the plain layer costs 2c + 9ck parameters and the bottleneck
# layer 2c + 4kc + 8k + 36k²: the bottleneck only pays off once c is large. Here is every
# layer of the first block, plain and bottleneck, counted from the modules:

# %%
L = 12
plain_block, b_block = DenseBlock(L, k0, k, bottleneck=False), DenseBlock(L, k0, k, bottleneck=True)
per_layer = pd.DataFrame({
    "layer l": range(1, L + 1),
    "input channels": [lay.norm.num_features for lay in plain_block.layers],
    "params, DenseLayer": [count_parameters(lay) for lay in plain_block.layers],
    "params, BottleneckLayer": [count_parameters(lay) for lay in b_block.layers],
    "MFLOPs, DenseLayer": [count_flops(lay, (lay.norm.num_features, 21, 21)) / 1e6 for lay in plain_block.layers],
    "MFLOPs, BottleneckLayer": [count_flops(lay, (lay.norm1.num_features, 21, 21)) / 1e6 for lay in b_block.layers],
}).set_index("layer l")
break_even = (8 * k + 36 * k * k) / (9 * k - 4 * k)  # 2c + 9ck = 2c + 4kc + 8k + 36k²
print(f"the bottleneck has fewer parameters once c > (8k + 36k²)/(5k) = {break_even:.1f} input channels (k = {k})")
per_layer.round(2)

# %% [markdown]
# ### A dense block
#
# `DenseBlock` runs its layers in turn, each on the running concatenation, and appends the
# result — dimension 1 is the channel axis of a (B, C, H, W) tensor:

# %%
show_code(DenseBlock.forward)

# %% [markdown]
# The block's output therefore *starts with its input, unchanged*:

# %%
y = io_summary(b_block, x0)
print("first k0 output channels are the input:", torch.equal(y[:, :k0], x0))
assert torch.equal(y[:, :k0], x0)

# %% [markdown]
# ### A transition
#
# Between blocks, a transition shrinks the maps: BN → ReLU → Conv 1×1 → 2×2 average
# pooling with stride 2. The paper's text says "batch normalization layer and a 1×1
# convolutional layer"; `ferlib` follows every reference implementation and puts a ReLU
# between them (without it, BN then a 1×1 conv is a single linear map at inference; a
# ReLU has no parameters, so no count below changes). Its parameters: 2p for the BN, p·p'
# for the conv, where p is the number of input maps and p' the number of output maps.

# %%
p = y.shape[1]
for theta in (1.0, 0.5):
    trans = Transition(p, theta)
    out = io_summary(trans, y)
    assert count_parameters(trans) == 2 * p + p * trans.out_channels
    print(f"   θ = {theta}: {p} -> {trans.out_channels} maps, 21×21 -> {out.shape[2]}×{out.shape[3]}; "
          f"2p + p·p' = {2 * p + p * trans.out_channels:,}")

# %% [markdown]
# ## 2. Channel bookkeeping
#
# Let a block's input have k_0 maps. Layer 1 sees k_0, layer 2 sees k_0 + k (its input plus
# layer 1's k maps), and in general
#
# $$ \text{input of layer } l = k_0 + k\,(l-1), \qquad \text{output of a block of } L \text{ layers} = k_0 + kL. $$
#
# The paper states the first formula in §III-A. The second block starts from whatever the
# transition leaves. With **compression** θ ∈ (0, 1], a transition after a block with p
# output maps makes ⌊θ·p⌋ maps (θ = 1: no compression; θ < 1 is the "C" in DenseNet-BC;
# the paper uses θ = 0.5). The stem makes 2k maps (Table I). So the whole network's
# channels follow from (k, L, θ) alone:

# %%
def predicted_channels(k, L=12, theta=1.0, blocks=3):
    """Channels after each stage, from the formulas k0 = 2k, k0 + kL, ⌊θ·p⌋."""
    c, out = 2 * k, {"conv": 2 * k}
    for b in range(1, blocks + 1):
        c = c + k * L
        out[f"denseblock{b}"] = c
        if b < blocks:
            c = math.floor(theta * c)
            out[f"transition{b}"] = c
    return out


rows = {}
for name, make in (("DenseNet", densenet), ("DenseNet-BC", densenet_bc)):
    model = make()
    table = layer_table(model).set_index("layer")
    predicted = predicted_channels(model.growth_rate, model.layers_per_block, model.compression)
    rows[(name, "formula")] = predicted
    rows[(name, "model")] = {stage: int(table.loc[stage, "channels"]) for stage in predicted}
    assert rows[(name, "formula")] == rows[(name, "model")], name
    layer_inputs = [lay.norm.num_features if hasattr(lay, "norm") else lay.norm1.num_features
                    for lay in model.features.denseblock2.layers]
    k0_2 = predicted["transition1"]
    assert layer_inputs == [k0_2 + model.growth_rate * (l - 1) for l in range(1, 13)]
    print(f"{name}: inputs of the 12 layers of block 2 = {layer_inputs}  (k0 + k(l−1) with k0 = {k0_2})")
pd.DataFrame(rows).T

# %% [markdown]
# The floor matters when θ·p is not an integer. `Transition` computes
# `floor(compression * in_channels)`; `round` would give a different network for odd p
# (Python even rounds 0.5 to the nearest *even* integer), `ceil` too:

# %%
pd.DataFrame([{"p": p, "θ": th, "θ·p": th * p, "Transition.out_channels": Transition(p, th).out_channels,
               "round(θ·p)": round(th * p), "ceil(θ·p)": math.ceil(th * p)}
              for p, th in ((27, 0.5), (25, 0.5), (37, 0.3), (168, 0.5))])

# %% [markdown]
# For the paper's four networks every p happens to be even (k is even, and 2k + 12k is
# too), so θ·p = p/2 is an integer and the rounding rule never shows — until you change k.
#
# ## 3. Depth 3L + 4, and Table I from the model
#
# §III-D: "The depth of our DenseNet must be 3L + 4, where L is the number of
# convolutional layers in each dense block", with L = 12 — Table I's "L = 40" is this depth.
# Counting layers with weights: 1 stem conv + 3·L 3×3 convs + 2 transition convs + 1
# fully-connected layer = 3L + 4. In the -BC networks each dense layer has two convs (1×1
# and 3×3), so the number of layers with weights is 6L + 4; the paper still calls both
# "L = 40" (Table I shows ×12 layers per block for both), and so does `ferlib`.

# %%
for name, make in (("DenseNet", densenet), ("DenseNet-BC", densenet_bc)):
    model = make()
    weighted = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    L_ = model.layers_per_block
    print(f"{name:12s} L = {L_}: 3L + 4 = {3 * L_ + 4}, model.depth = {model.depth}; "
          f"Conv2d + Linear modules = {weighted} (model.weighted_depth = {model.weighted_depth})")
    assert model.depth == 3 * L_ + 4 and weighted == model.weighted_depth

# %% [markdown]
# `layer_table` runs one 42×42 image through the model with a forward hook on each stage
# and records what comes out. This is Table I, regenerated:

# %%
t_plain = layer_table(densenet()).set_index("layer")
t_bc = layer_table(densenet_bc()).set_index("layer")
table1 = pd.concat({"DenseNet (k=12)": t_plain[["output_size", "channels", "params"]],
                    "DenseNet-BC (k=12, θ=0.5)": t_bc[["channels", "params"]]}, axis=1).astype(object)
table1.loc["total"] = ["", "", t_plain["params"].sum(), "", t_bc["params"].sum()]
assert list(t_plain["output_size"])[:7] == ["21×21", "21×21", "10×10", "10×10", "5×5", "5×5", "1×1"]
assert list(t_plain["output_size"]) == list(t_bc["output_size"])
assert table1.loc["total"].iloc[2] == count_parameters(densenet())
table1

# %% [markdown]
# Output sizes 21, 21, 10, 10, 5, 5 and the 1×1 of global pooling: exactly Table I. But
# FER-2013 images are **48×48**, and a 3×3 stride-2 convolution with padding 1 maps H to
# ⌊(H + 2 − 3)/2⌋ + 1 = ⌊(H − 1)/2⌋ + 1. Only H = 41 or 42 gives 21; 48 gives 24, then 12
# and 6. Running the same model on every size from 40 to 48 (the last pooling is global,
# so any size works) settles it.
#
# A trick to make such probes free: build the model on PyTorch's **meta device**. Its
# tensors have a shape and a dtype but no storage, so a forward pass computes every output
# *shape* (and `count_flops` every FLOP) without doing any arithmetic — nine sizes cost
# nothing, where real forward passes would each pay for new convolution kernels.

# %%
with torch.device("meta"):
    probe = densenet_bc()
print("a meta parameter:", probe.features.conv.weight.device, tuple(probe.features.conv.weight.shape))
sizes = {}
for H in range(40, 49):
    t = layer_table(probe, (1, H, H)).set_index("layer")["output_size"]
    sizes[H] = {"stem": t["conv"], "after transition1": t["transition1"], "after transition2": t["transition2"],
                "formula ⌊(H−1)/2⌋+1": math.floor((H - 1) / 2) + 1}
sizes = pd.DataFrame(sizes).T.rename_axis("input H")
assert sizes.loc[PAPER_INPUT_SIZE, "stem"] == "21×21" and sizes.loc[48, "stem"] == "24×24"
ratio = count_flops(probe, (1, 48, 48)) / count_flops(probe, (1, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE))
print(f"the same DenseNet-BC on 48×48 needs {ratio:.2f}× the FLOPs of 42×42 (the maps are (24/21)² larger)")
sizes

# %% [markdown]
# So the paper cannot have fed the raw 48×48 face to the network it describes. It does
# not say how it got to 42 (its random crop pads the 48×48 image and crops back to 48×48).
# `ferlib`'s choice, documented in `ferlib.models.densenet`: the densenet recipes
# **resize the whole (augmented) 48×48 face to 42×42** (`PAPER_INPUT_SIZE`), at training
# and test time alike, which keeps the full face in view and needs no test-time crop:

# %%
print(f"PAPER_INPUT_SIZE = {PAPER_INPUT_SIZE}; recipe input sizes:",
      {name: get_recipe(name).input_size for name in DENSENET_VARIANTS})

# %% [markdown]
# ## 4. Growth rate, bottleneck, compression: parameters and FLOPs
#
# `variant_table` builds the four networks of Table II and counts their parameters and
# their FLOPs for one 42×42 image (FLOPs = 2 × multiply-adds of convolutions and the
# classifier, as counted by PyTorch's `FlopCounterMode`; BN, ReLU and pooling are not
# counted). `feature_dim` is the size of the deep features (the globally pooled output of
# the last block) on which center loss acts in chapter 03.

# %%
variants = variant_table()
view = variants.assign(**{"params (M)": variants["params"] / 1e6, "MFLOPs": variants["flops"] / 1e6})
view = view[["variant", "growth_rate", "bottleneck", "compression", "depth", "feature_dim", "params (M)", "MFLOPs"]]
view.round(3)

# %% [markdown]
# Now sweep k for each family: plain DenseNet, -B (bottleneck only), -C (θ = 0.5 only)
# and -BC. The twenty networks are built on the meta device (section 3): parameter and
# FLOP counts depend only on shapes, so they are exactly those of real networks — checked
# below against `variant_table`, which built the paper's four with real weights:

# %%
FAMILIES = {"DenseNet": (False, 1.0), "DenseNet-B": (True, 1.0), "DenseNet-C": (False, 0.5),
            "DenseNet-BC": (True, 0.5)}
sweep = []
for family, (bottleneck_, theta) in FAMILIES.items():
    for k_ in (8, 12, 16, 24, 32):
        with torch.device("meta"):
            model = DenseNet(12, k_, bottleneck=bottleneck_, compression=theta)
        sweep.append({"family": family, "k": k_, "params": count_parameters(model), "flops": count_flops(model)})
sweep = pd.DataFrame(sweep)
paper_nets = {"densenet": ("DenseNet", 12), "densenet-bc": ("DenseNet-BC", 12), "wide-densenet": ("DenseNet", 32),
              "wide-densenet-bc": ("DenseNet-BC", 32)}
for _, row in variants.iterrows():
    fam, k_ = paper_nets[row["variant"]]
    meta_row = sweep[(sweep.family == fam) & (sweep.k == k_)].iloc[0]
    assert (meta_row.params, meta_row.flops) == (row.params, row.flops), row["variant"]
sweep.pivot(index="k", columns="family", values="params").div(1e6).round(3).add_suffix(" (M params)")

# %%
model_plots.complexity_vs_growth(sweep.to_dict("records"), highlight=list(paper_nets.values()))

# %%
by = sweep.set_index(["family", "k"])
for k_ in (12, 32):
    bc, plain = by.loc[("DenseNet-BC", k_)], by.loc[("DenseNet", k_)]
    print(f"k = {k_}: DenseNet-BC has {bc.params / plain.params:.0%} of DenseNet's parameters "
          f"and {bc.flops / plain.flops:.0%} of its FLOPs")
ratio_p = by.loc[("DenseNet", 32)].params / by.loc[("DenseNet", 16)].params
ratio_f = by.loc[("DenseNet", 32)].flops / by.loc[("DenseNet", 16)].flops
print(f"doubling k from 16 to 32 multiplies DenseNet's parameters by {ratio_p:.2f} and its FLOPs by {ratio_f:.2f}")

# %% [markdown]
# What the numbers say:
#
# * **k acts roughly quadratically.** Every 3×3 conv maps c ∝ k inputs to k outputs, so
#   parameters and FLOPs grow about like k²: WideDenseNet (k = 32) is several times the
#   size of DenseNet (k = 12) at the same depth.
# * **Compression (C)** halves the input of the next block, so blocks 2 and 3 — and the
#   deep features — shrink.
# * **The bottleneck (B)** replaces 9·c·k weights by 4k·c + 36k²; it saves once c is
#   larger than about 7k (section 1), which is the case for most layers after block 1 —
#   for small k and shallow blocks it can even cost more. B and C together give the
#   -BC networks, with the fraction of the plain network's parameters printed above.
#
# ## 5. Training
#
# The same cell does two different jobs depending on the profile (`FERLIB_PROFILE`, never
# an edit here):
#
# * **quick** (the default): the `tiny-densenet-demo` recipe — the `densenet-bc` recipe
#   (its protocol is the next subsection) with a **tiny DenseNet-BC** in place of
#   Table I's network, on a small stratified subset for a couple of epochs (the cell
#   prints the budget), written to a temporary folder. Why not the real network? On a
#   CPU its first training steps alone can take tens of seconds (each of its many
#   distinct convolution shapes needs its kernels prepared), more than a chapter meant
#   to run in minutes can spend; `python -m ferlib train densenet-bc` runs its quick
#   budget on a CPU if you want to see it. The tiny run goes through the whole code
#   path — data, augmentation, training, selection on PublicTest, evaluation, results
#   file; it is a smoke test, and its accuracy means nothing.
# * **full**: the chapter trains nothing. Training the paper's recipes on the whole of
#   FER-2013 takes hours on a GPU, so it is a command, not a cell:
#   `python -m ferlib train <recipe> --profile full --device cuda` (or
#   `python -m ferlib train <recipe> --minutes 60` for an hour on a laptop CPU) writes the
#   run's results file with its provenance; the command resumes an interrupted run. The
#   chapter **reads** those results through `ferlib.runs` — your runs and the kit's
#   committed ones, each labelled — and prints the command for every row that has none.
#
# Either way the epoch is **selected on PublicTest**; PrivateTest is evaluated once, at
# the end, and never used to choose anything.
#
# ### The training protocol
#
# densenet (§IV-C) describes its training in a few sentences: SGD with Nesterov momentum,
# batch 128, He initialisation, an L2 weight decay, "learning rate 0.1 and then decreased
# by 10 times whenever the training loss stops improving", and "five last checkpoints
# corresponding to five last training epochs for inference". What it leaves open, the
# recipe decides; every value below is read from `get_recipe("densenet-bc")`, not typed.

# %%
DENSENET = get_recipe("densenet-bc")
cuts = round(math.log10(DENSENET.lr / DENSENET.min_lr))
pd.Series({"optimiser": f"{DENSENET.optimizer}, momentum {DENSENET.momentum}, Nesterov {DENSENET.nesterov}",
           "batch size": DENSENET.batch_size, "weight decay": DENSENET.weight_decay,
           "learning rate": f"{DENSENET.lr:g}, schedule '{DENSENET.schedule}'",
           "plateau: relative improvement needed": f"{DENSENET.plateau_threshold:.0%} of the best loss so far",
           "plateau: patience": f"{DENSENET.plateau_patience} epochs",
           "plateau: learning-rate floor": f"{DENSENET.min_lr:g} ({cuts} cuts by 10 from {DENSENET.lr:g})",
           "early stopping (epochs without a better PublicTest accuracy)": DENSENET.early_stopping_patience
           or "none: the whole epoch budget is trained",
           "epochs (full profile)": DENSENET.full.epochs}, name="densenet-bc").to_frame()

# %% [markdown]
# **"Stops improving".** The paper gives no threshold. `ferlib` reads it as: an epoch
# counts as an improvement only if its mean training loss is below the best so far by
# more than the relative threshold above; after more epochs in a row without an
# improvement than the patience allows, the rate is divided by 10, never below the
# floor (`ferlib.train.schedules`, PyTorch's `ReduceLROnPlateau` in relative mode). A
# loss that still falls, but slowly, is a plateau. Here is the schedule fed a made-up
# loss curve — falling fast for a few epochs, then slowly:

# %%
probe_param = nn.Parameter(torch.zeros(1))
probe_opt = torch.optim.SGD([probe_param], lr=DENSENET.lr)
plateau = build_schedule("plateau", DENSENET, probe_opt, steps_per_epoch=1)
fast, slow = 0.9, 0.9985  # loss ratios per epoch: 10% and 0.15% lower
curve = [2.0 * fast ** e for e in range(4)] + [2.0 * fast ** 3 * slow ** e for e in range(1, 17)]
trace, best = [], float("inf")
for epoch, loss in enumerate(curve, start=1):
    lr_before = plateau.lr
    plateau.after_epoch(loss)
    improved = loss < best * (1 - DENSENET.plateau_threshold)
    trace.append({"epoch": epoch, "training loss": round(loss, 4),
                  "below the best by": f"{(best - loss) / best:.2%}" if epoch > 1 else "",
                  "an improvement": improved, "lr during the epoch": lr_before, "lr after it": plateau.lr})
    best = loss if improved else best
trace = pd.DataFrame(trace).set_index("epoch")
first_cut = int(trace.index[trace["lr after it"] < trace["lr during the epoch"]][0])
last_gain = int(trace.index[trace["an improvement"] & (trace.index < first_cut)][-1])
print(f"last improvement at epoch {last_gain}; first cut after epoch {first_cut}, the "
      f"{first_cut - last_gain}th epoch in a row without one (patience {DENSENET.plateau_patience})")
trace.iloc[: first_cut + 1]

# %% [markdown]
# **Weight decay on every parameter.** The recipe's optimiser decays every trainable
# parameter — BatchNorm scales and shifts and the classifier's bias included — as
# DenseNet's reference Torch code does (its `optim.sgd` has one `weightDecay` for all).
# Many PyTorch recipes exclude BatchNorm and biases; on a paper reproduction that would
# be a silent deviation. Counted from the optimiser `ferlib.train.build` makes:

# %%
probe_model = densenet_bc()
groups = build_optimizer(DENSENET, probe_model, CrossEntropy(), torch.device("cpu")).param_groups
decayed = {id(p_) for g in groups if g["weight_decay"] > 0 for p_ in g["params"]}
kinds = {"conv weights": [m.weight for m in probe_model.modules() if isinstance(m, nn.Conv2d)],
         "BatchNorm scales and shifts": [p_ for m in probe_model.modules() if isinstance(m, nn.BatchNorm2d)
                                         for p_ in m.parameters()],
         "classifier weight and bias": list(probe_model.classifier.parameters())}
pd.DataFrame([{"parameters": kind, "tensors": len(ps), "with weight decay": sum(id(p_) in decayed for p_ in ps),
               "decay": DENSENET.weight_decay} for kind, ps in kinds.items()]).set_index("parameters")

# %% [markdown]
# **Model selection and early stopping on PublicTest.** After every epoch the trainer
# measures PublicTest accuracy and keeps the best epoch's weights as `best.pt` (the
# first on ties); the reported accuracy is that epoch's, on PrivateTest. The densenet
# recipes set no early stopping (the table above), so a run trains its whole budget;
# a recipe with a patience (cl-resnet50's) stops after that many epochs without a
# better PublicTest accuracy.
#
# **The checkpoint ensemble ("+ens").** The trainer keeps the last epochs' checkpoints
# (`epoch_NNN.pt`), and the ensemble averages their **softmax probabilities** — not
# their logits, which have no common scale — then takes the argmax
# (`ferlib.evaluate.ensemble.mean_softmax`; chapter 06 compares ways of combining):

# %%
print(f"checkpoints kept for the ensemble: the last {KEEP_LAST} epochs")
show_code(mean_softmax)

# %% [markdown]
# **Where the random crop's margin applies.** The paper adds "margins to each image"
# and crops "a random area of that image with the same size as the original image",
# without the margin's size; the preset takes Huang et al.'s. `BatchAugment` resizes and
# augments in one `grid_sample`, and its crop margin is counted in **output** pixels:
# the augmented face is resized to the network's input and then shifted by a whole
# number of input pixels in each direction, which is "pad by the margin, crop back".
# At test time there is no crop, only the resize. The draws of the recipe's augmentation:

# %%
train_aug = dc_replace(get_augment(DENSENET.augment, **DENSENET.augment_kwargs), out_size=DENSENET.input_size)
draws = train_aug.sample_params(10_000, torch.Generator().manual_seed(0), out_hw=(DENSENET.input_size,) * 2)
shifts = sorted(set(draws.translate_x.round().int().tolist()))
print(f"crop margin {train_aug.crop_margin} px of the {DENSENET.input_size}-px input: horizontal shifts drawn "
      f"{shifts[0]}..{shifts[-1]} px ({len(shifts)} positions), i.e. up to "
      f"{train_aug.crop_margin * IMAGE_SIZE / DENSENET.input_size:.1f} px of the {IMAGE_SIZE}-px face")

# %%
ds = load_fer2013()
if ds.synthetic:
    display(Markdown(
        f"> ## ⚠ {ds.tag}\n>\n> No FER-2013 was found, so the training below runs on `ferlib`'s synthetic "
        f"faces. Its numbers say nothing about facial-expression recognition. Set `{DATA_ENV}` to a folder "
        f"with `fer2013.csv` to train on the real data."))
else:
    display(Markdown(f"> **Data: {ds.tag}**, read from `{ds.source}`."))

# %%
TABLE_II = ("densenet", "densenet-bc", "wide-densenet", "wide-densenet-bc")
if PROFILE == "quick":  # a smoke run of the whole code path, in a temporary folder: one library call
    recipe = get_recipe("tiny-densenet-demo")
    workdir = tempfile.mkdtemp(prefix="ferlib_ch02_")
    print(f"quick profile: {recipe.name} ({recipe.row}), budget {recipe.quick}, written under {workdir}")
    result = run_recipe(recipe, dataset=ds, profile="quick", results_path=Path(workdir) / f"{recipe.name}.json",
                        run_dir=Path(workdir) / "run", progress=False)
else:  # read the full-profile runs; print the command for those that have none
    result = None
    for name in TABLE_II:
        run = find_run(name, budgets=("full",), synthetic=bool(ds.synthetic))
        if run is None or run.results() is None:
            print(f"{name}: no full-profile result yet; on a GPU: python -m ferlib train {name} --profile full "
                  f"--device cuda")
        else:
            print(f"{name}: {run.label}, {run.results_path}")
            result = result or (run.results() if name == "densenet-bc" else None)

if result is None:
    print("nothing to show for densenet-bc in this profile yet (the 60-minute runs are drawn below)")
else:
    m = result["metrics"]
    print(f"data: {result['data']['tag']}; Training {result['data']['Training']:,} images, PublicTest "
          f"{result['data']['PublicTest']:,}, PrivateTest {result['data']['PrivateTest']:,}")
    speed = result["train_images_per_s"]
    print(f"{result['epochs_run']} epochs in {result['train_seconds']:.1f} s of training"
          + (f" ({speed:.0f} images/s" if speed else " (") + f" on {result['provenance']['device_name']})")
    print(f"selected epoch {result['selected_epoch']} ({result['selection']})")
    print(f"PublicTest accuracy {m['PublicTest']['accuracy']:.1%}, PrivateTest accuracy "
          f"{m['PrivateTest']['accuracy']:.1%}" + ("   <- SYNTHETIC data" if result["synthetic"] else "")
          + ("   <- quick profile: a smoke test, not a result" if result["profile"] == "quick" else ""))
    display(model_plots.training_history(
        result["history"], selected_epoch=result["selected_epoch"],
        title=f"{result['row']} — {result['profile']} profile, {result['epochs_run']} epochs",
        tag=result["data"]["tag"]))

# %% [markdown]
# ### Learning curves of the 60-minute runs
#
# What an hour on a laptop CPU buys: the kit's committed wall-clock-budget runs of
# DenseNet-CL's recipes on the whole of FER-2013 (`results/budget/`, e.g.
# `densenet-bc-60min-cpu-2threads`: 60 minutes on 2 CPU threads), and yours
# (`results/local/budget/`) if you ran `python -m ferlib train densenet-bc --minutes 60`.
# Each curve is read from the run's results file (its `history`), not trained here.

# %%
BUDGET_RUNS = [run for name in (*TABLE_II, "densenet-bc-center") for run in find_runs(name)
               if run.key.is_budget and run.key.minutes == 60 and run.results() is not None]
for run in BUDGET_RUNS:
    r = run.results()
    display(model_plots.training_history(
        r["history"], selected_epoch=r["selected_epoch"],
        title=f"{run.key.name} ({'the kit' if run.origin == 'kit' else 'your run'}): {run_label(r)}",
        tag=r["data"]["tag"]))
if not BUDGET_RUNS:
    print("no 60-minute results yet: python -m ferlib train densenet-bc --minutes 60 writes one")

# %% [markdown]
# ## 6. Table II: the paper beside our runs
#
# The four rows of Table II without center loss (center loss is chapter 03). Paper
# numbers come from each recipe's `paper_results`; ours from `results/<recipe>.json`,
# written by a full-profile run on a GPU. A recipe without a results file shows the
# paper's numbers and the command that produces ours.

# %%
wrapped(paper_vs_ours_long(paper_vs_ours(TABLE_II)))

# %% [markdown]
# Where the table has a wall-clock-budget run (`results/budget/`, e.g. 60 minutes on a
# laptop CPU) beside the paper's row, the gap is mostly budget: the sentence below is
# computed from the results files, not typed.

# %%
for name in TABLE_II:
    for run in find_runs(name):
        if not run.key.is_budget or (r := run.results()) is None:
            continue
        ours = 100 * r["metrics"]["PrivateTest"]["accuracy"]
        display(Markdown(
            f"**{run.key.name}** ({'the kit' if run.origin == 'kit' else 'your run'}; {run_label(r)}): PrivateTest "
            f"{ours:.1f} %, {difference_phrase(ours, r['paper_results']['PrivateTest'])}. This run trained "
            f"{r['epochs_run']} epochs ({r['train_seconds'] / 60:.0f} min at {r['train_images_per_s']:.0f} images/s) "
            f"with the `{r['schedule']}` schedule in {r['precision']}; the paper trains to convergence with the "
            f"plateau schedule (the full profile: {get_recipe(name).full.epochs} epochs)."))

# %% [markdown]
# "+ens" is the paper's ensemble of the checkpoints of the last five epochs (§IV-C;
# chapter 06 treats ensembles properly). Accuracies are in %. FER-2013 has label noise
# and duplicated images (chapter 00), so differences of a few tenths of a point between
# runs — or between seeds of the same run — are not meaningful.
#
# ## Questions
#
# 1. A dense block of L layers with input k_0 and growth rate k: how many channels does
#    layer l read, and how many does the block output? Why does a DenseNet need
#    transitions at all, rather than one long block?
# 2. Derive the parameter count of a bottleneck layer with c inputs and growth rate k.
#    For which c does it have fewer parameters than a plain dense layer? What about FLOPs
#    per pixel?
# 3. Compute by hand the channels after each stage of WideDenseNet-BC (k = 32, θ = 0.5),
#    then check with `layer_table(wide_densenet_bc())`.
# 4. Which input sizes give Table I's 21×21 after the stem with PyTorch's padding 1? With
#    TensorFlow's `'VALID'` padding (the paper used TensorFlow)? Why is resizing to 42×42
#    a defensible reading of the paper, and what would a center crop lose?
# 5. The network ends with *global* average pooling. What happens to the model if you
#    feed 48×48 images — does it break, and what changes in the deep features?
# 6. Doubling k roughly quadruples the parameters. Why only "roughly"? Which parts of the
#    network do not scale like k²?
# 7. The quick run selected its epoch on PublicTest and then reported PrivateTest. Why
#    not report the best PrivateTest accuracy over the epochs?
#
# ## What goes wrong in practice
#
# * **Concatenating on the wrong axis.** The channel axis of (B, C, H, W) is 1. With
#   `dim=0` or `dim=2`, `torch.cat` fails when k_0 ≠ k — but when the sizes happen to
#   agree it runs and stacks images or rows, and the error only appears a layer later:

# %%
x_same = torch.randn(2, 12, 21, 21)  # a block input with k0 = k = 12
new = DenseLayer(12, 12).eval()(x_same)
for dim in (0, 1, 2):
    print(f"torch.cat([x, H(x)], dim={dim}) -> {tuple(torch.cat([x_same, new], dim=dim).shape)}")
try:
    DenseLayer(24, 12).eval()(torch.cat([x_same, new], dim=2))  # the next layer expects 24 channels
except RuntimeError as e:
    print("next layer:", str(e).splitlines()[0][:110])

# %% [markdown]
# * **Forgetting the BN before the transition conv.** The concatenated maps come from
#   different layers and have very different scales; the BN in front of the 1×1 conv puts
#   them on one scale. Without it the count drops by 2p and training gets harder. The
#   spread of per-channel standard deviations at the output of a freshly built block (in
#   training mode, one batch):

# %%
stds = b_block.train()(x0).detach().std(dim=(0, 2, 3))
print(f"per-channel std of the block's output: min {stds.min():.2f}, max {stds.max():.2f} "
      f"(input channels {stds[:k0].mean():.2f} on average, new maps {stds[k0:].mean():.2f})")
print(f"Transition({p}, 0.5) has {count_parameters(Transition(p, 0.5)):,} parameters; without its BN "
      f"{count_parameters(Transition(p, 0.5).conv):,}")

# %% [markdown]
# * **The wrong input size.** Feeding the 48×48 images directly gives 24×24, 12×12, 6×6
#   (section 3). The model still runs — the last pooling is global — so nothing warns you
#   that it is not Table I's network any more: more FLOPs (section 3 printed how many), and
#   a receptive field that covers a smaller part of the face. Check with `layer_table`
#   before you train.
# * **Selecting on PrivateTest.** Picking the epoch (or k, θ, λ) by PrivateTest accuracy and
#   reporting that accuracy gives an optimistic number nobody can reproduce. `ferlib`
#   selects on PublicTest and records that in every results file (`"selection"`).
# * **An in-place ReLU on the block's input.** `nn.ReLU(inplace=True)` is safe after a BN
#   (BN returns a new tensor), but applied to x itself it silently overwrites the maps the
#   block is about to pass on.
# * **Counting the wrong depth.** "DenseNet-BC, depth 40" means L = 12 bottleneck layers
#   per block here (Table I), but L = 6 in Huang et al.'s paper: the same name, two
#   networks with different sizes. Quote (L, k, θ) and the parameter count.
# * **Batch statistics at 1×1.** A BatchNorm in training mode cannot normalise a batch of
#   one 1×1 map (one value per channel); summaries and single-image predictions must run
#   in `eval()` mode, as `layer_table` and `count_flops` do.

# %% tags=["hide-input"]
print(f"chapter 02 ran in {time.perf_counter() - T0:.1f} s [profile {PROFILE}; {ds.tag}]")
