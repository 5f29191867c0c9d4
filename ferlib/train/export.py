"""Sharing a trained model: a small float16 checkpoint, or an ONNX file for other runtimes.

**float16 checkpoint** (``python -m ferlib export RUN OUT.pt``).  ``best.pt`` of a DenseNet-BC
run is about 2.2 MB in float32.  :func:`export_model` writes the same model-only checkpoint
with every floating tensor stored as float16 (about half the size);
:func:`ferlib.train.checkpoint.load_model` reads it unchanged (``load_state_dict`` copies into
the float32 parameters).  float16, not bfloat16: its 10-bit mantissa keeps BatchNorm
statistics and weights to ~3 significant digits, bfloat16 only to ~2.  What the rounding
costs is measured, not assumed: the export records the largest probability difference and
the prediction agreement against the original on the faces given (``check_pixels``).

**ONNX** (``python -m ferlib export RUN OUT.onnx``).  :func:`export_onnx` writes one graph
from FER-2013-style faces to probabilities, with the checkpoint's whole evaluation path
baked in (:class:`FaceClassifier`):

    input  "faces"          uint8 (N, 48, 48): grey face crops, 0..255, as FER-2013 stores them
    graph                   -> float32 -> the checkpoint's normaliser (e.g. per-pixel mean/std)
                            -> its evaluation transform (resize to the input size, base scale, channels)
                            -> the network -> softmax
    output "probabilities"  float32 (N, K), K = len(class_names), in the checkpoint's class order

so another runtime needs no ferlib code and no statistics: crop the face, make it grey, resize
it to 48x48, run.  N is dynamic (all faces of a picture in one call).  The file's metadata
(``metadata_props``) holds ``class_names`` (JSON list, the output order), ``input``, the
source checkpoint, what the model was trained on and the export-time check.  The weights are
float32 (ONNX Runtime's CPU kernels are float32), exported with torch's TorchScript-based
exporter (``dynamo=False``: no extra dependency; the new exporter needs ``onnxscript``).

The check, at export time: the same faces through PyTorch (float32, the evaluation path of
:meth:`~ferlib.train.checkpoint.LoadedModel.predict_proba`) and through ONNX Runtime; the
largest absolute difference of probabilities and the share of equal labels are printed and
stored in the file, and an export that differs by more than :data:`ONNX_TOLERANCE` is refused.
"""
from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .checkpoint import LoadedModel, load_checkpoint_dict, load_model, save_atomic, training_of

FACE_SIZE = 48  # the raw crop every FER-2013 model is fed (its normaliser's statistics are 48x48)
ONNX_OPSET = 17
ONNX_TOLERANCE = 1e-4  # largest |p_onnx - p_torch| accepted at export (float32 both sides; measured ~1e-6)


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
    keep["trained"] = training_of(checkpoint, ckpt)
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


class FaceClassifier(nn.Module):
    """uint8 (N, 48, 48) faces -> (N, K) probabilities: a checkpoint's whole evaluation path as one module.

    The order is the batch source's (:mod:`ferlib.data.batches`): float, normalise, evaluation
    transform, network, softmax -- what :meth:`LoadedModel.predict_proba` computes in float32.
    """

    def __init__(self, loaded: LoadedModel):
        super().__init__()
        if not loaded.has_softmax_head:
            raise ValueError(f"{loaded.meta.get('model_name', 'this model')} has no softmax head (an embedding "
                             "read out by k-NN): there are no probabilities to export")
        if getattr(loaded.model, "side_inputs", ()):
            raise ValueError(f"{loaded.meta.get('model_name', 'this model')} takes side inputs computed in Python "
                             f"({', '.join(loaded.model.side_inputs)}): an ONNX graph of the network alone would "
                             "not be the model")
        self.normalizer, self.network, self.augment = loaded.normalizer, loaded.model, loaded.augment

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        from ..evaluate.inference import forward_outputs

        x = self.normalizer(faces.to(torch.float32).unsqueeze(1))
        x = self.augment.eval_transform(x)
        return torch.softmax(forward_outputs(self.network, x)[0].float(), 1)


