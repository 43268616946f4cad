"""How fast the course grades a class: ``.venv/bin/python benchmarks/bench_grading.py [--students 20]``.

Builds a throw-away course with one lab released, hands in ``--students`` notebooks (half answered
with the solution, half left blank, as a class mid-way would be), and grades them three ways:

1. the course's command (the judge, each student's answers in a sandbox), one worker per core
   (``mode`` root when run as root);
2. the same as an unprivileged user's sandbox (``mode="user"``: user namespaces, no root), when the
   machine allows it;
3. plain ``nbgrader autograde`` (``use_sandbox=False``: a kernel per student, no sandbox, no
   judge), on a few of the students only, since it is the slow reference.

It prints students/minute for each (start-up included), the seconds until the first progress line,
and the seconds per student of (1) and (2) against (3), measured in the same process; run it on a
quiet machine (other work on the cores moves every figure).
Needs root or unprivileged user namespaces for (1) and (2), as grading does.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import nbformat

from attnlab.course import harness
from attnlab.course.notebook import find_course_root
from attnlab.grader import grade, sandbox


def make_class(lab: str, course: Path, students: int, root: Path) -> list[str]:
    """A course folder at ``course`` with ``students`` submissions of ``lab``; returns their names."""
    released, solution = harness.new_course(lab, course, root)
    name = f"{lab}.ipynb"
    texts = [nbformat.writes(harness.with_answers(released, solution)), nbformat.writes(released)]
    names = [f"student{i:03d}" for i in range(students)]
    for i, student in enumerate(names):
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        (folder / name).write_text(texts[i % 2], encoding="utf-8")
    return names


def timed(label: str, lab: str, course: Path, students: list[str], **kwargs) -> float:
    """Grade ``students``; print and return the seconds per student (start-up included)."""
    t0 = time.monotonic()
    lines: list[float] = []
    result = grade.grade_lab(lab, course=course, students=students, feedback=False, similarity=False,
                             log=lambda *_: lines.append(time.monotonic() - t0), **kwargs)
    seconds = time.monotonic() - t0
    scores = sorted({sum(r.scores.values()) for r in result.students.values()})
    first = f"first line after {lines[0]:.2f} s, first student after {lines[1]:.1f} s" if len(lines) > 1 else ""
    print(f"{label:<38} {len(students):>3} students in {seconds:6.1f} s: {60 * len(students) / seconds:5.1f} "
          f"students/minute, {seconds / len(students):5.2f} s/student (scores seen: {scores}); {first}")
    return seconds / len(students)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lab", default="lab03_transformer")
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--plain", type=int, default=4, help="students graded by plain nbgrader autograde")
    args = parser.parse_args()
    root = find_course_root()
    work = Path(tempfile.mkdtemp(prefix="attnlab-bench-grading-"))
    try:
        course = work / "course"
        names = make_class(args.lab, course, args.students, root)
        per = {"sandbox": timed(f"course command ({sandbox.mode()} sandbox)", args.lab, course, names)}
        if sandbox.mode() != "user" and sandbox.available("user")[0]:
            per["user"] = timed("course command (user sandbox, no root)", args.lab, course, names, mode="user")
        plain = timed("plain nbgrader autograde", args.lab, course, names[: args.plain], use_sandbox=False)
        for key, value in per.items():
            print(f"{key}: {value:.2f} s/student against {plain:.2f} s/student plain: {plain / value:.1f}x faster")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
