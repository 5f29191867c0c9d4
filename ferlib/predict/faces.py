"""Find the faces of a picture, crop each as FER-2013 crops its faces, classify them in one batch.

**Detection.** OpenCV's bundled Haar cascade (``haarcascade_frontalface_default.xml``,
found through ``cv2.data``) on the greyscale picture; a picture larger than
:data:`DETECT_MAX_SIDE` pixels is searched at a reduced size and the boxes scaled
back to the picture, where the face is cropped at full resolution.  The smallest face
searched for is :data:`MIN_FACE_SEARCH` pixels at the search size; when none is found,
:func:`find_small_faces` searches again at 3x that size, so that a face too small to
classify is reported as such rather than as "no face".

**Crop.** FER-2013's faces are tightly cropped, and a padded crop shrinks the face
(and costs accuracy).  The margin was measured, not guessed: the same detector run on
PublicTest faces upscaled 4x onto a grey canvas finds boxes nearly as large as the
FER-2013 image and centred on it -- image side / box side has median 1.03 (389 of 500
faces detected; ``bench/predict_crop_margin.py``, results/bench_predict_crop_margin.json).
So the crop is the detector's box widened by :data:`FER_CROP_SCALE` about its centre (edges
replicated where it leaves the picture), made grey and resized to 48x48 -- then the
model's own evaluation transform, exactly as evaluation saw its faces
(:meth:`ferlib.train.checkpoint.LoadedModel.predict_proba`, or the same transform baked
into an ONNX export).  All faces of a picture go through the model as one batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .photos import Photo, load_photo

FER_CROP_SCALE = 1.03  # median of results/bench_predict_crop_margin.json
DETECT_MAX_SIDE = 640
MIN_FACE_SEARCH = 24  # the smallest face side searched for, in pixels of the (reduced) search image
SMALL_FACE_UPSCALE = 3  # find_small_faces searches at this many times the search size
MIN_DETECTION_WEIGHT = 1.0  # the cascade's last-stage score; faces score ~3-6, texture hits ~0.1
FACE_SIZE = 48
CASCADE = "haarcascade_frontalface_default.xml"


@dataclass
class FacePrediction:
    box: tuple  # (x, y, w, h) of the detector, in the picture's pixels (upright)
    crop: np.ndarray  # the uint8 48x48 face the model saw
    probabilities: np.ndarray  # one per class (smoothed over time for a tracked video face)
    class_names: list = field(default_factory=list)
    track: int | None = None  # video: the tracked face this is (same number from frame to frame)
    frame_probabilities: np.ndarray | None = None  # video: this frame's own probabilities, before smoothing

    @property
    def label_index(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def label(self) -> str:
        return self.class_names[self.label_index]

    def as_dict(self) -> dict:
        """``box``, ``label`` with its ``label_index`` in the model's class order, and ``probabilities`` by name."""
        out = {"box": [int(v) for v in self.box], "label": self.label, "label_index": self.label_index,
               "probabilities": {c: round(float(p), 4) for c, p in zip(self.class_names, self.probabilities)}}
        if self.track is not None:
            out["track"] = int(self.track)
        if self.frame_probabilities is not None:
            i = int(np.argmax(self.frame_probabilities))
            out["frame_label"] = self.class_names[i]
            out["frame_probabilities"] = {c: round(float(p), 4)
                                          for c, p in zip(self.class_names, self.frame_probabilities)}
        return out


def to_gray(rgb: np.ndarray, *, bgr: bool = False) -> np.ndarray:
    """uint8 grey of an RGB (or, ``bgr``, OpenCV's BGR) picture; a grey one is returned as uint8."""
    import cv2

    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.uint8)
    if rgb.shape[2] == 4:
        rgb = rgb[..., :3]
    return cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_BGR2GRAY if bgr else cv2.COLOR_RGB2GRAY)


@lru_cache(maxsize=1)
def cascade():
    """OpenCV's frontal-face Haar cascade, loaded once per process."""
    import cv2

    c = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE))
    if c.empty():
        raise RuntimeError(f"OpenCV's {CASCADE} did not load from {cv2.data.haarcascades}")
    return c


def search_scale(shape) -> float:
    """The factor a picture of ``shape`` is reduced by for detection (1 when it is small enough)."""
    return min(1.0, DETECT_MAX_SIDE / max(shape[:2]))


