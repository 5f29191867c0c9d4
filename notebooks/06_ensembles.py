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
# # 06 — Ensembles
#
# Two of this book's papers squeeze their last points of accuracy out of several
# predictions of the same face instead of one:
#
# | paper | what is averaged | weights | reported |
# |---|---|---|---|
# | DenseNet-CL (§IV-C, Table II "+ ensemble") | the last five checkpoints of one training run | equal | PublicTest and PrivateTest |
# | EmoNet (§5, Tables 1–2) | four networks (Inception-ResNet v2 and ResNet-50, each with and without BOVW features) | learned on held-out data with scipy's differential evolution | the test set |
#
# This chapter
#
# 1. says why averaging predictions helps — and when it cannot — and **measures** it:
#    the correlation between the members' errors, and the exact decomposition of the
#    ensemble's error into the members' error minus their diversity;
# 2. builds the last-five checkpoint ensemble of DenseNet-CL, averaging probabilities,
#    and shows what averaging logits would do instead;
# 3. combines several runs by a plain mean, a majority vote and EmoNet's weighted mean,
#    and draws the objective that differential evolution searches — the negative
#    log-likelihood beside the error — for two and three members;
# 4. adds test-time augmentation (a mirrored face, the ten-crop);
# 5. puts every ensemble beside its best member on PrivateTest, with its cost in
#    inference time, and the papers' numbers beside ours;
# 6. ends with questions and the mistakes people make.
#
# `ferlib.evaluate.ensemble` holds the combinations, `ferlib.evaluate.tta` the
# augmented views, and `ferlib.jobs.ensembles` loads finished runs (run folders or the
# kit's committed model files) and writes each ensemble's results file;
# `python -m ferlib ensemble` is the same from a terminal.

# %% tags=["hide-input"]
# %matplotlib inline
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from scipy.stats import spearmanr

from ferlib import paths
from ferlib.checks.ensemble import EMONET_MEMBERS, EMONET_TABLE_1_WEIGHTS, EMONET_TABLE_2_ACCURACY
from ferlib.data.discovery import load_fer2013
from ferlib.evaluate import ensemble as ens
from ferlib.evaluate.metrics import accuracy_difference
from ferlib.evaluate.tta import tencrop_margin, tta_views, view_names, views_per_image
from ferlib.profiles import get_profile
from ferlib.evaluate.wording import difference_phrase
from ferlib.jobs import ensembles as er
from ferlib.jobs.tables import load_results, paper_vs_ours, run_label
from ferlib.train.checkpoint import load_model
from ferlib.train.criteria import CenterLossConfig
from ferlib.train.recipes import RECIPES, Budget, smoke_recipe
from ferlib.train.results import run_recipe
from ferlib.runs import RunKey, find_runs, find_trained
from ferlib.viz import ensemble_plots as eplots
from ferlib.viz.data_plots import image_grid
from ferlib.viz.tables import paper_vs_ours_long, wrapped

T0 = time.perf_counter()
PROFILE = get_profile()
QUICK = PROFILE == "quick"
pd.set_option("display.width", 140)
pd.set_option("display.precision", 4)
print(f"profile: {PROFILE}")

# %% [markdown]
# ## 1. Why averaging helps
#
# Let $p_m(x)$ be member $m$'s predicted distribution over the $K$ classes and
# $\bar p = \sum_m w_m p_m$ the ensemble's, with weights $w_m \ge 0$, $\sum_m w_m = 1$
# ($w_m = 1/M$ for the plain mean). Score a prediction $p$ of a face of class $y$ by its
# squared distance to the one-hot target, $\lVert p - e_y\rVert^2$ (the Brier score).
# Expanding $p_m - e_y = (p_m - \bar p) + (\bar p - e_y)$ and using
# $\sum_m w_m (p_m - \bar p) = 0$, the cross term vanishes and, for every face,
#
# $$ \underbrace{\lVert \bar p - e_y \rVert^2}_{\text{ensemble}}
#    = \underbrace{\sum_m w_m \lVert p_m - e_y \rVert^2}_{\text{members, on average}}
#    - \underbrace{\sum_m w_m \lVert p_m - \bar p \rVert^2}_{\text{diversity}\ \ge 0} . $$
#
# This is Krogh and Vedelsby's *ambiguity decomposition*. The ensemble is never worse
# than its members on average, and it is better by exactly how much they **disagree**.
# Two consequences:
#
# * **Bias is not averaged away.** If every member makes the same mistake — the same
#   bias, the same label noise learned — the diversity on that face is 0 and the
#   ensemble makes the mistake too. Averaging removes the *variance*: the part of each
#   member's error that comes from its seed, its sample order, its epoch.
# * **Correlation limits the gain.** For $M$ members whose errors have variance
#   $\sigma^2$ and pairwise correlation $\rho$, the variance of their mean is
#   $\sigma^2\,(\rho + (1-\rho)/M)$: with $\rho = 1$ (copies) nothing is gained, with
#   $\rho = 0$ it falls as $1/M$. So we **measure** $\rho$ — the correlation of the
#   members' 0/1 error indicators (`ens.error_correlation`) — and the diversity
#   (`ens.ambiguity_decomposition`) on our own members below.
#
# For the log-loss the same direction holds by Jensen's inequality,
# $-\log \sum_m w_m p_m(y) \le \sum_m w_m (-\log p_m(y))$; for the accuracy nothing is
# guaranteed — a majority of wrong members outvotes a right one — which is why every
# ensemble below is set beside its best member.

# %% [markdown]
# ## 2. The members
#
# * **Real runs**, when FER-2013 is here: for each DenseNet-CL Table II recipe, its
#   largest-budget trained run that `ferlib.runs.find_trained` finds — your own run
#   folder (`runs/NAME/best.pt`, e.g. from `python -m ferlib train densenet-bc --minutes 60`)
#   or the kit's committed model (`models/NAME.pt`: the 60-minute, 2-thread CPU runs of
#   `densenet-bc` and `densenet-bc-center`). The cell below prints each member's run name and
#   file. They are evaluated on FER-2013 — in the quick profile on a stratified subset of
#   PublicTest and PrivateTest, in the full profile on the whole splits. A committed model is
#   one exported checkpoint, so the last-five ensemble of §3 needs run folders; its recorded
#   result is read from the runs' results files instead.
# * **Otherwise: three small members trained here**, through the same
#   `run_recipe` as every recipe, in a temporary folder (nothing is written to `runs/` or
#   `results/`): a tiny DenseNet-BC with seeds 0 and 1, and a third with center loss and
#   seed 2, each for a few epochs on a small stratified subset, with flips and 2-pixel
#   crops as augmentation. They differ in their training subset, initialisation, sample
#   order and (the third) loss. **Everything measured on them is a quick-profile smoke
#   test**: it shows that the pipeline works and how to read it, not what ensembles do
#   on FER-2013.

