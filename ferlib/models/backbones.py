"""ImageNet backbones with the ferlib model interface: ResNet-50 (cl-resnet50 paper) and ResNet-18.

cl-resnet50-center-loss, Sec. 3 and Table 1: torchvision's ResNet-50 pre-trained on
ImageNet, its last fully connected layer replaced by a 7-way one; "the output
features of average pooling layer with 2048 units are the deep features" on which
the center loss acts.  Input 224x224, the grey face stacked to three channels
(:func:`ferlib.data.transforms.cl_resnet50_augment`).

Interface shared by ferlib models: ``forward(x) -> logits``,
``forward_with_features(x) -> (logits, features)`` with ``features`` the
average-pooled ``(B, feature_dim)`` deep features, ``feature_dim`` (2048 for
ResNet-50, 512 for ResNet-18), ``classifier`` (the new ``nn.Linear``) and
``.features``, the module that maps an image batch to those deep features (here the
torchvision network without its ``fc``, kept as ``backbone`` so state-dict keys match
torchvision's).

ImageNet weights (``pretrained``)
---------------------------------
Nothing is downloaded at import.  At construction:

* ``"try"`` (default): use torchvision's weights (``ResNet50_Weights.IMAGENET1K_V2``)
  if they are in the torch hub cache (``torch.hub.get_dir()/checkpoints``); otherwise
  try to download them there, with a socket timeout of :data:`DOWNLOAD_TIMEOUT_S`
  seconds and the file's hash checked; if that fails too (no network, say), warn and
  keep the random initialisation.
* ``"cache"``: the hub cache only -- never touches the network; else random init + warning.
* ``True``: cache, else download; a failure raises ``RuntimeError``.
* ``False`` / ``None`` / ``"none"``: random initialisation (torchvision's default init).
* any other string: a path to a state-dict file (ImageNet-shaped, ``fc`` ignored).

``weights_source`` says what happened -- ``"imagenet:IMAGENET1K_V2"``,
``"file:PATH"``, ``"random-init"`` or ``"random-init (ImageNet weights unavailable:
REASON)"`` -- and :func:`ferlib.train.results.run_recipe` records it in the results
file as ``model_weights``.  On a machine without network, put the file in the cache
beforehand (``python -c "from ferlib.models.backbones import fetch_imagenet_weights;
fetch_imagenet_weights('resnet50')"`` where there is network, then copy
``~/.cache/torch/hub/checkpoints/resnet50-11ad3fa6.pth``) or pass its path.

A checkpoint rebuilds the architecture with the recipe's ``model_kwargs`` before
loading its own weights, so loading a trained model also resolves ``pretrained``
(a cache hit, or one short failed download attempt, then the checkpoint's weights
replace them).

``in_channels = 1`` replaces the first convolution by a one-channel one; with
ImageNet weights its kernel is the sum of the RGB kernels (the same response to a
grey image stacked to RGB).
"""
from __future__ import annotations

import contextlib
import os
import socket
import warnings
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import torch
from torch import nn


__all__ = ["TorchvisionResNetFER", "ResNet50FER", "ResNet18FER", "fetch_imagenet_weights",
           "imagenet_cache_path", "DOWNLOAD_TIMEOUT_S"]

DOWNLOAD_TIMEOUT_S = 10.0

# arch -> (torchvision builder name, weights enum name, weights member, feature dim)
_ARCHS = {
    "resnet50": ("resnet50", "ResNet50_Weights", "IMAGENET1K_V2", 2048),
    "resnet18": ("resnet18", "ResNet18_Weights", "IMAGENET1K_V1", 512),
}


def _weights(arch: str):
    import torchvision.models as tvm

    _, enum_name, member, _ = _ARCHS[arch]
    return getattr(getattr(tvm, enum_name), member)


def imagenet_cache_path(arch: str = "resnet50") -> Path:
    """Where torch hub keeps (or would keep) the ImageNet weights of ``arch``."""
    url = _weights(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def fetch_imagenet_weights(arch: str = "resnet50", *, download: bool = True,
                           timeout_s: float = DOWNLOAD_TIMEOUT_S) -> dict:
    """The ImageNet state dict of ``arch`` from the hub cache, else (``download``) fetched into it.

    Raises ``FileNotFoundError`` when not cached and ``download`` is False, and whatever the
    download raises (``URLError``, ``OSError``, a hash mismatch ``RuntimeError``) otherwise.
    """
    w = _weights(arch)
    path = imagenet_cache_path(arch)
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    if not download:
        raise FileNotFoundError(f"not in the torch hub cache: {path}")
    with _socket_timeout(timeout_s):
        return torch.hub.load_state_dict_from_url(w.url, map_location="cpu", progress=False, check_hash=True)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:200] if msg else type(e).__name__


