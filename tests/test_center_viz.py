"""Chapter 03 support code: the toy faces, the (lambda, alpha) grid trained through the Trainer, figures, sliders."""
import json

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ferlib.evaluate.separation import separation_stats
from ferlib.models.embedding_net import EmbeddingNet
from ferlib.chapters import center_loss_grid as cg
from ferlib.viz import center_plots as cp

EPOCHS, BATCH = 27, 32  # 112 Training faces: 3 full batches per epoch, 81 steps


@pytest.fixture(scope="module")
def data():
    # 20 synthetic faces per class pooled to 8x8: each run below takes a fraction of a second
    return cg.toy_face_data(n_per_class=20, pool=6)


@pytest.fixture(scope="module")
def grid(data):
    return cg.center_grid(data, lambdas=(0.0, 1.0), alphas=(0.1, 0.9), epochs=EPOCHS, batch_size=BATCH)


def test_pool_faces_averages_blocks_and_rounds():
    px = np.zeros((1, 48, 48), dtype=np.uint8)
    px[0, :3, :3] = [[0, 0, 0], [0, 0, 0], [0, 0, 255]]  # block mean 28.33 -> 28
    px[0, :3, 3:6] = 10
    pooled = cg.pool_faces(px, 3)
    assert pooled.dtype == np.uint8 and pooled.shape == (1, 16, 16)
    assert pooled[0, 0, 0] == 28 and pooled[0, 0, 1] == 10 and pooled[0, 1:].max() == 0
    np.testing.assert_array_equal(cg.pool_faces(px, 1), px)
    with pytest.raises(ValueError, match="pool must divide 48"):
        cg.pool_faces(px, 5)


def test_toy_data_shapes_and_standardisation(data):
    assert data.in_dim == 64 and data.image_size == 8
    assert data.train_pixels.shape == (len(data.train_labels), 8, 8) and data.train_pixels.dtype == np.uint8
    assert data.held_out == "PublicTest" and "SYNTHETIC" in data.tag
    x, _ = next(iter(data.source("train")))  # in order, everything in one batch
    assert x.shape == (len(data.train_labels), 64)
    torch.testing.assert_close(x.mean(0), torch.zeros(64), atol=1e-4, rtol=0)  # Training statistics
    with pytest.raises(ValueError, match="pool must divide 48"):
        cg.toy_face_data(n_per_class=20, pool=5)
    with pytest.raises(ValueError, match="split must be"):
        data.source("PrivateTest")


def test_training_source_serves_shuffled_full_batches(data):
    src = data.source("train", training=True, batch_size=BATCH, seed=0)
    sizes = [len(y) for _, y in src]
    assert sizes == [BATCH] * (len(data.train_labels) // BATCH)  # the smaller last batch is dropped
    first, again = next(iter(src.iter_from(0))), next(iter(src.iter_from(0)))
    torch.testing.assert_close(first[0], again[0])  # batch k of epoch e is reproducible
    assert not torch.equal(next(iter(src.iter_from(1)))[1], first[1])  # a new order each epoch


def test_embedding_net_interface():
    net = EmbeddingNet(10, feature_dim=3, hidden=8, num_classes=7)
    logits, f = net.forward_with_features(torch.randn(4, 10))
    assert logits.shape == (4, 7) and f.shape == (4, 3) and net.feature_dim == 3
    torch.testing.assert_close(net(torch.ones(2, 10)), net.forward_with_features(torch.ones(2, 10))[0])


def test_grid_keys_shapes_and_determinism(data, grid):
    assert set(grid.runs) == {(0.0, 0.1), (0.0, 0.9), (1.0, 0.1), (1.0, 0.9)} and len(grid) == 4
    run = grid.run(1, 0.9)
    n_train = len(data.train_labels)
    assert run.train_features.shape == (n_train, 2) and run.test_features.shape == (len(data.test_labels), 2)
    assert run.steps == EPOCHS * (n_train // BATCH) and run.epochs == EPOCHS
    assert run.centers.shape == (7, 2)
    assert run.history["step"] == [*range(10, run.steps + 1, 10), run.steps]  # every 10 steps, and the last
    assert set(run.summary()) >= {"lambda", "alpha", "intra-class spread", "inter-class distance", "ratio"}
    assert len(grid.table()) == 4
    with pytest.raises(KeyError, match="no run"):
        grid.run(0.5, 0.1)
    # with lambda = 0 the centers never touch the network: alpha changes the centers only
    a, b = grid.run(0, 0.1), grid.run(0, 0.9)
    np.testing.assert_array_equal(a.train_features, b.train_features)
    assert not np.allclose(a.centers, b.centers)
    # same seed, same run
    again = cg.train_center_run(data, 1.0, 0.9, epochs=EPOCHS, batch_size=BATCH)
    np.testing.assert_array_equal(again.train_features, run.train_features)
    with pytest.raises(ValueError, match="larger than the 112 Training faces"):
        cg.train_center_run(data, 1.0, 0.9, epochs=1, batch_size=500)


def test_run_is_the_trainers_step(data):
    """One epoch of train_center_run = one epoch of the Trainer's step written out: forward, criterion, backward,
    Adam step, the center rule after the step."""
    from ferlib.losses.center import SoftmaxCenterLoss

    run = cg.train_center_run(data, 0.5, 0.5, epochs=1, batch_size=BATCH, weight_decay=0.0)
    torch.manual_seed(0)
    net = EmbeddingNet(data.in_dim, 2, 64, 7)
    crit = SoftmaxCenterLoss(7, 2, lambda_=0.5, alpha=0.5)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3, weight_decay=0.0)
    for x, y in data.source("train", training=True, batch_size=BATCH, seed=0).iter_from(0):
        logits, f = net.forward_with_features(x)
        loss = crit(logits, f, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        crit.after_step(f.detach(), y)
    np.testing.assert_allclose(run.centers, crit.centers.numpy(), rtol=1e-5, atol=1e-6)
    x_all, _ = next(iter(data.source("train")))
    with torch.no_grad():
        np.testing.assert_allclose(run.train_features, net.eval().forward_with_features(x_all)[1].numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_center_lag_is_the_distance_to_the_class_means():
    f = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]])
    y = np.array([0, 0, 2])
    centers = np.array([[1.0, 3.0], [9.0, 9.0], [5.0, 1.0]])  # class 1 is absent: not counted
    assert cg.center_lag(f, y, centers) == pytest.approx((3.0 + 4.0) / 2)


