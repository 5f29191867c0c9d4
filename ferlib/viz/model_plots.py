"""Figures for chapter 02 (DenseNet from blocks): model size against growth rate, training curves.

Like :mod:`ferlib.viz.data_plots`, every function returns a :class:`matplotlib.figure.Figure`
built without pyplot (a notebook shows it once, as the cell's value), and a ``tag`` (a
dataset's ``.tag``) becomes part of the title so a figure made on synthetic faces says so.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from .style import DPI, FONT, TITLE, styled
from .style import title as _title


__all__ = ["complexity_vs_growth", "training_history"]


def _minor_label(value: float, _pos=None) -> str:
    """Label the 2× and 5× minor ticks of a log axis (plain numbers), leave the others blank."""
    if value <= 0:
        return ""
    lead = value / 10 ** math.floor(math.log10(value))
    return f"{value:g}" if round(lead) in (2, 5) and abs(lead - round(lead)) < 1e-6 else ""


@styled
def complexity_vs_growth(rows: Sequence[Mapping], *, highlight: Sequence[tuple[str, int]] = (),
                         title: str = "DenseNet size against growth rate k (L = 12, 3 blocks, 42×42 input)",
                         dpi: int = DPI) -> Figure:
    """Parameters and FLOPs against the growth rate, one line per family.

    ``rows``: dicts with keys ``family`` (e.g. "DenseNet-BC"), ``k``, ``params`` and
    ``flops`` (per image, 2 × multiply-adds). ``highlight``: ``(family, k)`` points to
    ring (DenseNet-CL's four networks). Both y axes are logarithmic: the counts grow roughly
    like k², which shows as parallel straight-ish lines.
    """
    rows = list(rows)
    if not rows:
        raise ValueError("complexity_vs_growth: no rows to plot")
    for key in ("family", "k", "params", "flops"):
        if key not in rows[0]:
            raise KeyError(f"complexity_vs_growth: rows need a {key!r} key")
    families = list(dict.fromkeys(r["family"] for r in rows))
    fig = Figure(figsize=(9.5, 3.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, key, scale, label in ((axes[0], "params", 1e6, "parameters (millions)"),
                                  (axes[1], "flops", 1e9, "GFLOPs per 42×42 image")):
        for fam in families:
            pts = sorted((r["k"], r[key] / scale) for r in rows if r["family"] == fam)
            line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, label=fam)
            for f, kk in highlight:
                if f == fam:
                    ys = [p[1] for p in pts if p[0] == kk]
                    if ys:
                        ax.plot([kk], ys, marker="o", ms=11, mfc="none", mec=line.get_color(), mew=1.6)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(_minor_label))
        ax.tick_params(axis="y", which="minor", labelsize=FONT)
        ax.set_xlabel("growth rate k")
        ax.set_ylabel(label)
        ax.set_xticks(sorted({r["k"] for r in rows}))
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=FONT, title="rings: DenseNet-CL's networks" if highlight else None, title_fontsize=FONT)
    fig.suptitle(title, fontsize=TITLE)
    return fig


@styled
def training_history(history: Sequence[Mapping], *, selected_epoch: int | None = None, title: str = "Training",
                     tag: str | None = None, dpi: int = DPI) -> Figure:
    """Training loss and PublicTest accuracy per epoch, from a results file's ``history``.

    ``history``: the trainer's per-epoch dicts (keys ``epoch``, ``train_loss``,
    ``val_accuracy``; ``lr`` optional, drawn as steps where it changes).
    ``selected_epoch``: the epoch chosen on PublicTest, marked on both panels.
    """
    history = list(history)
    if not history:
        raise ValueError("training_history: empty history")
    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(9.5, 3.4), dpi=dpi, layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    ax_loss.plot(epochs, [h["train_loss"] for h in history], marker="o", ms=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss (cross-entropy)")
    ax_acc.plot(epochs, [100 * h["val_accuracy"] for h in history], marker="o", ms=3, color="tab:green")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("PublicTest accuracy (%)")
    lrs = [h.get("lr") for h in history]
    changes = [i for i in range(1, len(history))
               if lrs[i] is not None and lrs[i - 1] is not None and lrs[i] != lrs[i - 1]]
    if len(changes) <= 6:  # a step schedule: mark each cut
        for i in changes:
            for ax in (ax_loss, ax_acc):
                ax.axvline(epochs[i], color="grey", lw=0.8, ls=":")
            ax_loss.annotate(f"lr {lrs[i]:.0e}", (epochs[i], 1), xycoords=("data", "axes fraction"),
                             fontsize=FONT, ha="left", va="top", color="grey")
    else:  # a smooth schedule (warm-up, cosine): the learning rate itself, on a second axis
        ax_lr = ax_loss.twinx()
        ax_lr.plot(epochs, lrs, color="grey", lw=1, ls="--")
        ax_lr.set_ylabel("learning rate (dashed)", color="grey")
        ax_lr.tick_params(axis="y", colors="grey")
    if selected_epoch is not None:
        for ax in (ax_loss, ax_acc):
            ax.axvline(selected_epoch, color="tab:red", lw=1, alpha=0.6)
        sel = [h for h in history if h["epoch"] == selected_epoch]
        if sel:
            ax_acc.annotate(f"selected on PublicTest: epoch {selected_epoch} "
                            f"({100 * sel[0]['val_accuracy']:.1f} %)", (selected_epoch, 0.06),
                            xycoords=("data", "axes fraction"), fontsize=FONT, xytext=(-4, 0),
                            textcoords="offset points", color="tab:red",
                            ha="right" if selected_epoch > (epochs[0] + epochs[-1]) / 2 else "left")
    for ax in (ax_loss, ax_acc):
        if len(epochs) <= 12:
            ax.set_xticks(epochs)
        ax.grid(True, alpha=0.3)
    fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig
