"""A user's mistakes on the command line end in one clear message and exit status 2 -- no traceback,
and before any data is loaded; ``--debug`` shows the traceback.  Also: the landing page of ``./kit lab``."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ferlib_cli(*args, env=None, timeout=120):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "ferlib", *args], capture_output=True, text=True,
                          cwd=ROOT, env=e, timeout=timeout)


MISTAKES = [
    (["train", "no-such-recipe"], {}, "unknown recipe 'no-such-recipe'"),
    (["train", "densenet-bc"], {"FERLIB_PROFILE": "fulll"}, "unknown profile 'fulll'"),
    (["train", "densenet-bc", "--device", "gpu"], {}, "unknown device 'gpu'"),
    (["train", "densenet-bc", "--precision", "fp16"], {}, "unknown precision 'fp16'"),
    (["train", "densenet-bc", "--minutes", "-5"], {}, "--minutes must be a positive number"),
    (["train", "densenet-bc", "--threads", "0"], {}, "--threads must be at least 1"),
    (["train", "densenet-bc", "--minutes", "5", "--profile", "full"], {}, "two different budgets"),
    (["train", "densenet-bc", "--compile", "--device", "cpu"], {"PATH": "/nonexistent", "CXX": "no-such-c++"},
     "needs a C++ compiler"),
    (["export", "runs/no-such-run", "out.pt"], {}, "no checkpoint at runs/no-such-run"),
    (["export", "models/densenet-bc-center-60min-cpu-2threads.pt", "models/densenet-bc-60min-cpu-2threads.pt"], {},
     "densenet-bc-60min-cpu-2threads.pt already exists"),
    (["export", "models/densenet-bc-center-60min-cpu-2threads.pt", "README.md"], {},
     "the export is a .pt file (float16 checkpoint) or an .onnx file"),
]


@pytest.mark.parametrize("args, env, message", MISTAKES, ids=[" ".join(m[0]) for m in MISTAKES])
def test_user_mistakes_give_one_message(args, env, message):
    r = ferlib_cli(*args, env=env)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    assert r.stderr.startswith("error: ") and message in r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3
    assert "FER-2013 from" not in r.stdout + r.stderr  # checked before the data is loaded


def test_cuda_on_a_machine_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    r = ferlib_cli("train", "densenet-bc", "--device", "cuda")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no CUDA device" in r.stderr and "--device cpu" in r.stderr


def test_debug_shows_the_traceback():
    r = ferlib_cli("train", "no-such-recipe", "--debug")
    assert r.returncode != 0 and "Traceback" in r.stderr and "UsageError" in r.stderr


def _own_results(tmp_path, relative: str) -> Path:
    """A finished results file of yours (results/local/), named for the kind of data the CLI will find."""
    from ferlib.data.discovery import locate_data

    path = tmp_path / "results" / "local" / relative
    if locate_data(None).synthetic:
        path = path.with_name(path.stem + "-synthetic.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def test_finished_result_is_not_overwritten(tmp_path):
    target = _own_results(tmp_path, "densenet-bc.json")
    r = ferlib_cli("train", "densenet-bc", "--profile", "full", env={"FERLIB_RESULTS_DIR": str(tmp_path / "results")})
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    assert target.read_text() == "{}"


def test_finished_budget_result_is_not_overwritten(tmp_path):
    """Running a finished 60-minute command again must not replace its result (it once did: budget runs
    counted as quick-profile smoke tests)."""
    target = _own_results(tmp_path, "budget/densenet-bc-60min-cpu-2threads.json")
    r = ferlib_cli("train", "densenet-bc", "--minutes", "60", "--device", "cpu", "--threads", "2",
                   env={"FERLIB_RESULTS_DIR": str(tmp_path / "results"), "FERLIB_RUNS_DIR": str(tmp_path / "runs")})
    assert r.returncode == 2 and "60-minute budget" in r.stderr and "--overwrite" in r.stderr
    assert "Traceback" not in r.stderr and target.read_text() == "{}"


def test_recipes_table_columns_align():
    r = ferlib_cli("recipes")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    header = lines[0]
    for column in ("paper table row", "model", "quick"):
        at = header.index(column)
        assert all(line[at - 2:at] == "  " for line in lines[1:]), column


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kit_lab_lands_on_notebooks():
    """``./kit lab`` opens JupyterLab on notebooks/: the server's root redirects to /lab/tree/notebooks."""
    jupyter = Path(sys.executable).parent / "jupyter"
    if not jupyter.exists():
        pytest.skip("jupyter is not installed beside this Python")
    kit = (ROOT / "kit").read_text()
    start = kit.index("exec .venv/bin/jupyter lab")
    line = kit[start:kit.index("\n", kit.index('"$@"', start))].replace("\\\n", " ")
    options = [a for a in line.split() if a.startswith("--") and "default_url" in a]
    assert options, "kit lab sets no default URL"
    port = _free_port()
    cmd = [str(jupyter), "lab", "--ip=127.0.0.1", f"--port={port}", "--no-browser", "--ServerApp.token=t",
           f"--notebook-dir={ROOT}", *options]
    if hasattr(os, "getuid") and os.getuid() == 0:
        cmd.append("--allow-root")
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        deadline = time.time() + 60
        while True:
            try:
                opener.open(f"http://127.0.0.1:{port}/?token=t", timeout=5)
                location = None
            except urllib.error.HTTPError as e:
                location = e.headers.get("Location")
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    pytest.fail("JupyterLab did not start")
                time.sleep(0.5)
        assert location is not None and "/lab/tree/notebooks" in location, location
    finally:
        server.terminate()
        server.wait(timeout=30)
