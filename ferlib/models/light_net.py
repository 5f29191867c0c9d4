"""The light network of Sobel-Laplacian-CL Table II ("base"), reconstructed: 0.36 M parameters.

Table II's "base" is "the light weight models originally proposed by Pandey et al. [16]"
(R. K. Pandey, S. Karmakar, A. G. Ramakrishnan, N. Saha, "Improving facial emotion
recognition systems with crucial feature extractors", ICIAP 2019; the arXiv version is
"Improving Facial Emotion Recognition Systems Using Gradient and Laplacian Images",
arXiv:1902.05411).  Sobel-Laplacian-CL gives only its size -- "0.36 million" parameters,
"1/24th" of VGG13's 8.75 M ("a factor of 24.3") -- and none of its layers; we could not
obtain the layer table of Pandey et al.'s publication (the text available to us stops
before it).  So this network is **a reconstruction, not a copy**: every choice below is
ours, made to honour what the paper does say.

What the paper says, and what follows from it:

* 0.36 M parameters for the 8 FER+ classes -> the widths are chosen to land on it
  (363,112 for one input channel; ``light_net_parameter_count``, tested against the model).
* "1/24th the number of parameters" of VGG13, trained as Table I's networks (Table II is
  "the models ... after the loss function is modified") -> VGG13's plan at a 64x64 input:
  the same four blocks of 2, 2, 3 and 3 layers, each block ending in a 2x2 max pool and
  dropout 0.25 (64 -> 4), then a dense layer, dropout 0.5 and the output.
* Its reference list cites, without using them in the text, MobileNets (Howard et al.
  2017), MobileNetV2, a MobileNet/depthwise-separable tutorial and Network in Network
  (Lin et al.) -- the building blocks of a light network, presumably from the section on
  Pandey et al.'s model -> **depthwise-separable convolutions** (a 3x3 depthwise
  convolution, then a 1x1 pointwise one, each followed by BatchNorm and ReLU, as in
  MobileNets) in place of VGG13's 3x3 convolutions after the first, and **global average
  pooling** (NIN) in place of VGG13's flatten + 4096 x 1024 dense layer (4.2 M of its
  8.76 M parameters).
* A network meant for "low end devices" -> thin where the maps are large: the first two
  blocks have half VGG13's widths (32 and 64 at 64x64 and 32x32; VGG13: 64 and 128),
  the last two VGG13's own (128 -- half of VGG13's 256 -- and 256), so that a 64x64 face
  costs about 1/24th of VGG13's multiply-adds as well (72 MFLOPs against 1,752).

The layers::

    conv 3x3, 32, BN, ReLU                   64x64x32        (a standard convolution)
    DS 32 -> 32                              64x64x32
    pool 2x2/2, dropout 0.25                 32x32x32
    DS 32 -> 64, DS 64 -> 64                 32x32x64
    pool, dropout 0.25                       16x16x64
    DS 64 -> 128, DS 128 -> 128 (x2)         16x16x128
    pool, dropout 0.25                        8x8x128
    DS 128 -> 256, DS 256 -> 256 (x2)         8x8x256
    pool, dropout 0.25                        4x4x256
    global average pool                       256
    dense 512, BN1d, ReLU                     512             the deep features (center loss)
    dropout 0.5, dense (num_classes)          8

DS = depthwise 3x3 (groups = width), BN, ReLU, pointwise 1x1, BN, ReLU; convolutions
without bias (BatchNorm follows).  The 512-unit layer (half of VGG13's 1024) brings the
count to 0.36 M.  He (fan-in) initialisation, as the kit's other BatchNorm networks.

Input channels (§III-B): as :class:`~ferlib.models.vgg13.VGG13` -- ``channels="O"``,
``"O+S"``, ``"O+L"``, ``"O+S+L"``; each extra channel adds 9 x 32 = 288 weights to the
first convolution.
"""
from __future__ import annotations

import torch
from torch import nn

from .input_channels import channel_set, channel_set_name, front_layer

