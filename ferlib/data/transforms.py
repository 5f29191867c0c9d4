"""Batched augmentation on the device: one affine matrix per image, one ``grid_sample``.

FER images are 48x48; augmenting them one at a time with PIL in DataLoader workers
leaves a GPU idle.  :class:`BatchAugment` instead augments a whole
batch ``x`` of shape (B, C, H, W) where it lives:

1. **Draw** every random number of the batch in one call,
   ``torch.rand((B, 10), generator=generator, device=x.device)``.  The stream
   consumption is fixed (10 floats per image, whatever the configuration), so two
   configurations seeded alike see the same underlying uniforms.
2. **Compose** flip, scale (zoom), shear, rotation and translation (crop-with-margin)
   into one 2x3 matrix per image (:func:`affine_theta`).
3. **Sample** once: ``F.affine_grid`` + ``F.grid_sample``.  Resizing is free: the
   output size of ``affine_grid`` is the output size of the augment.

Conventions (the same as torchvision's ``RandomAffine`` / ``rotate``):

* Angles are in degrees; a **positive rotation turns the face counter-clockwise**
  on screen (x to the right, y down).
* ``scale > 1`` **enlarges** the content (zoom in, the border is cut off);
  ``scale < 1`` shrinks it (padding shows).
* Translations are in **output pixels**; ``crop_margin=m`` is exactly
  "resize to the output size, pad ``m`` pixels on every side, crop a random
  window of the output size": an integer shift in ``[-m, m]`` on each axis.
* The forward map of content, in centred output-pixel coordinates ``q``, is
  ``q = T + R(angle) @ Shear(x, y) @ diag(scale_x, scale_y) @ Flip @ q0`` where
  ``q0`` is where the content would be after a plain resize: flip first,
  translation last.  ``affine_grid`` wants the inverse (output -> input), which
  :func:`affine_theta` builds in closed form.

**Padding and normalisation.** Batches are normalised *before* augmentation
(per-pixel statistics belong to pixel positions, DenseNet-CL §IV-C), so with
``padding_mode="zeros"`` the padding is the *mean* (0 after standardisation), not
black.  "zeros" means: a sample point inside the image's extent is interpolated
with edge clamping, one outside it is exactly 0.  This makes integer crop shifts
exactly pad-then-crop, and a plain upsample exactly ``F.interpolate`` (plain
``grid_sample(padding_mode="zeros")`` would darken the outer half pixel).
``"border"`` repeats the edge pixel, ``"reflection"`` mirrors the image (Barsoum et al.'s
FER+ reference code, ``mode='reflect'``).

**Determinism.** The output is a function of ``x``, the configuration and the
generator's state: the same seed gives bitwise the same output on CPU (and on one
GPU with one torch version; ``grid_sample``'s forward pass has no atomics).  The
generator must live on ``x``'s device: ``torch.Generator(device=x.device)``;
``generator=None`` uses the global RNG (seed it with ``torch.manual_seed``).

Presets reproduce each source paper's augmentation (see their docstrings):
``densenet`` (DenseNet-CL), ``emonet`` (EmoNet), ``ferplus`` (Sobel-Laplacian-CL, which
uses Barsoum et al.'s FER+ augmentation), ``cl_resnet50`` (CL-ResNet50) and ``dnnrl``
(DNNRL); :data:`PRESETS` maps names to them (paper keys: :mod:`ferlib.bibliography`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch
import torch.nn.functional as F

__all__ = [
    "AffineParams", "BatchAugment", "affine_theta", "resize_batch", "to_channels",
    "densenet_augment", "emonet_augment", "ferplus_augment", "cl_resnet50_augment",
    "dnnrl_augment", "PRESETS", "get_augment",
]

PADDING_MODES = ("zeros", "border", "reflection")
INTERPOLATION_MODES = ("bilinear", "nearest")
_N_DRAWS = 10  # uniforms per image: angle, sx, sy, shear x, shear y, tx, ty, crop x, crop y, flip


@dataclass
class AffineParams:
    """Per-image geometric parameters of one batch; every field is a (B,) tensor.

    angle : degrees, positive = counter-clockwise on screen.
    scale_x, scale_y : content scale factors (>1 enlarges).
    shear_x, shear_y : shear angles in degrees (x: parallel to the x axis).
    translate_x, translate_y : shift of the content in output pixels (+x right, +y down).
    flip : bool, mirror left-right (applied first).
    """

    angle: torch.Tensor
    scale_x: torch.Tensor
    scale_y: torch.Tensor
    shear_x: torch.Tensor
    shear_y: torch.Tensor
    translate_x: torch.Tensor
    translate_y: torch.Tensor
    flip: torch.Tensor

    @classmethod
    def identity(cls, batch: int, device="cpu", dtype=torch.float32) -> "AffineParams":
        zeros = torch.zeros(batch, device=device, dtype=dtype)
        ones = torch.ones(batch, device=device, dtype=dtype)
        return cls(zeros, ones, ones.clone(), zeros.clone(), zeros.clone(), zeros.clone(),
                   zeros.clone(), torch.zeros(batch, device=device, dtype=torch.bool))

    @classmethod
    def fixed(cls, batch: int, *, angle=0.0, scale=1.0, scale_y=None, shear_x=0.0, shear_y=0.0,
              translate=(0.0, 0.0), flip=False, device="cpu", dtype=torch.float32) -> "AffineParams":
        """The same transform for every image (for figures and tests)."""
        def full(v):
            return torch.full((batch,), float(v), device=device, dtype=dtype)
        return cls(full(angle), full(scale), full(scale if scale_y is None else scale_y),
                   full(shear_x), full(shear_y), full(translate[0]), full(translate[1]),
                   torch.full((batch,), bool(flip), device=device, dtype=torch.bool))


def affine_theta(params: AffineParams, out_hw: tuple[int, int], base_scale: float = 1.0) -> torch.Tensor:
    """The (B, 2, 3) ``affine_grid`` matrices (output -> input, normalised coordinates).

    Forward map in centred output pixels: ``q = t + R @ Sh @ S @ Flip @ q0`` with
    ``R = [[c, s], [-s, c]]`` (counter-clockwise on screen, y down),
    ``Sh = [[1, kx], [0, 1]] @ [[1, 0], [ky, 1]]`` (k = tan(shear)),
    ``S = base_scale * diag(scale_x, scale_y)``, ``Flip = diag(+-1, 1)``.
    The inverse ``A^-1 = S^-1 Flip Sh^-1 R^-1`` is written out below; normalised
    coordinates are ``n = D q`` with ``D = diag(2/W_out, 2/H_out)``, so
    ``theta = [D A^-1 D^-1 | -D A^-1 t]``.
    """
    h_out, w_out = out_hw
    a = torch.deg2rad(params.angle)
    c, s = torch.cos(a), torch.sin(a)
    kx = torch.tan(torch.deg2rad(params.shear_x))
    ky = torch.tan(torch.deg2rad(params.shear_y))
    sign = 1.0 - 2.0 * params.flip.to(a.dtype)
    sx = params.scale_x * (base_scale * sign)
    sy = params.scale_y * base_scale
    # M = Sh^-1 @ R^-1, with Sh^-1 = [[1, -kx], [-ky, 1 + kx ky]] and R^-1 = [[c, -s], [s, c]]
    kk = 1.0 + kx * ky
    m00 = (c - kx * s) / sx
    m01 = (-s - kx * c) / sx
    m10 = (kk * s - ky * c) / sy
    m11 = (kk * c + ky * s) / sy
    tx, ty = params.translate_x, params.translate_y
    row0 = torch.stack([m00, m01 * (h_out / w_out), -(2.0 / w_out) * (m00 * tx + m01 * ty)], dim=-1)
    row1 = torch.stack([m10 * (w_out / h_out), m11, -(2.0 / h_out) * (m10 * tx + m11 * ty)], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def resize_batch(x: torch.Tensor, size: int | tuple[int, int] | None, mode: str = "bilinear") -> torch.Tensor:
    """Deterministic resize of (B, C, H, W) to ``size`` (int = square); ``None`` = unchanged.

    Bilinear, ``align_corners=False``, no antialiasing: exactly what :class:`BatchAugment`
    does for an identity transform, so evaluation sees the training geometry.
    """
    if size is None:
        return x
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(x.shape[-2:]) == hw:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=hw, mode="nearest")
    return F.interpolate(x, size=hw, mode=mode, align_corners=False)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Stack a grey (B, 1, H, W) batch to ``channels`` (3 for ImageNet backbones).

    The result is a real (contiguous) tensor, not an expanded view, so in-place
    operations downstream are safe.
    """
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1:
        return x.repeat(1, channels, 1, 1)
    raise ValueError(f"cannot turn {c} channels into {channels}; only 1 -> N stacking is defined")


