"""The gradebook side of grading: read scores back, and merge one student's scores into the class.

Only the grader's own process writes the class gradebook (``gradebook.db`` of the course), through
nbgrader's ``Gradebook`` API; student code never sees it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from .nbgrader_setup import COURSE_ID

__all__ = ["gradebook_scores", "student_scores", "merge"]


def gradebook_scores(db_url: str, lab: str) -> dict[str, dict[str, float | None]]:
    """``student -> grade id -> auto score`` of ``lab``, read through nbgrader's ``Gradebook`` API."""
    from nbgrader.api import Gradebook, MissingEntry

    out: dict[str, dict[str, float | None]] = {}
    with Gradebook(db_url, course_id=COURSE_ID) as gb:
        try:
            assignment = gb.find_assignment(lab)
        except MissingEntry:
            return out
        for sub in assignment.submissions:
            scores = {}
            for nb in sub.notebooks:
                for grade in nb.grades:
                    if grade.cell_type == "code" and not grade.name.startswith("setup"):
                        scores[grade.name] = grade.auto_score
            out[sub.student.id] = scores
    return out


def student_scores(db_path: Path, lab: str, student: str) -> dict[str, float] | None:
    """One student's code-cell scores from a per-student gradebook, clipped to [0, max]; ``None``
    when the gradebook holds no submission (or cannot be read)."""
    from nbgrader.api import Gradebook

    try:
        with Gradebook(f"sqlite:///{db_path}", course_id=COURSE_ID) as gb:
            submission = gb.find_submission(lab, student)
            return {grade.name: float(min(max(grade.auto_score, 0.0), grade.max_score))
                    for nb in submission.notebooks for grade in nb.grades
                    if grade.cell_type == "code" and grade.auto_score is not None}
    except Exception:  # noqa: BLE001 - a broken per-student gradebook scores nothing
        return None


def merge(db_url: str, lab: str, student: str, scores: dict[str, float]) -> None:
    """Write one student's scores into the class gradebook; a code cell not in ``scores`` scores 0."""
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings(), Gradebook(db_url, course_id=COURSE_ID) as gb:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own add_submission triggers it; harmless
        gb.update_or_create_student(student)
        sub = gb.update_or_create_submission(lab, student)
        for nb in sub.notebooks:
            for grade in nb.grades:
                if grade.name in scores:
                    grade.auto_score = float(scores[grade.name])
                    grade.needs_manual_grade = False
                elif grade.cell_type == "code":
                    grade.auto_score = 0.0
                    grade.needs_manual_grade = False
        gb.db.commit()
