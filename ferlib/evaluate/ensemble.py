"""Ensembles: the last-k checkpoints of one run, and several runs combined.

* **Last-k checkpoint ensemble** (DenseNet-CL §IV-C, Table II "+ ensemble" rows): "we
  simply keep five last checkpoints corresponding to five last training epochs for
  inference".  :func:`last_checkpoints` finds them, :func:`mean_softmax` averages them.
* **Model ensembles** over the predicted probabilities of M trained members, as an
  array ``probs`` of shape (M members, N samples, K classes):

  - :func:`mean_probabilities` -- the plain mean;
  - :func:`majority_vote` -- each member votes for its argmax class; ties go to the
    tied class with the highest mean probability, then to the lowest class index;
  - :func:`weighted_probabilities` with weights from
    :func:`differential_evolution_weights` -- EmoNet §5 (Table 1): a weighted average
    of the members' probabilities, weights learned on held-out data with scipy's
    differential evolution.

**Probabilities, not logits.**  Every combination here averages softmax outputs.
Each member's softmax is its own predictive distribution, and their mean is the
ensemble's (a mixture).  Logits have no common scale: a member trained longer, with
less weight decay or with another loss produces larger logits, and a mean of logits
lets that member dominate the vote, however well it is calibrated.

**Fit on PublicTest, report on PrivateTest.**  FER-2013's PublicTest is the
validation split.  Weights fitted on the split they are scored on make that score
optimistic, so :func:`differential_evolution_weights` takes a required ``split``
argument and refuses the test split (:class:`TestSplitFitError`).

**How weights are searched** (:data:`DE_SETTINGS`).  Differential evolution searches
raw vectors ``r`` in the box ``[0, 1]^M``; each maps to the simplex by
``w = r / sum(r)`` (:func:`simplex_weights`; the all-zero vector maps to uniform
weights).  The map is many-to-one -- every ``r`` on a ray from the origin gives the
same ``w`` -- which costs the search nothing and keeps the box simple.  Two
objectives: ``"nll"``, the mean negative log-likelihood of the true class under the
weighted average (smooth, so DE ends with scipy's L-BFGS-B polish), and ``"error"``,
1 - accuracy, which is piecewise constant in ``w`` (zero gradient almost
everywhere, so no polish, and many weight vectors tie).  The population is evaluated
as one matrix product (``vectorized=True``), and ``rng=seed`` makes a fit
reproducible.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .metrics import predict

FIT_SPLIT = "PublicTest"
TEST_SPLIT = "PrivateTest"
METHODS = ("mean", "vote", "de")
OBJECTIVES = ("nll", "error")
PROB_FLOOR = 1e-12  # log(0) guard in the negative log-likelihood
DE_SETTINGS = {"bounds": (0.0, 1.0), "strategy": "best1bin", "popsize": 15, "maxiter": 300, "tol": 1e-6,
               "atol": 0.0, "mutation": (0.5, 1.0), "recombination": 0.7, "init": "latinhypercube",
               "normalisation": "w = r / sum(r); all-zero r -> uniform", "polish": "L-BFGS-B for nll, none for error"}
_TEST_NAMES = {"privatetest", "private", "test", "testing"}


class TestSplitFitError(ValueError):
    """Ensemble weights were about to be fitted on the test split (PrivateTest)."""

    __test__ = False  # not a pytest test class


# -- the last-k checkpoints of one run (DenseNet-CL §IV-C) --------------------------------------

def last_checkpoints(run_dir: str | Path, k: int = 5) -> list[Path]:
    """The last ``k`` ``epoch_NNN.pt`` files of a run folder, oldest first."""
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive number of checkpoints, got {k!r}")
    return sorted(Path(run_dir).glob("epoch_*.pt"))[-int(k):]


def checkpoint_epoch(path: Path) -> int:
    return int(Path(path).stem.split("_")[1])


@torch.no_grad()
def mean_softmax(model: torch.nn.Module, state_dicts: Sequence[Mapping], sources: Mapping[str, object], *,
                 autocast_dtype=None, tta: str = "none", margin: int | None = None) -> dict[str, np.ndarray]:
    """For each named in-order source, the mean over ``state_dicts`` of ``softmax(model(x))``.

    ``model`` is loaded with each state dict in turn (its own weights are not restored).
    ``tta``: "none", "flip" or "tencrop" (:mod:`ferlib.evaluate.tta`); each
    checkpoint's probabilities are then the mean over the views as well.
    """
    from .tta import tta_probabilities

    probs = {name: None for name in sources}
    for sd in state_dicts:
        model.load_state_dict(sd)
        for name, source in sources.items():
            if tta == "none":
                logits, _ = predict(model, source, autocast_dtype=autocast_dtype)
                p = torch.softmax(logits, 1).numpy()
            else:
                p = tta_probabilities(model, source, tta, margin=margin, autocast_dtype=autocast_dtype)[0].numpy()
            p = p / len(state_dicts)
            probs[name] = p if probs[name] is None else probs[name] + p
    return probs


# -- member probabilities: checks -----------------------------------------------------------------

def as_member_probs(probs) -> np.ndarray:
    """``probs`` as a float64 (M members, N samples, K classes) array of probability rows, or a clear error."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 2:
        raise ValueError(f"probs has shape {p.shape}: one member's (N, K) probabilities; an ensemble needs "
                         f"(M members, N samples, K classes) -- stack the members with np.stack([...])")
    if p.ndim != 3 or 0 in p.shape:
        raise ValueError(f"probs must be a non-empty (M members, N samples, K classes) array, got shape {p.shape}")
    if not np.isfinite(p).all():
        raise ValueError("probs contains NaN or infinity")
    if (p < 0).any() or not np.allclose(p.sum(-1), 1.0, atol=1e-3):
        raise ValueError("probs rows must be probabilities (>= 0, summing to 1 over the classes); "
                         "these look like logits -- apply torch.softmax(logits, 1) first")
    return p


