"""Center-loss recipes (DenseNet-CL Table II, CL-ResNet50 Table 3), the center_term_lr option,
joint-loss training through the trainer (centers move, are checkpointed, resume), and the
ResNet backbones (shapes, ImageNet-weight fallback without network)."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch.nn import functional as F

from ferlib.data.synthetic import make_synthetic_faces
from ferlib.losses import SoftmaxCenterLoss, center_loss
from ferlib.models import backbones
from ferlib.models.backbones import ResNet18FER, ResNet50FER
from conftest import build_test_run
from ferlib.models import MODELS, build_model
from ferlib.train.callbacks import TrainingInterrupted
from ferlib.train.checkpoint import load_checkpoint_dict
from ferlib.train.criteria import CenterLossConfig, CrossEntropyConfig, build_criterion
from ferlib.train.recipes import RECIPES, Budget, get_recipe, smoke_recipe
from ferlib.jobs.tables import paper_vs_ours


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """On a shared, loaded CPU two intra-op threads oversubscribe (a 3 s test took 20-30 s); one is steady."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- recipes: what a built run does --------------------------------------------------------
def _build(name_or_recipe, synthetic, tmp_path):
    recipe = get_recipe(name_or_recipe) if isinstance(name_or_recipe, str) else name_or_recipe
    return build_test_run(recipe, synthetic, tmp_path)


def _optimiser_settings(opt) -> set:
    keys = ("lr", "momentum", "nesterov", "weight_decay") if isinstance(opt, torch.optim.SGD) else ("lr", "weight_decay")
    return {tuple(g[k] for k in keys) for g in opt.param_groups}


def _check_every_weight_is_optimised(run):
    in_opt = {id(p) for g in run.trainer.optimizer.param_groups for p in g["params"]}
    assert in_opt >= {id(p) for p in run.trainer.model.parameters() if p.requires_grad}


def _check_center_loss(crit, lambda_, alpha):
    """The loss value is CE + lambda * L_C; one face of a class moves its zero center alpha/2 of the way."""
    g = torch.Generator().manual_seed(0)
    dim = crit.centers.shape[1]
    logits, feats, y = torch.randn(6, 7, generator=g), torch.randn(6, dim, generator=g), torch.tensor([0, 1, 2, 3, 4, 5])
    crit.centers.copy_(torch.randn(7, dim, generator=g))
    expected = F.cross_entropy(logits, y) + lambda_ * center_loss(feats, y, crit.centers)
    torch.testing.assert_close(crit(logits, feats, y), expected)
    crit.centers.zero_()
    crit.after_step(feats[:1], y[:1])  # the rule: c_j += alpha * n_j / (1 + n_j) * (mean x - c_j), n_j = 1
    torch.testing.assert_close(crit.centers[0], alpha / 2 * feats[0])
    assert not crit.centers[1:].any()


# DenseNet-CL Table II, with center loss, in %: Public, Private, ensemble Public, ensemble Private
TABLE_II_CENTER = {"densenet-center": (69.0, 70.1, 69.4, 71.1), "densenet-bc-center": (68.9, 70.7, 69.7, 70.9),
                   "wide-densenet-center": (70.2, 71.3, 71.1, 71.6),
                   "wide-densenet-bc-center": (70.6, 72.2, 70.7, 72.2)}