def min_face_side(shape) -> int:
    """The smallest face side :func:`detect_faces` finds in a picture of ``shape``, in its pixels."""
    return int(np.ceil(MIN_FACE_SEARCH / search_scale(shape)))


def _detect(image: np.ndarray, *, min_size: int, max_size: int = 0, min_neighbors: int = 5,
            scale_factor: float = 1.1) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) and final-stage weights (N,) of the cascade, weak ones dropped, most confident first."""
    found, _, weights = cascade().detectMultiScale3(image, scaleFactor=scale_factor, minNeighbors=min_neighbors,
                                                    minSize=(min_size, min_size),
                                                    maxSize=(max_size, max_size) if max_size else (0, 0),
                                                    outputRejectLevels=True)
    boxes, weights = np.asarray(found, dtype=float).reshape(-1, 4), np.ravel(weights).astype(float)
    keep = [i for i in np.argsort(-weights) if weights[i] >= MIN_DETECTION_WEIGHT]
    return boxes[keep], weights[keep]


def _resized(gray: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    if scale == 1.0:
        return gray
    h, w = gray.shape
    return cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def detect_faces(gray: np.ndarray, *, min_face: int | None = None) -> list[tuple[int, int, int, int]]:
    """Face boxes ``(x, y, w, h)`` of the Haar cascade, most confident first.

    Detections whose final-stage score is below :data:`MIN_DETECTION_WEIGHT` are
    dropped (``detectMultiScale3`` with reject levels).  The picture is searched at most
    :data:`DETECT_MAX_SIDE` pixels on its longer side:
    at larger sizes the cascade's small windows fire on texture (tested on an 8x
    enlargement of a real photo), and a face under ~4 % of the side is too small to
    classify anyway.  ``min_face``: the smallest face side searched for, in the
    picture's pixels (default: :data:`MIN_FACE_SEARCH` pixels at the search size).
    """
    scale = search_scale(gray.shape)
    boxes, _ = _detect(_resized(gray, scale), min_size=max(MIN_FACE_SEARCH, round((min_face or 0) * scale)))
    return [tuple(int(round(v / scale)) for v in b) for b in boxes]


def find_small_faces(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Faces smaller than :func:`min_face_side` (too small for :func:`detect_faces`), in the picture's pixels.

    A second search at :data:`SMALL_FACE_UPSCALE` times the search size (upscaled when the
    picture is small), so it finds faces down to about a third of the minimum.  It only says a
    face is there: a face this small holds too few pixels for a 48x48 crop to mean much.
    """
    scale = SMALL_FACE_UPSCALE * search_scale(gray.shape)
    boxes, _ = _detect(_resized(gray, scale), min_size=MIN_FACE_SEARCH)
    limit = min_face_side(gray.shape)
    return [tuple(int(round(v / scale)) for v in b) for b in boxes if b[2] / scale < limit]


def redetect_near(gray: np.ndarray, box, *, window: float = 2.0, face_px: int = 64,
                  size_range: tuple[float, float] = (0.75, 1.35)) -> tuple[int, int, int, int] | None:
    """The face nearest ``box`` in a window of ``window`` x its side around it, or None (video tracking).

    The window is resized so the face is ``face_px`` pixels and searched only for faces
    ``size_range`` times that size: a few milliseconds, against tens for a whole 640x480 frame.
    """
    x, y, w, h = box
    side = max(w, h)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = max(0, int(cx - side * window / 2)), max(0, int(cy - side * window / 2))
    x1, y1 = min(gray.shape[1], int(cx + side * window / 2)), min(gray.shape[0], int(cy + side * window / 2))
    if x1 - x0 < side * 0.6 or y1 - y0 < side * 0.6:
        return None  # the face has left the picture
    scale = face_px / side
    patch = _resized(gray[y0:y1, x0:x1], scale)
    boxes, _ = _detect(patch, min_size=max(MIN_FACE_SEARCH, int(face_px * size_range[0])),
                       max_size=int(face_px * size_range[1]) + 1, min_neighbors=3)
    if not len(boxes):
        return None
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    best = boxes[np.argmin(((centres - [(cx - x0) * scale, (cy - y0) * scale]) ** 2).sum(1))]
    bx, by, bw, bh = best / scale
    return int(round(bx + x0)), int(round(by + y0)), int(round(bw)), int(round(bh))


