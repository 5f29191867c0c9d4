r"""Triplet losses: DNNRL's exponential triplet loss, FaceNet's hinge, and in-batch mining.

Notation (DNNRL Sec. 3.2): a triplet is an anchor ``p``, a positive ``p+`` of the same
class and a negative ``p-`` of another class, with embeddings ``f(.)``;

.. math::
    d^+ = \|f(p) - f(p^+)\|^2,\qquad d^- = \|f(p) - f(p^-)\|^2,\qquad r = d^- - d^+ ,

the *relative distance* (squared Euclidean distances, as in the paper).  A triplet is
correctly ordered when ``r > 0``.

DNNRL Eq. 1 as printed, and what it must mean
---------------------------------------------
The paper prints

.. math::  L_i = e^{-\alpha \max\{d^+ - d^- - \gamma,\, 0\}} = e^{-\alpha \max\{-r - \gamma,\, 0\}}.

Read literally this has the sign of the relative distance reversed: every correctly
ordered triplet (``r > -gamma``) sits at the constant ``L_i = 1`` and gets no gradient,
and where it is active (``r < -gamma``) minimising it makes ``r`` *smaller* -- it pulls
the negative in and pushes the positive out.  Everything else in the paper says the
opposite: the gradients Eq. 2-4 are non-zero iff ``d^- - d^+ > gamma``, Fig. 3 plots a
loss that decreases with the relative distance with a gradient that shrinks as the
relative distance grows, and gamma is "a learning margin to prevent learning very
difficult samples" (those whose relative distance is below gamma).  The consistent loss,
implemented by :func:`exponential_triplet_loss`, is

.. math::  L_i = e^{-\alpha \max\{r - \gamma,\, 0\}},\qquad L = \sum_i L_i ,

and its gradients are exactly Eq. 2-4 with
:math:`\Delta = e^{-\alpha (r - \gamma)}` (the printed :math:`\Delta` lacks the
parentheses around :math:`d^- - d^+ - \gamma`).  :func:`exponential_triplet_loss_as_printed`
keeps the literal Eq. 1 so that its failure can be demonstrated.

Consequences worth knowing.  With the paper's ``gamma = 0`` a wrongly ordered triplet
(``r < 0``) contributes the constant 1 and **no gradient**: the loss learns only from
triplets that are already correct, and most from those just past the margin (the
gradient magnitude ``2 alpha Delta |...|`` is largest at ``r = gamma`` and decays as
``r`` grows).  Hard-negative mining therefore works against it: batch-hard mining picks
per anchor the farthest positive and the nearest negative, which early in training are
mostly wrongly ordered, i.e. give no gradient (see :class:`TripletCriterion`).

FaceNet's loss (Schroff et al. (FaceNet) Eq. 3) is the hinge
``max(d^+ - d^- + margin, 0) = max(margin - r, 0)``, active on the *wrong* side of the
margin.

Mining (:func:`mine_triplets`)
------------------------------
``"all"``: every valid (anchor, positive, negative) of the batch.  ``"batch-hard"``
(Hermans et al. 2017, "In Defense of the Triplet Loss for Person Re-Identification"):
per anchor the farthest positive and the nearest negative.  ``"semi-hard"`` (Schroff
et al. (FaceNet) Sec. 3.2): per anchor-positive pair the hardest negative with
``d^+ < d^- < d^+ + margin``; pairs without such a negative are dropped (no fallback
to another negative), so every mined triplet is semi-hard.  Anchors without a positive or
without a negative in the batch are skipped by every strategy.  Mining uses detached
distances; the loss is then differentiated through the embeddings.
"""
from __future__ import annotations

import math

import torch

from .base import Criterion

__all__ = [
    "pairwise_squared_distances",
    "relative_distance",
    "exponential_triplet_loss",
    "exponential_triplet_loss_as_printed",
    "exponential_triplet_gradients",
    "triplet_loss",
    "mine_triplets",
    "TripletCriterion",
    "MINING_STRATEGIES",
]

MINING_STRATEGIES = ("all", "batch-hard", "semi-hard")
_REDUCTIONS = ("sum", "mean", "none")
_LOSSES = ("exponential", "triplet")


# -- checks of user input ----------------------------------------------------------------------

def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _check_strategy(strategy: str) -> None:
    if strategy not in MINING_STRATEGIES:
        raise ValueError(f"mining strategy must be one of {MINING_STRATEGIES}, got {strategy!r}")