LIGHT_NET_BLOCKS: tuple[tuple[int, ...], ...] = ((32, 32), (64, 64), (128, 128, 128), (256, 256, 256))
LIGHT_NET_FEATURES = 512
LIGHT_NET_INPUT_SIZE = 64
LIGHT_NET_DROPOUT = (0.25, 0.5)


class DepthwiseSeparable(nn.Sequential):
    """MobileNets' block: depthwise 3x3 conv, BN, ReLU, pointwise 1x1 conv, BN, ReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=False),
            nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class LightNet(nn.Module):
    """The reconstructed light network of Table II (see the module docstring).

    Args:
        num_classes: 8 FER+ classes.
        in_channels: 1 (grey face; the front layer computes ``channels``) or ``len(channels)``.
        channels: ``"O"``, ``"O+S"``, ``"O+L"`` or ``"O+S+L"``.
        feature_dim: the deep-feature layer's width (512 gives the paper's 0.36 M).
        dropout: (after each block's pool, before the output layer); ``(0, 0)`` removes both
            (``bench/light_net_start.py`` measures what they cost a short run).

    ``features`` maps a batch to the (B, ``feature_dim``) deep features; ``classifier`` is
    the output layer; ``forward_with_features(x) -> (logits, features)``.
    """

    def __init__(self, num_classes: int = 8, in_channels: int = 1, channels: str = "O",
                 feature_dim: int = LIGHT_NET_FEATURES, dropout: tuple[float, float] = LIGHT_NET_DROPOUT):
        super().__init__()
        block_dropout, head_dropout = dropout
        self.channels = channel_set(channels)
        front, width = front_layer(self.channels, in_channels)
        first = LIGHT_NET_BLOCKS[0][0]
        layers: list[nn.Module] = [front, nn.Conv2d(width, first, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(first), nn.ReLU(inplace=True)]
        width = first
        for b, widths in enumerate(LIGHT_NET_BLOCKS):
            for i, out in enumerate(widths):
                if b == 0 and i == 0:
                    continue  # the block's first layer is the standard convolution above
                layers.append(DepthwiseSeparable(width, out))
                width = out
            layers += [nn.MaxPool2d(2, 2), nn.Dropout(block_dropout)]
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, feature_dim, bias=False),
                   nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.feature_dim: int = int(feature_dim)
        self.head_dropout = nn.Dropout(head_dropout)
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (fan-in) normal weights, BatchNorm 1/0, biases 0 (the kit's rule, :mod:`ferlib.models.init`)."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) and m.affine:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(x)
        return self.classifier(self.head_dropout(features)), features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_features(x)[0]

    def extra_repr(self) -> str:
        return f"channels={channel_set_name(self.channels)}, feature_dim={self.feature_dim}"


def light_net_parameter_count(num_classes: int = 8, channels: int = 1, feature_dim: int = LIGHT_NET_FEATURES) -> int:
    """Parameters by formula: first conv + BN, each DS block (depthwise, BN, pointwise, BN), dense + BN1d, output."""
    first = LIGHT_NET_BLOCKS[0][0]
    total, width = 9 * channels * first + 2 * first, first
    for b, widths in enumerate(LIGHT_NET_BLOCKS):
        for i, out in enumerate(widths):
            if b == 0 and i == 0:
                continue
            total += 9 * width + 2 * width + width * out + 2 * out
            width = out
    return total + width * feature_dim + 2 * feature_dim + feature_dim * num_classes + num_classes


def light_net(num_classes: int = 8, in_channels: int = 1, channels: str = "O",
              feature_dim: int = LIGHT_NET_FEATURES, dropout: tuple[float, float] = LIGHT_NET_DROPOUT) -> LightNet:
    """The reconstructed light network of Sobel-Laplacian-CL Table II with the input channels ``channels``."""
    return LightNet(num_classes=num_classes, in_channels=in_channels, channels=channels, feature_dim=feature_dim,
                    dropout=tuple(dropout))
