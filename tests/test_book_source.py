"""The book's sources, read in a second: every code line a reader sees fits the page's column.

A shown code line wider than :data:`CODE_COLUMN` characters runs past the column of the built page
and is cut off on the right. Wrap it, or hide a long set-up cell behind "Show code cell source"
(``:tags: [hide-input]``). ``tests/test_book.py`` holds the built HTML to the same width.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CODE_COLUMN = 90            # characters of a code line that the book's column shows (the one place it is set)
HIDDEN_INPUT = {"hide-input", "remove-input", "hide-cell", "remove-cell"}   # a reader does not see the source


def display_width(line: str) -> int:
    """Columns a line takes in a monospace font: wide characters (Hangul, CJK) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line.rstrip("\n"))


def code_cells(text: str) -> list[tuple[set[str], list[tuple[int, str]]]]:
    """The ``{code-cell}`` blocks of a MyST page: (tags, [(line number, code line), ...]) each.

    Options come as ``:key: value`` lines or a ``---`` YAML block right after the opening fence;
    they are not code. The block ends at a fence of the same length.
    """
    cells, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        stripped = lines[i].lstrip()
        if not (stripped.startswith("```") and stripped.lstrip("`").startswith("{code-cell}")):
            i += 1
            continue
        fence = stripped[: len(stripped) - len(stripped.lstrip("`"))]
        i += 1
        options = []
        if i < len(lines) and lines[i].strip() == "---":            # YAML block of options
            i += 1
            while i < len(lines) and lines[i].strip() != "---":
                options.append(lines[i])
                i += 1
            i += 1
        while i < len(lines) and lines[i].startswith(":") and ":" in lines[i][1:]:   # :key: value
            key, value = lines[i][1:].split(":", 1)
            options.append(f"{key}: {value}")
            i += 1
        tags = set((yaml.safe_load("\n".join(options)) or {}).get("tags", []) if options else [])
        body = []
        while i < len(lines) and lines[i].strip() != fence:
            body.append((i + 1, lines[i]))
            i += 1
        cells.append((tags, body))
        i += 1
    return cells


def long_code_lines(path: Path, width: int = CODE_COLUMN) -> list[str]:
    """``file:line: N columns`` for every shown code-cell line of ``path`` wider than ``width``."""
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    found = []
    for tags, body in code_cells(path.read_text(encoding="utf-8")):
        if tags & HIDDEN_INPUT:
            continue
        for number, line in body:
            if display_width(line) > width:
                found.append(f"{name}:{number}: {display_width(line)} columns")
    return found


def book_sources() -> list[Path]:
    from attnlab.course.book_execute import book_pages

    return [p for p in book_pages(ROOT) if p.suffix == ".md"]


def test_every_shown_code_line_fits_the_column():
    long = [line for page in book_sources() for line in long_code_lines(page)]
    assert not long, (f"{len(long)} shown code lines are wider than {CODE_COLUMN} columns (wrap them, or "
                      "tag a set-up cell hide-input):\n" + "\n".join(long))


def test_the_reader_finds_cells_their_tags_and_their_lines(tmp_path):
    page = tmp_path / "page.md"
    wide = "x = " + "1 + " * 30 + "1"                                   # 125 columns
    korean = "s = '" + "한" * 43 + "'"                                  # 49 characters, 92 columns
    page.write_text("\n".join([
        "# A page", "```python", wide, "```",                          # a plain code block: not a cell
        "```{code-cell} ipython3", ":tags: [hide-input]", wide, "```",  # hidden: the reader sees no source
        "````{code-cell} ipython3", "---", "tags: [remove-cell]", "---", wide, "````",
        "```{code-cell} ipython3", "short = 1", wide, "```",            # shown: line 17 is too wide
        "```{code-cell} ipython3", ":tags: [raises-exception]", korean, "x" * 90, "```",
    ]), encoding="utf-8")
    cells = code_cells(page.read_text(encoding="utf-8"))
    assert [tags for tags, _ in cells] == [{"hide-input"}, {"remove-cell"}, set(), {"raises-exception"}]
    assert [n for n, _ in cells[2][1]] == [16, 17]
    assert display_width(wide) == 125 and display_width(korean) == 92 and len(korean) == 49
    assert long_code_lines(page) == [f"{page}:17: 125 columns", f"{page}:21: 92 columns"]   # 90 fits
