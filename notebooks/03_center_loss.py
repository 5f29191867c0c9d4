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
# # 03 — Center loss
#
# A softmax classifier only needs the deep features of different classes to fall on
# the right side of its decision boundaries. It does not ask the features of one class
# to be *close to each other*, and on faces — where two people showing the same
# expression differ more than one person showing two — they often are not. Wen et al.
# (ECCV 2016) added a second term to the loss that pulls every feature toward a learned
# center of its class: the **center loss**. Three of this book's papers use it:
#
# | paper | network | λ | α | optimiser |
# |---|---|---|---|---|
# | densenet (§III-C, §IV-C) | DenseNet / WideDenseNet on FER-2013 | 0.05 | 0.5 | SGD + Nesterov, "a constant learning rate 10⁻³ for training center loss" |
# | cl-resnet50 (§3, §4) | ImageNet ResNet-50 on FER-2013, RAF-DB | 0.2 | 1.9 | Adam 10⁻³ "for both softmax loss and center loss" |
# | ferplus (Eq. 1–3) | VGG13 on FER+ | swept on a log axis | — | — |
#
# This chapter
#
# 1. derives the loss (Eq. 2), its gradient (Eq. 3), the center update (Eq. 4, 6) and
#    the joint loss (Eq. 5), each beside the `ferlib` code that implements it;
# 2. checks the gradient numerically and works the center update by hand;
# 3. untangles how λ, α and the optimiser's learning rate relate, and what the
#    densenet paper's "10⁻³" can mean;
# 4. redraws Wen et al.'s figure — 2-D deep features with their centers — with sliders
#    over λ and α, and a 3-D version;
# 5. compares the deep features of a network trained with and without center loss:
#    t-SNE (densenet Fig. 6) and PCA (cl-resnet50 Fig. 1), with numbers;
# 6. puts the papers' results beside ours, and ends with questions and the mistakes
#    people make.
#
# Equation numbers are the densenet paper's unless said otherwise.

# %%
# %matplotlib inline
import ast
import inspect
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits
from torch import nn

from ferlib.data.batches import DeviceBatchSource
from ferlib.data.dataset import stratified_subset
from ferlib.data.discovery import load_fer2013
from ferlib.evaluate.metrics import predict
from ferlib.losses.center import (
    CenterLoss,
    SoftmaxCenterLoss,
    center_loss,
    center_update,
    rule_alpha_from_sgd,
    separate_lr_grad_scale,
    sgd_lr_from_rule_alpha,
)
from ferlib.evaluate.separation import inter_class_distance, intra_class_spread
from ferlib.numerics import check_gradient
from ferlib.profiles import get_profile
from ferlib.train import embedding_demo as toy
from ferlib import paths
from ferlib.data.splits import prepare_splits
from ferlib.train.build import build_run
from ferlib.train.checkpoint import load_model
from ferlib.train.criteria import CenterLossConfig
from ferlib.train.recipes import RECIPES, Budget, smoke_recipe
from ferlib.evaluate.metrics import accuracy_difference
from ferlib.train.results import load_results, paper_vs_ours, run_label
from ferlib.viz import center_plots as cplots

T0 = time.perf_counter()
PROFILE = get_profile()
QUICK = PROFILE == "quick"
pd.set_option("display.width", 140)
pd.set_option("display.precision", 4)
print(f"profile: {PROFILE} ({'seconds on a CPU' if QUICK else 'larger grids; loads full-run checkpoints when present'})")


def show_code(fn):
    """Print a ferlib function's code without its docstring: the equations above, as code."""
    lines = textwrap.dedent(inspect.getsource(fn)).splitlines()
    node = ast.parse("\n".join(lines)).body[0]
    first = node.body[0]
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = lines[:first.lineno - 1] + lines[first.end_lineno:]
    print("\n".join(lines))


# %% [markdown]
# ## 1. The loss and its gradient (Eq. 2, 3)
#
# Let $x_i \in \mathbb{R}^d$ be the deep feature of sample $i$ — the output of the
# layer before the classifier (DenseNet's global average pooling; 2048 units in
# ResNet-50) — $y_i$ its class, and $c_j \in \mathbb{R}^d$ the center of class $j$.
# Over a mini-batch of $m$ samples,
#
# $$ L_C = \frac12 \sum_{i=1}^{m} \lVert x_i - c_{y_i} \rVert_2^2 . \qquad \text{(Eq. 2)}$$
#
# Only the $i$-th term contains $x_i$, and
# $\lVert x - c\rVert^2 = \sum_k (x_k - c_k)^2$ has derivative $2(x_k - c_k)$ in
# $x_k$; the ½ cancels the 2:
#
# $$ \frac{\partial L_C}{\partial x_i} = x_i - c_{y_i}. \qquad \text{(Eq. 3)}$$
#
# A gradient step on the features therefore moves each $x_i$ a fraction of the way
# toward its center — that is the whole mechanism. Were the centers parameters too, the
# same algebra would give
# $\partial L_C / \partial c_j = \sum_i \delta(y_i = j)\,(c_j - x_i)$: keep this sum in
# mind, it is the numerator of the center update in §3.
#
# *A typo to step around.* The ferplus paper prints its Eq. 1 as
# $L_C = -\sum_j \lVert x_j - c_j\rVert_F^2$. Minimised literally, the minus sign would
# push every feature *away* from its center, the opposite of what the paper says
# the loss does ("pulls the individual class features towards the respective class
# centers"). The minus (and the missing ½) must be a typo; `ferlib` implements Wen et
# al.'s Eq. 2 for all three papers.
#
# ### Sum or mean over the batch?
#
# Read literally, Eq. 2 *sums* over the batch, while the softmax loss it is added to
# (Eq. 1) is a batch *mean*. With the sum, $L_C$ grows with $m$ and the balance
# $\lambda$ has to be re-tuned whenever the batch size changes; with the mean, each
# sample's gradient carries the same $1/m$ as the cross-entropy's, and $\lambda$ is a
# batch-size-free ratio. Wen et al.'s own Caffe layer divides by the batch size, as do
# most PyTorch ports, so **`ferlib` uses `reduction="mean"` by default** and reads the
# papers' λ on that scale ($\lambda_\text{sum} = \lambda_\text{mean}/m$ if you need the
# literal Eq. 2). `reduction="sum"` is there for the lab and for checks. Here is the code:

