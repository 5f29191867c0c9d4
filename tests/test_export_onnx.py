"""ONNX export (``python -m ferlib export RUN OUT.onnx``) and the ONNX Runtime path of predict, against PyTorch.

Real faces: crops of scikit-image's astronaut photo (shifted and scaled as a detector's boxes
are), and the first PublicTest faces of FER-2013 when it is here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import real_data_dir

from ferlib import predict as fp
from ferlib.data.classes import EMOTIONS, FERPLUS_CLASSES
from ferlib.train import export as ex
from ferlib.train.checkpoint import load_model


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return fp.default_model_path()


@pytest.fixture(scope="module")
def onnx_file(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "model.onnx"
    ex.export_onnx(checkpoint, out)
    return out


def astronaut_crops(n: int = 40) -> np.ndarray:
    """``n`` 48x48 grey crops of the astronaut's face, the detector's box jittered by up to 12 % in place and size."""
    from skimage import data

    gray = fp.to_gray(data.astronaut())
    (box,) = fp.detect_faces(gray)
    rng = np.random.default_rng(0)
    x, y, w, h = box
    crops = []
    for _ in range(n):
        dx, dy, ds = rng.uniform(-0.12, 0.12, 3)
        side = int(w * (1 + ds))
        crops.append(fp.crop_face(gray, (int(x + dx * w), int(y + dy * h), side, side)))
    return np.stack(crops)


def test_onnx_matches_pytorch_on_real_faces(checkpoint, onnx_file, shared_data_or_none):
    faces = astronaut_crops()
    if shared_data_or_none is not None:
        faces = np.concatenate([faces, shared_data_or_none])
    report = ex.compare_onnx(load_model(checkpoint), onnx_file, faces)
    assert report["faces"] == len(faces)
    assert report["max_probability_difference"] < 1e-4, report  # float32 on both sides
    assert report["same_label"] == 1.0, report


@pytest.fixture(scope="module")
def shared_data_or_none():
    """The first 300 PublicTest faces of real FER-2013, or None without it."""
    d = real_data_dir()
    if d is None:
        return None
    from ferlib.data.readers import read_npz_xz

    ds = read_npz_xz(d / "fer2013" / "fer2013.npz.xz")
    return np.asarray(ds.pixels[ds.usage == "PublicTest"][:300])


def test_onnx_file_describes_itself(onnx_file, checkpoint):
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("faces", "tensor(uint8)", [48, 48])
    assert isinstance(inp.shape[0], str)  # any number of faces per call
    assert out.name == "probabilities"
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["class_names"]) == load_model(checkpoint).class_names == list(EMOTIONS)
    assert json.loads(meta["trained"])["synthetic"] is False and "normaliser" in meta["baked_in"]
    p = session.run(None, {"faces": astronaut_crops(3)})[0]
    assert p.shape == (3, 7) and np.allclose(p.sum(1), 1, atol=1e-5)


def test_export_is_refused_when_onnx_disagrees(checkpoint, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ValueError, match="differs from PyTorch"):
        ex.export_onnx(checkpoint, out, check_pixels=astronaut_crops(4), tolerance=0.0)
    assert not out.exists()


def test_predict_runtime_onnx_agrees_with_torch(checkpoint, onnx_file):
    from skimage import data

    photo = data.astronaut()
    torch_model = fp.load_predictor(checkpoint)
    for model in (fp.load_predictor(checkpoint, runtime="onnx"), fp.load_predictor(onnx_file)):
        assert isinstance(model, fp.OnnxPredictor) and model.class_names == torch_model.class_names
        (a,), (b,) = fp.predict_faces(photo, torch_model), fp.predict_faces(photo, model)
        assert a.box == b.box and a.label == b.label
        assert np.abs(a.probabilities - b.probabilities).max() < 0.02  # torch runs the model's bf16 autocast here
    fp32 = torch_model.predict_proba(astronaut_crops(8), precision="fp32")
    assert np.abs(fp.load_predictor(onnx_file).predict_proba(astronaut_crops(8)) - fp32).max() < 1e-4


def test_onnx_mistakes_are_one_message(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    from ferlib.commands import main

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    photo = tmp_path / "a.png"
    Image.fromarray(data.astronaut()).save(photo)
    assert main(["predict", str(photo), "--model", str(bad)]) == 2
    assert "not an ONNX model" in capsys.readouterr().err
    assert main(["predict", str(photo), "--model", str(tmp_path / "missing.onnx")]) == 2
    assert "no such ONNX file" in capsys.readouterr().err
    assert main(["predict", str(photo), "--model", str(bad), "--runtime", "torch"]) == 2
    assert "it runs on ONNX Runtime, not PyTorch" in capsys.readouterr().err
    assert main(["export", str(fp.default_model_path()), str(tmp_path / "x.zip")]) == 2
    assert ".pt or .onnx" in capsys.readouterr().err


def ferplus_checkpoint(path: Path) -> Path:
    """An 8-class FER+ checkpoint (untrained weights; what chapter 08's runs write): its class names come along."""
    from ferlib.data.normalize import fit_normalizer
    from ferlib.data.transforms import BatchAugment
    from ferlib.models import build_model
    from ferlib.train.checkpoint import describe_model, save_atomic, state_dict_cpu

    torch.manual_seed(0)
    kwargs = {"num_classes": len(FERPLUS_CLASSES), "in_channels": 1}
    model = build_model("densenet-bc", **kwargs)
    pixels = np.random.default_rng(0).integers(0, 256, (64, 48, 48), dtype=np.uint8)
    payload = describe_model(model_name="densenet-bc", model_kwargs=kwargs, normalizer=fit_normalizer("pixel", pixels),
                             normalization="pixel", eval_transform=BatchAugment(out_size=42).to_dict(), input_size=42,
                             in_channels=1, class_names=FERPLUS_CLASSES)
    save_atomic({**payload, "model": state_dict_cpu(model), "precision": "fp32"}, path)
    return path


def test_a_ferplus_checkpoint_predicts_with_its_eight_class_names(tmp_path, capsys):
    from PIL import Image
    from skimage import data

    from ferlib.commands import main

    ckpt = ferplus_checkpoint(tmp_path / "ferplus.pt")
    photo = tmp_path / "a.png"
    Image.fromarray(data.astronaut()).save(photo)
    for runtime in ("torch", "onnx"):
        assert main(["predict", str(photo), "--model", str(ckpt), "--json", "--runtime", runtime]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["class_names"] == list(FERPLUS_CLASSES)
        (face,) = report["faces"]
        assert list(face["probabilities"]) == list(FERPLUS_CLASSES)
        assert FERPLUS_CLASSES[face["label_index"]] == face["label"]
    out = tmp_path / "ferplus.onnx"
    ex.export_onnx(ckpt, out, check_pixels=astronaut_crops(8))
    assert fp.load_predictor(out).class_names == list(FERPLUS_CLASSES)


def test_checkpoint_without_class_names_gets_the_data_sets_order(tmp_path):
    from ferlib.train.checkpoint import class_names_of

    assert class_names_of({"model_kwargs": {"num_classes": 7}}) == list(EMOTIONS)
    assert class_names_of({"model_kwargs": {"num_classes": 8}}) == list(FERPLUS_CLASSES)
    assert class_names_of({"model_kwargs": {"num_classes": 3}}) == ["class_0", "class_1", "class_2"]
    assert class_names_of({"class_names": ["a", "b"], "model_kwargs": {"num_classes": 2}}) == ["a", "b"]


@pytest.mark.slow  # python -m ferlib export on real FER-2013 PublicTest (3,589 faces through both runtimes)
def test_export_command_checks_on_real_faces(checkpoint, tmp_path, shared_data_or_none):
    import os
    import subprocess
    import sys

    import onnxruntime as ort

    if shared_data_or_none is None:
        pytest.skip("no real FER-2013 here")
    out = tmp_path / "kit.onnx"
    env = {**os.environ, "FERLIB_DATA_DIR": str(real_data_dir())}
    r = subprocess.run([sys.executable, "-m", "ferlib", "export", str(checkpoint), str(out), "--check-split",
                        "PublicTest"], capture_output=True, text=True, env=env,
                       cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stderr
    assert "FER-2013" in r.stdout and "same label 100.00%" in r.stdout and "accuracy PyTorch" in r.stdout
    meta = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    check = json.loads(meta["check"])
    assert check["faces"] == 3589 and check["max_probability_difference"] < 1e-4
    assert check["accuracy_onnx"] == pytest.approx(check["accuracy_pytorch"], abs=1e-3)
    assert check["accuracy_onnx"] > 0.55  # a real model on real faces (chance: 1/7)
    assert "PublicTest" in meta["checked_on"]
