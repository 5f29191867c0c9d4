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
# # 00 — FER-2013 up close
#
# Every paper in this book trains and tests on the same small grey faces: FER-2013,
# released for the Kaggle / ICML 2013 workshop "Challenges in Representation Learning".
# Before any network, this chapter looks at the data itself:
#
# 1. where it comes from, the formats it arrives in, and how `ferlib` finds it;
# 2. the three splits and the one rule about them;
# 3. how unevenly the seven classes are represented;
# 4. what the faces look like;
# 5. the dataset's real defects — duplicates, test images that also sit in Training,
#    contradictory labels, blank images;
# 6. FER+, Microsoft's re-labelling by ten crowd taggers per image;
# 7. the per-pixel normalisation of densenet;
# 8. every augmentation the five papers use, on one face.
#
# Nothing below is typed in: every number and figure is computed from the data in
# front of you. If you have no FER-2013, the chapter runs on `ferlib`'s synthetic faces
# and says so at every step.

# %% tags=["hide-input"]
# %matplotlib inline
import io
import lzma
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from PIL import Image

from ferlib.data.classes import (EMOTIONS, FERPLUS_CLASSES, FERPLUS_TO_FER2013, FERPLUS_VOTE_COLUMNS, SPLITS,
                                 label_order_table)
from ferlib.data.discovery import DATA_ENV, load_fer2013, locate_data
from ferlib.data.errors import DataFormatError
from ferlib.data.normalize import ChannelStandardizer, ImageStandardizer, PixelStandardizer
from ferlib.data.quality import (blank_images, conflicting_groups, duplicate_group_ids, leaked_test_images,
                                 quality_report)
from ferlib.data.readers import read_fer2013_csv, read_image_folder, read_npz_xz
from ferlib.data.transforms import PRESETS
from ferlib.profiles import get_profile
from ferlib.viz import data_plots as plots
from ferlib.viz.source import show_code

T0 = time.perf_counter()
pd.set_option("display.width", 120)
print(f"profile: {get_profile()} (this chapter does the same work in both profiles)")

# %% [markdown]
# ## 1. Where the data comes from
#
# FER-2013 was collected with Google image search, the faces were cropped and
# registered to 48×48 grey pixels, and each image got one of seven labels:
# angry, disgust, fear, happy, sad, surprise, neutral (densenet §IV-A; emonet §4). It
# reaches you in one of these forms:
#
# | form | what is in it |
# |---|---|
# | `fer2013.csv` (the challenge file) | header `emotion,pixels,Usage`; per row a class code 0–6, the 2,304 grey levels of the 48×48 image separated by spaces (row-major), and the split |
# | `icml_face_data.csv` (another Kaggle download) | the same rows, columns in the order `emotion, Usage, pixels` — note the spaces in its header |
# | an image folder (Kaggle "msambare") | `train/<class>/Training_*.jpg` and `test/<class>/PublicTest_*.jpg`, `test/<class>/PrivateTest_*.jpg`: the class is the folder, the split is the file-name prefix, and the pixels went through JPEG |
# | `fer2013.npz.xz` | the exact pixels, labels and splits of `fer2013.csv` as compressed arrays |
#
# Kaggle's `train.csv` / `test.csv` are *not* enough: they drop the `Usage` column, so
# PublicTest and PrivateTest can no longer be told apart.
#
# `ferlib` looks in one place, decided in this order: the `data_dir` argument
# (`--data-dir` on the command line), the environment variable `FERLIB_DATA_DIR`, a
# folder `./data`, and otherwise the embedded synthetic faces. Inside that folder it
# looks for the forms above, and for FER+ votes (`fer2013new.csv`). Here is what it
# found, and what the loader printed:

# %%
loc = locate_data()
print(f"chosen by : {loc.chosen_by}" + (f" (${DATA_ENV})" if loc.chosen_by == DATA_ENV else ""))
print(f"FER-2013  : {loc.fer2013} [{loc.kind}]")
print(f"FER+ votes: {loc.ferplus}")
ds = load_fer2013()
print(f"{len(ds):,} images of {ds.pixels.shape[1]}x{ds.pixels.shape[2]}, {ds.pixels.dtype}; tag: {ds.tag}")

# %%
if ds.synthetic:
    from ferlib.data.synthetic import SYNTHETIC_NOTICE

    display(Markdown(
        f"> ## ⚠ {ds.tag}\n>\n> No FER-2013 was found, so this chapter runs on `ferlib`'s procedurally "
        f"drawn faces. {SYNTHETIC_NOTICE} The synthetic set is balanced and has none of FER-2013's "
        f"defects, so sections 3, 5 and 6 show what the *code* does, not what FER-2013 is like. "
        f"Put `fer2013.csv` in `./data` or set `{DATA_ENV}` to see the real thing."))
else:
    display(Markdown(f"> **Data: {ds.tag}**, read from `{ds.source}`."))

