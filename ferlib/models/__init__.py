"""Models: DenseNet family, the DNNRL inception network, backbones."""

from .densenet import (
    DENSENET_VARIANTS,
    PAPER_INPUT_SIZE,
    BottleneckLayer,
    DenseBlock,
    DenseLayer,
    DenseNet,
    LastTransition,
    Transition,
    densenet,
    densenet_bc,
    wide_densenet,
    wide_densenet_bc,
)
from .dnnrl import DNNRLNet, InceptionModule, dnnrl_net, table1
from .registry import MODELS, build_model, register_model
from .summary import count_flops, count_macs, count_parameters, layer_table, variant_table
