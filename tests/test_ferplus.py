"""FER+ votes: reading, the four label modes, alignment by row index, bad input."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from ferlib.data.classes import FER2013_TO_FERPLUS, FERPLUS_CLASSES, FERPLUS_TO_FER2013, EMOTIONS
from ferlib.data.errors import DataFormatError
from ferlib.data.ferplus import (align_ferplus, ferplus_dataset, ferplus_labels, image_name_numbers,
                                 plurality_agreement, process_votes, read_ferplus_votes)
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


# --- the reference, verbatim: microsoft/FERPlus src/ferplus.py (MIT licence, (c) Microsoft) -----------------
# ``FERPlusReader._process_data`` (``self`` removed) and the row filter of ``load_folders``; the test oracle.
def reference_process_data(emotion_raw, mode):
    size = len(emotion_raw)
    emotion_unknown     = [0.0] * size
    emotion_unknown[-2] = 1.0

    # remove emotions with a single vote (outlier removal)
    for i in range(size):
        if emotion_raw[i] < 1.0 + sys.float_info.epsilon:
            emotion_raw[i] = 0.0

    sum_list = sum(emotion_raw)
    emotion = [0.0] * size

    if mode == 'majority':
        # find the peak value of the emo_raw list
        maxval = max(emotion_raw)
        if maxval > 0.5*sum_list:
            emotion[np.argmax(emotion_raw)] = maxval
        else:
            emotion = emotion_unknown   # force setting as unknown
    elif (mode == 'probability') or (mode == 'crossentropy'):
        sum_part = 0
        count = 0
        valid_emotion = True
        while sum_part < 0.75*sum_list and count < 3 and valid_emotion:
            maxval = max(emotion_raw)
            for i in range(size):
                if emotion_raw[i] == maxval:
                    emotion[i] = maxval
                    emotion_raw[i] = 0
                    sum_part += emotion[i]
                    count += 1
                    if i >= 8:  # unknown or non-face share same number of max votes
                        valid_emotion = False
                        if sum(emotion) > maxval:   # there have been other emotions ahead of unknown or non-face
                            emotion[i] = 0
                            count -= 1
                        break
        if sum(emotion) <= 0.5*sum_list or count > 3: # less than 50% of the votes are integrated, or there are too many emotions, we'd better discard this example
            emotion = emotion_unknown   # force setting as unknown
    elif mode == 'multi_target':
        threshold = 0.3
        for i in range(size):
            if emotion_raw[i] >= threshold*sum_list:
                emotion[i] = emotion_raw[i]
        if sum(emotion) <= 0.5 * sum_list: # less than 50% of the votes are integrated, we discard this example
            emotion = emotion_unknown   # set as unknown

    return [float(i)/sum(emotion) for i in emotion]


def reference_kept(votes, mode):
    """``load_folders``: None if the row is dropped, else the 8-class target."""
    emotion = reference_process_data(list(map(float, votes)), mode)
    idx = np.argmax(emotion)
    if idx < 8:  # not unknown or non-face
        emotion = emotion[:-2]
        return np.array([float(i) / sum(emotion) for i in emotion])
    return None
# --- end of the reference --------------------------------------------------------------------------------------


U, NF = 8, 9
MODES = ("majority", "probability", "crossentropy", "multi_target")


@pytest.mark.parametrize("votes, mode, expected", [
    # single-vote outliers: removed in every column, and they no longer count in the total
    ([6, 0, 0, 1, 0, 0, 0, 0, 2, 1], "majority", {0: 1.0}),           # 6 of 8
    ([4, 1, 1, 1, 3, 0, 0, 0, 0, 0], "majority", {0: 1.0}),           # 4 of 7 (4 of 10 before removal)
    ([4, 0, 0, 1, 3, 2, 0, 0, 0, 0], "majority", {U: 1.0}),           # 4 of 9: no majority -> unknown
    ([1] * 10, "majority", {U: 1.0}),                                 # nothing left
    ([1] * 10, "probability", {U: 1.0}),
    ([1] * 10, "multi_target", {U: 1.0}),
    # ties
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "majority", {U: 1.0}),           # "more than half" is strict
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "probability", {0: .5, 1: .5}),
    ([5, 5, 0, 0, 0, 0, 0, 0, 0, 0], "multi_target", {0: .5, 1: .5}),
    ([4, 4, 2, 0, 0, 0, 0, 0, 0, 0], "majority", {U: 1.0}),
    ([4, 4, 2, 0, 0, 0, 0, 0, 0, 0], "crossentropy", {0: .5, 1: .5}),  # tied tops join together, 80% covered
    ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], "probability", {U: 1.0}),         # 5-way tie: more than 3 classes
    ([4, 2, 2, 2, 0, 0, 0, 0, 0, 0], "probability", {U: 1.0}),         # 4, then a 3-way tie: 4 classes
    ([4, 2, 2, 0, 0, 0, 0, 0, 0, 0], "probability", {0: .5, 1: .25, 2: .25}),
    # probability / crossentropy: walk down until 75% is covered
    ([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], "probability", {0: 5 / 8, 1: 3 / 8}),
    ([5, 3, 2, 0, 0, 0, 0, 0, 0, 0], "crossentropy", {0: 5 / 8, 1: 3 / 8}),
    ([6, 4, 0, 0, 0, 0, 0, 0, 0, 0], "probability", {0: .6, 1: .4}),
    ([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], "probability", {0: .4, 1: .3, 2: .3}),
    # not a face
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], "majority", {NF: 1.0}),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], "probability", {NF: 1.0}),
    ([0, 0, 0, 0, 0, 0, 0, 0, 0, 10], "multi_target", {NF: 1.0}),
    ([7, 0, 0, 0, 0, 0, 0, 0, 0, 3], "multi_target", {0: .7, NF: .3}),  # NF kept at 30%, stripped later
    # unknown-dominated: the target *is* unknown (the row is dropped)
    ([3, 0, 0, 0, 0, 0, 0, 0, 7, 0], "majority", {U: 1.0}),
    ([3, 0, 0, 0, 0, 0, 0, 0, 7, 0], "probability", {U: 1.0}),
    ([3, 0, 0, 0, 0, 0, 0, 0, 7, 0], "multi_target", {0: .3, U: .7}),
    # unknown after an emotion: left out, the walk stops
    ([6, 0, 0, 0, 0, 0, 0, 0, 4, 0], "probability", {0: 1.0}),
    ([0, 4, 0, 0, 0, 0, 0, 0, 4, 2], "probability", {U: 1.0}),        # only 4 of 10 kept
    ([0, 4, 0, 0, 0, 0, 0, 0, 4, 2], "multi_target", {1: .5, U: .5}),  # argmax = happiness (first of ties)
    # multi_target: >= 30% of ALL votes (not of the top class's), kept votes must exceed 50%
    ([6, 2, 0, 0, 0, 0, 0, 0, 2, 0], "multi_target", {0: 1.0}),        # 2 < 3 (30% of top would keep them)
    ([4, 3, 3, 0, 0, 0, 0, 0, 0, 0], "multi_target", {0: .4, 1: .3, 2: .3}),
    ([3, 3, 2, 2, 0, 0, 0, 0, 0, 0], "multi_target", {0: .5, 1: .5}),  # 6 of 10 kept
    ([4, 2, 2, 2, 0, 0, 0, 0, 0, 0], "multi_target", {U: 1.0}),        # only 4 of 10 reach 30%
    ([4, 2, 2, 0, 0, 0, 0, 0, 0, 0], "multi_target", {U: 1.0}),        # exactly 50% kept is not enough
])
def test_process_votes(votes, mode, expected):
    t = process_votes(np.array(votes), mode)
    want = np.zeros(10)
    for k, v in expected.items():
        want[k] = v
    np.testing.assert_allclose(t, want, atol=1e-12)
    np.testing.assert_allclose(reference_process_data(list(map(float, votes)), mode), want, atol=1e-12)


def _vote_rows(n, seed=0):
    """Random 10-vote rows, many with ties, single votes and unknown/NF votes."""
    rng = np.random.default_rng(seed)
    rows = [rng.multinomial(10, rng.dirichlet(np.full(10, a))) for a in (0.2, 0.5, 1.0) for _ in range(n // 3)]
    rows += [np.array(v) for v in ([2, 2, 2, 2, 2, 0, 0, 0, 0, 0], [3, 3, 0, 0, 0, 0, 0, 0, 3, 1],
                                   [0, 0, 0, 0, 0, 0, 0, 0, 5, 5], [3, 0, 0, 0, 0, 0, 0, 0, 3, 3],
                                   [0, 3, 3, 0, 0, 0, 0, 0, 0, 3], [2, 2, 2, 0, 0, 0, 0, 0, 2, 2])]
    return rows


@pytest.mark.parametrize("mode", MODES)
def test_process_votes_matches_reference(mode):
    for votes in _vote_rows(1500):
        want = reference_process_data(list(map(float, votes)), mode)
        np.testing.assert_allclose(process_votes(votes, mode), want, atol=1e-12, err_msg=f"{mode} {list(votes)}")


def test_probability_and_crossentropy_store_the_same_target():
    for votes in _vote_rows(300, seed=1):
        np.testing.assert_array_equal(process_votes(votes, "probability"), process_votes(votes, "crossentropy"))


def test_labels_match_reference_filter(tmp_path):
    rows = _vote_rows(600, seed=2)
    path = write_votes(tmp_path / "v.csv", [("Training", f"fer{i}.png", v) for i, v in enumerate(rows)])
    votes = read_ferplus_votes(path)
    for mode in MODES:
        labels = ferplus_labels(votes, mode)
        want = {i: t for i, v in enumerate(rows) if (t := reference_kept(v, mode)) is not None}
        assert list(labels.rows) == sorted(want)
        np.testing.assert_allclose(labels.targets, np.array([want[i] for i in sorted(want)]).reshape(-1, 8),
                                   atol=1e-6)
        np.testing.assert_array_equal(labels.labels, labels.targets.argmax(1))


def test_labels_unknown_nf_columns_removed(tmp_path):
    path = write_votes(tmp_path / "v.csv", [
        ("Training", "a.png", [0, 4, 0, 0, 0, 0, 0, 0, 4, 2]),  # multi_target: happiness beside unknown
        ("Training", "b.png", [7, 0, 0, 0, 0, 0, 0, 0, 0, 3]),  # multi_target: neutral beside NF
        ("Training", "c.png", [3, 0, 0, 0, 0, 0, 0, 0, 7, 0]),  # unknown-dominated: dropped
    ])
    labels = ferplus_labels(read_ferplus_votes(path), "multi_target")
    assert list(labels.rows) == [0, 1]
    np.testing.assert_allclose(labels.targets, np.eye(8)[[1, 0]])


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
    assert 0 < len(labels.rows) < 35887 - 173
    # every mode keeps exactly the rows the reference keeps (majority: 31,412 named rows)
    for mode in MODES:
        kept = ferplus_labels(votes, mode) if mode != "majority" else labels
        want = [r for r in named if reference_kept(votes.votes[r], mode) is not None]
        assert list(kept.rows) == want, mode
    assert len(labels.rows) == 31412


# --- per-draw training targets and the loss -------------------------------------------------------------------
def test_sample_one_hot_frequencies_converge():
    torch = pytest.importorskip("torch")
    from ferlib.data.ferplus import sample_one_hot

    p = torch.tensor([[0.5, 0.3, 0.2, 0.0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0.25, 0.75]])
    soft = p.repeat(20000, 1)  # 20,000 draws of each row in one call
    y = sample_one_hot(soft, torch.Generator().manual_seed(0))
    assert y.shape == soft.shape and y.dtype == soft.dtype
    assert torch.equal(y.sum(1), torch.ones(len(y)))  # one-hot
    assert not (y[soft == 0] != 0).any()  # a class without votes is never drawn
    freq = torch.stack([y[0::2].mean(0), y[1::2].mean(0)])
    assert torch.allclose(freq, p, atol=0.015)  # std of a frequency at n = 20,000 is <= 0.0036
    again = sample_one_hot(soft, torch.Generator().manual_seed(0))
    assert torch.equal(y, again)  # same seed, same labels
    other = sample_one_hot(soft, torch.Generator().manual_seed(1))
    assert not torch.equal(y, other)  # a new draw each time the batch is drawn


def test_sample_one_hot_unnormalised_and_bad_rows():
    torch = pytest.importorskip("torch")
    from ferlib.data.ferplus import sample_one_hot

    y = sample_one_hot(torch.tensor([[0.0, 3.0, 0.0], [2.0, 0.0, 0.0]]), torch.Generator().manual_seed(0))
    assert y.tolist() == [[0, 1, 0], [1, 0, 0]]
    with pytest.raises(ValueError, match="positive sum"):
        sample_one_hot(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="batch, classes"):
        sample_one_hot(torch.ones(3))


def test_training_targets_per_mode():
    torch = pytest.importorskip("torch")
    from ferlib.data.ferplus import MULTI_TARGET_EPSILON, training_targets

    soft = torch.tensor([[0.625, 0.375, 0, 0, 0, 0, 0, 0]])
    assert torch.equal(training_targets(soft, "crossentropy"), soft)  # the distribution itself
    assert torch.equal(training_targets(soft, "majority"), soft)
    y = training_targets(soft.repeat(4000, 1), "probability", torch.Generator().manual_seed(0))
    assert set(y.argmax(1).tolist()) == {0, 1} and abs(y[:, 0].mean().item() - 0.625) < 0.03
    mt = training_targets(torch.tensor([[0.5, 0.5, 0, 0, 0, 0, 0, 0]]), "multi_target")
    eps = MULTI_TARGET_EPSILON
    assert torch.allclose(mt, torch.tensor([[1.0, 1.0] + [eps] * 6]))


def test_ferplus_loss():
    torch = pytest.importorskip("torch")
    from ferlib.data.ferplus import ferplus_loss, training_targets

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0, 0, 0, 0]])
    soft = torch.tensor([[0.6, 0.4, 0, 0, 0, 0, 0, 0]])
    logp = torch.log_softmax(logits, 1)
    assert torch.allclose(ferplus_loss(logits, soft, "crossentropy"), -(0.6 * logp[0, 0] + 0.4 * logp[0, 1]))
    assert torch.allclose(ferplus_loss(logits, soft, "crossentropy"), ferplus_loss(logits, soft, "probability"))
    # multi_target: the loss of the best kept class; class 1 kept alone costs more than 0 and 1 kept
    mask01 = training_targets(torch.tensor([[0.5, 0.5, 0, 0, 0, 0, 0, 0]]), "multi_target")
    mask1 = training_targets(torch.tensor([[0.0, 1.0, 0, 0, 0, 0, 0, 0]]), "multi_target")
    p = torch.softmax(logits, 1)
    assert torch.allclose(ferplus_loss(logits, mask01, "multi_target"), -torch.log(p[0, 0]))  # kept: weight 1
    assert ferplus_loss(logits, mask1, "multi_target") > ferplus_loss(logits, mask01, "multi_target")


def test_ferplus_dataset_evaluates_in_majority_mode(tiny_csv, tmp_path):
    path, rows = tiny_csv
    ds = read_fer2013_csv(path)
    no_majority = [5, 3, 2, 0, 0, 0, 0, 0, 0, 0]  # probability target 5/8, 3/8; no majority
    vote_rows = [(u, f"fer{i}.png", no_majority if i % 2 else [0, 0, 0, 9, 0, 0, 0, 0, 1, 0])
                 for i, (_, _, u) in enumerate(rows)]
    votes = read_ferplus_votes(write_votes(tmp_path / "v.csv", vote_rows))
    usage = np.array([u for _, _, u in rows])
    images, labels = ferplus_dataset(ds, votes, "probability")
    odd = labels.rows % 2 == 1
    assert set(labels.usage[odd]) == {"Training"}  # eval splits: majority rule drops the no-majority rows
    even = np.arange(len(rows)) % 2 == 0
    assert len(labels.rows) == (usage == "Training").sum() + ((usage != "Training") & even).sum()
    np.testing.assert_allclose(labels.targets[odd][:, :2], [[5 / 8, 3 / 8]] * odd.sum())
    assert list(labels.rows) == sorted(labels.rows) and labels.mode == "probability"
    np.testing.assert_array_equal(images.labels, labels.labels)
    _, same = ferplus_dataset(ds, votes, "probability", eval_mode=None)  # every split in probability mode
    assert len(same.rows) == len(rows)


def test_plurality_agreement_collapses_when_misaligned(tiny_csv, tmp_path):
    path, rows = tiny_csv
    ds = read_fer2013_csv(path)
    vote_rows, number = [], 0
    for i, (label, _, usage) in enumerate(rows):
        votes = [0] * 10
        if i == 3:  # FER+ dropped this row: no name, "not a face"; later names drift by one
            votes[9] = 10
            vote_rows.append((usage, "", votes))
            continue
        votes[FER2013_TO_FERPLUS[label]] = 10  # the crowd agrees with FER-2013 everywhere
        vote_rows.append((usage, f"fer{number:07d}.png", votes))
        number += 1
    votes = read_ferplus_votes(write_votes(tmp_path / "fer2013new.csv", vote_rows))
    np.testing.assert_array_equal(image_name_numbers(votes), [0, 1, 2, -1, *range(3, len(rows) - 1)])
    agreement = plurality_agreement(ds, votes)
    assert agreement["row index"] == 1.0
    assert agreement["row index + 1"] == 0.0  # consecutive rows never share a label here
    assert agreement["Image name"] == pytest.approx(3 / (len(rows) - 1))  # right until the name drifts
    named_labels = np.array([label for i, (label, _, _) in enumerate(rows) if i != 3])
    freq = np.bincount(named_labels, minlength=7) / len(named_labels)
    assert agreement["chance"] == pytest.approx(float(freq @ freq))  # the same frequencies on both sides


def test_image_name_numbers_rejects_other_names(tmp_path):
    votes = read_ferplus_votes(write_votes(tmp_path / "v.csv", [("Training", "img_1.jpg", [10] + [0] * 9)]))
    with pytest.raises(DataFormatError, match="not of the form ferNNNNNNN.png"):
        image_name_numbers(votes)
