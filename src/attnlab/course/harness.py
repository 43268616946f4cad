"""The lab harness: what the test suite proves for every lab, as plain functions.

A lab is ``solutions/<lab>/<lab>.ipynb`` with nbgrader markup: solution cells with a ``grade_id``
such as ``ex1_sdpa``, and autograded test cells whose ids start with ``test_`` + that id. This
module reads that structure, substitutes mutants (plausible wrong answers) into solution cells,
executes notebooks in the ``smoke`` profile and scores test cells the way nbgrader does (a test
cell earns its points when it runs without an error).
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from . import notebook
from .notebook import environment, lab_names

__all__ = [
    "Mutant",
    "MutantDoesNotApply",
    "lab_names",
    "solution_path",
    "load_mutants",
    "exercises",
    "test_cells",
    "substitute",
    "with_answers",
    "new_course",
    "execute",
    "cell_scores",
    "environment",
    "error_of",
    "read",
]


class MutantDoesNotApply(ValueError):
    """A mutant's edit no longer matches its solution cell (the solution changed under it)."""


@dataclass(frozen=True)
class Mutant:
    """A plausible wrong answer to one exercise, written as an **edit of the solution cell**.

    Build one with :meth:`Mutant.edit` (the usual case: each ``(old, new)`` pair replaces text
    that must occur exactly once in the solution cell, so a mutant says precisely which mistake it
    makes and fails loudly when the solution changes under it) or :meth:`Mutant.rewrite` (the
    whole cell, only where the mistake is a different program; ``because`` says why).
    """

    exercise: str
    name: str
    why: str
    replace: tuple[tuple[str, str], ...] = ()
    source: str | None = None
    because: str | None = None

    @classmethod
    def edit(cls, exercise: str, name: str, why: str, *, replace: list[tuple[str, str]]) -> "Mutant":
        """The solution cell of ``exercise`` with each ``old`` (occurring exactly once) replaced by ``new``."""
        if not replace:
            raise ValueError(f"mutant {exercise}:{name}: an edit needs at least one (old, new) pair")
        return cls(exercise, name, why, replace=tuple((old, new) for old, new in replace))

    @classmethod
    def rewrite(cls, exercise: str, name: str, why: str, *, source: str, because: str) -> "Mutant":
        """A whole-cell mutant; ``because`` says why it cannot be an edit of the solution."""
        if not because.strip():
            raise ValueError(f"mutant {exercise}:{name}: say why it cannot be an edit")
        return cls(exercise, name, why, source=source, because=because)

    @property
    def id(self) -> str:
        return f"{self.exercise}:{self.name}"

    def apply(self, solution: str) -> str:
        """The mutated source of a solution cell whose source is ``solution``."""
        if self.source is not None:
            return self.source.strip("\n")
        for old, new in self.replace:
            count = solution.count(old)
            if count != 1:
                raise MutantDoesNotApply(
                    f"mutant {self.id}: the text to replace occurs {count} times in the solution cell "
                    f"(exactly once needed); update tests/mutants/<lab>.yml to the solution:\n{old}")
            solution = solution.replace(old, new)
        return solution


def solution_path(lab: str, root: Path) -> Path:
    return notebook.solution_path(lab, root)


def load_mutants(lab: str, root: Path) -> list[Mutant]:
    """The mutants of ``tests/mutants/<lab>.yml`` (none if the file is missing).

    The file maps each exercise's grade id to a list of mutants; a mutant has ``name``, ``why`` and
    either ``replace`` (a list of ``{old, new}`` edits) or ``source`` with ``because`` (a whole cell).
    Mutants are data, not code: YAML keeps them free of boilerplate.
    """
    import yaml

    path = Path(root) / "tests" / "mutants" / f"{lab}.yml"
    if not path.exists():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    mutants = []
    for exercise, entries in data.items():
        for entry in entries:
            unknown = set(entry) - {"name", "why", "replace", "source", "because"}
            if unknown:
                raise ValueError(f"{path.name}: mutant {exercise}:{entry.get('name')} has unknown keys {sorted(unknown)}")
            if "source" in entry:
                mutants.append(Mutant.rewrite(exercise, entry["name"], entry["why"], source=entry["source"],
                                              because=entry.get("because", "")))
            else:
                pairs = [(edit["old"], edit["new"]) for edit in entry.get("replace") or []]
                mutants.append(Mutant.edit(exercise, entry["name"], entry["why"], replace=pairs))
    return mutants


