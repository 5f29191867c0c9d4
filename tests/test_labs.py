"""Notebook pairs in sync, exercises generated from solutions, and graders that can fail."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from ferlib import labs

ROOT = Path(__file__).resolve().parent.parent
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_strip_solutions_keeps_indent():
    code = textwrap.dedent("""\
        def f(x):
            ### BEGIN SOLUTION
            y = x + 1
            return y
            ### END SOLUTION
        """)
    assert labs.strip_solutions(code) == "def f(x):\n    raise NotImplementedError()\n"


def test_unbalanced_markers_are_errors():
    with pytest.raises(ValueError):
        labs.strip_solutions("### BEGIN SOLUTION\nx = 1\n")
    with pytest.raises(ValueError):
        labs.strip_solutions("x = 1\n### END SOLUTION\n")


def test_exercise_tags():
    src = textwrap.dedent("""\
        # %% [markdown]
        # # Lab (solution)

        # %%
        def f(x):
            ### BEGIN SOLUTION
            return x
            ### END SOLUTION

        # %% tags=["grader"]
        check(f)
        """)
    ex = labs.exercise_from_solution(src)
    assert "return x" not in ex and "raise NotImplementedError()" in ex
    assert '# %% tags=["raises-exception"]' in ex
    assert '# %% tags=["grader", "raises-exception"]' in ex
    assert "# Lab (exercise)" in ex


def test_generated_files_are_current():
    stale = labs.stale_files(ROOT)
    assert not stale, ("generated notebooks/exercises are stale; run `python -m ferlib.labs sync`: "
                       + ", ".join(str(p.relative_to(ROOT)) for p in stale))


def test_every_lab_has_exercise_and_graders():
    for sol in sorted((ROOT / "solutions").glob("*.py")):
        text = sol.read_text()
        assert labs.BEGIN in text, f"{sol.name} has no solution block"
        assert 'tags=["grader"]' in text, f"{sol.name} has no grader cell"
        assert labs.exercise_path(sol).exists()


def _run(path: Path, tmp_path: Path) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


@pytest.mark.parametrize("exercise", sorted((ROOT / "exercises").glob("*.ipynb")), ids=lambda p: p.stem)
def test_exercise_graders_fail_on_blank(exercise, tmp_path):
    """Run the exercise as handed out: every grader cell must fail, and only those cells and stubs may fail."""
    nb = _run(exercise, tmp_path)
    graders = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        for e in errors:  # every failure reads as a grader's: the FAIL line and hint, never a raw traceback
            shown = _ANSI.sub("", "\n".join(e.get("traceback", [])))
            assert e["ename"] == "CheckFailed" and shown.lstrip().startswith("FAIL ") and "Traceback" not in shown, (
                f"{exercise.name}: a cell shows a raw traceback on the blank exercise "
                f"(wrap it in ferlib.checks.completed):\n{cell.source}\n{shown[:500]}")
        if "grader" in tags:
            graders += 1
            assert errors, f"grader cell passed on the blank exercise:\n{cell.source}"
            assert errors[0]["ename"] in ("CheckFailed", "NotImplementedError"), errors[0]["ename"]
        elif "raises-exception" not in tags:
            assert not errors, f"cell failed in {exercise.name}:\n{cell.source}\n{errors[0]['evalue']}"
    assert graders > 0


def _mini_kit(tmp_path: Path) -> Path:
    """A kit tree with one lab's solution and nothing generated yet."""
    root = tmp_path / "kit"
    for d in labs.NOTEBOOK_DIRS:
        (root / d).mkdir(parents=True)
    (root / "solutions" / "lab05_knn.py").write_text((ROOT / "solutions" / "lab05_knn.py").read_text())
    return root


def _age(path: Path, seconds: float) -> None:
    t = path.stat().st_mtime - seconds
    os.utime(path, (t, t))


