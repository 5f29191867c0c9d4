"""The in-memory dataset every reader returns: pixels, labels and Kaggle splits.

All of FER-2013 is 35,887 images of 48x48 uint8 -- 83 MB -- so every reader loads
the whole thing into one :class:`FERDataset` and splits are views selected by the
``usage`` column, exactly as in the challenge's ``fer2013.csv``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .classes import EMOTIONS, SPLITS


@dataclass(frozen=True)
class FERDataset:
    """Images, labels and splits of a FER-2013-like dataset.

    pixels : uint8 array (N, 48, 48)
    labels : int64 array (N,), FER-2013 codes 0..6 (see :mod:`ferlib.data.classes`)
    usage : str array (N,), one of ``SPLITS`` per row
    rows : int64 array (N,), the row index in the original file order (FER+ votes are
        aligned by this index, never by file name)
    source : where it came from (a path, or ``"synthetic"``)
    format : ``"fer2013.csv"``, ``"icml_face_data.csv"``, ``"image-folder"``,
        ``"fer2013.npz.xz"``, ``"cache"`` or ``"synthetic"``
    synthetic : True for the embedded synthetic faces; every output made from them
        must say so.
    """

    pixels: np.ndarray
    labels: np.ndarray
    usage: np.ndarray
    rows: np.ndarray
    source: str
    format: str
    synthetic: bool = False
    class_names: tuple[str, ...] = field(default=EMOTIONS)

    def __post_init__(self):
        n = len(self.pixels)
        if self.pixels.dtype != np.uint8 or self.pixels.ndim != 3:
            raise ValueError(f"pixels must be uint8 (N, H, W), got {self.pixels.dtype} {self.pixels.shape}")
        for name in ("labels", "usage", "rows"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries for {n} images")

    def __len__(self) -> int:
        return len(self.pixels)

    @property
    def tag(self) -> str:
        """A short label for plots and results: says 'synthetic' when it is."""
        return "SYNTHETIC faces (not FER-2013)" if self.synthetic else f"FER-2013 ({self.format})"

    def split(self, name: str) -> "FERDataset":
        """The rows whose Usage is ``name`` (Training, PublicTest or PrivateTest)."""
        if name not in SPLITS:
            raise KeyError(f"unknown split {name!r}; expected one of {SPLITS}")
        return self.subset(self.usage == name)

    def subset(self, index) -> "FERDataset":
        """Rows selected by a boolean mask or an index array."""
        return replace(self, pixels=self.pixels[index], labels=self.labels[index],
                       usage=self.usage[index], rows=self.rows[index])

    def split_counts(self) -> dict[str, int]:
        return {s: int((self.usage == s).sum()) for s in SPLITS}

    def class_counts(self, split: str | None = None) -> dict[str, int]:
        labels = self.labels if split is None else self.labels[self.usage == split]
        counts = np.bincount(labels, minlength=len(self.class_names))
        return {c: int(n) for c, n in zip(self.class_names, counts)}


def stratified_subset(ds: FERDataset, per_class: int | None, seed: int = 0) -> FERDataset:
    """At most ``per_class`` rows of each class, drawn with a seed, in original row order.

    The quick profile trains on such subsets; ``None`` returns ``ds`` unchanged.
    """
    if per_class is None:
        return ds
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(ds.labels):
        idx = np.flatnonzero(ds.labels == c)
        keep.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return ds.subset(np.sort(np.concatenate(keep)))
