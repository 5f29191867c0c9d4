"""The try-it notebook's helpers: show a photo, a folder or a video's results; an upload button."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from ..errors import UsageError


def frame_strip(frames: list[np.ndarray], *, height: int = 160, gap: int = 4) -> np.ndarray:
    """RGB frames side by side, each scaled to ``height`` pixels high, on white."""
    import cv2

    scaled = [cv2.resize(f, (max(1, round(f.shape[1] * height / f.shape[0])), height), interpolation=cv2.INTER_AREA)
              for f in frames]
    width = sum(s.shape[1] for s in scaled) + gap * max(0, len(scaled) - 1)
    strip = np.full((height, max(1, width), 3), 255, np.uint8)
    x = 0
    for s in scaled:
        strip[:, x:x + s.shape[1]] = s
        x += s.shape[1] + gap
    return strip


def video_strip(path: str | Path, model, *, n: int = 6, height: int = 200, **options):
    """``(strip, summary)``: ``n`` evenly spaced annotated frames of a video (RGB) and its :class:`VideoSummary`."""
    from .video import open_video, predict_video

    cap, info = open_video(path)
    cap.release()
    total = info.frames or 1
    wanted = set(np.linspace(0, max(total - 1, 0), n).round().astype(int).tolist())
    kept = []

    def keep(result):
        if result.index in wanted:
            kept.append(result.annotated()[..., ::-1])

    summary = predict_video(path, model, progress=False, on_frame=keep, **options)
    return frame_strip(kept, height=height), summary


def describe_face(f) -> str:
    track = f"#{f.track} " if f.track is not None else ""
    return (f"{track}face at {tuple(f.box)}: {f.label}  "
            + ", ".join(f"{c} {p:.2f}" for c, p in zip(f.class_names, f.probabilities)))


def show_results(path: str | Path, model, *, recursive: bool = False, frames: int = 6) -> None:
    """Display what ``python -m ferlib predict`` finds in a photo, a folder of photos or a video."""
    from IPython.display import display
    from PIL import Image

    from .faces import analyse_photo, annotate
    from .photos import list_inputs, load_photo

    inputs = list_inputs([path], recursive=recursive)
    for p, why in inputs.skipped.items():
        print(f"skipped: {p}: {why}")
    thumbs = []
    for p in inputs.images:
        try:
            result = analyse_photo(load_photo(p), model)
        except UsageError as e:
            print(f"skipped: {p}: {e.problem}")
            continue
        for note in result.photo.notes:
            print(f"{p.name}: {note}")
        if result.problem:
            print(f"{p.name}: {result.problem}")
            continue
        for f in result.faces:
            print(f"{p.name}: {describe_face(f)}")
        thumbs.append(annotate(result.photo.pixels, result.faces))
    if len(thumbs) == 1 and not inputs.roots:
        display(Image.fromarray(thumbs[0]))
    elif thumbs:
        display(Image.fromarray(frame_strip(thumbs, height=220)))
    for p in inputs.videos:
        strip, s = video_strip(p, model, n=frames)
        print(f"{p.name}: {s.frames} frames at {s.info.fps:g} frames/s, faces on {s.frames_with_faces}, "
              f"{len(s.tracks)} tracked face(s); {frames} frames evenly spaced, labels smoothed over time:")
        display(Image.fromarray(strip))


def upload_widget(model):
    """An ipywidgets ``FileUpload``: each photo or video dropped on it goes through :func:`show_results`.

    Shows the annotated photo and each face's probabilities (a strip of annotated frames for a
    video), or says that no face was found / the file is not an image.  Returns the widget (display it).
    """
    import ipywidgets as W

    upload = W.FileUpload(accept="image/*,video/*", multiple=True, description="photo or video")
    out = W.Output()

    def show(change) -> None:
        out.clear_output()
        with out, tempfile.TemporaryDirectory() as tmp:
            for item in change["new"]:
                name = Path(item["name"]).name or "upload"
                target = Path(tmp) / name
                target.write_bytes(bytes(item["content"]))
                try:
                    show_results(target, model)
                except UsageError as e:
                    print(f"{name}: {e.problem}")

    upload.observe(show, names="value")
    return W.VBox([upload, out])
