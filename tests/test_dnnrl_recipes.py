"""DNNRL Table 2 recipes, the §4 validation-loss protocol, the validators and the k-NN results.

The protocol is tested on scripted validation losses (cuts, reloads and the stop at the
right epochs; an exact resume across a reload); each recipe runs through the CLI on the
quick profile and writes a complete results file (k, sweep, both splits, provenance)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from conftest import build_test_run
from ferlib.commands import main
from ferlib.data.discovery import load_fer2013
from ferlib.data.splits import prepare_splits
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.evaluate.knn import knn_predict
from ferlib.evaluate.metrics import accuracy, predict
from ferlib.train.callbacks import Callback, TrainingInterrupted
from ferlib.train.checkpoint import load_checkpoint_dict, load_model
from ferlib.train.criteria import CrossEntropyConfig, ExponentialTripletConfig, TripletConfig
from ferlib.train.protocols import BEST_LOSS_FILE, ValidationLossProtocol, build_protocol
from ferlib.train.recipes import RECIPES, Budget, Recipe, get_recipe, smoke_recipe
from ferlib.jobs.tables import paper_vs_ours
from ferlib.train.validation import KNNValidator, SoftmaxValidator, predict_embeddings

DNNRL_RECIPES = ("dnnrl-dnn", "dnnrl-t-dnn", "dnnrl")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_faces(n_per_class=40, seed=0)


# -- the recipes ---------------------------------------------------------------------------------
def _loss(crit, emb, y, logits=None):
    return float(crit(logits, emb, y))


@pytest.mark.parametrize("name", DNNRL_RECIPES)
def test_runs_train_as_dnnrl_section_4(name, synthetic, tmp_path):
    """DNNRL §4 read from the run ``build_run`` makes: lr 0.01 held until the validation-loss rule cuts it
    (minimum 1e-4), batches of randomly selected faces with the last partial batch dropped, the face at
    108x108 (§3.1), and each row's loss (Table 2: DNN softmax; T-DNN FaceNet's triplet loss; DNNRL the
    exponential triplet loss, alpha = 0.2, gamma = 0).  SGD momentum 0.9 and weight decay 1e-4 are
    ferlib's choice (the paper names no optimiser)."""
    from ferlib.losses.triplet import TripletCriterion

    run = build_test_run(get_recipe(name), synthetic, tmp_path)
    t = run.trainer
    assert isinstance(t.optimizer, torch.optim.SGD)
    assert {(g["lr"], g["momentum"], g["nesterov"], g["weight_decay"]) for g in t.optimizer.param_groups} == {
        (0.01, 0.9, False, 1e-4)}
    assert not any(t.schedule.after_epoch(1.0) for _ in range(10))  # no schedule beside the protocol
    (protocol,) = [cb for cb in t.callbacks if isinstance(cb, ValidationLossProtocol)]
    assert protocol.min_lr == 1e-4 and t.select_on == "loss"
    src = t.train_source
    assert src.drop_last and src.sampler == "random" and len(src) == len(run.data.train) // src.batch_size
    x, _ = next(iter(run.test_source))
    assert tuple(x.shape[1:]) == (1, 108, 108)
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(32, 512, generator=g), dim=1)
    y = torch.arange(32) % 4
    if name == "dnnrl-dnn":
        logits = torch.randn(32, 7, generator=g)
        assert _loss(t.criterion, emb, y, logits) == pytest.approx(float(F.cross_entropy(logits, y)))
        assert isinstance(t.validator, SoftmaxValidator)
        with torch.no_grad():
            assert t.model.eval()(x[:2]).shape == (2, 7)  # a softmax head
        return
    assert isinstance(t.validator, KNNValidator)  # read out by k-NN on the embedding
    same = {"dnnrl-t-dnn": TripletCriterion("triplet", margin=0.2, mining="semi-hard"),
            "dnnrl": TripletCriterion("exponential", alpha=0.2, gamma=0.0, mining="semi-hard")}[name]
    other = {"dnnrl-t-dnn": TripletCriterion("triplet", margin=0.5, mining="semi-hard"),
             "dnnrl": TripletCriterion("exponential", alpha=0.5, gamma=0.0, mining="semi-hard")}[name]
    assert _loss(t.criterion, emb, y) == pytest.approx(_loss(same, emb, y))
    assert _loss(t.criterion, emb, y) != pytest.approx(_loss(other, emb, y))  # the number matters


