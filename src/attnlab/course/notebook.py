"""The facts about a lab notebook that every course tool needs, defined once.

A lab is ``solutions/<lab>/<lab>.ipynb`` with nbgrader markup:

* a **solution cell** (``nbgrader.solution``) with a ``grade_id`` such as ``ex1_sdpa``;
* **test cells** (``nbgrader.grade`` on a code cell that is not a solution) whose ids start with
  ``test_`` + the id of the solution cell they hold, e.g. ``test_ex1_sdpa_mask``;
* inside a test cell, hidden tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``.

The release, the lab harness, the grading command, the pre-flight check and the judge all read
notebooks through these functions.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = [
    "HIDDEN_BEGIN",
    "HIDDEN_END",
    "CourseNotFound",
    "find_course_root",
    "lab_names",
    "solution_path",
    "read",
    "nbgrader_meta",
    "grade_id",
    "is_test_cell",
    "is_solution_cell",
    "exercises",
    "test_cells",
    "tests_of",
    "owner_of",
    "split_hidden",
    "visible_source",
    "environment",
]

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"


class CourseNotFound(RuntimeError):
    """Raised when no course root (a folder with ``nbgrader_config.py`` and ``solutions/``) is found."""


def find_course_root(start: str | os.PathLike | None = None) -> Path:
    """The course root: ``start`` (default: the working directory) or the nearest folder above it
    that holds both ``nbgrader_config.py`` and ``solutions/``.

    ``ATTNLAB_COURSE`` overrides the search. Raises :class:`CourseNotFound` with what was searched.
    """
    env = os.environ.get("ATTNLAB_COURSE")
    here = Path(env or start or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "nbgrader_config.py").is_file() and (folder / "solutions").is_dir():
            return folder
    raise CourseNotFound(
        f"no course found at or above {here} (a course root holds nbgrader_config.py and solutions/); "
        "run the command from the course folder or pass --course"
    )


def lab_names(root: Path) -> list[str]:
    """The labs of the course: every ``solutions/lab*/`` folder, sorted."""
    return sorted(p.name for p in (Path(root) / "solutions").glob("lab*") if p.is_dir())


def solution_path(lab: str, root: Path) -> Path:
    """``solutions/<lab>/<lab>.ipynb`` of the course at ``root``."""
    return Path(root) / "solutions" / lab / f"{lab}.ipynb"


def read(path: str | os.PathLike) -> "nbformat.NotebookNode":  # noqa: F821 - imported lazily
    """Read a notebook as nbformat 4."""
    import nbformat  # lazily: the GPU machine runs gpu_reports without the Jupyter stack

    return nbformat.read(str(path), as_version=4)


@contextlib.contextmanager
def environment(**variables: str):
    """Set environment variables (inherited by the processes started inside) and restore them after."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def nbgrader_meta(cell) -> dict:
    """The nbgrader metadata of a cell (``{}`` when it has none or it is not a dict)."""
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def grade_id(cell) -> str | None:
    """The cell's nbgrader ``grade_id``, or ``None``."""
    return nbgrader_meta(cell).get("grade_id")


def is_test_cell(cell) -> bool:
    """An autograded test cell: graded, not a solution, code."""
    meta = nbgrader_meta(cell)
    return bool(meta.get("grade")) and not meta.get("solution") and cell.get("cell_type") == "code"


def is_solution_cell(cell) -> bool:
    """A cell the student answers in."""
    return bool(nbgrader_meta(cell).get("solution"))


def exercises(nb) -> list[str]:
    """Grade ids of the solution cells, in notebook order."""
    return [grade_id(c) for c in nb.cells if is_solution_cell(c) and grade_id(c)]


def test_cells(nb) -> dict[str, float]:
    """Grade id -> points of every autograded test cell, in notebook order."""
    return {grade_id(c): float(nbgrader_meta(c).get("points", 0)) for c in nb.cells if is_test_cell(c)}


def owner_of(test_id: str, solution_ids: list[str]) -> str | None:
    """The exercise a test cell holds: the longest solution id ``s`` with ``test_id`` starting ``test_s``."""
    for sol in sorted(solution_ids, key=len, reverse=True):
        if test_id.startswith(f"test_{sol}"):
            return sol
    return None


def tests_of(nb, exercise: str) -> list[str]:
    """The test cells that hold ``exercise``, in notebook order."""
    sols = exercises(nb)
    return [gid for gid in test_cells(nb) if owner_of(gid, sols) == exercise]


def split_hidden(source: str) -> tuple[list[str], list[str]]:
    """Split a test cell's lines into (visible, hidden); the marker lines belong to neither."""
    visible, hidden, inside = [], [], False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            inside = True
        elif HIDDEN_END in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return visible, hidden


def visible_source(source: str) -> str:
    """A test cell's source as released to students: hidden region removed, lines right-stripped."""
    return "\n".join(line.rstrip() for line in split_hidden(source)[0]).strip()

