"""Chapter notebooks also run with no FER-2013 at all (the embedded synthetic faces).

nbval (``./kit test``) runs every notebook with the data CI provides; this runs the
data chapter, chapter 01 (no committed results either), chapters 04-05 (whose networks train on whatever data is found), 07, 08
and 09 (with an empty results folder: every paper row "not yet run") again the way a student without the dataset sees it.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", ["notebooks/00_fer2013_up_close.ipynb", "solutions/lab00_data.ipynb",
                                  "notebooks/01_hand_crafted_features.ipynb",
                                  "notebooks/04_exponential_triplet_loss.ipynb", "notebooks/05_knn_on_embeddings.ipynb",
                                  "notebooks/07_transfer_learning.ipynb", "notebooks/08_ferplus_input_features.ipynb",
                                  "notebooks/09_results.ipynb"])
def test_runs_on_synthetic_faces(name, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    if (ROOT / "data").is_dir():
        pytest.skip(f"{ROOT / 'data'} exists, so the notebooks would find it: this test needs a checkout without data")
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    monkeypatch.setenv("FERLIB_PROFILE", "quick")
    # runs and results in the test's folder: chapter 05 must then train its own networks (it runs on its own)
    monkeypatch.setenv("FERLIB_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("FERLIB_RUNS_DIR", str(tmp_path / "runs"))
    nb = nbformat.read(ROOT / name, as_version=4)
    # run from an empty folder, so there is no ./data either
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
                     + str(o.get("data", {}).get("text/markdown", ""))
                     for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    if "notebooks/" in name:
        assert "SYNTHETIC" in text
