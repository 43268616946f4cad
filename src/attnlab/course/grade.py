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
3. **merge**: this process (never student code) reads the per-student gradebook back and writes
   the scores into the class gradebook (``gradebook.db`` of the course) through nbgrader's
   ``Gradebook`` API;
4. **feedback** without hidden tests: hidden regions are cut out of the test cells, tracebacks of
   test cells are reduced to their message, and any output that quotes hidden test code is
   removed, before ``nbgrader generate_feedback`` renders the HTML;
5. **export**: ``grades/<LAB>/grades.csv`` (one row per student, one column per exercise),
   ``nbgrader_grades.csv`` (nbgrader's own export), ``summary.md`` (per-exercise table and each
   student's pre-flight messages) and ``scores.png`` (the score distribution of each exercise).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from attnlab.course import preflight as _preflight
from attnlab.course import sandbox as _sandbox

__all__ = ["ClassResult", "StudentResult", "grade_lab", "gradebook_scores", "exercises_of", "main"]

ROOT = Path(__file__).resolve().parents[3]
HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
KERNEL_NAME = "attnlab_grading"
_STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass
class StudentResult:
    student: str
    scores: dict[str, float] = field(default_factory=dict)  # grade_id -> points
    messages: list[str] = field(default_factory=list)
    status: str = "graded"  # graded | not gradable | sandbox error | timed out
    seconds: float = 0.0


@dataclass
class ClassResult:
    lab: str
    max_scores: dict[str, float]  # grade_id -> points
    exercises: dict[str, list[str]]  # exercise -> its test cells' grade ids
    students: dict[str, StudentResult]
    out_dir: Path
    csv_path: Path
    summary_path: Path
    plot_path: Path | None

    def save(self, path: Path) -> None:
        """Write this result as JSON (``grades/<lab>/result.json``)."""
        data = {"lab": self.lab, "max_scores": self.max_scores, "exercises": self.exercises,
                "students": {k: vars(v) for k, v in self.students.items()},
                "out_dir": str(self.out_dir), "csv_path": str(self.csv_path),
                "summary_path": str(self.summary_path), "plot_path": str(self.plot_path) if self.plot_path else None}
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: Path) -> "ClassResult":
        d = json.loads(Path(path).read_text())
        return cls(d["lab"], d["max_scores"], d["exercises"],
                   {k: StudentResult(**v) for k, v in d["students"].items()}, Path(d["out_dir"]),
                   Path(d["csv_path"]), Path(d["summary_path"]), Path(d["plot_path"]) if d["plot_path"] else None)

    def exercise_scores(self, student: str) -> dict[str, float]:
        s = self.students[student].scores
        return {ex: sum(s.get(g, 0.0) for g in gids) for ex, gids in self.exercises.items()}

    def exercise_max(self) -> dict[str, float]:
        return {ex: sum(self.max_scores[g] for g in gids) for ex, gids in self.exercises.items()}


# ---------------------------------------------------------------------------------------------
# the lab's structure


def _nbg(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta if isinstance(meta, dict) else {}


def _is_test(cell) -> bool:
    m = _nbg(cell)
    return bool(m.get("grade")) and not m.get("solution") and cell.cell_type == "code"


def exercises_of(sources: dict[str, nbformat.NotebookNode]) -> tuple[dict[str, list[str]], dict[str, float]]:
    """``(exercise -> test grade ids, grade id -> points)``: a test ``test_<sol>_*`` belongs to ``<sol>``."""
    exercises: dict[str, list[str]] = {}
    points: dict[str, float] = {}
    for nb in sources.values():
        solutions = [_nbg(c)["grade_id"] for c in nb.cells if _nbg(c).get("solution") and _nbg(c).get("grade_id")]
        for cell in nb.cells:
            if not _is_test(cell):
                continue
            gid = _nbg(cell)["grade_id"]
            points[gid] = float(_nbg(cell).get("points", 0))
            owner = next((s for s in sorted(solutions, key=len, reverse=True) if gid.startswith(f"test_{s}")), gid)
            exercises.setdefault(owner, []).append(gid)
    return exercises, points


def _hidden_lines(sources: dict[str, nbformat.NotebookNode]) -> list[str]:
    lines = []
    for nb in sources.values():
        for cell in nb.cells:
            if not _is_test(cell):
                continue
            inside = False
            for line in cell.source.splitlines():
                if HIDDEN_BEGIN in line:
                    inside = True
                elif HIDDEN_END in line:
                    inside = False
                elif inside and len(line.strip()) >= 12:
                    lines.append(line.strip())
    return sorted(set(lines), key=len, reverse=True)


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.strip().encode("utf-8")).hexdigest()


