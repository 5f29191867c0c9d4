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
# # Lab 08 — FER+ inputs, the light network, and the center term's sign (solution)
#
# Chapter 08 trained VGG13 and a light network on FER+ with the face's Sobel and
# Laplacian images stacked beside it, and with center loss. Here you build three of its
# pieces yourself:
#
# 1. the **O+S+L input** — the face, its Sobel gradient magnitude and its Laplacian,
#    stacked channel-first (Sobel-Laplacian-CL §III-B);
# 2. the **parameter count** of the light network, from its layer table (Table II says
#    "0.36 million");
# 3. the **total loss** of Eq. 3 with the center term's sign fixed (Eq. 1 prints a minus).
#
# Replace each `raise NotImplementedError()` with your code and run the check after it:
# it compares your function with `ferlib`'s, prints `PASS` with the tolerance it used, or
# says what is wrong and gives a hint.

# %%
import numpy as np
import torch
import torch.nn.functional as F

from ferlib.checks import check_light_net_parameters, check_stack_inputs, check_total_loss, completed
from ferlib.data.synthetic import make_synthetic_faces

faces = make_synthetic_faces(n_per_class=3).pixels[:4]  # four 48x48 uint8 faces

# %% [markdown]
# ## Exercise 1 — the O+S+L input
#
# For a face $x$ (float, 0 … 255) chapter 01's `ferlib.features.edges` defines
#
# * the **Sobel image** $S = \sqrt{g_x^2 + g_y^2}\,/\sqrt{20}$, with $g_x$ the face
#   correlated with $\begin{bmatrix}-1&0&1\\-2&0&2\\-1&0&1\end{bmatrix}$ and $g_y$ with its
#   transpose ($\sqrt{20}$ scales the largest possible magnitude, $255\sqrt{20}$, to 255);
# * the **Laplacian image** $L = 128 + \Delta x / 8$, with $\Delta x$ the face correlated
#   with $\begin{bmatrix}0&1&0\\1&-4&1\\0&1&0\end{bmatrix}$ (signed, so flat regions read 128).
#
# At the border OpenCV mirrors the image without repeating the edge pixel
# (`BORDER_REFLECT_101`): `np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")`.
#
# Write `stack_inputs(faces, channels)`: `faces` is uint8 (N, H, W), `channels` one of
# `"O+S"`, `"O+L"`, `"O+S+L"`; return float (N, k, H, W) with the channels **in the order O,
# S, L** (those asked for). Do not round: the network takes the float images (edges.py
# rounds only to store them as uint8). Compute in float — uint8 arithmetic wraps around.

# %%
def stack_inputs(faces, channels):
    """uint8 (N, H, W) faces -> float (N, k, H, W): the face, then S and/or L, as named by `channels`."""
    ### BEGIN SOLUTION
    x = np.asarray(faces, dtype=np.float64)
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="reflect")  # OpenCV's BORDER_REFLECT_101
    h, w = x.shape[1:]

    def shifted(dy, dx):  # the neighbour at (dy, dx) of every pixel
        return p[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]

    gx = shifted(-1, 1) + 2 * shifted(0, 1) + shifted(1, 1) - shifted(-1, -1) - 2 * shifted(0, -1) - shifted(1, -1)
    gy = shifted(1, -1) + 2 * shifted(1, 0) + shifted(1, 1) - shifted(-1, -1) - 2 * shifted(-1, 0) - shifted(-1, 1)
    laplacian = shifted(-1, 0) + shifted(1, 0) + shifted(0, -1) + shifted(0, 1) - 4 * x
    images = {"O": x, "S": np.sqrt(gx ** 2 + gy ** 2) / np.sqrt(20.0), "L": 128.0 + laplacian / 8.0}
    return np.stack([images[c] for c in channels.split("+")], axis=1)
    ### END SOLUTION


# %% tags=["grader"]
check_stack_inputs(stack_inputs)

# %% [markdown]
# What the network sees: the three channels of one face. A constant face has $S = 0$ and
# $L = 128$ everywhere — the two derivative images carry only *changes* of brightness.

# %% tags=["raises-exception"]
import matplotlib.pyplot as plt

with completed("Exercise 1"):  # while it is a stub: one FAIL line, as a grader says it
    stacked = stack_inputs(faces[:1], "O+S+L")[0]
    fig, axes = plt.subplots(1, 3, figsize=(7, 2.6))
    for ax, img, title in zip(axes, stacked, ("O (face)", "S (Sobel)", "L (Laplacian)")):
        ax.imshow(img, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title)
        ax.axis("off")
    plt.show()
    print("constant face: S max", stack_inputs(np.full((1, 8, 8), 77, np.uint8), "O+S+L")[0, 1].max(),
          "| L values", np.unique(stack_inputs(np.full((1, 8, 8), 77, np.uint8), "O+S+L")[0, 2]))

# %% [markdown]
# ## Exercise 2 — how many parameters has the light network?
#
# Chapter 08's light network (a reconstruction of Pandey et al.'s, see
# `ferlib.models.light_net`) for a 64×64 input with `in_channels` channels and
# `num_classes` classes:
#
# | layer | what it holds |
# |---|---|
# | conv 3×3, `in_channels` → 32, no bias; BatchNorm(32) | 9·C_in·32 weights; 2·32 |
# | DS 32 → 32 | |
# | DS 32 → 64, DS 64 → 64 | |
# | DS 64 → 128, DS 128 → 128, DS 128 → 128 | |
# | DS 128 → 256, DS 256 → 256, DS 256 → 256 | |
# | global average pool | nothing |
# | dense 256 → 512, no bias; BatchNorm1d(512) | |
# | dense 512 → `num_classes`, with bias | |
#
# A **DS block** C → C′ is MobileNets' depthwise-separable convolution: a 3×3 *depthwise*
# convolution (one 3×3 filter per channel, `groups=C`, no bias), BatchNorm(C), a 1×1
# *pointwise* convolution C → C′ (no bias), BatchNorm(C′). BatchNorm has two parameters
# per channel (scale and shift); pooling, ReLU and dropout have none.
#
# Write `light_net_parameters(in_channels, num_classes)` from the table — not by building
# the network. Table II says 0.36 million.

