"""One error type for bad input, so every reader says the same four things.

A :class:`DataFormatError` names the file, the row (or line, or field) where the
problem is, what the problem is, and what to do about it.  The CLI prints it and
exits non-zero; notebooks show it as is.
"""
from __future__ import annotations

from pathlib import Path


class DataFormatError(ValueError):
    """Bad or missing input data.

    Attributes
    ----------
    path : the file or folder at fault.
    where : "line 17", "row 3 (line 5)", "column 'pixels'", ... or ``None``.
    problem : what is wrong, in one sentence.
    fix : what the user should do.
    """

    def __init__(self, path: str | Path | None, problem: str, fix: str, where: str | None = None):
        self.path = None if path is None else Path(path)
        self.where = where
        self.problem = problem
        self.fix = fix
        location = str(self.path) if self.path is not None else "<no file>"
        if where:
            location = f"{location}, {where}"
        super().__init__(f"{location}: {problem}\n  fix: {fix}")


class DataNotFoundError(FileNotFoundError):
    """The data the user asked for is not where they said (or nowhere at all)."""