# %% [markdown]
# ### The CSV format, row by row
#
# To see the format, we write the first image of each split into a three-row
# `fer2013.csv` in a temporary folder and read it back. The same three images are then
# written in the other forms and read by their readers. Every reader returns the
# same thing: a `FERDataset` with `pixels` (N, 48, 48) uint8, `labels`, `usage`
# and `rows` (the row index in the original file order).

# %%
workdir = Path(tempfile.mkdtemp(prefix="ferlib_ch00_"))
order = np.argsort(ds.rows)
demo = [int(order[np.flatnonzero(ds.usage[order] == s)[0]]) for s in SPLITS]  # first row of each split


def csv_line(i):
    return f"{ds.labels[i]},{' '.join(map(str, ds.pixels[i].ravel()))},{ds.usage[i]}"


csv_text = "emotion,pixels,Usage\n" + "".join(csv_line(i) + "\n" for i in demo)
(workdir / "fer2013.csv").write_text(csv_text)
for line in csv_text.splitlines():
    if len(line) > 80:  # a data row: show its start and end, and count its pixels
        line = f"{line[:45]} ... {line[-22:]}   ({len(line.split(',')[1].split())} pixels)"
    print(line)

# %%
# icml_face_data.csv: same rows, other column order, spaces in the header
icml_text = "emotion, Usage, pixels\n" + "".join(
    f"{ds.labels[i]},{ds.usage[i]},{' '.join(map(str, ds.pixels[i].ravel()))}\n" for i in demo)
(workdir / "icml_face_data.csv").write_text(icml_text)
# image folder, Kaggle msambare layout: JPEG quality 95
prefix = {"Training": ("train", "Training"), "PublicTest": ("test", "PublicTest"),
          "PrivateTest": ("test", "PrivateTest")}
for i in demo:
    half, pre = prefix[str(ds.usage[i])]
    folder = workdir / "folder" / half / EMOTIONS[ds.labels[i]]
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ds.pixels[i]).save(folder / f"{pre}_{i}.jpg", quality=95)
# the array file
buf = io.BytesIO()
np.savez(buf, pixels=ds.pixels[demo], emotion=ds.labels[demo].astype(np.uint8), usage=ds.usage[demo])
(workdir / "fer2013.npz.xz").write_bytes(lzma.compress(buf.getvalue()))

readers = {"fer2013.csv": (read_fer2013_csv, "fer2013.csv"), "icml_face_data.csv": (read_fer2013_csv, "icml_face_data.csv"),
           "image folder": (read_image_folder, "folder"), "fer2013.npz.xz": (read_npz_xz, "fer2013.npz.xz")}
table = []
for form, (reader, name) in readers.items():
    back = reader(workdir / name)
    table.append({"form": form, "reader": reader.__name__, "format seen": back.format, "rows": len(back),
                  "labels equal": bool((back.labels == ds.labels[demo]).all()),
                  "splits equal": bool((back.usage == ds.usage[demo]).all()),
                  "max |pixel difference|": int(np.abs(back.pixels.astype(int) - ds.pixels[demo]).max())})
pd.DataFrame(table)

# %% [markdown]
# The text and array forms give the pixels back exactly. The image folder does not:
# JPEG is lossy, so Kaggle's image-folder version of FER-2013 is a slightly
# different dataset from `fer2013.csv` (the difference above is in grey levels out
# of 255). It also loses the row order, which matters for FER+ (section 6).
#
# ### Bad input
#
# A download cut short, a row edited by hand, the wrong Kaggle file: every reader
# stops with a `DataFormatError` that names the file, the row and line, the problem and
# a fix. Here, one pixel is missing from the second data row, and then a Kaggle
# `train.csv` (no `Usage` column) is given where `fer2013.csv` was expected.

# %%
lines = csv_text.splitlines()
label, pixel_text, usage = lines[2].split(",")
lines[2] = ",".join([label, pixel_text.rsplit(" ", 1)[0], usage])  # drop the last pixel: 2303 values
(workdir / "broken.csv").write_text("\n".join(lines) + "\n")
try:
    read_fer2013_csv(workdir / "broken.csv")
except DataFormatError as e:
    print(f"DataFormatError: {e}\n")
    print(f"  e.where = {e.where!r}\n  e.problem = {e.problem!r}")

(workdir / "train.csv").write_text("emotion,pixels\n" + "".join(f"{ds.labels[i]},{' '.join(map(str, ds.pixels[i].ravel()))}\n" for i in demo))
try:
    read_fer2013_csv(workdir / "train.csv")
except DataFormatError as e:
    print(f"\nDataFormatError: {e}")
shutil.rmtree(workdir)  # the demo files are no longer needed

