"""Criteria by typed configuration: a recipe names its loss with a config object.

Each config is a frozen dataclass whose fields are the paper's symbols (``lambda_``,
``alpha``, ...); :data:`CRITERIA` maps the config's type to a builder.  Adding a
loss = one config class + one ``@register_criterion`` builder; the trainer never
changes (it only sees the :class:`~ferlib.losses.base.Criterion` interface).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

from ..losses.base import Criterion, CrossEntropy


@dataclass(frozen=True)
class CrossEntropyConfig:
    """Softmax cross-entropy, Eq. (1) of the DenseNet-CL paper."""

    name = "ce"

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class CenterLossConfig:
    """Softmax + center loss ``L = L_S + lambda L_C`` (Eq. 5, DenseNet-CL; Wen et al. 2016).

    lambda_ : weight of ``L_C``.  alpha : the centers' rate in the update rule (Eq. 6).
    center_term_lr : the constant lr at which ``lambda L_C`` trains the network
        (DenseNet-CL's "10^-3"; chapter 03 §"Two learning rates" gives the reading);
        None = the network's own lr (CL-ResNet50).
    """

    lambda_: float = 0.05
    alpha: float = 0.5
    center_term_lr: float | None = None
    reduction: str = "mean"
    name = "center"

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class ExponentialTripletConfig:
    """DNNRL's exponential triplet loss (Eq. 1 with the sign of Eq. 2-4), mined in-batch.

    alpha, gamma : DNNRL Sec. 4 (0.2 and 0).  mining : ``"all"``, ``"batch-hard"`` or
    ``"semi-hard"`` (window ``0 < d- - d+ < mining_margin``).  reduction : ``"sum"`` (the
    paper's L) or ``"mean"`` over the mined triplets.

    Defaults ``mining="semi-hard", reduction="mean"``, chosen by a small experiment (``bench/triplet_mining_defaults.py 100 blobs``: a
    16-D L2-normalised MLP embedding of 7 noisy two-blob classes, batch 128, SGD lr 0.01,
    momentum 0.9, 100 steps, mean k-NN accuracy of 2 seeds, 0.40 untrained): semi-hard
    + mean 0.63; all + mean 0.51; batch-hard 0.40 -- it never moves: with gamma = 0
    every batch-hard triplet is wrongly ordered and gets no gradient (active fraction 0);
    semi-hard + sum 0.74 on normalised embeddings, but "sum" multiplies the step by the
    number of mined triplets (about 1e3 semi-hard, 2.5e5 "all" per batch of 128) and on
    unnormalised embeddings it diverged (all + sum: embedding norm 2e9).
    """

    alpha: float = 0.2
    gamma: float = 0.0
    mining: str = "semi-hard"
    mining_margin: float = 0.2
    reduction: str = "mean"
    name = "exponential-triplet"

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


@dataclass(frozen=True)
class TripletConfig:
    """FaceNet's hinge triplet loss ``max(d+ - d- + margin, 0)`` (Schroff et al. (FaceNet)), mined in-batch."""

    margin: float = 0.2
    mining: str = "semi-hard"
    reduction: str = "mean"
    name = "triplet"

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


CRITERIA: dict[type, Callable[..., Criterion]] = {}


def register_criterion(config_type: type):
    def deco(builder):
        CRITERIA[config_type] = builder
        return builder
    return deco


@register_criterion(CrossEntropyConfig)
def _cross_entropy(config, num_classes: int, feature_dim: int) -> Criterion:
    return CrossEntropy()


@register_criterion(CenterLossConfig)
def _center(config, num_classes: int, feature_dim: int) -> Criterion:
    from ..losses.center import SoftmaxCenterLoss

    return SoftmaxCenterLoss(num_classes, feature_dim, lambda_=config.lambda_, alpha=config.alpha,
                             reduction=config.reduction, center_term_lr=config.center_term_lr)


@register_criterion(ExponentialTripletConfig)
def _exponential_triplet(config, num_classes: int, feature_dim: int) -> Criterion:
    from ..losses.triplet import TripletCriterion

    return TripletCriterion("exponential", alpha=config.alpha, gamma=config.gamma, mining=config.mining,
                            mining_margin=config.mining_margin, reduction=config.reduction)


@register_criterion(TripletConfig)
def _triplet(config, num_classes: int, feature_dim: int) -> Criterion:
    from ..losses.triplet import TripletCriterion

    return TripletCriterion("triplet", margin=config.margin, mining=config.mining, reduction=config.reduction)


def build_criterion(config, num_classes: int, feature_dim: int) -> Criterion:
    builder = CRITERIA.get(type(config))
    if builder is None:
        raise KeyError(f"no criterion registered for {type(config).__name__}; "
                       f"known: {', '.join(t.__name__ for t in CRITERIA)}")
    return builder(config, num_classes, feature_dim)
