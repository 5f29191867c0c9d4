"""``ferlib.predict`` and ``python -m ferlib predict``: real photos, FER-2013 faces on a canvas, bad input."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ferlib import predict as fp
from ferlib.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The kit's committed real-data model when present, else a seconds-long quick model on synthetic faces."""
    if fp.default_model_path().is_file():
        return fp.default_model_path()
    from ferlib.data.synthetic import make_synthetic_faces
    from ferlib.train.recipes import get_recipe
    from ferlib.train.results import run_recipe

    d = tmp_path_factory.mktemp("predict-model")
    run_recipe(get_recipe("tiny-densenet-demo"), dataset=make_synthetic_faces(n_per_class=40), profile="quick",
               device="cpu", run_dir=d / "run", results_path=d / "r.json", progress=False, precision="fp32")
    return d / "run" / "best.pt"


@pytest.fixture(scope="module")
def model(checkpoint):
    return fp.load_predictor(checkpoint)


def astronaut_file(tmp_path, mode="RGB"):
    from skimage import data

    img = Image.fromarray(data.astronaut())
    path = tmp_path / f"astronaut_{mode}.png"
    img.convert(mode).save(path)
    return path


def test_real_photo_has_one_face(model, tmp_path):
    faces = fp.predict_photo(astronaut_file(tmp_path), model)
    assert len(faces) == 1
    f = faces[0]
    assert f.crop.shape == (48, 48) and f.crop.dtype == np.uint8
    assert f.probabilities.shape == (len(model.class_names),)
    assert abs(f.probabilities.sum() - 1) < 1e-5
    x, y, w, h = f.box
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # Eileen Collins' face, upper middle


@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_grey_and_rgba_photos(model, tmp_path, mode):
    rgb = fp.predict_photo(astronaut_file(tmp_path, "RGB"), model)
    other = fp.predict_photo(astronaut_file(tmp_path, mode), model)
    assert len(other) == 1 and other[0].box == rgb[0].box


def test_huge_photo_is_searched_small_and_boxes_scaled_back(model, tmp_path):
    from skimage import data

    big = Image.fromarray(data.astronaut()).resize((4096, 4096), Image.BICUBIC)
    path = tmp_path / "big.jpg"
    big.save(path, quality=90)
    faces = fp.predict_photo(path, model)
    small = fp.predict_photo(astronaut_file(tmp_path), model)
    assert len(faces) == 1
    ratio = faces[0].box[2] / small[0].box[2]
    assert 6 < ratio < 10  # 8x the side, up to the detector's scale steps


@pytest.mark.slow  # ~16 s on 2 cores: many canvases through the detector
def test_fer_face_on_a_canvas_predicts_as_the_face_itself(model, real_fer2013):
    """A PublicTest face upscaled onto a larger photo: found, cropped back, same prediction as the 48x48 face."""
    import cv2

    faces = real_fer2013.pixels[real_fer2013.usage == "PublicTest"][:200]
    direct = model.predict_proba(faces)
    agree, found, corr = 0, 0, []
    for face, p in zip(faces, direct):
        canvas = np.full((480, 640), 128, np.uint8)
        canvas[100:292, 200:392] = cv2.resize(face, (192, 192), interpolation=cv2.INTER_CUBIC)
        got = fp.predict_faces(canvas, model)
        on_face = [g for g in got if abs(g.box[0] + g.box[2] / 2 - 296) < 20 and abs(g.box[1] + g.box[3] / 2 - 196) < 20
                   and 150 < g.box[2] < 230]
        if not on_face:
            continue
        found += 1
        agree += int(on_face[0].probabilities.argmax() == p.argmax())
        corr.append(np.corrcoef(on_face[0].crop.ravel().astype(float), face.ravel().astype(float))[0, 1])
    assert found >= 100, f"the detector found only {found} of 200 faces"  # here: 133 of 200
    # the detector box jitters by a few percent, i.e. 1-3 pixels at 48x48: correlation ~0.75, not 1
    assert np.median(corr) > 0.6, "the crop does not give back the FER-2013 face"
    # A crop is off by a pixel or two and a few percent of scale, and near-tied outputs flip: on these
    # 133 faces the 60-minute models agree on 81-86 % (densenet-bc 85.0 %; densenet-bc-center 85.7 %
    # before its rerun, 81.2 % after), while two unrelated faces share a prediction 20-22 % of the time.
    # This test once used the first 60 faces (37 found) at 80 %: about one standard error (6 points)
    # below a model's rate, so it passed or failed by which model was committed.  70 % on 133 faces is
    # three standard errors (3.4 points) below the lowest.
    assert agree >= 0.7 * found, f"{agree} of {found} crops predicted as their 48x48 face"