def test_recipe_rejects_unknown_classifier_and_selection():
    with pytest.raises(ValueError, match="classifier"):
        Recipe(name="x", paper="dnnrl", row="x", model="dnnrl-net", classifier="svm")
    with pytest.raises(ValueError, match="select_on"):
        Recipe(name="x", paper="dnnrl", row="x", model="dnnrl-net", select_on="f1")


def test_batches_of_the_quick_profile_and_the_protocol_is_built(synthetic, tmp_path):
    run = build_test_run(get_recipe("dnnrl"), synthetic, tmp_path)
    t = run.trainer
    assert t.train_source.batch_size == 16 and t.train_source.drop_last  # quick-profile override of the 128
    assert len(t.train_source) == (7 * 8) // 16
    assert isinstance(t.validator, KNNValidator) and t.validator.criterion is t.criterion
    assert any(isinstance(cb, ValidationLossProtocol) for cb in t.callbacks)
    assert t.select_on == "loss"
    timed = build_test_run(get_recipe("dnnrl"), synthetic, tmp_path / "b", minutes=1.0)
    assert timed.trainer.train_source.batch_size == 128  # a wall-clock budget trains with the recipe's batches
    assert not any(isinstance(cb, ValidationLossProtocol) for cb in timed.trainer.callbacks)  # cosine instead
    assert timed.schedule_name == "warmup-cosine"
    # the plan leaves time to embed Training + PublicTest + PrivateTest (56 + 28 + 28 = 4 PublicTest passes)
    assert timed.budget.final_eval_passes == 4
    dnn = build_test_run(get_recipe("dnnrl-dnn"), synthetic, tmp_path / "c", minutes=1.0)
    assert dnn.budget.final_eval_passes == 12 + 4  # softmax best + last-five ensemble, then k-NN


def test_paper_vs_ours_shows_table_2(tmp_path, monkeypatch):
    """DNNRL Table 2, "Test" row (the FER-2013 test split = PrivateTest): DNN 69.22, T-DNN 70.13, DNNRL 70.60 %."""
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path))
    table = paper_vs_ours(list(DNNRL_RECIPES))
    assert list(table["recipe"]) == list(DNNRL_RECIPES)
    assert list(table["paper PrivateTest"]) == [69.22, 70.13, 70.60]
    assert set(table["ours PrivateTest"]) == {"not yet run"}


# -- validators -----------------------------------------------------------------------------------
def test_softmax_validator_is_the_old_evaluation(synthetic, tmp_path):
    t = build_test_run(smoke_recipe(quick=Budget(epochs=1, train_per_class=4, eval_per_class=3)), synthetic,
                       tmp_path).trainer
    out = SoftmaxValidator()(t.model, t.val_source, None)
    logits, labels = predict(t.model, t.val_source)
    assert out == {"accuracy": accuracy(logits.numpy(), labels.numpy()),
                   "loss": float(F.cross_entropy(logits, labels))}


def test_knn_validator_and_embeddings(synthetic, tmp_path):
    run = build_test_run(get_recipe("dnnrl"), synthetic, tmp_path)
    t = run.trainer
    emb, labels = predict_embeddings(t.model, t.val_source)
    assert emb.shape == (t.val_source.num_samples, 512) and torch.equal(labels, t.val_source.labels.cpu())
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(len(emb)))
    ref, ref_labels = predict_embeddings(t.model, t.validator.reference_source)
    assert len(ref) == 7 * 8  # the quick Training subset is smaller than 300 per class: all of it
    out = t.validator(t.model, t.val_source, None)
    pred = knn_predict(ref, ref_labels, emb, 5)
    assert out["accuracy"] == float((pred == labels).double().mean())
    assert out["loss"] == t.criterion.validation_loss(emb, labels)
    with pytest.raises(TypeError, match="validation_loss"):
        KNNValidator(t.validator.reference_source, criterion=torch.nn.CrossEntropyLoss())


