"""Input normalisation, kept with the model so inference uses the same numbers.

* :class:`PixelStandardizer` -- DenseNet-CL's preprocessing (§IV-C,
  "Preparing dataset"): subtract the mean image over Training, then divide every
  pixel by its standard deviation over Training, so each pixel position has mean 0
  and standard deviation 1 over the training set.
* :class:`ImageStandardizer` -- per-image alternative: each image to mean 0, std 1
  (no statistics to store; robust to lighting, loses global brightness).
* :class:`ChannelStandardizer` -- one mean and std over all training pixels
  (CL-ResNet50's per-channel normalisation, §4.2).
* :class:`MeanCentering` -- EmoNet's (§4: "normalized via mean-centering i.e. via subtracting
  the mean of the training images from each image"): the mean image over Training is
  subtracted, nothing divided; the result is on the 0..1 scale (``/ 255``), where a
  pretrained block rescales it to what its weights expect
  (:data:`ferlib.models.pretrained.INPUT_STD`).

All are ``nn.Module`` s whose statistics are buffers: they travel in a checkpoint's
``state_dict`` and move with ``.to(device)``.  Input: float (B, C, H, W) in 0..255.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

EPS = 1e-6


class PixelStandardizer(nn.Module):
    """Per-pixel mean/std over the training images (DenseNet-CL §IV-C)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, 1, *mean.shape[-2:]))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(1, 1, *std.shape[-2:]))

    @classmethod
    def fit(cls, train_pixels: np.ndarray) -> "PixelStandardizer":
        """Statistics of uint8 (N, H, W) training pixels, in float64 then stored as float32."""
        x = np.asarray(train_pixels, dtype=np.float64)
        return cls(torch.from_numpy(x.mean(0)), torch.from_numpy(np.maximum(x.std(0), EPS)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean


class ChannelStandardizer(nn.Module):
    """One mean and std over every training pixel (per channel of a grey image)."""

    def __init__(self, mean: float, std: float):
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    @classmethod
    def fit(cls, train_pixels: np.ndarray) -> "ChannelStandardizer":
        x = np.asarray(train_pixels, dtype=np.float64)
        return cls(x.mean(), max(x.std(), EPS))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean


class MeanCentering(nn.Module):
    """The mean image over Training subtracted, on the 0..1 scale: ``(x - mean) / 255`` (EmoNet §4)."""

    def __init__(self, mean: torch.Tensor):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(1, 1, *mean.shape[-2:]))

    @classmethod
    def fit(cls, train_pixels: np.ndarray) -> "MeanCentering":
        return cls(torch.from_numpy(np.asarray(train_pixels, dtype=np.float64).mean(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / 255.0

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        return z * 255.0 + self.mean


class ImageStandardizer(nn.Module):
    """Each image to zero mean and unit standard deviation, on its own."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(-3, -2, -1), keepdim=True)
        std = x.std(dim=(-3, -2, -1), keepdim=True).clamp_min(EPS)
        return (x - mean) / std


NORMALIZERS = {"pixel": PixelStandardizer, "channel": ChannelStandardizer, "image": ImageStandardizer,
               "mean": MeanCentering}


def fit_normalizer(kind: str, train_pixels: np.ndarray) -> nn.Module:
    """``"pixel"``, ``"channel"``, ``"mean"`` or ``"image"`` normaliser fitted on Training pixels."""
    if kind not in NORMALIZERS:
        raise ValueError(f"unknown normalisation {kind!r}; expected one of {sorted(NORMALIZERS)}")
    cls = NORMALIZERS[kind]
    return cls() if kind == "image" else cls.fit(train_pixels)


def normalizer_from_state(kind: str, state: dict) -> nn.Module:
    """Rebuild a normaliser from a checkpoint's ``state_dict`` (on any device)."""
    if kind == "pixel":
        return PixelStandardizer(state["mean"][0, 0], state["std"][0, 0])
    if kind == "channel":
        return ChannelStandardizer(state["mean"], state["std"])
    if kind == "mean":
        return MeanCentering(state["mean"][0, 0])
    return ImageStandardizer()
