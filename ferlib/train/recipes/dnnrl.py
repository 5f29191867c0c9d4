"""DNNRL (Table 2 of "Deep Neural Networks with Relativity Learning for Facial Expression Recognition"):
``dnnrl-dnn`` (DNN), ``dnnrl-t-dnn`` (T-DNN) and ``dnnrl`` (DNNRL), on the FER-2013 test split.

All three train the Table 1 network (:mod:`ferlib.models.dnnrl`) with the same input
chain and protocol; they differ in loss and readout (DNNRL §4):

* ``dnnrl-dnn`` -- "the proposed network described in Section 3.1 with softmax":
  softmax head, cross-entropy; accuracy of the head.  The k-NN readout of the same
  network's embedding is reported beside it (``results["knn"]``), so the softmax head
  and k-NN can be compared on one network.
* ``dnnrl-t-dnn`` -- "the loss function of DNNRL is replaced by the triplet-based loss":
  FaceNet's hinge triplet loss (Schroff et al. (FaceNet) Eq. 3), margin 0.2 and
  semi-hard in-batch mining as FaceNet; no head; k-NN readout.
* ``dnnrl`` -- the exponential triplet loss (DNNRL Eq. 1, with the sign of Eq. 2-4;
  :mod:`ferlib.losses.triplet`), alpha = 0.2, gamma = 0, semi-hard in-batch mining
  (the paper names no mining: with gamma = 0 only correctly ordered triplets have a
  gradient, largest just past the margin -- the semi-hard ones; batch-hard mining
  picks wrongly ordered triplets and never learns; see
  :class:`~ferlib.train.criteria.ExponentialTripletConfig` for the measurement), the
  mean over mined triplets; no head; k-NN readout.

Input (DNNRL §3.1): the ``dnnrl`` augmentation preset -- resize 96, random scale
±10 px, pad to 120, rotate ±15°, random crop 108 -- in one batched affine map, and its
deterministic evaluation transform (resize 96, pad 120, centre crop 108) for every
evaluation; per-pixel standardisation (the paper names none; the kit's default).

Protocol (DNNRL §4): lr 0.01, minimum 1e-4, ⌊N/128⌋ batches of 128 per epoch
(``drop_last``), "the training samples randomly selected" (``sampler="random"`` for
all three: the paper describes no class balancing, and random batches of 128 hold on
average 18 faces of a class, ~2 of the rarest, "disgust", so in-batch triplets exist),
and the validation-loss rule of :mod:`ferlib.train.protocols` (lr ×0.1 and reload of
the best-loss network when the PublicTest loss rises more than 10 % over its best;
stop after 20 epochs without a new best), capped at 300 epochs.  The epoch kept is
the one with the lowest validation loss (the network the protocol reloads); the k of
the k-NN readout is then chosen on PublicTest against the whole Training split
(:func:`ferlib.evaluate.knn.knn_evaluate`).  PrivateTest is reported, never used.

Not stated in the paper, ferlib's choices: SGD with momentum 0.9 (no Nesterov),
weight decay 1e-4 on every parameter (the optimiser and decay of ferlib's DenseNet-CL
recipes); the validation loss of the triplet recipes is the criterion's own loss on
random batches of 128 PublicTest embeddings (``TripletCriterion.validation_loss``), of
``dnnrl-dnn`` the cross-entropy of its head.  Under a wall-clock budget
(``--minutes``) the protocol is replaced by the kit's warm-up + cosine schedule
(:mod:`ferlib.train.build`).

Quick profile: 8 faces per class, batches of 16, 2 epochs -- a smoke test of the
pipeline (the 108×108 network costs about 0.4 G multiply-adds per face, about 5× a
42×42 DenseNet-BC).
"""
from __future__ import annotations

from dataclasses import replace

from ..criteria import CrossEntropyConfig, ExponentialTripletConfig, TripletConfig
from .base import RECIPES, Budget, Claim, Recipe, register, register_claims

PAPER = "dnnrl"

# Table 2 ("Test" row: the FER-2013 test split = PrivateTest), in %
TABLE_2 = {"dnnrl-dnn": 69.22, "dnnrl-t-dnn": 70.13, "dnnrl": 70.60}

