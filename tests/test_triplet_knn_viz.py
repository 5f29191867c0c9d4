"""Chapters 04 and 05 library code: the triplet-loss figures and slider, the k-NN figures and neighbours."""
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch.nn import functional as F

from ferlib.evaluate.knn import knn_predict
from ferlib.losses.triplet import (
    exponential_triplet_loss,
    exponential_triplet_loss_as_printed,
    mine_triplets,
    relative_distance,
    triplet_loss,
)
from ferlib.viz import knn_plots as kp
from ferlib.viz import triplet_plots as tp

CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    emb = F.normalize(torch.randn(40, 6, generator=g), dim=1)
    labels = torch.arange(40) % 4
    return emb, labels


# -- triplet_plots -------------------------------------------------------------------------------------

def test_triplets_with_relative_distance_hit_r_exactly():
    r = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=torch.float64)
    a, p, n = tp.triplets_with_relative_distance(r)
    torch.testing.assert_close(relative_distance(a, p, n), r)
    rr = r.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(relative_distance(*tp.triplets_with_relative_distance(rr)).sum(), rr)
    torch.testing.assert_close(g, torch.ones_like(r))  # dr/dr = 1: the curves' gradients are in r


@pytest.mark.parametrize("alpha,gamma", [(0.2, 0.0), (1.5, 0.5)])
def test_loss_vs_relative_distance_matches_the_formulas(alpha, gamma):
    r = np.array([-2.0, -0.3, gamma - 0.1, gamma + 0.1, 1.0, 3.0])
    x, loss, grad = tp.loss_vs_relative_distance(exponential_triplet_loss, r, alpha=alpha, gamma=gamma)
    active = r > gamma
    np.testing.assert_allclose(x, r)
    np.testing.assert_allclose(loss, np.exp(-alpha * np.maximum(r - gamma, 0)))
    np.testing.assert_allclose(grad, np.where(active, -alpha * np.exp(-alpha * (r - gamma)), 0.0), atol=1e-12)
    _, loss_p, grad_p = tp.loss_vs_relative_distance(exponential_triplet_loss_as_printed, r, alpha=alpha, gamma=gamma)
    np.testing.assert_allclose(loss_p, np.exp(-alpha * np.maximum(-r - gamma, 0)))
    assert np.all(grad_p[r > -gamma] == 0) and np.all(grad_p[r < -gamma] > 0)  # the sign slip: flat where right
    r0 = np.append(r, 0.0)  # r = 0 exactly: the construction must not put a kink of its own there
    _, hinge, hinge_grad = tp.loss_vs_relative_distance(triplet_loss, r0, margin=0.2)
    np.testing.assert_allclose(hinge, np.maximum(0.2 - r0, 0))
    np.testing.assert_allclose(hinge_grad, np.where(r0 < 0.2, -1.0, 0.0))


def test_loss_vs_relative_distance_errors():
    with pytest.raises(ValueError, match="1-D grid"):
        tp.loss_vs_relative_distance(exponential_triplet_loss, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="one loss per triplet"):
        tp.loss_vs_relative_distance(lambda a, p, n, reduction, **kw: exponential_triplet_loss(a, p, n).sum(),
                                     [0.0, 1.0])
    x, _, _ = tp.loss_vs_relative_distance(exponential_triplet_loss)
    assert x[0] == -4.0 and x[-1] == 4.0  # the unit sphere's range by default


def _lines(ax):
    return {line.get_label(): line for line in ax.get_lines()}


def test_printed_vs_corrected_figure():
    fig = tp.printed_vs_corrected_figure(alpha=0.5, gamma=0.0, r=np.linspace(-1, 1, 21), tag="SYNTHETIC test")
    assert isinstance(fig, Figure) and len(fig.axes) == 2 and "SYNTHETIC" in fig._suptitle.get_text()
    lines = _lines(fig.axes[0])
    r = lines["Eq. 1 corrected"].get_xdata()
    np.testing.assert_allclose(lines["Eq. 1 corrected"].get_ydata(), np.exp(-0.5 * np.maximum(r, 0)))
    np.testing.assert_allclose(lines["Eq. 1 as printed"].get_ydata(), np.exp(-0.5 * np.maximum(-r, 0)))


