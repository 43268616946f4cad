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
           "output_dir", "build_command", "archive", "main"]

EDITIONS = ("self-study", "class")
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


def output_dir(root: Path, edition: str) -> Path:
    """Where an edition's HTML goes: ``_build/html`` (self-study) or ``_build/class/_build/html``."""
    return root / "_build" / "html" if edition == "self-study" else root / "_build" / "class" / "_build" / "html"


def build_command(root: Path, edition: str) -> list[str]:
    """The ``jupyter-book build`` command of an edition (the class edition's configuration is the
    book's, with the shared execution cache and ``attnlab_edition: class``, written to ``build/class``)."""
    import sys

    import yaml

    jb = str(Path(sys.executable).parent / "jupyter-book")
    cmd = [jb, "build", "--all", "-W", "-n", "--keep-going"]
    if edition == "self-study":
        return cmd + [str(root)]
    if edition != "class":
        raise ValueError(f"edition must be one of {EDITIONS}, got {edition!r}")
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    config.setdefault("execute", {})["cache"] = str(root / "_build" / ".jupyter_cache")
    sphinx = config.setdefault("sphinx", {})
    sphinx["local_extensions"] = {name: str(root / path) for name, path in (sphinx.get("local_extensions") or {}).items()}
    sphinx.setdefault("config", {})["attnlab_edition"] = "class"
    path = root / "build" / "class" / "_config.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return cmd + ["--config", str(path), "--path-output", str(root / "_build" / "class"), str(root)]


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
    """``python -m attnlab.course.editions [self-study|class]``: execute changed pages, build the edition."""
    import argparse
    import os
    import shutil
    import subprocess

    from .book_execute import execute_pages
    from .notebook import find_course_root

    parser = argparse.ArgumentParser(description="Build one edition of the book.")
    parser.add_argument("edition", choices=EDITIONS, nargs="?", default="self-study")
    parser.add_argument("--course", type=Path, default=None)
    args = parser.parse_args(argv)
    root = find_course_root(args.course)
    os.environ.setdefault("ATTNLAB_PROGRESS", "text")
    execute_pages(root)
    if args.edition == "class":  # start clean: an earlier build's page sources must not linger
        shutil.rmtree(output_dir(root, "class"), ignore_errors=True)
    proc = subprocess.run(build_command(root, args.edition), cwd=root)
    if proc.returncode == 0:
        print(f"{args.edition} edition: {output_dir(root, args.edition) / 'index.html'}")
    raise SystemExit(proc.returncode)


if __name__ == "__main__":
    main()
