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
from .triplet import (
    TripletCriterion,
    exponential_triplet_gradients,
    exponential_triplet_loss,
    exponential_triplet_loss_as_printed,
    mine_triplets,
    pairwise_squared_distances,
    relative_distance,
    triplet_loss,
)