def test_fig3_figure():
    fig = tp.fig3_figure(alphas=(0.1, 1.0), gammas=(0.0, 0.5, 1.0), r=np.linspace(-1, 2, 31))
    assert len(fig.axes) == 4
    assert [len(ax.get_lines()) - 2 for ax in fig.axes] == [2, 3, 2, 3]  # (minus the two reference axes lines)
    with pytest.raises(ValueError):
        tp.fig3_figure(alphas=())


def _corrected_curve(fig):
    return _lines(fig.axes[0])["exponential (DNNRL, corrected)"].get_ydata().copy()


def test_slider_alpha_redraws_loss_and_gradient():
    ex = tp.ExponentialTripletExplorer(alpha=0.2, gamma=0.0, r=np.linspace(-2, 4, 61))
    assert ex.draws == 1 and ex.figure is not None  # interactive draws the initial state
    before_loss = _corrected_curve(ex.figure)
    before_grad = _lines(ex.figure.axes[1])["exponential (DNNRL, corrected)"].get_ydata().copy()
    ex.alpha_slider.value = 1.0  # as if the user moved the alpha slider
    assert ex.draws == 2
    after_loss = _corrected_curve(ex.figure)
    after_grad = _lines(ex.figure.axes[1])["exponential (DNNRL, corrected)"].get_ydata()
    assert not np.allclose(before_loss, after_loss) and not np.allclose(before_grad, after_grad)
    r = ex.r
    np.testing.assert_allclose(after_loss, np.exp(-1.0 * np.maximum(r, 0)))
    np.testing.assert_allclose(after_grad, np.where(r > 0, -np.exp(-r), 0.0), atol=1e-12)
    assert "1" in ex.figure._suptitle.get_text()
    ex.set(gamma=0.5)  # the gamma slider moves the kink
    np.testing.assert_allclose(_corrected_curve(ex.figure), np.exp(-1.0 * np.maximum(r - 0.5, 0)))
    assert "Eq. 1 as printed" not in _lines(ex.figure.axes[0])
    ex.set(show_printed=True)
    assert ex.draws == 4 and "Eq. 1 as printed" in _lines(ex.figure.axes[0])


def test_mining_summary_counts_and_losses(batch):
    emb, labels = batch
    table = tp.mining_summary(emb, labels, alpha=0.2, gamma=0.0, margin=0.2)
    assert list(table.index) == ["all", "batch-hard", "semi-hard"]
    counts = torch.bincount(labels)
    assert table.loc["all", "triplets"] == int(sum(n * (n - 1) * (len(labels) - n) for n in counts.tolist()))
    a, p, n = mine_triplets(emb, labels, "all")
    r = relative_distance(emb[a], emb[p], emb[n])
    assert table.loc["all", "active (r > γ)"] == pytest.approx(float((r > 0).float().mean()))
    assert table.loc["all", "mean r"] == pytest.approx(float(r.mean()), abs=1e-6)
    # the losses from constructed triplets equal the library losses on the real ones
    assert table.loc["all", "exponential loss (mean)"] == pytest.approx(
        float(exponential_triplet_loss(emb[a], emb[p], emb[n], reduction="mean")), rel=1e-5)
    assert table.loc["all", "FaceNet loss (mean)"] == pytest.approx(
        float(triplet_loss(emb[a], emb[p], emb[n], margin=0.2)), rel=1e-5)
    assert table.loc["semi-hard", "active (r > γ)"] == 1.0 and table.loc["semi-hard", "wrongly ordered (r < 0)"] == 0
    assert table.loc["batch-hard", "triplets"] == len(labels)
    # a larger gamma can only shrink the active share
    assert tp.mining_summary(emb, labels, gamma=0.3).loc["all", "active (r > γ)"] < table.loc["all", "active (r > γ)"]
    rs = tp.mined_relative_distances(emb, labels, ("all",))
    np.testing.assert_allclose(np.sort(rs["all"]), np.sort(r.numpy()), atol=1e-6)


