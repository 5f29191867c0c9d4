r"""Figures for chapter 05 (k-NN on embeddings, DNNRL Sec. 4).

* :func:`nearest_neighbours` -- indices and distances of the k nearest Training
  embeddings of each query (the ranking :mod:`ferlib.evaluate.knn` votes over).
* :func:`distance_vs_cosine_figure` -- on the unit sphere
  :math:`\|a - b\|^2 = 2 - 2\cos(a, b)`: squared Euclidean distance and cosine
  similarity rank neighbours identically; off the sphere they do not.
* :func:`k_sweep_figure` -- k-NN accuracy against k on the validation split
  (PublicTest), the k chosen there marked.
* :func:`neighbour_strips` -- a query face and its k nearest Training faces, each
  framed green (same class as the query) or red; what the embedding calls similar.
* :func:`embedding_scatter` -- a plotly 2-D or 3-D scatter of projected embeddings
  (PCA or t-SNE from scikit-learn), coloured by class.

Matplotlib figures are built without pyplot; pass ``tag`` (a dataset's ``.tag``) so a
figure made from the synthetic faces says so.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import DPI, FONT, TITLE, styled
from .style import title as _title

CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf")
_RIGHT, _WRONG = "#2ca02c", "#d62728"



def _numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def nearest_neighbours(train_embeddings, query_embeddings, k: int, *, metric: str = "euclidean",
                       chunk_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, distances)`` as numpy arrays, each ``(q, k)``, of the k nearest training rows of each
    query, nearest first: :func:`ferlib.evaluate.knn.nearest_neighbours` (the ranking k-NN votes over;
    squared Euclidean distance or ``1 - cos``), for the figures."""
    from ..evaluate.knn import nearest_neighbours as _ranked

    idx, dist = _ranked(_numpy(train_embeddings), _numpy(query_embeddings), k, metric=metric,
                        chunk_size=chunk_size, return_distances=True)
    return idx.cpu().numpy(), dist.cpu().numpy()


