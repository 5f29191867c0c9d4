"""The dataset's real defects, computed: exact duplicates, leaks, conflicts, blanks.

FER-2013 was scraped from web image search; some images occur more than once (within
a split and across splits), some duplicates carry different labels, and a few
images are blank.  These functions compute all of that from the pixels themselves;
only *exact* copies count (identical pixels), near duplicates such as re-crops do not.
Every count is vectorised over the whole dataset (no loop over images).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .classes import SPLITS
from .dataset import FERDataset

__all__ = ["duplicate_group_ids", "blank_images", "conflicting_groups", "leaked_test_images", "QualityReport",
           "quality_report"]


def duplicate_group_ids(pixels: np.ndarray) -> np.ndarray:
    """For each image, the index of the first image with identical pixels (itself if unique)."""
    flat = np.ascontiguousarray(pixels.reshape(len(pixels), -1))
    keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first[inverse.ravel()]


def blank_images(pixels: np.ndarray) -> np.ndarray:
    """Indices of the images with a single grey level (no face at all)."""
    flat = pixels.reshape(len(pixels), -1)
    return np.flatnonzero(flat.max(1) == flat.min(1))


def _group_label_keys(group: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return group.astype(np.int64) * (int(labels.max(initial=0)) + 1) + labels.astype(np.int64)


def conflicting_groups(ds: FERDataset, group: np.ndarray | None = None) -> list[np.ndarray]:
    """Duplicate groups whose rows carry more than one label: the row indices of each group, in group order.

    ``group`` is :func:`duplicate_group_ids` of ``ds.pixels`` (computed when not given).
    """
    group = duplicate_group_ids(ds.pixels) if group is None else group
    pairs = np.unique(_group_label_keys(group, ds.labels))  # distinct (group, label) pairs
    labels_per_group = np.bincount(pairs // (int(ds.labels.max(initial=0)) + 1), minlength=len(group))
    conflicted = labels_per_group[group] > 1
    rows = np.flatnonzero(conflicted)
    order = np.argsort(group[rows], kind="stable")
    rows, keys = rows[order], group[rows[order]]
    return np.split(rows, np.flatnonzero(np.diff(keys)) + 1) if len(rows) else []


def leaked_test_images(ds: FERDataset, group: np.ndarray | None = None) -> list[dict]:
    """Per test split: its images, how many have an exact copy in Training, how many of those with the same label.

    A leaked image whose Training copy carries its label is answered from memory, not
    generalisation: ``same_label / images`` bounds the accuracy it gives away.
    """
    group = duplicate_group_ids(ds.pixels) if group is None else group
    train = ds.usage == SPLITS[0]
    keys = _group_label_keys(group, ds.labels)
    rows = []
    for split in SPLITS[1:]:
        part = ds.usage == split
        leaked = part & np.isin(group, group[train])
        same = leaked & np.isin(keys, keys[train])
        rows.append({"split": split, "images": int(part.sum()), "in_training": int(leaked.sum()),
                     "same_label": int(same.sum())})
    return rows


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
    """Counts of every defect above, over all splits."""
    group = duplicate_group_ids(ds.pixels)
    sizes = np.bincount(group, minlength=len(group))
    return QualityReport(duplicate_groups=int((sizes > 1).sum()), duplicate_rows=int((sizes[group] > 1).sum()),
                         distinct_images=int((sizes > 0).sum()),
                         test_rows_in_training=sum(r["in_training"] for r in leaked_test_images(ds, group)),
                         conflicting_groups=len(conflicting_groups(ds, group)),
                         blank_images=len(blank_images(ds.pixels)))
