"""68 facial landmarks with dlib's shape predictor (emonet §5: "dlib's pretrained facial landmark
detector used to identify 68 landmarks"), batched, and cached once per data set.

The model is ``shape_predictor_68_face_landmarks.dat`` (iBUG 300-W markup: 0-16 jaw, 17-26
brows, 27-35 nose, 36-47 eyes, 48-67 mouth) shipped by the ``face_recognition_models``
package; it is found on disk, never downloaded.

**The face rectangle.**  dlib's predictor refines a mean shape placed in a face rectangle; it
was trained on the rectangles of dlib's frontal-face detector.  FER-2013 faces are already
48x48 crops, on which that detector misses about 1 face in 4 even after upscaling.  Measured
on 200 random FER-2013 faces (seed 0), each candidate against the points the predictor gives
from the detector's own rectangle (on the 155/200 faces where the HOG detector, run on the
face upscaled x4 with one more pyramid upsample, finds one)::

    FERLIB_DATA_DIR=/work/shared/data python -c \
        "from ferlib.features.landmarks import measure_face_rectangles; measure_face_rectangles()"

    rectangle                              faces ok  pts inside  all within 2px  outer-eye dist  err vs detector
    whole 48x48 image, no upscaling         200/200      0.951        0.845       25.5 +- 3.8 px      1.64 px
    whole image, upscaled x4                200/200      0.936        0.705       25.7 +- 3.8 px      1.49 px
    fixed box (3,7)-(43,45), no upscaling   200/200      0.960        0.860       24.5 +- 3.9 px      1.48 px
    fixed box (3,7)-(43,45), upscaled x4    200/200      0.951        0.790       24.5 +- 3.8 px      1.31 px
    detector x4 (reference)                 155/200      0.951        0.800       23.9 +- 4.4 px      0

(`pts inside`: fraction of points inside the 48x48 image; `all within 2px`: fraction of faces
with every point within 2 px of it; outer-eye distance: points 36-45.)  The fixed box is the
mean detector rectangle on 702 *other* faces (1,000 drawn, detector fired on 702), rounded to
whole pixels: left 3, top 7, right 43, bottom 45 (in 48x48 coordinates).  No rectangle puts
every point of every face inside the image -- FER-2013 crops cut the chin, and the detector's
own points leave it as often -- so the choice is the one nearest the detector's points that
never fails: **the fixed box, on the face upscaled x4 (bicubic)**, :data:`FER2013_FACE_BOX`.
It costs about 2 ms per face (about 75 s for all of FER-2013, once: see :func:`dataset_landmarks`).

**Coordinates**: (x, y) = (column, row) in the 48x48 image, pixel centres at integers, float32;
a point of the upscaled image maps back as ``(p + 0.5) / upscale - 0.5``.  Points are not
clipped: a chin below the crop is reported below it (y > 47).
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..data.cache import cache_path, load_arrays, save_arrays
from ..errors import UsageError
from .hog import as_face_batch

LANDMARKS_LENGTH = 136  # 68 points x (x, y)
N_LANDMARKS = 68
FER2013_FACE_BOX = (3, 7, 43, 45)  # left, top, right, bottom in 48x48 pixels (measured: module docstring)
FER2013_UPSCALE = 4
LANDMARKS_CACHE_VERSION = "1"  # bump when the method changes; part of the cache key
PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def predictor_model_path() -> Path:
    """Where ``face_recognition_models`` keeps the 68-point model (no download, ever)."""
    try:
        import face_recognition_models

        return Path(face_recognition_models.pose_predictor_model_location())
    except ImportError:
        pass  # the package imports pkg_resources, which new setuptools no longer has; find its folder instead
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("dlib's 68-landmark model is missing: the face_recognition_models package is not installed",
                         "pip install face_recognition_models")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / PREDICTOR_FILE
    if not path.is_file():
        raise UsageError(f"dlib's 68-landmark model is missing: {path} does not exist",
                         "reinstall face_recognition_models")
    return path


@functools.lru_cache(maxsize=1)
def shape_predictor():
    """dlib's 68-point shape predictor, loaded once (about 1 s, 100 MB)."""
    import dlib

    return dlib.shape_predictor(str(predictor_model_path()))


def facial_landmarks(faces, *, face_box: tuple[float, float, float, float] | None = None,
                     upscale: int = FER2013_UPSCALE, progress: bool | None = None) -> np.ndarray:
    """68 landmarks of each face: (N, H, W) uint8 -> (N, 68, 2) float32 (x, y) in the faces' pixels.

    face_box : (left, top, right, bottom) of the face in the images' pixels, the same for every
        image; default :data:`FER2013_FACE_BOX`, scaled to the images' size (W/48, H/48).
    upscale : the images are enlarged by this factor (bicubic) before the predictor runs;
        4 for 48x48 faces (see the module docstring), 1 for photos.
    progress : a tqdm bar; default shown for more than 500 faces.
    """
    import dlib

    faces = as_face_batch(faces, size=None, min_size=8)
    n, h, w = faces.shape
    if face_box is None:
        box = np.array(FER2013_FACE_BOX, float) * [w / 48, h / 48, w / 48, h / 48]
    else:
        box = np.asarray(face_box, float)
        if box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"face_box must be (left, top, right, bottom) with right > left and bottom > top, "
                             f"got {face_box!r}")
    if int(upscale) != upscale or upscale < 1:
        raise ValueError(f"upscale must be a whole number >= 1, got {upscale!r}")
    upscale = int(upscale)
    rect = dlib.rectangle(*(int(round(v * upscale)) for v in box))
    predictor = shape_predictor()
    out = np.empty((n, N_LANDMARKS, 2), np.float32)
    for i in tqdm(range(n), desc="68 landmarks (dlib)", unit="face",
                  disable=not (progress if progress is not None else n > 500)):
        image = faces[i] if upscale == 1 else cv2.resize(faces[i], None, fx=upscale, fy=upscale,
                                                         interpolation=cv2.INTER_CUBIC)
        shape = predictor(image, rect)
        out[i] = [(p.x, p.y) for p in shape.parts()]
    return (out + 0.5) / upscale - 0.5


