"""Proof 5 of the lab harness, for every lab: a real class graded end to end by the judge.

A fresh nbgrader course with a SQLite gradebook and a class: one student with the solution, one with
the untouched released notebook, one with the solution and the first half of the exercises left as
released ("partly"), one with the lab's first mutant, and one with a broken (truncated) file; for the
labs of the honest corpus also one student per honest answer (tests/test_grading_honest.py), and for
labs 3 and 4 the attackers of tests/test_grading_adversarial.py: every test file shares this run. :func:`attnlab.grader.grade.grade_lab` grades the class once (the root sandbox as root,
as CI runs, else the unprivileged one); the scores read back from the gradebook are exactly the
expected ones, the feedback pages carry no hidden test, and grades.csv holds every student.

This also proves "every untouched student notebook, autograded, earns zero points on every exercise".
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nbformat
import pytest
from _shared import shared_run

import _grading_classes as C
from attnlab.course import harness, notebook, release

LABS = release.lab_names(C.ROOT)
MODES = C.modes()
MODE = ("root" if "root" in MODES else "user") if MODES else None
pytestmark = [pytest.mark.slow, pytest.mark.skipif(MODE is None, reason="no sandbox can be built here")]
LIMITS = dict(cell_timeout_s=60, wall_s=300)


def _class_notebooks(lab: str) -> dict:
    from test_grading_honest import honest_students

    released, solution = C.lab_notebooks(lab)
    full = harness.with_answers(released, solution)
    exercises = notebook.exercises(solution)
    first_half = exercises[: len(exercises) // 2 or 1]
    stubs = {notebook.grade_id(c): c.source for c in released.cells if notebook.is_solution_cell(c)}
    partly = C.with_cells(full, {ex: stubs[ex] for ex in exercises if ex not in first_half})
    mutant = harness.load_mutants(lab, C.ROOT)[0]
    mutated = C.with_cells(full, {mutant.exercise: mutant.apply(
        next(c.source for c in full.cells if notebook.grade_id(c) == mutant.exercise))})
    text = nbformat.writes(full)
    return {"solution": full, "blank": released, "partly": partly, "mutant": mutated, "broken": text[: len(text) // 3],
            **honest_students(lab)}


def graded_class(tmp_path_factory, lab: str, mode: str) -> dict:
    """The class of ``lab`` graded in ``mode``, once per test session; the honest corpus and the
    attackers of tests/test_grading_adversarial.py are students of the same class."""
    from test_grading_adversarial import attack_students, limits_of

    def make(shared: Path) -> dict:
        def write(course: Path, port: int) -> None:
            C.write_students(course, lab, {**_class_notebooks(lab), **attack_students(lab, course, port)})
        return C.run_class(shared, lab, mode, write, limits=limits_of(lab) or LIMITS, server=True)
    return shared_run(tmp_path_factory, f"grading-class-{lab}-{mode}", make)


@pytest.fixture(scope="session", params=LABS)
def graded(request, tmp_path_factory):
    return graded_class(tmp_path_factory, request.param, MODE)


def _exercise_scores(result, scores: dict) -> dict[str, float]:
    return {ex: sum(scores.get(g) or 0 for g in gids) for ex, gids in result.exercises.items()}


def test_solution_earns_full_points(graded):
    result = C.load(graded)
    assert C.gradebook(graded)["solution"] == result.max_scores, result.students["solution"].messages


def test_untouched_notebook_earns_zero_on_every_exercise(graded):
    result = C.load(graded)
    scores = C.gradebook(graded)["blank"]
    assert set(scores) == set(result.max_scores)
    assert all(v == 0 for v in scores.values()), scores


def test_partly_answered_notebook_earns_its_answered_exercises(graded):
    result = C.load(graded)
    _, solution = C.lab_notebooks(graded["lab"])
    exercises = notebook.exercises(solution)
    answered = exercises[: len(exercises) // 2 or 1]
    got = _exercise_scores(result, C.gradebook(graded)["partly"])
    expected = {ex: (C.exercise_points(result, ex) if ex in answered else 0.0) for ex in result.exercises}
    assert got == expected, result.students["partly"].messages


def test_mutant_loses_points_on_its_exercise_only(graded):
    result = C.load(graded)
    mutant = harness.load_mutants(graded["lab"], C.ROOT)[0]
    got = _exercise_scores(result, C.gradebook(graded)["mutant"])
    users = _users_of(graded["lab"], mutant.exercise)
    for exercise in result.exercises:
        full = C.exercise_points(result, exercise)
        if exercise == mutant.exercise:
            assert got[exercise] < full, f"mutant {mutant.name} kept all points of {exercise}"
        elif exercise not in users:
            assert got[exercise] == full, f"mutant {mutant.name} lost points on {exercise}: {got[exercise]} of {full}"


def _users_of(lab: str, exercise: str) -> set[str]:
    """Exercises whose answer cell calls a function the answer cell of ``exercise`` defines (a later
    exercise may build on the student's own earlier one: a mistake there may cost points twice)."""
    _, solution = C.lab_notebooks(lab)
    cells = {notebook.grade_id(c): c.source for c in solution.cells if notebook.is_solution_cell(c)}
    defined = set(re.findall(r"^(?:def|class)\s+(\w+)", cells.get(exercise, ""), flags=re.M))
    return {ex for ex, src in cells.items() if ex != exercise
            and any(re.search(rf"\b{re.escape(name)}\b", src) for name in defined)}


def test_broken_file_is_reported_and_scores_zero(graded):
    res = C.load(graded).students["broken"]
    assert res.status == "not gradable" and any("JSON" in m for m in res.messages), res
    assert all(v == 0 for v in C.gradebook(graded)["broken"].values())


def test_feedback_without_hidden_tests_and_grades_csv(graded):
    result = C.load(graded)
    lab = graded["lab"]
    students = sorted(result.students)
    submitted = [p.read_text("utf-8", errors="replace")
                 for p in Path(graded["course"], "submitted").rglob("*.ipynb")]
    hidden = C.hidden_test_lines(lab, submitted)
    assert hidden, f"{lab} has no hidden test line to look for"
    for student in students:
        if result.students[student].status != "graded":  # not gradable, or its grading failed: no page
            continue
        page = C.feedback_page(graded, student)
        withheld = any("feedback withheld" in m for m in result.students[student].messages)
        assert page.exists() or withheld, f"no feedback for {student}: {result.students[student].messages}"
        if withheld:  # the grader found a hidden line in the page and said so instead of sending it
            assert not page.exists(), student
            continue
        text = page.read_text("utf-8")
        assert "BEGIN HIDDEN TESTS" not in text
        leaked = [line for line in hidden if line in text]
        assert not leaked, f"{student}'s feedback shows hidden test lines: {leaked[:3]}"
    with open(result.csv_path, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(students)
    assert float(rows["solution"]["total"]) == sum(result.max_scores.values())
    assert float(rows["blank"]["total"]) == 0
    assert float(rows["broken"]["total"]) == 0
    for student in students:
        assert float(rows[student]["total"]) == sum(result.students[student].scores.values()), student
    assert (result.out_dir / "nbgrader_grades.csv").exists()
    assert result.summary_path.exists()


def test_course_files_unchanged(graded):
    assert graded["before"] == graded["after"]
    assert graded["new_files"] == {"src": [], "solutions": []}


@pytest.mark.browser
def test_feedback_typesets_math_offline(graded):
    """The feedback page of a lab typesets its equations in a real browser with no network: MathJax
    comes inside the page (nbgrader's own page loads it from a CDN)."""
    from test_book import CHROMIUM, Visit, _serve, _typeset

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser-deps`")
    from playwright.sync_api import sync_playwright

    lab = graded["lab"]
    folder = C.feedback_page(graded, "solution").parent
    if "$" not in (folder / f"{lab}.html").read_text("utf-8"):
        pytest.skip(f"{lab}'s notebook has no equation")
    httpd = _serve(folder)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
            visit = Visit(browser, f"http://127.0.0.1:{httpd.server_address[1]}")
            page = visit.open(f"{lab}.html")
            _typeset(page)
            assert page.locator("mjx-container").count() >= 3, "MathJax typeset no equation"
            assert page.locator("mjx-merror").count() == 0
            assert not visit.outside, f"the feedback page asked for outside resources: {visit.outside}"
            assert not visit.errors, visit.errors
            browser.close()
    finally:
        httpd.shutdown()
