"""Lab 08's graders: they pass the solution, fail a blank stub, and name the planted bug."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ferlib.checks import GRADERS, CheckFailed
from ferlib.checks.ferplus import (_count, _reference_stack, check_light_net_parameters, check_stack_inputs,
                                   check_total_loss)


def stack_ok(faces, channels):
    return _reference_stack(faces, channels)


def blank(*args):
    raise NotImplementedError()


def test_graders_are_registered_with_points():
    assert GRADERS["check_stack_inputs"] == 2 and GRADERS["check_light_net_parameters"] == 1
    assert GRADERS["check_total_loss"] == 2


@pytest.mark.parametrize("grader", [check_stack_inputs, check_light_net_parameters, check_total_loss])
def test_blank_stub_fails(grader):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        grader(blank)


def test_stack_inputs_passes_the_solution(capsys):
    check_stack_inputs(stack_ok)
    assert capsys.readouterr().out.startswith("PASS input channels")


@pytest.mark.parametrize("bug, hint", [
    (lambda f, ch: _reference_stack(f, ch, order=tuple(reversed(ch.split("+")))), "wrong order"),
    (lambda f, ch: _reference_stack(f, ch, pad="constant"), "BORDER_REFLECT_101"),
    (lambda f, ch: _reference_stack(f, ch, pad="edge"), "repeats"),
    (lambda f, ch: _reference_stack(f, ch, sobel_scale=1.0), "sqrt(20)"),
    (lambda f, ch: _reference_stack(f, ch, laplacian_offset=0.0), "+128 is missing"),
    (lambda f, ch: _reference_stack(f, ch, sobel_x_only=True), "magnitude"),
    (lambda f, ch: _reference_stack(f, ch, laplacian_kernel="8"), "4-neighbour"),
    (lambda f, ch: np.rint(_reference_stack(f, ch)), "do not round"),
    (lambda f, ch: np.moveaxis(_reference_stack(f, ch), 1, -1), "channel first"),
    (lambda f, ch: _reference_stack(f, ch)[:, :2], "has 3 channels"),
])
def test_stack_inputs_names_the_bug(bug, hint):
    with pytest.raises(CheckFailed) as e:
        check_stack_inputs(bug)
    assert hint in str(e.value)


def test_light_net_parameters_passes_the_solution(capsys):
    check_light_net_parameters(lambda c, k: _count(c, k))
    assert "0.36 M" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, hint", [
    (dict(bn=False), "BatchNorm has 2 parameters"),
    (dict(conv_bias=True), "no bias: BatchNorm follows"),
    (dict(dense_bias=True), "512-unit dense layer has no bias"),
    (dict(output_bias=False), "output layer has a bias"),
    (dict(full_depthwise=True), "depthwise"),
    (dict(extra_channel_weights=False), "each input channel adds"),
])
def test_light_net_parameters_names_the_bug(kwargs, hint):
    with pytest.raises(CheckFailed) as e:
        check_light_net_parameters(lambda c, k: _count(c, k, **kwargs))
    assert hint in str(e.value)


def test_light_net_parameters_wants_a_number():
    with pytest.raises(CheckFailed, match="whole number"):
        check_light_net_parameters(lambda c, k: "0.36 M")


def total_ok(logits, features, labels, centers, lam):
    return F.cross_entropy(logits, labels) + lam * 0.5 * ((features - centers[labels]) ** 2).sum(1).mean()


def test_total_loss_passes_the_solution(capsys):
    check_total_loss(total_ok)
    assert "toward its own center" in capsys.readouterr().out


@pytest.mark.parametrize("bug, hint", [
    (lambda lo, x, y, c, lam: F.cross_entropy(lo, y) - lam * 0.5 * ((x - c[y]) ** 2).sum(1).mean(), "wrong sign"),
    (lambda lo, x, y, c, lam: F.cross_entropy(lo, y) - lam * ((x - c[y]) ** 2).sum(), "wrong sign"),  # Eq. 1 verbatim
    (lambda lo, x, y, c, lam: F.cross_entropy(lo, y) + lam * ((x - c[y]) ** 2).sum(1).mean(), "1/2 in front"),
    (lambda lo, x, y, c, lam: F.cross_entropy(lo, y) + lam * 0.5 * ((x - c[y]) ** 2).sum(), "average over the batch"),
    (lambda lo, x, y, c, lam: F.cross_entropy(lo, y) + 0 * x.sum(), "center term is missing"),
    (lambda lo, x, y, c, lam: (F.cross_entropy(lo, y) + lam * 0.5 * ((x - c[y]) ** 2).sum(1).mean()).detach(),
     "autograd"),
    (lambda lo, x, y, c, lam: float(total_ok(lo, x, y, c, lam).detach()), "scalar tensor"),
])
def test_total_loss_names_the_bug(bug, hint):
    with pytest.raises(CheckFailed) as e:
        check_total_loss(bug)
    assert hint in str(e.value)


def test_printed_sign_runs_away():
    """Eq. 1 as printed, minimised: the features leave their centers and the loss falls without bound."""
    torch.manual_seed(0)
    x = torch.randn(8, 2, requires_grad=True)
    c = torch.zeros(4, 2)
    y = torch.arange(8) % 4
    for _ in range(20):
        loss = -0.5 * ((x - c[y]) ** 2).sum()
        (g,) = torch.autograd.grad(loss, x)
        with torch.no_grad():
            x -= 0.2 * g
    assert float(loss) < -100 and float(x.norm(dim=1).min()) > 10