def test_no_face_no_output(checkpoint, tmp_path):
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 400, 3), 200, np.uint8)).save(blank)
    out = tmp_path / "annotated.png"
    r = subprocess.run([sys.executable, "-m", "ferlib", "predict", str(blank), "--model", str(checkpoint),
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and "no face found" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_not_an_image(checkpoint, tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("this is not a photo")
    r = subprocess.run([sys.executable, "-m", "ferlib", "predict", str(bad), "--model", str(checkpoint)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "not an image" in r.stderr and "Traceback" not in r.stderr
    with pytest.raises(UsageError):
        fp.read_photo(tmp_path / "missing.png")


@pytest.mark.slow  # a python -m ferlib subprocess: ~8 s
def test_cli_json_and_annotated_image(checkpoint, tmp_path):
    photo = astronaut_file(tmp_path)
    out = tmp_path / "annotated.png"
    r = subprocess.run([sys.executable, "-m", "ferlib", "predict", str(photo), "--model", str(checkpoint), "--json",
                        "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    (face,) = report["faces"][str(photo)]
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3 and face["label"] in face["probabilities"]
    annotated = np.asarray(Image.open(out))
    assert annotated.shape == (512, 512, 3)
    assert (annotated != np.asarray(Image.open(photo))).any()


def test_missing_model_is_a_clear_error(tmp_path):
    r = subprocess.run([sys.executable, "-m", "ferlib", "predict", str(astronaut_file(tmp_path)), "--model",
                        str(tmp_path / "nope.pt")], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "no such checkpoint" in r.stderr and "Traceback" not in r.stderr


def test_export_halves_the_file_and_keeps_predictions(checkpoint, tmp_path, model):
    from ferlib.train.checkpoint import load_model
    from ferlib.train.export import export_model

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(32, 48, 48), dtype=np.uint8)
    out = tmp_path / "small.pt"
    report = export_model(checkpoint, out, check_pixels=faces)
    import torch

    small = torch.load(out, map_location="cpu", weights_only=True)
    full = torch.load(checkpoint, map_location="cpu", weights_only=True)
    floats = [k for k, v in full["model"].items() if v.is_floating_point()]
    assert floats and all(small["model"][k].dtype == torch.float16 for k in floats)
    assert out.stat().st_size < Path(checkpoint).stat().st_size
    assert "optimizer" not in small and small["exported_from"]["weights"] == "float16"
    assert report["same_prediction"] >= 0.95 and report["max_probability_difference"] < 0.02
    a = load_model(out).predict_proba(faces, precision="fp32")
    assert np.allclose(a.sum(1), 1, atol=1e-5)


def test_the_committed_default_model_is_a_real_fer2013_model():
    """models/ holds the kit's real model (python -m ferlib export of a 60-minute CPU run); on real
    FER-2013 it classifies the first 600 PrivateTest faces far above chance (1/7) and the majority class."""
    from ferlib.data.discovery import load_fer2013, locate_data
    from ferlib.train.checkpoint import load_model

    path = fp.default_model_path()
    assert path.is_file(), f"{path} is missing: predict and the try-your-photo notebook have no default model"
    if locate_data().synthetic:
        pytest.skip("no real FER-2013 here")
    test = load_fer2013(verbose=False).split("PrivateTest")
    pixels, labels = np.asarray(test.pixels)[:600], np.asarray(test.labels)[:600]
    accuracy = (load_model(path).predict_proba(pixels, precision="fp32").argmax(1) == labels).mean()
    assert accuracy > 0.55, accuracy
