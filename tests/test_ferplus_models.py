"""Chapter 08's networks: the input channels (order and values against chapter 01's edges), VGG13 and the
light network (parameter counts, shapes, the feature interface)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ferlib.data.normalize import ChannelStandardizer, ImageStandardizer
from ferlib.data.synthetic import make_synthetic_faces
from ferlib.features.edges import LAPLACIAN_OFFSET, edge_channels, laplacian_image, sobel_image
from ferlib.models import (CHANNEL_SETS, EdgeChannels, build_model, channel_set, count_parameters,
                           light_net_parameter_count, vgg13_parameter_count)


def as_batch(faces: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(faces, dtype=np.float32)).unsqueeze(1)


@pytest.mark.parametrize("spec, want", [("O", ("O",)), ("O+S", ("O", "S")), ("o-l", ("O", "L")),
                                        (("O", "S", "L"), ("O", "S", "L")), ("O+L", ("O", "L"))])
def test_channel_sets(spec, want):
    assert channel_set(spec) == want


@pytest.mark.parametrize("bad", ["S", "L+O", "O+L+S", "O+O", "O+X", ""])
def test_channel_sets_refuse_other_orders(bad):
    with pytest.raises(ValueError, match="unknown input channels"):
        channel_set(bad)


@pytest.mark.parametrize("name", sorted(CHANNEL_SETS))
def test_stacking_order_and_values_match_chapter_01(name):
    """Each channel is edges.py's image (O, then S, then L), up to edges.py's rounding to uint8."""
    faces = make_synthetic_faces(n_per_class=3).pixels
    got = EdgeChannels(name, offset=True).edge_images(as_batch(faces)).numpy()
    want = {"O": faces, "S": sobel_image(faces), "L": laplacian_image(faces)}
    assert got.shape == (len(faces), len(CHANNEL_SETS[name]), 48, 48)
    for i, c in enumerate(CHANNEL_SETS[name]):
        assert np.abs(got[:, i] - want[c]).max() <= 0.5 + 1e-3, c


def test_edges_equal_chapter_01_on_real_faces(real_fer2013):
    faces = real_fer2013.pixels[::997]
    got = EdgeChannels("O+S+L", offset=True).edge_images(as_batch(faces)).numpy()
    want = edge_channels(faces).astype(np.float32)
    np.testing.assert_array_equal(got[:, 0], want[:, 0])
    assert np.abs(got[:, 1:] - want[:, 1:]).max() <= 0.5 + 1e-3
    assert np.abs(np.rint(got[:, 1:]) - want[:, 1:]).max() <= 1  # rounding of exact .5 ties aside


def test_laplacian_and_sobel_of_a_constant_face_are_zero():
    flat = torch.full((2, 1, 48, 48), 137.0)
    out = EdgeChannels("O+S+L").edge_images(flat)
    assert torch.equal(out[:, 0], flat[:, 0])
    assert torch.count_nonzero(out[:, 1:]) == 0
    assert torch.all(EdgeChannels("O+L", offset=True).edge_images(flat)[:, 1] == LAPLACIAN_OFFSET)
    ramp = torch.arange(48.0).repeat(48, 1).expand(1, 1, 48, 48)  # linear: zero Laplacian inside
    assert torch.count_nonzero(EdgeChannels("O+L").edge_images(ramp)[:, 1, 1:-1, 1:-1]) == 0


@pytest.mark.parametrize("normalizer", ["channel", "image"])
def test_edges_of_a_standardised_face_are_the_face_edges_over_its_scale(normalizer):
    """The layer sees standardised faces z = (x - m) / s: S(z) = S(x) / s and L(z) = L(x) / s (module docstring)."""
    faces = make_synthetic_faces(n_per_class=3).pixels
    x = as_batch(faces)
    if normalizer == "channel":
        norm = ChannelStandardizer.fit(faces)
        s = norm.std
    else:
        norm = ImageStandardizer()
        s = x.std(dim=(-3, -2, -1), keepdim=True)
    layer = EdgeChannels("O+S+L")
    torch.testing.assert_close(layer.edge_images(norm(x))[:, 1:] * s, layer.edge_images(x)[:, 1:],
                               atol=2e-3, rtol=1e-4)


def test_standardised_channels_and_passthrough():
    faces = as_batch(make_synthetic_faces(n_per_class=4).pixels)
    layer = EdgeChannels("O+S+L")
    assert layer.standardize is not None and EdgeChannels("O").standardize is None
    out = layer.train()(faces)
    torch.testing.assert_close(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-2, rtol=0)
    assert sum(p.numel() for p in layer.parameters()) == 0
    m = build_model("light-net", in_channels=3, channels="O+S+L")  # already stacked: no front layer
    assert isinstance(m.features[0], torch.nn.Identity)
    with pytest.raises(ValueError, match="in_channels=2"):
        build_model("vgg13", in_channels=2, channels="O+S+L")


def test_vgg13_parameter_count_and_the_papers_8_75_million():
    m = build_model("vgg13", num_classes=8, in_channels=1, channels="O")
    n = count_parameters(m)
    assert n == vgg13_parameter_count() == 8_757_704
    weights = sum(p.numel() for name, p in m.named_parameters() if name.endswith("weight"))
    assert weights == vgg13_parameter_count(biases=False) == 8_753_728
    assert round(weights / 1e6, 2) == 8.75 and round(n / 1e6, 2) == 8.76  # the paper's figure is the weights
    for spec in ("O+S", "O+L", "O+S+L"):
        k = len(CHANNEL_SETS[spec])
        assert count_parameters(build_model("vgg13", channels=spec)) == n + 9 * 64 * (k - 1) == \
            vgg13_parameter_count(channels=k)


def test_light_net_parameter_count_is_the_papers_0_36_million():
    counts = {spec: count_parameters(build_model("light-net", num_classes=8, channels=spec)) for spec in CHANNEL_SETS}
    for spec, n in counts.items():
        assert n == light_net_parameter_count(channels=len(CHANNEL_SETS[spec]))
        assert round(n / 1e6, 2) == 0.36, (spec, n)
    assert round(vgg13_parameter_count() / counts["O"]) == 24  # "1/24th the number of parameters"


@pytest.mark.parametrize("name", ["vgg13", "light-net"])
@pytest.mark.parametrize("spec", ["O", "O+S+L"])
def test_forward_shapes_and_features(name, spec):
    torch.manual_seed(0)
    m = build_model(name, num_classes=8, in_channels=1, channels=spec).eval()
    x = torch.randn(3, 1, 64, 64)
    logits, features = m.forward_with_features(x)
    assert logits.shape == (3, 8) and features.shape == (3, m.feature_dim)
    torch.testing.assert_close(m(x), logits)
    torch.testing.assert_close(m.classifier(features), logits)  # the classifier reads the deep features
    cl = m.to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cl(x.contiguous(memory_format=torch.channels_last))
    assert out.shape == (3, 8) and torch.isfinite(out.float()).all()
