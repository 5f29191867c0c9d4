"""The trainer: learns on synthetic faces, resumes a killed run exactly, selects on PublicTest,
stops early, follows its schedule, plans a wall-clock budget, trains compiled, and writes complete results."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import ROOT, build_test_run
from ferlib.commands import build_parser, main
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.data.transforms import PRESETS
from ferlib.evaluate.metrics import predict
from ferlib.errors import UsageError
from ferlib.train.callbacks import StopTraining, TimeBudget
from ferlib.train.checkpoint import load_checkpoint_dict, load_model
from ferlib.train.precision import CompiledTrainingForward, compile_unavailable_reason
from ferlib.train.recipes import RECIPES, Budget, smoke_recipe
from ferlib.train.results import evaluate_selected, run_recipe


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_faces(n_per_class=40, seed=0)


def _run(recipe, synthetic, run_dir, **kw):
    return build_test_run(recipe, synthetic, run_dir, **kw)


def test_loss_falls_on_synthetic(synthetic, tmp_path):
    recipe = smoke_recipe(augment="none", batch_size=32, quick=Budget(epochs=6, train_per_class=32, eval_per_class=8))
    state = _run(recipe, synthetic, tmp_path).trainer.fit()
    losses = [h["train_loss"] for h in state.history]
    assert losses[-1] < 0.92 * losses[0] and losses[-1] == min(losses), losses
    assert (tmp_path / "best.pt").exists()


def test_keeps_last_five_epoch_checkpoints_and_ensembles_them(synthetic, tmp_path):
    recipe = smoke_recipe(batch_size=64, quick=Budget(epochs=7, train_per_class=8, eval_per_class=4))
    run = _run(recipe, synthetic, tmp_path)
    run.trainer.fit()
    assert sorted(p.name for p in tmp_path.glob("epoch_*.pt")) == [f"epoch_{e:03d}.pt" for e in range(3, 8)]
    out = evaluate_selected(run)
    assert out["ensemble_last5"]["epochs"] == [3, 4, 5, 6, 7]
    # by hand: the mean softmax of the five epoch checkpoints, loaded for inference
    test = run.data.test
    probs = np.mean([load_model(tmp_path / f"epoch_{e:03d}.pt").predict_proba(test.pixels) for e in range(3, 8)], 0)
    assert out["ensemble_last5"]["PrivateTest"] == pytest.approx(float((probs.argmax(1) == test.labels).mean()))


def test_kill_mid_epoch_and_resume_is_exact(synthetic, tmp_path):
    """A run killed mid-epoch and started again ends bitwise where an uninterrupted run ends."""
    recipe = smoke_recipe(batch_size=16, quick=Budget(epochs=2, train_per_class=12, eval_per_class=4))
    whole = _run(recipe, synthetic, tmp_path / "whole").trainer
    whole.fit()
    steps_per_epoch = len(whole.train_source)
    assert steps_per_epoch >= 4
    killed = _run(recipe, synthetic, tmp_path / "killed", checkpoint_every_steps=2,
                  stop_after_steps=steps_per_epoch + 3).trainer
    with pytest.raises(StopTraining):
        killed.fit()  # dies in epoch 2, one step after a checkpoint
    ckpt = load_checkpoint_dict(tmp_path / "killed" / "latest.pt")
    assert ckpt["state"]["epoch"] == 1 and 0 < ckpt["state"]["next_batch"] < steps_per_epoch
    resumed = _run(recipe, synthetic, tmp_path / "killed", checkpoint_every_steps=2).trainer
    resumed.fit()
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["train_loss"] for h in whole.state.history] == [h["train_loss"] for h in resumed.state.history]
    assert [h["val_accuracy"] for h in whole.state.history] == [h["val_accuracy"] for h in resumed.state.history]


def test_resume_refuses_a_different_run(synthetic, tmp_path):
    """One message: the folder, what differs (a recipe's fields one by one), and what to do."""
    recipe = smoke_recipe(quick=Budget(epochs=1, train_per_class=8, eval_per_class=4))
    _run(recipe, synthetic, tmp_path).trainer.fit()
    other = _run(smoke_recipe(lr=0.01, quick=recipe.quick), synthetic, tmp_path).trainer
    with pytest.raises(UsageError, match=r"latest.pt belongs to a different run \(recipe.lr differ") as e:
        other.fit()
    assert str(tmp_path) in e.value.problem and "--fresh" in e.value.fix and "--run-dir" in e.value.fix


def test_seeded_cpu_runs_reproduce(synthetic, tmp_path):
    recipe = smoke_recipe(quick=Budget(epochs=1, train_per_class=8, eval_per_class=4))
    a, b = (_run(recipe, synthetic, tmp_path / n).trainer for n in "ab")
    a.fit(), b.fit()
    for x, y in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(x, y)


def test_early_stopping_stops_at_its_patience(synthetic, tmp_path):
    recipe = smoke_recipe(lr=0.0, early_stopping_patience=2, quick=Budget(epochs=10, train_per_class=4, eval_per_class=2))
    state = _run(recipe, synthetic, tmp_path).trainer.fit()  # lr 0: only BatchNorm statistics move
    accs = [h["val_accuracy"] for h in state.history]
    assert len(accs) < 10 and state.epochs_without_improvement == 2
    assert len(accs) == state.best_epoch + 2 and max(accs[state.best_epoch:]) <= accs[state.best_epoch - 1]


def test_plateau_lowers_lr_on_training_loss_and_center_term_follows(synthetic, tmp_path):
    from ferlib.train.criteria import CenterLossConfig

    recipe = smoke_recipe(lr=0.01, plateau_patience=0, plateau_threshold=0.99, min_lr=1e-9,
                          quick=Budget(epochs=3, train_per_class=4, eval_per_class=2),
                          criterion=CenterLossConfig(lambda_=0.05, alpha=0.5, center_term_lr=1e-3))
    # threshold 0.99: only a 99 % fall of the training loss counts as progress, so epochs 2, 3 are plateaus
    t = _run(recipe, synthetic, tmp_path).trainer
    t.fit()
    lrs = [h["lr"] for h in t.state.history]
    assert lrs == pytest.approx([0.01, 0.01, 0.001])  # cut after epoch 2 (the first plateau)
    final_lr = t.optimizer.param_groups[0]["lr"]
    assert final_lr == pytest.approx(1e-4)
    assert t.criterion.feature_grad_scale == pytest.approx(1e-3 / final_lr)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_inference_equals_evaluation(preset, synthetic, tmp_path):
    """For every augmentation preset, a checkpoint's predict_proba equals the trainer's evaluation outputs."""
    size = {"cl_resnet50": 40, "emonet": 40}.get(preset, 42)
    recipe = smoke_recipe(augment=preset, input_size=size, quick=Budget(epochs=1, train_per_class=4, eval_per_class=3))
    run = _run(recipe, synthetic, tmp_path)
    run.trainer.fit()
    run.trainer.model.load_state_dict(load_checkpoint_dict(tmp_path / "best.pt")["model"])
    logits, _ = predict(run.trainer.model, run.test_source)
    loaded = load_model(tmp_path / "best.pt")
    np.testing.assert_allclose(loaded.predict_proba(run.data.test.pixels), torch.softmax(logits, 1).numpy(),
                               atol=1e-5)
    assert loaded.class_names == list(synthetic.class_names)


def test_results_file_is_complete(synthetic, tmp_path):
    recipe = smoke_recipe(quick=Budget(epochs=2, train_per_class=8, eval_per_class=4))
    out = tmp_path / "r.json"
    run_recipe(recipe, dataset=synthetic, profile="quick", device="cpu", results_path=out,
               run_dir=tmp_path / "run", progress=False, precision="fp32")
    r = json.loads(out.read_text())
    for key in ("recipe", "row", "profile", "budget", "precision", "synthetic", "data", "selected_epoch", "metrics",
                "ensemble_last5", "history", "config", "provenance", "train_images_per_s", "paper_results"):
        assert key in r, key
    assert r["synthetic"] is True and r["precision"] == "fp32"
    for split in ("PublicTest", "PrivateTest"):
        m = r["metrics"][split]
        assert 0 <= m["accuracy"] <= 1 and len(m["confusion_matrix"]) == 7
        assert sum(map(sum, m["confusion_matrix"])) == m["n"] == 28
    for key in ("git_sha", "device", "device_name", "cpu_model", "cpu_threads", "versions", "wall_time_s", "started"):
        assert key in r["provenance"], key
    assert len(r["history"]) == 2 and 1 <= r["selected_epoch"] <= 2
    best = max(r["history"], key=lambda h: h["val_accuracy"])
    assert best["epoch"] == r["selected_epoch"]  # selected on PublicTest, first best on ties


def test_time_budget_plans_epochs_and_resume_keeps_the_plan(synthetic, tmp_path):
    recipe = smoke_recipe(batch_size=16, quick=Budget(epochs=1, train_per_class=40, eval_per_class=4))
    # 5 minutes: far more than 30 steps on any machine, however loaded, so the stop always comes first
    run = _run(recipe, synthetic, tmp_path, minutes=5, stop_after_steps=30)
    t = run.trainer
    assert run.schedule_name == "warmup-cosine"
    with pytest.raises(StopTraining):
        t.fit()
    plan = dict(t.state.plan)
    assert plan["epochs"] >= 2 and plan["budget_s"] == 300.0
    assert t.schedule.total_steps == plan["epochs"] * len(t.train_source)
    resumed = _run(recipe, synthetic, tmp_path, minutes=5).trainer
    assert resumed.try_resume() and resumed.epochs == resumed.state.plan["epochs"]


class _BudgetTrainer:
    """A stand-in trainer with what TimeBudget reads (one process)."""

    def __init__(self):
        from ferlib.train.distributed import SingleProcess

        self.epochs, self.train_source, self.total, self.comm = 0, [0] * 10, None, SingleProcess()
        self.state = type("S", (), {"plan": {}, "epoch": 0, "next_batch": 0})()

    def schedule_total_steps(self, n):
        self.total = n


def test_time_budget_arithmetic():
    """Plan 2: 1 + floor((left - 12 evaluations) / epoch), on a fake clock."""
    now = [0.0]
    b, t = TimeBudget(minutes=10, started=0.0, clock=lambda: now[0]), _BudgetTrainer()
    now[0] = 50.0
    b.on_fit_start(t)  # epoch 1 starts at 50 s
    now[0] = 100.0  # and takes 50 s
    b.on_epoch_end(t, {"epoch": 1, "eval_seconds": 2.0, "images_per_s": 1.0})
    assert t.epochs == 1 + (600 - 100 - 24) // 50 and t.total == t.epochs * 10
    assert t.state.plan["elapsed_s"] == 100.0


def test_time_budget_replans_on_the_median_of_the_last_three_epochs():
    """Epoch 1 was slow (one-off costs): epoch 2's measurement lengthens the plan; later one fast
    epoch does not lengthen it and one slow epoch does not shorten it (the median of the last three
    epochs decides), a second slow one does, and once the last three epochs are fast again the
    plan grows back.  A fake clock: each epoch ends at the elapsed time given."""
    now = [0.0]
    b, t = TimeBudget(minutes=10, started=0.0, clock=lambda: now[0]), _BudgetTrainer()
    b.on_fit_start(t)
    for epoch, elapsed in ((1, 100.0), (2, 150.0), (3, 170.0), (4, 270.0), (5, 370.0), (6, 400.0), (7, 430.0)):
        now[0] = elapsed  # epochs of 100, 50, 20, 100, 100, 30, 30 s
        b.on_epoch_end(t, {"epoch": epoch, "eval_seconds": 1.0, "images_per_s": 1.0})
        if epoch == 1:
            assert t.epochs == 1 + (600 - 100 - 12) // 100 == 5
        if epoch == 2:
            assert t.epochs == 2 + (600 - 150 - 12) // 50 == 10 and t.state.plan["planned_by"] == "epoch 2"
        if epoch == 3:
            assert t.epochs == 10  # one fast epoch, two measurements: not lengthened
        if epoch == 4:
            assert t.epochs == 10  # one slow epoch: the median of (50, 20, 100) s still fits 10 epochs
        if epoch == 5:  # two: the median of (20, 100, 100) s is 100 s
            assert t.epochs == 5 + (600 - 370 - 12) // 100 == 7 and t.total == 70
        if epoch == 6:  # one fast epoch: the median of (100, 100, 30) s is still 100 s
            assert t.epochs == 6 + (600 - 400 - 12) // 100 == 7
        if epoch == 7:  # two: the median of (100, 30, 30) s is 30 s, and the plan grows back
            assert t.epochs == 7 + (600 - 430 - 12) // 30 == 12 and t.total == 120
            assert t.state.plan["planned_by"] == "re-planned after epoch 7"


def test_cli_train_writes_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    assert main(["train", "tiny-densenet-demo", "--profile", "quick", "--device", "cpu", "--quiet",
                 "--precision", "fp32", "--out", str(tmp_path / "out")]) == 0
    r = json.loads((tmp_path / "out" / "tiny-densenet-demo.json").read_text())
    assert r["synthetic"] is True and r["profile"] == "quick"


def test_cli_from_notebooks_folder_writes_where_the_chapters_read(tmp_path, monkeypatch):
    """Run from notebooks/ (JupyterLab's terminal), no overrides: results land in the kit's results/."""
    if (ROOT / "data").is_dir():
        pytest.skip("the kit has a data/ folder: this run would train on it")
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("FERLIB_RESULTS_DIR", "FERLIB_DATA_DIR")}
    env["FERLIB_RUNS_DIR"] = str(tmp_path / "runs")
    target = ROOT / "results" / "local" / "quick" / "tiny-densenet-demo-synthetic.json"  # yours, git-ignored
    saved = target.read_bytes() if target.exists() else None
    code = ("from ferlib.commands import main; import sys; sys.exit(main(['train', 'tiny-densenet-demo', '--quiet', "
            "'--precision', 'fp32', '--device', 'cpu']))")
    try:
        p = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "notebooks", env=env, capture_output=True,
                           text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        from ferlib.runs import find_run

        monkeypatch.delenv("FERLIB_RESULTS_DIR")  # look where the child wrote (conftest isolates the others)
        found = find_run("tiny-densenet-demo", synthetic=True, budgets=("quick",))
        assert found is not None and found.origin == "yours" and found.results_path == target
        assert subprocess.run(["git", "status", "--porcelain", "--", "results"], cwd=ROOT, capture_output=True,
                              text=True).stdout == ""  # your run leaves the tracked tree clean
        assert not (ROOT / "notebooks" / "results").exists() and not (ROOT / "notebooks" / "runs").exists()
    finally:
        if saved is not None:
            target.write_bytes(saved)
        elif target.exists():
            target.unlink()


