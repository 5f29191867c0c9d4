"""python -m ferlib reproduce: rows as concurrent ``train`` workers, skip done rows, resume interrupted ones,
a wall budget, a summary table, a plan that trains nothing, and one-message mistakes.

Every run is the quick profile on the embedded synthetic faces, on the CPU, fp32, with
the two cheapest rows (``tiny-densenet-demo`` and ``densenet-bc``).
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ferlib.commands import main
from ferlib.jobs.reproduce import BUDGET_EXIT, cpu_cores, expand_targets, papers
from ferlib.provenance import CodeVersion, _git

ROWS = ("tiny-densenet-demo", "densenet-bc")
CPU = ("--device", "cpu", "--precision", "fp32")


def use_folders(mp, root: Path) -> None:
    """Results and runs under ``root``; the synthetic faces (no data folder, no FERLIB_DATA_DIR); quick profile."""
    mp.setenv("FERLIB_RESULTS_DIR", str(root / "results"))
    mp.setenv("FERLIB_RUNS_DIR", str(root / "runs"))
    mp.delenv("FERLIB_DATA_DIR", raising=False)
    mp.delenv("FERLIB_PROFILE", raising=False)
    mp.chdir(root)


def summary(root: Path, name: str) -> dict:
    return json.loads((root / "results" / "local" / "quick" / "reproduce" / f"{name}-quick-cpu.json").read_text())


@pytest.fixture(scope="module")
def two_rows(tmp_path_factory):
    """Both rows trained by one call with two workers."""
    root = tmp_path_factory.mktemp("reproduce")
    with pytest.MonkeyPatch.context() as mp:
        use_folders(mp, root)
        rc = main(["reproduce", *ROWS, *CPU, "--workers", "2"])
    return root, rc


@pytest.mark.slow  # trains two rows in worker subprocesses
def test_two_rows_two_workers_write_results_and_a_summary(two_rows):
    root, rc = two_rows
    assert rc == 0
    for name in ROWS:
        results = json.loads((root / "results" / "local" / "quick" / f"{name}-synthetic.json").read_text())
        assert results["recipe"] == name and results["epochs_run"] == 2
        call = summary(root, "+".join(ROWS))["provenance"]  # the code the call started from
        assert results["provenance"]["code_fingerprint"] == call["code_fingerprint"]
        log = (root / "runs" / f"{name}-quick-synthetic-seed0" / "reproduce.log").read_text()
        assert f"--threads {max(1, cpu_cores() // 2)}" in log  # each worker gets its share of the cores
    s = summary(root, "+".join(ROWS))
    assert s["workers"] == 2 and s["exit_status"] == 0 and s["provenance"]["git_sha"]
    assert [r["recipe"] for r in s["rows"]] == list(ROWS)
    for row in s["rows"]:
        assert row["status"] == "done", row
        assert set(row["ours"]) == {"PublicTest", "PrivateTest"} and row["train_images_per_s"] > 0
        assert row["gpu_utilisation_percent"] is None  # n/a on a CPU
    assert s["rows"][1]["paper_results"]["PrivateTest"] == 70.7  # the paper's number beside ours


@pytest.mark.slow  # needs the two trained rows
def test_a_second_call_skips_done_rows_without_training(two_rows, monkeypatch, capsys):
    root, _ = two_rows
    watched = [root / "results" / "local" / "quick" / f"{n}-synthetic.json" for n in ROWS]
    watched += [root / "runs" / f"{n}-quick-synthetic-seed0" / f for n in ROWS for f in ("latest.pt", "reproduce.log")]
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in watched}
    use_folders(monkeypatch, root)
    assert main(["reproduce", *ROWS, *CPU, "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert all(f"skip {n}" in out for n in ROWS) and "start " not in out
    assert {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in watched} == before
    assert [r["status"] for r in summary(root, "+".join(ROWS))["rows"]] == ["skipped", "skipped"]


def test_a_stale_full_result_is_kept_without_overwrite(tmp_path, monkeypatch, capsys):
    use_folders(monkeypatch, tmp_path)
    full = tmp_path / "results" / "local" / "tiny-densenet-demo-synthetic.json"
    full.parent.mkdir(parents=True)
    full.write_text(json.dumps({"seed": 0, "synthetic": True, "metrics": {},
                                "provenance": {"code_fingerprint": "made by some other code"}}))
    before = full.read_bytes()
    assert main(["reproduce", "tiny-densenet-demo", "--profile", "full", *CPU]) == 0
    out = capsys.readouterr().out
    assert "stale tiny-densenet-demo" in out and "pass --overwrite to re-run" in out
    assert full.read_bytes() == before and not (tmp_path / "runs").exists()


@pytest.mark.slow  # a reproduce subprocess trains a row, is interrupted, then resumed: ~30 s on 2 cores
def test_an_interrupted_row_resumes_from_its_checkpoint(tmp_path, monkeypatch, capsys):
    """Ctrl-C on the call after epoch 1: the row saves and stops (exit 130); the same call continues it.

    The trigger is deterministic, without polling: the row's ``reproduce.log`` is made a named pipe
    before the call, so the worker's output arrives here line by line; SIGINT goes out when the
    epoch-1 line has been read.  The pipe is drained to the end and then replaced by a plain file
    holding what came through it (the resumed call appends to that)."""
    env = {k: v for k, v in os.environ.items() if k not in ("FERLIB_DATA_DIR", "FERLIB_PROFILE")}
    env.update(FERLIB_RESULTS_DIR=str(tmp_path / "results"), FERLIB_RUNS_DIR=str(tmp_path / "runs"))
    cmd = ["reproduce", "densenet-bc", *CPU]
    log = tmp_path / "runs" / "densenet-bc-quick-synthetic-seed0" / "reproduce.log"
    log.parent.mkdir(parents=True)
    os.mkfifo(log)
    lines, epoch_1 = [], threading.Event()

    def follow():
        with open(log, errors="replace") as f:  # blocks until reproduce opens the log for writing
            for line in f:
                lines.append(line)
                if "epoch 1/2  train loss" in line:
                    epoch_1.set()

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    p = subprocess.Popen([sys.executable, "-m", "ferlib", *cmd], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert epoch_1.wait(timeout=600), "".join(lines)
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=300)
    finally:
        p.kill()
    reader.join(timeout=60)
    assert not reader.is_alive()
    log.unlink()
    log.write_text("".join(lines))
    assert p.returncode == 130, out
    assert "interrupted densenet-bc" in out and "run the same command again to continue" in out
    assert "Traceback" not in out
    assert "interrupted at epoch 2 of 2" in log.read_text() or "interrupted after epoch" in log.read_text()
    assert not (tmp_path / "results" / "local" / "quick" / "densenet-bc-synthetic.json").exists()
    assert summary(tmp_path, "densenet-bc")["rows"][0]["status"] == "interrupted"

    use_folders(monkeypatch, tmp_path)
    assert main(cmd) == 0
    assert re.search(r"resuming densenet-bc from .*: after epoch [12]", log.read_text())
    results = json.loads((tmp_path / "results" / "local" / "quick" / "densenet-bc-synthetic.json").read_text())
    assert [h["epoch"] for h in results["history"]] == [1, 2]
    assert summary(tmp_path, "densenet-bc")["rows"][0]["status"] == "done"


@pytest.mark.slow  # a worker subprocess started and stopped by the budget
def test_the_wall_budget_stops_rows_and_says_how_to_continue(tmp_path, monkeypatch, capsys):
    use_folders(monkeypatch, tmp_path)
    assert main(["reproduce", "tiny-densenet-demo", *CPU, "--minutes", "0.01"]) == BUDGET_EXIT
    out = capsys.readouterr().out
    assert "interrupted tiny-densenet-demo" in out and "run the same command again to continue" in out
    assert not (tmp_path / "results" / "local" / "quick" / "tiny-densenet-demo-synthetic.json").exists()
    assert summary(tmp_path, "tiny-densenet-demo")["stopped_by"] == "budget"


@pytest.mark.slow  # measures each row's throughput
def test_dry_run_prints_a_time_per_row_and_writes_nothing(tmp_path, monkeypatch, capsys):
    use_folders(monkeypatch, tmp_path)
    assert main(["reproduce", *ROWS, *CPU, "--dry-run", "--minutes", "5"]) == 0
    out = capsys.readouterr().out
    for name in ROWS:
        assert re.search(rf"^{name}\s+2\s+\d+\s+\d+\s+[\d.]+ (s|min|h)\b", out, re.M), out
    assert "expected total" in out and "--minutes 5: " in out
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_dry_run_plans_a_row_whose_weights_are_missing_and_says_so(tmp_path, monkeypatch, capsys):
    use_folders(monkeypatch, tmp_path)
    monkeypatch.delenv("FERLIB_VGGFACE2_RESNET50", raising=False)
    monkeypatch.setenv("FERLIB_CACHE_DIR", str(tmp_path / "cache"))  # no VGGFace2 file anywhere ferlib looks
    assert main(["reproduce", "emonet-resnet50-pixels", *CPU, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^emonet-resnet50-pixels\s+2\s+\d+\s+\d+\s+[\d.]+ (s|min|h)\s+NEEDS WEIGHTS, missing here: "
                     r"VGGFace2 ResNet-50", out, re.M), out
    assert "python -m ferlib train emonet-resnet50-pixels says where to put them" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "no-such-table"], "unknown target 'no-such-table'"),
    (["reproduce", "tiny-densenet-demo", "--workers", "0"], "--workers must be at least 1"),
    (["reproduce", "tiny-densenet-demo", "--minutes", "0"], "--minutes must be a positive number"),
    (["reproduce", "tiny-densenet-demo", "--device", "tpu"], "--device"),
])
def test_mistakes_are_one_message_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    use_folders(monkeypatch, tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1 and "Traceback" not in err
    if "no-such-table" in argv:
        assert "densenet-cl" in err and "python -m ferlib recipes" in err
    assert not (tmp_path / "results").exists() and not (tmp_path / "runs").exists()


def test_a_paper_expands_to_its_rows_in_registry_order():
    rows = [r.name for r in expand_targets(["densenet-cl"])]
    assert len(rows) == 8 and rows[:2] == ["densenet", "densenet-center"]
    assert [r.name for r in expand_targets(["densenet-bc", "densenet-cl"])][:2] == ["densenet-bc", "densenet"]
    assert len(expand_targets(["densenet-cl", "densenet-bc"])) == 8  # each row once
    assert "none" not in papers()  # demo recipes are not a paper


def test_code_version_rule():
    here = CodeVersion("abc", head_tree=None, ferlib_dirty=False)
    assert here.made_this({"code_fingerprint": "abc"})[0]
    assert not here.made_this({"code_fingerprint": "other"})[0]
    assert here.made_this({"git_sha": "unknown"})[0]  # no git here: an existing result counts as done
    head = _git("rev-parse", "HEAD")
    if head is None:
        pytest.skip("not a git checkout")
    clean = CodeVersion("abc", head_tree=_git("rev-parse", "HEAD:ferlib"), ferlib_dirty=False)
    assert clean.made_this({"git_sha": head, "git_dirty": False})[0]
    assert not clean.made_this({"git_sha": head, "git_dirty": True})[0]  # uncommitted code: cannot tell
    assert not clean.made_this({"git_sha": "unknown"})[0]
    assert not clean.made_this({"git_sha": "0" * 40})[0]  # a commit this checkout does not have
    dirty = CodeVersion("abc", head_tree=clean.head_tree, ferlib_dirty=True)
    assert not dirty.made_this({"git_sha": head, "git_dirty": False})[0]
