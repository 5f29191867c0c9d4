"""Numeric precision of training: ``fp32`` or ``bf16`` (autocast), ``auto`` chooses by hardware.

* CUDA: bf16 autocast with channels_last.
* CPU: bf16 autocast with channels_last where oneDNN has bf16 kernels for this CPU
  (AVX512-BF16 or AMX-BF16; detected, not assumed: ``torch.ops.mkldnn._is_mkldnn_bf16_supported``),
  else float32.  ``bench/cpu_paths.py`` measures each path side by side.
* ``fp32``: float32 everywhere -- bitwise-reproducible seeded CPU runs (tests use it).

Weights, optimiser state and the loss stay float32 (autocast casts matrix products
and convolutions only).

:func:`torch_threads` runs a block on a given number of CPU threads and restores the
count afterwards (tiny networks run fastest on one).
"""
from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_fast_bf16() -> bool:
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``"fp32"`` or ``"bf16"`` for ``device``; raises ValueError for an unknown name."""
    p = (precision or "auto").lower()
    if p not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if p != "auto":
        return p
    if device.type == "cuda":
        return "bf16"
    return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"


def autocast_dtype(precision: str):
    return torch.bfloat16 if precision == "bf16" else None


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run with ``n`` torch threads, then restore (tiny networks run fastest on one)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