# %% [markdown]
# ## 2. Three splits, one rule
#
# The `Usage` column splits the rows three ways, exactly as in the 2013 challenge:
#
# * **Training** — fit the model's weights here, and fit anything else learned from
#   data here too (normalisation statistics, class weights, PCA, …);
# * **PublicTest** — the *validation* split: choose the epoch, the learning rate, λ of
#   the center loss, k of a k-NN, ensemble weights;
# * **PrivateTest** — the *test* split: evaluate once, at the end, and report.
#
# **Select on PublicTest, report PrivateTest.** Every decision made by looking at
# PrivateTest accuracy — even "train a bit longer because test accuracy was still
# rising" — makes the reported number optimistic. densenet reports both test splits
# separately (Table II); dnnrl picks k and stops training on the validation split and
# tests on the test split (§4); emonet learns its ensemble weights on the validation
# split (§6.2, Table 1). cl-resnet50 (§4.2) instead re-splits Training 70/30 and does not
# say plainly which images its FER-2013 accuracy is measured on. When you compare with
# a paper's number, first find out which split it is.

# %%
counts = ds.split_counts()
role = {"Training": "fit weights and statistics", "PublicTest": "validation: select models",
        "PrivateTest": "test: report, once"}
pd.DataFrame([{"split": s, "images": counts[s], "share": f"{counts[s] / len(ds):.1%}",
               "first row": int(ds.rows[ds.usage == s].min()), "last row": int(ds.rows[ds.usage == s].max()),
               "role": role[s]} for s in SPLITS]).set_index("split")

# %% [markdown]
# ## 3. Class distribution
#
# The seven classes are far from balanced. A model that always answers the largest
# Training class already has a non-trivial accuracy, and the smallest class has so
# few examples that its recall is noisy and easy to sacrifice. This is why later
# chapters report per-class recall and confusion matrices beside accuracy.

# %%
class_table = pd.DataFrame({s: ds.class_counts(s) for s in SPLITS}).T
class_table["total"] = class_table.sum(axis=1)
share_table = (100 * class_table[list(EMOTIONS)].div(class_table["total"], axis=0)).round(1)
display(class_table)
display(share_table.rename(index=lambda s: f"{s} (%)"))
plots.class_distribution({s: ds.class_counts(s) for s in SPLITS}, tag=ds.tag)

# %%
train_share = share_table.loc["Training"]
biggest, smallest = train_share.idxmax(), train_share.idxmin()
ratio = class_table.loc["Training", biggest] / class_table.loc["Training", smallest]
test_counts = pd.Series(ds.class_counts("PrivateTest"))
spread = (share_table - share_table.loc["Training"]).abs().values.max()
if ratio < 1.05:
    finding = (f"This set is balanced: every class holds about {train_share.mean():.1f}% of Training, so "
               f"always answering one class scores about 1/7 = {1 / 7:.1%}. FER-2013 is not like this.")
else:
    finding = (f"In Training, **{smallest}** is the rarest class ({train_share[smallest]:.1f}% of the images) and "
               f"**{biggest}** the most common ({train_share[biggest]:.1f}%), {ratio:.1f} times as many. "
               f"Always answering *{biggest}* scores {test_counts[biggest] / test_counts.sum():.1%} on PrivateTest: "
               f"that, not 1/7 = {1 / 7:.1%}, is the floor every model must clear.")
display(Markdown(f"{finding} The largest difference between a class's share in a test split and in Training is "
                 f"{spread:.1f} percentage points"
                 + (": the splits have nearly the same class mix, and PublicTest is a fair stand-in for PrivateTest."
                    if spread < 2 else ": the class mix differs between splits; keep that in mind when PublicTest "
                    "stands in for PrivateTest.") + f" *[{ds.tag}]*"))

# %% [markdown]
# ## 4. What the faces look like
#
# Eight random Training images per class (the number of Training images of the class
# is beside its name). Look for what makes the task hard: pose, occlusion by hands and
# glasses, watermarks and text, children and cartoons, weak expressions, and labels
# you would not have chosen yourself.

# %%
train = ds.split("Training")
plots.class_sample_grid(train.pixels, train.labels, EMOTIONS, per_class=8, seed=0,
                        title="Random Training images, one class per row", tag=ds.tag)

# %% [markdown]
# ## 5. The dataset's real defects
#
# The images were scraped from the web, and the same picture was sometimes found
# twice. `ferlib.data.quality` finds **exact** duplicates (identical pixels; near
# duplicates, e.g. re-crops, are not counted) and blank images.

# %%
report = quality_report(ds)
pd.Series(report.as_dict(), name=ds.tag).to_frame()

# %% [markdown]
# Three of these numbers matter for everything that follows.
#
# **Test images that are also Training images.** A test image whose exact copy is in
# Training tests memory, not generalisation: a network that has fit Training well
# gets it right for free — if the copy carries the same label. The table counts, per
# test split, the leaked rows and how many of them have a Training copy with the same
# label.