_COMMON = dict(
    paper=PAPER, model="dnnrl-net", input_size=108, augment="dnnrl", normalization="pixel",
    optimizer="sgd", lr=0.01, momentum=0.9, nesterov=False, weight_decay=1e-4, batch_size=128, drop_last=True,
    sampler="random", schedule="constant", protocol="dnnrl-validation-loss", min_lr=1e-4, select_on="loss",
    quick=Budget(epochs=2, train_per_class=8, eval_per_class=4, batch_size=16), full=Budget(epochs=300),
)

register(Recipe(name="dnnrl-dnn", row="Table 2: DNN (softmax)", criterion=CrossEntropyConfig(),
                classifier="softmax", report_knn=True, paper_results={"PrivateTest": TABLE_2["dnnrl-dnn"]},
                **_COMMON))
register(Recipe(name="dnnrl-t-dnn", row="Table 2: T-DNN (triplet loss + k-NN)", model_kwargs={"classifier": False},
                criterion=TripletConfig(margin=0.2, mining="semi-hard"), classifier="knn",
                paper_results={"PrivateTest": TABLE_2["dnnrl-t-dnn"]}, **_COMMON))
register(Recipe(name="dnnrl", row="Table 2: DNNRL (exponential triplet loss + k-NN)",
                model_kwargs={"classifier": False}, criterion=ExponentialTripletConfig(alpha=0.2, gamma=0.0, mining="semi-hard"),
                classifier="knn", paper_results={"PrivateTest": TABLE_2["dnnrl"]}, **_COMMON))

# CPU variants (not paper rows): the three recipes at 64 px, for a wall-clock budget on a 2-core CPU (issue 25).
# At 108 px the network costs about 0.4 G multiply-adds per face and an epoch of Training takes the better part of
# an hour on one core; at 64 px every layer stays, the last average pool becomes adaptive (to the same 2x2 map, so
# the 1,152-input linear layer stays; :class:`ferlib.models.dnnrl.DNNRLNet`), the augmentation chain is the paper's
# scaled to 64 px (``dnnrl_augment(out_size=64)``) and the cost falls to about a third.  Protocol otherwise as above
# (under ``--minutes`` the kit's warm-up + cosine schedule replaces the validation-loss rule, as for every recipe).
CPU_INPUT_SIZE = 64
CPU_VARIANTS = {}
for _name in TABLE_2:
    _paper = RECIPES[_name]
    CPU_VARIANTS[f"{_name}-{CPU_INPUT_SIZE}px"] = register(replace(
        _paper, name=f"{_name}-{CPU_INPUT_SIZE}px", row=_paper.row.replace("Table 2: ", "(CPU variant) ") + f", {CPU_INPUT_SIZE} px",
        input_size=CPU_INPUT_SIZE, model_kwargs={**_paper.model_kwargs, "input_size": CPU_INPUT_SIZE},
        augment_kwargs={"out_size": CPU_INPUT_SIZE}, paper_results={},
        notes=f"not a paper row: Table 2's recipe at {CPU_INPUT_SIZE} px for a CPU budget"))

_CHANGES = (("T-DNN − DNN: FaceNet's triplet loss + k-NN vs softmax", "dnnrl-t-dnn", "dnnrl-dnn"),
            ("DNNRL − DNN: the exponential triplet loss + k-NN vs softmax", "dnnrl", "dnnrl-dnn"),
            ("DNNRL − T-DNN: the exponential vs the hinge triplet loss", "dnnrl", "dnnrl-t-dnn"))
CLAIMS = register_claims(PAPER, *(Claim(what, better, base, table="Table 2") for what, better, base in _CHANGES))
"""Table 2's ordering, DNNRL > T-DNN > DNN, as three differences."""
CPU_CLAIMS = register_claims(PAPER, *(
    Claim(what, f"{better}-{CPU_INPUT_SIZE}px", f"{base}-{CPU_INPUT_SIZE}px", paper_rows=(better, base),
          table=f"Table 2, CPU variants at {CPU_INPUT_SIZE} px") for what, better, base in _CHANGES))
"""The same differences on the CPU variants, beside the paper's."""
