"""The kit as a website: a Jupyter Book 1.x (Sphinx + MyST-NB) build of ``notebooks/``, executed at build time.

    python -m ferlib.book                    # the whole book -> _build/html (what ``./kit book`` runs)
    python -m ferlib.book --out DIR          # -> DIR/_build/html
    python -m ferlib.book --only 03_center_loss try_your_photo   # the landing page, set-up, these, bibliography

``book/`` holds the configuration: ``_config.yml``, ``_toc.yml`` (the curriculum order) and the landing
page ``intro.md``.  A build first assembles a source folder, ``<out>/_build/src``:

* ``_toc.yml`` -- ``book/_toc.yml`` less the chapters whose notebook does not exist (a chapter still being
  written is left out, not an error), or only those named by ``--only``;
* ``notebooks`` -- a link to the kit's own ``notebooks/`` (the pages are the kit's notebooks, executed where
  JupyterLab runs them, not copies);
* ``setup.md`` -- the README's set-up section, and ``references.md`` -- the bibliography from
  :mod:`ferlib.bibliography` (one source for docstrings, chapters and book).

MyST-NB then executes every notebook (``execute_notebooks: force``) and the build fails on a cell error.
This module is also the book's Sphinx extension (``sphinx.extra_extensions`` in ``_config.yml``): it puts at
the top of every chapter page the data it was built on (real FER-2013 or the synthetic faces), the profile,
and a link that opens the notebook in the kit's JupyterLab (``./kit lab``); on the landing page, the same
data note and how long each chapter took to execute in this build.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .bibliography import PAPERS, SOURCE_PAPERS
from .paths import kit_root

ROOT = kit_root()
BOOK_DIR = ROOT / "book"
LAB_URL = "http://127.0.0.1:8888/lab/tree/{path}"  # ./kit lab: port 8888, --notebook-dir=. (the kit root)
GENERATED = ("setup", "references")


# ---------------------------------------------------------------- the source folder

def _read_toc() -> dict:
    import yaml

    return yaml.safe_load((BOOK_DIR / "_toc.yml").read_text())


def _keep(entry: str, only: set[str] | None, notebooks: Path) -> bool:
    if entry.startswith("notebooks/"):
        name = entry.split("/", 1)[1]
        return (notebooks / f"{name}.ipynb").is_file() and (only is None or name in only)
    return entry in GENERATED or (BOOK_DIR / f"{entry}.md").is_file()


def toc(only: set[str] | None = None, notebooks: Path | None = None) -> dict:
    """``book/_toc.yml`` with the chapters whose notebook exists (and, given ``only``, just those)."""
    data = _read_toc()
    parts = []
    for part in data.get("parts", []):
        chapters = [c for c in part["chapters"] if _keep(c["file"], only, notebooks or ROOT / "notebooks")]
        if chapters:
            parts.append({**part, "chapters": chapters})
    return {**data, "parts": parts}


def setup_page() -> str:
    """The README's set-up section (from its ``## Set-up`` heading to the next ``## ``)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## Set-up"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    body = "\n".join(lines[start + 1:end]).strip()
    return (f"# {lines[start][3:].strip()}\n\n{body}\n\n"
            "(This page is the README's set-up section, copied when the book was built.)\n")


def references_page() -> str:
    """The bibliography page: the five source papers, then what they build on (:mod:`ferlib.bibliography`)."""
    def item(ref):
        return f"- **{ref.title}**. {ref.authors}. {ref.venue}.{f' {ref.year}.' if ref.year else ''}" \
               f"{f' {ref.ids}.' if ref.ids else ''} (key `{ref.key}`)"
    source = [item(PAPERS[k]) for k in SOURCE_PAPERS]
    rest = [item(r) for k, r in PAPERS.items() if k not in SOURCE_PAPERS]
    return ("# Bibliography\n\n"
            "From `ferlib.bibliography`, the list the code's docstrings and the chapters cite by key.\n\n"
            "## The five papers this kit reproduces\n\n" + "\n".join(source) + "\n\n"
            "## What they build on\n\n" + "\n".join(rest) + "\n")


def stage(src: Path, only: set[str] | None = None, notebooks: Path | None = None) -> Path:
    """Write the book's source folder ``src`` (removed and rewritten); returns it.

    ``notebooks`` is the folder the chapter pages come from (the kit's ``notebooks/`` unless a test says)."""
    notebooks = notebooks or ROOT / "notebooks"
    import yaml

    if src.is_symlink() or src.is_file():
        src.unlink()
    elif src.exists():
        shutil.rmtree(src)  # links inside are removed, never followed
    src.mkdir(parents=True)
    for name in ("_config.yml", "intro.md"):
        (src / name).symlink_to(BOOK_DIR / name)
    (src / "notebooks").symlink_to(notebooks, target_is_directory=True)
    (src / "_toc.yml").write_text("# generated from book/_toc.yml by ferlib.book; edit that one\n"
                                  + yaml.safe_dump(toc(only, notebooks), sort_keys=False))
    (src / "setup.md").write_text(setup_page())
    (src / "references.md").write_text(references_page())
    return src


