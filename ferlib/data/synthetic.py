"""Embedded synthetic faces: procedurally drawn 48x48 expressions for machines without FER-2013.

:func:`make_synthetic_faces` draws cartoon faces with numpy alone (no data files, no
downloads) so that every notebook, exercise and test can run end to end anywhere.  The
images are *not* FER-2013 and say nothing about real facial-expression accuracy: the
returned :class:`~ferlib.data.dataset.FERDataset` has ``synthetic=True`` and its
``.tag`` reads ``"SYNTHETIC faces (not FER-2013)"``; every number, table and plot made
from it must carry that label (see :data:`SYNTHETIC_NOTICE`).

What varies
-----------
Nuisance factors, independent of the expression:

* identity -- face width and height, eye spacing, skin tone, hair tone, hairline
  height and shape, long hair on some faces, ears, neck;
* pose -- in-plane rotation (std 5 degrees, at most 20), shift, scale, and a slight
  yaw imitated by shifting the inner features sideways within the head outline;
* lighting -- a linear brightness gradient in a random direction, global contrast and
  brightness, background tone;
* occlusion -- on about a quarter of the images: glasses (rings or dark lenses), a
  skin-coloured hand-like blob over the lower face, or a flat grey rectangle;
* pixel noise -- Gaussian, of random strength.

Expression cues
---------------
Each image draws an *intensity* in [0.35, 1] and its cues are
``neutral + intensity * (class target - neutral) + noise``, so weak expressions drift
toward neutral, as many FER-2013 faces do.  Class targets (brows, eyes, nose, mouth):

* **angry** (0) -- brows lowered, inner ends pulled down (V shape); eyes slightly
  narrowed; lips pressed, mouth narrow, corners down; faint nose wrinkle.
* **disgust** (1) -- brows lowered and slightly V-shaped; eyes narrowed; nose wrinkled
  (lines across the bridge, flared nostrils); upper lip raised, corners down;
  nasolabial folds.
* **fear** (2) -- brows raised, inner ends raised, brow line flat; eyes wide; mouth
  open, *wide and stretched* (lens-shaped), corners slightly down.
* **happy** (3) -- corners up (smile), wide mouth, often open with teeth; eyes
  squinting; nasolabial folds.
* **sad** (4) -- brows a little lowered with the inner ends raised (slanted); eyes
  a little narrowed; mouth closed, corners down.
* **surprise** (5) -- brows high and arched; eyes wide; mouth open, *narrow and round*.
* **neutral** (6) -- the reference face: flat brows, normal eyes, closed straight mouth.

Overlaps, by design, mirroring the most frequent confusions of models and people on
FER-2013 (fear<->surprise, sad<->angry/neutral, disgust<->angry):

* fear vs surprise share raised brows, wide eyes and an open mouth; they differ only
  in degree (fear: flatter, more slanted brows; a wider, less round mouth);
* sad vs angry share lowered/slanted brows and a down-turned mouth; the slant goes
  opposite ways (inner end up for sad, down for angry), which faint brows blur;
* sad vs neutral: a weak sad face is a neutral face with slightly down corners;
* disgust vs angry: both lower the brows and narrow the eyes; disgust adds the nose
  wrinkle and raised upper lip, which are faint at low intensity.

A linear classifier (logistic regression on standardised raw pixels, trained on
Training, scored on PrivateTest) lands well above chance (1/7) but far from perfect:
about 0.5--0.6 with ``n_per_class=300`` and about 0.6 with 1000 (C=0.01; about 0.54
with sklearn's default C=1, which overfits).  Its largest confusions are angry<->sad,
sad<->neutral, fear<->surprise and angry<->disgust.  The pose jitter hurts a pixel-linear model much more than a small
CNN, which should do better.

Run ``python -m ferlib.data.synthetic`` to time the generation of 7,000 images.
"""
from __future__ import annotations

import numpy as np

from .classes import EMOTIONS, SPLITS
from .dataset import FERDataset

__all__ = ["SYNTHETIC_NOTICE", "make_synthetic_faces", "EXPRESSION_TARGETS"]