def test_mining_summary_without_triplets():
    emb = F.normalize(torch.randn(5, 3), dim=1)
    table = tp.mining_summary(emb, torch.arange(5))  # every face its own class: no positives
    assert (table["triplets"] == 0).all() and table["mean r"].isna().all()


def test_relative_distance_histograms(batch):
    emb, labels = batch
    fig = tp.relative_distance_histograms(tp.mined_relative_distances(emb, labels), tag="SYNTHETIC x")
    assert len(fig.axes) == 3 and "SYNTHETIC" in fig._suptitle.get_text()
    assert fig.axes[1].get_title().startswith(f"batch-hard: {len(labels)} triplets")
    with pytest.raises(ValueError):
        tp.relative_distance_histograms({})


def test_active_fraction_figure():
    hist = {"run a": {"step": [0, 10, 20], "active": [0.5, 0.6, 0.7], "held-out": [0.1, 0.2, 0.3]},
            "run b": {"step": [0, 10, 20], "active": [0.0, 0.0, 0.0], "held-out": [0.1, 0.1, 0.1]}}
    fig = tp.active_fraction_figure(hist)
    assert sum(ax.get_visible() for ax in fig.axes) == 2
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_ydata(), [0.5, 0.6, 0.7])
    assert len(tp.active_fraction_figure(hist, keys=("active",)).axes) == 1
    with pytest.raises(ValueError, match="no 'nope'"):
        tp.active_fraction_figure(hist, keys=("nope",))
    with pytest.raises(ValueError, match="logs 2 values"):
        tp.active_fraction_figure({"x": {"step": [0, 1, 2], "active": [0.1, 0.2]}})
    with pytest.raises(ValueError):
        tp.active_fraction_figure({})


# -- knn_plots ------------------------------------------------------------------------------------------

def test_nearest_neighbours_brute_force_and_metrics(batch):
    emb, labels = batch
    train, query = emb[:30], emb[30:]
    idx, dist = kp.nearest_neighbours(train, query, 5, chunk_size=4)
    brute = torch.cdist(query, train).pow(2)
    np.testing.assert_array_equal(idx, brute.argsort(1)[:, :5].numpy())
    np.testing.assert_allclose(dist, np.sort(brute.numpy(), 1)[:, :5], atol=1e-5)
    # on the unit sphere the cosine order is the Euclidean order
    idx_cos, dist_cos = kp.nearest_neighbours(train, query, 5, metric="cosine")
    np.testing.assert_array_equal(idx, idx_cos)
    np.testing.assert_allclose(dist, 2 * dist_cos, atol=1e-5)  # ||a - b||^2 = 2 (1 - cos)
    # ... but not off it
    scaled = train * torch.linspace(0.3, 3.0, 30)[:, None]
    assert not np.array_equal(kp.nearest_neighbours(scaled, query, 5)[0],
                              kp.nearest_neighbours(scaled, query, 5, metric="cosine")[0])
    # the 1-NN label is knn_predict's with k = 1
    first, _ = kp.nearest_neighbours(train, query, 1)
    np.testing.assert_array_equal(labels[:30].numpy()[first[:, 0]], knn_predict(train, labels[:30], query, 1).numpy())
    with pytest.raises(ValueError, match="k must be"):
        kp.nearest_neighbours(train, query, 31)
    with pytest.raises(ValueError, match="metric"):
        kp.nearest_neighbours(train, query, 1, metric="manhattan")
    with pytest.raises(ValueError, match="differ in dimension"):
        kp.nearest_neighbours(train, query[:, :3], 1)


def test_pair_distances_and_cosines(batch):
    emb, _ = batch
    sq, cos = kp.pair_distances_and_cosines(emb, n_pairs=300)
    np.testing.assert_allclose(sq, 2 - 2 * cos, atol=1e-5)
    assert np.all(sq > 0)  # never a row with itself
    with pytest.raises(ValueError):
        kp.pair_distances_and_cosines(emb[:1])
    fig = kp.distance_vs_cosine_figure({"unit": emb.numpy(), "scaled": 2 * emb.numpy()}, n_pairs=50, tag="SYNTHETIC")
    assert len(fig.axes) == 2 and "SYNTHETIC" in fig._suptitle.get_text()


