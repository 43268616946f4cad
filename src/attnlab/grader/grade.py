"""Grade a lab: ``python -m attnlab.grader.grade LAB [--submitted DIR] [--course DIR]`` (``make grade``).

Reads ``submitted/<student>/<LAB>/*.ipynb`` (nbgrader's layout) and grades the students in parallel
(a worker per core, as many as the memory allows; :mod:`attnlab.grader.worker`). For each student:

1. **pre-flight** (:mod:`attnlab.grader.preflight`): valid UTF-8 JSON notebook, expected name, size,
   duplicated or missing test cells; a bad file is reported in plain words and scores zero, and
   never stops the others;
2. **the sandbox** (:mod:`attnlab.grader.sandbox`, :mod:`attnlab.grader.box`): the lab's set-up cells
   and the student's answer cells run in a throw-away Linux sandbox, with the lab's graded reference
   code stubbed out (:mod:`attnlab.grader.stubs`); cells the student added are not run;
3. **the judge** (:mod:`attnlab.grader.judge`), in the worker's own process: every test cell of the
   instructor's notebook, hidden tests included, runs here, calling the student's code in the
   sandbox on copies of the judge's inputs and receiving the results as data
   (:mod:`attnlab.grader.wire`); a test cell earns its points when it runs to its end here;
4. **merge** (:mod:`attnlab.grader.gradebook`): this process writes the scores into the class
   gradebook through nbgrader's API, and the autograded notebooks into ``autograded/``;
5. **feedback** without hidden tests (:mod:`attnlab.grader.feedback`);
6. **export** (:mod:`attnlab.grader.export`): ``grades/<LAB>/grades.csv``, ``nbgrader_grades.csv``,
   ``summary.md`` and ``scores.png``; and the similarity report of the answers
   (:mod:`attnlab.grader.similarity`): ``similarity.csv`` and ``similarity.html``.

``use_sandbox=False`` runs plain ``nbgrader autograde`` instead, one student at a time: only for
measuring what the judge and the sandbox cost. The course is the one found from the working
directory (or ``--course``).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from ..course import notebook
from . import preflight as _preflight
from . import sandbox as _sandbox
from . import worker as _worker
from .export import export
from .feedback import generate_feedback, hidden_lines, sanitize_for_feedback
from .gradebook import gradebook_scores, merge, student_scores
from .nbgrader_setup import config_text, nbgrader_env, register_assignment
from .results import ClassResult, StudentResult

__all__ = ["ClassResult", "StudentResult", "grade_lab", "gradebook_scores", "exercises_of",
           "sanitize_for_feedback", "worker_count", "main"]

_STUDENT_RE = _worker.STUDENT_RE


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


def _lab_facts(lab: str, source_dir: Path, release_dir: Path) -> _worker.LabFacts:
    sources = {p.stem: notebook.read(p) for p in sorted(source_dir.glob("*.ipynb"))}
    released = {name: notebook.read(release_dir / f"{name}.ipynb") for name in sources}
    _, points = exercises_of(sources)
    return _worker.LabFacts(lab, sources, released, points)


# ---------------------------------------------------------------------------------------------
# plain nbgrader, for measuring what the sandbox costs


def _autograde_plain(lab: _worker.LabFacts, student: str, folder: Path, template_db: Path, work: Path,
                     limits: _sandbox.Limits) -> dict:
    """Plain ``nbgrader autograde`` of one student in a scratch course (no sandbox, no guard)."""
    t0 = time.monotonic()
    out = {"student": student, "scores": {g: 0.0 for g in lab.points}, "messages": [], "status": "graded",
           "autograded": {}}
    pf = _preflight.check_submission(student, folder, lab.sources) if _STUDENT_RE.match(student) else None
    if pf is None or not pf.gradable:
        out["status"] = "not gradable"
        out["messages"] += pf.messages() if pf else [f"the folder name {student!r} is not a valid student id"]
        return out
    out["messages"] += pf.messages()
    course = work / f"plain-{student}"
    sub = course / "submitted" / student / lab.name
    sub.mkdir(parents=True)
    (course / "source" / lab.name).mkdir(parents=True)
    for name, nb in pf.notebooks.items():
        nbformat.write(nb, str(sub / f"{name}.ipynb"))
    shutil.copy(template_db, course / "gradebook.db")
    (course / "nbgrader_config.py").write_text(config_text(
        str(course), f"sqlite:///{course}/gradebook.db", cell_timeout=limits.cell_timeout_s))
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", lab.name, f"--student={student}",
                           "--log-level=WARN"], cwd=course, capture_output=True, text=True,
                          env={**nbgrader_env(), "JUPYTER_CONFIG_DIR": str(course / ".jupyter")}, timeout=limits.wall_s)
    if proc.returncode != 0:
        out["status"] = f"nbgrader error (exit {proc.returncode})"
    out["scores"].update(student_scores(course / "gradebook.db", lab.name, student) or {})
    for nbfile in (course / "autograded" / student / lab.name).glob("*.ipynb"):
        out["autograded"][nbfile.stem] = nbfile.read_text("utf-8")
    shutil.rmtree(course, ignore_errors=True)
    out["seconds"] = time.monotonic() - t0
    return out


# ---------------------------------------------------------------------------------------------
# the class


def _students(submitted: Path, lab: str) -> list[str]:
    return sorted(p.name for p in submitted.iterdir() if p.is_dir() and (p / lab).exists()) if submitted.is_dir() else []


def worker_count(students: int, limits: _sandbox.Limits, requested: int | None = None) -> int:
    """Workers for a class: one per core, no more than the memory allows (each student may use up to
    ``limits.memory``) and no more than there are students."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    available = _available_memory() or limits.memory * cores
    by_memory = max(1, int(0.8 * available // limits.memory))
    return max(1, min(requested or cores, by_memory, max(students, 1)))


def _available_memory() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _results(lab: _worker.LabFacts, jobs: list[tuple[str, Path]], limits: _sandbox.Limits, pool: "_Pool | None",
             work: Path, template_db: Path):
    """Yield one graded student (a dict, see :meth:`attnlab.grader.worker.Grader.grade`) at a time."""
    if pool is None:  # plain nbgrader, one student after another
        for student, folder in jobs:
            yield _autograde_plain(lab, student, folder, template_db, work, limits)
        return
    yield from pool.run(jobs)


class _Pool:
    """Worker processes (``python -m attnlab.grader.worker``), each a judge with its own warm sandbox server."""

    def __init__(self, lab: _worker.LabFacts, limits: _sandbox.Limits, mode: str, workers: int, work: Path):
        import attnlab

        env = {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
               "PYTHONDONTWRITEBYTECODE": "1", "ATTNLAB_FORCE_PROFILE": "smoke", "ATTNLAB_PROGRESS": "off"}
        self.procs = [subprocess.Popen([sys.executable, "-m", "attnlab.grader.worker"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=env) for _ in range(workers)]
        package = str(Path(attnlab.__file__).resolve().parent)
        for i, proc in enumerate(self.procs):
            proc.stdin.write(_worker.init_line(lab, limits, mode, str(work / f"worker-{i}"), package) + "\n")
            proc.stdin.flush()
        self.idle: list | None = None  # the workers warm up (PyTorch, the sandbox server) while the caller goes on

    def wait_ready(self) -> int:
        """Wait for every worker's first line; the number that started."""
        if self.idle is None:
            self.idle = [p for p in self.procs if json.loads(p.stdout.readline() or "{}").get("ready")]
            if not self.idle:
                self.close()
                raise RuntimeError("no grading worker started")
        return len(self.idle)

    def run(self, jobs: list):
        """Yield each job's answer as it comes (jobs are handed to whichever worker is free)."""
        self.wait_ready()
        todo, busy = list(jobs), {}
        try:
            while todo or busy:
                if not busy and not self.idle:  # every worker has stopped: say so for the rest
                    for student, _ in todo:
                        yield {"student": student, "scores": {}, "messages": ["no grading worker was left"],
                               "status": "grading failed", "autograded": {}}
                    return
                while todo and self.idle:
                    proc, (student, folder) = self.idle.pop(), todo.pop(0)
                    proc.stdin.write(json.dumps([student, str(folder)]) + "\n")
                    proc.stdin.flush()
                    busy[proc.stdout] = (proc, student)
                ready, _, _ = select.select(list(busy), [], [])
                for stream in ready:
                    proc, student = busy.pop(stream)
                    line = stream.readline()
                    if line:
                        self.idle.append(proc)
                        yield json.loads(line)
                    else:
                        yield {"student": student, "scores": {}, "messages": ["the grading worker stopped"],
                               "status": "grading failed", "autograded": {}}
        finally:
            self.close()

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.stdin.close()
                    proc.wait(timeout=30)
                except (OSError, subprocess.TimeoutExpired):
                    proc.kill()
                    proc.wait()


def _keep(course: Path, lab: str, graded: dict, points: dict) -> StudentResult:
    """Write one student's executed notebooks into ``autograded/``; the student's result."""
    student = graded["student"]
    scores = {g: float(graded["scores"].get(g, 0.0)) for g in points}
    res = StudentResult(student, scores, graded["messages"], graded["status"], graded.get("seconds", 0.0))
    if graded["autograded"] and _STUDENT_RE.match(student):
        dest = course / "autograded" / student / lab
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for name, text in graded["autograded"].items():
            (dest / f"{name}.ipynb").write_text(text, encoding="utf-8")
    return res


def grade_lab(
    lab: str,
    *,
    course: Path,
    submitted: Path | None = None,
    students: list[str] | None = None,
    limits: _sandbox.Limits | None = None,
    out_dir: Path | None = None,
    feedback: bool = True,
    similarity: bool = True,
    use_sandbox: bool = True,
    mode: str | None = None,
    workers: int | None = None,
    log=print,
) -> ClassResult:
    """Grade every submission of ``lab`` in the course at ``course``; see the module docstring.

    ``mode`` chooses the sandbox (``"root"`` or ``"user"``; default: ``"root"`` when run as root);
    ``workers`` caps the number of students graded at once (default: one per core, memory allowing).
    """
    course = Path(course).resolve()
    submitted = Path(submitted).resolve() if submitted else course / "submitted"
    limits = limits or _sandbox.Limits()
    source_dir = course / "solutions" / lab
    if not source_dir.is_dir():
        raise SystemExit(f"no such lab: {source_dir}")
    mode = (mode or _sandbox.mode()) if use_sandbox else None
    if mode is not None:
        ok, why = _sandbox.available(mode)
        if not ok:
            raise SystemExit(f"cannot grade safely here: {why}")
    out_dir = Path(out_dir) if out_dir else course / "grades" / lab
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="attnlab-grade-"))
    os.chmod(work, 0o711)
    try:
        return _grade_class(lab, course, submitted, students, limits, out_dir, feedback, mode, workers, work, log,
                            similarity=similarity)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _grade_class(lab: str, course: Path, submitted: Path, students, limits, out_dir: Path, feedback: bool,
                 mode: str | None, workers: int | None, work: Path, log, *, similarity: bool = True) -> ClassResult:
    t0 = time.monotonic()
    db_url = f"sqlite:///{course / 'gradebook.db'}"
    template = work / "template"
    names = students if students is not None else _students(submitted, lab)
    jobs = [(s, submitted / s / lab) for s in names]
    n_workers = worker_count(len(jobs), limits, workers) if mode else 1
    log(f"grading {len(jobs)} student(s) of {lab} with {n_workers} worker(s) "
        f"({'sandbox: ' + mode if mode else 'plain nbgrader, no sandbox'}): starting the workers "
        "(each imports PyTorch once); then one line per student")
    released = course / "labs" / lab   # the released lab (kept in sync with solutions/ by the course's tests)
    early = mode is not None and (course / "solutions" / lab).is_dir() and all(
        (released / p.name).exists() for p in (course / "solutions" / lab).glob("*.ipynb"))
    pool = None
    if early:  # the workers warm up while the gradebook is prepared
        facts = _lab_facts(lab, course / "solutions" / lab, released)
        pool = _Pool(facts, limits, mode, n_workers, work)
    register_assignment(lab, course / "solutions" / lab, f"sqlite:///{template}/gradebook.db", template)
    register_assignment(lab, course / "solutions" / lab, db_url, work / "class-register")
    if not early:
        facts = _lab_facts(lab, course / "solutions" / lab, template / "release" / lab)
        pool = _Pool(facts, limits, mode, n_workers, work) if mode else None
    if pool is not None:
        log(f"{pool.wait_ready()} worker(s) ready after {time.monotonic() - t0:.1f} s")
    results: dict[str, StudentResult] = {}
    for graded in _results(facts, jobs, limits, pool, work, template / "gradebook.db"):
        res = _keep(course, lab, graded, facts.points)
        if _STUDENT_RE.match(res.student):
            merge(db_url, lab, res.student, res.scores)
        results[res.student] = res
        log(f"{res.student}: {sum(res.scores.values()):g}/{sum(facts.points.values()):g} "
            f"({res.status}, {res.seconds:.1f} s)" + "".join(f"\n    - {m}" for m in res.messages))
    seconds = time.monotonic() - t0
    results = {s: results[s] for s in names if s in results}
    log(f"graded {len(results)} student(s) in {seconds:.1f} s with {n_workers} worker(s)"
        f" ({'sandbox: ' + mode if mode else 'plain nbgrader, no sandbox'}): "
        f"{60 * len(results) / max(seconds, 1e-9):.1f} students/minute")
    exercises, _ = exercises_of(facts.sources)
    if feedback:
        generate_feedback(lab, course, db_url, hidden_lines(facts.sources), results, work / "feedback", log)
    result = ClassResult(lab, facts.points, exercises, results, out_dir, out_dir / "grades.csv",
                         out_dir / "summary.md", None, seconds=seconds, workers=n_workers)
    export(result, db_url, work / "export")
    result.save(out_dir / "result.json")
    if similarity and names:
        from .similarity import similarity_report

        try:
            similarity_report(course=course, lab=lab, submitted=submitted, out=out_dir)
            log(f"similarity report: {out_dir / 'similarity.html'}")
        except Exception as err:  # noqa: BLE001 - the grades stand without the report
            log(f"similarity report failed: {type(err).__name__}: {err}")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Grade a lab in per-student sandboxes (see module docstring).")
    parser.add_argument("lab")
    parser.add_argument("--course", type=Path, default=None,
                        help="course root (default: found from the working directory)")
    parser.add_argument("--submitted", type=Path, default=None, help="submissions folder (default: COURSE/submitted)")
    parser.add_argument("--student", action="append", help="grade only this student (repeatable)")
    parser.add_argument("--no-feedback", action="store_true")
    parser.add_argument("--no-similarity", action="store_true", help="skip the similarity report of the answers")
    parser.add_argument("--cell-timeout", type=int, default=None, help="seconds per cell (default 60)")
    parser.add_argument("--wall", type=float, default=None, help="seconds per student (default 600)")
    parser.add_argument("--workers", type=int, default=None, help="students graded at once (default: one per core)")
    parser.add_argument("--sandbox", choices=("root", "user"), default=None,
                        help="root: a fresh uid per kernel (needs root); user: unprivileged user namespaces "
                             "(default: root when run as root)")
    args = parser.parse_args(argv)
    limits = _sandbox.Limits()
    if args.cell_timeout:
        limits.cell_timeout_s = args.cell_timeout
    if args.wall:
        limits.wall_s = args.wall
    os.environ["ATTNLAB_FORCE_PROFILE"] = "smoke"
    sys.dont_write_bytecode = True
    course = notebook.find_course_root(args.course)
    result = grade_lab(args.lab, course=course, submitted=args.submitted, students=args.student,
                       limits=limits, feedback=not args.no_feedback,
                       similarity=not args.no_similarity, mode=args.sandbox, workers=args.workers)
    print(f"\ngrades: {result.csv_path}\nsummary: {result.summary_path}"
          + (f"\nplot: {result.plot_path}" if result.plot_path else ""))


if __name__ == "__main__":
    main()
