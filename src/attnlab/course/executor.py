"""Run one student's notebook in a sandboxed grading kernel, from outside the sandbox, and judge it.

The executor is the trusted side of grading. It asks the warm server
(:class:`~attnlab.course.zygote.Zygote`) for a kernel in a fresh sandbox, connects to it over Unix
sockets, sends the code cells one by one (each with what it is: a lab cell, an answer cell or a
test cell, and for a test cell a fresh random challenge), collects the outputs, and enforces the
time limits: a cell past its limit is interrupted, and killed with the whole sandbox if it does
not stop; the student's whole notebook has a wall-clock limit; the private resident memory of the
sandbox's processes is watched (with or without a cgroup) and the sandbox killed past its limit.

A test cell passes only when it shows no error **and** the kernel sent a valid confirmation for
it (see :mod:`attnlab.course.kernel_guard`): the HMAC of its challenge and its SHA-256 under a key
this process made for this kernel alone. A missing or wrong confirmation becomes an error output
that says so. Cells after the lab's last test cell are not run (they cannot change a score).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

from . import notebook, sandbox
from .kernel_guard import CONFIRM_MIME, KernelConfig, confirmation

__all__ = ["RunResult", "NOT_CONFIRMED", "execute_notebook", "tree_memory"]

NOT_CONFIRMED = "GradingError"
MAX_OUTPUT_CHARS = 200_000  # per cell; the rest is cut (a notebook that prints for ever stays small)


@dataclass
class RunResult:
    """What running one notebook gave: the executed notebook, and which test cells passed."""

    nb: nbformat.NotebookNode
    passed: dict[str, bool] = field(default_factory=dict)  # test grade id -> passed
    status: str = "graded"
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def tree_memory(pid: int) -> int:
    """Private resident bytes of ``pid`` and all its descendants (0 when gone): what the sandbox
    added to the machine, not the pages it shares with the warm server it was forked from."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
            total += sum(int(line.split()[1]) * 1024 for line in rollup.splitlines()
                         if line.startswith(("Private_Clean:", "Private_Dirty:")))
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class _Kernel:
    """One sandboxed kernel and the client that talks to it."""

    def __init__(self, zygote, box: Path, limits: sandbox.Limits, config: dict):
        from jupyter_client import BlockingKernelClient
        from jupyter_client.connect import write_connection_file

        self.limits, self.box = limits, box
        self.key = secrets.token_bytes(32)
        for d in ("root", "work", "ipc"):
            (box / d).mkdir(parents=True, exist_ok=True)
        conn, _ = write_connection_file(str(box / "ipc" / "kernel.json"), transport="ipc", ip=str(box / "ipc" / "k"),
                                        key=secrets.token_hex(16).encode())
        os.chmod(conn, 0o644)
        uid = sandbox.pick_uid()
        self.cgroups = sandbox.make_cgroups(f"attnlab_{os.getpid()}_{uid}", limits) if zygote.mode == "root" else []
        spec = sandbox.BoxSpec(zygote.mode, str(box / "root"), str(box / "work"), str(box / "ipc"), uid=uid,
                               limits=asdict(limits), ro=sandbox.python_roots(), cgroups=self.cgroups)
        cfg = KernelConfig(connection_file=conn, **config)
        answer = zygote.start({"op": "kernel", "spec": asdict(spec), "config": asdict(cfg), "key": self.key.hex()})
        self.pid = answer.get("pid")
        self.error = answer.get("error")
        self._checked = 0.0
        self.client = BlockingKernelClient(connection_file=conn)
        self.client.load_connection_file()
        self.client.start_channels()

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid and _alive(self.pid):
            try:
                self.client.wait_for_ready(timeout=2)
                return True
            except RuntimeError:
                continue
        return False

    def too_big(self) -> bool:
        """Past the memory limit (checked here too where a cgroup also holds it: it may count differently)."""
        now = time.monotonic()
        if self.pid is None or now - self._checked < 0.2:
            return False
        self._checked = now
        return tree_memory(self.pid) > self.limits.memory

    def close(self) -> None:
        try:
            self.client.stop_channels()
        finally:
            if self.pid:
                _kill(self.pid)
            sandbox.remove_cgroups(self.cgroups)
            shutil.rmtree(self.box / "root", ignore_errors=True)


def _append(outputs: list, msg: dict, size: list) -> None:
    kind = msg["header"]["msg_type"]
    if kind == "clear_output":
        outputs.clear()
        return
    if kind not in ("stream", "display_data", "execute_result", "error"):
        return
    out = nbformat.v4.output_from_msg(msg)
    if CONFIRM_MIME in (out.get("data") or {}):
        outputs.append(out)  # never cut: it is how a test cell earns its points
        return
    before = size[0]
    size[0] += len(str(out.get("text", ""))) + sum(len(str(v)) for v in (out.get("data") or {}).values())
    if size[0] > MAX_OUTPUT_CHARS and kind != "error":
        if before > MAX_OUTPUT_CHARS:
            return
        if kind != "stream":
            out = nbformat.v4.new_output("stream", name="stdout", text="")
        out.text = out.text[: MAX_OUTPUT_CHARS - before] + "\n[output cut: too long]\n"
    if kind == "stream" and outputs and outputs[-1].get("output_type") == "stream" and outputs[-1].name == out.name:
        outputs[-1].text += out.text
    else:
        outputs.append(out)


