"""Your own photo through a trained model: find the faces, crop them as FER-2013 is cropped, predict.

    from ferlib.predict import predict_photo
    faces = predict_photo("me.jpg")                  # the kit's committed real-data model
    faces[0].box, faces[0].probabilities             # (x, y, w, h) in the photo; one probability per class

    python -m ferlib predict PHOTO... [--model CHECKPOINT] [--json] [--out ANNOTATED.png]

**Detection.** OpenCV's bundled Haar cascade (``haarcascade_frontalface_default.xml``,
found through ``cv2.data``) on the greyscale photo; a photo larger than
:data:`DETECT_MAX_SIDE` pixels is searched at a reduced size and the boxes scaled
back to the photo, where the face is cropped at full resolution.

**Crop.** FER-2013's faces are tightly cropped, and a padded crop shrinks the face
(and costs accuracy).  The margin was measured, not guessed: the same detector run on
PublicTest faces upscaled 4x onto a grey canvas finds boxes nearly as large as the
FER-2013 image and centred on it -- image side / box side has median 1.03 (389 of 500
faces detected; ``bench/predict_crop_margin.py``, results/bench_predict_crop_margin.json).
So the crop is the detector's box widened by :data:`FER_CROP_SCALE` about its centre (edges
replicated where it leaves the photo), made grey and resized to 48x48 -- then the
checkpoint's own evaluation transform, exactly as evaluation saw its faces
(:meth:`ferlib.train.checkpoint.LoadedModel.predict_proba`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UsageError

FER_CROP_SCALE = 1.03  # median of results/bench_predict_crop_margin.json
DETECT_MAX_SIDE = 640
MIN_DETECTION_WEIGHT = 1.0  # the cascade's last-stage score; faces score ~3-6, texture hits ~0.1
FACE_SIZE = 48
CASCADE = "haarcascade_frontalface_default.xml"
DEFAULT_RECIPE = "densenet-bc-center"  # the kit's committed model of this recipe (python -m ferlib export)


def default_model_path() -> Path:
    """The kit's committed real-data model of :data:`DEFAULT_RECIPE` with the largest budget (``models/``)."""
    from .runs import RunKey, find_trained

    run = find_trained(DEFAULT_RECIPE, own=False)
    return run.checkpoint if run else RunKey(DEFAULT_RECIPE, "60min-cpu-2threads").model_path()


@dataclass
class FacePrediction:
    box: tuple  # (x, y, w, h) of the detector, in the photo's pixels
    crop: np.ndarray  # the uint8 48x48 face the model saw
    probabilities: np.ndarray  # one per class
    class_names: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.class_names[int(np.argmax(self.probabilities))]

    def as_dict(self) -> dict:
        return {"box": [int(v) for v in self.box], "label": self.label,
                "probabilities": {c: round(float(p), 4) for c, p in zip(self.class_names, self.probabilities)}}


