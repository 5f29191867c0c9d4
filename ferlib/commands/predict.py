"""``python -m ferlib predict INPUT...``: faces in photos, folders of photos and video files (:mod:`ferlib.predict`).

Text (default): one line per face of a photo, one summary line per video.  ``--json``: one
document, a record per face (per face and frame for a video) with its file, box, label,
label index and probabilities by class name, plus what happened to each file.  ``--csv``: the
same records as rows.  ``--out``: an annotated file -- a folder of them when several inputs
(or a folder) are given.  Exit status 0; 1 when a photo (or a whole video) has no face it can
classify; 2 when a file named on the command line cannot be read (the others are still done).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from ..errors import UsageError

ANNOTATED_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def add_model_options(p) -> None:
    """``--model`` and ``--runtime`` (predict, webcam)."""
    p.add_argument("--model", help="a checkpoint, run folder, run name, recipe or .onnx file (default: the kit's "
                   "committed densenet-bc-center model)")
    p.add_argument("--runtime", choices=("torch", "onnx"),
                   help="run the model with PyTorch (default for a checkpoint) or ONNX Runtime (a checkpoint is "
                        "exported in memory; an .onnx file always runs on it)")


def add_video_options(p) -> None:
    """``--detect-every`` and ``--smooth`` (predict on videos, webcam): see :mod:`ferlib.predict.video`."""
    from ..predict.video import DETECT_EVERY, SMOOTH_S

    p.add_argument("--detect-every", type=int, default=DETECT_EVERY, metavar="N",
                   help=f"video: search the whole frame for faces every N frames and track them between "
                        f"(default {DETECT_EVERY}; 1: every frame)")
    p.add_argument("--smooth", type=float, default=SMOOTH_S, metavar="SECONDS",
                   help=f"video: time constant of the moving average of each face's probabilities "
                        f"(default {SMOOTH_S}; 0: off)")


def csv_header(class_names) -> list[str]:
    return (["file", "frame", "time_s", "face", "track", "x", "y", "w", "h", "label", "label_index"]
            + [f"p_{c}" for c in class_names] + ["frame_label"])


def csv_row(record: dict, class_names) -> list:
    x, y, w, h = record["box"]
    return ([record["file"], record.get("frame", ""), record.get("time_s", ""), record.get("face", ""),
             record.get("track", ""), x, y, w, h, record["label"], record["label_index"]]
            + [record["probabilities"][c] for c in class_names] + [record.get("frame_label", "")])


class OutPlan:
    """Where each annotated file goes: ``--out`` itself for one input, else a file in the ``--out`` folder."""

    def __init__(self, out: str | None, inputs):
        self.out = Path(out) if out else None
        self.folder = self.out is not None and (len(inputs) > 1 or bool(inputs.roots) or self.out.is_dir()
                                                or str(out).endswith(("/", "\\")))
        self.taken: set[Path] = set()
        if self.out is not None and self.folder and self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} is a file, but several inputs were given (or a folder)",
                             "give --out a folder: one annotated file is written there per input")
        if self.out is not None and not self.folder and len(inputs.videos) == 1:
            from ..predict.video import FOURCC

            if self.out.suffix.lower() not in FOURCC:
                raise UsageError(f"--out {self.out}: an annotated video is written as {', '.join(FOURCC)}",
                                 "give --out a name ending in .mp4 (or .avi), or a folder")
        elif self.out is not None and not self.folder and self.out.suffix.lower() not in ANNOTATED_SUFFIXES:
            raise UsageError(f"--out {self.out}: an annotated photo is written as "
                             f"{', '.join(sorted(ANNOTATED_SUFFIXES))}", "give --out a name ending in .png")

    def path(self, source: Path, inputs, video: bool) -> Path | None:
        if self.out is None:
            return None
        if not self.folder:
            return self.out
        root = inputs.roots.get(source)
        rel = source.relative_to(root) if root is not None else Path(source.name)
        suffix = ".mp4" if video else (source.suffix.lower() if source.suffix.lower() in ANNOTATED_SUFFIXES else ".png")
        target = self.out / rel.with_suffix(suffix)
        n = 2
        while target in self.taken:
            target = self.out / rel.with_name(f"{rel.stem}-{n}{suffix}")
            n += 1
        self.taken.add(target)
        return target


def predict_command(args) -> int:
    import cv2

    from ..predict import analyse_photo, annotate, list_inputs, load_photo, load_predictor, model_warning
    from ..predict.video import ProbabilitySmoother, predict_video

    inputs = list_inputs(args.inputs, recursive=args.recursive)
    plan = OutPlan(args.out, inputs)
    if args.detect_every < 1:
        raise UsageError(f"--detect-every must be at least 1, got {args.detect_every}")
    ProbabilitySmoother(args.smooth)  # checks the value before the model loads
    model = load_predictor(args.model, runtime=args.runtime)
    names = list(model.class_names)
    text = not (args.json or args.csv)
    say = print if text else (lambda *a, **k: print(*a, file=sys.stderr, **k))
    if warning := model_warning(model):
        print(warning, file=sys.stderr)
    for path, why in inputs.skipped.items():
        say(f"skipped: {path}: {why}")
    records, files, no_face, errors = [], {}, [], []
    for path in inputs.images:
        try:
            result = analyse_photo(load_photo(path), model)
        except UsageError as e:
            if path in inputs.roots:  # found in a folder: one line, and on to the next
                say(f"skipped: {path}: {e.problem}")
                files[str(path)] = {"kind": "skipped", "problem": e.problem}
                continue
            errors.append(str(e))
            files[str(path)] = {"kind": "error", "problem": e.problem}
            continue
        entry = {"kind": "photo", "faces": len(result.faces), "notes": result.photo.notes,
                 "size": list(result.photo.pixels.shape[1::-1])}
        files[str(path)] = entry
        for note in result.photo.notes:
            say(f"{path}: {note}")
        if result.problem:
            entry["problem"] = result.problem
            if result.too_small:
                entry["too_small"] = [list(map(int, b)) for b in result.too_small]
            no_face.append((path, result.problem))
            continue
        for i, f in enumerate(result.faces):
            records.append({"file": str(path), "face": i, **f.as_dict()})
            if text:
                top = sorted(zip(names, f.probabilities), key=lambda kv: -kv[1])[:3]
                print(f"{path}: face at {tuple(f.box)}: {f.label}  (" + ", ".join(f"{c} {p:.2f}" for c, p in top) + ")")
        if (target := plan.path(path, inputs, video=False)) is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(target), cv2.cvtColor(annotate(result.photo.pixels, result.faces), cv2.COLOR_RGB2BGR))
            entry["annotated"] = str(target)
            say(f"annotated: {target}")
    for path in inputs.videos:
        target = plan.path(path, inputs, video=True)
        try:
            summary = predict_video(path, model, out=target, detect_every=args.detect_every, smooth_s=args.smooth,
                                    progress=not args.quiet, keep_records=not text, max_frames=args.max_frames)
        except UsageError as e:
            (errors.append(str(e)) if path not in inputs.roots else say(f"skipped: {path}: {e.problem}"))
            files[str(path)] = {"kind": "error", "problem": e.problem}
            continue
        info = summary.info
        records += [{"file": str(path), **r} for r in summary.records]
        entry = {"kind": "video", "frames": summary.frames, "frames_with_faces": summary.frames_with_faces,
                 "tracks": len(summary.tracks), "fps": round(info.fps, 3), "size": [info.width, info.height],
                 "processing_frames_per_s": round(summary.fps, 1), "detect_every": args.detect_every,
                 "smooth_s": args.smooth}
        files[str(path)] = entry
        last = ", ".join(f"#{t} {label}" for t, label in sorted(summary.labels.items()))
        say(f"{path}: {summary.frames} frames ({summary.frames / info.fps:.1f} s at {info.fps:g} frames/s), faces on "
            f"{summary.frames_with_faces}, {len(summary.tracks)} tracked face(s){': ' + last if last else ''} "
            f"(last label of each); {summary.fps:.1f} frames/s here")
        if target is not None:
            entry["annotated"] = str(target)
            say(f"annotated: {target}")
        if not summary.frames_with_faces:
            problem = "no face found in any frame"
            entry["problem"] = problem
            no_face.append((path, problem))
    if args.json:
        print(json.dumps({"model": model.meta.get("source"), "runtime": getattr(model, "runtime", "torch"),
                          "class_names": names, "warning": model_warning(model), "faces": records, "files": files,
                          "no_face": [str(p) for p, _ in no_face],
                          "skipped": {str(p): why for p, why in inputs.skipped.items()}}, indent=1))
    elif args.csv:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(csv_header(names))
        w.writerows(csv_row(r, names) for r in records)
    for path, problem in no_face:
        print(f"error: {path}: {problem}", file=sys.stderr)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 2 if errors else 1 if no_face else 0


def add_command(sub) -> None:
    p = sub.add_parser("predict", help="detect the faces in photos, folders of photos or videos and predict their "
                       "expressions")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, folders of photos, video files")
    p.add_argument("-r", "--recursive", action="store_true", help="search folders' sub-folders too")
    add_model_options(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON: a record per face (per face and frame for "
                     "videos) with file, box, label, label_index and probabilities")
    fmt.add_argument("--csv", action="store_true", help="print CSV: the same records as rows")
    p.add_argument("--out", help="an annotated image (or .mp4 for a video); with several inputs or a folder: a "
                   "folder to write one annotated file per input into")
    add_video_options(p)
    p.add_argument("--max-frames", type=int, help="video: stop after this many frames")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=predict_command)
