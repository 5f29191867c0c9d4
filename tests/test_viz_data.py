"""Chapter 00 figures: each helper returns a Figure on tiny input, and rejects what it cannot draw."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ferlib.data.transforms import BatchAugment
from ferlib.viz import data_plots as dp


def tiny_pixels(n=14, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 48, 48), dtype=np.uint8)


def test_image_grid_and_class_grid():
    px = tiny_pixels()
    fig = dp.image_grid(list(px[:5]), 3, titles=[str(i) for i in range(5)], row_labels=["a", "b"], tag="T",
                        row_ranges=[(0, 255), (-3, 3)])
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 6 and "T" in fig._suptitle.get_text()
    labels = np.arange(14) % 7
    labels[labels == 6] = 5  # a class with no images still gets its (empty) row
    fig = dp.class_sample_grid(px, labels, [f"c{i}" for i in range(7)], per_class=3)
    assert isinstance(fig, Figure) and len(fig.axes) == 21
    with pytest.raises(ValueError):
        dp.image_grid([], 3)


def test_class_distribution_mean_std_confusion():
    counts = {"Training": {"a": 5, "b": 1}, "PublicTest": {"a": 2, "b": 0}}
    assert isinstance(dp.class_distribution(counts, tag="SYNTHETIC"), Figure)
    px = tiny_pixels().astype(float)
    assert isinstance(dp.mean_std_images(px.mean(0), px.std(0)), Figure)
    fig = dp.confusion_heatmap(np.array([[3, 1, 0], [0, 0, 0]]), ["x", "y"], ["p", "q", "r"])
    assert isinstance(fig, Figure)


def test_augmentation_gallery():
    face = torch.rand(1, 1, 48, 48)
    augs = {"flip": BatchAugment(flip=True), "big": BatchAugment(rotation=10, out_size=64, channels=3)}
    fig = dp.augmentation_gallery(face, augs, draws=2, seed=0)
    assert isinstance(fig, Figure) and len(fig.axes) == 2 * 3