# %%
ds = load_fer2013(synthetic_per_class=300 if QUICK else 1000)  # (the synthetic count matters only without FER-2013)
print(f"{len(ds):,} images; {ds.tag}")
if ds.synthetic:
    display(Markdown(f"> **{ds.tag}.** No FER-2013 was found: every number below is measured on synthetic "
                     "faces and says nothing about FER-2013."))

TABLE_II = [n for base in ("densenet", "densenet-bc", "wide-densenet", "wide-densenet-bc") for n in (base, f"{base}-center")]




def member_spec(run):
    """What a found run joins the ensemble as: its run folder when it has best.pt, else its committed model file."""
    return run.run_dir if run.run_dir is not None and (run.run_dir / "best.pt").is_file() else run.checkpoint


# the largest-budget trained run of each Table II recipe (real data, seed 0): yours or the kit's
real = {} if ds.synthetic else {n: r for n in TABLE_II if (r := find_trained(n)) is not None}
USE_REAL = len(real) >= 2
if not USE_REAL:
    torch.set_num_threads(1)  # the tiny members train and predict fastest on one thread
if real:
    display(pd.DataFrame([{"recipe": n, "run": r.key.name, "budget": r.key.budget, "from": r.label,
                           "checkpoint": str(member_spec(r).relative_to(paths.kit_root())
                                             if member_spec(r).is_relative_to(paths.kit_root()) else member_spec(r))}
                          for n, r in real.items()]).set_index("recipe"))
else:
    print("real runs with a model: none" + (" (no FER-2013 here)" if ds.synthetic else ""))

# %%
WORK = tempfile.TemporaryDirectory(prefix="ferlib_ch06_")  # quick members and results files; removed at the end
if USE_REAL:
    run_dirs = [member_spec(r) for r in real.values()]  # run folders or the kit's model files
    run_dirs = run_dirs[:4] if QUICK else run_dirs  # the quick profile: four at most
    EVAL_PER_CLASS = 50 if QUICK else None
    SMOKE = False
else:
    common = dict(paper="none", paper_results={}, augment="none", augment_kwargs=dict(flip=True, crop_margin=2),
                  optimizer="adam", lr=1e-2, schedule="constant", batch_size=32,
                  quick=Budget(epochs=6, train_per_class=120, eval_per_class=40),
                  full=Budget(epochs=6, train_per_class=120, eval_per_class=40))
    members_to_train = [
        (smoke_recipe(name="ch06-softmax", row="chapter 06 demo: tiny DenseNet-BC", **common), 0),
        (smoke_recipe(name="ch06-softmax", row="chapter 06 demo: tiny DenseNet-BC", **common), 1),
        (smoke_recipe(name="ch06-center", row="chapter 06 demo: tiny DenseNet-BC + center loss",
                      criterion=CenterLossConfig(lambda_=0.1, alpha=0.5), **common), 2),
    ]
    run_dirs = []
    for recipe, seed in members_to_train:
        run_dir = Path(WORK.name) / "runs" / RunKey(recipe.name, "quick", seed, synthetic=ds.synthetic).name
        res = run_recipe(recipe, dataset=ds, profile="quick", device="cpu", seed=seed, precision="fp32",
                         run_dir=run_dir, results_path=Path(WORK.name) / "results" / f"{run_dir.name}.json",
                         progress=False)
        print(f"{run_dir.name}: {res['epochs_run']} epochs in {res['train_seconds']:.1f} s; selected epoch "
              f"{res['selected_epoch']}, PublicTest {res['metrics']['PublicTest']['accuracy']:.3f}")
        run_dirs.append(run_dir)
    EVAL_PER_CLASS = 40
    SMOKE = True
LABEL = "quick-profile smoke test" if SMOKE else ("quick profile: a subset of the splits" if QUICK else "full splits")
NOTE = (" (**quick-profile smoke test**: tiny members trained for seconds)" if SMOKE else "")
# the last-five ensemble needs each member's epoch checkpoints: run folders, not exported model files
HAS_EPOCHS = all(Path(d).is_dir() and len(ens.last_checkpoints(Path(d), 5)) >= 2 for d in run_dirs)
if SMOKE:
    display(Markdown("> **Members: three tiny stand-ins trained here for seconds** (`ch06-softmax` seeds 0 and 1, "
                     "`ch06-center` seed 2), " + ("on the synthetic faces" if ds.synthetic else
                     "because this machine has fewer than two trained real runs") + ": every number below is a "
                     "quick-profile smoke test of the pipeline, not a result about ensembles on FER-2013."))
else:
    display(Markdown(f"> **Members: {', '.join(f'`{n}`' for n in [r.key.name for r in real.values()][:len(run_dirs)])}** "
                     f"— real FER-2013 runs, evaluated here on {LABEL}."
                     + ("" if HAS_EPOCHS else " They are exported models without their epoch checkpoints, so §2 and "
                        "§3 show the last-five ensemble from the runs' results files only.")))

# %% [markdown]
# Each member predicts through its own checkpoint — its normaliser and evaluation
# transform — on the *same* PublicTest and PrivateTest faces. We compute every
# member's probabilities once per kind of prediction and combine them afterwards:
# `best.pt` (the epoch selected on PublicTest) with no augmentation, with the mirrored
# face and with the ten-crop, and the mean of the last five epoch checkpoints.

# %%
best_members = [er.load_member(d) for d in run_dirs]
last5_members = [er.load_member(d, last_k=5) for d in run_dirs] if HAS_EPOCHS else None
DEVICE = "cuda" if torch.cuda.is_available() and not SMOKE else "cpu"  # where the members predict
inputs = {tta: er.collect_probabilities(best_members, ds, tta=tta, eval_per_class=EVAL_PER_CLASS, device=DEVICE)
          for tta in ("none", "flip", "tencrop")}
if HAS_EPOCHS:
    inputs["last5"] = er.collect_probabilities(last5_members, ds, tta="none", eval_per_class=EVAL_PER_CLASS,
                                               device=DEVICE)
