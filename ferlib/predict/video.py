"""Video files and cameras: faces tracked from frame to frame, their probabilities smoothed over time.

    for frame in predict_frames(read_video("clip.mp4"), model):   # FrameResult per frame
        frame.faces[0].track, frame.faces[0].label

**Detection every few frames, tracking in between** (:class:`FaceTracker`).  The Haar
cascade over a whole 640x480 frame costs tens of milliseconds on a laptop CPU core, more
than a 30 frames/s budget allows.  So the whole frame is searched every
:data:`DETECT_EVERY` frames (a new face in a scene that has one appears within that many frames); on the frames
between, each tracked face is searched for again only in a window twice its size around its
last box, at a size where the face is 64 pixels and only for faces 0.75-1.35 times that
(:func:`~ferlib.predict.faces.redetect_near`: a few milliseconds).  While no face is in view
(none found on the previous frame) every frame is searched whole, so a face that comes (back)
into view is found on its first frame.  A tracked face that is
not found is dropped after :data:`MAX_MISSED` frames; a face of a whole-frame search is
matched to a track when their boxes overlap (IoU >= 0.3), else it starts a new track.
``detect_every=1`` searches every whole frame (what :func:`bench/video_fps.py
<ferlib.predict.video>` times as "without").  Every tracked face is classified on every frame it
is found on, all faces of a frame in one batch.

**One PyTorch thread for the classifier** (:data:`CLASSIFY_THREADS`).  A frame's batch is one
or a few 48x48 faces: too little work to share between threads, and PyTorch's OpenMP workers,
spinning between calls, take the cores OpenCV's detector needs -- and on a machine busy with
other work, two threads collapse.  ``bench/video_fps.py`` times both (results/bench_video_fps.json).
ONNX Runtime keeps its own threads.

**Temporal smoothing** (:class:`ProbabilitySmoother`): an exponential moving average of
each track's probabilities with a time constant ``tau`` in seconds (default
:data:`SMOOTH_S`), so it behaves the same at any frame rate: with frames ``dt`` seconds
apart, ``p_smooth <- p_smooth + a (p - p_smooth)``, ``a = 1 - exp(-dt / tau)``.  A new track
starts from its first frame's probabilities; ``tau = 0`` turns smoothing off.  Labels and bars
show the smoothed probabilities; each face also keeps its frame's own
(``frame_probabilities``).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import UsageError
from .faces import FacePrediction, annotate, classify_boxes, detect_faces, redetect_near, to_gray
from .photos import quiet_opencv

DETECT_EVERY = 10  # frames between whole-frame searches (1/3 s at 30 frames/s)
MAX_MISSED = 5  # frames a tracked face may go unfound before it is dropped
SMOOTH_S = 0.3  # seconds: the time constant of the probabilities' moving average
CLASSIFY_THREADS = 1  # PyTorch's intra-op threads while a video runs (module docstring)
MATCH_IOU = 0.3


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


@dataclass
class Track:
    id: int
    box: tuple
    missed: int = 0


class FaceTracker:
    """Boxes of the faces of each frame, with a track number that stays with a face (module docstring)."""

    def __init__(self, detect_every: int = DETECT_EVERY, max_missed: int = MAX_MISSED):
        if detect_every < 1:
            raise UsageError(f"--detect-every must be at least 1, got {detect_every}")
        self.detect_every, self.max_missed = int(detect_every), int(max_missed)
        self.tracks: list[Track] = []
        self.frame = -1
        self._next_id = 0

    def _new(self, box) -> Track:
        self._next_id += 1
        return Track(self._next_id, tuple(box))

    def update(self, gray: np.ndarray) -> tuple[list[Track], bool]:
        """The tracks found on this frame, and whether the whole frame was searched."""
        self.frame += 1
        whole = self.frame % self.detect_every == 0 or not any(t.missed == 0 for t in self.tracks)
        found: dict[int, tuple] = {}
        if whole:
            boxes = detect_faces(gray)
            pairs = sorted(((iou(t.box, b), i, j) for i, t in enumerate(self.tracks) for j, b in enumerate(boxes)),
                           reverse=True)
            used_b = set()
            for score, i, j in pairs:
                if score >= MATCH_IOU and self.tracks[i].id not in found and j not in used_b:
                    found[self.tracks[i].id] = boxes[j]
                    used_b.add(j)
            for j, b in enumerate(boxes):
                if j not in used_b:
                    self.tracks.append(self._new(b))
                    found[self.tracks[-1].id] = b
        for t in self.tracks:  # between whole-frame searches (or missed by one): look near the last box
            if t.id not in found:
                box = redetect_near(gray, t.box)
                if box is not None and all(iou(box, b) < MATCH_IOU for b in found.values()):
                    found[t.id] = box
        alive = []
        for t in self.tracks:
            if t.id in found:
                t.box, t.missed = tuple(found[t.id]), 0
                alive.append(t)
            else:
                t.missed += 1
                if t.missed <= self.max_missed:
                    alive.append(t)
        self.tracks = alive
        return [t for t in self.tracks if t.missed == 0], whole


class ProbabilitySmoother:
    """Exponential moving average of each track's probabilities with time constant ``tau`` seconds."""

    def __init__(self, tau: float = SMOOTH_S):
        if tau < 0:
            raise UsageError(f"--smooth must be 0 (off) or a number of seconds, got {tau:g}")
        self.tau = float(tau)
        self.state: dict[int, tuple[float, np.ndarray]] = {}

    def __call__(self, track: int, p: np.ndarray, t: float) -> np.ndarray:
        last = self.state.get(track)
        if last is None or self.tau == 0:
            s = np.asarray(p, dtype=np.float64)
        else:
            a = 1.0 - math.exp(-max(t - last[0], 0.0) / self.tau)
            s = last[1] + a * (np.asarray(p, dtype=np.float64) - last[1])
        self.state[track] = (t, s)
        return s.astype(np.float32)

    def forget(self, keep: Iterable[int]) -> None:
        keep = set(keep)
        self.state = {k: v for k, v in self.state.items() if k in keep}


