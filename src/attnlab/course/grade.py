"""Grade a lab: ``python -m attnlab.course.grade LAB [--submitted DIR] [--course DIR]`` (``make grade``).

Reads ``submitted/<student>/<LAB>/*.ipynb`` (nbgrader's layout) and, one student at a time:

1. **pre-flight** (:mod:`attnlab.course.preflight`): valid UTF-8 JSON notebook, expected name, size,
   duplicated or missing test cells; a bad file is reported in plain words and scores zero, and
   never stops the others;
2. **sandboxed autograde** (:mod:`attnlab.course.sandbox`): a fresh folder holding only the
   student's (cleaned) notebook, a per-student gradebook made from the lab's source, and a
   generated nbgrader configuration; ``nbgrader autograde`` runs there in new mount, network, pid,
   IPC and UTS namespaces with a root made of read-only system folders, and the student's kernel
   runs as an unprivileged uid with rlimits and cgroup limits; the smoke profile is forced
   (``ATTNLAB_FORCE_PROFILE=smoke``);
3. **merge** (:mod:`attnlab.course.gradebook`): this process (never student code) reads the
   per-student gradebook back and writes the scores into the class gradebook;
4. **feedback** without hidden tests (:mod:`attnlab.course.feedback`);
5. **export** (:mod:`attnlab.course.export`): ``grades/<LAB>/grades.csv``, ``nbgrader_grades.csv``,
   ``summary.md`` and ``scores.png``.

The course is the one found from the working directory (or ``--course``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

from . import notebook
from . import preflight as _preflight
from . import sandbox as _sandbox
from .export import export
from .feedback import generate_feedback, hidden_lines, sanitize_for_feedback
from .gradebook import gradebook_scores, merge, student_scores
from .nbgrader_setup import config_text, nbgrader_env, register_assignment
from .results import ClassResult, StudentResult

__all__ = ["ClassResult", "StudentResult", "grade_lab", "gradebook_scores", "exercises_of",
           "sanitize_for_feedback", "main"]

KERNEL_NAME = "attnlab_grading"
SANDBOX_ROOT = "/grade"
_STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


# ---------------------------------------------------------------------------------------------
# the lab's structure


def exercises_of(sources: dict[str, nbformat.NotebookNode]) -> tuple[dict[str, list[str]], dict[str, float]]:
    """``(exercise -> test grade ids, grade id -> points)``: a test ``test_<sol>_*`` belongs to ``<sol>``."""
    exercises: dict[str, list[str]] = {}
    points: dict[str, float] = {}
    for nb in sources.values():
        solutions = notebook.exercises(nb)
        for gid, pts in notebook.test_cells(nb).items():
            points[gid] = pts
            exercises.setdefault(notebook.owner_of(gid, solutions) or gid, []).append(gid)
    return exercises, points


def _trusted_hashes(sources: dict[str, nbformat.NotebookNode]) -> dict[str, list[str]]:
    """Hashes of the instructor's test cells, and of the locked cells the kernel guard may trust."""
    tests, trusted = [], []
    for nb in sources.values():
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            if notebook.is_test_cell(cell):
                tests.append(notebook.cell_hash(cell.source))
            elif notebook.nbgrader_meta(cell).get("locked") and not notebook.is_solution_cell(cell):
                trusted.append(notebook.cell_hash(cell.source))
    return {"tests": tests, "trusted": trusted}


@dataclass
class _Lab:
    """What grading one lab needs to know, computed once per class."""

    name: str
    sources: dict[str, nbformat.NotebookNode]
    exercises: dict[str, list[str]]
    points: dict[str, float]
    hidden: list[str]
    hashes: dict[str, list[str]]

    @classmethod
    def load(cls, name: str, source_dir: Path) -> "_Lab":
        sources = {p.stem: notebook.read(p) for p in sorted(source_dir.glob("*.ipynb"))}
        exercises, points = exercises_of(sources)
        return cls(name, sources, exercises, points, hidden_lines(sources), _trusted_hashes(sources))


# ---------------------------------------------------------------------------------------------
# one student