base = inputs["none"]
NAMES = base.names
FIT, TEST = ens.FIT_SPLIT, ens.TEST_SPLIT
N_TEST = len(base.labels[TEST])
print(f"{len(NAMES)} members; PublicTest {len(base.labels[FIT])} and PrivateTest {N_TEST} faces ({LABEL})")


def acc(p, split=TEST, inp=base):
    return float((np.asarray(p).argmax(1) == inp.labels[split]).mean())


member_table = pd.DataFrame({
    "PublicTest acc": [acc(base.probs[FIT][i], FIT) for i in range(len(NAMES))],
    "PrivateTest acc": [acc(base.probs[TEST][i]) for i in range(len(NAMES))],
    "PrivateTest NLL": [ens.negative_log_likelihood(base.probs[TEST][i], base.labels[TEST]) for i in range(len(NAMES))],
    "checkpoints in last 5": [len(m.checkpoints) for m in last5_members] if HAS_EPOCHS else None}, index=NAMES)
member_table

# %% [markdown]
# ### How correlated are the members' errors?
#
# First the independent runs, then (when the members are run folders with their epoch
# checkpoints) the last five epoch checkpoints of the first run — the members of
# DenseNet-CL's ensemble. (A member that never errs has no error variance; its
# correlation is "n/a".)

# %%
corr_runs = ens.error_correlation(base.probs[TEST], base.labels[TEST])
display(eplots.correlation_heatmap(corr_runs, NAMES, title="Errors of independent runs (PrivateTest)", tag=ds.tag))
if HAS_EPOCHS:
    ckpt_member = er.load_member(run_dirs[0], last_k=5)
    ckpt_inputs = er.collect_probabilities(
        [er.Member(f"epoch {ens.checkpoint_epoch(p)}", ckpt_member.run_dir, [p], ckpt_member.class_names,
                   ckpt_member.recipe, ckpt_member.identity, ckpt_member.eval_transform)
         for p in ckpt_member.checkpoints], ds, eval_per_class=EVAL_PER_CLASS, device=DEVICE)
    corr_ckpt = ens.error_correlation(ckpt_inputs.probs[TEST], ckpt_inputs.labels[TEST])
    display(eplots.correlation_heatmap(corr_ckpt, ckpt_inputs.names,
                                       title=f"Errors of the last checkpoints of {NAMES[0]}", tag=ds.tag))
else:
    ckpt_inputs = corr_ckpt = None
    print("the members are exported models (one checkpoint each): no last-checkpoint correlations to measure")

# %%
def mean_offdiag(c):
    off = c[~np.eye(len(c), dtype=bool)]
    return float(np.nanmean(off)) if np.isfinite(off).any() else float("nan")


amb_rows = {"independent runs": ens.ambiguity_decomposition(base.probs[TEST], base.labels[TEST])}
if HAS_EPOCHS:
    amb_rows["last checkpoints of one run"] = ens.ambiguity_decomposition(ckpt_inputs.probs[TEST],
                                                                          ckpt_inputs.labels[TEST])
amb = pd.DataFrame(amb_rows).T
amb["mean error correlation"] = [mean_offdiag(corr_runs)] + ([mean_offdiag(corr_ckpt)] if HAS_EPOCHS else [])
amb = amb[["mean error correlation", "mean_member_brier", "diversity", "ensemble_brier"]].astype(float)
amb.columns = ["mean error correlation", "members' mean Brier", "diversity", "ensemble Brier"]
amb.round(4)

# %%
r_runs, d_runs = amb["mean error correlation"].iloc[0], amb["diversity"].iloc[0]
if HAS_EPOCHS:
    r_ckpt, d_ckpt = amb["mean error correlation"].iloc[1], amb["diversity"].iloc[1]
    compare = (
        f"the last checkpoints of one run {r_ckpt:.2f}; the diversity term — what averaging subtracts from the "
        f"members' mean Brier score — is {d_runs:.4f} for the runs and {d_ckpt:.4f} for the checkpoints. "
        + ("On these members, consecutive checkpoints of one run are more alike than independent runs, so their "
           "average has less to subtract. " if r_ckpt > r_runs and d_ckpt < d_runs else
           "On these members the checkpoints are *not* more alike than the runs"
           + (" (the quick members train for a few epochs at a constant, large learning rate, so consecutive "
              "checkpoints still differ a lot). " if SMOKE else ". ")))
else:
    compare = (f"and the diversity term — what averaging subtracts from the members' mean Brier score — is "
               f"{d_runs:.4f}. ")
display(Markdown(
    f"On PrivateTest{NOTE}, the independent runs' errors have a mean pairwise correlation of {r_runs:.2f}, "
    + compare + "Check the identity in the table: ensemble = members' mean − diversity, to rounding."))

# %% [markdown]
# ## 3. The last-five checkpoint ensemble (DenseNet-CL §IV-C)
#
# "We simply keep five last checkpoints corresponding to five last training epochs for
# inference." `ferlib`'s trainer keeps the last five `epoch_NNN.pt` files of every run
# (`ens.last_checkpoints`) and the results file of every run records their ensemble
# (`ensemble_last5`). They are combined by the **mean of their softmax outputs**. The
# alternative — averaging the logits and taking one softmax — is
# `ens.logit_average_probabilities` (the softmax of the mean log-probabilities, which is
# the same thing). Both, beside the checkpoint selected on PublicTest:

# %%
if HAS_EPOCHS:
    rows = []
    for i, name in enumerate(NAMES):
        p5 = inputs["last5"].probs[TEST][i]  # already the mean over the checkpoints
        rows.append({"member": name, "best.pt (selected on PublicTest)": acc(base.probs[TEST][i]),
                     "last 5: mean of probabilities": acc(p5, inp=inputs["last5"]),
                     "epochs": last5_members[i].describe()["epochs"]})
    last5_table = pd.DataFrame(rows).set_index("member")
    last5_table["last 5: mean of logits"] = [np.nan] * len(NAMES)
    last5_table.loc[NAMES[0], "last 5: mean of logits"] = acc(
        ens.logit_average_probabilities(ckpt_inputs.probs[TEST]), inp=ckpt_inputs)
    display(last5_table)
else:
    print("the members here are exported models without epoch checkpoints; the recorded last-five ensembles of "
          "the real runs follow, from their results files")

