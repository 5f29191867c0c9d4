"""DenseNet for facial expression recognition (DenseNet-CL §III-A, §III-D, Table I).

DenseNet-CL (Sang et al. 2018) trains four variants (its Table II): DenseNet (k = 12), DenseNet-BC
(k = 12, bottleneck + compression θ = 0.5), WideDenseNet (k = 32) and WideDenseNet-BC.
All have a stride-2 stem, three dense blocks of L = 12 layers, two transitions, a
"last transition" (BN-ReLU + global average pooling) that yields the *deep features*
on which center loss acts, and a 7-way linear classifier.

The code follows torchvision's ``densenet.py`` in style (one module per idea) but is
written for DenseNet-CL: CIFAR-style 3×3 stem, three blocks, Table I sizes.

Input size (why ``PAPER_INPUT_SIZE = 42``)
------------------------------------------
Table I gives 21×21 after the stem, then 10×10, 5×5 and a 5×5 global pool. FER-2013
images are 48×48, which gives 24×24 after a stride-2 stem, so DenseNet-CL cannot have
fed the raw 48×48 image. For a 3×3 stride-2 conv:

* padding 1 (PyTorch; same as TensorFlow ``'SAME'``, which gives ⌈H/2⌉):
  out = ⌊(H + 2 − 3)/2⌋ + 1 = 21  ⇔  H ∈ {41, 42};
* TensorFlow ``'VALID'``: out = ⌊(H − 3)/2⌋ + 1 = 21  ⇔  H ∈ {43, 44};
* H = 48 gives 24 → 12 → 6 (and a 6×6 global pool).

DenseNet-CL does not say how it got from 48 to 42 (its random-crop augmentation pads
the 48×48 image and crops back to 48×48, so it does *not* produce 42×42 crops).
ferlib's choice: the stem uses padding 1 and **the model accepts any input size**
(the last pooling is global, ``AdaptiveAvgPool2d(1)``), and the DenseNet-CL recipes
**resize the whole (augmented) 48×48 face to 42×42**. Resizing keeps the full field
of view on which DenseNet-CL's augmentation operates and is identical at train and test
time, so no test-time crop choice (center crop, ten-crop) enters the comparison;
with 42×42 input every intermediate size equals Table I. Feeding 48×48 directly also
works (24, 24, 12, 12, 6, 1) — handy for ablations.

Depth "3L + 4" and "L = 40"
---------------------------
§III-D calls L the number of layers per dense block (L = 12) and the depth 3L + 4;
Table I's header "L = 40" is that depth: 3·12 + 4 = 40 = 1 stem conv + 36 3×3 convs
in the blocks + 2 transition 1×1 convs + 1 fully-connected layer. For the -BC variants
every dense layer has two convs (1×1 then 3×3), so their weighted depth is
1 + 72 + 2 + 1 = 76. (Huang et al.'s "DenseNet-BC, depth 40" would instead have 6
bottleneck layers per block.) ferlib follows Table I, which shows ×12 layers per
block for DenseNet *and* DenseNet-BC, for all four variants.

Transition: BN-ReLU-Conv1×1-AvgPool (with ReLU)
-----------------------------------------------
DenseNet-CL (copying Huang et al.'s text) says "batch normalization layer and a 1×1
convolutional layer followed by a 2×2 average pooling layer" — no ReLU. ferlib puts a
ReLU between BN and the 1×1 conv, like Huang et al.'s reference (Lua Torch) code,
torchvision and the public TensorFlow DenseNets, which all use the pre-activation
composite function BN-ReLU-Conv for transitions too. Without the ReLU, BN (affine at
inference) followed by a 1×1 conv is just one linear map, so the text is best read as
shorthand for the composite function. A ReLU has no parameters, so this choice does
not change any parameter count.

Initialization
--------------
DenseNet-CL §IV-C: "variance scaling initializer (He initializer)" for all weights. ferlib uses
``kaiming_normal_(mode="fan_in", nonlinearity="relu")``, i.e. std = sqrt(2 / fan_in),
for every conv and for the classifier's weight: fan_in is the default of TensorFlow's
variance-scaling/He initializer (DenseNet-CL's framework), of ``kaiming_normal_`` and of
torchvision's DenseNet. (TensorFlow draws from a truncated normal rescaled to the same
std; the difference is immaterial.) BatchNorm: weight 1, bias 0. Linear bias: 0.
Convolutions have no bias (each is followed, in its consumer, by a BatchNorm).

Memory
------
Each dense layer concatenates its input and its k new maps into a new tensor, so a
block of L layers stores inputs of size c₀, c₀ + k, …, c₀ + (L−1)k for the backward
pass: O(L²·k·H·W) activation memory. For these small 42×42 nets that is fine; the
memory-efficient (shared storage / checkpointing) variant is not implemented.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .init import he_init_

__all__ = [
    "PAPER_INPUT_SIZE",
    "DenseLayer",
    "BottleneckLayer",
    "DenseBlock",
    "Transition",
    "LastTransition",
    "DenseNet",
    "densenet",
    "densenet_bc",
    "wide_densenet",
    "wide_densenet_bc",
    "DENSENET_VARIANTS",
]

PAPER_INPUT_SIZE = 42
"""Side of the square input that reproduces Table I (21, 10, 5, then global pool)."""


class DenseLayer(nn.Module):
    """Composite function H_l = BN-ReLU-Conv3×3 producing ``growth_rate`` (k) maps."""

    def __init__(self, in_channels: int, growth_rate: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # ReLU in place is safe: BN's output is a fresh tensor, not the concatenated input.
        return self.conv(self.relu(self.norm(x)))


class BottleneckLayer(nn.Module):
    """DenseNet-B layer: BN-ReLU-Conv1×1 to 4k maps, then BN-ReLU-Conv3×3 to k maps (Fig. 2)."""

    def __init__(self, in_channels: int, growth_rate: int, bottleneck_width: int = 4):
        super().__init__()
        inter = bottleneck_width * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, inter, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(inter)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(inter, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.Module):
    """``num_layers`` densely connected layers: x_l = H_l([x_0, x_1, …, x_{l−1}]).

    ``[…]`` is concatenation on the channel axis (dim 1), so the output has
    ``in_channels + num_layers * growth_rate`` channels and its first ``in_channels``
    channels are the block's input, unchanged.
    """

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bottleneck: bool = False):
        super().__init__()
        layer_cls = BottleneckLayer if bottleneck else DenseLayer
        self.layers = nn.ModuleList(
            layer_cls(in_channels + i * growth_rate, growth_rate) for i in range(num_layers)
        )
        self.in_channels = in_channels
        self.out_channels = in_channels + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            # x holds [x_0, …, x_{l-1}]; append x_l = H_l(x).
            x = torch.cat([x, layer(x)], dim=1)
        return x


class Transition(nn.Module):
    """Transition block: BN-ReLU-Conv1×1 to ⌊θ·p⌋ maps, then 2×2 average pooling, stride 2.

    ``compression`` is θ ∈ (0, 1]; θ < 1 gives the compressed (-C) networks. See the
    module docstring for why a ReLU sits between BN and the conv.
    """

    def __init__(self, in_channels: int, compression: float = 1.0):
        super().__init__()
        if not 0.0 < compression <= 1.0:
            raise ValueError(f"compression θ must be in (0, 1], got {compression}")
        out_channels = int(math.floor(compression * in_channels))
        if out_channels < 1:
            raise ValueError(f"⌊θ·p⌋ = ⌊{compression}·{in_channels}⌋ leaves no channels")
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.in_channels = in_channels
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(self.relu(self.norm(x))))


class LastTransition(nn.Module):
    """Last transition: BN-ReLU, then global average pooling → deep features (B, C).

    Global (adaptive) pooling makes the network accept any input size; with 42×42 input
    it is Table I's 5×5 average pooling.
    """

    def __init__(self, in_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.relu(self.norm(x))), 1)


class DenseNet(nn.Module):
    """DenseNet of Table I: stem, ``num_blocks`` dense blocks with transitions, classifier.

    Args:
        layers_per_block: L, layers per dense block (12 in DenseNet-CL).
        growth_rate: k (12 for DenseNet, 32 for WideDenseNet).
        bottleneck: use BN-ReLU-Conv1×1(4k) before each 3×3 conv (the "B").
        compression: θ of the transitions; θ < 1 is the "C".
        num_blocks: number of dense blocks (3); transitions go between them.
        in_channels: 1 for grey FER images.
        num_classes: 7 emotions.
        stem_stride: 2 as in Table I; 1 gives the CIFAR DenseNet stem.

    Interface shared by ferlib models: ``forward(x) -> logits``;
    ``forward_with_features(x) -> (logits, features)`` with features the globally pooled
    deep features (B, ``feature_dim``) fed to ``classifier`` (the final ``nn.Linear``).

    ``self.features`` -- as on every ferlib model, the module that maps an image batch
    to the deep features (B, ``feature_dim``) -- is an ``nn.Sequential`` with children
    ``conv`` (stem), ``denseblock1``, ``transition1``, …, ``denseblock{num_blocks}``,
    ``last_transition``.
    """

    def __init__(
        self,
        layers_per_block: int = 12,
        growth_rate: int = 12,
        bottleneck: bool = False,
        compression: float = 1.0,
        num_blocks: int = 3,
        in_channels: int = 1,
        num_classes: int = 7,
        stem_stride: int = 2,
    ):
        super().__init__()
        if layers_per_block < 1 or growth_rate < 1 or num_blocks < 1:
            raise ValueError("layers_per_block, growth_rate and num_blocks must be >= 1")
        self.layers_per_block = layers_per_block
        self.growth_rate = growth_rate
        self.bottleneck = bottleneck
        self.compression = compression
        self.num_blocks = num_blocks

        channels = 2 * growth_rate  # Table I: "3×3 conv, 2k filters, stride 2"
        self.features = nn.Sequential()
        self.features.add_module(
            "conv",
            nn.Conv2d(in_channels, channels, kernel_size=3, stride=stem_stride, padding=1, bias=False),
        )
        for b in range(1, num_blocks + 1):
            block = DenseBlock(layers_per_block, channels, growth_rate, bottleneck)
            self.features.add_module(f"denseblock{b}", block)
            channels = block.out_channels
            if b < num_blocks:
                trans = Transition(channels, compression)
                self.features.add_module(f"transition{b}", trans)
                channels = trans.out_channels
        self.features.add_module("last_transition", LastTransition(channels))

        self.feature_dim: int = channels
        self.classifier = nn.Linear(channels, num_classes)
        self.reset_parameters()

    @property
    def depth(self) -> int:
        """DenseNet-CL's depth ``3L + 4``: stem + 3×3 convs + transition convs + FC."""
        return 1 + self.num_blocks * self.layers_per_block + (self.num_blocks - 1) + 1

    @property
    def weighted_depth(self) -> int:
        """Layers with weights, counting both convs of a bottleneck layer."""
        per_layer = 2 if self.bottleneck else 1
        return 1 + self.num_blocks * self.layers_per_block * per_layer + (self.num_blocks - 1) + 1

    def reset_parameters(self) -> None:
        """He (fan_in) normal for convs and the classifier weight; BN 1/0; linear bias 0."""
        he_init_(self)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.classifier(features), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return (
            f"L={self.layers_per_block}, k={self.growth_rate}, bottleneck={self.bottleneck}, "
            f"θ={self.compression}, depth={self.depth}, feature_dim={self.feature_dim}"
        )


