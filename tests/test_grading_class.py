"""Proof 5 of the lab harness, for every lab: a real class graded end to end.

A temporary nbgrader course with a SQLite gradebook; four students: one with the solution, one with
the untouched released notebook, one with the lab's first mutant, one with a malformed file. The
course's grading command (per-student sandboxes, ``ATTNLAB_FORCE_PROFILE=smoke``) autogrades them one
at a time; the scores read back through nbgrader's ``Gradebook`` API are exactly the expected ones,
feedback is generated (without hidden tests) and the grades are exported to CSV.

This also proves "every untouched student notebook, autograded, earns zero points on every exercise".
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import nbformat
import pytest

from attnlab.course import grade, harness, release, sandbox

LABS = release.lab_names(Path(__file__).resolve().parents[1])
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sandbox.available()[0], reason=sandbox.available()[1])]


def _nbg(cell) -> dict:
    return cell.metadata.get("nbgrader", {}) or {}


@pytest.fixture(scope="session", params=LABS)  # session: set up once per lab, even when xdist interleaves
def graded(request, tmp_path_factory, root):
    from _shared import shared_run

    lab = request.param
    data = shared_run(tmp_path_factory, f"grading-class-{lab}", lambda shared: _run_class(lab, shared, root))
    mutant = next(m for m in harness.load_mutants(lab, root) if m.name == data["mutant"])
    return {"lab": lab, "course": Path(data["course"]), "result": grade.ClassResult.load(Path(data["result"])),
            "mutant": mutant}


def _run_class(lab: str, shared: Path, root: Path) -> dict:
    course = shared / "course"
    released, solution = harness.new_course(lab, course, root)
    name = f"{lab}.ipynb"
    mutant = harness.load_mutants(lab, root)[0]
    mutated = harness.with_answers(released, solution)
    for cell in mutated.cells:
        if _nbg(cell).get("grade_id") == mutant.exercise:
            cell.source = mutant.apply(cell.source)       # the solution's answer, with the mutant's edit
    subs = {
        "solution": nbformat.writes(harness.with_answers(released, solution)),
        "blank": nbformat.writes(released),
        "mutant": nbformat.writes(mutated),
    }
    for student, text in subs.items():
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        (folder / name).write_text(text, encoding="utf-8")
    broken = course / "submitted" / "malformed" / lab
    broken.mkdir(parents=True)
    (broken / name).write_text(subs["solution"][:1000], encoding="utf-8")
    result = grade.grade_lab(lab, course=course, limits=sandbox.Limits(cell_timeout_s=120, wall_s=480))
    return {"course": str(course), "result": str(result.out_dir / "result.json"), "mutant": mutant.name}


def _scores(g):
    return grade.gradebook_scores(f"sqlite:///{g['course']}/gradebook.db", g["lab"])


def test_solution_earns_full_points(graded):
    result = graded["result"]
    scores = _scores(graded)["solution"]
    assert scores == result.max_scores, (scores, result.students["solution"].messages)


def test_untouched_notebook_earns_zero_on_every_exercise(graded):
    scores = _scores(graded)["blank"]
    assert set(scores) == set(graded["result"].max_scores)
    assert all(v == 0 for v in scores.values()), scores


def test_mutant_loses_points_on_its_exercise_only(graded):
    result = graded["result"]
    scores = _scores(graded)["mutant"]
    mutant = graded["mutant"]
    users = _users_of(graded, mutant.exercise)
    for exercise, gids in result.exercises.items():
        got = sum(scores[g] for g in gids)
        full = sum(result.max_scores[g] for g in gids)
        if exercise == mutant.exercise:
            assert got < full, f"mutant {mutant.name} kept all points of {exercise}"
        elif exercise not in users:
            assert got == full, f"mutant {mutant.name} lost points on {exercise}: {got} of {full}"


def _users_of(graded, exercise: str) -> set[str]:
    """Exercises whose answer cell calls a function the answer cell of ``exercise`` defines.

    A lab may build later exercises on the student's own earlier functions (multi-head attention
    calling the student's scaled dot-product attention): a mistake there may cost points twice.
    """
    lab = graded["lab"]
    nb = nbformat.read(str(graded["course"] / "solutions" / lab / f"{lab}.ipynb"), as_version=4)
    cells = {_nbg(c)["grade_id"]: c.source for c in nb.cells if _nbg(c).get("solution")}
    defined = set(re.findall(r"^(?:def|class)\s+(\w+)", cells.get(exercise, ""), flags=re.M))
    return {ex for ex, src in cells.items() if ex != exercise
            and any(re.search(rf"\b{re.escape(name)}\b", src) for name in defined)}


def test_malformed_file_is_reported_and_scores_zero(graded):
    res = graded["result"].students["malformed"]
    assert res.status == "not gradable" and any("JSON" in m for m in res.messages), res
    assert all(v == 0 for v in _scores(graded)["malformed"].values())


def test_feedback_and_export(graded):
    course, lab, result = graded["course"], graded["lab"], graded["result"]
    for student in ("solution", "blank", "mutant"):
        html = course / "feedback" / student / lab / f"{lab}.html"
        assert html.exists(), f"no feedback for {student}: {result.students[student].messages}"
        text = html.read_text("utf-8")
        assert "BEGIN HIDDEN TESTS" not in text
    with open(result.csv_path, newline="") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"solution", "blank", "mutant", "malformed"}
    assert float(rows["solution"]["total"]) == sum(result.max_scores.values())
    assert float(rows["blank"]["total"]) == 0
    assert (result.out_dir / "nbgrader_grades.csv").exists()
    assert result.summary_path.exists() and result.plot_path is not None


@pytest.mark.browser
def test_feedback_typesets_math_offline(graded):
    """The feedback page of a lab typesets its equations in a real browser with no network: MathJax
    comes inside the page (nbgrader's own page loads it from a CDN)."""
    from test_book import CHROMIUM, Visit, _serve, _typeset

    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser-deps`")
    from playwright.sync_api import sync_playwright

    lab = graded["lab"]
    folder = graded["course"] / "feedback" / "solution" / lab
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
