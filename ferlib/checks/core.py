"""What every grader shares: one PASS/FAIL line format, hints, :class:`CheckFailed`, points.

Each ``check_*`` grader runs the student's function on small inputs, compares it with
ferlib's reference implementation, prints one line per check, and raises
:class:`CheckFailed` (an ``AssertionError``) with a hint on the first failure::

    PASS center update (Eq. 4, 6): 5 batches agree ... (tolerance atol=1e-08, rtol=1e-06)
    FAIL center update (Eq. 4, 6): alpha=0.5, labels [...]: center 0 is ..., expected ...
      hint: the +1 in the denominator is missing: divide by 1 + n_j, not n_j

:func:`ferlib.numerics.check_gradient` prints the same lines.  A stub that still
raises ``NotImplementedError`` fails with "not implemented yet" (:func:`call_student`), and so
does a cell of the lab that uses the student's functions (:func:`completed`).

The line format and :class:`CheckFailed` live in :mod:`ferlib.verdict` (a leaf that
:mod:`ferlib.numerics` uses too); each grader is declared with :func:`grader`, which holds
its points and leaves a record for ``python -m ferlib.labs grade``.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable

import numpy as np

from ..verdict import CheckFailed, fail_line, pass_line, record

__all__ = ["CheckFailed", "pass_line", "fail_line", "passed", "fail", "not_implemented", "call_student",
           "assert_close", "grader", "GRADERS", "completed"]

GRADERS: dict[str, float] = {}
"""Every grader (``check_*`` function) defined with :func:`grader` and the points it is worth."""


def grader(points: float = 1) -> Callable[[Callable], Callable]:
    """Declare a ``check_*`` function a grader worth ``points`` (its points live beside it).

    The wrapped grader behaves as before (PASS lines printed, :class:`CheckFailed` raised on
    the first failure) and also leaves one machine-readable record per call through
    :func:`ferlib.verdict.record` (a no-op outside ``python -m ferlib.labs grade``): PASS with
    full points, or FAIL with 0 points and the FAIL line and hint.  An error raised by the
    student's code (a ``TypeError`` inside their function, say) is recorded as a FAIL and
    re-raised unchanged, so the student still sees where their code broke.
    """
    def wrap(fn: Callable) -> Callable:
        name = fn.__name__

        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                out = fn(*args, **kwargs)
            except CheckFailed as e:
                record(name, "FAIL", 0, points, str(e))
                raise
            except Exception as e:
                record(name, "FAIL", 0, points, fail_line(name, f"your code raised {type(e).__name__}: {e}",
                                                          "run the cell and read the traceback"))
                raise
            record(name, "PASS", points, points, "")
            return out

        run.points = points
        GRADERS[name] = points
        return run

    return wrap


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


@contextlib.contextmanager
def completed(what: str):
    """``with completed("Exercises 1-2"):`` -- a cell that uses the student's functions.

    While they are still stubs the cell fails as a grader does: one FAIL line with a hint
    (no traceback), raised as :class:`CheckFailed` so "Run All" stops there.
    """
    try:
        yield
    except NotImplementedError:
        raise CheckFailed(fail_line(what, "not implemented yet",
                                    f"complete {what} first: replace `raise NotImplementedError()` "
                                    "with your code")) from None


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