# %%
show_code(center_loss)

# %% [markdown]
# ## 2. Checking the gradient
#
# Two independent checks. First PyTorch's `gradcheck`, which compares autograd with
# finite differences — only meaningful in float64 — for the features *and* the centers,
# with both reductions:

# %%
gen = torch.Generator().manual_seed(0)
x = torch.randn(6, 4, dtype=torch.float64, generator=gen, requires_grad=True)
c = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
y = torch.tensor([0, 2, 2, 1, 0, 2])
for reduction in ("sum", "mean"):
    ok = torch.autograd.gradcheck(lambda a, b: center_loss(a, y, b, reduction), (x, c))
    print(f"torch.autograd.gradcheck, reduction={reduction!r}: {ok}")

# %% [markdown]
# Second, `ferlib.numerics.check_gradient` compares *our* formula — Eq. 3, written out
# by hand, not autograd — with central differences of Eq. 2, and prints the relative
# error next to what a correct gradient gives in float64. With the mean, Eq. 3 is
# divided by $m$:

# %%
xd, cd = x.detach(), c.detach()
_ = check_gradient(lambda z: center_loss(z, y, cd, "sum"), xd, xd - cd[y], name="dL_C/dx = x - c_y  (sum)")
_ = check_gradient(lambda z: center_loss(z, y, cd, "mean"), xd, (xd - cd[y]) / len(y),
                   name="dL_C/dx = (x - c_y)/m (mean)")

# %% [markdown]
# And what a wrong gradient looks like: forget that the ½ cancels the 2, and the check
# fails — its message shows the analytic/numerical ratio, 2, which points at the factor:

# %%
try:
    check_gradient(lambda z: center_loss(z, y, cd, "sum"), xd, 2 * (xd - cd[y]), name="wrong: 2 (x - c_y)",
                   verbose=False)
except AssertionError as err:
    print(err)

# %% [markdown]
# ## 3. The center update (Eq. 4, 6)
#
# Ideally $c_j$ would be the mean of the features of class $j$ over the whole training
# set — but the features change at every step, and recomputing that mean each time is
# out of the question. Wen et al. move the centers instead with each mini-batch:
#
# $$ \Delta c_j = \frac{\sum_{i=1}^{m} \delta(y_i = j)\,(c_j - x_i)}{1 + \sum_{i=1}^{m} \delta(y_i = j)}
# \quad\text{(Eq. 4)}, \qquad
# c_j^{t+1} = c_j^{t} - \alpha\, \Delta c_j^{t} \quad\text{(Eq. 6)} .$$
#
# Write $n_j$ for the number of samples of class $j$ in the batch and $\bar x_j$ for
# their mean. The numerator is $n_j (c_j - \bar x_j)$, so
#
# $$ c_j \leftarrow c_j + \alpha \frac{n_j}{1 + n_j} (\bar x_j - c_j) : $$
#
# each step moves the center the fraction $\alpha\, n_j/(1+n_j)$ of the way to the batch
# mean of its class. The **+1** keeps the division defined when class $j$ is absent
# ($n_j = 0$: the numerator is 0 and the center stays put) and damps the step when a
# class has one or two samples in the batch. The distance to the batch mean is
# multiplied by $1 - \alpha n_j/(1+n_j)$ at each step, which shrinks it for every $n_j$
# exactly when $0 < \alpha < 2$. α is the centers' learning rate; Wen et al. introduced
# it "to avoid large perturbations caused by few mislabelled samples".
#
# **The centers are moved by this rule, not by back-propagation.** In `ferlib` (the
# papers' variant, `update="rule"`) they are a buffer: $L_C$ is computed with the
# centers detached, so the backward pass leaves them alone, and the trainer calls the
# rule once per step, after the optimiser step. The code — one `bincount` and one
# `index_add`, no loop over classes:

# %%
show_code(center_update)

# %% [markdown]
# ### A worked example, by hand
#
# Three classes, 2-D features, $\alpha = 0.5$; class 2 is absent from the batch.
#
# | | value |
# |---|---|
# | centers | $c_0 = (0, 0)$, $c_1 = (2, 2)$, $c_2 = (5, -5)$ |
# | batch | $x_a = (2, 0)$, $y_a = 0$; $x_b = (0, 4)$, $y_b = 0$; $x_c = (4, 2)$, $y_c = 1$ |
#
# *Loss (Eq. 2).* $x_a - c_0 = (2, 0)$, $x_b - c_0 = (0, 4)$, $x_c - c_1 = (2, 0)$, so
# $L_C = \tfrac12 (4 + 16 + 4) = 12$ with the sum, $12/3 = 4$ with the mean.
#
# *Class 0* ($n_0 = 2$): $\sum (c_0 - x_i) = (0-2,\,0-0) + (0-0,\,0-4) = (-2, -4)$;
# $\Delta c_0 = (-2, -4)/(1+2) = (-\tfrac23, -\tfrac43)$;
# $c_0 \leftarrow (0,0) - 0.5\,(-\tfrac23, -\tfrac43) = (\tfrac13, \tfrac23)$ — a third of
# the way ($\alpha n_0/(1+n_0) = 0.5 \cdot \tfrac23$) to the batch mean $(1, 2)$.
#
# *Class 1* ($n_1 = 1$): $\Delta c_1 = (2-4,\, 2-2)/(1+1) = (-1, 0)$;
# $c_1 \leftarrow (2, 2) - 0.5\,(-1, 0) = (2.5, 2)$.
#
# *Class 2* ($n_2 = 0$): numerator 0, $c_2$ stays at $(5, -5)$.
#
# The code agrees:

# %%
ex_x = torch.tensor([[2.0, 0.0], [0.0, 4.0], [4.0, 2.0]], dtype=torch.float64)
ex_y = torch.tensor([0, 0, 1])
ex_c = torch.tensor([[0.0, 0.0], [2.0, 2.0], [5.0, -5.0]], dtype=torch.float64)
by_hand = torch.tensor([[1 / 3, 2 / 3], [2.5, 2.0], [5.0, -5.0]], dtype=torch.float64)
new_c = center_update(ex_x, ex_y, ex_c, alpha=0.5)
print("L_C sum :", center_loss(ex_x, ex_y, ex_c, "sum").item(), "   L_C mean:", center_loss(ex_x, ex_y, ex_c, "mean").item())
print("centers after one update:\n", new_c.numpy().round(4))
torch.testing.assert_close(new_c, by_hand)
print("matches the hand computation")

# %% [markdown]
# ### Minimising $L_C$ shrinks the intra-class spread — and, alone, everything else too
#
# Take 60 random 2-D features of three classes, treat them as free variables, and
# alternate a gradient step on $L_C$ (Eq. 3) with the center rule (Eq. 6), centers
# starting at zero as in `ferlib`. We measure the **intra-class spread** (mean squared
# distance of a feature to its class mean) and the **inter-class distance** (mean
# distance between class means) — the two numbers this chapter reports everywhere:

# %%
g2 = torch.Generator().manual_seed(1)
feats = torch.randn(60, 2, dtype=torch.float64, generator=g2) * 1.5 + torch.tensor([4.0, 0.0], dtype=torch.float64)
labels3 = torch.arange(60) % 3
feats = feats + torch.tensor([[0.0, 0.0], [-3.0, 3.0], [-3.0, -3.0]], dtype=torch.float64)[labels3]
centers3 = torch.zeros(3, 2, dtype=torch.float64)
rows = []
for step in range(31):
    if step % 5 == 0:
        rows.append({"step": step, "L_C (sum)": center_loss(feats, labels3, centers3, "sum").item(),
                     "intra-class spread": intra_class_spread(feats, labels3),
                     "inter-class distance": inter_class_distance(feats, labels3)})
    feats = feats - 0.2 * (feats - centers3[labels3])  # gradient step on L_C, Eq. 3, step size 0.2
    centers3 = center_update(feats, labels3, centers3, alpha=0.5)  # Eq. 4, 6
shrink = pd.DataFrame(rows).set_index("step")
shrink

# %%
first, last = shrink.iloc[0], shrink.iloc[-1]
display(Markdown(
    f"The intra-class spread fell from {first['intra-class spread']:.3g} to {last['intra-class spread']:.2g}. "
    f"But the inter-class distance fell too, from {first['inter-class distance']:.3g} to "
    f"{last['inter-class distance']:.3g}: features and centers meet part way, and the centers started at the "
    "origin. Nothing in $L_C$ keeps the classes apart: its minimum, 0, is reached just as well with every "
    "feature and every center at one point — and a network, which can shrink all its features at once, is "
    "pulled there (§9, 'λ too large'). That is why center loss is never used alone."))

# %% [markdown]
# ## 4. The joint loss (Eq. 5), and how λ, α and the learning rate relate
#
# $$ L = L_S + \lambda L_C \qquad \text{(Eq. 5)} $$
#
# The softmax cross-entropy $L_S$ keeps the classes apart; $\lambda L_C$ pulls each class
# together. The gradient reaching a feature is $\partial L_S/\partial x_i + \lambda (x_i -
# c_{y_i})/m$ (with `ferlib`'s mean). $\lambda = 0$ is plain softmax. Three numbers now
# set how fast things move: λ (features toward centers, relative to $L_S$), α (centers
# toward features) and the optimiser's learning rate (everything the network does).
#
# `SoftmaxCenterLoss` is Eq. 5 as a trainer criterion. With the rule, one training step
# is: forward, backward, optimiser step — *the centers get no gradient* — then
# `after_step` applies Eq. 4 and 6:

# %%
torch.manual_seed(0)
tiny_net, tiny_head = nn.Linear(5, 2), nn.Linear(2, 3)
crit = SoftmaxCenterLoss(num_classes=3, feature_dim=2, lambda_=0.05, alpha=0.5)
opt = torch.optim.SGD([*tiny_net.parameters(), *tiny_head.parameters()], lr=0.1)
xb, yb = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
fb = tiny_net(xb)
loss = crit(tiny_head(fb), fb, yb)
loss.backward()
opt.step()
print(f"L = L_S + lambda L_C = {crit.last_terms['ce']:.4f} + 0.05 * {crit.last_terms['center']:.4f} = {loss.item():.4f}")
print("centers are a buffer:", any(n.endswith("centers") for n, _ in crit.named_buffers()), "| a parameter:",
      any(n.endswith("centers") for n, _ in crit.named_parameters()), "| gradient after backward:", crit.centers.grad)
before = crit.centers.clone()
crit.after_step(fb.detach(), yb)
print("centers before the rule:", before.double().numpy().round(3).tolist())
print("centers after the rule :", crit.centers.double().numpy().round(3).tolist())