def crop_face(gray: np.ndarray, box, *, scale: float = FER_CROP_SCALE, size: int = FACE_SIZE) -> np.ndarray:
    """The square crop FER-2013 would have made of this detection: ``scale`` x the box, ``size`` x ``size``."""
    import cv2

    x, y, w, h = box
    side = max(w, h) * scale
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    pad = max(0, -x0, -y0, x0 + s - gray.shape[1], y0 + s - gray.shape[0])
    padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else gray
    patch = padded[y0 + pad:y0 + pad + s, x0 + pad:x0 + pad + s]
    interp = cv2.INTER_AREA if s > size else cv2.INTER_CUBIC
    return cv2.resize(patch, (size, size), interpolation=interp)


def classify_boxes(gray: np.ndarray, boxes, model) -> list[FacePrediction]:
    """Crop every box and classify the crops as one batch (``model.predict_proba``)."""
    if not len(boxes):
        return []
    crops = np.stack([crop_face(gray, b) for b in boxes])
    probs = model.predict_proba(crops)
    return [FacePrediction(tuple(int(v) for v in b), c, p, list(model.class_names))
            for b, c, p in zip(boxes, crops, probs)]


def predict_faces(photo: np.ndarray, model) -> list[FacePrediction]:
    """Detect, crop and classify every face of an RGB or grey photo with a loaded model."""
    gray = to_gray(photo)
    return classify_boxes(gray, detect_faces(gray), model)


@dataclass
class PhotoResult:
    """The faces of one photo; when there are none, the faces too small to classify (``too_small``)."""

    photo: Photo
    faces: list[FacePrediction]
    too_small: list[tuple] = field(default_factory=list)
    min_face: int = 0  # the smallest face side detect_faces finds in this photo, in its pixels

    @property
    def problem(self) -> str | None:
        """Why there is nothing to show (None when there are faces)."""
        if self.faces:
            return None
        if self.too_small:
            sides = ", ".join(str(max(b[2], b[3])) for b in self.too_small[:5])
            return (f"{len(self.too_small)} face(s) of {sides} px found, smaller than the detector's minimum of "
                    f"{self.min_face} px for a photo of this size: too small to classify (a closer or larger "
                    "photo helps)")
        return "no face found (the detector looks for frontal faces of at least 4 % of the photo's longer side)"


def analyse_photo(photo: Photo | str | Path, model) -> PhotoResult:
    """:func:`predict_faces` on a photo, and when no face is found, a search for faces too small to classify."""
    photo = photo if isinstance(photo, Photo) else load_photo(photo)
    gray = to_gray(photo.pixels)
    faces = classify_boxes(gray, detect_faces(gray), model)
    small = [] if faces else find_small_faces(gray)
    return PhotoResult(photo, faces, small, min_face_side(gray.shape))


COLOURS = {"box": (255, 64, 0), "bar": (0, 160, 255), "text": (0, 0, 0)}  # RGB


def annotate(photo: np.ndarray, faces: list[FacePrediction], *, bgr: bool = False, copy: bool = True) -> np.ndarray:
    """The picture with each face's box, its label and a bar per class beside it.

    RGB in and out (``bgr``: OpenCV's BGR, as video frames come); ``copy=False`` draws in place.
    """
    import cv2

    out = np.ascontiguousarray(photo if photo.ndim == 3 else np.stack([photo] * 3, -1))
    if copy:
        out = out.copy()
    colour = {k: (v[::-1] if bgr else v) for k, v in COLOURS.items()}
    thick = max(2, round(max(out.shape[:2]) / 250))  # still visible in a thumbnail a third the size
    for face in faces:
        x, y, w, h = face.box
        cv2.rectangle(out, (x, y), (x + w, y + h), colour["box"], thick)
        bar_h = max(6, h // 12)
        font = bar_h / 22
        if face.track is not None:
            cv2.putText(out, f"#{face.track} {face.label}", (x, max(bar_h, y - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        font * 1.3, colour["box"], max(1, thick), cv2.LINE_AA)
        for i, (name, p) in enumerate(zip(face.class_names, face.probabilities)):
            top = y + i * (bar_h + 2)
            left = min(x + w + 4 * thick, out.shape[1] - 1)
            cv2.rectangle(out, (left, top), (left + int(p * w), top + bar_h), colour["bar"], -1)
            cv2.putText(out, f"{name} {p:.2f}", (left + 2, top + bar_h - 2), cv2.FONT_HERSHEY_SIMPLEX, font,
                        colour["text"], max(1, thick // 2), cv2.LINE_AA)
    return out
