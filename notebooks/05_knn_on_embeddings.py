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
# # 05 — k-NN on embeddings
#
# Chapter 04 trained networks whose output is not a class but a point on the unit sphere
# in $\mathbb{R}^{512}$. To turn that point into an expression, dnnrl (§4) uses the
# oldest classifier there is: "any test sample was classified by a majority vote of its
# k training samples … We determined the value of k for sample testing when the
# validation samples obtained the highest accuracy on the value of k." This chapter
#
# 1. shows why k-NN fits an embedding trained on distances, and why on the unit sphere
#    it does not matter whether the distance is Euclidean or cosine;
# 2. sweeps k on PublicTest, takes the best k, and only then classifies PrivateTest —
#    and measures how much choosing k on PrivateTest would have flattered the result;
# 3. compares the softmax head with k-NN on the *same* network (`dnnrl-dnn`);
# 4. shows query faces beside their nearest Training faces — what the embedding calls
#    similar, and where it fails;
# 5. draws the embedding in 2-D and 3-D.
#
# It uses the networks trained in chapter 04 when their checkpoints are there, and
# trains the quick ones itself otherwise.

# %% tags=["hide-input"]
# %matplotlib inline
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from ferlib import paths
from ferlib.data.discovery import load_fer2013
from ferlib.data.splits import prepare_splits
from ferlib.evaluate.knn import DEFAULT_KS, knn_evaluate, knn_predict, knn_sweep
from ferlib.profiles import get_profile
from ferlib.train.precision import torch_threads
from ferlib.train.checkpoint import load_model
from ferlib.train.recipes import get_recipe
from ferlib.data.dataset import stratified_subset
from ferlib.evaluate.wording import difference_phrase
from ferlib.jobs.tables import load_results, run_label
from ferlib.train.results import run_recipe
from ferlib.runs import RunKey, find_runs, split_sizes
from ferlib.viz import knn_plots as kplots

T0 = time.perf_counter()
PROFILE = get_profile()
QUICK = PROFILE == "quick"
DNNRL_RECIPES = ("dnnrl-dnn", "dnnrl-t-dnn", "dnnrl")
pd.set_option("display.width", 140)
pd.set_option("display.precision", 4)
print(f"profile: {PROFILE} ({'tiny networks trained for seconds: a smoke test' if QUICK else 'full-profile runs when present'})")

# %% [markdown]
# ## 1. Why k-NN, and why the metric does not matter on the sphere
#
# The exponential triplet loss (and FaceNet's) says nothing about classes as such: it only
# asks that a face be closer — in squared Euclidean distance — to faces of its own
# expression than to others. A classifier that uses exactly that relation is the nearest
# neighbour vote: "Use of the k-NN classifier is reasonable, because the DNNRL loss is also
# based on Euclidean distances" (§4).
#
# Euclidean or cosine? For unit vectors $a, b$,
#
# $$ \lVert a - b\rVert^2 = \lVert a\rVert^2 + \lVert b\rVert^2 - 2\,a\cdot b = 2 - 2\cos(a, b), $$
#
# a decreasing function of the cosine. So sorting Training faces by squared distance,
# by distance, or by decreasing cosine gives **the same order**, hence the same neighbours
# and the same vote. Off the sphere the identity fails: a vector's length then enters the
# distance but not the cosine. The networks of chapter 04 end with an L2 normalisation, so
# their embeddings are on the sphere. First the data and the networks.

# %%
ds = load_fer2013(synthetic_per_class=300 if QUICK else 1000)
print(f"{len(ds):,} images; {ds.tag}")
if ds.synthetic:
    display(Markdown(f"> **{ds.tag}.** No FER-2013 was found: every number and picture below comes from synthetic "
                     "faces and says nothing about FER-2013."))


def labelled(table):
    """A table made from the faces, shown under the name of the data it comes from."""
    display(Markdown(f"*{ds.tag}, {PROFILE} profile*"))
    return table


