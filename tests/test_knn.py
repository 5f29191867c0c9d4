"""k-NN on embeddings: agreement with scikit-learn, the label-free tie rule, leave-one-out, k chosen on PublicTest."""
import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from ferlib.evaluate.knn import (
    DEFAULT_KS,
    choose_k,
    knn_evaluate,
    knn_predict,
    knn_sweep,
    majority_vote,
    nearest_neighbours,
)


def data(seed=0, n=400, q=150, dim=6, classes=5):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, dim)).astype(np.float32), rng.integers(0, classes, n),
            rng.normal(size=(q, dim)).astype(np.float32), rng.integers(0, classes, q))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("k", [1, 2, 4, 7, 12])
def test_agrees_with_sklearn_where_the_vote_has_a_unique_winner(metric, k):
    x, y, q, _ = data(k)
    ours = knn_predict(x, y, q, k, metric=metric, chunk_size=37).numpy()   # several chunks
    sk = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute").fit(x, y)
    proba = sk.predict_proba(q)
    unique = (proba == proba.max(1, keepdims=True)).sum(1) == 1
    assert unique.sum() > 0.15 * len(q)
    assert np.array_equal(ours[unique], sk.predict(q)[unique])


def test_ties_go_to_the_class_of_the_nearest_neighbour_whatever_the_numbering():
    # query at 0; neighbours at 1 (class 3), 2 (class 0), 3 (class 0), 4 (class 3): a 2-2 tie at k=4
    train = torch.tensor([[1.0], [2.0], [3.0], [4.0], [10.0]])
    labels = torch.tensor([3, 0, 0, 3, 1])
    assert knn_predict(train, labels, torch.zeros(1, 1), 4).item() == 3  # bincount-argmax would say 0
    x, y, q, _ = data(3, classes=4)
    for k in (2, 4, 6):
        base = knn_predict(x, y, q, k).numpy()
        for seed in range(3):
            perm = np.random.default_rng(seed).permutation(4)    # renumber the classes
            renamed = knn_predict(x, perm[y], q, k).numpy()
            assert np.array_equal(renamed, perm[base])


def test_exclude_self_is_leave_one_out():
    x, y, _, _ = data(1, n=120)
    with_self = knn_predict(x, y, x, 1).numpy()
    assert np.array_equal(with_self, y)            # each point is its own nearest neighbour
    loo = knn_predict(x, y, x, 1, exclude_self=True, chunk_size=50).numpy()
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    assert np.array_equal(loo, y[d.argmin(1)])
    sk = KNeighborsClassifier(5, algorithm="brute").fit(x, y)
    idx = sk.kneighbors(n_neighbors=5, return_distance=False)   # sklearn's leave-one-out neighbours
    votes = np.array([np.bincount(y[i], minlength=5) for i in idx])
    unique = (votes == votes.max(1, keepdims=True)).sum(1) == 1
    ours = knn_predict(x, y, x, 5, exclude_self=True).numpy()
    assert np.array_equal(ours[unique], votes.argmax(1)[unique])
    with pytest.raises(ValueError, match="leave-one-out"):
        knn_predict(x, y, x[:10], 1, exclude_self=True)
    with pytest.raises(ValueError, match="less the query itself"):
        knn_predict(x, y, x, 120, exclude_self=True)


def test_cosine_ranks_by_similarity_not_by_length():
    train = torch.tensor([[10.0, 0.0], [0.1, 0.1]])
    labels = torch.tensor([0, 1])
    q = torch.tensor([[1.0, 1.1]])
    assert knn_predict(train, labels, q, 1, metric="euclidean").item() == 1   # short vector is closer
    assert knn_predict(train, labels, q, 1, metric="cosine").item() == 1      # and points the same way
    q2 = torch.tensor([[5.0, 0.1]])
    assert knn_predict(train, labels, q2, 1, metric="cosine").item() == 0


