"""The lab harness: discovered for every ``solutions/lab*/``, so later labs are held too.

1. the released lab is byte-identical to what ``nbgrader generate_assignment`` makes of its solution;
2. the solution, executed by papermill in the ``smoke`` profile, passes every test cell (its run
   time is reported at the end of the session);
3. the lab follows the anatomy of CONTRIBUTING.md (parameters cell, setup, exercises with visible
   and hidden tests, only notebooks in the solution folder);
4. every mutant, graded by the judge as a student is (:mod:`attnlab.grader.judge`), loses points
   on its own exercise (and on no other), already on a visible test; every exercise has at least two
   mutants, each an edit of the solution that still applies; and the judge's verdicts are a real
   kernel's;
5. each lab's introduction lists exactly what each exercise's tests forbid its answer to call.

(The untouched student notebook earning zero, and a real class graded through nbgrader's
gradebook, are proved in ``test_grading_class.py``.)
"""

from __future__ import annotations

import difflib
import json
import re
import time
from pathlib import Path

import pytest

from attnlab.course import harness, release

ROOT = Path(__file__).resolve().parents[1]
LABS = release.lab_names(ROOT)
MUTANTS = [(lab, m) for lab in LABS for m in harness.load_mutants(lab, ROOT)]
TIMES = Path(__file__).resolve().parents[1] / "build" / "reports" / "smoke_times"


def test_there_are_labs():
    assert "lab03_transformer" in LABS, LABS


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_release_is_in_sync_with_solution(lab, tmp_path, root):
    generated = release.generate(lab, tmp_path, root=root)
    committed = root / "labs" / lab
    gen_files = sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file())
    com_files = sorted(p.relative_to(committed) for p in committed.rglob("*") if p.is_file()) if committed.exists() else []
    assert gen_files == com_files, f"labs/{lab} holds {com_files}, nbgrader makes {gen_files}: run `make release`"
    for rel in gen_files:
        new, old = (generated / rel).read_text(encoding="utf-8"), (committed / rel).read_text(encoding="utf-8")
        if new != old:
            diff = "".join(list(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "committed", "generated"))[:40])
            pytest.fail(f"labs/{lab}/{rel} is out of date with solutions/: run `make release`\n{diff}")


@pytest.mark.parametrize("lab", LABS)
def test_lab_anatomy(lab, root):
    folder = root / "solutions" / lab
    others = [p.name for p in folder.iterdir() if p.suffix != ".ipynb"]
    assert not others, f"solutions/{lab} may hold only notebooks (nbgrader copies every file to students): {others}"
    nb = harness.read(harness.solution_path(lab, ROOT))
    first = nb.cells[0]
    assert first.cell_type == "code" and "parameters" in first.metadata.get("tags", []), "the first cell must be tagged 'parameters'"
    assert "profile" in first.source and "seed" in first.source, "the parameters cell must define profile and seed"
    exercises = harness.exercises(nb)
    assert exercises, "a lab needs at least one exercise (a solution cell)"
    tests = harness.test_cells(nb)
    for ex in exercises:
        mine = harness.tests_of(nb, ex)
        assert mine, f"exercise {ex} has no test cell (ids must start with 'test_{ex}')"
        sources = [c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in mine]
        assert any("### BEGIN HIDDEN TESTS" in s for s in sources), f"exercise {ex} has no hidden tests"
        visible = [re.sub(r"### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", s, flags=re.S) for s in sources]
        assert any(re.search(r"\bG\.check_\w+\(|\bassert\b", v) for v in visible), \
            f"exercise {ex} has no visible test: students would meet only hidden ones"
        assert all(tests[t] > 0 for t in mine), f"every test cell of {ex} must carry points"
        solution = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == ex)
        assert "### BEGIN SOLUTION" in solution.source, f"solution cell {ex} has no solution region"
    orphans = [t for t in tests if not any(t.startswith(f"test_{ex}") for ex in exercises)]
    assert not orphans, f"test cells that belong to no exercise: {orphans}"
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids)), "grade ids must be unique"


@pytest.mark.slow
@pytest.mark.parametrize("lab", LABS)
def test_solution_passes_every_test_cell_in_smoke_profile(lab, tmp_path, root):
    import papermill as pm

    start = time.perf_counter()
    out = tmp_path / f"{lab}.ipynb"
    # papermill raises PapermillExecutionError (with the traceback) if any cell fails
    pm.execute_notebook(str(harness.solution_path(lab, ROOT)), str(out), parameters={"profile": "smoke"},
                        cwd=str(tmp_path), progress_bar=False, kernel_name="python3")
    seconds = time.perf_counter() - start
    nb = harness.read(out)
    scores = harness.cell_scores(nb)
    assert scores == harness.test_cells(nb), "every test cell of the solution must earn its points"
    TIMES.mkdir(parents=True, exist_ok=True)
    (TIMES / f"{lab}.json").write_text(json.dumps(round(seconds, 1)))


