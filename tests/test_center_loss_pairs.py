"""Chapter 03's pairs of runs (softmax alone / + center loss): finding real ones, training a quick one, features."""
import json
from dataclasses import replace

import numpy as np
import pytest

from ferlib.data.synthetic import make_synthetic_faces
from ferlib.chapters import center_loss_pairs as pairs
from ferlib.train.checkpoint import load_model
from ferlib.train.criteria import CenterLossConfig, CrossEntropyConfig
from ferlib.train.recipes import Budget


def _touch(path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    return path


@pytest.fixture
def runs(tmp_path, monkeypatch):
    """Empty runs/ and results/ in place of the kit's (the committed models/ stay visible)."""
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


def test_real_checkpoint_prefers_full_and_never_confuses_prefixes(runs):
    r = runs / "runs"
    assert pairs.real_checkpoint("densenet") is None
    other = _touch(r / "densenet-center-60min-cpu-seed0" / "best.pt")  # "densenet-*" matches this too
    assert pairs.real_checkpoint("densenet") is None
    assert pairs.real_checkpoint("densenet-center") == other
    budget = _touch(r / "densenet-60min-cpu-seed0" / "best.pt")
    assert pairs.real_checkpoint("densenet") == budget
    _touch(r / "densenet-quick-synthetic-seed0" / "best.pt")  # a smoke test on synthetic faces is never "real"
    assert pairs.real_checkpoint("densenet") == budget
    full = _touch(r / "densenet-full-seed0" / "best.pt")
    assert pairs.real_checkpoint("densenet") == full


def test_the_committed_pair_is_found_without_any_run_folder(runs):
    found = pairs.real_checkpoint_pair()
    assert list(found) == ["softmax only (densenet-bc)", "softmax + center loss (densenet-bc-center)"]
    assert all(p.parent.name == "models" and p.is_file() for p in found.values())


def test_real_checkpoint_pair_needs_both_runs_on_one_budget(runs):
    r = runs / "runs"
    _touch(r / "wide-densenet-bc-full-seed0" / "best.pt")
    assert list(pairs.real_checkpoint_pair())[0] == "softmax only (densenet-bc)"  # the committed pair, not a half
    _touch(r / "wide-densenet-bc-center-60min-cpu-seed0" / "best.pt")
    assert list(pairs.real_checkpoint_pair())[0] == "softmax only (densenet-bc)"  # full vs budget: not a fair pair
    one = _touch(r / "wide-densenet-bc-60min-cpu-1thread-seed0" / "best.pt")
    two = _touch(r / "wide-densenet-bc-60min-cpu-2threads-seed0" / "best.pt")
    assert pairs.real_checkpoint("wide-densenet-bc") == r / "wide-densenet-bc-full-seed0" / "best.pt"
    center_one = _touch(r / "wide-densenet-bc-center-60min-cpu-1thread-seed0" / "best.pt")
    assert list(pairs.real_checkpoint_pair().values()) == [one, center_one]  # the only budget both have
    center_two = _touch(r / "wide-densenet-bc-center-60min-cpu-2threads-seed0" / "best.pt")
    assert list(pairs.real_checkpoint_pair().values()) == [two, center_two]  # 2 threads x 60 min > 1 thread


def test_real_pair_results_matches_budget_and_device(runs):
    res = runs / "results"
    (res / "budget").mkdir(parents=True)
    assert pairs.real_pair_results("wide-densenet") is None
    (res / "budget" / "wide-densenet-60min-cpu.json").write_text(json.dumps({"which": "plain"}))
    (res / "budget" / "wide-densenet-center-60min-cuda.json").write_text(json.dumps({"which": "other device"}))
    assert pairs.real_pair_results("wide-densenet") is None
    (res / "budget" / "wide-densenet-center-60min-cpu.json").write_text(json.dumps({"which": "center"}))
    plain, center = pairs.real_pair_results("wide-densenet")
    assert (plain["which"], center["which"]) == ("plain", "center")
    (res / "budget" / "wide-densenet-60min-cpu-2threads.json").write_text(json.dumps({"which": "plain 2"}))
    (res / "budget" / "wide-densenet-center-60min-cpu-2threads.json").write_text(json.dumps({"which": "center 2"}))
    assert [r["which"] for r in pairs.real_pair_results("wide-densenet")] == ["plain 2", "center 2"]
    (res / "wide-densenet.json").write_text(json.dumps({"which": "full plain"}))
    (res / "wide-densenet-center.json").write_text(json.dumps({"which": "full center"}))
    assert pairs.real_pair_results("wide-densenet")[0]["which"] == "full plain"  # full runs first


def test_quick_pair_recipes_differ_only_in_the_criterion():
    plain, center = pairs.quick_pair_recipes().values()
    assert isinstance(plain.criterion, CrossEntropyConfig) and isinstance(center.criterion, CenterLossConfig)
    assert replace(plain, name="x", row="x", criterion=None) == replace(center, name="x", row="x", criterion=None)


def test_train_quick_pair_and_features(tmp_path):
    tiny = Budget(epochs=1, train_per_class=6, eval_per_class=3)
    recipes = {k: replace(r, quick=tiny, batch_size=16) for k, r in pairs.quick_pair_recipes().items()}
    ds = make_synthetic_faces(n_per_class=20, seed=0)
    quick = pairs.train_quick_pair(ds, tmp_path, recipes=recipes)
    assert list(quick.checkpoints) == list(pairs.PAIR_LABELS) and all(p.is_file() for p in quick.checkpoints.values())
    assert len(quick.data.train) == 42 and all(len(h) == 1 for h in quick.histories.values())
    deep = pairs.pair_features(quick.checkpoints, quick.data.train, quick.data.test)
    for label, d in deep.items():
        f_tr, y_tr = d["Training"]
        f_te, y_te = d["PrivateTest"]
        assert f_tr.shape[0] == 42 and f_te.shape == (len(quick.data.test), f_tr.shape[1])
        np.testing.assert_array_equal(y_te, quick.data.test.labels)
        proba = load_model(quick.checkpoints[label]).predict_proba(quick.data.test.pixels)
        assert d["accuracy"] == pytest.approx(float((proba.argmax(1) == y_te).mean()))
