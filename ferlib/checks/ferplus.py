r"""Graders of lab 08 (FER+ with Sobel / Laplacian inputs and center loss, Sobel-Laplacian-CL).

The student writes three functions:

* ``stack_inputs(faces (N, H, W), channels) -> (N, k, H, W)``: the network's input of §III-B --
  the face, its Sobel gradient magnitude and its Laplacian, stacked in the order O, S, L, with
  chapter 01's operators and scaling (:mod:`ferlib.features.edges`: 3x3 Sobel, 4-neighbour
  Laplacian, OpenCV's reflect-101 border, ``|∇| / sqrt(20)`` and ``128 + Δ / 8``, no rounding);
* ``light_net_parameters(in_channels, num_classes) -> int``: the parameter count of chapter 08's
  light network, from its layer table (Table II's "0.36 million");
* ``total_loss(logits, features, labels, centers, lam) -> scalar tensor``: Eq. 3,
  ``L_softmax + λ L_C`` with the center term's sign fixed (Eq. 1 prints a minus) --
  mean cross-entropy and ``L_C = 1/(2m) Σ ||x_i - c_{y_i}||²`` (chapter 03's convention).

Each grader compares with ferlib's implementation and, on a mismatch, tests the answer against
the usual mistakes to say which one it is.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .core import call_student, fail, grader, passed

__all__ = ["check_stack_inputs", "check_light_net_parameters", "check_total_loss"]

STACK_ATOL = 1e-3  # float32 (the reference) against the student's float64


def _faces(seed: int = 0) -> np.ndarray:
    """Small test faces: a synthetic face, a constant one, a sharp edge in a corner, and noise (uint8 48x48)."""
    from ..data.synthetic import make_synthetic_faces

    rng = np.random.default_rng(seed)
    face = make_synthetic_faces(n_per_class=3, seed=seed).pixels[:2]
    flat = np.full((1, 48, 48), 91, np.uint8)
    edge = np.zeros((1, 48, 48), np.uint8)
    edge[0, :7, :5] = 255  # touches the border: the padding matters there
    noise = rng.integers(0, 256, (1, 48, 48), dtype=np.uint8)
    return np.concatenate([face, flat, edge, noise])


def _reference_stack(faces: np.ndarray, channels: str, *, pad="reflect", order=None, sobel_scale=None,
                     laplacian_offset=None, sobel_x_only=False, laplacian_kernel="4") -> np.ndarray:
    """The stack in float64, and (by keyword) the usual ways of getting it wrong."""
    from ..features.edges import LAPLACIAN_OFFSET, LAPLACIAN_SCALE, SOBEL_SCALE
    from ..models.input_channels import channel_set

    x = np.asarray(faces, dtype=np.float64)
    p = np.pad(x, ((0, 0), (1, 1), (1, 1)), mode=pad)

    def at(dy, dx):
        return p[:, 1 + dy:1 + dy + x.shape[1], 1 + dx:1 + dx + x.shape[2]]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    if laplacian_kernel == "4":
        lap = at(-1, 0) + at(1, 0) + at(0, -1) + at(0, 1) - 4 * x
    else:  # the 8-neighbour kernel
        lap = sum(at(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) - 9 * x
    mag = np.abs(gx) if sobel_x_only else np.sqrt(gx * gx + gy * gy)
    images = {"O": x, "S": mag * (SOBEL_SCALE if sobel_scale is None else sobel_scale),
              "L": (LAPLACIAN_OFFSET if laplacian_offset is None else laplacian_offset) + lap * LAPLACIAN_SCALE}
    names = order or channel_set(channels)
    return np.stack([images[c] for c in names], axis=1)


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


@grader(points=2)
def check_stack_inputs(fn: Callable) -> None:
    """``fn(faces uint8 (N, H, W), channels "O+S" | "O+L" | "O+S+L") -> float (N, k, H, W)``, order O, S, L."""
    import torch

    from ..models.input_channels import EdgeChannels

    name = "input channels (Sobel-Laplacian-CL §III-B)"
    faces = _faces()
    worst = 0.0
    for channels in ("O+S", "O+L", "O+S+L"):
        got = _np(call_student(fn, faces.copy(), channels))
        want = EdgeChannels(channels, offset=True).edge_images(
            torch.from_numpy(faces.astype(np.float32)).unsqueeze(1)).double().numpy()
        k = want.shape[1]
        if got.shape != want.shape:
            hint = ("channel first: np.stack([...], axis=1) gives (N, k, H, W)" if got.shape == (
                len(faces), *faces.shape[1:], k) else f"{channels} has {k} channels: the face first, then S and/or L")
            fail(name, f"{channels}: shape {got.shape}, expected {want.shape}", hint)
        err = float(np.max(np.abs(got - want)))
        if err <= STACK_ATOL:
            worst = max(worst, err)
            continue
        variants = [
            (dict(order=tuple(reversed(channels.split("+")))), "the channels are in the wrong order: O first, then S, then L"),
            (dict(order=("O", "L", "S")), "the channels are in the wrong order: O first, then S, then L"),
            (dict(pad="constant"), "the border: OpenCV's default is BORDER_REFLECT_101, np.pad(..., mode='reflect'), "
                                   "not zeros (the faces touching the border differ)"),
            (dict(pad="edge"), "the border: reflect-101 (np.pad mode='reflect') mirrors without repeating the edge "
                               "pixel; mode='edge' repeats it"),
            (dict(pad="symmetric"), "the border: reflect-101 is np.pad mode='reflect'; 'symmetric' repeats the edge pixel"),
            (dict(sobel_scale=1.0), "the Sobel magnitude is divided by sqrt(20) (edges.SOBEL_SCALE) so it fits 0..255"),
            (dict(laplacian_offset=0.0), "the Laplacian image is 128 + Laplacian / 8: the +128 is missing"),
            (dict(sobel_x_only=True), "the Sobel image is the magnitude sqrt(gx^2 + gy^2) of both derivatives, not |gx|"),
            (dict(laplacian_kernel="8"), "the Laplacian is the 4-neighbour kernel [0 1 0; 1 -4 1; 0 1 0] "
                                         "(cv2.Laplacian with ksize=1), not the 8-neighbour one"),
        ]
        hint = "compare each channel with ferlib.features.edges.sobel_image / laplacian_image (before their rounding)"
        for kwargs, why in variants:
            alt = _reference_stack(faces, channels, **kwargs)
            if alt.shape == got.shape and np.allclose(got, alt, atol=STACK_ATOL):
                hint = why
                break
        else:
            if np.allclose(got, np.rint(want), atol=0.5 + STACK_ATOL) and not np.allclose(got, want, atol=STACK_ATOL):
                hint = "do not round or cast to uint8: the network takes the float images"
            elif np.abs(got[:, 0] - want[:, 0]).max() > STACK_ATOL:
                hint = "the first channel is the face itself, as float"
        fail(name, f"{channels}: max abs difference {err:.3g} from the reference (tolerance {STACK_ATOL:g})", hint)
    passed(name, f"O+S, O+L and O+S+L on 5 faces (one constant, one edge at the border) match edges.py's images "
                 f"before rounding (max abs difference {worst:.2g}, tolerance {STACK_ATOL:g}); the constant face has "
                 f"S = 0 and L = 128")


def _count(c: int, k: int, *, bn=True, conv_bias=False, dense_bias=False, output_bias=True, full_depthwise=False,
           extra_channel_weights=True) -> int:
    """The light network's parameters from its layer table, and (by keyword) the usual ways of miscounting them."""
    from ..models.light_net import LIGHT_NET_BLOCKS, LIGHT_NET_FEATURES

    first, f = LIGHT_NET_BLOCKS[0][0], LIGHT_NET_FEATURES
    total = 9 * (c if extra_channel_weights else 1) * first + (2 * first if bn else 0) + (first if conv_bias else 0)
    width = first
    for b, widths in enumerate(LIGHT_NET_BLOCKS):
        for i, out in enumerate(widths):
            if b == 0 and i == 0:
                continue
            total += (9 * width * width if full_depthwise else 9 * width) + width * out
            total += (2 * width + 2 * out) if bn else 0
            total += (width + out) if conv_bias else 0
            width = out
    total += width * f + (2 * f if bn else 0) + (f if dense_bias else 0)
    return total + f * k + (k if output_bias else 0)