# -- the §4 protocol on scripted validation losses ------------------------------------------------
class ScriptedValidator:
    """Validation loss of epoch e = losses[e - 1] (read from the trainer, so a resumed run gets the same)."""

    name = "scripted"

    def __init__(self, losses):
        self.losses, self.trainer = losses, None

    def __call__(self, model, val_source, autocast_dtype=None):
        return {"accuracy": 0.5, "loss": self.losses[self.trainer.state.epoch]}

    def describe(self):
        return {"name": self.name}


class Snapshots(Callback):
    """Model weights and momentum buffers after each epoch's training (placed before the protocol)."""

    def __init__(self):
        self.weights, self.momentum = {}, {}

    def on_epoch_end(self, trainer, record):
        if record["epoch"] not in self.weights:
            self.weights[record["epoch"]] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
            self.momentum[record["epoch"]] = [trainer.optimizer.state[p]["momentum_buffer"].clone()
                                              for p in trainer.model.parameters()]


class AfterProtocol(Callback):
    def __init__(self):
        self.weights, self.momentum, self.lr = {}, {}, {}

    def on_epoch_end(self, trainer, record):
        self.weights[record["epoch"]] = {k: v.clone() for k, v in trainer.model.state_dict().items()}
        self.momentum[record["epoch"]] = [trainer.optimizer.state[p]["momentum_buffer"].clone()
                                          for p in trainer.model.parameters()]
        self.lr[record["epoch"]] = trainer.optimizer.param_groups[0]["lr"]


def protocol_recipe(epochs=20):
    return smoke_recipe(protocol="dnnrl-validation-loss", select_on="loss", schedule="constant", lr=0.01,
                        min_lr=1e-4, nesterov=False, batch_size=16,
                        quick=Budget(epochs=epochs, train_per_class=4, eval_per_class=2))


def protocol_trainer(synthetic, run_dir, losses, patience, before=None, after=None, **kw):
    """A tiny-DenseNet run under the protocol (``patience`` epochs), validated by ``losses``;
    ``before`` / ``after`` are callbacks placed just before / after the protocol."""
    t = build_test_run(protocol_recipe(), synthetic, run_dir, **kw).trainer
    protocol = next(cb for cb in t.callbacks if isinstance(cb, ValidationLossProtocol))
    protocol.patience = patience
    i = t.callbacks.index(protocol)
    t.callbacks = t.callbacks[:i] + [cb for cb in (before, protocol, after) if cb] + t.callbacks[i + 1:]
    t.validator = ScriptedValidator(losses)
    t.validator.trainer = t
    return t


# epoch:     1    2    3     4    5    6     7    8     9    10
LOSSES = [1.0, 0.9, 0.95, 1.0, 0.8, 0.85, 0.9, 0.95, 0.85, 0.84, 0.83, 0.82]
# 3: 0.95 <= 1.1 x 0.9: no cut.  4: 1.0 > 0.99: lr 1e-2 -> 1e-3, reload epoch 2.  5: new best 0.8.
# 7: 0.9 > 0.88: lr -> 1e-4, reload 5.  8: 0.95 > 0.88: lr stays at the minimum 1e-4, reload 5.
# 6..9: four epochs without a new lowest loss -> with patience 4, stop after epoch 9.


