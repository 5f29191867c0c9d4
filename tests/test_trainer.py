"""The trainer: learns on synthetic faces, resumes a killed run exactly, writes complete results."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferlib.cli import main
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.train.checkpoint import load_checkpoint_dict, load_model
from ferlib.train.recipes import RECIPES, Budget, smoke_recipe
from ferlib.train.results import run_recipe
from ferlib.train.trainer import Trainer, TrainingInterrupted, prepare_data


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_faces(n_per_class=40, seed=0)


def _trainer(recipe, synthetic, run_dir, **kw):
    data = prepare_data(recipe, synthetic, "quick", seed=0)
    return Trainer(recipe, data, profile="quick", seed=0, device="cpu", run_dir=run_dir, progress=False, **kw)


def test_loss_falls_on_synthetic(synthetic, tmp_path):
    recipe = smoke_recipe(augment="none", batch_size=32, quick=Budget(epochs=6, train_per_class=32, eval_per_class=8))
    t = _trainer(recipe, synthetic, tmp_path)
    state = t.fit()
    losses = [h["train_loss"] for h in state.history]
    assert losses[-1] < 0.92 * losses[0] and losses[-1] == min(losses), losses
    assert (tmp_path / "best.pt").exists()


def test_keeps_last_five_epoch_checkpoints(synthetic, tmp_path):
    recipe = smoke_recipe(batch_size=64, quick=Budget(epochs=7, train_per_class=8, eval_per_class=4))
    _trainer(recipe, synthetic, tmp_path).fit()
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == [f"epoch_{e:03d}.pt" for e in range(3, 8)]


def test_kill_mid_epoch_and_resume_is_exact(synthetic, tmp_path):
    """A run killed mid-epoch and started again ends bitwise where an uninterrupted run ends."""
    recipe = smoke_recipe(batch_size=16, quick=Budget(epochs=2, train_per_class=12, eval_per_class=4))
    whole = _trainer(recipe, synthetic, tmp_path / "whole")
    whole.fit()
    steps_per_epoch = len(whole.train_source)
    assert steps_per_epoch >= 4
    killed = _trainer(recipe, synthetic, tmp_path / "killed", checkpoint_every_steps=2)
    with pytest.raises(TrainingInterrupted):
        killed.fit(stop_after_steps=steps_per_epoch + 3)  # dies in epoch 2, one step after a checkpoint
    ckpt = load_checkpoint_dict(tmp_path / "killed" / "latest.pt")
    assert ckpt["state"]["epoch"] == 1 and 0 < ckpt["state"]["next_batch"] < steps_per_epoch
    resumed = _trainer(recipe, synthetic, tmp_path / "killed", checkpoint_every_steps=2)
    resumed.fit()
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["train_loss"] for h in whole.state.history] == [h["train_loss"] for h in resumed.state.history]
    assert [h["val_accuracy"] for h in whole.state.history] == [h["val_accuracy"] for h in resumed.state.history]


def test_resume_refuses_a_different_run(synthetic, tmp_path):
    recipe = smoke_recipe(quick=Budget(epochs=1, train_per_class=8, eval_per_class=4))
    _trainer(recipe, synthetic, tmp_path).fit()
    other = _trainer(smoke_recipe(lr=0.01, quick=recipe.quick), synthetic, tmp_path)
    with pytest.raises(ValueError, match="different run"):
        other.fit()


def test_seeded_cpu_runs_reproduce(synthetic, tmp_path):
    recipe = smoke_recipe(quick=Budget(epochs=1, train_per_class=8, eval_per_class=4))
    a, b = (_trainer(recipe, synthetic, tmp_path / n) for n in "ab")
    a.fit(), b.fit()
    for x, y in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(x, y)


def test_checkpoint_loads_on_cpu_and_predicts(synthetic, tmp_path):
    recipe = smoke_recipe(quick=Budget(epochs=1, train_per_class=8, eval_per_class=4))
    t = _trainer(recipe, synthetic, tmp_path)
    t.fit()
    loaded = load_model(tmp_path / "best.pt", device="cpu")
    test = synthetic.split("PrivateTest")
    probs = loaded.predict_proba(test.pixels[:10])
    assert probs.shape == (10, 7) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # same numbers as the trainer's own evaluation path
    from ferlib.evaluate.metrics import predict
    from ferlib.data.batches import DeviceBatchSource

    src = DeviceBatchSource.for_eval(test.pixels[:10], test.labels[:10], batch_size=8, augment=t.augment,
                                     normalize=t.normalizer)
    logits, _ = predict(t.model.eval(), src)
    np.testing.assert_allclose(probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    assert loaded.class_names == list(synthetic.class_names)
    assert loaded.meta["recipe"]["name"] == recipe.name


def test_results_file_is_complete(synthetic, tmp_path):
    recipe = smoke_recipe(quick=Budget(epochs=2, train_per_class=8, eval_per_class=4))
    out = tmp_path / "r.json"
    run_recipe(recipe, dataset=synthetic, profile="quick", device="cpu", results_path=out,
               run_dir=tmp_path / "run", progress=False)
    r = json.loads(out.read_text())
    for key in ("recipe", "row", "profile", "synthetic", "data", "selected_epoch", "metrics", "ensemble_last5",
                "history", "config", "provenance", "train_images_per_s", "paper_results"):
        assert key in r, key
    assert r["synthetic"] is True
    for split in ("PublicTest", "PrivateTest"):
        m = r["metrics"][split]
        assert 0 <= m["accuracy"] <= 1 and len(m["confusion_matrix"]) == 7
        assert set(m["per_class"]) == set(synthetic.class_names)
        assert sum(map(sum, m["confusion_matrix"])) == m["n"] == 28
    prov = r["provenance"]
    for key in ("git_sha", "device", "device_name", "versions", "wall_time_s", "started"):
        assert key in prov, key
    assert prov["versions"]["torch"] == torch.__version__
    assert len(r["history"]) == 2 and 1 <= r["selected_epoch"] <= 2
    best = max(r["history"], key=lambda h: h["val_accuracy"])
    assert best["epoch"] == r["selected_epoch"]  # selected on PublicTest, first best on ties


def test_cli_train_writes_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    assert main(["train", "tiny-densenet-demo", "--profile", "quick", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "out")]) == 0
    r = json.loads((tmp_path / "out" / "tiny-densenet-demo.json").read_text())
    assert r["synthetic"] is True and r["profile"] == "quick"
    assert (tmp_path / "runs" / "tiny-densenet-demo-quick-seed0" / "best.pt").exists()


def test_recipes_cover_table_ii_rows_without_center_loss():
    rows = {r.row for r in RECIPES.values() if r.paper == "densenet-center-loss-fer2013" and r.criterion == "ce"}
    assert rows == {"Table II: DenseNet", "Table II: DenseNet-BC", "Table II: WideDenseNet", "Table II: WideDenseNet-BC"}
    for name in ("densenet", "densenet-bc", "wide-densenet", "wide-densenet-bc"):
        r = RECIPES[name]
        assert r.optimizer == "sgd" and r.nesterov and r.momentum == 0.9 and r.batch_size == 128 and r.lr == 0.1
        assert r.weight_decay == (1e-5 if name.startswith("wide") else 1e-4)
        assert r.input_size == 42 and r.augment == "densenet" and r.normalization == "pixel"


def test_cli_densenet_bc_quick(tmp_path, monkeypatch):
    """The issue's done-when command: the real DenseNet-BC recipe, quick profile, on this CPU."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "densenet-bc", "--profile", "quick", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "out")]) == 0
    r = json.loads((tmp_path / "out" / "densenet-bc.json").read_text())
    assert r["row"] == "Table II: DenseNet-BC" and r["config"]["model"] == "densenet-bc"
    assert r["data"]["Training"] == 7 * 40 and len(r["history"]) == 2
    assert r["paper_results"]["PrivateTest"] == 70.7  # the paper's number travels with the result