@grader(points=1)
def check_light_net_parameters(fn: Callable) -> None:
    """``fn(in_channels, num_classes) -> int``: the light network's parameters, from its layer table."""
    from ..models import build_model, count_parameters

    name = "light network parameters (Table II: 0.36 M)"
    cases = [(1, 8), (2, 8), (3, 8), (1, 7)]
    results = []
    for c, k in cases:
        got = call_student(fn, c, k)
        try:
            got_int = int(got)
        except (TypeError, ValueError):
            fail(name, f"returned {got!r}, expected a whole number", "return an int: the sum of the layers' counts")
        want = count_parameters(build_model("light-net", num_classes=k, in_channels=1,
                                            channels={1: "O", 2: "O+S", 3: "O+S+L"}[c]))
        results.append((c, k, got_int, want))
    for c, k, got, want in results:
        if got == want:
            continue
        variants = [
            (dict(bn=False), "BatchNorm has 2 parameters per channel (scale and shift): after the first convolution, "
                             "after each depthwise and each pointwise convolution, and after the dense layer"),
            (dict(conv_bias=True), "the convolutions have no bias: BatchNorm follows each of them"),
            (dict(dense_bias=True), "the 512-unit dense layer has no bias: its BatchNorm shifts it"),
            (dict(output_bias=False), "the output layer has a bias, one per class"),
            (dict(full_depthwise=True), "a depthwise 3x3 convolution has 9 weights per channel (groups = channels), "
                                        "not 9 x C_in x C_out"),
            (dict(extra_channel_weights=False), "each input channel adds 9 x 32 weights to the first convolution"),
        ]
        hint = next((why for kw, why in variants if all(_count(cc, kk, **kw) == g for cc, kk, g, _ in results)),
                    "go through the table layer by layer: the 3x3 convolution (9·C_in·32) and its BatchNorm, each DS "
                    "block (depthwise 9·C, BN 2·C, pointwise C·C', BN 2·C'), the dense layer 256·512 and BN 2·512, "
                    "the output 512·K + K")
        fail(name, f"in_channels={c}, num_classes={k}: got {got:,}, expected {want:,} (difference {got - want:+,})",
             hint)
    passed(name, "exact for 1, 2, 3 input channels and 7 or 8 classes: " + ", ".join(
        f"{c} channel(s) {w:,}" for c, k, _, w in results if k == 8) + f" -- {results[0][3] / 1e6:.2f} M, as Table II "
        "says")