# %%
group = duplicate_group_ids(ds.pixels)  # computed once, shared by the cells below
leaks = pd.DataFrame(leaked_test_images(ds, group)).set_index("split")
leaks["free accuracy, at most (points)"] = (100 * leaks["same_label"] / leaks["images"]).round(2)
leaks.rename(columns={"in_training": "have a copy in Training", "same_label": "… with the same label"})

# %% [markdown]
# **Contradictory labels.** Some duplicate groups carry more than one label: the same
# pixels are, say, "sad" in one row and "neutral" in another. No model can get both
# right, and they are a glimpse of FER-2013's label noise (section 6 measures it with
# FER+). A few such pairs:

# %%
conflicting = conflicting_groups(ds, group)  # row indices of each group, as many groups as the report counts
print(f"{len(conflicting)} duplicate groups with more than one label [{ds.tag}]")
if conflicting:
    shown, titles = [], []
    for members in conflicting[:6]:
        # a group can hold several rows with one label and one with another: show two rows whose labels DIFFER
        first = members[0]
        other = next(i for i in members[1:] if ds.labels[i] != ds.labels[first])
        for i in (first, other):
            shown.append(ds.pixels[i])
            titles.append(f"row {ds.rows[i]}\n{ds.usage[i]}\n{EMOTIONS[ds.labels[i]]}")
    assert all(titles[j].rsplit("\n", 1)[1] != titles[j + 1].rsplit("\n", 1)[1] for j in range(0, len(titles), 2))
    display(plots.image_grid(shown, 6, titles=titles, cell=1.15,
                             title="Identical images with different labels (pairs side by side)", tag=ds.tag))
else:
    print("none to show")

# %% [markdown]
# **Blank images.** Images with a single grey level carry no face at all. They are
# harmless in Training (a little noise) but a blank *test* image is scored against an
# arbitrary label.

# %%
blank = blank_images(ds.pixels)
print(f"{len(blank)} blank images [{ds.tag}]" + (":" if len(blank) else ""),
      {s: int(n) for s, n in pd.Series(ds.usage[blank]).value_counts().items()} if len(blank) else "")
if len(blank):
    display(plots.image_grid([ds.pixels[i] for i in blank], min(len(blank), 6),
                             titles=[f"row {ds.rows[i]}\n{ds.usage[i]}\n{EMOTIONS[ds.labels[i]]}" for i in blank],
                             cell=1.15, title="Blank images and their labels", tag=ds.tag))

# %% [markdown]
# What to do about them is a choice, and it must be the *same* choice for every model
# you compare. `ferlib` keeps the Kaggle splits untouched, so its numbers compare with
# the papers', and reports the defects beside them; a model's accuracy on PrivateTest
# *without* the leaked rows is the honest measure of generalisation.
#
# ## 6. FER+: ten votes per image
#
# FER+ (Barsoum et al.; Sobel-Laplacian-CL trains on it) re-labelled every FER-2013
# image with ten crowd taggers, adding *contempt*, *unknown* and *NF* (not a face). Its
# file `fer2013new.csv` has one line per FER-2013 row, **in the same order**: row *i*
# of the votes describes row *i* of `fer2013.csv`. The column `Image name` looks like a
# key but is not one (see the end of this section). FER+ can therefore only be attached
# to data that keeps the CSV's row order — `fer2013.csv`, `icml_face_data.csv`, the
# array file — and not to an image folder or the synthetic faces.

# %%
fer_plus_ok = loc.ferplus is not None and not ds.synthetic and ds.format != "image-folder"
if fer_plus_ok:
    from ferlib.data.ferplus import (FERPLUS_SUSPECT_ROWS, align_ferplus, ferplus_labels, image_name_numbers,
                                     plurality_agreement, process_votes, read_ferplus_votes)

    votes = read_ferplus_votes(loc.ferplus)
    align_ferplus(ds, votes)  # raises if the row counts or any row's Usage disagree
    fer_labels = ds.labels[np.argsort(ds.rows)]  # FER-2013 labels in file row order
    print(f"FER+ votes from {votes.source}: {len(votes):,} rows, aligned to {ds.tag} by row index")
    display(pd.DataFrame(votes.votes[:5], columns=FERPLUS_VOTE_COLUMNS)
            .assign(**{"Image name": votes.image_names[:5], "FER-2013 label": [EMOTIONS[c] for c in fer_labels[:5]]}))
else:
    why = ("the data is synthetic" if ds.synthetic else "the data is an image folder (no row order)"
           if ds.format == "image-folder" else "no fer2013new.csv was found")
    display(Markdown(f"> **FER+ section skipped: {why}.** Put `fer2013new.csv` (from github.com/microsoft/FERPlus) "
                     "beside `fer2013.csv` to run it. The cells below do nothing without it."))

# %% [markdown]
# ### Label orders: one table
#
# FER-2013 and FER+ number the same emotions differently: class 0 is *angry* in
# `fer2013.csv` and *neutral* in `fer2013new.csv`. A model's output *i* means what its
# training labels meant by *i*, so a FER+ model read with FER-2013's names gives confident
# nonsense. The kit's FER-2013 models (`models/*.pt`, every FER-2013 recipe) output
# FER-2013's order; its FER+ models (chapter 08) FER+'s eight classes. Every checkpoint
# records its own `class_names`, `python -m ferlib predict` uses them, and every output that
# gives a class index gives its name too. The last two columns convert one order to the other.

# %% tags=["hide-input"]
display(Markdown(label_order_table()))

# %% [markdown]
# ### The four label modes
#
# FER+ turns ten votes into a training target in one of four ways (the FER+ authors'
# reference code, microsoft/FERPlus, which `ferlib.data.ferplus` ports): first, in
# every column (*unknown* and *NF* included), a single vote is removed as noise; "the
# votes" below are what remains. Then
#
# * **majority** — the top class if it holds *more than half* of the votes, else the
#   image is *unknown* and dropped (a tie for the top never has a majority);
#   Sobel-Laplacian-CL trains with this;
# * **probability** and **crossentropy** — the same stored target: the distribution
#   over the top classes (ties taken together) until they cover 75% of the votes, at
#   most three, stopping at *unknown*/*NF*; the row is dropped if they hold half of the
#   votes or less. Both train with cross-entropy; they differ in what the loss sees:
#   **crossentropy** uses the distribution itself, while **probability** draws one
#   class from it every time the image enters a batch (`sample_one_hot`), so an image
#   voted 6 neutral / 4 happy is *neutral* in about 60% of the epochs;
# * **multi_target** — every class with at least 30% of **all** the votes (not of the
#   top class's votes), if together they hold more than half of them; the loss is
#   −log of the largest predicted probability among these classes, so the network may
#   favour any one of them.
#
# An image whose target is *unknown* or *NF* is dropped in every mode. Whatever the
# training mode, the reference validates and tests on the **majority** labels, so all
# four are scored on the same images (`ferplus_dataset(..., eval_mode="majority")`).
# Here are a few rows chosen to show the differences:

# %%
def describe_target(t):
    top = int(np.argmax(t))
    if top >= 8:
        return f"dropped ({FERPLUS_VOTE_COLUMNS[top]})"
    return ", ".join(f"{FERPLUS_VOTE_COLUMNS[j]} {t[j]:.2f}" for j in np.argsort(-t) if t[j] > 0)


if fer_plus_ok:
    modes = ("majority", "probability", "crossentropy", "multi_target")
    v = votes.votes
    named = votes.image_names != ""
    outcome = {}  # case -> first row showing it

    def n_classes(t):
        return 0 if np.argmax(t) >= 8 else int((t > 0).sum())

    for r in range(len(votes)):
        t = {m: process_votes(v[r], m) for m in modes}
        k = {m: n_classes(t[m]) for m in modes}
        if not named[r]:
            case = "not a face (no image name)"
        elif k["majority"] and k["multi_target"] == 1 and v[r].max() >= 9:
            case = "clear"
        elif k["majority"] and (t["multi_target"][:8] > 0).sum() > 1:
            case = "majority, and a second class"
        elif not k["majority"] and k["probability"]:
            case = "no majority, still a distribution"
        elif not any(k.values()):
            case = "dropped in every mode"
        else:
            continue
        outcome.setdefault(case, r)
        if len(outcome) == 5:
            break
    example = pd.DataFrame(
        [{"case": case, "row": int(r),
          "votes": ", ".join(f"{c} {n}" for c, n in zip(FERPLUS_VOTE_COLUMNS, v[r]) if n),
          **{m: describe_target(process_votes(v[r], m)) for m in modes}} for case, r in outcome.items()]
    ).set_index("case")
    display(example)

# %% [markdown]
# How many images each mode would keep, per split, if it were applied to every split
# (Sobel-Laplacian-CL trains on the majority rows; the reference evaluates every mode on
# the majority rows of PublicTest and PrivateTest):

# %%
if fer_plus_ok:
    kept = {m: ferplus_labels(votes, m) for m in modes}
    display(pd.DataFrame({m: {s: int((lab.usage == s).sum()) for s in SPLITS} for m, lab in kept.items()})
            .T.assign(total=lambda d: d.sum(axis=1), **{"FER-2013 rows": [len(ds)] * len(modes)}))
    maj = kept["majority"]
    display(pd.DataFrame({s: dict(zip(FERPLUS_CLASSES, np.bincount(maj.labels[maj.usage == s], minlength=8)))
                          for s in SPLITS}).T.rename_axis("majority labels"))

# %% [markdown]
# ### How often do FER+ and FER-2013 agree?
#
# Map each FER+ majority label to its FER-2013 class (contempt has none and counts as a
# disagreement) and compare with the original label, for the rows FER+ keeps.