exercises = notebook.exercises
test_cells = notebook.test_cells
tests_of = notebook.tests_of
read = notebook.read


def substitute(nb, mutant: Mutant, *, truncate: bool = True):
    """A copy of ``nb`` with the mutant's source in its exercise's solution cell.

    With ``truncate``, cells after the exercise's last test cell are dropped (they cannot change
    its score and would only cost time).
    """
    nb = copy.deepcopy(nb)
    ids = [notebook.grade_id(c) for c in nb.cells]
    if mutant.exercise not in ids:
        raise KeyError(f"mutant {mutant.id}: no solution cell {mutant.exercise!r}")
    cell = nb.cells[ids.index(mutant.exercise)]
    cell.source = mutant.apply(cell.source)
    if truncate:
        last = max(ids.index(t) for t in tests_of(nb, mutant.exercise))
        nb.cells = nb.cells[: last + 1]
    return nb


def with_answers(released, solution):
    """A copy of the released notebook with every solution cell answered as in the instructor's
    notebook: what a student who solved everything hands in."""
    nb = copy.deepcopy(released)
    answers = {notebook.grade_id(c): c.source for c in solution.cells if notebook.is_solution_cell(c)}
    for cell in nb.cells:
        if notebook.grade_id(cell) in answers:
            cell.source = answers[notebook.grade_id(cell)]
    return nb


def new_course(lab: str, course: Path, root: Path):
    """A fresh course folder at ``course`` holding ``lab`` as an instructor sets it up (nbgrader's
    configuration, the solution, the released lab); returns ``(released, solution)`` notebooks."""
    from attnlab.course import release

    course.mkdir(parents=True)
    shutil.copy(root / "nbgrader_config.py", course / "nbgrader_config.py")
    shutil.copytree(root / "solutions" / lab, course / "solutions" / lab)
    released_dir = release.generate(lab, course / "labs", root=course)
    name = f"{lab}.ipynb"
    return (nbformat.read(str(released_dir / name), as_version=4),
            nbformat.read(str(course / "solutions" / lab / name), as_version=4))


def execute(nb, *, cwd: Path, profile: str = "smoke", timeout: int = 300, allow_errors: bool = True):
    """Execute ``nb`` in a fresh kernel with the profile forced; return (executed nb, seconds)."""
    nb = copy.deepcopy(nb)
    with environment(ATTNLAB_FORCE_PROFILE=profile, ATTNLAB_PROGRESS="off"):
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": str(cwd)}}).execute()
        return nb, time.perf_counter() - start


def cell_scores(nb) -> dict[str, float]:
    """Points earned by each test cell of an executed notebook (all or nothing, as nbgrader)."""
    scores = {}
    for c in nb.cells:
        if notebook.is_test_cell(c):
            failed = any(o.get("output_type") == "error" for o in c.get("outputs", []))
            scores[notebook.grade_id(c)] = 0.0 if failed else float(notebook.nbgrader_meta(c).get("points", 0))
    return scores


def error_of(nb, grade_id: str) -> str:
    """The error a test cell raised ('' if none): for messages."""
    for c in nb.cells:
        if notebook.grade_id(c) == grade_id:
            for o in c.get("outputs", []):
                if o.get("output_type") == "error":
                    return f"{o.get('ename')}: {o.get('evalue')}"
    return ""

