"""The Korean edition: its catalogues follow the current English, its glossary terms are where the
glossary says, it is built from the same executed pages (none executed again), and it works in a
real browser, offline (Hangul drawn with a CJK font, equations typeset, figures loaded, no console
error), with a link between the two editions on every page.

The catalogues' tests fail until every page is translated: that is their point (an English change
that the translation has not followed fails the suite, page and message named).
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path

import pytest
from _shared import shared_run
from test_book import (Visit, _open_offline, _serve, _shown_solution_lines, _typeset, browser, built_book,  # noqa: F401
                       class_book, hangul_rendering, toc_pages)

ROOT = Path(__file__).resolve().parents[1]
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _extension():
    spec = importlib.util.spec_from_file_location("attnlab_book", ROOT / "book" / "_ext" / "attnlab_book.py")
    ext = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ext)
    return ext


def _translations(page: str) -> str:
    """Every translation in a page's Korean catalogue, one per line (empty if it has none)."""
    from babel.messages.pofile import read_po

    from attnlab.course.locales import catalogue

    path = catalogue(ROOT, page)
    if not path.is_file():
        return ""
    with path.open("rb") as f:
        return "\n".join(m.string for m in read_po(f) if m.id and m.string and not m.fuzzy)


# -- the catalogues --------------------------------------------------------------------------------

def test_a_message_with_nothing_to_translate_is_no_message():
    from attnlab.course.locales import needs_translation

    for message in ("004", "`lab00_cnn`", "{doc}`00_cnn`", "000 §11.2, 001, 002", "필터", "$N \\times N$", "4, 6, 8"):
        assert not needs_translation(message), message
    for message in ("chapter", "`digits` (and scikit-image's photos)", "{doc}`glossary` collects them",
                    "**attention** (주목)", "$x$ is a vector"):
        assert needs_translation(message), message


def _write(path: Path, entries: list[tuple[str, str, bool]], obsolete: list[tuple[str, str]] = ()) -> None:
    from babel.messages.catalog import Catalog, Message
    from babel.messages.pofile import write_po

    catalog = Catalog(locale="ko")
    for msgid, msgstr, fuzzy in entries:
        catalog.add(msgid, msgstr, flags=["fuzzy"] if fuzzy else [])
    for msgid, msgstr in obsolete:
        catalog.obsolete[msgid] = Message(msgid, msgstr)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        write_po(f, catalog)


def test_the_check_names_every_message_that_does_not_follow_the_english(tmp_path):
    """problems() on a made-up course: translated, untranslated, fuzzy, missing, obsolete, no catalogue."""
    from attnlab.course.locales import problems

    pots, root = tmp_path / "pot", tmp_path / "course"
    _write(pots / "book" / "a.pot", [("Attention", "", False), ("Keys", "", False), ("Values", "", False),
                                     ("Queries", "", False)])
    _write(pots / "book" / "b.pot", [("Windows", "", False)])
    _write(pots / "book" / "c.pot", [("Shifted windows", "", False)])
    _write(root / "locales" / "ko" / "LC_MESSAGES" / "book" / "a.po",
           [("Attention", "주목", False), ("Keys", "", False), ("Values", "값", True)], obsolete=[("Query", "쿼리")])
    _write(root / "locales" / "ko" / "LC_MESSAGES" / "book" / "c.po", [("Shifted windows", "이동 윈도우", False),
                                                                      ("Old English", "옛 문장", False)])
    found = problems(root, pots)
    assert found["book/a"] == ["untranslated: Keys", "fuzzy: Values", "missing (run make locales): Queries",
                               "obsolete (run make locales): Query"]
    assert found["book/b"] == ["no catalogue locales/ko/LC_MESSAGES/book/b.po (run make locales)"]
    assert found["book/c"] == ["obsolete, the English is gone (run make locales): Old English"]
    _write(root / "locales" / "ko" / "LC_MESSAGES" / "book" / "b.po", [("Windows", "윈도우", False)])
    assert "book/b" not in problems(root, pots)


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    """The message templates of the current English sources (a gettext build that executes nothing)."""
    from attnlab.course.locales import templates as make

    def run(folder: Path) -> dict:
        start = time.perf_counter()
        pot_dir = make(ROOT, folder)
        return {"pot_dir": str(pot_dir), "seconds": time.perf_counter() - start}

    result = shared_run(tmp_path_factory, "gettext", run)
    assert result["seconds"] < 90, f"extracting the messages took {result['seconds']:.0f} s"
    return Path(result["pot_dir"])


