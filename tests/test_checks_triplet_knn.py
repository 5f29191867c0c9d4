"""Lab 04 and 05 graders: pass on correct functions, fail with the right hint on each planted bug."""
import numpy as np
import pytest
import torch

from ferlib.checks.core import CheckFailed
from ferlib.checks.knn import check_majority_vote, check_nearest_neighbours
from ferlib.checks.triplet import (
    EXAMPLE_ANCHOR,
    EXAMPLE_LOSS,
    EXAMPLE_NEGATIVE,
    EXAMPLE_POSITIVE,
    _cases,
    check_batch_hard_triplets,
    check_exponential_triplet_grad,
    check_exponential_triplet_loss,
)
from ferlib.losses.triplet import exponential_triplet_loss

# -- lab 04: correct answers ----------------------------------------------------------------------


def sq(x, y):
    return np.sum((x - y) ** 2, axis=1)


def loss_ok(a, p, n, alpha, gamma):
    r = sq(a, n) - sq(a, p)
    return float(np.sum(np.exp(-alpha * np.maximum(r - gamma, 0.0))))


def grad_ok(a, p, n, alpha, gamma, delta=None, active=None, factor=2.0):
    r = sq(a, n) - sq(a, p)
    delta = np.exp(-alpha * (r - gamma)) if delta is None else delta
    active = r > gamma if active is None else active
    c = np.where(active, -factor * alpha * delta, 0.0)[:, None]
    return c * (p - n), c * (a - p), c * (n - a)


def hard_ok(x, y, *, self_positive=False, negatives="other", pos_pick="far", neg_pick="near", keep_all=False):
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    same = y[:, None] == y[None]
    eye = np.eye(len(y), dtype=bool)
    pos = same if self_positive else same & ~eye
    neg = ~same if negatives == "other" else ~eye
    dp = np.where(pos, d, -np.inf if pos_pick == "far" else np.inf)
    dn = np.where(neg, d, np.inf if neg_pick == "near" else -np.inf)
    p = dp.argmax(1) if pos_pick == "far" else dp.argmin(1)
    n = dn.argmin(1) if neg_pick == "near" else dn.argmax(1)
    keep = np.ones(len(y), bool) if keep_all else pos.any(1) & neg.any(1)
    a = np.flatnonzero(keep)
    return a, p[a], n[a]


def hard_loop(x, y):
    out = []
    for i in range(len(y)):
        pos = [j for j in range(len(y)) if j != i and y[j] == y[i]]
        neg = [j for j in range(len(y)) if y[j] != y[i]]
        if pos and neg:
            dist = lambda j: float(np.sum((x[i] - x[j]) ** 2))  # noqa: E731
            out.append((i, max(pos, key=dist), min(neg, key=dist)))
    return tuple(np.array([t[k] for t in out], dtype=int) for k in range(3))


def test_worked_example_and_cases_exercise_both_branches():
    args = (torch.tensor(EXAMPLE_ANCHOR), torch.tensor(EXAMPLE_POSITIVE), torch.tensor(EXAMPLE_NEGATIVE))
    assert exponential_triplet_loss(*args).item() == pytest.approx(EXAMPLE_LOSS)
    for a, p, n, alpha, gamma in _cases(0)[1:] + _cases(1)[1:]:
        r = sq(a, n) - sq(a, p)
        assert (r > gamma).any() and (r <= gamma).any()


def test_lab04_graders_pass_on_correct_functions(capsys):
    check_exponential_triplet_loss(loss_ok)
    check_exponential_triplet_grad(grad_ok)
    check_batch_hard_triplets(hard_ok)
    check_batch_hard_triplets(hard_loop)
    check_batch_hard_triplets(lambda x, y: tuple(torch.as_tensor(v) for v in hard_ok(x, y)))
    out = capsys.readouterr().out
    assert out.count("PASS") == 5 and "expect < 1e-07 in float64" in out


def blank(*args, **kwargs):
    raise NotImplementedError()


@pytest.mark.parametrize("check", [check_exponential_triplet_loss, check_exponential_triplet_grad,
                                   check_batch_hard_triplets, check_nearest_neighbours, check_majority_vote])
def test_blank_says_not_implemented(check):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(blank)


# -- lab 04: planted bugs ----------------------------------------------------------------------------

