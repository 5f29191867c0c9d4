"""Test-time augmentation (TTA): predict several views of each face and average the probabilities.

Views are made from the model's own evaluation input -- the batches of an in-order
:class:`~ferlib.data.batches.DeviceBatchSource` (``for_eval`` with the checkpoint's
``augment``: normalised, resized to the input size, channels stacked), so the views
are geometric variants of exactly what the model was evaluated on:

* ``"none"`` -- the evaluation input alone (1 view);
* ``"flip"`` -- it and its left-right mirror, ``x.flip(-1)`` (2 views);
* ``"tencrop"`` -- the ten-crop of the FER literature: the four corner crops and the
  centre crop, each also mirrored (10 views).  The crops follow the training's own
  crop augmentation (DenseNet-CL §IV-B: "add margins to each image ... then crop a
  random area ... with the same size as the original"): pad ``margin`` pixels of
  zeros (the mean, after normalisation) on every side and take the windows of the
  input size at the four corners and the centre.  Each view is the input shifted by
  ``(+-margin, +-margin)`` or not at all, at the scale the model was trained on.
  ``margin`` defaults to the training's ``crop_margin`` (:func:`tencrop_margin`).

Mirroring happens after per-pixel normalisation, as in training (normalise, then
augment): a flipped view is exactly what a flip augmentation showed the model.

All views of a batch are made by slicing and ``flip`` on the device -- no per-image
Python; the model sees one view of the whole batch at a time (memory as in plain
evaluation), and the softmax outputs are averaged over the views.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .inference import autocast, forward_outputs, infer

TTA_MODES = ("none", "flip", "tencrop")
DEFAULT_MARGIN = 4  # DenseNet-CL's crop margin in ferlib's densenet preset (ferlib.data.transforms)
_CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right", "centre")


def check_mode(mode: str) -> str:
    if mode not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {mode!r}; choose one of {TTA_MODES}")
    return mode


def views_per_image(mode: str) -> int:
    """1 (none), 2 (flip) or 10 (tencrop)."""
    return {"none": 1, "flip": 2, "tencrop": 10}[check_mode(mode)]


def view_names(mode: str) -> list[str]:
    check_mode(mode)
    if mode == "none":
        return ["plain"]
    if mode == "flip":
        return ["plain", "flipped"]
    return list(_CORNERS) + [f"{c}, flipped" for c in _CORNERS]


def tencrop_margin(augment=None) -> int:
    """The ten-crop margin for a model trained with ``augment`` (a BatchAugment or its dict).

    Its ``crop_margin`` when it has one; else its continuous ``translate`` fraction in
    output pixels (rounded, at least 1); else :data:`DEFAULT_MARGIN`.
    """
    get = (augment.get if isinstance(augment, dict) else (lambda k, d=None: getattr(augment, k, d)))
    if augment is None:
        return DEFAULT_MARGIN
    if (get("crop_margin", 0) or 0) > 0:
        return int(get("crop_margin"))
    if (get("translate", 0) or 0) > 0 and get("out_size"):
        return max(1, int(round(get("translate") * get("out_size"))))
    return DEFAULT_MARGIN


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        raise ValueError(f"expected a float (B, C, H, W) batch, got {type(x).__name__} "
                         f"{tuple(getattr(x, 'shape', ()))} {getattr(x, 'dtype', '')}")


def tta_view(x: torch.Tensor, mode: str, index: int, margin: int = DEFAULT_MARGIN,
             padded: torch.Tensor | None = None) -> torch.Tensor:
    """View ``index`` (0-based, order of :func:`view_names`) of a batch ``x`` (B, C, H, W), same shape."""
    _check_batch(x)
    n = views_per_image(mode)
    if not 0 <= index < n:
        raise IndexError(f"view {index} out of range: {mode!r} has {n} views")
    if mode == "none":
        return x
    if mode == "flip":
        return x if index == 0 else x.flip(-1)
    m = int(margin)
    if m < 1:
        raise ValueError(f"margin must be a positive number of pixels, got {margin!r}")
    h, w = x.shape[-2:]
    if padded is None:
        padded = F.pad(x, (m, m, m, m))
    top, left = {0: (0, 0), 1: (0, 2 * m), 2: (2 * m, 0), 3: (2 * m, 2 * m), 4: (m, m)}[index % 5]
    crop = padded[..., top:top + h, left:left + w]
    return crop.flip(-1) if index >= 5 else crop


def tta_views(x: torch.Tensor, mode: str = "flip", margin: int = DEFAULT_MARGIN) -> torch.Tensor:
    """All views of a batch, view-major: (V, B, C, H, W) with V = :func:`views_per_image`."""
    _check_batch(x)
    padded = F.pad(x, (margin,) * 4) if mode == "tencrop" else None
    return torch.stack([tta_view(x, mode, v, margin, padded) for v in range(views_per_image(mode))])


@torch.no_grad()
def tta_batch_probabilities(model: torch.nn.Module, x: torch.Tensor, mode: str = "flip", *,
                            margin: int = DEFAULT_MARGIN, autocast_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Mean over the views of ``softmax(model(view))`` for one batch: (B, K) float32 on ``x``'s device."""
    _check_batch(x)
    padded = F.pad(x, (margin,) * 4) if mode == "tencrop" else None
    total = None
    for v in range(views_per_image(mode)):
        with autocast(x.device.type, autocast_dtype):
            p = torch.softmax(forward_outputs(model, tta_view(x, mode, v, margin, padded))[0].float(), 1)
        total = p if total is None else total + p
    return total / views_per_image(mode)


def tta_probabilities(model: torch.nn.Module, source, mode: str = "flip", *, margin: int | None = None,
                      autocast_dtype: torch.dtype | None = None):
    """TTA probabilities and labels of every sample of an in-order batch source, as CPU tensors.

    ``source`` yields the model's evaluation input (e.g. ``DeviceBatchSource.for_eval``
    with the checkpoint's augment, or ``LoadedModel.eval_source``).  ``margin``
    (tencrop only) defaults to :func:`tencrop_margin` of the source's transform.
    The loop is :func:`~ferlib.evaluate.inference.infer`'s, with this mode's views.
    """
    check_mode(mode)
    if margin is None:
        margin = tencrop_margin(getattr(getattr(source, "transform", None), "__self__", None))

    def views(x):
        _check_batch(x)
        padded = F.pad(x, (margin,) * 4) if mode == "tencrop" else None
        return (tta_view(x, mode, v, margin, padded) for v in range(views_per_image(mode)))

    out = infer(model, source, autocast_dtype=autocast_dtype, views=views)
    return out.probabilities, out.labels


@torch.no_grad()
def flip_invariance_gap(model: torch.nn.Module, source, *, autocast_dtype=None) -> float:
    """Mean total-variation distance between the predictions of a face and of its mirror image.

    0 for a model that treats mirrored faces alike; what flip TTA can change.
    """
    gaps = []
    was_training = model.training
    model.eval()
    try:
        for batch in source:
            x = batch[0]
            plain = tta_batch_probabilities(model, x, "none", autocast_dtype=autocast_dtype)
            flipped = tta_batch_probabilities(model, x.flip(-1), "none", autocast_dtype=autocast_dtype)
            gaps.append((0.5 * (plain - flipped).abs().sum(1)).cpu().numpy())
    finally:
        model.train(was_training)
    return float(np.concatenate(gaps).mean())
