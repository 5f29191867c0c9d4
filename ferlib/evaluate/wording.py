"""Sentences that compare two numbers, with the sign said in words.

A chapter that writes "+6.6 points from the paper's 70.7" leaves the reader to guess the
direction (and got it wrong once: ours was 6.6 *below*).  Every computed comparison in the
chapters goes through :func:`difference_phrase`, which names the direction -- above, below,
or equal within a tolerance -- and the size, never a bare signed number.
"""
from __future__ import annotations

import math

__all__ = ["difference_phrase", "direction", "evidence_phrase"]


def direction(ours: float, theirs: float, *, tolerance: float = 0.05) -> str:
    """``"above"``, ``"below"`` or ``"equal"`` (``|ours - theirs| <= tolerance``) for ``ours`` against ``theirs``."""
    if any(isinstance(v, float) and math.isnan(v) for v in (ours, theirs)):
        raise ValueError("cannot compare with NaN")
    diff = ours - theirs
    if abs(diff) <= tolerance:
        return "equal"
    return "above" if diff > 0 else "below"


def difference_phrase(ours: float, theirs: float, *, unit: str = "points", whose: str = "the paper's",
                      suffix: str = " %", digits: int = 1, tolerance: float | None = None) -> str:
    """How ``ours`` compares with ``theirs``, in words: ``"6.6 points below the paper's 70.7 %"``.

    ``unit`` names the difference (``"points"`` for percentages, ``""`` for none); ``whose`` names
    the reference (``"the paper's"``, ``"the best member's"``); ``suffix`` follows the reference
    value (``" %"``, or ``""``).  Differences within ``tolerance`` (default: half the last printed
    digit, so a difference that would print as 0.0 is "equal") read ``"equal to the paper's 70.7 %"``.
    """
    if tolerance is None:
        tolerance = 0.5 * 10 ** (-digits)
    ref = f"{whose} {theirs:.{digits}f}{suffix}".strip()
    where = direction(ours, theirs, tolerance=tolerance)
    if where == "equal":
        return f"equal to {ref}" + (f" (within {tolerance:g} {unit})".rstrip() if unit else "")
    size = f"{abs(ours - theirs):.{digits}f}" + (f" {unit}" if unit else "")
    return f"{size} {where} {ref}"


def evidence_phrase(difference: float, standard_error: float, *, threshold: float = 2.0) -> str:
    """What a difference says given its standard error: within ``threshold`` standard errors of zero it is
    no evidence either way; beyond, a gain or a loss larger than that many standard errors."""
    if standard_error <= 0 or math.isnan(standard_error):
        raise ValueError("the standard error of a difference must be a positive number")
    if abs(difference) < threshold * standard_error:
        return f"within {threshold:g} standard errors of no change: no evidence either way"
    return f"a {'gain' if difference > 0 else 'loss'} larger than {threshold:g} standard errors"