# %%
def trained_run(name):
    """(results, checkpoint, where from) of the largest-budget run of ``name`` on this kind of data that
    ``ferlib.runs`` finds (chapter 04's quick runs, yours, the kit's); else one quick smoke run here."""
    budgets = ("quick",) if QUICK else None
    for run in find_runs(name, synthetic=bool(ds.synthetic), budgets=budgets):
        r = run.results()
        if r is None or run.checkpoint is None or r["data"]["tag"] != ds.tag:
            continue
        try:
            load_model(run.checkpoint)  # written by this version of ferlib?
        except (ValueError, RuntimeError, KeyError) as err:
            print(f"{name}: {run.checkpoint} does not load ({err})")
            continue
        return r, run.checkpoint, f"{run.key.name} ({'the kit' if run.origin == 'kit' else 'your run'})"
    key = RunKey.for_training(name, "quick", synthetic=bool(ds.synthetic))
    with torch_threads(2):  # one library call: the quick smoke run
        r = run_recipe(get_recipe(name), dataset=ds, profile="quick", resume=False, progress=False,
                       results_path=key.results_path(), run_dir=key.run_dir())
    return r, key.run_dir() / "best.pt", "trained here (quick profile)"


runs = {name: trained_run(name) for name in DNNRL_RECIPES}
for name, (r, ckpt, where) in runs.items():
    print(f"{name:12s} {where:40s} {run_label(r)}{' -- SYNTHETIC' if r['synthetic'] else ''}")

# %% [markdown]
# Each network embeds the faces of its own run: the Training faces it learnt from (the
# reference set the vote looks in), PublicTest (where k is chosen) and PrivateTest
# (reported once). The embedding uses the evaluation transform of training (resize to 96,
# pad, centre-crop to 108), never the random augmentation.

# %%
def embed_splits(r, ckpt):
    data = prepare_splits(ds, *split_sizes(r, get_recipe(r["recipe"])), r["seed"])
    model = load_model(ckpt, device="cuda" if torch.cuda.is_available() else "cpu")
    out = {"model": model}
    with torch_threads(2):
        for split, part in (("Training", data.train), ("PublicTest", data.val), ("PrivateTest", data.test)):
            logits, emb = model.predict_outputs(part.pixels)
            out[split] = {"emb": emb.float(), "labels": torch.as_tensor(part.labels), "pixels": part.pixels,
                          "logits": logits}
    return out


start = time.perf_counter()
E = {name: embed_splits(r, ckpt) for name, (r, ckpt, _) in runs.items()}
sizes = {s: len(E["dnnrl"][s]["labels"]) for s in ("Training", "PublicTest", "PrivateTest")}
print(f"embedded {sizes} faces per network in {time.perf_counter() - start:.1f} s")
norms = torch.cat([E[n][s]["emb"].norm(dim=1) for n in E for s in ("Training", "PublicTest", "PrivateTest")])
print(f"embedding norms: {norms.min():.6f} .. {norms.max():.6f}")

# %% [markdown]
# Now the identity, on the `dnnrl` network's embeddings, and on the same vectors with each
# row multiplied by a random length between 0.5 and 2 (what an embedding without the L2
# layer can look like):

# %%
emb_tr, y_tr = E["dnnrl"]["Training"]["emb"], E["dnnrl"]["Training"]["labels"]
emb_te = E["dnnrl"]["PrivateTest"]["emb"]
lengths = torch.empty(len(emb_tr), 1).uniform_(0.5, 2.0, generator=torch.Generator().manual_seed(0))
kplots.distance_vs_cosine_figure({"unit-norm embeddings (dnnrl)": emb_tr.numpy(),
                                  "the same, rows rescaled": (emb_tr * lengths).numpy()}, tag=ds.tag)

# %%
k_demo = min(5, len(emb_tr))
rows = []
for label, train in (("unit norm", emb_tr), ("rows rescaled", emb_tr * lengths)):
    eu = knn_predict(train, y_tr, emb_te, k=k_demo, metric="euclidean")
    co = knn_predict(train, y_tr, emb_te, k=k_demo, metric="cosine")
    ie, _ = kplots.nearest_neighbours(train, emb_te, k_demo, metric="euclidean")
    ic, _ = kplots.nearest_neighbours(train, emb_te, k_demo, metric="cosine")
    rows.append({"Training embeddings": label, f"same {k_demo} neighbours (in order)": float((ie == ic).all(1).mean()),
                 f"same {k_demo}-NN prediction": float((eu == co).float().mean())})
