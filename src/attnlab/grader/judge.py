"""The judge: runs a lab's test cells, hidden tests included, in its own process, against a sandbox.

The judge never runs student code. It runs the lab's set-up cells and then each test cell of the
instructor's notebook (``solutions/``) in a namespace of its own, where every name that the
student's answer cells defined is a :class:`~attnlab.grader.remote.Remote`: calling it runs the
student's code in the sandbox (:mod:`attnlab.grader.box`) on copies of the judge's inputs. The
judge made the inputs and keeps them; it computes every reference here, with the real ``attnlab``;
a test cell earns its points when it runs to its end here. So nothing the student's code does in
its own process (in-place changes, replaced library functions, a changed ``builtins``, a forged
message) can reach the verdict; what it sends back is data, compared with what it should be.

A cell of the lab that is neither an answer nor a test runs in the sandbox too (before the answers)
when it is *set-up* (imports, settings); a cell that uses an answer (a demonstration that trains the
student's model) is not run at grading at all: it earns no points and would only cost time.
"""

from __future__ import annotations

import ast
import contextlib
import io
import marshal
import time
from dataclasses import dataclass, field

from ..course import notebook
from . import remote

__all__ = ["Case", "LabPlan", "Verdict", "plan_lab", "judge", "defined_names"]


@dataclass
class Case:
    """One test cell: what it runs (hidden tests included) and what it is worth."""

    grade_id: str
    exercise: str | None
    points: float
    source: str


@dataclass
class LabPlan:
    """What the judge needs of one lab notebook (computed once per lab)."""

    name: str
    setup: list[str]  # the lab's own cells that prepare the namespace (run in the judge and the sandbox)
    answers: list[str]  # grade ids of the answer cells, in order
    stubs: dict[str, str]  # grade id -> the released cell (what an unanswered exercise holds)
    solutions: dict[str, str]  # grade id -> the course's answer (for exercises graded on their own)
    tests: list[Case]

    @property
    def points(self) -> dict[str, float]:
        return {c.grade_id: c.points for c in self.tests}


@dataclass
class Verdict:
    """One student's results for one notebook."""

    scores: dict[str, float]
    errors: dict[str, str] = field(default_factory=dict)  # test grade id -> why it scored 0
    answers: dict[str, dict] = field(default_factory=dict)  # answer grade id -> output, error
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    requests: int = 0


def defined_names(source: str) -> set[str]:
    """Top-level names a cell binds (functions, classes, assignments, imports)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                out |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def _used_names(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def plan_lab(name: str, source, released) -> LabPlan:
    """The plan of one lab notebook from the instructor's (``source``) and the released notebook."""
    tainted: set[str] = set()
    setup, answers, solutions, tests = [], [], {}, []
    stubs = {notebook.grade_id(c): c.source for c in released.cells if notebook.is_solution_cell(c)}
    exercise_ids = notebook.exercises(source)
    for cell in source.cells:
        if cell.cell_type != "code":
            continue
        gid = notebook.grade_id(cell)
        if notebook.is_solution_cell(cell):
            answers.append(gid)
            solutions[gid] = cell.source
            tainted |= defined_names(cell.source)
        elif notebook.is_test_cell(cell):
            tests.append(Case(gid, notebook.owner_of(gid, exercise_ids), float(notebook.nbgrader_meta(cell).get("points", 0)),
                              cell.source))
        elif _used_names(cell.source) & tainted:
            tainted |= defined_names(cell.source)  # a demonstration: not run at grading
        else:
            setup.append(cell.source)
    return LabPlan(name, setup, answers, stubs, solutions, tests)


class _Hooks:
    """What the lab's grading helpers ask of the judge (``namespace["__judge__"]``)."""

    def __init__(self, plan: LabPlan, verdict: Verdict):
        self.plan, self.verdict, self.channel = plan, verdict, None

    @contextlib.contextmanager
    def graded_alone(self, names):
        """The course's answers of earlier exercises under ``names`` in the sandbox, for the block."""
        names = list(names)
        needed = [gid for gid in self.plan.answers if defined_names(self.plan.solutions[gid]) & set(names)]
        last = max(self.plan.answers.index(g) for g in needed) if needed else -1
        # compiled here, without docstrings, and sent as bytecode: the sandbox never holds the
        # course's source of an answer, which a student's code could otherwise print or raise
        code = [marshal.dumps(compile(self.plan.solutions[g], "<course>", "exec", optimize=2))
                for g in self.plan.answers[: last + 1]]
        self.channel.ask({"op": "inject", "names": names, "cells": len(code)}, code, what="preparing the test")
        try:
            yield
        finally:
            if not self.channel.dead:
                self.channel.ask({"op": "restore"}, what="finishing the test")


