r"""Figures, a widget and a table for chapter 04 (the exponential triplet loss of DNNRL).

Every curve is drawn by evaluating the loss functions of :mod:`ferlib.losses.triplet`
themselves -- never a re-typed formula -- on triplets built to have a prescribed
relative distance ``r = d^- - d^+`` (:func:`loss_vs_relative_distance`); the
gradient ``dL_i/dr`` comes from autograd through that code.

* :func:`printed_vs_corrected_figure` -- DNNRL Eq. 1 as printed and with the sign made
  consistent with Eq. 2-4: the loss and its gradient against ``r``.
* :func:`fig3_figure` -- DNNRL Fig. 3 redrawn for several alpha and several gamma.
* :class:`ExponentialTripletExplorer` -- sliders over alpha and gamma that redraw the loss
  and its gradient at once, beside FaceNet's hinge (Schroff et al. (FaceNet) Eq. 3).
* :func:`mining_summary` / :func:`relative_distance_histograms` -- what each mining
  strategy of :func:`~ferlib.losses.triplet.mine_triplets` hands the loss.
* :func:`active_fraction_figure` -- the share of triplets that carry a gradient, step by step.

Matplotlib figures are built without pyplot; pass ``tag`` (a dataset's ``.tag``) to put
it in the title, so a figure made from the synthetic faces says so.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from .style import DPI, FONT, TITLE, styled
from .style import title as _title

#: Relative distances on the unit sphere: both squared distances lie in [0, 4], so r in [-4, 4].
R_UNIT_SPHERE = (-4.0, 4.0)
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")



def _r_grid(r) -> np.ndarray:
    if r is None:
        return np.linspace(*R_UNIT_SPHERE, 801)
    r = np.asarray(r, dtype=np.float64)
    if r.ndim != 1 or r.size < 2:
        raise ValueError(f"r must be a 1-D grid of relative distances with at least 2 points, got shape {r.shape}")
    return r


def triplets_with_relative_distance(r) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Anchor, positive, negative (float64, 2-D) whose relative distance is exactly ``r``.

    ``f(p) = 0``, ``f(p^+) = (\sqrt{d^+}, 0)``, ``f(p^-) = (0, \sqrt{d^-})`` with
    ``d^± = 1 + |r|/2 ∓ r/2`` (i.e. ``1 + max(∓r, 0)``), so ``d^- - d^+ = r``.  The
    embeddings are differentiable functions of ``r`` when ``r`` requires grad, and
    ``dr/dr = 1`` everywhere, ``r = 0`` included (the ``|r|`` terms cancel).
    """
    r = torch.as_tensor(r, dtype=torch.float64)
    d_pos = 1.0 + 0.5 * r.abs() - 0.5 * r
    d_neg = 1.0 + 0.5 * r.abs() + 0.5 * r
    zero = torch.zeros_like(r)
    anchor = torch.stack([zero, zero], 1)
    positive = torch.stack([d_pos.sqrt(), zero], 1)
    negative = torch.stack([zero, d_neg.sqrt()], 1)
    return anchor, positive, negative


