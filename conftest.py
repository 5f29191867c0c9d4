"""Root conftest: applies to every item under the checkout (tests/, and the notebooks, exercises and
solutions that ``./kit test`` collects through nbval).  Its one job: mark the nbval notebook items
``slow``, so that ``./kit test -m "not slow"`` is a quick local loop.  CI runs everything.

(tests/conftest.py marks the slow unit tests it names; it does not see a notebook item's path as its own.)
"""
from __future__ import annotations

import pytest


def _is_notebook_item(item) -> bool:
    # nbval's cells are IPyNbCell items of an IPyNbFile; the path check also covers nbval-lax and other plugins
    return "IPyNb" in type(item).__name__ or "IPyNb" in type(item.parent).__name__ or item.path.suffix == ".ipynb"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if _is_notebook_item(item):
            # each notebook starts a Jupyter kernel and runs its chapter: seconds to minutes per notebook
            item.add_marker(pytest.mark.slow)