# %% [markdown]
# ### The other variant: centers as parameters
#
# Many PyTorch ports make the centers an `nn.Parameter` and let an optimiser move them
# (`update="gradient"` in `ferlib`). With plain SGD at learning rate $\eta$ on
# $\lambda L_C$, the step of $c_j$ is $\eta\lambda g \sum_i \delta(y_i=j)(c_j - x_i)$, with
# $g = 1$ for the sum and $1/m$ for the mean: the numerator of Eq. 4 **without the
# $1 + n_j$ denominator**. So the two agree for class $j$ exactly when
#
# $$ \frac{\alpha}{1+n_j} = \eta\,\lambda\,g \quad\Longleftrightarrow\quad
# \alpha = \eta\,\lambda\,g\,(1 + n_j), $$
#
# and only for that one $n_j$: the rule normalises by the class count, SGD does not, so
# under SGD frequent classes' centers move faster. (`ferlib`'s `decouple_lambda=True`
# gives the centers the gradient of $L_C$ without λ — what ports do by multiplying the
# center gradients by $1/\lambda$ — so there put $\lambda = 1$ in the formula.)
# `rule_alpha_from_sgd` and `sgd_lr_from_rule_alpha` compute it. Check it on a batch of
# 12 with classes of 6, 4 and 2 samples, matching class 0:

# %%
gen = torch.Generator().manual_seed(2)
m_b = 12
yb = torch.tensor([0] * 6 + [1] * 4 + [2] * 2)
xb = torch.randn(m_b, 2, generator=gen, dtype=torch.float64) + 3.0
c_start = torch.randn(3, 2, generator=gen, dtype=torch.float64)
alpha = 0.5
eta = sgd_lr_from_rule_alpha(alpha, 1.0, class_count=6, reduction="mean", batch_size=m_b)
print(f"SGD learning rate for the centers that mimics alpha={alpha} for n_j=6 (mean, m={m_b}, lambda decoupled): {eta:.4g}")
cl = CenterLoss(3, 2, update="gradient", reduction="mean").double()
with torch.no_grad():
    cl.centers.copy_(c_start)
sgd = torch.optim.SGD(cl.param_groups(), lr=eta)
cl(xb, yb).backward()
sgd.step()
by_rule = center_update(xb, yb, c_start, alpha)
pd.DataFrame({"n_j": torch.bincount(yb).tolist(),
              "step by the rule": (by_rule - c_start).norm(dim=1).tolist(),
              "step by SGD": (cl.centers.detach() - c_start).norm(dim=1).tolist(),
              "alpha SGD acts like": [rule_alpha_from_sgd(eta, 1.0, n, reduction="mean", batch_size=m_b)
                                      for n in torch.bincount(yb).tolist()]})

# %% [markdown]
# For the densenet paper's setting — batch 128, seven classes, so about 18 samples of a
# class per batch, mean reduction — the center learning rate that would play α = 0.5 is
# large, and it is far larger again if λ is *not* decoupled (the port forgets the 1/λ):

# %%
n_bal = 128 / 7
pd.DataFrame([
    {"setting": "densenet: alpha=0.5, lambda decoupled", "SGD lr of the centers":
     sgd_lr_from_rule_alpha(0.5, 1.0, n_bal, reduction="mean", batch_size=128)},
    {"setting": "densenet: alpha=0.5, lambda=0.05 not decoupled", "SGD lr of the centers":
     sgd_lr_from_rule_alpha(0.5, 0.05, n_bal, reduction="mean", batch_size=128)},
    {"setting": "cl-resnet50: alpha=1.9, lambda decoupled, batch 62", "SGD lr of the centers":
     sgd_lr_from_rule_alpha(1.9, 1.0, 62 / 7, reduction="mean", batch_size=62)},
]).set_index("setting")

# %% [markdown]
# ### What α = 1.9 does
#
# cl-resnet50 uses α = 1.9. The factor $1 - \alpha n_j/(1+n_j)$ by which a center's
# distance to its class's batch mean is multiplied is then *negative*: the center jumps
# past the mean and comes back, oscillating, but (since α < 2) the oscillation dies out.
# At α ≥ 2 it would grow for large classes; `CenterLoss` warns.

# %%
pd.DataFrame({f"n_j = {n}": {f"alpha = {a}": round(1 - a * n / (1 + n), 3) for a in (0.1, 0.5, 0.9, 1.9, 2.5)}
              for n in (1, 4, 18, 128)})

# %% [markdown]
# ### The densenet paper's "constant learning rate 10⁻³ for training center loss"
#
# The paper sets α = 0.5 ("the learning rate for updating the class centers") *and*
# "a constant learning rate 10⁻³ … for training center loss", while the softmax loss
# trains at 0.1, divided by 10 on plateaus. Both cannot be the centers' rate. `ferlib`
# reads 10⁻³ as the rate at which the $\lambda L_C$ term trains the *network*: as if one
# optimiser stepped $L_S$ at 0.1, 0.01, … and another stepped $\lambda L_C$ at a constant
# 10⁻³. For SGD that equals one optimiser at the softmax rate whose center-term gradient
# is scaled by $10^{-3}/\text{lr}$ (`separate_lr_grad_scale`;
# `SoftmaxCenterLoss(center_term_lr=1e-3)` recomputes it at each epoch from the
# optimiser's current rate):

# %%
pd.DataFrame({"softmax lr": lr, "scale on the center term's gradient": separate_lr_grad_scale(lr, 1e-3)}
             for lr in (0.1, 0.01, 1e-3, 1e-4, 1e-5)).set_index("softmax lr")

