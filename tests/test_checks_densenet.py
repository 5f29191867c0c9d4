"""Lab 02 graders: pass on correct modules (ferlib's and hand-written ones), fail on blanks and planted bugs."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ferlib.checks.core import CheckFailed
from ferlib.checks.densenet import check_bottleneck, check_dense_block, check_transition, copy_by_kind_and_shape
from ferlib.models.densenet import BottleneckLayer, DenseBlock, Transition


# --- correct implementations ------------------------------------------------------------------
class RefBottleneck(BottleneckLayer):
    def __init__(self, in_channels, growth_rate):
        super().__init__(in_channels, growth_rate)


class RefTransition(Transition):
    def __init__(self, in_channels, compression):
        super().__init__(in_channels, compression)


class RefBlock(DenseBlock):
    def __init__(self, num_layers, in_channels, growth_rate):
        super().__init__(num_layers, in_channels, growth_rate, bottleneck=True)


class SequentialBottleneck(nn.Module):
    """Other names, an nn.Sequential and convs registered before BNs: still correct."""

    def __init__(self, in_channels, growth_rate):
        super().__init__()
        self.c1 = nn.Conv2d(in_channels, 4 * growth_rate, 1, bias=False)
        self.c2 = nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.b1, self.b2 = nn.BatchNorm2d(in_channels), nn.BatchNorm2d(4 * growth_rate)

    def forward(self, x):
        h = self.c1(torch.relu(self.b1(x)))
        return self.c2(torch.relu(self.b2(h)))


class SequentialTransition(nn.Module):
    def __init__(self, in_channels, compression):
        super().__init__()
        out = int(compression * in_channels)
        self.f = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out, 1, bias=False),
                               nn.AvgPool2d(2))

    def forward(self, x):
        return self.f(x)


class ListBlock(nn.Module):
    def __init__(self, num_layers, in_channels, growth_rate, layer=SequentialBottleneck):
        super().__init__()
        self.layers = nn.ModuleList(layer(in_channels + i * growth_rate, growth_rate) for i in range(num_layers))

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, 1)))
        return torch.cat(features, 1)


@pytest.mark.parametrize("cls", [RefBottleneck, SequentialBottleneck])
def test_bottleneck_passes_on_correct(cls, capsys):
    check_bottleneck(cls)
    assert "PASS bottleneck layer" in capsys.readouterr().out


@pytest.mark.parametrize("cls", [RefTransition, SequentialTransition])
def test_transition_passes_on_correct(cls, capsys):
    check_transition(cls)
    assert "PASS transition" in capsys.readouterr().out


@pytest.mark.parametrize("cls", [RefBlock, ListBlock])
def test_dense_block_passes_on_correct(cls, capsys):
    check_dense_block(cls)
    assert "PASS dense block" in capsys.readouterr().out


# --- blanks -------------------------------------------------------------------------------------
class BlankInit(nn.Module):
    def __init__(self, a, b):
        super().__init__()
        raise NotImplementedError()


class BlankForward(nn.Module):
    def __init__(self, *args):
        super().__init__()

    def forward(self, x):
        raise NotImplementedError()


class BlankBlock(nn.Module):
    def __init__(self, num_layers, in_channels, growth_rate):
        super().__init__()
        raise NotImplementedError()


@pytest.mark.parametrize("check,cls", [(check_bottleneck, BlankInit), (check_bottleneck, BlankForward),
                                       (check_transition, BlankInit), (check_transition, BlankForward),
                                       (check_dense_block, BlankBlock), (check_dense_block, BlankForward)])
def test_blank_is_not_implemented(check, cls):
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(cls)


# --- planted bugs: bottleneck ------------------------------------------------------------------------
class CatDim2Bottleneck(RefBottleneck):
    """Returns [x, H(x)] concatenated on the height axis."""

    def forward(self, x):
        return torch.cat([x, super().forward(x)], dim=2)


class CatDim0Bottleneck(RefBottleneck):
    def forward(self, x):
        return torch.cat([x, super().forward(x)], dim=0)


class CatChannelsBottleneck(RefBottleneck):
    """The other convention ([x, H(x)]): this lab's layers return H(x) only."""

    def forward(self, x):
        return torch.cat([x, super().forward(x)], dim=1)


