"""Chapter 08's FER+ label protocol (Sobel-Laplacian-CL §II, §III-A, as the reference makes it) on hand-made
vote rows, the synthetic votes, and the real counts."""
from __future__ import annotations

import numpy as np
import pytest

from ferlib.data.classes import FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS, SPLITS
from ferlib.data.errors import DataNotFoundError
from ferlib.data.ferplus import (FERPLUS_SUSPECT_ROWS, FERPlusVotes, ferplus_labels, load_ferplus,
                                 majority_without_outlier_removal, synthetic_votes)
from ferlib.data.synthetic import make_synthetic_faces


def votes_of(rows, names=None, usage="Training") -> FERPlusVotes:
    v = np.array(rows, dtype=np.int64)
    names = np.array(names if names is not None else [f"fer{i:07d}.png" for i in range(len(v))])
    return FERPlusVotes(v, np.array([usage] * len(v)), names, "hand-made")


def row(**counts) -> list[int]:
    """A vote row from column names: ``row(neutral=6, anger=4)``."""
    return [counts.get(c, 0) for c in FERPLUS_VOTE_COLUMNS]


@pytest.mark.parametrize("counts, label", [
    (row(happiness=10), "happiness"),
    (row(contempt=6, neutral=4), "contempt"),                         # contempt is a class (index 7)
    (row(neutral=5, happiness=5), None),                              # a tie: neither holds more than half
    (row(neutral=4, happiness=4, sadness=2), None),                   # a tie at the top
    (row(neutral=5, happiness=3, sadness=2), None),                   # exactly 50 % of 10: not more than half
    # exactly 50 % of the ten votes, but the five single votes are removed first: 5 of 5 remain
    (row(neutral=5, happiness=1, surprise=1, sadness=1, anger=1, fear=1), "neutral"),
    (row(neutral=5, happiness=2, sadness=2, anger=1), "neutral"),     # 5 of the 9 that remain
    (row(NF=10), None),                                               # not a face
    (row(NF=6, neutral=4), None),                                     # mostly not a face
    (row(unknown=6, neutral=4), None),                                # unknown wins: dropped
    (row(neutral=6, NF=4), "neutral"),                                # a face after all
    (row(anger=9), "anger"),                                          # the 9-vote row of FER+
])
def test_majority_rule_on_hand_made_rows(counts, label):
    labels = ferplus_labels(votes_of([counts]), "majority")
    if label is None:
        assert len(labels.rows) == 0
    else:
        assert list(labels.rows) == [0]
        assert FERPLUS_CLASSES[int(labels.labels[0])] == label
        np.testing.assert_array_equal(labels.targets[0], np.eye(8)[FERPLUS_CLASSES.index(label)])


def test_the_literal_rule_differs_where_single_votes_are_removed():
    """"More than 50 % of the votes" over all ten votes drops the rows the reference keeps after removing single votes."""
    v = votes_of([row(neutral=5, happiness=1, surprise=1, sadness=1, anger=1, fear=1),
                  row(neutral=6, happiness=4), row(neutral=5, happiness=5), row(NF=10), row(neutral=7, NF=3)])
    assert list(majority_without_outlier_removal(v)) == [-1, 0, -1, -1, 0]
    assert list(ferplus_labels(v, "majority").rows) == [0, 1, 4]


def test_label_order_is_ferplus_not_fer2013():
    assert FERPLUS_CLASSES == ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
    labels = ferplus_labels(votes_of([row(**{c: 10}) for c in FERPLUS_CLASSES]), "majority")
    assert list(labels.labels) == list(range(8))


def test_nameless_rows_are_dropped():
    v = votes_of([row(happiness=10), row(happiness=10)], names=["fer0000000.png", ""])
    assert list(ferplus_labels(v, "majority").rows) == [0]


def test_synthetic_votes_run_the_protocol_and_say_so():
    faces = make_synthetic_faces(n_per_class=150)
    votes = synthetic_votes(faces)
    assert votes.votes.shape == (len(faces), 10) and (votes.votes.sum(1) == 10).all()
    assert "synthetic" in votes.source
    assert (votes.image_names == "").any() and (votes.votes[:, 9] == 10).any()  # dropped rows exist, as in FER+
    labels = ferplus_labels(votes, "majority")
    assert 0.5 < len(labels.rows) / len(faces) < 0.99
    assert set(np.unique(labels.labels)) == set(range(8))  # contempt too
    np.testing.assert_array_equal(synthetic_votes(faces).votes, votes.votes)  # deterministic


def test_load_ferplus_without_data_uses_synthetic_votes(monkeypatch, tmp_path):
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    images, labels = load_ferplus(verbose=False, synthetic_per_class=30)
    assert images.synthetic and "SYNTHETIC" in images.tag and images.class_names == FERPLUS_CLASSES
    assert set(images.usage) == set(SPLITS) and len(images) == len(labels.rows)


def test_load_ferplus_needs_the_votes_beside_real_fer2013(shared_data, tmp_path):
    (tmp_path / "fer2013").mkdir()
    (tmp_path / "fer2013" / "fer2013.npz.xz").symlink_to(shared_data / "fer2013" / "fer2013.npz.xz")
    with pytest.raises(DataNotFoundError, match="fer2013new.csv"):
        load_ferplus(tmp_path, verbose=False)


def test_real_ferplus_counts(shared_data):
    images, labels = load_ferplus(shared_data, verbose=False)
    assert images.class_names == FERPLUS_CLASSES and not images.synthetic
    counts = {s: images.class_counts(s) for s in SPLITS}
    # every class in every split, contempt the rarest in training, neutral the largest
    assert all(n > 0 for c in counts.values() for n in c.values())
    assert max(counts["Training"], key=counts["Training"].get) == "neutral"
    assert not np.isin(FERPLUS_SUSPECT_ROWS, labels.rows).any()
    # the same rows as the rule applied to the file: every kept row has a strict majority after single-vote removal
    from ferlib.data.ferplus import read_ferplus_votes

    votes = read_ferplus_votes(shared_data / "ferplus" / "fer2013new.csv")
    v = np.where(votes.votes[labels.rows] <= 1, 0, votes.votes[labels.rows])
    assert (v.max(1) > 0.5 * v.sum(1)).all() and (v.argmax(1) == labels.labels).all()
    assert sum(images.split_counts().values()) == len(ferplus_labels(votes, "majority").rows) - len(
        [r for r in FERPLUS_SUSPECT_ROWS if r in set(ferplus_labels(votes, "majority").rows)])
