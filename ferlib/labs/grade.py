"""Grade a class: run each submitted lab notebook, collect every grader's verdict, write a gradebook.

    python -m ferlib.labs grade submitted/ --out grading/ [--timeout 600] [--memory-mb 4096]

Layout (nbgrader's, so that an instructor's existing folders and habits carry over)::

    submitted/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb      input: what nbgrader's `collect` / `zip_collect` leaves
    grading/grades.csv                               one row per student and notebook, one column per check
    grading/checks.csv                               one row per student and check (status, points, message)
    grading/feedback/STUDENT/ASSIGNMENT/NOTEBOOK.md  per student: score, each check, its FAIL line and hint
    grading/autograded/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb   the executed notebook, outputs kept

nbgrader's layout rather than otter-grader's because ferlib's labs already are nbgrader-style
(solution blocks stripped into exercises, grader cells that students must not edit), and
instructors who use nbgrader or hand out through an LMS collect one folder per student.  We do
not need otter's zip-per-submission format or its test files: the checks live in ferlib.

Student identity: in that layout, the folder name STUDENT (and ASSIGNMENT the folder below it).
Any other notebook given (``grade alice.ipynb bob.ipynb``, or a folder of such files) is
one student per file, named by the file's stem; its lab is found from the file name, the
ASSIGNMENT folder, the notebook's "Generated from solutions/labNN_*.py" line, or ``--assignment``.

What a grading run does with each notebook, one at a time:

1. copies it into a fresh scratch folder (``tempfile.mkdtemp``, never inside the kit's tree):
   in the nbgrader layout the whole ``STUDENT/ASSIGNMENT`` folder (a student's data files
   come along), otherwise the notebook alone (so no student reads another's file);
2. restores the grader cells from ``exercises/LAB.ipynb`` (matched by cell id), as nbgrader
   restores its read-only cells, so a deleted or edited check is not trusted;
3. executes it with nbclient in its own process and its own kernel, every cell (errors
   allowed, as nbgrader's autograde does), under a wall-clock limit for the whole notebook
   (``--timeout``: the kernel is killed) and the resource limits of
   :mod:`ferlib.labs.kernel` (``--memory-mb``: ``RLIMIT_DATA``; CPU time; file size);
4. collects the graders' records: each ``@grader(points=...)`` check in :mod:`ferlib.checks`
   appends one JSON line (check, PASS/FAIL, points, FAIL line and hint) to the file named by
   ``$FERLIB_GRADE_LOG``, which only this run sets (:func:`ferlib.verdict.record`).  Records
   rather than parsing printed lines: a student's own prints cannot be mistaken for a verdict,
   and a FAIL keeps its hint verbatim.  A check of the lab without a record (the notebook
   timed out or died before it, or never called it) is NOT RUN, 0 points;
5. after the kernel is gone, this process -- not the submission -- writes the table and the
   feedback, outside the scratch folder, and deletes the scratch folder.

A notebook that raises, crashes its kernel, runs out of memory or time is reported in the
table (``status`` and ``note`` columns) and the run goes on with the next.

NOT A SANDBOX.  The submission runs as you, with your files and your network: rlimits stop
runaway code (an endless loop, a huge array), not a student who means harm -- such code can
read your files, write the records file, or kill the grader.  To grade untrusted work, run
the whole command in a throw-away container without network, as otter-grader does::

    docker run --rm --network none --memory 6g --cpus 2 --pids-limit 512 \\
        -v "$PWD/submitted:/submitted:ro" -v "$PWD/grading:/grading" \\
        IMAGE_WITH_THE_KIT python -m ferlib.labs grade /submitted --out /grading
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..verdict import GRADE_LOG_ENV
from ..paths import kit_root

__all__ = ["Submission", "find_submissions", "expected_checks", "grade_one", "grade", "main"]

ROOT = kit_root()
KERNEL_NAME = "ferlib-grade"
EXIT_OK, EXIT_TIMEOUT, EXIT_DIED, EXIT_FAILED = 0, 3, 4, 5
MAX_RECORDS_BYTES = 10 << 20


@dataclass
class Submission:
    path: Path
    student: str
    assignment: str
    lab: str | None  # the solution's stem (``lab05_knn``), when known
    nbgrader_layout: bool = False


@dataclass
class Result:
    submission: Submission
    status: str = "ok"
    note: str = ""
    checks: dict[str, dict] = field(default_factory=dict)  # name -> status, points, max_points, message

    @property
    def score(self) -> float:
        return sum(c["points"] for c in self.checks.values())

    @property
    def max_score(self) -> float:
        return sum(c["max_points"] for c in self.checks.values())


# ----------------------------------------------------------------------------- finding work

def _lab_of(path: Path, assignment: str | None, override: str | None) -> str | None:
    labs = {p.stem for p in (ROOT / "solutions").glob("*.py")}
    for name in (override, path.stem, assignment):
        if name and name in labs:
            return name
    try:
        text = path.read_text(errors="replace")[:20000]
    except OSError:
        return None
    m = re.search(r"solutions/(\w+)\.py", text)
    return m.group(1) if m and m.group(1) in labs else None


def find_submissions(paths: list[Path], assignment: str | None = None) -> list[Submission]:
    """Notebooks named or found under folders; student and assignment from nbgrader's layout or the file name."""
    notebooks: list[Path] = []
    for p in paths:
        if p.is_dir():
            notebooks += sorted(q for q in p.rglob("*.ipynb")
                                if not any(part.startswith(".") for part in q.relative_to(p).parts))
        else:
            notebooks.append(p)
    subs = []
    for nb in notebooks:
        nb = nb.resolve()
        if nb.parent.parent.parent.name == "submitted":  # submitted/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb
            student, assign, layout = nb.parent.parent.name, nb.parent.name, True
        else:
            student, assign, layout = nb.stem, None, False
        lab = _lab_of(nb, assign, assignment)
        subs.append(Submission(nb, student, assign or lab or assignment or "unknown", lab, layout))
    return subs