def build(out: Path = ROOT, only: set[str] | None = None, *, quiet: bool = False,
          notebooks: Path | None = None) -> Path:
    """Stage and build the book into ``out/_build/html``; raises ``RuntimeError`` when the build fails."""
    out = Path(out).resolve()
    src = stage(out / "_build" / "src", only, notebooks)
    html = out / "_build" / "html"
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe), "build", str(src), "--path-output", str(out), "--all"]
    if quiet:
        cmd.append("--quiet")
    # this checkout's ferlib, in the build and in the kernels it starts, whichever one the venv installed
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    # run from the kit root: the data discovery's ./data and the banner's data note see what the notebooks see
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode != 0 or not (html / "index.html").is_file():
        raise RuntimeError(f"the book's build failed (exit {proc.returncode}); see the output above")
    return html


# ---------------------------------------------------------------- the Sphinx extension

def data_note() -> str:
    """What the notebooks of this build read: the real FER-2013 (and where) or the synthetic faces."""
    from .data.discovery import locate_data
    from .profiles import get_profile

    loc = locate_data()
    profile = get_profile()
    if loc.synthetic:
        what = ("the SYNTHETIC faces: no FER-2013 was found, so every number and picture on these pages "
                "comes from ferlib's procedurally drawn faces, not from real data")
    else:
        what = f"the real FER-2013 ({loc.kind}, found through {loc.chosen_by})"
        if loc.ferplus is not None:
            what += " with the FER+ votes"
    return f"Executed when this book was built, on {what}; profile {profile}."


def _note(text_parts) -> "object":
    from docutils import nodes

    para = nodes.paragraph()
    for part in text_parts:
        if isinstance(part, tuple):
            label, url = part
            para += nodes.reference("", label, refuri=url)
        else:
            para += nodes.Text(part)
    box = nodes.admonition(classes=["note", "ferlib-build-note"])
    box += nodes.title("", "How this page was built")
    box += para
    return box


def _insert_after_title(doctree, node) -> None:
    from docutils import nodes

    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        doctree.insert(0, node)
        return
    at = 1 if section.children and isinstance(section.children[0], nodes.title) else 0
    section.insert(at, node)


def _runtimes(env) -> dict[str, float]:
    out = {}
    for docname, meta in getattr(env, "nb_metadata", {}).items():
        data = (meta or {}).get("exec_data") or {}
        if data.get("runtime") is not None:
            out[docname] = float(data["runtime"])
    return out


def _timing_table(env) -> "object":
    from docutils import nodes

    times = _runtimes(env)
    table = nodes.table(classes=["ferlib-timings"])
    group = nodes.tgroup(cols=2)
    table += group
    group += nodes.colspec(colwidth=3)
    group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    group += head
    body = nodes.tbody()
    group += body

    def row(*cells):
        r = nodes.row()
        for c in cells:
            entry = nodes.entry()
            entry += nodes.paragraph("", c)
            r += entry
        return r

    head += row("chapter", "executed in (this build)")
    for doc in sorted(d for d in env.found_docs if d.startswith("notebooks/")):  # NN_ names: reading order
        title = env.titles.get(doc)
        body += row(title.astext() if title is not None else doc,
                    f"{times[doc] / 60:.1f} min" if doc in times else "(not recorded)")
    return table


def _on_doctree_resolved(app, doctree, docname: str) -> None:
    note = app.env.ferlib_data_note
    if docname.startswith("notebooks/"):
        path = f"{docname}.ipynb"
        _insert_after_title(doctree, _note([
            note + " Run it yourself: start ", ("JupyterLab", "http://127.0.0.1:8888/lab"),
            " with ./kit lab, then open ", (f"{path} in the kit's JupyterLab", LAB_URL.format(path=path)), "."]))
    elif docname == app.config.root_doc:
        from docutils import nodes

        box = _note([note])
        box += nodes.paragraph("", "Each chapter's execution time in this build (on the machine that built it; "
                                   "the chapters are listed in reading order in the sidebar):")
        box += _timing_table(app.env)
        _insert_after_title(doctree, box)


def _on_builder_inited(app) -> None:
    app.env.ferlib_data_note = data_note()


def setup(app):
    app.connect("builder-inited", _on_builder_inited)
    app.connect("doctree-resolved", _on_doctree_resolved)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# ---------------------------------------------------------------- command line

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ferlib.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT, help="the book goes to OUT/_build/html (default: the kit)")
    parser.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                        help="build just these chapters (notebook names without .ipynb), with the landing page, "
                             "set-up and bibliography")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        html = build(args.out, set(args.only) if args.only else None, quiet=args.quiet)
    except RuntimeError as e:
        print(f"[book] {e}", file=sys.stderr)
        return 1
    print(f"[book] {html / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
