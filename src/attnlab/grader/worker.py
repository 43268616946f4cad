"""Grading one student, in a grading worker (one worker per core; see :mod:`attnlab.grader.grade`).

A worker is a judge (:mod:`attnlab.grader.judge`) with its own warm sandbox server
(:class:`~attnlab.grader.boxes.Boxes`). For each student it checks the submission
(:mod:`~attnlab.grader.preflight`), takes the answer cells, has the judge grade them against a
fresh sandbox, and returns the scores, the messages and the autograded notebook (the lab's cells
with the student's answers, their printed output, and each failing test's reason) as plain data.
It never writes the course: the grading command does, in one process.
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from ..course import notebook
from . import judge as _judge
from . import preflight as _preflight
from . import sandbox, stubs
from .boxes import Boxes

__all__ = ["LabFacts", "STUDENT_RE", "Grader", "autograded_notebook", "answers_of", "serve", "init_line"]

STUDENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")


@dataclass
class LabFacts:
    """What a worker needs to know of the lab (computed once by the grading command)."""

    name: str
    sources: dict  # notebook name -> source notebook (hidden tests included)
    released: dict  # notebook name -> released notebook
    points: dict  # test grade id -> points


def answers_of(student_nb) -> dict[str, str]:
    """grade id -> the student's source of each answer cell (the first cell with that id)."""
    out: dict[str, str] = {}
    for cell in student_nb.cells:
        gid = notebook.grade_id(cell)
        if notebook.is_solution_cell(cell) and cell.get("cell_type") == "code" and gid and gid not in out:
            out[gid] = cell.get("source", "")
    return out


def _added_cells(student_nb, released) -> int:
    lab_sources = {c.source.strip() for c in released.cells if c.cell_type == "code"}
    return sum(1 for c in student_nb.cells if c.get("cell_type") == "code" and not notebook.nbgrader_meta(c)
               and c.get("source", "").strip() and c.get("source", "").strip() not in lab_sources)


def autograded_notebook(released, source, answers: dict[str, str], verdict: _judge.Verdict):
    """The released notebook with the student's answers and what grading found, cell by cell."""
    nb = copy.deepcopy(released)
    tests = {notebook.grade_id(c): c.source for c in source.cells if notebook.is_test_cell(c)}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        gid = notebook.grade_id(cell)
        cell.outputs, cell.execution_count = [], None
        if notebook.is_test_cell(cell) and gid in tests:
            cell.source = tests[gid]
            if gid in verdict.errors:
                first = verdict.errors[gid].splitlines()[0] if verdict.errors[gid] else "failed"
                cell.outputs = [nbformat.v4.new_output("error", ename="TestFailed", evalue=first[:2000],
                                                       traceback=[verdict.errors[gid]])]
        elif notebook.is_solution_cell(cell):
            cell.source = answers.get(gid, cell.source)
            ran = verdict.answers.get(gid, {})
            if ran.get("output"):
                cell.outputs.append(nbformat.v4.new_output("stream", name="stdout", text=ran["output"]))
            err = ran.get("error")
            if isinstance(err, dict):
                cell.outputs.append(nbformat.v4.new_output("error", ename=str(err.get("type", "Error"))[:80],
                                                           evalue=str(err.get("message", ""))[:2000],
                                                           traceback=[str(err.get("traceback", ""))]))
    return nb


class Grader:
    """One worker's judge and sandboxes for a lab."""

    def __init__(self, lab: LabFacts, limits: sandbox.Limits, mode: str, work: Path, package: Path):
        self.lab, self.limits = lab, limits
        self.plans = {name: _judge.plan_lab(name, lab.sources[name], lab.released[name]) for name in lab.sources}
        graded = {}
        for plan in self.plans.values():
            graded.update(stubs.graded_names(plan.solutions))
        self.boxes = Boxes(package=package, graded=graded, mode=mode, limits=limits, work=work)

    def connect(self):
        return self.boxes.connect()

    def grade(self, student: str, folder: str) -> dict:
        """``scores``, ``messages``, ``status``, ``seconds`` and ``autograded`` (name -> notebook JSON)."""
        t0 = time.monotonic()
        out = {"student": student, "scores": {g: 0.0 for g in self.lab.points}, "messages": [], "status": "graded",
               "autograded": {}}
        if not STUDENT_RE.match(student):
            out.update(status="not gradable", messages=[f"the folder name {student!r} is not a valid student id"])
            return out
        pf = _preflight.check_submission(student, Path(folder), self.lab.sources)
        out["messages"] += pf.messages()
        if not pf.gradable:
            out["status"] = "not gradable"
        for name, submitted in pf.notebooks.items():
            self._grade_notebook(name, submitted, out, t0)
        out["seconds"] = time.monotonic() - t0
        return out

    def _grade_notebook(self, name: str, submitted, out: dict, t0: float) -> None:
        plan, released = self.plans[name], self.lab.released[name]
        answers = answers_of(submitted)
        added = _added_cells(submitted, released)
        if added:
            out["messages"].append(f"{added} code cell(s) you added (or lab cells you changed outside the answer "
                                   "cells) were not run at grading: only the lab's set-up cells and your answer "
                                   "cells are run")
        channels = []

        def connect():
            if time.monotonic() - t0 > self.limits.wall_s:
                raise _judge.remote.BoxDied(f"grading this student took over {self.limits.wall_s:g} s")
            channels.append(self.boxes.connect())
            return channels[-1]

        try:
            verdict = _judge.judge(plan, answers, connect)
        finally:
            for channel in channels:
                self.boxes.close_box(channel)
        for gid, pts in verdict.scores.items():
            if gid in out["scores"]:
                out["scores"][gid] = float(pts)
        out["messages"] += [f"{name}.ipynb: {m}" for m in verdict.messages]
        if any(m.startswith("grading stopped") for m in verdict.messages):
            out["status"] = "stopped: " + verdict.messages[-1].removeprefix("grading stopped: ")[:200]
        out["requests"] = verdict.requests
        out["autograded"][name] = nbformat.writes(autograded_notebook(released, self.lab.sources[name], answers,
                                                                      verdict))

    def close(self) -> None:
        self.boxes.close()


def serve() -> None:
    """A worker process (``python -m attnlab.grader.worker``): the first line on stdin is
    ``{"lab": LabFacts, "limits": Limits, "mode": ..., "work": ..., "package": ...}``; then one
    ``[student, folder]`` per line, answered by one JSON line each (see :meth:`Grader.grade`)."""
    sys.dont_write_bytecode = True
    init = json.loads(sys.stdin.readline())
    lab = LabFacts(**init["lab"])
    lab.sources = {k: nbformat.from_dict(v) for k, v in lab.sources.items()}
    lab.released = {k: nbformat.from_dict(v) for k, v in lab.released.items()}
    grader = Grader(lab, sandbox.Limits(**init["limits"]), init["mode"], Path(init["work"]), Path(init["package"]))
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            student, folder = json.loads(line)
            try:
                answer = grader.grade(student, folder)
            except Exception as err:  # noqa: BLE001 - one student's failure never stops the class
                answer = {"student": student, "scores": {}, "messages": [f"grading failed: {type(err).__name__}: {err}"],
                          "status": "grading failed", "autograded": {}}
            print(json.dumps(answer), flush=True)
    finally:
        grader.close()


def init_line(lab: LabFacts, limits: sandbox.Limits, mode: str, work: str, package: str) -> str:
    """The first line a worker reads."""
    return json.dumps({"lab": asdict(lab), "limits": asdict(limits), "mode": mode, "work": work, "package": package})


if __name__ == "__main__":
    serve()