@dataclass(frozen=True)
class BatchAugment:
    """Random geometric augmentation of a whole batch with one ``grid_sample``.

    Fields (defaults are all "off"):

    crop_margin : int, output pixels; random crop-with-margin = integer shift in
        ``[-m, m]`` on each axis (pad ``m``, crop back to the output size).
    translate : float, extra continuous shift, uniform in ``[-f, f]`` times the
        output size (torchvision ``RandomAffine(translate=...)``, the FER+ reference code's ``max_shift``).
    flip : bool, horizontal flip with probability ``flip_p`` (default 0.5).
    rotation : float, max degrees; angle uniform in ``[-r, r]``.
    scale : (lo, hi), content scale (zoom) uniform in ``[lo, hi]``; >1 zooms in.
    anisotropic : bool, draw the x and y scales independently (Keras ``zoom_range``,
        the FER+ reference code); otherwise one scale for both axes.
    shear : float, max degrees of shear parallel to the x axis, uniform in ``[-s, s]``.
    shear_y : float, max degrees of shear parallel to the y axis.
    base_scale : float, a fixed content scale applied in training *and* in
        :meth:`eval_transform` (DNNRL: the 96-px face inside a 108-px frame).
    out_size : int or None, output height = width; None keeps the input size.
    channels : 1 or 3; 3 stacks the grey channel for ImageNet backbones.
    padding_mode : "zeros" (default; the mean after normalisation), "border" or
        "reflection".  See the module docstring.
    mode : "bilinear" (default) or "nearest".

    Call ``aug(x, generator)`` with float ``x`` (B, C, H, W) and a
    ``torch.Generator`` on ``x.device``; returns (B, channels, out, out) in
    ``x.dtype``.  :meth:`eval_transform` is the deterministic counterpart
    (resize, base scale, channel stacking) for validation and test batches.
    """

    crop_margin: int = 0
    translate: float = 0.0
    flip: bool = False
    flip_p: float = 0.5
    rotation: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    anisotropic: bool = False
    shear: float = 0.0
    shear_y: float = 0.0
    base_scale: float = 1.0
    out_size: int | None = None
    channels: int = 1
    padding_mode: str = "zeros"
    mode: str = "bilinear"

    def __post_init__(self):
        scale = tuple(float(v) for v in self.scale)
        object.__setattr__(self, "scale", scale)
        problems = []
        if int(self.crop_margin) != self.crop_margin or self.crop_margin < 0:
            problems.append(f"crop_margin must be an integer >= 0, got {self.crop_margin!r}")
        if not 0.0 <= self.translate < 1.0:
            problems.append(f"translate must be in [0, 1) (a fraction of the size), got {self.translate!r}")
        if not 0.0 <= self.flip_p <= 1.0:
            problems.append(f"flip_p must be a probability, got {self.flip_p!r}")
        if not 0.0 <= self.rotation <= 180.0:
            problems.append(f"rotation must be in [0, 180] degrees, got {self.rotation!r}")
        if len(scale) != 2 or not 0.0 < scale[0] <= scale[1]:
            problems.append(f"scale must be (lo, hi) with 0 < lo <= hi, got {self.scale!r}")
        for name in ("shear", "shear_y"):
            if not 0.0 <= getattr(self, name) < 90.0:
                problems.append(f"{name} must be in [0, 90) degrees, got {getattr(self, name)!r}")
        if not self.base_scale > 0:
            problems.append(f"base_scale must be > 0, got {self.base_scale!r}")
        if self.out_size is not None and (int(self.out_size) != self.out_size or self.out_size < 1):
            problems.append(f"out_size must be a positive integer or None, got {self.out_size!r}")
        if self.channels not in (1, 3):
            problems.append(f"channels must be 1 or 3, got {self.channels!r}")
        if self.padding_mode not in PADDING_MODES:
            problems.append(f"padding_mode must be one of {PADDING_MODES}, got {self.padding_mode!r}")
        if self.mode not in INTERPOLATION_MODES:
            problems.append(f"mode must be one of {INTERPOLATION_MODES}, got {self.mode!r}")
        if problems:
            raise ValueError("BatchAugment: " + "; ".join(problems))

    # -- configuration -------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        """True when no random geometry is configured (only resize / channels / base scale)."""
        return (self.crop_margin == 0 and self.translate == 0 and not (self.flip and self.flip_p > 0)
                and self.rotation == 0 and self.scale == (1.0, 1.0) and self.shear == 0
                and self.shear_y == 0)

    def to_dict(self) -> dict:
        """Plain-JSON configuration (for ``results/*.json``)."""
        d = asdict(self)
        d["scale"] = list(self.scale)
        return d

    def output_hw(self, in_hw: tuple[int, int]) -> tuple[int, int]:
        return (self.out_size, self.out_size) if self.out_size is not None else tuple(in_hw)

    # -- randomness ------------------------------------------------------------------
    def sample_params(self, batch: int, generator: torch.Generator | None = None, device=None,
                      out_hw: tuple[int, int] | None = None) -> AffineParams:
        """Draw one batch of parameters with ONE ``torch.rand((batch, 10))`` call.

        ``out_hw`` (needed when ``translate > 0``) is the output size the
        fractional translation refers to.
        """
        if device is None:
            device = generator.device if generator is not None else "cpu"
        u = torch.rand((batch, _N_DRAWS), generator=generator, device=device, dtype=torch.float32)
        sym = 2.0 * u - 1.0  # uniform in [-1, 1)
        angle = sym[:, 0] * self.rotation
        lo, hi = self.scale
        scale_x = lo + (hi - lo) * u[:, 1]
        scale_y = lo + (hi - lo) * u[:, 2] if self.anisotropic else scale_x
        shear_x = sym[:, 3] * self.shear
        shear_y = sym[:, 4] * self.shear_y
        h_out, w_out = out_hw if out_hw is not None else (1, 1)
        if self.translate > 0 and out_hw is None:
            raise ValueError("sample_params: out_hw is needed when translate > 0")
        tx = sym[:, 5] * (self.translate * w_out)
        ty = sym[:, 6] * (self.translate * h_out)
        m = int(self.crop_margin)
        if m > 0:  # integer shifts, uniform over the 2m+1 crop positions
            tx = tx + (torch.floor(u[:, 7] * (2 * m + 1)).clamp_(max=2 * m) - m)
            ty = ty + (torch.floor(u[:, 8] * (2 * m + 1)).clamp_(max=2 * m) - m)
        flip = (u[:, 9] < self.flip_p) if self.flip else torch.zeros(batch, dtype=torch.bool, device=device)
        return AffineParams(angle, scale_x, scale_y, shear_x, shear_y, tx, ty, flip)

    # -- application -----------------------------------------------------------------
    def apply(self, x: torch.Tensor, params: AffineParams) -> torch.Tensor:
        """Warp ``x`` (B, C, H, W) with given parameters: one ``affine_grid`` + ``grid_sample``."""
        _check_batch(x)
        b, c, h, w = x.shape
        h_out, w_out = self.output_hw((h, w))
        work = x if x.dtype in (torch.float32, torch.float64) else x.float()
        theta = affine_theta(params, (h_out, w_out), self.base_scale).to(device=x.device, dtype=work.dtype)
        grid = F.affine_grid(theta, [b, c, h_out, w_out], align_corners=False)
        zeros = self.padding_mode == "zeros"
        out = F.grid_sample(work, grid, mode=self.mode, padding_mode="border" if zeros else self.padding_mode,
                            align_corners=False)
        if zeros:  # outside the image extent [-1, 1]^2 -> exactly 0
            inside = (grid.abs() <= 1.0).all(dim=-1).unsqueeze(1)
            out = out * inside.to(out.dtype)
        return to_channels(out.to(x.dtype), self.channels)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a float batch (B, C, H, W) -> (B, channels, out, out)."""
        _check_batch(x)
        if generator is not None and not _same_device(generator.device, x.device):
            raise ValueError(f"the generator is on {generator.device} but the batch is on {x.device}; "
                             f"use torch.Generator(device=x.device)")
        out_hw = self.output_hw(tuple(x.shape[-2:]))
        params = self.sample_params(x.shape[0], generator, device=x.device, out_hw=out_hw)
        return self.apply(x, params)

    def eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic counterpart for evaluation: resize, base scale, channels."""
        _check_batch(x)
        if self.base_scale == 1.0:
            return to_channels(resize_batch(x, self.out_size, self.mode), self.channels)
        return self.apply(x, AffineParams.identity(x.shape[0], device=x.device))


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got {type(x).__name__} "
                         f"{tuple(getattr(x, 'shape', ()))}")
    if not x.is_floating_point():
        raise TypeError(f"expected a float batch (normalise uint8 pixels first), got {x.dtype}")


