"""The notebook that is graded: the lab's own cells, with the student's answers in the answer cells.

Grading does not run the notebook a student handed in. It runs the lab as released, with each
answer cell replaced by the student's answer to that exercise, and with the test cells as the
instructor wrote them (hidden tests included). So:

* cells a student added (or lab cells they edited outside the answer cells) are **not run**, and
  the feedback says how many there were;
* an answer cell that breaks the answer-cell rules (:mod:`attnlab.course.rules`) is not run either:
  the released stub stands in its place, so that exercise scores as unanswered, and the cell shows
  the student's code as comments under a note that names the broken rules.

Nothing here runs student code.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass, field

import nbformat

from . import notebook, rules

__all__ = ["Graded", "graded_notebook", "own_work_names", "kernel_facts"]

RULES_NOTE = ("# This answer was not run at grading: it breaks the rules for answer cells.\n"
              "# It is graded as unanswered. What to change:\n")


@dataclass
class Graded:
    """A notebook ready to grade, and what the student should be told about it."""

    nb: nbformat.NotebookNode
    messages: list[str] = field(default_factory=list)
    broken: dict[str, list[str]] = field(default_factory=dict)  # exercise -> the rules its answer breaks


def _answers(student_nb) -> dict[str, str]:
    """grade id -> the student's source of each answer cell (the first cell with that id)."""
    out: dict[str, str] = {}
    for cell in student_nb.cells:
        if notebook.is_solution_cell(cell) and notebook.grade_id(cell) and notebook.grade_id(cell) not in out:
            out[notebook.grade_id(cell)] = cell.get("source", "")
    return out


def _added_cells(student_nb, lab_sources: set[str]) -> int:
    """Code cells of the student's notebook that are neither nbgrader cells nor the lab's own."""
    return sum(1 for c in student_nb.cells if c.get("cell_type") == "code" and not notebook.nbgrader_meta(c)
               and c.get("source", "").strip() and c.get("source", "").strip() not in lab_sources)


def _not_run(answer: str, stub: str, found: list[rules.Violation]) -> str:
    why = "".join(f"#   {v}\n" for v in found[:10])
    code = "".join(f"# | {line}\n" for line in answer.splitlines())
    return f"{RULES_NOTE}{why}# Your code, as submitted:\n{code}{stub}"


def graded_notebook(released, source, student_nb, *, lab_names=()) -> Graded:
    """The released notebook with the source's test cells and the student's (rule-abiding) answers."""
    nb = copy.deepcopy(released)
    graded = Graded(nb)
    tests = {notebook.grade_id(c): c.source for c in source.cells if notebook.is_test_cell(c)}
    answers = _answers(student_nb)
    for cell in nb.cells:
        gid = notebook.grade_id(cell)
        if notebook.is_test_cell(cell) and gid in tests:
            cell.source = tests[gid]
        elif notebook.is_solution_cell(cell) and answers.get(gid, "").strip():
            answer = answers[gid]
            found = rules.check(answer, lab_names=lab_names) if cell.cell_type == "code" else []
            if found:
                graded.broken[gid] = [str(v) for v in found]
                graded.messages.append(f"{gid}: graded as unanswered, because its answer cell breaks the rules for "
                                       f"answer cells: {rules.describe(found)}")
                cell.source = _not_run(answer, cell.source, found)
            else:
                cell.source = answer
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    lab_sources = {c.source.strip() for c in released.cells if c.cell_type == "code"}
    added = _added_cells(student_nb, lab_sources)
    if added:
        graded.messages.append(f"{added} code cell(s) you added (or lab cells you changed outside the answer cells) "
                               "were not run at grading: only the lab's cells and your answer cells are run")
    return graded


def own_work_names(source: str) -> list[str]:
    """The dotted names listed by every ``G.check_own_work(fn, [...], name)`` call of a test cell."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "check_own_work":
            listed = node.args[1] if len(node.args) > 1 else None
            if isinstance(listed, ast.List):
                names += [e.value for e in listed.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return names


def kernel_facts(released, source) -> dict:
    """What the grading kernel must know of a lab: its own cells, its test cells, and what each
    test cell's exercise may not call (every test cell of an exercise watches for all of it)."""
    lab = {notebook.cell_hash(c.source): notebook.grade_id(c) or f"cell {i}" for i, c in enumerate(released.cells)
           if c.cell_type == "code" and not notebook.is_test_cell(c) and not notebook.is_solution_cell(c)}
    tests = {notebook.cell_hash(c.source): notebook.grade_id(c) for c in source.cells if notebook.is_test_cell(c)}
    solutions = notebook.exercises(source)
    per_exercise: dict[str, set[str]] = {}
    for c in source.cells:
        if notebook.is_test_cell(c):
            owner = notebook.owner_of(notebook.grade_id(c), solutions)
            per_exercise.setdefault(owner, set()).update(own_work_names(c.source))
    forbidden = {gid: sorted(per_exercise.get(notebook.owner_of(gid, solutions), ())) for gid in tests.values()}
    return {"lab": lab, "tests": tests, "forbidden": forbidden}
