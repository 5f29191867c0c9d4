"""Numeric precision of training: ``fp32`` or ``bf16`` (autocast), ``auto`` chooses by hardware.

* CUDA: bf16 autocast with channels_last.
* CPU: bf16 autocast with channels_last where oneDNN has bf16 kernels for this CPU
  (AVX512-BF16 or AMX-BF16; detected, not assumed: ``torch.ops.mkldnn._is_mkldnn_bf16_supported``),
  else float32.  ``bench/cpu_paths.py`` measures each path side by side.
* ``fp32``: float32 everywhere -- bitwise-reproducible seeded CPU runs (tests use it).

Weights, optimiser state and the loss stay float32 (autocast casts matrix products
and convolutions only).

``compile`` (opt-in, ``--compile``): the training forward under ``torch.compile``
(inductor), which fuses the batch-norm / ReLU / concatenation chains between the
convolutions that eager mode runs one by one; what it gains and costs on the kit's CPU is
measured per network: faster for DenseNet-BC (``results/bench_cpu_paths_compile.json``), no
faster for EfficientNet-Lite0 or ResNet-50 (``results/bench_cpu_paths_emonet_compile.json``),
slower for chapter 08's VGG13 and light network (``results/bench_cpu_paths_ferplus_compile.json``; see
``results/README.md``).  The
compilation takes minutes on first use (cached on disk after that).  It stays opt-in: it needs a C++ compiler on
the CPU (or Triton on CUDA), the compilation eats a short run's budget, and the
kit's tests and bit-reproducible runs use eager float32.  Evaluation stays eager.

:func:`torch_threads` runs a block on a given number of CPU threads and restores the
count afterwards (tiny networks run fastest on one).
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys

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


def autocast_dtype(precision: str | None) -> torch.dtype | None:
    """The autocast dtype of a resolved precision: ``torch.bfloat16`` for ``"bf16"``, None (float32) otherwise.

    The one place in ferlib that maps a precision name to a dtype.
    """
    return torch.bfloat16 if precision == "bf16" else None


def autocast(precision: str | None, device: torch.device):
    """The training forward's context: ``torch.autocast`` in :func:`autocast_dtype`, or nothing for float32."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)


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


def compile_unavailable_reason(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot run on ``device`` here, or None when it can: inductor
    writes C++ for the CPU (a compiler on PATH) and Triton kernels for CUDA."""
    if device.type == "cuda":
        return None if importlib.util.find_spec("triton") else "torch.compile on CUDA needs Triton (pip install triton)"
    if device.type != "cpu":
        return f"torch.compile is not set up for device {device.type!r} in ferlib"
    compilers = _inductor_cpp_compilers()
    if not any(shutil.which(c) for c in compilers):
        return f"torch.compile on the CPU needs a C++ compiler on PATH ({' or '.join(compilers)})"
    return None


def _inductor_cpp_compilers() -> tuple[str, ...]:
    """The C++ compilers inductor would look for (``$CXX``, else ``g++``; ``cl`` on Windows)."""
    if sys.platform == "win32":
        return (os.environ.get("CXX", "cl"),)
    try:
        from torch._inductor import config
    except ImportError:
        return (os.environ.get("CXX") or "g++",)
    cxx = config.cpp.cxx if isinstance(config.cpp.cxx, (list, tuple)) else (config.cpp.cxx,)
    return tuple(c for c in cxx if c) or ("g++",)


class CompiledTrainingForward:
    """``model.forward_with_features`` under ``torch.compile``, for the training step.

    Full batches run the compiled graph (static shapes: the first batch size seen); a
    shorter batch -- the last of an epoch without ``drop_last`` -- runs eagerly, since
    recompiling for one batch an epoch costs more than it saves.  The module itself is
    untouched, so checkpoints, evaluation and ``state_dict`` keys are those of eager runs.
    """

    def __init__(self, model: torch.nn.Module):
        self.eager = model.forward_with_features
        self.compiled = torch.compile(self.eager, dynamic=False)
        self.batch_size: int | None = None

    def __call__(self, x: torch.Tensor, **side):
        if self.batch_size is None:
            self.batch_size = x.shape[0]
        return self.compiled(x, **side) if x.shape[0] == self.batch_size else self.eager(x, **side)