def loss_vs_relative_distance(loss_fn: Callable, r=None, **params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(r, L_i(r), dL_i/dr)`` for a per-triplet loss of :mod:`ferlib.losses.triplet`.

    ``loss_fn(anchor, positive, negative, reduction="none", **params)`` is evaluated on
    :func:`triplets_with_relative_distance` and differentiated by autograd, so the
    curves are the library's code, not a copy of the formula.  ``r`` defaults to
    801 points on [-4, 4] (the range on the unit sphere).
    """
    grid = _r_grid(r)
    rt = torch.tensor(grid, dtype=torch.float64, requires_grad=True)
    values = loss_fn(*triplets_with_relative_distance(rt), reduction="none", **params)
    if values.shape != rt.shape:
        raise ValueError(f"{getattr(loss_fn, '__name__', loss_fn)} must return one loss per triplet with "
                         f"reduction='none', got shape {tuple(values.shape)}")
    (grad,) = torch.autograd.grad(values.sum(), rt)
    return grid, values.detach().numpy(), grad.numpy()


def _curves(alpha: float, gamma: float, r=None) -> dict:
    from ..losses.triplet import exponential_triplet_loss, exponential_triplet_loss_as_printed

    return {"corrected": loss_vs_relative_distance(exponential_triplet_loss, r, alpha=alpha, gamma=gamma),
            "printed": loss_vs_relative_distance(exponential_triplet_loss_as_printed, r, alpha=alpha, gamma=gamma)}


def _decorate(ax, ylabel: str) -> None:
    ax.axvline(0.0, color="0.6", lw=0.8, zorder=0)
    ax.axhline(0.0, color="0.6", lw=0.8, zorder=0)
    ax.set_xlabel(r"relative distance $r = d^- - d^+$", fontsize=FONT)
    ax.set_ylabel(ylabel, fontsize=FONT)
    ax.tick_params(labelsize=FONT)


@styled
def printed_vs_corrected_figure(alpha: float = 0.2, gamma: float = 0.0, r=None, *, dpi: int = DPI,
                                tag: str | None = None) -> Figure:
    r"""DNNRL Eq. 1 as printed, :math:`e^{-\alpha\max\{d^+-d^--\gamma,0\}}`, beside the corrected
    :math:`e^{-\alpha\max\{d^--d^+-\gamma,0\}}`: loss (left) and ``dL_i/dr`` (right) against ``r``.

    The region where the corrected loss has a gradient (``r > gamma``) is shaded.
    """
    curves = _curves(alpha, gamma, r)
    fig = Figure(figsize=(9.5, 3.6), dpi=dpi, layout="constrained")
    ax_l, ax_g = fig.subplots(1, 2)
    styles = {"printed": dict(color="#d62728", ls="--", label="Eq. 1 as printed"),
              "corrected": dict(color="#1f77b4", ls="-", label="Eq. 1 corrected")}
    for name in ("printed", "corrected"):
        x, loss, grad = curves[name]
        ax_l.plot(x, loss, lw=2, **styles[name])
        ax_g.plot(x, grad, lw=2, **styles[name])
    x = curves["corrected"][0]
    for ax in (ax_l, ax_g):
        ax.axvspan(gamma, x[-1], color="#1f77b4", alpha=0.08, lw=0)
    _decorate(ax_l, r"$L_i$")
    _decorate(ax_g, r"$\partial L_i / \partial r$")
    ax_l.set_title("loss (shaded: the corrected loss has a gradient)", fontsize=FONT)
    ax_g.set_title("gradient with respect to r (autograd through ferlib)", fontsize=FONT)
    ax_l.legend(fontsize=FONT)
    fig.suptitle(_title(f"DNNRL Eq. 1 as printed vs corrected, α = {alpha:g}, γ = {gamma:g}", tag), fontsize=TITLE)
    return fig


@styled
def fig3_figure(alphas: Sequence[float] = (0.1, 0.2, 0.5, 1.0), gammas: Sequence[float] = (0.0, 0.5, 1.0), *,
                alpha_for_gammas: float = 0.2, gamma_for_alphas: float = 0.0, r=None, dpi: int = DPI) -> Figure:
    """DNNRL Fig. 3 redrawn (the corrected loss): loss (top) and ``|dL_i/dr|`` (bottom) against ``r``,
    for several alpha at ``gamma_for_alphas`` (left) and several gamma at ``alpha_for_gammas`` (right)."""
    from ..losses.triplet import exponential_triplet_loss

    if not alphas or not gammas:
        raise ValueError("fig3_figure needs at least one alpha and one gamma")
    fig = Figure(figsize=(9.5, 6.0), dpi=dpi, layout="constrained")
    axes = fig.subplots(2, 2, sharex=True)
    series = [(0, [(a, gamma_for_alphas, f"α = {a:g}") for a in alphas]),
              (1, [(alpha_for_gammas, g, f"γ = {g:g}") for g in gammas])]
    for col, runs in series:
        for k, (a, g, label) in enumerate(runs):
            x, loss, grad = loss_vs_relative_distance(exponential_triplet_loss, r, alpha=a, gamma=g)
            axes[0, col].plot(x, loss, color=_COLORS[k % len(_COLORS)], lw=1.8, label=label)
            axes[1, col].plot(x, np.abs(grad), color=_COLORS[k % len(_COLORS)], lw=1.8, label=label)
        axes[0, col].legend(fontsize=FONT)
    _decorate(axes[0, 0], r"$L_i$")
    _decorate(axes[0, 1], r"$L_i$")
    _decorate(axes[1, 0], r"$|\partial L_i / \partial r|$")
    _decorate(axes[1, 1], r"$|\partial L_i / \partial r|$")
    axes[0, 0].set_title(f"several α (γ = {gamma_for_alphas:g})", fontsize=FONT)
    axes[0, 1].set_title(f"several γ (α = {alpha_for_gammas:g})", fontsize=FONT)
    fig.suptitle("DNNRL Fig. 3 redrawn: the exponential triplet loss and the size of its gradient", fontsize=TITLE)
    return fig


class ExponentialTripletExplorer:
    r"""Sliders over alpha and gamma that redraw the exponential triplet loss *and* its gradient.

    One figure, two panels (``L_i`` and ``dL_i/dr`` against ``r``), with FaceNet's hinge
    ``max(margin - r, 0)`` for comparison and, optionally, Eq. 1 as printed.  The title
    gives the weight ratio between the hardest and the easiest active triplet on the
    unit sphere, ``e^{alpha (4 - gamma)}``.  Built with ``ipywidgets.interactive``:
    display the explorer (or ``.widget``); :attr:`figure` is the figure last drawn.
    Without a kernel (nbval, a static page) the widget shows its initial state.
    """

    def __init__(self, alpha: float = 0.2, gamma: float = 0.0, *, margin: float = 0.2, show_printed: bool = False,
                 r=None, dpi: int = DPI):
        import ipywidgets as W

        self.r, self.margin, self.dpi = _r_grid(r), float(margin), dpi
        self.figure: Figure | None = None
        self.draws = 0
        self.alpha_slider = W.FloatSlider(value=alpha, min=0.05, max=3.0, step=0.05, description="α",
                                          continuous_update=False, readout_format=".2f")
        self.gamma_slider = W.FloatSlider(value=gamma, min=0.0, max=2.0, step=0.05, description="γ",
                                          continuous_update=False, readout_format=".2f")
        self.printed_box = W.Checkbox(value=show_printed, description="also Eq. 1 as printed")
        self.widget = W.interactive(self.update, alpha=self.alpha_slider, gamma=self.gamma_slider,
                                    show_printed=self.printed_box)

    @styled
    def draw(self, alpha: float, gamma: float, show_printed: bool = False) -> Figure:
        """The figure for ``(alpha, gamma)`` (no display)."""
        from ..losses.triplet import triplet_loss

        curves = _curves(alpha, gamma, self.r)
        _, hinge, hinge_grad = loss_vs_relative_distance(triplet_loss, self.r, margin=self.margin)
        fig = Figure(figsize=(9.5, 3.6), dpi=self.dpi, layout="constrained")
        ax_l, ax_g = fig.subplots(1, 2)
        x, loss, grad = curves["corrected"]
        ax_l.plot(x, loss, lw=2.2, color="#1f77b4", label="exponential (DNNRL, corrected)")
        ax_g.plot(x, grad, lw=2.2, color="#1f77b4", label="exponential (DNNRL, corrected)")
        ax_l.plot(x, hinge, lw=1.2, color="0.35", ls=":", label=f"FaceNet hinge, margin {self.margin:g}")
        ax_g.plot(x, hinge_grad, lw=1.2, color="0.35", ls=":", label=f"FaceNet hinge, margin {self.margin:g}")
        if show_printed:
            _, loss_p, grad_p = curves["printed"]
            ax_l.plot(x, loss_p, lw=1.5, color="#d62728", ls="--", label="Eq. 1 as printed")
            ax_g.plot(x, grad_p, lw=1.5, color="#d62728", ls="--", label="Eq. 1 as printed")
        for ax in (ax_l, ax_g):
            ax.axvspan(gamma, x[-1], color="#1f77b4", alpha=0.08, lw=0)
            ax.axvline(gamma, color="#1f77b4", lw=0.8, ls="--")
        _decorate(ax_l, r"$L_i$")
        _decorate(ax_g, r"$\partial L_i / \partial r$")
        ax_l.set_ylim(-0.05, max(1.1, float(np.max(hinge[np.isfinite(hinge)])) * 0.5 + 0.6))
        ax_l.legend(fontsize=FONT, loc="upper right")
        ax_l.set_title("loss per triplet", fontsize=FONT)
        ax_g.set_title("its gradient (shaded: active, r > γ)", fontsize=FONT)
        ratio = float(np.exp(alpha * max(R_UNIT_SPHERE[1] - gamma, 0.0)))
        fig.suptitle(f"α = {alpha:g}, γ = {gamma:g}: on the unit sphere the hardest active triplet gets "
                     f"{ratio:.3g}× the gradient weight of the easiest", fontsize=TITLE)
        return fig

    def update(self, alpha: float, gamma: float, show_printed: bool = False) -> Figure:
        """Redraw for ``(alpha, gamma)``; what the sliders call."""
        from IPython.display import display

        self.figure = self.draw(alpha, gamma, show_printed)
        self.draws += 1
        display(self.figure)
        return self.figure

    def set(self, alpha: float | None = None, gamma: float | None = None, show_printed: bool | None = None) -> None:
        """Move the sliders from code (as a user would); the widget redraws."""
        if alpha is not None:
            self.alpha_slider.value = float(alpha)
        if gamma is not None:
            self.gamma_slider.value = float(gamma)
        if show_printed is not None:
            self.printed_box.value = bool(show_printed)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


def _as_batch(embeddings, labels) -> tuple[torch.Tensor, torch.Tensor]:
    emb = embeddings if torch.is_tensor(embeddings) else torch.as_tensor(np.asarray(embeddings))
    y = labels if torch.is_tensor(labels) else torch.as_tensor(np.asarray(labels))
    return emb.detach().float().cpu(), y.long().cpu()


def mined_relative_distances(embeddings, labels, strategies: Sequence[str] = ("all", "batch-hard", "semi-hard"), *,
                             margin: float = 0.2) -> dict[str, np.ndarray]:
    """``{strategy: r of every mined triplet}`` for one batch (:func:`~ferlib.losses.triplet.mine_triplets`).

    ``r = D[a, n] - D[a, p]`` is read from the batch's squared-distance matrix, so that
    the ~3e5 triplets of a batch of 128 never become ``(3e5, dim)`` tensors.
    """
    from ..losses.triplet import mine_triplets, pairwise_squared_distances

    emb, y = _as_batch(embeddings, labels)
    d = pairwise_squared_distances(emb.double())
    out = {}
    for s in strategies:
        a, p, n = mine_triplets(emb, y, s, margin=margin)
        out[s] = (d[a, n] - d[a, p]).numpy()
    return out


def mining_summary(embeddings, labels, strategies: Sequence[str] = ("all", "batch-hard", "semi-hard"), *,
                   alpha: float = 0.2, gamma: float = 0.0, margin: float = 0.2):
    """One row per mining strategy on one batch: how many triplets, how many carry a gradient.

    Columns: ``triplets``; ``active (r > γ)`` -- the share the exponential loss learns
    from; ``wrongly ordered (r < 0)``; ``hinge active (r < margin)`` -- the share FaceNet's
    loss learns from; ``mean r``; the mean exponential loss (``alpha``, ``gamma``) and the
    mean FaceNet loss (``margin``, also the semi-hard window) over the mined triplets,
    each evaluated by the library's loss function on triplets with the same ``r``
    (:func:`triplets_with_relative_distance`).  A pandas DataFrame indexed by strategy.
    """
    import pandas as pd

    from ..losses.triplet import exponential_triplet_loss, triplet_loss

    rows = []
    nan = float("nan")
    for s, r in mined_relative_distances(embeddings, labels, strategies, margin=margin).items():
        row = {"strategy": s, "triplets": len(r), "active (r > γ)": nan, "wrongly ordered (r < 0)": nan,
               "hinge active (r < margin)": nan, "mean r": nan, "exponential loss (mean)": nan,
               "FaceNet loss (mean)": nan}
        if len(r):
            trip = triplets_with_relative_distance(r)
            row.update({"active (r > γ)": float((r > gamma).mean()), "wrongly ordered (r < 0)": float((r < 0).mean()),
                        "hinge active (r < margin)": float((r < margin).mean()), "mean r": float(r.mean()),
                        "exponential loss (mean)": float(exponential_triplet_loss(*trip, alpha=alpha, gamma=gamma,
                                                                                  reduction="mean")),
                        "FaceNet loss (mean)": float(triplet_loss(*trip, margin=margin, reduction="mean"))})
        rows.append(row)
    return pd.DataFrame(rows).set_index("strategy")


@styled
def relative_distance_histograms(r_by_strategy: Mapping[str, np.ndarray], *, gamma: float = 0.0,
                                 margin: float | None = 0.2, bins: int = 40, dpi: int = DPI,
                                 tag: str | None = None, title: str = "") -> Figure:
    """Histogram of the mined triplets' ``r`` for each strategy; the active side ``r > gamma`` shaded."""
    if not r_by_strategy:
        raise ValueError("relative_distance_histograms: no strategies")
    names = list(r_by_strategy)
    allr = np.concatenate([np.asarray(v, dtype=np.float64) for v in r_by_strategy.values()] + [np.zeros(1)])
    lo, hi = float(allr.min()), float(allr.max())
    edges = np.linspace(lo - 1e-9, hi + 1e-9, bins + 1)
    fig = Figure(figsize=(3.2 * len(names) + 0.4, 3.0), dpi=dpi, layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names), sharex=True))
    for ax, name in zip(axes, names):
        r = np.asarray(r_by_strategy[name], dtype=np.float64)
        ax.axvspan(gamma, edges[-1], color="#1f77b4", alpha=0.1, lw=0)
        if len(r):
            ax.hist(r, bins=edges, color="0.35", weights=np.full(len(r), 1.0 / len(r)))
        ax.axvline(gamma, color="#1f77b4", lw=1, ls="--", label=f"γ = {gamma:g}")
        if margin is not None:
            ax.axvline(margin, color="#d62728", lw=1, ls=":", label=f"margin {margin:g}")
        frac = float((r > gamma).mean()) if len(r) else float("nan")
        ax.set_title(f"{name}: {len(r)} triplets, {frac:.0%} active", fontsize=FONT)
        ax.set_xlabel(r"$r = d^- - d^+$", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    axes[0].set_ylabel("share of mined triplets", fontsize=FONT)
    axes[0].legend(fontsize=FONT)
    fig.suptitle(_title(title or "relative distances of the mined triplets (shaded: exponential loss active)", tag),
                 fontsize=TITLE)
    return fig


@styled
def active_fraction_figure(histories: Mapping[str, Mapping[str, Sequence[float]]], *,
                           keys: Sequence[str] | None = None, dpi: int = DPI, tag: str | None = None,
                           title: str = "") -> Figure:
    """Logged quantities of short training runs against the step, one panel per quantity.

    ``histories`` maps a run name to ``{"step": [...], "active": [...], other: [...]}``:
    ``"active"`` is the share of mined triplets with a gradient (``r > gamma``).  ``keys``
    chooses the panels (default: every key of the first run except ``"step"``); a key
    containing "share", "active" or "correctly" gets a 0..1 axis.
    """
    if not histories:
        raise ValueError("active_fraction_figure: no runs")
    first = next(iter(histories.values()))
    keys = [k for k in first if k != "step"] if keys is None else list(keys)
    if not keys:
        raise ValueError("active_fraction_figure: nothing to plot besides 'step'")
    ncols = min(len(keys), 2)
    nrows = -(-len(keys) // ncols)
    fig = Figure(figsize=(4.8 * ncols + 0.3, 3.0 * nrows + 0.5), dpi=dpi, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for j, (name, h) in enumerate(histories.items()):
        for key in ("step", *keys):
            if key not in h:
                raise ValueError(f"active_fraction_figure: run {name!r} has no {key!r} history")
        for ax, key in zip(axes, keys):
            if len(h[key]) != len(h["step"]):
                raise ValueError(f"active_fraction_figure: run {name!r} logs {len(h[key])} values of {key!r} "
                                 f"for {len(h['step'])} steps")
            ax.plot(h["step"], h[key], color=_COLORS[j % len(_COLORS)], lw=1.6, label=name)
    for ax, key in zip(axes, keys):
        if key == "active":
            ax.set_ylim(-0.02, 1.02)
        label = "share of mined triplets with a gradient" if key == "active" else key
        ax.set_title(label, fontsize=FONT)
        ax.set_xlabel("step", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=FONT)
    fig.suptitle(_title(title or "which triplets carry a gradient during training", tag), fontsize=TITLE)
    return fig