def _trusted_hashes(sources: dict[str, nbformat.NotebookNode]) -> dict[str, list[str]]:
    tests, trusted = [], []
    for nb in sources.values():
        for cell in nb.cells:
            if cell.cell_type != "code":
                continue
            m = _nbg(cell)
            if _is_test(cell):
                tests.append(_code_hash(cell.source))
            elif m.get("locked") and not m.get("solution"):
                trusted.append(_code_hash(cell.source))
    return {"tests": tests, "trusted": trusted}


# ---------------------------------------------------------------------------------------------
# nbgrader plumbing


def _nbgrader_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["ATTNLAB_FORCE_PROFILE"] = "smoke"
    return env


def _config_text(root: str, db_url: str, *, cell_timeout: int, kernel_name: str | None = None) -> str:
    lines = [
        "c = get_config()  # noqa: F821",
        f"c.CourseDirectory.root = {root!r}",
        "c.CourseDirectory.course_id = 'attnlab'",
        "c.CourseDirectory.source_directory = 'source'",
        "c.CourseDirectory.release_directory = 'release'",
        f"c.CourseDirectory.db_url = {db_url!r}",
        "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}",
        "c.ClearSolutions.text_stub = 'YOUR ANSWER HERE'",
        f"c.Execute.timeout = {int(cell_timeout)}",
        "c.Execute.startup_timeout = 120",
        "c.OverwriteCells.add_missing_cells = True",
        "c.Autograde.create_student = True",
    ]
    if kernel_name:
        lines.append(f"c.Execute.kernel_name = {kernel_name!r}")
    return "\n".join(lines) + "\n"


