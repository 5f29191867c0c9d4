"""Models by name, so recipes and checkpoints can say which model they hold.

``build_model(name, **kwargs)`` builds any registered model; a checkpoint stores the
name and kwargs and rebuilds the same architecture on load.
"""
from __future__ import annotations

from typing import Callable

from torch import nn

from .densenet import DENSENET_VARIANTS, DenseNet

MODELS: dict[str, Callable[..., nn.Module]] = dict(DENSENET_VARIANTS)


def _tiny_densenet(num_classes: int = 7, in_channels: int = 1, **kw) -> DenseNet:
    """A 2-layers-per-block DenseNet-BC (k=8) for tests and seconds-long CPU demos."""
    return DenseNet(layers_per_block=2, growth_rate=8, bottleneck=True, compression=0.5,
                    num_classes=num_classes, in_channels=in_channels, **kw)


MODELS["tiny-densenet"] = _tiny_densenet


def register_model(name: str, factory: Callable[..., nn.Module]) -> None:
    MODELS[name] = factory


def build_model(name: str, **kwargs) -> nn.Module:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    return MODELS[name](**kwargs)


from . import backbones  # noqa: E402,F401  -- registers "resnet50" and "resnet18" (no download at import)