def _same_device(a: torch.device, b: torch.device) -> bool:
    a, b = torch.device(a), torch.device(b)
    if a.type != b.type:
        return False
    return a.index is None or b.index is None or a.index == b.index


# ---------------------------------------------------------------------------------------
# Presets: each source paper's augmentation.  Sections are those of the papers in ferlib.bibliography.
# ---------------------------------------------------------------------------------------

def densenet_augment() -> BatchAugment:
    """DenseNet + center loss on FER-2013 (DenseNet-CL §IV-B "Data augmentation").

    "Randomly crop: We add margins to each image in the datasets and then crop a
    random area of that image with the same size as the original image; Randomly
    flip an image from left to right; Randomly rotate an image by a random angle
    from -15° to 15°."

    The margin is not given; we use 4 px (8% of 48), the margin of Huang et al.'s
    DenseNet recipe (DenseNet-CL's [8]) that the paper builds on (CIFAR: "zero-padded
    with 4 pixels on each side, randomly cropped").  48x48, 1 channel, zero (= mean) padding.
    """
    return BatchAugment(crop_margin=4, flip=True, rotation=15.0)


def emonet_augment(out_size: int = 197) -> BatchAugment:
    """Inception-ResNet-v2 / ResNet-50 transfer + BOVW (EmoNet §4 "Dataset", "Data preprocessing"; §3 for the input sizes).

    "we perform random rotations in the range of 10 degrees, random shear
    transformations, random zooming inside the images, and mirroring them by
    flipping them horizontally."  Inputs are "resized according to the Conv Block
    requirement (either 139 or 197) and stacked up to comprise 3 channels".

    The shear and zoom magnitudes are not given: we take 10° of x-shear and a zoom
    in [1.0, 1.1] ("zooming *inside*"), drawn per axis as Keras' ``zoom_range`` does.
    ``out_size``: 197 for ResNet-50, 139 for Inception-ResNet-v2.
    """
    return BatchAugment(flip=True, rotation=10.0, shear=10.0, scale=(1.0, 1.1), anisotropic=True,
                        out_size=out_size, channels=3)