SYNTHETIC_NOTICE: str = (
    "These are procedurally drawn synthetic faces, not FER-2013: numbers measured on "
    "them say nothing about real facial-expression-recognition accuracy."
)

SIZE = 48
_CHUNK = 512  # images rendered at once; fixed, so output never depends on it

# Expression parameters, in face units (the head is about 1.4 wide, 1.8 tall, centred
# at 0; v grows downward).  Order of the columns of EXPRESSION_TARGETS:
_PARAMS = (
    "brow_raise",   # extra brow height above the eye (+ = higher)
    "brow_tilt",    # slope toward the inner end (+ = inner end lower, V shape)
    "brow_arch",    # curvature (+ = arched, ends lower than the middle)
    "eye_open",     # eye height multiplier
    "mouth_w",      # mouth half-width
    "mouth_curve",  # corner height (+ = corners up, smile)
    "mouth_open",   # lower-lip drop
    "mouth_up",     # upper-lip raise
    "mouth_round",  # exponent of the opening profile (0.5 round .. 1.2 lens)
    "wrinkle",      # nose-wrinkle strength 0..1
    "fold",         # nasolabial-fold strength 0..1
    "teeth",        # probability that an open mouth shows teeth
)
_NEUTRAL = np.array([0.0, 0.0, 0.4, 1.0, 0.24, 0.0, 0.0, 0.0, 1.0, 0.0, 0.1, 0.0])

#: Full-intensity cue targets per class, rows in EMOTIONS order, columns as _PARAMS.
EXPRESSION_TARGETS: np.ndarray = np.array([
    # raise  tilt   arch  eye   mw    curve   open   up    round wrk  fold teeth
    [-0.070, 0.110, 0.10, 0.80, 0.210, -0.065, 0.015, 0.015, 1.0, 0.30, 0.2, 0.5],  # angry
    [-0.050, 0.070, 0.20, 0.65, 0.220, -0.060, 0.030, 0.070, 1.0, 1.00, 0.7, 0.3],  # disgust
    [+0.080, -0.080, 0.10, 1.50, 0.280, -0.040, 0.090, 0.015, 0.9, 0.00, 0.2, 0.3],  # fear
    [+0.015, 0.000, 0.40, 0.70, 0.340, +0.140, 0.055, 0.015, 1.0, 0.05, 0.8, 0.8],  # happy
    [-0.035, -0.090, 0.20, 0.80, 0.220, -0.090, 0.000, 0.000, 1.0, 0.00, 0.1, 0.0],  # sad
    [+0.130, -0.015, 0.80, 1.60, 0.170, 0.000, 0.170, 0.045, 0.5, 0.00, 0.0, 0.2],  # surprise
    _NEUTRAL,                                                                        # neutral
])
EXPRESSION_TARGETS.setflags(write=False)
# Per-image noise on each cue (same for all classes).
_CUE_STD = np.array([0.022, 0.03, 0.19, 0.15, 0.022, 0.022, 0.022, 0.015, 0.15, 0.15, 0.15, 0.0])
# Pose jitter: rotation std (degrees), shift std (face units, 1 = 24 px), scale range,
# yaw (sideways feature shift) std.
_POSE = {"rot_deg": 5.0, "shift": 0.03, "scale": (0.9, 1.04), "yaw": 0.03}
_CUE_LO = np.array([-0.14, -0.20, -0.5, 0.25, 0.10, -0.18, 0.0, 0.0, 0.4, 0.0, 0.0, 0.0])
_CUE_HI = np.array([0.22, 0.20, 1.5, 2.0, 0.40, 0.20, 0.28, 0.12, 1.3, 1.0, 1.0, 1.0])


def _paint(img, d, color, inv_w, alpha=None):
    """Composite ``color`` over ``img`` where the signed distance ``d`` is positive.

    Coverage is a linear ramp over the anti-alias width (``1 / inv_w``): exactly 0 or 1
    away from the edge, which is what lets primitives be drawn inside windows.
    """
    m = d * inv_w
    m += 0.5
    np.clip(m, 0.0, 1.0, out=m)
    if alpha is not None:
        m *= alpha
    img += (color - img) * m


