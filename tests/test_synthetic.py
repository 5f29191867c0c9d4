"""Tests of the embedded synthetic face set (ferlib.data.synthetic)."""
import warnings

import numpy as np
import pytest

from ferlib.data.classes import EMOTIONS, SPLITS
from ferlib.data.dataset import FERDataset
from ferlib.data.synthetic import SYNTHETIC_NOTICE, make_synthetic_faces


@pytest.fixture(scope="module")
def small():
    return make_synthetic_faces(n_per_class=40, seed=0)


def test_shapes_dtypes_flags(small):
    n = 7 * 40
    assert isinstance(small, FERDataset)
    assert len(small) == n
    assert small.pixels.shape == (n, 48, 48) and small.pixels.dtype == np.uint8
    assert small.labels.dtype == np.int64 and small.labels.shape == (n,)
    assert small.usage.shape == (n,) and set(np.unique(small.usage)) == set(SPLITS)
    assert np.array_equal(small.rows, np.arange(n))
    assert small.synthetic is True
    assert small.source == "synthetic" and small.format == "synthetic"
    assert "SYNTHETIC" in small.tag
    assert "not FER-2013" in SYNTHETIC_NOTICE


def test_balanced_and_stratified(small):
    assert small.class_counts() == {c: 40 for c in EMOTIONS}
    assert small.split_counts() == {"Training": 7 * 32, "PublicTest": 7 * 4, "PrivateTest": 7 * 4}
    for split in SPLITS:
        assert all(v > 0 for v in small.class_counts(split).values()), split


def test_rows_are_interleaved(small):
    # shuffled: neither classes nor splits come in blocks
    assert np.mean(small.labels[1:] != small.labels[:-1]) > 0.6
    assert np.mean(small.usage[1:] != small.usage[:-1]) > 0.2


def test_tiny_sets_keep_every_class_in_every_split():
    ds = make_synthetic_faces(n_per_class=3, seed=5)
    for split in SPLITS:
        assert all(v == 1 for v in ds.class_counts(split).values())
    ds = make_synthetic_faces(n_per_class=10, seed=5, split_fractions=(0.6, 0.2, 0.2))
    assert ds.split_counts() == {"Training": 42, "PublicTest": 14, "PrivateTest": 14}


@pytest.mark.parametrize("kwargs", [
    {"n_per_class": 2},
    {"split_fractions": (0.9, 0.1, 0.0)},
    {"split_fractions": (0.5, 0.2)},
    {"split_fractions": (0.5, 0.2, 0.2)},
])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        make_synthetic_faces(**{"n_per_class": 10, **kwargs})


def test_deterministic(small):
    again = make_synthetic_faces(n_per_class=40, seed=0)
    assert again.pixels.tobytes() == small.pixels.tobytes()
    assert np.array_equal(again.labels, small.labels)
    assert np.array_equal(again.usage, small.usage)
    other = make_synthetic_faces(n_per_class=40, seed=1)
    assert not np.array_equal(other.pixels, small.pixels)
    assert not np.array_equal(other.labels, small.labels)


def test_images_are_not_blank(small):
    px = small.pixels.astype(np.float32)
    per_image_std = px.reshape(len(px), -1).std(axis=1)
    assert per_image_std.min() > 5
    assert np.median(per_image_std) > 15
    lo, hi = np.percentile(px, [1, 99])
    assert lo < 60 and hi > 190
    assert 60 < px.mean() < 200
    # images differ from one another
    assert len({p.tobytes() for p in small.pixels}) == len(small)


def test_classes_differ_on_average(small):
    means = np.stack([small.pixels[small.labels == k].mean(axis=0) for k in range(7)])
    # the mouth region of happy (smile) and surprise (open mouth) differ visibly
    assert np.abs(means[3] - means[5])[28:44, 12:36].max() > 15


@pytest.fixture(scope="module")
def linear_result():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import confusion_matrix
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    ds = make_synthetic_faces(n_per_class=300, seed=2)
    flat = lambda d: d.pixels.reshape(len(d), -1).astype(np.float32)  # noqa: E731
    train, test = ds.split("Training"), ds.split("PrivateTest")
    scaler = StandardScaler().fit(flat(train))
    # one BLAS thread: multi-threaded BLAS on a small busy machine is many times slower
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore")  # a ConvergenceWarning is fine here
        clf = LogisticRegression(C=0.01, max_iter=100).fit(scaler.transform(flat(train)), train.labels)
    acc = clf.score(scaler.transform(flat(test)), test.labels)
    held = ds.subset(ds.usage != "Training")  # both test splits: more counts for confusions
    cm = confusion_matrix(held.labels, clf.predict(scaler.transform(flat(held))), labels=range(7))
    return acc, cm


def test_linear_model_is_above_chance_but_imperfect(linear_result):
    acc, _ = linear_result
    # measured 0.519 (seed 2); 0.50-0.59 across seeds 0-7, and about 0.62 with n_per_class=1000
    assert 0.30 < acc < 0.95


def test_designed_confusions_are_among_the_largest(linear_result):
    _, cm = linear_result
    sym = cm + cm.T
    iu = np.triu_indices(7, 1)
    order = np.argsort(-sym[iu], kind="stable")
    # seed 2 ranks angry/sad 1st and fear/surprise 3rd-4th of the 21 pairs
    top = {(EMOTIONS[iu[0][k]], EMOTIONS[iu[1][k]]) for k in order[:5]}
    assert ("fear", "surprise") in top, top
    assert ("angry", "sad") in top, top
