"""Readers for every form FER-2013 arrives in, each returning a :class:`FERDataset`.

* ``fer2013.csv`` -- the ICML 2013 challenge file: header ``emotion,pixels,Usage``,
  one row per image, pixels as 2,304 space-separated integers (48x48, row-major).
* ``icml_face_data.csv`` -- the same rows, columns ``emotion, Usage, pixels`` (note
  the leading spaces in the header).
* an image folder -- ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` (Kaggle's
  "msambare" layout): the split comes from the file-name prefix ``Training_``,
  ``PublicTest_`` or ``PrivateTest_``, the class from the folder name.
* ``fer2013.npz.xz`` -- a lossless array file of the same rows: an xz-compressed ``.npz``
  with ``pixels`` (uint8, N x 48 x 48), ``emotion`` and ``usage``, in ``fer2013.csv`` order.

Every problem raises :class:`~ferlib.data.errors.DataFormatError` naming the file,
the row (and line), the problem and the fix.  Rows are numbered from 0 in data order
(the header is line 1, so row ``r`` is on line ``r + 2``).
"""
from __future__ import annotations

import csv
import io
import lzma
import re
import warnings
from pathlib import Path

import numpy as np

from .classes import EMOTIONS, FOLDER_CLASS_NAMES, SPLITS
from .dataset import FERDataset
from .errors import DataFormatError

IMAGE_SIZE = 48
NUM_PIXELS = IMAGE_SIZE * IMAGE_SIZE
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm")

_GET_DATA = ("download fer2013.csv from Kaggle's 'Challenges in Representation Learning: "
             "Facial Expression Recognition Challenge' (see the kit's README.md, 'The data')")

csv.field_size_limit(1 << 24)


def _where(row: int) -> str:
    return f"row {row} (line {row + 2})"


