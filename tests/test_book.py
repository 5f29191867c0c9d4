"""The book (``./kit book``: Jupyter Book 1.x over the executed notebooks), built and opened in a real browser.

Scope: the whole book executes every chapter again, which would add the notebooks' time to CI a second
time (nbval already runs them), so this test builds the landing page, the set-up page, chapter 03 (the
chapter whose search term it checks), the shortest chapter (try_your_photo) and the bibliography, with
the same configuration and code as the full build (``ferlib.book.build`` with ``only``).  It serves the
result over http (search needs it) and checks in Chromium through Playwright: every chapter page
renders with at least one figure, no error output and its build note (data, and the link into the
kit's JupyterLab); every internal link of the table of contents answers 200; search finds "center
loss" in chapter 03; the bibliography lists the five papers of ``ferlib.bibliography``; a cell error
fails the build.  Needs ``chromium`` (the ``browser`` fixture of ``conftest.py``: fails in CI without
it, skips elsewhere).
"""
from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from conftest import free_port, wait_until_serving

from ferlib import book
from ferlib.bibliography import PAPERS, SOURCE_PAPERS

pytestmark = pytest.mark.slow
CHAPTERS = ("03_center_loss", "try_your_photo")
ERROR_OUTPUTS = ".output.traceback, .output.stderr"  # MyST-NB's classes for a traceback and for stderr


@pytest.fixture(scope="module")
def site(browser, tmp_path_factory):
    """The book with CHAPTERS, built into a temporary folder and served on localhost; yields its base URL."""
    out = tmp_path_factory.mktemp("book")
    t0 = time.time()
    html = book.build(out, set(CHAPTERS), quiet=True)
    print(f"book with {', '.join(CHAPTERS)} built in {time.time() - t0:.0f} s")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                               "--directory", str(html)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_until_serving(server, f"{base}/index.html", timeout_s=30, what="python -m http.server")
    yield base
    server.terminate()
    server.wait(timeout=30)


def _open(browser, url: str):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_load_state("load")
    return page


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_page_has_figures_no_errors_and_its_build_note(browser, site, name):
    page = _open(browser, f"{site}/notebooks/{name}.html")
    images = page.locator("article img")
    assert images.count() >= 1, f"{name}: no figure on the page"
    assert page.evaluate("img => img.complete && img.naturalWidth > 0", images.first.element_handle()), \
        f"{name}: the first figure did not load"
    errors = page.eval_on_selector_all(ERROR_OUTPUTS, "els => els.map(e => e.textContent)")
    assert not [e for e in errors if "Error" in e or "Traceback" in e], errors[:1]
    # the plumbing cells (tagged hide-input in the .py) are folded: their code sits in a closed <details>
    folded = page.locator("div.cell.tag_hide-input details.hide.above-input")
    assert folded.count() >= 1 and folded.first.get_attribute("open") is None, f"{name}: nothing folded"
    note = page.locator(".ferlib-build-note")
    assert note.count() == 1
    text = note.inner_text()
    assert ("SYNTHETIC faces" in text) or ("real FER-2013" in text), text
    link = note.locator(f"a[href='http://127.0.0.1:8888/lab/tree/notebooks/{name}.ipynb']")
    assert link.count() == 1, "no link that opens the notebook in the kit's JupyterLab"
    page.close()


def test_landing_page_says_which_data_and_the_toc_resolves(browser, site):
    page = _open(browser, f"{site}/index.html")  # index.html redirects to the landing page
    page.wait_for_url("**/intro.html")
    note = page.locator(".ferlib-build-note").inner_text()
    assert book.data_note().split(";")[0][:60] in note
    hrefs = page.eval_on_selector_all("nav.bd-docs-nav a.reference.internal", "els => els.map(a => a.href)")
    wanted = {"setup.html", "references.html"} | {f"notebooks/{n}.html" for n in CHAPTERS}
    assert wanted <= {h.split("#")[0].removeprefix(f"{site}/") for h in hrefs}, hrefs
    # every internal link of every page in the TOC answers 200
    checked = set()
    for href in sorted({h.split("#")[0] for h in hrefs} | {f"{site}/intro.html"}):
        sub = _open(browser, href)
        links = sub.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
        sub.close()
        for link in {l.split("#")[0] for l in links if l.startswith(site)} - checked:
            checked.add(link)
            try:
                status = urllib.request.urlopen(link, timeout=10).status
            except urllib.error.HTTPError as e:
                status = e.code
            assert status == 200, f"{link} (linked from {href}): HTTP {status}"
    assert len(checked) >= 5
    page.close()


def test_search_finds_center_loss_in_chapter_03(browser, site):
    page = _open(browser, f"{site}/search.html?q={urllib.parse.quote('center loss')}")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    found = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(a => a.href)")
    assert any("notebooks/03_center_loss.html" in h for h in found), found
    page.close()


def test_bibliography_lists_the_five_papers(browser, site):
    page = _open(browser, f"{site}/references.html")
    text = " ".join(page.locator("article").inner_text().split())
    for key in SOURCE_PAPERS:
        assert PAPERS[key].title in text, f"{key}: {PAPERS[key].title!r} not on the bibliography page"
    page.close()


def test_a_cell_error_fails_the_build(tmp_path, monkeypatch, capfd):
    """A notebook whose cell raises stops the build (execute.raise_on_error), instead of a page with a traceback."""
    nb = tmp_path / "notebooks"
    nb.mkdir()
    (nb / "broken.ipynb").write_text(
        '{"cells": [{"cell_type": "markdown", "metadata": {}, "source": ["# Broken"]},'
        ' {"cell_type": "code", "execution_count": null, "metadata": {}, "outputs": [],'
        ' "source": ["raise ValueError(\\"a cell error\\")"]}],'
        ' "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},'
        ' "nbformat": 4, "nbformat_minor": 5}')
    toc = book._read_toc()
    toc["parts"] = [{"caption": "Chapters", "chapters": [{"file": "notebooks/broken"}]}]
    monkeypatch.setattr(book, "_read_toc", lambda: toc)
    with pytest.raises(RuntimeError, match="build failed"):
        book.build(tmp_path / "out", quiet=True, notebooks=nb)
    out, err = capfd.readouterr()
    assert "a cell error" in out + err  # it failed on the cell, not on something else