@pytest.mark.slow
def test_every_message_of_every_page_is_translated(templates):
    """Every message of the current English has its Korean translation, none fuzzy, none obsolete,
    and every page of the book has its catalogue. Fails with the page and the message otherwise:
    after changing English prose, run `make locales` and translate what it marks (CONTRIBUTING.md)."""
    from attnlab.course.locales import problems

    pages = {p.relative_to(templates).with_suffix("").as_posix() for p in templates.rglob("*.pot")}
    assert set(toc_pages()) <= pages, f"pages without message templates: {sorted(set(toc_pages()) - pages)}"
    left = problems(ROOT, templates)
    assert not left, "Korean catalogues behind the English:\n" + "\n".join(
        f"{page}: {len(items)} messages, first: " + " | ".join(item[:100] for item in items[:3])
        for page, items in sorted(left.items()))


def _glossary_rows() -> list[tuple[str, list[str]]]:
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    return [(cells[2].strip(), re.findall(r"\{doc\}`([\w-]+)`", cells[3])) for line in text.splitlines()
            if line.startswith("|") for cells in [line.split("|")]
            if len(cells) > 4 and HANGUL.search(cells[2]) and cells[3].strip() != "where"]


def test_every_glossary_term_is_in_the_korean_text_of_its_page():
    """A glossary row names the page that introduces its Korean term: that page's translation uses it."""
    rows = _glossary_rows()
    assert len(rows) > 100
    missing: dict[str, list[str]] = {}
    for term, pages in rows:
        for page in pages:
            if term not in _translations(f"book/{page}"):
                missing.setdefault(page, []).append(term)
    assert not missing, "glossary terms absent from the Korean text of the page that introduces them:\n" + \
        "\n".join(f"{page}: {', '.join(terms)}" for page, terms in sorted(missing.items()))


# -- the edition switch ----------------------------------------------------------------------------

def test_each_edition_links_the_same_page_in_the_other():
    ext = _extension()
    english = ext.edition_switch("book/03_transformer", "en")
    assert 'href="../ko/book/03_transformer.html"' in english and ">한국어<" in english
    korean = ext.edition_switch("book/03_transformer", "ko")
    assert 'href="../../book/03_transformer.html"' in korean and ">English<" in korean
    assert 'href="ko/index.html"' in ext.edition_switch("index", "en")


# -- the built Korean edition ----------------------------------------------------------------------

def _build_korean(edition: str):
    def run(shared: Path) -> dict:
        from attnlab.course import editions

        env = dict(os.environ, ATTNLAB_PROGRESS="text")
        env.pop("ATTNLAB_FORCE_PROFILE", None)
        start = time.perf_counter()
        proc = editions.build(ROOT, edition, "ko", env=env, capture_output=True, text=True)
        log = proc.stdout + proc.stderr
        return {"returncode": proc.returncode, "seconds": time.perf_counter() - start,
                "warnings": [line for line in log.splitlines() if "WARNING" in line and "over TCP" not in line],
                "executed": [line for line in log.splitlines() if re.search(r"Executing notebook|Executed notebook", line)],
                "cached": len(re.findall(r"Using cached notebook", log)), "tail": log.splitlines()[-40:]}
    return run


@pytest.fixture(scope="session")
def korean_build(built_book, tmp_path_factory) -> dict:
    """The Korean self-study edition, built after the English one from the same execution cache.

    With ATTNLAB_TEST_BUILT_BOOK=1 (see test_book.built_book) an existing _build/html/ko is reused."""
    from attnlab.course import editions

    if os.environ.get("ATTNLAB_TEST_BUILT_BOOK") == "1" and \
            (editions.output_dir(ROOT, "self-study", "ko") / "index.html").exists():
        return {"reused": True}
    result = shared_run(tmp_path_factory, "book-ko", _build_korean("self-study"))
    assert result["returncode"] == 0 and not result["warnings"], \
        "Korean build failed:\n" + "\n".join(result["warnings"] or result["tail"])
    return result


@pytest.fixture(scope="session")
def korean_book(korean_build) -> Path:
    from attnlab.course import editions

    return editions.output_dir(ROOT, "self-study", "ko")


@pytest.mark.slow
def test_the_korean_build_executes_no_page(korean_build):
    """Every page with code comes from the execution cache that the English build filled: the Korean
    build's log names each as cached and none as executed."""
    if korean_build.get("reused"):
        pytest.skip("ATTNLAB_TEST_BUILT_BOOK=1: the Korean build was reused, not run")
    with_code = [p for p in toc_pages() if "```{code-cell}" in (ROOT / f"{p}.md").read_text(encoding="utf-8")]
    assert not korean_build["executed"], f"the Korean build executed pages again: {korean_build['executed']}"
    assert korean_build["cached"] == len(with_code), (korean_build["cached"], with_code)


