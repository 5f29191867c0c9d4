"""What the trainer measures on PublicTest after each epoch: a validator, one built part.

A validator is called as ``validator(model, val_source, autocast_dtype)`` and returns
``{"accuracy": float, "loss": float | None}``; the trainer selects epochs, stops early
and records the history from it, and callbacks (the DNNRL §4 protocol,
:mod:`ferlib.train.protocols`) read ``record["val_loss"]``.

* :class:`SoftmaxValidator` (the default) -- accuracy of the softmax head and the
  cross-entropy of its logits (``None`` for soft labels).
* :class:`KNNValidator` -- for networks trained as embeddings (DNNRL's T-DNN and
  DNNRL, read out by a k-NN classifier, DNNRL §4): the k-NN accuracy of PublicTest
  against a fixed, class-stratified subset of Training (``per_class`` faces per class,
  the deterministic evaluation transform, so the reference set is the same every
  epoch) with a fixed ``k`` -- the final ``k`` is chosen on PublicTest against the
  whole of Training after training (:func:`ferlib.evaluate.knn.knn_evaluate`) -- and
  the criterion's ``validation_loss`` of the PublicTest embeddings.

:func:`predict_embeddings` is the evaluation pass of an embedding model (its logits
may be ``None``).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from ..evaluate.inference import infer
from ..evaluate.knn import knn_predict
from ..evaluate.metrics import accuracy, predict

__all__ = ["SoftmaxValidator", "KNNValidator", "predict_embeddings", "KNN_VALIDATION_K",
           "KNN_REFERENCE_PER_CLASS"]

KNN_VALIDATION_K = 5
"""k of the per-epoch k-NN accuracy (a fixed proxy; the reported k is chosen after training)."""

KNN_REFERENCE_PER_CLASS = 300
"""Training faces per class embedded as the per-epoch k-NN reference (2,100 for 7 classes)."""


def predict_embeddings(model: torch.nn.Module, source, *, autocast_dtype: torch.dtype | None = None):
    """``(embeddings, labels)`` of every sample of an in-order source, as CPU float32 / int64 tensors.

    The model's ``forward_with_features`` second output through :func:`~ferlib.evaluate.inference.infer`
    (eval mode: dropout off, BatchNorm running statistics); its logits are ignored and may be None.
    """
    out = infer(model, source, autocast_dtype=autocast_dtype, features=True)
    return out.features, out.labels


class SoftmaxValidator:
    """PublicTest accuracy of the softmax head and mean cross-entropy (DenseNet-CL Eq. 1) of its logits."""

    name = "softmax"

    def __call__(self, model, val_source, autocast_dtype=None) -> dict:
        logits, labels = predict(model, val_source, autocast_dtype=autocast_dtype)
        loss = float(F.cross_entropy(logits, labels)) if labels.ndim == 1 else None
        return {"accuracy": accuracy(logits.numpy(), labels.numpy()), "loss": loss}

    def describe(self) -> dict:
        return {"name": self.name}


class KNNValidator:
    """k-NN accuracy and the criterion's validation loss of the PublicTest embeddings (see the module docstring).

    reference_source : an in-order source of the Training reference subset
        (``DeviceBatchSource.for_eval``: the evaluation transform, no randomness).
    criterion : anything with ``validation_loss(embeddings, labels) -> float``
        (:class:`~ferlib.losses.triplet.TripletCriterion`); None = no loss reported.
    k, metric : of the per-epoch k-NN (:func:`~ferlib.evaluate.knn.knn_predict`);
        ``k`` is capped at the reference size.
    """

    name = "knn"

    def __init__(self, reference_source, criterion=None, *, k: int = KNN_VALIDATION_K, metric: str = "euclidean"):
        if int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if criterion is not None and not callable(getattr(criterion, "validation_loss", None)):
            raise TypeError(f"{type(criterion).__name__} has no validation_loss(embeddings, labels); "
                            "pass criterion=None to validate on k-NN accuracy alone")
        self.reference_source, self.criterion, self.k, self.metric = reference_source, criterion, int(k), metric

    def __call__(self, model, val_source, autocast_dtype=None) -> dict:
        ref, ref_labels = predict_embeddings(model, self.reference_source, autocast_dtype=autocast_dtype)
        emb, labels = predict_embeddings(model, val_source, autocast_dtype=autocast_dtype)
        k = min(self.k, ref.shape[0])
        pred = knn_predict(ref, ref_labels, emb, k, self.metric)
        loss = None
        if self.criterion is not None:
            loss = float(self.criterion.validation_loss(emb.to(ref.device), labels))
        return {"accuracy": float((pred == labels).double().mean()), "loss": loss}

    def describe(self) -> dict:
        return {"name": self.name, "k": self.k, "metric": self.metric,
                "reference_size": self.reference_source.num_samples,
                "loss": None if self.criterion is None else type(self.criterion).__name__ + ".validation_loss"}
