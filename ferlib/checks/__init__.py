"""Graders that the exercises call, one module per lab; shared machinery in ``core``.

    from ferlib.checks import check_pixel_statistics      # lab 00
"""
from .core import CheckFailed, assert_close
from .data import check_majority_label, check_pixel_statistics, check_standardize

__all__ = ["CheckFailed", "assert_close", "check_pixel_statistics", "check_standardize", "check_majority_label"]