def ferplus_augment(out_size: int = 64) -> BatchAugment:
    """VGG13 on FER+ (Sobel-Laplacian-CL §III-A), i.e. Barsoum et al.'s (FER+) online augmentation.

    Sobel-Laplacian-CL: "For training, we use the online data augmentation strategy as used
    in the paper [14]" (Barsoum et al. 2016) and "The validation and test images are
    re-sized to 64×64 pixels".  Its values come from the FER+ reference code
    (microsoft/FERPlus ``src/ferplus.py``, ``img_util.distort_img``): ``max_shift =
    0.08`` (of the output size), ``max_scale = 1.05`` (x and y independently, zoom
    in or out), ``max_angle = 20.0``, ``max_skew = 0.05`` (x and y, a shear factor:
    atan(0.05) = 2.86°), ``do_flip = True``, bilinear, ``mode='reflect'``.

    Differences: the reference draws each scale as u in [1, 1.05] inverted with
    probability 1/2, we draw uniformly in [1/1.05, 1.05]; and it applies its own
    per-image normalisation (histogram equalisation, plane fit, unit std) after the
    warp, which is a normaliser's job here.
    """
    skew = math.degrees(math.atan(0.05))
    return BatchAugment(translate=0.08, flip=True, rotation=20.0, scale=(1 / 1.05, 1.05),
                        anisotropic=True, shear=skew, shear_y=skew, out_size=out_size,
                        padding_mode="reflection")