@pytest.mark.slow
def test_every_page_links_the_same_page_in_the_other_edition(built_book, korean_book):
    """Every page of each edition has the switch, and its relative link reaches an existing page
    (so it works from disk and in the archive too)."""
    for page in toc_pages():
        for site, label in ((built_book, "한국어"), (korean_book, "English")):
            html = (site / f"{page}.html").read_text(encoding="utf-8")
            found = re.search(r'class="attnlab-edition-switch"><a href="([^"]+)"[^>]*>([^<]+)<', html)
            assert found and found.group(2) == label, f"{site}, {page}: no link to the other edition"
            target = ((site / page).parent / found.group(1)).resolve()
            assert target.is_file() and target.name == Path(page).name + ".html", (page, found.group(1))


@pytest.fixture(scope="module")
def site_server(built_book, korean_book):
    """The whole site (English at the root, Korean in ko/, MathJax shared) on localhost."""
    httpd = _serve(built_book)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.mark.browser
def test_every_korean_page_loads_offline_with_its_figures(browser, site_server):
    for doc in toc_pages():
        visit, page = _open_offline(browser, site_server, f"ko/{doc}", "Korean edition")
        assert page.evaluate("document.documentElement.lang") == "ko", doc
        assert page.locator("h1").count() >= 1, f"Korean {doc}: no title"
        broken = page.evaluate("""Array.from(document.querySelectorAll('main img')).filter(
            i => !(i.complete && i.naturalWidth > 0)).map(i => i.getAttribute('src'))""")
        assert not broken, f"Korean {doc}: images that did not load: {broken}"
        visit.close()


@pytest.mark.browser
def test_korean_text_is_drawn_with_a_cjk_font(browser, site_server):
    """The Korean introduction's text is Hangul, drawn with a font that has the glyphs (two different
    syllables give two different pictures; with no CJK font both are the same empty box, "tofu")."""
    visit = Visit(browser, site_server)
    page = visit.open("ko/book/intro.html")
    result = hangul_rendering(page, "main p")
    assert result["found"], "no Korean paragraph in the Korean introduction"
    assert result["notBlank"] and result["differ"], (
        f"Korean text ({result['text']!r}, font {result['family']}) renders as boxes: install a CJK font "
        "(Debian: fonts-noto-cjk; make browser-deps does)")
    assert not visit.errors, visit.errors
    visit.close()


@pytest.mark.browser
def test_korean_math_is_typeset(browser, site_server):
    visit = Visit(browser, site_server)
    page = visit.open("ko/book/03_transformer.html")
    _typeset(page)
    raw = page.locator(".math").count()
    assert raw >= 10, f"expected the chapter's equations, found {raw} math elements"
    assert page.locator(".math mjx-container, mjx-container").count() >= raw
    assert page.locator("mjx-merror").count() == 0
    assert not visit.errors and not visit.outside, (visit.errors, visit.outside)
    visit.close()


@pytest.mark.browser
def test_the_switch_leads_to_the_same_page_in_the_other_edition(browser, site_server):
    visit = Visit(browser, site_server)
    page = visit.open("book/03_transformer.html")
    page.locator(".attnlab-edition-switch a").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/ko/book/03_transformer.html"), page.url
    assert page.evaluate("document.documentElement.lang") == "ko"
    page.locator(".attnlab-edition-switch a").click()
    page.wait_for_load_state("load")
    assert page.url.endswith("/book/03_transformer.html") and "/ko/" not in page.url, page.url
    assert not visit.errors, visit.errors
    visit.close()


# -- the class edition in Korean -------------------------------------------------------------------

@pytest.fixture(scope="session")
def korean_class_book(class_book, korean_build, tmp_path_factory) -> Path:
    from attnlab.course import editions

    result = shared_run(tmp_path_factory, "book-class-ko", _build_korean("class"))
    assert result["returncode"] == 0 and not result["warnings"], \
        "Korean class edition build failed:\n" + "\n".join(result["warnings"] or result["tail"])
    assert not result["executed"], result["executed"]
    return editions.output_dir(ROOT, "class", "ko")


@pytest.mark.slow
def test_the_korean_class_edition_shows_no_graded_answer(korean_class_book):
    """The Korean class edition lives in the class site's ko/, in Korean, with no solution line in
    its HTML, sources or downloads."""
    leaked = _shown_solution_lines(korean_class_book)
    assert not leaked, "the Korean class edition shows solution code: " + "; ".join(
        f"{line!r} in {files[:3]}" for line, files in sorted(leaked.items()))
    intro = (korean_class_book / "book" / "intro.html").read_text(encoding="utf-8")
    assert 'lang="ko"' in intro and "attnlab-edition-switch" in intro
    assert "attnlab-graded" in (korean_class_book / "book" / "03_transformer.html").read_text(encoding="utf-8")
