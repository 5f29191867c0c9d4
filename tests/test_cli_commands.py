"""Every ``python -m ferlib`` command runs once for real and writes what it says.

In-process (``ferlib.commands.main``) on the embedded synthetic faces (no FER-2013 anywhere:
FERLIB_DATA_DIR unset, an empty working folder, the checkout's ``data/`` hidden), on the
CPU in fp32, with results and runs under a temporary folder.  One quick
``tiny-densenet-demo`` run is trained once and reused by export, predict and ensemble.
The list of commands is read from the parser: a new command without a test here fails
:func:`test_every_command_has_a_test`.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
import torch

from ferlib.commands import build_parser, main

pytestmark = pytest.mark.slow  # trains a model and runs each command (about a minute on 2 busy cores)

RECIPE = "tiny-densenet-demo"
CPU = ["--device", "cpu"]


def parser_commands() -> set[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def use_world(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Results, runs and the cache under ``root``; no real data can be found; cwd = ``root``."""
    mp.setenv("FERLIB_RESULTS_DIR", str(root / "results"))
    mp.setenv("FERLIB_RUNS_DIR", str(root / "runs"))
    mp.setenv("FERLIB_CACHE_DIR", str(root / "cache"))
    mp.delenv("FERLIB_DATA_DIR", raising=False)
    mp.delenv("FERLIB_PROFILE", raising=False)
    mp.setattr("ferlib.paths.kit_root", lambda: root / "no-kit")  # a checkout's data/ must not leak in
    mp.chdir(root)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """One quick training run by ``train`` (its return code, printed output and run folder)."""
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        use_world(mp, root)
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            rc = main(["train", RECIPE, "--quiet", "--precision", "fp32", *CPU])
        finally:
            torch.set_num_threads(n)
    return root, rc


@pytest.fixture
def here(world, monkeypatch):
    root, rc = world
    use_world(monkeypatch, root)
    return root


def run_dir(root: Path) -> Path:
    return root / "runs" / f"{RECIPE}-quick-synthetic-seed0"


