"""One look for every figure of the kit: resolution, font sizes, and the title that names the data.

Every figure function in :mod:`ferlib.viz` builds its figure at :data:`DPI` inside
:func:`styled` (a matplotlib ``rc_context`` with :data:`RC`), and sizes its text with
:data:`FONT` (labels, ticks, legends, panel titles) or :data:`TITLE` (the figure's title):
at 100 dots per inch a 10-point letter is about 14 pixels high, readable at JupyterLab's
default zoom.  Change them here, and every chapter's figures follow.
"""
from __future__ import annotations

import functools

import matplotlib

DPI = 100  # dots per inch of every figure (a 10-pt letter is ~14 px)
FONT = 10  # points: axis labels, tick labels, legends, panel titles, annotations
TITLE = 11  # points: a figure's title (suptitle)
RC = {"font.size": FONT, "axes.titlesize": FONT, "axes.labelsize": FONT, "xtick.labelsize": FONT,
      "ytick.labelsize": FONT, "legend.fontsize": FONT, "figure.titlesize": TITLE, "figure.dpi": DPI,
      "savefig.dpi": DPI}


def title(text: str, tag: str | None) -> str:
    """A figure's title with the data's tag (e.g. the synthetic-faces notice) on its own line."""
    return f"{text}\n[{tag}]" if tag and text else (f"[{tag}]" if tag else text)


def rc_context():
    """``with rc_context(): ...``: matplotlib's settings for the kit's figures (:data:`RC`)."""
    return matplotlib.rc_context(RC)


def styled(fn):
    """Run a figure function inside :func:`rc_context`, so its text gets the kit's sizes."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with rc_context():
            return fn(*args, **kwargs)
    return wrapper