def parse_pixels(text: str, path: Path, row: int) -> np.ndarray:
    """2,304 space-separated integers 0..255 -> uint8 (48, 48), or a precise error."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            values = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            values = None
    if values is None:
        tokens = text.split()
        for i, tok in enumerate(tokens):
            if not tok.isdigit():
                raise DataFormatError(
                    path, f"pixel {i} is {tok!r}, not an integer 0..255", where=_where(row),
                    fix="the pixels field must hold 2304 integers separated by single spaces; "
                        "re-download or re-export the file")
        values = np.array(tokens, dtype=np.int64)
    if values.size != NUM_PIXELS:
        raise DataFormatError(
            path, f"{values.size} pixel values, expected {NUM_PIXELS} (48x48)", where=_where(row),
            fix="each image must have exactly 2304 pixels; the row is truncated or corrupted -- "
                "re-download the file or delete this row")
    if values.min() < 0 or values.max() > 255:
        bad = int(np.flatnonzero((values < 0) | (values > 255))[0])
        raise DataFormatError(
            path, f"pixel {bad} is {values[bad]}, outside 0..255", where=_where(row),
            fix="pixels must be 8-bit grey levels; re-export the image as uint8")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _parse_label(text: str, path: Path, row: int) -> int:
    text = text.strip()
    if not text.lstrip("-").isdigit() or not 0 <= int(text) < len(EMOTIONS):
        raise DataFormatError(
            path, f"emotion {text!r} is not a class code 0..6 "
                  f"({', '.join(f'{i} {n}' for i, n in enumerate(EMOTIONS))})", where=_where(row),
            fix="fix or delete this row; FER-2013 has exactly these 7 classes")
    return int(text)


def _parse_usage(text: str, path: Path, row: int) -> str:
    text = text.strip()
    if text not in SPLITS:
        raise DataFormatError(
            path, f"Usage {text!r} is not one of {', '.join(SPLITS)}", where=_where(row),
            fix="every row must name its Kaggle split; fix the value (spelling and case matter)")
    return text


def _require_all_splits(usage: np.ndarray, path: Path) -> None:
    missing = [s for s in SPLITS if not (usage == s).any()]
    if missing:
        raise DataFormatError(
            path, f"no rows for split(s) {', '.join(missing)}",
            fix="ferlib trains on Training, selects models on PublicTest and reports PrivateTest: "
                "use the complete fer2013.csv (35,887 rows), not a part of it")


def read_fer2013_csv(path: str | Path) -> FERDataset:
    """Read the challenge's ``fer2013.csv`` or ``icml_face_data.csv``.

    Columns are found by name (stripped of spaces), so both headers work:
    ``emotion,pixels,Usage`` and ``emotion, Usage, pixels``.
    """
    path = Path(path)
    try:
        handle = open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise DataFormatError(path, f"cannot open the file ({e.strerror})",
                              fix=f"check the path and permissions, or {_GET_DATA}") from e
    with handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataFormatError(path, "the file is empty", where="line 1",
                                  fix=f"the download was interrupted or the file was truncated; {_GET_DATA}")
        names = [h.strip() for h in header]
        missing = [c for c in ("emotion", "pixels", "Usage") if c not in names]
        if missing:
            raise DataFormatError(
                path, f"missing column(s) {', '.join(repr(m) for m in missing)}; the header is {header}",
                where="line 1 (header)",
                fix="ferlib reads fer2013.csv (emotion,pixels,Usage) and icml_face_data.csv "
                    "(emotion, Usage, pixels); Kaggle's train.csv/test.csv lack the Usage split -- "
                    "use fer2013.csv instead")
        i_emotion, i_pixels, i_usage = (names.index(c) for c in ("emotion", "pixels", "Usage"))
        n_cols = len(names)
        pixels, labels, usage = [], [], []
        for row, fields in enumerate(reader):
            if not fields:
                continue
            if len(fields) != n_cols:
                raise DataFormatError(path, f"{len(fields)} fields, expected {n_cols} ({', '.join(names)})",
                                      where=_where(row),
                                      fix="the row is cut or has extra commas; re-download the file")
            labels.append(_parse_label(fields[i_emotion], path, row))
            usage.append(_parse_usage(fields[i_usage], path, row))
            pixels.append(parse_pixels(fields[i_pixels], path, row))
    if not pixels:
        raise DataFormatError(path, "the file has a header but no rows", where="line 2",
                              fix=f"the download was interrupted; {_GET_DATA}")
    usage_arr = np.array(usage)
    _require_all_splits(usage_arr, path)
    fmt = "icml_face_data.csv" if names[1] == "Usage" else "fer2013.csv"
    return FERDataset(pixels=np.stack(pixels), labels=np.array(labels, dtype=np.int64), usage=usage_arr,
                      rows=np.arange(len(pixels), dtype=np.int64), source=str(path), format=fmt)


def read_npz_xz(path: str | Path) -> FERDataset:
    """Read the lossless array file (xz-compressed ``.npz`` with pixels, emotion, usage)."""
    path = Path(path)
    try:
        with lzma.open(path) as f:
            arrays = np.load(io.BytesIO(f.read()))
            pixels, emotion, usage = arrays["pixels"], arrays["emotion"], arrays["usage"]
    except (OSError, lzma.LZMAError, ValueError, KeyError) as e:
        raise DataFormatError(path, f"not a readable xz-compressed .npz with pixels/emotion/usage ({e})",
                              fix="the copy is damaged or not the FER-2013 array file; copy it again and "
                                  "check its sha256 against the checksum published with it") from e
    if pixels.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE) or pixels.dtype != np.uint8:
        raise DataFormatError(path, f"pixels are {pixels.dtype} {pixels.shape}, expected uint8 (N, 48, 48)",
                              fix="this is not the FER-2013 array file; copy it again")
    usage = usage.astype(str)
    _require_all_splits(usage, path)
    return FERDataset(pixels=pixels, labels=emotion.astype(np.int64), usage=usage,
                      rows=np.arange(len(pixels), dtype=np.int64), source=str(path), format="fer2013.npz.xz")


_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_(\d+)")


def _read_gray_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("L")
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as e:
        raise DataFormatError(path, f"unreadable image ({e})",
                              fix="delete or replace this file; it is not a valid image") from e
    if arr.shape != (IMAGE_SIZE, IMAGE_SIZE):
        raise DataFormatError(path, f"image is {arr.shape[1]}x{arr.shape[0]}, expected 48x48",
                              fix="FER-2013 images are 48x48 grey; remove this file or resize it to 48x48 "
                                  "(for your own photos use ferlib.predict, which detects and crops faces)")
    return arr


def read_image_folder(root: str | Path) -> FERDataset:
    """Read the image-folder layout ``train/<class>/*.jpg``, ``test/<class>/*.jpg``.

    The split is read from the file-name prefix (``Training_123.jpg``,
    ``PublicTest_456.jpg``, ``PrivateTest_789.jpg``); files in ``train/`` without a
    prefix are Training.  Files in ``test/`` without a prefix cannot be assigned to
    PublicTest or PrivateTest, so they are an error.  Rows are ordered by split, then
    by the number in the file name, then by class -- a stable order, but *not* the
    ``fer2013.csv`` row order, so FER+ votes cannot be aligned to an image folder.
    """
    root = Path(root)
    entries = []  # (split_rank, number, class, name, path)
    for half in ("train", "test"):
        half_dir = root / half
        if not half_dir.is_dir():
            raise DataFormatError(root, f"no '{half}/' folder", fix="the image-folder layout needs "
                                  "train/<class>/*.jpg and test/<class>/*.jpg (Kaggle msambare/fer2013)")
        for class_dir in sorted(p for p in half_dir.iterdir() if p.is_dir()):
            code = FOLDER_CLASS_NAMES.get(class_dir.name.lower())
            if code is None:
                raise DataFormatError(class_dir, f"unknown class folder {class_dir.name!r}",
                                      fix=f"class folders must be named {', '.join(EMOTIONS)}")
            for f in sorted(class_dir.iterdir()):
                if f.suffix.lower() not in IMAGE_SUFFIXES:
                    continue
                m = _PREFIX.match(f.name)
                if m:
                    split, number = m.group(1), int(m.group(2))
                elif half == "train":
                    digits = re.findall(r"\d+", f.stem)
                    split, number = "Training", int(digits[-1]) if digits else 0
                else:
                    raise DataFormatError(
                        f, "a test image without a PublicTest_/PrivateTest_ prefix",
                        fix="ferlib needs to know which test half each image belongs to; use Kaggle's "
                            "msambare layout (PublicTest_*.jpg, PrivateTest_*.jpg) or fer2013.csv")
                entries.append((SPLITS.index(split), number, code, f.name, f))
    if not entries:
        raise DataFormatError(root, "no images found under train/ and test/", fix=_GET_DATA)
    entries.sort(key=lambda e: e[:4])
    pixels = np.stack([_read_gray_image(e[4]) for e in entries])
    usage = np.array([SPLITS[e[0]] for e in entries])
    _require_all_splits(usage, root)
    return FERDataset(pixels=pixels, labels=np.array([e[2] for e in entries], dtype=np.int64), usage=usage,
                      rows=np.arange(len(entries), dtype=np.int64), source=str(root), format="image-folder")
