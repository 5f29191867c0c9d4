"""Figures and widgets for chapter 03 (center loss).

* :func:`feature_figure` -- Wen et al.'s picture: 2-D deep features coloured by class
  with the class centers, beside the two loss terms during training.
* :func:`grid_figure` -- the same for every (lambda, alpha) of a
  :class:`~ferlib.train.center_loss_grid.CenterGrid`, as small multiples.
* :class:`CenterGridExplorer` -- sliders over lambda and alpha that redraw at once
  by picking a precomputed run (ipywidgets ``SelectionSlider`` + ``interactive``).
* :func:`scatter3d` -- a plotly 3-D scatter of 3-D deep features with their centers.
* :func:`embedding_panels` -- t-SNE / PCA maps side by side (DenseNet-CL Fig. 6,
  CL-ResNet50 Fig. 1).
* :func:`separation_table` -- the numbers (paper-vs-ours tables: :func:`ferlib.train.results.paper_vs_ours`).

Matplotlib figures are built without pyplot (nothing left in a global figure list);
pass ``tag`` (a dataset's ``.tag``) and it goes into the title, so a figure made from
the synthetic faces says so.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import DPI, FONT, TITLE, styled
from .style import title as _title

#: One colour per class (matplotlib's tab10), the same in every figure of the chapter.
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                "#7f7f7f", "#bcbd22", "#17becf")



def _color(j: int) -> str:
    return CLASS_COLORS[j % len(CLASS_COLORS)]


def _subsample(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    if max_points is None or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def scatter_features(ax, features, labels, class_names: Sequence[str], centers=None, *,
                     s: float = 5, max_points: int | None = None, legend: bool = False) -> None:
    """2-D features on ``ax``, one colour per class; centers as black-edged crosses."""
    f = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    if f.ndim != 2 or f.shape[1] != 2:
        raise ValueError(f"scatter_features draws 2-D features, got shape {f.shape}")
    keep = _subsample(len(f), max_points)
    f, y = f[keep], y[keep]
    for j, name in enumerate(class_names):
        m = y == j
        if m.any():
            ax.scatter(f[m, 0], f[m, 1], s=s, color=_color(j), alpha=0.6, linewidths=0, label=name)
    if centers is not None:
        c = np.asarray(centers, dtype=np.float64)
        for j in range(min(len(c), len(class_names))):
            ax.scatter(c[j, 0], c[j, 1], s=90, marker="X", color=_color(j), edgecolors="black", linewidths=1.2,
                       zorder=5)
    ax.tick_params(labelsize=FONT)
    if legend:
        ax.legend(fontsize=FONT, markerscale=2.5, loc="best", framealpha=0.7)


def _stats_line(stats: Mapping) -> str:
    return (f"spread {stats['intra_class_spread']:.3g}, distance {stats['inter_class_distance']:.3g}, "
            f"ratio {stats['ratio']:.3f}")


@styled
def feature_figure(run, class_names: Sequence[str], *, split: str = "train", tag: str | None = None,
                   held_out: str = "PublicTest", dpi: int = DPI) -> Figure:
    """One run: its 2-D features and centers (left), ``L_S`` and ``L_C`` during training (right)."""
    f, y = run.features(split)
    stats = run.train_stats if split == "train" else run.test_stats
    acc = run.train_accuracy if split == "train" else run.test_accuracy
    where = "Training" if split == "train" else f"held out ({held_out})"
    fig = Figure(figsize=(9.5, 4.2), dpi=dpi, layout="constrained")
    ax, ax2 = fig.subplots(1, 2, width_ratios=[1.25, 1])
    scatter_features(ax, f, y, class_names, run.centers, legend=True)
    ax.set_title(f"{where} features, accuracy {acc:.2f}\n{_stats_line(stats)}", fontsize=FONT)
    ax.set_xlabel("feature 1", fontsize=FONT)
    ax.set_ylabel("feature 2", fontsize=FONT)
    h = run.history
    ax2.plot(h["step"], h["ce"], label="$L_S$ (softmax cross-entropy)")
    ax2.plot(h["step"], h["center"], label="$L_C$ (center loss, mean over the batch)")
    if run.lambda_ > 0:
        ax2.plot(h["step"], run.lambda_ * np.asarray(h["center"]), "--", label=r"$\lambda L_C$")
    ax2.set_yscale("log")
    ax2.set_xlabel("step", fontsize=FONT)
    ax2.set_title(f"losses on the training batches (center lag {run.center_lag:.3g})", fontsize=FONT)
    ax2.legend(fontsize=FONT)
    ax2.tick_params(labelsize=FONT)
    fig.suptitle(_title(f"λ = {run.lambda_:g}, α = {run.alpha:g}  ({run.steps} steps)", tag), fontsize=TITLE)
    return fig


@styled
def grid_figure(grid, *, split: str = "train", lambdas: Sequence[float] | None = None,
                alphas: Sequence[float] | None = None, max_points: int | None = 500, dpi: int = DPI,
                cell: float = 2.3) -> Figure:
    """Small multiples of a grid: rows are lambdas, columns alphas (all of the grid's, or
    the subsets given); each panel says its ratio."""
    lambdas = grid.lambdas if lambdas is None else tuple(lambdas)
    alphas = grid.alphas if alphas is None else tuple(alphas)
    nr, nc = len(lambdas), len(alphas)
    fig = Figure(figsize=(cell * nc + 0.6, cell * nr + 0.8), dpi=dpi, layout="constrained")
    axes = np.atleast_2d(fig.subplots(nr, nc, squeeze=False))
    for r, lam in enumerate(lambdas):
        for c, a in enumerate(alphas):
            run = grid.run(lam, a)
            f, y = run.features(split)
            stats = run.train_stats if split == "train" else run.test_stats
            ax = axes[r, c]
            scatter_features(ax, f, y, grid.class_names, run.centers, s=3, max_points=max_points)
            ax.set_title(f"λ={lam:g} α={a:g}: ratio {stats['ratio']:.2f}", fontsize=FONT)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=len(names), fontsize=FONT, markerscale=3,
               frameon=False)
    where = "Training" if split == "train" else f"held-out ({grid.held_out})"
    fig.suptitle(_title(f"2-D deep features ({where}) and centers for every (λ, α)", grid.tag), fontsize=TITLE)
    return fig


class CenterGridExplorer:
    """Sliders over the lambdas and alphas of a :class:`~ferlib.train.center_loss_grid.CenterGrid`.

    Moving a slider calls :meth:`update`, which picks the precomputed run and redraws
    :func:`feature_figure` -- no training, so the redraw is immediate.  Display the
    explorer (or ``.widget``) in a notebook; :attr:`figure` is the figure last drawn,
    :attr:`run` its run.  Without a kernel (nbval, a static page) the widget shows its
    initial state.
    """

    def __init__(self, grid, *, lambda_: float | None = None, alpha: float | None = None, split: str = "train",
                 dpi: int = DPI):
        import ipywidgets as W

        self.grid, self.dpi = grid, dpi
        self.figure: Figure | None = None
        self.run = None
        self.draws = 0
        lam0 = grid.lambdas[min(1, len(grid.lambdas) - 1)] if lambda_ is None else float(lambda_)
        a0 = grid.alphas[len(grid.alphas) // 2] if alpha is None else float(alpha)
        self.lambda_slider = W.SelectionSlider(options=[(f"{v:g}", v) for v in grid.lambdas], value=lam0,
                                               description="λ", continuous_update=True)
        self.alpha_slider = W.SelectionSlider(options=[(f"{v:g}", v) for v in grid.alphas], value=a0,
                                              description="α", continuous_update=True)
        self.split_buttons = W.ToggleButtons(options=[("Training", "train"), (f"held out ({grid.held_out})", "test")],
                                             value=split, description="features")
        self.widget = W.interactive(self.update, lambda_=self.lambda_slider, alpha=self.alpha_slider,
                                    split=self.split_buttons)

    @styled
    def draw(self, lambda_: float, alpha: float, split: str = "train") -> Figure:
        """The figure of one precomputed run (no display)."""
        run = self.grid.run(lambda_, alpha)
        return feature_figure(run, self.grid.class_names, split=split, tag=self.grid.tag,
                              held_out=self.grid.held_out, dpi=self.dpi)

    def update(self, lambda_: float, alpha: float, split: str = "train") -> Figure:
        """Redraw for ``(lambda_, alpha, split)``; what the sliders call."""
        from IPython.display import display

        self.run = self.grid.run(lambda_, alpha)
        self.figure = self.draw(lambda_, alpha, split)
        self.draws += 1
        display(self.figure)
        return self.figure

    def set(self, lambda_: float | None = None, alpha: float | None = None, split: str | None = None) -> None:
        """Move the sliders from code (as a user would); the widget redraws."""
        if lambda_ is not None:
            self.lambda_slider.value = float(lambda_)
        if alpha is not None:
            self.alpha_slider.value = float(alpha)
        if split is not None:
            self.split_buttons.value = split

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


@styled
def scatter3d(runs: Mapping[str, object], class_names: Sequence[str], *, split: str = "train",
              max_points: int = 900, tag: str | None = None):
    """A plotly figure with one 3-D scene per run: features by class, centers as diamonds.

    ``runs`` maps a panel title to a :class:`~ferlib.train.center_loss_grid.CenterRun` with
    ``feature_dim == 3``.  At most ``max_points`` feature points in all (split evenly
    between the panels), so the notebook stays small.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if not runs:
        raise ValueError("scatter3d: no runs")
    titles = list(runs)
    fig = make_subplots(rows=1, cols=len(titles), specs=[[{"type": "scene"}] * len(titles)],
                        subplot_titles=titles, horizontal_spacing=0.02)
    per_panel = max(1, max_points // len(titles))
    for col, title in enumerate(titles, start=1):
        run = runs[title]
        f, y = run.features(split)
        if f.shape[1] != 3:
            raise ValueError(f"scatter3d: run {title!r} has {f.shape[1]}-D features, expected 3")
        keep = _subsample(len(f), per_panel)
        f, y = f[keep], y[keep]
        for j, name in enumerate(class_names):
            m = y == j
            fig.add_trace(go.Scatter3d(x=f[m, 0], y=f[m, 1], z=f[m, 2], mode="markers", name=name,
                                       legendgroup=name, showlegend=col == 1,
                                       marker=dict(size=2.5, color=_color(j), opacity=0.7)), row=1, col=col)
        c = run.centers
        fig.add_trace(go.Scatter3d(x=c[:, 0], y=c[:, 1], z=c[:, 2], mode="markers", name="centers",
                                   legendgroup="centers", showlegend=col == 1,
                                   marker=dict(size=6, symbol="diamond", color=[_color(j) for j in range(len(c))],
                                               line=dict(color="black", width=2))), row=1, col=col)
    fig.update_layout(height=430, margin=dict(l=0, r=0, t=60, b=0),
                      title=dict(text=f"3-D deep features and centers" + (f" [{tag}]" if tag else ""), x=0.5))
    return fig


@styled
def embedding_panels(panels: Mapping[str, tuple], class_names: Sequence[str], *, ncols: int = 2,
                     title: str = "", tag: str | None = None, dpi: int = DPI, cell: float = 3.6) -> Figure:
    """2-D maps (t-SNE, PCA, ...) side by side: ``panels`` maps a title to ``(points (n, 2), labels)``."""
    if not panels:
        raise ValueError("embedding_panels: nothing to draw")
    names = list(panels)
    nrows = -(-len(names) // ncols)
    fig = Figure(figsize=(cell * ncols + 0.4, cell * nrows + 0.6), dpi=dpi, layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    for k, ax in enumerate(axes.flat):
        if k >= len(names):
            ax.set_visible(False)
            continue
        pts, y = panels[names[k]]
        scatter_features(ax, pts, y, class_names, s=6, legend=k == 0)
        ax.set_title(names[k], fontsize=FONT)
        ax.set_xticks([])
        ax.set_yticks([])
    if title or tag:
        fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


def separation_table(features: Mapping[str, tuple]):
    """Intra-class spread, inter-class distance and their ratio for each ``name -> (features, labels)``."""
    import pandas as pd

    from ..evaluate.separation import separation_stats

    rows = []
    for name, (f, y) in features.items():
        s = separation_stats(f, y)
        rows.append({"features": name, "dim": int(np.asarray(f).shape[1]),
                     "intra-class spread": s["intra_class_spread"],
                     "inter-class distance": s["inter_class_distance"], "ratio": s["ratio"]})
    return pd.DataFrame(rows).set_index("features")