def densenet(num_classes: int = 7, in_channels: int = 1) -> DenseNet:
    """DenseNet (L = 12, k = 12), no bottleneck, θ = 1."""
    return DenseNet(12, 12, bottleneck=False, compression=1.0, in_channels=in_channels, num_classes=num_classes)


def densenet_bc(num_classes: int = 7, in_channels: int = 1) -> DenseNet:
    """DenseNet-BC (L = 12, k = 12), bottleneck, θ = 0.5."""
    return DenseNet(12, 12, bottleneck=True, compression=0.5, in_channels=in_channels, num_classes=num_classes)


def wide_densenet(num_classes: int = 7, in_channels: int = 1) -> DenseNet:
    """WideDenseNet (L = 12, k = 32), no bottleneck, θ = 1."""
    return DenseNet(12, 32, bottleneck=False, compression=1.0, in_channels=in_channels, num_classes=num_classes)


def wide_densenet_bc(num_classes: int = 7, in_channels: int = 1) -> DenseNet:
    """WideDenseNet-BC (L = 12, k = 32), bottleneck, θ = 0.5."""
    return DenseNet(12, 32, bottleneck=True, compression=0.5, in_channels=in_channels, num_classes=num_classes)


DENSENET_VARIANTS: dict[str, Callable[..., DenseNet]] = {
    "densenet": densenet,
    "densenet-bc": densenet_bc,
    "wide-densenet": wide_densenet,
    "wide-densenet-bc": wide_densenet_bc,
}
"""The four networks of Table II, by name; each takes ``(num_classes=7, in_channels=1)``."""
