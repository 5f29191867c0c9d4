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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """On a shared, loaded CPU two intra-op threads oversubscribe (a 3 s test took 20-30 s); one is steady."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- recipes -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["densenet-center", "densenet-bc-center", "wide-densenet-center",
                                  "wide-densenet-bc-center"])
def test_densenet_center_recipes_follow_the_paper(name):
    r, base = get_recipe(name), get_recipe(name.removesuffix("-center"))
    assert r.criterion == CenterLossConfig(lambda_=0.05, alpha=0.5, center_term_lr=1e-3) and r.paper == "densenet-cl"
    assert set(r.paper_results) == {"PublicTest", "PrivateTest", "ensemble_PublicTest", "ensemble_PrivateTest"}
    assert r.row == base.row + " + center loss"
    # everything else exactly as the softmax-only row
    same = replace(r, name=base.name, row=base.row, criterion=base.criterion, paper_results=base.paper_results,
                   notes=base.notes)
    assert same == base
    assert (r.optimizer, r.lr, r.nesterov, r.batch_size, r.schedule) == ("sgd", 0.1, True, 128, "plateau")


def test_resnet_recipes_follow_cl_resnet50():
    base, cl = get_recipe("resnet50"), get_recipe("cl-resnet50")
    for r in (base, cl):
        assert r.paper == "cl-resnet50" and r.model == "resnet50" and r.model in MODELS
        assert (r.input_size, r.augment, r.normalization) == (224, "cl_resnet50", "channel")
        assert (r.optimizer, r.lr, r.weight_decay, r.batch_size, r.schedule) == ("adam", 1e-3, 0.0, 62, "constant")
        assert r.early_stopping_patience == 6 and r.full.epochs == 50
        assert r.quick.epochs == 1 and r.quick.train_per_class <= 4 and r.quick.eval_per_class <= 2
    assert base.criterion == CrossEntropyConfig() and set(base.paper_results) == {"accuracy", "f1"}
    assert cl.criterion == CenterLossConfig(lambda_=0.2, alpha=1.9)  # no center_term_lr: Adam 1e-3 for both
    # identical apart from the loss
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
    with pytest.raises(RuntimeError, match="could not be loaded"):
        ResNet18FER(pretrained=True)

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
