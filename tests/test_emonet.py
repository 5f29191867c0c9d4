"""EmoNet (chapter 07): the two-input network, freezing, the freeze-then-fine-tune schedule and its resume,
the BOVW side input through batches, training, checkpoints and ensembles, the recipes, the face filter."""
from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from ferlib.data.synthetic import make_synthetic_faces
from ferlib.models import build_model
from ferlib.models.backbones import CONV_BLOCKS, ConvBlockSpec
from ferlib.models.emonet import BOVW_LENGTH, EmoNetFusion
from ferlib.train.callbacks import Callback, TrainingInterrupted
from ferlib.train.recipes import ENSEMBLES, RECIPES, Budget, FrozenPhase, get_recipe
from ferlib.train.schedules import FreezeThenFineTune, PhasedOptimizer, Plateau, Schedule
from tests.conftest import build_test_run


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_faces(n_per_class=12, seed=0)


def _tiny_block() -> torch.nn.Module:
    """A two-convolution block with BatchNorm: the mechanics of a pretrained block, at a tiny cost."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


@pytest.fixture(autouse=True)
def tiny_block(monkeypatch):
    monkeypatch.setitem(CONV_BLOCKS, "test-tiny", ConvBlockSpec(_tiny_block, 16, 8, weights={},
                                                                input_std={"none": "imagenet-torchvision"}))


def _net(bovw=False, **kw) -> EmoNetFusion:
    torch.manual_seed(0)
    return build_model("emonet", backbone="test-tiny", weights="none", bovw=bovw, **kw)


def _smoke(bovw: bool = False, frozen: int = 1, epochs: int = 3, **kw):
    """An EmoNet recipe shrunk for tests: a tiny block from random init at 32 px, the recipe's two phases."""
    base = get_recipe("emonet-lite0-bovw" if bovw else "emonet-lite0-pixels")
    kw.setdefault("quick", Budget(epochs=epochs, train_per_class=4, eval_per_class=2))
    return replace(base, name=f"emonet-test-{'bovw' if bovw else 'pixels'}", input_size=32, batch_size=8,
                   model_kwargs={"backbone": "test-tiny", "weights": "none", "bovw": bovw},
                   frozen_phase=FrozenPhase(epochs=frozen, optimizer="adam", lr=1e-3), **kw)


# -- the network ------------------------------------------------------------------------------------
def test_fusion_forward_shapes_and_interface():
    for bovw, width in ((False, 16), (True, 16 + BOVW_LENGTH)):
        net = _net(bovw).eval()
        assert net.dense[0].in_features == width and net.feature_dim == 256 and net.classifier.out_features == 7
        assert net.side_inputs == (("bovw",) if bovw else ())
        x, b = torch.randn(3, 3, 40, 40), torch.rand(3, BOVW_LENGTH)
        logits, feats = net.forward_with_features(x, **({"bovw": b} if bovw else {}))
        assert logits.shape == (3, 7) and feats.shape == (3, 256)
        torch.testing.assert_close(net.classifier(feats), logits)
    with pytest.raises(ValueError, match="takes the 2,728-value BOVW vector"):
        net(x)
    with pytest.raises(ValueError, match="3 channels"):
        build_model("emonet", in_channels=1, backbone="test-tiny", weights="none")
    # the BOVW branch's cost: 2,728 x 256 weights, "almost negligible" next to ResNet-50's 23.5 M
    extra = sum(p.numel() for p in _net(True).parameters()) - sum(p.numel() for p in _net(False).parameters())
    assert extra == BOVW_LENGTH * 256


