"""The book: it builds with no warning and no failing cell, and it works in a real browser, offline.

The build is the one `make book` runs (all pages, execution cached in .jupyter_cache). The built
site is served on localhost and opened in Debian's headless Chromium through Playwright; every
request to another host is refused, as on a student's offline machine.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from _shared import shared_run
from test_book_source import CODE_COLUMN, HIDDEN_INPUT, display_width

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [ch["file"] for ch in part.get("chapters", [])]
    return pages


def _build(shared: Path) -> dict:
    env = dict(os.environ, ATTNLAB_PROGRESS="text")
    env.pop("ATTNLAB_FORCE_PROFILE", None)
    jb = Path(sys.executable).parent / "jupyter-book"
    pre = subprocess.run([sys.executable, "-m", "attnlab.course.book_execute", "--course", str(ROOT)],
                         cwd=ROOT, env=env, capture_output=True, text=True)   # pages in parallel, as make book
    proc = subprocess.run([str(jb), "build", "--all", "-W", "-n", "--keep-going", str(ROOT)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    log = pre.stdout + proc.stdout + proc.stderr
    report = ROOT / "build" / "reports" / "book_times.txt"   # printed at the end of the session (conftest.py)
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(line for line in pre.stdout.splitlines() if line.startswith("book_execute")) + "\n")
    warnings = [line for line in log.splitlines() if "WARNING" in line and "Kernel is running over TCP" not in line]
    return {"returncode": proc.returncode, "warnings": warnings, "tail": log.splitlines()[-40:]}


@pytest.fixture(scope="session")
def built_book(tmp_path_factory):
    """Build the book as `make book` does; the build must succeed with no warning.

    Authors iterating on the browser tests can set ATTNLAB_TEST_BUILT_BOOK=1 to reuse _build/html.
    """
    if os.environ.get("ATTNLAB_TEST_BUILT_BOOK") == "1" and (HTML / "index.html").exists():
        return HTML
    result = shared_run(tmp_path_factory, "book", _build)   # built once, whichever worker asks first
    assert result["returncode"] == 0 and not result["warnings"], \
        "book build failed:\n" + "\n".join(result["warnings"] or result["tail"])
    return HTML


def _build_class(shared: Path) -> dict:
    from attnlab.course import editions

    env = dict(os.environ, ATTNLAB_PROGRESS="text")
    env.pop("ATTNLAB_FORCE_PROFILE", None)
    shutil.rmtree(editions.output_dir(ROOT, "class"), ignore_errors=True)
    proc = subprocess.run(editions.build_command(ROOT, "class"), cwd=ROOT, env=env, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line and "Kernel is running over TCP" not in line]
    return {"returncode": proc.returncode, "warnings": warnings, "tail": log.splitlines()[-40:]}


@pytest.fixture(scope="session")
def class_book(built_book, tmp_path_factory):
    """The class edition, built (from the same execution cache) after the self-study edition."""
    from attnlab.course import editions

    result = shared_run(tmp_path_factory, "book-class", _build_class)
    assert result["returncode"] == 0 and not result["warnings"], \
        "class edition build failed:\n" + "\n".join(result["warnings"] or result["tail"])
    return editions.output_dir(ROOT, "class")


def _site_texts(site: Path):
    """(path, text) of every file of a built site a reader can open: pages as text, sources, downloads."""
    import html as _html

    for path in sorted(site.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".html":
            yield path, _html.unescape(re.sub(r"<[^>]+>", "", path.read_text(encoding="utf-8", errors="replace")))
        elif path.suffix in (".md", ".txt", ".ipynb", ".py", ".json") and "_static" not in path.parts:
            yield path, path.read_text(encoding="utf-8", errors="replace")


def _shown_solution_lines(site: Path) -> dict[str, list[str]]:
    from attnlab.course.editions import solution_lines

    lines = solution_lines(ROOT)
    shown: dict[str, list[str]] = {}
    for path, text in _site_texts(site):
        flat = " ".join(text.split())
        for line in lines:
            if line in flat:
                shown.setdefault(line, []).append(str(path.relative_to(site)))
    return shown


def test_a_formula_the_instructions_state_is_no_evidence_of_a_shown_answer():
    """Lab 7 states MAE's ``len_keep`` formula in its instructions (in backticks): that line of the
    answer is given to students, so showing it leaks nothing; the answer's other lines still count."""
    from attnlab.course.editions import solution_lines

    lines = solution_lines(ROOT)
    assert "len_keep = int(N * (1 - mask_ratio))" not in lines
    assert {"ids_shuffle = torch.argsort(noise, dim=1)", "ids_keep = ids_shuffle[:, :len_keep]"} <= lines


