"""Figures and the widget of chapter 01 (hand-crafted features): HOG pictures, landmarks on faces,
Sobel / Laplacian images, and a control that redraws HOG for other cell sizes and orientations.

Every figure is built without pyplot (see :mod:`.data_plots`); ``tag`` names the data in the title.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from .style import DPI, FONT, TITLE, styled
from .style import title as _title

JAW, BROWS, NOSE, EYES, MOUTH = slice(0, 17), slice(17, 27), slice(27, 36), slice(36, 48), slice(48, 68)
LANDMARK_GROUPS = {"jaw": JAW, "brows": BROWS, "nose": NOSE, "eyes": EYES, "mouth": MOUTH}
GROUP_COLOURS = {"jaw": "#1f77b4", "brows": "#ff7f0e", "nose": "#2ca02c", "eyes": "#d62728", "mouth": "#9467bd"}


def _bare(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)


@styled
def hog_pictures(faces, labels, class_names: Sequence[str], *, orientations: int = 8, cell: int = 8,
                 block: int = 2, title: str = "", tag: str | None = None, dpi: int = DPI) -> Figure:
    """One face per class (the faces given, in order) above its HOG picture (``skimage.feature.hog``,
    ``visualize=True``): what the histogram of each cell says is the dominant edge direction."""
    from ..features import hog_with_picture

    faces = np.asarray(faces)
    fig = Figure(figsize=(1.35 * len(faces) + 0.4, 3.2 + (0.4 if title or tag else 0)), dpi=dpi, layout="constrained")
    axes = fig.subplots(2, len(faces), squeeze=False)
    for j, face in enumerate(faces):
        values, picture = hog_with_picture(face, orientations=orientations, pixels_per_cell=(cell, cell),
                                           cells_per_block=(block, block))
        axes[0, j].imshow(face, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[1, j].imshow(picture, cmap="gray", interpolation="nearest")
        axes[0, j].set_title(class_names[int(labels[j])], fontsize=FONT)
        for ax in axes[:, j]:
            _bare(ax)
    axes[0, 0].set_ylabel("face", fontsize=FONT)
    axes[1, 0].set_ylabel(f"HOG ({len(values)})", fontsize=FONT)
    if title or tag:
        fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


@styled
def landmark_grid(faces, points, titles: Sequence[str] | None = None, *, ncols: int = 7, face_box=None,
                  title: str = "", tag: str | None = None, cell: float = 1.6, dpi: int = DPI) -> Figure:
    """Faces with their 68 landmarks, coloured by part (jaw, brows, nose, eyes, mouth); ``face_box``
    (left, top, right, bottom) draws the rectangle the predictor was given."""
    faces, points = np.asarray(faces), np.asarray(points)
    nrows = -(-len(faces) // ncols)
    fig = Figure(figsize=(cell * ncols, cell * nrows + (0.8 if title or tag else 0.2)), dpi=dpi, layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for k, ax in enumerate(axes):
        _bare(ax)
        if k >= len(faces):
            ax.set_visible(False)
            continue
        h, w = faces[k].shape
        ax.imshow(faces[k], cmap="gray", vmin=0, vmax=255, interpolation="nearest", extent=(-0.5, w - 0.5, h - 0.5, -0.5))
        for group, sl in LANDMARK_GROUPS.items():
            ax.plot(points[k, sl, 0], points[k, sl, 1], ".", ms=2.5, color=GROUP_COLOURS[group])
        if face_box is not None:
            l, t, r, b = face_box
            ax.plot([l, r, r, l, l], [t, t, b, b, t], "-", lw=0.8, color="yellow")
        ax.set_xlim(-4.5, w + 3.5)
        ax.set_ylim(h + 5.5, -4.5)  # room for a chin below the crop
        if titles is not None:
            ax.set_title(titles[k], fontsize=FONT)
    if title or tag:
        fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


@styled
def edge_images(faces, labels, class_names: Sequence[str], *, title: str = "", tag: str | None = None,
                dpi: int = DPI) -> Figure:
    """For one face per class: the face (O), its Sobel magnitude image (S) and its Laplacian image (L),
    exactly as :func:`ferlib.features.edge_channels` stacks them (FER+ paper §III-B)."""
    from ..features import edge_channels

    faces = np.asarray(faces)
    channels = edge_channels(faces)  # (N, 3, 48, 48): O, S, L
    fig = Figure(figsize=(1.35 * len(faces) + 0.6, 4.4 + (0.4 if title or tag else 0)), dpi=dpi, layout="constrained")
    axes = fig.subplots(3, len(faces), squeeze=False)
    for j in range(len(faces)):
        for i, name in enumerate(("original (O)", "Sobel (S)", "Laplacian (L)")):
            axes[i, j].imshow(channels[j, i], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            _bare(axes[i, j])
            if j == 0:
                axes[i, j].set_ylabel(name, fontsize=FONT)
        axes[0, j].set_title(class_names[int(labels[j])], fontsize=FONT)
    if title or tag:
        fig.suptitle(_title(title, tag), fontsize=TITLE)
    return fig


def hog_explorer(face, *, tag: str | None = None):
    """An ipywidgets control: cell size and orientations sliders that redraw one face's HOG picture and
    print the feature length (whole-face HOG with 2x2-cell blocks, as :func:`ferlib.features.whole_face_hog`)."""
    import ipywidgets as widgets
    from IPython.display import display

    from ..features import hog_with_picture

    out = widgets.Output()
    label = widgets.Label()
    cell = widgets.IntSlider(value=8, min=4, max=16, step=2, description="cell (px)", continuous_update=False)
    orientations = widgets.IntSlider(value=8, min=2, max=18, step=1, description="orientations",
                                     continuous_update=False)
    block = widgets.IntSlider(value=2, min=1, max=3, step=1, description="block (cells)", continuous_update=False)

    def redraw(*_):
        out.clear_output(wait=True)
        with out:
            try:
                values, picture = hog_with_picture(face, orientations=orientations.value,
                                                   pixels_per_cell=(cell.value, cell.value),
                                                   cells_per_block=(block.value, block.value))
            except ValueError as e:
                label.value = f"not possible: {e}"
                return
            label.value = (f"{len(values):,} values = {48 // cell.value}x{48 // cell.value} cells, blocks of "
                           f"{block.value}x{block.value} cells, {orientations.value} orientations")
            display(_hog_pair(face, picture, label.value, tag))

    for w in (cell, orientations, block):
        w.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([cell, orientations, block]), label, out])


@styled
def _hog_pair(face, picture, caption: str, tag: str | None, dpi: int = DPI) -> Figure:
    fig = Figure(figsize=(5.0, 2.9), dpi=dpi, layout="constrained")
    a, b = fig.subplots(1, 2)
    a.imshow(face, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    b.imshow(picture, cmap="gray", interpolation="nearest")
    for ax in (a, b):
        _bare(ax)
    fig.suptitle(_title(caption, tag), fontsize=FONT)
    return fig