# %% [markdown]
# (Mean of logits for the first member only: it needs each checkpoint's probabilities
# separately, which section 2 computed for that run.)
#
# The same comparison on **real FER-2013 runs**, from the results files in `results/`
# (the selected epoch and the last-five ensemble, both on the whole PrivateTest), with
# the binomial standard error of the difference
# (`ferlib.evaluate.metrics.accuracy_difference`):

# %%
def recorded_runs(names):
    """(recipe, FoundRun, results) of every recorded real run (not quick) of each recipe, largest budget first."""
    for name in names:
        for run in find_runs(name):
            if run.key.budget != "quick" and (r := run.results()) is not None:
                yield name, run, r


rows = []
for name, run, r in recorded_runs(TABLE_II):
    e5 = r.get("ensemble_last5") or {}
    if TEST not in e5:
        continue
    sel, five = r["metrics"][TEST]["accuracy"], e5[TEST]
    d = accuracy_difference(sel, five, r["metrics"][TEST]["n"])
    rows.append({"recipe": name, "run name": run.key.name, "from": run.label, "run": run_label(r),
                 "selected epoch": r["selected_epoch"], "n": r["metrics"][TEST]["n"],
                 "PrivateTest, selected": sel, "PrivateTest, last 5": five, "difference": d["difference"],
                 "standard error": d["standard_error"], "z": d["z"], "synthetic": r.get("synthetic")})
recorded = pd.DataFrame(rows)
# the paper's own gains (Table II, paper constants kept with the recipes)
paper_gains = pd.Series({n: RECIPES[n].paper_results["ensemble_PrivateTest"] - RECIPES[n].paper_results["PrivateTest"]
                         for n in TABLE_II})
paper_acc = float(np.mean([RECIPES[n].paper_results["PrivateTest"] for n in TABLE_II]))
if recorded.empty:
    print("no results files of DenseNet-CL Table II runs in results/ yet: "
          "python -m ferlib train densenet-bc --minutes 60 (or --profile full on a GPU) writes one")
else:
    display(recorded.drop(columns=["n"]).round(4))
    sentences = []
    for _, row in recorded.iterrows():
        sentences.append(
            f"**{row['run name']}** ({row['from']}; {row['run']}): the last-five ensemble scores "
            f"{row['PrivateTest, last 5']:.1%} on PrivateTest, "
            + difference_phrase(100 * row["PrivateTest, last 5"], 100 * row["PrivateTest, selected"],
                                whose="the selected epoch's", suffix=" %")
            + f" (± {100 * row['standard error']:.1f} points, z = {row['z']:.1f}: "
            + ("within two standard errors, no evidence either way)." if abs(row["z"]) < 2 else
               "more than two standard errors).") )
    top_n = int(recorded["n"].iloc[0])
    paper_se = 100 * accuracy_difference(paper_acc / 100, paper_acc / 100, top_n)["standard_error"]
    display(Markdown(
        "\n\n".join(f"* {t}" for t in sentences)
        + f"\n\nDenseNet-CL's Table II reports PrivateTest changes from this ensemble of {paper_gains.min():+.1f} "
          f"to {paper_gains.max():+.1f} points (ensemble minus selected model); a difference between two "
          f"accuracies near {paper_acc:.0f}% on {top_n:,} faces has a standard error of about {paper_se:.1f} points."))

# %% [markdown]
# ## 4. Ensembles of runs: mean, vote and EmoNet's weighted mean
#
# * **mean** — $\bar p = \frac1M\sum_m p_m$ (`ens.mean_probabilities`);
# * **vote** — each member votes for its argmax; ties go to the tied class with the
#   highest mean probability, then to the lowest class index (`ens.majority_vote`);
# * **de** — $\bar p = \sum_m w_m p_m$ with weights fitted on **PublicTest** by
#   differential evolution (`ens.differential_evolution_weights`) and scored on
#   PrivateTest.
#
# The search: raw vectors $r \in [0, 1]^M$ (DE's box), each mapped to the simplex by
# $w = r / \sum_m r_m$ (`ens.simplex_weights`; all-zero maps to uniform). The map is
# many-to-one — every $r$ on a ray from the origin gives the same $w$ — which costs the
# search nothing. Its settings, stated once:

# %%
pd.Series({k: str(v) for k, v in ens.DE_SETTINGS.items()}, name="differential evolution").to_frame()

# %%
combos = {}
for method, objective in (("mean", "nll"), ("vote", "nll"), ("de", "nll"), ("de", "error")):
    label = method if method != "de" else f"de ({objective})"
    combos[label] = er.evaluate_ensemble(base, method, objective=objective, seed=0)
pd.DataFrame({label: {"weights": None if ev["weights"] is None else np.round(ev["weights"], 3).tolist(),
                      "PublicTest acc": ev["metrics"][FIT]["accuracy"], "PrivateTest acc": ev["metrics"][TEST]["accuracy"],
                      "PrivateTest NLL": ev["metrics"][TEST]["nll"]}
              for label, ev in combos.items()}).T

# %% [markdown]
# ### The objective DE searches
#
# Why the negative log-likelihood and not the accuracy we report? Over the weights, the
# NLL is smooth — a convex function of $w$, in fact, since $-\log$ of a linear function
# is convex — while the error only changes when some face's argmax flips: it is
# **piecewise constant**, with zero gradient almost everywhere and many weight vectors
# tied at the minimum. For two members, against the weight of the first:

# %%
curve_w, curve_nll = ens.objective_on_simplex(base.probs[FIT][:2], base.labels[FIT], "nll", resolution=200)
_, curve_err = ens.objective_on_simplex(base.probs[FIT][:2], base.labels[FIT], "error", resolution=200)
w2 = {obj: ens.differential_evolution_weights(base.probs[FIT][:2], base.labels[FIT], split=FIT, objective=obj)
      for obj in ("nll", "error")}
eplots.objective_curves(curve_w, {"nll": curve_nll, "error": curve_err}, NAMES[:2],
                        marks={f"DE ({o})": w for o, w in w2.items()}, tag=f"PublicTest, {ds.tag}, {LABEL}")

# %% [markdown]
# For three members, over the whole simplex (a corner is one member alone, the centre
# the plain mean), with the weights DE returns for five seeds of each objective:

# %%
if len(NAMES) >= 3:
    tri_probs = base.probs[FIT][:3]
    tri_w, tri_nll = ens.objective_on_simplex(tri_probs, base.labels[FIT], "nll", resolution=40)
    _, tri_err = ens.objective_on_simplex(tri_probs, base.labels[FIT], "error", resolution=40)
    seeds = {(obj, s): ens.differential_evolution_weights(tri_probs, base.labels[FIT], split=FIT, objective=obj, seed=s)
             for obj in ("nll", "error") for s in range(5)}
    marks = {"DE nll, 5 seeds": seeds[("nll", 0)], **{f"DE error, seed {s}": seeds[("error", s)] for s in range(5)}}
    display(eplots.objective_triangles(tri_w, {"nll": tri_nll, "error": tri_err}, NAMES[:3], marks=marks,
                                       tag=f"PublicTest, {ds.tag}, {LABEL}"))
    spread = pd.DataFrame([{"objective": obj, "seed": s, **{f"w {n}": w for n, w in zip(NAMES[:3], wv)},
                            "PublicTest objective": ens.ensemble_objective(wv, tri_probs, base.labels[FIT], obj)}
                           for (obj, s), wv in seeds.items()])
    display(spread.round(4))
    nll_range = np.ptp(np.stack([seeds[("nll", s)] for s in range(5)]), 0).max()
    err_range = np.ptp(np.stack([seeds[("error", s)] for s in range(5)]), 0).max()
    display(Markdown(
        f"Across five seeds, the largest change of any weight is {nll_range:.2g} with the NLL and "
        f"{err_range:.2g} with the error. "
        + ("The error's minimum is a flat region, and where DE stops inside it depends on the seed: the weights "
           "it returns are not determined by the data; with the smooth NLL the search lands on one point (and "
           "scipy's L-BFGS-B polish finishes it)." if err_range > 10 * max(nll_range, 1e-6) else
           "Here the NLL weights move with the seed as well: when members make nearly the same predictions, the NLL "
           "is nearly flat too, and no weighting is better than another.")))
else:
    print("the triangle needs three members; this machine has two real runs")

# %% [markdown]
# ### Our weights beside EmoNet's Table 1
#
# EmoNet's learned weights (Table 1) rise with its members' test accuracies (Table 2).
# Both are **paper constants, typed as printed**. Ours, from the DE (NLL) fit above,
# beside our members' PublicTest accuracy:

# %%
emonet = pd.DataFrame({"Table 1 weight (paper)": EMONET_TABLE_1_WEIGHTS,
                       "Table 2 accuracy % (paper)": EMONET_TABLE_2_ACCURACY}, index=list(EMONET_MEMBERS))
ours_w = pd.DataFrame({"DE (nll) weight": combos["de (nll)"]["weights"],
                       "PublicTest accuracy": member_table["PublicTest acc"].values}, index=NAMES)
display(emonet, ours_w.round(3))
rho_paper = spearmanr(EMONET_TABLE_1_WEIGHTS, EMONET_TABLE_2_ACCURACY).statistic
rho_ours = spearmanr(ours_w["DE (nll) weight"], ours_w["PublicTest accuracy"]).statistic
display(Markdown(
    f"The rank correlation between weight and accuracy is {rho_paper:.2f} for EmoNet and "
    + (f"{rho_ours:.2f}" if np.isfinite(rho_ours) else "undefined (tied weights or accuracies)")
    + f" for our members{NOTE}. "
    + ("Ours follow the same order. " if rho_ours > 0.5 else
       "Ours do not follow the accuracies closely: with few PublicTest faces and members this close, the weights "
       "also reflect how the members' errors overlap and how well calibrated each is — a weight rewards what a "
       "member adds to the others, not its accuracy alone. ")
    + "Note too that no weight of EmoNet's is near 0: all four members contribute."))

# %% [markdown]
# ## 5. Test-time augmentation
#
# A face and its mirror image show the same expression, and a network trained with
# flips and crops has learned to expect both. **TTA** predicts several such views of
# each test face and averages the probabilities (`ferlib.evaluate.tta`). The views are
# made from the model's own evaluation input (normalised, resized, channels stacked), on
# the device, for a whole batch at once:
#
# * `flip`: the input and its left-right mirror, `x.flip(-1)` (2 views);
# * `tencrop`: the ten-crop of the FER literature — four corner crops and the centre
#   crop, each also mirrored (10 views). Here a "crop" follows the training's own crop
#   augmentation: pad `m` pixels of zeros (the mean, after normalisation) and take the
#   input-size window at each corner and at the centre; `m` is the training's crop margin.
#
# The ten views of one PrivateTest face, as the first member sees them:

# %%
loaded0 = load_model(best_members[0].checkpoints[0])
face_batch = next(iter(loaded0.eval_source(ds.split("PrivateTest").pixels[:1], batch_size=1)))[0]
margin0 = tencrop_margin(loaded0.augment)
views = tta_views(face_batch, "tencrop", margin=margin0)[:, 0]
image_grid([v.numpy() for v in views], ncols=5, titles=view_names("tencrop"), vmin=None, vmax=None,
           title=f"ten-crop views (margin {margin0} px), normalised input", tag=ds.tag)

# %%
tta_rows = []
for tta in ("none", "flip", "tencrop"):
    inp = inputs[tta]
    row = {"TTA": tta, "views": views_per_image(tta)}
    for i, n in enumerate(NAMES):
        row[n] = acc(inp.probs[TEST][i], inp=inp)
    row["mean of members"] = acc(ens.mean_probabilities(inp.probs[TEST]), inp=inp)
    tta_rows.append(row)
tta_table = pd.DataFrame(tta_rows).set_index("TTA")
tta_table

# %%
members_mean = {t: 100 * tta_table.loc[t, NAMES].mean() for t in ("none", "flip", "tencrop")}
gain_flip = (members_mean["flip"] - members_mean["none"]) / 100
gain_ten = (members_mean["tencrop"] - members_mean["none"]) / 100
display(Markdown(
    f"Averaged over the members, PrivateTest accuracy with flip TTA is {members_mean['flip']:.1f} %, "
    + difference_phrase(members_mean["flip"], members_mean["none"], whose="no TTA's")
    + f", and with the ten-crop {members_mean['tencrop']:.1f} %, "
    + difference_phrase(members_mean["tencrop"], members_mean["none"], whose="no TTA's")
    + f"{NOTE}; one standard error of a single accuracy on {N_TEST} faces is about "
    f"{100 * np.sqrt(0.25 / N_TEST):.1f} points, so "
    + ("these changes are within the noise." if max(abs(gain_flip), abs(gain_ten)) < 2 * np.sqrt(0.25 / N_TEST)
       else "at least one change exceeds two standard errors.")))