same = pd.DataFrame(rows).set_index("Training embeddings")
labelled(same)

# %% tags=["hide-input"]
display(Markdown(
    f"On the unit sphere the two metrics agree on {same.iloc[0, 0]:.0%} of the PrivateTest queries' neighbour lists "
    f"and {same.iloc[0, 1]:.0%} of the predictions"
    + (" (up to floating-point ties)" if same.iloc[0, 0] < 1 else "")
    + f"; with the rows rescaled, on {same.iloc[1, 0]:.0%} and {same.iloc[1, 1]:.0%}. `ferlib`'s recipes use the "
      "Euclidean distance, the one the loss is written in."))

# %% [markdown]
# ## 2. Choosing k on PublicTest, reporting PrivateTest
#
# The protocol, in `ferlib.evaluate.knn.knn_evaluate`:
#
# 1. embed Training (the reference set), PublicTest and PrivateTest;
# 2. for each k in a fixed list, classify every PublicTest face by the vote of its k nearest
#    Training faces (one neighbour search for the largest k; each smaller k votes over a
#    prefix of it);
# 3. take the k with the best PublicTest accuracy (the smallest on a tie);
# 4. classify PrivateTest **once**, with that k.
#
# A tie in the vote (k = 4: two "happy", two "sad") goes to the tied class whose nearest
# neighbour is closest — not to the smaller class code, which would make the answer depend
# on how the classes happen to be numbered.

# %%
def split_pair(e, split):
    return e[split]["emb"], e[split]["labels"]


n_train = sizes["Training"]
ks = [k for k in DEFAULT_KS if k <= n_train]
evals = {name: knn_evaluate(split_pair(e, "Training"), split_pair(e, "PublicTest"), split_pair(e, "PrivateTest"),
                            ks=ks, num_classes=len(ds.class_names)) for name, e in E.items()}
table = pd.DataFrame([{"network": name, "k chosen on PublicTest": ev["k"], "PublicTest": ev["PublicTest"],
                       "PrivateTest (that k)": ev["PrivateTest"],
                       "results file: k": (runs[name][0].get("knn") or {}).get("k"),
                       "results file: PrivateTest": (runs[name][0].get("knn") or {}).get("PrivateTest", {}).get("accuracy")}
                      for name, ev in evals.items()]).set_index("network")
display(Markdown(f"*{ds.tag}; {sizes['Training']} Training, {sizes['PublicTest']} PublicTest and "
                 f"{sizes['PrivateTest']} PrivateTest faces; {PROFILE} profile"
                 + (" — a smoke test: tiny networks trained for seconds, accuracies mean nothing.*" if QUICK else ".*")))
table

# %%
agree = all(table["k chosen on PublicTest"] == table["results file: k"]) and np.allclose(
    table["PrivateTest (that k)"].astype(float), table["results file: PrivateTest"].astype(float))
print("the same k and PrivateTest accuracy as the training run wrote:", agree)

# %%
kplots.k_sweep_figure({name: ev["sweep"] for name, ev in evals.items()},
                      chosen={name: ev["k"] for name, ev in evals.items()}, tag=ds.tag,
                      title=f"k-NN accuracy on PublicTest against k ({PROFILE} profile)")

# %% [markdown]
# ### What choosing k on PrivateTest would have reported
#
# Sweep k on PrivateTest too, and compare its best accuracy with the honest number. The
# difference is pure selection bias: the k that happens to suit these particular test
# faces.

# %%
rows = []
for name, e in E.items():
    private_sweep = knn_sweep(*split_pair(e, "Training"), *split_pair(e, "PrivateTest"), ks=ks,
                              num_classes=len(ds.class_names))
    k_cheat = max(private_sweep, key=lambda k: (private_sweep[k], -k))
    rows.append({"network": name, "honest: k from PublicTest": evals[name]["k"],
                 "PrivateTest (honest)": evals[name]["PrivateTest"], "k chosen on PrivateTest": k_cheat,
                 "PrivateTest (k chosen on it)": private_sweep[k_cheat],
                 "optimism (points)": 100 * (private_sweep[k_cheat] - evals[name]["PrivateTest"])})
