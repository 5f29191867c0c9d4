"""Per-face inputs a network takes beside the image, computed once per data set and cached.

EmoNet's two-input network (chapter 07, :mod:`ferlib.models.emonet`) takes the 2,728-value BOVW
vector of each face (:func:`~ferlib.features.bovw.emonet_bovw_features`: the sliding-window HOG and
dlib's 68 landmarks) beside its pixels.  The vector belongs to the face, not to an epoch: it is
computed **once per data set** -- a few milliseconds a face (dlib's landmarks and the 49 windows'
HOG), minutes for all of FER-2013 -- saved beside ferlib's parsed-data cache, and loaded in a fraction
of a second by every later run, evaluation and ensemble.  The batch sources keep it on the device and index it
with each batch (``extra`` in :class:`~ferlib.data.batches.DeviceBatchSource`); the trainer passes it
to the network by name.

**The vector of the face as it is, not as augmented.**  The image branch sees the randomly rotated,
sheared, zoomed and flipped face; the BOVW vector stays that of the original face (Keras'
``ImageDataGenerator``, which EmoNet's TensorFlow code would have used, augments the image input
only).  Computing it per augmented batch would cost those milliseconds per face every epoch.

:data:`SIDE_INPUTS` names what exists; :func:`side_inputs_for` returns the arrays a network's
``side_inputs`` ask for.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..data.cache import cache_dir, cache_path, load_arrays, save_arrays
from .bovw import EMONET_BOVW_LENGTH, emonet_bovw_features
from .hog import as_face_batch
from .landmarks import LANDMARKS_CACHE_VERSION, dataset_landmarks, facial_landmarks

__all__ = ["SIDE_INPUTS", "BOVW_CACHE_VERSION", "bovw_cache_path", "dataset_bovw", "pixels_bovw", "side_inputs_for"]

BOVW_CACHE_VERSION = "1"  # bump when the vector's computation changes; part of the cache key
UNCACHED_BELOW = 500  # fewer faces than this (a photo, a smoke test) are computed, not cached


def bovw_cache_path(dataset) -> Path:
    """The cache file of ``dataset``'s BOVW vectors: keyed like the landmarks' (source, method version, a hash
    of the pixels), so every split and subset has its own entry."""
    pixels = as_face_batch(dataset.pixels, what="dataset.pixels")
    base = cache_path(Path(str(dataset.source)))
    digest = hashlib.sha1(pixels.tobytes()).hexdigest()[:12]
    return base.with_name(f"{base.stem}-emonet-bovw-v{BOVW_CACHE_VERSION}-lm{LANDMARKS_CACHE_VERSION}-"
                          f"n{len(pixels)}-{digest}.npz")


def dataset_bovw(dataset, *, use_cache: bool = True, progress: bool | None = None) -> np.ndarray:
    """(N, 2728) float32 EmoNet BOVW vectors of a :class:`~ferlib.data.dataset.FERDataset`, computed once.

    The landmarks come from :func:`~ferlib.features.landmarks.dataset_landmarks` (cached too); the
    first call computes the HOG and saves the whole vector (:func:`bovw_cache_path`, float32, exact).
    """
    n = len(dataset.pixels)
    path = bovw_cache_path(dataset)
    cached = load_arrays(path, ["bovw"]) if use_cache and n >= UNCACHED_BELOW else None
    if cached is not None and cached["bovw"].shape == (n, EMONET_BOVW_LENGTH) and cached["bovw"].dtype == np.float32:
        return cached["bovw"]
    small = n < UNCACHED_BELOW
    landmarks = (facial_landmarks(dataset.pixels, progress=progress) if small or not use_cache
                 else dataset_landmarks(dataset, progress=progress))
    out = emonet_bovw_features(dataset.pixels, landmarks).astype(np.float32, copy=False)
    if use_cache and not small:
        save_arrays(path, bovw=out)  # a folder that is not writable only means no cache
    return out


class _Pixels:
    """A stand-in data set for faces that come without one (a checkpoint's predictions on given pixels)."""

    def __init__(self, pixels):
        self.pixels = np.ascontiguousarray(as_face_batch(pixels))
        self.source = str(cache_dir() / "pixels")


def pixels_bovw(pixels, *, use_cache: bool = True, progress: bool | None = None) -> np.ndarray:
    """(N, 2728) BOVW vectors of uint8 (N, 48, 48) faces; cached by the pixels' hash from 500 faces up."""
    return dataset_bovw(_Pixels(pixels), use_cache=use_cache, progress=progress)


SIDE_INPUTS: dict[str, tuple[int, Callable]] = {"bovw": (EMONET_BOVW_LENGTH, dataset_bovw)}
"""name -> (values per face, ``function(dataset) -> (N, values) float32``)."""


def side_inputs_for(names, dataset=None, *, pixels=None, progress: bool | None = None) -> dict[str, np.ndarray] | None:
    """``{name: (N, length) array}`` for a network's ``side_inputs`` over a data set (or bare ``pixels``);
    None when it asks for none (batches are then plain ``(x, y)``)."""
    names = tuple(names or ())
    if not names:
        return None
    unknown = [n for n in names if n not in SIDE_INPUTS]
    if unknown:
        raise KeyError(f"unknown side input(s) {unknown}; known: {', '.join(sorted(SIDE_INPUTS))}")
    if dataset is None:
        if pixels is None:
            raise ValueError("give a data set or pixels")
        dataset = _Pixels(pixels)
    return {n: SIDE_INPUTS[n][1](dataset, progress=progress) for n in names}
