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


def _cpu(state: dict) -> dict:
    return {k: (v.detach().cpu() if torch.is_tensor(v) else v) for k, v in state.items()}


def model_payload(model: nn.Module, *, model_name: str, model_kwargs: dict, normalizer: nn.Module,
                  normalization: str, input_size: int, in_channels: int, class_names, **extra) -> dict:
    """The model-only checkpoint dict (weights on the CPU)."""
    return {
        "format": FORMAT, "kind": "model",
        "model_name": model_name, "model_kwargs": dict(model_kwargs),
        "model": _cpu(model.state_dict()),
        "normalization": normalization, "normalizer": _cpu(normalizer.state_dict()),
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
    """A trained model with its normalisation, ready for inference on any device."""

    model: nn.Module
    normalizer: nn.Module
    input_size: int
    in_channels: int
    class_names: list
    meta: dict

    @torch.no_grad()
    def predict_proba(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Class probabilities for uint8 (N, 48, 48) faces, as training evaluated them."""
        from ..data.transforms import resize_batch, to_channels

        self.model.eval()
        device = next(self.model.parameters()).device
        out = []
        for i in range(0, len(pixels), batch_size):
            x = torch.as_tensor(np.asarray(pixels[i:i + batch_size]), device=device).float()
            x = self.normalizer(x.unsqueeze(1) if x.ndim == 3 else x)
            x = to_channels(resize_batch(x, self.input_size), self.in_channels)
            out.append(torch.softmax(self.model(x).float(), 1).cpu())
        return torch.cat(out).numpy()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model and normaliser of a checkpoint (model-only or resume kind)."""
    from ..data.normalize import normalizer_from_state
    from ..models.registry import build_model

    ckpt = load_checkpoint_dict(path)
    model = build_model(ckpt["model_name"], **ckpt["model_kwargs"])
    model.load_state_dict(ckpt["model"])
    normalizer = normalizer_from_state(ckpt["normalization"], ckpt["normalizer"])
    model.to(device).eval()
    normalizer.to(device)
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "normalizer", "optimizer", "scheduler", "criterion")}
    return LoadedModel(model, normalizer, ckpt["input_size"], ckpt["in_channels"], ckpt["class_names"], meta)


def prune_epoch_checkpoints(run_dir: Path, keep: int = 5) -> list[Path]:
    """Delete all but the last ``keep`` ``epoch_NNN.pt`` files of this run; returns those kept."""
    files = sorted(Path(run_dir).glob("epoch_*.pt"))
    for f in files[:-keep]:
        f.unlink()
    return files[-keep:]