def _nbgrader(args: list[str], course: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
    env = _nbgrader_env()
    env["JUPYTER_CONFIG_DIR"] = str(course / ".jupyter")
    proc = subprocess.run(cmd, cwd=course, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _register_assignment(lab: str, sources_dir: Path, db_url: str, scratch: Path) -> None:
    """``nbgrader generate_assignment`` into ``db_url`` from a scratch copy (no release is kept)."""
    course = scratch
    (course / "source").mkdir(parents=True, exist_ok=True)
    shutil.copytree(sources_dir, course / "source" / lab, ignore=shutil.ignore_patterns(".*", "*.pyc"),
                    dirs_exist_ok=True)
    for p in (course / "source" / lab).iterdir():  # only notebooks reach the gradebook
        if p.suffix != ".ipynb":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    (course / "nbgrader_config.py").write_text(_config_text(str(course), db_url, cell_timeout=30))
    _nbgrader(["generate_assignment", lab, "--force"], course)


def gradebook_scores(db_url: str, lab: str) -> dict[str, dict[str, float | None]]:
    """``student -> grade id -> auto score`` of ``lab``, read through nbgrader's ``Gradebook`` API."""
    from nbgrader.api import Gradebook, MissingEntry

    out: dict[str, dict[str, float | None]] = {}
    with Gradebook(db_url, course_id="attnlab") as gb:
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


def _merge(db_url: str, lab: str, student: str, scores: dict[str, float], timestamp: str | None) -> None:
    """Write one student's scores into the class gradebook (this process only, never student code)."""
    import warnings

    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    with warnings.catch_warnings(), Gradebook(db_url, course_id="attnlab") as gb:
        warnings.simplefilter("ignore", SAWarning)  # nbgrader's own add_submission triggers it; harmless
        gb.update_or_create_student(student)
        kwargs = {"timestamp": timestamp} if timestamp else {}
        sub = gb.update_or_create_submission(lab, student, **kwargs)
        for nb in sub.notebooks:
            for grade in nb.grades:
                if grade.name in scores:
                    grade.auto_score = float(scores[grade.name])
                    grade.needs_manual_grade = False
                elif grade.cell_type == "code":
                    grade.auto_score = 0.0
                    grade.needs_manual_grade = False
        gb.db.commit()


# ---------------------------------------------------------------------------------------------
# feedback without hidden tests


def _strip_hidden(source: str) -> str:
    out, inside = [], False
    for line in source.splitlines():
        if HIDDEN_BEGIN in line:
            inside = True
            out.append(line[: line.index(HIDDEN_BEGIN)] + "# (hidden tests were run here)")
        elif HIDDEN_END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _mentions(text: str, hidden: list[str]) -> bool:
    return any(h in text for h in hidden)


def _output_text(output) -> str:
    parts = [str(output.get("text", "")), str(output.get("evalue", "")), "\n".join(output.get("traceback", []) or [])]
    for v in (output.get("data") or {}).values():
        parts.append(v if isinstance(v, str) else json.dumps(v))
    return "\n".join(parts)


REDACTED = "[removed from the feedback: this output quoted hidden test code]\n"


def sanitize_for_feedback(nb: nbformat.NotebookNode, hidden: list[str]) -> nbformat.NotebookNode:
    """A copy of an autograded notebook that shows no hidden test and no test-cell traceback."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.cell_type == "code" and _is_test(cell):
            cell.source = _strip_hidden(cell.source)
            outs = []
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    outs.append(nbformat.v4.new_output("error", ename=out.get("ename", "Error"),
                                                       evalue=str(out.get("evalue", "")),
                                                       traceback=[f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"]))
                else:
                    outs.append(out)
            cell.outputs = outs
        elif _mentions(cell.get("source", ""), hidden):
            cell.source = REDACTED
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=REDACTED)
                            if _mentions(_output_text(o), hidden) else o for o in cell.get("outputs", [])]
    return nb


# ---------------------------------------------------------------------------------------------
# one student


def _grade_student(lab: str, student: str, pf: _preflight.Preflight, template_db: Path, work: Path,
                   hashes: dict, limits: _sandbox.Limits, uid: int, submitted_dir: Path,
                   use_sandbox: bool) -> tuple[dict[str, float] | None, Path | None, str]:
    """Autograde one student in a fresh folder; return (scores or None, autograded folder, status)."""
    from nbgrader.api import Gradebook, MissingEntry

    box = work / f"student-{student}"
    course = box / "course"
    sub = course / "submitted" / student / lab
    sub.mkdir(parents=True)
    (course / "source" / lab).mkdir(parents=True)
    (course / "autograded" / student).mkdir(parents=True)
    os.chmod(course / "autograded", 0o755)
    os.chmod(course / "autograded" / student, 0o755)
    for name, nb in pf.notebooks.items():
        nbformat.write(nb, str(sub / f"{name}.ipynb"))
    ts = submitted_dir / "timestamp.txt"
    timestamp = None
    if ts.is_file() and ts.stat().st_size < 200:
        try:
            timestamp = ts.read_text("utf-8").strip()
            (sub / "timestamp.txt").write_text(timestamp)
        except UnicodeDecodeError:
            timestamp = None
    shutil.copy(template_db, course / "gradebook.db")
    os.chmod(course / "gradebook.db", 0o600)
    (box / "hashes.json").write_text(json.dumps(hashes))
    os.chmod(box / "hashes.json", 0o600)
    for d in ("home", "runtime", "jupyter_config"):
        (box / d).mkdir()
    os.chmod(box / "runtime", 0o755)
    status = "graded"
    if use_sandbox:
        root = "/grade"
        (course / "nbgrader_config.py").write_text(_config_text(
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
            status = f"timed out after {limits.wall_s:.0f} s"
        elif res.returncode != 0:
            errors = [ln.strip() for ln in res.stderr.splitlines() if re.match(r"^\s*[A-Za-z_.]*(Error|Exception|Interrupt)\b", ln)]
            status = f"autograde failed (exit {res.returncode})" + (f": {errors[-1][:300]}" if errors else "")
    else:  # plain nbgrader, for measuring the sandbox's overhead only
        (course / "nbgrader_config.py").write_text(_config_text(
            str(course), f"sqlite:///{course}/gradebook.db", cell_timeout=limits.cell_timeout_s))
        proc = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", lab, f"--student={student}",
                               "--log-level=WARN"], cwd=course, capture_output=True, text=True,
                              env={**_nbgrader_env(), "JUPYTER_CONFIG_DIR": str(box / "jupyter_config")},
                              timeout=limits.wall_s)
        if proc.returncode != 0:
            status = f"nbgrader error (exit {proc.returncode})"
    scores: dict[str, float] | None = None
    try:
        with Gradebook(f"sqlite:///{course}/gradebook.db", course_id="attnlab") as gb:
            submission = gb.find_submission(lab, student)
            scores = {}
            for nb in submission.notebooks:
                for grade in nb.grades:
                    if grade.cell_type == "code" and grade.auto_score is not None:
                        scores[grade.name] = float(min(max(grade.auto_score, 0.0), grade.max_score))
    except (MissingEntry, Exception):  # noqa: BLE001 - a broken per-student gradebook scores nothing
        scores = None
    graded = course / "autograded" / student / lab
    return scores, (graded if graded.is_dir() else None), status


# ---------------------------------------------------------------------------------------------
# the class


def _students(submitted: Path, lab: str) -> list[str]:
    return sorted(p.name for p in submitted.iterdir() if p.is_dir() and (p / lab).exists()) if submitted.is_dir() else []


def grade_lab(
    lab: str,
    *,
    course: Path = ROOT,
    submitted: Path | None = None,
    students: list[str] | None = None,
    limits: _sandbox.Limits | None = None,
    out_dir: Path | None = None,
    feedback: bool = True,
    use_sandbox: bool = True,
    log=print,
) -> ClassResult:
    """Grade every submission of ``lab``; see the module docstring."""
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
    sources = {p.stem: nbformat.read(str(p), as_version=4) for p in sorted(source_dir.glob("*.ipynb"))}
    exercises, points = exercises_of(sources)
    hidden = _hidden_lines(sources)
    hashes = _trusted_hashes(sources)
    db_path = course / "gradebook.db"
    db_url = f"sqlite:///{db_path}"
    out_dir = Path(out_dir) if out_dir else course / "grades" / lab
    out_dir.mkdir(parents=True, exist_ok=True)
    names = students if students is not None else _students(submitted, lab)
    results: dict[str, StudentResult] = {}
    uid = _sandbox.pick_uid()
    work = Path(tempfile.mkdtemp(prefix="attnlab-grade-"))
    os.chmod(work, 0o711)
    try:
        template = work / "template"
        template.mkdir()
        _register_assignment(lab, source_dir, f"sqlite:///{template}/gradebook.db", template)
        _register_assignment(lab, source_dir, db_url, work / "class-register")
        for student in names:
            t0 = time.monotonic()
            res = StudentResult(student)
            if not _STUDENT_RE.match(student):
                res.status = "not gradable"
                res.messages.append(f"the folder name {student!r} is not a valid student id")
                results[student] = res
                continue
            folder = submitted / student / lab
            pf = _preflight.check_submission(student, folder, sources)
            res.messages.extend(pf.messages())
            scores = None
            graded = None
            if pf.gradable:
                scores, graded, status = _grade_student(lab, student, pf, template / "gradebook.db", work, hashes,
                                                        limits, uid, folder, use_sandbox)
                res.status = status
                if scores is None:
                    res.messages.append(f"grading did not finish ({status}); every exercise scores 0")
                elif status != "graded":
                    res.messages.append(status)
            else:
                res.status = "not gradable"
            res.scores = {g: (scores or {}).get(g, 0.0) for g in points}
            _merge(db_url, lab, student, res.scores, None)
            if graded is not None:
                dest = course / "autograded" / student / lab
                if dest.exists():
                    shutil.rmtree(dest)
                dest.mkdir(parents=True)
                for nbfile in graded.glob("*.ipynb"):
                    if nbfile.is_file() and not nbfile.is_symlink() and nbfile.stem in sources:
                        shutil.copyfile(nbfile, dest / nbfile.name)
            res.seconds = time.monotonic() - t0
            results[student] = res
            total = sum(res.scores.values())
            log(f"{student}: {total:g}/{sum(points.values()):g} ({res.status}, {res.seconds:.1f} s)"
                + "".join(f"\n    - {m}" for m in res.messages))
            shutil.rmtree(work / f"student-{student}", ignore_errors=True)
        if feedback:
            _feedback(lab, course, db_url, sources, hidden, results, work / "feedback", log)
        result = ClassResult(lab, points, exercises, results, out_dir, out_dir / "grades.csv",
                             out_dir / "summary.md", None)
        _export(result, course, db_url, work / "export")
        result.save(out_dir / "result.json")
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _feedback(lab, course, db_url, sources, hidden, results, scratch: Path, log) -> None:
    scratch.mkdir()
    (scratch / "nbgrader_config.py").write_text(_config_text(str(scratch), db_url, cell_timeout=30))
    any_nb = False
    for student in results:
        src = course / "autograded" / student / lab
        if not src.is_dir():
            continue
        dest = scratch / "autograded" / student / lab
        dest.mkdir(parents=True)
        for nbfile in src.glob("*.ipynb"):
            try:
                nb = nbformat.read(str(nbfile), as_version=4)
            except Exception:  # noqa: BLE001
                continue
            nbformat.write(sanitize_for_feedback(nb, hidden), str(dest / nbfile.name))
            any_nb = True
    if not any_nb:
        return
    proc = _nbgrader(["generate_feedback", lab, "--force"], scratch, check=False)
    if proc.returncode != 0:
        log(f"generate_feedback reported problems:\n{proc.stderr[-2000:]}")
    for student in results:
        made = scratch / "feedback" / student / lab
        if not made.is_dir():
            continue
        dest = course / "feedback" / student / lab
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for html in made.glob("*.html"):
            text = html.read_text("utf-8", errors="replace")
            if _mentions(text, hidden) or HIDDEN_BEGIN in text:
                results[student].messages.append(f"{html.name}: feedback withheld (it would have shown hidden tests)")
                continue
            shutil.copyfile(html, dest / html.name)


def _export(result: ClassResult, course: Path, db_url: str, scratch: Path) -> None:
    exmax = result.exercise_max()
    with open(result.csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *exmax, "total", "max", "status", "messages"])
        for student, res in result.students.items():
            ex = result.exercise_scores(student)
            w.writerow([student, *(f"{ex[e]:g}" for e in exmax), f"{sum(ex.values()):g}",
                        f"{sum(exmax.values()):g}", res.status, " | ".join(res.messages)])
    scratch.mkdir()
    (scratch / "nbgrader_config.py").write_text(_config_text(str(scratch), db_url, cell_timeout=30))
    _nbgrader(["export", f"--to={result.out_dir / 'nbgrader_grades.csv'}"], scratch, check=False)
    n = len(result.students)
    lines = [f"# Grades of {result.lab}", "", f"{n} student(s).", "",
             "| exercise | max | mean | median | full marks | zero |", "|---|---|---|---|---|---|"]
    for ex, mx in exmax.items():
        vals = sorted(result.exercise_scores(s)[ex] for s in result.students)
        if vals:
            mean = sum(vals) / n
            med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
            full = sum(v >= mx for v in vals)
            zero = sum(v == 0 for v in vals)
            lines.append(f"| {ex} | {mx:g} | {mean:.2f} | {med:g} | {full} ({100 * full / n:.0f}%) | {zero} ({100 * zero / n:.0f}%) |")
    lines += ["", "## Students", ""]
    for student, res in result.students.items():
        lines.append(f"- **{student}**: {sum(res.scores.values()):g} ({res.status})")
        lines += [f"    - {m}" for m in res.messages]
    result.summary_path.write_text("\n".join(lines) + "\n")
    try:
        result.plot_path = _plot(result, exmax)
    except Exception:  # noqa: BLE001 - a plot never stops grading
        result.plot_path = None


def _plot(result: ClassResult, exmax: dict[str, float]) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not result.students or not exmax:
        return None
    names = list(exmax)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.2))
    fracs = [[result.exercise_scores(s)[e] / exmax[e] if exmax[e] else 0.0 for s in result.students] for e in names]
    zero = [sum(v == 0 for v in f) for f in fracs]
    full = [sum(v >= 1 for v in f) for f in fracs]
    part = [len(f) - z - u for f, z, u in zip(fracs, zero, full)]
    x = range(len(names))
    ax.bar(x, full, color="#2a9d8f", label="full marks")
    ax.bar(x, part, bottom=full, color="#e9c46a", label="partial")
    ax.bar(x, zero, bottom=[a + b for a, b in zip(full, part)], color="#e76f51", label="zero")
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylabel("students")
    ax.set_title(f"{result.lab}: scores per exercise", pad=26)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    path = result.out_dir / "scores.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Grade a lab in per-student sandboxes (see module docstring).")
    parser.add_argument("lab")
    parser.add_argument("--course", type=Path, default=ROOT, help="course root (default: this repository)")
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
    result = grade_lab(args.lab, course=args.course, submitted=args.submitted, students=args.student,
                       limits=limits, feedback=not args.no_feedback)
    print(f"\ngrades: {result.csv_path}\nsummary: {result.summary_path}"
          + (f"\nplot: {result.plot_path}" if result.plot_path else ""))


if __name__ == "__main__":
    main()