@pytest.mark.slow
def test_the_class_edition_shows_no_graded_answer(built_book, class_book):
    """No line of any solution cell (white space normalised) is in the class edition's HTML, sources or
    downloads, while the self-study edition shows them; every graded listing became a note."""
    from attnlab.course.editions import graded_objects

    leaked = _shown_solution_lines(class_book)
    assert not leaked, "the class edition shows solution code: " + "; ".join(
        f"{line!r} in {files[:3]}" for line, files in sorted(leaked.items()))
    assert len(_shown_solution_lines(built_book)) >= 10, "the self-study edition should show the reference code"
    graded = graded_objects(ROOT)
    for page in toc_pages():
        source = (ROOT / f"{page}.md").read_text(encoding="utf-8")
        listed = {m.split(".")[0] for m in re.findall(r":pyobject:\s*(\S+)", source)} & set(graded)
        notes = (class_book / f"{page}.html").read_text(encoding="utf-8").count("attnlab-graded")
        assert notes == sum(1 for m in re.findall(r":pyobject:\s*(\S+)", source) if m.split(".")[0] in listed), page
        for name in listed:
            obj = graded[name]
            text = (class_book / f"{page}.html").read_text(encoding="utf-8")
            assert f"Lab {obj.lab_number}, exercise {obj.exercise}" in text, (page, name)


def _serve(directory: Path):
    handler = functools.partial(QuietHandler, directory=str(directory))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    return httpd


