"""Lab 00 graders: pass on correct functions, fail naming the planted mistake."""
import numpy as np
import pytest

import ferlib.checks
from ferlib.checks import CheckFailed, check_majority_label, check_pixel_statistics, check_standardize
from ferlib.data.ferplus import process_votes


def stats_ok(x):
    x = np.asarray(x, dtype=np.float64)
    return x.mean(0), x.std(0)


def standardize_ok(p, mean, std):
    return (np.asarray(p, dtype=np.float64) - mean) / std


def majority_ok(votes):
    top = int(np.argmax(process_votes(np.asarray(votes), "majority")))
    return -1 if top >= 8 else top


def test_graders_pass_on_correct_functions(capsys):
    check_pixel_statistics(stats_ok)
    check_standardize(standardize_ok)
    check_majority_label(majority_ok)
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("PASS ") for line in lines)
    assert any(line.startswith("PASS FER+ majority vote: ") for line in lines)


def stats_uint8_sum(x):
    total = np.zeros(x.shape[1:], dtype=np.uint8)
    for img in x:
        total += img  # wraps around at 256
    mean = total / len(x)
    return mean, np.asarray(x, dtype=np.float64).std(0)


STATS_BUGS = {
    "ddof=1": (lambda x: (x.astype(float).mean(0), x.astype(float).std(0, ddof=1)), "ddof=1"),
    "variance": (lambda x: (x.astype(float).mean(0), x.astype(float).var(0)), "variance"),
    "wrong axis": (lambda x: (x.astype(float).mean((1, 2)), x.astype(float).std((1, 2))), "axis 0"),
    "uint8 sum": (stats_uint8_sum, "overflow"),
    "not a tuple": (lambda x: x.mean(0), "tuple"),
}


@pytest.mark.parametrize("bug", sorted(STATS_BUGS))
def test_pixel_statistics_mistakes_are_named(bug):
    fn, hint = STATS_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_pixel_statistics(fn)


STANDARDIZE_BUGS = {
    "precedence": (lambda p, m, s: p.astype(float) - m / s, "parentheses"),
    "multiply": (lambda p, m, s: (p.astype(float) - m) * s, "divide"),
    "refit": (lambda p, m, s: (p - p.astype(float).mean(0)) / p.astype(float).std(0), "recomputed"),
    "no mean": (lambda p, m, s: p.astype(float) / s, "FAIL per-pixel standardisation"),
}


@pytest.mark.parametrize("bug", sorted(STANDARDIZE_BUGS))
def test_standardize_mistakes_are_named(bug):
    fn, hint = STANDARDIZE_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_standardize(fn)


def majority_keeps_single_votes(votes):
    v = np.asarray(votes)
    top = int(np.argmax(v))
    return top if v[top] > 0.5 * v.sum() and top < 8 else -1


def majority_at_least_half(votes):
    v = np.where(np.asarray(votes) <= 1, 0, np.asarray(votes))
    top = int(np.argmax(v))
    return top if v.sum() and v[top] >= 0.5 * v.sum() and top < 8 else -1


def majority_returns_unknown(votes):
    v = np.where(np.asarray(votes) <= 1, 0, np.asarray(votes))
    top = int(np.argmax(v))
    return top if v.sum() and v[top] > 0.5 * v.sum() else -1


MAJORITY_BUGS = {
    "single votes kept": (majority_keeps_single_votes, "single votes must be removed"),
    "at least half": (majority_at_least_half, "strict"),
    "unknown returned": (majority_returns_unknown, "unknown"),
    "returns a list": (lambda v: [0], "one integer"),
}


@pytest.mark.parametrize("bug", sorted(MAJORITY_BUGS))
def test_majority_mistakes_are_named(bug):
    fn, hint = MAJORITY_BUGS[bug]
    with pytest.raises(CheckFailed, match=hint):
        check_majority_label(fn)


def test_blank_says_not_implemented():
    def blank(*args):
        raise NotImplementedError()

    for check in (check_pixel_statistics, check_standardize, check_majority_label):
        with pytest.raises(CheckFailed, match=r"^FAIL blank: not implemented yet"):
            check(blank)


def test_package_exports_every_grader_of_labs_00_02_03():
    for name in ("check_pixel_statistics", "check_standardize", "check_majority_label", "check_bottleneck",
                 "check_transition", "check_dense_block", "check_densenet_bc", "check_center_loss_forward",
                 "check_center_loss_grad", "check_center_update"):
        assert callable(getattr(ferlib.checks, name)) and name in ferlib.checks.__all__
