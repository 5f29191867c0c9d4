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


def build_criterion(config, num_classes: int, feature_dim: int) -> Criterion:
    builder = CRITERIA.get(type(config))
    if builder is None:
        raise KeyError(f"no criterion registered for {type(config).__name__}; "
                       f"known: {', '.join(t.__name__ for t in CRITERIA)}")
    return builder(config, num_classes, feature_dim)
