"""Graders shared machinery: pass/fail lines with tolerances, hints, and CheckFailed.

Each ``check_*`` grader runs the student's function on small inputs, compares it
with ferlib's reference implementation, prints one line per check with ``PASS`` and
the tolerance used, and raises :class:`CheckFailed` (an ``AssertionError``) with a
hint on the first failure.  A stub that still raises ``NotImplementedError`` fails
with "not implemented yet".
"""
from __future__ import annotations

from typing import Callable

import numpy as np


class CheckFailed(AssertionError):
    """A grader found a problem; the message says what and gives a hint."""


def _call(fn: Callable, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailed(f"{getattr(fn, '__name__', 'your function')} is not implemented yet: "
                          "replace `raise NotImplementedError()` with your code") from None


def _passed(name: str, detail: str) -> None:
    print(f"PASS  {name}: {detail}")


def _fail(name: str, problem: str, hint: str) -> None:
    raise CheckFailed(f"FAIL  {name}: {problem}\n      hint: {hint}")


def assert_close(name: str, got, want, *, atol: float = 1e-6, rtol: float = 1e-5, hint: str = "") -> None:
    """Shape and value check with a printed tolerance."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        _fail(name, f"shape {got.shape}, expected {want.shape}", hint or "check which axis you reduce over")
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, atol=atol, rtol=rtol):
        _fail(name, f"max abs difference {err:.3g} (tolerance atol={atol:g}, rtol={rtol:g})", hint or "compare with the equation above")
    _passed(name, f"max abs difference {err:.2g} (tolerance {atol:g})")
