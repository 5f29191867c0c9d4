"""FER+ votes: reading, the four label modes, alignment by row index, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from ferlib.data.classes import FER2013_TO_FERPLUS, FERPLUS_CLASSES, FERPLUS_TO_FER2013, EMOTIONS
from ferlib.data.errors import DataFormatError
from ferlib.data.ferplus import (align_ferplus, ferplus_dataset, ferplus_labels, process_votes,
                                 read_ferplus_votes)
from ferlib.data.readers import read_fer2013_csv

HEADER = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n"


def write_votes(path, rows):
    with open(path, "w") as f:
        f.write(HEADER)
        for usage, name, votes in rows:
            f.write(f"{usage},{name},{','.join(map(str, votes))}\n")
    return path


def test_class_mapping_round_trip():
    for code, name in enumerate(EMOTIONS):
        j = FER2013_TO_FERPLUS[code]
        assert FERPLUS_TO_FER2013[j] == code
        assert FERPLUS_CLASSES[j][:3] == {"angry": "ang", "disgust": "dis", "fear": "fea", "happy": "hap",
                                          "sad": "sad", "surprise": "sur", "neutral": "neu"}[name]
    assert FERPLUS_TO_FER2013[FERPLUS_CLASSES.index("contempt")] is None


@pytest.mark.parametrize("votes, mode, expected", [
    ([6, 0, 0, 1, 0, 0, 0, 0, 2, 1], "majority", {0: 1.0}),           # single votes dropped: 6/8
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "majority", {8: 1.0}),           # 4/9: no majority -> unknown
    ([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], "probability", {0: 5 / 8, 1: 3 / 8}),   # stops once 75% covered
    ([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], "crossentropy", {0: 5 / 8, 1: 3 / 8}),
    ([5, 2, 2, 0, 0, 0, 0, 0, 0, 0], "probability", {0: 5 / 9, 1: 2 / 9, 2: 2 / 9}),  # ties join together
    ([6, 4, 0, 0, 0, 0, 0, 0, 0, 0], "probability", {0: .6, 1: .4}),
    ([6, 2, 0, 0, 0, 0, 0, 0, 2, 0], "multi_target", {0: .6, 1: .2, 8: .2}),  # >= 30% of top
    ([7, 0, 0, 0, 0, 0, 0, 0, 0, 3], "multi_target", {0: .7, 9: .3}),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], "majority", {9: 1.0}),           # not a face
])
def test_process_votes(votes, mode, expected):
    t = process_votes(np.array(votes), mode)
    want = np.zeros(10)
    for k, v in expected.items():
        want[k] = v
    np.testing.assert_allclose(t, want, atol=1e-12)


def test_labels_drop_unknown_nf_and_nameless(tmp_path):
    path = write_votes(tmp_path / "fer2013new.csv", [
        ("Training", "fer0.png", [10, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        ("Training", "", [0, 10, 0, 0, 0, 0, 0, 0, 0, 0]),            # dropped by FER+: no name
        ("PublicTest", "fer2.png", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]),  # not a face
        ("PrivateTest", "fer3.png", [0, 0, 0, 0, 0, 0, 0, 7, 3, 0]),  # contempt
    ])
    labels = ferplus_labels(read_ferplus_votes(path), "majority")
    assert list(labels.rows) == [0, 3]
    assert list(labels.labels) == [0, FERPLUS_CLASSES.index("contempt")]
    assert labels.targets.shape == (2, 8)
    np.testing.assert_allclose(labels.targets.sum(1), 1.0)


def test_alignment_by_row_index(tiny_csv, tmp_path):
    path, rows = tiny_csv
    ds = read_fer2013_csv(path)
    # names deliberately scrambled: alignment must use the row index, not the name
    vote_rows = [(u, f"fer{(i * 7) % len(rows):07d}.png", [0] * 3 + [10] + [0] * 6) for i, (_, _, u) in enumerate(rows)]
    vote_rows[4] = (rows[4][2], "fer0000004.png", [0, 0, 0, 0, 0, 0, 0, 10, 0, 0])
    votes = read_ferplus_votes(write_votes(tmp_path / "fer2013new.csv", vote_rows))
    images, labels = ferplus_dataset(ds, votes, "majority")
    assert len(images) == len(rows)
    np.testing.assert_array_equal(images.pixels[4], rows[4][1])
    assert images.labels[4] == FERPLUS_CLASSES.index("contempt")
    assert images.class_names == FERPLUS_CLASSES


def test_row_count_mismatch(tiny_csv, tmp_path):
    path, rows = tiny_csv
    ds = read_fer2013_csv(path)
    vpath = write_votes(tmp_path / "fer2013new.csv", [(u, "x.png", [10] + [0] * 9) for _, _, u in rows[:-1]])
    with pytest.raises(DataFormatError) as err:
        align_ferplus(ds, read_ferplus_votes(vpath))
    assert f"{len(rows) - 1} rows of votes, but" in str(err.value) and str(vpath) in str(err.value)


def test_usage_mismatch(tiny_csv, tmp_path):
    path, rows = tiny_csv
    ds = read_fer2013_csv(path)
    vrows = [(u, "x.png", [10] + [0] * 9) for _, _, u in rows]
    vrows[0] = ("PublicTest", "x.png", [10] + [0] * 9)
    with pytest.raises(DataFormatError, match="row 0"):
        align_ferplus(ds, read_ferplus_votes(write_votes(tmp_path / "v.csv", vrows)))


def test_bad_votes_file(tmp_path):
    p = tmp_path / "fer2013new.csv"
    p.write_text(HEADER + "Training,fer0.png,1,2,x,0,0,0,0,0,0,0\n")
    with pytest.raises(DataFormatError, match=r"row 0 \(line 2\)"):
        read_ferplus_votes(p)
    p.write_text("a,b,c\n")
    with pytest.raises(DataFormatError, match="not FER\\+'s fer2013new.csv"):
        read_ferplus_votes(p)


def test_real_ferplus(real_fer2013, shared_data):
    votes = read_ferplus_votes(shared_data / "ferplus" / "fer2013new.csv")
    align_ferplus(real_fer2013, votes)
    assert len(votes) == 35887
    assert (votes.image_names == "").sum() == 173  # data README: all NF = 10
    labels = ferplus_labels(votes, "majority")
    # Alignment: the FER+ plurality agrees with the FER-2013 label for about 63 % of named rows
    # (data README: 63.4 %; 62.8 % with argmax's first-of-ties rule), and shifting by one row
    # drops it to about 18 %.
    named = np.flatnonzero(votes.image_names != "")
    to_ferplus = np.array(FER2013_TO_FERPLUS)
    plural = votes.votes[named, :8].argmax(1)
    assert 0.60 < (plural == to_ferplus[real_fer2013.labels[named]]).mean() < 0.67
    shifted = named[named + 1 < len(votes)]
    assert (votes.votes[shifted, :8].argmax(1) == to_ferplus[real_fer2013.labels[shifted + 1]]).mean() < 0.25
    assert 0 < len(labels.rows) < 35887 - 177