@pytest.fixture(scope="module")
def server(built_book):
    httpd = _serve(built_book)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def class_server(class_book):
    httpd = _serve(class_book)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser-deps` (Debian package 'chromium')")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Visit:
    """One page load with every console error, failed request and outside request recorded."""

    def __init__(self, browser, base: str):
        self.base = base
        self.page = browser.new_page()
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.errors.append(f"request failed: {r.url}")
                     if r.url.startswith(base) else None)
        self.page.route(re.compile(r"^(?!http://127\.0\.0\.1).*"), self._refuse)

    def _refuse(self, route):
        if not route.request.url.startswith(("data:", "blob:", "about:")):
            self.outside.append(route.request.url)
        route.abort()

    def open(self, path: str):
        self.page.goto(f"{self.base}/{path}", wait_until="load")
        self.page.wait_for_timeout(200)
        return self.page

    def close(self):
        self.page.close()


def _typeset(page) -> None:
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15000)
    page.evaluate("MathJax.startup.promise")


def _open_offline(browser, server, doc: str, edition: str):
    """Open one page, typeset its equations, and require no console error and no outside request."""
    visit = Visit(browser, server)
    page = visit.open(f"{doc}.html")
    if page.locator(".math").count():
        _typeset(page)
    assert not visit.errors, f"{edition}, {doc}: {visit.errors}"
    assert not visit.outside, f"{edition}, {doc} asked for outside resources (the book must work offline): {visit.outside}"
    return visit, page


def test_every_page_loads_offline_with_no_console_error(browser, server):
    for doc in toc_pages():
        visit, page = _open_offline(browser, server, doc, "self-study edition")
        assert page.locator("h1").count() >= 1, f"{doc}: no title"
        visit.close()


def test_every_figure_is_a_loaded_image(browser, server):
    total = 0
    for doc in toc_pages():
        visit = Visit(browser, server)
        page = visit.open(f"{doc}.html")
        images = page.evaluate("""Array.from(document.querySelectorAll('main img')).map(
            i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0}))""")
        broken = [i["src"] for i in images if not i["ok"]]
        assert not broken, f"{doc}: images that did not load: {broken}"
        total += len(images)
        visit.close()
    visit = Visit(browser, server)
    page = visit.open("book/03_transformer.html")
    n = page.evaluate("document.querySelectorAll('main img').length")
    assert n >= 5, f"the attention chapter should show its figures (heat maps, the sqrt(d_k) plots...), found {n}"
    visit.close()
    assert total >= n


def test_math_is_typeset(browser, server):
    visit = Visit(browser, server)
    page = visit.open("book/03_transformer.html")
    _typeset(page)
    raw = page.locator(".math").count()
    typeset = page.locator(".math mjx-container, mjx-container").count()
    assert raw >= 10, f"expected the chapter's equations, found {raw} math elements"
    assert typeset >= raw, f"MathJax typeset {typeset} of {raw} math elements"
    errors = page.locator("mjx-merror").count()
    assert errors == 0, f"{errors} equations failed to typeset"
    assert not visit.outside, visit.outside
    visit.close()


def test_sidebar_reaches_the_chapter(browser, server):
    visit = Visit(browser, server)
    page = visit.open("book/intro.html")
    link = page.locator("nav.bd-docs-nav a", has_text="The Transformer")
    assert link.count() >= 1, "the sidebar has no link to the Transformer chapter"
    link.first.click()
    page.wait_for_load_state("load")
    assert page.url.endswith("book/03_transformer.html"), page.url
    assert "attention" in page.locator("h1").first.inner_text().lower()
    visit.close()


def test_search_finds_attention(browser, server):
    visit = Visit(browser, server)
    page = visit.open("search.html?q=attention")
    page.wait_for_selector("#search-results ul.search li", timeout=20000)
    hits = page.locator("#search-results ul.search li a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert any("03_transformer" in h for h in hits), f"search for 'attention' did not find the chapter: {hits}"
    assert not visit.errors, visit.errors
    visit.close()


# tqdm's bar in any style: "45%|####5     |" (ascii) or "45%|████▌     |", and its rate "80.1it/s]"
PROGRESS_BAR = re.compile(r"\d%\|[^|\n]*\||\d(?:it/s|s/it)[\],]")


def shown_code_and_outputs(page_html: str) -> tuple[list[str], list[str]]:
    """Of a built page: the code lines a reader sees (cells not hidden behind "Show code cell
    source") and the text of each output block (one per stream write, as myst-nb renders them)."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page_html, "html.parser")
    code, outputs = [], []
    for cell in soup.select("div.cell"):
        tags = {c.removeprefix("tag_") for c in cell.get("class", []) if c.startswith("tag_")}
        if not tags & HIDDEN_INPUT:
            code += [line for pre in cell.select("div.cell_input pre") for line in pre.get_text().splitlines()]
        outputs += [block.get_text() for block in cell.select("div.cell_output div.output")]
    return code, outputs


def test_the_page_reader_sees_shown_code_and_progress_bars():
    """The reader of the built HTML, on a page shaped as myst-nb 1.3 renders one (measured on a
    built page: a hide-input cell, a cell whose tqdm bars became one output block per update)."""
    import io

    from tqdm.std import tqdm

    bars = []
    for ascii_bar in (True, False):
        out = io.StringIO()
        for _ in tqdm(range(3), ascii=ascii_bar, file=out, mininterval=0):
            pass
        bars += [b for b in out.getvalue().split("\r") if b]
    long = "x = '" + "." * 90 + "'"
    page = "".join([
        '<div class="cell tag_hide-input docutils container"><details class="hide above-input">',
        f'<div class="cell_input docutils container"><pre>{long}</pre></div></details></div>',
        '<div class="cell docutils container"><div class="cell_input docutils container">',
        f'<div class="highlight"><pre>short = 1\n{long}\n</pre></div></div>',
        '<div class="cell_output docutils container">',
        *[f'<div class="output stderr highlight-myst-ansi"><pre>{b}</pre></div>' for b in bars],
        '<div class="output stream"><pre>Linear: 600 steps in 12.3 s, final loss 0.049</pre></div>',
        "</div></div>"])
    code, outputs = shown_code_and_outputs(page)
    assert code == ["short = 1", long]                                   # the hidden cell's line is not shown
    assert len(outputs) == len(bars) + 1 and len(bars) >= 8          # each update a block of its own
    assert all(PROGRESS_BAR.search(text) for text in outputs[:-1]), outputs
    assert not PROGRESS_BAR.search(outputs[-1])                           # the book's one line per run


def test_the_built_pages_show_no_progress_bar_and_no_code_past_the_column(built_book):
    """A training run in a page prints one line when it ends (ATTNLAB_PROGRESS=text), not a bar
    whose every update is an output block; no shown code line is wider than the column."""
    bars, wide = [], []
    for page in toc_pages():
        code, outputs = shown_code_and_outputs((built_book / f"{page}.html").read_text(encoding="utf-8"))
        bars += [f"{page}: {found.group(0)!r}" for text in outputs if (found := PROGRESS_BAR.search(text))]
        wide += [f"{page}: {display_width(line)} columns: {line.strip()[:50]}..."
                 for line in code if display_width(line) > CODE_COLUMN]
    assert not bars, f"{len(bars)} output blocks show a progress bar:\n" + "\n".join(bars[:20])
    assert not wide, f"{len(wide)} shown code lines are wider than {CODE_COLUMN} columns:\n" + "\n".join(wide)


def test_each_chapter_links_its_lab(built_book):
    page = (built_book / "book" / "03_transformer.html").read_text(encoding="utf-8")
    hrefs = re.findall(r'href="([^"]*lab03_transformer\.ipynb)"', page)
    assert hrefs, "the chapter does not link its lab"
    assert all((built_book / "book" / h).resolve().exists() for h in hrefs), hrefs


def hangul_rendering(page, elements: str) -> dict:
    """Draw two Hangul syllables in the font of the first element matching ``elements`` (a CSS
    selector) whose text has Hangul: with a font that has the glyphs they give two different
    pictures; with no CJK font both are the same empty box ("tofu")."""
    return page.evaluate("""(selector) => {
        const cell = [...document.querySelectorAll(selector)].find(e => /[\\uAC00-\\uD7A3]/.test(e.textContent));
        if (!cell) return {found: false};
        const style = getComputedStyle(cell);
        const draw = (text) => {
            const c = document.createElement('canvas'); c.width = 96; c.height = 64;
            const g = c.getContext('2d'); g.font = `40px ${style.fontFamily}`; g.fillStyle = '#000';
            g.fillText(text, 4, 48);
            return Array.from(g.getImageData(0, 0, 96, 64).data).join(',');
        };
        return {found: true, text: cell.textContent.slice(0, 60), family: style.fontFamily,
                differ: draw('한') !== draw('글'), notBlank: draw('한') !== draw(' ')};
    }""", elements)


def test_korean_terms_render_as_real_glyphs(browser, server):
    """The glossary's Hangul is drawn with a font that has the glyphs (see hangul_rendering)."""
    visit = Visit(browser, server)
    page = visit.open("book/glossary.html")
    result = hangul_rendering(page, "main td")
    assert result["found"], "no glossary cell with Korean text"
    assert result["notBlank"] and result["differ"], (
        f"Korean text ({result['text']!r}, font {result['family']}) renders as identical boxes: install a CJK font "
        "(Debian: fonts-noto-cjk; make browser-deps does)")
    visit.close()


def test_a_page_may_not_cite_a_report_that_does_not_exist(tmp_path):
    """The build-time check of book/_ext: a mention of a missing report is reported (a warning fails
    the build), an existing one is not; and no page of the book cites a missing report."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("attnlab_book", ROOT / "book" / "_ext" / "attnlab_book.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    (tmp_path / "reports" / "gpu").mkdir(parents=True)
    (tmp_path / "reports" / "gpu" / "lab03_transformer.json").write_text("{}")
    text = "see reports/gpu/lab03_transformer.json and reports/gpu/lab09_missing.json"
    assert ext.missing_reports(text, tmp_path) == ["reports/gpu/lab09_missing.json"]
    for page in toc_pages():
        source = (ROOT / f"{page}.md").read_text(encoding="utf-8")
        assert not ext.missing_reports(source, ROOT), f"{page} cites a report that does not exist"


def test_gpu_results_are_quoted_only_from_an_existing_report(tmp_path):
    from attnlab.course.gpu_reports import describe_report

    (tmp_path / "solutions").mkdir()
    (tmp_path / "nbgrader_config.py").write_text("")
    assert "No GPU report" in describe_report("lab03_transformer", "previous_token_accuracy", root=tmp_path)
    (tmp_path / "reports" / "gpu").mkdir(parents=True)
    (tmp_path / "reports" / "gpu" / "lab03_transformer.json").write_text(
        '{"device": "NVIDIA H100", "torch": "2.11", "seconds": 41.0, "date": "2026-11-26",'
        ' "metrics": {"previous_token_accuracy": 0.999}}')
    said = describe_report("lab03_transformer", "previous_token_accuracy", root=tmp_path)
    assert "0.999" in said and "NVIDIA H100" in said


@pytest.mark.browser
def test_the_class_edition_works_offline_and_its_notes_link_the_labs(browser, class_server):
    for doc in toc_pages():
        visit, page = _open_offline(browser, class_server, doc, "class edition")
        broken = page.evaluate("""Array.from(document.querySelectorAll('main img')).filter(
            i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))""")
        assert not broken, f"class edition, {doc}: images that did not load: {broken}"
        for href in page.locator(".attnlab-graded a.download").evaluate_all("els => els.map(e => e.href)"):
            response = page.request.get(href)
            assert response.ok and response.body()[:1] == b"{", f"class edition, {doc}: the lab link {href} is broken"
        visit.close()


@pytest.mark.browser
def test_the_offline_archive_opens_from_disk(built_book, browser, tmp_path):
    """make book-archive: unzipped anywhere, the book works from disk (file://), equations and figures too."""
    import zipfile

    from attnlab.course.editions import archive

    path = archive(ROOT)
    with zipfile.ZipFile(path) as z:
        z.extractall(tmp_path)
    index = tmp_path / "attnlab-book" / "index.html"
    assert index.is_file()
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(index.as_uri())
    chapter = tmp_path / "attnlab-book" / "book" / "03_transformer.html"
    page.goto(chapter.as_uri(), wait_until="load")
    page.wait_for_function("window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=15000)
    page.evaluate("MathJax.startup.promise")
    assert page.locator("mjx-container").count() >= 10, "equations are not typeset from disk"
    broken = page.evaluate("""Array.from(document.querySelectorAll('main img')).filter(
        i => !(i.complete && i.naturalWidth > 0)).length""")
    assert broken == 0 and not errors, (broken, errors)
    page.close()


def recorded_metrics(html: Path, page: str) -> dict[str, float]:
    """The metrics a built page recorded with ``record_metric`` (printed ``name = value`` in its output)."""
    text = (html / "book" / f"{page}.html").read_text(encoding="utf-8")
    return {m[1]: float(m[2]) for m in re.finditer(r"(ch\d\d/\w+) = ([-+]?[0-9.]+(?:e[-+]?\d+)?)", text)}


def test_chapter_4_shows_what_its_prose_claims(built_book):
    """Chapter 4's headline figures at the profile the book is built with, each against the claim its
    prose makes: the ViT classifies the scenes (>= 0.95; chance is 1/6) and its rollout favours the
    object (share on the object's patches >= 1.1 times their share of the image: the prose reports
    1.12 to 1.44 over the recipe's three seeds and says the ratio stops short of 1.5), and the map's
    brightest patch is on the object more often than a random patch (by >= 0.1; the seeds: 0.60 to
    0.87 against about 0.47). On scenes of smaller shapes the same recipe's rollout follows the
    object: accuracy >= 0.95, ratio >= 1.5 (the prose: about 2.5; seeds 2.34 to 2.66) and the
    brightest patch on the object in most scenes (>= 0.75; the seeds: 0.92 to 0.99)."""
    metrics = recorded_metrics(built_book, "04_vit")
    assert metrics["ch04/test_accuracy"] >= 0.95, metrics
    ratio = metrics["ch04/rollout_share_on_object"] / metrics["ch04/object_patch_share"]
    assert ratio == pytest.approx(metrics["ch04/rollout_ratio_on_object"], rel=1e-2)
    assert ratio >= 1.1, metrics
    assert metrics["ch04/rollout_peak_on_object"] >= metrics["ch04/object_patch_share"] + 0.1, metrics
    assert metrics["ch04/small_objects_test_accuracy"] >= 0.95, metrics
    small = metrics["ch04/small_objects_rollout_share"] / metrics["ch04/small_objects_rollout_area"]
    assert small == pytest.approx(metrics["ch04/small_objects_rollout_ratio"], rel=1e-2)
    assert small >= 1.5 and metrics["ch04/small_objects_rollout_peak"] >= 0.75, metrics
    assert metrics["ch04/small_objects_rollout_area"] < metrics["ch04/object_patch_share"], metrics


def test_chapter_8_long_range_and_inductive_bias_show_what_the_prose_claims(built_book):
    """Chapter 8's recall and inductive-bias figures against its prose, with margins: the Transformer
    finds the pair at every distance (>= 0.9), the CNN is at chance beyond its reach (within 0.1 of 1/8)
    and well above it inside (by >= 0.15), the LSTM above chance everywhere and far from the
    Transformer; the CNN ahead of the ViT (by 0.15-0.4 on the smallest set, by less on the largest, where
    it is >= 0.95); the ViT on raw scenes barely trains; augmentation lifts the ViT on the smallest set
    (>= 0.1) and the CNN to >= 0.95, so the gap between models trained alike stays (>= half of it); at
    unseen positions the ViT keeps >= 90 % of its accuracy, the CNN loses >= 10 % and ends at most 0.05
    above the ViT."""
    m = recorded_metrics(built_book, "08_properties")
    assert m["ch08/recall_transformer_worst_distance"] >= 0.9, m
    assert m["ch08/recall_cnn_best_beyond_reach"] <= 1 / 8 + 0.1, m
    assert m["ch08/recall_cnn_best_inside_reach"] >= m["ch08/recall_cnn_best_beyond_reach"] + 0.15, m
    assert m["ch08/recall_lstm_worst_distance"] >= 1 / 8 + 0.05, m
    assert m["ch08/recall_lstm_nearest"] <= m["ch08/recall_transformer_worst_distance"] - 0.3, m
    gap_small = m["ch08/cnn_seen_smallest"] - m["ch08/vit_seen_smallest"]
    gap_large = m["ch08/cnn_seen_largest"] - m["ch08/vit_seen_largest"]
    assert 0.15 <= gap_small <= 0.4 and 0 <= gap_large < gap_small, m
    assert m["ch08/cnn_seen_largest"] >= 0.95, m
    assert m["ch08/vit_raw_scenes_largest_set"] <= min(1 / 6 + 0.2, m["ch08/vit_seen_largest"] - 0.3), m
    assert m["ch08/vit_aug_seen_smallest"] >= m["ch08/vit_seen_smallest"] + 0.1, m
    assert m["ch08/cnn_aug_seen_smallest"] >= 0.95, m
    assert m["ch08/cnn_aug_seen_smallest"] - m["ch08/vit_aug_seen_smallest"] >= gap_small / 2, m
    assert m["ch08/vit_unseen_largest"] >= 0.9 * m["ch08/vit_seen_largest"], m
    assert m["ch08/cnn_unseen_largest"] <= 0.9 * m["ch08/cnn_seen_largest"], m
    assert m["ch08/cnn_unseen_largest"] <= m["ch08/vit_unseen_largest"] + 0.05, m


def test_chapter_8_scaling_rollout_and_memory_show_what_the_prose_claims(built_book):
    """Chapter 8's other figures against its prose: the scaling fit keeps >= 4 models above chance and
    its exponents are several times Kaplan et al.'s (>= 2 x 0.076 in non-embedding parameters, >= 2 x
    0.095 in data); the rollout figures of chapter 4's ViT are chapter 4's own (same model, same scenes,
    to the printed precision), about 1.4 times the baseline (1.1-1.7), saliency >= 1.2 times; the
    left-half ViT's rollout is <= 1.4 times its corrected baseline and > 2 times the image share; the
    sanity check leaves rollout at 1 and saliency >= 0.8 after the head; no local head; attention's
    memory grows as N^2 globally and N in windows (within 0.2 and 0.1)."""
    m = recorded_metrics(built_book, "08_properties")
    ch4 = recorded_metrics(built_book, "04_vit")
    assert m["ch08/scaling_models_above_chance"] >= 4, m
    assert m["ch08/scaling_exponent_non_embedding"] >= 2 * 0.076, m
    assert m["ch08/scaling_exponent_data"] >= 2 * 0.095, m
    assert m["ch08/shared_vit_accuracy"] >= 0.95, m
    assert m["ch08/rollout_share_on_object"] == pytest.approx(ch4["ch04/rollout_share_on_object"], rel=2e-3)
    assert m["ch08/object_baseline_share"] == pytest.approx(ch4["ch04/object_patch_share"], rel=2e-3)
    assert 1.1 <= m["ch08/rollout_over_baseline"] <= 1.7, m      # chapter 4's robust claim: >= 1.1
    assert m["ch08/saliency_over_baseline"] >= 1.2, m
    assert m["ch08/left_half_vit_rollout_over_baseline"] <= 1.4, m
    assert m["ch08/left_half_vit_rollout_over_image_share"] > 2, m
    assert m["ch08/sanity_rollout_after_head"] >= 0.999 and m["ch08/sanity_saliency_after_head"] >= 0.8, m
    assert m["ch08/local_heads"] == 0, m
    assert abs(m["ch08/memory_exponent_global"] - 2) <= 0.2, m
    assert abs(m["ch08/memory_exponent_windowed"] - 1) <= 0.1, m


def test_chapter_7_shows_what_its_prose_claims(built_book):
    """Chapter 7's headline figures against its prose, with margins: with 3 % of the labels the
    fine-tuned MAE beats training from scratch by >= 15 points (mean of three seeds; the prose says 16),
    the linear probe in between; BERT's MLM >= 15 points above the most frequent word at each position
    (prose: about 22), NSP near chance (<= 0.6) and the MLM accuracy without it within 2 points (prose:
    0.6); GPT within 6 % of the grammar's perplexity; MAE's loss <= 0.3 of predicting zeros (prose: a
    fifth); the probes per depth: shape near chance from the patch embedding (<= 0.30), the MAE's last
    block >= 5 points above the random network's and above the colour model's at every block, the colour
    model's drop after its peak within the noise (<= 4 points), colour readable everywhere (>= 0.95);
    CLIP's zero-shot >= 10 points above chance and above the probe trained with labels."""
    import math

    import torch

    from attnlab.data import text as tx

    m = recorded_metrics(built_book, "07_self_supervision")
    assert m["ch07/transfer_gain_points"] >= 15, m
    assert m["ch07/transfer_gain_points"] == pytest.approx(
        100 * (m["ch07/transfer_mae_fine_tuned"] - m["ch07/transfer_scratch"]), abs=0.1)
    assert m["ch07/transfer_scratch"] < m["ch07/transfer_mae_linear_probe"] < m["ch07/transfer_mae_fine_tuned"], m
    assert m["ch07/bert_mlm_accuracy"] >= m["ch07/mlm_position_baseline"] + 0.15, m
    assert m["ch07/bert_nsp_accuracy"] <= 0.6, m
    assert abs(m["ch07/bert_mlm_only_mlm_accuracy"] - m["ch07/bert_mlm_accuracy"]) <= 0.02, m
    best = math.exp(tx.entropy_per_token(tx.sentences(1000, generator=torch.Generator().manual_seed(10_000))))
    assert m["ch07/gpt_perplexity"] <= 1.06 * best, (m, best)
    assert m["ch07/mae_reconstruction_loss"] <= 0.3, m
    assert m["ch07/probe_shape_embedding_max"] <= 0.30, m
    assert m["ch07/probe_shape_mae_last"] >= m["ch07/probe_shape_random_last"] + 0.05, m
    assert m["ch07/probe_shape_mae_minus_colour_vit_min"] > 0, m
    assert 0 <= m["ch07/probe_shape_colour_vit_drop"] <= 0.04, m
    assert m["ch07/probe_colour_min"] >= 0.95, m
    assert m["ch07/clip_zero_shot_unseen"] >= 1 / 6 + 0.1, m
    assert m["ch07/clip_zero_shot_unseen"] > m["ch07/clip_probe_unseen"], m


def test_chapters_5_and_6_show_what_their_prose_claims(built_book):
    """Chapter 5: DETR detects (AP50 well above AP: loose boxes), the batched matcher is faster than
    the per-image loop, and of SETR's decoders at one budget Naive comes last by a wide margin while
    PUP and MLA are close, all far below the 0.80 a longer training gives. Chapter 6: the memory
    slopes of global and windowed attention are 2 and 1 and the FLOP ratio at 56 x 56 is the
    formulas' 13.8 (the prose leaves the time slopes out of the claim); on the scenes the Swin names
    the shape at 0.95 or more, with fewer errors than chapter 4's ViT and less memory per step; as
    backbone for scenes of several shapes, Swin + FPN is ahead of SETR-PUP on the ViT (the prose:
    about 0.1 mIoU, 0.10-0.13 over three seeds; held at 0.05) and its stage 1 alone does as well."""
    m = recorded_metrics(built_book, "05_detr_setr")
    assert m["ch05/detr_ap50"] >= 0.7 and m["ch05/detr_ap50"] > m["ch05/detr_ap"] + 0.1, m
    assert m["ch05/matcher_batched_ms"] < m["ch05/matcher_loop_ms"], m
    naive, pup, mla = (m[f"ch05/setr_{h}_miou"] for h in ("naive", "pup", "mla"))
    assert naive <= min(pup, mla) - 0.08, m
    assert abs(pup - mla) < 0.1 and max(pup, mla) < 0.8, m
    s = recorded_metrics(built_book, "06_swin")
    assert s["ch06/slope_msa_mem"] == pytest.approx(2.0, abs=0.05), s
    assert s["ch06/slope_wmsa_mem"] == pytest.approx(1.0, abs=0.05), s
    assert s["ch06/msa_over_wmsa_flops_56x56"] == pytest.approx(13.8, abs=0.1), s
    assert s["ch06/swin_scene_accuracy"] >= 0.95 and s["ch06/vit_scene_accuracy"] >= 0.95, s
    assert s["ch06/swin_scene_errors"] < s["ch06/vit_scene_errors"], s
    assert s["ch06/swin_step_bytes"] < s["ch06/vit_step_bytes"], s
    swin, stage1, setr = (s[f"ch06/seg_{key}_miou"] for key in ("swin", "swin_stage1", "setr"))
    assert setr >= 0.5 and swin >= setr + 0.05, s                # about 0.1 ahead (0.10-0.13 over 3 seeds)
    assert abs(swin - stage1) <= 0.1, s                          # stage 1 alone as good (up to 0.07 either way)