cheat = pd.DataFrame(rows).set_index("network")
labelled(cheat)

# %% tags=["hide-input"]
display(Markdown(
    f"Choosing k on the test split would have added between {cheat['optimism (points)'].min():.1f} and "
    f"{cheat['optimism (points)'].max():.1f} points here, without the networks being any better — on "
    f"{sizes['PrivateTest']} test faces" + (", few enough for a lucky k to matter a lot" if sizes["PrivateTest"] < 1000
                                            else "") + ". That is why PrivateTest is classified once, with the k "
    "PublicTest chose."))

# %% [markdown]
# ## 3. Softmax head or k-NN, on the same network
#
# `dnnrl-dnn` is the Table 1 network with a softmax head, trained with cross-entropy (Table
# 2's "DNN"). Its 512-unit layer, normalised, is an embedding too — never trained to be
# one. The same network can therefore be read out two ways: by its head, or by k-NN on
# that embedding.

# %%
dnn = E["dnnrl-dnn"]
rows = []
for split in ("PublicTest", "PrivateTest"):
    y = dnn[split]["labels"]
    head = dnn[split]["logits"].argmax(1)
    knn = torch.as_tensor(evals["dnnrl-dnn"]["predictions"][split])
    rows.append({"split": split, "softmax head": float((head == y).float().mean()),
                 f"k-NN (k = {evals['dnnrl-dnn']['k']}, chosen on PublicTest)": float((knn == y).float().mean()),
                 "the two agree on": float((head == knn).float().mean())})
head_vs_knn = pd.DataFrame(rows).set_index("split")
labelled(head_vs_knn)

# %%
y = dnn["PrivateTest"]["labels"].numpy()
head = dnn["PrivateTest"]["logits"].argmax(1).numpy()
knn = evals["dnnrl-dnn"]["predictions"]["PrivateTest"]
per_class = pd.DataFrame({"faces": np.bincount(y, minlength=7),
                          "softmax head: recall": [float((head[y == c] == c).mean()) if (y == c).any() else np.nan
                                                   for c in range(7)],
                          "k-NN: recall": [float((knn[y == c] == c).mean()) if (y == c).any() else np.nan
                                           for c in range(7)]}, index=list(ds.class_names))
labelled(per_class)

# %%
priv = head_vs_knn.loc["PrivateTest"]
display(Markdown(
    f"On PrivateTest the head scores {priv.iloc[0]:.1%} and k-NN {priv.iloc[1]:.1%} on the same network, and they "
    f"give the same answer for {priv.iloc[2]:.0%} of the faces. "
    + ("The difference is within what a handful of faces decides here." if QUICK else
       "Which readout is better is a property of this network and this training, not of the methods: a network "
       "trained for its head has no reason to put same-class faces next to each other, and one trained with a "
       "triplet loss has no head at all.")))

# %% [markdown]
# ## 4. What the embedding calls similar
#
# For some PrivateTest faces — some that k-NN classifies correctly, some it gets wrong —
# the face and its nearest Training faces, in order. A neighbour framed green has the
# query's label, red another one; the number is the squared distance.

# %%
e = E["dnnrl"]
pred = evals["dnnrl"]["predictions"]["PrivateTest"]
truth = e["PrivateTest"]["labels"].numpy()
rng = np.random.default_rng(0)
right, wrong = np.flatnonzero(pred == truth), np.flatnonzero(pred != truth)
queries = np.concatenate([rng.choice(right, min(3, len(right)), replace=False),
                          rng.choice(wrong, min(3, len(wrong)), replace=False)])
k_show = min(evals["dnnrl"]["k"], 8) if evals["dnnrl"]["k"] > 1 else 5
idx, dist = kplots.nearest_neighbours(e["Training"]["emb"], e["PrivateTest"]["emb"][queries], k_show)
kplots.neighbour_strips(e["PrivateTest"]["pixels"][queries], truth[queries], e["Training"]["pixels"][idx],
                        e["Training"]["labels"].numpy()[idx], ds.class_names, predicted=pred[queries], distances=dist,
                        row_titles=["right"] * min(3, len(right)) + ["wrong"] * min(3, len(wrong)), tag=ds.tag,
                        title=f"dnnrl: PrivateTest queries and their {k_show} nearest Training faces ({PROFILE} profile)")