# %%
if fer_plus_ok:
    fer_of_ferplus = np.array([-1 if c is None else c for c in FERPLUS_TO_FER2013])
    orig = fer_labels[maj.rows]
    agree = fer_of_ferplus[maj.labels] == orig
    display(Markdown(
        f"FER+ majority label = FER-2013 label for **{agree.mean():.1%}** of the {len(agree):,} rows "
        f"with a majority (Training {agree[maj.usage == 'Training'].mean():.1%}, "
        f"PublicTest {agree[maj.usage == 'PublicTest'].mean():.1%}, "
        f"PrivateTest {agree[maj.usage == 'PrivateTest'].mean():.1%}). *[{ds.tag} + FER+]*"))
    confusion = np.zeros((7, 8), dtype=int)
    np.add.at(confusion, (orig, maj.labels), 1)
    display(pd.DataFrame(confusion, index=[f"{e}" for e in EMOTIONS], columns=FERPLUS_CLASSES)
            .rename_axis(index="FER-2013", columns="FER+ majority"))
    display(plots.confusion_heatmap(confusion, EMOTIONS, FERPLUS_CLASSES, row_label="FER-2013 label",
                                    col_label="FER+ majority label",
                                    title="Where each FER-2013 class goes under FER+ (row %)", tag=ds.tag))

# %%
if fer_plus_ok:
    share = confusion / confusion.sum(axis=1, keepdims=True)
    kept_own = {e: share[i, FERPLUS_TO_FER2013.index(i)] for i, e in enumerate(EMOTIONS)}
    flows = sorted(((share[i, j], e, FERPLUS_CLASSES[j]) for i, e in enumerate(EMOTIONS) for j in range(8)
                    if FERPLUS_TO_FER2013[j] != i), reverse=True)[:4]
    neutral = FERPLUS_CLASSES.index("neutral")
    changed = confusion.sum() - sum(confusion[i, FERPLUS_TO_FER2013.index(i)] for i in range(len(EMOTIONS)))
    to_neutral = (confusion[:, neutral].sum() - confusion[EMOTIONS.index("neutral"), neutral]) / max(changed, 1)
    display(Markdown(
        f"Best kept: *{max(kept_own, key=kept_own.get)}* ({max(kept_own.values()):.0%} keep their class); "
        f"worst kept: *{min(kept_own, key=kept_own.get)}* ({min(kept_own.values()):.0%}). Largest flows: "
        + "; ".join(f"{e} → {c} ({p:.0%})" for p, e, c in flows) + ". "
        + f"Of the labels FER+ changes, {to_neutral:.0%} become *neutral*"
        + (" — the largest destination by far: where a FER-2013 label is lost, the crowd mostly saw no clear "
           "expression." if to_neutral > 0.5 else ".")))

# %% [markdown]
# Read the table row by row: a label that FER+ changes goes either to *neutral* or to
# another expression, and the expressions it goes to are the confusions networks make
# too. FER-2013's labels are one annotation each; FER+ gives ten. An accuracy on
# FER-2013 well above the agreement between these two labellings deserves a second look.
#
# ### Align by row index, never by `Image name`
#
# `Image name` (`fer0000000.png`, …) numbers only the rows FER+ kept, so it drifts
# away from the row index, and a few names are used twice. Compare the agreement of
# the FER+ plurality vote (the most-voted emotion of each row) with the FER-2013 label
# under three alignments (`ferlib.data.ferplus.plurality_agreement`):

# %%
if fer_plus_ok:
    agreement = plurality_agreement(ds, votes)
    meaning = {"row index": "row i ↔ row i (correct)", "row index + 1": "row i ↔ row i+1 (off by one)",
               "Image name": "row i ↔ row number in Image name", "chance": "independent labels, same frequencies"}
    display(pd.DataFrame({"alignment": [meaning[a] for a in agreement],
                          "plurality agrees with FER-2013": [f"{v:.1%}" for v in agreement.values()]})
            .set_index("alignment"))
    name_number = image_name_numbers(votes)
    drift = np.flatnonzero(named & (name_number != np.arange(len(votes))))
    names, name_counts = np.unique(votes.image_names[named], return_counts=True)
    print(f"{(~named).sum()} rows have no name; the name's number differs from the row index in "
          f"{len(drift):,} of {named.sum():,} named rows (first at row {drift[0] if len(drift) else '-'}).")
    for n in names[name_counts > 1]:
        r = np.flatnonzero(votes.image_names == n)
        same = np.array_equal(ds.pixels[order[r[0]]], ds.pixels[order[r[1]]])
        print(f"  {n} names rows {list(map(int, r))}: pixels {'identical' if same else 'DIFFERENT'}")
    print(f"ferlib.data.ferplus.FERPLUS_SUSPECT_ROWS = {FERPLUS_SUSPECT_ROWS}: "
          "exclude them for clean FER+ experiments (ferplus_dataset(..., exclude_rows=...))")

