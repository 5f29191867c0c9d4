"""Checkpoints that resume a run and load on a CPU-only machine.

Two kinds, both plain dicts of tensors, numbers and strings (``torch.load(...,
weights_only=True)`` reads them; nothing is pickled code):

* ``latest.pt`` -- everything needed to resume: model, optimiser, scheduler and
  criterion state, the position in the epoch (``epoch``, ``next_batch``), the
  running sums of the epoch in progress, and the history so far.
* ``epoch_NNN.pt`` / ``best.pt`` -- a model alone, with what inference needs: the
  architecture's name and arguments, the normalisation statistics, input size,
  channels and class names.  The last five epoch files are kept (the densenet
  paper's checkpoint ensemble, §IV-C); ``best.pt`` is the epoch selected on PublicTest.

Files are written to a temporary name and renamed, so a run killed while saving
leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

FORMAT = "ferlib-checkpoint-v1"


def save_atomic(obj: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def state_dict_cpu(module: nn.Module) -> dict:
    """``module.state_dict()`` with every tensor on the CPU (so it loads anywhere)."""
    return {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in module.state_dict().items()}


def describe_model(*, model_name: str, model_kwargs: dict, normalizer: nn.Module, normalization: str,
                   eval_transform: dict, input_size: int, in_channels: int, class_names, **extra) -> dict:
    """The model-only checkpoint fields besides the weights: what inference needs.

    ``eval_transform`` is the training's :class:`~ferlib.data.transforms.BatchAugment`
    as a dict; inference applies its ``eval_transform`` exactly as evaluation did.
    """
    return {
        "format": FORMAT, "kind": "model",
        "model_name": model_name, "model_kwargs": dict(model_kwargs),
        "normalization": normalization, "normalizer": state_dict_cpu(normalizer),
        "eval_transform": dict(eval_transform),
        "input_size": int(input_size), "in_channels": int(in_channels), "class_names": list(class_names),
        **extra,
    }


def load_checkpoint_dict(path: str | Path) -> dict:
    """Read a ferlib checkpoint on the CPU, whatever device wrote it."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise ValueError(f"{path}: not a readable ferlib checkpoint ({e}); "
                         f"re-run training or copy the file again") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} file")
    return ckpt


@dataclass
class LoadedModel:
    """A trained model with its normalisation and evaluation transform, ready for inference."""

    model: nn.Module
    normalizer: nn.Module
    augment: object  # the training's BatchAugment: its eval_transform is applied at inference
    input_size: int
    in_channels: int
    class_names: list
    meta: dict

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def eval_source(self, pixels: np.ndarray, labels=None, batch_size: int = 256):
        """The in-order batch source evaluation used, over uint8 (N, 48, 48) faces (with the per-face side
        inputs the model takes, EmoNet's BOVW: computed from the pixels, cached from 500 faces up)."""
        from ..data.batches import DeviceBatchSource

        labels = np.zeros(len(pixels), dtype=np.int64) if labels is None else labels
        extra = None
        if getattr(self.model, "side_inputs", ()):
            from ..features.side_inputs import side_inputs_for

            extra = side_inputs_for(self.model.side_inputs, pixels=np.asarray(pixels))
        return DeviceBatchSource.for_eval(np.asarray(pixels), labels, batch_size=batch_size, augment=self.augment,
                                          normalize=self.normalizer, device=self.device, extra=extra)

    @property
    def has_softmax_head(self) -> bool:
        """False for an embedding-only network (DNNRL's T-DNN and DNNRL, read out by k-NN)."""
        return getattr(self.model, "classifier", True) is not None

    @torch.no_grad()
    def predict_outputs(self, pixels: np.ndarray, batch_size: int = 256, precision: str | None = None):
        """(logits, features) as CPU tensors -- the trainer's evaluation path (same transform, same code).

        ``logits`` is None for a model without a softmax head.
        """
        from ..evaluate.metrics import predict
        from .precision import autocast_dtype
        from .validation import predict_embeddings

        dtype = autocast_dtype(precision or self.meta.get("precision", "fp32"))
        source = self.eval_source(pixels, batch_size=batch_size)
        if not self.has_softmax_head:
            return None, predict_embeddings(self.model, source, autocast_dtype=dtype)[0]
        logits, _, feats = predict(self.model, source, autocast_dtype=dtype, return_features=True)
        return logits, feats

    def predict_proba(self, pixels: np.ndarray, batch_size: int = 256, precision: str | None = None) -> np.ndarray:
        """Class probabilities for uint8 (N, 48, 48) faces, exactly as training evaluated them."""
        if not self.has_softmax_head:
            raise ValueError(f"{self.meta.get('model_name', 'this model')} was trained without a softmax head "
                             "(an embedding read out by k-NN): use features() and "
                             "ferlib.evaluate.knn.knn_predict against embedded Training faces")
        return torch.softmax(self.predict_outputs(pixels, batch_size, precision)[0], 1).numpy()

    def features(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Deep features (the layer before the classifier) of uint8 faces."""
        return self.predict_outputs(pixels, batch_size)[1].numpy()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model, normaliser and evaluation transform of a checkpoint (model-only or resume kind)."""
    from ..data.normalize import normalizer_from_state
    from ..data.transforms import BatchAugment
    from ..models import build_model

    ckpt = load_checkpoint_dict(path)
    model = build_model(ckpt["model_name"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["model"])
    normalizer = normalizer_from_state(ckpt["normalization"], ckpt["normalizer"])
    model.to(device).eval()
    normalizer.to(device)
    aug = ckpt.get("eval_transform")
    if aug is None:  # written before the transform was stored: plain resize to the input size
        aug = {"out_size": ckpt["input_size"], "channels": ckpt["in_channels"]}
    augment = BatchAugment(**{k: (tuple(v) if k == "scale" else v) for k, v in aug.items()})
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "normalizer", "optimizer", "schedule", "criterion")}
    return LoadedModel(model, normalizer, augment, ckpt["input_size"], ckpt["in_channels"], class_names_of(ckpt), meta)


