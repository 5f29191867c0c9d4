"""EmoNet's 2,728-value "bag of visual words" vector (emonet §3.2 and §5, Fig. 4).

"a 2728 dimensional feature vector comprising of 68 facial landmarks (x and y co-ordinates, so
68x2 features) and 2592 dimensional Histogram of Gradients binned into 8 unsigned orientations"
(emonet §3.2): per face, the sliding-window HOG of :func:`ferlib.features.hog.sliding_window_hog`
(2,592 values; the module docstring says how) followed by the 68 landmarks of
:mod:`ferlib.features.landmarks` flattened as x0, y0, x1, y1, ... (136 values), in 48x48 pixel
coordinates, unscaled: 2,592 + 136 = 2,728.  Chapter 07 standardises the columns on the
training split before its fusion network sees them.
"""
from __future__ import annotations

import numpy as np

from .hog import EMONET_HOG_LENGTH, as_face_batch, sliding_window_hog
from .landmarks import LANDMARKS_LENGTH, N_LANDMARKS, facial_landmarks

EMONET_BOVW_LENGTH = EMONET_HOG_LENGTH + LANDMARKS_LENGTH  # 2592 + 136 = 2728


def emonet_bovw_features(faces, landmarks=None, *, progress: bool | None = None) -> np.ndarray:
    """EmoNet's BOVW vector: (N, 48, 48) uint8 -> (N, 2728) float32 = [HOG (2592) | landmarks (136)].

    landmarks : (N, 68, 2) precomputed points (e.g. :func:`~ferlib.features.landmarks.dataset_landmarks`,
        cached); None computes them with :func:`~ferlib.features.landmarks.facial_landmarks`.
    """
    faces = as_face_batch(faces)
    if landmarks is None:
        landmarks = facial_landmarks(faces, progress=progress)
    landmarks = np.asarray(landmarks)
    if landmarks.shape != (len(faces), N_LANDMARKS, 2):
        raise ValueError(f"landmarks has shape {landmarks.shape}; expected ({len(faces)}, {N_LANDMARKS}, 2) "
                         "for these faces")
    if landmarks.dtype.kind not in "iuf" or not np.isfinite(landmarks).all():
        raise ValueError(f"landmarks must be finite numbers (x, y in pixels); got dtype {landmarks.dtype}"
                         + ("" if landmarks.dtype.kind not in "f" else " with NaN or inf"))
    out = np.concatenate([sliding_window_hog(faces), landmarks.reshape(len(faces), -1).astype(np.float32)], axis=1)
    assert out.shape[1] == EMONET_BOVW_LENGTH
    return out
