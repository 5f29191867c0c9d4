"""Model summaries: a layer table (Table I regenerated from the model), parameters, FLOPs.

Generic over models: the table hooks a chosen list of submodules; by default the
children of ``model.features`` (when it is an ``nn.Sequential``, as in ferlib's
DenseNet) followed by ``model.classifier``, otherwise the model's direct children.

FLOPs convention: :func:`count_flops` returns what ``torch.utils.flop_counter.FlopCounterMode``
counts, i.e. **FLOPs = 2 × multiply-adds** of convolutions and matrix products (a
multiply and an add each count as one FLOP), for **one** input image. BatchNorm, ReLU,
pooling and concatenation are not counted. :func:`count_macs` is half of it.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

__all__ = ["count_parameters", "count_flops", "count_macs", "layer_table", "variant_table"]

Size = Sequence[int]


def _rows_out(rows: list[dict], as_frame: bool):
    if as_frame:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is a ferlib dependency in practice
            return rows
        return pd.DataFrame(rows)
    return rows


def _first_param(model: nn.Module) -> torch.Tensor | None:
    return next(iter(model.parameters()), None)


def _example_input(model: nn.Module, input_size: Size, batch_size: int = 1) -> torch.Tensor:
    p = _first_param(model)
    device = p.device if p is not None else torch.device("cpu")
    dtype = p.dtype if p is not None and p.is_floating_point() else torch.float32
    return torch.zeros(batch_size, *input_size, device=device, dtype=dtype)


class _EvalNoGrad:
    """Context: model in eval mode (BN on a 1×1 map with batch 1 fails in train mode), no grad."""

    def __init__(self, model: nn.Module):
        self.model = model

    def __enter__(self):
        self.was_training = self.model.training
        self.model.eval()
        self.no_grad = torch.no_grad()
        self.no_grad.__enter__()

    def __exit__(self, *exc):
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)
        return False


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (each shared parameter counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model: nn.Module, input_size: Size = (1, 42, 42)) -> int:
    """FLOPs (= 2 × multiply-adds) of one forward pass on one ``input_size`` = (C, H, W) image."""
    from torch.utils.flop_counter import FlopCounterMode

    x = _example_input(model, input_size)
    with _EvalNoGrad(model):
        counter = FlopCounterMode(display=False)
        with counter:
            model(x)
    return int(counter.get_total_flops())


def count_macs(model: nn.Module, input_size: Size = (1, 42, 42)) -> int:
    """Multiply-adds of one forward pass on one image: ``count_flops // 2``."""
    return count_flops(model, input_size) // 2


def _default_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    feats = getattr(model, "features", None)
    if isinstance(feats, nn.Sequential):
        mods = [(f"features.{n}", m) for n, m in feats.named_children()]
        clf = getattr(model, "classifier", None)
        if isinstance(clf, nn.Module):
            mods.append(("classifier", clf))
        return mods
    return list(model.named_children())


def _size_str(shape: torch.Size) -> tuple[str, int | None]:
    """``"H×W"`` and channels for (B, C, H, W); a (B, C) vector is reported as 1×1."""
    if len(shape) == 4:
        return f"{shape[2]}×{shape[3]}", int(shape[1])
    if len(shape) == 2:
        return "1×1", int(shape[1])
    return "×".join(str(s) for s in shape[1:]), None


def layer_table(
    model: nn.Module,
    input_size: Size = (1, 42, 42),
    modules: Iterable[str] | None = None,
    as_frame: bool = True,
):
    """Table I regenerated from ``model``: one row per hooked submodule, in call order.

    Columns: ``layer`` (module path, ``features.`` stripped), ``type`` (class name),
    ``output_size`` (``"21×21"``; a pooled (B, C) vector shows as ``"1×1"``),
    ``channels``, ``output_shape`` (without batch), ``params`` (of that submodule).

    Args:
        model: any module; run once in eval mode on a zero image of ``input_size`` (C, H, W).
        modules: names from ``model.named_modules()`` to report; default described in the
            module docstring. Nested choices are allowed (rows come in call order).
        as_frame: return a pandas DataFrame (if pandas is importable), else a list of dicts.
    """
    named = dict(model.named_modules())
    if modules is None:
        chosen = _default_modules(model)
    else:
        chosen = []
        for name in modules:
            if name not in named:
                raise KeyError(f"{name!r} is not a submodule of {type(model).__name__}")
            chosen.append((name, named[name]))

    rows: list[dict] = []
    handles = []

    def make_hook(name: str, mod: nn.Module) -> Callable:
        def hook(_m, _inp, out):
            if isinstance(out, (tuple, list)):
                out = out[0]
            size, channels = _size_str(out.shape)
            label = name[len("features."):] if name.startswith("features.") else name
            rows.append(
                {
                    "layer": label,
                    "type": type(mod).__name__,
                    "output_size": size,
                    "channels": channels,
                    "output_shape": tuple(int(s) for s in out.shape[1:]),
                    "params": count_parameters(mod),
                }
            )

        return hook

    for name, mod in chosen:
        handles.append(mod.register_forward_hook(make_hook(name, mod)))
    try:
        with _EvalNoGrad(model):
            model(_example_input(model, input_size))
    finally:
        for h in handles:
            h.remove()
    return _rows_out(rows, as_frame)


def variant_table(
    input_size: Size = (1, 42, 42),
    variants: Mapping[str, Callable[..., nn.Module]] | None = None,
    as_frame: bool = True,
    **kwargs,
):
    """Parameters, FLOPs (2×MACs, per image), MACs and ``feature_dim`` for each variant.

    ``variants`` maps a name to a constructor (called with ``**kwargs``); default: the
    four DenseNets of the paper, ``ferlib.models.densenet.DENSENET_VARIANTS``.
    """
    if variants is None:
        from .densenet import DENSENET_VARIANTS

        variants = DENSENET_VARIANTS
    rows = []
    for name, ctor in variants.items():
        model = ctor(**kwargs)
        flops = count_flops(model, input_size)
        row = {
            "variant": name,
            "params": count_parameters(model),
            "flops": flops,
            "macs": flops // 2,
            "feature_dim": getattr(model, "feature_dim", None),
        }
        for attr in ("growth_rate", "bottleneck", "compression", "layers_per_block", "depth"):
            if hasattr(model, attr):
                row[attr] = getattr(model, attr)
        rows.append(row)
    return _rows_out(rows, as_frame)
