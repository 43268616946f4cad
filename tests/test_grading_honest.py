"""Honest answers are never penalised (issue 22, item 4): the corpus of tests/honest_answers.py.

For each lab of the corpus, one class: a student per honest answer, who answers every other exercise
with the course's solution, next to a student with the whole solution (the class's reference, shared
with tests/test_grading_class.py). The class is graded once in the root sandbox and once in the
unprivileged one, and every honest student must earn the lab's full marks in both.
"""

from __future__ import annotations

import pytest
from _grading_classes import modes
from honest_answers import HONEST

import _grading_classes as C

LABS = sorted({lab for lab, _, _ in HONEST.values()})
MODES = modes()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not MODES, reason="no sandbox can be built here")]


def honest_students(lab: str) -> dict:
    """student id -> notebook: the solution with one exercise answered by an honest variant."""
    return {f"honest-{name}": C.with_cells(C.solved(lab), {exercise: source})
            for name, (l, exercise, source) in HONEST.items() if l == lab}


@pytest.fixture(scope="session", params=C.runs(LABS),
                ids=lambda p: f"{p[0]}-{p[1]}")
def honest_class(request, tmp_path_factory):
    from test_grading_class import graded_class

    lab, mode = request.param
    return graded_class(tmp_path_factory, lab, mode)


def test_the_corpus_is_large_and_spread():
    assert len(HONEST) >= 30, len(HONEST)
    assert {"lab00_cnn", "lab03_transformer", "lab04_vit", "lab06_swin", "lab07_self_supervision"} <= set(LABS)
    issue_styles = ["self._last_weights", "def _moments(input)", "getattr(F, activation)", "nn.Module.__init__(self)",
                    "from __future__ import annotations", "display(", "plt.imshow(", "G.check_shape(",
                    "@torch.no_grad()", "import scipy.signal", "import scipy.stats", "from torchvision.transforms import v2"]
    sources = [source for _, _, source in HONEST.values()]
    for style in issue_styles:
        assert any(style in s for s in sources), f"the corpus lost the style {style!r}"


def test_every_honest_answer_earns_full_marks(honest_class):
    result = C.load(honest_class)
    full = sum(result.max_scores.values())
    db = C.gradebook(honest_class)
    students = [s for s in result.students if s.startswith("honest-")]
    assert len(students) == sum(1 for lab, _, _ in HONEST.values() if lab == honest_class["lab"])
    below = {}
    for student in students:
        got = sum(result.students[student].scores.values())
        assert sum(v or 0 for v in db[student].values()) == got, student
        if got != full:
            lost = [g for g, v in result.students[student].scores.items() if v < result.max_scores[g]]
            below[student] = (got, lost, result.students[student].messages[:3])
    assert not below, f"{honest_class['mode']} sandbox, {honest_class['lab']} (full marks {full}): {below}"


def test_the_solution_student_of_the_same_class_earns_full_marks(honest_class):
    result = C.load(honest_class)
    assert result.students["solution"].scores == result.max_scores, result.students["solution"].messages
