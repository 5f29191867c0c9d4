"""The DNNRL network (DNNRL Table 1): sizes, parameter and op counts beside the paper, ceil-mode pooling,
unit-norm embeddings, the optional softmax head, and the fast CPU path (channels_last + bf16)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ferlib.models import DNNRLNet, InceptionModule, build_model, count_parameters, table1
from ferlib.models.dnnrl import PAPER_INPUT_SIZE, TABLE_1, dnnrl_net, weight_count


@pytest.fixture(autouse=True)
def _one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def table():
    torch.manual_seed(0)
    return table1(as_frame=False)


def faces(n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, PAPER_INPUT_SIZE, PAPER_INPUT_SIZE, generator=g)


def test_every_table_1_output_size(table):
    assert [r["output"] for r in table] == [row[2] for row in TABLE_1] == [
        "54×54×32", "54×54×32", "54×54×64", "27×27×64", "27×27×256", "13×13×256", "13×13×288", "6×6×288",
        "6×6×288", "2×2×288", "2×2×288", "1×1×512"]
    assert [r["layer"] for r in table] == [row[0] for row in TABLE_1]


@pytest.mark.parametrize("module,paper", [("inception3a", 203_000), ("inception4a", 823_000),
                                          ("inception5a", 926_000)])
def test_inception_parameters_within_5_percent_of_table_1(table, module, paper):
    row = next(r for r in table if r["module"] == module)
    assert row["paper params"] == paper
    assert abs(row["params"] - paper) / paper < 0.05, row
    assert abs(row["ops"] - row["paper ops"]) / row["paper ops"] < 0.05, row  # ops follow: weights x H x W


def test_convolution_and_linear_counts_match_table_1(table):
    rows = {r["module"]: r for r in table}
    assert [rows[f"conv{i}"]["params"] for i in (1, 2, 3)] == [288, 9 * 32 * 32, 9 * 32 * 64]  # 288, "9K", "18K"
    assert rows["conv1"]["ops"] == 288 * 54 * 54 == 839_808  # "839K": Table 1's ops are multiply-adds
    assert rows["embedding"]["params"] == 589_824 == 1152 * 512  # "589K"
    assert rows["embedding"]["all params"] == 589_824 + 512  # + bias
    assert rows["embedding"]["ops"] == 589_824


def test_no_reduction_modules_are_proportional_to_their_input():
    """4a and 5a: 823K / 256 = 926K / 288 = 3215 -- weights = in_channels x (n1 + 9 n3 + 25 n5)."""
    m = DNNRLNet()
    for name, c_in in (("inception4a", 256), ("inception5a", 288)):
        assert weight_count(getattr(m.features, name)) == c_in * (80 + 9 * 128 + 25 * 80)
    googlenet_3a = InceptionModule(64, 64, 128, 32, reduce3x3=96, reduce5x5=16, pool_proj=32)
    assert googlenet_3a.out_channels == 256
    assert weight_count(googlenet_3a) == 136_704  # GoogLeNet's 3a widths: 137K, far from Table 1's 203K
    assert googlenet_3a(torch.randn(2, 64, 27, 27)).shape == (2, 256, 27, 27)


def test_inception_module_rejects_empty_branches():
    with pytest.raises(ValueError, match="branch widths"):
        InceptionModule(64, 0, 128, 32)


def test_ceil_mode_pooling_gives_table_1_sizes_and_floor_does_not():
    m = DNNRLNet().eval()
    pools = [m.features.pool1, m.features.pool2, m.features.pool3]
    assert all(p.ceil_mode for p in pools)

    def sizes(net):
        x, out = faces(1), []
        with torch.no_grad():
            for name, layer in net.features.named_children():
                x = layer(x)
                if name in ("pool1", "pool2", "pool3", "avgpool"):
                    out.append(x.shape[-1])
        return out

    assert sizes(m) == [27, 13, 6, 2]
    for p in pools:
        p.ceil_mode = False
    assert sizes(m) == [26, 12, 5, 1]  # floor: a 1×1×288 map cannot feed the 1152-input linear layer
    with pytest.raises(RuntimeError):
        m.forward_with_features(faces(1))


@torch.no_grad()
def test_unit_norm_embedding_and_softmax_head():
    torch.manual_seed(0)
    m = dnnrl_net(num_classes=7).eval()
    logits, emb = m.forward_with_features(faces(3))
    assert logits.shape == (3, 7) and emb.shape == (3, 512) == (3, m.feature_dim)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert torch.equal(m(faces(3)), logits)
    # the head reads the 512-vector before normalisation: its logits are not bounded by the weight norms
    z = m.embedding(torch.flatten(m.features(faces(3)), 1))
    torch.testing.assert_close(logits, m.classifier(z))
    d = torch.cdist(emb, emb) ** 2
    assert float(d.max()) <= 4.0 + 1e-5  # relative distances of unit vectors lie in [-4, 4]


def test_embedding_only_network_has_no_logits():
    torch.manual_seed(0)
    m = build_model("dnnrl-net", num_classes=7, in_channels=1, classifier=False).eval()
    assert m.classifier is None
    logits, emb = m.forward_with_features(faces(2))
    assert logits is None and torch.equal(m(faces(2)), emb)
    assert count_parameters(m) == count_parameters(DNNRLNet()) - (512 * 7 + 7)


def test_wrong_input_size_is_explained():
    with pytest.raises(ValueError, match="108"):
        DNNRLNet()(torch.zeros(1, 1, 48, 48))
    with pytest.raises(ValueError, match="dropout"):
        DNNRLNet(dropout=1.0)


def test_cpu_variant_keeps_every_layer_and_its_pool_equals_table_1s_at_108():
    from ferlib.models.dnnrl import final_map_side

    assert final_map_side(PAPER_INPUT_SIZE) == 6 and final_map_side(64) == 4
    small, paper = DNNRLNet(input_size=64), DNNRLNet()
    assert count_parameters(small) == count_parameters(paper)  # the same layers, the 1,152-input linear layer kept
    assert isinstance(paper.features.avgpool, torch.nn.AvgPool2d)  # Table 1 itself is untouched
    small.load_state_dict(paper.state_dict())
    paper.eval(), small.eval()
    with torch.no_grad():
        maps = paper.features[:-1](faces(2))  # the 6x6 map of a 108-px face
        assert torch.allclose(small.features.avgpool(maps), paper.features.avgpool(maps))
        assert small(torch.randn(2, 1, 64, 64)).shape == (2, 7)
    with pytest.raises(ValueError, match="64, 64"):
        small(faces(1))
    with pytest.raises(ValueError, match="larger input_size"):
        DNNRLNet(input_size=24)


def test_dropout_is_active_in_training_only():
    torch.manual_seed(0)
    m = DNNRLNet(classifier=False)
    x = faces(2)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    assert not torch.equal(m(x), m(x))


def test_channels_last_and_bf16_autocast_on_cpu():
    torch.manual_seed(0)
    m = DNNRLNet().eval()
    x = faces(2)
    with torch.no_grad():
        ref_logits, ref_emb = m.forward_with_features(x)
        m_cl = m.to(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, emb = m_cl.forward_with_features(x.contiguous(memory_format=torch.channels_last))
    assert emb.dtype == torch.float32  # normalised in float32
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2))
    assert float((emb - ref_emb).norm(dim=1).max()) < 0.1  # bf16: close, not equal
    assert torch.isfinite(logits).all() and logits.shape == ref_logits.shape
    m_cl.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = m_cl.forward_with_features(faces(4).contiguous(memory_format=torch.channels_last))[0].float().sum()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in m_cl.parameters() if p.grad is not None)


def test_weight_count_leaves_out_biases_and_batchnorm():
    block = nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4), nn.Linear(5, 6))
    assert weight_count(block) == 3 * 4 * 9 + 5 * 6
    assert count_parameters(block) == weight_count(block) + 4 + 8 + 6