# %%
for name in ("densenet-bc-center", "cl-resnet50"):
    r = RECIPES.get(name)
    print(f"{name:20s}", "criterion =", r.criterion if r else "(recipe not registered)",
          f"| optimizer {r.optimizer}, lr {r.lr}, batch {r.batch_size}" if r else "")

# %% [markdown]
# ## 5. Seeing it: 2-D deep features under λ and α
#
# Wen et al. showed the effect with a network whose deep-feature layer has only **two
# units**, so the features can be plotted as they are. We do the same on faces: the
# synthetic faces, shrunk to 16×16 and standardised per pixel, feed a small MLP
# (256 → 64 → 64 → **2**, PReLU) and a linear 7-way classifier, trained with
# $L_S + \lambda L_C$ (mean reduction, centers by the rule). Every run starts from the
# same weights and sees the same batches, so two runs differ only in λ and α.
#
# Why synthetic faces here, even when FER-2013 is present: the runs must take well
# under a second each, and the picture should be the same on every machine. §6 trains on
# the real data when you have it. The quick profile trains one run per (λ, α) of a
# small grid — seconds in all — and keeps them in memory; the full profile uses a larger
# grid and longer runs.

# %%
settings = toy.grid_settings()
toy_data = toy.toy_face_data(n_per_class=settings["n_per_class"])
print(f"{toy_data.tag}: {len(toy_data.y_train)} Training and {len(toy_data.y_test)} {toy_data.held_out} faces, "
      f"{toy_data.image_size}x{toy_data.image_size} = {toy_data.in_dim} inputs")
grid = toy.center_grid(toy_data, settings["lambdas"], settings["alphas"], steps=settings["steps"])
print(f"{len(grid)} runs of {settings['steps']} steps in {grid.seconds:.1f} s")
grid.table()

# %% [markdown]
# *Reading the table.* "intra-class spread" and "inter-class distance" are measured on
# the Training features. Their **ratio** $\sqrt{\text{spread}}/\text{distance}$ — the
# typical radius of a class over the typical gap between classes — is scale-free:
# shrinking all features by 2 divides the spread by 4 and the distance by 2 and leaves
# the ratio alone. Lower is more discriminative. "center lag" is the mean distance of a
# center from its class's feature mean at the end. All the runs at once (Training
# features, centers as crosses):

# %%
# (the full profile's grid is large: show every other lambda and alpha here, all of them with the sliders)
grid_fig = cplots.grid_figure(grid, lambdas=grid.lambdas if QUICK else grid.lambdas[::2],
                              alphas=grid.alphas if QUICK else grid.alphas[::2])
grid_fig

# %%
tab = grid.table()
base = tab[tab["lambda"] == 0].iloc[0]
best = tab.loc[tab["ratio"].idxmin()]
pulled = tab[tab["lambda"] > 0]
lag_lo = pulled[pulled["alpha"] == pulled["alpha"].min()]["center lag"].mean()
lag_hi = pulled[pulled["alpha"] == pulled["alpha"].max()]["center lag"].mean()
display(Markdown(
    f"With softmax alone (λ = 0) the classes are stretched out from the origin and the spread is "
    f"{base['intra-class spread']:.3g} (ratio {base['ratio']:.3f}): the softmax needs the right *directions*, "
    f"not compact classes. Center loss pulls each class into a blob; the lowest ratio here is "
    f"{best['ratio']:.3f}, at λ = {best['lambda']:g}, α = {best['alpha']:g}. Larger λ also shrinks the whole "
    f"cloud (the inter-class distance falls from {base['inter-class distance']:.3g} to "
    f"{tab[tab['lambda'] == tab['lambda'].max()]['inter-class distance'].mean():.3g} at the largest λ), "
    f"which is why the ratio, not the spread alone, is the number to watch. α matters much less than λ: it "
    f"sets how fast the centers follow the features. A small α averages over many batches, a large one "
    f"follows each batch's mean, noise included: with λ > 0 the mean center lag is {lag_lo:.3g} at "
    f"α = {pulled['alpha'].min():g} and {lag_hi:.3g} at α = {pulled['alpha'].max():g}. On held-out faces "
    f"({grid.held_out}, the toggle below) the clusters are much looser: a 2-unit layer trained on "
    f"{len(toy_data.y_train)} faces overfits, and center loss does not cure that."))

# %% [markdown]
# ### Sliders
#
# Move λ and α: the figure is redrawn from the precomputed run (no training, so at once).
# The toggle switches between Training features (what the loss sees) and held-out ones.
# The right panel shows the two loss terms during training. (Without a running kernel
# — on a static page, or in CI — the widget shows only its initial state.)

# %%
explorer = cplots.CenterGridExplorer(grid, lambda_=settings["lambdas"][0], alpha=0.5 if 0.5 in grid.alphas else None)
explorer

# %% [markdown]
# ### In three dimensions
#
# The same network with a **3-unit** feature layer, with and without center loss — drag
# to rotate (plotly; a few hundred points per panel).

# %%
runs3d = {"softmax only (λ = 0)": toy.train_toy(toy_data, 0.0, 0.5, feature_dim=3, steps=settings["steps"]),
          "softmax + center loss (λ = 0.1)": toy.train_toy(toy_data, 0.1, 0.5, feature_dim=3, steps=settings["steps"])}
print(cplots.separation_table({k: r.features("train") for k, r in runs3d.items()}).round(3).to_string())
cplots.scatter3d(runs3d, toy_data.class_names, max_points=800, tag=toy_data.tag).show()

