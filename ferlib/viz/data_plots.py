"""Figures for chapter 00 (FER-2013 up close): grids of faces, class counts, statistics.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so
nothing is left open in a global figure list and a notebook shows the figure once
(as the cell's value).  Pass ``tag`` (a dataset's ``.tag``) and it becomes part of
the title, so a figure made from the synthetic faces says so.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import DPI, FONT, TITLE, styled
from .style import title as _title




def _as_2d(image) -> np.ndarray:
    """A displayable 2-D array from (H, W), (1, H, W) or (C, H, W) (first channel), numpy or torch."""
    arr = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    while arr.ndim > 2:
        arr = arr[0]
    return arr


@styled
def image_grid(images: Sequence, ncols: int, *, titles: Sequence[str] | None = None,
               row_labels: Sequence[str] | None = None, title: str = "", tag: str | None = None,
               vmin: float | None = 0, vmax: float | None = 255,
               row_ranges: Sequence[tuple[float, float]] | None = None, cell: float = 1.3,
               dpi: int = DPI) -> Figure:
    """Images (each (H, W), sizes may differ) in rows of ``ncols``, grey, no axes.

    ``titles`` label each image, ``row_labels`` the first image of each row;
    ``vmin``/``vmax`` fix the grey scale (0..255 for raw pixels; ``None`` = per image);
    ``row_ranges`` gives each row its own ``(vmin, vmax)`` instead.
    """
    images = list(images)
    if not images:
        raise ValueError("image_grid: no images to show")
    nrows = -(-len(images) // ncols)
    fig = Figure(figsize=(cell * ncols + (0.9 if row_labels else 0.1), cell * nrows + (0.6 if title else 0.1)),
                 dpi=dpi, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).reshape(nrows, ncols)
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
        if k < len(images):
            lo, hi = row_ranges[k // ncols] if row_ranges is not None else (vmin, vmax)
            ax.imshow(_as_2d(images[k]), cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            if titles is not None and titles[k]:
                ax.set_title(titles[k], fontsize=FONT)
    if row_labels is not None:
        for r, label in enumerate(row_labels[:nrows]):
            axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=FONT)
    if title or tag:
        fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


@styled
def class_sample_grid(pixels: np.ndarray, labels: np.ndarray, class_names: Sequence[str], *,
                      per_class: int = 8, seed: int = 0, title: str = "", tag: str | None = None) -> Figure:
    """``per_class`` random images of every class, one class per row (seeded)."""
    rng = np.random.default_rng(seed)
    images, row_labels = [], []
    for c, name in enumerate(class_names):
        idx = np.flatnonzero(labels == c)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        row = [pixels[i] for i in pick] + [np.full(pixels.shape[1:], np.nan)] * (per_class - len(pick))
        images.extend(row)
        row_labels.append(f"{name} ({len(idx)})")
    return image_grid(images, per_class, row_labels=row_labels, title=title, tag=tag)


@styled
def class_distribution(counts: Mapping[str, Mapping[str, int]], *, title: str = "Images per class",
                       tag: str | None = None, dpi: int = DPI) -> Figure:
    """Grouped bars: for each split (outer key), the count of each class (inner key).

    Left: counts; right: the share of each class within its split, so splits of
    different sizes can be compared.
    """
    splits = list(counts)
    classes = list(next(iter(counts.values())))
    table = np.array([[counts[s][c] for c in classes] for s in splits], dtype=float)
    share = table / np.maximum(table.sum(1, keepdims=True), 1)
    fig = Figure(figsize=(10, 3.4), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    x = np.arange(len(classes))
    width = 0.8 / len(splits)
    for k, split in enumerate(splits):
        offset = (k - (len(splits) - 1) / 2) * width
        axes[0].bar(x + offset, table[k], width, label=split)
        axes[1].bar(x + offset, 100 * share[k], width, label=split)
    for ax, ylabel in zip(axes, ("images", "% of the split")):
        ax.set_xticks(x, classes, rotation=30)
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=FONT)
    fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


@styled
def mean_std_images(mean, std, *, title: str = "Per-pixel statistics over Training",
                    tag: str | None = None, dpi: int = DPI) -> Figure:
    """The mean image and the standard-deviation image side by side, with colour bars."""
    fig = Figure(figsize=(6.4, 3.0), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, img, name in zip(axes, (_as_2d(mean), _as_2d(std)), ("mean", "standard deviation")):
        im = ax.imshow(img, cmap="gray", interpolation="nearest")
        ax.set_title(name, fontsize=FONT)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


@styled
def confusion_heatmap(table, row_names: Sequence[str], col_names: Sequence[str], *,
                      row_label: str = "", col_label: str = "", normalize_rows: bool = True,
                      title: str = "", tag: str | None = None, dpi: int = DPI) -> Figure:
    """A count table as a heat map; with ``normalize_rows`` the colours and numbers are row %."""
    table = np.asarray(table, dtype=float)
    shown = 100 * table / np.maximum(table.sum(1, keepdims=True), 1) if normalize_rows else table
    fig = Figure(figsize=(0.7 * len(col_names) + 2.2, 0.5 * len(row_names) + 1.6), dpi=dpi,
                 layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(shown, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(col_names)), col_names, rotation=40, ha="right", fontsize=FONT)
    ax.set_yticks(range(len(row_names)), row_names, fontsize=FONT)
    ax.set_xlabel(col_label)
    ax.set_ylabel(row_label)
    hi = shown.max() if shown.size else 0
    for (i, j), v in np.ndenumerate(shown):
        ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=FONT,
                color="white" if v > 0.6 * hi else "black")
    fig.colorbar(im, ax=ax, shrink=0.8, label="% of row" if normalize_rows else "count")
    if title or tag:
        fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


@styled
def augmentation_gallery(face, augments: Mapping, *, draws: int = 6, seed: int = 0,
                         vmin: float | None = None, vmax: float | None = None, title: str = "",
                         tag: str | None = None, cell: float = 1.0) -> Figure:
    """One face through each augmentation: its deterministic ``eval_transform``, then ``draws`` random draws.

    ``face`` is a float tensor (1, 1, H, W), already normalised as training would;
    ``augments`` maps a name to a :class:`~ferlib.data.transforms.BatchAugment`.
    All draws of one augmentation are one batch call with a generator seeded by
    ``seed``, so the figure is reproducible.  Output sizes differ between presets;
    each row is shown at its own resolution, with one grey scale for the whole figure.
    """
    import torch

    images, titles, row_labels = [], [], []
    for name, aug in augments.items():
        gen = torch.Generator(device=face.device).manual_seed(seed)
        ref = aug.eval_transform(face)
        out = aug(face.expand(draws, *face.shape[1:]).contiguous(), gen)
        images.append(ref[0])
        titles.append(f"eval {ref.shape[-1]}px")
        images.extend(out)
        titles.extend([f"draw {k + 1}" for k in range(draws)])
        row_labels.append(name)
    if vmin is None or vmax is None:
        lo, hi = np.percentile(_as_2d(face), [1, 99])
        vmin = lo if vmin is None else vmin
        vmax = hi if vmax is None else vmax
    return image_grid(images, draws + 1, titles=titles, row_labels=row_labels, title=title, tag=tag,
                      vmin=vmin, vmax=vmax, cell=cell)


@styled
def face_and_probabilities(crop, probabilities: Sequence[float], class_names: Sequence[str], *,
                           reference=None, reference_title: str = "a FER-2013 face", title: str = "",
                           tag: str | None = None, dpi: int = DPI) -> Figure:
    """A detected face crop (and, with ``reference``, a training face beside it) and the model's
    probability for each class as horizontal bars, labelled in the kit's readable font."""
    probs = np.asarray(probabilities, dtype=float)
    if len(probs) != len(class_names):
        raise ValueError(f"{len(probs)} probabilities for {len(class_names)} classes")
    panels = 3 if reference is not None else 2
    fig = Figure(figsize=(2.6 * (panels - 1) + 4.4, 2.9), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, panels, width_ratios=[1] * (panels - 1) + [1.7])
    images = [(crop, "the crop the model saw")] + ([(reference, reference_title)] if reference is not None else [])
    for ax, (img, name) in zip(axes, images):
        ax.imshow(_as_2d(img), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(name, fontsize=FONT)
        ax.set_xticks([])
        ax.set_yticks([])
    bars = axes[-1]
    order = np.arange(len(probs))[::-1]
    bars.barh([class_names[i] for i in order], 100 * probs[order],
              color=["tab:orange" if i == int(probs.argmax()) else "tab:blue" for i in order])
    for y, i in enumerate(order):
        bars.text(100 * probs[i] + 1, y, f"{100 * probs[i]:.0f} %", va="center", fontsize=FONT)
    bars.set_xlim(0, 115)
    bars.set_xlabel("probability (%)")
    if title or tag:
        fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig
