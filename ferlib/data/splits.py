"""The three splits a run uses, cut to a budget: Training, PublicTest, PrivateTest.

``prepare_splits`` takes stratified subsets (``None`` = the whole split) so the quick
profile trains on a few images per class while a full or wall-clock run uses all.
"""
from __future__ import annotations

from dataclasses import dataclass

from .dataset import FERDataset, stratified_subset


@dataclass
class PreparedData:
    train: FERDataset
    val: FERDataset
    test: FERDataset
    class_names: tuple
    synthetic: bool
    description: dict


def prepare_splits(dataset: FERDataset, train_per_class: int | None, eval_per_class: int | None,
                   seed: int = 0) -> PreparedData:
    """Training / PublicTest / PrivateTest, each a stratified subset of ``n`` per class (None: all)."""
    sizes = (("Training", train_per_class), ("PublicTest", eval_per_class), ("PrivateTest", eval_per_class))
    parts = [stratified_subset(dataset.split(s), n, seed + i) for i, (s, n) in enumerate(sizes)]
    desc = {"source": dataset.source, "format": dataset.format, "tag": dataset.tag, "synthetic": dataset.synthetic,
            "Training": len(parts[0]), "PublicTest": len(parts[1]), "PrivateTest": len(parts[2])}
    return PreparedData(*parts, class_names=tuple(dataset.class_names), synthetic=dataset.synthetic,
                        description=desc)