def read_photo(path: str | Path) -> np.ndarray:
    """A photo as uint8 RGB (H, W, 3); greyscale and RGBA (composited on white) are converted."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file", "give the path of a photo (JPEG, PNG, ...)")
    Image.MAX_IMAGE_PIXELS = 400_000_000  # large camera photos are fine; decompression bombs are not
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                background = Image.new("RGBA", im.size, (255, 255, 255, 255))
                im = Image.alpha_composite(background, im)
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise UsageError(f"{path}: not an image this kit can read ({e})",
                         "give a JPEG or PNG photo") from None


def to_gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        return rgb.astype(np.uint8)
    if rgb.shape[2] == 4:
        rgb = rgb[..., :3]
    return cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2GRAY)


def detect_faces(gray: np.ndarray, *, min_face: int | None = None) -> list[tuple[int, int, int, int]]:
    """Face boxes ``(x, y, w, h)`` of the Haar cascade, most confident first.

    Detections whose final-stage score is below :data:`MIN_DETECTION_WEIGHT` are
    dropped (``detectMultiScale3`` with reject levels).  The photo is searched at most :data:`DETECT_MAX_SIDE` pixels on its longer side:
    at larger sizes the cascade's small windows fire on texture (tested on an 8x
    enlargement of a real photo), and a face under ~4 % of the side is too small to
    classify anyway.  ``min_face``: the smallest face side searched for, in the
    photo's pixels (default: 24 pixels at the search size).
    """
    import cv2

    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE))
    if cascade.empty():
        raise RuntimeError(f"OpenCV's {CASCADE} did not load from {cv2.data.haarcascades}")
    h, w = gray.shape
    scale = min(1.0, DETECT_MAX_SIDE / max(h, w))
    small = gray if scale == 1.0 else cv2.resize(gray, (round(w * scale), round(h * scale)),
                                                 interpolation=cv2.INTER_AREA)
    found, _, weights = cascade.detectMultiScale3(small, scaleFactor=1.1, minNeighbors=5,
                                                  minSize=(max(24, round((min_face or 0) * scale)),) * 2,
                                                  outputRejectLevels=True)
    weights = np.ravel(weights)
    order = [i for i in np.argsort(-weights) if weights[i] >= MIN_DETECTION_WEIGHT]
    return [tuple(int(round(v / scale)) for v in np.asarray(found).reshape(-1, 4)[i]) for i in order]


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


def predict_faces(photo: np.ndarray, model) -> list[FacePrediction]:
    """Detect, crop and classify every face of an RGB or grey photo with a loaded model."""
    gray = to_gray(photo)
    boxes = detect_faces(gray)
    if not boxes:
        return []
    crops = np.stack([crop_face(gray, b) for b in boxes])
    probs = model.predict_proba(crops)
    return [FacePrediction(b, c, p, list(model.class_names)) for b, c, p in zip(boxes, crops, probs)]


def load_predictor(model_path: str | Path | None = None):
    """The model to predict with, loaded on the CPU: a checkpoint file, a run folder, a run name or a
    recipe name (:func:`ferlib.runs.resolve_model`); default the kit's committed model."""
    from .train.checkpoint import load_model
    from .runs import resolve_model

    if model_path:
        try:
            found = resolve_model(model_path)
        except LookupError:
            raise UsageError(f"{model_path}: no such checkpoint, run folder, run name or trained recipe",
                             "give a best.pt or epoch_NNN.pt, a run folder (runs/NAME), or a recipe you trained") from None
        path = found / "best.pt" if isinstance(found, Path) and found.is_dir() else getattr(found, "checkpoint", found)
    else:
        path = default_model_path()
    if not Path(path).is_file():
        if model_path:
            raise UsageError(f"{path}: no such checkpoint", "give a best.pt or epoch_NNN.pt of a run folder")
        raise UsageError(f"the kit's default model {path} is missing",
                         f"train one (python -m ferlib train {DEFAULT_RECIPE} --minutes 60) and pass "
                         f"--model {DEFAULT_RECIPE} (its largest-budget run)")
    try:
        model = load_model(path)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not model.has_softmax_head:
        raise UsageError(f"{path} is an embedding network without a softmax head",
                         "predict needs a classifier checkpoint (e.g. a densenet-bc run)")
    return model


def predict_photo(path: str | Path, model=None) -> list[FacePrediction]:
    """:func:`predict_faces` on a photo file; ``model`` a LoadedModel, a checkpoint path or None (default)."""
    if model is None or isinstance(model, (str, Path)):
        model = load_predictor(model)
    return predict_faces(read_photo(path), model)


def annotate(photo: np.ndarray, faces: list[FacePrediction]) -> np.ndarray:
    """The photo (RGB) with each face's box, its label and a bar per class beside it."""
    import cv2

    out = np.ascontiguousarray(photo if photo.ndim == 3 else np.stack([photo] * 3, -1)).copy()
    thick = max(1, round(max(out.shape[:2]) / 500))
    for face in faces:
        x, y, w, h = face.box
        cv2.rectangle(out, (x, y), (x + w, y + h), (255, 64, 0), thick)
        bar_h = max(6, h // 12)
        font = bar_h / 22
        for i, (name, p) in enumerate(zip(face.class_names, face.probabilities)):
            top = y + i * (bar_h + 2)
            left = min(x + w + 4 * thick, out.shape[1] - 1)
            cv2.rectangle(out, (left, top), (left + int(p * w), top + bar_h), (0, 160, 255), -1)
            cv2.putText(out, f"{name} {p:.2f}", (left + 2, top + bar_h - 2), cv2.FONT_HERSHEY_SIMPLEX, font,
                        (0, 0, 0), max(1, thick // 2), cv2.LINE_AA)
    return out


def upload_widget(model):
    """An ipywidgets ``FileUpload`` that runs :func:`predict_faces` on each photo dropped on it.

    Shows the annotated photo and a table of probabilities per face, or says that no
    face was found / the file is not an image.  Returns the widget (display it).
    """
    import io

    import ipywidgets as W
    from IPython.display import display
    from PIL import Image

    upload = W.FileUpload(accept="image/*", multiple=False, description="your photo")
    out = W.Output()

    def show(change) -> None:
        out.clear_output()
        with out:
            for item in change["new"]:
                try:
                    photo = np.asarray(Image.open(io.BytesIO(bytes(item["content"]))).convert("RGB"))
                except OSError as e:
                    print(f"{item['name']}: not an image this kit can read ({e})")
                    continue
                faces = predict_faces(photo, model)
                if not faces:
                    print(f"{item['name']}: no face found (the detector looks for frontal faces)")
                    continue
                display(Image.fromarray(annotate(photo, faces)))
                for f in faces:
                    print(f"face at {tuple(f.box)}: {f.label}  "
                          + ", ".join(f"{c} {p:.2f}" for c, p in zip(f.class_names, f.probabilities)))

    upload.observe(show, names="value")
    return W.VBox([upload, out])
