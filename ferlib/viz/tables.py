"""Wide tables made readable at a normal JupyterLab width.

A paper-vs-ours table has one ``paper X`` and one ``ours X`` column per number the paper
reports (DenseNet-CL Table II: twelve), and runs off the right edge.  :func:`paper_vs_ours_long`
turns it into one row per number -- recipe, run, metric, paper, ours, and how they compare --
and :func:`wrapped` shows any table with its long text wrapped instead of stretched.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["paper_vs_ours_long", "wrapped"]


def paper_vs_ours_long(table: pd.DataFrame, *, metrics=None, keep=("recipe", "run")) -> pd.DataFrame:
    """A wide paper-vs-ours table (columns ``paper KEY`` / ``ours KEY``) in long form.

    One row per recipe, run and metric: ``paper`` and ``ours`` side by side, and ``ours - paper``
    (in points) where both are numbers.  ``metrics``: keep only these keys (e.g.
    ``["PrivateTest", "ensemble_PrivateTest"]``); ``keep``: the columns naming a row (the ``row``
    column, the paper's row name, is kept when present).  ``status`` (the results file, or the
    command that produces a missing row) stays with each run.
    """
    keys = [c[len("paper "):] for c in table.columns if c.startswith("paper ")]
    if metrics is not None:
        keys = [k for k in keys if k in metrics]
    ids = [c for c in (*keep, "row") if c in table.columns]
    rows = []
    for _, r in table.iterrows():
        for key in keys:
            paper, ours = r.get(f"paper {key}"), r.get(f"ours {key}")
            if (paper is None or pd.isna(paper)) and (ours is None or pd.isna(ours)):
                continue
            both = all(isinstance(v, (int, float)) and not pd.isna(v) for v in (paper, ours))
            rows.append({**{c: r[c] for c in ids}, "metric": key, "paper": paper, "ours": ours,
                         "ours - paper": round(ours - paper, 1) if both else "",
                         **({"status": r["status"]} if "status" in table.columns else {})})
    return pd.DataFrame(rows)


def wrapped(table: pd.DataFrame, *, width: str = "16em", precision: int = 1):
    """``table`` as a pandas Styler whose text wraps at ``width`` per cell, without the index."""
    return (table.style.hide(axis="index").format(precision=precision, na_rep="")
            .set_properties(**{"white-space": "normal", "max-width": width, "text-align": "left"})
            .set_table_styles([{"selector": "th", "props": [("white-space", "normal"), ("max-width", width)]}]))