# %%
nn_idx, _ = kplots.nearest_neighbours(e["Training"]["emb"], e["PrivateTest"]["emb"], k_show)
same_label = (e["Training"]["labels"].numpy()[nn_idx] == truth[:, None]).mean(0)
train_shares = np.bincount(e["Training"]["labels"].numpy(), minlength=7) / n_train
chance = float((np.bincount(truth, minlength=7) / len(truth) * train_shares).sum())
display(Markdown(
    f"Over all {len(truth)} PrivateTest faces, the nearest Training face has the query's label "
    f"{same_label[0]:.0%} of the time, the {k_show}th nearest {same_label[-1]:.0%} of the time "
    f"(chance, for a random Training face: {chance:.0%}). "
    + ("The nearest neighbour is above chance" if same_label[0] > chance else "The nearest neighbour is not above chance")
    + (f" — on {len(truth)} faces, where a few faces decide it. " if len(truth) < 500 else ". ")
    + "Look at the red neighbours of the wrong queries: what do they share with the query — pose, lighting, "
      "glasses, an open mouth — if not its expression?"))

# %% [markdown]
# ## 5. The embedding in 2-D and 3-D
#
# 512 dimensions, projected. PCA keeps the directions of largest variance (a linear view,
# distances roughly kept); t-SNE keeps neighbourhoods (a non-linear view whose distances
# between clusters mean little). Training and PrivateTest faces of the `dnnrl` network;
# drag the 3-D plot to rotate it.

# %%
all_emb = torch.cat([e["Training"]["emb"], e["PrivateTest"]["emb"]]).numpy()
all_y = np.concatenate([e["Training"]["labels"].numpy(), truth])
hover = np.array([f"{'Training' if i < n_train else 'PrivateTest'}: {ds.class_names[c]}" for i, c in enumerate(all_y)])
view = np.sort(np.random.default_rng(0).choice(len(all_y), min(len(all_y), 2000), replace=False))  # at most 2,000 points
all_emb, all_y, hover = all_emb[view], all_y[view], list(hover[view])
pca = PCA(n_components=3).fit(e["Training"]["emb"].numpy())
print("share of the Training variance in the first 3 principal components:", pca.explained_variance_ratio_.round(3),
      f"(total {pca.explained_variance_ratio_.sum():.1%}) [{ds.tag}]")
kplots.embedding_scatter(pca.transform(all_emb), all_y, ds.class_names, hover=hover, tag=ds.tag,
                         title=f"dnnrl embedding, PCA to 3-D ({PROFILE} profile)").show()

