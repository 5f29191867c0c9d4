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


def test_real_checkpoint_prefers_full_and_never_confuses_prefixes(tmp_path):
    assert pairs.real_checkpoint("densenet", tmp_path) is None
    other = _touch(tmp_path / "densenet-bc-60min-cpu-seed0" / "best.pt")  # "densenet-*min-*" matches this too
    assert pairs.real_checkpoint("densenet", tmp_path) is None
    assert pairs.real_checkpoint("densenet-bc", tmp_path) == other
    budget = _touch(tmp_path / "densenet-60min-cpu-seed0" / "best.pt")
    assert pairs.real_checkpoint("densenet", tmp_path) == budget
    full = _touch(tmp_path / "densenet-full-seed0" / "best.pt")
    assert pairs.real_checkpoint("densenet", tmp_path) == full
    assert pairs.real_checkpoint("densenet", tmp_path, seed=1) is None


def test_real_checkpoint_pair_needs_both_runs(tmp_path):
    _touch(tmp_path / "densenet-bc-full-seed0" / "best.pt")
    assert pairs.real_checkpoint_pair(tmp_path) is None
    _touch(tmp_path / "densenet-bc-center-60min-cpu-seed0" / "best.pt")
    assert pairs.real_checkpoint_pair(tmp_path) is None  # a full run and a budget run are not a fair pair
    _touch(tmp_path / "densenet-bc-center-full-seed0" / "best.pt")
    found = pairs.real_checkpoint_pair(tmp_path)
    assert list(found) == ["softmax only (densenet-bc)", "softmax + center loss (densenet-bc-center)"]


def test_real_checkpoint_prefers_the_larger_budget_and_pairs_match_their_budget(tmp_path):
    one = _touch(tmp_path / "densenet-bc-60min-cpu-1thread-seed0" / "best.pt")
    two = _touch(tmp_path / "densenet-bc-60min-cpu-2threads-seed0" / "best.pt")
    assert pairs.real_checkpoint("densenet-bc", tmp_path) == two  # 2 threads x 60 min > 1 thread x 60 min
    center_one = _touch(tmp_path / "densenet-bc-center-60min-cpu-1thread-seed0" / "best.pt")
    found = pairs.real_checkpoint_pair(tmp_path)  # the only budget both have: 1 thread, not a 2-vs-1 mix
    assert list(found.values()) == [one, center_one]
    center_two = _touch(tmp_path / "densenet-bc-center-60min-cpu-2threads-seed0" / "best.pt")
    assert list(pairs.real_checkpoint_pair(tmp_path).values()) == [two, center_two]


def test_budget_size_orders_budgets_and_refuses_non_tags():
    from ferlib.train.runs import budget_size

    order = ["5min-cpu-1thread", "60min-cpu-1thread", "60min-cpu-2threads", "10min-cuda", "10min-cuda-4gpus"]
    assert sorted(order, key=budget_size) == order
    with pytest.raises(ValueError, match="not a budget tag"):
        budget_size("full")


def test_real_pair_results_matches_budget_and_device(tmp_path):
    assert pairs.real_pair_results("densenet-bc", tmp_path) is None
    (tmp_path / "budget").mkdir()
    (tmp_path / "budget" / "densenet-bc-60min-cpu.json").write_text(json.dumps({"which": "plain"}))
    (tmp_path / "budget" / "densenet-bc-center-60min-cuda.json").write_text(json.dumps({"which": "other device"}))
    assert pairs.real_pair_results("densenet-bc", tmp_path) is None
    (tmp_path / "budget" / "densenet-bc-center-60min-cpu.json").write_text(json.dumps({"which": "center"}))
    plain, center = pairs.real_pair_results("densenet-bc", tmp_path)
    assert (plain["which"], center["which"]) == ("plain", "center")
    (tmp_path / "budget" / "densenet-bc-60min-cpu-2threads.json").write_text(json.dumps({"which": "plain 2"}))
    (tmp_path / "budget" / "densenet-bc-center-60min-cpu-2threads.json").write_text(json.dumps({"which": "center 2"}))
    assert [r["which"] for r in pairs.real_pair_results("densenet-bc", tmp_path)] == ["plain 2", "center 2"]
    (tmp_path / "densenet-bc.json").write_text(json.dumps({"which": "full plain"}))
    (tmp_path / "densenet-bc-center.json").write_text(json.dumps({"which": "full center"}))
    assert pairs.real_pair_results("densenet-bc", tmp_path)[0]["which"] == "full plain"  # full runs first


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