@pytest.mark.parametrize("name", list(TABLE_II_CENTER))
def test_densenet_center_runs_train_as_the_paper_says(name, synthetic, tmp_path, monkeypatch):
    """DenseNet-CL §IV-C: SGD, Nesterov momentum 0.9, lr 0.1 divided by 10 when the training loss stops
    improving, weight decay 1e-4 (DenseNet) / 1e-5 (WideDenseNet); the face at 42x42; center loss with
    lambda = 0.05, alpha = 0.5 and "a constant learning rate 10^-3" for the center term.  Table II's
    numbers are the ones the comparison table shows.  Read from the run ``build_run`` makes."""
    recipe, base = get_recipe(name), get_recipe(name.removesuffix("-center"))
    run = _build(recipe, synthetic, tmp_path)
    t = run.trainer
    opt = t.optimizer
    assert isinstance(opt, torch.optim.SGD)
    assert _optimiser_settings(opt) == {(0.1, 0.9, True, 1e-5 if name.startswith("wide") else 1e-4)}
    _check_every_weight_is_optimised(run)
    x, _ = next(iter(run.test_source))
    assert tuple(x.shape[1:]) == (1, 42, 42)
    # the center term's own lr: its gradient on the features is scaled by 1e-3 / the network's lr
    t.criterion.on_lr_change(opt)
    assert t.criterion.feature_grad_scale == pytest.approx(1e-3 / 0.1)
    _check_center_loss(t.criterion, 0.05, 0.5)
    # plateau: a falling training loss keeps lr 0.1; a flat one divides it by 10 (after the patience)
    for loss in (2.0, 1.5, 1.0):
        t.schedule.after_epoch(loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    lrs = []
    for _ in range(20):
        t.schedule.after_epoch(1.0)
        lrs.append(opt.param_groups[0]["lr"])
    cut = next(i for i, lr in enumerate(lrs) if lr < 0.1)
    assert 0 < cut < 20 and lrs[cut] == pytest.approx(0.01)  # divided by 10, not more, at the first cut
    # the paper's numbers as shown beside ours
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path / "no-results"))
    row = paper_vs_ours([name]).iloc[0]
    shown = tuple(row[f"paper {k}"] for k in ("PublicTest", "PrivateTest", "ensemble_PublicTest",
                                               "ensemble_PrivateTest"))
    assert shown == TABLE_II_CENTER[name] and row["ours PrivateTest"] == "not yet run"
    # the softmax-only row of the same network is the same recipe apart from the loss (and its numbers)
    same = replace(recipe, name=base.name, row=base.row, criterion=base.criterion, paper_results=base.paper_results,
                   notes=base.notes)
    assert same == base and isinstance(base.criterion, CrossEntropyConfig)


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def offline(*a, **k):
        raise OSError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)


@pytest.mark.parametrize("name, paper", [("resnet50", {"accuracy": 62.079, "f1": 61.566}),
                                         ("cl-resnet50", {"accuracy": 63.402, "f1": 62.487})])
def test_resnet_runs_train_as_cl_resnet50(name, paper, synthetic, tmp_path, no_network, monkeypatch):
    """CL-ResNet50 (ResNet-50 + center loss paper), §3 and Table 3: ResNet-50 on 224x224 input, Adam with
    lr 1e-3 "for both softmax loss and center loss" held constant, early stopping after 6 epochs without
    improvement; center loss lambda = 0.2, alpha = 1.9.  Without network the paper row stops with one message
    (never silently random weights); its ``-random`` variant, asked for by name, is the same recipe."""
    from ferlib.models.pretrained import MissingWeightsError

    with pytest.raises(MissingWeightsError, match="ImageNet weights"):
        _build(name, synthetic, tmp_path / "paper")
    assert replace(get_recipe(f"{name}-random"), name=name, row=get_recipe(name).row,
                   paper_results=get_recipe(name).paper_results, model_kwargs=get_recipe(name).model_kwargs) \
        == get_recipe(name)
    run = _build(f"{name}-random", synthetic, tmp_path)
    t = run.trainer
    assert isinstance(t.optimizer, torch.optim.Adam) and _optimiser_settings(t.optimizer) == {(1e-3, 0.0)}
    _check_every_weight_is_optimised(run)
    assert sum(p.numel() for p in t.model.parameters()) > 23_000_000  # a ResNet-50
    x, _ = next(iter(run.test_source))
    assert tuple(x.shape[1:]) == (3, 224, 224)
    assert not any(t.schedule.after_epoch(1.0) for _ in range(20))  # constant lr
    assert t.optimizer.param_groups[0]["lr"] == 1e-3
    assert t.early_stopping_patience == 6
    if name == "cl-resnet50":
        t.criterion.on_lr_change(t.optimizer)  # no separate center-term lr: Adam's 1e-3 for both
        assert t.criterion.feature_grad_scale == 1.0
        _check_center_loss(t.criterion, 0.2, 1.9)
    else:
        assert not isinstance(t.criterion, SoftmaxCenterLoss)
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path / "no-results"))
    row = paper_vs_ours([name]).iloc[0]
    assert {k: row[f"paper {k}"] for k in paper} == paper
    # identical apart from the loss
    base, cl = get_recipe("resnet50"), get_recipe("cl-resnet50")
    assert replace(cl, name=base.name, row=base.row, criterion=base.criterion,
                   paper_results=base.paper_results, notes=base.notes) == base


