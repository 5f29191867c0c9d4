"""The dataset's real defects, computed: exact duplicates, leaks, conflicts, blanks.

FER-2013 was scraped from web image search; some images occur more than once (within
a split and across splits), some duplicates carry different labels, and a few
images are blank.  These functions compute all of that from the pixels themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dataset import FERDataset


def duplicate_group_ids(pixels: np.ndarray) -> np.ndarray:
    """For each image, the index of the first image with identical pixels (itself if unique)."""
    flat = np.ascontiguousarray(pixels.reshape(len(pixels), -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.ravel()]


@dataclass(frozen=True)
class QualityReport:
    duplicate_groups: int  # groups of >= 2 identical images
    duplicate_rows: int  # rows in such groups
    distinct_images: int
    test_rows_in_training: int  # PublicTest/PrivateTest rows whose image also occurs in Training
    conflicting_groups: int  # duplicate groups whose rows carry more than one label
    blank_images: int  # images with a single grey level

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def quality_report(ds: FERDataset) -> QualityReport:
    group = duplicate_group_ids(ds.pixels)
    sizes = np.bincount(group, minlength=len(group))
    in_dup = sizes[group] > 1
    train_groups = np.unique(group[ds.usage == "Training"])
    test_rows = ds.usage != "Training"
    leaks = int(np.isin(group[test_rows], train_groups).sum())
    dup_groups = np.flatnonzero(sizes > 1)
    # groups with more than one label: count distinct (group, label) pairs per group
    pairs = np.unique(np.stack([group[in_dup], ds.labels[in_dup]], 1), axis=0)
    conflicting = int((np.bincount(pairs[:, 0], minlength=len(group)) > 1).sum()) if len(pairs) else 0
    flat = ds.pixels.reshape(len(ds), -1)
    blank = int((flat.max(1) == flat.min(1)).sum())
    return QualityReport(duplicate_groups=len(dup_groups), duplicate_rows=int(in_dup.sum()),
                         distinct_images=int((sizes > 0).sum()), test_rows_in_training=leaks,
                         conflicting_groups=conflicting, blank_images=blank)