@dataclass
class FrameResult:
    index: int
    time_s: float
    faces: list[FacePrediction]
    frame: np.ndarray  # BGR, as OpenCV decodes it
    searched: bool  # whether the whole frame was searched for faces (else: tracked faces only)

    def annotated(self, *, copy: bool = True) -> np.ndarray:
        """The frame (BGR) with boxes, track numbers, labels and bars."""
        return annotate(self.frame, self.faces, bgr=True, copy=copy)

    def records(self) -> list[dict]:
        return [{"frame": self.index, "time_s": round(self.time_s, 4), "face": i, **f.as_dict()}
                for i, f in enumerate(self.faces)]


@contextmanager
def torch_threads(model, threads: int | None):
    """PyTorch's intra-op threads set to ``threads`` while a video runs (a PyTorch model only; None: unchanged)."""
    import torch

    if threads is None or getattr(model, "runtime", "torch") != "torch":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def predict_frames(frames: Iterable[tuple[float, np.ndarray]], model, *, detect_every: int = DETECT_EVERY,
                   smooth_s: float = SMOOTH_S, classify_threads: int | None = CLASSIFY_THREADS
                   ) -> Iterator[FrameResult]:
    """Faces, tracks and smoothed probabilities of each ``(time_s, BGR frame)``."""
    tracker, smoother = FaceTracker(detect_every), ProbabilitySmoother(smooth_s)
    with torch_threads(model, classify_threads):
        for index, (t, frame) in enumerate(frames):
            gray = to_gray(frame, bgr=True)
            tracks, searched = tracker.update(gray)
            faces = classify_boxes(gray, [tr.box for tr in tracks], model)
            for tr, face in zip(tracks, faces):
                face.track, face.frame_probabilities = tr.id, face.probabilities
                face.probabilities = smoother(tr.id, face.probabilities, t)
            smoother.forget(tr.id for tr in tracker.tracks)
            yield FrameResult(index, t, faces, frame, searched)


@dataclass
class VideoInfo:
    path: str
    fps: float
    frames: int  # as the container says (0 when it does not)
    width: int
    height: int


