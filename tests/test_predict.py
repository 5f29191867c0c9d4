"""``ferlib.predict`` and ``python -m ferlib predict`` on photos: real photos saved the ways phones, scanners and
editors save them (each EXIF orientation, 16-bit, palette, alpha, CMYK, several frames), folders, several
faces, faces too small, FER-2013 faces on a canvas, bad input, smoke-test models.

The photos are scikit-image's astronaut (a real face that the package ships), written by each test."""
from __future__ import annotations

import json
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
    (face,) = report["faces"]
    assert face["file"] == str(photo) and face["face"] == 0
    assert abs(sum(face["probabilities"].values()) - 1) < 1e-3 and face["label"] in face["probabilities"]
    assert report["files"][str(photo)]["annotated"] == str(out) and report["no_face"] == []
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


# -- photos as phones, scanners and editors save them ---------------------------------------------
def upright_box(model, tmp_path):
    (face,) = fp.predict_photo(astronaut_file(tmp_path), model)
    return np.array(face.box)


def stored_for_orientation(upright: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels a camera stores for a picture that shows ``upright`` under EXIF ``orientation``.

    From the EXIF 2.3 definitions (what row 0 / column 0 of the stored image are in the shown one),
    written with numpy, not with the Pillow table the code under test uses.
    """
    t = upright.transpose(1, 0, 2)
    return {1: upright, 2: upright[:, ::-1], 3: upright[::-1, ::-1], 4: upright[::-1],
            5: t, 6: np.rot90(upright, 1), 7: np.rot90(t, 2), 8: np.rot90(upright, -1)}[orientation]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_before_detection(model, tmp_path, orientation):
    """A phone photo stored sideways (or mirrored) with its EXIF tag: found, box in the upright photo."""
    from skimage import data

    upright = data.astronaut()[:, 64:448]  # not square, so a photo left sideways would have the wrong shape
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    (reference,) = fp.predict_photo(tmp_path / "upright.jpg", model)
    exif = Image.Exif()
    exif[274] = orientation
    path = tmp_path / f"phone_{orientation}.jpg"
    Image.fromarray(np.ascontiguousarray(stored_for_orientation(upright, orientation))).save(path, quality=95,
                                                                                             exif=exif)
    photo = fp.load_photo(path)
    assert photo.pixels.shape == upright.shape
    assert np.abs(photo.pixels.astype(int) - upright).mean() < 3  # the picture a viewer shows (JPEG noise aside)
    assert any(f"EXIF orientation {orientation}" in n for n in photo.notes) == (orientation != 1)
    (face,) = fp.predict_photo(path, model)
    assert np.abs(np.array(face.box) - reference.box).max() <= 4, (face.box, reference.box)


def test_sideways_photo_without_the_tag_is_not_turned(model, tmp_path):
    """The control for the test above: the same stored pixels without the tag show the face sideways."""
    from skimage import data

    path = tmp_path / "sideways.jpg"
    Image.fromarray(np.ascontiguousarray(np.rot90(data.astronaut()[:, 64:448], 1))).save(path, quality=95)
    assert fp.load_photo(path).pixels.shape == (384, 512, 3)
    assert not [f for f in fp.predict_photo(path, model) if 100 < f.box[1] + f.box[3] / 2 < 250 and f.box[0] < 160]


def test_16_bit_greyscale_png_and_tiff(model, tmp_path):
    """16-bit grey (as scanners and editors save it) was read as white; now scaled to 8 bits."""
    grey8 = np.asarray(Image.fromarray(__import__("skimage").data.astronaut()).convert("L"))
    ref = fp.predict_photo(astronaut_file(tmp_path, "L"), model)
    grey16 = grey8.astype(np.uint16) * 257
    for suffix in (".png", ".tif"):
        path = tmp_path / f"grey16{suffix}"
        Image.fromarray(grey16).save(path)
        with Image.open(path) as im:
            assert im.mode.startswith("I")  # really stored as more than 8 bits
        photo = fp.load_photo(path)
        assert np.array_equal(photo.pixels[..., 0], grey8) and any("16-bit" in n for n in photo.notes)
        (face,) = fp.predict_photo(path, model)
        assert face.box == ref[0].box


def test_16_bit_colour_and_float_images(model, tmp_path):
    import cv2
    from skimage import data

    rgb = data.astronaut()
    ref = fp.predict_photo(astronaut_file(tmp_path), model)
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), rgb[..., ::-1].astype(np.uint16) * 257)  # 48-bit PNG
    assert np.abs(fp.read_photo(path).astype(int) - rgb).max() <= 1
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    path = tmp_path / "float.tif"
    Image.fromarray(grey.astype(np.float32) / 255).save(path)
    photo = fp.load_photo(path)
    assert np.abs(photo.pixels[..., 0].astype(int) - grey).max() <= 1 and "[0, 1]" in photo.notes[0]
    (face,) = fp.predict_photo(path, model)
    assert np.abs(np.array(face.box) - ref[0].box).max() <= 4
    path = tmp_path / "float_rgb.tif"  # Pillow cannot open a floating-point colour TIFF; OpenCV reads it
    cv2.imwrite(str(path), rgb[..., ::-1].astype(np.float32) / 255)
    photo = fp.load_photo(path)
    assert np.abs(photo.pixels.astype(int) - rgb).max() <= 1 and "read with OpenCV" in photo.notes[0]


@pytest.mark.parametrize("kind", ["palette", "palette-transparent", "rgba", "cmyk-jpeg", "cmyk-tiff", "bilevel"])
def test_palette_alpha_cmyk_and_bilevel(model, tmp_path, kind):
    from skimage import data

    rgb = data.astronaut()
    im = Image.fromarray(rgb)
    path = tmp_path / {"cmyk-jpeg": "p.jpg", "cmyk-tiff": "p.tif"}.get(kind, "p.png")
    if kind == "palette":
        im.convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(path)
    elif kind == "palette-transparent":
        p = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=255)
        a = np.asarray(p).copy()
        a[:40] = 255  # a transparent band along the top: palette entry 255, the one the photo does not use
        p2 = Image.fromarray(a, "P")
        p2.putpalette(p.getpalette() + [0] * (768 - len(p.getpalette())))
        p2.save(path, transparency=255)
    elif kind == "rgba":
        rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
        rgba[:40, :, 3] = 0
        Image.fromarray(rgba).save(path)
    elif kind == "bilevel":
        im.convert("1").save(path)
    else:
        im.convert("CMYK").save(path)
    with Image.open(path) as check:
        modes = {"palette": "P", "palette-transparent": "P", "rgba": "RGBA", "bilevel": "1"}
        assert check.mode == modes.get(kind, "CMYK")
    photo = fp.load_photo(path)
    assert photo.pixels.dtype == np.uint8 and photo.pixels.shape == rgb.shape
    if kind in ("palette-transparent", "rgba"):
        assert (photo.pixels[:40] == 255).all() and "transparent" in " ".join(photo.notes)  # on white
    if kind != "bilevel":  # dithered black and white is not a photo a face detector knows; it must read, though
        assert np.abs(photo.pixels[60:].astype(int) - rgb[60:]).mean() < 12
        faces = fp.predict_photo(path, model)
        assert len(faces) == 1 and abs(faces[0].box[0] - upright_box(model, tmp_path)[0]) <= 6


@pytest.mark.parametrize("fmt", ["gif", "tiff"])
def test_multi_frame_file_uses_its_first_frame_and_says_so(model, tmp_path, fmt):
    from skimage import data

    first = Image.fromarray(data.astronaut())
    blanks = [Image.new("RGB", first.size, (g, g, g)) for g in (100, 160)]  # different, or GIF merges them
    path = tmp_path / f"frames.{fmt}"
    first.save(path, save_all=True, append_images=blanks)
    photo = fp.load_photo(path)
    assert "first of its 3 frames" in photo.notes
    assert len(fp.predict_photo(path, model)) == 1


def test_several_faces_are_each_reported(model, tmp_path):
    from skimage import data

    a = data.astronaut()
    path = tmp_path / "three.png"
    Image.fromarray(np.concatenate([a, a[:, ::-1], a], axis=1)).save(path)  # 1536 x 512: searched at 640
    faces = fp.predict_photo(path, model)
    centres = sorted(f.box[0] + f.box[2] / 2 for f in faces)
    assert len(faces) == 3, [f.box for f in faces]
    assert centres[0] < 512 < centres[1] < 1024 < centres[2]


def test_face_too_small_is_said_not_no_face(model, tmp_path):
    from skimage import data

    path = tmp_path / "tiny.png"
    Image.fromarray(data.astronaut()).resize((64, 64), Image.LANCZOS).save(path)  # the face: ~12 px
    result = fp.analyse_photo(path, model)
    assert result.faces == [] and len(result.too_small) == 1
    assert "smaller than the detector's minimum of 24 px" in result.problem
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(blank)
    assert fp.analyse_photo(blank, model).problem.startswith("no face found")


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "ferlib", "predict", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.slow  # a python -m ferlib subprocess (~8 s)
def test_folder_json_csv_and_out_folder(checkpoint, tmp_path):
    """A folder: every image predicted (sub-folders with --recursive), non-images skipped with one line each."""
    import csv
    import io

    from skimage import data

    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    a = data.astronaut()
    Image.fromarray(a).save(photos / "a.jpg")
    Image.fromarray(np.concatenate([a, a], axis=1)).save(photos / "two.png")
    Image.fromarray(a).save(photos / "trip" / "b.png")
    (photos / "notes.txt").write_text("not a photo")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    (photos / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    out = tmp_path / "annotated"
    r = run_cli(photos, "--model", checkpoint, "--json", "--out", out, "--recursive")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    by_file = {}
    for face in report["faces"]:
        by_file.setdefault(Path(face["file"]).name, []).append(face)
    assert {k: len(v) for k, v in by_file.items()} == {"a.jpg": 1, "two.png": 2, "b.png": 1}
    for face in report["faces"]:
        assert report["class_names"][face["label_index"]] == face["label"]
        assert list(face["probabilities"]) == report["class_names"] and len(face["box"]) == 4
    assert report["skipped"] == {str(photos / "notes.txt"): "not an image"}
    assert report["files"][str(photos / "broken.jpg")]["kind"] == "skipped"
    assert r.stderr.count("skipped:") == 2 and ".DS_Store" not in r.stderr + r.stdout
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "a.jpg", "trip/b.png", "two.png"]
    # without --recursive the sub-folder is left out; --csv gives the same faces as rows
    r = run_cli(photos, "--model", checkpoint, "--csv")
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert r.returncode == 0 and sorted(Path(row["file"]).name for row in rows) == ["a.jpg", "two.png", "two.png"]
    for row in rows:
        probs = {k[2:]: float(v) for k, v in row.items() if k.startswith("p_")}
        assert max(probs, key=probs.get) == row["label"] and abs(sum(probs.values()) - 1) < 2e-3
        assert list(probs)[int(row["label_index"])] == row["label"]


@pytest.mark.slow  # python -m ferlib subprocesses (~12 s)
def test_out_names_a_folder_for_several_inputs(checkpoint, tmp_path):
    a, b = astronaut_file(tmp_path, "RGB"), astronaut_file(tmp_path, "L")
    r = run_cli(a, b, "--model", checkpoint, "--out", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([a.name, b.name])
    (tmp_path / "file.png").write_bytes(b"")
    r = run_cli(a, b, "--model", checkpoint, "--out", tmp_path / "file.png")
    assert r.returncode == 2 and "give --out a folder" in r.stderr and "Traceback" not in r.stderr


def test_a_missing_input_or_an_empty_folder_is_one_message(checkpoint, tmp_path, capsys):
    from ferlib.commands import main

    assert main(["predict", str(tmp_path / "nowhere"), "--model", str(checkpoint)]) == 2
    assert "error: " in (err := capsys.readouterr().err) and "no such file or folder" in err
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    assert main(["predict", str(tmp_path / "empty"), "--model", str(checkpoint)]) == 2
    assert "no files in this folder" in (err := capsys.readouterr().err) and "--recursive" in err


def smoke_model(tmp_path, name: str) -> Path:
    """The committed model's file placed where a quick run on synthetic faces would have written it."""
    import shutil

    run = tmp_path / "runs" / name
    run.mkdir(parents=True)
    shutil.copy(fp.default_model_path(), run / "best.pt")
    return run / "best.pt"


def test_smoke_test_models_predict_with_a_warning(tmp_path):
    quick = fp.load_predictor(smoke_model(tmp_path, "densenet-bc-quick-synthetic-seed0"))
    warning = fp.model_warning(quick)
    assert warning.startswith("warning: ") and "quick profile" in warning and "SYNTHETIC" in warning
    assert "\n" not in warning
    budget = fp.load_predictor(smoke_model(tmp_path, "densenet-bc-60min-cpu-2threads-seed0"))
    assert fp.model_warning(budget) is None
    assert fp.model_warning(fp.load_predictor()) is None  # the kit's model: trained on FER-2013 for 60 minutes
    assert len(fp.predict_photo(astronaut_file(tmp_path), quick)) == 1  # it still predicts


def test_the_warning_reads_the_runs_own_record(checkpoint, tmp_path):
    """A best.pt in a folder of any name: the run's latest.pt says how it was trained."""
    import shutil

    import torch

    run = tmp_path / "my-run"
    run.mkdir()
    shutil.copy(fp.default_model_path(), run / "best.pt")
    torch.save({"format": "ferlib-checkpoint-v1", "kind": "resume", "identity": {
        "profile": "quick", "data": {"synthetic": False, "tag": "FER-2013 (fer2013.csv)"}, "minutes": None}},
        run / "latest.pt")
    warning = fp.model_warning(fp.load_predictor(run / "best.pt"))
    assert "quick profile" in warning and "SYNTHETIC" not in warning