def class_names_of(ckpt: dict) -> list[str]:
    """The class names a checkpoint records, in its output order.

    Every checkpoint ferlib writes records them (``describe_model``).  A file without them
    (written by other code) gets FER-2013's names for 7 outputs, FER+'s for 8, else
    ``class_0 ...``: the label-order table in :mod:`ferlib.data.classes` says why guessing more is unsafe.
    """
    from ..data.classes import EMOTIONS, FERPLUS_CLASSES

    if ckpt.get("class_names"):
        return [str(c) for c in ckpt["class_names"]]
    k = int(ckpt.get("model_kwargs", {}).get("num_classes", 0))
    return list(EMOTIONS if k == len(EMOTIONS) else FERPLUS_CLASSES if k == len(FERPLUS_CLASSES)
                else (f"class_{i}" for i in range(k)))


def training_of(path: str | Path, ckpt: dict | None = None) -> dict:
    """What a model file says about its training: ``profile`` (quick, full, budget), ``synthetic``, ``data``.

    From, in order: the ``trained`` field an export writes; the run's ``latest.pt`` beside a
    ``best.pt`` / ``epoch_NNN.pt`` (its ``identity``); the run folder's name (``RECIPE-BUDGET[-synthetic]-seedS``,
    of the file or of the checkpoint it was exported from).  A value is None when nothing says.
    """
    from ..runs import BUDGET_PROFILE, RunKey

    path = Path(path)
    ckpt = load_checkpoint_dict(path) if ckpt is None else ckpt
    if isinstance(ckpt.get("trained"), dict):
        return dict(ckpt["trained"])
    identity = ckpt.get("identity")
    latest = path.parent / "latest.pt"
    if identity is None and latest.is_file() and latest.resolve() != path.resolve():
        try:
            identity = load_checkpoint_dict(latest).get("identity")
        except ValueError:
            identity = None
    if identity:
        data = identity.get("data") or {}
        return {"profile": BUDGET_PROFILE if identity.get("minutes") else identity.get("profile"),
                "synthetic": bool(data.get("synthetic")), "data": data.get("tag")}
    exported = ckpt.get("exported_from") or {}
    checked_on = str(exported.get("checked_on", ""))
    for name in (path.parent.name, path.stem, Path(str(exported.get("file", ""))).parent.name):
        if key := RunKey.parse(name):
            return {"profile": key.profile, "synthetic": key.synthetic or "SYNTHETIC" in checked_on,
                    "data": checked_on or None}
    return {"profile": None, "synthetic": True if "SYNTHETIC" in checked_on else None, "data": checked_on or None}


def prune_epoch_checkpoints(run_dir: Path, keep: int = 5) -> list[Path]:
    """Delete all but the last ``keep`` ``epoch_NNN.pt`` files of this run; returns those kept."""
    files = sorted(Path(run_dir).glob("epoch_*.pt"))
    for f in files[:-keep]:
        f.unlink()
    return files[-keep:]
