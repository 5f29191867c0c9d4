"""Notebook pairs in sync, exercises generated from solutions, and graders that can fail."""
from __future__ import annotations

import textwrap
from pathlib import Path

import nbformat
import pytest

from ferlib import labs

ROOT = Path(__file__).resolve().parent.parent


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
        if "grader" in tags:
            graders += 1
            assert errors, f"grader cell passed on the blank exercise:\n{cell.source}"
            assert errors[0]["ename"] in ("CheckFailed", "NotImplementedError"), errors[0]["ename"]
        elif "raises-exception" not in tags:
            assert not errors, f"cell failed in {exercise.name}:\n{cell.source}\n{errors[0]['evalue']}"
    assert graders > 0