@pytest.mark.parametrize("lab", LABS)
def test_every_exercise_has_two_mutants(lab):
    nb = harness.read(harness.solution_path(lab, ROOT))
    mutants = harness.load_mutants(lab, ROOT)
    for ex in harness.exercises(nb):
        names = [m.name for m in mutants if m.exercise == ex]
        assert len(names) >= 2, f"{lab}: exercise {ex} has {len(names)} mutant(s) in tests/mutants/{lab}.yml; at least 2 needed"
    unknown = {m.exercise for m in mutants} - set(harness.exercises(nb))
    assert not unknown, f"mutants for exercises that do not exist: {unknown}"


class _Judges:
    """One judge per lab and test worker, with a warm server of plain (unsandboxed) boxes: the
    mutants are graded exactly as students are (the judge runs the test cells, the box the answers),
    without building a sandbox per mutant."""

    def __init__(self):
        self.boxes, self.plans = {}, {}

    def get(self, lab: str):
        if lab not in self.boxes:
            from attnlab.grader import boxes, judge, sandbox, stubs

            source = harness.read(harness.solution_path(lab, ROOT))
            released = harness.read(ROOT / "labs" / lab / f"{lab}.ipynb")
            plan = judge.plan_lab(lab, source, released)
            self.boxes[lab] = boxes.Boxes(package=ROOT / "src" / "attnlab", graded=stubs.graded_names(plan.solutions),
                                          mode="plain", limits=sandbox.Limits(cell_timeout_s=60))
            self.plans[lab] = plan
        return self.plans[lab], self.boxes[lab]

    def judge(self, lab: str, answers: dict, tests=None):
        from dataclasses import replace

        from attnlab.grader import judge

        plan, bx = self.get(lab)
        if tests is not None:
            plan = replace(plan, tests=tests)
        channels = []

        def connect():
            channels.append(bx.connect())
            return channels[-1]

        try:
            return judge.judge(plan, answers, connect)
        finally:
            for c in channels:
                bx.close_box(c)

    def close(self):
        for bx in self.boxes.values():
            bx.close()


@pytest.fixture(scope="session")
def judges():
    j = _Judges()
    yield j
    j.close()


def _mutated_answers(lab: str, mutant) -> dict:
    nb = harness.read(harness.solution_path(lab, ROOT))
    answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if harness.notebook.is_solution_cell(c)}
    answers[mutant.exercise] = mutant.apply(answers[mutant.exercise])
    return answers


@pytest.mark.slow
def test_the_judge_scores_like_a_kernel(tmp_path, judges):
    """The judge (test cells in its own process, the answers in a box) gives the verdicts a real
    kernel running the whole notebook gives, on a lab with a mutant in it."""
    lab = "lab03_transformer"
    nb = harness.read(harness.solution_path(lab, ROOT))
    mutant = next(m for m in harness.load_mutants(lab, ROOT) if m.exercise == harness.exercises(nb)[1])
    mutated = harness.substitute(nb, mutant, truncate=False)
    kernel = harness.cell_scores(harness.execute(mutated, cwd=tmp_path)[0])
    judged = judges.judge(lab, _mutated_answers(lab, mutant)).scores
    assert judged == kernel and 0 < sum(judged.values()) < sum(harness.test_cells(nb).values())


@pytest.mark.parametrize("lab", LABS)
def test_every_mutant_is_an_edit_that_applies(lab):
    """Each mutant's edit matches its solution cell exactly once and changes it; a whole-cell
    mutant says why it cannot be an edit."""
    nb = harness.read(harness.solution_path(lab, ROOT))
    for mutant in harness.load_mutants(lab, ROOT):
        if mutant.source is not None:
            assert mutant.because, f"{mutant.id}: a whole-cell mutant must say why it is not an edit"
        solution = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == mutant.exercise)
        assert mutant.apply(solution) != solution, f"{mutant.id}: the mutant does not change the solution"


def test_a_stale_edit_fails_loudly():
    """A solution that changed under a mutant's edit makes the suite fail, not pass silently."""
    lab = LABS[0]
    nb = harness.read(harness.solution_path(lab, ROOT))
    exercise = harness.exercises(nb)[0]
    stale = harness.Mutant.edit(exercise, "stale", "describes code that is gone",
                                replace=[("this text is not in any solution cell", "x")])
    with pytest.raises(harness.MutantDoesNotApply, match="occurs 0 times"):
        harness.substitute(nb, stale)
    twice = harness.Mutant.edit(exercise, "ambiguous", "an edit that matches twice", replace=[("\n", "\n ")])
    with pytest.raises(harness.MutantDoesNotApply, match="exactly once"):
        harness.substitute(nb, twice)
    with pytest.raises(ValueError, match="say why"):
        harness.Mutant.rewrite(exercise, "whole", "a different program", source="pass", because=" ")


