"""How well deep features separate the classes: intra-class spread, inter-class distance, their ratio.

Center loss (Wen et al. 2016; DenseNet-CL Eq. 2) shrinks the first; the softmax keeps
the second apart.  Chapter 03 reports both for features with and without center loss.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch


def _as_features_labels(features: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor]:
    f = features.detach() if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
    y = labels.detach() if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    f = f.to(torch.float64).cpu()
    y = y.to(torch.long).cpu().reshape(-1)
    if f.dim() != 2 or f.shape[0] != y.shape[0]:
        raise ValueError(f"features must be (n, d) with one label each; got {tuple(f.shape)} and {tuple(y.shape)}")
    return f, y


def _class_means(f: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the classes present, and each sample's index into them."""
    _, inv = torch.unique(y, return_inverse=True)
    k = int(inv.max()) + 1 if inv.numel() else 0
    counts = torch.bincount(inv, minlength=k).to(f.dtype)
    means = torch.zeros(k, f.shape[1], dtype=f.dtype).index_add_(0, inv, f) / counts.unsqueeze(1)
    return means, inv


def intra_class_spread(features: Any, labels: Any) -> float:
    """Mean squared Euclidean distance of each sample to its own class mean
    (the quantity center loss shrinks).  numpy or torch inputs; returns a float."""
    f, y = _as_features_labels(features, labels)
    if f.shape[0] == 0:
        return float("nan")
    means, inv = _class_means(f, y)
    return float((f - means[inv]).pow(2).sum(1).mean())


def inter_class_distance(features: Any, labels: Any) -> float:
    """Mean Euclidean distance between the means of every pair of classes present
    (what the softmax keeps apart).  ``nan`` with fewer than two classes."""
    f, y = _as_features_labels(features, labels)
    means, _ = _class_means(f, y) if f.shape[0] else (f[:0], None)
    k = means.shape[0]
    if k < 2:
        return float("nan")
    d = torch.cdist(means, means)
    iu = torch.triu_indices(k, k, offset=1)
    return float(d[iu[0], iu[1]].mean())


def separation_stats(features, labels) -> dict:
    """Intra-class spread (mean squared distance to the class mean), inter-class distance
    (mean distance between class means) and ``ratio = sqrt(spread) / distance``.

    The ratio is scale-free: shrinking every feature by 2 divides the spread by 4 and
    the distance by 2 but leaves the ratio alone -- so it tells real compaction apart
    from a cloud that just got smaller.  Lower is more discriminative."""
    intra = intra_class_spread(features, labels)
    inter = inter_class_distance(features, labels)
    ratio = float(np.sqrt(intra) / inter) if inter and np.isfinite(inter) and inter > 0 else float("nan")
    return {"intra_class_spread": intra, "inter_class_distance": inter, "ratio": ratio}
