"""Graders of lab 05 (k-NN on embeddings): the neighbour search and the majority vote with its tie rule.

The student writes two NumPy functions (arrays in; a torch tensor returned is accepted):

* ``nearest_neighbours(train, query, k, metric="euclidean", exclude_self=False) -> (q, k)``
  row indices of the k nearest training embeddings, nearest first; ``metric="cosine"``
  ranks by the distance ``1 - cos``; ``exclude_self=True`` (leave-one-out, the queries
  are the training set) never lists a query as its own neighbour;
* ``majority_vote(neighbour_labels (q, k), num_classes) -> (q,)``: the most common label
  of each row; a tie goes to the tied class whose nearest neighbour comes first (so the
  answer does not depend on how the classes are numbered).

Each grader compares with ferlib's reference (:mod:`ferlib.evaluate.knn`) and names the
usual mistakes: k off by one, the query counted as its own neighbour, similarity used as
a distance, a tie rule that depends on the label numbering.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..evaluate.knn import majority_vote as _reference_vote
from ..evaluate.knn import nearest_neighbours as _reference_neighbours
from .core import call_student, fail, grader, passed

__all__ = ["check_nearest_neighbours", "check_majority_vote"]


def _ints(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def _neighbour_cases(seed: int = 0):
    """(train, query, k, metric, exclude_self); lengths vary so that cosine != dot product."""
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(40, 3)) * rng.uniform(0.2, 3.0, size=(40, 1))
    query = rng.normal(size=(12, 3)) * rng.uniform(0.2, 3.0, size=(12, 1))
    return [
        (train, query, 1, "euclidean", False),
        (train, query, 5, "euclidean", False),
        (train, query, 4, "cosine", False),
        (train, train, 3, "euclidean", True),
        (train, train, 2, "cosine", True),
    ]


def _ref_nn(train, query, k, metric, exclude_self):
    return _reference_neighbours(train, query, k, metric=metric, exclude_self=exclude_self).numpy()


def _ranked(train, query, k, score, exclude_self):
    """Indices of the k smallest ``score`` per row (score (q, n))."""
    if exclude_self:
        score = score.copy()
        np.fill_diagonal(score, np.inf)
    return np.argsort(score, axis=1, kind="stable")[:, :k]


def _cos(train, query):
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    return qn @ tn.T


def _distance(train, query, metric):
    if metric == "cosine":
        return 1.0 - _cos(train, query)
    return ((query[:, None] - train[None]) ** 2).sum(-1)


@grader(points=2)
def check_nearest_neighbours(fn: Callable) -> None:
    """``fn(train (n,d), query (q,d), k, metric, exclude_self) -> (q, k)`` indices, nearest first."""
    name = "nearest neighbours"
    for train, query, k, metric, exclude_self in _neighbour_cases():
        where = f"k={k}, metric={metric!r}, exclude_self={exclude_self}"
        got = _ints(call_student(fn, train.copy(), query.copy(), k, metric=metric, exclude_self=exclude_self))
        if got.ndim != 2 or got.shape[0] != len(query):
            fail(name, f"{where}: shape {got.shape}, expected {(len(query), k)}",
                  "one row per query, one column per neighbour")
        if got.shape[1] in (k - 1, k + 1):
            fail(name, f"{where}: {got.shape[1]} neighbours per query, expected k={k}",
                  "k off by one: return exactly k columns (with exclude_self, drop the query itself, "
                  "not the nearest other sample)")
        if got.shape[1] != k:
            fail(name, f"{where}: shape {got.shape}, expected {(len(query), k)}", "return k columns")
        want = _ref_nn(train, query, k, metric, exclude_self)
        if np.array_equal(got, want):
            continue
        d = _distance(train, query, metric)
        if exclude_self and np.any(got == np.arange(len(query))[:, None]):
            hint = ("the query counted as its own neighbour: with exclude_self=True (leave-one-out) set the "
                    "distance from query i to training row i to infinity before ranking")
        elif metric == "cosine" and np.array_equal(got, _ranked(train, query, k, _cos(train, query), exclude_self)):
            hint = ("similarity used as a distance: cosine *similarity* is largest for the nearest vectors; "
                    "rank by the distance 1 - cos (ascending), or by -cos")
        elif metric == "cosine" and np.array_equal(got, _ranked(train, query, k, -(query @ train.T), exclude_self)):
            hint = "cosine similarity divides by the lengths: normalise the rows (x / ||x||) before the dot product"
        elif np.array_equal(got, _ranked(train, query, k, -d, exclude_self)):
            hint = "you took the *farthest* samples: sort the distances ascending (nearest first)"
        elif np.array_equal(np.sort(got, 1), np.sort(want, 1)):
            hint = "the right neighbours in the wrong order: nearest first (np.argsort of the distances, ascending)"
        else:
            hint = ("compute the (q, n) matrix of squared distances (or 1 - cos), then np.argsort(..., axis=1)[:, :k]"
                    + ("; with exclude_self put np.inf on the diagonal first" if exclude_self else ""))
        row = int(np.flatnonzero((got != want).any(1))[0])
        fail(name, f"{where}: query {row} got neighbours {got[row].tolist()}, expected {want[row].tolist()}", hint)
    passed(name, "5 cases (euclidean and cosine, k = 1 to 5, leave-one-out) give the same neighbours in the "
                  "same order as ferlib.evaluate.knn.nearest_neighbours")


# -- the vote ------------------------------------------------------------------------------------------

TIE_ROWS = np.array([
    [3, 0, 0, 3],   # 2-2 tie: class 3 has the nearest neighbour -> 3 (smallest label would say 0)
    [1, 4, 4, 1],   # tie: 1 (largest label would say 4)
    [2, 5, 6, 0],   # all different: the nearest neighbour's class, 2
    [6, 6, 2, 2],   # tie: 6
    [0, 5, 5, 0],   # tie: 0
    [4, 1, 4, 1],   # tie: 4
])


def _vote_cases(seed: int = 1):
    rng = np.random.default_rng(seed)
    random_rows = rng.integers(0, 7, size=(30, 5))
    first_differs = rng.integers(0, 7, size=(10, 3))
    first_differs[:, 1:] = (first_differs[:, :1] + 1) % 7   # majority is not the nearest neighbour's class
    return [(TIE_ROWS, 7), (random_rows, 7), (first_differs, 7), (rng.integers(0, 3, size=(20, 6)), 3)]


@grader(points=2)
def check_majority_vote(fn: Callable) -> None:
    """``fn(neighbour_labels (q, k) nearest first, num_classes) -> (q,)`` with the nearest-neighbour tie rule."""
    name = "majority vote"
    for labels, c in _vote_cases():
        got = _ints(call_student(fn, labels.copy(), c)).reshape(-1)
        if got.shape != (len(labels),):
            fail(name, f"returned shape {got.shape}, expected ({len(labels)},)", "one predicted class per query row")
        want = _reference_vote(labels, c).numpy()
        if np.array_equal(got, want):
            continue
        counts = np.stack([np.bincount(r, minlength=c) for r in labels])
        tied = (counts == counts.max(1, keepdims=True)).sum(1) > 1
        if np.array_equal(got, counts.argmax(1)) or np.array_equal(got, c - 1 - counts[:, ::-1].argmax(1)):
            hint = ("your tie rule depends on how the classes are numbered (argmax of a bincount returns the smallest "
                    "tied label, for one): among the tied classes pick the one whose nearest neighbour comes first")
        elif np.array_equal(got, labels[:, 0]):
            hint = "that is the nearest neighbour's class (1-NN); take the most common class among all k"
        elif np.array_equal(got, _reference_vote(labels[:, :-1], c).numpy()):
            hint = "k off by one: the vote counts all k columns, you left out the last one"
        else:
            hint = ("count each class in the row (np.bincount), keep the classes with the top count, and among "
                    "them take the first one met walking the row from the nearest neighbour")
        row = int(np.flatnonzero(got != want)[0])
        kind = "a tie" if tied[row] else "no tie"
        fail(name, f"row {labels[row].tolist()} ({kind}): got {int(got[row])}, expected {int(want[row])}", hint)
    # the property the tie rule exists for: renumbering the classes renumbers the answers
    rng = np.random.default_rng(3)
    for _ in range(3):
        perm = rng.permutation(7)
        renamed = _ints(call_student(fn, perm[TIE_ROWS], 7)).reshape(-1)
        base = _ints(call_student(fn, TIE_ROWS.copy(), 7)).reshape(-1)
        if not np.array_equal(renamed, perm[base]):
            fail(name, "renumbering the classes changed which class wins a tie",
                  "the tie rule must not depend on the label numbers: use the order of the neighbours")
    passed(name, f"{sum(len(l) for l, _ in _vote_cases())} rows (ties, no majority, random) agree with "
                  "ferlib.evaluate.knn.majority_vote; renumbering the classes renumbers the answers")
