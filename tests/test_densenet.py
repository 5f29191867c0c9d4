"""DenseNet of the densenet paper (Table I) and the model summaries."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ferlib.models import (
    DENSENET_VARIANTS,
    PAPER_INPUT_SIZE,
    DenseBlock,
    DenseNet,
    Transition,
    count_flops,
    count_parameters,
    densenet_bc,
    layer_table,
)

# name -> (k, bottleneck, θ); L = 12 layers per block for all four (Table I).
CONFIGS = {
    "densenet": (12, False, 1.0),
    "densenet-bc": (12, True, 0.5),
    "wide-densenet": (32, False, 1.0),
    "wide-densenet-bc": (32, True, 0.5),
}
# feature_dim worked out by hand: 2k + 3·12k (θ=1); 2k → +12k → ⌊/2⌋ → +12k → ⌊/2⌋ → +12k.
FEATURE_DIMS = {"densenet": 456, "densenet-bc": 258, "wide-densenet": 1216, "wide-densenet-bc": 688}


def closed_form_params(k, bottleneck, theta, L=12, blocks=3, in_ch=1, classes=7):
    """Parameter count from the architecture description alone (no bias in convs).

    In a block whose input has c channels, layer i sees c_i = c + i·k channels, and
    Σ_{i<L} c_i = L·c + k·L(L−1)/2. Per layer: BN 2·c_i, then
      plain: 3×3 conv c_i·k·9;
      bottleneck: 1×1 conv c_i·4k, BN 2·4k, 3×3 conv 4k·k·9.
    Transition p → ⌊θp⌋: BN 2p + 1×1 conv p·⌊θp⌋. Last: BN 2D + Linear D·classes + classes.
    """
    c = 2 * k
    total = in_ch * c * 9
    for b in range(blocks):
        s = L * c + k * L * (L - 1) // 2
        if bottleneck:
            total += 2 * s + 4 * k * s + L * (2 * 4 * k + 4 * k * k * 9)
        else:
            total += 2 * s + 9 * k * s
        c += L * k
        if b < blocks - 1:
            out = math.floor(theta * c)
            total += 2 * c + c * out
            c = out
    total += 2 * c + c * classes + classes
    return total, c


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: ctor().eval() for name, ctor in DENSENET_VARIANTS.items()}


def test_variants_registered():
    assert set(DENSENET_VARIANTS) == set(CONFIGS)
    assert PAPER_INPUT_SIZE == 42


@pytest.mark.parametrize("name", list(CONFIGS))
def test_parameter_count_closed_form(models, name):
    k, b, theta = CONFIGS[name]
    expected, dim = closed_form_params(k, b, theta)
    m = models[name]
    assert count_parameters(m) == expected
    assert m.feature_dim == dim == FEATURE_DIMS[name]
    assert (m.growth_rate, m.bottleneck, m.compression, m.layers_per_block) == (k, b, theta, 12)
    assert m.depth == 40  # 3L + 4
    assert m.weighted_depth == (76 if b else 40)
    assert isinstance(m.classifier, nn.Linear) and m.classifier.in_features == dim


@pytest.mark.parametrize("name", list(CONFIGS))
def test_forward_shapes_and_features(models, name):
    m = models[name]
    torch.manual_seed(1)
    with torch.no_grad():
        for side in (42, 48):
            x = torch.randn(2, 1, side, side)
            logits, feats = m.forward_with_features(x)
            assert logits.shape == (2, 7)
            assert feats.shape == (2, m.feature_dim)
            assert torch.equal(logits, m.classifier(feats))
            assert torch.allclose(m(x), logits)
            assert (feats >= 0).all()  # globally pooled ReLU outputs


def _sizes(rows):
    return [r["output_size"] for r in rows]


def test_layer_table_reproduces_table_I(models):
    rows = layer_table(models["densenet-bc"], (1, 42, 42), as_frame=False)
    assert [r["layer"] for r in rows] == [
        "conv", "denseblock1", "transition1", "denseblock2", "transition2",
        "denseblock3", "last_transition", "classifier",
    ]
    assert _sizes(rows) == ["21×21", "21×21", "10×10", "10×10", "5×5", "5×5", "1×1", "1×1"]
    assert [r["channels"] for r in rows] == [24, 168, 84, 228, 114, 258, 258, 7]
    assert sum(r["params"] for r in rows) == count_parameters(models["densenet-bc"])
    # 48×48 works too, with the larger map sizes.
    rows48 = layer_table(models["densenet"], (1, 48, 48), as_frame=False)
    assert _sizes(rows48) == ["24×24", "24×24", "12×12", "12×12", "6×6", "6×6", "1×1", "1×1"]
    df = layer_table(models["densenet"])  # DataFrame by default
    assert list(df["output_size"])[:6] == ["21×21", "21×21", "10×10", "10×10", "5×5", "5×5"]
    assert not models["densenet"].training  # mode restored


@pytest.mark.parametrize("name", list(CONFIGS))
def test_channel_bookkeeping(models, name):
    k, _, theta = CONFIGS[name]
    m = models[name]
    c = 2 * k
    assert m.features.conv.out_channels == c
    for child_name, child in m.features.named_children():
        if isinstance(child, DenseBlock):
            assert child.in_channels == c
            assert child.out_channels == c + 12 * k
            c = child.out_channels
        elif isinstance(child, Transition):
            assert child.in_channels == c
            assert child.out_channels == child.conv.out_channels == math.floor(theta * c)
            c = child.out_channels
    assert c == m.feature_dim
    assert Transition(7, 0.5).out_channels == 3
    with pytest.raises(ValueError):
        Transition(8, 0.0)


@pytest.mark.parametrize("bottleneck", [False, True])
def test_dense_block_keeps_its_input(bottleneck):
    torch.manual_seed(2)
    block = DenseBlock(num_layers=3, in_channels=5, growth_rate=4, bottleneck=bottleneck)
    x = torch.randn(2, 5, 6, 6)
    x0 = x.clone()
    y = block(x)  # train mode
    assert y.shape == (2, 5 + 3 * 4, 6, 6)
    assert torch.equal(y[:, :5], x0)
    assert torch.equal(x, x0)  # the in-place ReLUs did not touch the input
    # layer l's output is the next k channels, computed from everything before it
    block.eval()
    with torch.no_grad():
        y = block(x)
        assert torch.allclose(y[:, 5:9], block.layers[0](x))
        assert torch.allclose(y[:, 9:13], block.layers[1](y[:, :9]))


def test_he_init(models):
    m = models["wide-densenet"]
    conv = m.features.denseblock3.layers[-1].conv  # 1184 → 32, fan_in = 1184·9
    fan_in = conv.in_channels * 9
    std = conv.weight.std().item()
    assert abs(std / math.sqrt(2 / fan_in) - 1) < 0.15
    assert abs(conv.weight.mean().item()) < 0.1 * std
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.equal(mod.weight, torch.ones_like(mod.weight))
            assert torch.equal(mod.bias, torch.zeros_like(mod.bias))
        if isinstance(mod, nn.Conv2d):
            assert mod.bias is None
    assert torch.equal(m.classifier.bias, torch.zeros(7))


def test_channels_last_and_bf16_autocast():
    torch.manual_seed(3)
    m = densenet_bc().eval()
    x = torch.randn(2, 1, 42, 42)
    with torch.no_grad():
        ref = m(x)
        m_cl = m.to(memory_format=torch.channels_last)
        out = m_cl(x.to(memory_format=torch.channels_last))
        assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, feats = m_cl.forward_with_features(x.to(memory_format=torch.channels_last))
    assert logits.shape == (2, 7) and feats.shape == (2, m.feature_dim)
    assert torch.isfinite(logits.float()).all()
    # one training step in channels_last
    m_cl.train()
    logits = m_cl(torch.randn(4, 1, 42, 42).to(memory_format=torch.channels_last))
    logits.float().logsumexp(1).mean().backward()
    assert m_cl.features.conv.weight.grad is not None


def test_flop_convention():
    conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
    assert count_flops(conv, (1, 5, 5)) == 2 * 4 * 9 * 25  # FLOPs = 2·MACs
    assert count_flops(DenseNet(layers_per_block=2, growth_rate=4), (1, 42, 42)) > 0
