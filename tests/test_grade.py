"""`python -m ferlib.labs grade`: a class of lab 05 submissions graded into a table and feedback.

Lab 05 (k-NN, NumPy only) is the quickest lab; its data are made up in the notebook.
"""
from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from ferlib import verdict
from ferlib.checks import GRADERS, CheckFailed
from ferlib.labs import grade

ROOT = Path(__file__).resolve().parent.parent
LAB = "lab05_knn"
BUG = ("predictions[i] = row[np.argmax(tied[row])]", "predictions[i] = np.argmax(counts)")  # smallest tied label


def _submit(root: Path, student: str, nb) -> Path:
    path = root / "submitted" / student / LAB / f"{LAB}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(nb, path)
    return path


def _solution():
    return nbformat.read(ROOT / "solutions" / f"{LAB}.ipynb", as_version=4)


def _with_cell(code: str):
    nb = _solution()
    nb.cells.insert(2, nbformat.v4.new_code_cell(code))
    return nb


def test_grader_records_only_when_asked(tmp_path, monkeypatch):
    from ferlib.checks import check_majority_vote

    log = tmp_path / "records.jsonl"
    monkeypatch.delenv(verdict.GRADE_LOG_ENV, raising=False)
    with pytest.raises(CheckFailed):
        check_majority_vote(lambda labels, n: labels[:, 0])
    assert not log.exists()
    monkeypatch.setenv(verdict.GRADE_LOG_ENV, str(log))
    with pytest.raises(CheckFailed):
        check_majority_vote(lambda labels, n: labels[:, 0])
    import json

    rec = json.loads(log.read_text())
    assert rec["check"] == "check_majority_vote" and rec["status"] == "FAIL" and rec["points"] == 0
    assert rec["max_points"] == GRADERS["check_majority_vote"] > 0 and "hint:" in rec["message"]


def test_expected_checks_come_from_the_solution_with_points():
    assert grade.expected_checks(LAB) == {"check_nearest_neighbours": GRADERS["check_nearest_neighbours"],
                                          "check_majority_vote": GRADERS["check_majority_vote"]}


def test_identity_from_nbgrader_layout_or_file_name(tmp_path):
    nb = _solution()
    a = _submit(tmp_path, "alice", nb)
    loose = tmp_path / "loose" / "bob.ipynb"
    loose.parent.mkdir()
    nbformat.write(nb, loose)  # lab found from the "Generated from solutions/lab05_knn.py" line
    subs = {s.student: s for s in grade.find_submissions([tmp_path / "submitted", loose])}
    assert subs["alice"].path == a.resolve() and subs["alice"].assignment == LAB and subs["alice"].nbgrader_layout
    assert subs["bob"].lab == LAB and not subs["bob"].nbgrader_layout


@pytest.mark.slow
def test_grade_a_class(tmp_path, monkeypatch):
    monkeypatch.setenv("FERLIB_DATA_DIR", str(tmp_path / "no-data"))
    (tmp_path / "no-data").mkdir()
    blank = nbformat.read(ROOT / "exercises" / f"{LAB}.ipynb", as_version=4)
    _submit(tmp_path, "blank", blank)
    _submit(tmp_path, "correct", _solution())
    buggy = _solution()
    cells = [c for c in buggy.cells if BUG[0] in c.source]
    assert len(cells) == 1
    cells[0].source = cells[0].source.replace(*BUG)
    _submit(tmp_path, "bug", buggy)
    _submit(tmp_path, "raises", _with_cell("raise RuntimeError('top-level boom')"))
    _submit(tmp_path, "sleeps", _with_cell("import time\ntime.sleep(600)"))
    _submit(tmp_path, "hog", _with_cell("import numpy as np\nbig = np.ones(1 << 29)  # 4 GiB"))
    tampered = _solution()  # a check deleted from the grader cell is put back
    for c in tampered.cells:
        if "check_majority_vote(majority_vote)" in c.source:
            c.source = "pass"
    _submit(tmp_path, "tampered", tampered)
    (tmp_path / "submitted" / "garbage" / LAB).mkdir(parents=True)
    (tmp_path / "submitted" / "garbage" / LAB / f"{LAB}.ipynb").write_text("not a notebook")

    out = tmp_path / "grading"
    r = subprocess.run([sys.executable, "-m", "ferlib.labs", "grade", str(tmp_path / "submitted"), "--out", str(out),
                        "--timeout", "40", "--memory-mb", "2048"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = {row["student"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    assert set(rows) == {"blank", "correct", "bug", "raises", "sleeps", "hog", "tampered", "garbage"}
    nn, vote = GRADERS["check_nearest_neighbours"], GRADERS["check_majority_vote"]
    full = f"{nn + vote:g}"

    def points(student):
        row = rows[student]
        return row["check_nearest_neighbours"], row["check_majority_vote"], row["score"], row["max_score"]

    assert points("blank") == ("0", "0", "0", full)
    assert points("correct") == (f"{nn:g}", f"{vote:g}", full, full) and rows["correct"]["status"] == "ok"
    assert points("bug") == (f"{nn:g}", "0", f"{nn:g}", full)
    assert rows["raises"]["status"] == "errors" and "RuntimeError: top-level boom" in rows["raises"]["note"]
    assert rows["sleeps"]["status"] == "timeout" and points("sleeps") == ("0", "0", "0", full)
    assert rows["hog"]["status"] == "errors" and "MemoryError" in rows["hog"]["note"]
    assert points("tampered")[2] == full and "restored" in rows["tampered"]["note"]
    assert rows["garbage"]["status"] == "unreadable" and rows["garbage"]["score"] == "0"

    checks = list(csv.DictReader(open(out / "checks.csv")))
    failed = [c for c in checks if c["student"] == "bug" and c["status"] != "PASS"]
    assert [c["check"] for c in failed] == ["check_majority_vote"] and "hint:" in failed[0]["message"]
    blank_msgs = [c["message"] for c in checks if c["student"] == "blank"]
    assert all("not implemented yet" in m for m in blank_msgs)
    assert {c["status"] for c in checks if c["student"] == "sleeps"} == {"NOT RUN"}
    feedback = (out / "feedback" / "bug" / LAB / f"{LAB}.md").read_text()
    assert f"{nn:g} / {full} points" in feedback and "FAIL majority vote" in feedback and "hint:" in feedback
    assert (out / "autograded" / "correct" / LAB / f"{LAB}.ipynb").exists()
    # the submissions were run elsewhere: nothing was written beside them
    assert sorted(p.name for p in (tmp_path / "submitted" / "correct" / LAB).iterdir()) == [f"{LAB}.ipynb"]