LOSS_BUGS = {
    "printed sign": (lambda a, p, n, al, ga: float(np.sum(np.exp(-al * np.maximum(sq(a, p) - sq(a, n) - ga, 0)))),
                     "as printed"),
    "not squared": (lambda a, p, n, al, ga: float(np.sum(np.exp(-al * np.maximum(
        np.linalg.norm(a - n, axis=1) - np.linalg.norm(a - p, axis=1) - ga, 0)))), "squared"),
    "mean": (lambda a, p, n, al, ga: loss_ok(a, p, n, al, ga) / len(a), "averaged"),
    "no max": (lambda a, p, n, al, ga: float(np.sum(np.exp(-al * (sq(a, n) - sq(a, p) - ga)))), r"max\{\., 0\}"),
    "gamma added": (lambda a, p, n, al, ga: float(np.sum(np.exp(-al * np.maximum(sq(a, n) - sq(a, p) + ga, 0)))),
                    "gamma is subtracted"),
    "no alpha": (lambda a, p, n, al, ga: loss_ok(a, p, n, 1.0, ga), "alpha is missing"),
    "per triplet": (lambda a, p, n, al, ga: np.exp(-al * np.maximum(sq(a, n) - sq(a, p) - ga, 0)), "one number"),
}


@pytest.mark.parametrize("bug", sorted(LOSS_BUGS))
def test_loss_bugs_are_caught(bug):
    fn, hint = LOSS_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_exponential_triplet_loss(fn)


def grad_printed_sign(a, p, n, al, ga):
    # differentiate exp(-al * max(d+ - d- - ga, 0)) by hand
    s = sq(a, p) - sq(a, n)
    c = np.where(s > ga, -al * np.exp(-al * (s - ga)), 0.0)[:, None]   # dL/ds
    return c * 2 * (n - p), c * 2 * (p - a), c * 2 * (a - n)


GRAD_BUGS = {
    "delta literal exponent": (lambda a, p, n, al, ga: grad_ok(a, p, n, al, ga,
                                                               delta=np.exp(-al * sq(a, n) - sq(a, p) - ga)),
                               "parentheses"),
    "delta outside exp": (lambda a, p, n, al, ga: grad_ok(a, p, n, al, ga,
                                                          delta=np.exp(-al * sq(a, n)) - sq(a, p) - ga),
                          "parentheses"),
    "printed sign": (grad_printed_sign, "as printed"),
    "no condition": (lambda a, p, n, al, ga: grad_ok(a, p, n, al, ga, active=np.ones(len(a), bool)), "must be 0"),
    "wrong sign": (lambda a, p, n, al, ga: tuple(-g for g in grad_ok(a, p, n, al, ga)), "wrong sign"),
    "no factor 2": (lambda a, p, n, al, ga: grad_ok(a, p, n, al, ga, factor=1.0), "factor 2"),
    "not squared": (lambda a, p, n, al, ga: _autograd_not_squared(a, p, n, al, ga), "squared"),
    "two outputs": (lambda a, p, n, al, ga: grad_ok(a, p, n, al, ga)[:2], "tuple"),
    "transposed": (lambda a, p, n, al, ga: tuple(g.T for g in grad_ok(a, p, n, al, ga)), "shape"),
}


def _autograd_not_squared(a, p, n, al, ga):
    ts = [torch.tensor(v, requires_grad=True) for v in (a, p, n)]
    r = (ts[0] - ts[2]).norm(dim=1) - (ts[0] - ts[1]).norm(dim=1)
    torch.exp(-al * (r - ga).clamp(min=0)).sum().backward()
    return tuple(t.grad.numpy() for t in ts)


@pytest.mark.parametrize("bug", sorted(GRAD_BUGS))
def test_grad_bugs_are_caught(bug):
    fn, hint = GRAD_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_exponential_triplet_grad(fn)


MINING_BUGS = {
    "anchor as own positive": (lambda x, y: hard_ok(x, y, self_positive=True), "own positive"),
    "same-class negative": (lambda x, y: hard_ok(x, y, negatives="any"), "negative of its own class"),
    "easiest": (lambda x, y: hard_ok(x, y, pos_pick="near", neg_pick="far"), "easiest"),
    "nearest positive": (lambda x, y: hard_ok(x, y, pos_pick="near"), "farthest"),
    "farthest negative": (lambda x, y: hard_ok(x, y, neg_pick="far"), "nearest"),
}


@pytest.mark.parametrize("bug", sorted(MINING_BUGS))
def test_mining_bugs_are_caught(bug):
    fn, hint = MINING_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_batch_hard_triplets(fn)


def test_mining_keeps_anchors_without_negatives_is_caught():
    def keeps_one_class_batches(x, y):
        if len(np.unique(y)) == 1:
            return np.arange(len(y)), np.roll(np.arange(len(y)), 1), np.roll(np.arange(len(y)), 2)
        return hard_ok(x, y)
    with pytest.raises(CheckFailed, match="negative"):
        check_batch_hard_triplets(keeps_one_class_batches)