# %%
if fer_plus_ok:
    collapsed = max(agreement["row index + 1"], agreement["Image name"]) < 0.5 * agreement["row index"]
    display(Markdown(
        f"Aligned by row index, {agreement['row index']:.1%} of the plurality votes agree with FER-2013; off by one "
        f"row, {agreement['row index + 1']:.1%}, and keyed by the name's number, {agreement['Image name']:.1%} — "
        f"against {agreement['chance']:.1%} for two independent labellings with these class frequencies. "
        + ("A misaligned FER+ does not crash: it silently trains on labels that are mostly wrong. " if collapsed
           else "")
        + "Always attach FER+ by row index, and check, as `align_ferplus` does, that the row count and each row's "
        "`Usage` match."))

# %% [markdown]
# ## 7. Normalisation: per-pixel mean and standard deviation
#
# densenet (§IV-C, "Preparing dataset") computes the **mean image** over Training —
# each pixel the average of that pixel position over all Training images — subtracts it
# from every image, and divides every pixel by its **standard deviation** over Training:
#
# $$ z_{n,ij} = \frac{x_{n,ij} - \mu_{ij}}{\sigma_{ij}}, \qquad
#    \mu_{ij} = \frac{1}{N}\sum_{n \in \text{Training}} x_{n,ij}, \qquad
#    \sigma_{ij}^2 = \frac{1}{N}\sum_{n \in \text{Training}} (x_{n,ij}-\mu_{ij})^2 . $$
#
# After this, *every pixel position* has mean 0 and standard deviation 1 over Training.
# The statistics come from Training only and are then applied unchanged to PublicTest,
# PrivateTest and any new photo. `PixelStandardizer` stores them as buffers of an
# `nn.Module`, so they travel inside a model's checkpoint. (You write this yourself in
# Lab 00.)

# %%
show_code(PixelStandardizer)

# %%
standardize = PixelStandardizer.fit(train.pixels)
plots.mean_std_images(standardize.mean, standardize.std, tag=ds.tag)

# %% [markdown]
# The mean image is a blurred average face: faces are registered, so eyes, nose and
# mouth sit at nearly the same place. The standard deviation is lowest where the
# images agree most. Now check the claim numerically: standardise all of Training
# (in chunks, to keep memory small) and measure, for every pixel position, the mean
# and standard deviation over the images.

# %%
def per_pixel_moments(pixels, module, chunk=4096):
    """Mean and std over images of module(pixels), per pixel position, accumulated in float64."""
    s1 = s2 = 0.0
    for start in range(0, len(pixels), chunk):
        z = module(torch.from_numpy(pixels[start:start + chunk]).float().unsqueeze(1)).double()
        s1 = s1 + z.sum(0)
        s2 = s2 + (z * z).sum(0)
    mean = s1 / len(pixels)
    return mean, (s2 / len(pixels) - mean ** 2).clamp_min(0).sqrt()


moments = []
for s in SPLITS:
    m, sd = per_pixel_moments(ds.split(s).pixels, standardize)
    moments.append({"split (standardised with Training stats)": s, "max |mean - 0|": f"{m.abs().max():.2e}",
                    "max |std - 1|": f"{(sd - 1).abs().max():.2e}", "average std": f"{sd.mean():.3f}"})
pd.DataFrame(moments).set_index("split (standardised with Training stats)")

# %% [markdown]
# On Training the mean is 0 and the standard deviation 1 at every pixel, up to float32
# rounding. On the test splits they are close but not exact — and that is correct: the
# test images are standardised with the *Training* statistics, as a deployed model
# would standardise a new photo. Re-fitting the statistics on a test split would leak
# information from it and make test images look more like Training than they are.
#
# **Other choices.** cl-resnet50 (§4.2) uses one mean and one standard deviation for
# all pixels of a channel (`ChannelStandardizer`); emonet (§4) only subtracts the mean.
# The alternative without any stored statistics is **per-image** standardisation
# (`ImageStandardizer`): each image to mean 0 and standard deviation 1 on its own. It
# removes each image's brightness and contrast; per-pixel standardisation keeps them
# (a dark photo stays darker than average). Below: Training images from the darkest to
# the brightest, raw (0–255), per-pixel and per-image standardised (both shown on −3…3).

# %%
channel = ChannelStandardizer.fit(train.pixels)
print(f"ChannelStandardizer (cl-resnet50): mean {float(channel.mean):.2f}, std {float(channel.std):.2f} "
      f"grey levels over all Training pixels [{ds.tag}]")
