"""Lab 06 graders: pass on correct answers (NumPy and torch), fail on blanks, name the planted mistakes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import differential_evolution

from ferlib.checks.core import CheckFailed
from ferlib.checks.ensemble import (
    EMONET_TABLE_1_WEIGHTS,
    EMONET_TABLE_2_ACCURACY,
    check_ensemble_nll,
    check_fit_weights,
    check_flip_tta,
    check_weighted_average,
    example_members,
)

# -- correct answers ------------------------------------------------------------------------------


def weighted_average_ok(probs, weights):
    w = weights / weights.sum()
    return np.tensordot(w, probs, axes=1)


def weighted_average_loop(probs, weights):
    out = np.zeros(probs.shape[1:])
    for m in range(len(weights)):
        out += weights[m] * probs[m]
    return out / np.sum(weights)


def weighted_average_torch(probs, weights):
    p, w = torch.as_tensor(probs), torch.as_tensor(weights)
    return torch.einsum("m,mnk->nk", w / w.sum(), p)


def nll_ok(weights, probs, labels):
    w = weights / weights.sum()
    p_true = w @ probs[:, np.arange(len(labels)), labels]
    return -np.mean(np.log(p_true))


def fit_ok(probs, labels, seed=0):
    m = probs["PublicTest"].shape[0]
    result = differential_evolution(nll_ok, [(0, 1)] * m, args=(probs["PublicTest"], labels["PublicTest"]),
                                    rng=seed, tol=1e-6)
    return result.x / result.x.sum()


def flip_ok(model, x):
    with torch.no_grad():
        return (torch.softmax(model(x), 1) + torch.softmax(model(x.flip(-1)), 1)) / 2


def flip_float32(model, x):  # a float32 forward pass is within the tolerance
    xf = x.float()
    m = model.float()
    try:
        with torch.no_grad():
            return ((torch.softmax(m(xf), 1) + torch.softmax(m(torch.flip(xf, dims=[3])), 1)) / 2).numpy()
    finally:
        model.double()


def test_graders_pass_on_correct_answers(capsys):
    for fn in (weighted_average_ok, weighted_average_loop, weighted_average_torch):
        check_weighted_average(fn)
    check_ensemble_nll(nll_ok)
    check_fit_weights(fit_ok)
    check_flip_tta(flip_ok)
    check_flip_tta(flip_float32)
    out = capsys.readouterr().out
    assert out.count("PASS") == 7 and "tolerance" in out


def blank(*args):
    raise NotImplementedError()


@pytest.mark.parametrize("check", [check_weighted_average, check_ensemble_nll, check_fit_weights, check_flip_tta])
def test_blank_says_not_implemented(check):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(blank)


# -- planted mistakes ----------------------------------------------------------------------------------

def onehot_votes(probs):
    return np.eye(probs.shape[2])[probs.argmax(2)]


AVERAGE_BUGS = {
    "not normalised": (lambda p, w: np.tensordot(w, p, axes=1), "weights not normalised"),
    "argmax labels": (lambda p, w: np.tensordot(w / w.sum(), onehot_votes(p), axes=1),
                      "averaged argmax labels"),
    "argmax, not normalised": (lambda p, w: np.tensordot(w, onehot_votes(p), axes=1), "argmax labels"),
    "weights ignored": (lambda p, w: p.mean(0), "weights are ignored"),
    "geometric": (lambda p, w: (lambda g: g / g.sum(1, keepdims=True))(np.exp(np.tensordot(w / w.sum(), np.log(p),
                                                                                         axes=1))),
                  "log-probabilities"),
    "per member": (lambda p, w: p * (w / w.sum())[:, None, None], "did not add them up"),
    "wrong axis": (lambda p, w: (p * (w / w.sum())[:, None, None]).sum(1), "one row per member"),
}


@pytest.mark.parametrize("bug", sorted(AVERAGE_BUGS))
def test_weighted_average_bugs_are_caught(bug):
    fn, hint = AVERAGE_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_weighted_average(fn)


def average_in_place(p, w):
    w /= w.sum()
    return np.tensordot(w, p, axes=1)


def test_weighted_average_in_place_is_caught():
    with pytest.raises(CheckFailed, match="in place"):
        check_weighted_average(average_in_place)


def _true(p, y):
    return p[:, np.arange(len(y)), y]


NLL_BUGS = {
    "not normalised": (lambda w, p, y: -np.mean(np.log(w @ _true(p, y))), "weights not normalised"),
    "mean of member NLLs": (lambda w, p, y: (w / w.sum()) @ -np.log(_true(p, y)).mean(1), "log outside the sum"),
    "sum": (lambda w, p, y: -np.sum(np.log((w / w.sum()) @ _true(p, y))), "summed over the samples"),
    "sign": (lambda w, p, y: np.mean(np.log((w / w.sum()) @ _true(p, y))), "wrong sign"),
    "argmax labels": (lambda w, p, y: -np.mean(np.log(np.maximum((w / w.sum()) @ _true(onehot_votes(p), y),
                                                                 1e-12))), "argmax labels"),
    "error rate": (lambda w, p, y: np.mean(np.tensordot(w / w.sum(), p, axes=1).argmax(1) != y), "error rate"),
    "per sample": (lambda w, p, y: -np.log((w / w.sum()) @ _true(p, y)), "one number"),
}


@pytest.mark.parametrize("bug", sorted(NLL_BUGS))
def test_nll_bugs_are_caught(bug):
    fn, hint = NLL_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_ensemble_nll(fn)


def fit_on_test(probs, labels, seed=0):
    m = probs["PrivateTest"].shape[0]
    r = differential_evolution(nll_ok, [(0, 1)] * m, args=(probs["PrivateTest"], labels["PrivateTest"]), rng=seed)
    return r.x / r.x.sum()


def fit_on_both(probs, labels, seed=0):
    p = np.concatenate([probs["PublicTest"], probs["PrivateTest"]], 1)
    y = np.concatenate([labels["PublicTest"], labels["PrivateTest"]])
    r = differential_evolution(nll_ok, [(0, 1)] * p.shape[0], args=(p, y), rng=seed)
    return r.x / r.x.sum()


def fit_not_normalised(probs, labels, seed=0):
    m = probs["PublicTest"].shape[0]
    return differential_evolution(nll_ok, [(0, 1)] * m, args=(probs["PublicTest"], labels["PublicTest"]), rng=seed).x


def fit_uniform(probs, labels, seed=0):
    m = probs["PublicTest"].shape[0]
    return np.full(m, 1 / m)


def fit_looks_at_test_then_fits_public(probs, labels, seed=0):
    _ = probs["PrivateTest"].mean()  # e.g. "to see which member is best"
    return fit_ok(probs, labels, seed)


FIT_BUGS = {
    "on the test split": (fit_on_test, "fitting on the test split"),
    "on both splits": (fit_on_both, "test split"),
    "raw DE vector": (fit_not_normalised, "weights not normalised"),
    "not fitted": (fit_uniform, "PublicTest NLL"),
    "reads PrivateTest": (fit_looks_at_test_then_fits_public, "read PrivateTest"),
}


@pytest.mark.parametrize("bug", sorted(FIT_BUGS))
def test_fit_bugs_are_caught(bug):
    fn, hint = FIT_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_fit_weights(fn)


def sm(model, x):
    return torch.softmax(model(x), 1)


FLIP_BUGS = {
    "vertical flip": (lambda model, x: (sm(model, x) + sm(model, x.flip(-2))) / 2, "vertical axis"),
    "vertical flip, dim 2": (lambda model, x: (sm(model, x) + sm(model, torch.flip(x, [2]))) / 2, "upside down"),
    "both axes": (lambda model, x: (sm(model, x) + sm(model, x.flip(-1, -2))) / 2, "both axes"),
    "transpose": (lambda model, x: (sm(model, x) + sm(model, x.transpose(-1, -2))) / 2, "transposed"),
    "batch order": (lambda model, x: (sm(model, x) + sm(model, x.flip(0))) / 2, "order of the batch"),
    "logits averaged": (lambda model, x: torch.softmax((model(x) + model(x.flip(-1))) / 2, 1), "logits"),
    "argmax labels": (lambda model, x: (torch.eye(5, dtype=x.dtype)[sm(model, x).argmax(1)]
                                        + torch.eye(5, dtype=x.dtype)[sm(model, x.flip(-1)).argmax(1)]) / 2,
                      "argmax labels"),
    "plain only": (lambda model, x: sm(model, x), "plain prediction"),
    "flipped only": (lambda model, x: sm(model, x.flip(-1)), "only the mirrored view"),
    "not halved": (lambda model, x: sm(model, x) + sm(model, x.flip(-1)), "divide"),
}


@pytest.mark.parametrize("bug", sorted(FLIP_BUGS))
def test_flip_bugs_are_caught(bug):
    fn, hint = FLIP_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_flip_tta(fn)


def flip_in_place(model, x):
    plain = sm(model, x)
    x.copy_(x.flip(-1))
    return (plain + sm(model, x)) / 2


def test_flip_in_place_is_caught():
    with pytest.raises(CheckFailed, match="in place"):
        check_flip_tta(flip_in_place)


# -- the simulated members -------------------------------------------------------------------------------

def test_example_members_have_emonet_accuracies_and_correlated_errors():
    names, probs, labels = example_members(n_per_split=4000, seed=0)
    assert len(names) == 4 and set(probs) == {"PublicTest", "PrivateTest"}
    for split in probs:
        assert probs[split].shape == (4, 4000, 7)
        np.testing.assert_allclose(probs[split].sum(2), 1.0)
        acc = (probs[split].argmax(2) == labels[split]).mean(1) * 100
        np.testing.assert_allclose(acc, EMONET_TABLE_2_ACCURACY, atol=2.5)
    from ferlib.evaluate.ensemble import error_correlation

    corr = error_correlation(probs["PublicTest"], labels["PublicTest"])
    assert 0.1 < corr[0, 1] < 0.9  # shared noise: correlated, not identical
    assert sum(EMONET_TABLE_1_WEIGHTS) == pytest.approx(1.0, abs=1e-5)
    again = example_members(n_per_split=4000, seed=0)[1]
    np.testing.assert_array_equal(again["PublicTest"], probs["PublicTest"])