def test_center_loss_shrinks_the_spread(grid):
    for alpha in grid.alphas:
        plain, center = grid.run(0, alpha), grid.run(1, alpha)
        assert center.train_stats["intra_class_spread"] < 0.5 * plain.train_stats["intra_class_spread"]
        assert center.center_lag < plain.center_lag


def test_separation_stats_ratio_is_scale_free():
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(60, 4)), np.arange(60) % 3
    f[y == 1] += 3
    s1, s2 = separation_stats(f, y), separation_stats(0.5 * f, y)
    assert s2["intra_class_spread"] == pytest.approx(s1["intra_class_spread"] / 4)
    assert s2["ratio"] == pytest.approx(s1["ratio"])


def test_grid_settings_profiles():
    quick, full = cg.grid_settings("quick"), cg.grid_settings("full")
    assert 0.0 in quick["lambdas"] and len(quick["lambdas"]) * len(quick["alphas"]) <= 12
    assert len(full["lambdas"]) > len(quick["lambdas"]) and full["epochs"] > quick["epochs"]


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with cg.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_figures_build(grid):
    run = grid.run(1, 0.1)
    fig = cp.feature_figure(run, grid.class_names, tag=grid.tag)
    assert isinstance(fig, Figure) and "SYNTHETIC" in fig._suptitle.get_text()
    assert isinstance(cp.feature_figure(run, grid.class_names, split="test"), Figure)
    fig = cp.grid_figure(grid)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert len(cp.grid_figure(grid, alphas=[0.9], split="test").axes) == 2
    pts = {"a": (np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 7)}
    assert isinstance(cp.embedding_panels({**pts, "b": pts["a"], "c": pts["a"]}, grid.class_names), Figure)
    with pytest.raises(ValueError):
        cp.scatter_features(Figure().subplots(), np.zeros((3, 3)), np.zeros(3, int), grid.class_names)


def _by_class(features, labels):
    """Features in the order the scatter draws them: class by class."""
    return features[np.argsort(labels, kind="stable")]


def _offsets(fig):
    return np.concatenate([c.get_offsets() for c in fig.axes[0].collections])


def test_sliders_redraw_from_the_grid(grid):
    ex = cp.CenterGridExplorer(grid, lambda_=0.0, alpha=0.1)
    assert ex.draws == 1 and ex.run is grid.run(0, 0.1)  # interactive draws the initial state
    first = _offsets(ex.figure)
    ex.set(lambda_=1.0)  # as if the user moved the lambda slider
    assert ex.draws == 2 and ex.run is grid.run(1, 0.1)
    second = _offsets(ex.figure)
    assert first.shape != second.shape or not np.allclose(first, second)
    run = grid.run(1, 0.1)
    np.testing.assert_allclose(second[: len(run.train_labels)], _by_class(run.train_features, run.train_labels))
    ex.set(split="test")
    assert ex.draws == 3
    np.testing.assert_allclose(_offsets(ex.figure)[: len(run.test_labels)], _by_class(run.test_features, run.test_labels))
    ex.lambda_slider.value = 0.0
    ex.alpha_slider.value = 0.9
    assert ex.run is grid.run(0, 0.9) and ex.draws == 5


