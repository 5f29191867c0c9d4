"""The weight initialisation the DenseNet and DNNRL models share.

DenseNet-CL §IV-C: "variance scaling initializer (He initializer)" for all weights -- He et al.
2015's ``std = sqrt(2 / fan_in)`` normal (``kaiming_normal_(mode="fan_in", nonlinearity="relu")``);
BatchNorm scale 1 and shift 0, biases 0.  DNNRL does not state its initialisation; the kit uses the
same rule so the two families start alike.
"""
from __future__ import annotations

from torch import nn


def he_init_(module: nn.Module) -> None:
    """He (fan_in) normal for every convolution and linear weight; BatchNorm 1/0; biases 0 (in place)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