def test_all_center_recipes_build_their_criterion():
    for name, r in RECIPES.items():
        if isinstance(r.criterion, CenterLossConfig):
            crit = build_criterion(r.criterion, 7, 16)
            assert isinstance(crit, SoftmaxCenterLoss) and crit.centers.shape == (7, 16)


# -- center_term_lr ------------------------------------------------------------------------
def test_center_term_lr_follows_the_optimizer_lr():
    crit = SoftmaxCenterLoss(3, 2, lambda_=0.05, center_term_lr=1e-3)
    w = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True)
    crit.on_lr_change(opt)
    assert crit.feature_grad_scale == pytest.approx(0.01)
    opt.param_groups[0]["lr"] = 1e-4  # e.g. after two plateau decays
    crit.on_lr_change(opt)
    assert crit.feature_grad_scale == pytest.approx(10.0)
    plain = SoftmaxCenterLoss(3, 2)
    plain.on_lr_change(opt)
    assert plain.feature_grad_scale == 1.0
    with pytest.raises(ValueError, match="not both"):
        SoftmaxCenterLoss(3, 2, center_term_lr=1e-3, feature_grad_scale=0.5)
    with pytest.raises(ValueError):
        SoftmaxCenterLoss(3, 2, center_term_lr=0.0)
    with pytest.warns(UserWarning, match="SGD only"):
        crit.on_lr_change(torch.optim.Adam([w], lr=1e-3))


