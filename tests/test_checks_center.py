"""Lab 03 graders: pass on correct functions (NumPy and torch), fail with the right hint on planted bugs."""
import numpy as np
import pytest
import torch

from ferlib.checks.center import (
    EXAMPLE_ALPHA,
    EXAMPLE_CENTERS,
    EXAMPLE_FEATURES,
    EXAMPLE_LABELS,
    EXAMPLE_LOSS,
    EXAMPLE_NEW_CENTERS,
    check_center_loss_forward,
    check_center_loss_grad,
    check_center_update,
)
from ferlib.checks.core import CheckFailed
from ferlib.losses.center import center_loss, center_update


# -- correct answers ------------------------------------------------------------------------

def forward_ok(features, labels, centers):
    return 0.5 * np.sum((features - centers[labels]) ** 2)


def grad_ok(features, labels, centers):
    return features - centers[labels]


def update_ok(features, labels, centers, alpha):
    new = centers.copy()
    for j in range(len(centers)):
        mask = labels == j
        delta = np.sum(centers[j] - features[mask], axis=0) / (1 + mask.sum())
        new[j] = centers[j] - alpha * delta
    return new


def update_ok_vectorised(features, labels, centers, alpha):
    counts = np.bincount(labels, minlength=len(centers))
    numer = np.zeros_like(centers)
    np.add.at(numer, labels, centers[labels] - features)
    return centers - alpha * numer / (1 + counts)[:, None]


def test_worked_example_constants_match_ferlib():
    x, y, c = (torch.tensor(a) for a in (EXAMPLE_FEATURES, EXAMPLE_LABELS, EXAMPLE_CENTERS))
    assert center_loss(x, y, c, "sum").item() == pytest.approx(EXAMPLE_LOSS)
    np.testing.assert_allclose(center_update(x, y, c, EXAMPLE_ALPHA).numpy(), EXAMPLE_NEW_CENTERS)


def test_graders_pass_on_correct_functions(capsys):
    check_center_loss_forward(forward_ok)
    check_center_loss_grad(grad_ok)
    check_center_update(update_ok)
    check_center_update(update_ok_vectorised)
    out = capsys.readouterr().out
    assert out.count("PASS") == 4
    assert "expect < 1e-07 in float64" in out  # the gradient check states its tolerance


def test_graders_accept_torch_answers():
    def fwd(x, y, c):
        return center_loss(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(c), "sum")

    def upd(x, y, c, a):
        return center_update(torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(c), a)

    check_center_loss_forward(fwd)
    check_center_update(upd)


# -- blanks and planted bugs ------------------------------------------------------------------

def blank(*args):
    raise NotImplementedError()


@pytest.mark.parametrize("check", [check_center_loss_forward, check_center_loss_grad, check_center_update])
def test_blank_says_not_implemented(check):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(blank)


FORWARD_BUGS = {
    "no half": (lambda x, y, c: np.sum((x - c[y]) ** 2), "1/2"),
    "mean": (lambda x, y, c: 0.5 * np.sum((x - c[y]) ** 2) / len(y), "averaged"),
    "not squared": (lambda x, y, c: 0.5 * np.sum(np.linalg.norm(x - c[y], axis=1)), "squared"),
    "all centers": (lambda x, y, c: 0.5 * np.sum((x[:, None] - c[None]) ** 2), "every center"),
    "minus sign": (lambda x, y, c: -0.5 * np.sum((x - c[y]) ** 2), "sign"),
    "per sample": (lambda x, y, c: 0.5 * np.sum((x - c[y]) ** 2, axis=1), "one number"),
}


@pytest.mark.parametrize("bug", sorted(FORWARD_BUGS))
def test_forward_bugs_are_caught(bug):
    fn, hint = FORWARD_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_center_loss_forward(fn)


GRAD_BUGS = {
    "wrong sign": (lambda x, y, c: c[y] - x, "wrong sign"),
    "mean": (lambda x, y, c: (x - c[y]) / len(y), "divided by the batch size"),
    "times two": (lambda x, y, c: 2 * (x - c[y]), "1/2 cancels"),
    "wrong center": (lambda x, y, c: x - c[(y + 1) % len(c)], "wrong center"),
    "grad of centers": (lambda x, y, c: np.zeros_like(c), "shape of the centers"),
}


@pytest.mark.parametrize("bug", sorted(GRAD_BUGS))
def test_grad_bugs_are_caught(bug):
    fn, hint = GRAD_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_center_loss_grad(fn)


def update_wrong_sign(x, y, c, a):
    return 2 * c - update_ok(x, y, c, a)  # c + alpha * delta


def update_no_plus_one(x, y, c, a):
    new = c.copy()
    for j in np.unique(y):
        m = y == j
        new[j] = c[j] - a * np.sum(c[j] - x[m], axis=0) / m.sum()
    return new


def update_no_plus_one_nan(x, y, c, a):
    with np.errstate(invalid="ignore", divide="ignore"):
        counts = np.bincount(y, minlength=len(c))
        numer = np.zeros_like(c)
        np.add.at(numer, y, c[y] - x)
        return c - a * numer / counts[:, None]


def update_all_samples(x, y, c, a):
    return np.stack([c[j] - a * np.sum(c[j] - x, axis=0) / (1 + len(y)) for j in range(len(c))])


def update_off_by_one(x, y, c, a):
    return update_ok(x, y + 1, c, a)


def update_no_alpha(x, y, c, a):
    return update_ok(x, y, c, 1.0)


def update_in_place(x, y, c, a):
    c -= c - update_ok(x, y, c, a)
    return c


def update_moves_absent(x, y, c, a):
    new = update_ok(x, y, c, a)
    absent = np.setdiff1d(np.arange(len(c)), y)
    new[absent] = new[absent] * (1 - a)  # e.g. decays absent centers toward 0
    return new


UPDATE_BUGS = {
    "wrong sign": (update_wrong_sign, "wrong sign"),
    "no +1": (update_no_plus_one, r"\+1"),
    "no +1 (NaN)": (update_no_plus_one_nan, r"\+1"),
    "all samples": (update_all_samples, "every sample"),
    "off by one": (update_off_by_one, "off by one"),
    "no alpha": (update_no_alpha, "alpha is missing"),
    "in place": (update_in_place, "in place"),
    "absent class moves": (update_moves_absent, "absent"),
}


@pytest.mark.parametrize("bug", sorted(UPDATE_BUGS))
def test_update_bugs_are_caught(bug):
    fn, hint = UPDATE_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_center_update(fn)
