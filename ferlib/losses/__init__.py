"""Losses: softmax cross-entropy, center loss, triplet losses -- all trainer criteria."""

from .base import Criterion, CrossEntropy
from .center import (
    CenterLoss,
    SoftmaxCenterLoss,
    center_loss,
    center_update,
    rule_alpha_from_sgd,
    separate_lr_grad_scale,
    sgd_lr_from_rule_alpha,
)