def test_center_term_lr_equals_two_optimizers():
    """One SGD (momentum) at the softmax lr with center_term_lr == two SGDs: L_S at lr, lambda*L_C at 1e-3."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g)
    y = torch.arange(12) % 3
    centers = torch.randn(3, 4, generator=g)
    lr, clr, lam = 0.1, 1e-3, 0.05

    def net():
        torch.manual_seed(1)
        return torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Tanh())

    # reference: two optimisers, each with its own momentum buffer, on the same weights
    feat_a, head_a = net(), torch.nn.Linear(4, 3)
    head_b = torch.nn.Linear(4, 3)
    head_b.load_state_dict(head_a.state_dict())
    params_a = list(feat_a.parameters()) + list(head_a.parameters())
    opt_s = torch.optim.SGD(params_a, lr=lr, momentum=0.9)
    opt_c = torch.optim.SGD(params_a, lr=clr, momentum=0.9)
    for _ in range(3):
        f = feat_a(x)
        ls, lc = F.cross_entropy(head_a(f), y), lam * center_loss(f, y, centers)
        gs = torch.autograd.grad(ls, params_a, allow_unused=True, retain_graph=True)
        gc = torch.autograd.grad(lc, params_a, allow_unused=True)  # same weights for both terms
        for opt, grads in ((opt_s, gs), (opt_c, gc)):
            for p, g in zip(params_a, grads):
                p.grad = torch.zeros_like(p) if g is None else g
            opt.step()
    # ferlib: one optimiser, criterion with center_term_lr (centers held fixed for the comparison)
    feat_b = net()
    crit = SoftmaxCenterLoss(3, 4, lambda_=lam, center_term_lr=clr)
    crit.centers.copy_(centers)
    opt = torch.optim.SGD(list(feat_b.parameters()) + list(head_b.parameters()), lr=lr, momentum=0.9)
    crit.on_lr_change(opt)
    for _ in range(3):
        f = feat_b(x)
        loss = crit(head_b(f), f, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for a, b in zip(params_a, list(feat_b.parameters()) + list(head_b.parameters())):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


# -- joint training through the trainer ----------------------------------------------------
@pytest.fixture(scope="module")
def synthetic():
    return make_synthetic_faces(n_per_class=20, seed=0)


def _center_recipe(**kw):
    return smoke_recipe(criterion=CenterLossConfig(lambda_=0.05, alpha=0.5, center_term_lr=1e-3),
                        batch_size=16, quick=Budget(epochs=2, train_per_class=8, eval_per_class=2), **kw)


def _trainer(recipe, data, run_dir, **kw):
    return build_test_run(recipe, data, run_dir, **kw).trainer


def test_joint_training_moves_centers_and_checkpoints_them(synthetic, tmp_path):
    recipe = _center_recipe()
    whole = _trainer(recipe, synthetic, tmp_path / "whole")
    assert isinstance(whole.criterion, SoftmaxCenterLoss)
    assert not whole.criterion.centers.any()
    whole.fit()
    centers = whole.criterion.centers.clone()
    assert centers.abs().sum(1).gt(0).all(), "every class center should have moved from zero"
    assert whole.criterion.feature_grad_scale == pytest.approx(1e-3 / recipe.lr)  # set by on_lr_change
    for h in whole.state.history:
        assert set(h["train_terms"]) == {"ce", "center"} and h["train_terms"]["center"] > 0
        assert h["train_loss"] == pytest.approx(h["train_terms"]["ce"] + 0.05 * h["train_terms"]["center"], rel=1e-6)
    ckpt = load_checkpoint_dict(tmp_path / "whole" / "latest.pt")
    assert torch.equal(ckpt["criterion"]["center_loss.centers"], centers)

    # killed mid-epoch 2 and resumed: centers (and weights) end bitwise where the whole run ended
    steps = len(whole.train_source)
    killed = _trainer(recipe, synthetic, tmp_path / "killed", checkpoint_every_steps=1, stop_after_steps=steps + 1)
    with pytest.raises(TrainingInterrupted):
        killed.fit()
    resumed = _trainer(recipe, synthetic, tmp_path / "killed", checkpoint_every_steps=1)
    assert resumed.try_resume()
    saved = load_checkpoint_dict(tmp_path / "killed" / "latest.pt")["criterion"]["center_loss.centers"]
    assert saved.any() and torch.equal(resumed.criterion.centers, saved)
    resumed.fit()
    assert torch.equal(resumed.criterion.centers, centers)
    for a, b in zip(whole.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


# -- backbones -----------------------------------------------------------------------------
def test_resnet50_shapes_and_interface():
    m = build_model("resnet50", num_classes=7, in_channels=3, pretrained=False).eval()
    assert isinstance(m, ResNet50FER) and m.weights_source == "random-init"
    assert m.feature_dim == 2048 and isinstance(m.classifier, torch.nn.Linear)
    assert m.classifier.in_features == 2048 and m.classifier.out_features == 7
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        logits, feats = m.forward_with_features(x)
        assert logits.shape == (2, 7) and feats.shape == (2, 2048)
        torch.testing.assert_close(m(x), logits)
        torch.testing.assert_close(m.classifier(feats), logits)
    assert (feats >= 0).all()  # average of post-ReLU maps


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_try_falls_back_without_network(empty_hub, monkeypatch):
    def no_network(*a, **k):
        raise OSError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.warns(RuntimeWarning, match="ImageNet weights unavailable"):
        m = ResNet18FER(pretrained="try")
    assert m.weights_source.startswith("random-init (ImageNet weights unavailable: OSError: no network")
    from ferlib.models.pretrained import MissingWeightsError

    with pytest.raises(MissingWeightsError) as e:  # asked for (the recipes do): one message, never random weights
        ResNet18FER(pretrained=True)
    assert str(backbones.imagenet_cache_path("resnet18")) in str(e.value) and "weights='none'" in e.value.fix

    def must_not_download(*a, **k):
        raise AssertionError("pretrained='cache' must not touch the network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", must_not_download)
    with pytest.warns(RuntimeWarning, match="not in the torch hub cache"):
        m = ResNet18FER(pretrained="cache")
    assert m.weights_source.startswith("random-init (ImageNet weights unavailable")


def test_weights_from_the_hub_cache_and_grey_input(empty_hub, monkeypatch):
    import torchvision

    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(AssertionError("cached: no download")))
    torch.manual_seed(3)
    ref = torchvision.models.resnet18(weights=None)  # stands in for the ImageNet file
    path = backbones.imagenet_cache_path("resnet18")
    assert str(path).startswith(str(empty_hub))
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)
    m = ResNet18FER(num_classes=7, pretrained="try")
    assert m.weights_source == "imagenet:IMAGENET1K_V1"
    torch.testing.assert_close(m.backbone.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    assert m.classifier.out_features == 7
    grey = ResNet18FER(num_classes=7, in_channels=1, pretrained="try").eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        ref.fc = torch.nn.Identity()
        torch.testing.assert_close(grey.features(x), ref.eval()(x.repeat(1, 3, 1, 1)), atol=1e-4, rtol=1e-4)
    own = empty_hub / "my.pth"  # pretrained=<path>: a state-dict file
    torch.save(ref.state_dict(), own)
    assert ResNet18FER(pretrained=str(own)).weights_source == f"file:{own}"


def test_resnet_recipe_end_to_end_records_weights(synthetic, tmp_path):
    """cl-resnet50's pipeline (224-style augment, channel norm, Adam, center loss) on ResNet-18 at 32 px."""
    from ferlib.train.results import run_recipe

    recipe = replace(get_recipe("cl-resnet50"), name="cl-resnet18-smoke", model="resnet18", model_kwargs={},
                     input_size=32, batch_size=14, quick=Budget(epochs=1, train_per_class=4, eval_per_class=2))
    out = tmp_path / "r.json"
    run_recipe(recipe, dataset=synthetic, profile="quick", device="cpu", results_path=out, run_dir=tmp_path / "run",
               progress=False, precision="fp32")
    r = json.loads(out.read_text())
    assert r["model_weights"] == "random-init"
    assert set(r["history"][0]["train_terms"]) == {"ce", "center"}
    assert r["config"]["criterion"] == {"name": "center", "lambda_": 0.2, "alpha": 1.9, "center_term_lr": None,
                                        "reduction": "mean"}


def test_the_resnet50_recipes_ask_for_their_weights_and_checkpoints_rebuild_without_them(empty_hub, monkeypatch):
    from ferlib.models import build_model
    from ferlib.models.pretrained import MissingWeightsError
    from ferlib.train.recipes import get_recipe

    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network in this test")))
    for name in ("resnet50", "cl-resnet50"):
        assert get_recipe(name).model_kwargs == {"pretrained": True}
        assert get_recipe(f"{name}-random").model_kwargs == {"pretrained": "none"}
    with pytest.raises(MissingWeightsError, match="resnet50-11ad3fa6.pth"):
        build_model("resnet50", num_classes=7, in_channels=3, **get_recipe("cl-resnet50").model_kwargs)
    m = ResNet18FER(num_classes=7, pretrained=False)
    again = ResNet18FER(**m.checkpoint_kwargs)  # what a checkpoint rebuilds: no file read, no download
    assert again.weights_source.startswith("checkpoint") and again.classifier.out_features == 7
