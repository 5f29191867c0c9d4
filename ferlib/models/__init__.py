"""Models: DenseNet family, the DNNRL inception network, backbones (+ pretrained weights), VGG13 and the light
network (FER+), EmoNet's two-input network."""

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
from .emonet import EmoNetFusion, emonet
from .input_channels import CHANNEL_SETS, EdgeChannels, channel_set
from .light_net import LightNet, light_net, light_net_parameter_count
from .vgg13 import VGG13, vgg13, vgg13_parameter_count
from .registry import MODELS, build_model, register_model
from .summary import count_flops, count_macs, count_parameters, layer_table, variant_table