def test_bovw_is_standardised_with_training_statistics():
    net = _net(True)
    rng = np.random.default_rng(0)
    train = rng.normal(3.0, 2.0, size=(200, BOVW_LENGTH)).astype(np.float32)
    train[:, 5] = 1.0  # a constant column is not divided by zero
    net.fit_side_inputs({"bovw": train})
    torch.testing.assert_close(net.bovw_mean, torch.from_numpy(train.mean(0)), atol=1e-5, rtol=1e-5)
    assert torch.isfinite(net.bovw_std).all() and net.bovw_std[5] > 0
    assert "bovw_mean" in net.state_dict() and "bovw_std" in net.state_dict()  # travels in checkpoints


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _one_step(net, bovw=False):
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 7, (8,))
    side = {"bovw": torch.rand(8, BOVW_LENGTH)} if bovw else {}
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    net.train()
    loss = torch.nn.functional.cross_entropy(net(x, **side), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_frozen_block_is_unchanged_by_a_step_batchnorm_statistics_included():
    net = _net(True)
    net.set_pretrained_frozen(True)
    before_block, before_head = _snapshot(net.conv_block), _snapshot(net.dense)
    _one_step(net, bovw=True)
    after = _snapshot(net.conv_block)
    assert after.keys() == before_block.keys() and any("running_mean" in k for k in after)
    for k in after:  # weights, BatchNorm's running mean / var and its batch counter
        assert torch.equal(after[k], before_block[k]), k
    assert not net.conv_block.training and net.training  # model.train() leaves the frozen block in eval mode
    assert any(not torch.equal(v, before_head[k]) for k, v in _snapshot(net.dense).items())
    assert all(p.grad is None for p in net.conv_block.parameters())
    # unfrozen, the block trains: weights and BatchNorm statistics move
    net.set_pretrained_frozen(False)
    _one_step(net, bovw=True)
    moved = _snapshot(net.conv_block)
    assert net.conv_block.training
    assert not torch.equal(moved["net.1.running_mean"], after["net.1.running_mean"])
    assert not torch.equal(moved["net.0.weight"], after["net.0.weight"])


# -- the two phases ------------------------------------------------------------------------------------
def _phased(net, frozen_epochs=5):
    net.set_pretrained_frozen(False)
    sgd = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, nesterov=True)
    net.set_pretrained_frozen(True)
    adam = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    opt = PhasedOptimizer([adam, sgd])
    plateau = Plateau(sgd, patience=0, threshold=1e-3, min_lr=1e-5, factor=0.5, monitor="val_loss")
    return opt, FreezeThenFineTune(opt, model=net, frozen_epochs=frozen_epochs, fine_tune=plateau, steps_per_epoch=3)


def test_schedule_switches_optimiser_and_unfreezes_at_epoch_5():
    net = _net()
    opt, sched = _phased(net)
    for epoch in range(1, 6):
        assert opt.phase == 0 and isinstance(opt.current, torch.optim.Adam) and net.pretrained_frozen
        assert sched.monitor == "train_loss"
        changed = sched.after_epoch(1.0)
        assert changed == (epoch == 5)  # the switch is reported (the criterion hears of the new optimiser)
    assert opt.phase == 1 and isinstance(opt.current, torch.optim.SGD) and opt.current.defaults["nesterov"]
    assert not net.pretrained_frozen and all(p.requires_grad for p in net.parameters())
    assert sched.monitor == "val_loss" and sched.lr == 1e-3
    sched.after_epoch(2.0)  # the plateau rule on the validation loss: 2.0 is its first value, then no progress
    assert sched.after_epoch(2.0) and sched.lr == pytest.approx(5e-4)
    # the state of either side of the switch restores its phase
    saved_opt, saved = opt.state_dict(), sched.state_dict()
    net2 = _net()
    opt2, sched2 = _phased(net2)
    assert net2.pretrained_frozen
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved)
    assert opt2.phase == 1 and not net2.pretrained_frozen and sched2.lr == pytest.approx(5e-4)


def test_trainer_passes_the_monitored_loss(tmp_path):
    class Recording(Schedule):
        monitor = "val_loss"

        def __init__(self, optimizer):
            super().__init__(optimizer)
            self.seen = []

        def after_epoch(self, loss):
            self.seen.append(loss)
            return False

    run = build_test_run(_smoke(frozen=0, epochs=2), make_synthetic_faces(n_per_class=6, seed=1), tmp_path)
    run.trainer.schedule = Recording(run.trainer.optimizer)
    state = run.trainer.fit(resume=False)
    assert run.trainer.schedule.seen == [h["val_loss"] for h in state.history]