brightness = train.pixels.reshape(len(train), -1).mean(1)
pick = np.argsort(brightness)[(np.linspace(0.02, 0.98, 6) * len(train)).astype(int)]
x = torch.from_numpy(train.pixels[pick]).float().unsqueeze(1)
variants = {"raw": x, "per-pixel": standardize(x), "per-image": ImageStandardizer()(x)}
plots.image_grid([img for v in variants.values() for img in v], len(pick), row_labels=list(variants),
                 row_ranges=[(0, 255), (-3, 3), (-3, 3)], title="Darkest to brightest, three normalisations",
                 tag=ds.tag, cell=1.1)

# %%
pd.DataFrame({f"{name} image mean": v.double().mean((1, 2, 3)).numpy() for name, v in variants.items()}
             | {f"{name} image std": v.double().std((1, 2, 3)).numpy() for name, v in variants.items()},
             index=[f"row {r}" for r in train.rows[pick]]).round(2)

# %% [markdown]
# ## 8. Augmentation: every paper's recipe on one face
#
# Training is small for a deep network (section 2), so every paper augments. Each preset in
# `ferlib.data.transforms.PRESETS` reproduces one paper's description (read the
# docstrings for the quotes and for the values the papers leave out):
#
# * **densenet** (§IV-B): random crop with a margin, left–right flip, rotation in ±15°;
# * **emonet** (§4): rotation in ±10°, shear, zoom, flip; resized to 197 px and three
#   channels for ResNet-50;
# * **ferplus**: the FER+ authors' online augmentation — shift, independent x/y
#   scale, rotation in ±20°, skew, flip, reflected borders; 64 px;
# * **cl_resnet50** (§4.2): resize to 224, flip, rotation, random crop; three channels;
# * **dnnrl** (§3.1): resize to 96, random scale by ±10 px, pad to 120, rotation in
#   ±15°, random 108-px crop — composed into a single affine warp.
#
# The images are standardised first (as in training, so the padding is the mean, 0)
# and the whole batch of draws goes through one `grid_sample`. The first column is the
# deterministic `eval_transform` that validation and test images get; the others are
# random draws with a fixed seed.

# %%
augments = {name: make() for name, make in PRESETS.items()}
defaults = type(augments["none"])().to_dict()
pd.DataFrame({name: {k: v for k, v in aug.to_dict().items() if v != defaults[k]} or {"(identity)": ""}
              for name, aug in augments.items()}).T.fillna("")

# %%
face_index = int(np.flatnonzero(train.labels == EMOTIONS.index("happy"))[0])
face = standardize(torch.from_numpy(train.pixels[face_index:face_index + 1]).float().unsqueeze(1))
plots.augmentation_gallery(face, augments, draws=6, seed=0, vmin=-2.5, vmax=2.5,
                           title=f"Training row {train.rows[face_index]} through each preset (standardised pixels)",
                           tag=ds.tag)

# %% [markdown]
# ## Questions
#
# 1. The largest class holds far more Training images than the smallest. Name two
#    ways to counter the imbalance in training, and one way it should change how you
#    *report* results.
# 2. Why must the per-pixel mean and standard deviation be computed on Training only?
#    What exactly goes wrong if you compute them on Training + PrivateTest?
# 3. Some PrivateTest images have an exact copy in Training. Would you remove them from
#    the test split, from Training, or neither, when comparing your network with a
#    paper's? Justify, and say what you would report.
# 4. The FER+ majority label and the FER-2013 label disagree on a sizeable share of
#    images. What does that say about the highest accuracy one can expect on FER-2013,
#    and about comparing accuracies that differ by less than a point?
# 5. The densenet crop pads with 0 *after* standardisation. What grey level is that in
#    the original image, and why is it a better choice than black?
#
# ## What goes wrong in practice
#
# * **Selecting on PrivateTest.** Choosing the epoch, the hyper-parameters or the
#   ensemble weights by PrivateTest accuracy and then reporting that accuracy. The
#   number is optimistic and cannot be reproduced. Select on PublicTest.
# * **Normalising with test statistics**, or re-fitting the normaliser on each split.
#   Fit once on Training, ship the statistics with the model (`PixelStandardizer` is part
#   of the checkpoint).
# * **Aligning FER+ by file name.** `Image name` is not a row index; a shifted
#   alignment trains without error on labels that are mostly wrong.
# * **Duplicate leakage.** Test images with exact copies in Training inflate test
#   accuracy; re-splitting the data at random (as some papers do) lets copies land on
#   both sides again. Keep the Kaggle splits and report the defects.
# * **Reading the wrong download.** Kaggle's `train.csv`/`test.csv` lack the split
#   column, and the image-folder version is JPEG-compressed and in another row order:
#   its numbers are close to, not equal to, those on `fer2013.csv`, and FER+ cannot be
#   attached to it.
# * **Numbers from synthetic data.** Without FER-2013 this chapter ran on synthetic
#   faces; nothing measured on them says anything about facial-expression recognition.

# %% tags=["hide-input"]
print(f"chapter 00 ran in {time.perf_counter() - T0:.1f} s [{ds.tag}]")
