"""The input channels of Sobel-Laplacian-CL (§III-B): the face, its Sobel and its Laplacian image, stacked.

"we concatenate channelwise Laplacian and/or gradient of the facial images together with
the original image.  The concatenated images are fed as input to the network."  Table I and
II name four inputs; ferlib spells them as channel sets (:data:`CHANNEL_SETS`)::

    "O"       the face alone                 (Table I "O-…", Table II "base …")
    "O+S"     the face and its Sobel image   ("O-S-…", "base+S …")
    "O+L"     the face and its Laplacian     ("O-L-…", "base+L …")
    "O+S+L"   all three                      (not in the paper's tables; lab 08 builds it)

The channel order is always O, S, L (those present).

**Where the edges are computed.**  Chapter 01's :mod:`ferlib.features.edges` computes the
images on uint8 faces with OpenCV, one face at a time.  Training augments whole batches on
the device (a random affine warp per face), and an edge image must be that of the *warped*
face, so :class:`EdgeChannels` computes the same channels as a fixed-kernel layer at the
front of the network, on the batch the network receives: the same kernels (3x3 Sobel
``[-1 0 1; -2 0 2; -1 0 1]`` and its transpose, the 4-neighbour Laplacian
``[0 1 0; 1 -4 1; 0 1 0]``), the same border (OpenCV's ``BORDER_REFLECT_101`` is
``F.pad(mode="reflect")``) and the same scaling (``edges.SOBEL_SCALE``,
``edges.LAPLACIAN_SCALE`` and ``edges.LAPLACIAN_OFFSET``).  On raw 0..255 faces
:meth:`EdgeChannels.edge_images` equals :func:`ferlib.features.edges.edge_channels` up to
that function's rounding to uint8 (tested on real faces).  It has no parameters: the
parameter counts of the paper's tables do not change with the input, apart from the first
convolution's extra input channels.

**Scale.**  The network does not see raw pixels: the trainer standardises the face (the
recipe's ``normalization``) and then warps it.  Sobel and Laplacian are linear and their
kernels sum to zero, so on a face standardised by an affine map ``z = (x - m) / s`` (one
``m`` and ``s`` per image or per data set) they give exactly edges.py's images of ``x``
divided by ``s`` (the Laplacian without its +128 offset).  The three channels then have
very different spreads (on FER faces the Laplacian's is a few per cent of the face's), so
``standardize=True`` (the default with more than one channel) ends the layer with a
parameter-free per-channel standardisation, a ``BatchNorm2d(affine=False)``: each channel
is divided by its standard deviation over the training batches (batch statistics while
training, their running average -- data-set statistics -- at evaluation).  A decision of
ours: the paper says nothing about how the channels were scaled.  With the face alone
(``"O"``) the layer is the identity, so the O rows are the reference networks exactly.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

CHANNEL_SETS: dict[str, tuple[str, ...]] = {
    "O": ("O",),
    "O+S": ("O", "S"),
    "O+L": ("O", "L"),
    "O+S+L": ("O", "S", "L"),
}
"""The input channel sets of Tables I and II (plus all three), by name; order O, S, L."""

CHANNEL_NAMES = {"O": "original face", "S": "Sobel gradient magnitude", "L": "Laplacian"}


def channel_set(channels: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """``"O+L"``, ``"o-l"``, ``("O", "L")`` -> ``("O", "L")``; a ValueError naming the choices otherwise.

    The face must come first and each channel may appear once, in the order O, S, L.
    """
    if isinstance(channels, str):
        parts = tuple(p.strip().upper() for p in channels.replace("-", "+").split("+") if p.strip())
    else:
        parts = tuple(str(p).strip().upper() for p in channels)
    for spec in CHANNEL_SETS.values():
        if parts == spec:
            return spec
    raise ValueError(f"unknown input channels {channels!r}; expected one of {', '.join(CHANNEL_SETS)} "
                     "(the face first, then S and/or L in that order)")


def channel_set_name(channels) -> str:
    """The canonical name of a channel set: ``("O", "L")`` -> ``"O+L"``."""
    return "+".join(channel_set(channels))


def _kernels() -> torch.Tensor:
    """(3, 1, 3, 3): Sobel d/dx, Sobel d/dy (OpenCV's ksize=3 kernels), the 4-neighbour Laplacian (ksize=1)."""
    sobel_x = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])
    laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    return torch.stack([sobel_x, sobel_x.T.contiguous(), laplacian]).unsqueeze(1)


