"""EmoNet's frozen phase on cached block features (ferlib.jobs.frozen_features): the cache is what the
frozen block computes, selection never looks at PrivateTest, the ensemble's weights come from PublicTest."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferlib.data.synthetic import make_synthetic_faces
from ferlib.errors import UsageError
from ferlib.jobs import frozen_features as ff
from ferlib.train.recipes import get_recipe


@pytest.fixture(autouse=True)
def private_folders(tmp_path, monkeypatch):
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FERLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(ff, "TIMED_BATCHES", 1)
    monkeypatch.setattr(ff, "TSNE_POINTS", 40)


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_faces(n_per_class=10, seed=5)


def _split(ds, s):
    return ds.subset(np.flatnonzero(ds.usage == s))


def test_cached_features_are_what_the_frozen_block_computes_in_the_network(faces):
    recipe = get_recipe("emonet-lite0-random-pixels")
    train = _split(faces, "Training")
    torch.manual_seed(0)
    model, normalizer, augment = ff.network_parts(recipe, train.pixels, 7)
    feats = ff.block_features(model, train.pixels[:9], train.labels[:9], normalizer, augment, batch_size=4)
    x = augment.eval_transform(normalizer(torch.from_numpy(train.pixels[:9]).float()[:, None]))
    with torch.no_grad():
        _, hidden = model.forward_with_features(x)
        direct = model.dense(torch.from_numpy(feats))
    assert feats.shape == (9, model.conv_block.feature_dim)
    assert torch.allclose(hidden, direct, atol=1e-5)  # the head on the cache = the network on the face


def test_head_training_leaves_the_block_alone_and_keeps_the_best_publictest_epoch(faces):
    recipe = get_recipe("emonet-lite0-random-pixels")
    split = {s: _split(faces, s) for s in ff.SPLITS}
    model, normalizer, augment = ff.network_parts(recipe, split["Training"].pixels, 7)
    before = {k: v.clone() for k, v in model.conv_block.state_dict().items()}
    X = {s: ff.head_inputs(model, ff.block_features(model, split[s].pixels, split[s].labels, normalizer, augment),
                           None) for s in ff.SPLITS}
    y = {s: split[s].labels.astype(int) for s in ff.SPLITS}
    out = ff.train_head(model, X, y, seed=0, epochs=4)
    assert all(torch.equal(before[k], v) for k, v in model.conv_block.state_dict().items())
    assert out["best_epoch"] == 1 + int(np.argmax(out["val_curve"]))  # first of ties
    y_scrambled = {**y, "PrivateTest": np.random.default_rng(0).permutation(y["PrivateTest"])}
    again = ff.train_head(model, X, y_scrambled, seed=0, epochs=4)
    assert again["best_epoch"] == out["best_epoch"] and again["val_curve"] == out["val_curve"]


def test_the_four_rows_and_their_ensemble_are_written_with_what_the_chapter_reads(faces):
    written = ff.run_frozen_features(dataset=faces, seeds=(0, 1), epochs=2, progress=False)
    assert set(written) == {*ff.OFFLINE_ROWS, ff.ENSEMBLE_NAME}
    row = json.loads(open(written["emonet-lite0-bovw"]["path"]).read())
    assert row["bovw"] and row["weights"] == "imagenet" and row["weights_record"]["sha256"]
    assert row["feature_dim"] == 1280 and row["synthetic"] and row["augmentation_given_up"]
    assert [r["seed"] for r in row["per_seed"]] == [0, 1]
    assert row["metrics"]["PrivateTest"]["se"] is not None
    assert set(row["timing"]) >= {"feature_extraction_s", "head_epoch_s", "frozen_epoch_through_block_s", "speedup"}
    assert len(row["tsne"]["points"]) == len(row["tsne"]["labels"]) == min(40, row["metrics"]["PublicTest"]["n"])
    ens = written[ff.ENSEMBLE_NAME]
    assert ens["members"] == list(ff.OFFLINE_ROWS)
    assert abs(sum(ens["weights"].values()) - 1) < 1e-6 and min(ens["weights"].values()) >= 0
    best = ens["PublicTest"]["best_single_member"]
    assert ens["PrivateTest"]["best_single_member"] == best  # chosen on PublicTest, reported on PrivateTest
    assert ff.read_results(own=True) == {}  # a quick (synthetic) run is never a result the chapter shows


def test_mistakes_are_one_message():
    with pytest.raises(UsageError, match="offline rows"):
        ff.run_frozen_features(["emonet-resnet50-bovw"], progress=False)
    with pytest.raises(UsageError, match="smoke test"):
        ff.results_dir_for(quick=True, published=True)
    with pytest.raises(UsageError, match="at least one epoch"):
        ff.run_frozen_features(epochs=0, progress=False)
    assert ff.command(ff.ENSEMBLE_NAME).startswith("python -m ferlib frozen-features emonet-lite0-pixels")
