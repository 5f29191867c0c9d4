"""Chapter 01's figures and HOG widget (ferlib.viz.feature_plots)."""
from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from ferlib.data.classes import EMOTIONS
from ferlib.viz import feature_plots as fp


def _faces(n=3):
    return np.random.default_rng(0).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_hog_pictures_has_a_face_and_a_picture_per_class():
    fig = fp.hog_pictures(_faces(3), np.array([0, 3, 6]), EMOTIONS, tag="SYNTHETIC")
    assert isinstance(fig, Figure) and len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["angry", "happy", "neutral"]
    assert fig.axes[3].get_ylabel() == "HOG (800)"
    assert "SYNTHETIC" in fig._suptitle.get_text()


def test_landmark_grid_draws_every_point_and_the_box():
    points = np.random.default_rng(1).uniform(0, 47, (2, 68, 2))
    fig = fp.landmark_grid(_faces(2), points, ["a", "b"], ncols=3, face_box=(3, 7, 43, 45))
    shown = [ax for ax in fig.axes if ax.get_visible()]
    assert len(shown) == 2
    drawn = np.concatenate([line.get_xydata() for line in shown[0].lines[:5]])
    np.testing.assert_allclose(np.sort(drawn, 0), np.sort(points[0], 0))  # the 68 points, grouped by part
    box = shown[0].lines[5].get_xydata()
    assert box.min(0).tolist() == [3, 7] and box.max(0).tolist() == [43, 45]


def test_edge_images_show_the_three_channels():
    fig = fp.edge_images(_faces(2), np.array([1, 2]), EMOTIONS)
    assert len(fig.axes) == 6 and fig.axes[0].get_ylabel() == "original (O)"
    from ferlib.features import edge_channels

    np.testing.assert_array_equal(fig.axes[5].images[0].get_array(), edge_channels(_faces(2))[1, 2])  # row L, face 1


def test_hog_explorer_redraws_with_the_new_length():
    pytest.importorskip("ipywidgets")
    box = fp.hog_explorer(_faces(1)[0])
    cell, orientations, block = box.children[0].children
    label = box.children[1]

    def caption():
        return label.value

    assert "800 values" in caption()
    orientations.value = 9  # 5*5 blocks * 2*2 cells * 9 orientations
    assert "900 values" in caption()
    cell.value = 16  # 3x3 cells, 2x2 blocks -> 2x2 blocks * 4 cells * 9
    assert "144 values" in caption()
    block.value = 3
    cell.value = 14  # 3x3 cells again, blocks of 3x3: one block * 9 cells * 9
    assert "81 values" in caption()