@grader(points=2)
def check_total_loss(fn: Callable) -> None:
    """``fn(logits (m, K), features (m, d), labels (m,), centers (K, d), lam) -> scalar``: Eq. 3 with the sign fixed."""
    import torch
    import torch.nn.functional as F

    name = "total loss (Eq. 3, the center term's sign fixed)"
    g = torch.Generator().manual_seed(8)
    results = []
    for lam in (0.05, 1.0, 0.5):
        m, k, d = 12, 8, 5
        logits = torch.randn(m, k, generator=g, dtype=torch.float64)
        features = (3 * torch.randn(m, d, generator=g, dtype=torch.float64)).requires_grad_(True)
        labels = torch.randint(0, k, (m,), generator=g)
        centers = torch.randn(k, d, generator=g, dtype=torch.float64)
        got = call_student(fn, logits, features, labels, centers.clone(), lam)
        if not torch.is_tensor(got) or got.numel() != 1:
            fail(name, f"returned {type(got).__name__} {getattr(got, 'shape', '')}, expected a scalar tensor",
                 "return ce + lam * lc as one torch number (keep it a tensor: autograd needs it)")
        if not got.requires_grad:
            fail(name, "the result does not depend on the features through autograd",
                 "compute with torch operations on `features` (no .detach(), .item() or NumPy in between)")
        (grad,) = torch.autograd.grad(got, features)
        ce = F.cross_entropy(logits, labels)
        sq = ((features.detach() - centers[labels]) ** 2).sum()
        results.append((lam, m, float(got.detach()), grad, ce.item(), sq.item(), features.detach(), centers[labels]))
    for lam, m, got, grad, ce, sq, x, c in results:
        want = ce + lam * sq / (2 * m)
        want_grad = lam * (x - c) / m
        if abs(got - want) <= 1e-9 * max(1.0, abs(want)) and torch.allclose(grad, want_grad, atol=1e-10):
            continue
        toward = float(((-grad) * (c - x)).sum())
        if abs(got - (ce - lam * sq / (2 * m))) <= 1e-9 * max(1.0, abs(want)) or toward < 0:
            hint = ("the center term has the wrong sign -- Eq. 1 as printed: minimising L_S - λ Σ||x - c||² pushes every "
                    "feature AWAY from its center (the gradient step moves x along x - c) and the loss has no minimum. "
                    "Add λ L_C")
        elif abs(got - (ce + lam * sq / m)) <= 1e-9 * max(1.0, abs(want)):
            hint = "L_C has a 1/2 in front (Wen et al., chapter 03): 1/(2m) Σ ||x_i - c_(y_i)||²"
        elif abs(got - (ce + lam * sq / 2)) <= 1e-9 * max(1.0, abs(want)):
            hint = "average over the batch: ferlib's L_C (and the cross-entropy) is a mean, 1/(2m) Σ, not a sum"
        elif abs(got - ce) <= 1e-9 * max(1.0, abs(ce)):
            hint = "the center term is missing: add lam * L_C"
        else:
            hint = "L = F.cross_entropy(logits, labels) + lam * 0.5 * ((features - centers[labels]) ** 2).sum(1).mean()"
        fail(name, f"λ = {lam:g}: got {got:.6g}, expected {want:.6g}; the step -dL/dx moves features "
                   f"{'toward' if toward > 0 else 'away from'} their centers", hint)
    passed(name, "value and gradient agree for λ = 0.05, 1, 0.5 (tolerance 1e-9 relative); the gradient step moves "
                 "every feature toward its own center")