# %%
def light_net_parameters(in_channels, num_classes):
    """The light network's parameter count from its layer table."""
    ### BEGIN SOLUTION
    total = 9 * in_channels * 32 + 2 * 32  # first convolution + BatchNorm
    ds = [(32, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 128), (128, 256), (256, 256), (256, 256)]
    for c_in, c_out in ds:
        total += 9 * c_in + 2 * c_in + c_in * c_out + 2 * c_out  # depthwise, BN, pointwise, BN
    total += 256 * 512 + 2 * 512  # dense (no bias) + BatchNorm1d
    return total + 512 * num_classes + num_classes  # output layer
    ### END SOLUTION


# %% tags=["grader"]
check_light_net_parameters(light_net_parameters)

# %% [markdown]
# Which layers hold the parameters? And how does that compare with VGG13 (8.76 M, of
# which the first dense layer alone, 4096 × 1024, holds 4.2 M)?

# %% tags=["raises-exception"]
with completed("Exercise 2"):
    base = light_net_parameters(1, 8)
    dense = 256 * 512 + 2 * 512 + 512 * 8 + 8
    print(f"light network: {base:,} parameters, of which the dense layers {dense:,} ({dense / base:.0%}); "
          f"each extra input channel adds {light_net_parameters(2, 8) - base} (9 x 32 weights)")
    print(f"VGG13 / light network = {8_757_704 / base:.1f} (Sobel-Laplacian-CL: 'a factor of 24.3')")

# %% [markdown]
# ## Exercise 3 — the center term's sign
#
# Sobel-Laplacian-CL writes the center loss (Eq. 1) and the total loss (Eq. 3) as
#
# $$ L_C = -\sum_{j=1}^{M} \lVert x_j - c_j\rVert^2, \qquad L_\text{total} = L_\text{softmax} + \lambda L_C . $$
#
# Minimising that pushes every feature $x_j$ **away** from its center $c_j$: the
# gradient of $-\lVert x - c\rVert^2$ in $x$ is $-2(x - c)$, so a gradient step moves $x$
# along $+(x - c)$, and the loss falls without bound as the features fly off. The text
# says the opposite ("the center loss pulls the individual class features towards the
# respective class centers"), and so do Wen et al.: the sign is a typo.
#
# Write `total_loss(logits, features, labels, centers, lam)` with the sign fixed, in the
# convention of chapter 03 (Wen et al.'s ½, and means over the batch of $m$):
#
# $$ L = \underbrace{\frac1m\sum_i -\log \operatorname{softmax}(z_i)_{y_i}}_{\texttt{F.cross\_entropy}}
#        + \lambda\,\frac{1}{2m}\sum_i \lVert x_i - c_{y_i}\rVert^2 . $$
#
# Use torch operations (the check differentiates your loss with autograd).

# %%
def total_loss(logits, features, labels, centers, lam):
    """Softmax cross-entropy + lam * center loss (the sign fixed): a scalar tensor."""
    ### BEGIN SOLUTION
    ce = F.cross_entropy(logits, labels)
    lc = 0.5 * ((features - centers[labels]) ** 2).sum(dim=1).mean()
    return ce + lam * lc
    ### END SOLUTION


# %% tags=["grader"]
check_total_loss(total_loss)

# %% [markdown]
# What the printed sign does, in a few gradient steps on 2-D features: with the sign
# fixed the features close in on their centers; with Eq. 1's minus they run away and the
# "loss" goes negative without end.

# %%
def run(sign, steps=30, lam=0.5, lr=0.5):
    torch.manual_seed(0)
    x = torch.randn(16, 2, requires_grad=True)
    y = torch.arange(16) % 4
    c = torch.tensor([[2.0, 0.0], [0.0, 2.0], [-2.0, 0.0], [0.0, -2.0]])
    logits_w = torch.randn(2, 4)
    for _ in range(steps):
        loss = F.cross_entropy(x @ logits_w, y) + sign * lam * 0.5 * ((x - c[y]) ** 2).sum(1).mean()
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= lr * 16 * g  # a step per feature (undo the mean's 1/m)
    return float(loss), float(((x - c[y]) ** 2).sum(1).sqrt().mean())


for sign, label in ((+1, "fixed (+λ L_C)"), (-1, "as printed (−λ L_C)")):
    loss, dist = run(sign)
    print(f"{label:22s} loss after 30 steps {loss:10.3g}; mean distance to the own center {dist:8.3g}")

# %% [markdown]
# ## Going further
#
# * Check your `stack_inputs` against `ferlib.features.edges.edge_channels` (which rounds to
#   uint8): how large is the largest difference, and why?
# * The network does not see raw pixels: each face is standardised first. Show that the
#   Sobel and Laplacian images of $z = (x - m)/s$ are those of $x$ divided by $s$. Why do the
#   kernels' zero sums matter here?
# * With Eq. 1 as printed and no ½, what λ in the convention above gives the same gradient as
#   the paper's λ = 0.05 of Table I's O-TL row (signs fixed)?
