"""Test-time augmentation: the views are what they claim, flip TTA leaves a mirror-symmetric face alone,
and the probabilities are the mean over the views of the model's own evaluation input."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferlib.data.batches import DeviceBatchSource
from ferlib.data.transforms import BatchAugment, densenet_augment, ferplus_augment
from ferlib.evaluate.ensemble import mean_softmax
from ferlib.evaluate.tta import (
    DEFAULT_MARGIN,
    flip_invariance_gap,
    tencrop_margin,
    tta_batch_probabilities,
    tta_probabilities,
    tta_view,
    tta_views,
    view_names,
    views_per_image,
)


class Lopsided(nn.Module):
    """A model that is not mirror-invariant: a linear map of the flattened image."""

    def __init__(self, hw=12, classes=5, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(hw * hw, classes)

    def forward(self, x):
        return self.fc(x.flatten(1))

    def forward_with_features(self, x):  # what ferlib.evaluate.metrics.predict calls
        return self(x), x.flatten(1)


class PoolThenLinear(nn.Module):
    """Mirror-invariant: global average pooling throws the geometry away."""

    def __init__(self, classes=5):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(1, classes)

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


def batch(b=4, hw=12, seed=0):
    return torch.randn(b, 1, hw, hw, generator=torch.Generator().manual_seed(seed))


def test_view_counts_and_names():
    assert [views_per_image(m) for m in ("none", "flip", "tencrop")] == [1, 2, 10]
    assert view_names("flip") == ["plain", "flipped"]
    assert len(view_names("tencrop")) == 10 and view_names("tencrop")[4] == "centre"
    with pytest.raises(ValueError, match="unknown test-time augmentation"):
        views_per_image("fivecrop")


def test_flip_view_mirrors_left_right():
    x = batch()
    v = tta_views(x, "flip")
    assert v.shape == (2, *x.shape)
    assert torch.equal(v[0], x)
    assert torch.equal(v[1][..., 0], x[..., -1])  # first column of the mirror = last column of the face
    assert torch.equal(v[1][..., 0, :], x[..., 0, :].flip(-1))  # rows stay where they are (not a vertical flip)


def test_tencrop_views_are_shifts_of_the_input():
    x, m = batch(hw=10), 3
    v = tta_views(x, "tencrop", margin=m)
    assert v.shape == (10, *x.shape)
    assert torch.equal(v[4], x)  # the centre crop of the padded input is the input
    padded = F.pad(x, (m, m, m, m))
    assert torch.equal(v[0], padded[..., :10, :10])  # top-left window: content shifted by (+m, +m)
    assert torch.equal(v[0][..., m:, m:], x[..., :10 - m, :10 - m])
    assert torch.equal(v[3][..., :10 - m, :10 - m], x[..., m:, m:])  # bottom-right: shifted by (-m, -m)
    assert (v[0][..., :m, :] == 0).all()  # the margin is zero, the mean after normalisation
    for k in range(5):
        assert torch.equal(v[5 + k], v[k].flip(-1))
    with pytest.raises(ValueError, match="margin"):
        tta_view(x, "tencrop", 0, margin=0)
    with pytest.raises(IndexError):
        tta_view(x, "flip", 2)


def test_flip_tta_of_a_symmetric_face_is_the_plain_prediction():
    model = Lopsided().eval()
    half = batch(hw=12)[..., :6]
    symmetric = torch.cat([half, half.flip(-1)], -1)
    assert torch.equal(symmetric, symmetric.flip(-1))
    plain = tta_batch_probabilities(model, symmetric, "none")
    torch.testing.assert_close(tta_batch_probabilities(model, symmetric, "flip"), plain)
    lopsided = batch(hw=12)  # and a face that is not symmetric does change (so the test above can fail)
    assert not torch.allclose(tta_batch_probabilities(model, lopsided, "flip"),
                              tta_batch_probabilities(model, lopsided, "none"), atol=1e-4)


def test_tta_probabilities_are_the_mean_over_views():
    model = Lopsided().eval()
    x = batch(b=6)
    for mode in ("flip", "tencrop"):
        want = torch.stack([torch.softmax(model(v), 1) for v in tta_views(x, mode, DEFAULT_MARGIN)]).mean(0)
        got = tta_batch_probabilities(model, x, mode)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(got.sum(1), torch.ones(6))


def test_tta_over_an_eval_source_uses_its_transform_and_order():
    pixels = np.random.default_rng(0).integers(0, 256, size=(11, 48, 48), dtype=np.uint8)
    labels = np.arange(11) % 5
    aug = BatchAugment(crop_margin=2, flip=True, out_size=12)
    source = DeviceBatchSource.for_eval(pixels, labels, batch_size=4, augment=aug)
    model = Lopsided().train()
    probs, y = tta_probabilities(model, source, "tencrop")
    assert model.training  # the mode is restored
    assert probs.shape == (11, 5) and torch.equal(y, torch.as_tensor(labels))
    x = torch.cat([b[0] for b in source])  # the model's evaluation input, 12 x 12
    model.eval()
    torch.testing.assert_close(probs, tta_batch_probabilities(model, x, "tencrop", margin=2))
    # none = plain softmax of the evaluation input
    torch.testing.assert_close(tta_probabilities(model, source, "none")[0], torch.softmax(model(x), 1))


def test_tencrop_margin_follows_the_training_crop():
    assert tencrop_margin(densenet_augment()) == 4
    assert tencrop_margin(BatchAugment(crop_margin=3)) == 3
    assert tencrop_margin(BatchAugment(crop_margin=3).to_dict()) == 3
    assert tencrop_margin(ferplus_augment(64)) == round(0.08 * 64)
    assert tencrop_margin(BatchAugment()) == DEFAULT_MARGIN
    assert tencrop_margin(None) == DEFAULT_MARGIN


def test_mean_softmax_with_tta():
    pixels = np.random.default_rng(1).integers(0, 256, size=(9, 12, 12), dtype=np.uint8)
    source = DeviceBatchSource.for_eval(pixels, np.zeros(9, dtype=np.int64), batch_size=5)
    model = Lopsided()
    sds = [{k: v.clone() for k, v in Lopsided(seed=s).state_dict().items()} for s in (1, 2)]
    got = mean_softmax(model, sds, {"s": source}, tta="flip")["s"]
    want = []
    for sd in sds:
        model.load_state_dict(sd)
        want.append(tta_probabilities(model, source, "flip")[0].numpy())
    np.testing.assert_allclose(got, np.mean(want, 0), rtol=1e-6, atol=1e-7)
    plain = mean_softmax(model, sds[:1], {"s": source})["s"]  # the default is unchanged: no TTA
    model.load_state_dict(sds[0])
    np.testing.assert_allclose(plain, tta_probabilities(model, source, "none")[0].numpy(), rtol=1e-6, atol=1e-7)


def test_flip_invariance_gap():
    pixels = np.random.default_rng(2).integers(0, 256, size=(8, 12, 12), dtype=np.uint8)
    source = DeviceBatchSource.for_eval(pixels, np.zeros(8, dtype=np.int64), batch_size=3)
    assert flip_invariance_gap(PoolThenLinear(), source) == pytest.approx(0.0, abs=1e-7)
    assert flip_invariance_gap(Lopsided(), source) > 1e-3


def test_bad_batches_are_refused():
    with pytest.raises(ValueError, match="float"):
        tta_views(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), "flip")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        tta_views(torch.zeros(4, 4), "flip")
