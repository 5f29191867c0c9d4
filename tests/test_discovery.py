"""Data discovery order, the synthetic fallback notice, and the summary CLI."""
from __future__ import annotations

import json

import pytest

from ferlib.commands import main
from ferlib.data.discovery import load_fer2013, locate_data
from ferlib.data.errors import DataNotFoundError


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERLIB_DATA_DIR", raising=False)
    monkeypatch.setattr("ferlib.paths.kit_root", lambda: tmp_path / "no-kit")  # a checkout's data/ must not leak in
    return tmp_path


def test_explicit_argument_wins(tiny_csv, empty_cwd, monkeypatch):
    path, _ = tiny_csv
    monkeypatch.setenv("FERLIB_DATA_DIR", "/nonexistent")
    loc = locate_data(path.parent)
    assert loc.fer2013 == path and loc.kind == "csv" and loc.chosen_by == "argument"


def test_env_then_dot_data(tiny_csv, empty_cwd, monkeypatch):
    path, _ = tiny_csv
    monkeypatch.setenv("FERLIB_DATA_DIR", str(path.parent))
    assert locate_data().chosen_by == "FERLIB_DATA_DIR"
    monkeypatch.delenv("FERLIB_DATA_DIR")
    (empty_cwd / "data").mkdir()
    (empty_cwd / "data" / "fer2013.csv").write_bytes(path.read_bytes())
    loc = locate_data()
    assert loc.chosen_by == "./data" and loc.fer2013.name == "fer2013.csv"


def test_kit_data_folder_found_from_a_notebook_folder(tiny_csv, empty_cwd, monkeypatch):
    """Notebooks run in notebooks/: the kit's data/ is still found."""
    path, _ = tiny_csv
    kit = empty_cwd / "kit"
    (kit / "data").mkdir(parents=True)
    (kit / "notebooks").mkdir()
    (kit / "data" / "fer2013.csv").write_bytes(path.read_bytes())
    monkeypatch.setattr("ferlib.paths.kit_root", lambda: kit)
    monkeypatch.chdir(kit / "notebooks")
    loc = locate_data()
    assert loc.chosen_by == "./data" and loc.fer2013 == kit / "data" / "fer2013.csv"


def test_a_relative_env_folder_set_in_the_kit_holds_in_a_notebook_folder(tiny_csv, empty_cwd, monkeypatch):
    """FERLIB_DATA_DIR=shared/data set in the kit's folder; nbval's kernels start in notebooks/."""
    path, _ = tiny_csv
    kit = empty_cwd / "kit"
    (kit / "shared" / "data").mkdir(parents=True)
    (kit / "notebooks").mkdir()
    (kit / "shared" / "data" / "fer2013.csv").write_bytes(path.read_bytes())
    monkeypatch.setattr("ferlib.paths.kit_root", lambda: kit)
    monkeypatch.chdir(kit / "notebooks")
    monkeypatch.setenv("FERLIB_DATA_DIR", "shared/data")
    loc = locate_data()
    assert loc.chosen_by == "FERLIB_DATA_DIR" and loc.fer2013 == kit / "shared" / "data" / "fer2013.csv"
    monkeypatch.setenv("FERLIB_DATA_DIR", "elsewhere/data")  # in neither place: says where it looked
    with pytest.raises(DataNotFoundError, match=r"does not exist \(a relative path is looked for from the current "
                                                r"folder, .*notebooks, and from the kit's root"):
        locate_data()


def test_synthetic_fallback_is_announced(empty_cwd, capsys):
    assert locate_data().synthetic
    ds = load_fer2013(synthetic_per_class=20)
    assert ds.synthetic and "SYNTHETIC" in ds.tag
    err = capsys.readouterr().err
    assert "SYNTHETIC" in err and "fer2013.csv" in err and "FERLIB_DATA_DIR" in err


def test_explicit_path_without_data_is_an_error(empty_cwd):
    (empty_cwd / "nothing").mkdir()
    with pytest.raises(DataNotFoundError, match="no FER-2013 in .*nothing.*looked for fer2013.csv"):
        locate_data(empty_cwd / "nothing")
    with pytest.raises(DataNotFoundError, match="does not exist"):
        locate_data(empty_cwd / "missing")


def test_summary_cli_json(tiny_csv, capsys):
    path, _ = tiny_csv
    assert main(["data", "summary", "--data-dir", str(path.parent), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"] == {"Training": 7, "PublicTest": 7, "PrivateTest": 7}
    assert out["format"] == "fer2013.csv" and out["synthetic"] is False


def test_summary_cli_bad_input_exits_nonzero(tmp_path, capsys):
    bad = tmp_path / "fer2013.csv"
    bad.write_text("emotion,pixels,Usage\n9,1 2 3,Training\n")
    assert main(["data", "summary", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "row 0 (line 2)" in err and "fix:" in err


def test_summary_cli_real(shared_data, capsys):
    assert main(["data", "summary", "--data-dir", str(shared_data), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["splits"] == {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    assert out["classes"]["Training"]["disgust"] == 436
    assert out["exact_duplicates"]["duplicate_groups"] == 1516
    assert out["exact_duplicates"]["duplicate_rows"] == 3369
    assert out["exact_duplicates"]["test_rows_in_training"] == 568
    assert out["exact_duplicates"]["blank_images"] == 12
    assert out["ferplus"]["rows"] == 35887
