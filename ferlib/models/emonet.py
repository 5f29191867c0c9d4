"""EmoNet's two-input network (Fig. 5 of "EmoNet: Facial Expression Recognition using Deep Learning Techniques").

EmoNet §3.2: "This network takes two inputs, first - a raw image which is resized according to the
Conv Block requirement (either 139 or 197) and stacked up to comprise 3 channels; second - a 2728
dimensional feature vector comprising of 68 facial landmarks ... and 2592 dimensional Histogram of
Gradients" -- the "bag of visual words" (BOVW, :func:`ferlib.features.emonet_bovw_features`).  The
convolutional block is Inception-ResNet-v2 (Model A, ImageNet weights) or ResNet-50 (Model B,
VGGFace2 weights) with "the last dense layer" dropped (§3.1); "based on the type of Conv Block and on
the usage of additional BOVW features, we have overall 4 different network variants which we train
in an end to end fashion" (Table 2).

::

    image (B, 3, S, S) --> conv block (pretrained) --> pooled features (B, D) --+
                                                                               concat --> Linear -> ReLU -> Dropout --> Linear --> softmax
    BOVW (B, 2728) ------> standardised with Training's mean / std ------------+       (B, hidden): the deep features

**What the paper leaves open, and what ferlib decides** (Fig. 5 gives no sizes):

* the BOVW vector is standardised column by column with the Training split's mean and standard
  deviation (buffers ``bovw_mean`` / ``bovw_std``, fitted once by :meth:`EmoNetFusion.fit_side_inputs`,
  saved in every checkpoint): its HOG part lies in [0, 1] and its landmarks in pixels (0..48), and an
  unscaled concatenation would let the landmarks drown the rest;
* one hidden dense layer of **256** units (ReLU, dropout 0.5) before the 7-way softmax layer: the
  paper calls the BOVW branch's cost "almost negligible"; with 256 units it adds 2,728 x 256 = 0.70 M
  weights to ResNet-50's 23.5 M (3 %) -- a 1,024-unit layer would add 2.8 M (12 %);
* the image branch is the block's global-average-pooled features (ResNet-50 2,048, Inception-ResNet-v2
  1,536; Keras' ``include_top=False, pooling="avg"``).

Interface of every ferlib model: ``forward_with_features(x, bovw=None) -> (logits, features)`` with
``features`` the hidden layer (``feature_dim`` = ``hidden``), ``classifier``.  ``side_inputs`` names the
per-sample inputs the network needs beside the image (``("bovw",)`` or ``()``): the trainer's batch
sources carry them (:mod:`ferlib.data.batches`, ``extra``) and pass them by name.

**Freezing** (EmoNet §5: "For first 5 epochs ... the pretrained convolutional blocks are frozen and
the remaining network is trained"): :meth:`EmoNetFusion.set_pretrained_frozen` stops the block's
parameters' gradients **and keeps the block in evaluation mode** while frozen -- its BatchNorm layers
normalise with the pretrained running statistics and do not update them (what Keras does for a
``trainable = False`` BatchNorm since TF 2.0) -- whatever ``model.train()`` the trainer calls.  A
frozen block's output is therefore a fixed function of its input, and nothing of it changes in a
step (``tests/test_emonet.py`` checks every parameter and buffer).  Unfrozen, it trains as usual
(batch statistics, running averages updated).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .backbones import CONV_BLOCKS, ConvBlock

__all__ = ["EmoNetFusion", "emonet", "BOVW_LENGTH", "HIDDEN", "DROPOUT"]

BOVW_LENGTH = 2728  # ferlib.features.EMONET_BOVW_LENGTH (models does not import features)
HIDDEN = 256
DROPOUT = 0.5
_EPS = 1e-6


class EmoNetFusion(nn.Module):
    """Conv block ⊕ optional BOVW -> dense -> softmax (EmoNet Fig. 5); see the module docstring.

    num_classes : 7 for FER-2013.
    in_channels : must be 3 (the grey face stacked to three channels, EmoNet §3.2).
    backbone : a key of :data:`ferlib.models.backbones.CONV_BLOCKS` ("resnet50" = Model B,
        "inception-resnet-v2" = Model A, "efficientnet-lite0" = the offline stand-in).
    weights : the block's starting weights: "imagenet", "vggface2" (resnet50) or "none".
    bovw : take the 2,728-value BOVW vector as a second input (Table 2's "pixels + BOVW" rows).
    hidden, dropout : the dense layer (ferlib's choice: 256, 0.5).
    weights_mode, weights_file : how the block's weights are found (:class:`~ferlib.models.backbones.ConvBlock`).
    load_weights : False rebuilds the architecture without reading weights (a checkpoint's replace them).
    """

    def __init__(self, num_classes: int = 7, in_channels: int = 3, *, backbone: str = "resnet50",
                 weights: str = "imagenet", bovw: bool = False, hidden: int = HIDDEN, dropout: float = DROPOUT,
                 weights_mode: str = "download", weights_file: str | None = None, load_weights: bool = True):
        super().__init__()
        if in_channels != 3:
            raise ValueError(f"EmoNet's conv blocks take 3 channels (the grey face stacked), got in_channels={in_channels}")
        if backbone not in CONV_BLOCKS:
            raise KeyError(f"unknown backbone {backbone!r}; known: {', '.join(sorted(CONV_BLOCKS))}")
        self.kwargs = dict(num_classes=int(num_classes), in_channels=3, backbone=backbone, weights=weights,
                           bovw=bool(bovw), hidden=int(hidden), dropout=float(dropout), weights_mode=weights_mode,
                           weights_file=weights_file)
        self.conv_block = ConvBlock(backbone, weights, mode=weights_mode, weights_file=weights_file,
                                    load=load_weights)
        self.side_inputs: tuple[str, ...] = ("bovw",) if bovw else ()
        if bovw:
            self.register_buffer("bovw_mean", torch.zeros(BOVW_LENGTH))
            self.register_buffer("bovw_std", torch.ones(BOVW_LENGTH))
        width = self.conv_block.feature_dim + (BOVW_LENGTH if bovw else 0)
        self.dense = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout))
        self.classifier = nn.Linear(hidden, num_classes)
        self.feature_dim, self.num_classes, self.in_channels = int(hidden), int(num_classes), 3
        self.pretrained_frozen = False

    # -- what results and checkpoints record -----------------------------------------------------
    @property
    def weights_record(self):
        return self.conv_block.weights_record

    @property
    def weights_source(self) -> str:
        return self.conv_block.weights_record.label

    @property
    def checkpoint_kwargs(self) -> dict:
        """The arguments that rebuild this architecture from a checkpoint: no weights file is read again."""
        return {**self.kwargs, "load_weights": False}

    # -- the BOVW input --------------------------------------------------------------------------
    def fit_side_inputs(self, side: dict) -> None:
        """Standardise the BOVW columns with ``side["bovw"]`` (the Training split's ``(N, 2728)`` vectors)."""
        if "bovw" not in self.side_inputs:
            return
        b = np.asarray(side["bovw"], dtype=np.float64)
        if b.ndim != 2 or b.shape[1] != BOVW_LENGTH:
            raise ValueError(f"bovw must be (N, {BOVW_LENGTH}), got {b.shape}")
        self.bovw_mean.copy_(torch.from_numpy(b.mean(0)).float())
        self.bovw_std.copy_(torch.from_numpy(np.maximum(b.std(0), _EPS)).float())

    # -- freezing (EmoNet §5) ----------------------------------------------------------------------
    def pretrained_parameters(self):
        return self.conv_block.parameters()

    def set_pretrained_frozen(self, frozen: bool) -> None:
        """Freeze (or unfreeze) the conv block: no gradients, and evaluation mode while frozen."""
        self.pretrained_frozen = bool(frozen)
        for p in self.conv_block.parameters():
            p.requires_grad_(not frozen)
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.pretrained_frozen:
            self.conv_block.eval()  # BatchNorm keeps the pretrained statistics while frozen
        return self

    # -- forward -----------------------------------------------------------------------------------
    def forward_with_features(self, x: torch.Tensor, bovw: torch.Tensor | None = None):
        f = self.conv_block(x)
        if self.side_inputs:
            if bovw is None:
                raise ValueError("this EmoNet network takes the 2,728-value BOVW vector beside the image "
                                 "(forward_with_features(x, bovw=...)); batch sources built for it carry it")
            b = (bovw.float() - self.bovw_mean) / self.bovw_std
            f = torch.cat([f, b.to(f.dtype)], dim=1)
        h = self.dense(f)
        return self.classifier(h), h

    def forward(self, x: torch.Tensor, bovw: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_with_features(x, bovw)[0]

    def extra_repr(self) -> str:
        return f"side_inputs={self.side_inputs}, hidden={self.feature_dim}, frozen={self.pretrained_frozen}"


def emonet(num_classes: int = 7, in_channels: int = 3, **kwargs) -> EmoNetFusion:
    """The registry's builder (``build_model("emonet", backbone=..., weights=..., bovw=...)``)."""
    return EmoNetFusion(num_classes=num_classes, in_channels=in_channels, **kwargs)