def _message(err: BaseException) -> str:
    tb = getattr(err, "student_traceback", "")
    kind = type(err).__name__
    text = f"{kind}: {err}" if not isinstance(err, AssertionError) or type(err) is not AssertionError else str(err)
    if tb:
        text += f"\n\nraised by your code in {getattr(err, 'student_call', 'your code')}:\n{tb}"
    return text[:12_000]


def _run_setup(plan: LabPlan) -> dict:
    ns: dict = {"__name__": "__main__"}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        for source in plan.setup:
            exec(compile(source, "<lab set-up>", "exec"), ns)  # noqa: S102 - the lab's own cells
    return ns


def _start(plan: LabPlan, answers: dict[str, str], connect, verdict: Verdict,
           skip: set[str]) -> tuple[remote.Channel, dict]:
    """A connected sandbox that ran the set-up and the answers; the names they defined.

    Each answer cell runs on its own time limit; one that does not finish (an endless loop at the top
    of the cell) is recorded, and the sandbox is started again without it: only that exercise loses.
    """
    while True:
        channel = connect()
        report, _ = channel.ask({"op": "setup", "setup": plan.setup}, what="the lab's set-up cells",
                                timeout=channel.timeout * 2)
        failed = [s for s in report.get("setup", []) if s.get("error")] if isinstance(report, dict) else []
        if failed and not verdict.messages:
            verdict.messages.append("the lab's set-up cells failed in the sandbox: "
                                    + str(failed[0]["error"].get("message", "")))
        names: dict[str, str] = {}
        try:
            for gid in plan.answers:
                if gid in skip:
                    continue
                source = answers.get(gid, plan.stubs.get(gid, ""))
                item, _ = channel.ask({"op": "cell", "id": gid, "source": source}, what=f"your answer cell {gid}")
                _record(item, verdict, names)
            return channel, names
        except remote.BoxDied as err:
            skip.add(gid)
            verdict.answers[gid] = {"output": "", "error": {"type": "TimeoutError", "message": str(err),
                                                           "traceback": f"{err}: this answer cell was not run"}}
            verdict.messages.append(f"{gid}: {err}; the exercise is graded without it")


def _record(item, verdict: Verdict, names: dict) -> None:
    if not isinstance(item, dict):
        return
    gid = str(item.get("id"))
    verdict.answers[gid] = {"output": str(item.get("output") or ""), "error": item.get("error")}
    for n, kind in (item.get("names") or {}).items():
        if isinstance(n, str) and n.isidentifier() and kind in ("class", "function", "value"):
            names[n] = kind


def judge(plan: LabPlan, answers: dict[str, str], connect, *, restarts: int = 2) -> Verdict:
    """Grade one student's ``answers`` (grade id -> source) with a sandbox from ``connect()``
    (a :class:`~attnlab.grader.remote.Channel` to a fresh box; called again after a box dies)."""
    t0 = time.monotonic()
    verdict = Verdict({c.grade_id: 0.0 for c in plan.tests})
    hooks = _Hooks(plan, verdict)
    channel, skip = None, set()
    try:
        channel, names = _start(plan, answers, connect, verdict, skip)
        ns = _run_setup(plan)
        # only what the exercises ask for stands for the student's objects: an answer cell that
        # rebinds one of the lab's own names (G, torch, a constant) changes nothing here
        wanted = set().union(*(defined_names(s) for s in plan.solutions.values())) - set(ns)
        ns.update(remote.globals_of(channel, {n: k for n, k in names.items() if n in wanted}))
        ns["__judge__"], hooks.channel = hooks, channel
        for case in plan.tests:
            if channel.dead and restarts > 0:
                restarts -= 1
                verdict.messages.append(f"the sandbox was restarted after: {channel.dead}")
                channel, names = _start(plan, answers, connect, Verdict({}), skip)
                ns.update(remote.globals_of(channel, {n: k for n, k in names.items() if n in wanted}))
                hooks.channel = channel
            _run_case(case, ns, channel, verdict)
            verdict.requests = channel.requests
    except remote.BoxDied as err:
        verdict.messages.append(f"grading stopped: {err}")
    finally:
        if channel is not None:
            with contextlib.suppress(OSError):
                channel.sock.close()
    verdict.seconds = time.monotonic() - t0
    return verdict


def _run_case(case: Case, ns: dict, channel: remote.Channel, verdict: Verdict) -> None:
    if channel.dead:
        verdict.errors[case.grade_id] = f"not run: {channel.dead}"
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(case.source, f"<test {case.grade_id}>", "exec"), ns)  # noqa: S102 - the lab's test
        verdict.scores[case.grade_id] = case.points
    except Exception as err:  # noqa: BLE001 - a failing test scores 0, whatever the reason
        verdict.errors[case.grade_id] = _message(err)
    finally:
        with contextlib.suppress(remote.BoxDied, remote.StudentError, Exception):
            channel.release()
