"""Photos as phones, scanners and editors save them, read as the upright 8-bit RGB picture a viewer shows.

:func:`load_photo` returns the pixels and, in ``notes``, every conversion it made:

* **EXIF orientation** (tag 274) is applied first (``PIL.ImageOps.exif_transpose``): a phone
  photo stored sideways is turned upright, so faces are found and boxes are reported in the
  upright photo's coordinates -- the picture every viewer shows.
* **High bit depths**: 16-bit greyscale (``I;16``, PNG and TIFF) is divided by 257 (65535 ->
  255); 32-bit integer images by 257 when their values fit 16 bits, otherwise stretched from
  their minimum to their maximum; float images (``F``) scaled by 255 when their values lie in
  [0, 1], otherwise stretched.  (16-bit RGB files are already reduced to 8 bits by Pillow.)
* **Palette, alpha, bi-level, CMYK, YCbCr**: palette and alpha images are composited on white
  (a transparent background becomes white, as in a viewer); CMYK and the rest through
  Pillow's conversion to RGB.
* **Several frames** (animated GIF / WebP / PNG, multi-page TIFF): the first frame, and a note
  saying how many there are.

:func:`list_inputs` turns the command line's paths into work: a file as given, a folder's
images sorted by name (``recursive``: its sub-folders too), its non-images listed as skipped.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError

#: Extensions read as videos (OpenCV's FFmpeg); everything else is tried as an image.
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".3gp", ".ogv", ".ts", ".mts"})
#: Extensions taken as images without opening them when a folder is listed.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                            ".ppm", ".pgm", ".pbm", ".pnm", ".tga", ".ico", ".jp2", ".j2k", ".avif", ".pcx",
                            ".sgi", ".im", ".dds", ".icns", ".psd", ".eps", ".xbm", ".qoi"})

#: EXIF orientation value -> what turning it upright does (the TIFF/EXIF 2.3 table).
EXIF_ORIENTATIONS = {2: "mirrored", 3: "rotated 180°", 4: "flipped upside down", 5: "transposed",
                     6: "rotated 90° clockwise", 7: "transversed", 8: "rotated 90° counter-clockwise"}


@dataclass
class Photo:
    """An upright uint8 RGB (H, W, 3) picture and what was done to read it."""

    path: Path
    pixels: np.ndarray
    notes: list[str] = field(default_factory=list)


def _unreadable(path: Path, why) -> UsageError:
    return UsageError(f"{path}: not an image this kit can read ({why})",
                      "give a JPEG, PNG, TIFF, WebP, GIF or BMP photo (or a video file)")


def high_depth_to_uint8(a: np.ndarray, mode: str) -> tuple[np.ndarray, str]:
    """A grey image of more than 8 bits as uint8, and the note saying how (module docstring)."""
    a = np.asarray(a)
    if mode.startswith("I;16"):
        return (a.astype(np.uint32) // 257).astype(np.uint8), "16-bit greyscale scaled to 8 bits (/257)"
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float64))
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 1:
            return np.round(a * 255).astype(np.uint8), "floating-point image in [0, 1] scaled to 8 bits (x255)"
    else:
        a = a.astype(np.int64)
        lo, hi = int(a.min()), int(a.max())
        if lo >= 0 and hi <= 255:
            return a.astype(np.uint8), f"{mode} image with 8-bit values"
        if lo >= 0 and hi <= 65535:
            return (a // 257).astype(np.uint8), f"{mode} image with 16-bit values scaled to 8 bits (/257)"
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.round((a - lo) * scale).astype(np.uint8), f"{mode} image stretched from [{lo:g}, {hi:g}] to 8 bits"


def _to_rgb(im) -> tuple[np.ndarray, list[str]]:
    from PIL import Image

    notes = []
    mode = im.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey, note = high_depth_to_uint8(np.asarray(im), mode)
        notes.append(note)
        return np.repeat(grey[..., None], 3, axis=2), notes
    if mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        if im.getextrema()[3][0] < 255:
            notes.append("transparent parts shown on white")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    elif mode not in ("RGB", "L", "P", "1"):  # lossless ones go unmentioned
        notes.append(f"{mode} converted to RGB")
    return np.asarray(im.convert("RGB"), dtype=np.uint8), notes


def load_photo(path: str | Path) -> Photo:
    """Read a photo file upright as uint8 RGB; a clear :class:`UsageError` when it is not one."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder", "give photos, a video file, or a folder to ferlib's predict command")
    if not path.is_file():
        raise UsageError(f"{path}: no such file", "give the path of a photo (JPEG, PNG, ...), a video or a folder")
    Image.MAX_IMAGE_PIXELS = 400_000_000  # large camera photos are fine; decompression bombs are not
    try:
        with Image.open(path) as im:
            notes = []
            frames = getattr(im, "n_frames", 1)
            if frames > 1:
                im.seek(0)
                notes.append(f"first of its {frames} frames")
            im.load()
            orientation = im.getexif().get(274, 1)
            upright = ImageOps.exif_transpose(im)
            if orientation in EXIF_ORIENTATIONS:
                notes.append(f"EXIF orientation {orientation} applied ({EXIF_ORIENTATIONS[orientation]})")
            pixels, more = _to_rgb(upright)
            return Photo(path, pixels, notes + more)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        photo = _read_with_opencv(path)
        if photo is None:
            raise _unreadable(path, e) from None
        return photo


