"""EmoNet's face filter (emonet §5: "openCV and dlib libraries used for face detection in order to
filter out images containing zero or more than one faces"), counted on FER-2013.

EmoNet does not say how a detector meets a 48x48 crop, and neither detector works on one as it
is: OpenCV's frontal Haar cascade searches windows of 24 px and up, dlib's HOG detector windows
of about 80 px, and a crop whose face fills the frame leaves no room for either window to sit
around the face.  So each face is **upscaled x4 (bicubic) to 192x192 and set on a mid-grey
canvas with a 48-px border** (240x240), as ``bench/predict_crop_margin.py`` does for the photo
pipeline, and then

* OpenCV: ``haarcascade_frontalface_default.xml`` (shipped inside ``cv2.data``),
  ``detectMultiScale(scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))``;
* dlib: ``get_frontal_face_detector()`` with no extra pyramid upsampling.

Each detector reports how many faces it finds (0, 1, 2, ...); EmoNet keeps a Training image
when the detector finds exactly one face.  :func:`dataset_face_counts` runs both detectors over
a data set once (about 6 ms per face: 4 minutes for FER-2013) and caches the counts beside the
landmarks; :func:`face_filter_table` turns them into the rejection counts per split and class
that chapter 01 shows.

**Only Training is ever filtered.**  PublicTest and PrivateTest are the benchmark: dropping the
test faces a detector dislikes would report accuracy on an easier, different test set, and no
longer comparable with any other paper.  :func:`training_keep_mask` therefore keeps every
PublicTest and PrivateTest row whatever the detectors say.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
from tqdm.auto import tqdm

from ..data.cache import cache_path, load_arrays, save_arrays
from ..errors import UsageError
from .hog import as_face_batch

DETECTORS = ("opencv", "dlib")
FILTER_RULES = ("opencv", "dlib", "both", "either")
UPSCALE = 4
BORDER = 48  # px of mid-grey around the upscaled face
CANVAS_GREY = 128
HAAR_CASCADE = "haarcascade_frontalface_default.xml"
HAAR_SETTINGS = {"scaleFactor": 1.1, "minNeighbors": 5, "minSize": (48, 48)}
FACE_COUNTS_CACHE_VERSION = "1"


def detector_canvas(face: np.ndarray) -> np.ndarray:
    """A 48x48 uint8 face upscaled x4 and framed in mid-grey: what the detectors see (240x240)."""
    big = cv2.resize(face, None, fx=UPSCALE, fy=UPSCALE, interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, BORDER, BORDER, BORDER, BORDER, cv2.BORDER_CONSTANT, value=CANVAS_GREY)


def haar_cascade() -> "cv2.CascadeClassifier":
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / HAAR_CASCADE))
    if cascade.empty():
        raise UsageError(f"OpenCV's {HAAR_CASCADE} did not load from {cv2.data.haarcascades}",
                         "reinstall opencv-python-headless")
    return cascade


def count_faces(faces, *, progress: bool | None = None) -> dict[str, np.ndarray]:
    """How many faces each detector finds in each image: ``{"opencv": (N,), "dlib": (N,)}`` int16.

    faces : (N, H, W) uint8 (48x48 FER-2013 crops; other sizes are accepted and framed the same way).
    """
    import dlib

    faces = as_face_batch(faces, size=None, min_size=8)
    cascade, hog_detector = haar_cascade(), dlib.get_frontal_face_detector()
    counts = {name: np.zeros(len(faces), np.int16) for name in DETECTORS}
    for i in tqdm(range(len(faces)), desc="face detectors (OpenCV, dlib)", unit="face",
                  disable=not (progress if progress is not None else len(faces) > 500)):
        canvas = detector_canvas(faces[i])
        counts["opencv"][i] = len(cascade.detectMultiScale(canvas, **HAAR_SETTINGS))
        counts["dlib"][i] = len(hog_detector(canvas, 0))
    return counts


def face_counts_cache_path(dataset) -> Path:
    """The cache file of ``dataset``'s face counts (keyed like the landmarks' cache: source, method, pixels)."""
    pixels = as_face_batch(dataset.pixels, what="dataset.pixels")
    digest = hashlib.sha1(pixels.tobytes()).hexdigest()[:12]
    base = cache_path(Path(str(dataset.source)))
    return base.with_name(f"{base.stem}-facecounts-v{FACE_COUNTS_CACHE_VERSION}-x{UPSCALE}-b{BORDER}-"
                          f"n{len(pixels)}-{digest}.npz")


def dataset_face_counts(dataset, *, use_cache: bool = True, progress: bool | None = None) -> dict[str, np.ndarray]:
    """:func:`count_faces` of a :class:`~ferlib.data.dataset.FERDataset`, computed once and cached."""
    path = face_counts_cache_path(dataset)
    counts = load_arrays(path, DETECTORS) if use_cache else None
    if counts is not None and all(c.shape == (len(dataset.pixels),) for c in counts.values()):
        return counts
    counts = count_faces(dataset.pixels, progress=progress)
    if use_cache:
        save_arrays(path, **counts)
    return counts


def passes_filter(counts: dict[str, np.ndarray], rule: str = "both") -> np.ndarray:
    """True where the image has exactly one face by ``rule``: one detector (``opencv``, ``dlib``), ``both``
    (EmoNet used both libraries: an image must pass each) or ``either``."""
    if rule not in FILTER_RULES:
        raise UsageError(f"unknown face-filter rule {rule!r}", f"choose one of {', '.join(FILTER_RULES)}")
    one = {name: np.asarray(counts[name]) == 1 for name in DETECTORS}
    if rule in DETECTORS:
        return one[rule]
    return (one["opencv"] & one["dlib"]) if rule == "both" else (one["opencv"] | one["dlib"])


def training_keep_mask(dataset, counts: dict[str, np.ndarray], rule: str = "both") -> np.ndarray:
    """Rows to keep: Training rows that pass :func:`passes_filter`, and every PublicTest / PrivateTest row."""
    return passes_filter(counts, rule) | (np.asarray(dataset.usage) != "Training")


def face_filter_table(dataset, counts: dict[str, np.ndarray]) -> dict:
    """Per split and class: images, and how many each detector finds with zero / several faces, and how
    many each rule would drop.  JSON-ready (chapter 01's table)."""
    usage, labels = np.asarray(dataset.usage), np.asarray(dataset.labels)
    table = {}
    for split in dict.fromkeys(usage.tolist()):
        rows = {}
        for k, name in enumerate(dataset.class_names):
            sel = (usage == split) & (labels == k)
            row = {"images": int(sel.sum())}
            for det in DETECTORS:
                c = np.asarray(counts[det])[sel]
                row[f"{det}_none"] = int((c == 0).sum())
                row[f"{det}_several"] = int((c > 1).sum())
            for rule in FILTER_RULES:
                row[f"dropped_by_{rule}"] = int((~passes_filter(counts, rule)[sel]).sum())
            rows[name] = row
        table[split] = rows
    return table
