"""Predictions over a batch source and the metrics every results file reports.

Accuracy, per-class precision / recall / F1 (scikit-learn's
``classification_report``), macro F1 (CL-ResNet50 Table 3 reports F1) and the
confusion matrix (DenseNet-CL Fig. 5).
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import classification_report, confusion_matrix, f1_score

from .inference import infer


def predict(model: torch.nn.Module, source, *, autocast_dtype: torch.dtype | None = None,
            return_features: bool = False):
    """``(logits, labels[, features])`` of every sample of an in-order batch source (:func:`~.inference.infer`)."""
    out = infer(model, source, autocast_dtype=autocast_dtype, features=return_features)
    return (out.logits, out.labels, out.features) if return_features else (out.logits, out.labels)


def hard_labels(labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Integer labels; soft (N, K) targets -> their argmax."""
    labels = np.asarray(labels)
    return labels.argmax(1) if labels.ndim == 2 else labels


def accuracy(logits, labels) -> float:
    return float((np.asarray(logits).argmax(1) == hard_labels(labels)).mean())


def accuracy_standard_error(accuracy: float, n: int) -> float:
    """The binomial standard error of an accuracy measured on ``n`` independent faces, in the accuracy's own
    unit (a fraction in, a fraction out): sqrt(p (1 - p) / n)."""
    return float(np.sqrt(accuracy * (1.0 - accuracy) / n))


def classification_metrics(probs_or_logits, labels, class_names) -> dict:
    """Accuracy, macro F1, per-class precision/recall/F1/support and the confusion matrix."""
    pred = np.asarray(probs_or_logits).argmax(1)
    true = hard_labels(labels)
    k = len(class_names)
    report = classification_report(true, pred, labels=list(range(k)), target_names=list(class_names),
                                   output_dict=True, zero_division=0)
    per_class = {c: {m: float(report[c][m]) for m in ("precision", "recall", "f1-score", "support")}
                 for c in class_names}
    return {
        "accuracy": float((pred == true).mean()),
        "macro_f1": float(f1_score(true, pred, labels=list(range(k)), average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(true, pred, labels=list(range(k)), average="weighted", zero_division=0)),
        "n": int(len(true)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(true, pred, labels=list(range(k))).tolist(),
    }


def accuracy_difference(acc_a: float, acc_b: float, n: int) -> dict:
    """``acc_b - acc_a`` with its binomial standard error, for two models scored on the same ``n`` images.

    The error treats the two accuracies as independent binomial proportions,
    ``sqrt(a(1-a)/n + b(1-b)/n)`` -- conservative for two models tested on the same
    images (their errors are positively correlated).  ``z`` = difference / error.
    """
    se = float(np.sqrt(acc_a * (1 - acc_a) / n + acc_b * (1 - acc_b) / n))
    diff = float(acc_b - acc_a)
    return {"difference": diff, "standard_error": se, "z": diff / se if se > 0 else float("nan"), "n": int(n)}