def _ellipse(du, dv, a, b):
    """Approximate signed distance to an axis-aligned ellipse (positive inside)."""
    r = np.sqrt((du / a) ** 2 + (dv / b) ** 2)
    return (1.0 - r) * np.minimum(a, b)


def _window(tx, ty, ca, sa, sc, u_lo, u_hi, v_lo, v_hi):
    """Pixel rows/columns covering the face-coordinate box in every image of a chunk.

    Everything drawn inside the box has zero coverage outside it, so drawing on the
    window (a view) gives the same pixels as drawing on the whole image.
    """
    half = SIZE / 2
    xs, ys = [], []
    for uu in (u_lo, u_hi):
        for vv in (v_lo, v_hi):
            xs.append(tx + sc * (ca * uu - sa * vv))
            ys.append(ty + sc * (sa * uu + ca * vv))
    xs, ys = np.concatenate(xs), np.concatenate(ys)
    c0 = max(int(np.floor(xs.min() * half + half - 0.5)) - 2, 0)
    c1 = min(int(np.ceil(xs.max() * half + half - 0.5)) + 3, SIZE)
    r0 = max(int(np.floor(ys.min() * half + half - 0.5)) - 2, 0)
    r1 = min(int(np.ceil(ys.max() * half + half - 0.5)) + 3, SIZE)
    return slice(r0, r1), slice(c0, c1)


def _sample_params(labels, rng):
    """Per-image identity, pose, lighting, occlusion and expression parameters."""
    n = len(labels)
    u = rng.uniform
    p = {}
    # identity
    p["head_a"] = u(0.60, 0.78, n)
    p["head_b"] = u(0.80, 0.95, n)
    p["eye_x"] = u(0.21, 0.30, n)
    p["eye_y"] = u(-0.16, -0.09, n)
    p["eye_w"] = u(0.10, 0.13, n)
    p["eye_h"] = u(0.050, 0.065, n)
    p["mouth_y"] = u(0.40, 0.48, n)
    p["skin"] = u(0.40, 0.85, n)
    p["hair"] = np.where(rng.random(n) < 0.8, u(0.03, 0.35, n), u(0.55, 0.90, n))
    p["hairline"] = u(-0.62, -0.38, n)
    p["hair_curve"] = u(-0.2, 0.5, n)
    p["long_hair"] = rng.random(n) < 0.45
    p["bg"] = u(0.05, 0.95, n)
    p["bg_grad"] = u(-0.3, 0.3, n)
    # pose
    p["angle"] = np.clip(rng.normal(0.0, np.deg2rad(_POSE["rot_deg"]), n), -np.deg2rad(20), np.deg2rad(20))
    p["tx"] = rng.normal(0.0, _POSE["shift"], n)
    p["ty"] = rng.normal(0.0, _POSE["shift"], n)
    p["scale"] = u(*_POSE["scale"], n)
    p["yaw"] = np.clip(rng.normal(0.0, _POSE["yaw"], n), -0.12, 0.12)
    # lighting and noise
    p["grad"] = u(0.0, 0.35, n)
    p["grad_dir"] = u(0.0, 2 * np.pi, n)
    p["contrast"] = u(0.6, 1.2, n)
    p["bright"] = rng.normal(0.0, 0.06, n)
    p["noise"] = u(0.005, 0.05, n)
    # occlusion: 0 none, 1 ring glasses, 2 dark glasses, 3 hand, 4 rectangle
    p["occ"] = rng.choice(5, size=n, p=[0.75, 0.08, 0.05, 0.06, 0.06])
    p["occ_x"] = u(-0.5, 0.5, n)
    p["occ_y"] = u(0.0, 0.8, n)
    p["occ_a"] = u(0.2, 0.4, n)
    p["occ_b"] = u(0.12, 0.3, n)
    p["occ_col"] = u(0.0, 1.0, n)
    # expression: intensity-weighted pull from neutral toward the class target, plus noise
    alpha = u(0.35, 1.0, n)[:, None]
    target = EXPRESSION_TARGETS[labels]
    cues = _NEUTRAL + alpha * (target - _NEUTRAL) + rng.standard_normal((n, len(_PARAMS))) * _CUE_STD
    cues = np.clip(cues, _CUE_LO, _CUE_HI)
    for j, name in enumerate(_PARAMS):
        p[name] = cues[:, j]
    p["show_teeth"] = rng.random(n) < p["teeth"]
    return p