# %% [markdown]
# ## 6. Every ensemble beside its best member
#
# The honest comparison: the best member is the one with the best **PublicTest**
# accuracy (chosen before looking at PrivateTest), and every number is on PrivateTest.
# "z" is the difference over its binomial standard error (conservative: the two are
# scored on the same faces).

# %%
configs = [("best.pt", "none"), ("best.pt", "flip"), ("best.pt", "tencrop")] + ([("last 5", "none")] if HAS_EPOCHS else [])
table_rows, evaluations = [], {}
for ckpts, tta in configs:
    inp = inputs["last5" if ckpts == "last 5" else tta]
    for method, objective in (("mean", "nll"), ("vote", "nll"), ("de", "nll")):
        ev = er.evaluate_ensemble(inp, method, objective=objective)
        evaluations[(ckpts, tta, method)] = ev
        best, ours = ev["best_member"][TEST], ev["metrics"][TEST]["accuracy"]
        d = accuracy_difference(best, ours, N_TEST)
        forward = views_per_image(tta) * sum(len(m.checkpoints) for m in inp.members)
        seconds = sum(sum(s.values()) for s in inp.seconds.values())
        table_rows.append({"checkpoints": ckpts, "TTA": tta, "method": method, "members": len(inp.members),
                           "forward passes / face": forward, "PrivateTest acc": ours,
                           "best member (by PublicTest)": best, "gain": d["difference"], "z": d["z"],
                           "inference s (both splits)": seconds, "best member": ev["best_member"]["name"]})
vs_best = pd.DataFrame(table_rows)
display(Markdown(f"*{LABEL}; {ds.tag}; PrivateTest, {N_TEST} faces.*"))
vs_best.round(4)

# %%
top = vs_best.loc[vs_best["PrivateTest acc"].idxmax()]
n_sig = int((vs_best["z"].abs() >= 2).sum())
display(Markdown(
    f"The highest PrivateTest accuracy here is {top['PrivateTest acc']:.1%} ({top['method']}, {top['TTA']} TTA, "
    f"{top['checkpoints']}), "
    + difference_phrase(100 * top["PrivateTest acc"], 100 * top["best member (by PublicTest)"],
                        whose=f"the best member's ({top['best member']})")
    + f"; {n_sig} of the "
    f"{len(vs_best)} ensembles differ from their best member by two standard errors or more{NOTE}. "
    "Picking the top row of a table like this one is itself a selection on PrivateTest: choose the method on "
    "PublicTest, then report it."))

# %% [markdown]
# Each ensemble is recorded like a single model: `ferlib.train.ensemble_runs.run_ensemble`
# — what `python -m ferlib ensemble` runs — writes `results/ensembles/NAME.json`
# (quick-profile members: `results/quick/ensembles/`) with the accuracy, per-class report,
# confusion matrix and NLL of the ensemble and of every member, the method, the weights
# and the split they were fitted on, the TTA, the members' error correlations, the cost
# and the provenance (git sha, device, library versions). Here it writes to the
# temporary folder; the command line for the same ensemble is printed first.

# %%
print("python -m ferlib ensemble " + " ".join(str(d) for d in run_dirs) + " --method de --tta flip"
      + (f" --eval-per-class {EVAL_PER_CLASS}" if EVAL_PER_CLASS else ""))
written = er.run_ensemble(run_dirs, method="de", tta="flip", dataset=ds, eval_per_class=EVAL_PER_CLASS,
                          out_dir=Path(WORK.name) / "ensembles", device=DEVICE)
{k: (v if not isinstance(v, (dict, list)) else f"<{type(v).__name__} of {len(v)}>") for k, v in written.items()}

# %% [markdown]
# ## 7. What it costs
#
# An ensemble of $M$ members with $C$ checkpoints each and $V$ views per face runs
# $M \cdot C \cdot V$ forward passes per face. Measured here, on PublicTest + PrivateTest
# (the device and thread count are printed with the table):

# %%
cost_rows = []
for key, inp in inputs.items():
    n_faces = sum(len(inp.labels[s]) for s in (FIT, TEST))
    for m in inp.members:
        sec = sum(inp.seconds[m.name].values())
        cost_rows.append({"prediction": key if key != "none" else "best.pt", "member": m.name,
                          "checkpoints": len(m.checkpoints),
                          "views": views_per_image(inp.tta), "seconds": sec, "ms per face": 1000 * sec / n_faces})
cost = pd.DataFrame(cost_rows)
print(f"device: {DEVICE}" + (f", {torch.get_num_threads()} thread(s)" if DEVICE == "cpu" else "") + f"; {LABEL}")
summary = cost.groupby("prediction", sort=False).agg(members=("member", "count"), checkpoints=("checkpoints", "first"),
                                                     views=("views", "first"), seconds=("seconds", "sum"),
                                                     ms_per_face=("ms per face", "sum"))
summary["relative to one member, best.pt"] = summary["ms_per_face"] / cost.loc[cost["prediction"] == "best.pt",
                                                                               "ms per face"].mean()
summary.round(3)

# %% tags=["hide-input"]
display(Markdown(
    f"The ten-crop ensemble of {len(NAMES)} members costs {summary.loc['tencrop', 'relative to one member, best.pt']:.0f}× "
    f"the inference time of one member (expected: {len(NAMES)} × 10 = {len(NAMES) * 10})"
    + (f"; the last-five ensemble {summary.loc['last5', 'relative to one member, best.pt']:.0f}× (expected about "
       f"{len(NAMES) * 5}: five checkpoints per member; loading them is not counted)" if "last5" in summary.index
       else "") + ". For networks this small, fixed costs per batch blur the "
    "proportions. Training cost is another matter: the last-five ensemble is free (the checkpoints "
    "exist anyway), an ensemble of runs costs a training run per member."))

# %% [markdown]
# ## 8. The papers' numbers beside ours
#
# **DenseNet-CL, Table II**: PublicTest and PrivateTest accuracy (%) of each network
# and of its last-five ensemble ("ensemble_" columns), paper beside ours. Ours come from
# `results/<recipe>.json` (full profile) and `results/budget/` (wall-clock-budget runs);
# the `run` column says which, on what device.

# %%
pv = paper_vs_ours(TABLE_II)
wrapped(paper_vs_ours_long(pv, metrics=["PrivateTest", "ensemble_PrivateTest"]))