def _run_cell(kernel: _Kernel, source: str, meta: dict, timeout: float) -> tuple[list, str | None]:
    """Execute one cell; return (outputs, problem): problem is None, "interrupted" (past its time,
    stopped by an interrupt), "killed" (it would not stop: the sandbox was killed) or "died"."""
    client = kernel.client
    msg = client.session.msg("execute_request", {"code": source, "silent": False, "store_history": True,
                                                 "user_expressions": {}, "allow_stdin": False,
                                                 "stop_on_error": False}, metadata={"attnlab": meta})
    client.shell_channel.send(msg)
    msg_id = msg["header"]["msg_id"]
    outputs: list = []
    size = [0]
    deadline, interrupted = time.monotonic() + timeout, False
    while True:
        if kernel.too_big():
            _kill(kernel.pid)
            return outputs, "died"
        if time.monotonic() > deadline:
            if interrupted:
                _kill(kernel.pid)
                return outputs, "killed"
            os.kill(kernel.pid, signal.SIGINT)
            interrupted, deadline = True, time.monotonic() + 5
        try:
            reply = client.get_iopub_msg(timeout=0.25)
        except Exception:  # noqa: BLE001 - queue.Empty: check the kernel
            if not _alive(kernel.pid):
                return outputs, "died"
            continue
        if reply["parent_header"].get("msg_id") != msg_id:
            continue
        if reply["header"]["msg_type"] == "status" and reply["content"].get("execution_state") == "idle":
            return outputs, ("interrupted" if interrupted else None)
        _append(outputs, reply, size)


def _judge(outputs: list, key: bytes, challenge: str, digest: str) -> tuple[list, bool]:
    """Drop confirmation outputs; (outputs, whether exactly one valid confirmation came and no error)."""
    expected = confirmation(key, challenge, digest)
    kept, good = [], 0
    for out in outputs:
        data = out.get("data") or {}
        if CONFIRM_MIME in data:
            mac = (data[CONFIRM_MIME] or {}).get("mac") if isinstance(data[CONFIRM_MIME], dict) else None
            good += bool(mac) and secrets.compare_digest(str(mac), expected)
            continue
        kept.append(out)
    errors = any(o.get("output_type") == "error" for o in kept)
    return kept, good == 1 and not errors


def _not_confirmed(why: str):
    return nbformat.v4.new_output("error", ename=NOT_CONFIRMED, evalue=why, traceback=[f"{NOT_CONFIRMED}: {why}"])


def execute_notebook(nb, *, zygote, box: Path, limits: sandbox.Limits, config: dict) -> RunResult:
    """Run the code cells of ``nb`` (the graded notebook) up to its last test cell; judge its tests.

    ``config`` holds the lab's facts for the kernel (see :class:`~attnlab.course.kernel_guard.KernelConfig`,
    without the connection file).
    """
    nb = nbformat.from_dict(nb)
    start = time.monotonic()
    result = RunResult(nb)
    cells = [c for c in nb.cells if c.cell_type == "code"]
    last = max((i for i, c in enumerate(cells) if notebook.is_test_cell(c)), default=-1)
    kernel = _Kernel(zygote, box, limits, config)
    try:
        if kernel.error or not kernel.wait_ready(60):
            result.status = f"the grading kernel did not start ({kernel.error or 'no answer'})"
            return result
        for cell in cells[: last + 1]:
            _execute_one(kernel, cell, result, None if result.status == "graded" else result.status, start)
    finally:
        kernel.close()
    for cell in cells[last + 1:]:
        cell.outputs = []
    result.seconds = time.monotonic() - start
    return result


def _execute_one(kernel: _Kernel, cell, result: RunResult, dead: str | None, start: float) -> None:
    gid = notebook.grade_id(cell) or ""
    test = notebook.is_test_cell(cell)
    if dead is not None:
        cell.outputs = [_not_confirmed(f"not run: {dead}")] if test else []
        if test:
            result.passed[gid] = False
        return
    kind = "test" if test else "answer" if notebook.is_solution_cell(cell) else "lab"
    challenge = secrets.token_hex(16)
    left = kernel.limits.wall_s - (time.monotonic() - start)
    outputs, problem = _run_cell(kernel, cell.source, {"kind": kind, "gid": gid, "challenge": challenge},
                                 max(1.0, min(kernel.limits.cell_timeout_s, left)))
    wall = left <= kernel.limits.cell_timeout_s
    if problem == "died":
        result.status = "the kernel died (it was killed, ran out of memory, or its code ended it)"
    elif problem in ("interrupted", "killed") and wall:
        result.status = f"timed out after {kernel.limits.wall_s:.0f} s"
    elif problem == "killed":
        result.status = f"a cell ran past {kernel.limits.cell_timeout_s} s and would not stop: the kernel was stopped"
    elif problem == "interrupted":
        outputs.append(_not_confirmed(f"this cell ran longer than {kernel.limits.cell_timeout_s} s and was stopped"))
    if test:
        outputs, ok = _judge(outputs, kernel.key, challenge, notebook.cell_hash(cell.source))
        if not ok and not any(o.get("output_type") == "error" for o in outputs):
            outputs.append(_not_confirmed("the grader saw no confirmation that this test cell ran to its end"))
        result.passed[gid] = ok
    else:
        outputs = [o for o in outputs if CONFIRM_MIME not in (o.get("data") or {})]
    cell.outputs = outputs