# %% [markdown]
# ## 6. Deep features of a real network: t-SNE (densenet Fig. 6) and PCA (cl-resnet50 Fig. 1)
#
# The densenet paper shows t-SNE maps of the PrivateTest deep features of its
# WideDenseNet without and with center loss (Fig. 6); cl-resnet50 shows 2-D PCA of the
# ResNet-50 features of its *training* data (Fig. 1). We do both, on the data found
# (FER-2013 if you have it, the synthetic faces otherwise).
#
# * **full profile**: the best checkpoints (`runs/<recipe>-full-seed0/best.pt`, epoch
#   selected on PublicTest) of a pair of full runs, without and with center loss, when
#   they exist;
# * **quick profile** (and the full profile without checkpoints): two tiny DenseNet-BCs
#   trained here for a few epochs on a small stratified subset — identical except for
#   the criterion. To see an effect in seconds they use Adam and λ = 0.1, not the
#   paper's SGD with λ = 0.05 and a 10⁻³ center-term rate, and no augmentation; they
#   are far from converged, so expect noisy maps and look at the numbers.
#
# Nothing is written to `results/` or `runs/`: the quick runs use a temporary folder.

# %%
ds = load_fer2013(synthetic_per_class=300 if QUICK else 1000)  # (the synthetic count matters only without FER-2013)
print(f"{len(ds):,} images; {ds.tag}")
if ds.synthetic:
    display(Markdown(f"> **{ds.tag}.** No FER-2013 was found: the maps below are of synthetic faces and say "
                     "nothing about FER-2013."))

# %%
PAIRS = [("wide-densenet-bc", "wide-densenet-bc-center"), ("wide-densenet", "wide-densenet-center"),
         ("densenet-bc", "densenet-bc-center"), ("densenet", "densenet-center"), ("resnet50", "cl-resnet50")]


def real_checkpoint(name):
    """The best checkpoint of a real run of ``name``: a full-profile run, else a wall-clock-budget run."""
    for path in [paths.runs_dir() / f"{name}-full-seed0" / "best.pt",
                 *sorted(paths.runs_dir().glob(f"{name}-*min-*-seed0/best.pt"))]:
        if path.is_file():
            return path
    return None


pair = None
if not ds.synthetic:
    pair = next((p for p in PAIRS if all(real_checkpoint(n) for n in p)), None)
    print("real-run checkpoints:", [str(real_checkpoint(n)) for n in pair] if pair
          else "none found; training the quick pair instead")

# %%
deep = {}  # name -> {"Training": (features, labels), "PrivateTest": (features, labels), "accuracy": ...}
if pair is not None:
    train_sub = stratified_subset(ds.split("Training"), 300, seed=0)
    test_split = ds.split("PrivateTest")
    for name, label in zip(pair, ("softmax only", "softmax + center loss")):
        loaded = load_model(real_checkpoint(name), device="cuda" if torch.cuda.is_available() else "cpu")
        tr_logits, tr_f = loaded.predict_outputs(train_sub.pixels)
        te_logits, te_f = loaded.predict_outputs(test_split.pixels)
        deep[f"{label} ({name})"] = {"Training": (tr_f.numpy(), train_sub.labels),
                                     "PrivateTest": (te_f.numpy(), test_split.labels),
                                     "accuracy": float((te_logits.argmax(1).numpy() == test_split.labels).mean())}
else:
    common = dict(paper="none", paper_results={}, augment="none", optimizer="adam", lr=5e-3, schedule="constant",
                  batch_size=64, quick=Budget(epochs=4, train_per_class=120, eval_per_class=40),
                  full=Budget(epochs=4, train_per_class=120, eval_per_class=40))
    quick_pair = {
        "softmax only": smoke_recipe(name="ch03-softmax", row="chapter 03 demo: tiny DenseNet-BC, softmax", **common),
        "softmax + center loss": smoke_recipe(name="ch03-center", row="chapter 03 demo: tiny DenseNet-BC, + center loss",
                                              criterion=CenterLossConfig(lambda_=0.1, alpha=0.5),
                                              **common),
    }
    # checkpoints go to a temporary folder, deleted at the end of the cell
    with tempfile.TemporaryDirectory(prefix="ferlib_ch03_") as workdir, toy.torch_threads(1):
        # (tiny convolutions run fastest on one thread, and CI machines are shared)
        for label, recipe in quick_pair.items():
            data = prepare_splits(ds, recipe.quick.train_per_class, recipe.quick.eval_per_class, seed=0)
            run = build_run(recipe, data, profile="quick", seed=0, device="cpu", run_dir=Path(workdir) / recipe.name,
                            progress=False, precision="fp32")
            trainer = run.trainer
            state = trainer.fit(resume=False)
            print(f"{label:22s} train loss by epoch", [round(h["train_loss"], 3) for h in state.history],
                  "| PublicTest acc", [round(h["val_accuracy"], 2) for h in state.history],
                  f"| {state.train_seconds:.1f} s")
            train_src = DeviceBatchSource.for_eval(data.train.pixels, data.train.labels, batch_size=256,
                                                   augment=run.augment, device=trainer.device,
                                                   normalize=run.normalizer)
            _, tr_y, tr_f = predict(trainer.model, train_src, return_features=True)
            te_logits, te_y, te_f = predict(trainer.model, run.test_source, return_features=True)
            deep[label] = {"Training": (tr_f.numpy(), tr_y.numpy()), "PrivateTest": (te_f.numpy(), te_y.numpy()),
                           "accuracy": float((te_logits.argmax(1) == te_y).float().mean())}
    print(f"trained on {len(data.train)} Training faces ({ds.tag}); features of "
          f"{len(data.train)} Training and {len(data.test)} PrivateTest faces")

# %% [markdown]
# The numbers first, measured in the original feature space (t-SNE and PCA distort
# distances; these do not):

