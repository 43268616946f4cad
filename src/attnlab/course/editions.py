"""Two editions of the book from one source: *self-study* (all code shown) and *class* (the graded
answers held back).

The class edition replaces every listing of a graded object by a note that says where the student
writes it. Which objects are graded is read from the solution notebooks themselves: every function
and class a solution cell defines (nested ones too), so a new lab is covered without anyone keeping
a list. :func:`solution_lines` gives the distinctive lines of the solution regions, with which the
test suite proves that no answer reaches the class edition's HTML, sources or downloads.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from . import notebook

__all__ = ["EDITIONS", "GradedObject", "graded_objects", "solution_regions", "solution_lines", "normalise",
           "output_dir", "derived_config", "build_command", "build", "archive", "main", "LANGUAGES"]

EDITIONS = ("self-study", "class")
LANGUAGES = ("en", "ko")   # English, the source; Korean, from locales/ko/LC_MESSAGES
_BEGIN, _END = "### BEGIN SOLUTION", "### END SOLUTION"


@dataclass(frozen=True)
class GradedObject:
    """A function or class that a lab asks the student to write."""

    name: str
    lab: str
    exercise: int  # 1-based, in notebook order
    grade_id: str

    @property
    def lab_number(self) -> int:
        return int(re.match(r"lab(\d+)", self.lab).group(1))

    def note(self) -> str:
        return f"You write `{self.name}` yourself in Lab {self.lab_number}, exercise {self.exercise}."


def graded_objects(root: Path) -> dict[str, GradedObject]:
    """Name -> :class:`GradedObject` for every def/class in every solution cell of the course."""
    found: dict[str, GradedObject] = {}
    for lab in notebook.lab_names(root):
        nb = notebook.read(notebook.solution_path(lab, root))
        for k, gid in enumerate(notebook.exercises(nb), 1):
            cell = next(c for c in nb.cells if notebook.grade_id(c) == gid)
            try:
                tree = ast.parse(cell.source)
            except SyntaxError:
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    found.setdefault(node.name, GradedObject(node.name, lab, k, gid))
    return found


def solution_regions(root: Path) -> list[str]:
    """The code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` of every solution cell."""
    regions = []
    for lab in notebook.lab_names(root):
        for cell in notebook.read(notebook.solution_path(lab, root)).cells:
            if notebook.is_solution_cell(cell):
                regions += re.findall(rf"{_BEGIN}\n(.*?)\n[ \t]*{_END}", cell.source, flags=re.S)
    return regions


def normalise(code: str) -> str:
    """One line of code with its comment removed and its white space collapsed."""
    code = re.sub(r"#.*$", "", code)
    return " ".join(code.split())


def solution_lines(root: Path, *, min_length: int = 24) -> set[str]:
    """Distinctive lines of the solutions (normalised, at least ``min_length`` characters, doing
    something: a call, an index or an operator), the evidence that an answer was shown. A line that
    the released labs themselves contain (code given to students elsewhere in a notebook) is no
    evidence and is left out, also when it sits inside a line of the instructions (a formula the
    exercise states in backticks)."""
    released = []
    for lab in notebook.lab_names(root):
        path = root / "labs" / lab / f"{lab}.ipynb"
        if path.is_file():
            for cell in notebook.read(path).cells:
                released.extend(" ".join(line.split()) for line in cell.source.splitlines())
    given = "\n".join(released)
    lines = set()
    for region in solution_regions(root):
        for line in region.splitlines():
            text = normalise(line)
            if len(text) >= min_length and re.search(r"[(\[@=+*/-]", text) and text not in given:
                lines.add(text)
    return lines


def output_dir(root: Path, edition: str, language: str = "en") -> Path:
    """Where an edition's HTML goes: ``_build/html`` (self-study) or ``_build/class/_build/html``;
    its Korean build (``language="ko"``) in the folder ``ko/`` of that site."""
    site = root / "_build" / "html" if edition == "self-study" else root / "_build" / "class" / "_build" / "html"
    return site if language == "en" else site / language


def derived_config(root: Path, path: Path, *, edition: str = "self-study", language: str = "en",
                   execute: bool = True) -> Path:
    """Write to ``path`` the book's ``_config.yml`` for another build of the same sources: the shared
    execution cache (``_build/.jupyter_cache``, or no execution at all with ``execute=False``), the
    extensions' paths absolute, ``attnlab_edition`` and the Sphinx ``language``. A translated build
    lives in ``<site>/<language>/`` and takes MathJax from the English site beside it."""
    import yaml

    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    execute_config = config.setdefault("execute", {})
    execute_config["cache"] = str(root / "_build" / ".jupyter_cache")
    if not execute:
        execute_config["execute_notebooks"] = "off"
    sphinx = config.setdefault("sphinx", {})
    sphinx["local_extensions"] = {name: str(root / p) for name, p in (sphinx.get("local_extensions") or {}).items()}
    settings = sphinx.setdefault("config", {})
    if edition != "self-study":
        settings["attnlab_edition"] = edition
    if language != "en":
        from .locales import translate

        # the book's title and the sidebar's captions are no page's text: their translations are the
        # root page's (its title is the book's, its toctree carries the captions)
        toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
        config["title"] = translate(root, toc["root"], config.get("title", ""), language)
        for part in toc.get("parts", []):
            if "caption" in part:
                part["caption"] = translate(root, toc["root"], part["caption"], language)
        (path.parent / "_toc.yml").parent.mkdir(parents=True, exist_ok=True)
        (path.parent / "_toc.yml").write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False), encoding="utf-8")
        settings["language"] = language
        settings["html_extra_path"] = []   # one copy of MathJax, at the English site's root
        settings["mathjax_path"] = "../" + settings.get("mathjax_path", "../mathjax/es5/tex-mml-chtml.js")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def build_command(root: Path, edition: str, language: str = "en") -> list[str]:
    """The ``jupyter-book build`` command of an edition in a language. The English self-study
    edition is the book's own configuration; every other build's configuration is derived from it
    (:func:`derived_config`, written to ``build/<edition>[-<language>]/``), reads the same execution
    cache and writes to ``_build/<edition>[-<language>]``; a translated build is then copied into
    its site by :func:`build`."""
    import sys

    jb = str(Path(sys.executable).parent / "jupyter-book")
    cmd = [jb, "build", "--all", "-W", "-n", "--keep-going"]
    if edition == "self-study" and language == "en":
        return cmd + [str(root)]
    name = edition if language == "en" else f"{edition}-{language}"
    path = derived_config(root, root / "build" / name / "_config.yml", edition=edition, language=language)
    toc = ["--toc", str(path.parent / "_toc.yml")] if language != "en" else []
    return cmd + ["--config", str(path), *toc, "--path-output", str(root / "_build" / name), str(root)]


def build(root: Path, edition: str, language: str = "en", **run) -> "subprocess.CompletedProcess":
    """Build one edition in one language (pages already executed: they come from the cache) into
    :func:`output_dir`; ``run`` goes to :func:`subprocess.run`."""
    import shutil
    import subprocess

    if edition == "class" and language == "en":   # start clean: an earlier build's page sources must not linger
        shutil.rmtree(output_dir(root, "class"), ignore_errors=True)
    proc = subprocess.run(build_command(root, edition, language), cwd=root, **run)
    if proc.returncode == 0 and language != "en":
        built = root / "_build" / f"{edition}-{language}" / "_build" / "html"
        target = output_dir(root, edition, language)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(built, target)
    return proc


def archive(root: Path | str, edition: str = "self-study") -> Path:
    """Zip a built edition into ``build/attnlab-book[-class].zip`` (top folder ``attnlab-book``): a
    student unzips it anywhere and opens ``attnlab-book/index.html`` from disk, offline."""
    import zipfile

    root = Path(root).resolve()
    site = output_dir(root, edition)
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site} has no built book: build the {edition} edition first")
    path = root / "build" / ("attnlab-book.zip" if edition == "self-study" else f"attnlab-book-{edition}.zip")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for file in sorted(site.rglob("*")):
            if file.is_file():
                z.write(file, Path("attnlab-book") / file.relative_to(site))
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m attnlab.course.editions [self-study|class] [--language en|ko|all]``: execute
    changed pages, build the edition (both languages by default, English first)."""
    import argparse
    import os

    from .book_execute import execute_pages
    from .notebook import find_course_root

    parser = argparse.ArgumentParser(description="Build one edition of the book.")
    parser.add_argument("edition", choices=EDITIONS, nargs="?", default="self-study")
    parser.add_argument("--language", choices=LANGUAGES + ("all",), default="all")
    parser.add_argument("--course", type=Path, default=None)
    args = parser.parse_args(argv)
    root = find_course_root(args.course)
    os.environ.setdefault("ATTNLAB_PROGRESS", "text")
    execute_pages(root)
    for language in LANGUAGES if args.language == "all" else (args.language,):
        proc = build(root, args.edition, language)
        if proc.returncode != 0:
            raise SystemExit(proc.returncode)
        print(f"{args.edition} edition ({language}): {output_dir(root, args.edition, language) / 'index.html'}")


if __name__ == "__main__":
    main()
