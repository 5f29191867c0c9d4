"""The model a prediction uses: a ferlib checkpoint run by PyTorch, or an ONNX file run by ONNX Runtime.

Both give ``predict_proba(uint8 (N, 48, 48) crops) -> (N, K)`` and ``class_names`` (the order
the checkpoint records; FER+ models of chapter 08 have eight), so everything downstream is
the same.  ``--runtime onnx`` with a checkpoint exports it in memory first
(:func:`ferlib.train.export.onnx_model_bytes`); an ``.onnx`` file is run as it is, its class
names read from its metadata.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import UsageError

DEFAULT_RECIPE = "densenet-bc-center"  # the kit's committed model of this recipe (python -m ferlib export)
RUNTIMES = ("torch", "onnx")


def default_model_path() -> Path:
    """The kit's committed real-data model of :data:`DEFAULT_RECIPE` with the largest budget (``models/``)."""
    from ..runs import RunKey, find_trained

    run = find_trained(DEFAULT_RECIPE, own=False)
    return run.checkpoint if run else RunKey(DEFAULT_RECIPE, "60min-cpu-2threads").model_path()


class OnnxPredictor:
    """An exported model (:func:`ferlib.train.export.export_onnx`) run by ONNX Runtime on the CPU."""

    runtime = "onnx"
    has_softmax_head = True

    def __init__(self, model: bytes | str | Path, *, source: str | None = None, threads: int | None = None):
        from ..train.export import onnx_session

        try:
            self.session = onnx_session(model, threads)
        except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types for a bad file
            raise UsageError(f"{source or model}: not an ONNX model ONNX Runtime can load ({e})",
                             "give a file written by python -m ferlib export RUN OUT.onnx") from None
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = self.session.get_inputs()
        if "class_names" not in meta or len(inputs) != 1 or inputs[0].type != "tensor(uint8)":
            raise UsageError(f"{source or model}: not an ONNX file written by ferlib (no class_names, or its input "
                             f"is not uint8 faces)", "export one with python -m ferlib export RUN OUT.onnx")
        self.class_names = json.loads(meta["class_names"])
        self.input_name = inputs[0].name
        self.meta = {"source": source or str(model), **meta}
        self.training = json.loads(meta.get("trained", "{}"))

    def predict_proba(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
        return self.session.run(None, {self.input_name: pixels})[0]


def _checkpoint_path(model_path) -> Path:
    from ..runs import resolve_model

    if not model_path:
        path = default_model_path()
        if not path.is_file():
            raise UsageError(f"the kit's default model {path} is missing",
                             f"train one (python -m ferlib train {DEFAULT_RECIPE} --minutes 60) and pass "
                             f"--model {DEFAULT_RECIPE} (its largest-budget run)")
        return path
    try:
        found = resolve_model(model_path)
    except LookupError:
        raise UsageError(f"{model_path}: no such checkpoint, run folder, run name or trained recipe",
                         "give a best.pt or epoch_NNN.pt, a run folder (runs/NAME), an .onnx file, "
                         "or a recipe you trained") from None
    path = found / "best.pt" if isinstance(found, Path) and found.is_dir() else getattr(found, "checkpoint", found)
    if not Path(path).is_file():
        raise UsageError(f"{path}: no such checkpoint", "give a best.pt or epoch_NNN.pt of a run folder")
    return Path(path)


def load_predictor(model_path: str | Path | None = None, *, runtime: str | None = None):
    """The model to predict with, on the CPU: a checkpoint file, a run folder, a run name or a recipe
    name (:func:`ferlib.runs.resolve_model`), or an ``.onnx`` file; default the kit's committed model.

    ``runtime``: ``torch`` (default for a checkpoint: a :class:`~ferlib.train.checkpoint.LoadedModel`) or
    ``onnx`` (an :class:`OnnxPredictor`; a checkpoint is exported in memory first).  An ``.onnx`` file
    runs on ONNX Runtime.
    """
    from ..train.checkpoint import load_model, training_of

    if runtime not in (None, *RUNTIMES):
        raise UsageError(f"unknown runtime {runtime!r}", f"use one of {', '.join(RUNTIMES)}")
    if model_path and str(model_path).lower().endswith(".onnx"):
        if runtime == "torch":
            raise UsageError(f"{model_path} is an ONNX file: it runs on ONNX Runtime, not PyTorch",
                             "drop --runtime torch, or give the checkpoint it was exported from")
        if not Path(model_path).is_file():
            raise UsageError(f"{model_path}: no such ONNX file", "export one: python -m ferlib export RUN OUT.onnx")
        return OnnxPredictor(Path(model_path), source=str(model_path))
    path = _checkpoint_path(model_path)
    try:
        model = load_model(path)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not model.has_softmax_head:
        raise UsageError(f"{path} is an embedding network without a softmax head",
                         "predict needs a classifier checkpoint (e.g. a densenet-bc run)")
    training = training_of(path)
    if runtime == "onnx":
        from ..train.export import onnx_metadata, onnx_model_bytes

        return OnnxPredictor(onnx_model_bytes(model, onnx_metadata(model, str(path), training)),
                             source=f"{path} (exported to ONNX in memory)")
    model.meta["source"], model.training, model.runtime = str(path), training, "torch"
    return model


def model_warning(model) -> str | None:
    """One line when the model's labels mean little: trained in the quick profile or on the synthetic faces."""
    t = getattr(model, "training", None) or {}
    why = [w for w, yes in (("in the quick profile (a smoke test)", t.get("profile") == "quick"),
                            ("on the SYNTHETIC faces, not FER-2013", t.get("synthetic"))) if yes]
    if not why:
        return None
    return (f"warning: {model.meta.get('source', 'this model')} was trained {' and '.join(why)}: its labels mean "
            f"little (use the kit's model, or train one: python -m ferlib train {DEFAULT_RECIPE} --minutes 60)")
