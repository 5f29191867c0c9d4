"""Batched affine augmentation: shapes, determinism, conventions, and the papers' presets."""
import math

import pytest
import torch
import torch.nn.functional as F

from ferlib.data.transforms import (PRESETS, AffineParams, BatchAugment, affine_theta, dnnrl_augment,
                                    ferplus_augment, get_augment, resize_batch, to_channels)

H = 48


def blobs(batch=1, size=H):
    """Smooth, asymmetric test images in [0, 1] that fade to ~0 at the border."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    c = size / 48
    img = (torch.exp(-((xx - 20 * c) ** 2 + (yy - 22 * c) ** 2) / (40 * c * c))
           + 0.5 * torch.exp(-((xx - 30 * c) ** 2 + (yy - 28 * c) ** 2) / (20 * c * c)))
    img = img / img.max()
    return img.expand(batch, 1, size, size).clone()


def rand_images(batch=8, seed=0):
    return torch.rand(batch, 1, H, H, generator=torch.Generator().manual_seed(seed))


def gen(seed):
    return torch.Generator().manual_seed(seed)


# --- presets ---------------------------------------------------------------------------------

EXPECTED = {"densenet": (1, 48), "emonet": (3, 197), "ferplus": (1, 64), "cl_resnet50": (3, 224),
            "dnnrl": (1, 108), "none": (1, 48)}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_shape_dtype_and_range(name):
    aug = get_augment(name)
    channels, size = EXPECTED[name]
    x = rand_images(4)
    out = aug(x, gen(0))
    assert out.shape == (4, channels, size, size) and out.dtype == torch.float32
    # bilinear mixes of values in [0, 1] and zero / border / reflected padding stay in [0, 1]
    assert out.min() >= 0.0 and out.max() <= 1.0 + 1e-6
    ev = aug.eval_transform(x)
    assert ev.shape == out.shape
    if channels == 3:  # stacked grey channel
        assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 0], out[:, 2])


def test_preset_parameters_follow_the_papers():
    d = PRESETS["densenet"]()
    assert (d.crop_margin, d.flip, d.rotation, d.out_size) == (4, True, 15.0, None)
    f = ferplus_augment()
    assert (f.translate, f.rotation, f.out_size, f.padding_mode) == (0.08, 20.0, 64, "reflection")
    assert math.isclose(math.tan(math.radians(f.shear)), 0.05)
    assert f.scale == pytest.approx((1 / 1.05, 1.05))
    r = dnnrl_augment()
    assert r.out_size == 108 and r.crop_margin == 6 and r.rotation == 15.0
    # the face is 96 +- 10 px inside a 108-px output
    assert [108 * r.base_scale * s for s in r.scale] == pytest.approx([86, 106])
    with pytest.raises(KeyError, match="unknown augmentation preset"):
        get_augment("alexnet")


def test_invalid_configuration_is_refused():
    with pytest.raises(ValueError, match="crop_margin"):
        BatchAugment(crop_margin=-1)
    with pytest.raises(ValueError, match="scale"):
        BatchAugment(scale=(1.2, 0.9))
    with pytest.raises(ValueError, match="padding_mode"):
        BatchAugment(padding_mode="constant")
    with pytest.raises(TypeError, match="float"):
        BatchAugment()(torch.zeros(2, 1, H, H, dtype=torch.uint8), gen(0))


# --- determinism -----------------------------------------------------------------------------

def test_same_seed_same_output_bitwise_different_seed_different():
    aug = PRESETS["densenet"]()
    x = rand_images(16)
    a, b = aug(x, gen(7)), aug(x, gen(7))
    assert torch.equal(a, b)
    c = aug(x, gen(8))
    assert not torch.allclose(a, c)
    # images in one batch get different transforms
    same = blobs(16)
    out = aug(same, gen(7))
    assert not torch.allclose(out[0], out[1])


def test_generator_on_another_device_is_refused():
    if not torch.cuda.is_available():
        pytest.skip("needs a GPU to have a generator on another device")
    with pytest.raises(ValueError, match="generator"):
        BatchAugment(rotation=10)(rand_images(2), torch.Generator(device="cuda"))


# --- geometry --------------------------------------------------------------------------------

def test_identity_config_returns_input():
    x = rand_images(4)
    assert BatchAugment().is_identity
    assert torch.allclose(BatchAugment()(x, gen(0)), x, atol=1e-5)


def test_identity_with_resize_equals_interpolate_and_eval_transform():
    x = rand_images(3)
    aug = BatchAugment(out_size=64, channels=3)
    ref = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    assert torch.allclose(aug(x, gen(0)), ref, atol=1e-5)  # the border is not darkened
    assert torch.allclose(aug.eval_transform(x), ref, atol=1e-6)
    assert torch.equal(resize_batch(x, None), x) and torch.equal(to_channels(x, 1), x)
    with pytest.raises(ValueError):
        to_channels(torch.zeros(1, 3, 4, 4), 1)


def test_forced_flip_is_a_mirror():
    x = rand_images(4)
    out = BatchAugment(flip=True, flip_p=1.0)(x, gen(0))
    assert torch.allclose(out, torch.flip(x, dims=[-1]), atol=1e-5)
    # p = 0.5 flips some images and leaves the others
    out = BatchAugment(flip=True)(x[:1].expand(64, 1, H, H), gen(0))
    flipped = torch.isclose(out, torch.flip(x[:1], dims=[-1]), atol=1e-5).flatten(1).all(1)
    assert 10 < int(flipped.sum()) < 54


def test_integer_shift_is_pad_then_crop():
    """crop_margin semantics: content moves by (tx, ty) output pixels, zeros come in."""
    x = rand_images(2)
    m, tx, ty = 4, 3, -2
    out = BatchAugment().apply(x, AffineParams.fixed(2, translate=(tx, ty)))
    padded = F.pad(x, (m, m, m, m))
    ref = padded[..., m - ty:m - ty + H, m - tx:m - tx + H]
    assert torch.allclose(out, ref, atol=1e-5)


def test_crop_margin_draws_every_integer_shift():
    aug = BatchAugment(crop_margin=2)
    p = aug.sample_params(2000, gen(0), out_hw=(H, H))
    assert set(p.translate_x.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}
    assert set(p.translate_y.tolist()) == {-2.0, -1.0, 0.0, 1.0, 2.0}


def test_rotation_matches_torchvision_counter_clockwise():
    tvf = pytest.importorskip("torchvision.transforms.functional")
    from torchvision.transforms import InterpolationMode
    x = blobs()
    for angle in (30.0, -20.0):
        ref = tvf.rotate(x, angle, interpolation=InterpolationMode.BILINEAR)
        out = BatchAugment().apply(x, AffineParams.fixed(1, angle=angle))
        assert (out - ref)[..., 8:-8, 8:-8].abs().max() < 0.01
        wrong_sign = BatchAugment().apply(x, AffineParams.fixed(1, angle=-angle))
        assert (wrong_sign - ref).abs().max() > 0.2


def test_random_rotation_stays_in_range():
    p = BatchAugment(rotation=15).sample_params(1000, gen(1))
    assert p.angle.abs().max() <= 15 and p.angle.min() < -14 and p.angle.max() > 14


def test_scale_above_one_zooms_in():
    x = blobs()
    out = BatchAugment().apply(x, AffineParams.fixed(1, scale=2.0))
    # the centre pixel stays, the point 4 px right of the centre shows what was 2 px right
    ref = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)[..., 24:72, 24:72]
    assert torch.allclose(out, ref, atol=1e-5)


def test_theta_of_flip_and_shift():
    p = AffineParams.fixed(1, flip=True, translate=(H / 2, 0))
    theta = affine_theta(p, (H, H))
    assert torch.allclose(theta[0], torch.tensor([[-1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]))


def test_dnnrl_single_affine_equals_the_papers_chain():
    """resize 96 -> scale to 96+d -> pad 120 -> rotate -> crop 108 == one warp (dnnrl §3.1)."""
    tvf = pytest.importorskip("torchvision.transforms.functional")
    from torchvision.transforms import InterpolationMode
    x = blobs()
    aug = dnnrl_augment()
    for d, angle, ox, oy in [(10, 12.0, 3, 9), (-10, -15.0, 0, 12)]:
        s = 96 + d
        z = F.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False)
        z = F.interpolate(z, size=(s, s), mode="bilinear", align_corners=False)
        pad = (120 - s) // 2
        z = tvf.rotate(F.pad(z, (pad,) * 4), angle, interpolation=InterpolationMode.BILINEAR)
        chain = z[..., oy:oy + 108, ox:ox + 108]
        out = aug.apply(x, AffineParams.fixed(1, angle=angle, scale=s / 96, translate=(6 - ox, 6 - oy)))
        diff = (out - chain).abs()
        assert diff.max() < 0.03 and diff.mean() < 1e-3  # three resamplings vs one
    # evaluation: resize 96, pad 120, centre crop 108
    ev = aug.eval_transform(x)
    ref = F.pad(F.interpolate(x, size=(96, 96), mode="bilinear", align_corners=False), (6,) * 4)
    assert torch.allclose(ev, ref, atol=1e-5)


def test_low_precision_input_keeps_dtype():
    x = rand_images(2).to(torch.bfloat16)
    out = PRESETS["densenet"]()(x, gen(0))
    assert out.dtype == torch.bfloat16 and out.shape == x.shape


def test_to_dict_is_plain():
    d = ferplus_augment().to_dict()
    assert d["scale"] == pytest.approx([1 / 1.05, 1.05]) and d["out_size"] == 64
    assert BatchAugment(**{**d, "scale": tuple(d["scale"])}) == ferplus_augment()