def _prepare_box(lab: _Lab, student: str, pf: _preflight.Preflight, template_db: Path, work: Path,
                 submitted_dir: Path) -> Path:
    """A fresh folder for one student: the cleaned notebooks, a per-student gradebook, hashes."""
    box = work / f"student-{student}"
    course = box / "course"
    sub = course / "submitted" / student / lab.name
    sub.mkdir(parents=True)
    (course / "source" / lab.name).mkdir(parents=True)
    (course / "autograded" / student).mkdir(parents=True)
    os.chmod(course / "autograded", 0o755)
    os.chmod(course / "autograded" / student, 0o755)
    for name, nb in pf.notebooks.items():
        nbformat.write(nb, str(sub / f"{name}.ipynb"))
    ts = submitted_dir / "timestamp.txt"
    if ts.is_file() and ts.stat().st_size < 200:
        try:
            (sub / "timestamp.txt").write_text(ts.read_text("utf-8").strip())
        except UnicodeDecodeError:
            pass
    shutil.copy(template_db, course / "gradebook.db")
    os.chmod(course / "gradebook.db", 0o600)
    (box / "hashes.json").write_text(json.dumps(lab.hashes))
    os.chmod(box / "hashes.json", 0o600)
    for d in ("home", "runtime", "jupyter_config"):
        (box / d).mkdir()
    os.chmod(box / "runtime", 0o755)
    return box


def _autograde_sandboxed(box: Path, lab: str, student: str, limits: _sandbox.Limits, uid: int) -> str:
    """``nbgrader autograde`` inside the sandbox; returns the status."""
    root = SANDBOX_ROOT
    (box / "course" / "nbgrader_config.py").write_text(config_text(
        f"{root}/course", f"sqlite:///{root}/course/gradebook.db", cell_timeout=limits.cell_timeout_s,
        kernel_name=KERNEL_NAME))
    _sandbox.write_kernel_spec(box / "jupyter", uid=uid, limits=limits, test_hashes_file=f"{root}/hashes.json",
                               name=KERNEL_NAME)
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/local/bin:/usr/bin:/bin",
        "JUPYTER_PATH": f"{root}/jupyter", "JUPYTER_DATA_DIR": f"{root}/jupyter",
        "JUPYTER_CONFIG_DIR": f"{root}/jupyter_config", "JUPYTER_RUNTIME_DIR": f"{root}/runtime",
        "ATTNLAB_FORCE_PROFILE": "smoke", "ATTNLAB_PROGRESS": "text", "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": f"{root}/home",
    }
    argv = [sys.executable, "-E", "-m", "nbgrader", "autograde", lab, f"--student={student}", "--log-level=WARN"]
    res = _sandbox.run_in_sandbox(box, argv, uid=uid, limits=limits, env=env, cwd=f"{root}/course")
    if res.timed_out:
        return f"timed out after {limits.wall_s:.0f} s"
    if res.returncode != 0:
        errors = [ln.strip() for ln in res.stderr.splitlines()
                  if re.match(r"^\s*[A-Za-z_.]*(Error|Exception|Interrupt)\b", ln)]
        return f"autograde failed (exit {res.returncode})" + (f": {errors[-1][:300]}" if errors else "")
    return "graded"


def _autograde_plain(box: Path, lab: str, student: str, limits: _sandbox.Limits) -> str:
    """Plain ``nbgrader autograde`` with no sandbox: only for measuring the sandbox's overhead."""
    course = box / "course"
    (course / "nbgrader_config.py").write_text(config_text(
        str(course), f"sqlite:///{course}/gradebook.db", cell_timeout=limits.cell_timeout_s))
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", lab, f"--student={student}",
                           "--log-level=WARN"], cwd=course, capture_output=True, text=True,
                          env={**nbgrader_env(), "JUPYTER_CONFIG_DIR": str(box / "jupyter_config")},
                          timeout=limits.wall_s)
    return "graded" if proc.returncode == 0 else f"nbgrader error (exit {proc.returncode})"


def _grade_student(lab: _Lab, student: str, pf: _preflight.Preflight, template_db: Path, work: Path,
                   limits: _sandbox.Limits, uid: int, submitted_dir: Path,
                   use_sandbox: bool) -> tuple[dict[str, float] | None, Path | None, str]:
    """Autograde one student in a fresh folder; return (scores or None, autograded folder, status)."""
    box = _prepare_box(lab, student, pf, template_db, work, submitted_dir)
    if use_sandbox:
        status = _autograde_sandboxed(box, lab.name, student, limits, uid)
    else:
        status = _autograde_plain(box, lab.name, student, limits)
    scores = student_scores(box / "course" / "gradebook.db", lab.name, student)
    graded = box / "course" / "autograded" / student / lab.name
    return scores, (graded if graded.is_dir() else None), status


def _keep_autograded(graded: Path, course: Path, student: str, lab: _Lab) -> None:
    """Copy the autograded notebooks (regular files named like the lab's) into the course."""
    dest = course / "autograded" / student / lab.name
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for nbfile in graded.glob("*.ipynb"):
        if nbfile.is_file() and not nbfile.is_symlink() and nbfile.stem in lab.sources:
            shutil.copyfile(nbfile, dest / nbfile.name)


