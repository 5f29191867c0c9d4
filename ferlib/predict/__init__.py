"""Photos, folders, video files and a webcam -> faces -> expressions.

    from ferlib.predict import predict_photo
    faces = predict_photo("me.jpg")                  # the kit's committed real-data model
    faces[0].box, faces[0].label, faces[0].probabilities   # (x, y, w, h) in the upright photo; one per class

    python -m ferlib predict PHOTO_OR_FOLDER_OR_VIDEO... [--recursive] [--model M] [--runtime torch|onnx]
                             [--json | --csv] [--out FILE_OR_FOLDER]
    python -m ferlib webcam [--camera N] [--out annotated.mp4]

The modules, each one idea:

* :mod:`~ferlib.predict.photos` -- reading photos as a viewer shows them (EXIF orientation,
  16-bit, palette, alpha, CMYK, first of several frames), listing folders;
* :mod:`~ferlib.predict.faces` -- Haar-cascade detection, FER-2013's crop (its margin measured
  in ``bench/predict_crop_margin.py``), one batch per picture, drawing the results;
* :mod:`~ferlib.predict.models` -- the model: a checkpoint on PyTorch or an ONNX file on ONNX
  Runtime (``--runtime onnx``), class names from the file, a warning for smoke-test models;
* :mod:`~ferlib.predict.video` -- video files: detection every few frames and tracking between,
  probabilities smoothed over time (its docstring says which choices and why;
  ``bench/video_fps.py`` measures frames/s with and without them);
* :mod:`~ferlib.predict.camera` -- a webcam in real time;
* :mod:`~ferlib.predict.widgets` -- the try-it notebook's upload button and frame strips.
"""
from __future__ import annotations

from pathlib import Path

from .faces import (CASCADE, DETECT_MAX_SIDE, FACE_SIZE, FER_CROP_SCALE, MIN_DETECTION_WEIGHT, MIN_FACE_SEARCH,
                    FacePrediction, PhotoResult, analyse_photo, annotate, classify_boxes, crop_face, detect_faces,
                    find_small_faces, min_face_side, predict_faces, to_gray)
from .models import DEFAULT_RECIPE, OnnxPredictor, default_model_path, load_predictor, model_warning
from .photos import Photo, is_video, list_inputs, load_photo, read_photo


def predict_photo(path: str | Path, model=None) -> list[FacePrediction]:
    """:func:`predict_faces` on a photo file (read upright); ``model`` a loaded model, a path or None (default)."""
    if model is None or isinstance(model, (str, Path)):
        model = load_predictor(model)
    return predict_faces(read_photo(path), model)


def upload_widget(model):
    """The try-it notebook's upload button (:func:`ferlib.predict.widgets.upload_widget`)."""
    from .widgets import upload_widget as widget

    return widget(model)


__all__ = ["CASCADE", "DEFAULT_RECIPE", "DETECT_MAX_SIDE", "FACE_SIZE", "FER_CROP_SCALE", "MIN_DETECTION_WEIGHT",
           "MIN_FACE_SEARCH", "FacePrediction", "OnnxPredictor", "Photo", "PhotoResult", "analyse_photo", "annotate",
           "classify_boxes", "crop_face", "default_model_path", "detect_faces", "find_small_faces", "is_video",
           "list_inputs", "load_photo", "load_predictor", "min_face_side", "model_warning", "predict_faces",
           "predict_photo", "read_photo", "to_gray", "upload_widget"]
