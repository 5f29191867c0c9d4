"""Graders of lab 02 (DenseNet from blocks): bottleneck layer, transition, dense block, and
DenseNet-CL Table I's DenseNet-BC assembled from the student's block and transition.

    from ferlib.checks.densenet import check_bottleneck, check_transition, check_dense_block, check_densenet_bc

Each grader builds the student's module and ferlib's reference
(:mod:`ferlib.models.densenet`) for several settings and checks, in this order:

1. the module can be built and run (a stub raising ``NotImplementedError`` fails with
   "not implemented yet"; any other error becomes a :class:`CheckFailed` with a hint);
2. the output shape (channels first, then height × width);
3. the number of parameters, equal to the reference's;
4. the outputs, equal to the reference's (float64, tolerance printed) after the
   reference's ``state_dict`` -- with randomised BatchNorm statistics, so that BN cannot
   hide -- is copied into the student's module, in eval mode and in training mode.

Weights are copied **by kind and shape, in the order the student's module registers
them**, not by name: the i-th reference tensor of a given kind (``weight``, ``bias``,
``running_mean``, ...) and shape goes to the student's i-th tensor of the same kind and
shape. So attribute names are free; what must match is the set of layers (``nn.BatchNorm2d``
and ``nn.Conv2d(..., bias=False)``), their sizes, and the order of operations in ``forward``.

Conventions, the same as ferlib's: a (bottleneck) layer returns only its ``k`` new
feature maps H_l(x); the dense block does the concatenation ``[x_0, …, x_{l−1}]`` on the
channel axis (dim 1), input first.
"""
from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable

import torch
from torch import nn

from .core import fail, grader, not_implemented, passed

__all__ = ["check_bottleneck", "check_transition", "check_dense_block", "check_densenet_bc", "copy_by_kind_and_shape"]

ATOL = 1e-9  # float64 throughout: identical operations agree to ~1e-15; order of sums to ~1e-13