def _one_student(lab: _Lab, student: str, course: Path, submitted: Path, template_db: Path, work: Path,
                 limits: _sandbox.Limits, uid: int, use_sandbox: bool) -> StudentResult:
    res = StudentResult(student)
    if not _STUDENT_RE.match(student):
        res.status = "not gradable"
        res.messages.append(f"the folder name {student!r} is not a valid student id")
        return res
    folder = submitted / student / lab.name
    pf = _preflight.check_submission(student, folder, lab.sources)
    res.messages.extend(pf.messages())
    scores, graded = None, None
    if pf.gradable:
        scores, graded, res.status = _grade_student(lab, student, pf, template_db, work, limits, uid, folder,
                                                    use_sandbox)
        if scores is None:
            res.messages.append(f"grading did not finish ({res.status}); every exercise scores 0")
        elif res.status != "graded":
            res.messages.append(res.status)
    else:
        res.status = "not gradable"
    res.scores = {g: (scores or {}).get(g, 0.0) for g in lab.points}
    if graded is not None:
        _keep_autograded(graded, course, student, lab)
    shutil.rmtree(work / f"student-{student}", ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------------------
# the class


def _students(submitted: Path, lab: str) -> list[str]:
    return sorted(p.name for p in submitted.iterdir() if p.is_dir() and (p / lab).exists()) if submitted.is_dir() else []


def grade_lab(
    lab: str,
    *,
    course: Path,
    submitted: Path | None = None,
    students: list[str] | None = None,
    limits: _sandbox.Limits | None = None,
    out_dir: Path | None = None,
    feedback: bool = True,
    use_sandbox: bool = True,
    log=print,
) -> ClassResult:
    """Grade every submission of ``lab`` in the course at ``course``; see the module docstring."""
    course = Path(course).resolve()
    submitted = Path(submitted).resolve() if submitted else course / "submitted"
    limits = limits or _sandbox.Limits()
    source_dir = course / "solutions" / lab
    if not source_dir.is_dir():
        raise SystemExit(f"no such lab: {source_dir}")
    if use_sandbox:
        ok, why = _sandbox.available()
        if not ok:
            raise SystemExit(f"cannot grade safely here: {why}")
    info = _Lab.load(lab, source_dir)
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    out_dir = Path(out_dir) if out_dir else course / "grades" / lab
    out_dir.mkdir(parents=True, exist_ok=True)
    uid = _sandbox.pick_uid()
    work = Path(tempfile.mkdtemp(prefix="attnlab-grade-"))
    os.chmod(work, 0o711)
    try:
        template = work / "template"
        template.mkdir()
        register_assignment(lab, source_dir, f"sqlite:///{template}/gradebook.db", template)
        register_assignment(lab, source_dir, db_url, work / "class-register")
        results: dict[str, StudentResult] = {}
        for student in (students if students is not None else _students(submitted, lab)):
            t0 = time.monotonic()
            res = _one_student(info, student, course, submitted, template / "gradebook.db", work, limits, uid,
                               use_sandbox)
            if _STUDENT_RE.match(student):
                merge(db_url, lab, student, res.scores)
            res.seconds = time.monotonic() - t0
            results[student] = res
            log(f"{student}: {sum(res.scores.values()):g}/{sum(info.points.values()):g} "
                f"({res.status}, {res.seconds:.1f} s)" + "".join(f"\n    - {m}" for m in res.messages))
        if feedback:
            generate_feedback(lab, course, db_url, info.hidden, results, work / "feedback", log)
        result = ClassResult(lab, info.points, info.exercises, results, out_dir, out_dir / "grades.csv",
                             out_dir / "summary.md", None)
        export(result, db_url, work / "export")
        result.save(out_dir / "result.json")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Grade a lab in per-student sandboxes (see module docstring).")
    parser.add_argument("lab")
    parser.add_argument("--course", type=Path, default=None,
                        help="course root (default: found from the working directory)")
    parser.add_argument("--submitted", type=Path, default=None, help="submissions folder (default: COURSE/submitted)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--no-feedback", action="store_true")
    parser.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default 60)")
    parser.add_argument("--wall", type=float, default=None, help="seconds per student (default 600)")
    args = parser.parse_args(argv)
    limits = _sandbox.Limits()
    if args.cell_timeout:
        limits.cell_timeout_s = args.cell_timeout
    if args.wall:
        limits.wall_s = args.wall
    os.environ["ATTNLAB_FORCE_PROFILE"] = "smoke"
    course = notebook.find_course_root(args.course)
    result = grade_lab(args.lab, course=course, submitted=args.submitted, students=args.student,
                       limits=limits, feedback=not args.no_feedback)
    print(f"\ngrades: {result.csv_path}\nsummary: {result.summary_path}"
          + (f"\nplot: {result.plot_path}" if result.plot_path else ""))


if __name__ == "__main__":
    main()
