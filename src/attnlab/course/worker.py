"""Grading one student, in a grading worker (one worker per core; see :mod:`attnlab.course.grade`).

A worker holds a warm server (:class:`~attnlab.course.zygote.Zygote`) for its kernels. For each
student it checks the submission (:mod:`~attnlab.course.preflight`), builds the notebook that is
graded (:mod:`~attnlab.course.answers`), runs it in a sandboxed grading kernel
(:mod:`~attnlab.course.executor`) and returns the scores, the messages and the executed notebooks
(as plain data). It never writes the course: the grading command does, in one process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from . import answers, executor, notebook
from . import preflight as _preflight
from ..grader import sandbox
from .zygote import THREAD_ENV

__all__ = ["LabFacts", "STUDENT_RE", "KERNEL_ENV", "start", "grade_student", "stop", "serve", "init_line"]

STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
KERNEL_ENV = {"ATTNLAB_FORCE_PROFILE": "smoke", "ATTNLAB_PROGRESS": "text", "MPLBACKEND": "Agg", **THREAD_ENV,
              "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp/home", "MPLCONFIGDIR": "/tmp/mpl",
              "IPYTHONDIR": "/tmp/ipython", "JUPYTER_RUNTIME_DIR": "/tmp/jupyter", "PATH": "/usr/bin:/bin",
              "LANG": "C.UTF-8"}


@dataclass
class LabFacts:
    """What a worker needs to know of the lab (computed once by the grading command)."""

    name: str
    sources: dict  # notebook name -> source notebook (hidden tests included)
    released: dict  # notebook name -> released notebook
    points: dict  # test grade id -> points
    lab_names: list = field(default_factory=list)  # names the lab binds to what answers may not import


_STATE: dict = {}


def start(lab: LabFacts, limits: sandbox.Limits, mode: str, work: str) -> None:
    """Worker initializer: remember the lab, start the warm server."""
    from .zygote import Zygote

    _STATE.update(lab=lab, limits=limits, work=Path(work), zygote=Zygote(mode))


def _restart() -> None:
    """A new warm server (the old one stopped, or would not start a kernel)."""
    from .zygote import Zygote

    mode = _STATE["zygote"].mode
    stop()
    _STATE["zygote"] = Zygote(mode)


def stop() -> None:
    zygote = _STATE.pop("zygote", None)
    if zygote is not None:
        zygote.close()


def grade_student(student: str, folder: str) -> dict:
    """Grade ``folder`` (``submitted/<student>/<lab>``): a dict with ``scores``, ``messages``,
    ``status``, ``seconds`` and ``autograded`` (notebook name -> executed notebook as JSON)."""
    lab: LabFacts = _STATE["lab"]
    t0 = time.monotonic()
    out = {"student": student, "scores": {g: 0.0 for g in lab.points}, "messages": [], "status": "graded",
           "autograded": {}}
    if not STUDENT_RE.match(student):
        out.update(status="not gradable", messages=[f"the folder name {student!r} is not a valid student id"])
        return out
    pf = _preflight.check_submission(student, Path(folder), lab.sources)
    out["messages"] += pf.messages()
    if not pf.gradable:
        out["status"] = "not gradable"
    box = _STATE["work"] / f"student-{student}"
    try:
        for name, submitted in pf.notebooks.items():
            _grade_notebook(lab, name, submitted, box / name, out)
    finally:
        shutil.rmtree(box, ignore_errors=True)
    out["seconds"] = time.monotonic() - t0
    return out


def _grade_notebook(lab: LabFacts, name: str, submitted, box: Path, out: dict) -> None:
    graded = answers.graded_notebook(lab.released[name], lab.sources[name], submitted, lab_names=lab.lab_names)
    out["messages"] += graded.messages
    facts = answers.kernel_facts(lab.released[name], lab.sources[name])
    config = {**facts, "env": dict(KERNEL_ENV), "trusted_roots": sandbox.python_roots()}
    box.mkdir(parents=True, exist_ok=True)
    os.chmod(box, 0o755)
    run = executor.execute_notebook(graded.nb, zygote=_STATE["zygote"], box=box, limits=_STATE["limits"],
                                    config=config)
    if run.status.startswith("the grading kernel did not start"):  # not the student's doing: start over once
        _restart()
        shutil.rmtree(box, ignore_errors=True)
        box.mkdir(parents=True)
        os.chmod(box, 0o755)
        run = executor.execute_notebook(graded.nb, zygote=_STATE["zygote"], box=box, limits=_STATE["limits"],
                                        config=config)
    for gid, ok in run.passed.items():
        if gid in out["scores"]:
            out["scores"][gid] = float(lab.points[gid]) if ok else 0.0
    if run.status != "graded":
        out["status"] = run.status
        out["messages"].append(f"{name}.ipynb: {run.status}; the test cells after that point score 0")
    unconfirmed = [notebook.grade_id(c) for c in run.nb.cells if notebook.is_test_cell(c) and any(
        o.get("ename") == executor.NOT_CONFIRMED and "confirmation" in str(o.get("evalue")) for o in c.get("outputs", []))]
    if unconfirmed:
        out["messages"].append(f"{name}.ipynb: test cell(s) {', '.join(unconfirmed)} did not confirm that they ran to "
                               "their end, and score 0")
    out["autograded"][name] = nbformat.writes(run.nb)


def serve() -> None:
    """A worker process (``python -m attnlab.course.worker``): the first line on stdin is
    ``{"lab": LabFacts, "limits": Limits, "mode": ..., "work": ...}``; then one ``[student, folder]``
    per line, answered by one JSON line each (see :func:`grade_student`)."""
    init = json.loads(sys.stdin.readline())
    lab = LabFacts(**init["lab"])
    lab.sources = {k: nbformat.from_dict(v) for k, v in lab.sources.items()}
    lab.released = {k: nbformat.from_dict(v) for k, v in lab.released.items()}
    start(lab, sandbox.Limits(**init["limits"]), init["mode"], init["work"])
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            student, folder = json.loads(line)
            try:
                answer = grade_student(student, folder)
            except Exception as err:  # noqa: BLE001 - one student's failure never stops the class
                answer = {"student": student, "scores": {}, "messages": [f"grading failed: {type(err).__name__}: {err}"],
                          "status": "grading failed", "autograded": {}}
            print(json.dumps(answer), flush=True)
    finally:
        stop()


def init_line(lab: LabFacts, limits: sandbox.Limits, mode: str, work: str) -> str:
    """The first line a worker reads."""
    return json.dumps({"lab": asdict(lab), "limits": asdict(limits), "mode": mode, "work": work})


if __name__ == "__main__":
    serve()