class TorchvisionResNetFER(nn.Module):
    """A torchvision ResNet with a new ``num_classes`` classifier; see the module docstring."""

    def __init__(self, arch: str = "resnet50", num_classes: int = 7, in_channels: int = 3,
                 pretrained: bool | str | None = "try"):
        super().__init__()
        import torchvision.models as tvm

        if arch not in _ARCHS:
            raise KeyError(f"unknown arch {arch!r}; expected one of {sorted(_ARCHS)}")
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
        builder, _, member, feature_dim = _ARCHS[arch]
        self.arch = arch
        net = getattr(tvm, builder)(weights=None)  # random init; never downloads
        state, self.weights_source = self._resolve_weights(arch, member, pretrained)
        if state is not None:
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            if set(missing) - {"fc.weight", "fc.bias"} or unexpected:
                raise ValueError(f"{self.weights_source}: weights do not fit {arch} "
                                 f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})")
        if in_channels == 1:
            old = net.conv1
            conv = nn.Conv2d(1, old.out_channels, kernel_size=old.kernel_size, stride=old.stride,
                             padding=old.padding, bias=False)
            with torch.no_grad():
                conv.weight.copy_(old.weight.sum(dim=1, keepdim=True))
            net.conv1 = conv
        net.fc = nn.Identity()
        self.backbone = net
        self.feature_dim: int = feature_dim
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.classifier = nn.Linear(feature_dim, num_classes)

    @staticmethod
    def _resolve_weights(arch: str, member: str, pretrained) -> tuple[dict | None, str]:
        if pretrained is None or pretrained is False or (isinstance(pretrained, str) and pretrained.lower() == "none"):
            return None, "random-init"
        if isinstance(pretrained, str) and pretrained not in ("try", "cache"):
            path = Path(pretrained).expanduser()
            return torch.load(path, map_location="cpu", weights_only=True), f"file:{path}"
        if pretrained not in (True, "try", "cache"):
            raise ValueError(f"pretrained must be True, False, 'try', 'cache', 'none' or a path; got {pretrained!r}")
        try:
            state = fetch_imagenet_weights(arch, download=pretrained != "cache")
        except Exception as e:  # noqa: BLE001 - no network, DNS, timeout, corrupt cache file, hash mismatch
            if pretrained is True:
                raise RuntimeError(f"{arch}: ImageNet weights ({member}) could not be loaded from "
                                   f"{imagenet_cache_path(arch)} nor downloaded: {_short(e)}") from e
            reason = _short(e)
            warnings.warn(f"{arch}: ImageNet weights unavailable ({reason}); training from random "
                          f"initialisation. Put the file at {imagenet_cache_path(arch)} to use them.",
                          RuntimeWarning, stacklevel=4)
            return None, f"random-init (ImageNet weights unavailable: {reason})"
        return state, f"imagenet:{member}"

    @property
    def features(self) -> nn.Module:
        """The module that maps an image batch to the average-pooled deep features ``(B, feature_dim)``:
        torchvision's network with ``fc`` replaced by ``Identity`` (conv stages, avgpool, flatten)."""
        return self.backbone

    def forward_with_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.classifier(f), f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, feature_dim={self.feature_dim}, weights={self.weights_source!r}"


class ResNet50FER(TorchvisionResNetFER):
    """cl-resnet50's backbone: ResNet-50, 2048-d deep features, 7-way classifier."""

    def __init__(self, num_classes: int = 7, in_channels: int = 3, pretrained: bool | str | None = "try"):
        super().__init__("resnet50", num_classes=num_classes, in_channels=in_channels, pretrained=pretrained)


class ResNet18FER(TorchvisionResNetFER):
    """ResNet-18 with the same interface (512-d features), for quick CPU demos and tests.
    Random initialisation by default; ``pretrained="try"`` uses ``IMAGENET1K_V1``."""

    def __init__(self, num_classes: int = 7, in_channels: int = 3, pretrained: bool | str | None = False):
        super().__init__("resnet18", num_classes=num_classes, in_channels=in_channels, pretrained=pretrained)


BACKBONES: dict[str, Callable[..., nn.Module]] = {"resnet50": ResNet50FER, "resnet18": ResNet18FER}