def test_sweep_choose_k_and_evaluate():
    x, y, q, qy = data(2)
    sweep = knn_sweep(x, y, q, qy, ks=(1, 3, 5))
    for k in (1, 3, 5):
        assert sweep[k] == pytest.approx(float((knn_predict(x, y, q, k).numpy() == qy).mean()))
    best, sweep2 = choose_k(x, y, q, qy, ks=(5, 3, 1))
    assert sweep2 == sweep and sweep[best] == max(sweep.values())
    assert best == min(k for k, a in sweep.items() if a == max(sweep.values()))   # ties: smallest k
    # ties between ks: identical training labels make every k equally good
    best_tie, _ = choose_k(x, np.zeros_like(y), q, np.zeros_like(qy), ks=(7, 3, 9))
    assert best_tie == 3


def test_knn_evaluate_chooses_k_on_publictest_only():
    x, y, q, qy = data(4, q=200)
    pub, priv = (q[:100], qy[:100]), (q[100:], qy[100:])
    res = knn_evaluate((x, y), pub, priv, ks=(1, 5, 9))
    assert set(res) == {"k", "metric", "sweep", "PublicTest", "PrivateTest", "predictions"}
    assert res["sweep"] == knn_sweep(x, y, *pub, ks=(1, 5, 9))
    assert res["PublicTest"] == res["sweep"][res["k"]] == max(res["sweep"].values())
    assert res["PrivateTest"] == pytest.approx(float((res["predictions"]["PrivateTest"] == priv[1]).mean()))
    assert isinstance(res["predictions"]["PublicTest"], np.ndarray)
    # PrivateTest labels do not influence the choice of k
    shuffled = (priv[0], np.random.default_rng(0).permutation(priv[1]))
    assert knn_evaluate((x, y), pub, shuffled, ks=(1, 5, 9))["k"] == res["k"]
    assert DEFAULT_KS[0] == 1 and all(k % 2 for k in DEFAULT_KS)


def test_bad_input_is_refused():
    x, y, q, qy = data(5)
    with pytest.raises(ValueError, match="metric"):
        knn_predict(x, y, q, 3, metric="manhattan")
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(x, y, q, 0)
    with pytest.raises(ValueError, match="k must be"):
        knn_predict(x, y, q, len(x) + 1)
    with pytest.raises(ValueError, match="same model"):
        knn_predict(x, y, q[:, :3], 3)
    with pytest.raises(ValueError, match="train_labels"):
        knn_predict(x, y[:-1], q, 3)
    with pytest.raises(ValueError, match="integer class codes"):
        knn_predict(x, y.astype(np.float32), q, 3)
    with pytest.raises(ValueError, match="num_classes"):
        knn_predict(x, y, q, 3, num_classes=2)
    with pytest.raises(ValueError, match="ks"):
        knn_sweep(x, y, q, qy, ks=())
    with pytest.raises(ValueError, match="labels for"):
        knn_sweep(x, y, q, qy[:-1], ks=(1,))
    with pytest.raises(TypeError, match="pair"):
        knn_evaluate((x, y), q, (q, qy))


def test_nearest_neighbours_are_sorted_nearest_first_and_match_sklearn():
    x, _, q, _ = data(6)
    for metric in ("euclidean", "cosine"):
        idx = nearest_neighbours(x, q, 6, metric=metric, chunk_size=40).numpy()
        sk = KNeighborsClassifier(6, metric=metric, algorithm="brute").fit(x, np.zeros(len(x)))
        assert np.array_equal(idx, sk.kneighbors(q, return_distance=False))
    loo = nearest_neighbours(x, x, 3, exclude_self=True).numpy()
    assert not np.any(loo == np.arange(len(x))[:, None])


def test_majority_vote():
    labels = torch.tensor([[2, 1, 1, 3], [0, 5, 5, 2], [4, 3, 3, 4], [6, 6, 0, 0]])
    assert majority_vote(labels).tolist() == [1, 5, 4, 6]   # rows 3 and 4 tie: the nearest neighbour's class wins
    assert majority_vote(labels, num_classes=9).tolist() == [1, 5, 4, 6]
    with pytest.raises(ValueError, match="num_classes"):
        majority_vote(labels, num_classes=3)
    with pytest.raises(ValueError, match=r"\(queries, k\)"):
        majority_vote(torch.tensor([1, 2]))
