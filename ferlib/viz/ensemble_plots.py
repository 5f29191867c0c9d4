"""Figures for chapter 06 (ensembles): the DE objective over the weight simplex, and error correlations.

* :func:`objective_curves` -- two members: the objective against the weight of the
  first, negative log-likelihood beside error (EmoNet §5's weights, and why the error
  is a poor objective for a search: it is flat in pieces).
* :func:`objective_triangles` -- three members: the objective over the simplex drawn as
  a triangle (corners = one member alone), one panel per objective, with weights marked.
* :func:`correlation_heatmap` -- the members' error-correlation matrix.

Matplotlib figures are built without pyplot; ``tag`` (a dataset's ``.tag``) goes into
the title, so a figure made from the synthetic faces says so.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.tri import Triangulation

from .style import DPI, FONT, TITLE, styled
from .style import title as _title

OBJECTIVE_LABELS = {"nll": "negative log-likelihood", "error": "error (1 - accuracy)"}
MARKERS = ("o", "s", "^", "D", "v", "P")



def _check_values(weights: np.ndarray, values: Mapping[str, np.ndarray], members: int) -> None:
    if weights.ndim != 2 or weights.shape[1] != members:
        raise ValueError(f"weights must be (P, {members}) points of the simplex, got shape {weights.shape}")
    for name, v in values.items():
        if np.shape(v) != (len(weights),):
            raise ValueError(f"values[{name!r}] has shape {np.shape(v)}, expected ({len(weights)},)")


@styled
def objective_curves(weights, values: Mapping[str, np.ndarray], member_names: Sequence[str], *,
                     marks: Mapping[str, Sequence[float]] | None = None, tag: str | None = None,
                     dpi: int = DPI) -> Figure:
    """Two members: one panel per objective, the value against the weight ``w_1`` of the first member.

    ``weights`` (P, 2) and ``values`` {objective: (P,)} as from
    :func:`ferlib.evaluate.ensemble.objective_on_simplex`; ``marks`` {label: weights (2,)}
    draws vertical lines (e.g. the weights DE found).
    """
    w = np.asarray(weights, dtype=float)
    _check_values(w, values, 2)
    order = np.argsort(w[:, 0])
    fig = Figure(figsize=(4.2 * len(values), 3.2), dpi=dpi)
    axes = fig.subplots(1, len(values), squeeze=False)[0]
    for ax, (objective, v) in zip(axes, values.items()):
        v = np.asarray(v, dtype=float)[order]
        if objective == "error":
            ax.step(w[order, 0], v, where="mid", color="C1")
        else:
            ax.plot(w[order, 0], v, color="C0")
        for i, (label, mw) in enumerate((marks or {}).items()):
            ax.axvline(float(mw[0]), color=f"C{i + 2}", ls="--", lw=1, label=label)
        ax.set_xlabel("w_1, the weight of member 1 (member 2: 1 - w_1)")
        ax.set_ylabel(OBJECTIVE_LABELS.get(objective, objective))
        ax.set_title(OBJECTIVE_LABELS.get(objective, objective), fontsize=TITLE)
        if marks:
            ax.legend(fontsize=FONT)
    fig.suptitle(_title(f"The DE objective for two members: 1 = {member_names[0]}, 2 = {member_names[1]}", tag),
                 fontsize=TITLE)
    fig.tight_layout()
    return fig


def _corners(w: np.ndarray) -> np.ndarray:
    """Barycentric (P, 3) -> 2-D points of an equilateral triangle (member 0 at the bottom left)."""
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    return w @ corners


def _step_levels(v: np.ndarray) -> np.ndarray:
    """Contour boundaries halfway between the distinct values of a piecewise-constant objective."""
    u = np.unique(v)
    pad = (u[-1] - u[0]) / (2 * max(len(u) - 1, 1)) if len(u) > 1 else max(abs(u[0]) * 1e-3, 1e-6)
    return np.concatenate([[u[0] - pad], (u[:-1] + u[1:]) / 2, [u[-1] + pad]])


@styled
def objective_triangles(weights, values: Mapping[str, np.ndarray], member_names: Sequence[str], *,
                        marks: Mapping[str, Sequence[float]] | None = None, tag: str | None = None,
                        dpi: int = DPI) -> Figure:
    """Three members: the objective over the weight simplex, one triangle per objective.

    A corner is one member alone, the centre the plain mean.  ``marks`` {label: weights
    (3,)} are drawn as markers (e.g. DE's weights for each objective and seed).
    """
    w = np.asarray(weights, dtype=float)
    _check_values(w, values, 3)
    xy = _corners(w)
    tri = Triangulation(xy[:, 0], xy[:, 1])
    fig = Figure(figsize=(4.6 * len(values), 4.6), dpi=dpi)
    axes = fig.subplots(1, len(values), squeeze=False)[0]
    corner_xy = _corners(np.eye(3))
    for ax, (objective, v) in zip(axes, values.items()):
        v = np.asarray(v, dtype=float)
        levels = _step_levels(v) if objective == "error" and len(np.unique(v)) <= 40 else 20
        cs = ax.tricontourf(tri, v, levels=levels, cmap="viridis")
        fig.colorbar(cs, ax=ax, shrink=0.8, label=OBJECTIVE_LABELS.get(objective, objective))
        for i, (label, mw) in enumerate((marks or {}).items()):
            p = _corners(np.asarray(mw, dtype=float)[None])[0]
            ax.plot(*p, MARKERS[i % len(MARKERS)], color="white", mec="black", ms=8, label=label)
        for (x, y), k, (dx, dy) in zip(corner_xy, range(3), [(-0.04, -0.07), (0.04, -0.07), (0, 0.04)]):
            ax.annotate(str(k + 1), (x, y), xytext=(x + dx, y + dy), ha="center", fontsize=TITLE, weight="bold")
        ax.set_title(OBJECTIVE_LABELS.get(objective, objective), fontsize=TITLE)
        ax.set_aspect("equal")
        ax.set_xlim(-0.15, 1.15)
        ax.set_ylim(-0.12, 1.0)
        ax.axis("off")
    if marks:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 3), fontsize=FONT, frameon=False)
    names = ", ".join(f"{k + 1} = {n}" for k, n in enumerate(member_names))
    fig.suptitle(_title(f"The DE objective over the weights of three members (a corner: one member alone)\n{names}",
                        tag), fontsize=FONT)
    fig.tight_layout(rect=(0, 0.12 if marks else 0, 1, 1))
    return fig


@styled
def correlation_heatmap(corr, member_names: Sequence[str], *, title: str = "Correlation of the members' errors",
                        tag: str | None = None, dpi: int = DPI) -> Figure:
    """The (M, M) error-correlation matrix (:func:`ferlib.evaluate.ensemble.error_correlation`), values printed."""
    c = np.asarray(corr, dtype=float)
    if c.ndim != 2 or c.shape[0] != c.shape[1] or c.shape[0] != len(member_names):
        raise ValueError(f"corr must be ({len(member_names)}, {len(member_names)}), got shape {c.shape}")
    size = 1.2 + 0.7 * len(member_names)
    fig = Figure(figsize=(size + 1.2, size), dpi=dpi)
    ax = fig.subplots()
    im = ax.imshow(c, vmin=-1, vmax=1, cmap="RdBu_r")
    for i in range(len(c)):
        for j in range(len(c)):
            dark = np.isfinite(c[i, j]) and abs(c[i, j]) > 0.6
            ax.text(j, i, "n/a" if np.isnan(c[i, j]) else f"{c[i, j]:.2f}", ha="center", va="center", fontsize=FONT,
                    color="white" if dark else "black")
    ax.set_xticks(range(len(c)), member_names, rotation=30, ha="right", fontsize=FONT)
    ax.set_yticks(range(len(c)), member_names, fontsize=FONT)
    fig.colorbar(im, ax=ax, shrink=0.8)
    ax.set_title(_title(title, tag), fontsize=TITLE)
    fig.tight_layout()
    return fig