def _render(p, noise_rng):
    """Draw the images described by the parameter dict ``p`` (float32 in [0, 1])."""
    n = len(p["skin"])
    f = np.float32

    def col(name, idx=None):
        a = p[name] if idx is None else p[name][idx]
        return a.astype(f)[:, None, None]

    c = (np.arange(SIZE, dtype=f) - (SIZE - 1) / 2) / (SIZE / 2)
    X = c[None, None, :]
    Y = c[None, :, None]
    # one coordinate transform per image: pixel -> face coordinates
    ang, sc = col("angle"), col("scale")
    ca, sa = np.cos(ang), np.sin(ang)
    tx, ty = col("tx"), col("ty")
    Xs, Ys = X - tx, Y - ty
    u = (ca * Xs + sa * Ys) / sc
    v = (-sa * Xs + ca * Ys) / sc
    inv_w = (SIZE / 2) * sc / 1.2  # anti-alias over ~1.2 pixels (1 / width in face units)

    img = np.broadcast_to(col("bg") + col("bg_grad") * Y, (n, SIZE, SIZE)).astype(f)
    skin, hair = col("skin"), col("hair")
    ha, hb = col("head_a"), col("head_b")
    yaw = col("yaw")

    # long hair behind the head (only the images that have it)
    idx = np.flatnonzero(p["long_hair"])
    if len(idx):
        ui, vi, hi = u[idx], v[idx], img[idx]
        d = np.minimum(_ellipse(ui, vi - 0.05, ha[idx] * 1.28, hb[idx] * 1.12), 0.75 - vi)
        _paint(hi, d, hair[idx], inv_w[idx])
        img[idx] = hi
    # neck and shoulders
    _paint(img, np.minimum(ha * 0.5 - np.abs(u), v - 0.3), skin * 0.85, inv_w)
    _paint(img, _ellipse(u, v - 1.35, 1.1, 0.45), hair * 0.5 + 0.3 * col("occ_col"), inv_w)
    # ears and head
    _paint(img, _ellipse(np.abs(u) - ha * 0.97, v - 0.02, 0.09, 0.16), skin * 0.92, inv_w)
    _paint(img, _ellipse(u, v, ha, hb), skin, inv_w)
    # fringe: hair inside a slightly larger head, above a curved hairline
    uf = u - yaw  # inner features shift sideways with yaw
    hairline = col("hairline") + col("hair_curve") * uf * uf
    d = np.minimum(_ellipse(u, v + 0.03, ha * 1.07, hb * 1.06), hairline - v)
    _paint(img, d, hair, inv_w)

    # --- eye region, drawn in a window (brows, eyes, glasses) ---
    rs, cs = _window(tx, ty, ca, sa, sc, -0.8, 0.8, -0.66, 0.08)
    im, uw, vw = img[:, rs, cs], uf[:, rs, cs], v[:, rs, cs]
    au = np.abs(uw)  # mirror-symmetric features: both sides in one primitive
    ex, ey = col("eye_x"), col("eye_y")
    ew = col("eye_w")
    eh = col("eye_h") * col("eye_open")
    # eyebrows: w > 0 toward the nose
    w = ex - au
    brow_v = ey - 0.12 - col("brow_raise") + col("brow_tilt") * w + col("brow_arch") * w * w
    d = np.minimum(0.03 - np.abs(vw - brow_v), ew * 1.25 - np.abs(w))
    _paint(im, d, np.minimum(hair, skin * 0.45), inv_w)
    # eyes: dark outline, light sclera, dark pupil
    du, dv = au - ex, vw - ey
    _paint(im, _ellipse(du, dv, ew + 0.02, eh + 0.018), skin * 0.25, inv_w)
    sclera = _ellipse(du, dv, ew, eh)
    _paint(im, sclera, np.minimum(skin + 0.2, 0.95), inv_w)
    _paint(im, np.minimum(sclera, 0.045 - np.sqrt(du * du + dv * dv)), f(0.08), inv_w)
    # glasses: 1 = rims and bridge, 2 = dark lenses
    occ = p["occ"]
    for kind in (1, 2):
        idx = np.flatnonzero(occ == kind)
        if not len(idx):
            continue
        hi = im[idx]
        lens = _ellipse(du[idx], dv[idx], ew[idx] + 0.07, 0.1)
        if kind == 1:
            rim = 0.015 - np.abs(lens)
            bridge = np.minimum(0.015 - np.abs(dv[idx] + 0.02), ex[idx] - au[idx])
            _paint(hi, np.maximum(rim, bridge), f(0.05), inv_w[idx])
        else:
            _paint(hi, lens, f(0.06), inv_w[idx])
        im[idx] = hi

    # --- nose window: bridge shadow, nostrils (flared by the wrinkle), wrinkle lines ---
    rs, cs = _window(tx, ty, ca, sa, sc, -0.4, 0.4, -0.25, 0.35)
    im, uw, vw = img[:, rs, cs], uf[:, rs, cs], v[:, rs, cs]
    au = np.abs(uw)
    wr = col("wrinkle")
    nose_y = ey + 0.33
    d = np.minimum(0.012 - np.abs(uw - 0.045), np.minimum(vw - ey - 0.02, nose_y - 0.03 - vw))
    _paint(im, d, skin * 0.6, inv_w, f(0.5))
    _paint(im, _ellipse(au - 0.05 - 0.015 * wr, vw - nose_y, 0.028 + 0.02 * wr, 0.018), skin * 0.3, inv_w, f(0.8))
    for k in (0.0, 0.045):
        d = np.minimum(0.011 - np.abs(vw - (ey + 0.09 + k) - 0.3 * uw * uw), 0.07 - au)
        _paint(im, d, skin * 0.4, inv_w, wr)

    # --- mouth window: nasolabial folds, lips, opening, teeth ---
    rs, cs = _window(tx, ty, ca, sa, sc, -0.7, 0.7, 0.0, 1.05)
    im, uw, vw = img[:, rs, cs], uf[:, rs, cs], v[:, rs, cs]
    au = np.abs(uw)
    my, mw = col("mouth_y"), col("mouth_w")
    curve = col("mouth_curve")
    r = uw / mw
    r2 = np.minimum(r * r, 1.0)
    prof = (1.0 - r2) ** col("mouth_round")
    centre = my - curve * r2
    op, up = col("mouth_open"), col("mouth_up")
    # nasolabial folds: segment from beside the nose to beyond the mouth corner
    ax, ay = f(0.10), nose_y - 0.02
    bx, by = mw + 0.05, my - curve + 0.02
    sx, sy = bx - ax, by - ay
    t = np.clip(((au - ax) * sx + (vw - ay) * sy) / (sx * sx + sy * sy), 0.0, 1.0)
    dist = np.sqrt((au - ax - t * sx) ** 2 + (vw - ay - t * sy) ** 2)
    _paint(im, 0.012 - dist, skin * 0.55, inv_w, col("fold") * 0.8)
    # lips, then the opening (a dark line when closed)
    side = mw - au
    lip = 0.028
    top, bot = centre - up * prof, centre + op * prof
    d = np.minimum(np.minimum(vw - (top - lip), bot + lip - vw), side + 0.01)
    _paint(im, d, skin * 0.7, inv_w)
    inner = np.minimum(np.minimum(vw - top, bot - vw), side)
    _paint(im, inner, skin * 0.15, inv_w)
    # teeth: upper part of an open mouth, on some images
    idx = np.flatnonzero(p["show_teeth"] & (p["mouth_open"] > 0.02))
    if len(idx):
        hi = im[idx]
        _paint(hi, np.minimum(inner[idx], top[idx] + 0.45 * (bot[idx] - top[idx]) - vw[idx]),
               f(0.9), inv_w[idx], f(0.9))
        im[idx] = hi

    # --- other occlusions, anywhere: 3 = hand-like blob, 4 = flat rectangle ---
    idx = np.flatnonzero(occ == 3)
    if len(idx):
        hi = img[idx]
        d = _ellipse(u[idx] - col("occ_x", idx), v[idx] - col("occ_y", idx), col("occ_a", idx), col("occ_b", idx))
        _paint(hi, d, skin[idx] * 0.95, inv_w[idx])
        img[idx] = hi
    idx = np.flatnonzero(occ == 4)
    if len(idx):
        hi = img[idx]
        d = np.minimum(col("occ_a", idx) - np.abs(X - col("occ_x", idx)),
                       col("occ_b", idx) - np.abs(Y - col("occ_y", idx) + 0.4))
        _paint(hi, d, col("occ_col", idx), inv_w[idx])
        img[idx] = hi

    # lighting, contrast, noise
    gd = col("grad_dir")
    img *= 1.0 + col("grad") * (np.cos(gd) * X + np.sin(gd) * Y)
    img -= 0.5
    img *= col("contrast")
    img += 0.5 + col("bright")
    img += noise_rng.standard_normal(img.shape, dtype=f) * col("noise")
    return img


