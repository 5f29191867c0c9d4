"""What every grader shares: one PASS/FAIL line format, hints, and :class:`CheckFailed`.

Each ``check_*`` grader runs the student's function on small inputs, compares it with
ferlib's reference implementation, prints one line per check, and raises
:class:`CheckFailed` (an ``AssertionError``) with a hint on the first failure::

    PASS center update (Eq. 4, 6): 5 batches agree ... (tolerance atol=1e-08, rtol=1e-06)
    FAIL center update (Eq. 4, 6): alpha=0.5, labels [...]: center 0 is ..., expected ...
      hint: the +1 in the denominator is missing: divide by 1 + n_j, not n_j

:func:`ferlib.numerics.check_gradient` prints the same lines.  A stub that still
raises ``NotImplementedError`` fails with "not implemented yet" (:func:`call_student`).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["CheckFailed", "pass_line", "fail_line", "passed", "fail", "not_implemented", "call_student", "assert_close"]


class CheckFailed(AssertionError):
    """A grader found a problem; the message says what and gives a hint.

    It is still raised (so "Run All" and nbval stop at the failed check), but Jupyter
    shows only its message: IPython renders an exception through its
    ``_render_traceback_`` when it has one, and a student needs the hint, not the
    grader's call stack.
    """

    def _render_traceback_(self) -> list[str]:
        return ["\x1b[0;31m" + str(self) + "\x1b[0m"]


def pass_line(name: str, detail: str) -> str:
    """``"PASS name: detail"`` -- the detail states what was compared and the tolerance used."""
    return f"PASS {name}: {detail}"


def fail_line(name: str, problem: str, hint: str = "") -> str:
    """``"FAIL name: problem"``, and the hint on the next line when there is one."""
    return f"FAIL {name}: {problem}" + (f"\n  hint: {hint}" if hint else "")


def passed(name: str, detail: str) -> None:
    """Print the PASS line of a check."""
    print(pass_line(name, detail))


def fail(name: str, problem: str, hint: str) -> None:
    """Raise :class:`CheckFailed` with the FAIL line of a check and its hint."""
    raise CheckFailed(fail_line(name, problem, hint))


def not_implemented(what: str) -> None:
    """Raise the failure of a stub: ``what`` still raises ``NotImplementedError``."""
    raise CheckFailed(fail_line(what, "not implemented yet",
                                "replace `raise NotImplementedError()` with your code")) from None


def call_student(fn: Callable, *args, **kwargs):
    """``fn(*args, **kwargs)``; a stub still raising ``NotImplementedError`` becomes a clear failure."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        not_implemented(getattr(fn, "__name__", "your function"))


def assert_close(name: str, got, want, *, atol: float = 1e-6, rtol: float = 1e-5, hint: str = "") -> None:
    """Shape and value check; prints the PASS line with the largest difference and the tolerance."""
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        fail(name, f"shape {got.shape}, expected {want.shape}", hint or "check which axis you reduce over")
    err = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not np.allclose(got, want, atol=atol, rtol=rtol):
        fail(name, f"max abs difference {err:.3g} (tolerance atol={atol:g}, rtol={rtol:g})",
             hint or "compare with the equation above")
    passed(name, f"max abs difference {err:.2g} (tolerance atol={atol:g}, rtol={rtol:g})")
