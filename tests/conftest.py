"""Shared fixtures: tiny FER-2013 files written in each real format, and the real data."""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SPLITS = ("Training", "PublicTest", "PrivateTest")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]


def import_bench(name: str):
    """A script of bench/ as a module: a plain import with bench/ kept on sys.path, so DataLoader workers can
    unpickle bench classes under any multiprocessing start method."""
    import importlib
    import sys

    bench = str(ROOT / "bench")
    if bench not in sys.path:
        sys.path.insert(0, bench)
    return importlib.import_module(name)


def real_data_dir() -> Path | None:
    """../shared/data beside the checkout (CI and developers), or $FERLIB_DATA_DIR if it has the array file."""
    for cand in (os.environ.get("FERLIB_DATA_DIR"), ROOT.parent / "shared" / "data"):
        if cand and (Path(cand) / "fer2013" / "fer2013.npz.xz").is_file():
            return Path(cand)
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = real_data_dir()
    if d is None:
        pytest.skip("real FER-2013 not present (../shared/data/fer2013/fer2013.npz.xz); "
                    "loader tests on fixtures still ran")
    return d


@pytest.fixture(scope="session")
def real_fer2013(shared_data):
    from ferlib.data.readers import read_npz_xz

    return read_npz_xz(shared_data / "fer2013" / "fer2013.npz.xz")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test gets its own cache folder, so nothing is written to ~/.cache and tests don't share state."""
    monkeypatch.setenv("FERLIB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


def tiny_rows(n_per_split: int = 7, seed: int = 0):
    """Rows (emotion, pixels uint8 48x48, usage): every class in every split."""
    rng = np.random.default_rng(seed)
    rows = []
    for usage in SPLITS:
        for i in range(n_per_split):
            rows.append((i % 7, rng.integers(0, 256, size=(48, 48), dtype=np.uint8), usage))
    return rows


def pixels_text(p: np.ndarray) -> str:
    return " ".join(map(str, p.ravel()))


def write_fer2013_csv(path: Path, rows, *, icml: bool = False) -> Path:
    """The challenge's fer2013.csv (or icml_face_data.csv with its leading-space header)."""
    with open(path, "w", newline="") as f:
        if icml:
            f.write("emotion, Usage, pixels\n")
            for e, p, u in rows:
                f.write(f"{e},{u},{pixels_text(p)}\n")
        else:
            f.write("emotion,pixels,Usage\n")
            for e, p, u in rows:
                f.write(f"{e},{pixels_text(p)},{u}\n")
    return path


@pytest.fixture
def tiny_csv(tmp_path):
    rows = tiny_rows()
    return write_fer2013_csv(tmp_path / "fer2013.csv", rows), rows


def build_test_run(recipe, dataset, run_dir, **kw):
    """A quick-profile, fp32, CPU run of ``recipe`` on ``dataset`` (the parts, not yet trained)."""
    from ferlib.data.splits import prepare_splits
    from ferlib.train.build import build_run

    b = recipe.quick
    data = prepare_splits(dataset, b.train_per_class, b.eval_per_class, 0)
    kw.setdefault("progress", False)
    return build_run(recipe, data, profile="quick", seed=0, device="cpu", run_dir=run_dir, precision="fp32", **kw)


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path_factory, monkeypatch):
    """Results and run folders of tests never land in the kit's results/ or runs/."""
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path_factory.mktemp("runs")))


# -- the slow marker ----------------------------------------------------------------------------
# ``./kit test -m "not slow"`` is the quick local loop (CI runs everything).  Tests in files with
# their own ``@pytest.mark.slow`` are marked there; these are marked here, each with why.  Notebook
# items (nbval) are marked by the root conftest.py.
SLOW_MODULES = {
    "test_distributed.py": "torchrun: several worker processes per test",
    "test_notebooks_without_data.py": "executes whole chapters in Jupyter kernels",
    "test_grade.py": "grades notebooks, each in its own kernel and process",
    "test_interrupt.py": "SIGINTs training subprocesses and waits for their checkpoints",
    "test_browser.py": "starts JupyterLab and a headless browser",
    "test_cli_errors.py": "a python -m ferlib subprocess per mistake (~5 s each on 2 cores)",
}
SLOW_TESTS = {
    "test_trainer.py::test_cli_from_notebooks_folder_writes_where_the_chapters_read": "a CLI training subprocess",
    "test_labs.py::test_check_cli_says_up_to_date_on_the_kit": "a subprocess over every lab notebook",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.path.name
        if module in SLOW_MODULES or f"{module}::{getattr(item, 'originalname', item.name)}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------- a real browser (tests/test_browser.py, test_book.py)

def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium driven by Playwright (its own browser download is not possible here).

    Missing Chromium fails the test in CI (``.ci/run`` installs it) and skips it elsewhere."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(server, url: str, *, timeout_s: float, what: str, log: Path | None = None) -> None:
    """Poll ``url`` until it answers; fail the test (killing ``server``) if ``server`` exits or ``timeout_s`` passes."""
    import time
    import urllib.request

    deadline = time.time() + timeout_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail(f"{what} did not start" + (": " + log.read_text()[-2000:] if log else ""))
            time.sleep(0.2)
