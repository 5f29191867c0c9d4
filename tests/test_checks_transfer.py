"""Lab 07 graders: pass on correct functions, fail with the right hint on the blank and each planted bug."""
from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

import ferlib.checks
from ferlib.checks import GRADERS, CheckFailed, check_ensemble_report, check_freeze, check_standardise_bovw
from ferlib.checks.transfer import EPS, _accuracy, _bovw_case, ensemble_case, reference_standardise_bovw
from ferlib.evaluate import ensemble as ens


# -- correct functions, in more than one way --------------------------------------------------------------
def freeze_by_train_override(model):
    block = model.conv_block
    for p in block.parameters():
        p.requires_grad_(False)
    block.train = lambda mode=True: nn.Module.train(block, False)
    block.eval()


def freeze_by_pre_hook(model):
    """Another correct way: evaluation mode restored before every forward pass."""
    for p in model.conv_block.parameters():
        p.requires_grad_(False)

    def to_eval(module, args):  # returns None: a pre-hook's return value would replace the inputs
        module.eval()

    model.conv_block.register_forward_pre_hook(to_eval)


def standardise(train, x):
    return reference_standardise_bovw(train, x)


def standardise_plus_eps(train, x):
    t = np.asarray(train, dtype=np.float64)
    return (x - t.mean(0)) / (t.std(0) + EPS)


def report(probs, labels, fit_weights, *, fit_on="PublicTest", choose_on="PublicTest", score_on="PrivateTest",
           percent=False, split_label=None):
    w = fit_weights(probs[fit_on], labels[fit_on], split_label or fit_on)
    p, y = probs[score_on], labels[score_on]
    best = int(np.argmax([_accuracy(q, labels[choose_on]) for q in probs[choose_on]]))
    scale = 100.0 if percent else 1.0
    return {"weights": w, "de": scale * _accuracy(np.tensordot(w, p, axes=1), y), "mean": scale * _accuracy(p.mean(0), y),
            "best_single": scale * _accuracy(probs["PrivateTest"][best], labels["PrivateTest"])}


def blank(*args, **kwargs):
    raise NotImplementedError()


def test_correct_functions_pass(capsys):
    check_freeze(freeze_by_train_override)
    check_freeze(freeze_by_pre_hook)
    check_standardise_bovw(standardise)
    check_standardise_bovw(standardise_plus_eps)
    check_standardise_bovw(lambda t, x: torch.from_numpy(reference_standardise_bovw(t, x)))  # a tensor is accepted
    check_ensemble_report(report)
    assert capsys.readouterr().out.count("PASS") == 6


@pytest.mark.parametrize("check", [check_freeze, check_standardise_bovw, check_ensemble_report])
def test_blank_says_not_implemented(check):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(blank)


def test_graders_are_exported_with_points():
    for name in ("check_freeze", "check_standardise_bovw", "check_ensemble_report"):
        assert name in ferlib.checks.__all__ and GRADERS[name] >= 1


# -- Exercise 1: planted mistakes -----------------------------------------------------------------------
def freeze_requires_grad_only(model):  # BatchNorm left in training mode
    for p in model.conv_block.parameters():
        p.requires_grad_(False)


def freeze_eval_once(model):  # undone by model.train()
    freeze_requires_grad_only(model)
    model.conv_block.eval()


def freeze_convolutions_only(model):  # BatchNorm's weight and bias still train
    for m in model.conv_block.modules():
        if isinstance(m, nn.Conv2d):
            for p in m.parameters():
                p.requires_grad_(False)
    block = model.conv_block
    block.train = lambda mode=True: nn.Module.train(block, False)