def test_protocol_cuts_reloads_and_stops_at_the_right_epochs(synthetic, tmp_path):
    before, after = Snapshots(), AfterProtocol()
    t = protocol_trainer(synthetic, tmp_path, LOSSES, patience=4, before=before, after=after)
    state = t.fit()
    assert state.epoch == 9 and t.stop_requested
    assert [h["lr"] for h in state.history] == pytest.approx([1e-2] * 4 + [1e-3] * 3 + [1e-4] * 2)
    st = state.callback_state["dnnrl-validation-loss"]
    assert [(r["after_epoch"], r["reloaded_epoch"]) for r in st["reloads"]] == [(4, 2), (7, 5), (8, 5)]
    assert st["cuts"] == 3 and st["best_epoch"] == 5 and st["stopped_after_epoch"] == 9
    assert [e for e, h in enumerate(state.history, 1) if "protocol" in h] == [4, 7, 8, 9]
    assert "stop" in state.history[-1]["protocol"]
    # a reload restores the weights AND the momentum of the best-loss epoch, at the new lr
    for epoch, best in ((4, 2), (7, 5), (8, 5)):
        for k, v in before.weights[best].items():
            assert torch.equal(after.weights[epoch][k], v), (epoch, k)
        for a, b in zip(after.momentum[epoch], before.momentum[best]):
            assert torch.equal(a, b)
    assert after.lr[4] == pytest.approx(1e-3) and after.lr[8] == pytest.approx(1e-4)
    assert not torch.equal(after.weights[3]["features.conv.weight"], before.weights[2]["features.conv.weight"])
    # best.pt is the lowest validation loss; best_loss.pt holds its weights and optimizer state
    assert load_checkpoint_dict(tmp_path / "best.pt")["epoch"] == 5
    kept = load_checkpoint_dict(tmp_path / BEST_LOSS_FILE)
    assert kept["epoch"] == 5 and "optimizer" in kept
    # a finished run stays finished
    again = protocol_trainer(synthetic, tmp_path, LOSSES, patience=4)
    assert again.fit().epoch == 9


def test_protocol_killed_mid_way_resumes_exactly(synthetic, tmp_path):
    whole = protocol_trainer(synthetic, tmp_path / "whole", LOSSES, patience=4)
    whole.fit()
    steps = len(whole.train_source)
    assert steps >= 2
    # dies in epoch 4, whose end reloads epoch 2 from best_loss.pt: the resumed run must read the file
    killed = protocol_trainer(synthetic, tmp_path / "killed", LOSSES, patience=4, checkpoint_every_steps=1,
                              stop_after_steps=3 * steps + 1)
    with pytest.raises(TrainingInterrupted):
        killed.fit()
    assert load_checkpoint_dict(tmp_path / "killed" / "latest.pt")["state"]["epoch"] == 3
    assert load_checkpoint_dict(tmp_path / "killed" / BEST_LOSS_FILE)["epoch"] == 2
    resumed = protocol_trainer(synthetic, tmp_path / "killed", LOSSES, patience=4, checkpoint_every_steps=1)
    resumed.fit()
    assert resumed.state.epoch == whole.state.epoch == 9
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert [h["train_loss"] for h in whole.state.history] == [h["train_loss"] for h in resumed.state.history]
    assert whole.state.callback_state == resumed.state.callback_state
    assert len(resumed.state.callback_state["dnnrl-validation-loss"]["reloads"]) == 3


def test_protocol_needs_a_validation_loss_and_sane_settings(synthetic, tmp_path):
    t = protocol_trainer(synthetic, tmp_path, [None] * 3, patience=4)
    with pytest.raises(ValueError, match="validation loss"):
        t.fit()
    with pytest.raises(ValueError, match="factor"):
        ValidationLossProtocol(factor=1.0)
    with pytest.raises(ValueError, match="patience"):
        ValidationLossProtocol(patience=0)
    with pytest.raises(KeyError, match="unknown training protocol"):
        build_protocol("nope", protocol_recipe())
    assert build_protocol("dnnrl-validation-loss", get_recipe("dnnrl")).min_lr == 1e-4


