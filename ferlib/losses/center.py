r"""Center loss (Wen et al. 2016) and the joint softmax + center criterion.

The papers
----------
* DenseNet-CL (Sang et al. 2018), Sec. III-C:  :math:`L_C = \tfrac12\sum_i \|x_i - c_{l_i}\|^2`
  (Eq. 2), :math:`\partial L_C/\partial x_i = x_i - c_{l_i}` (Eq. 3), the center step
  :math:`\Delta c_j = \sum_i \delta(l_i=j)(c_j - x_i) / (1 + \sum_i \delta(l_i=j))` (Eq. 4),
  the joint loss :math:`L = L_S + \lambda L_C` (Eq. 5) and :math:`c_j \leftarrow c_j - \alpha\Delta c_j`
  (Eq. 6).  Sec. IV-C: lambda = 0.05, alpha = 0.5, SGD + Nesterov 0.9, batch 128,
  softmax lr 0.1 (decayed), "a constant learning rate 10^-3 is used for training
  center loss".
* CL-ResNet50 (Kang et al. 2023): Eq. 1 (= Eq. 2 above, summed over the mini-batch of m),
  Eq. 2 (= Eq. 4 above), Eq. 3 (= Eq. 5 above); lambda = 0.2, alpha = 1.9, Adam 1e-3
  "for both softmax loss and center loss", batch 62.
* Sobel-Laplacian-CL (Khadanga): Eq. 1 prints :math:`L_C = -\sum_j\|x_j - c_j\|_F^2`
  -- the minus sign (and the missing 1/2) must be a typo: minimised literally it would
  push features *away* from their centers.  ferlib implements Wen et al.'s loss.

Equation numbers without a paper's name are DenseNet-CL's.

Decisions taken here (the recipes follow them)
----------------------------------------------
**Reduction: ``"mean"`` by default.**  The papers sum Eq. 2 over the batch; ferlib
divides by the batch size m (as Wen et al.'s Caffe layer and most ports do), so lambda
does not depend on m (``lambda_sum = lambda_mean / m``); ``reduction="sum"`` is
Eq. 2 literally.  The argument and its numbers: chapter 03, §"Sum or mean over the
batch?".

**Initialisation: zeros.**  As in the common TensorFlow implementations (Wen et
al.'s Caffe layer takes a configurable filler).  With the rule, the first update
already moves ``c_j`` to ``alpha * n_j/(1+n_j)`` times the batch mean of class j,
so the starting point is forgotten within a few steps.

**Two ways to move the centers** (``update=``):

``"rule"`` (the papers): the centers are a buffer, not a parameter.  Backprop does
not touch them -- ``L_C`` is computed with the centers detached -- and after each
optimizer step :meth:`CenterLoss.update` applies Eq. 4 and Eq. 6.  ``alpha`` is the
rule's rate.  The ``1 + n_j`` denominator makes the step a *fraction* of the way
to the batch mean of class j, ``alpha * n_j / (1 + n_j)``, whatever ``n_j`` is; the
iteration is a contraction for every ``n_j`` iff ``0 < alpha < 2`` (alpha = 1.9 of
CL-ResNet50 overshoots the batch mean and oscillates back, but converges).

``"gradient"`` (the common PyTorch variant): the centers are an ``nn.Parameter`` and
an optimizer moves them.  With plain SGD at lr eta on ``lambda * L_C`` the center step
is ``eta * lambda * g * sum_i delta(y_i=j)(c_j - x_i)`` with ``g = 1`` for ``"sum"`` and
``g = 1/m`` for ``"mean"``: the rule's numerator *without* the ``1 + n_j`` denominator,
so the step grows with the number of samples of the class in the batch (and with
``"mean"`` rare classes' centers move slowly).  The two agree for class j when
``alpha / (1 + n_j) = eta * lambda * g`` -- see :func:`rule_alpha_from_sgd` and
:func:`sgd_lr_from_rule_alpha`.

Common mistakes with the gradient variant, and what ferlib does about them:

1. *Centers never added to an optimizer* -- they never move, ``L_C`` just pulls the
   features to the origin.  The trainer builds its optimizer with
   ``criterion.extra_param_groups()``; :class:`SoftmaxCenterLoss` also warns when the
   centers have a gradient but did not move over a step.
2. *Weight decay on the centers* -- shrinks all centers toward the origin.  The
   param group sets ``weight_decay=0``.
3. *Forgetting that the center gradient carries lambda* -- with lambda = 0.003 the
   centers would crawl.  Popular ports multiply the center grads by ``1/lambda``
   before their center optimizer steps; :class:`SoftmaxCenterLoss` does the same
   inside autograd (``decouple_lambda=True``): the centers receive the gradient of
   ``L_C`` alone, the features the gradient of ``lambda * L_C``, so ``center_lr`` means
   the same thing whatever lambda is.

**DenseNet-CL's "constant learning rate 10^-3 for training center loss".**  The
centers' rate is alpha, so ferlib reads 10^-3 as the rate at which ``lambda L_C``
trains the *network*, emulated with one SGD optimiser by scaling that term's gradient
into the features by ``center_term_lr / lr`` (``feature_grad_scale``, kept up to date
by :meth:`SoftmaxCenterLoss.on_lr_change`; exact for SGD between learning-rate
changes, not for Adam).  The argument, its caveats and a demonstration against two
optimisers: chapter 03, §"Two learning rates".
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .base import Criterion

__all__ = [
    "center_loss",
    "center_update",
    "CenterLoss",
    "SoftmaxCenterLoss",
    "rule_alpha_from_sgd",
    "sgd_lr_from_rule_alpha",
    "separate_lr_grad_scale",
]

_REDUCTIONS = ("sum", "mean")
_UPDATES = ("rule", "gradient")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def _scale_grad(t: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the gradient flowing back by ``scale``."""
    if scale == 1.0:
        return t
    d = t.detach()
    return d + (t - d) * scale  # value exactly t, d/dt = scale