class _BlockWatch(Callback):
    """The conv block's state after every epoch."""

    def __init__(self):
        self.states = []

    def on_epoch_end(self, trainer, record):
        self.states.append(_snapshot(trainer.model.conv_block))


def test_recipe_freezes_five_epochs_then_fine_tunes_everything(synthetic, tmp_path):
    recipe = _smoke(frozen=5, epochs=6, quick=Budget(epochs=6, train_per_class=2, eval_per_class=1))
    watch = _BlockWatch()
    run = build_test_run(recipe, synthetic, tmp_path / "run", extra_callbacks=[watch])
    t = run.trainer
    assert isinstance(t.schedule, FreezeThenFineTune) and t.schedule.frozen_epochs == 5
    assert [type(o).__name__ for o in t.optimizer.optimizers] == ["Adam", "SGD"]
    start = _snapshot(t.model.conv_block)
    t.fit(resume=False)
    for e in range(5):  # epochs 1-5: the block (BatchNorm statistics included) is where it started
        assert all(torch.equal(watch.states[e][k], start[k]) for k in start), f"epoch {e + 1}"
    assert any(not torch.equal(watch.states[5][k], start[k]) for k in start)  # epoch 6 fine-tunes it
    assert t.optimizer.phase == 1 and not t.model.pretrained_frozen


def test_quick_full_and_budget_frozen_epochs():
    r = get_recipe("emonet-resnet50-bovw")
    assert (r.frozen_epochs_for("full"), r.frozen_epochs_for(None), r.frozen_epochs_for("quick")) == (5, 5, 1)
    assert get_recipe("densenet-bc").frozen_epochs_for("full") == 0


def _fit_whole_and_killed(recipe, data, tmp_path, stop_after_steps):
    whole = build_test_run(recipe, data, tmp_path / "whole").trainer
    whole.fit(resume=False)
    killed = build_test_run(recipe, data, tmp_path / "killed", checkpoint_every_steps=1,
                            stop_after_steps=stop_after_steps).trainer
    with pytest.raises(TrainingInterrupted):
        killed.fit()
    resumed = build_test_run(recipe, data, tmp_path / "killed", checkpoint_every_steps=1).trainer
    resumed.fit()
    return whole, resumed


