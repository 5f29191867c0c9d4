"""k-nearest-neighbour classification of embeddings, as DNNRL evaluates its features.

DNNRL Sec. 4: "any test sample was classified by a majority vote of its k training
samples ... We determined the value of k for sample testing when the validation samples
obtained the highest accuracy on the value of k."  So: neighbours among the Training
embeddings, k chosen on PublicTest (the validation split), accuracy reported on
PrivateTest with that k -- :func:`knn_evaluate` does exactly this and never looks at
PrivateTest while choosing.

**Tie rule.**  A majority vote can tie (k = 4: two "happy", two "sad").  Taking the
smallest class code among the tied classes (what ``argmax`` of a ``bincount`` does, and
scikit-learn's uniform vote) makes the answer depend on how the classes happen to be
numbered.  ferlib breaks a tie by the *nearest neighbour*: among the tied classes, the
one whose closest neighbour is closest to the query wins.  Renumbering the classes never
changes a prediction.  (Neighbours at exactly the same distance -- duplicated images --
come in the order ``torch.topk`` returns them, which does not depend on the labels.)

**Metrics.**  ``"euclidean"`` ranks by squared Euclidean distance (the same order as the
distance, and the distance DNNRL's loss is built on); ``"cosine"`` ranks by
``1 - cos(q, t)`` -- a *distance*: the most similar vectors come first.

Everything is torch on the device of the training embeddings, chunked over queries so
that 28,709 x 3,589 (FER-2013's Training vs PublicTest) needs ``chunk_size x 28,709``
distances at a time.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from ..losses.triplet import pairwise_squared_distances

__all__ = ["knn_predict", "nearest_neighbours", "majority_vote", "knn_sweep", "choose_k", "knn_evaluate",
           "DEFAULT_KS", "METRICS"]

DEFAULT_KS = (1, 3, 5, 7, 9, 11, 15, 21, 31, 41, 51)
METRICS = ("euclidean", "cosine")


def _as_tensor(a, *, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    try:
        return torch.as_tensor(np.asarray(a))
    except (TypeError, ValueError) as e:
        raise TypeError(f"{name} must be a tensor or array, got {type(a).__name__}") from e


def _prepare(train_embeddings, train_labels, query_embeddings, metric: str, num_classes: int | None):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    train = _as_tensor(train_embeddings, name="train_embeddings")
    labels = _as_tensor(train_labels, name="train_labels")
    query = _as_tensor(query_embeddings, name="query_embeddings")
    if train.dim() != 2 or query.dim() != 2:
        raise ValueError(f"embeddings must be (n, dim): got train {tuple(train.shape)}, query {tuple(query.shape)}")
    if train.shape[1] != query.shape[1]:
        raise ValueError(f"train and query embeddings differ in dimension: {train.shape[1]} vs {query.shape[1]} "
                         "-- were they computed by the same model?")
    if labels.dim() != 1 or labels.shape[0] != train.shape[0]:
        raise ValueError(f"train_labels must be ({train.shape[0]},) integer classes, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"train_labels must be integer class codes, got {labels.dtype}")
    if train.shape[0] == 0:
        raise ValueError("no training embeddings: k-NN needs neighbours")
    device = train.device
    labels = labels.to(device).long()
    if int(labels.min()) < 0:
        raise ValueError("train_labels must be >= 0 (class codes)")
    top = int(labels.max()) + 1
    if num_classes is None:
        num_classes = top
    elif top > num_classes:
        raise ValueError(f"train_labels go up to {top - 1} but num_classes={num_classes}")
    train = train.float()
    query = query.float()
    if metric == "cosine":
        train = F.normalize(train, dim=1)
    return train, labels, query, int(num_classes)


def _neighbours(train: torch.Tensor, query: torch.Tensor, k: int, metric: str, chunk_size: int,
                exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices, distances)``, each ``(n_query, k)``, of the k nearest training rows, nearest first
    (inputs prepared); distances are squared Euclidean or ``1 - cos``, the ranking's own unit."""
    if int(chunk_size) != chunk_size or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if exclude_self and query.shape[0] != train.shape[0]:
        raise ValueError(f"exclude_self=True means the queries ARE the training set (leave-one-out), but there are "
                         f"{query.shape[0]} queries for {train.shape[0]} training rows")
    available = train.shape[0] - int(exclude_self)
    if int(k) != k or not 1 <= k <= available:
        raise ValueError(f"k must be an integer in 1..{available} (the training rows available as neighbours"
                         f"{', less the query itself' if exclude_self else ''}), got {k!r}")
    idx, dists = [], []
    for start in range(0, query.shape[0], int(chunk_size)):
        q = query[start:start + int(chunk_size)].to(train.device)
        if metric == "cosine":
            dist = 1.0 - F.normalize(q, dim=1) @ train.T   # a distance: most similar first
        else:
            dist = pairwise_squared_distances(q, train)
        if exclude_self:
            rows = torch.arange(q.shape[0], device=train.device)
            dist[rows, rows + start] = torch.inf
        top = torch.topk(dist, int(k), dim=1, largest=False, sorted=True)
        idx.append(top.indices)
        dists.append(top.values)
    if not idx:
        return (torch.empty(0, int(k), dtype=torch.long, device=train.device),
                torch.empty(0, int(k), dtype=train.dtype, device=train.device))
    return torch.cat(idx), torch.cat(dists)