def center_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    centers: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Center loss :math:`L_C = \tfrac12 \sum_{i=1}^m \|x_i - c_{y_i}\|_2^2` (DenseNet-CL Eq. 2; Wen et al. Eq. 2).

    Parameters
    ----------
    features : ``(m, d)`` deep features ``x_i``.
    labels : ``(m,)`` integer classes ``y_i``.
    centers : ``(K, d)`` class centers ``c_j``.  Gradients flow into them only if they
        require grad (the ``"gradient"`` variant); pass them detached for the rule.
    reduction : ``"sum"`` -- exactly Eq. 2; ``dL/dx_i = x_i - c_{y_i}`` (Eq. 3) and the
        loss grows with m, so lambda must be re-tuned when the batch size changes.
        ``"mean"`` (ferlib's default, as Wen et al.'s Caffe layer and most PyTorch
        ports) -- Eq. 2 divided by m; ``dL/dx_i = (x_i - c_{y_i}) / m``, the same
        1/m as the batch-averaged cross-entropy, so lambda does not depend on m.

    Returns a scalar tensor (0 for an empty batch).
    """
    _check_reduction(reduction)
    if features.dim() != 2:
        raise ValueError(f"features must be (batch, dim), got shape {tuple(features.shape)}")
    diff = features - centers[labels]
    loss = 0.5 * diff.pow(2).sum()
    if reduction == "mean":
        loss = loss / max(features.shape[0], 1)
    return loss


@torch.no_grad()
def center_update(
    features: torch.Tensor,
    labels: torch.Tensor,
    centers: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    r"""One step of Wen et al.'s center rule; returns new centers (inputs untouched).

    .. math::
        \Delta c_j = \frac{\sum_i \delta(y_i=j)\,(c_j - x_i)}{1 + \sum_i \delta(y_i=j)}
        \quad\text{(Eq. 4)},\qquad c_j \leftarrow c_j - \alpha\,\Delta c_j \quad\text{(Eq. 6)}.

    A class absent from the batch has a zero numerator: its center stays put.  The
    ``1 +`` keeps the division defined and makes the step the fraction
    ``alpha * n_j / (1 + n_j)`` of the way to the batch mean of class j.
    Vectorised: one ``bincount`` and one ``index_add`` -- no loop over classes.
    """
    centers = centers.detach()
    x = features.detach().to(device=centers.device, dtype=centers.dtype)
    labels = labels.to(centers.device)
    num_classes = centers.shape[0]
    counts = torch.bincount(labels, minlength=num_classes).to(centers.dtype)  # n_j
    numer = torch.zeros_like(centers).index_add_(0, labels, centers[labels] - x)  # sum_i d(y_i=j)(c_j - x_i)
    delta = numer / (1.0 + counts).unsqueeze(1)  # Eq. 4
    return centers - alpha * delta  # Eq. 6


class CenterLoss(nn.Module):
    """Class centers plus the center loss; ``forward(features, labels) -> L_C``.

    Parameters
    ----------
    num_classes, feature_dim : shape of the centers, ``(num_classes, feature_dim)``.
    alpha : the rule's rate (Eq. 6); used only with ``update="rule"``.
    reduction : ``"mean"`` (default) or ``"sum"``; see :func:`center_loss`.
    update : ``"rule"`` -- centers are a buffer (saved in ``state_dict``, moved to the
        device with the module, no gradient), moved only by :meth:`update`.
        ``"gradient"`` -- centers are an ``nn.Parameter`` moved by an optimizer; add
        :meth:`param_groups` to it.
    center_lr : learning rate of the centers' param group (``"gradient"`` only);
        ``None`` leaves the optimizer's default lr.

    Centers start at zero (see the module docstring).
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        alpha: float = 0.5,
        reduction: str = "mean",
        update: str = "rule",
        center_lr: float | None = None,
    ):
        super().__init__()
        _check_reduction(reduction)
        if update not in _UPDATES:
            raise ValueError(f"update must be 'rule' or 'gradient', got {update!r}")
        if update == "rule" and not alpha > 0:
            raise ValueError(f"alpha must be > 0, got {alpha}")
        if update == "rule" and alpha >= 2:
            warnings.warn(
                f"center rule with alpha={alpha} >= 2 does not converge for large classes "
                "(each step moves alpha*n/(1+n) of the way to the batch mean)",
                stacklevel=2,
            )
        if update == "rule" and center_lr is not None:
            raise ValueError("center_lr applies to update='gradient'; the rule's rate is alpha")
        self.num_classes = int(num_classes)
        self.feature_dim = int(feature_dim)
        self.alpha = float(alpha)
        self.reduction = reduction
        self.update_mode = update
        self.center_lr = center_lr
        init = torch.zeros(self.num_classes, self.feature_dim)
        if update == "rule":
            self.register_buffer("centers", init)
        else:
            self.centers = nn.Parameter(init)

    def extra_repr(self) -> str:
        s = f"num_classes={self.num_classes}, feature_dim={self.feature_dim}, reduction={self.reduction!r}, update={self.update_mode!r}"
        if self.update_mode == "rule":
            return s + f", alpha={self.alpha}"
        return s + f", center_lr={self.center_lr}"

    def forward(self, features: torch.Tensor, labels: torch.Tensor, center_grad_scale: float = 1.0) -> torch.Tensor:
        """``L_C`` of the batch.  ``center_grad_scale`` scales the gradient the centers
        receive (``"gradient"`` variant; the loss value is unchanged)."""
        centers = self.centers
        if self.update_mode == "rule":
            centers = centers.detach()  # a buffer already; explicit for readers
        else:
            centers = _scale_grad(centers, center_grad_scale)
        return center_loss(features, labels, centers, self.reduction)

    @torch.no_grad()
    def update(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Apply the rule (Eq. 4, 6) in place -- call once per step, after ``optimizer.step()``."""
        if self.update_mode != "rule":
            raise RuntimeError(
                "CenterLoss(update='gradient'): the centers are moved by the optimizer, not by update(); "
                "add CenterLoss.param_groups() to your optimizer"
            )
        self.centers.copy_(center_update(features, labels.to(self.centers.device), self.centers, self.alpha))

    def param_groups(self) -> list[dict]:
        """The centers as an optimizer param group (``"gradient"`` only), without weight decay."""
        if self.update_mode != "gradient":
            return []
        group: dict[str, Any] = {"params": [self.centers], "weight_decay": 0.0, "name": "centers"}
        if self.center_lr is not None:
            group["lr"] = float(self.center_lr)
        return [group]


class SoftmaxCenterLoss(Criterion):
    r"""Joint supervision ``L = L_S + lambda * L_C`` (Eq. 5), as a trainer criterion.

    Parameters
    ----------
    num_classes, feature_dim : for the centers.
    lambda_ : weight of the center loss (DenseNet-CL 0.05, CL-ResNet50 0.2).
    alpha : the rule's rate (DenseNet-CL 0.5, CL-ResNet50 1.9); ``update="rule"`` only.
    reduction : of ``L_C``; ``"mean"`` by default (lambda independent of batch size).
    update : ``"rule"`` (papers) or ``"gradient"`` (centers as a parameter).
    center_lr : lr of the centers' param group (``"gradient"``); ``None`` = optimizer default.
    decouple_lambda : (``"gradient"``) the centers receive the gradient of ``L_C``
        rather than of ``lambda * L_C`` -- what ports do by multiplying the center grads
        by ``1/lambda`` -- so ``center_lr`` does not have to be retuned with lambda.
    feature_grad_scale : multiplies the gradient of ``lambda * L_C`` flowing into the
        features (and so the network); the loss value is unchanged.  A plain
        attribute: a recipe may change it between steps (:func:`separate_lr_grad_scale`).
    center_term_lr : if set, the learning rate at which the ``lambda * L_C`` term trains
        the network (DenseNet-CL: constant 10^-3); :meth:`on_lr_change` then sets
        ``feature_grad_scale = center_term_lr / lr`` from the optimiser's current lr
        (param group 0).  Exact for SGD; excludes an explicit ``feature_grad_scale``.

    Trainer interface: ``forward(logits, features, labels)`` (features cast to
    float32), ``extra_param_groups()``, ``after_step(features, labels)`` (the rule),
    ``on_lr_change(optimizer)`` (``center_term_lr``), and
    ``last_terms = {"ce": L_S, "center": L_C}`` (detached; ``L_C`` unweighted).
    The centers are in ``state_dict()`` (a buffer for the rule, a parameter otherwise),
    so a checkpoint of the criterion restores them.
    Move the criterion to the model's device (its centers live on it).
    """

    def __init__(
        self,
        num_classes: int,
        feature_dim: int,
        lambda_: float = 0.05,
        alpha: float = 0.5,
        reduction: str = "mean",
        update: str = "rule",
        center_lr: float | None = None,
        decouple_lambda: bool = True,
        feature_grad_scale: float = 1.0,
        center_term_lr: float | None = None,
    ):
        super().__init__()
        if lambda_ < 0:
            raise ValueError(f"lambda_ must be >= 0, got {lambda_}")
        if center_term_lr is not None:
            if not center_term_lr > 0:
                raise ValueError(f"center_term_lr must be > 0, got {center_term_lr}")
            if feature_grad_scale != 1.0:
                raise ValueError("give center_term_lr or feature_grad_scale, not both: "
                                 "center_term_lr sets feature_grad_scale from the optimiser's lr")
        self.center_loss = CenterLoss(num_classes, feature_dim, alpha=alpha, reduction=reduction,
                                      update=update, center_lr=center_lr)
        self.lambda_ = float(lambda_)
        self.decouple_lambda = bool(decouple_lambda)
        self.feature_grad_scale = float(feature_grad_scale)
        self.center_term_lr = None if center_term_lr is None else float(center_term_lr)
        self._warned_adaptive = False
        self._snapshot: torch.Tensor | None = None
        self._checks_left = 3

    @property
    def centers(self) -> torch.Tensor:
        return self.center_loss.centers

    @property
    def update_mode(self) -> str:
        return self.center_loss.update_mode

    def forward(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        features = features.float()
        ce = F.cross_entropy(logits.float(), labels)
        center_scale = 1.0
        if self.update_mode == "gradient" and self.decouple_lambda and self.lambda_ > 0:
            center_scale = 1.0 / self.lambda_
        lc = self.center_loss(_scale_grad(features, self.feature_grad_scale), labels,
                              center_grad_scale=center_scale)
        self.last_terms = {"ce": ce.detach(), "center": lc.detach()}
        return ce + self.lambda_ * lc

    def extra_repr(self) -> str:
        s = f"lambda_={self.lambda_}"
        if self.center_term_lr is not None:
            return s + f", center_term_lr={self.center_term_lr}"
        return s + (f", feature_grad_scale={self.feature_grad_scale}" if self.feature_grad_scale != 1.0 else "")

    def on_lr_change(self, optimizer: torch.optim.Optimizer) -> None:
        """With ``center_term_lr``: ``feature_grad_scale = center_term_lr / lr`` of param group 0."""
        if self.center_term_lr is None:
            return
        if not isinstance(optimizer, torch.optim.SGD) and not self._warned_adaptive:
            warnings.warn(
                f"SoftmaxCenterLoss(center_term_lr=...) emulates a separate learning rate by scaling the "
                f"center term's gradient, which is exact for SGD only, not for {type(optimizer).__name__}",
                stacklevel=2,
            )
            self._warned_adaptive = True
        lr = float(optimizer.param_groups[0]["lr"])
        # lr 0 (the last step of a cosine schedule): the optimiser moves nothing, whatever the scale
        self.feature_grad_scale = separate_lr_grad_scale(lr, self.center_term_lr) if lr > 0 else 0.0

    def extra_param_groups(self) -> list[dict]:
        """``[]`` for the rule; the centers (own lr, ``weight_decay=0``) for ``"gradient"``."""
        return self.center_loss.param_groups()

    @torch.no_grad()
    def after_step(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Rule variant: move the centers by Eq. 4/6 with this step's features.
        Gradient variant: on the first steps, warn if the centers had a gradient but
        did not move (they are missing from the optimizer)."""
        if self.update_mode == "rule":
            self.center_loss.update(features.float(), labels)
            return
        # Cheap guard against mistake 1 (module docstring), on the first steps only.
        if self._checks_left <= 0:
            return
        c = self.centers
        if self._snapshot is not None:
            self._checks_left -= 1
            if c.grad is not None and bool(c.grad.abs().sum() > 0) and torch.equal(c.detach(), self._snapshot):
                warnings.warn(
                    "SoftmaxCenterLoss(update='gradient'): the centers have a gradient but did not move "
                    "this step -- is criterion.extra_param_groups() in the optimizer (with a non-zero lr)?",
                    stacklevel=2,
                )
                self._checks_left = 0
        self._snapshot = c.detach().clone() if self._checks_left > 0 else None


def rule_alpha_from_sgd(
    lr: float,
    lambda_: float,
    class_count: float,
    *,
    reduction: str = "mean",
    batch_size: int | None = None,
) -> float:
    r"""The rule's alpha that moves center j as far as one plain-SGD step would.

    SGD at ``lr`` on ``lambda_ * L_C`` moves ``c_j`` by ``lr * lambda_ * g *
    sum_i delta(y_i=j)(c_j - x_i)`` (``g = 1`` for ``"sum"``, ``1/batch_size`` for
    ``"mean"``); the rule moves it by ``alpha / (1 + n_j)`` times the same sum.  So
    ``alpha = lr * lambda_ * g * (1 + class_count)`` with ``class_count = n_j`` (for a
    balanced batch, ``batch_size / num_classes``).  With ``decouple_lambda=True`` the
    centers see ``L_C`` without lambda: pass ``lambda_=1``.  The match holds for one
    ``n_j`` only -- the rule normalises by class count, SGD does not.
    """
    _check_reduction(reduction)
    g = 1.0
    if reduction == "mean":
        if not batch_size:
            raise ValueError("reduction='mean' needs batch_size")
        g = 1.0 / batch_size
    return float(lr * lambda_ * g * (1.0 + class_count))


def sgd_lr_from_rule_alpha(
    alpha: float,
    lambda_: float,
    class_count: float,
    *,
    reduction: str = "mean",
    batch_size: int | None = None,
) -> float:
    """Inverse of :func:`rule_alpha_from_sgd`: the centers' SGD lr that mimics the rule's alpha."""
    per_unit_lr = rule_alpha_from_sgd(1.0, lambda_, class_count, reduction=reduction, batch_size=batch_size)
    if per_unit_lr == 0:
        raise ValueError("lambda_ = 0: no learning rate makes the gradient variant move the centers")
    return float(alpha / per_unit_lr)


def separate_lr_grad_scale(base_lr: float, center_term_lr: float = 1e-3) -> float:
    """``feature_grad_scale`` that makes one optimizer at ``base_lr`` step the
    ``lambda * L_C`` term as if it had its own learning rate ``center_term_lr``
    (DenseNet-CL's constant 10^-3).  Exact for SGD; recompute when ``base_lr`` changes."""
    if base_lr <= 0:
        raise ValueError(f"base_lr must be > 0, got {base_lr}")
    return float(center_term_lr / base_lr)