def cl_resnet50_augment(out_size: int = 224) -> BatchAugment:
    """CL-ResNet50 (CL-ResNet50 §4.2 "Experimental settings").

    "The input facial images are resized to 224×224 and they are randomly flipped
    horizontally with random rotations to avoid overfitting. Additionally, the input
    images are cropped at a random location."  3 channels for the ImageNet ResNet-50.

    Magnitudes are not given: we rotate by ±10° (as EmoNet, another ImageNet
    backbone on FER-2013) and crop with a 16-px margin at 224 (7% of the side,
    about 3.4 px of the 48-px original, close to DenseNet-CL's 4 px).
    """
    return BatchAugment(crop_margin=16, flip=True, rotation=10.0, out_size=out_size, channels=3)


def dnnrl_augment(out_size: int = 108) -> BatchAugment:
    """DNNRL with exponential triplet loss (DNNRL §3.1), as ONE affine map.

    "The images are first resized to 96 × 96. Next, we randomly scale the resized
    images, where the range of scaling is [-10, 10]. We then pad 0 round scaled
    images to the size of 120 × 120. Finally, we rotate the obtained images randomly
    in the range of [-15°, 15°] and crop these images randomly to 108 × 108."

    We read "[-10, 10]" as pixels: the 96-px face becomes 96 + d px, d in
    [-10, 10] (i.e. a factor in [86/96, 106/96]; ±10 % would differ by <0.5 %).
    The chain is one affine map because every step is one:

    * output pixels are canvas pixels (the crop does not rescale), so the output is
      108 px and the face, before its random scale, is 96 px of it:
      ``base_scale = 96/108`` (kept by :meth:`BatchAugment.eval_transform`, which
      thus equals "resize 96, pad 120, centre-crop 108");
    * random scale: ``scale = (86/96, 106/96)`` about the centre;
    * the padded canvas is centred on the face; rotation about its centre:
      ``rotation = 15``;
    * a random 108 crop of the 120 canvas offsets by 0..12 px, i.e. shifts the
      content by an integer in [-6, 6] after the rotation: ``crop_margin = 6``.

    Nothing is clipped by the 120-px canvas (the largest face, 106 px, stays inside
    it), so the single warp equals the chain up to interpolation: it resamples once
    instead of three times (``tests/test_transforms.py`` checks this against the
    explicit chain).  The paper pads with 0; here the input is normalised first, so
    0 is the mean.  No flip: the paper does not mention one.

    ``out_size`` other than 108 (the kit's CPU variants, e.g. 64 px): the same chain scaled to that
    side -- the face fills the same 96/108 of it, the random scale and rotation are relative and stay,
    and the crop's shift scales with the side (``round(6 * out_size / 108)`` px: 4 at 64).
    """
    return BatchAugment(crop_margin=round(6 * out_size / 108), rotation=15.0, scale=(86 / 96, 106 / 96),
                        base_scale=96 / 108, out_size=out_size)


PRESETS: dict[str, Callable[..., BatchAugment]] = {
    "densenet": densenet_augment,
    "emonet": emonet_augment,
    "ferplus": ferplus_augment,
    "cl_resnet50": cl_resnet50_augment,
    "dnnrl": dnnrl_augment,
    "none": BatchAugment,
}


def get_augment(name: str, **kwargs) -> BatchAugment:
    """``PRESETS[name](**kwargs)`` with a clear error for an unknown name."""
    if name not in PRESETS:
        raise KeyError(f"unknown augmentation preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name](**kwargs)