def nearest_neighbours(train_embeddings, query_embeddings, k: int, metric: str = "euclidean",
                       chunk_size: int = 1024, exclude_self: bool = False, return_distances: bool = False):
    """Row indices ``(q, k)`` of each query's ``k`` nearest training embeddings, nearest first.

    ``metric``: ``"euclidean"`` (ranked by squared distance) or ``"cosine"`` (``1 - cos``).
    ``exclude_self``: the queries are the training set; row i never lists itself.
    ``return_distances``: return ``(indices, distances)``, the distances in the ranking's unit.
    """
    train = _as_tensor(train_embeddings, name="train_embeddings")
    labels = torch.zeros(train.shape[0] if train.dim() else 0, dtype=torch.long)
    train, _, query, _ = _prepare(train, labels, query_embeddings, metric, None)
    idx, dist = _neighbours(train, query, k, metric, chunk_size, exclude_self)
    return (idx, dist) if return_distances else idx


def majority_vote(neighbour_labels, num_classes: int | None = None) -> torch.Tensor:
    """The most common label in each row of ``(q, k)`` neighbour labels ordered nearest first.

    Ties go to the tied class whose nearest neighbour comes first -- independent of how
    the classes are numbered (module docstring).  Returns int64 ``(q,)``.
    """
    labels = _as_tensor(neighbour_labels, name="neighbour_labels")
    if labels.dim() != 2 or labels.shape[1] == 0:
        raise ValueError(f"neighbour_labels must be (queries, k) with k >= 1, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"neighbour_labels must be integer class codes, got {labels.dtype}")
    labels = labels.long()
    if labels.numel() and int(labels.min()) < 0:
        raise ValueError("neighbour_labels must be >= 0 (class codes)")
    top = int(labels.max()) + 1 if labels.numel() else 1
    if num_classes is None:
        num_classes = top
    elif top > num_classes:
        raise ValueError(f"neighbour_labels go up to {top - 1} but num_classes={num_classes}")
    return _vote(labels, int(num_classes))


def _vote(neighbour_labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    n, k = neighbour_labels.shape
    counts = torch.zeros(n, num_classes, dtype=torch.long, device=neighbour_labels.device)
    counts.scatter_add_(1, neighbour_labels, torch.ones_like(neighbour_labels))
    ranks = torch.arange(k, device=neighbour_labels.device).expand(n, k)
    first = torch.full((n, num_classes), k, dtype=torch.long, device=neighbour_labels.device)
    first.scatter_reduce_(1, neighbour_labels, ranks, reduce="amin")
    # lexicographic (count, -first rank): count * (k + 1) dominates; first rank < k breaks ties
    return (counts * (k + 1) + (k - first)).argmax(1)


def knn_predict(train_embeddings, train_labels, query_embeddings, k: int, metric: str = "euclidean",
                num_classes: int | None = None, chunk_size: int = 1024, exclude_self: bool = False) -> torch.Tensor:
    """Majority vote of the ``k`` nearest training embeddings, for each query (DNNRL Sec. 4).

    train_embeddings : ``(n, dim)``; train_labels : ``(n,)`` integer classes.
    query_embeddings : ``(q, dim)``.  metric : ``"euclidean"`` or ``"cosine"`` (``1 - cos``).
    num_classes : number of classes (default ``max(train_labels) + 1``).
    chunk_size : queries per distance block (memory ``chunk_size x n``).
    exclude_self : leave-one-out when the queries are the training set itself: query i
        never counts training row i as its neighbour.

    Ties: the tied class with the closest neighbour wins (module docstring).  Returns an
    int64 tensor ``(q,)`` on the training embeddings' device.
    """
    train, labels, query, c = _prepare(train_embeddings, train_labels, query_embeddings, metric, num_classes)
    idx, _ = _neighbours(train, query, k, metric, chunk_size, exclude_self)
    return _vote(labels[idx], c)


def _accuracy(pred: torch.Tensor, labels) -> float:
    labels = _as_tensor(labels, name="labels").to(pred.device).long()
    if labels.shape != pred.shape:
        raise ValueError(f"{labels.shape[0] if labels.dim() else 0} labels for {pred.shape[0]} query embeddings")
    return float((pred == labels).double().mean()) if pred.numel() else float("nan")


def _check_ks(ks) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"ks must be a non-empty list of positive integers, got {ks!r}")
    return tuple(sorted(set(int(k) for k in ks)))


def _sweep_predictions(train_emb, train_labels, val_emb, ks, metric, num_classes, chunk_size) -> dict:
    train, labels, query, c = _prepare(train_emb, train_labels, val_emb, metric, num_classes)
    ks = _check_ks(ks)
    if ks[-1] > train.shape[0]:
        raise ValueError(f"largest k {ks[-1]} exceeds the {train.shape[0]} training embeddings")
    neighbour_labels = labels[_neighbours(train, query, ks[-1], metric, chunk_size, False)[0]]
    return {k: _vote(neighbour_labels[:, :k], c) for k in ks}  # one neighbour search for every k


def knn_sweep(train_emb, train_labels, val_emb, val_labels, ks=DEFAULT_KS, metric: str = "euclidean",
              num_classes: int | None = None, chunk_size: int = 1024) -> dict:
    """Accuracy on ``(val_emb, val_labels)`` for every k in ``ks``: ``{k: accuracy}``.

    One neighbour search for the largest k; each smaller k votes over the nearest k of it.
    """
    preds = _sweep_predictions(train_emb, train_labels, val_emb, ks, metric, num_classes, chunk_size)
    return {k: _accuracy(p, val_labels) for k, p in preds.items()}


def choose_k(train_emb, train_labels, val_emb, val_labels, ks=DEFAULT_KS, metric: str = "euclidean",
             num_classes: int | None = None, chunk_size: int = 1024):
    """``(best_k, sweep)``: the k with the highest validation accuracy (ties: the smallest k)."""
    sweep = knn_sweep(train_emb, train_labels, val_emb, val_labels, ks, metric, num_classes, chunk_size)
    best = max(sweep.values())
    return min(k for k, acc in sweep.items() if acc == best), sweep


def _pair(split, name: str):
    try:
        emb, lab = split
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an (embeddings, labels) pair") from None
    return emb, lab


def knn_evaluate(train, public, private, ks=DEFAULT_KS, metric: str = "euclidean",
                 num_classes: int | None = None, chunk_size: int = 1024) -> dict:
    """DNNRL's protocol: choose k on PublicTest, report PrivateTest with that k.

    train, public, private : ``(embeddings, labels)`` pairs (Training, PublicTest, PrivateTest).
    Returns ``{"k", "metric", "sweep": {k: PublicTest accuracy}, "PublicTest", "PrivateTest",
    "predictions": {"PublicTest": ndarray, "PrivateTest": ndarray}}``.  PrivateTest is
    classified once, after k is fixed.
    """
    train_emb, train_lab = _pair(train, "train")
    pub_emb, pub_lab = _pair(public, "public")
    priv_emb, priv_lab = _pair(private, "private")
    if num_classes is None:
        num_classes = int(_as_tensor(train_lab, name="train labels").max()) + 1
    preds = _sweep_predictions(train_emb, train_lab, pub_emb, ks, metric, num_classes, chunk_size)
    sweep = {k: _accuracy(p, pub_lab) for k, p in preds.items()}
    best = max(sweep.values())
    k = min(kk for kk, acc in sweep.items() if acc == best)
    private_pred = knn_predict(train_emb, train_lab, priv_emb, k, metric, num_classes, chunk_size)
    return {
        "k": k,
        "metric": metric,
        "sweep": sweep,
        "PublicTest": sweep[k],
        "PrivateTest": _accuracy(private_pred, priv_lab),
        "predictions": {"PublicTest": preds[k].cpu().numpy(), "PrivateTest": private_pred.cpu().numpy()},
    }
