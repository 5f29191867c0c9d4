"""Sobel gradient-magnitude and Laplacian images of faces (ferplus §III-B, "Using the Laplacian
and Gradient of the Facial Images"), batched over (N, H, W) uint8 with OpenCV.

The paper stacks these channel-wise beside the original face as the network's input (chapter
08 does so with :func:`edge_channels`); it names the operators but no kernel size or scaling, so:

- **Sobel**: ``cv2.Sobel`` on the float32 face, ``dx=1, dy=0`` and ``dx=0, dy=1``, ``ksize=3``
  (the 3x3 kernels [-1 0 1; -2 0 2; -1 0 1] and its transpose), border ``BORDER_REFLECT_101``
  (OpenCV's default); the image is the gradient magnitude ``sqrt(gx^2 + gy^2)``
  (:func:`sobel_magnitude`, float32, 0 .. 255*sqrt(20) ~= 1140.4).
- **Laplacian**: ``cv2.Laplacian`` on the float32 face with ``ksize=1``, the 4-neighbour kernel
  [0 1 0; 1 -4 1; 0 1 0], same border (:func:`laplacian_response`, float32, signed, -1020 .. 1020).
- **uint8 images** (:func:`sobel_image`, :func:`laplacian_image`) use a **fixed factor, not
  per-image min/max scaling**: a given edge then has the same value in every face, and a flat,
  low-contrast face is not stretched into amplified noise -- the channel means the same thing
  across the data set, and chapter 08 normalises each channel with data-set statistics
  anyway.  The factors are the exact ranges, so nothing ever saturates:
  ``sobel_image = round(magnitude / sqrt(20))`` (255*sqrt(20) is the largest 3x3 Sobel
  magnitude a [0, 255] image can have -- top row and the middle row's left pixel 255, the rest 0,
  giving |gx| = 2*255 and |gy| = 4*255 (found by trying all 512 black/white 3x3 patches) -- so a
  full-contrast straight step edge reads 1020/sqrt(20) ~= 228), and
  ``laplacian_image = round(128 + laplacian / 8)`` (signed, so flat and linear regions read 128,
  and the sign of the second derivative -- which side of an edge is bright -- is kept).
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .hog import as_face_batch

SOBEL_SCALE = 1.0 / math.sqrt(20.0)  # magnitude -> [0, 255]: 255*sqrt(20) is the largest 3x3 Sobel magnitude
LAPLACIAN_SCALE = 1.0 / 8.0  # signed [-1020, 1020] -> [-127.5, 127.5], then + 128
LAPLACIAN_OFFSET = 128.0


def sobel_magnitude(faces) -> np.ndarray:
    """Sobel gradient magnitude ``sqrt(gx^2 + gy^2)``, ksize 3: (N, H, W) uint8 -> float32 (N, H, W)."""
    faces = as_face_batch(faces, size=None)
    out = np.empty(faces.shape, np.float32)
    for i, face in enumerate(faces.astype(np.float32)):
        gx = cv2.Sobel(face, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(face, cv2.CV_32F, 0, 1, ksize=3)
        out[i] = cv2.magnitude(gx, gy)
    return out


def laplacian_response(faces) -> np.ndarray:
    """Laplacian with the 4-neighbour kernel (``cv2.Laplacian``, ksize 1), signed: -> float32 (N, H, W)."""
    faces = as_face_batch(faces, size=None)
    out = np.empty(faces.shape, np.float32)
    for i, face in enumerate(faces.astype(np.float32)):
        out[i] = cv2.Laplacian(face, cv2.CV_32F, ksize=1)
    return out


def sobel_image(faces) -> np.ndarray:
    """The Sobel magnitude as uint8 (N, H, W): ``round(magnitude / sqrt(20))``, never saturating."""
    return _to_uint8(sobel_magnitude(faces) * SOBEL_SCALE)


def laplacian_image(faces) -> np.ndarray:
    """The Laplacian as uint8 (N, H, W): ``round(128 + laplacian / 8)``; 128 where it is zero."""
    return _to_uint8(LAPLACIAN_OFFSET + laplacian_response(faces) * LAPLACIAN_SCALE)


def edge_channels(faces) -> np.ndarray:
    """Face, Sobel and Laplacian images stacked channel-first: (N, H, W) uint8 -> (N, 3, H, W) uint8.

    The "S" + "L" input of ferplus Table I (original image with its gradient and Laplacian).
    """
    faces = as_face_batch(faces, size=None)
    return np.stack([faces, sobel_image(faces), laplacian_image(faces)], axis=1)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)
