"""Chapter 01's floor: EmoNet's face filter (ferlib.features.face_filter) and the linear classifiers on
hand-crafted features (ferlib.jobs.hand_crafted), on the embedded synthetic faces and a real face photo."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ferlib.data.dataset import FERDataset
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.errors import UsageError
from ferlib.features import face_filter as ff
from ferlib.jobs import hand_crafted as hc


@pytest.fixture(autouse=True)
def private_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FERLIB_CACHE_DIR", str(tmp_path / "cache"))


def astronaut_crop() -> np.ndarray:
    """Eileen Collins' face from scikit-image's astronaut photo, cropped and sized as FER-2013 crops faces."""
    from skimage import color, data

    grey = (color.rgb2gray(data.astronaut()) * 255).astype(np.uint8)
    return cv2.resize(grey[74:168, 173:267], (48, 48), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_faces(n_per_class=40, seed=3)


def test_detectors_find_one_real_face_and_none_in_a_flat_image():
    counts = ff.count_faces(np.stack([astronaut_crop(), np.full((48, 48), 128, np.uint8)]))
    assert counts["opencv"].tolist() == [1, 0]
    assert counts["dlib"].tolist() == [1, 0]
    assert ff.detector_canvas(astronaut_crop()).shape == (48 * ff.UPSCALE + 2 * ff.BORDER,) * 2


def test_filter_rules_and_only_training_is_filtered():
    counts = {"opencv": np.array([1, 0, 2, 1, 0, 0]), "dlib": np.array([1, 1, 1, 0, 0, 0])}
    assert ff.passes_filter(counts, "opencv").tolist() == [True, False, False, True, False, False]
    assert ff.passes_filter(counts, "dlib").tolist() == [True, True, True, False, False, False]
    assert ff.passes_filter(counts, "both").tolist() == [True, False, False, False, False, False]
    assert ff.passes_filter(counts, "either").tolist() == [True, True, True, True, False, False]
    ds = FERDataset(pixels=np.zeros((6, 48, 48), np.uint8), labels=np.array([0, 1, 2, 3, 4, 5]),
                    usage=np.array(["Training"] * 4 + ["PublicTest", "PrivateTest"]), rows=np.arange(6),
                    source="test", format="synthetic")
    keep = ff.training_keep_mask(ds, counts, "both")
    assert keep.tolist() == [True, False, False, False, True, True]  # the test rows stay, though no face is found
    table = ff.face_filter_table(ds, counts)
    assert table["Training"]["disgust"] == {"images": 1, "opencv_none": 1, "opencv_several": 0, "dlib_none": 0,
                                            "dlib_several": 0, "dropped_by_opencv": 1, "dropped_by_dlib": 0,
                                            "dropped_by_both": 1, "dropped_by_either": 0}
    with pytest.raises(UsageError, match="unknown face-filter rule 'all'"):
        ff.passes_filter(counts, "all")


def test_face_counts_are_cached(synthetic, monkeypatch):
    ds = synthetic.subset(np.arange(12))
    first = ff.dataset_face_counts(ds)
    assert ff.face_counts_cache_path(ds).exists()
    monkeypatch.setattr(ff, "count_faces", lambda *a, **k: pytest.fail("the cache was not used"))
    second = ff.dataset_face_counts(ds)
    for d in ff.DETECTORS:
        np.testing.assert_array_equal(first[d], second[d])


def test_bad_faces_are_one_clear_error():
    with pytest.raises(UsageError, match="non-finite"):
        ff.count_faces(np.full((1, 48, 48), np.nan))
    with pytest.raises(UsageError, match="one face\\? pass faces\\[None\\]"):
        ff.count_faces(np.zeros((48, 48), np.uint8))


@pytest.mark.parametrize("feature, length", [("pixels", 2304), ("hog", 800), ("emonet-hog", 2592),
                                             ("landmarks", 136), ("emonet-bovw", 2728)])
def test_feature_set_lengths(synthetic, feature, length):
    X = hc.compute_features(feature, synthetic.subset(np.arange(3)))
    assert X.shape == (3, length) and X.dtype == np.float32 and np.isfinite(X).all()


def test_rows_choose_C_on_publictest_and_never_look_at_privatetest(synthetic, tmp_path):
    grid = (1e-4, 1e-2, 1.0)
    first = hc.run_hand_crafted(["hog"], ["logistic", "linear-svm"], dataset=synthetic, c_grid=grid, progress=False)
    assert [r["row"] for r in first] == ["hog--logistic", "hog--linear-svm"]
    for r in first:
        best = max(r["grid"], key=lambda g: g["PublicTest"])
        assert r["chosen_C"] == best["C"] and r["profile"] == "quick" and r["data"]["synthetic"]
        saved = json.loads(open(r["path"]).read())
        assert saved["test_accuracy"] == r["metrics"]["PrivateTest"]["accuracy"]
        assert len(saved["test_predictions"]) == r["metrics"]["PrivateTest"]["n"] == sum(
            sum(row) for row in saved["metrics"]["PrivateTest"]["confusion_matrix"])
        assert "/quick/hand_crafted/" in r["path"].replace("\\", "/")
    # scrambling the PrivateTest labels changes the reported accuracy but not a single choice
    rng = np.random.default_rng(0)
    labels = synthetic.labels.copy()
    test = np.flatnonzero(synthetic.usage == "PrivateTest")
    labels[test] = rng.permutation(labels[test])
    from dataclasses import replace

    second = hc.run_hand_crafted(["hog"], ["logistic", "linear-svm"], dataset=replace(synthetic, labels=labels),
                                 c_grid=grid, progress=False, out_dir=tmp_path / "scrambled")
    for a, b in zip(first, second):
        assert a["chosen_C"] == b["chosen_C"]
        assert [g["PublicTest"] for g in a["grid"]] == [g["PublicTest"] for g in b["grid"]]
        assert a["test_predictions"] == b["test_predictions"]


def test_pca_pixels_keeps_the_variance_it_promises(synthetic):
    (r,) = hc.run_hand_crafted(["pca-pixels"], ["logistic"], dataset=synthetic, c_grid=(1e-2,), progress=False)
    assert r["pipeline"] == ["PCA", "StandardScaler", "LogisticRegression"]
    assert 1 < r["pca_components"] < 2304


def test_face_filter_option_drops_training_rows_only(synthetic, monkeypatch):
    def fake_counts(dataset, **_):
        n = len(dataset)
        return {"opencv": np.where(np.arange(n) % 3 == 0, 0, 1), "dlib": np.ones(n, int)}

    monkeypatch.setattr(ff, "dataset_face_counts", fake_counts)
    ds, info = hc.prepare_data(synthetic, face_filter="both")
    full, _ = hc.prepare_data(synthetic)
    assert info["face_filter"]["dropped_training_images"] > 0
    assert info["images"]["Training"] == (full.usage == "Training").sum() - info["face_filter"]["dropped_training_images"]
    for split in ("PublicTest", "PrivateTest"):
        assert info["images"][split] == (full.usage == split).sum()


def test_mistakes_are_one_clear_message(synthetic):
    with pytest.raises(UsageError, match="unknown feature set 'sift'"):
        hc.run_hand_crafted(["sift"], dataset=synthetic, progress=False)
    with pytest.raises(UsageError, match="unknown classifier 'forest'"):
        hc.run_hand_crafted(["hog"], ["forest"], dataset=synthetic, progress=False)
    with pytest.raises(UsageError, match="positive"):
        hc.run_hand_crafted(["hog"], dataset=synthetic, c_grid=(0.0,), progress=False)
    with pytest.raises(UsageError, match="smoke test"):
        hc.run_hand_crafted(["hog"], dataset=synthetic, publish=True, progress=False)


def test_face_filter_counts_file(synthetic):
    r = hc.run_face_filter_counts(dataset=synthetic.subset(np.arange(30)), progress=False)
    saved = json.loads(open(r["path"]).read())
    assert saved["synthetic"] and sum(t["images"] for t in saved["totals"].values()) == 30
    assert sum(saved["face_count_histogram"]["dlib"]) == 30