def _stratified_usage(n_per_class, split_fractions):
    fr = np.asarray(split_fractions, dtype=float)
    if fr.shape != (3,) or np.any(fr <= 0) or abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f"split_fractions must be 3 positive numbers summing to 1, got {split_fractions}")
    if n_per_class < 3:
        raise ValueError("n_per_class must be at least 3 so every split holds every class")
    counts = np.maximum(np.round(fr * n_per_class).astype(int), 1)
    counts[0] = n_per_class - counts[1:].sum()
    if counts[0] < 1:
        raise ValueError(f"n_per_class={n_per_class} is too small for split_fractions={split_fractions}")
    return np.repeat(np.array(SPLITS), counts)


def make_synthetic_faces(n_per_class: int = 1000, seed: int = 0,
                         split_fractions=(0.8, 0.1, 0.1)) -> FERDataset:
    """Draw ``7 * n_per_class`` synthetic 48x48 faces, balanced and stratified.

    Each class is split ``split_fractions`` (Training, PublicTest, PrivateTest) and then
    all rows are shuffled, so classes and splits are interleaved.  The same ``seed``
    gives byte-identical pixels.  The result has ``synthetic=True``; label everything
    computed from it as synthetic (use ``dataset.tag`` or :data:`SYNTHETIC_NOTICE`).
    """
    n_per_class = int(n_per_class)
    usage_one = _stratified_usage(n_per_class, split_fractions)
    k = len(EMOTIONS)
    labels = np.repeat(np.arange(k, dtype=np.int64), n_per_class)
    usage = np.tile(usage_one, k)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(labels))
    labels, usage = labels[perm], usage[perm]
    params = _sample_params(labels, rng)
    noise_rng = np.random.default_rng([seed, 1])
    n = len(labels)
    pixels = np.empty((n, SIZE, SIZE), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        sl = slice(start, min(start + _CHUNK, n))
        img = _render({key: val[sl] for key, val in params.items()}, noise_rng)
        img *= 255.0
        np.clip(img, 0.0, 255.0, out=img)
        np.rint(img, out=img)
        pixels[sl] = img
    return FERDataset(pixels=pixels, labels=labels, usage=usage, rows=np.arange(n, dtype=np.int64),
                      source="synthetic", format="synthetic", synthetic=True)


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    ds = make_synthetic_faces(1000, seed=0)
    dt = time.perf_counter() - t0
    print(f"{len(ds)} synthetic faces in {dt:.2f} s; splits {ds.split_counts()}")
    print(SYNTHETIC_NOTICE)