def onnx_metadata(loaded: LoadedModel, source: str, trained: dict) -> dict[str, str]:
    return {"ferlib_format": "ferlib-onnx-v1", "class_names": json.dumps(list(loaded.class_names)),
            "input": "faces: uint8 (N, 48, 48) grey face crops (FER-2013's crop), 0..255",
            "output": "probabilities: float32 (N, K), softmax, in class_names order",
            "baked_in": f"normaliser {loaded.meta.get('normalization')}, evaluation transform "
                        f"{json.dumps(loaded.augment.to_dict() if hasattr(loaded.augment, 'to_dict') else {})}",
            "model_name": str(loaded.meta.get("model_name")), "source": source, "trained": json.dumps(trained)}


def onnx_model_bytes(loaded: LoadedModel, metadata: dict[str, str] | None = None) -> bytes:
    """The ONNX file of a loaded model (:class:`FaceClassifier`), as bytes, with ``metadata`` attached."""
    return _with_metadata(_onnx_proto(loaded), metadata or {}).SerializeToString()


def _onnx_proto(loaded: LoadedModel):
    import onnx

    module = FaceClassifier(loaded).to("cpu").eval()
    example = torch.zeros(2, FACE_SIZE, FACE_SIZE, dtype=torch.uint8)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes: nothing to act on
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), buffer, input_names=["faces"], output_names=["probabilities"],
                          dynamic_axes={"faces": {0: "n"}, "probabilities": {0: "n"}}, opset_version=ONNX_OPSET,
                          dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = "ferlib"
    return proto


def _with_metadata(proto, metadata: dict[str, str]):
    for k, v in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    return proto


def onnx_session(model: bytes | str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session (``threads``: intra-op threads, default torch's count, for fair timings)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or torch.get_num_threads())
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                providers=["CPUExecutionProvider"])


def compare_onnx(loaded: LoadedModel, model: bytes | str | Path, pixels: np.ndarray, labels=None,
                 batch_size: int = 512) -> dict:
    """PyTorch (float32) against ONNX Runtime on the same uint8 faces: largest probability difference, same label
    (and each one's accuracy when ``labels`` are given)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    a = loaded.predict_proba(pixels, precision="fp32")
    session = onnx_session(model)
    b = np.concatenate([session.run(None, {"faces": pixels[i:i + batch_size]})[0]
                        for i in range(0, len(pixels), batch_size)])
    report = {"faces": int(len(pixels)), "max_probability_difference": float(np.abs(a - b).max()),
              "same_label": float((a.argmax(1) == b.argmax(1)).mean())}
    if labels is not None:
        labels = np.asarray(labels)
        report.update(accuracy_pytorch=float((a.argmax(1) == labels).mean()),
                      accuracy_onnx=float((b.argmax(1) == labels).mean()))
    return report


def export_onnx(checkpoint: str | Path, out: str | Path, *, check_pixels: np.ndarray | None = None,
                check_labels=None, provenance: dict | None = None, tolerance: float = ONNX_TOLERANCE) -> dict:
    """Write ``out`` (ONNX) of ``checkpoint``; check it against PyTorch on ``check_pixels``; returns the check.

    Raises ValueError (and writes nothing) when the largest probability difference exceeds ``tolerance``.
    """
    loaded = load_model(checkpoint)
    meta = onnx_metadata(loaded, str(checkpoint), training_of(checkpoint))
    meta.update({k: str(v) for k, v in (provenance or {}).items()})
    proto = _with_metadata(_onnx_proto(loaded), meta)
    report = {}
    if check_pixels is not None and len(check_pixels):
        report = compare_onnx(loaded, proto.SerializeToString(), check_pixels, check_labels)
        if not report["max_probability_difference"] <= tolerance:
            raise ValueError(f"the ONNX graph differs from PyTorch by up to {report['max_probability_difference']:.2g} "
                             f"in probability (more than {tolerance:g}) on {report['faces']} faces; not written")
        proto = _with_metadata(proto, {"check": json.dumps(report)})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(proto.SerializeToString())
    tmp.replace(out)
    return report