# %%
with threadpool_limits(1):  # small t-SNEs run fastest on one thread
    tsne = TSNE(n_components=2, perplexity=min(30, (len(all_emb) - 1) // 3), init="pca",
                random_state=0).fit_transform(all_emb)
kplots.embedding_scatter(tsne, all_y, ds.class_names, hover=hover, tag=ds.tag, marker_size=6,
                         title=f"dnnrl embedding, t-SNE to 2-D ({PROFILE} profile)").show()

# %% [markdown]
# ## 6. The kit's real models: k-NN on 60-minute DenseNet features
#
# With FER-2013 present, the same protocol on the deep features (the layer before the
# classifier, `load_model(path).features(pixels)`) of the kit's committed real models — the
# 60-minute, 2-thread CPU runs of `densenet-bc` and `densenet-bc-center` (chapter 02 and
# 03), found by `ferlib.runs.find_runs`. They were trained with a softmax head, not a
# triplet loss: k-NN on their features asks whether the softmax (and center loss) already
# put same-class faces close together. k is chosen on PublicTest, PrivateTest is reported
# beside the model's own softmax head. In the quick profile the reference set is a
# stratified subset of Training and the evaluation splits are subsets too (printed below).

# %%
kit_runs = [r for n in ("densenet-bc", "densenet-bc-center") for r in find_runs(n, own=False)
            if r.model_path is not None][:2]
if ds.synthetic or not kit_runs:
    print("no FER-2013 here (or no committed models): the kit's real models are not evaluated"
          if ds.synthetic else "no committed models found in models/")
else:
    ref = stratified_subset(ds.split("Training"), 500, seed=0) if QUICK else ds.split("Training")
    pub = stratified_subset(ds.split("PublicTest"), 150, seed=1) if QUICK else ds.split("PublicTest")
    priv = stratified_subset(ds.split("PrivateTest"), 150, seed=2) if QUICK else ds.split("PrivateTest")
    print(f"reference {len(ref):,} Training faces, PublicTest {len(pub):,}, PrivateTest {len(priv):,} "
          f"({'quick profile: stratified subsets' if QUICK else 'the whole splits'})")
    real_rows, real_priv = [], {}
    for run in kit_runs:
        model = load_model(run.model_path)
        with torch_threads(2):
            out = {name: model.predict_outputs(part.pixels) for name, part in
                   (("Training", ref), ("PublicTest", pub), ("PrivateTest", priv))}
        lab = {name: torch.as_tensor(part.labels) for name, part in (("Training", ref), ("PublicTest", pub),
                                                                       ("PrivateTest", priv))}
        ev = knn_evaluate(*((out[s][1].float(), lab[s]) for s in ("Training", "PublicTest", "PrivateTest")),
                          num_classes=len(ds.class_names))
        head = float((out["PrivateTest"][0].argmax(1) == lab["PrivateTest"]).float().mean())
        real_priv[run.key.name] = (out["PrivateTest"][1].float().numpy(), lab["PrivateTest"].numpy())
        real_rows.append({"model": run.key.name, "file": str(run.model_path.relative_to(paths.kit_root())),
                          "k (chosen on PublicTest)": ev["k"], "k-NN PublicTest": ev["PublicTest"]["accuracy"]
                          if isinstance(ev["PublicTest"], dict) else ev["PublicTest"],
                          "k-NN PrivateTest": ev["PrivateTest"]["accuracy"] if isinstance(ev["PrivateTest"], dict)
                          else ev["PrivateTest"], "softmax head PrivateTest": head})
    real_table = pd.DataFrame(real_rows).set_index("model")
    display(labelled(real_table))
    display(Markdown("\n".join(
        f"* **{m}**: k-NN on its features scores {100 * row['k-NN PrivateTest']:.1f} % on PrivateTest (k = "
        f"{row['k (chosen on PublicTest)']}), "
        + difference_phrase(100 * row["k-NN PrivateTest"], 100 * row["softmax head PrivateTest"],
                            whose="its own softmax head's") + "."
        for m, row in real_table.iterrows())))
    name0 = next(iter(real_priv))
    feats, labs = real_priv[name0]
    pick = np.sort(np.random.default_rng(0).choice(len(labs), min(len(labs), 1000), replace=False))
    with threadpool_limits(2):
        xy = TSNE(n_components=2, perplexity=30, init="pca", random_state=0).fit_transform(feats[pick])
    display(kplots.embedding_scatter(xy, labs[pick], ds.class_names, marker_size=5, tag=ds.tag,
                                     title=f"t-SNE of the PrivateTest features of {name0} ({len(pick)} faces)"))

# %% [markdown]
# ## 7. Questions
#
# 1. Prove that for unit vectors the k nearest neighbours under squared Euclidean distance
#    and under cosine similarity are the same. Which property of the normalisation layer
#    does this rely on, and what breaks if the layer is removed?
# 2. Why is k chosen on PublicTest and not on Training (leave-one-out)? When would
#    leave-one-out on Training be the better choice?
# 3. Section 2 measured the optimism of choosing k on PrivateTest. Why does it shrink as
#    the test split grows? Estimate it for 3,589 faces.
# 4. With k larger than twice the number of Training faces of "disgust", can a majority
#    vote ever predict "disgust"? What does this do to the recall of rare classes as k
#    grows, and how would a distance-weighted vote change it?
# 5. Why break a tied vote by the nearest neighbour rather than by the smallest class code?
#    Construct a tie where the two rules disagree.
# 6. The softmax head and k-NN on the same network can disagree. Which faces would you
#    expect them to disagree on?
# 7. What does a k-NN classifier cost at test time, for FER-2013's 28,709 Training faces
#    and 512-D embeddings? How does that compare with the softmax head?
#
# ## 8. What goes wrong in practice
#
# **1. Choosing k (or the epoch) on the test split.** Section 2 shows the optimism in
# points. Report PrivateTest once, with the k PublicTest chose.
#
# **2. Neighbours from augmented Training faces.** The reference set must be embedded
# with the *evaluation* transform, as the queries are. With random crops and rotations,
# the same Training face lands somewhere else each time:

# %%
model = E["dnnrl"]["model"]  # the checkpoint keeps the training's augmentation; eval_transform is its clean part
faces = e["Training"]["pixels"][:64]
with torch.no_grad(), torch_threads(2):
    x = model.normalizer(torch.as_tensor(faces, dtype=torch.float32, device=model.device)[:, None])
    clean = model.model.forward_with_features(model.augment.eval_transform(x))[1]
    jittered = model.model.forward_with_features(model.augment(x, torch.Generator(model.device).manual_seed(0)))[1]
moved = (clean - jittered).pow(2).sum(1)
typical = torch.cdist(clean, clean).pow(2)
print(f"squared distance between a face's clean and augmented embedding: median {moved.median():.3f}; "
      f"between two different faces: median {typical[~torch.eye(len(clean), dtype=torch.bool)].median():.3f} [{ds.tag}]")

# %% [markdown]
# **3. Rare classes and a large k.** A majority of k neighbours needs many Training faces
# of the class near the query, so a class with few Training faces *can* lose its recall as
# k grows. Whether it does here is measured: recall per class for every k of the sweep
# (the `dnnrl` network, PublicTest), and the rarest Training class's recall at the
# smallest and the largest k.

# %%
y_pub = e["PublicTest"]["labels"].numpy()
recall = {}
for k in ks:
    p = knn_predict(e["Training"]["emb"], e["Training"]["labels"], e["PublicTest"]["emb"], k=k,
                    num_classes=len(ds.class_names)).numpy()
    recall[f"k = {k}"] = [float((p[y_pub == c] == c).mean()) if (y_pub == c).any() else np.nan for c in range(7)]
train_counts = np.bincount(e["Training"]["labels"].numpy(), minlength=7)
recall_table = pd.DataFrame(recall, index=list(ds.class_names))
recall_table.insert(0, "Training faces", train_counts)
display(labelled(recall_table))
rarest = int(np.argmin(train_counts))
r_small, r_large = recall_table.iloc[rarest][f"k = {ks[0]}"], recall_table.iloc[rarest][f"k = {ks[-1]}"]
display(Markdown(
    f"The rarest Training class here is **{ds.class_names[rarest]}** ({train_counts[rarest]} faces). Its PublicTest "
    f"recall at k = {ks[-1]} is {100 * r_large:.1f} %, "
    + difference_phrase(100 * r_large, 100 * r_small, whose=f"k = {ks[0]}'s")
    + ": " + ("in this run the rare class does lose recall as k grows." if r_large < r_small - 0.005 else
              "in this run a larger k did not cost the rare class its recall.")))

# %% [markdown]
# **4. Cosine on vectors that are not normalised, or Euclidean on ones that should be.**
# Section 1: off the sphere the two metrics pick different neighbours. If you take the
# embedding from *before* the normalisation layer, say which metric you use, and why.
#
# **5. Comparing k-NN and the softmax head on different splits or different networks.** The
# comparison in section 3 is fair because it is one network, one split, one k chosen on
# PublicTest. Comparing `dnnrl`'s k-NN with `dnnrl-dnn`'s head compares two trainings.
#
# **6. Exact distance ties.** Duplicated images (chapter 00 finds them in FER-2013) sit at
# distance 0 from each other; which one comes first is then arbitrary. The vote is unaffected
# unless the duplicates disagree on their label — which in FER-2013 they sometimes do.

# %% tags=["hide-input"]
print(f"chapter 05 ran in {time.perf_counter() - T0:.1f} s ({PROFILE} profile, {ds.tag})")