def expected_checks(lab: str | None) -> dict[str, float]:
    """The graders a lab's solution calls, in order, and their points (``@grader(points=...)``)."""
    if lab is None:
        return {}
    from ..checks import GRADERS

    text = (ROOT / "solutions" / f"{lab}.py").read_text()
    names: dict[str, float] = {}
    for cell in re.split(r"^# %%", text, flags=re.M):
        if cell.startswith(' tags=["grader"'):
            for name in re.findall(r"\b(check_\w+)\s*\(", cell):
                if name in GRADERS:
                    names.setdefault(name, GRADERS[name])
    return names


def _restore_graders(nb, lab: str | None) -> int:
    """Put the exercise's grader cells back (matched by id), as nbgrader restores read-only cells."""
    if lab is None or not (ROOT / "exercises" / f"{lab}.ipynb").exists():
        return 0
    import nbformat

    import hashlib

    ref = nbformat.read(ROOT / "exercises" / f"{lab}.ipynb", as_version=4)
    graders = {}
    for i, c in enumerate(ref.cells):  # ids as `sync` gives them, in the exercise and in the solution
        if "grader" in c.metadata.get("tags", []):
            graders[c.id] = c
            graders[hashlib.sha1(f"solutions/{lab}.py:{i}".encode()).hexdigest()[:8]] = c
    restored = 0
    for cell in nb.cells:
        if cell.get("id") in graders:
            want = graders[cell.id]
            if cell.source != want.source or cell.cell_type != "code":
                restored += 1
            cell.cell_type, cell.source = "code", want.source
            cell.metadata["tags"] = list(want.metadata.get("tags", []))
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    return restored


# ----------------------------------------------------------------------------- one notebook

def _kernel_spec(folder: Path, memory_mb: int, cpu_s: int) -> Path:
    spec = folder / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ferlib.labs.kernel", "--memory-mb", str(memory_mb), "--cpu-s", str(cpu_s),
                 "-f", "{connection_file}"],
        "display_name": "ferlib grading (limited)", "language": "python"}))
    return folder


def _read_records(path: Path, expected: dict[str, float]) -> dict[str, dict]:
    checks: dict[str, dict] = {}
    if not path.exists():
        return checks
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(MAX_RECORDS_BYTES)
    for line in text.splitlines():
        try:
            rec = json.loads(line)
            name, status = str(rec["check"]), str(rec["status"])
        except (ValueError, KeyError, TypeError):
            continue
        if (expected and name not in expected) or status not in ("PASS", "FAIL"):
            continue
        max_points = float(expected.get(name, rec.get("max_points", 0) or 0))
        checks[name] = {"status": status, "points": max_points if status == "PASS" else 0.0,
                        "max_points": max_points, "message": str(rec.get("message", ""))[:4000]}
    return checks  # the last record of each check wins


def _cell_errors(nb) -> list[str]:
    """Errors raised outside the graders (a grader's or a stub's CheckFailed is a verdict, not a crash)."""
    errors = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "grader" in cell.metadata.get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") != "CheckFailed":
                errors.append(f"cell {i}: {out.get('ename')}: {str(out.get('evalue'))[:200]}")
    return errors