def landmarks_cache_path(dataset) -> Path:
    """The cache file of ``dataset``'s landmarks, beside ferlib's parsed-data cache (:mod:`ferlib.data.cache`).

    Keyed on the data set's source (path, size, modification time, as the data cache), the method's
    version and settings, and a hash of the pixels -- so a split or subset gets its own entry.
    """
    pixels = as_face_batch(dataset.pixels, what="dataset.pixels")
    base = cache_path(Path(str(dataset.source)))
    digest = hashlib.sha1(pixels.tobytes()).hexdigest()[:12]
    box = ",".join(str(v) for v in FER2013_FACE_BOX)
    return base.with_name(f"{base.stem}-landmarks68-v{LANDMARKS_CACHE_VERSION}-box{box}-x{FER2013_UPSCALE}-"
                          f"n{len(pixels)}-{digest}.npz")


def dataset_landmarks(dataset, *, use_cache: bool = True, progress: bool | None = None) -> np.ndarray:
    """(N, 68, 2) float32 landmarks of a :class:`~ferlib.data.dataset.FERDataset` (48x48 faces), computed once.

    The first call runs :func:`facial_landmarks` with a progress bar (about 75 s for FER-2013) and
    saves the result (see :func:`landmarks_cache_path`); later calls load it in milliseconds.  A
    cache folder that is not writable only means no cache.
    """
    path = landmarks_cache_path(dataset)
    cached = load_arrays(path, ["landmarks"]) if use_cache else None
    if cached is not None and cached["landmarks"].shape == (len(dataset.pixels), N_LANDMARKS, 2):
        return cached["landmarks"].astype(np.float32, copy=False)
    points = facial_landmarks(dataset.pixels, progress=progress)
    if use_cache:
        save_arrays(path, landmarks=points, version=np.array(LANDMARKS_CACHE_VERSION))
    return points


def measure_face_rectangles(n_faces: int = 200, n_box_faces: int = 1000, seed: int = 0) -> None:
    """The measurement in the module docstring (prints its table)."""
    import dlib

    from ..data.discovery import load_fer2013

    ds = load_fer2013()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(ds), n_faces, replace=False)
    faces = ds.pixels[idx]
    others = ds.pixels[rng.choice(np.setdiff1d(np.arange(len(ds)), idx), n_box_faces, replace=False)]
    detector, predictor = dlib.get_frontal_face_detector(), shape_predictor()

    def detect(face):
        big = cv2.resize(face, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        found = detector(big, 1)
        return (big, max(found, key=lambda r: r.area())) if len(found) else (big, None)

    boxes = [[r.left() / 4, r.top() / 4, r.right() / 4, r.bottom() / 4] for r in (detect(f)[1] for f in others) if r]
    print(f"mean detector box over {len(boxes)}/{n_box_faces} other faces:", np.mean(boxes, 0).round(1))
    reference = {}
    for i, face in enumerate(faces):
        big, rect = detect(face)
        if rect is not None:
            reference[i] = (np.array([(p.x, p.y) for p in predictor(big, rect).parts()], np.float32) + 0.5) / 4 - 0.5

    def row(name, pts, ok):
        inside = ((pts >= 0) & (pts <= 47)).all(-1)
        near = np.all((pts >= -2) & (pts <= 49), axis=(1, 2))
        iod = np.linalg.norm(pts[:, 45] - pts[:, 36], axis=1)
        err = np.mean([np.linalg.norm(pts[j] - reference[i], axis=1).mean() for j, i in enumerate(ok) if i in reference])
        print(f"{name:38s} {len(ok):4d}/{n_faces}  {inside.mean():.3f}  {near.mean():.3f}  "
              f"{iod.mean():.1f} +- {iod.std():.1f} px  {err:.2f} px")

    every = list(range(n_faces))
    row("whole 48x48 image, no upscaling", facial_landmarks(faces, face_box=(0, 0, 47, 47), upscale=1), every)
    row("whole image, upscaled x4", facial_landmarks(faces, face_box=(0, 0, 47.75, 47.75), upscale=4), every)
    row("fixed box, no upscaling", facial_landmarks(faces, upscale=1), every)
    row("fixed box, upscaled x4 (chosen)", facial_landmarks(faces), every)
    ok = sorted(reference)
    row("detector x4 (reference)", np.stack([reference[i] for i in ok]), ok)


if __name__ == "__main__":
    measure_face_rectangles()