def freeze_some_tensors(model):  # the first half of the block's tensors only
    params = list(model.conv_block.parameters())
    for p in params[: len(params) // 2]:
        p.requires_grad_(False)
    block = model.conv_block
    block.train = lambda mode=True: nn.Module.train(block, False)


def freeze_everything(model):  # the head too
    for p in model.parameters():
        p.requires_grad_(False)
    block = model.conv_block
    block.train = lambda mode=True: nn.Module.train(block, False)


@pytest.mark.parametrize("fn, problem, hint", [
    (freeze_requires_grad_only, "BatchNorm statistics", "BatchNorm is left in training mode"),
    (freeze_eval_once, "BatchNorm statistics", "model.train\\(\\) .* put it back into training mode"),
    (freeze_convolutions_only, "still require gradients", "BatchNorm's weight and bias included"),
    (freeze_some_tensors, "still require gradients", "freeze every parameter of model.conv_block"),
    (freeze_everything, "no longer requires gradients", "freeze model.conv_block only"),
])
def test_freeze_names_each_mistake(fn, problem, hint):
    with pytest.raises(CheckFailed, match=problem) as e:
        check_freeze(fn)
    assert e.value.args[0].startswith("FAIL ") and re.search(hint, str(e.value)), str(e.value)


# -- Exercise 2: planted mistakes -----------------------------------------------------------------------
def standardise_no_eps(train, x):
    t = np.asarray(train, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (x - t.mean(0)) / t.std(0)


def standardise_with_x_statistics(train, x):  # the test split's own statistics
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean(0)) / np.maximum(x.std(0), EPS)


def standardise_sample_std(train, x):
    t = np.asarray(train, dtype=np.float64)
    return (x - t.mean(0)) / np.maximum(t.std(0, ddof=1), EPS)


def standardise_whole_array(train, x):
    t = np.asarray(train, dtype=np.float64)
    return (x - t.mean()) / np.maximum(t.std(), EPS)


def standardise_in_place(train, x):
    out = reference_standardise_bovw(train, x)
    train -= train.mean(0)
    return out


@pytest.mark.parametrize("fn, hint", [
    (standardise_no_eps, "std 0: floor it"),
    (standardise_with_x_statistics, "statistics of x, the split being standardised"),
    (standardise_sample_std, "population standard deviation"),
    (standardise_whole_array, "column by column|each column's own mean"),
    (standardise_in_place, "changed its inputs in place"),
])
def test_standardise_names_each_mistake(fn, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_standardise_bovw(fn)


def test_bovw_case_has_a_constant_column_and_a_shifted_test_split():
    train, x = _bovw_case()
    assert train[:, 7].std() == 0 and x[:, 7].std() == 0
    assert np.abs(x.mean(0) - train.mean(0)).max() > 1.0  # x's own statistics give other numbers
    assert np.isfinite(reference_standardise_bovw(train, x)).all()


# -- Exercise 3: planted mistakes -----------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, hint", [
    (dict(fit_on="PrivateTest"), "given PrivateTest's probabilities"),
    (dict(fit_on="PrivateTest", split_label="PublicTest"), "given PrivateTest's probabilities"),  # a mislabelled fit
    (dict(fit_on="Training"), "members have seen the Training faces"),
    (dict(score_on="PublicTest"), "you reported PublicTest"),
    (dict(choose_on="PrivateTest"), "chose the best member by its PrivateTest accuracy"),
    (dict(percent=True), "fractions in \\[0, 1\\], not percentages"),
])
def test_ensemble_report_names_each_mistake(kwargs, hint):
    with pytest.raises(CheckFailed, match=hint):
        check_ensemble_report(lambda p, y, f: report(p, y, f, **kwargs))


def test_ensemble_report_refuses_changed_weights():
    def rounded(p, y, f):
        out = report(p, y, f)
        out["weights"] = np.full(4, 0.25)
        return out

    with pytest.raises(CheckFailed, match="unchanged"):
        check_ensemble_report(rounded)


def test_ensemble_case_tells_the_splits_apart():
    """The case must make each mistake visible: different best members and weights on each split."""
    probs, labels = ensemble_case()
    acc = {s: [_accuracy(p, labels[s]) for p in probs[s]] for s in probs}
    assert np.argmax(acc[ens.FIT_SPLIT]) != np.argmax(acc[ens.TEST_SPLIT])
    assert np.argmax(acc["Training"]) == 3 and np.argmax(acc[ens.FIT_SPLIT]) != 3
    w = {s: ens.differential_evolution_weights(probs[s], labels[s], split=ens.FIT_SPLIT, seed=0) for s in probs}
    assert np.abs(w[ens.FIT_SPLIT] - w[ens.TEST_SPLIT]).max() > 0.3
    de = {s: _accuracy(ens.weighted_probabilities(probs[s], w[ens.FIT_SPLIT]), labels[s]) for s in probs}
    mean = {s: _accuracy(probs[s].mean(0), labels[s]) for s in probs}
    assert abs(de[ens.FIT_SPLIT] - de[ens.TEST_SPLIT]) > 0.05 and abs(mean[ens.FIT_SPLIT] - mean[ens.TEST_SPLIT]) > 0.005