def grade_one(sub: Submission, out: Path, timeout: float, memory_mb: int) -> Result:
    """Run one submission in a scratch copy, in its own process and kernel; never raises for the notebook's sake."""
    import nbformat

    result = Result(sub)
    expected = expected_checks(sub.lab)
    scratch = Path(tempfile.mkdtemp(prefix="ferlib-grade-"))
    try:
        work = scratch / "work"
        if sub.nbgrader_layout:
            shutil.copytree(sub.path.parent, work, symlinks=True,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        else:
            work.mkdir()
        try:
            nb = nbformat.read(sub.path, as_version=4)
        except Exception as e:  # not JSON, not a notebook
            result.status, result.note = "unreadable", f"{type(e).__name__}: {e}"[:300]
            return _finish(result, expected)
        restored = _restore_graders(nb, sub.lab)
        nb_in, nb_out = work / sub.path.name, scratch / "executed.ipynb"
        nbformat.write(nb, nb_in)
        records, log = scratch / "records.jsonl", scratch / "worker.log"
        env = dict(os.environ, **{GRADE_LOG_ENV: str(records), "IPYTHONDIR": str(scratch / "ipython"),
                                  "JUPYTER_RUNTIME_DIR": str(scratch / "runtime"), "MPLBACKEND": "Agg",
                                  "PYTHONDONTWRITEBYTECODE": "1"})
        cmd = [sys.executable, "-m", "ferlib.labs.grade", "_worker", str(nb_in), str(nb_out),
               str(_kernel_spec(scratch / "kernels", memory_mb, int(timeout) + 60)), str(timeout)]
        t0 = time.monotonic()
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                code = proc.wait(timeout + 180)  # the worker enforces `timeout`; this is the backstop
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                code = EXIT_TIMEOUT
        seconds = time.monotonic() - t0
        result.checks = _read_records(records, expected)
        notes = [f"ran {seconds:.0f} s"]
        if restored:
            notes.append(f"{restored} edited grader cell(s) restored")
        if code == EXIT_TIMEOUT:
            result.status = "timeout"
            notes.insert(0, f"stopped after the {timeout:g} s limit")
        elif code == EXIT_DIED:
            result.status = "kernel died"
            notes.insert(0, f"the kernel exited (memory limit {memory_mb} MiB, exit() or a crash)")
        elif code != EXIT_OK:
            result.status = "not run"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            notes.insert(0, f"the notebook could not be executed: {tail[0][:300] if tail else f'exit {code}'}")
        if nb_out.exists():
            executed = nbformat.read(nb_out, as_version=4)
            errors = _cell_errors(executed)
            if errors:
                if result.status == "ok":
                    result.status = "errors"
                notes.insert(0, "; ".join(errors[:3]) + (f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""))
            dest = out / "autograded" / sub.student / sub.assignment / sub.path.name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(nb_out, dest)
        result.note = "; ".join(notes)
        return _finish(result, expected)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _finish(result: Result, expected: dict[str, float]) -> Result:
    for name, points in expected.items():
        result.checks.setdefault(name, {"status": "NOT RUN", "points": 0.0, "max_points": float(points),
                                        "message": "this check did not run (see status)"})
    order = list(expected) + [n for n in result.checks if n not in expected]
    result.checks = {n: result.checks[n] for n in order}
    return result


# ----------------------------------------------------------------------------- the worker process

def _worker(nb_in: str, nb_out: str, kernel_dir: str, timeout: str) -> int:
    """Execute one notebook with nbclient in a limited kernel; exit code says how it ended."""
    import threading

    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    limit = float(timeout)
    nb = nbformat.read(nb_in, as_version=4)
    km = AsyncKernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=KernelSpecManager(kernel_dirs=[kernel_dir]))
    client = NotebookClient(nb, km=km, kernel_name=KERNEL_NAME, timeout=int(limit) + 1, allow_errors=True,
                            startup_timeout=120, resources={"metadata": {"path": os.getcwd()}})
    fired = threading.Event()

    def kill_kernel() -> None:
        fired.set()
        proc = getattr(getattr(km, "provisioner", None), "process", None)
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the kernel runs in its own session
            except OSError:
                pass

    timer = threading.Timer(limit, kill_kernel)
    timer.daemon = True
    timer.start()
    code = EXIT_OK
    try:
        client.execute()
    except CellTimeoutError:
        code = EXIT_TIMEOUT
    except DeadKernelError:
        code = EXIT_TIMEOUT if fired.is_set() else EXIT_DIED
    except Exception as e:  # nbclient or kernel start failures
        code = EXIT_TIMEOUT if fired.is_set() else EXIT_FAILED
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
    finally:
        timer.cancel()
        nbformat.write(nb, nb_out)
    if fired.is_set():
        code = EXIT_TIMEOUT
    return code