def test_scatter3d(data):
    runs = {"plain": cg.train_center_run(data, 0.0, 0.5, feature_dim=3, epochs=5, batch_size=BATCH),
            "center": cg.train_center_run(data, 1.0, 0.5, feature_dim=3, epochs=5, batch_size=BATCH)}
    fig = cp.scatter3d(runs, data.class_names, max_points=50, tag=data.tag)
    assert len(fig.data) == 2 * (7 + 1)
    n_points = sum(len(t.x) for t in fig.data if t.name != "centers")
    assert n_points <= 50
    with pytest.raises(ValueError, match="expected 3"):
        cp.scatter3d({"2d": cg.train_center_run(data, 0.0, 0.5, epochs=1, batch_size=BATCH)}, data.class_names)


def test_separation_table():
    rng = np.random.default_rng(1)
    t = cp.separation_table({"x": (rng.normal(size=(30, 5)), np.arange(30) % 3)})
    assert list(t.columns) == ["dim", "intra-class spread", "inter-class distance", "ratio"] and t.loc["x", "dim"] == 5


def test_paper_vs_ours_table(tmp_path, monkeypatch):
    from ferlib.jobs import tables as results_mod
    from ferlib.train.recipes import RECIPES
    from ferlib.jobs.tables import paper_vs_ours

    name = "densenet-bc"
    recipe = RECIPES[name]
    results = {"metrics": {"PublicTest": {"accuracy": 0.6512}, "PrivateTest": {"accuracy": 0.66, "macro_f1": 0.6}},
               "ensemble_last5": {"PublicTest": 0.655, "PrivateTest": 0.667}, "profile": "full", "synthetic": False,
               "provenance": {"device_name": "GPU", "git_sha": "0123456789ab"}}
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path))
    (tmp_path / f"{name}.json").write_text(json.dumps(results))
    t = paper_vs_ours([name, "wide-densenet", "no-such-recipe"])
    row = t.set_index("recipe").loc[name]
    assert row["paper PublicTest"] == recipe.paper_results["PublicTest"]  # from the recipe, never typed in
    assert row["ours PublicTest"] == 65.1 and row["ours ensemble_PrivateTest"] == 66.7
    assert "GPU" in row["run"] and "full profile" in row["run"] and "0123456" in row["status"]
    other = t.set_index("recipe").loc["wide-densenet"]
    assert other["ours PublicTest"] == results_mod.NOT_RUN and "--profile full" in other["status"]
    assert "not a registered recipe" in t.set_index("recipe").loc["no-such-recipe", "row"]
    assert results_mod.ours_for_key(results, "f1") == 60.0 and results_mod.ours_for_key(results, "accuracy") == 66.0
    # a wall-clock-budget run gets its own row, labelled with its budget and device
    (tmp_path / "budget").mkdir()
    budget = {**results, "budget": {"kind": "wall-clock", "minutes": 60}, "epochs_run": 16, "precision": "bf16",
              "provenance": {"device": "cpu", "device_name": "Some CPU", "cpu_threads": 1, "git_sha": "fedcba98"}}
    (tmp_path / "budget" / f"{name}-60min-cpu.json").write_text(json.dumps(budget))
    (tmp_path / "budget" / f"{name}-center-60min-cpu.json").write_text(json.dumps(budget))  # another recipe's
    rows = paper_vs_ours([name])
    assert len(rows) == 2 and "60-min budget, Some CPU, 1 thread(s), 16 epochs, bf16" == rows.iloc[1]["run"]
    # your own run (results/local/) is a row of its own, labelled as yours; the kit's stays
    (tmp_path / "local" / "budget").mkdir(parents=True)
    (tmp_path / "local" / "budget" / f"{name}-3min-cpu-2threads.json").write_text(json.dumps(budget))
    rows = paper_vs_ours([name])
    assert len(rows) == 3 and rows.iloc[1]["run"].endswith("bf16") and rows.iloc[2]["run"].endswith("(your run)")
    assert len(paper_vs_ours([name], own=False)) == 2


def test_checkpoint_features():
    from ferlib.data.normalize import fit_normalizer
    from ferlib.models.registry import build_model
    from ferlib.data.transforms import BatchAugment
    from ferlib.train.checkpoint import LoadedModel

    pixels = np.random.default_rng(0).integers(0, 256, size=(5, 48, 48), dtype=np.uint8)
    model = build_model("tiny-densenet")
    loaded = LoadedModel(model, fit_normalizer("pixel", pixels), BatchAugment(out_size=42), 42, 1,
                         [str(i) for i in range(7)], {})
    logits, feats = (t.numpy() for t in loaded.predict_outputs(pixels, batch_size=2))
    assert logits.shape == (5, 7) and feats.shape == (5, model.feature_dim)
