"""One inference loop: logits, deep features and (test-time-augmented) probabilities of a batch source.

Every evaluation in ferlib -- PublicTest validation during training, the selected epoch's
PublicTest / PrivateTest metrics, k-NN embeddings, a checkpoint's ``predict_proba``, the
members of an ensemble with test-time augmentation -- goes through :func:`infer`: the model
in eval mode (dropout off, BatchNorm running statistics; its mode restored afterwards), no
gradients, autocast to ``autocast_dtype`` when one is given (bf16 on a CPU with bf16 kernels
or a GPU; ``None``: float32), every output returned as a CPU float32 tensor in the source's
order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch


@dataclass
class Outputs:
    """What :func:`infer` returns; a field is None when it was not asked for (or the model has no head)."""

    labels: torch.Tensor
    logits: torch.Tensor | None = None  # (N, K) of the plain input; None for an embedding net or with views
    features: torch.Tensor | None = None  # (N, D) deep features of the plain input
    probabilities: torch.Tensor | None = None  # (N, K) softmax, the mean over the views when views are given


def autocast(device_type: str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype`` (off when ``dtype`` is None): the one autocast idiom of inference."""
    return torch.autocast(device_type=device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def forward_outputs(model: torch.nn.Module, x: torch.Tensor, side: dict | None = None):
    """``(logits, features)``: ``forward_with_features`` when the model has it, else ``(model(x), None)``.

    ``side``: per-sample inputs beside the image, passed by name (EmoNet's ``bovw``; a batch's third item).
    """
    side = side or {}
    if hasattr(model, "forward_with_features"):
        return model.forward_with_features(x, **side)
    return model(x, **side), None


@torch.no_grad()
def infer(model: torch.nn.Module, source, *, autocast_dtype: torch.dtype | None = None, features: bool = False,
          probabilities: bool = False, views: Callable[[torch.Tensor], Iterable[torch.Tensor]] | None = None
          ) -> Outputs:
    """Run ``model`` over an in-order batch source (batches ``(x, y, ...)``).

    ``features``: keep the deep features; ``probabilities``: keep ``softmax(logits)``;
    ``views``: a function giving the test-time views of a batch (:mod:`ferlib.evaluate.tta`) --
    then only probabilities are returned, each the mean over the views.
    """
    was_training = model.training
    model.eval()
    logits, feats, probs, labels = [], [], [], []
    try:
        for batch in source:
            x, y = batch[0], batch[1]
            side = batch[2] if len(batch) > 2 else None  # EmoNet's BOVW: the same for every view of a face
            labels.append(y.cpu())
            if views is not None:
                total, n = None, 0
                for view in views(x):
                    with autocast(x.device.type, autocast_dtype):
                        p = torch.softmax(forward_outputs(model, view, side)[0].float(), 1)
                    total, n = (p if total is None else total + p), n + 1
                probs.append((total / n).cpu())
                continue
            with autocast(x.device.type, autocast_dtype):
                out, f = forward_outputs(model, x, side)
            if out is not None:
                logits.append(out.float().cpu())
                if probabilities:
                    probs.append(torch.softmax(out.float(), 1).cpu())
            if features:
                feats.append(f.float().cpu())
    finally:
        model.train(was_training)
    cat = lambda parts: torch.cat(parts) if parts else None  # noqa: E731
    return Outputs(labels=torch.cat(labels), logits=cat(logits), features=cat(feats), probabilities=cat(probs))
