"""``python -m ferlib webcam [--camera N]``: faces and expressions from a camera, live (:mod:`ferlib.predict.camera`).

Shows the annotated frames in a window when there is one (else one line a second in the
terminal), ``--out`` records them to a video, ``--csv`` / ``--json`` stream a record per face
and frame to standard output (``--json``: one JSON object per line).  Without a camera: one
message and exit status 2.
"""
from __future__ import annotations

import json
import sys
import time

from ..errors import UsageError
from .predict import add_model_options, add_video_options, csv_header, csv_row


def webcam_command(args) -> int:
    import csv

    from ..predict import load_predictor, model_warning
    from ..predict.camera import CAMERA_SIZE, Display, camera_frames, open_camera
    from ..predict.video import ProbabilitySmoother, VideoWriter, predict_frames

    if args.detect_every < 1:
        raise UsageError(f"--detect-every must be at least 1, got {args.detect_every}")
    if args.frames is not None and args.frames < 1:
        raise UsageError(f"--frames must be at least 1, got {args.frames}")
    ProbabilitySmoother(args.smooth)
    cap = open_camera(args.camera)  # before the model: no camera is the likeliest mistake, and the quickest to say
    try:
        model = load_predictor(args.model, runtime=args.runtime)
        if warning := model_warning(model):
            print(warning, file=sys.stderr)
        names = list(model.class_names)
        stream = args.csv or args.json
        log = sys.stderr if stream else sys.stdout
        writer = csv.writer(sys.stdout, lineterminator="\n") if args.csv else None
        if writer:
            writer.writerow(csv_header(names))
        display = Display(want_window=not args.no_window)
        if display.kind == "none":
            print(f"[ferlib] no window ({display.why_none}): one line a second below"
                  + ("; frames recorded to " + args.out if args.out else ""), file=log)
        video = None
        t0, shown, n = time.monotonic(), 0.0, 0
        try:
            for result in predict_frames(camera_frames(cap, max_frames=args.frames), model,
                                         detect_every=args.detect_every, smooth_s=args.smooth):
                n += 1
                frame = result.annotated(copy=False)
                if args.out:
                    if video is None:
                        video = VideoWriter(args.out, args.fps, frame.shape[1::-1])
                    video.write(frame)
                for r in result.records():
                    r = {"file": f"camera {args.camera}", **r}
                    if writer:
                        writer.writerow(csv_row(r, names))
                    elif args.json:
                        print(json.dumps(r), flush=True)
                if not display.show(frame):
                    break
                if display.kind == "none" and result.time_s - shown >= 1.0:
                    shown = result.time_s
                    faces = ", ".join(f"#{f.track} {f.label} ({f.probabilities.max():.2f})" for f in result.faces)
                    print(f"{result.time_s:6.1f} s  {n / max(time.monotonic() - t0, 1e-9):5.1f} frames/s  "
                          f"{faces or 'no face'}", file=log, flush=True)
        except KeyboardInterrupt:
            pass
        finally:
            display.close()
            if video is not None:
                video.close()
        wall = time.monotonic() - t0
        print(f"[ferlib] {n} frames in {wall:.1f} s ({n / max(wall, 1e-9):.1f} frames/s, asked "
              f"{CAMERA_SIZE[0]}x{CAMERA_SIZE[1]})" + (f"; recorded to {args.out}" if video is not None else ""),
              file=log)
    finally:
        cap.release()
    return 0


def add_command(sub) -> None:
    p = sub.add_parser("webcam", help="faces and expressions from a camera in real time (OpenCV capture)")
    p.add_argument("--camera", default="0", help="camera number (default 0), or a video file / rtsp:// address "
                   "played as if live")
    add_model_options(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="stream a JSON object per face and frame (JSON Lines)")
    fmt.add_argument("--csv", action="store_true", help="stream a CSV row per face and frame")
    p.add_argument("--out", help="record the annotated frames to this video (.mp4 or .avi)")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate written into --out (default 15)")
    p.add_argument("--frames", type=int, help="stop after this many frames (default: until q, Esc or Ctrl-C)")
    p.add_argument("--no-window", action="store_true", help="show nothing; one line a second in the terminal")
    add_video_options(p)
    p.set_defaults(func=webcam_command)
