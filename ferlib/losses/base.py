"""The criterion interface the trainer calls, so losses plug in without touching it.

A criterion receives ``(logits, features, labels)`` -- the classifier output, the
deep features before the classifier, and the integer labels -- and returns a scalar
loss.  It may own parameters (class centers, say) and may update state outside
back-propagation (Wen et al.'s center rule, DenseNet-CL Eq. (4), (6)).

The trainer, once per training step::

    loss = criterion(logits, features, labels)     # forward
    loss.backward(); optimizer.step()
    criterion.after_step(features.detach(), labels)

calls ``criterion.on_lr_change(optimizer)`` at the start and whenever the schedule changes the learning rate, and builds its optimizer from the model's parameters plus
``criterion.extra_param_groups()`` (each group may carry its own ``lr``).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Criterion(nn.Module):
    """The interface: ``forward(logits, features, labels)``, ``extra_param_groups``, ``after_step``,
    ``on_lr_change`` and ``last_terms`` (detached loss terms for the history)."""

    def __init__(self):
        super().__init__()
        self.last_terms: dict[str, float] = {}

    def forward(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def extra_param_groups(self) -> list[dict]:
        """Parameters the criterion owns, as optimizer param groups (may set their own lr)."""
        return []

    @torch.no_grad()
    def after_step(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        """Updates that are not gradient steps (none for plain cross-entropy)."""

    def on_lr_change(self, optimizer: torch.optim.Optimizer) -> None:
        """Called when the optimiser's learning rate may have changed (e.g. to follow it)."""



class CrossEntropy(Criterion):
    """Softmax cross-entropy, DenseNet-CL Eq. (1)."""

    def forward(self, logits: torch.Tensor, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = F.cross_entropy(logits.float(), labels)
        self.last_terms = {"ce": loss.detach()}
        return loss