def pair_distances_and_cosines(embeddings, n_pairs: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Squared Euclidean distance and cosine similarity of ``n_pairs`` random pairs of rows."""
    e = _numpy(embeddings).astype(np.float64)
    if e.ndim != 2 or len(e) < 2:
        raise ValueError(f"embeddings must be (n >= 2, dim), got shape {e.shape}")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(e), n_pairs)
    j = (i + rng.integers(1, len(e), n_pairs)) % len(e)  # never a row with itself
    a, b = e[i], e[j]
    sq = ((a - b) ** 2).sum(1)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = (a * b).sum(1) / np.maximum(norms, 1e-12)
    return sq, cos


@styled
def distance_vs_cosine_figure(panels: Mapping[str, np.ndarray], *, n_pairs: int = 2000, dpi: int = DPI,
                              tag: str | None = None) -> Figure:
    r"""For each set of embeddings, squared distance against cosine similarity of random pairs,
    with the line :math:`2 - 2\cos` that unit vectors lie on."""
    if not panels:
        raise ValueError("distance_vs_cosine_figure: nothing to draw")
    fig = Figure(figsize=(3.8 * len(panels) + 0.3, 3.4), dpi=dpi, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, emb) in zip(axes, panels.items()):
        sq, cos = pair_distances_and_cosines(emb, n_pairs)
        ax.scatter(cos, sq, s=4, alpha=0.4, color="0.3", linewidths=0)
        c = np.linspace(-1, 1, 50)
        ax.plot(c, 2 - 2 * c, color="#d62728", lw=1, label=r"$2 - 2\cos$")
        ax.set_xlabel("cosine similarity", fontsize=FONT)
        ax.set_ylabel("squared Euclidean distance", fontsize=FONT)
        ax.set_title(name, fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.legend(fontsize=FONT)
    fig.suptitle(_title("distance and cosine of random pairs of embeddings", tag), fontsize=TITLE)
    return fig


@styled
def k_sweep_figure(sweeps: Mapping[str, Mapping[int, float]], *, chosen: Mapping[str, int] | None = None,
                   split: str = "PublicTest", reference: Mapping[str, float] | None = None, dpi: int = DPI,
                   tag: str | None = None, title: str = "") -> Figure:
    """k-NN accuracy against k (log axis) for each run; the chosen k marked with a dot.

    ``sweeps`` maps a run name to ``{k: accuracy on split}``; ``chosen`` a run name to its
    k; ``reference`` draws horizontal lines (e.g. the softmax head's accuracy).
    """
    if not sweeps:
        raise ValueError("k_sweep_figure: no sweeps")
    fig = Figure(figsize=(6.4, 3.6), dpi=dpi, layout="constrained")
    ax = fig.subplots()
    for k, (name, sweep) in enumerate(sweeps.items()):
        if not sweep:
            raise ValueError(f"k_sweep_figure: the sweep of {name!r} is empty")
        ks = sorted(int(v) for v in sweep)
        accs = [float(sweep[v]) for v in ks]
        color = CLASS_COLORS[k % len(CLASS_COLORS)]
        ax.plot(ks, accs, "-o", ms=3, lw=1.5, color=color, label=name)
        if chosen and name in chosen:
            kk = int(chosen[name])
            ax.plot([kk], [float(sweep[kk])], "o", ms=9, mfc="none", mec=color, mew=2)
            ax.annotate(f"k = {kk}", (kk, float(sweep[kk])), textcoords="offset points", xytext=(4, 6),
                        fontsize=FONT, color=color)
    for k, (name, value) in enumerate((reference or {}).items()):
        ax.axhline(float(value), color="0.4", lw=1, ls=("--", ":", "-.")[k % 3], label=name)
    ax.set_xscale("log")
    ax.margins(y=0.15)
    ax.set_xlabel("k (number of neighbours)", fontsize=FONT)
    ax.set_ylabel(f"accuracy on {split}", fontsize=FONT)
    ax.tick_params(labelsize=FONT)
    ax.legend(fontsize=FONT)
    fig.suptitle(_title(title or f"k-NN accuracy against k on {split} (circled: the k chosen there)", tag),
                 fontsize=TITLE)
    return fig


@styled
def neighbour_strips(query_pixels, query_labels, neighbour_pixels, neighbour_labels, class_names: Sequence[str], *,
                     predicted=None, distances=None, row_titles: Sequence[str] | None = None, cell: float = 1.2,
                     dpi: int = DPI, tag: str | None = None, title: str = "") -> Figure:
    """One row per query: the query face, then its k nearest Training faces.

    ``query_pixels`` (q, H, W); ``neighbour_pixels`` (q, k, H, W) and ``neighbour_labels``
    (q, k) in order of distance.  Each neighbour is framed green when its class is the
    query's, red otherwise; ``predicted`` (q,) is written beside the query, ``distances``
    (q, k) under each neighbour.
    """
    qp, ql = _numpy(query_pixels), _numpy(query_labels).astype(int)
    npx, nl = _numpy(neighbour_pixels), _numpy(neighbour_labels).astype(int)
    if qp.ndim != 3 or npx.ndim != 4 or nl.shape != npx.shape[:2] or len(qp) != len(npx) or len(ql) != len(qp):
        raise ValueError(f"neighbour_strips: expected query_pixels (q, H, W), query_labels (q,), neighbour_pixels "
                         f"(q, k, H, W) and neighbour_labels (q, k); got {qp.shape}, {ql.shape}, {npx.shape}, "
                         f"{nl.shape}")
    q, k = nl.shape
    if q == 0:
        raise ValueError("neighbour_strips: no queries")
    fig = Figure(figsize=(cell * (k + 1) + 1.6, cell * q * 1.25 + 0.6), dpi=dpi, layout="constrained")
    axes = np.atleast_2d(fig.subplots(q, k + 1, squeeze=False))
    for i in range(q):
        row = axes[i]
        row[0].imshow(qp[i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        label = f"query: {class_names[ql[i]]}"
        if predicted is not None:
            p = int(_numpy(predicted)[i])
            label += f"\nk-NN says {class_names[p]}"
        if row_titles is not None:
            label = f"{row_titles[i]}\n{label}"
        row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=FONT)
        for j in range(k):
            ax = row[j + 1]
            ax.imshow(npx[i, j], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            color = _RIGHT if nl[i, j] == ql[i] else _WRONG
            for side in ax.spines.values():
                side.set_visible(True)
                side.set_color(color)
                side.set_linewidth(2.5)
            text = class_names[nl[i, j]]
            if distances is not None:
                text += f"\n{float(_numpy(distances)[i, j]):.2f}"
            ax.set_xlabel(text, fontsize=FONT, labelpad=1)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
        for side in row[0].spines.values():
            side.set_linewidth(2.5)
            side.set_color("black")
    fig.suptitle(_title(title or "queries and their nearest Training faces (green: same class, red: another)", tag),
                 fontsize=TITLE)
    return fig


def embedding_scatter(points, labels, class_names: Sequence[str], *, title: str = "", tag: str | None = None,
                      hover: Sequence[str] | None = None, max_points: int = 1500, marker_size: float = 3.0,
                      seed: int = 0):
    """A plotly scatter of 2-D or 3-D projected embeddings, one trace per class.

    At most ``max_points`` points (a seeded random subset) so that the notebook stays
    small; ``hover`` adds a text per point.
    """
    import plotly.graph_objects as go

    pts, y = _numpy(points).astype(np.float64), _numpy(labels).astype(int)
    if pts.ndim != 2 or pts.shape[1] not in (2, 3) or len(pts) != len(y):
        raise ValueError(f"embedding_scatter: expected points (n, 2) or (n, 3) and labels (n,), "
                         f"got {pts.shape} and {y.shape}; project the embeddings first (PCA, t-SNE)")
    keep = np.arange(len(pts))
    if len(pts) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(pts), max_points, replace=False))
    pts, y = pts[keep], y[keep]
    texts = None if hover is None else np.asarray(hover, dtype=object)[keep]
    fig = go.Figure()
    three = pts.shape[1] == 3
    for j, name in enumerate(class_names):
        m = y == j
        if not m.any():
            continue
        common = dict(mode="markers", name=name, text=None if texts is None else list(texts[m]),
                      marker=dict(size=marker_size, color=CLASS_COLORS[j % len(CLASS_COLORS)], opacity=0.75))
        if three:
            fig.add_trace(go.Scatter3d(x=pts[m, 0], y=pts[m, 1], z=pts[m, 2], **common))
        else:
            fig.add_trace(go.Scatter(x=pts[m, 0], y=pts[m, 1], **common))
    full = title + (f" [{tag}]" if tag else "")
    fig.update_layout(height=480, margin=dict(l=0, r=0, t=50, b=0), title=dict(text=full, x=0.5),
                      legend=dict(itemsizing="constant"))
    return fig