# -- the commands --------------------------------------------------------------------------------
def check_data(root, capsys):
    assert main(["data", "summary", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["synthetic"] is True and out["source"] == "synthetic"
    assert set(out["splits"]) == {"Training", "PublicTest", "PrivateTest"} and all(out["splits"].values())
    assert sum(out["splits"].values()) == out["rows"]


def check_recipes(root, capsys):
    from ferlib.train.recipes import ENSEMBLES, RECIPES

    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["recipe", "paper"]
    assert sorted(line.split()[0] for line in lines[1:] if line.strip()) == sorted([*RECIPES, *ENSEMBLES])


def check_train(root, capsys):
    results = json.loads((root / "results" / "local" / "quick" / f"{RECIPE}-synthetic.json").read_text())
    assert results["recipe"] == RECIPE and results["synthetic"] is True and results["profile"] == "quick"
    assert results["epochs_run"] == len(results["history"]) == 2
    for split in ("PublicTest", "PrivateTest"):
        assert 0 <= results["metrics"][split]["accuracy"] <= 1
    for f in ("best.pt", "latest.pt"):
        assert (run_dir(root) / f).is_file(), f


def check_export(root, capsys):
    from ferlib.data.synthetic import make_synthetic_faces
    from ferlib.train.checkpoint import load_checkpoint_dict, load_model

    out = root / "exported.pt"
    assert main(["export", str(run_dir(root)), str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "float16" in printed
    assert "SYNTHETIC" in printed and "same prediction" in printed
    ckpt = load_checkpoint_dict(out)
    assert {t.dtype for t in ckpt["model"].values() if t.is_floating_point()} == {torch.float16}
    assert load_model(out).predict_proba(make_synthetic_faces(n_per_class=3).pixels[:5]).shape == (5, 7)
    assert main(["export", str(run_dir(root)), str(out)]) == 2  # never overwrites without --overwrite
    onnx = root / "exported.onnx"  # ONNX: checked against PyTorch on the faces found (here SYNTHETIC, and says so)
    assert main(["export", str(run_dir(root)), str(onnx)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {onnx}" in printed and "SYNTHETIC" in printed and "same label 100.00%" in printed
    from ferlib.predict import load_predictor

    faces = make_synthetic_faces(n_per_class=3).pixels[:5]
    onnx_p = load_predictor(onnx).predict_proba(faces)
    assert abs(onnx_p - load_model(run_dir(root) / "best.pt").predict_proba(faces, precision="fp32")).max() < 1e-4


def check_predict(root, capsys):
    from PIL import Image
    from skimage import data

    photo = root / "astronaut.png"
    Image.fromarray(data.astronaut()).save(photo)
    assert main(["predict", str(photo), "--model", str(run_dir(root)), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (face,) = out["faces"]
    assert face["file"] == str(photo)
    assert face["label"] in face["probabilities"] and len(face["probabilities"]) == 7
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)
    x, y, w, h = face["box"]
    assert 150 < x + w / 2 < 300 and 50 < y + h / 2 < 200  # the astronaut's face, upper middle
    assert out["no_face"] == []
    assert face["label_index"] == out["class_names"].index(face["label"])
    assert "quick profile" in out["warning"] and "SYNTHETIC" in out["warning"]  # this model's labels mean little


def check_webcam(root, capsys):
    from ferlib.predict.video import write_demo_video

    # no camera here: one message; then a recorded clip played as a camera through the live loop
    assert main(["webcam", "--camera", "7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "camera" in err and "Traceback" not in err
    clip = write_demo_video(root / "clip.avi", frames=8, absent=None)
    assert main(["webcam", "--camera", str(clip), "--model", str(run_dir(root)), "--no-window", "--csv"]) == 0
    captured = capsys.readouterr()
    rows = captured.out.splitlines()
    assert rows[0].startswith("file,frame,time_s,face,track")
    assert sorted({int(r.split(",")[1]) for r in rows[1:]}) == list(range(8))  # the face on every frame
    assert "8 frames in" in captured.err and "quick profile" in captured.err


def check_ensemble(root, capsys):
    before = set((root / "results").rglob("*.json"))
    assert main(["ensemble", str(run_dir(root)), str(run_dir(root)), "--method", "mean", "--quiet"]) == 0
    (written,) = set((root / "results").rglob("*.json")) - before
    assert "ensembles" in written.parts and written.name.endswith("--mean.json")
    r = json.loads(written.read_text())
    assert r["kind"] == "ensemble" and r["method"] == "mean" and r["weights"] == pytest.approx([0.5, 0.5])
    assert r["synthetic"] is True and r["profile"] == "quick" and "git_sha" in r["provenance"]
    for split in ("PublicTest", "PrivateTest"):  # two copies of one model: the ensemble is that model
        assert r["metrics"][split]["accuracy"] == pytest.approx(r["best_member"][split])


def check_reproduce(root, capsys):
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert main(["reproduce", RECIPE, "--dry-run", *CPU]) == 0
    out = capsys.readouterr().out
    assert out.startswith("plan: ") and "quick profile, on cpu" in out and "SYNTHETIC" in out
    # train made this row: skipped; (were the code edited since: planned again, with a measured time)
    assert re.search(rf"^{RECIPE}\s+(-\s+-\s+-\s+0 s\s+skipped|2\s+\d+\s+\d+\s+[\d.]+ (s|min|h)\b)", out, re.M), out
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # a dry run writes nothing


def check_hand_crafted(root, capsys):
    assert main(["hand-crafted", "--features", "hog", "--classifiers", "logistic", "--C", "0.01", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "[hand-crafted] hog--logistic: 800 values" in out and "SYNTHETIC" in out
    r = json.loads((root / "results" / "local" / "quick" / "hand_crafted" / "hog--logistic.json").read_text())
    assert [g["C"] for g in r["grid"]] == [0.01, 0.1] and r["chosen_C"] in (0.01, 0.1)
    assert main(["hand-crafted", "--features", "hog", "--publish"]) == 2  # synthetic rows are never published
    assert "smoke test" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # argparse's one-line "error: argument --C: ..." and status 2
        main(["hand-crafted", "--C", "-1"])
    assert exit_.value.code == 2 and "--C takes positive numbers, got '-1'" in capsys.readouterr().err


def check_face_filter(root, capsys):
    assert main(["face-filter", "--quiet"]) == 0
    r = json.loads((root / "results" / "local" / "quick" / "hand_crafted" / "face_filter.json").read_text())
    assert r["synthetic"] is True and set(r["totals"]) == {"Training", "PublicTest", "PrivateTest"}
    assert sum(t["images"] for t in r["totals"].values()) == r["data"]["images"]


def check_frozen_features(root, capsys):
    assert main(["frozen-features", "emonet-lite0-random-pixels", "--epochs", "1", "--seeds", "0"]) == 0
    out = capsys.readouterr().out
    assert "[frozen-features] emonet-lite0-random-pixels: PrivateTest" in out
    r = json.loads((root / "results" / "local" / "quick" / "frozen_features" / "emonet-lite0-random-pixels.json")
                   .read_text())
    assert r["synthetic"] is True and r["weights"] == "none" and [s["seed"] for s in r["per_seed"]] == [0]
    assert main(["frozen-features", "emonet-resnet50-bovw"]) == 2  # the paper's rows need the trainer
    assert "offline rows" in capsys.readouterr().err
    assert main(["frozen-features", "--publish", "--epochs", "1"]) == 2  # synthetic rows are never published
    assert "smoke test" in capsys.readouterr().err


CHECKS = {"data": check_data, "recipes": check_recipes, "train": check_train, "export": check_export,
          "predict": check_predict, "webcam": check_webcam, "ensemble": check_ensemble, "reproduce": check_reproduce,
          "hand-crafted": check_hand_crafted, "face-filter": check_face_filter,
          "frozen-features": check_frozen_features}


def test_every_command_has_a_test(capsys):
    """The parser's commands are exactly the ones checked here, and ``--help`` lists each of them."""
    assert parser_commands() == set(CHECKS)
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    listed = text[text.index("{"):text.index("}") + 1]  # argparse's "{data,train,...}" line
    assert set(listed.strip("{}").split(",")) == set(CHECKS)


def test_train_returns_0(world):
    assert world[1] == 0


@pytest.mark.parametrize("command", list(CHECKS))
def test_command(command, here, capsys):
    if world_failed(here):
        pytest.fail("the training run the other commands use failed (see test_train_returns_0)")
    CHECKS[command](here, capsys)


def world_failed(root: Path) -> bool:
    return not (run_dir(root) / "best.pt").is_file()
