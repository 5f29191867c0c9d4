"""A camera in real time: ``python -m ferlib webcam [--camera N]``.

The camera is opened with OpenCV (``cv2.VideoCapture(N)``; a path or an ``rtsp://`` /
``http://`` address works too, for a video file played as if live or an IP camera) and asked
for 640x480 with a one-frame buffer, so each frame processed is the newest, not one queued
while the previous was classified.  Frames go through the video pipeline
(:func:`ferlib.predict.video.predict_frames`: tracking, batching, smoothing by wall-clock time).

Where the frames are shown: an OpenCV window when this OpenCV has one (``opencv-python``; the
kit installs ``opencv-python-headless``, which has none), else a matplotlib window when
matplotlib has an interactive back end and a display, else nowhere -- then one line a second
says the faces and labels (``--no-window`` asks for that).  ``q`` or Esc in a window, or
Ctrl-C, stops.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import UsageError
from .photos import quiet_opencv

CAMERA_SIZE = (640, 480)


def camera_source(spec: str | int):
    """``int`` for a camera index (``"0"`` -> 0), else the string (a file, or a stream address)."""
    text = str(spec).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def open_camera(spec: str | int = 0):
    """An opened ``cv2.VideoCapture`` that has delivered a frame; one clear UsageError otherwise."""
    import cv2

    source = camera_source(spec)
    if isinstance(source, int):
        if source < 0:
            raise UsageError(f"--camera {source}: a camera number is 0 or more")
        devices = sorted(Path("/dev").glob("video*")) if sys.platform.startswith("linux") else None
        if devices is not None and not devices:
            raise UsageError(f"no camera on this machine (no /dev/video* device; asked for camera {source})",
                             "connect a webcam, or run python -m ferlib predict VIDEO_FILE on a recording")
    elif "://" not in source and not Path(source).exists():
        raise UsageError(f"--camera {source}: no such camera, file or stream address",
                         "give a camera number (0, 1, ...), a video file or an rtsp:// / http:// address")
    with quiet_opencv():  # OpenCV's own "can't open camera by index" warnings: the message below says it once
        cap = cv2.VideoCapture(source)
        if cap.isOpened() and isinstance(source, int):
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, CAMERA_SIZE[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, CAMERA_SIZE[1])
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        ok = cap.isOpened() and cap.read()[0]
        if ok and isinstance(source, str) and "://" not in source:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a file played as a camera starts at its first frame
    if not ok:
        cap.release()
        what = f"camera {source}" if isinstance(source, int) else source
        raise UsageError(f"could not open {what} (OpenCV got no frame from it)",
                         "check that a webcam is connected and not in use by another program, try --camera 1, "
                         "or run python -m ferlib predict VIDEO_FILE on a recording")
    return cap


def camera_frames(cap, *, max_frames: int | None = None, live: bool = True) -> Iterator[tuple[float, np.ndarray]]:
    """``(seconds since start, BGR frame)`` from an opened capture until it ends or ``max_frames``."""
    t0, i = time.monotonic(), 0
    while max_frames is None or i < max_frames:
        ok, frame = cap.read()
        if not ok:
            return
        yield (time.monotonic() - t0) if live else i / 30.0, frame
        i += 1


class Display:
    """Where frames are shown: ``"opencv"``, ``"matplotlib"`` or ``"none"`` (module docstring)."""

    def __init__(self, want_window: bool = True, title: str = "ferlib webcam (q to quit)"):
        self.kind, self.title, self._image, self._stop = "none", title, None, False
        self.why_none = "--no-window"
        if want_window:
            self._open()

    def _open(self) -> None:
        import cv2

        try:
            cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE)
            self.kind = "opencv"
            return
        except cv2.error:
            self.why_none = "this OpenCV (opencv-python-headless) has no windows"
        import matplotlib

        backend = matplotlib.get_backend().lower()
        if backend in ("agg", "pdf", "ps", "svg", "cairo", "template") or "inline" in backend:
            self.why_none += f", and matplotlib's back end ({backend}) shows no window"
            return
        import matplotlib.pyplot as plt

        try:
            self._fig, ax = plt.subplots(num=self.title)
        except Exception as e:  # noqa: BLE001 - no display, no Tk: say so and go on without a window
            self.why_none += f", and matplotlib could not open one ({e})"
            return
        ax.axis("off")
        self._ax, self._plt = ax, plt
        self._fig.canvas.mpl_connect("key_press_event", self._key)
        self._fig.canvas.mpl_connect("close_event", lambda _e: setattr(self, "_stop", True))
        plt.ion()
        plt.show(block=False)
        self.kind = "matplotlib"

    def _key(self, event) -> None:
        if event.key in ("q", "escape"):
            self._stop = True

    def show(self, bgr: np.ndarray) -> bool:
        """Show a frame; False when the user asked to stop."""
        if self.kind == "opencv":
            import cv2

            cv2.imshow(self.title, bgr)
            return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)
        if self.kind == "matplotlib":
            rgb = bgr[..., ::-1]
            if self._image is None:
                self._image = self._ax.imshow(rgb)
            else:
                self._image.set_data(rgb)
            self._plt.pause(0.001)
            return not self._stop
        return True

    def close(self) -> None:
        if self.kind == "opencv":
            import cv2

            cv2.destroyWindow(self.title)
        elif self.kind == "matplotlib":
            self._plt.close(self._fig)
