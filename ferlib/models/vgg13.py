"""VGG13 of Barsoum et al. (FER+, ICMI 2016), the network of Sobel-Laplacian-CL Table I and Fig. 1.

"Training Deep Networks for Facial Expression Recognition with Crowd-Sourced Label
Distribution" (arXiv:1608.01041; key ``barsoum-ferplus`` in :mod:`ferlib.bibliography`).
The layer table is the FER+ reference code's (microsoft/FERPlus ``src/models.py``,
class ``VGG13``; CNTK), for a 64x64x1 face (``input_width = input_height = 64``)::

    conv1-1, conv1-2   3x3, 64, pad 1, ReLU      64x64x64
    pool1 2x2/2, dropout 0.25                    32x32x64
    conv2-1, conv2-2   3x3, 128                  32x32x128
    pool2, dropout 0.25                          16x16x128
    conv3-1..3         3x3, 256                  16x16x256
    pool3, dropout 0.25                           8x8x256
    conv4-1..3         3x3, 256                   8x8x256
    pool4, dropout 0.25                           4x4x256
    fc5 1024, ReLU, dropout 0.5                   1024
    fc6 1024, ReLU, dropout 0.5                   1024
    output (num_classes)                          8

Every convolution and dense layer has a bias, no BatchNorm (the reference has none);
glorot-uniform initialisation (``ct.glorot_uniform()``, PyTorch's ``xavier_uniform_``),
biases 0.  Parameters for one input channel and 8 classes: **8,757,704** (8,753,728
weights + 3,976 biases); Sobel-Laplacian-CL says "8.75 million" -- the weights alone round
to it, and all parameters round to 8.76 M; a second and third input channel add 576
weights each (``vgg13_parameter_count``, tested).  "8.75 million" in the paper's Table I
rows with S or L inputs is the same rounding.

Deep features: the 1024 activations of fc6 after its ReLU (before the dropout), the layer
the classifier reads -- the ``x_j`` of the center loss (Sobel-Laplacian-CL Eq. 1).

Input channels (Sobel-Laplacian-CL §III-B): ``channels="O"``, ``"O+S"``, ``"O+L"`` or
``"O+S+L"`` -- :class:`~ferlib.models.input_channels.EdgeChannels` computes the Sobel and
Laplacian images of the (augmented, normalised) grey face in front of conv1-1.
"""
from __future__ import annotations

import torch
from torch import nn

from .input_channels import channel_set, channel_set_name, front_layer

# (block, convolutions, width) of the reference's ct.layers.For loops
VGG13_BLOCKS: tuple[tuple[int, int], ...] = ((2, 64), (2, 128), (3, 256), (3, 256))
VGG13_INPUT_SIZE = 64  # the reference's input_width / input_height
VGG13_FC = 1024
VGG13_DROPOUT = (0.25, 0.5)  # after each pool; after each dense layer


class VGG13(nn.Module):
    """Barsoum et al.'s VGG13 (see the module docstring), with the paper's input channels.

    Args:
        num_classes: 8 FER+ classes (in ``FERPLUS_CLASSES`` order).
        in_channels: channels of the batch the network receives: 1 (the grey face; the
            front layer computes ``channels`` from it) or ``len(channels)`` (already stacked).
        channels: ``"O"``, ``"O+S"``, ``"O+L"`` or ``"O+S+L"``.
        input_size: the square input side (64; the 4 pools need a multiple of 16).

    ``features`` maps a batch to the (B, 1024) deep features (fc6 after ReLU);
    ``classifier`` is the output layer; ``forward_with_features(x) -> (logits, features)``.
    """

    def __init__(self, num_classes: int = 8, in_channels: int = 1, channels: str = "O",
                 input_size: int = VGG13_INPUT_SIZE):
        super().__init__()
        if input_size % 16:
            raise ValueError(f"VGG13 pools four times: input_size must be a multiple of 16, got {input_size}")
        self.channels = channel_set(channels)
        self.input_size = int(input_size)
        front, width = front_layer(self.channels, in_channels)
        layers: list[nn.Module] = [front]
        for convs, out in VGG13_BLOCKS:
            for _ in range(convs):
                layers += [nn.Conv2d(width, out, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
                width = out
            layers += [nn.MaxPool2d(2, 2), nn.Dropout(VGG13_DROPOUT[0])]
        side = input_size // 16
        layers += [nn.Flatten(), nn.Linear(width * side * side, VGG13_FC), nn.ReLU(inplace=True),
                   nn.Dropout(VGG13_DROPOUT[1]), nn.Linear(VGG13_FC, VGG13_FC), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.feature_dim: int = VGG13_FC
        self.head_dropout = nn.Dropout(VGG13_DROPOUT[1])
        self.classifier = nn.Linear(VGG13_FC, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot (Xavier) uniform weights, zero biases: the reference's ``ct.glorot_uniform()``."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.classifier(self.head_dropout(features)), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def extra_repr(self) -> str:
        return f"channels={channel_set_name(self.channels)}, input {self.input_size}x{self.input_size}"


def vgg13_parameter_count(num_classes: int = 8, channels: int = 1, input_size: int = VGG13_INPUT_SIZE,
                          biases: bool = True) -> int:
    """The parameter count of the reference's layer table, by formula (weights + biases of each layer)."""
    total, width = 0, channels
    for convs, out in VGG13_BLOCKS:
        for _ in range(convs):
            total += 9 * width * out + (out if biases else 0)
            width = out
    side = input_size // 16
    for fan_in, fan_out in ((width * side * side, VGG13_FC), (VGG13_FC, VGG13_FC), (VGG13_FC, num_classes)):
        total += fan_in * fan_out + (fan_out if biases else 0)
    return total


def vgg13(num_classes: int = 8, in_channels: int = 1, channels: str = "O", input_size: int = VGG13_INPUT_SIZE) -> VGG13:
    """VGG13 (Barsoum et al.) with the input channels ``channels`` of Sobel-Laplacian-CL."""
    return VGG13(num_classes=num_classes, in_channels=in_channels, channels=channels, input_size=input_size)
