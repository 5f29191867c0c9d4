"""Models by name, so recipes and checkpoints can say which model they hold.

``build_model(name, **kwargs)`` builds any registered model; a checkpoint stores the
name and kwargs and rebuilds the same architecture on load.  The registry imports
the model modules (top-down); no model module imports it.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .backbones import BACKBONES
from .densenet import DENSENET_VARIANTS, DenseNet
from .dnnrl import DNNRL_VARIANTS
from .emonet import emonet
from .embedding_net import EmbeddingNet
from .light_net import light_net
from .vgg13 import vgg13


def _tiny_densenet(num_classes: int = 7, in_channels: int = 1, **kw) -> DenseNet:
    """A 2-layers-per-block DenseNet-BC (k=8) for tests and seconds-long CPU demos."""
    return DenseNet(layers_per_block=2, growth_rate=8, bottleneck=True, compression=0.5,
                    num_classes=num_classes, in_channels=in_channels, **kw)


MODELS: dict[str, Callable[..., nn.Module]] = {**DENSENET_VARIANTS, "tiny-densenet": _tiny_densenet,
                                               **BACKBONES, "embedding-net": EmbeddingNet,
                                               **DNNRL_VARIANTS,
                                               "vgg13": vgg13, "light-net": light_net,  # Sobel-Laplacian-CL
                                               "emonet": emonet}  # EmoNet's Fig. 5 (conv block ⊕ BOVW)


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    if name in MODELS:
        raise KeyError(f"model {name!r} is already registered")
    MODELS[name] = factory


def build_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)