# %% [markdown]
# **Ensembles of the kit's real runs.** The kit records the ensembles of its two committed
# 60-minute models (`densenet-bc` and `densenet-bc-center`, 2 CPU threads) — a plain mean,
# a majority vote and DE weights fitted on PublicTest, each with flip TTA, on the whole of
# PublicTest and PrivateTest — in `results/ensembles/`. This cell reads them (it computes
# nothing). When the kit has no such file yet and FER-2013 is here, it runs the same
# ensembles once over the two committed model files (about a minute on 2 CPU cores) into
# the temporary folder (in the quick profile, on the quick subset §5 already predicted).

# %%
def ensemble_row(r, source):
    t, best = r["metrics"][TEST]["accuracy"], r["best_member"]
    return {"method": r["method"], "TTA": r["tta"]["mode"], "members": " + ".join(m["name"] for m in r["members"]),
            "weights": None if r["weights"] is None else [round(w, 3) for w in r["weights"]],
            "PublicTest": 100 * r["metrics"][FIT]["accuracy"], "PrivateTest": 100 * t,
            "best member (by PublicTest)": best["name"], "its PrivateTest": 100 * best[TEST],
            "faces": r["data"][TEST], "from": source}


kit_ensembles = sorted((paths.results_dir() / "ensembles").glob("*.json"))
kit_models = [r for n in ("densenet-bc", "densenet-bc-center")
              for r in find_runs(n, own=False) if r.model_path is not None and r.key.is_budget][:2]
if kit_ensembles:
    ens_rows = [ensemble_row(load_results(p), str(p.relative_to(paths.kit_root()))) for p in kit_ensembles]
elif not ds.synthetic and len(kit_models) == 2:
    print("no recorded ensembles in results/ensembles/; computing them once over "
          + " and ".join(str(r.model_path.relative_to(paths.kit_root())) for r in kit_models))
    same_members = sorted(map(str, run_dirs)) == sorted(str(r.model_path) for r in kit_models)
    if QUICK and same_members:  # the flip-TTA probabilities of §5 are these two models' already: reuse them
        kit_inputs, where = inputs["flip"], f"computed here on the quick subset ({N_TEST} PrivateTest faces)"
    else:  # the whole splits, once; three combinations of them
        kit_inputs = er.collect_probabilities([er.load_member(r.model_path) for r in kit_models], ds, tta="flip",
                                              device=DEVICE)
        where = "computed here on the whole splits"
    ens_rows = [ensemble_row({**er.evaluate_ensemble(kit_inputs, m), "tta": {"mode": "flip"},
                              "members": [mb.describe() for mb in kit_inputs.members], "data": kit_inputs.data},
                             where) for m in ("mean", "vote", "de")]
else:
    ens_rows = []
    print("the kit's recorded ensembles are of models trained on FER-2013; with " + ds.tag + " there is nothing "
          "to show here (python -m ferlib ensemble models/densenet-bc-60min-cpu-2threads.pt "
          "models/densenet-bc-center-60min-cpu-2threads.pt --method de --tta flip, with FER-2013)"
          if ds.synthetic else "no recorded ensembles and fewer than two committed models")
if ens_rows:
    kit_table = pd.DataFrame(ens_rows)
    display(wrapped(kit_table))
    display(Markdown("\n".join(
        f"* **{r['method']}** of {r['members']} (flip TTA): PrivateTest {r['PrivateTest']:.1f} % on "
        f"{r['faces']:,} faces, " + difference_phrase(r["PrivateTest"], r["its PrivateTest"],
                                                     whose=f"the best member's ({r['best member (by PublicTest)']})")
        for r in ens_rows)
        + f"\n\nOne standard error of a difference near {kit_table['PrivateTest'].mean():.0f} % on "
          f"{int(kit_table['faces'].iloc[0]):,} faces is about "
          f"{100 * accuracy_difference(kit_table['PrivateTest'].mean() / 100, kit_table['PrivateTest'].mean() / 100, int(kit_table['faces'].iloc[0]))['standard_error']:.1f} points."))

# %% [markdown]
# **EmoNet, Table 2**: the members' test accuracy and the weighted ensemble's (paper
# constants). Its members — Inception-ResNet v2 and ResNet-50 transferred from ImageNet /
# VGGFace2, with and without the HOG + landmark (BOVW) input — are built in chapter 07;
# a row stays empty until a recipe for that member is registered and run.

# %%
emonet_recipes = sorted(n for n, r in RECIPES.items() if r.paper == "emonet")
emonet_rows = [{"row": m, "paper accuracy %": a,
                "ours": "missing: no EmoNet member recipe in this version of ferlib (chapter 07)"
                if not emonet_recipes else "see results/ for " + ", ".join(emonet_recipes)}
               for m, a in zip(EMONET_MEMBERS, EMONET_TABLE_2_ACCURACY)]
emonet_rows.append({"row": "Weighted Ensemble Learning", "paper accuracy %": 73.39,
                    "ours": "needs the four members above" if not emonet_recipes else "python -m ferlib ensemble "
                    + " ".join(emonet_recipes) + " --method de"})
pd.DataFrame(emonet_rows).set_index("row")

# %% [markdown]
# ## 9. Questions
#
# 1. Derive the ambiguity decomposition of §1 for weighted members. Why does it need
#    $\sum_m w_m = 1$? What goes wrong in it for unnormalised weights?
# 2. For the log-loss, show that the ensemble's NLL is at most the weighted mean of the
#    members' NLLs. Is the same true of the error rate? Build a three-member
#    counterexample with a majority vote.
# 3. $M$ members, error variance $\sigma^2$, pairwise correlation $\rho$: derive
#    $\sigma^2(\rho + (1-\rho)/M)$. With the correlations measured in §2, how many
#    members would halve the variance of one?
# 4. Why are the last five checkpoints of a run at a small learning rate nearly copies,
#    and what would make them more diverse (think of snapshot ensembles and cyclic
#    learning rates)?
# 5. Show that averaging logits gives the softmax of the mean log-probabilities. Which
#    of the two is invariant to a member's temperature, and which is not?
# 6. Why is the NLL convex in the weights $w$? Is it convex in DE's raw vector $r$?
# 7. DE searches $[0, 1]^M$ and normalises. Propose another parametrisation of the
#    simplex (e.g. a softmax of unbounded parameters). What are the trade-offs?
# 8. Why does a flip TTA gain little for a network trained with flips, and could it hurt
#    a network trained without them?
# 9. EmoNet fits four weights on PublicTest's 3,589 faces. How much optimism would you
#    expect from reporting PublicTest instead of PrivateTest, and why does it grow with
#    the number of weights?
#
# ## 10. What goes wrong in practice
#
# **1. Fitting the weights on the test split.** `ferlib` refuses it:

# %%
try:
    ens.differential_evolution_weights(base.probs[TEST], base.labels[TEST], split=TEST)
except ens.TestSplitFitError as err:
    print(f"{type(err).__name__}: {err}")

# %% [markdown]
# How optimistic would it be? The split the weights were fitted on is the one they look
# best on. Compare each DE fit's accuracy on PublicTest (where it was fitted) with
# PrivateTest (fresh faces):

# %%
optimism = pd.DataFrame([{"objective": obj, "PublicTest acc (fitted here)": ev["metrics"][FIT]["accuracy"],
                          "PrivateTest acc": ev["metrics"][TEST]["accuracy"],
                          "optimism": ev["metrics"][FIT]["accuracy"] - ev["metrics"][TEST]["accuracy"]}
                         for obj, ev in (("nll", combos["de (nll)"]), ("error", combos["de (error)"]))])
optimism.round(4)

# %%
gap_nll, gap_err = optimism["optimism"]
display(Markdown(
    f"Fitted on PublicTest, the NLL weights' accuracy there is "
    + difference_phrase(100 * optimism["PublicTest acc (fitted here)"][0], 100 * optimism["PrivateTest acc"][0],
                        whose="their PrivateTest")
    + "; the error weights' is "
    + difference_phrase(100 * optimism["PublicTest acc (fitted here)"][1], 100 * optimism["PrivateTest acc"][1],
                        whose="their PrivateTest")
    + f"{NOTE}. Part of any gap is chance — the two splits are different faces, and one "
    f"standard error is about {np.sqrt(0.25 / N_TEST):.3f} here — "
    + ("and the error objective, which chases individual faces' argmaxes, opens the larger gap in this run. "
       if gap_err > gap_nll else "and in this run the error objective's gap is not the larger one. ")
    + "Fitted on PrivateTest, that same gap would be hidden inside the reported number."))

# %% [markdown]
#
# **2. Members that are copies of each other.** Three copies of one member are that
# member: the same accuracy, error correlation 1, diversity 0.

# %%
copies = np.stack([base.probs[TEST][0]] * 3)
pd.Series({"member alone": acc(base.probs[TEST][0]), "mean of 3 copies": acc(ens.mean_probabilities(copies)),
           "error correlation": float(ens.error_correlation(copies, base.labels[TEST])[0, 1]),
           "diversity": ens.ambiguity_decomposition(copies, base.labels[TEST])["diversity"]}).round(4)

# %% [markdown]
# The same happens, more quietly, with members trained with the same seed, or the last
# checkpoints of one run at a tiny learning rate (§2 measured how alike they are).
#
# **3. Averaging the logits of differently calibrated models.** Make the weakest member
# over-confident — divide its logits by a temperature $T < 1$, which keeps its argmax and
# its accuracy — and average again. How often does each ensemble simply follow that
# member, and what is its accuracy?

# %%
weak = int(np.argmin(member_table["PublicTest acc"].values))


def with_temperature(probs, member, temperature):
    out = probs.copy()
    z = np.log(np.maximum(out[member], 1e-300)) / temperature
    z = np.exp(z - z.max(1, keepdims=True))
    out[member] = z / z.sum(1, keepdims=True)
    return out


calib_rows = []
for temperature in (1.0, 0.5, 0.2, 0.05, 0.0):
    if temperature > 0:
        hot = with_temperature(base.probs[TEST], weak, temperature)
        limits = {}
    else:  # T -> 0: the member becomes one-hot, and its logits outgrow everyone's
        hot = base.probs[TEST].copy()
        hot[weak] = np.eye(hot.shape[2])[hot[weak].argmax(1)]
        limits = {"mean of logits": hot[weak]}
    follows = hot[weak].argmax(1)
    for how, combine in (("mean of probabilities", ens.mean_probabilities),
                         ("mean of logits", ens.logit_average_probabilities)):
        p = limits.get(how, combine(hot))
        calib_rows.append({"temperature of the weakest member": temperature, "combination": how,
                           "agrees with that member": float((p.argmax(1) == follows).mean()),
                           "PrivateTest acc": acc(p)})
calib = pd.DataFrame(calib_rows).pivot(index="temperature of the weakest member", columns="combination")
calib.sort_index(ascending=False).rename(index={0.0: "-> 0 (limit)"}).round(3)

# %%
follow = calib["agrees with that member"]
display(Markdown(
    f"As {NAMES[weak]} grows over-confident (T from 1 towards 0), the mean of logits follows it on "
    f"{follow['mean of logits'].loc[1.0]:.0%} → {follow['mean of logits'].loc[0.05]:.0%} → "
    f"{follow['mean of logits'].loc[0.0]:.0%} of the faces, the mean of probabilities on "
    f"{follow['mean of probabilities'].loc[1.0]:.0%} → {follow['mean of probabilities'].loc[0.05]:.0%} → "
    f"{follow['mean of probabilities'].loc[0.0]:.0%}{NOTE}. A logit can grow without bound, so a loud enough member "
    "takes over a mean of logits completely, whatever the others say; a probability cannot exceed 1, so in a mean of "
    "probabilities a member adds at most 1/M to any class, and it wins only where the others are unsure. "
    + ("With members as unsure as these, that bound is weak: the one-hot member already decides most faces. "
       if follow["mean of probabilities"].loc[0.0] > 0.8 else "Here the bound keeps the other members in the vote. ")
    + "Either way the ensemble is only as good as the members' calibration: recalibrate members whose confidences "
      "differ (temperature scaling on PublicTest) before combining them, and average probabilities, which are on "
      "one scale for every member."))

# %% [markdown]
# **4. Forgetting that members see their own inputs.** Every member predicts through its
# *own* checkpoint's normaliser and evaluation transform (`LoadedModel.eval_source`): a
# member trained at 42×42 with per-pixel standardisation and one trained at 197×197 with
# three channels can join one ensemble. Feeding both the same preprocessed tensor is a
# silent error; `ferlib` refuses members trained on different class sets or data
# (`python -m ferlib ensemble` then exits with one line saying which).

# %% tags=["hide-input"]
WORK.cleanup()
print(f"chapter 06 ran in {time.perf_counter() - T0:.1f} s ({LABEL}; {ds.tag})")