@pytest.mark.slow
@pytest.mark.parametrize("lab,mutant", MUTANTS, ids=[f"{lab}-{m.exercise}-{m.name}" for lab, m in MUTANTS])
def test_mutant_loses_points(lab, mutant, judges):
    """Graded by the judge as a student is, each mutant loses points on its exercise, on no other,
    and already on a *visible* test: a student sees the common mistakes before grading (a released
    copy of each of its test cells is judged first)."""
    from dataclasses import replace

    plan, _ = judges.get(lab)
    mine = [c.grade_id for c in plan.tests if c.exercise == mutant.exercise]
    last = max(i for i, c in enumerate(plan.tests) if c.grade_id in mine)
    tests = []
    for case in plan.tests[: last + 1]:
        if case.grade_id in mine:  # the test cell as released (hidden tests removed), then the full one
            tests.append(replace(case, grade_id=f"visible:{case.grade_id}",
                                 source=harness.notebook.visible_source(case.source)))
        tests.append(case)
    verdict = judges.judge(lab, _mutated_answers(lab, mutant), tests)
    points = {c.grade_id: c.points for c in plan.tests}
    lost = sum(points[t] - verdict.scores[t] for t in mine)
    passed = [t for t in mine if verdict.scores[t] > 0]
    assert lost > 0, (f"mutant {mutant.name!r} ({mutant.why}) earned full points on {passed}: "
                      "the tests of this exercise cannot tell it from a right answer")
    visible_failed = [t for t in verdict.errors if t.startswith("visible:")]
    assert visible_failed, (f"mutant {mutant.name!r} ({mutant.why}) passes every visible test of {mutant.exercise}: "
                            "only hidden tests catch this common mistake; add a visible test that can tell it apart")
    # tests of the other exercises still pass: the mutant is wrong, not the harness
    earlier = {t: e for t, e in verdict.errors.items() if not t.startswith("visible:") and t not in mine}
    assert not earlier, f"tests of other exercises failed too: {earlier}"


def _resolve(dotted: str):
    """The object a dotted name names (the longest importable module prefix, then attributes)."""
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ValueError(f"cannot resolve {dotted!r}")


GRADING_FACTS = {
    "cells you add are not run": "cells a student adds are not run at grading",
    "graded on its results alone": "any Python the student writes is graded on its results alone",
    "does not exist at grading": "the course's own version of an exercise is not available at grading",
    "in place": "the student must not modify the tensors or modules given in place",
    "separate judge": "the test cells, hidden tests included, run in a separate judge",
    "runs to its end": "a test cell earns its points when it runs to its end",
}


@pytest.mark.parametrize("lab", LABS)
def test_the_introduction_states_how_the_lab_is_graded(lab):
    """The student reads how grading works before meeting it in a grade: cells they add are not run,
    answers are graded on their results alone, the course's own version of an exercise does not exist
    at grading (the example named is one the sandbox stubs), inputs must not be modified in place; the
    library routes an exercise asks not to use exist; and no test cell calls the removed own-work check."""
    from attnlab.grader import stubs

    nb = harness.read(harness.solution_path(lab, ROOT))
    intro = next(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "intro")
    flat = " ".join(intro.split())
    for phrase, fact in GRADING_FACTS.items():
        assert phrase in flat, f"{lab}: the introduction must say that {fact} ({phrase!r})"
    graded = stubs.graded_names({c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
                                 if c.metadata.get("nbgrader", {}).get("solution")})
    example = re.search(r"The course's own version of what an exercise asks for \(`(attnlab\.[\w.]+)`", flat)
    assert example, f"{lab}: the introduction must name an example of the course's own version"
    assert example.group(1).rsplit(".", 1)[1] in graded and callable(_resolve(example.group(1))), \
        f"{lab}: {example.group(1)} must exist in attnlab and be stubbed at grading (defined by an answer cell)"
    for names in re.findall(r"^- Exercise \d+ \([^)]*\): (.*)$", intro, flags=re.M):
        for name in re.findall(r"`([A-Za-z_][\w.]*)`", names):
            _resolve(name)  # raises if a library route the introduction names does not exist
    for cell in nb.cells:
        assert "check_own_work" not in cell.source, f"{lab}: a cell still calls G.check_own_work, which was removed"
