"""The glossary is complete: every Korean term of the seed notes is in it, or deliberately not.

Terms are found in the notes (``../shared/seeds/``, or ``ATTNLAB_SEEDS``) by four patterns: a Korean
phrase followed by an English gloss in parentheses (``특징 선택(feature selection)``) or glued to
it (``위치 인코딩positional encoding``), the head of a definition line (``- 돌출 맵 : ...``) and the
name after a formula (``A=softmax(QKT) : 주목 행렬``). They are listed in
``book/glossary_terms.yml`` (``notes_terms``, checked against the notes when the notes are beside
the course, so the list is kept in the repository for CI); each must be a Korean entry of
``book/glossary.md``, or listed there as introduced by a later page (then required once that page
is in the book) or skipped, with the reason.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SEEDS = Path(os.environ.get("ATTNLAB_SEEDS", ROOT.parent / "shared" / "seeds"))
HANGUL = r"[\uac00-\ud7a3]+"
PHRASE = rf"{HANGUL}(?: {HANGUL}){{0,2}}"
PATTERNS = [
    re.compile(rf"({PHRASE}) ?\((?=[A-Za-z])"),
    re.compile(rf"^\s*[-•]?\s*({PHRASE}) ?:"),
    re.compile(rf":\s*({PHRASE})\s*$"),
    re.compile(rf"({PHRASE})(?=[A-Za-z]{{4,}})"),
]


def seed_terms() -> set[str]:
    return {term for path in sorted(SEEDS.glob("*.txt")) for line in path.read_text(encoding="utf-8").splitlines()
            for pattern in PATTERNS for term in pattern.findall(line)}


def glossary_terms() -> set[str]:
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    return {cells[2].strip() for line in text.splitlines() if line.startswith("|")
            for cells in [line.split("|")] if len(cells) > 3 and re.search(HANGUL, cells[2])}


def book_pages() -> set[str]:
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    return set(re.findall(r"file:\s*book/(\S+)", toc))


def _decided() -> dict:
    return yaml.safe_load((ROOT / "book" / "glossary_terms.yml").read_text(encoding="utf-8"))


def test_every_korean_term_of_the_notes_is_in_the_glossary_or_deliberately_not():
    decided = _decided()
    found = set(decided["notes_terms"])
    later = {term: page for page, terms in decided["later"].items() for term in terms}
    skip = decided["skip"]
    assert all(reason.strip() for reason in skip.values()), "every skipped term needs its reason"
    glossary, pages = glossary_terms(), book_pages()
    missing = sorted(t for t in found if t not in glossary and t not in skip and later.get(t) is None)
    assert not missing, f"Korean terms of the notes in neither the glossary nor glossary_terms.yml: {missing}"
    due = sorted(f"{t} ({later[t]})" for t in found if t in later and later[t] in pages and t not in glossary)
    assert not due, f"terms whose page is in the book now, so the glossary must have them: {due}"
    stale = sorted(t for t in list(skip) + list(later) if t not in found)
    assert not stale, f"glossary_terms.yml decides about terms the notes do not contain: {stale}"


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed notes are not beside the course (set ATTNLAB_SEEDS)")
def test_the_list_of_terms_is_the_one_the_notes_give():
    listed, found = set(_decided()["notes_terms"]), seed_terms()
    assert listed == found, (f"update notes_terms in book/glossary_terms.yml: new {sorted(found - listed)}, "
                             f"gone {sorted(listed - found)}")


def test_the_glossary_has_the_terms_the_chapters_introduce():
    """A few anchors: a term given in a chapter's text is in the glossary too."""
    glossary = glossary_terms()
    for term in ("돌출 맵", "수작업 특징", "은닉 노드", "주목 행렬", "문맥 행렬", "병렬 처리", "마스크", "트랜스포머",
                 "상대적인 위치", "멀티 모달 데이터", "백본", "다중 해상도", "계산 효율", "전역 정보", "지역 정보",
                 "손실 함수", "물체", "응용 헤드"):
        assert term in glossary, term


def test_every_glossary_term_is_on_the_page_its_row_names():
    """A row says where its term is introduced: that page gives the Korean term in its text."""
    text = (ROOT / "book" / "glossary.md").read_text(encoding="utf-8")
    rows = [cells for line in text.splitlines() if line.startswith("|")
            for cells in [line.split("|")]
            if len(cells) > 4 and re.search(HANGUL, cells[2]) and cells[3].strip() != "where"]
    assert len(rows) > 100
    missing = []
    for cells in rows:
        term, pages = cells[2].strip(), re.findall(r"\{doc\}`([\w-]+)`", cells[3])
        assert pages, f"the row of {term} names no page"
        missing += [f"{term} ({page})" for page in pages
                    if term not in (ROOT / "book" / f"{page}.md").read_text(encoding="utf-8")]
    assert not missing, f"glossary terms absent from the page their row names: {missing}"
