"""The grade is unforgeable (issue 22, item 6): every attack of tests/attacks.py, in both sandboxes.

Each attack is a student of an otherwise unanswered notebook of a real lab (3 or 4); it must score
exactly what the untouched notebook scores, zero, in the root sandbox and in the unprivileged one.
The attackers sit in the same class as honest students (tests/test_grading_class.py grades it once
per mode; the honest corpus shares it), and for the class: the gradebook holds the right rows, the
course files' SHA-256 are unchanged, nothing is written under this checkout's ``src/`` or
``solutions/`` or the host's /tmp, no connection reaches a server on the grading machine, no hidden
test line reaches a feedback page or an autograded notebook, every autograded notebook stays under
1 MB, and a student who hangs or floods costs at most the per-student time limit.

A malformed submission (not JSON, not a notebook, test cells deleted, a test cell duplicated) is
reported and graded as what it is, and does not stop the others.

The table of attacks and scores is printed and saved to build/reports/adversarial.txt.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from attacks import ATTACKS, source

import _grading_classes as C
from attnlab.course import notebook

MODES = C.modes()
LABS = sorted({a.lab for a in ATTACKS.values()})
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not MODES, reason="no sandbox can be built here")]
# small limits, so that the attackers who hang cost little; the lab's own tests need far less
LIMITS = dict(cell_timeout_s=6, wall_s=25, memory=2 * 1024**3)
MARKER = "attnlab-escape-probe"
MALFORMED = {  # student -> (what it is, the score it must get: None = the lab's full marks)
    "malformed-not-json": ("half a notebook file", 0.0),
    "malformed-not-a-notebook": ("JSON that is not a notebook", 0.0),
    "malformed-test-cells-deleted": ("the solution with its test cells deleted", None),
    "malformed-test-cell-duplicated": ("the solution with a test cell twice", None),
}


def limits_of(lab: str) -> dict | None:
    return LIMITS if lab in LABS else None


def attack_students(lab: str, course: Path, port: int) -> dict:
    """student -> notebook: every attack on ``lab``, and the malformed files (lab 3)."""
    released, _ = C.lab_notebooks(lab)
    values = dict(course=course, lab=lab, port=port, marker=MARKER, root=C.ROOT)
    out = {f"attack-{name}": C.with_cells(released, {gid: source(a, gid, **values) for gid in a.cells})
           for name, a in ATTACKS.items() if a.lab == lab}
    if lab == LABS[0]:
        full = C.solved(lab)
        text = nbformat.writes(full)
        deleted = nbformat.from_dict(json.loads(text))
        deleted.cells = [c for c in deleted.cells if not notebook.is_test_cell(c)]
        duplicated = nbformat.from_dict(json.loads(text))
        first_test = next(i for i, c in enumerate(duplicated.cells) if notebook.is_test_cell(c))
        duplicated.cells.insert(first_test + 1, nbformat.from_dict(json.loads(json.dumps(duplicated.cells[first_test]))))
        out.update({"malformed-not-json": text[: len(text) // 2], "malformed-not-a-notebook": '{"cells": 3, "nbformat": "x"}',
                    "malformed-test-cells-deleted": deleted, "malformed-test-cell-duplicated": duplicated})
    return out


@pytest.fixture(scope="session", params=C.runs(LABS), ids=lambda p: f"{p[0]}-{p[1]}")
def graded(request, tmp_path_factory):
    from test_grading_class import graded_class

    lab, mode = request.param
    return graded_class(tmp_path_factory, lab, mode)


def _attackers(data) -> list[str]:
    return sorted(s for s in C.load(data).students if s.startswith("attack-"))


def test_every_kind_of_the_issue_is_here():
    kinds = {a.kind for a in ATTACKS.values()}
    assert kinds >= {"tests sharing inputs", "module dictionaries rewritten", "the course's own reference",
                     "reading hidden tests", "writing outside the sandbox", "the network", "a fork bomb",
                     "an infinite loop", "a memory bomb", "an output flood", "forging the protocol",
                     "returning objects that pretend"}, kinds
    assert {a.lab for a in ATTACKS.values() if a.kind == "tests sharing inputs"} == {"lab03_transformer", "lab04_vit"}


def test_each_attack_scores_what_an_unanswered_notebook_scores(graded):
    result = C.load(graded)
    db = C.gradebook(graded)
    blank = sum(result.students["blank"].scores.values())
    assert blank == 0
    attackers = _attackers(graded)
    assert len(attackers) == sum(1 for a in ATTACKS.values() if a.lab == graded["lab"])
    above = {}
    for student in attackers:
        got = sum(result.students[student].scores.values())
        assert sum(v or 0 for v in db[student].values()) == got, student
        if got != blank:
            above[student] = {g: v for g, v in result.students[student].scores.items() if v}
    assert not above, f"{graded['mode']} sandbox, {graded['lab']}: attacks scored above an unanswered notebook: {above}"


def test_honest_students_of_the_same_class_score_as_expected(graded):
    result = C.load(graded)
    full = sum(result.max_scores.values())
    assert result.students["solution"].scores == result.max_scores, result.students["solution"].messages
    for student in (s for s in result.students if s.startswith("honest-")):
        assert sum(result.students[student].scores.values()) == full, result.students[student]


def test_the_gradebook_has_the_right_rows(graded):
    from nbgrader.api import Gradebook

    result = C.load(graded)
    with Gradebook(f"sqlite:///{graded['course']}/gradebook.db", course_id="attnlab") as gb:
        assert {s.id for s in gb.students} == set(result.students)
        for student in result.students:
            sub = gb.find_submission(graded["lab"], student)
            total = 0.0
            for nb in sub.notebooks:
                for g in nb.grades:
                    if g.cell_type == "code":
                        assert g.auto_score is not None and 0 <= g.auto_score <= g.max_score, (student, g.name)
                        total += g.auto_score
            assert total == sum(result.students[student].scores.values()), student


def test_nothing_outside_the_sandbox_was_written_or_reached(graded):
    assert graded["before"] == graded["after"], "course files changed"
    assert graded["new_files"] == {"src": [], "solutions": []}
    assert not [p for p in graded["new_tmp"] if MARKER in p], graded["new_tmp"]
    assert graded["hits"] == [], f"a submission reached a server on the grading machine: {graded['hits']}"
    if graded["lab"] == LABS[0]:
        out = _outputs(graded, "attack-writes_outside")
        wrote = [line for line in out.splitlines() if line.startswith("PROBE wrote")]
        assert wrote == [f"PROBE wrote /tmp/{MARKER}"], wrote  # the sandbox's own /tmp, gone with it
        assert out.count("PROBE blocked") == 10, out[:3000]
        out = _outputs(graded, "attack-network")
        assert "PROBE connected" not in out and out.count("PROBE blocked") == 3, out[:3000]


def _outputs(data, student: str) -> str:
    nb = nbformat.read(str(C.autograded(data, student)), as_version=4)
    return "\n".join(o.get("text", "") + o.get("evalue", "") for c in nb.cells for o in c.get("outputs", []))


def test_the_reference_is_a_stub_wherever_it_is_reached(graded):
    lab = graded["lab"]
    for student in (s for s in _attackers(graded) if ATTACKS[s.removeprefix("attack-")].kind == "the course's own reference"):
        out = _outputs(graded, student)
        probes = [line for line in out.splitlines() if line.startswith("PROBE")]
        for line in probes:
            assert "blocked" in line or "failed" in line or "NotImplementedError" in out, (student, line)
        if "PROBE read" in out:
            assert all(line.endswith("True") for line in probes if line.startswith("PROBE read")), (student, probes)
    if lab == LABS[0]:
        assert "raise NotImplementedError" in _outputs(graded, "attack-reference_imported")


def test_no_hidden_test_line_reaches_a_student(graded):
    result = C.load(graded)
    submitted = [p.read_text("utf-8", errors="replace") for p in Path(graded["course"], "submitted").rglob("*.ipynb")]
    hidden = C.hidden_test_lines(graded["lab"], submitted)
    assert len(hidden) >= 10
    for student in result.students:
        # the autograded notebook is the instructor's copy (its test cells hold the hidden tests, as
        # nbgrader's do): what the student's code printed or raised there must hold none
        texts = {"feedback": C.feedback_page(graded, student), "outputs": C.autograded(graded, student)}
        for what, path in texts.items():
            if path.exists():
                text = path.read_text("utf-8") if what == "feedback" else _outputs(graded, student)
                leaked = [line for line in hidden if line in text]
                assert not leaked, f"{student}'s {what}: {leaked[:3]}"
                assert what == "outputs" or "### BEGIN HIDDEN TESTS" not in text, student
    if graded["lab"] == LABS[0]:
        assert "PROBE found" in _outputs(graded, "attack-reads_hidden_tests")  # the search ran


def test_outputs_are_capped(graded):
    for student in C.load(graded).students:
        path = C.autograded(graded, student)
        if path.exists():
            assert path.stat().st_size < 1_000_000, f"{student}: {path.stat().st_size} bytes"
    # the grading processes (workers, their judges and servers) held no flood: the largest of them
    # stayed below one sandbox's memory limit (the flood itself is 250 MB, the limit 2 GiB)
    assert graded["maxrss_kib"] * 1024 < LIMITS["memory"], graded["maxrss_kib"]


def test_who_hangs_or_floods_loses_only_their_own_points_and_time(graded):
    result = C.load(graded)
    limits = graded["limits"]
    if graded["lab"] != LABS[0]:
        pytest.skip("the attackers who hang are in lab 3's class")
    # the per-student limit: the wall clock, plus one request in flight when it passes (the set-up
    # request waits twice the cell limit)
    bound = limits["wall_s"] + 2 * limits["cell_timeout_s"]
    hangers = [f"attack-{n}" for n, a in ATTACKS.items() if a.hangs and a.lab == graded["lab"]]
    slow = {s: round(result.students[s].seconds, 1) for s in hangers if result.students[s].seconds > bound}
    assert not slow, f"over the per-student limit of {bound} s: {slow}"
    for student in result.students:
        if student not in hangers and student.startswith(("honest-", "solution")):
            assert result.students[student].scores == result.max_scores, student


def test_malformed_files_are_reported_and_graded_as_what_they_are(graded):
    if graded["lab"] != LABS[0]:
        pytest.skip("the malformed files are in lab 3's class")
    result = C.load(graded)
    full = sum(result.max_scores.values())
    for student, (what, expected) in MALFORMED.items():
        got = sum(result.students[student].scores.values())
        assert got == (full if expected is None else expected), (student, what, result.students[student])
        assert result.students[student].messages, f"{student} ({what}) is not reported"
    assert any("JSON" in m for m in result.students["malformed-not-json"].messages)
    assert any("deleted" in m for m in result.students["malformed-test-cells-deleted"].messages)
    assert any("more than once" in m for m in result.students["malformed-test-cell-duplicated"].messages)


def test_the_table(tmp_path_factory):
    """The table (attack, root score, user score) for the closing note: printed and saved."""
    from test_grading_class import graded_class

    runs = {(lab, mode): C.load(graded_class(tmp_path_factory, lab, mode)) for lab, mode in C.runs(LABS)}
    rows = []
    for name, a in ATTACKS.items():
        rows.append((name, a.kind, [_score(runs[a.lab, mode], f"attack-{name}") if (a.lab, mode) in runs else "-"
                                    for mode in MODES]))
    for student, (what, _) in MALFORMED.items():
        rows.append((student, what, [_score(runs[LABS[0], mode], student) for mode in MODES]))
    lines = [f"{'attack':42s} {'kind':34s} " + " ".join(f"{m:>7s}" for m in MODES)]
    lines += [f"{name:42s} {kind:34s} " + " ".join(f"{v:>7s}" for v in scores) for name, kind, scores in rows]
    text = "\n".join(lines) + "\n"
    out = C.ROOT / "build" / "reports" / "adversarial.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print("\n" + text)
    assert len(rows) == len(ATTACKS) + len(MALFORMED)


def _score(result, student: str) -> str:
    return f"{sum(result.students[student].scores.values()):g}/{sum(result.max_scores.values()):g}"