def test_every_cli_command_exists():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    assert {"data", "recipes", "train"} <= set(sub.choices)


def test_recipes_cover_table_ii_rows():
    from ferlib.train.criteria import CenterLossConfig, CrossEntropyConfig

    rows = {r.row for r in RECIPES.values() if r.paper == "densenet-cl"}
    assert len(rows) == 8
    for name in ("densenet", "densenet-bc", "wide-densenet", "wide-densenet-bc"):
        r, c = RECIPES[name], RECIPES[name + "-center"]
        assert r.optimizer == "sgd" and r.nesterov and r.momentum == 0.9 and r.batch_size == 128 and r.lr == 0.1
        assert r.weight_decay == (1e-5 if name.startswith("wide") else 1e-4)
        assert r.input_size == 42 and r.augment == "densenet" and r.normalization == "pixel"
        assert isinstance(r.criterion, CrossEntropyConfig) and isinstance(c.criterion, CenterLossConfig)
        assert replace(c, name=r.name, row=r.row, criterion=r.criterion, paper_results=r.paper_results) == r


def test_cli_densenet_bc_quick(tmp_path, monkeypatch):
    """The real DenseNet-BC recipe, quick profile, on this CPU, through the CLI."""
    monkeypatch.chdir(tmp_path)
    assert main(["train", "densenet-bc", "--profile", "quick", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "out")]) == 0
    r = json.loads((tmp_path / "out" / "densenet-bc.json").read_text())
    assert r["row"] == "Table II: DenseNet-BC" and r["config"]["model"] == "densenet-bc"
    assert r["data"]["Training"] == 7 * 40 and len(r["history"]) == 2