# -- lab 05 -------------------------------------------------------------------------------------------------

def nn_ok(train, query, k, metric="euclidean", exclude_self=False, *, sign=1.0, normalise=True, drop=0, extra=0,
          descending=False):
    if metric == "cosine":
        t = train / np.linalg.norm(train, axis=1, keepdims=True) if normalise else train
        q = query / np.linalg.norm(query, axis=1, keepdims=True) if normalise else query
        d = 1.0 - sign * (q @ t.T) if normalise else -(q @ t.T)
    else:
        d = ((query[:, None] - train[None]) ** 2).sum(-1)
    if descending:
        d = -d
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, drop:k + extra]


def vote_ok(labels, num_classes):
    out = []
    for row in labels:
        counts = np.bincount(row, minlength=num_classes)
        tied = set(np.flatnonzero(counts == counts.max()))
        out.append(next(c for c in row if c in tied))
    return np.array(out)


def vote_ok_vectorised(labels, num_classes):
    k = labels.shape[1]
    counts = np.zeros((len(labels), num_classes), int)
    np.add.at(counts, (np.arange(len(labels))[:, None], labels), 1)
    first = np.full((len(labels), num_classes), k)
    np.minimum.at(first, (np.arange(len(labels))[:, None], labels), np.arange(k))
    return np.argmax(counts * (k + 1) + (k - first), axis=1)


def test_lab05_graders_pass_on_correct_functions(capsys):
    check_nearest_neighbours(nn_ok)
    check_majority_vote(vote_ok)
    check_majority_vote(vote_ok_vectorised)
    check_majority_vote(lambda labels, c: torch.as_tensor(vote_ok(labels, c)))
    assert capsys.readouterr().out.count("PASS") == 4


NN_BUGS = {
    "self counted": (lambda tr, q, k, metric="euclidean", exclude_self=False: nn_ok(tr, q, k, metric, False),
                     "its own neighbour"),
    "k plus one": (lambda tr, q, k, metric="euclidean", exclude_self=False: nn_ok(tr, q, k, metric, exclude_self,
                                                                                    extra=1), "off by one"),
    "k minus one (loo)": (lambda tr, q, k, metric="euclidean", exclude_self=False:
                          nn_ok(tr, q, k, metric, False, drop=1) if exclude_self else nn_ok(tr, q, k, metric),
                          "off by one"),
    "similarity as distance": (lambda tr, q, k, metric="euclidean", exclude_self=False:
                               nn_ok(tr, q, k, metric, exclude_self, sign=-1.0), "similarity used as a distance"),
    "no normalisation": (lambda tr, q, k, metric="euclidean", exclude_self=False:
                         nn_ok(tr, q, k, metric, exclude_self, normalise=False), "normalise"),
    "farthest first": (lambda tr, q, k, metric="euclidean", exclude_self=False:
                       nn_ok(tr, q, k, metric, exclude_self, descending=True), "farthest"),
    "unsorted": (lambda tr, q, k, metric="euclidean", exclude_self=False:
                 np.sort(nn_ok(tr, q, k, metric, exclude_self), axis=1), "wrong order"),
}


@pytest.mark.parametrize("bug", sorted(NN_BUGS))
def test_nearest_neighbour_bugs_are_caught(bug):
    fn, hint = NN_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_nearest_neighbours(fn)


VOTE_BUGS = {
    "smallest label wins ties": (lambda labels, c: np.array([np.bincount(r, minlength=c).argmax() for r in labels]),
                                 "numbered"),
    "largest label wins ties": (lambda labels, c: np.array([c - 1 - np.bincount(r, minlength=c)[::-1].argmax()
                                                            for r in labels]), "numbered"),
    "1-NN": (lambda labels, c: labels[:, 0], "1-NN"),
    "k off by one": (lambda labels, c: vote_ok(labels[:, :-1], c), "off by one"),
    "per-query shape": (lambda labels, c: vote_ok(labels, c)[:, None][:3], "shape"),
}


@pytest.mark.parametrize("bug", sorted(VOTE_BUGS))
def test_vote_bugs_are_caught(bug):
    fn, hint = VOTE_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_majority_vote(fn)


def test_vote_that_depends_on_numbering_in_another_way_is_caught():
    def vote_by_label_order(labels, c):
        # ties broken by the *last* neighbour of the tied classes: wrong, and caught as a mismatch
        out = []
        for row in labels:
            counts = np.bincount(row, minlength=c)
            tied = set(np.flatnonzero(counts == counts.max()))
            out.append(next(x for x in row[::-1] if x in tied))
        return np.array(out)
    with pytest.raises(CheckFailed, match="majority vote"):
        check_majority_vote(vote_by_label_order)