def test_resume_across_the_switch_is_exact(synthetic, tmp_path):
    """Killed in the frozen phase, and killed after the switch: each resumed run ends bitwise where the whole run
    ends (phase, optimiser states, the frozen block's evaluation mode and BatchNorm statistics included)."""
    recipe = _smoke(bovw=True, frozen=1, epochs=3)
    steps = len(build_test_run(recipe, synthetic, tmp_path / "probe").trainer.train_source)
    for where, stop in (("frozen", 1), ("fine-tuning", steps + 1)):
        whole, resumed = _fit_whole_and_killed(recipe, synthetic, tmp_path / where, stop)
        assert resumed.optimizer.phase == whole.optimizer.phase == 1
        for (k, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
            assert torch.equal(a, b), f"{where}: {k}"
        assert [h["train_loss"] for h in whole.state.history] == [h["train_loss"] for h in resumed.state.history]


# -- the BOVW side input, end to end -------------------------------------------------------------------
def test_bovw_is_computed_once_per_data_set_and_fed_beside_the_batch(synthetic, monkeypatch):
    from ferlib.data.batches import DeviceBatchSource
    from ferlib.features import side_inputs as si

    split = synthetic.split("Training")
    monkeypatch.setattr(si, "UNCACHED_BELOW", 0)
    first = si.dataset_bovw(split)
    assert first.shape == (len(split), BOVW_LENGTH) and first.dtype == np.float32
    assert si.bovw_cache_path(split).is_file()
    monkeypatch.setattr(si, "emonet_bovw_features", lambda *a, **k: (_ for _ in ()).throw(AssertionError("again")))
    np.testing.assert_array_equal(si.dataset_bovw(split), first)  # from the cache
    src = DeviceBatchSource(split.pixels, split.labels, batch_size=5, extra={"bovw": first}, seed=3)
    x, y, side = next(iter(src))
    idx = src.permutation(0)[:5].numpy()
    np.testing.assert_array_equal(side["bovw"].numpy(), first[idx])
    np.testing.assert_array_equal(y.numpy(), split.labels[idx])


def test_bovw_recipe_trains_checkpoints_and_ensembles(synthetic, monkeypatch):
    """run_recipe on the pixels and the BOVW variant; the checkpoint reloads (no weights file read) with its BOVW
    standardiser and predicts through the same side-input path; the DE ensemble recipe expands to its members."""
    from pathlib import Path

    from ferlib.data.splits import prepare_splits
    from ferlib.jobs.ensembles import run_ensemble
    from ferlib.train.checkpoint import load_checkpoint_dict, load_model
    from ferlib.train.recipes import EnsembleRecipe
    from ferlib.train.results import run_recipe

    from ferlib.features import side_inputs as si

    recipes = [_smoke(bovw=b, epochs=2) for b in (False, True)]
    for r in recipes:
        monkeypatch.setitem(RECIPES, r.name, r)
    bars, side_inputs_for = [], si.side_inputs_for
    monkeypatch.setattr(si, "side_inputs_for", lambda *a, progress=None, **k: bars.append(progress)
                        or side_inputs_for(*a, progress=progress, **k))
    results = [run_recipe(r, dataset=synthetic, profile="quick", device="cpu", precision="fp32", progress=False)
               for r in recipes]
    assert bars and all(b is False for b in bars), bars  # a quiet run (train --quiet) shows no landmark / BOVW progress bar
    res = results[1]
    assert res["model_weights_file"]["source"] == "random-init" and res["model_weights"] == "random-init"
    assert [h["lr"] for h in res["history"]] == [1e-3, 1e-3]  # Adam's rate, then SGD's
    best = Path(res["provenance"]["run_dir"]) / "best.pt"
    assert load_checkpoint_dict(best)["model_kwargs"]["load_weights"] is False
    loaded = load_model(best)
    assert loaded.model.side_inputs == ("bovw",) and loaded.model.bovw_std.ne(1).any()
    test = prepare_splits(synthetic, 6, 2, 0).test
    accuracy = float((loaded.predict_proba(test.pixels, precision="fp32").argmax(1) == test.labels).mean())
    assert accuracy == pytest.approx(res["metrics"]["PrivateTest"]["accuracy"])
    monkeypatch.setitem(ENSEMBLES, "emonet-test-ensemble", EnsembleRecipe(
        name="emonet-test-ensemble", paper="emonet", row="test", members=tuple(r.name for r in recipes),
        paper_results={"PrivateTest": 73.39}))
    out = run_ensemble("emonet-test-ensemble", dataset=synthetic, device="cpu", progress=False)
    assert out["method"] == "de" and len(out["weights"]) == 2 and out["fitted_on"] == "PublicTest"
    assert out["ensemble_recipe"]["paper_results"] == {"PrivateTest": 73.39}
    assert Path(out["path"]).name == "emonet-test-ensemble.json"


def test_face_filter_drops_training_faces_only(synthetic, monkeypatch):
    from ferlib.features import face_filter
    from ferlib.train.results import apply_face_filter

    n = len(synthetic)
    counts = {"opencv": np.ones(n, np.int16), "dlib": np.ones(n, np.int16)}
    counts["opencv"][::3] = 0  # OpenCV finds no face in every third image
    monkeypatch.setattr(face_filter, "dataset_face_counts", lambda ds, **k: counts)
    kept, info = apply_face_filter(synthetic, "both", progress=False)
    dropped = (np.arange(n) % 3 == 0) & (synthetic.usage == "Training")
    assert info == {"rule": "both", "dropped_training_images": int(dropped.sum()), "split": "Training only"}
    assert len(kept) == n - dropped.sum()
    for split in ("PublicTest", "PrivateTest"):
        assert kept.split_counts()[split] == synthetic.split_counts()[split]
    assert apply_face_filter(synthetic, None) == (synthetic, None)
    from ferlib.errors import UsageError
    from ferlib.train.recipes import with_face_filter

    r = with_face_filter(get_recipe("emonet-lite0-bovw"), "dlib")
    assert (r.name, r.face_filter) == ("emonet-lite0-bovw-face-filter-dlib", "dlib")
    with pytest.raises(UsageError, match="unknown face-filter rule"):
        with_face_filter(r, "haar")


# -- the recipes -----------------------------------------------------------------------------------------
def test_table_2_recipes_and_the_ensemble():
    rows = {"emonet-irv2-pixels": ("inception-resnet-v2", "imagenet", 139, False, 62.75),
            "emonet-irv2-bovw": ("inception-resnet-v2", "imagenet", 139, True, 64.55),
            "emonet-resnet50-pixels": ("resnet50", "vggface2", 197, False, 68.92),
            "emonet-resnet50-bovw": ("resnet50", "vggface2", 197, True, 70.97)}
    for name, (backbone, weights, size, bovw, acc) in rows.items():
        r = get_recipe(name)
        assert r.model_kwargs == {"backbone": backbone, "weights": weights, "bovw": bovw}
        assert (r.input_size, r.paper_results, r.normalization, r.augment) == (size, {"PrivateTest": acc}, "mean", "emonet")
        assert (r.frozen_phase.epochs, r.frozen_phase.optimizer, r.frozen_phase.lr) == (5, "adam", 1e-3)
        assert (r.optimizer, r.lr, r.momentum, r.nesterov, r.batch_size, r.full.epochs) == ("sgd", 1e-3, 0.9, True, 64, 55)
        assert (r.schedule, r.plateau_on) == ("plateau", "val_loss") and r.early_stopping_patience
    ens = ENSEMBLES["emonet-ensemble"]
    assert ens.members == tuple(rows) and ens.method == "de" and ens.paper_results == {"PrivateTest": 73.39}
    assert sum(ens.paper_weights.values()) == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(KeyError, match="is an ensemble of"):
        get_recipe("emonet-ensemble")
    offline = ENSEMBLES["emonet-lite0-ensemble"].members
    assert {RECIPES[m].model_kwargs["weights"] for m in offline} == {"imagenet", "none"}
    assert {RECIPES[m].model_kwargs["bovw"] for m in offline} == {False, True}
    assert all(RECIPES[m].model_kwargs["backbone"] == "efficientnet-lite0" for m in offline)


def test_recipes_command_lists_emonet_rows_and_ensemble(capsys):
    from ferlib.commands import main

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in ("emonet-irv2-pixels", "emonet-irv2-bovw", "emonet-resnet50-pixels", "emonet-resnet50-bovw",
                 "emonet-ensemble", "emonet-lite0-pixels", "emonet-lite0-random-bovw", "emonet-lite0-ensemble"):
        assert name in out
    assert "PrivateTest 73.39" in out and "python -m ferlib ensemble emonet-ensemble" in out


def test_cl_resnet50_states_its_split_deviation():
    r = get_recipe("cl-resnet50")
    assert "70%" in r.notes and "30%" in r.notes and "PublicTest" in r.notes


def test_reproduce_targets_name_the_table_and_the_offline_rows():
    from ferlib.jobs.reproduce import expand_targets
    from ferlib.train.recipes.emonet import OFFLINE_RECIPES, TABLE_2_RECIPES

    assert [r.name for r in expand_targets(["emonet-table2"])] == list(TABLE_2_RECIPES)
    assert [r.name for r in expand_targets(["emonet-offline"])] == list(OFFLINE_RECIPES)
    assert set(TABLE_2_RECIPES) | set(OFFLINE_RECIPES) <= {r.name for r in expand_targets(["emonet"])}