class No1x1Bottleneck(nn.Module):
    """A plain DenseLayer: BN-ReLU-Conv3×3, the 1×1 conv to 4k maps is missing."""

    def __init__(self, in_channels, growth_rate):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.conv = nn.Conv2d(in_channels, growth_rate, 3, padding=1, bias=False)

    def forward(self, x):
        return self.conv(torch.relu(self.norm(x)))


class Width2kBottleneck(SequentialBottleneck):
    def __init__(self, in_channels, growth_rate):
        nn.Module.__init__(self)
        self.c1 = nn.Conv2d(in_channels, 2 * growth_rate, 1, bias=False)
        self.c2 = nn.Conv2d(2 * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.b1, self.b2 = nn.BatchNorm2d(in_channels), nn.BatchNorm2d(2 * growth_rate)


class BiasBottleneck(SequentialBottleneck):
    def __init__(self, in_channels, growth_rate):
        super().__init__(in_channels, growth_rate)
        self.c1 = nn.Conv2d(in_channels, 4 * growth_rate, 1, bias=True)


class NoPaddingBottleneck(SequentialBottleneck):
    def __init__(self, in_channels, growth_rate):
        super().__init__(in_channels, growth_rate)
        self.c2 = nn.Conv2d(4 * growth_rate, growth_rate, 3, padding=0, bias=False)


class MissingReluBottleneck(SequentialBottleneck):
    def forward(self, x):
        return self.c2(torch.relu(self.b2(self.c1(self.b1(x)))))


class UnusedBnBottleneck(SequentialBottleneck):
    """Registers the second BN (so the parameter count is right) but never applies it, nor its ReLU."""

    def forward(self, x):
        h = torch.relu(self.b1(x))
        h = self.c1(h)
        return self.c2(h)  # second BN and ReLU forgotten


class InplaceReluBottleneck(SequentialBottleneck):
    """ReLU in place on the input itself (no BN first): corrupts x, which the block also outputs."""

    def forward(self, x):
        h = self.c1(self.b1(torch.relu_(x)))
        return self.c2(torch.relu(self.b2(h)))


@pytest.mark.parametrize("cls,message", [
    (CatDim2Bottleneck, "raised RuntimeError|output shape"),
    (CatDim0Bottleneck, "raised RuntimeError|output shape"),
    (CatChannelsBottleneck, "return only the k new maps"),
    (No1x1Bottleneck, "parameters"),
    (Width2kBottleneck, "parameters"),
    (BiasBottleneck, "parameters"),
    (NoPaddingBottleneck, "padding=1"),
    (MissingReluBottleneck, "max abs difference"),
    (UnusedBnBottleneck, "max abs difference"),
    (InplaceReluBottleneck, "in place"),
])
def test_bottleneck_fails_on_planted_bugs(cls, message):
    with pytest.raises(CheckFailed, match=message):
        check_bottleneck(cls)


# --- planted bugs: transition ------------------------------------------------------------------------
class NoPoolTransition(RefTransition):
    def forward(self, x):
        return self.conv(self.relu(self.norm(x)))


class CeilTransition(SequentialTransition):
    def __init__(self, in_channels, compression):
        nn.Module.__init__(self)
        out = math.ceil(compression * in_channels)
        self.f = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out, 1, bias=False),
                               nn.AvgPool2d(2))


class RoundTransition(SequentialTransition):
    def __init__(self, in_channels, compression):
        nn.Module.__init__(self)
        out = round(compression * in_channels)
        self.f = nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(), nn.Conv2d(in_channels, out, 1, bias=False),
                               nn.AvgPool2d(2))


class NoBnTransition(nn.Module):
    """Forgets the BN before the transition conv."""

    def __init__(self, in_channels, compression):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, int(compression * in_channels), 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(torch.relu(x)))


class MaxPoolTransition(RefTransition):
    def forward(self, x):
        return nn.functional.max_pool2d(self.conv(self.relu(self.norm(x))), 2)