def open_video(path: str | Path):
    """``(cv2.VideoCapture, VideoInfo)`` of a video file; UsageError when OpenCV cannot read it."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file", "give the path of a video file (MP4, AVI, MOV, MKV, WebM, ...)")
    with quiet_opencv():
        cap = cv2.VideoCapture(str(path))
        ok, first = cap.read() if cap.isOpened() else (False, None)
    if not ok:
        cap.release()
        raise UsageError(f"{path}: not a video OpenCV can read (no frame decoded)",
                         "convert it to MP4 (H.264 or MPEG-4), e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    fps = cap.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(str(path), fps if fps and 0 < fps < 1000 else 30.0, max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
                     first.shape[1], first.shape[0])
    return cap, info


def read_video(path: str | Path, *, max_frames: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """``(time_s, BGR frame)`` of every frame of a video file (times from the frame rate)."""
    cap, info = open_video(path)
    try:
        i = 0
        while max_frames is None or i < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            yield i / info.fps, frame
            i += 1
    finally:
        cap.release()


FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "mp4v"}


class VideoWriter:
    """An annotated video (``.mp4``/``.m4v``/``.mov``/``.mkv``: MPEG-4 part 2, ``.avi``: Motion JPEG)."""

    def __init__(self, path: str | Path, fps: float, size: tuple[int, int]):
        import cv2

        self.path = Path(path)
        if self.path.suffix.lower() not in FOURCC:
            raise UsageError(f"{self.path}: an annotated video is written as {', '.join(FOURCC)}",
                             "give --out a name ending in .mp4 (or .avi)")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()]),
                                      float(fps), tuple(int(v) for v in size))
        if not self.writer.isOpened():
            raise UsageError(f"{self.path}: OpenCV cannot write this video", "try --out NAME.avi")

    def write(self, bgr: np.ndarray) -> None:
        self.writer.write(bgr)

    def close(self) -> None:
        self.writer.release()


@dataclass
class VideoSummary:
    info: VideoInfo
    frames: int = 0
    frames_with_faces: int = 0
    tracks: set = field(default_factory=set)
    records: list = field(default_factory=list)
    wall_s: float = 0.0
    labels: dict = field(default_factory=dict)  # track -> label of its last frame

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s else 0.0


def predict_video(path: str | Path, model, *, out: str | Path | None = None, detect_every: int = DETECT_EVERY,
                  smooth_s: float = SMOOTH_S, progress: bool = True, keep_records: bool = True,
                  max_frames: int | None = None, on_frame=None, classify_threads: int | None = CLASSIFY_THREADS
                  ) -> VideoSummary:
    """Every frame of a video file through :func:`predict_frames`; ``out``: the annotated video.

    ``on_frame(FrameResult)`` is called for each frame (e.g. to keep a few annotated frames).
    """
    _, info = open_video(path)
    summary = VideoSummary(info)
    writer = VideoWriter(out, info.fps, (info.width, info.height)) if out else None
    total = min(info.frames, max_frames) if max_frames else info.frames
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total or None, unit="frame", desc=Path(path).name, leave=False)
    t0 = time.perf_counter()
    try:
        for result in predict_frames(read_video(path, max_frames=max_frames), model, detect_every=detect_every,
                                     smooth_s=smooth_s, classify_threads=classify_threads):
            summary.frames += 1
            summary.frames_with_faces += bool(result.faces)
            for f in result.faces:
                summary.tracks.add(f.track)
                summary.labels[f.track] = f.label
            if keep_records:
                summary.records.extend(result.records())
            if writer is not None:
                writer.write(result.annotated(copy=False))
            if on_frame is not None:
                on_frame(result)
            if bar is not None:
                bar.update(1)
    finally:
        summary.wall_s = time.perf_counter() - t0
        if writer is not None:
            writer.close()
        if bar is not None:
            bar.close()
    return summary


def write_demo_video(path: str | Path, *, frames: int = 90, fps: float = 30.0, size: tuple[int, int] = (640, 480),
                     face_side: int = 300, absent: tuple[int, int] | None = (40, 55), period: int = 90) -> Path:
    """A clip to try the pipeline on: scikit-image's astronaut photo (a real face) moving across a grey frame.

    The photo, scaled to ``face_side`` pixels, slides left to right and back once every ``period``
    frames (3 s at 30 frames/s: at most ~10 pixels a frame at 640x480); during the frames
    ``absent`` (first, last + 1) it is off the frame, so those frames have no face.
    """
    import cv2
    from skimage import data

    w, h = size
    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (face_side, face_side),
                       interpolation=cv2.INTER_AREA)
    writer = VideoWriter(path, fps, size)
    try:
        for i in range(frames):
            frame = np.full((h, w, 3), 96, np.uint8)
            if absent is None or not absent[0] <= i < absent[1]:
                phase = 2 * math.pi * i / period
                x = int((w - face_side) * (0.5 - 0.5 * math.cos(phase)))
                y = (h - face_side) // 2 + int(20 * math.sin(phase * 2))
                frame[y:y + face_side, x:x + face_side] = photo
            writer.write(frame)
    finally:
        writer.close()
    return Path(path)