def _as_labels(labels, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim == 2:  # soft labels -> hard
        y = y.argmax(1)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be ({n},) integer class codes to match probs, got {y.dtype} {y.shape}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in 0..{k - 1}, got {y.min()}..{y.max()}")
    return y.astype(np.int64)


# -- combinations -----------------------------------------------------------------------------------

def mean_probabilities(probs) -> np.ndarray:
    """The plain ensemble: the mean of the members' probabilities, (N, K)."""
    return as_member_probs(probs).mean(0)


def logit_average_probabilities(probs) -> np.ndarray:
    """What averaging the members' *logits* gives: ``softmax(mean_m z_m)``, computed from probabilities.

    ``log p_m = z_m - logsumexp(z_m)``, and the second term is the same for every class,
    so ``softmax(mean_m log p_m) = softmax(mean_m z_m)``: a normalised geometric mean of
    the probabilities.  Shown for comparison; ferlib's ensembles average probabilities.
    """
    p = as_member_probs(probs)
    z = np.log(np.maximum(p, 1e-300)).mean(0)
    z -= z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def majority_vote(probs) -> np.ndarray:
    """Each member votes for its argmax class; the (N,) winners.

    Tie rule: among the classes with the most votes, the one with the highest mean
    probability over the members; an exact tie of that goes to the lowest class index.
    (Scores ``votes + mean_prob / 2``: the mean probability is at most 1 and equals 1
    only for a unanimous class, so it never overturns a vote count.)
    """
    p = as_member_probs(probs)
    m, n, k = p.shape
    votes = np.zeros((n, k))
    np.add.at(votes, (np.broadcast_to(np.arange(n), (m, n)), p.argmax(2)), 1.0)
    return (votes + 0.5 * p.mean(0)).argmax(1)


def simplex_weights(raw) -> np.ndarray:
    """Raw non-negative vectors ``r`` (M,) or (M, S) -> weights ``r / sum(r)`` on the simplex.

    An all-zero column maps to uniform weights.  Negative entries are an error (the
    search box is ``[0, 1]^M``).
    """
    r = np.asarray(raw, dtype=np.float64)
    if r.ndim not in (1, 2) or r.shape[0] == 0:
        raise ValueError(f"raw weights must be (M,) or (M, S), got shape {r.shape}")
    if (r < 0).any() or not np.isfinite(r).all():
        raise ValueError("raw weights must be finite and >= 0 (differential evolution searches the box [0, 1]^M)")
    total = r.sum(0, keepdims=True)
    uniform = np.full_like(r, 1.0 / r.shape[0])
    return np.where(total > 0, r / np.where(total > 0, total, 1.0), uniform)


def _check_weights(weights, m: int) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (m,):
        raise ValueError(f"weights must have one entry per member, shape ({m},), got {w.shape}")
    if (w < 0).any() or not np.isclose(w.sum(), 1.0, atol=1e-6):
        raise ValueError(f"weights must be >= 0 and sum to 1 (they sum to {w.sum():.6g}); "
                         f"normalise raw weights with simplex_weights(raw)")
    return w


def weighted_probabilities(probs, weights) -> np.ndarray:
    """``sum_m w_m p_m`` (N, K) for weights ``w`` >= 0 summing to 1 (EmoNet §5, Table 1)."""
    p = as_member_probs(probs)
    return np.tensordot(_check_weights(weights, p.shape[0]), p, axes=1)


def combine(probs, method: str, weights=None) -> np.ndarray:
    """The ensemble's (N, K) output for ``method`` "mean", "vote" or "de" (weighted: pass ``weights``).

    A vote gives no probabilities: its output is the one-hot row of the voted class.
    """
    if method == "mean":
        return mean_probabilities(probs)
    if method == "vote":
        p = as_member_probs(probs)
        return np.eye(p.shape[2])[majority_vote(p)]
    if method == "de":
        if weights is None:
            raise ValueError("method 'de' needs weights: fit them with differential_evolution_weights(...) on "
                             f"{FIT_SPLIT}")
        return weighted_probabilities(probs, weights)
    raise ValueError(f"unknown ensemble method {method!r}; choose one of {METHODS}")


# -- the objective and its search (EmoNet §5) --------------------------------------------------------

def negative_log_likelihood(probs_2d, labels) -> float:
    """Mean ``-log p(true class)`` of an (N, K) probability array (floored at 1e-12)."""
    p = np.asarray(probs_2d, dtype=np.float64)
    y = _as_labels(labels, p.shape[0], p.shape[1])
    return float(-np.log(np.maximum(p[np.arange(len(y)), y], PROB_FLOOR)).mean())


def _true_class_probs(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    return p[:, np.arange(len(y)), y]  # (M, N)


def ensemble_objective(raw, probs, labels, objective: str = "nll"):
    """The DE objective at raw weights ``r`` (M,) -> float, or a population (M, S) -> (S,).

    ``"nll"``: mean over samples of ``-log sum_m w_m p_m(y_i)``; ``"error"``: the
    fraction of samples whose argmax of ``sum_m w_m p_m`` is wrong; ``w = simplex_weights(r)``.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    p = as_member_probs(probs)
    y = _as_labels(labels, p.shape[1], p.shape[2])
    return _objective(simplex_weights(raw), p, y, objective)


def _objective(w: np.ndarray, p: np.ndarray, y: np.ndarray, objective: str):
    single = w.ndim == 1
    w2 = w[:, None] if single else w  # (M, S)
    if objective == "nll":
        true = np.einsum("ms,mn->sn", w2, _true_class_probs(p, y))
        value = -np.log(np.maximum(true, PROB_FLOOR)).mean(1)
    else:
        mix = np.einsum("ms,mnk->snk", w2, p)
        value = (mix.argmax(2) != y[None]).mean(1)
    return float(value[0]) if single else value


def _check_fit_split(split) -> str:
    if not isinstance(split, str) or not split.strip():
        raise ValueError(f"split must name the split these probabilities come from, e.g. split={FIT_SPLIT!r}; "
                         f"got {split!r}")
    if split.replace("_", "").replace("-", "").replace(" ", "").lower() in _TEST_NAMES:
        raise TestSplitFitError(
            f"refusing to fit ensemble weights on {split!r}, the test split: weights fitted on the split they are "
            f"scored on make its accuracy optimistic. Fit on {FIT_SPLIT} (the validation split, EmoNet §5's "
            f"held-out data) and only report {TEST_SPLIT}.")
    return split


def differential_evolution_weights(probs, labels, *, split: str, seed: int = 0, objective: str = "nll",
                                   maxiter: int | None = None, popsize: int | None = None,
                                   tol: float | None = None, polish: bool | None = None) -> np.ndarray:
    """Ensemble weights (M,), >= 0 and summing to 1, found by differential evolution (EmoNet §5, Table 1).

    probs : (M members, N samples, K classes) probabilities of the fitting split.
    labels : (N,) true classes.
    split : the split ``probs`` come from -- required; "PrivateTest" (the test split)
        raises :class:`TestSplitFitError`.  Fit on PublicTest, report on PrivateTest.
    seed : ``rng`` of ``scipy.optimize.differential_evolution``: the same seed and
        data give the same weights.
    objective : "nll" (smooth) or "error" (1 - accuracy, piecewise constant).
    maxiter, popsize, tol, polish : override :data:`DE_SETTINGS` (polish defaults to
        True for "nll", False for "error").

    Raw vectors in ``[0, 1]^M`` map to weights by :func:`simplex_weights`.
    """
    from scipy.optimize import differential_evolution

    _check_fit_split(split)
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    p = as_member_probs(probs)
    y = _as_labels(labels, p.shape[1], p.shape[2])
    m = p.shape[0]
    if m == 1:
        return np.ones(1)
    s = DE_SETTINGS
    result = differential_evolution(
        lambda r: _objective(simplex_weights(r), p, y, objective), [s["bounds"]] * m,
        strategy=s["strategy"], maxiter=maxiter or s["maxiter"], popsize=popsize or s["popsize"],
        tol=s["tol"] if tol is None else tol, atol=s["atol"], mutation=s["mutation"],
        recombination=s["recombination"], init=s["init"], rng=int(seed), vectorized=True, updating="deferred",
        polish=(objective == "nll") if polish is None else polish)
    return simplex_weights(np.clip(result.x, 0.0, None))


# -- why averaging helps: measured -------------------------------------------------------------------

def error_correlation(probs, labels) -> np.ndarray:
    """(M, M) Pearson correlation of the members' 0/1 error indicators (the phi coefficient).

    1: the members err on the same samples (averaging cannot help); 0: independent
    errors; a member that never errs has no variance, and its row is NaN.
    """
    p = as_member_probs(probs)
    y = _as_labels(labels, p.shape[1], p.shape[2])
    errors = (p.argmax(2) != y[None]).astype(np.float64)  # (M, N)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.corrcoef(errors) if len(errors) > 1 else np.ones((1, 1))


def ambiguity_decomposition(probs, labels, weights=None) -> dict:
    """Brier score of the ensemble = weighted mean Brier score of the members - their diversity.

    With one-hot targets ``e_y`` and the average ``pbar = sum_m w_m p_m``, for every
    sample (Krogh & Vedelsby's ambiguity decomposition, exact for squared error):
    ``||pbar - e_y||^2 = sum_m w_m ||p_m - e_y||^2 - sum_m w_m ||p_m - pbar||^2``.
    Averaging can only lower the members' mean error, by exactly the diversity.
    """
    p = as_member_probs(probs)
    y = _as_labels(labels, p.shape[1], p.shape[2])
    w = np.full(p.shape[0], 1.0 / p.shape[0]) if weights is None else _check_weights(weights, p.shape[0])
    target = np.eye(p.shape[2])[y]
    mix = np.tensordot(w, p, axes=1)
    member = ((p - target[None]) ** 2).sum(2).mean(1)  # (M,)
    diversity = float(np.tensordot(w, ((p - mix[None]) ** 2).sum(2).mean(1), axes=1))
    return {"member_brier": member.tolist(), "mean_member_brier": float(w @ member), "diversity": diversity,
            "ensemble_brier": float(((mix - target) ** 2).sum(1).mean())}


def simplex_grid(members: int, resolution: int) -> np.ndarray:
    """Every weight vector on the simplex with entries ``i / resolution``: (P, members)."""
    if members not in (2, 3):
        raise ValueError(f"simplex_grid draws 2 or 3 members, got {members}")
    i = np.arange(resolution + 1)
    if members == 2:
        return np.stack([i, resolution - i], 1) / resolution
    a, b = np.meshgrid(i, i, indexing="ij")
    keep = a + b <= resolution
    return np.stack([a[keep], b[keep], resolution - a[keep] - b[keep]], 1) / resolution


def objective_on_simplex(probs, labels, objective: str = "nll", resolution: int = 50):
    """The DE objective on a grid of the weight simplex, for 2 or 3 members: (weights (P, M), values (P,))."""
    p = as_member_probs(probs)
    y = _as_labels(labels, p.shape[1], p.shape[2])
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    w = simplex_grid(p.shape[0], resolution)
    return w, _objective(w.T, p, y, objective)
