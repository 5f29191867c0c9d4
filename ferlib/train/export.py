"""A small copy of a trained model for sharing and committing: float16 weights, nothing for resuming.

``best.pt`` of a DenseNet-BC run is about 2.2 MB in float32.  :func:`export_model`
writes the same model-only checkpoint with every floating tensor stored as float16
(about half the size); :func:`ferlib.train.checkpoint.load_model` reads it unchanged
(``load_state_dict`` copies into the float32 parameters).  float16, not bfloat16: its
10-bit mantissa keeps BatchNorm statistics and weights to ~3 significant digits,
bfloat16 only to ~2.  What the rounding costs is measured, not assumed: the export
records the largest probability difference and the prediction agreement against
the original on the faces given (``check_pixels``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint_dict, load_model, save_atomic


def _half(value):
    if torch.is_tensor(value) and value.is_floating_point():
        return value.to(torch.float16)
    if isinstance(value, dict):
        return {k: _half(v) for k, v in value.items()}
    return value


def export_model(checkpoint: str | Path, out: str | Path, *, check_pixels: np.ndarray | None = None,
                 provenance: dict | None = None) -> dict:
    """Write ``out``: the model of ``checkpoint`` with float16 weights; returns what was checked."""
    ckpt = load_checkpoint_dict(checkpoint)
    keep = {k: v for k, v in ckpt.items() if k not in ("optimizer", "schedule", "criterion", "state", "identity")}
    keep["kind"] = "model"
    keep["model"] = _half(ckpt["model"])
    keep["exported_from"] = {"file": str(checkpoint), "weights": "float16", **(provenance or {})}
    report = {}
    if check_pixels is not None:
        save_atomic(keep, Path(out))
        a = load_model(checkpoint).predict_proba(check_pixels, precision="fp32")
        b = load_model(out).predict_proba(check_pixels, precision="fp32")
        report = {"faces": int(len(check_pixels)), "max_probability_difference": float(np.abs(a - b).max()),
                  "same_prediction": float((a.argmax(1) == b.argmax(1)).mean())}
        keep["exported_from"]["check"] = report
    save_atomic(keep, Path(out))
    return report