def test_k_sweep_figure():
    sweep = {5: 0.3, 1: 0.2, 11: 0.25}
    fig = kp.k_sweep_figure({"net": sweep}, chosen={"net": 5}, reference={"softmax head": 0.28}, tag="SYNTHETIC")
    ax = fig.axes[0]
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [1, 5, 11])
    np.testing.assert_allclose(line.get_ydata(), [0.2, 0.3, 0.25])
    assert ax.get_lines()[1].get_xdata()[0] == 5  # the chosen k is marked
    assert ax.get_xscale() == "log"
    with pytest.raises(ValueError):
        kp.k_sweep_figure({"net": {}})


def test_neighbour_strips_frames_by_label():
    rng = np.random.default_rng(0)
    q, k = 2, 3
    fig = kp.neighbour_strips(rng.integers(0, 255, (q, 48, 48)), np.array([0, 3]),
                              rng.integers(0, 255, (q, k, 48, 48)), np.array([[0, 1, 0], [3, 3, 2]]), CLASSES,
                              predicted=np.array([0, 3]), distances=rng.random((q, k)), tag="SYNTHETIC")
    assert len(fig.axes) == q * (k + 1) and "SYNTHETIC" in fig._suptitle.get_text()
    colors = [fig.axes[i * (k + 1) + 1 + j].spines["top"].get_edgecolor() for i in range(q) for j in range(k)]
    green, red = (0.17254901960784313, 0.6274509803921569, 0.17254901960784313, 1.0), \
        (0.8392156862745098, 0.15294117647058825, 0.1568627450980392, 1.0)
    assert colors == [green, red, green, green, green, red]
    with pytest.raises(ValueError, match="expected query_pixels"):
        kp.neighbour_strips(np.zeros((2, 48, 48)), np.zeros(2), np.zeros((3, 3, 48, 48)), np.zeros((3, 3)), CLASSES)


def test_embedding_scatter():
    rng = np.random.default_rng(1)
    labels = np.arange(60) % 7
    fig3 = kp.embedding_scatter(rng.normal(size=(60, 3)), labels, CLASSES, tag="SYNTHETIC", max_points=30)
    assert len(fig3.data) == 7 and fig3.data[0].type == "scatter3d"
    assert sum(len(t.x) for t in fig3.data) == 30 and "SYNTHETIC" in fig3.layout.title.text
    fig2 = kp.embedding_scatter(rng.normal(size=(60, 2)), labels, CLASSES, hover=[str(i) for i in range(60)])
    assert fig2.data[0].type == "scatter" and sum(len(t.x) for t in fig2.data) == 60
    with pytest.raises(ValueError, match="project the embeddings"):
        kp.embedding_scatter(rng.normal(size=(10, 5)), labels[:10], CLASSES)


def test_triplet_demo_runs_through_the_trainer_and_logs_every_step_it_says():
    import torch

    from ferlib.chapters.center_loss_grid import toy_face_data
    from ferlib.chapters.triplet_demo import HISTORY_KEYS, short_triplet_run
    from ferlib.losses.triplet import mine_triplets

    data = toy_face_data(n_per_class=30)
    a, p, n = mine_triplets(torch.zeros(len(data.test_labels), 2), torch.as_tensor(data.test_labels), "all")
    hist, acc = short_triplet_run(data, (a[:200], p[:200], n[:200]), steps=6, log_every=2, batch_size=32)
    assert set(hist) == set(HISTORY_KEYS) and len({len(v) for v in hist.values()}) == 1
    assert hist["step"][0] == 0 and hist["step"][-1] >= 1 and 0.0 <= acc <= 1.0
    assert all(0.0 <= v <= 1.0 for v in hist["active"] + hist["held-out: correctly ordered"])
