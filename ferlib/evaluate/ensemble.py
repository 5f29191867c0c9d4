"""Ensembles of checkpoints: the DenseNet-CL paper's last-five checkpoint ensemble (§IV-C).

The paper uses "the last five checkpoints of a run together for inference".  ferlib
averages their **softmax probabilities** (not logits): each checkpoint is a
calibrated-ish probability model, and the mean of probabilities is the ensemble's
predictive distribution; averaging logits instead would let the checkpoint with the
largest logit scale dominate.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from .metrics import predict


def last_checkpoints(run_dir: str | Path, k: int = 5) -> list[Path]:
    """The last ``k`` ``epoch_NNN.pt`` files of a run folder, oldest first."""
    return sorted(Path(run_dir).glob("epoch_*.pt"))[-k:]


def checkpoint_epoch(path: Path) -> int:
    return int(Path(path).stem.split("_")[1])


@torch.no_grad()
def mean_softmax(model: torch.nn.Module, state_dicts: Sequence[Mapping], sources: Mapping[str, object], *,
                 autocast_dtype=None) -> dict[str, np.ndarray]:
    """For each named in-order source, the mean over ``state_dicts`` of ``softmax(model(x))``.

    ``model`` is loaded with each state dict in turn (its own weights are not restored).
    """
    probs = {name: None for name in sources}
    for sd in state_dicts:
        model.load_state_dict(sd)
        for name, source in sources.items():
            logits, _ = predict(model, source, autocast_dtype=autocast_dtype)
            p = torch.softmax(logits, 1).numpy() / len(state_dicts)
            probs[name] = p if probs[name] is None else probs[name] + p
    return probs