@contextmanager
def quiet_opencv():
    """OpenCV's own warnings off (``can't open ...``): ferlib says what went wrong once, in its own words.

    FFmpeg's messages (``moov atom not found``) go too, for the process: OpenCV reads
    ``OPENCV_FFMPEG_LOGLEVEL`` when it first opens a video (a value you set is kept).
    """
    import os

    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET

    previous = cv2.getLogLevel() if hasattr(cv2, "getLogLevel") else None
    if previous is not None:
        cv2.setLogLevel(1)  # 1: fatal errors only (OpenCV's numbering)
    try:
        yield
    finally:
        if previous is not None:
            cv2.setLogLevel(previous)


def _read_with_opencv(path: Path) -> Photo | None:
    """What Pillow cannot open but OpenCV can (floating-point colour TIFF, some 16-bit formats), or None."""
    import cv2

    try:
        with quiet_opencv():
            a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if a is None or a.size == 0 or a.ndim not in (2, 3):
        return None
    notes = ["read with OpenCV (Pillow cannot)"]
    if a.dtype != np.uint8:  # one scale for all channels, so colours keep their balance
        a, note = high_depth_to_uint8(a, "I;16" if a.dtype == np.uint16 else str(a.dtype))
        notes.append(note.replace("greyscale ", "") if a.ndim == 3 else note)
    if a.ndim == 2 or a.shape[2] == 1:
        return Photo(path, np.repeat(a.reshape(a.shape[0], a.shape[1], 1), 3, axis=2), notes)
    if a.shape[2] == 4:
        alpha = a[..., 3:].astype(np.float32) / 255
        a = (a[..., :3] * alpha + 255 * (1 - alpha)).round().astype(np.uint8)
        notes.append("transparent parts shown on white")
    return Photo(path, np.ascontiguousarray(a[..., 2::-1]), notes)  # BGR -> RGB


def read_photo(path: str | Path) -> np.ndarray:
    """A photo as uint8 RGB (H, W, 3), upright (EXIF orientation applied); see :func:`load_photo`."""
    return load_photo(path).pixels


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass
class Inputs:
    """What the command line's paths hold: image files, video files, files skipped (with why)."""

    images: list[Path] = field(default_factory=list)
    videos: list[Path] = field(default_factory=list)
    skipped: dict[Path, str] = field(default_factory=dict)
    roots: dict[Path, Path] = field(default_factory=dict)  # each file found in a folder -> that folder

    def __len__(self) -> int:
        return len(self.images) + len(self.videos)


def _looks_like_image(path: Path) -> str | None:
    """None when Pillow can open ``path`` as an image, else why not (one short phrase)."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() in IMAGE_SUFFIXES:
        return None  # read (and reported if unreadable) when its turn comes
    try:
        with Image.open(path):
            return None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return "not an image"


def list_inputs(paths, *, recursive: bool = False) -> Inputs:
    """Image and video files of ``paths``: files as given (an unreadable one fails later, loudly);
    a folder's files sorted by path, hidden ones (``.name``) left out, non-images skipped."""
    found = Inputs()
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in (p.rglob("*") if recursive else p.iterdir())
                           if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts))
            if not files:
                raise UsageError(f"{p}: no files in this folder" + ("" if recursive else " (sub-folders are not "
                                 "searched)"), None if recursive else "pass --recursive to search its sub-folders")
            for f in files:
                found.roots[f] = p
                if is_video(f):
                    found.videos.append(f)
                elif (why := _looks_like_image(f)) is None:
                    found.images.append(f)
                else:
                    found.skipped[f] = why
        elif not p.exists():
            raise UsageError(f"{p}: no such file or folder", "give photos, video files or folders of photos")
        elif is_video(p):
            found.videos.append(p)
        else:
            found.images.append(p)
    return found