# ----------------------------------------------------------------------------- the gradebook

def _write(results: list[Result], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    columns: list[str] = []
    for r in results:
        columns += [c for c in r.checks if c not in columns]
    with open(out / "grades.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "notebook", "status", *columns, "score", "max_score", "note"])
        for r in results:
            s = r.submission
            w.writerow([s.student, s.assignment, s.path.name, r.status,
                        *[_num(r.checks[c]["points"]) if c in r.checks else "" for c in columns],
                        _num(r.score), _num(r.max_score), r.note])
    with open(out / "checks.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "assignment", "notebook", "check", "status", "points", "max_points", "message"])
        for r in results:
            for name, c in r.checks.items():
                w.writerow([r.submission.student, r.submission.assignment, r.submission.path.name, name,
                            c["status"], _num(c["points"]), _num(c["max_points"]), c["message"]])
    for r in results:
        s = r.submission
        path = out / "feedback" / s.student / s.assignment / (s.path.stem + ".md")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_feedback(r))


def _num(x: float) -> str:
    return f"{x:g}"


def _feedback(r: Result) -> str:
    s = r.submission
    lines = [f"# {s.assignment}: feedback for {s.student}", "",
             f"Notebook `{s.path.name}`: **{_num(r.score)} / {_num(r.max_score)} points**.", "",
             f"Run: {r.status}" + (f" ({r.note})" if r.note else ""), "",
             "| check | result | points |", "|---|---|---|"]
    lines += [f"| `{n}` | {c['status']} | {_num(c['points'])} / {_num(c['max_points'])} |" for n, c in r.checks.items()]
    for n, c in r.checks.items():
        if c["status"] != "PASS":
            lines += ["", f"## `{n}`: {c['status']}", "", "```", c["message"], "```"]
    return "\n".join(lines) + "\n"


def grade(paths: list[Path], out: Path, timeout: float = 600, memory_mb: int = 4096,
          assignment: str | None = None, log=print) -> list[Result]:
    """Grade every submission under ``paths``; write ``out/grades.csv``, ``checks.csv`` and feedback."""
    subs = find_submissions(paths, assignment)
    results = []
    for i, sub in enumerate(subs, 1):
        log(f"[{i}/{len(subs)}] {sub.student} / {sub.assignment} / {sub.path.name} ...")
        try:
            r = grade_one(sub, out, timeout, memory_mb)
        except Exception as e:  # the grader's own failure on this one; go on with the rest
            r = _finish(Result(sub, "not run", f"grading failed: {type(e).__name__}: {e}"[:300]),
                        expected_checks(sub.lab))
        log(f"    {r.status}: {_num(r.score)} / {_num(r.max_score)}" + (f"  ({r.note})" if r.note else ""))
        results.append(r)
    _write(results, out)
    return results


def main(argv: list[str] | None = None) -> int:
    doc = __doc__
    parser = argparse.ArgumentParser(
        prog="python -m ferlib.labs grade", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute students' lab notebooks and write a gradebook (grades.csv, checks.csv) and feedback.",
        epilog=doc[doc.index("Layout"):doc.index("What a grading run")].rstrip() + "\n\n"
        + doc[doc.index("NOT A SANDBOX"):].rstrip())
    parser.add_argument("submissions", nargs="+", type=Path,
                        help="notebooks, or folders searched for *.ipynb (e.g. nbgrader's submitted/)")
    parser.add_argument("--out", type=Path, default=Path("grading"), help="where the gradebook goes (default ./grading)")
    parser.add_argument("--timeout", type=float, default=600, help="wall-clock seconds per notebook (default 600)")
    parser.add_argument("--memory-mb", type=int, default=4096,
                        help="memory limit of each notebook's kernel, MiB (RLIMIT_DATA; default 4096)")
    parser.add_argument("--assignment", help="the lab (e.g. lab05_knn) when it cannot be told from the files")
    args = parser.parse_args(argv)
    missing = [str(p) for p in args.submissions if not p.exists()]
    if missing:
        print(f"no such file or folder: {', '.join(missing)}", file=sys.stderr)
        return 2
    results = grade(args.submissions, args.out, args.timeout, args.memory_mb, args.assignment)
    if not results:
        print("no notebooks found", file=sys.stderr)
        return 1
    print(f"wrote {args.out / 'grades.csv'}, {args.out / 'checks.csv'} and {len(results)} feedback file(s) "
          f"under {args.out / 'feedback'}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        raise SystemExit(_worker(*sys.argv[2:6]))
    raise SystemExit(main())