def _check_alpha_gamma(alpha: float, gamma: float) -> None:
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0 (DNNRL Eq. 1's tradeoff parameter; the paper uses 0.2), got {alpha}")
    if not gamma >= 0:
        raise ValueError(f"gamma must be >= 0 (DNNRL Eq. 1's learning margin; the paper uses 0), got {gamma}")


def _check_margin(margin: float) -> None:
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")


def _check_triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> None:
    shapes = tuple(tuple(t.shape) for t in (anchor, positive, negative))
    if anchor.dim() != 2:
        raise ValueError(f"anchor, positive and negative must be (N, dim) embeddings, got anchor shape {shapes[0]}")
    if not shapes[0] == shapes[1] == shapes[2]:
        raise ValueError(f"anchor, positive and negative must have the same shape (N, dim), got {shapes}: "
                         "index the embeddings with the three index tensors of mine_triplets")


def _check_embeddings(embeddings: torch.Tensor, labels: torch.Tensor) -> None:
    if embeddings.dim() != 2:
        raise ValueError(f"embeddings must be (batch, dim), got shape {tuple(embeddings.shape)}; "
                         "flatten the network output first")
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise ValueError(f"labels must be (batch,) integer classes matching the {embeddings.shape[0]} embeddings, "
                         f"got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integer class codes, got {labels.dtype} (soft labels have no triplets)")


def _reduce(per_triplet: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_triplet
    if reduction == "sum":
        return per_triplet.sum()
    return per_triplet.sum() / max(per_triplet.shape[0], 1)  # an empty set gives 0, not NaN


# -- distances -------------------------------------------------------------------------------------

def pairwise_squared_distances(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    r"""Squared Euclidean distances ``D[i, j] = ||x_i - y_j||^2``, shape ``(n, m)``.

    Computed as ``||x_i||^2 + ||y_j||^2 - 2 x_i . y_j`` (one matrix product, no
    ``(n, m, dim)`` intermediate) and clamped at 0 against round-off.  ``y=None``
    compares ``x`` with itself and sets the diagonal to exactly 0.  Differentiable.
    """
    if x.dim() != 2 or (y is not None and y.dim() != 2):
        raise ValueError(f"x and y must be (n, dim) and (m, dim), got {tuple(x.shape)} and "
                         f"{None if y is None else tuple(y.shape)}")
    same = y is None
    y = x if same else y
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same embedding dimension, got {x.shape[1]} and {y.shape[1]}")
    sq_x = x.pow(2).sum(1)
    sq_y = sq_x if same else y.pow(2).sum(1)
    d = (sq_x[:, None] + sq_y[None, :] - 2.0 * (x @ y.T)).clamp(min=0.0)
    if same:
        d = d.masked_fill(torch.eye(x.shape[0], dtype=torch.bool, device=x.device), 0.0)
    return d


def relative_distance(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    r"""``r_i = d^-_i - d^+_i = ||f(p_i) - f(p_i^-)||^2 - ||f(p_i) - f(p_i^+)||^2``, shape ``(N,)``
    (DNNRL Sec. 3.2; positive when the triplet is correctly ordered)."""
    _check_triplet(anchor, positive, negative)
    return (anchor - negative).pow(2).sum(1) - (anchor - positive).pow(2).sum(1)


# -- the losses --------------------------------------------------------------------------------------

def _exponential_from_r(r: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    return torch.exp(-alpha * (r - gamma).clamp(min=0.0))


def _hinge_from_r(r: torch.Tensor, margin: float) -> torch.Tensor:
    return (margin - r).clamp(min=0.0)


def exponential_triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                             alpha: float = 0.2, gamma: float = 0.0, reduction: str = "sum") -> torch.Tensor:
    r"""DNNRL's exponential triplet loss, Eq. 1 with the sign made consistent with Eq. 2-4:

    .. math::  L_i = e^{-\alpha \max\{d^-_i - d^+_i - \gamma,\, 0\}},\qquad L = \sum_i L_i .

    ``L_i`` is 1 (no gradient) while ``r_i <= gamma`` and decays towards 0 as the
    triplet becomes easier; the gradient is largest just past the margin.  See the
    module docstring for why the printed Eq. 1 cannot be meant.

    anchor, positive, negative : ``(N, dim)`` embeddings ``f(p_i), f(p_i^+), f(p_i^-)``.
    alpha : tradeoff parameter (paper: 0.2).   gamma : learning margin >= 0 (paper: 0).
    reduction : ``"sum"`` (the paper's L), ``"mean"`` (L / N) or ``"none"`` (the ``L_i``).
    """
    _check_alpha_gamma(alpha, gamma)
    _check_reduction(reduction)
    r = relative_distance(anchor, positive, negative)
    return _reduce(_exponential_from_r(r, alpha, gamma), reduction)


def exponential_triplet_loss_as_printed(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                                        alpha: float = 0.2, gamma: float = 0.0,
                                        reduction: str = "sum") -> torch.Tensor:
    r"""DNNRL Eq. 1 literally: :math:`L_i = e^{-\alpha \max\{d^+_i - d^-_i - \gamma,\, 0\}}`.

    Kept to demonstrate its failure: constant 1 with zero gradient for every triplet with
    ``d^- - d^+ > -gamma`` (all correctly ordered ones), and where active its gradient
    *decreases* the relative distance.  Use :func:`exponential_triplet_loss` to train.
    """
    _check_alpha_gamma(alpha, gamma)
    _check_reduction(reduction)
    r = relative_distance(anchor, positive, negative)
    return _reduce(torch.exp(-alpha * (-r - gamma).clamp(min=0.0)), reduction)


@torch.no_grad()
def exponential_triplet_gradients(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                                  alpha: float = 0.2, gamma: float = 0.0):
    r"""DNNRL Eq. 2-4 by hand: the gradients of the *sum* loss w.r.t. ``f(p_i), f(p_i^+), f(p_i^-)``.

    .. math::
        \frac{\partial L_i}{\partial f(p_i)} = -2\alpha\Delta\,(f(p_i^+) - f(p_i^-)),\quad
        \frac{\partial L_i}{\partial f(p_i^+)} = -2\alpha\Delta\,(f(p_i) - f(p_i^+)),\quad
        \frac{\partial L_i}{\partial f(p_i^-)} = -2\alpha\Delta\,(f(p_i^-) - f(p_i))

    where ``r_i > gamma``, and 0 where ``r_i <= gamma``, with
    :math:`\Delta = e^{-\alpha (d^- - d^+ - \gamma)}` (= ``L_i`` on the active side).
    Returns ``(dA, dP, dN)``, each shaped like ``anchor``; row i holds triplet i's
    gradient (rows are not accumulated over repeated samples).
    """
    _check_alpha_gamma(alpha, gamma)
    r = relative_distance(anchor, positive, negative)
    active = r > gamma
    coeff = torch.where(active, -2.0 * alpha * torch.exp(-alpha * (r - gamma)), torch.zeros_like(r))[:, None]
    return coeff * (positive - negative), coeff * (anchor - positive), coeff * (negative - anchor)


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                 margin: float = 0.2, reduction: str = "mean") -> torch.Tensor:
    r"""FaceNet's triplet loss (Schroff et al. (FaceNet) Eq. 3): ``max(d^+ - d^- + margin, 0)``.

    Zero (no gradient) once the negative is ``margin`` farther than the positive;
    ``reduction`` ``"mean"`` (default; over the given triplets), ``"sum"`` or ``"none"``.
    """
    _check_margin(margin)
    _check_reduction(reduction)
    r = relative_distance(anchor, positive, negative)
    return _reduce(_hinge_from_r(r, margin), reduction)


# -- mining ---------------------------------------------------------------------------------------------

def _pair_masks(labels: torch.Tensor):
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positives (not the anchor itself), negatives


def _batch_hard(d: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor):
    """Per anchor: (farthest positive, nearest negative, anchor has both)."""
    p = d.masked_fill(~pos, -math.inf).argmax(1)
    n = d.masked_fill(~neg, math.inf).argmin(1)
    return p, n, pos.any(1) & neg.any(1)


def _semi_hard(d: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, margin: float):
    """Per (anchor, positive) pair: the nearest negative with d+ < d- < d+ + margin, and whether one exists."""
    d_ap = d[:, :, None]                       # (a, p, 1)
    d_an = d[:, None, :]                       # (a, 1, n)
    window = neg[:, None, :] & (d_an > d_ap) & (d_an < d_ap + margin)   # (a, p, n)
    n = d_an.expand_as(window).masked_fill(~window, math.inf).argmin(2)  # (a, p)
    return n, pos & window.any(2)


@torch.no_grad()
def mine_triplets(embeddings: torch.Tensor, labels: torch.Tensor, strategy: str = "all", margin: float = 0.2):
    r"""In-batch triplets as index tensors ``(a_idx, p_idx, n_idx)`` (int64, on the embeddings' device).

    Vectorised over the ``B x B`` distance matrix (squared Euclidean, detached):

    * ``"all"`` -- every (anchor, positive != anchor, negative of another class); for
      B = 128 and 7 classes about 2e5 triplets out of 2e6 candidates.
    * ``"batch-hard"`` -- one triplet per anchor: its farthest positive and nearest
      negative (Hermans et al. 2017).
    * ``"semi-hard"`` -- one triplet per anchor-positive pair: the nearest negative with
      ``d+ < d- < d+ + margin`` (Schroff et al. (FaceNet) Sec. 3.2); pairs without one
      are dropped.

    Anchors with no positive or no negative in the batch are skipped.  ``margin`` is
    used by ``"semi-hard"`` only.  Triplets come in anchor-major order.
    """
    _check_strategy(strategy)
    _check_margin(margin)
    _check_embeddings(embeddings, labels)
    labels = labels.to(embeddings.device)
    d = pairwise_squared_distances(embeddings.detach().float())
    pos, neg = _pair_masks(labels)
    if strategy == "all":
        a, p, n = (pos[:, :, None] & neg[:, None, :]).nonzero(as_tuple=True)
        return a, p, n
    if strategy == "batch-hard":
        p, n, valid = _batch_hard(d, pos, neg)
        a = valid.nonzero(as_tuple=True)[0]
        return a, p[a], n[a]
    n, valid = _semi_hard(d, pos, neg, margin)
    a, p = valid.nonzero(as_tuple=True)
    return a, p, n[a, p]


# -- the trainer criterion ----------------------------------------------------------------------------------

class TripletCriterion(Criterion):
    r"""In-batch mining + the exponential (DNNRL) or FaceNet triplet loss, as a trainer criterion.

    Parameters
    ----------
    loss : ``"exponential"`` -- :func:`exponential_triplet_loss` (alpha, gamma);
        ``"triplet"`` -- :func:`triplet_loss` (margin).
    alpha, gamma : DNNRL Eq. 1 (paper: 0.2 and 0).   margin : FaceNet's margin.
    mining : ``"all"``, ``"batch-hard"`` or ``"semi-hard"`` (see :func:`mine_triplets`).
    mining_margin : the semi-hard window ``d+ < d- < d+ + mining_margin``; ``None`` = ``margin``.
        For the exponential loss with ``gamma = 0`` these are exactly the active triplets
        nearest the margin, where its gradient is largest (with ``gamma > 0`` the part of
        the window below gamma gives no gradient).
    reduction : ``"sum"`` (DNNRL's L, summed over the mined triplets) or ``"mean"``
        (divided by the number of mined triplets).

    Which mining for the exponential loss?  With ``gamma = 0`` a wrongly ordered
    triplet has no gradient, so ``"batch-hard"`` (whose triplets are wrongly ordered
    until the embedding is nearly separated) does not train at all, ``"all"`` spends
    most of its work on triplets that are inactive or far past the margin, and
    ``"semi-hard"`` picks the triplets with the largest gradient.  With ``"sum"`` the
    step grows with the number of mined triplets (about 1e3 semi-hard, 2.5e5 ``"all"``
    in a batch of 128 with 7 classes), so the learning rate would have to follow the
    batch size and the mining; ``"mean"`` keeps it comparable.  Use L2-normalised
    embeddings (DNNRL's "normalization ... has an upper bound", FaceNet's unit
    hypersphere): without them the triplet losses can be lowered by inflating the
    embedding scale.

    ``forward(logits, features, labels)`` uses only ``features`` (``(B, dim)``, cast to
    float32 unless float64; ``logits`` may be None).  The mined triplets are held as a mask over the
    ``B x B (x B)`` distances, so no step waits for the host (no ``nonzero``); the
    value equals the loss function applied to :func:`mine_triplets`'s triplets.
    ``last_terms`` = ``{"triplet": loss, "active_fraction": share of mined triplets with
    a non-zero gradient, "triplets": number mined}`` (detached tensors).  A batch
    without any valid triplet gives 0 (with a graph, so ``backward`` still works).
    """

    def __init__(self, loss: str = "exponential", *, alpha: float = 0.2, gamma: float = 0.0, margin: float = 0.2,
                 mining: str = "semi-hard", mining_margin: float | None = None, reduction: str = "mean"):
        super().__init__()
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {_LOSSES}, got {loss!r}")
        _check_strategy(mining)
        if reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean' for a criterion, got {reduction!r}")
        _check_alpha_gamma(alpha, gamma)
        _check_margin(margin)
        if mining_margin is not None:
            _check_margin(mining_margin)
        self.loss = loss
        self.alpha, self.gamma, self.margin = float(alpha), float(gamma), float(margin)
        self.mining = mining
        self.mining_margin = float(margin if mining_margin is None else mining_margin)
        self.reduction = reduction

    def extra_repr(self) -> str:
        s = (f"loss={self.loss!r}, alpha={self.alpha}, gamma={self.gamma}" if self.loss == "exponential"
             else f"loss={self.loss!r}, margin={self.margin}")
        s += f", mining={self.mining!r}, reduction={self.reduction!r}"
        return s + (f", mining_margin={self.mining_margin}" if self.mining == "semi-hard" else "")

    def _per_triplet(self, r: torch.Tensor):
        if self.loss == "exponential":
            return _exponential_from_r(r, self.alpha, self.gamma), r > self.gamma
        return _hinge_from_r(r, self.margin), r < self.margin

    def _relative_distances(self, features: torch.Tensor, labels: torch.Tensor):
        """``(r, weight)``: relative distances of the candidate triplets and a 0/1 mask of the mined ones."""
        d = pairwise_squared_distances(features)
        pos, neg = _pair_masks(labels)
        if self.mining == "all":
            r = d[:, None, :] - d[:, :, None]            # r[a, p, n] = d[a, n] - d[a, p]
            return r, pos[:, :, None] & neg[:, None, :]
        dd = d.detach()
        if self.mining == "batch-hard":
            p, n, valid = _batch_hard(dd, pos, neg)
            rows = torch.arange(d.shape[0], device=d.device)
            return d[rows, n] - d[rows, p], valid
        n, valid = _semi_hard(dd, pos, neg, self.mining_margin)
        return d.gather(1, n) - d, valid                  # r[a, p] = d[a, n*(a, p)] - d[a, p]

    def _loss(self, features: torch.Tensor, labels: torch.Tensor):
        _check_embeddings(features, labels)
        features = features if features.dtype == torch.float64 else features.float()
        r, mined = self._relative_distances(features, labels.to(features.device))
        values, active = self._per_triplet(r)
        count = mined.sum()
        total = torch.where(mined, values, torch.zeros_like(values)).sum()
        loss = total if self.reduction == "sum" else total / count.clamp(min=1)
        active_fraction = (active & mined).sum() / count.clamp(min=1)
        return loss, active_fraction, count

    def forward(self, logits: torch.Tensor | None, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss, active_fraction, count = self._loss(features, labels)
        self.last_terms = {"triplet": loss.detach(), "active_fraction": active_fraction.detach(), "triplets": count}
        return loss

    @torch.no_grad()
    def validation_loss(self, features: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 128,
                        seed: int = 0) -> float:
        """The criterion's loss on a whole evaluation set (e.g. PublicTest embeddings), deterministic.

        The set is cut into batches of ``batch_size`` after a permutation fixed by
        ``seed`` (the same every call; random batches, like training, rather than the
        split's file order), each batch is mined and scored as in :meth:`forward`, and
        the batch losses are averaged -- the expected training-batch loss, on the same
        scale as ``last_terms["triplet"]`` whatever the reduction.  A last, smaller
        batch is dropped unless it is the only one.  Returns a float.
        """
        _check_embeddings(features, labels)
        if int(batch_size) != batch_size or batch_size < 2:
            raise ValueError(f"batch_size must be an integer >= 2, got {batch_size!r}")
        n = features.shape[0]
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        order = torch.randperm(n, generator=g).to(features.device)
        labels = labels.to(features.device)
        losses = []
        for k in range(max(n // batch_size, 1)):
            idx = order[k * batch_size:(k + 1) * batch_size]
            losses.append(self._loss(features[idx], labels[idx])[0])
        return float(torch.stack(losses).mean())
