"""The one error type for a user's mistake on the command line or in a call.

A :class:`UsageError` says what is wrong and what to do, in one or two lines.  The
CLI (:mod:`ferlib.cli`) prints it without a traceback and exits with status 2, as it
does for the data layer's :class:`~ferlib.data.errors.DataFormatError`; ``--debug``
shows the traceback.  Anything else that escapes is a bug and keeps its traceback.
"""
from __future__ import annotations


class UsageError(ValueError):
    """A mistake the user can fix: an unknown name, a device that is not there, a bad number."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem, self.fix = problem, fix
        super().__init__(problem + (f"\n  fix: {fix}" if fix else ""))
