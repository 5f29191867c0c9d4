"""Hand-crafted face features of chapter 01: HOG, Sobel/Laplacian images, 68 landmarks, EmoNet's vector.

A lower floor: imports numpy, scikit-image, OpenCV, dlib and :mod:`ferlib.data` /
:mod:`ferlib.errors` only (never train, jobs, chapters or commands).

- :mod:`.hog` -- whole-face HOG with its picture, and EmoNet's sliding-window HOG
  (2,592 values; emonet §5).
- :mod:`.edges` -- Sobel gradient-magnitude and Laplacian images (ferplus §III-B).
- :mod:`.landmarks` -- dlib's 68 facial landmarks, cached once per data set (emonet §5).
- :mod:`.bovw` -- EmoNet's 2,728-value "bag of visual words" vector (emonet §3.2, §5).

Every function that takes faces checks them first with :func:`as_face_batch` (in :mod:`.hog`,
the first module, so the submodules need not import the package: no import cycle), so bad input
is one :class:`~ferlib.errors.UsageError` (a ``ValueError``) that says what is wrong.
"""
from __future__ import annotations

from .hog import (EMONET_HOG_LENGTH, as_face_batch, hog_with_picture, sliding_window_hog,
                  sliding_window_hog_layout, whole_face_hog)
from .edges import edge_channels, laplacian_image, laplacian_response, sobel_image, sobel_magnitude
from .landmarks import (FER2013_FACE_BOX, LANDMARKS_LENGTH, dataset_landmarks,
                        facial_landmarks, landmarks_cache_path)
from .bovw import EMONET_BOVW_LENGTH, emonet_bovw_features

__all__ = [
    "as_face_batch", "EMONET_HOG_LENGTH", "hog_with_picture", "sliding_window_hog", "sliding_window_hog_layout",
    "whole_face_hog", "edge_channels", "laplacian_image", "laplacian_response", "sobel_image",
    "sobel_magnitude", "FER2013_FACE_BOX", "LANDMARKS_LENGTH", "dataset_landmarks", "facial_landmarks",
    "landmarks_cache_path", "EMONET_BOVW_LENGTH", "emonet_bovw_features",
]