class CompressionIgnoredTransition(SequentialTransition):
    def __init__(self, in_channels, compression):
        super().__init__(in_channels, 1.0)


@pytest.mark.parametrize("cls,message", [
    (NoPoolTransition, "average pooling"),
    (CeilTransition, "⌊θ·p⌋"),
    (RoundTransition, "⌊θ·p⌋"),
    (NoBnTransition, "parameters"),
    (MaxPoolTransition, "max abs difference"),
    (CompressionIgnoredTransition, "⌊θ·p⌋"),
])
def test_transition_fails_on_planted_bugs(cls, message):
    with pytest.raises(CheckFailed, match=message):
        check_transition(cls)


# --- planted bugs: dense block -------------------------------------------------------------------------
class CatDim2Block(RefBlock):
    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=2)
        return x


class CatDim0Block(RefBlock):
    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([x, layer(x)], dim=0)
        return x


class NewFirstBlock(RefBlock):
    """[H(x), x]: right size, wrong order."""

    def forward(self, x):
        for layer in self.layers:
            x = torch.cat([layer(x), x], dim=1)
        return x


class LastOnlyBlock(RefBlock):
    def forward(self, x):
        out = x
        for layer in self.layers:
            out = layer(x)
            x = torch.cat([x, out], dim=1)
        return out


class ChainBlock(nn.Module):
    """ResNet-style chain: each layer sees only the previous output (not densely connected)."""

    def __init__(self, num_layers, in_channels, growth_rate):
        super().__init__()
        chans = [in_channels] + [growth_rate] * (num_layers - 1)
        self.layers = nn.ModuleList(BottleneckLayer(c, growth_rate) for c in chans)

    def forward(self, x):
        outs = [x]
        for layer in self.layers:
            outs.append(layer(outs[-1]))
        return torch.cat(outs, 1)


@pytest.mark.parametrize("cls,message", [
    (CatDim2Block, "dim=1"),
    (CatDim0Block, "dim=1"),
    (NewFirstBlock, "not the block's input"),
    (LastOnlyBlock, "only the last layer"),
    (ChainBlock, "parameters|max abs difference"),
])
def test_dense_block_fails_on_planted_bugs(cls, message):
    with pytest.raises(CheckFailed, match=message):
        check_dense_block(cls)


def test_block_of_buggy_bottlenecks_fails():
    class Block(ListBlock):
        def __init__(self, num_layers, in_channels, growth_rate):
            super().__init__(num_layers, in_channels, growth_rate, layer=MissingReluBottleneck)

    with pytest.raises(CheckFailed, match="max abs difference"):
        check_dense_block(Block)


def test_copy_by_kind_and_shape_ignores_names_and_order():
    torch.manual_seed(0)
    ref = BottleneckLayer(6, 3)
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
    mine = SequentialBottleneck(6, 3)
    copy_by_kind_and_shape(ref, mine)
    assert torch.equal(mine.c1.weight, ref.conv1.weight) and torch.equal(mine.b2.running_mean, ref.norm2.running_mean)
    x = torch.randn(2, 6, 4, 4)
    ref.eval(), mine.eval()
    assert torch.allclose(mine(x), ref(x), atol=1e-6)
    with pytest.raises(CheckFailed, match="one to one"):
        copy_by_kind_and_shape(ref, No1x1Bottleneck(6, 3))


def test_densenet_bc_assembly(capsys):
    from ferlib.checks.densenet import check_densenet_bc

    check_densenet_bc(RefBlock, RefTransition)
    out = capsys.readouterr().out
    assert "PASS DenseNet-BC from your blocks" in out and "485,521" in out
    check_densenet_bc(ListBlock, SequentialTransition)
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check_densenet_bc(BlankBlock, RefTransition)
    with pytest.raises(CheckFailed, match="transition1 outputs"):
        check_densenet_bc(RefBlock, NoPoolTransition)
    with pytest.raises(CheckFailed, match="max abs difference"):
        check_densenet_bc(RefBlock, MaxPoolTransition)
