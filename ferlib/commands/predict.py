"""``python -m ferlib predict PHOTO...``: the faces in your photos and their expressions (:mod:`ferlib.predict`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import UsageError
from ..predict import annotate, default_model_path, load_predictor, predict_faces, read_photo


def predict_command(args) -> int:
    """``python -m ferlib predict``: one line (or JSON) per face; exit 1 when a photo has no face."""
    import cv2

    out = Path(args.out) if args.out else None
    if out is not None and len(args.photos) > 1:
        raise UsageError("--out names one annotated image, but several photos were given",
                         "run predict once per photo to annotate each")
    model = load_predictor(args.model)
    report, missing = {}, []
    for photo_path in args.photos:
        photo = read_photo(photo_path)
        faces = predict_faces(photo, model)
        if not faces:
            missing.append(photo_path)
            continue
        report[photo_path] = [f.as_dict() for f in faces]
        if not args.json:
            for f in faces:
                top = sorted(f.as_dict()["probabilities"].items(), key=lambda kv: -kv[1])[:3]
                print(f"{photo_path}: face at {tuple(f.box)}: {f.label}  ("
                      + ", ".join(f"{c} {p:.2f}" for c, p in top) + ")")
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out), cv2.cvtColor(annotate(photo, faces), cv2.COLOR_RGB2BGR))
            if not args.json:
                print(f"annotated: {out}")
    if args.json:
        print(json.dumps({"model": str(args.model or default_model_path()), "faces": report,
                          "no_face": missing}, indent=1))
    for p in missing:
        print(f"error: {p}: no face found (the detector looks for frontal faces of at least 4 % of the photo)",
              file=sys.stderr)
    return 1 if missing else 0


def add_command(sub) -> None:
    p = sub.add_parser("predict", help="detect the faces in your photos and predict their expressions")
    p.add_argument("photos", nargs="+", metavar="PHOTO")
    p.add_argument("--model", help="a checkpoint, run folder, run name or recipe (default: the kit's committed densenet-bc-center model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--out", help="write the photo with boxes and probability bars to this image file")
    p.set_defaults(func=predict_command)