@pytest.mark.skipif(compile_unavailable_reason(torch.device("cpu")) is not None,
                    reason="torch.compile needs a C++ compiler on the CPU")
def test_compiled_training_forward_trains_like_eager(synthetic, tmp_path):
    """``--compile``: the same float32 steps as eager to rounding; the short last batch of an epoch runs
    eagerly (no recompile); checkpoints hold the plain module's weights and keys."""
    recipe = smoke_recipe(augment="none", batch_size=16, quick=Budget(epochs=1, train_per_class=5, eval_per_class=2))
    eager = _run(recipe, synthetic, tmp_path / "eager").trainer
    compiled = _run(recipe, synthetic, tmp_path / "compiled", compile=True).trainer
    assert isinstance(compiled.train_forward, CompiledTrainingForward)
    calls = {"eager": 0}
    eager_forward = compiled.train_forward.eager

    def counting(x):
        calls["eager"] += 1
        return eager_forward(x)

    compiled.train_forward.eager = counting
    a, b = eager.fit(resume=False), compiled.fit(resume=False)
    assert len(compiled.train_source) == 3 and calls["eager"] == 1  # 16 + 16 compiled, the last 3 eager
    assert compiled.train_forward.batch_size == 16
    assert b.history[0]["train_loss"] == pytest.approx(a.history[0]["train_loss"], rel=1e-3)
    for k, v in eager.model.state_dict().items():
        torch.testing.assert_close(compiled.model.state_dict()[k], v, rtol=1e-3, atol=1e-4)
    saved = torch.load(tmp_path / "compiled" / "latest.pt", map_location="cpu", weights_only=False)["model"]
    assert set(saved) == set(eager.model.state_dict())
