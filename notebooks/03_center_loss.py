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
# center of its class: the **center loss**. Three of this book's papers use it: densenet
# (§III-C, §IV-C: DenseNet and WideDenseNet on FER-2013), cl-resnet50 (§3, §4: an
# ImageNet ResNet-50 on FER-2013 and RAF-DB) and ferplus (Eq. 1–3: VGG13 on FER+, with λ
# swept on a log axis). The first two are `ferlib` recipes; the table after the imports
# shows their settings as the recipes hold them — every later cell reads them from there.
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

# %% tags=["hide-input"]
# %matplotlib inline
import tempfile
import time
import warnings

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits
from torch import nn

from ferlib.data.dataset import stratified_subset
from ferlib.data.discovery import load_fer2013
from ferlib.evaluate.metrics import accuracy_difference
from ferlib.evaluate.separation import inter_class_distance, intra_class_spread
from ferlib.losses.center import (
    CenterLoss,
    SoftmaxCenterLoss,
    center_loss,
    center_update,
    rule_alpha_from_sgd,
    separate_lr_grad_scale,
    sgd_lr_from_rule_alpha,
)
from ferlib.numerics import check_gradient
from ferlib.profiles import get_profile
from ferlib.chapters import center_loss_grid, center_loss_pairs
from ferlib.evaluate.wording import difference_phrase
from ferlib.jobs import tables
from ferlib.jobs.tables import paper_vs_ours, row_runs, run_label
from ferlib.train.recipes import cl_resnet50 as cl_resnet50_recipes, get_recipe
from ferlib.viz import center_plots as cplots
from ferlib.viz.source import show_code
from ferlib.viz.tables import paper_vs_ours_long, wrapped

T0 = time.perf_counter()
PROFILE = get_profile()
QUICK = PROFILE == "quick"
pd.set_option("display.width", 140)
pd.set_option("display.precision", 4)
print(f"profile: {PROFILE} ({'seconds on a CPU; the training runs are smoke tests' if QUICK else 'larger grids; loads full-run checkpoints when present'})")

# %% [markdown]
# The two center-loss recipes, as `ferlib.train.recipes` holds them (each recipe's
# docstring quotes its paper). Every number of these recipes used below — λ, α, the
# batch size, the center term's learning rate — is read from here, never typed:

# %%
DENSENET_CL, CL_RESNET50 = get_recipe("densenet-bc-center"), get_recipe("cl-resnet50")
pd.DataFrame([{"recipe": r.name, "paper": r.paper, "model": r.model, "λ": r.criterion.lambda_,
               "α": r.criterion.alpha, "optimiser": f"{r.optimizer}, lr {r.lr:g}, {r.schedule} schedule",
               "center term's lr": r.criterion.center_term_lr or "the optimiser's", "batch": r.batch_size,
               "weight decay": r.weight_decay} for r in (DENSENET_CL, CL_RESNET50)]).set_index("recipe")

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
# Read literally, all three papers *sum* over the batch: Eq. 2 has no $1/m$, although
# the softmax loss it is added to (Eq. 1) is a batch *mean*. The choice decides what λ
# means.
#
# * **Sum.** The gradient with respect to a feature is exactly Eq. 3, $x_i - c_{y_i}$,
#   but $L_C$ — and so its weight against the batch-averaged cross-entropy — grows with
#   the batch size $m$: λ has to be re-tuned whenever $m$ changes.
# * **Mean** (divide Eq. 2 by $m$). Each sample's gradient is $(x_i - c_{y_i})/m$, the
#   same $1/m$ that each sample's cross-entropy gradient carries, so λ is a ratio that
#   does not depend on $m$.
#
# Wen et al.'s own Caffe layer returns the batch mean (`dot / M / 2`), and most PyTorch
# ports divide by the batch size, so **`ferlib` uses `reduction="mean"` by default** and
# reads the papers' λ on that scale ($\lambda_\text{sum} = \lambda_\text{mean}/m$ if you
# need the literal Eq. 2). `reduction="sum"` stays available, for the lab and for
# checks. The papers do not say which their code used, and it matters: the same
# features and centers, only the batch size changing —

# %%
gen = torch.Generator().manual_seed(3)
pool_x, pool_y = torch.randn(512, 8, generator=gen), torch.randint(0, 7, (512,), generator=gen)
pool_c = torch.zeros(7, 8)
pd.DataFrame([{"batch size m": m, "L_C sum": center_loss(pool_x[:m], pool_y[:m], pool_c, "sum").item(),
               "L_C mean": center_loss(pool_x[:m], pool_y[:m], pool_c, "mean").item()}
              for m in (32, 64, 128, 256)]).set_index("batch size m").round(3)

