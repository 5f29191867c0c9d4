"""Graders that the exercises call, one module per lab; the shared machinery is in ``core``.

Each grader is declared with ``@grader(points=...)`` beside its definition; ``GRADERS`` maps
every grader's name to its points (what ``python -m ferlib.labs grade`` sums).

    from ferlib.checks import check_pixel_statistics      # lab 00
    from ferlib.checks import check_window_hog            # lab 01
    from ferlib.checks import check_dense_block           # lab 01
    "check_window_hog", "check_emonet_hog", "check_choose_C",
    # lab 02
    from ferlib.checks import check_center_update         # lab 03
    from ferlib.checks import check_batch_hard_triplets   # lab 04
    from ferlib.checks import check_majority_vote         # lab 05
    from ferlib.checks import check_fit_weights           # lab 06
    from ferlib.checks import check_freeze                # lab 07
    from ferlib.checks import check_stack_inputs          # lab 08
"""
from .core import GRADERS, CheckFailed, assert_close, completed, grader
from .center import check_center_loss_forward, check_center_loss_grad, check_center_update
from .data import check_majority_label, check_pixel_statistics, check_standardize
from .densenet import check_bottleneck, check_dense_block, check_densenet_bc, check_transition
from .hand_crafted import check_choose_C, check_emonet_hog, check_window_hog
from .ensemble import check_ensemble_nll, check_fit_weights, check_flip_tta, check_weighted_average
from .ferplus import check_light_net_parameters, check_stack_inputs, check_total_loss
from .knn import check_majority_vote, check_nearest_neighbours
from .transfer import check_ensemble_report, check_freeze, check_standardise_bovw
from .triplet import check_batch_hard_triplets, check_exponential_triplet_grad, check_exponential_triplet_loss

__all__ = [
    "CheckFailed", "assert_close", "completed", "grader", "GRADERS",
    # lab 00
    "check_pixel_statistics", "check_standardize", "check_majority_label",
    # lab 01
    "check_window_hog", "check_emonet_hog", "check_choose_C",
    # lab 02
    "check_bottleneck", "check_transition", "check_dense_block", "check_densenet_bc",
    # lab 03
    "check_center_loss_forward", "check_center_loss_grad", "check_center_update",
    # lab 04
    "check_exponential_triplet_loss", "check_exponential_triplet_grad", "check_batch_hard_triplets",
    # lab 05
    "check_nearest_neighbours", "check_majority_vote",
    # lab 06
    "check_weighted_average", "check_ensemble_nll", "check_fit_weights", "check_flip_tta",
    # lab 07
    "check_freeze", "check_standardise_bovw", "check_ensemble_report",
    # lab 08
    "check_stack_inputs", "check_light_net_parameters", "check_total_loss",
]