# -- the three recipes through the CLI ------------------------------------------------------------------
@pytest.mark.slow  # three CLI trainings of the 108 px network, ~12 s each on 2 cores
@pytest.mark.parametrize("name", DNNRL_RECIPES)
def test_cli_quick_run_writes_complete_results(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    run_dir = tmp_path / "run"
    assert main(["train", name, "--profile", "quick", "--device", "cpu", "--quiet", "--precision", "fp32",
                 "--threads", "1", "--out", str(tmp_path / "out"), "--run-dir", str(run_dir)]) == 0
    r = json.loads((tmp_path / "out" / f"{name}.json").read_text())
    assert r["synthetic"] is True and r["profile"] == "quick" and r["paper_results"]["PrivateTest"] > 69
    for key in ("git_sha", "device", "cpu_model", "versions", "wall_time_s", "started"):
        assert key in r["provenance"], key
    knn = r["knn"]
    assert set(knn["sweep"]) == {str(k) for k in (1, 3, 5, 7, 9, 11, 15, 21, 31, 41, 51)}  # k <= 56 faces
    assert str(knn["k"]) in knn["sweep"]
    assert knn["PublicTest"]["accuracy"] == knn["sweep"][str(knn["k"])]  # k chosen on PublicTest
    assert knn["reference"]["n"] == r["data"]["Training"] == 7 * 8
    for split in ("PublicTest", "PrivateTest"):
        assert sum(map(sum, knn[split]["confusion_matrix"])) == knn[split]["n"] == 28
        assert 0 <= r["metrics"][split]["accuracy"] <= 1
    assert r["protocol"]["name"] == "dnnrl-validation-loss" and r["protocol"]["best_epoch"] == r["selected_epoch"]
    losses = [h["val_loss"] for h in r["history"]]
    assert r["selected_epoch"] == 1 + int(np.argmin(losses))  # selected on the validation loss
    # inference = evaluation: the selected checkpoint gives the reported numbers
    data = prepare_splits(load_fer2013(None, verbose=False), 8, 4, 0)
    loaded = load_model(run_dir / "best.pt")
    pred = knn_predict(loaded.features(data.train.pixels), data.train.labels, loaded.features(data.test.pixels),
                       knn["k"])
    assert float((pred.numpy() == data.test.labels).mean()) == pytest.approx(knn["PrivateTest"]["accuracy"])
    if name == "dnnrl-dnn":  # softmax head beside k-NN on the same network
        assert r["classifier"] == "softmax" and r["validation"]["name"] == "softmax"
        probs = loaded.predict_proba(data.test.pixels)
        softmax_accuracy = float((probs.argmax(1) == data.test.labels).mean())
        assert r["metrics"]["PrivateTest"]["accuracy"] == pytest.approx(softmax_accuracy)
        assert r["ensemble_last5"]["epochs"] == [1, 2]
    else:
        assert r["classifier"] == "knn" and r["metrics"]["PrivateTest"] == knn["PrivateTest"]
        assert r["ensemble_last5"] is None and r["validation"]["name"] == "knn"
        assert not loaded.has_softmax_head
        with pytest.raises(ValueError, match="k-NN"):
            loaded.predict_proba(data.test.pixels[:2])


def test_cpu_variants_are_table_2s_recipes_at_64_px():
    from ferlib.data.transforms import get_augment
    from ferlib.train.recipes import dnnrl as dnnrl_recipes

    assert set(dnnrl_recipes.CPU_VARIANTS) == {f"{n}-64px" for n in dnnrl_recipes.TABLE_2}
    for name, variant in dnnrl_recipes.CPU_VARIANTS.items():
        paper = get_recipe(name.removesuffix("-64px"))
        assert variant.paper_results == {} and variant.row.startswith("(CPU variant)")
        assert variant.input_size == 64 and variant.model_kwargs["input_size"] == 64
        assert (variant.criterion, variant.classifier, variant.lr, variant.batch_size, variant.protocol) == (
            paper.criterion, paper.classifier, paper.lr, paper.batch_size, paper.protocol)
    aug = get_augment("dnnrl", **dnnrl_recipes.CPU_VARIANTS["dnnrl-64px"].augment_kwargs)
    assert (aug.out_size, aug.crop_margin) == (64, 4) and get_augment("dnnrl").crop_margin == 6