# %%
sep = cplots.separation_table({f"{name} | {split}": d[split] for name, d in deep.items()
                               for split in ("Training", "PrivateTest")})
sep["PrivateTest accuracy"] = [deep[k.split(" | ")[0]]["accuracy"] for k in sep.index]
sep.round(4)

# %%
panels = {}
for name, d in deep.items():
    f_te, y_te = d["PrivateTest"]
    keep = np.arange(len(y_te)) if len(y_te) <= 2000 else np.random.default_rng(0).choice(len(y_te), 2000, replace=False)
    with threadpool_limits(1):  # small t-SNEs are fastest on one thread, and CI machines are shared
        emb = TSNE(n_components=2, perplexity=min(30, len(keep) // 4), init="pca",
                   random_state=0).fit_transform(f_te[keep])
    panels[f"t-SNE, PrivateTest — {name}"] = (emb, y_te[keep])
for name, d in deep.items():
    f_tr, y_tr = d["Training"]
    panels[f"PCA, Training — {name}"] = (PCA(n_components=2).fit_transform(f_tr), y_tr)
cplots.embedding_panels(panels, ds.class_names, ncols=2, tag=ds.tag,
                        title="Deep features without (left) and with (right) center loss")

# %%
names = list(deep)
r0, r1 = (sep.loc[f"{n} | Training", "ratio"] for n in names)
t0, t1 = (sep.loc[f"{n} | PrivateTest", "ratio"] for n in names)
display(Markdown(
    f"On these runs the ratio of spread to distance is {r0:.3f} → {r1:.3f} on Training and {t0:.3f} → {t1:.3f} "
    f"on PrivateTest ({'lower' if t1 < t0 else 'not lower'} with center loss on the test faces). "
    + ("These are seconds-long runs of a tiny network: the maps are mostly noise, and a single seed decides "
       "small differences. The full runs (`python -m ferlib train densenet-bc-center --profile full`, then this "
       "chapter with `FERLIB_PROFILE=full`) give the papers' setting." if pair is None else
       "These are the full runs' selected checkpoints.")))

# %% [markdown]
# ## 7. The papers' numbers beside ours
#
# **densenet, Table II**: each network without and with center loss (PublicTest and
# PrivateTest accuracy in %, and the same for the ensemble of the last five epochs'
# checkpoints). The paper's numbers come from the recipes in `ferlib.train`, ours from
# `results/<recipe>.json` (a full-profile run) and `results/budget/` (wall-clock-budget
# runs, e.g. 60 minutes on a laptop CPU); the `run` column says which, on what device.

# %%
TABLE_II = [n for base in ("densenet", "densenet-bc", "wide-densenet", "wide-densenet-bc") for n in (base, f"{base}-center")]
paper_vs_ours(TABLE_II)

# %% [markdown]
# ### Does center loss help here?
#
# The answer comes from pairs of real runs that differ only in the loss — a full-profile
# pair when one exists, else the wall-clock-budget pair (`results/budget/`). The
# difference in PrivateTest accuracy is shown with its binomial standard error on the
# PrivateTest images (`ferlib.evaluate.metrics.accuracy_difference`): a difference
# within about two standard errors is not evidence either way.

# %%
def real_pair_results(base):
    """(softmax, center) results of the same kind of real run, or None."""
    root = paths.results_dir()
    for a, b in [(root / f"{base}.json", root / f"{base}-center.json"),
                 *[(p, p.with_name(p.name.replace(base, f"{base}-center", 1)))
                   for p in sorted((root / "budget").glob(f"{base}-[0-9]*min-*.json"))]]:
        if a.is_file() and b.is_file():
            return load_results(a), load_results(b)
    return None


for base in ("densenet-bc", "densenet", "wide-densenet", "wide-densenet-bc"):
    found = real_pair_results(base)
    if found is None:
        continue
    plain, center = found
    a, b = (r["metrics"]["PrivateTest"]["accuracy"] for r in (plain, center))
    d = accuracy_difference(a, b, plain["metrics"]["PrivateTest"]["n"])
    verdict = ("within two standard errors: no evidence that center loss helps or hurts in this setting"
               if abs(d["z"]) < 2 else ("center loss is better here" if d["z"] > 0 else "center loss is worse here"))
    display(Markdown(
        f"**{base}** ({run_label(plain)}): PrivateTest {a:.1%} without, {b:.1%} with center loss — "
        f"difference {100 * d['difference']:+.1f} ± {100 * d['standard_error']:.1f} points (z = {d['z']:.1f}); "
        f"{verdict}."))
    break
else:
    print("no pair of real runs (softmax and + center loss) in results/ yet")

# %% [markdown]
# **cl-resnet50, Table 3** (FER2013 row): ResNet-50 with softmax alone vs CL-ResNet50.
# The paper does not say on which split Table 3 is measured; `ferlib` selects on
# PublicTest and reports PrivateTest, so "ours" is on the official test split (`f1` is
# our macro F1; the paper does not say how it averaged).

# %%
paper_vs_ours(["resnet50", "cl-resnet50"])

# %% [markdown]
# ## 8. Questions
#
# 1. Derive $\partial L_C/\partial c_j$ if the centers were parameters. Where does it
#    appear in Eq. 4, and what does Eq. 4 add to it?
# 2. With `reduction="sum"`, λ = 0.05 and batch 128, what λ gives the same gradients
#    with `reduction="mean"`? What happens to the "sum" λ if you halve the batch?
# 3. A class has a single sample in a batch. By what fraction of the distance does the
#    rule move its center toward it, for α = 0.5? For α = 1.9?
# 4. Why can center loss not be trained alone? What would the features converge to?
#    (§3 has the numbers.)
# 5. In the 2-D grid, why do the softmax-only features lie along rays from the origin?
#    (Hint: what does the softmax of $Wx + b$ do when $x$ is scaled up?)
# 6. Why is the ratio $\sqrt{\text{spread}}/\text{distance}$ a better summary than the
#    spread alone? Construct features whose spread falls while they get *less*
#    discriminative.
# 7. The densenet paper trains the softmax loss at 0.1 (decayed) and the center loss at
#    a constant 10⁻³. Under `ferlib`'s reading, what is the scale on the center term's
#    gradient when the softmax rate has fallen to 10⁻⁵, and what does that imply about
#    late training?
# 8. cl-resnet50 uses α = 1.9. Show that the center still converges on a fixed
#    batch, and that α = 2.1 would not for large classes.
# 9. t-SNE preserves neighbourhoods, not distances. Why report spread and distance in the
#    original feature space rather than on the t-SNE map?
#
# ## 9. What goes wrong in practice
#
# Each item below is demonstrated in a few lines.
#
# **1. Centers never added to the optimiser** (the parameter variant). They get
# gradients but never move, so $L_C$ just pulls every feature toward the origin.
# `SoftmaxCenterLoss` warns; the trainer always adds `criterion.extra_param_groups()`.

# %%
torch.manual_seed(0)
net1, head1 = nn.Linear(5, 2), nn.Linear(2, 3)
crit1 = SoftmaxCenterLoss(3, 2, lambda_=0.1, update="gradient")
opt1 = torch.optim.SGD([*net1.parameters(), *head1.parameters()], lr=0.1)  # forgot crit1.extra_param_groups()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for _ in range(3):
        xb, yb = torch.randn(16, 5), torch.randint(0, 3, (16,))
        fb = net1(xb)
        opt1.zero_grad()
        crit1(head1(fb), fb, yb).backward()
        opt1.step()
        crit1.after_step(fb.detach(), yb)
print("centers after 3 steps:", crit1.centers.detach().numpy().tolist())
print("warning:", caught[0].message if caught else "none")

# %% [markdown]
# **2. Weight decay on the centers.** With the centers' gradient carrying λ (not
# decoupled), a small λ and the network's weight decay, the decay wins and drags every
# center toward the origin. The equilibrium of SGD on
# $\lambda \frac{n_j}{m} \cdot \frac12\lVert c_j - \bar x_j\rVert^2 + \frac{w}{2}\lVert c_j\rVert^2$
# is $c_j = \bar x_j \cdot a/(a + w)$ with $a = \lambda n_j/m$. `ferlib`'s center param
# group has `weight_decay=0`.

# %%
pd.DataFrame([{"lambda": lam, "weight decay": wd,
               "center / class mean at equilibrium": (lam / 7) / (lam / 7 + wd)}
              for lam in (0.003, 0.05, 1.0) for wd in (0.0, 1e-4, 5e-4)]).pivot(
    index="lambda", columns="weight decay", values="center / class mean at equilibrium").round(3)

# %% [markdown]
# **3. α and λ rescaled the wrong way.** Porting "α = 0.5" as the centers' SGD learning
# rate is not the same thing: under the mean reduction with batch 128 and λ = 0.05 not
# decoupled, an SGD rate of 0.5 acts like this α —

# %%
print(f"alpha equivalent of center lr 0.5: {rule_alpha_from_sgd(0.5, 0.05, 128 / 7, reduction='mean', batch_size=128):.5f}"
      " -- the centers crawl; see the table in section 4 for the rate that matches alpha = 0.5")

# %% [markdown]
# **4. Centers moved by back-propagation *and* by the rule.** Both steps add up. On a
# fixed batch with α = 1.9 the rule alone converges; add an SGD step of the same size
# and the factor per step leaves $(-1, 1)$ — the centers blow up. (`CenterLoss.update`
# refuses to run on parameter centers for this reason.)

# %%
n_j, a = 18, 1.9
rule_only = 1 - a * n_j / (1 + n_j)
both = 1 - 2 * a * n_j / (1 + n_j)
pd.DataFrame({"factor per step": [rule_only, both],
              "distance to the batch mean after 20 steps (start 1)": [abs(rule_only) ** 20, abs(both) ** 20]},
             index=["rule only", "rule + matching SGD step"]).round(4)

# %% [markdown]
# **5. λ too large.** $\lambda L_C$ then dominates $L_S$, the classes collapse onto
# each other, and accuracy falls — the toy network of §5:

# %%
collapse = [grid.run(grid.lambdas[0], grid.alphas[0])] + [toy.train_toy(toy_data, lam, 0.5, steps=settings["steps"])
                                                           for lam in (10.0, 100.0)]
pd.DataFrame([r.summary() for r in collapse])[["lambda", "train acc", "held-out acc", "intra-class spread",
                                               "inter-class distance", "ratio"]]

# %% [markdown]
# **6. Sum vs mean changes λ with the batch size.** Same features, same centers, only
# the batch size differs: the summed $L_C$ grows with $m$ (so λ must shrink as the batch
# grows), the mean does not.

# %%
gen = torch.Generator().manual_seed(3)
pool_x, pool_y = torch.randn(512, 8, generator=gen), torch.randint(0, 7, (512,), generator=gen)
pool_c = torch.zeros(7, 8)
pd.DataFrame([{"batch size": m, "L_C sum": center_loss(pool_x[:m], pool_y[:m], pool_c, "sum").item(),
               "L_C mean": center_loss(pool_x[:m], pool_y[:m], pool_c, "mean").item()}
              for m in (32, 64, 128, 256)]).set_index("batch size").round(3)

# %%
print(f"chapter 03 ran in {time.perf_counter() - T0:.1f} s ({PROFILE} profile, {ds.tag})")
