"""Classes of students graded once per test session by :func:`attnlab.grader.grade.grade_lab`.

Shared by tests/test_grading_honest.py, tests/test_grading_adversarial.py and
tests/test_grading_class.py: a class is written into a fresh course, graded ONCE per sandbox mode
(``"root"``: the tests run as root, as CI does; ``"user"``: the unprivileged user-namespace sandbox,
reached from root by grading as a fresh uid with no capabilities), and the tests then assert per
student. What the run records besides the grader's own result: the SHA-256 of every course file
before and after, the files that appeared under the host's /tmp, this checkout's ``src/`` and
``solutions/`` during the run, the connections a server on the host received, the run's seconds
and the largest resident memory of the grading processes.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat

from attnlab.course import harness, notebook
from attnlab.grader import sandbox

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
IS_ROOT = os.geteuid() == 0


def modes() -> list[str]:
    """The sandbox modes this machine can grade in: "root" (as root) and "user" (unprivileged)."""
    if IS_ROOT:
        return [m for m in ("root", "user") if sandbox.available(m)[0]]
    return ["user"] if sandbox.available("user")[0] else []


USER_LAB = "lab03_transformer"  # the lab graded in both sandboxes; the others in the first mode only


def runs(labs) -> list[tuple[str, str]]:
    """(lab, mode) of the classes graded: every lab in the first mode, and lab 3 (which holds every
    kind of attack, the honest corpus of lab 3 and the malformed files) in every mode. Each run costs
    a minute or so, and what differs between the sandboxes is the sandbox, not the lab."""
    ms = modes()
    return [(lab, ms[0]) for lab in labs] + [(USER_LAB, m) for m in ms[1:] if USER_LAB in labs] if ms else []


# -- notebooks -----------------------------------------------------------------------------------


def lab_notebooks(lab: str) -> tuple:
    """(released, solution) notebooks of ``lab`` as this checkout holds them."""
    name = f"{lab}.ipynb"
    return (nbformat.read(str(ROOT / "labs" / lab / name), as_version=4),
            nbformat.read(str(ROOT / "solutions" / lab / name), as_version=4))


def with_cells(nb, sources: dict[str, str]):
    """A copy of ``nb`` with the answer cells named in ``sources`` (grade id -> source) replaced."""
    nb = copy.deepcopy(nb)
    seen = set()
    for cell in nb.cells:
        gid = notebook.grade_id(cell)
        if gid in sources and notebook.is_solution_cell(cell):
            cell.source = sources[gid]
            seen.add(gid)
    missing = set(sources) - seen
    assert not missing, f"no answer cell {missing}"
    return nb


def solved(lab: str):
    released, solution = lab_notebooks(lab)
    return harness.with_answers(released, solution)


def exercise_points(result, exercise: str) -> float:
    return sum(result.max_scores[g] for g in result.exercises[exercise])


# -- the host around the run ---------------------------------------------------------------------


def _tree_hashes(course: Path) -> dict[str, str]:
    out = {}
    for top in ("solutions", "labs", "source", "release", "submitted", "nbgrader_config.py"):
        p = course / top
        if not p.exists():
            continue
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                out[str(f.relative_to(course))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _listing(folder: Path) -> set[str]:
    """Every path under ``folder`` (files and folders)."""
    return {str(p) for p in folder.rglob("*")} if folder.exists() else set()


def _host_tmp() -> set[str]:
    return {str(p) for p in Path("/tmp").iterdir()}


class _Server:
    """A server on the grading machine that no submission may reach."""

    def __init__(self):
        self.hits: list[str] = []
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.hits.append(conn.recv(100).decode("latin-1"))
                conn.close()
            except OSError:
                pass
        self.sock.close()


# -- grading -------------------------------------------------------------------------------------


def _grade(course: str, lab: str, mode: str, limits: dict, feedback: bool) -> dict:
    """Grade the class (in a process of its own): the result's path and what the run cost."""
    os.environ["ATTNLAB_FORCE_PROFILE"] = "smoke"
    from attnlab.grader import grade

    t0 = time.monotonic()
    result = grade.grade_lab(lab, course=Path(course), mode=mode, limits=sandbox.Limits(**limits), feedback=feedback,
                             similarity=False, log=lambda line: None)
    return {"result": str(result.out_dir / "result.json"), "seconds": time.monotonic() - t0, "uid": os.getuid(),
            "maxrss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}


def run_class(shared: Path, lab: str, mode: str, write, *, limits: dict | None = None, feedback: bool = True,
              server: bool = False) -> dict:
    """Write a class of ``lab`` into a fresh course under ``shared`` (``write(course, port)`` writes
    ``course/submitted/<student>/<lab>/``), grade it in ``mode``, and return what was recorded."""
    course = shared / "course"
    harness.new_course(lab, course, ROOT)
    srv = _Server() if server else None
    write(course, srv.port if srv else 0)
    before = _tree_hashes(course)
    watched = {"src": ROOT / "src", "solutions": ROOT / "solutions"}
    listings = {k: _listing(p) for k, p in watched.items()}
    tmp_before = _host_tmp()
    limits = limits or {}
    if mode == "user" and IS_ROOT:
        data = _grade_unprivileged(shared, lab, limits, feedback)
    else:
        code = (f"import json, sys; sys.path.insert(0, {str(TESTS)!r}); import _grading_classes as C; "
                f"print(json.dumps(C._grade({str(course)!r}, {lab!r}, {mode!r}, {limits!r}, {feedback!r})))")
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
        assert proc.returncode == 0, proc.stderr[-5000:]
        data = json.loads(proc.stdout.strip().splitlines()[-1])
    if srv:
        srv.stop.set()
    return {**data, "course": str(course), "lab": lab, "mode": mode, "limits": limits,
            "before": before, "after": _tree_hashes(course),
            "new_files": {k: sorted(_listing(p) - listings[k]) for k, p in watched.items()},
            "new_tmp": sorted(_host_tmp() - tmp_before), "hits": srv.hits if srv else []}


def _grade_unprivileged(shared: Path, lab: str, limits: dict, feedback: bool) -> dict:
    """As root: grade the class as a fresh uid with no capabilities (the user-namespace sandbox)."""
    from _shared import run_unprivileged

    uid = sandbox.pick_uid()
    for p in [shared, *shared.rglob("*")]:
        os.lchown(p, uid, uid)
    view = f"/tmp/attnlab-unprivileged-{uid}"
    code = (f"import json, sys; sys.path.insert(0, {str(TESTS)!r}); import _grading_classes as C; "
            f"print(json.dumps(C._grade({view + '/course'!r}, {lab!r}, 'user', {limits!r}, {feedback!r})))")
    proc = run_unprivileged(code, folder=shared, uid=uid, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-5000:]
    data = json.loads(proc.stdout.strip().splitlines()[-1].replace(view, str(shared)))
    result = Path(data["result"])
    result.write_text(result.read_text().replace(view, str(shared)))
    assert data["uid"] == uid != 0
    return data


def write_students(course: Path, lab: str, notebooks: dict) -> None:
    """``notebooks``: student -> a notebook, or text/bytes written as the file as they are, or None
    (an empty submission folder)."""
    for student, nb in notebooks.items():
        folder = course / "submitted" / student / lab
        folder.mkdir(parents=True)
        path = folder / f"{lab}.ipynb"
        if nb is None:
            continue
        if isinstance(nb, bytes):
            path.write_bytes(nb)
        elif isinstance(nb, str):
            path.write_text(nb, encoding="utf-8")
        else:
            nbformat.write(nb, str(path))


def load(data: dict):
    """The :class:`~attnlab.grader.results.ClassResult` of a recorded run."""
    from attnlab.grader.results import ClassResult

    return ClassResult.load(Path(data["result"]))


def gradebook(data: dict) -> dict:
    from attnlab.grader.gradebook import gradebook_scores

    return gradebook_scores(f"sqlite:///{data['course']}/gradebook.db", data["lab"])


def autograded(data: dict, student: str) -> Path:
    return Path(data["course"]) / "autograded" / student / data["lab"] / f"{data['lab']}.ipynb"


def feedback_page(data: dict, student: str) -> Path:
    return Path(data["course"]) / "feedback" / student / data["lab"] / f"{data['lab']}.html"


def hidden_test_lines(lab: str, also_visible: list[str] = ()) -> list[str]:
    """The hidden-test lines of ``lab`` (12 characters or more) that appear nowhere a student may see
    them: not in the released notebook, nor in ``also_visible`` texts (the students' own files)."""
    from attnlab.grader.feedback import hidden_lines

    released, solution = lab_notebooks(lab)
    seen = {line.strip() for cell in released.cells for line in cell.source.splitlines()}
    for text in also_visible:
        seen |= {line.strip() for line in text.splitlines()}
    return [line for line in hidden_lines({lab: solution}) if line not in seen]
