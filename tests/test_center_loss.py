"""Center loss (Wen et al.; densenet-fer2013 Eq. 2-6): value, gradient, center rule, criterion."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from ferlib.losses import (
    CenterLoss,
    SoftmaxCenterLoss,
    center_loss,
    center_update,
    rule_alpha_from_sgd,
    separate_lr_grad_scale,
    sgd_lr_from_rule_alpha,
)
from ferlib.evaluate.separation import inter_class_distance, intra_class_spread
from ferlib.numerics import check_gradient

# ---------------------------------------------------------------------------
# The worked example (3 classes, class 2 absent from the batch), alpha = 0.5
#
#   centers   c0 = (0, 0)   c1 = (2, 2)   c2 = (5, -5)
#   batch     x_a = (2, 0) y=0    x_b = (0, 4) y=0    x_c = (4, 2) y=1
#
# Loss (Eq. 2):  x_a - c0 = (2, 0), x_b - c0 = (0, 4), x_c - c1 = (2, 0)
#   L_C = 1/2 (4 + 16 + 4) = 12 ("sum");  12 / 3 = 4 ("mean")
#
# Rule (Eq. 4, 6):
#   class 0: n0 = 2, sum (c0 - x_i) = (0-2, 0-0) + (0-0, 0-4) = (-2, -4)
#            delta c0 = (-2, -4) / (1 + 2) = (-2/3, -4/3)
#            c0' = c0 - 0.5 * delta c0 = (1/3, 2/3)
#   class 1: n1 = 1, sum (c1 - x_i) = (2-4, 2-2) = (-2, 0)
#            delta c1 = (-2, 0) / (1 + 1) = (-1, 0)
#            c1' = (2, 2) - 0.5 * (-1, 0) = (2.5, 2)
#   class 2: absent -> numerator 0 -> c2' = (5, -5)
# ---------------------------------------------------------------------------
ALPHA = 0.5
CENTERS = [[0.0, 0.0], [2.0, 2.0], [5.0, -5.0]]
FEATURES = [[2.0, 0.0], [0.0, 4.0], [4.0, 2.0]]
LABELS = [0, 0, 1]
EXPECTED = [[1 / 3, 2 / 3], [2.5, 2.0], [5.0, -5.0]]


def _example(dtype=torch.float64):
    return (torch.tensor(FEATURES, dtype=dtype), torch.tensor(LABELS), torch.tensor(CENTERS, dtype=dtype))


def test_loss_value_on_worked_example():
    x, y, c = _example()
    assert center_loss(x, y, c, "sum").item() == pytest.approx(12.0)
    assert center_loss(x, y, c, "mean").item() == pytest.approx(4.0)
    with pytest.raises(ValueError):
        center_loss(x, y, c, "avg")


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradcheck_features_and_centers(reduction):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, dtype=torch.float64, generator=g, requires_grad=True)
    c = torch.randn(3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.tensor([0, 2, 2, 1, 0, 2])
    assert torch.autograd.gradcheck(lambda a, b: center_loss(a, y, b, reduction), (x, c))
    # the analytic gradient, Eq. 3 (divided by m for "mean")
    (gx,) = torch.autograd.grad(center_loss(x, y, c, reduction), x)
    expected = (x - c[y]).detach() / (6 if reduction == "mean" else 1)
    torch.testing.assert_close(gx, expected)


def test_check_gradient_agrees_with_eq3():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 5, dtype=torch.float64, generator=g)
    c = torch.randn(4, 5, dtype=torch.float64, generator=g)
    y = torch.tensor([0, 1, 1, 3, 0, 3, 3, 1])
    err = check_gradient(lambda z: center_loss(z, y, c, "sum"), x, x - c[y], name="center loss dL/dx", verbose=False)
    assert err < 1e-7


def test_center_update_matches_hand_worked_example():
    x, y, c = _example()
    c_before = c.clone()
    new = center_update(x, y, c, ALPHA)
    torch.testing.assert_close(new, torch.tensor(EXPECTED, dtype=torch.float64))
    assert torch.equal(new[2], c[2])  # absent class exactly unchanged
    assert torch.equal(c, c_before)  # pure function


def test_center_update_module_in_place_and_float32():
    x, y, c = _example(torch.float32)
    m = CenterLoss(3, 2, alpha=ALPHA)
    m.centers.copy_(c)
    m.update(x, y)
    torch.testing.assert_close(m.centers, torch.tensor(EXPECTED))
    assert "centers" in m.state_dict() and not m.centers.requires_grad


# --- planted bugs: the worked example must tell each of them from the rule -----------
def _bug_wrong_sign(x, y, c, alpha):
    counts = torch.bincount(y, minlength=c.shape[0]).to(c.dtype)
    num = torch.zeros_like(c).index_add_(0, y, c[y] - x)
    return c + alpha * num / (1 + counts)[:, None]


def _bug_no_plus_one(x, y, c, alpha):
    counts = torch.bincount(y, minlength=c.shape[0]).to(c.dtype).clamp(min=1)  # "avoid 0/0"
    num = torch.zeros_like(c).index_add_(0, y, c[y] - x)
    return c - alpha * num / counts[:, None]


def _bug_wrong_class(x, y, c, alpha):
    k = c.shape[0]
    counts = torch.bincount(y, minlength=k).to(c.dtype)
    num = torch.zeros_like(c).index_add_(0, (y + 1) % k, c[y] - x)  # accumulated into the next class
    return c - alpha * num / (1 + counts)[:, None]


@pytest.mark.parametrize("buggy", [_bug_wrong_sign, _bug_no_plus_one, _bug_wrong_class])
def test_worked_example_catches_planted_bugs(buggy):
    x, y, c = _example()
    expected = torch.tensor(EXPECTED, dtype=torch.float64)
    got = buggy(x, y, c, ALPHA)
    assert not torch.allclose(got, expected, atol=1e-3), buggy.__name__
    torch.testing.assert_close(center_update(x, y, c, ALPHA), expected)


def test_minimising_center_loss_shrinks_intra_class_spread():
    g = torch.Generator().manual_seed(0)
    means = torch.tensor([[-4.0, 0.0], [4.0, 0.0], [0.0, 6.0]])
    y = torch.arange(3).repeat_interleave(30)
    x = (means[y] + 1.5 * torch.randn(90, 2, generator=g)).requires_grad_()
    spread0 = intra_class_spread(x, y)
    inter0 = inter_class_distance(x, y)
    cl = CenterLoss(3, 2, alpha=0.5, reduction="sum")
    opt = torch.optim.SGD([x], lr=0.05)
    for _ in range(300):
        idx = torch.randperm(90, generator=g)[:30]
        loss = cl(x[idx], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        cl.update(x[idx].detach(), y[idx])
    spread1 = intra_class_spread(x, y)
    inter1 = inter_class_distance(x, y)
    # measured (seed 0): spread 4.24 -> 3.2e-4 (~13,000x smaller); inter-class distance 7.11 -> 6.85
    assert spread0 > 1.5 and spread1 < spread0 / 1000, (spread0, spread1)
    assert inter1 > 0.8 * inter0, (inter0, inter1)
    # the centers end up at the class means
    class_means = torch.stack([x.detach()[y == j].mean(0) for j in range(3)])
    torch.testing.assert_close(cl.centers, class_means, atol=1e-2, rtol=0)


def test_spread_and_distance_helpers_by_hand():
    f = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    y = np.array([0, 0, 1])
    # class means (1, 0) and (10, 0); squared distances 1, 1, 0
    assert intra_class_spread(f, y) == pytest.approx(2 / 3)
    assert inter_class_distance(f, y) == pytest.approx(9.0)
    assert np.isnan(inter_class_distance(f[:2], y[:2]))


# --- the trainer criterion ---------------------------------------------------------
def _batch(seed=0, m=12, k=4, d=3):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(m, k, generator=g, requires_grad=True)
    feats = torch.randn(m, d, generator=g, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2][:m])  # class 3 absent
    return logits, feats, labels


def test_softmax_center_forward_is_ce_plus_lambda_lc():
    logits, feats, labels = _batch()
    crit = SoftmaxCenterLoss(4, 3, lambda_=0.2, alpha=1.9)
    crit.centers.copy_(torch.randn(4, 3, generator=torch.Generator().manual_seed(5)))
    loss = crit(logits, feats.double(), labels)  # features cast to float32 inside
    ce = F.cross_entropy(logits, labels)
    lc = center_loss(feats, labels, crit.centers, "mean")
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, ce + 0.2 * lc)
    torch.testing.assert_close(crit.last_terms["ce"], ce.detach())
    torch.testing.assert_close(crit.last_terms["center"], lc.detach())
    assert not crit.last_terms["ce"].requires_grad and not crit.last_terms["center"].requires_grad


def test_rule_variant_no_center_grad_and_after_step_moves_toward_means():
    logits, feats, labels = _batch()
    crit = SoftmaxCenterLoss(4, 3, lambda_=0.05, alpha=0.5)
    assert crit.extra_param_groups() == []
    loss = crit(logits, feats, labels)
    loss.backward()
    assert feats.grad is not None and crit.centers.grad is None and not crit.centers.requires_grad
    class_means = torch.stack([feats.detach()[labels == j].mean(0) for j in range(3)])
    before = (crit.centers[:3] - class_means).norm(dim=1)
    crit.after_step(feats.detach(), labels)
    after = (crit.centers[:3] - class_means).norm(dim=1)
    assert torch.all(after < before)
    # from zero, one step puts c_j at alpha * n_j / (1 + n_j) * mean_j  (n_j = 4)
    torch.testing.assert_close(crit.centers[:3], 0.5 * 4 / 5 * class_means)
    assert torch.equal(crit.centers[3], torch.zeros(3))  # absent class


def test_gradient_variant_param_group_and_decoupled_lambda():
    logits, feats, labels = _batch()
    crit = SoftmaxCenterLoss(4, 3, lambda_=0.01, update="gradient", center_lr=0.5)
    (group,) = crit.extra_param_groups()
    assert group["weight_decay"] == 0.0 and group["lr"] == 0.5
    assert group["params"][0] is crit.centers and crit.centers.requires_grad
    model_param = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([{"params": [model_param]}] + crit.extra_param_groups(), lr=0.1, weight_decay=5e-4)
    assert opt.param_groups[1]["weight_decay"] == 0.0 and opt.param_groups[1]["lr"] == 0.5

    crit.centers.data.copy_(torch.randn(4, 3, generator=torch.Generator().manual_seed(3)))
    crit(logits, feats, labels).backward()
    # decoupled: the centers see dL_C/dc, not lambda * dL_C/dc ...
    c = crit.centers.detach().clone().requires_grad_()
    (gc,) = torch.autograd.grad(center_loss(feats.detach(), labels, c, "mean"), c)
    torch.testing.assert_close(crit.centers.grad, gc)
    # ... while the features see lambda * dL_C/dx (plus the cross-entropy's nothing: logits are separate)
    torch.testing.assert_close(feats.grad, 0.01 * (feats - crit.centers[labels]).detach() / 12)

    crit2 = SoftmaxCenterLoss(4, 3, lambda_=0.01, update="gradient", decouple_lambda=False)
    crit2.centers.data.copy_(crit.centers.detach())
    crit2(logits, feats, labels).backward()
    torch.testing.assert_close(crit2.centers.grad, 0.01 * gc)


def test_gradient_variant_warns_when_centers_not_in_optimizer():
    crit = SoftmaxCenterLoss(4, 3, update="gradient")
    with pytest.warns(UserWarning, match="extra_param_groups"):
        for seed in range(3):
            logits, feats, labels = _batch(seed)
            crit.centers.grad = None
            crit(logits, feats, labels).backward()
            crit.after_step(feats.detach(), labels)  # no optimizer ever stepped the centers
    with pytest.raises(RuntimeError, match="optimizer"):
        crit.center_loss.update(feats.detach(), labels)


def test_sgd_on_centers_equals_rule_with_matched_alpha():
    # every class has n_j = 2 in the batch, so one alpha matches all of them
    x = torch.tensor([[1.0, 2.0], [3.0, 0.0], [-1.0, 1.0], [0.0, -2.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    c0 = torch.tensor([[0.5, 0.5], [1.0, -1.0]], dtype=torch.float64)
    lr, lam = 0.1, 0.5
    cl = CenterLoss(2, 2, reduction="sum", update="gradient").double()
    cl.centers.data.copy_(c0)
    opt = torch.optim.SGD(cl.param_groups(), lr=lr)
    (lam * cl(x, y)).backward()
    opt.step()
    alpha = rule_alpha_from_sgd(lr, lam, 2, reduction="sum")
    assert alpha == pytest.approx(0.15)  # eta * lambda * (1 + n_j)
    torch.testing.assert_close(cl.centers.detach(), center_update(x, y, c0, alpha))
    assert sgd_lr_from_rule_alpha(alpha, lam, 2, reduction="sum") == pytest.approx(lr)
    # "mean" divides the center gradient by the batch size m
    assert rule_alpha_from_sgd(lr, lam, 2, reduction="mean", batch_size=4) == pytest.approx(0.15 / 4)


def test_feature_grad_scale_emulates_separate_center_lr():
    logits, feats, labels = _batch()
    s = separate_lr_grad_scale(base_lr=0.1, center_term_lr=1e-3)
    assert s == pytest.approx(0.01)
    crit = SoftmaxCenterLoss(4, 3, lambda_=0.05, feature_grad_scale=s)
    crit.centers.copy_(torch.randn(4, 3, generator=torch.Generator().manual_seed(2)))
    loss = crit(logits, feats, labels)
    ce = F.cross_entropy(logits, labels)
    torch.testing.assert_close(loss, ce + 0.05 * center_loss(feats, labels, crit.centers, "mean"))  # value unchanged
    loss.backward()
    torch.testing.assert_close(feats.grad, s * 0.05 * (feats - crit.centers[labels]).detach() / 12)


def test_bad_arguments():
    with pytest.raises(ValueError):
        CenterLoss(3, 2, update="sgd")
    with pytest.raises(ValueError):
        CenterLoss(3, 2, center_lr=0.1)  # rule: the rate is alpha
    with pytest.warns(UserWarning, match="alpha"):
        CenterLoss(3, 2, alpha=2.5)
