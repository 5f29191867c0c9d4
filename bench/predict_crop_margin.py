"""How tightly FER-2013 crops its faces, measured with the detector ``ferlib.predict`` uses.

Each PublicTest face is upscaled (``--scale``x, bicubic) onto a larger grey canvas and
OpenCV's Haar cascade is run on it.  For each detection we record the FER-2013 image's
side over the box's side and the offset of the box inside the image.  The median ratio
is the crop scale that makes a detection on a photo look like a FER-2013 face
(``ferlib.predict.FER_CROP_SCALE``).

    PYTHONPATH=. python bench/predict_crop_margin.py [--data-dir DIR] [--faces 500]

Writes results/bench_predict_crop_margin.json (figures, git sha, machine, wall time).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    import cv2

    from ferlib import paths
    from ferlib.data.discovery import load_fer2013
    from ferlib.predict import CASCADE
    from ferlib.provenance import record, write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir")
    ap.add_argument("--faces", type=int, default=500)
    ap.add_argument("--scale", type=int, default=4)
    args = ap.parse_args()
    t0 = time.time()
    ds = load_fer2013(args.data_dir, verbose=False)
    if ds.synthetic:
        raise SystemExit("needs real FER-2013 (--data-dir or FERLIB_DATA_DIR)")
    faces = ds.pixels[ds.usage == "PublicTest"]
    step = max(1, len(faces) // args.faces)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
    side = 48 * args.scale
    canvas_side = side * 2 + 64
    offset = (canvas_side - side) // 2
    rows = []
    tried = 0
    for face in faces[::step][:args.faces]:
        tried += 1
        canvas = np.full((canvas_side, canvas_side), 128, np.uint8)
        canvas[offset:offset + side, offset:offset + side] = cv2.resize(face, (side, side),
                                                                        interpolation=cv2.INTER_CUBIC)
        found = cascade.detectMultiScale(canvas, scaleFactor=1.1, minNeighbors=5, minSize=(48, 48))
        if len(found) == 0:
            continue
        x, y, w, h = max(found, key=lambda b: b[2] * b[3])
        rows.append(((x - offset) / w, (y - offset) / h, side / w))
    r = np.array(rows)
    out = {
        "faces_tried": tried, "faces_detected": len(rows),
        "image_side_over_box_side": {"median": float(np.median(r[:, 2])), "q25": float(np.percentile(r[:, 2], 25)),
                                     "q75": float(np.percentile(r[:, 2], 75))},
        "box_offset_in_image_over_box_side": {"x_median": float(np.median(r[:, 0])),
                                              "y_median": float(np.median(r[:, 1]))},
        "provenance": record("cpu", wall_time_s=time.time() - t0, command="python bench/predict_crop_margin.py"),
    }
    path = paths.results_dir() / "bench_predict_crop_margin.json"
    write_json(out, path)
    print(json.dumps({k: v for k, v in out.items() if k != "provenance"}, indent=1))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