# %% tags=["hide-input"]
lam, m = DENSENET_CL.criterion.lambda_, DENSENET_CL.batch_size
display(Markdown(
    f"The summed $L_C$ grows in proportion to $m$, the mean does not. So a λ tuned with one reduction is "
    f"another λ with the other: had densenet's code summed, its λ = {lam:g} at batch {m} would be "
    f"{lam:g} × {m} = {lam * m:g} on `ferlib`'s mean scale; read on the mean scale (as `ferlib` does), it is "
    f"{lam:g} / {m} = {lam / m:.2g} on the sum scale. Here is the code:"))

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

# %% tags=["hide-input"]
first, last = shrink.iloc[0], shrink.iloc[-1]
fell = last["inter-class distance"] < first["inter-class distance"]
display(Markdown(
    f"The intra-class spread went from {first['intra-class spread']:.3g} to {last['intra-class spread']:.2g}, "
    f"and the inter-class distance from {first['inter-class distance']:.3g} to "
    f"{last['inter-class distance']:.3g}"
    + (": it fell too — features and centers meet part way, and the centers started at the origin." if fell
       else ".")
    + " Nothing in $L_C$ keeps the classes apart: its minimum, 0, is reached just as well with every "
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
# `SoftmaxCenterLoss` is Eq. 5 as a trainer criterion, here with densenet's λ and α.
# With the rule, one training step is: forward, backward, optimiser step — *the centers
# get no gradient* — then `after_step` applies Eq. 4 and 6 (the trainer's step, in
# `ferlib.train.trainer.Trainer.train_epoch`, does exactly this):

# %%
torch.manual_seed(0)
tiny_net, tiny_head = nn.Linear(5, 2), nn.Linear(2, 3)
crit = SoftmaxCenterLoss(num_classes=3, feature_dim=2, lambda_=DENSENET_CL.criterion.lambda_,
                         alpha=DENSENET_CL.criterion.alpha)
opt = torch.optim.SGD([*tiny_net.parameters(), *tiny_head.parameters()], lr=DENSENET_CL.lr)
xb, yb = torch.randn(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 0])
fb = tiny_net(xb)
loss = crit(tiny_head(fb), fb, yb)
loss.backward()
opt.step()
print(f"L = L_S + lambda L_C = {crit.last_terms['ce']:.4f} + {crit.lambda_:g} * {crit.last_terms['center']:.4f} "
      f"= {loss.item():.4f}")
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
# For the two recipes' settings — seven classes, so a balanced batch holds
# batch size / 7 samples of a class, mean reduction — the center learning rate that would
# play their α is large, and far larger again if λ is *not* decoupled (the port forgets
# the 1/λ):

# %%
rows = []
for r in (DENSENET_CL, CL_RESNET50):
    lam, a, m = r.criterion.lambda_, r.criterion.alpha, r.batch_size
    for decoupled in (True, False):
        rows.append({"recipe": r.name, "α": a, "batch": m, "λ": lam, "λ decoupled": decoupled,
                     "SGD lr of the centers that plays α": sgd_lr_from_rule_alpha(
                         a, 1.0 if decoupled else lam, m / 7, reduction="mean", batch_size=m)})
pd.DataFrame(rows).set_index(["recipe", "λ decoupled"])

# %% [markdown]
# ### What α = 1.9 does
#
# cl-resnet50's α is large. The factor $1 - \alpha n_j/(1+n_j)$ by which a center's
# distance to its class's batch mean is multiplied is *negative* once
# $\alpha n_j/(1+n_j) > 1$: the center jumps past the mean and comes back, oscillating,
# and the oscillation dies out as long as α < 2. At α ≥ 2 it would grow for large
# classes; `CenterLoss` warns. The factor for a few α, the two recipes' among them:

# %%
alphas_shown = sorted({0.1, 0.5, 0.9, 2.5, DENSENET_CL.criterion.alpha, CL_RESNET50.criterion.alpha})
pd.DataFrame({f"n_j = {n}": {f"alpha = {a:g}": round(1 - a * n / (1 + n), 3) for a in alphas_shown}
              for n in (1, 4, DENSENET_CL.batch_size // 7, DENSENET_CL.batch_size)})

# %% [markdown]
# ### Two learning rates
#
# densenet (§IV-C) sets α ("the learning rate for updating the class centers") *and*
# "a constant learning rate 10⁻³ … for training center loss", while the softmax loss
# trains at 0.1, "decreased by 10 times whenever the training loss stops improving";
# "we train softmax loss and center loss with different learning rates". The centers'
# rate is α, so the second rate cannot be theirs. **`ferlib`'s reading:** it is the rate
# at which the $\lambda L_C$ term trains the *network* — as if one optimiser stepped
# $L_S$ at 0.1, 0.01, … and another stepped $\lambda L_C$ at a constant rate, both on the
# network's weights.
#
# One optimiser can do this. A plain SGD step with two optimisers moves a weight $w$ by
# $-\eta\,\partial L_S/\partial w - \eta_C\,\partial(\lambda L_C)/\partial w$; one SGD at the
# softmax rate $\eta$ whose center-term gradient is scaled by $s = \eta_C/\eta$ moves it by
# $-\eta\,(\partial L_S/\partial w + s\,\partial(\lambda L_C)/\partial w)$ — the same step.
# Momentum (Nesterov's too) is linear in the gradients, so the two agree with momentum
# as well, as long as η does not change. `SoftmaxCenterLoss` scales the gradient that
# $\lambda L_C$ sends into the features by `feature_grad_scale` (the reported loss is
# unchanged); with `center_term_lr` set, `on_lr_change(optimizer)` sets
# `feature_grad_scale = center_term_lr / lr` from the optimiser's current rate (param
# group 0, the network's), and the trainer calls it at the start, after every change of
# the learning rate and when a run resumes. The demonstration: the densenet recipe's
# rates, momentum and Nesterov, twenty steps of two optimisers against twenty steps of
# one optimiser with the scaled gradient — and, for contrast, of one optimiser that
# trains both terms at the softmax rate:

# %%
def two_rate_run(mode, steps=20, seed=0):
    """A tiny network (features = a linear layer's 3 outputs) trained with densenet's rates; its weights.

    mode: "two optimisers", "one, scaled" (center_term_lr) or "one, unscaled" (one rate for both terms)."""
    torch.manual_seed(seed)
    body, head = nn.Linear(6, 3), nn.Linear(3, 4)
    params = [*body.parameters(), *head.parameters()]
    r, c = DENSENET_CL, DENSENET_CL.criterion
    sgd = dict(momentum=r.momentum, nesterov=r.nesterov)  # weight decay aside: see below
    gen = torch.Generator().manual_seed(seed + 1)
    one_optimizer = mode != "two optimisers"
    if one_optimizer:
        crit = SoftmaxCenterLoss(4, 3, lambda_=c.lambda_, alpha=c.alpha,
                                 center_term_lr=c.center_term_lr if mode == "one, scaled" else None)
        opt = torch.optim.SGD(params, lr=r.lr, **sgd)
        crit.on_lr_change(opt)  # feature_grad_scale = center_term_lr / lr
    else:
        centers = CenterLoss(4, 3, alpha=c.alpha)
        opt_softmax = torch.optim.SGD(params, lr=r.lr, **sgd)
        opt_center = torch.optim.SGD(params, lr=c.center_term_lr, **sgd)
    for _ in range(steps):
        x, y = torch.randn(16, 6, generator=gen), torch.randint(0, 4, (16,), generator=gen)
        f = body(x)
        if one_optimizer:
            opt.zero_grad()
            crit(head(f), f, y).backward()
            opt.step()
            crit.after_step(f.detach(), y)
        else:
            g_softmax = torch.autograd.grad(nn.functional.cross_entropy(head(f), y), params, retain_graph=True)
            g_center = torch.autograd.grad(c.lambda_ * centers(f, y), params, allow_unused=True)
            for opt_, grads in ((opt_softmax, g_softmax), (opt_center, g_center)):
                for p_, g_ in zip(params, grads):
                    p_.grad = torch.zeros_like(p_) if g_ is None else g_
                opt_.step()
            centers.update(f.detach(), y)
    return torch.cat([p_.detach().flatten() for p_ in params])


w_two = two_rate_run("two optimisers")
weights_diff = {mode: float((two_rate_run(mode) - w_two).abs().max()) for mode in ("one, scaled", "one, unscaled")}
print(f"largest weight difference from two optimisers after 20 steps (weights up to {w_two.abs().max():.2f}):")
for mode, diff in weights_diff.items():
    print(f"  one optimiser, {mode[5:]:9s}: {diff:.1e}")
assert weights_diff["one, scaled"] < 1e-5 < weights_diff["one, unscaled"]

# %% [markdown]
# Along the plateau schedule the scale grows as the softmax rate falls: the center
# term's effective step stays constant while the softmax steps shrink, so late in
# training the center term dominates the updates — the literal consequence of "a
# constant learning rate … for training center loss". The recipe's rates, from its
# first rate down to its floor:

# %%
lrs = DENSENET_CL.lr * 10.0 ** -np.arange(int(round(np.log10(DENSENET_CL.lr / DENSENET_CL.min_lr))) + 1)
pd.DataFrame({"softmax lr": lr, "center term's lr": DENSENET_CL.criterion.center_term_lr,
              "scale on the center term's gradient": separate_lr_grad_scale(lr, DENSENET_CL.criterion.center_term_lr)}
             for lr in lrs).set_index("softmax lr")

# %% [markdown]
# Two caveats of doing it with one optimiser. At a change of the learning rate, the
# momentum buffer still holds center gradients accumulated under the old scale, and
# for a few steps they are stepped at the new rate (two separate optimisers would not
# mix them); and weight decay is applied once, at the softmax rate. With Adam, or any
# adaptive optimiser, scaling one term of the gradient is not a separate learning rate
# at all: `SoftmaxCenterLoss.on_lr_change` warns. cl-resnet50 needs none of this — Adam
# at one rate "for both softmax loss and center loss", `center_term_lr` unset, scale 1.

# %% [markdown]
# ## 5. Seeing it: 2-D deep features under λ and α
#
# **This section and its 3-D view train on the synthetic faces even when FER-2013 is
# here, on purpose:** a grid of dozens of runs must finish in seconds on a laptop CPU and
# draw the same picture on every machine, which FER-2013's noisy labels and size do not
# allow (§6 shows the real data's deep features when you have them).
#
# Wen et al. showed the effect with a network whose deep-feature layer has only **two
# units**, so the features can be plotted as they are. We do the same on faces: the
# synthetic faces, average-pooled to a few pixels a side and standardised per pixel,
# feed a small MLP whose last hidden layer has two units (PReLU between the layers), and
# a linear 7-way classifier, trained with $L_S + \lambda L_C$ (mean reduction, centers by
# the rule). Each run is an ordinary training run — `Trainer`, `SoftmaxCenterLoss` as its
# criterion, batches from a `DeviceBatchSource` — only small
# (`ferlib.chapters.center_loss_grid`). Every run starts from the same weights and sees the
# same batches, so two runs differ only in λ and α.
#
# The quick profile trains one run per (λ, α) of a small grid and keeps them in
# memory; the full profile uses a larger grid and longer runs.

# %%
settings = center_loss_grid.grid_settings()
toy_data = center_loss_grid.toy_face_data(n_per_class=settings["n_per_class"])
grid = center_loss_grid.center_grid(toy_data, settings["lambdas"], settings["alphas"], epochs=settings["epochs"])
first_run = next(iter(grid.runs.values()))
print("synthetic faces on purpose, with or without FER-2013: dozens of runs in seconds, the same picture everywhere")
print(f"{toy_data.tag}: {len(toy_data.train_labels)} Training and {len(toy_data.test_labels)} {toy_data.held_out} "
      f"faces of {toy_data.image_size}x{toy_data.image_size} = {toy_data.in_dim} inputs; "
      f"{first_run.feature_dim}-unit deep features")
print(f"{len(grid)} runs of {settings['epochs']} epochs ({first_run.steps} steps) in {grid.seconds:.1f} s"
      + (" — quick profile: a smoke test of the picture, not a tuned result" if QUICK else ""))
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
largest = tab[tab["lambda"] == tab["lambda"].max()]
lag_lo = pulled[pulled["alpha"] == pulled["alpha"].min()]["center lag"].mean()
lag_hi = pulled[pulled["alpha"] == pulled["alpha"].max()]["center lag"].mean()
by_alpha = pulled.groupby("lambda")["ratio"].agg(lambda v: v.max() - v.min()).max()  # alpha changes, lambda fixed
by_lambda = tab.groupby("alpha")["ratio"].agg(lambda v: v.max() - v.min()).max()  # lambda changes, alpha fixed
looser = (tab["held-out ratio"] > tab["ratio"]).mean()
display(Markdown(
    f"With softmax alone (λ = 0) the spread is {base['intra-class spread']:.3g} (ratio {base['ratio']:.3f}): the "
    f"softmax needs the right *directions*, not compact classes. The lowest ratio of the grid is "
    f"{best['ratio']:.3f}, at λ = {best['lambda']:g}, α = {best['alpha']:g}"
    + (" — center loss made the classes more compact relative to their distances." if best["ratio"] < base["ratio"]
       else " — no lower than softmax alone: on this grid center loss did not make the classes more compact.")
    + f" At the largest λ the inter-class distance is {largest['inter-class distance'].mean():.3g}, against "
    f"{base['inter-class distance']:.3g} at λ = 0"
    + (": larger λ shrinks the whole cloud, which is why the ratio, not the spread alone, is the number to watch."
       if largest["inter-class distance"].mean() < base["inter-class distance"] else ".")
    + f" Changing α at a fixed λ moves the ratio by at most {by_alpha:.3f}; changing λ at a fixed α by up to "
    f"{by_lambda:.3f}" + (": here α matters much less than λ. It only sets how fast the centers follow the "
                          "features." if by_alpha < by_lambda else ": here α matters as much as λ.")
    + f" A small α averages the centers over many batches, a large one follows each batch's mean, noise included: "
    f"with λ > 0 the mean center lag is {lag_lo:.3g} at α = {pulled['alpha'].min():g} and {lag_hi:.3g} at "
    f"α = {pulled['alpha'].max():g}"
    + (" — here following each batch's noise costs more than the slowness of a small α." if lag_hi > lag_lo
       else " — here the slowness of a small α costs more than following each batch's noise.")
    + f" On held-out faces ({grid.held_out}, the toggle below) the ratio is higher than on Training in "
    f"{looser:.0%} of the runs"
    + (f": a {first_run.feature_dim}-unit layer trained on {len(toy_data.train_labels)} faces overfits, and center "
       "loss does not cure that." if looser > 0.5 else ".")))

# %% [markdown]
# ### Sliders
#
# Move λ and α: the figure is redrawn from the precomputed run (no training, so at once).
# The toggle switches between Training features (what the loss sees) and held-out ones.
# The right panel shows the two loss terms during training. (Without a running kernel
# — on a static page — the widget shows only its initial state.)

# %%
explorer = cplots.CenterGridExplorer(grid, lambda_=grid.lambdas[0],
                                     alpha=DENSENET_CL.criterion.alpha if DENSENET_CL.criterion.alpha in grid.alphas
                                     else None)
explorer

# %% [markdown]
# ### In three dimensions
#
# The same network with a **3-unit** feature layer, with and without center loss — drag
# to rotate (plotly; a few hundred points per panel).

# %%
lam3d, alpha3d = grid.lambdas[len(grid.lambdas) // 2], DENSENET_CL.criterion.alpha
runs3d = {f"softmax only (λ = 0)": center_loss_grid.train_center_run(toy_data, 0.0, alpha3d, feature_dim=3,
                                                                     epochs=settings["epochs"]),
          f"softmax + center loss (λ = {lam3d:g})": center_loss_grid.train_center_run(
              toy_data, lam3d, alpha3d, feature_dim=3, epochs=settings["epochs"])}
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
# * **real runs**: when the data is FER-2013 and `runs/` holds a pair of real runs of the
#   same network without and with center loss (`python -m ferlib train <recipe>`, a
#   full-profile or wall-clock-budget run), their selected checkpoints (`best.pt`, epoch
#   chosen on PublicTest);
# * **otherwise** (the quick profile on a fresh checkout, the synthetic faces): two tiny
#   DenseNet-BCs trained here for a few epochs on a small stratified subset — identical
#   except for the criterion (`ferlib.chapters.center_loss_pairs.quick_pair_recipes`; the
#   cell below prints how they differ from densenet's recipe). They are far from
#   converged, so expect noisy maps and look at the numbers.
#
# Either way the features come from `LoadedModel.features`, the evaluation path of a
# saved checkpoint. Nothing is written to `results/` or `runs/`: the quick runs use a
# temporary folder.

# %%
ds = load_fer2013(synthetic_per_class=300 if QUICK else 1000)  # (the synthetic count matters only without FER-2013)
print(f"{len(ds):,} images; {ds.tag}")
if ds.synthetic:
    display(Markdown(f"> **{ds.tag}.** No FER-2013 was found: the maps below are of synthetic faces and say "
                     "nothing about FER-2013."))

# %%
real_pair = None if ds.synthetic else center_loss_pairs.real_checkpoint_pair()
device = "cuda" if torch.cuda.is_available() else "cpu"
if real_pair is not None:
    print("real-run checkpoints:", {label: str(path) for label, path in real_pair.items()})
    deep = center_loss_pairs.pair_features(real_pair, stratified_subset(ds.split("Training"), 300, seed=0),
                                           ds.split("PrivateTest"), device=device)
else:
    quick_recipes = center_loss_pairs.quick_pair_recipes()
    plain_r, center_r = quick_recipes.values()
    display(Markdown(
        f"No real pair found: training the quick pair — {plain_r.model}, {plain_r.optimizer} at a constant "
        f"{plain_r.lr:g}, batch {plain_r.batch_size}, augmentation `{plain_r.augment}`, λ = "
        f"{center_r.criterion.lambda_:g}, α = {center_r.criterion.alpha:g}, {center_r.quick.epochs} epochs on "
        f"{center_r.quick.train_per_class} Training faces per class — where densenet's recipe has "
        f"{DENSENET_CL.model}, {DENSENET_CL.optimizer} at {DENSENET_CL.lr:g} with the {DENSENET_CL.schedule} "
        f"schedule, augmentation `{DENSENET_CL.augment}`, λ = {DENSENET_CL.criterion.lambda_:g} and a center-term "
        f"rate of {DENSENET_CL.criterion.center_term_lr:g}: chosen to show an effect in seconds, not the paper's "
        f"setting."))
    with tempfile.TemporaryDirectory(prefix="ferlib_ch03_") as workdir:  # deleted at the end of the cell
        quick = center_loss_pairs.train_quick_pair(ds, workdir, recipes=quick_recipes)
        for label, history in quick.histories.items():
            print(f"{label:22s} train loss by epoch", [round(h["train_loss"], 3) for h in history],
                  "| PublicTest acc", [round(h["val_accuracy"], 2) for h in history])
        deep = center_loss_pairs.pair_features(quick.checkpoints, quick.data.train, quick.data.test)
    print(f"trained on {len(quick.data.train)} Training faces ({ds.tag}); features of "
          f"{len(quick.data.train)} Training and {len(quick.data.test)} PrivateTest faces")

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
    with threadpool_limits(1):  # small t-SNEs are fastest on one thread
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
       "small differences. Real runs (`python -m ferlib train densenet-bc-center --profile full`, and the same "
       "without center loss) give the papers' setting; this chapter then uses them." if real_pair is None else
       "These are the real runs' selected checkpoints.")))

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
wrapped(paper_vs_ours_long(paper_vs_ours(TABLE_II), metrics=["PublicTest", "PrivateTest"]))

# %% [markdown]
# ### Does center loss help here?
#
# The answer comes from pairs of real runs that differ only in the loss — a full-profile
# pair when one exists, else the wall-clock-budget pair (`results/budget/`). The
# difference in PrivateTest accuracy is shown with its binomial standard error on the
# PrivateTest images (`ferlib.evaluate.metrics.accuracy_difference`): a difference
# within about two standard errors is not evidence either way.

# %%
for base in ("densenet-bc", "densenet", "wide-densenet", "wide-densenet-bc"):
    found = center_loss_pairs.real_pair_results(base)
    if found is None:
        continue
    plain, center = found
    a, b = (r["metrics"]["PrivateTest"]["accuracy"] for r in (plain, center))
    d = accuracy_difference(a, b, plain["metrics"]["PrivateTest"]["n"])
    verdict = ("within two standard errors: no evidence that center loss helps or hurts in this setting"
               if abs(d["z"]) < 2 else ("center loss is better here" if d["z"] > 0 else "center loss is worse here"))
    epochs = (plain["epochs_run"], center["epochs_run"])
    caveat = ("" if epochs[0] == epochs[1] else
              f" The two runs trained {epochs[0]} and {epochs[1]} epochs in the same budget (each results file's "
              "`budget.plan` and `provenance` say why), so the comparison is not of equal training.")
    display(Markdown(
        f"**{base}** ({run_label(plain)}): PrivateTest {100 * b:.1f} % with center loss, "
        + difference_phrase(100 * b, 100 * a, whose="softmax alone's")
        + f" (standard error {100 * d['standard_error']:.1f} points, z = {d['z']:.1f}); "
        f"{verdict}.{caveat}"))
    break
else:
    print("no pair of real runs (softmax and + center loss) in results/ yet")

# %% [markdown]
# **cl-resnet50, Table 3** (FER2013 row): ResNet-50 with softmax alone vs CL-ResNet50.
# The paper does not say on which split Table 3 is measured; `ferlib` selects on
# PublicTest and reports PrivateTest, so "ours" is on the official test split (`f1` is
# our macro F1; the paper does not say how it averaged).

# %%
wrapped(paper_vs_ours_long(paper_vs_ours(["resnet50", "cl-resnet50"])))

# %% [markdown]
# The pair above needs ImageNet weights and a GPU (224 px, 50 epochs). On a CPU budget the kit
# runs the same two recipes at **64 px from random initialisation** (`resnet50-random-64px`,
# `cl-resnet50-random-64px`: no ResNet-50 ImageNet file ships offline, and 224 px costs about 12×
# the multiply-adds of 64 px), each on the same minutes of one core. Not the paper's rows: the
# paper's difference is beside ours only as the claim being tested — does center loss (λ 0.2,
# α 1.9) help ResNet-50 when both arms get the same minutes?

# %%
cl_pair = tables.claims_table([c for c in cl_resnet50_recipes.CLAIMS if c.better.endswith("-64px")])
display(cl_pair)
for name in ("resnet50-random-64px", "cl-resnet50-random-64px"):
    runs_ = row_runs(name)
    if runs_.n:
        r = runs_.results[0]
        print(f"{name}: PublicTest {100 * r['metrics']['PublicTest']['accuracy']:.1f} %, PrivateTest "
              f"{100 * r['metrics']['PrivateTest']['accuracy']:.1f} % (macro F1 {100 * r['metrics']['PrivateTest']['macro_f1']:.1f}), "
              f"epoch {r['selected_epoch']} of {r['epochs_run']} kept; {runs_.label()}")
    else:
        print(f"{name}: not yet run (python -m ferlib train {name} --minutes 40 --threads 1 --seed 0)")
display(Markdown(tables.claims_verdicts(cl_pair) or "*The CPU pair has not been run here yet: the commands are above.*"))
cl_run = row_runs("cl-resnet50-random-64px")
if cl_run.n:
    r = cl_run.results[0]
    terms = [h.get("train_terms", {}) for h in r["history"]]
    if all("center" in t and "ce" in t for t in terms):
        display(Markdown(
            "**What the center term did in the CL run** (mean per batch, by epoch): center term "
            + ", ".join(f"{t['center']:.3g}" for t in terms) + "; cross-entropy "
            + ", ".join(f"{t['ce']:.3f}" for t in terms)
            + f" (the cross-entropy of always predicting the class prior is about {float(-np.log(1 / 7)):.2f} at most). "
            f"PrivateTest macro F1 {100 * r['metrics']['PrivateTest']['macro_f1']:.1f} %."))

# %% [markdown]
# **Reading the CPU pair.** From random initialisation the 2048-d features start far from
# their centers, so the center term of the first epoch is large and, at λ = 0.2, outweighs
# the cross-entropy: the cheapest way to lower it is to shrink every feature toward one point,
# and a network whose features have collapsed cannot separate the classes — the cross-entropy
# stays near the prior's and the predictions stay on one class (look at the macro F1). The
# paper starts from ImageNet features that already separate faces, trains 50 epochs, and
# its center loss then tightens clusters that exist. Question 10 asks how you would test that
# explanation.

# %% [markdown]
# ## 8. Questions
#
# 1. Derive $\partial L_C/\partial c_j$ if the centers were parameters. Where does it
#    appear in Eq. 4, and what does Eq. 4 add to it?
# 2. With `reduction="sum"` and densenet's λ and batch size, what λ gives the same
#    gradients with `reduction="mean"`? What happens to the "sum" λ if you halve the batch?
# 3. A class has a single sample in a batch. By what fraction of the distance does the
#    rule move its center toward it, for densenet's α? For cl-resnet50's?
# 4. Why can center loss not be trained alone? What would the features converge to?
#    (§3 has the numbers.)
# 5. In the 2-D grid, why do the softmax-only features lie along rays from the origin?
#    (Hint: what does the softmax of $Wx + b$ do when $x$ is scaled up?)
# 6. Why is the ratio $\sqrt{\text{spread}}/\text{distance}$ a better summary than the
#    spread alone? Construct features whose spread falls while they get *less*
#    discriminative.
# 7. The densenet paper trains the softmax loss at a decaying rate and the center loss
#    at a constant one (§4, "Two learning rates"). Under `ferlib`'s reading, what is the
#    scale on the center term's gradient when the softmax rate has reached the recipe's
#    floor, and what does that imply about late training? And with momentum, what
#    happens in the steps right after a rate change?
# 8. cl-resnet50 uses a large α (the table after the imports). Show that the center
#    still converges on a fixed batch, and that α = 2.1 would not for large classes.
# 9. t-SNE preserves neighbourhoods, not distances. Why report spread and distance in the
#    original feature space rather than on the t-SNE map?
# 10. The CPU pair's center-loss run never left one class (§7). Design two short runs that tell
#     "the center term collapsed the features" from "the budget was too short": what would you
#     change (λ, a warm-up of λ, the initialisation), and what would you measure in each epoch?
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
lambdas_shown = sorted({0.003, DENSENET_CL.criterion.lambda_, 1.0})
decays_shown = sorted({0.0, DENSENET_CL.weight_decay, 5e-4})
pd.DataFrame([{"lambda": lam, "weight decay": wd,
               "center / class mean at equilibrium": (lam / 7) / (lam / 7 + wd)}  # balanced batch: n_j / m = 1/7
              for lam in lambdas_shown for wd in decays_shown]).pivot(
    index="lambda", columns="weight decay", values="center / class mean at equilibrium").round(3)

# %% [markdown]
# **3. α and λ rescaled the wrong way.** Porting densenet's α as the centers' SGD
# learning rate is not the same thing: under the mean reduction, with densenet's batch
# size and λ not decoupled, that SGD rate acts like this α —

# %%
c, m = DENSENET_CL.criterion, DENSENET_CL.batch_size
as_alpha = rule_alpha_from_sgd(c.alpha, c.lambda_, m / 7, reduction="mean", batch_size=m)
print(f"center lr {c.alpha:g} (lambda {c.lambda_:g}, batch {m}) acts like alpha = {as_alpha:.5f}"
      + (f", {c.alpha / as_alpha:,.0f} times smaller than the alpha it was meant to be: the centers crawl"
         if as_alpha < c.alpha else "")
      + f"; the table in section 4 gives the rate that plays alpha = {c.alpha:g}")

# %% [markdown]
# **4. Centers moved by back-propagation *and* by the rule.** Both steps add up. On a
# fixed batch with cl-resnet50's α and a balanced class of its batch, the rule alone
# multiplies the distance to the batch mean by a factor inside $(-1, 1)$; add an SGD step
# of the same size and the factor can leave that interval — then the centers blow up.
# (`CenterLoss.update` refuses to run on parameter centers for this reason.)

# %%
n_j, a = CL_RESNET50.batch_size // 7, CL_RESNET50.criterion.alpha
rule_only = 1 - a * n_j / (1 + n_j)
both = 1 - 2 * a * n_j / (1 + n_j)
print(f"alpha = {a:g}, n_j = {n_j}")
pd.DataFrame({"factor per step": [rule_only, both],
              "distance to the batch mean after 20 steps (start 1)": [abs(rule_only) ** 20, abs(both) ** 20]},
             index=["rule only", "rule + matching SGD step"]).round(4)

# %% [markdown]
# **5. λ too large.** $\lambda L_C$ then dominates $L_S$, the classes collapse onto
# each other, and accuracy falls — the toy network of §5:

# %%
collapse = [grid.run(grid.lambdas[0], grid.alphas[0])] + [
    center_loss_grid.train_center_run(toy_data, lam, alpha3d, epochs=settings["epochs"]) for lam in (10.0, 100.0)]
pd.DataFrame([r.summary() for r in collapse])[["lambda", "train acc", "held-out acc", "intra-class spread",
                                               "inter-class distance", "ratio"]]

# %% [markdown]
# **6. Sum vs mean mixed up.** A λ copied from code that sums $L_C$ into code that
# averages it (or the reverse) is off by the batch size — §1, "Sum or mean over the
# batch?", has the numbers. Say which reduction your λ belongs to.

# %% tags=["hide-input"]
print(f"chapter 03 ran in {time.perf_counter() - T0:.1f} s ({PROFILE} profile, {ds.tag})")
