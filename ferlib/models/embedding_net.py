"""A small MLP whose deep-feature layer has 2 or 3 units (Wen et al. 2016's picture, chapter 03)."""
from __future__ import annotations

import torch
from torch import nn


class EmbeddingNet(nn.Module):
    """MLP with a ``feature_dim``-unit deep-feature layer, then a linear classifier.

    ``in_dim -> hidden -> hidden -> feature_dim`` (PReLU between), ``-> num_classes``.
    ``forward_with_features(x)`` returns ``(logits, features)``; ``features``, as on every
    ferlib model, is the module that maps an input batch ``(B, in_dim)`` to the deep
    features ``(B, feature_dim)``.
    """

    def __init__(self, in_dim: int, feature_dim: int = 2, hidden: int = 64, num_classes: int = 7):
        super().__init__()
        self.feature_dim = int(feature_dim)
        self.features = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.PReLU(), nn.Linear(hidden, hidden), nn.PReLU(),
            nn.Linear(hidden, feature_dim))
        self.classifier = nn.Linear(feature_dim, num_classes)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.classifier(f), f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