def test_sync_and_check_say_up_to_date(tmp_path, capsys):
    root = _mini_kit(tmp_path)
    assert labs.main(["check"], root=root) == 1
    assert labs.main(["sync"], root=root) == 0
    assert "wrote exercises/lab05_knn.ipynb" in capsys.readouterr().out
    assert labs.main(["sync"], root=root) == 0
    assert labs.main(["check"], root=root) == 0
    out = capsys.readouterr().out
    assert out.count("up to date") == 2 and "wrote" not in out


def test_sync_refuses_to_overwrite_an_edited_notebook(tmp_path, capsys):
    root = _mini_kit(tmp_path)
    labs.sync(root)
    py, nb_path = root / "solutions" / "lab05_knn.py", root / "solutions" / "lab05_knn.ipynb"
    _age(py, 60)
    nb = nbformat.read(nb_path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("print('edited in JupyterLab')"))
    nbformat.write(nb, nb_path)  # newer than its .py, and differs from what the .py gives
    edited = nb_path.read_text()
    capsys.readouterr()
    assert labs.main(["sync"], root=root) == 2
    err = capsys.readouterr().err
    assert "solutions/lab05_knn.ipynb was edited after solutions/lab05_knn.py; edit solutions/lab05_knn.py" in err
    assert "Traceback" not in err
    assert nb_path.read_text() == edited  # nothing overwritten
    # an edit of the exercise notebook names the solution too
    ex = root / "exercises" / "lab05_knn.ipynb"
    ex.write_text(ex.read_text().replace("(exercise)", "(my exercise)"))
    assert labs.main(["sync"], root=root) == 2
    assert "exercises/lab05_knn.ipynb was edited after solutions/lab05_knn.py" in capsys.readouterr().err
    # once the source is edited after the notebook, sync regenerates as usual; --force always does
    _age(nb_path, 120)
    _age(ex, 120)
    assert labs.main(["sync"], root=root) == 0
    assert "print('edited in JupyterLab')" not in nb_path.read_text()
    ex.write_text(ex.read_text().replace("(exercise)", "(my exercise)"))
    assert labs.main(["sync", "--force"], root=root) == 0
    assert labs.stale_files(root) == []


def test_check_cli_says_up_to_date_on_the_kit():
    """`python -m ferlib.labs check` on the kit itself: exit 0 and "up to date" (the tree is in sync)."""
    r = subprocess.run([sys.executable, "-m", "ferlib.labs", "check"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr


def test_lab_server_hides_jupytext_twins(tmp_path):
    """`./kit lab` loads jupyter_server_config.py: one entry per chapter, ferlib's .py still listed."""
    import asyncio

    from traitlets.config.loader import PyFileConfigLoader
    from traitlets.utils.importstring import import_item

    assert "--config=jupyter_server_config.py" in (ROOT / "kit").read_text()
    config = PyFileConfigLoader("jupyter_server_config.py", path=str(ROOT)).load_config()
    manager_class = import_item(config.ServerApp.contents_manager_class)
    for d in ("notebooks", "pkg"):
        (tmp_path / d).mkdir()
    for name in ("notebooks/03_center_loss.ipynb", "notebooks/03_center_loss.py", "notebooks/helper.py",
                 "pkg/labs.py", "pkg/__init__.py"):
        (tmp_path / name).write_text("{}" if name.endswith(".ipynb") else "x = 1\n")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks/03_center_loss.ipynb")
    manager = manager_class(root_dir=str(tmp_path))

    def listing(path):
        return sorted(e["name"] for e in asyncio.run(manager.get(path))["content"])

    assert listing("notebooks") == ["03_center_loss.ipynb", "helper.py"]
    assert listing("pkg") == ["__init__.py", "labs.py"]
    assert asyncio.run(manager.get("notebooks/03_center_loss.py"))["type"] == "file"  # still opens by path
    # the kit's own folders: every chapter once
    real = manager_class(root_dir=str(ROOT))
    names = sorted(e["name"] for e in asyncio.run(real.get("exercises"))["content"])
    assert names and all(n.endswith(".ipynb") for n in names), names