COPY_HINT = ("the check copies ferlib's weights into your module by kind and shape, in the order your "
             "__init__ registers them (names do not matter): use nn.BatchNorm2d and nn.Conv2d(..., bias=False) "
             "modules, one per operation of the composite function")


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _kind(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def copy_by_kind_and_shape(reference: nn.Module, student: nn.Module) -> None:
    """Load ``reference``'s state into ``student`` matching entries by (kind, shape) and order.

    The kind is the last part of a state-dict key (``weight``, ``bias``, ``running_mean``,
    ``running_var``, ``num_batches_tracked``). If the kinds cannot be matched (e.g. the
    student created bare ``nn.Parameter`` s with other names), entries are matched by
    order and shape alone. Raises :class:`CheckFailed` when no one-to-one match exists.
    """
    ref, mine = reference.state_dict(), student.state_dict()

    def groups(sd, key):
        g = defaultdict(list)
        for name, t in sd.items():
            g[key(name, t)].append(name)
        return g

    def by_kind(name, t):
        return _kind(name), tuple(t.shape)

    mapping = {}
    g_ref, g_mine = groups(ref, by_kind), groups(mine, by_kind)
    if {k: len(v) for k, v in g_ref.items()} == {k: len(v) for k, v in g_mine.items()}:
        for key, names in g_ref.items():
            mapping.update(zip(g_mine[key], names))
    elif len(ref) == len(mine) and all(a.shape == b.shape for a, b in zip(ref.values(), mine.values())):
        mapping = dict(zip(mine, ref))
    else:
        want = ", ".join(f"{_kind(n)}{tuple(t.shape)}" for n, t in ref.items() if _kind(n) != "num_batches_tracked")
        got = ", ".join(f"{_kind(n)}{tuple(t.shape)}" for n, t in mine.items() if _kind(n) != "num_batches_tracked")
        fail("weights", f"your module's tensors do not match the reference's one to one.\n"
                         f"      reference: {want}\n      yours:     {got}", COPY_HINT)
    student.load_state_dict({mine_name: ref[ref_name].clone() for mine_name, ref_name in mapping.items()})


def _randomise(module: nn.Module, seed: int) -> None:
    """Random conv weights (already), and random BN affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
                m.bias.copy_(0.3 * torch.randn(n, generator=g, dtype=torch.float64))
                m.running_mean.copy_(0.3 * torch.randn(n, generator=g, dtype=torch.float64))
                m.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.5)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, generator=g)


def _build(name: str, make: Callable, *args) -> nn.Module:
    what = getattr(make, "__name__", "your class")
    try:
        module = make(*args)
    except NotImplementedError:
        not_implemented(f"{what}.__init__")
    except Exception as e:  # noqa: BLE001 - any error in the student's constructor becomes a hint
        fail(name, f"{what}{args} raised {type(e).__name__}: {e}",
              "read the traceback: run the constructor yourself in a cell with these arguments")
    if not isinstance(module, nn.Module):
        fail(name, f"{what}{args} returned {type(module).__name__}, not an nn.Module",
              "your class must subclass torch.nn.Module and call super().__init__()")
    return module.double()


def _forward(name: str, module: nn.Module, x: torch.Tensor, cat_hint: bool = False) -> torch.Tensor:
    x_before = x.clone()
    try:
        out = module(x)
    except NotImplementedError:
        not_implemented(f"{type(module).__name__}.forward")
    except Exception as e:  # noqa: BLE001
        hint = "read the traceback: run your module on a tensor of this shape in a cell"
        if cat_hint or "Sizes of tensors must match" in str(e):
            hint = ("a (B, C, H, W) tensor has its channels on axis 1: concatenate with torch.cat([x, new], dim=1); "
                    "on any other axis the sizes do not fit (or the next layer gets the wrong number of channels)")
        fail(name, f"forward on an input of shape {tuple(x.shape)} raised {type(e).__name__}: {e}", hint)
    if not isinstance(out, torch.Tensor):
        fail(name, f"forward returned {type(out).__name__}, expected a tensor", "return the output tensor")
    if not torch.equal(x, x_before):
        fail(name, "forward changed its input in place",
              "an in-place op (e.g. nn.ReLU(inplace=True) or x += ...) was applied to the input itself; "
              "in a dense block the input is also part of the output, so it must stay intact: apply BN first "
              "(it makes a new tensor), or use inplace=False")
    return out


def _compare(name: str, got: torch.Tensor, want: torch.Tensor, hint: str) -> float:
    err = float((got.detach() - want.detach()).abs().max())
    if not torch.allclose(got.detach(), want.detach(), atol=ATOL, rtol=0):
        fail(name, f"max abs difference {err:.3g} from the reference (tolerance {ATOL:g})", hint)
    return err


def _values(name: str, ref: nn.Module, mine: nn.Module, x: torch.Tensor, hint: str,
            modes: tuple[str, ...] = ("eval", "train")) -> float:
    """Copy weights, compare in eval mode (running statistics) and train mode (batch statistics)."""
    copy_by_kind_and_shape(ref, mine)
    worst = 0.0
    for mode in modes:
        ref.train(mode == "train")
        mine.train(mode == "train")
        with torch.no_grad():
            want = ref(x.clone())
            got = _forward(name, mine, x.clone())
        worst = max(worst, _compare(f"{name} ({mode} mode)", got, want, hint))
    return worst


def _check_params(name: str, ref: nn.Module, mine: nn.Module, hint: str) -> None:
    n_ref, n_mine = _n_params(ref), _n_params(mine)
    if n_mine != n_ref:
        fail(name, f"{n_mine:,} parameters, the reference has {n_ref:,} ({n_mine - n_ref:+,})", hint)


def _input(seed: int, shape) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


# ------------------------------------------------------------------------------------------
@grader(points=1)
def check_bottleneck(cls: Callable) -> None:
    """``cls(in_channels, growth_rate)``: BN-ReLU-Conv1×1(4k)-BN-ReLU-Conv3×3(k), returns the k new maps.

    Settings (in_channels, k): (24, 12) is the first layer of Table I's DenseNet-BC; the
    others are small and deliberately odd. Never in_channels = 4k, so that the two BNs
    have different sizes and the weight copy is unambiguous.
    """
    from ..models.densenet import BottleneckLayer

    name = "bottleneck layer"
    settings = [(24, 12), (7, 3), (10, 2), (33, 5)]
    worst = 0.0
    for i, (c, k) in enumerate(settings):
        label = f"{name} (in_channels={c}, k={k})"
        torch.manual_seed(i)
        ref = BottleneckLayer(c, k).double()
        _randomise(ref, seed=100 + i)
        mine = _build(label, cls, c, k)
        x = _input(i, (4, c, 6, 5))
        ref.eval()
        mine.eval()
        with torch.no_grad():
            out = _forward(label, mine, x)
        want_shape = (4, k, 6, 5)
        if tuple(out.shape) != want_shape:
            if out.ndim == 4 and out.shape[1] == c + k:
                fail(label, f"output shape {tuple(out.shape)}, expected {want_shape}",
                      "return only the k new maps H(x); the dense block concatenates [x, H(x)] (ferlib's convention)")
            if out.ndim == 4 and out.shape[1] != k:
                fail(label, f"output has {out.shape[1]} channels, expected k = {k}",
                      "the 1×1 conv makes 4k maps, the 3×3 conv makes k")
            fail(label, f"output shape {tuple(out.shape)}, expected {want_shape}",
                  "the 3×3 conv needs padding=1 (and stride 1) to keep height and width; the 1×1 conv has no padding")
        _check_params(label, ref, mine,
                      "BN(in) → ReLU → Conv1×1(in → 4k, bias=False) → BN(4k) → ReLU → Conv3×3(4k → k, padding=1, "
                      "bias=False): a missing conv or BN, a bias, or a width other than 4k changes the count")
        worst = max(worst, _values(label, ref, mine, x,
                                   "same parameters, different output: check the order BN → ReLU → conv, twice, "
                                   "that each BN normalises the tensor just before it, and no ReLU is missing"))
    passed(name, f"{len(settings)} settings: shape (B, k, H, W), parameter counts equal to ferlib's, "
                  f"outputs equal in eval and train mode, max abs difference {worst:.2g} (tolerance {ATOL:g})")


@grader(points=1)
def check_transition(cls: Callable) -> None:
    """``cls(in_channels, compression)``: BN-ReLU-Conv1×1 to ⌊θ·p⌋ maps, then 2×2 average pooling, stride 2.

    Settings (p, θ, size): Table I's first DenseNet-BC transition (168, 0.5, 21×21 → 10×10),
    θ = 1, and p with θ·p not an integer, where ⌊·⌋, round() and ⌈·⌉ differ.
    """
    from ..models.densenet import Transition

    name = "transition"
    settings = [(168, 0.5, 21), (24, 1.0, 10), (27, 0.5, 7), (10, 0.7, 8), (37, 0.3, 5)]
    worst = 0.0
    for i, (p, theta, size) in enumerate(settings):
        label = f"{name} (in_channels={p}, θ={theta}, {size}×{size})"
        torch.manual_seed(i)
        ref = Transition(p, theta).double()
        _randomise(ref, seed=200 + i)
        mine = _build(label, cls, p, theta)
        x = _input(10 + i, (3, p, size, size))
        ref.eval()
        mine.eval()
        with torch.no_grad():
            out = _forward(label, mine, x)
        want_c, want_hw = math.floor(theta * p), size // 2
        if out.ndim != 4 or out.shape[0] != 3:
            fail(label, f"output shape {tuple(out.shape)}, expected (3, {want_c}, {want_hw}, {want_hw})",
                  "a transition keeps the batch axis and returns a (B, C, H, W) map")
        if out.shape[1] != want_c:
            fail(label, f"{out.shape[1]} output channels, expected ⌊θ·p⌋ = ⌊{theta}·{p}⌋ = {want_c}",
                  "the 1×1 conv makes floor(θ·p) maps: int(math.floor(compression * in_channels)); "
                  "not round() and not ceil()")
        if tuple(out.shape[2:]) != (want_hw, want_hw):
            fail(label, f"output is {out.shape[2]}×{out.shape[3]}, expected {want_hw}×{want_hw}",
                  "end with 2×2 average pooling, stride 2 (nn.AvgPool2d(kernel_size=2, stride=2)); "
                  "it halves height and width, rounding down (21 → 10)")
        _check_params(label, ref, mine,
                      "BN(p) → ReLU → Conv1×1(p → ⌊θ·p⌋, bias=False) → AvgPool2×2: the BN before the conv has "
                      "2p parameters, the conv p·⌊θ·p⌋; pooling has none")
        worst = max(worst, _values(label, ref, mine, x,
                                   "same parameters, different output: the order is BN → ReLU → conv 1×1 → "
                                   "*average* pooling (not max pooling), as in ferlib's Transition"))
    passed(name, f"{len(settings)} settings: ⌊θ·p⌋ channels, halved size, parameter counts equal to ferlib's, "
                  f"outputs equal in eval and train mode, max abs difference {worst:.2g} (tolerance {ATOL:g})")


@grader(points=2)
def check_dense_block(cls: Callable) -> None:
    """``cls(num_layers, in_channels, growth_rate)``: a block of bottleneck layers, x_l = H_l([x_0, …, x_{l−1}]).

    Output: ``[x_0, x_1, …, x_L]`` concatenated on the channel axis, input first, so
    ``in_channels + num_layers·k`` channels whose first ``in_channels`` are the input.
    """
    from ..models.densenet import DenseBlock

    name = "dense block"
    settings = [(3, 8, 4), (2, 5, 5), (4, 24, 12)]
    worst = 0.0
    for i, (n_layers, c0, k) in enumerate(settings):
        label = f"{name} (L={n_layers}, k0={c0}, k={k})"
        torch.manual_seed(i)
        ref = DenseBlock(n_layers, c0, k, bottleneck=True).double()
        _randomise(ref, seed=300 + i)
        mine = _build(label, cls, n_layers, c0, k)
        x = _input(20 + i, (2, c0, 5, 6))
        ref.eval()
        mine.eval()
        with torch.no_grad():
            out = _forward(label, mine, x, cat_hint=True)
        want = (2, c0 + n_layers * k, 5, 6)
        if tuple(out.shape) != want:
            if tuple(out.shape) == (2, k, 5, 6):
                fail(label, f"output shape {tuple(out.shape)}, expected {want}",
                      "you returned only the last layer's k maps: append each layer's output to the running "
                      "concatenation, x = torch.cat([x, layer(x)], dim=1), and return x")
            fail(label, f"output shape {tuple(out.shape)}, expected {want} = (B, k0 + L·k, H, W)",
                  "concatenate on the channel axis, dim=1 of (B, C, H, W) (dim=0 stacks images, dim=2 rows), "
                  "and build layer l as MyBottleneck(in_channels + l * growth_rate, growth_rate)")
        if not torch.equal(out[:, :c0], x):
            fail(label, "the first k0 output channels are not the block's input",
                  "the input comes first and is passed on unchanged: torch.cat([x, layer(x)], dim=1), "
                  "not torch.cat([layer(x), x], dim=1)")
        _check_params(label, ref, mine,
                      "layer l (l = 0, 1, …) must be a bottleneck layer with k0 + l·k input channels")
        worst = max(worst, _values(label, ref, mine, x,
                                   "each layer must see *all* earlier maps [x_0, …, x_{l−1}] (the running "
                                   "concatenation), not just the previous layer's output"))
    passed(name, f"{len(settings)} settings: k0 + L·k channels on axis 1, input first and unchanged, "
                  f"outputs equal to ferlib's DenseBlock, max abs difference {worst:.2g} (tolerance {ATOL:g})")


@grader(points=2)
def check_densenet_bc(block_cls: Callable, transition_cls: Callable) -> None:
    """DenseNet-CL Table I's DenseNet-BC (L = 12, k = 12, θ = 0.5) assembled from the student's block and transition.

    The stem (3×3 conv, 2k filters, stride 2), the last transition and the classifier are
    ferlib's; the three dense blocks and two transitions are ``block_cls(num_layers,
    in_channels, growth_rate)`` and ``transition_cls(in_channels, compression)``. Checks the
    DenseNet-CL Table I output sizes on a 42×42 input, the parameter count of ferlib's ``densenet_bc()``
    and, after copying its weights, the same logits. Prints the regenerated layer table.
    """
    from ..models.densenet import PAPER_INPUT_SIZE, LastTransition, densenet_bc
    from ..models.summary import layer_table

    name = "DenseNet-BC from your blocks"
    L, k, theta = 12, 12, 0.5
    torch.manual_seed(0)
    ref = densenet_bc().double()
    _randomise(ref, seed=400)

    class Assembled(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential()
            c = 2 * k
            self.features.add_module("conv", nn.Conv2d(1, c, 3, stride=2, padding=1, bias=False))
            for b in (1, 2, 3):
                self.features.add_module(f"denseblock{b}", _build(f"{name}: dense block {b}", block_cls, L, c, k))
                c += L * k
                if b < 3:
                    self.features.add_module(f"transition{b}",
                                             _build(f"{name}: transition {b}", transition_cls, c, theta))
                    c = math.floor(theta * c)
            self.features.add_module("last_transition", LastTransition(c))
            self.classifier = nn.Linear(c, 7)

        def forward(self, x):
            return self.classifier(self.features(x))

    mine = Assembled().double()
    x = _input(42, (2, 1, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE))
    try:
        table = layer_table(mine, (1, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE), as_frame=False)
    except NotImplementedError:
        not_implemented("your block or transition's forward")
    except Exception as e:  # noqa: BLE001
        fail(name, f"a forward pass on a {PAPER_INPUT_SIZE}×{PAPER_INPUT_SIZE} image raised {type(e).__name__}: {e}",
              "run check_dense_block and check_transition first; both must pass")
    want = layer_table(ref, (1, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE), as_frame=False)
    for got_row, want_row in zip(table, want):
        if got_row["output_shape"] != want_row["output_shape"]:
            fail(name, f"{got_row['layer']} outputs {got_row['output_shape']}, "
                        f"Table I wants {want_row['output_shape']}",
                  "run check_dense_block and check_transition first; both must pass")
    _check_params(name, ref, mine, "run check_bottleneck, check_dense_block and check_transition first")
    worst = _values(name, ref, mine, x, "run check_bottleneck, check_dense_block and check_transition first",
                    modes=("eval",))
    print(f"{'layer':<16}{'output size':>12}{'channels':>10}{'params':>10}")
    for row in table:
        print(f"{row['layer']:<16}{row['output_size']:>12}{row['channels']:>10}{row['params']:>10,}")
    passed(name, f"Table I sizes on {PAPER_INPUT_SIZE}×{PAPER_INPUT_SIZE}, {_n_params(mine):,} parameters as in "
                  f"ferlib's densenet_bc(), logits equal, max abs difference {worst:.2g} (tolerance {ATOL:g})")