class EdgeChannels(nn.Module):
    """(B, 1, H, W) face batch -> (B, k, H, W): the channels of ``channels`` (see the module docstring).

    Args:
        channels: a channel set, ``"O"``, ``"O+S"``, ``"O+L"`` or ``"O+S+L"``.
        standardize: end with a per-channel standardisation (``BatchNorm2d(k, affine=False)``);
            default: with more than one channel.  No parameters either way (running
            statistics are buffers).
        offset: add ``edges.LAPLACIAN_OFFSET`` (128) to the Laplacian, as the uint8 image
            of chapter 01 does; default False (a constant a standardisation removes anyway).

    ``edge_images(x)`` is the unstandardised stack (what the tests compare with
    :func:`ferlib.features.edges.edge_channels`); ``forward(x)`` standardises it.
    """

    def __init__(self, channels: str = "O+S+L", standardize: bool | None = None, offset: bool = False):
        super().__init__()
        from ..features.edges import LAPLACIAN_OFFSET, LAPLACIAN_SCALE, SOBEL_SCALE

        self.channels = channel_set(channels)
        self.sobel_scale, self.laplacian_scale = float(SOBEL_SCALE), float(LAPLACIAN_SCALE)
        self.laplacian_offset = float(LAPLACIAN_OFFSET) if offset else 0.0
        self.register_buffer("kernels", _kernels(), persistent=False)
        k = len(self.channels)
        if standardize is None:
            standardize = k > 1
        self.standardize = nn.BatchNorm2d(k, affine=False) if standardize else None

    @property
    def out_channels(self) -> int:
        return len(self.channels)

    def edge_images(self, x: torch.Tensor) -> torch.Tensor:
        """The stacked channels, unstandardised: face, ``|Sobel| * SOBEL_SCALE``, ``Laplacian * LAPLACIAN_SCALE``."""
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"EdgeChannels takes a grey batch (B, 1, H, W), got shape {tuple(x.shape)}")
        if self.channels == ("O",):
            return x
        work = x.float()
        with torch.autocast(device_type=x.device.type, enabled=False):  # fixed kernels in float32, even under bf16
            responses = F.conv2d(F.pad(work, (1, 1, 1, 1), mode="reflect"), self.kernels.float())
        out = [work]
        if "S" in self.channels:
            gx, gy = responses[:, 0:1], responses[:, 1:2]
            out.append(torch.sqrt(gx * gx + gy * gy) * self.sobel_scale)
        if "L" in self.channels:
            out.append(responses[:, 2:3] * self.laplacian_scale + self.laplacian_offset)
        return torch.cat(out, dim=1).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.edge_images(x)
        if self.standardize is not None:
            y = self.standardize(y)
        if x.is_contiguous(memory_format=torch.channels_last):
            y = y.contiguous(memory_format=torch.channels_last)
        return y

    def extra_repr(self) -> str:
        return f"channels={'+'.join(self.channels)}, standardize={self.standardize is not None}"


def front_layer(channels, in_channels: int) -> tuple[nn.Module, int]:
    """The front of a network taking ``channels`` from an ``in_channels`` batch: ``(module, channels out)``.

    ``in_channels == 1``: an :class:`EdgeChannels` computes the set from the grey face (an
    identity for ``"O"``).  ``in_channels == len(set)``: the batch already holds the stacked
    channels (e.g. :func:`ferlib.features.edges.edge_channels`, normalised): an identity.
    """
    spec = channel_set(channels)
    if in_channels == 1:
        layer = EdgeChannels(spec)
        return (nn.Identity() if spec == ("O",) else layer), len(spec)
    if in_channels == len(spec):
        return nn.Identity(), in_channels
    raise ValueError(f"input channels {'+'.join(spec)} need a grey batch (in_channels=1) or the "
                     f"{len(spec)} stacked channels (in_channels={len(spec)}), got in_channels={in_channels}")
