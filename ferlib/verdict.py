"""The verdict of a check: one PASS/FAIL line format, and the exception a failed check raises.

A leaf: it imports nothing from ferlib, so both the lab graders (:mod:`ferlib.checks`)
and the gradient checks (:mod:`ferlib.numerics`) use it without importing each other::

    PASS center update (Eq. 4, 6): 5 batches agree ... (tolerance atol=1e-08, rtol=1e-06)
    FAIL center update (Eq. 4, 6): alpha=0.5, labels [...]: center 0 is ..., expected ...
      hint: the +1 in the denominator is missing: divide by 1 + n_j, not n_j

A failed check raises :class:`CheckFailed` (an ``AssertionError``): "Run All" and nbval
stop there, but Jupyter shows the FAIL line and hint only, not the call stack.

Machine-readable records, for ``python -m ferlib.labs grade``: when the environment
variable :data:`GRADE_LOG_ENV` names a file (the grading run sets it in each submission's
kernel; nothing else does), :func:`record` appends one JSON line per grader call to it::

    {"check": "check_majority_vote", "status": "FAIL", "points": 0, "max_points": 2,
     "message": "FAIL majority vote: ...\\n  hint: ..."}

The grading run reads that file after the kernel has exited.  Collecting records, not
parsing printed lines, keeps a grade independent of what else a cell prints.
"""
from __future__ import annotations

import json
import os

__all__ = ["CheckFailed", "pass_line", "fail_line", "record", "GRADE_LOG_ENV"]

GRADE_LOG_ENV = "FERLIB_GRADE_LOG"


class CheckFailed(AssertionError):
    """A check found a problem; the message is the FAIL line and its hint.

    It is still raised (so "Run All" and nbval stop at the failed check), but Jupyter
    shows only its message: IPython renders an exception through its
    ``_render_traceback_`` when it has one, and a student needs the hint, not the
    checker's call stack.
    """

    def _render_traceback_(self) -> list[str]:
        return ["\x1b[0;31m" + str(self) + "\x1b[0m"]


def pass_line(name: str, detail: str) -> str:
    """``"PASS name: detail"`` -- the detail states what was compared and the tolerance used."""
    return f"PASS {name}: {detail}"


def fail_line(name: str, problem: str, hint: str = "") -> str:
    """``"FAIL name: problem"``, and the hint on the next line when there is one."""
    return f"FAIL {name}: {problem}" + (f"\n  hint: {hint}" if hint else "")


def record(check: str, status: str, points: float, max_points: float, message: str = "") -> None:
    """Append one grader's verdict as a JSON line to ``$FERLIB_GRADE_LOG``; no-op when it is unset."""
    path = os.environ.get(GRADE_LOG_ENV)
    if not path:
        return
    line = json.dumps({"check": check, "status": status, "points": points, "max_points": max_points,
                       "message": message})
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
