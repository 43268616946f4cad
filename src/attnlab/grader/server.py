"""The warm server that starts a student's sandbox by ``fork`` (one server per grading worker and lab).

Starting Python with ``torch`` costs 4-5 s on this kind of machine. The server imports ``torch``,
IPython and the lab's *stubbed* ``attnlab`` (:mod:`attnlab.grader.stubs`; the server is started
with that copy first on its path, so the real reference code is never loaded into it) once; for
each student it forks a child that enters a fresh sandbox (:func:`attnlab.grader.sandbox.enter`)
and becomes the box (:func:`attnlab.grader.box.main`), which connects to the judge's socket. The
server never runs student code itself, and it is single-threaded when it forks.

``mode`` ``"root"`` or ``"user"`` builds the sandbox (as an ordinary user the server runs inside
``unshare --user --map-root-user``); ``"plain"`` forks the box with no sandbox at all, for the
course's own tests of the judge (mutants, the honest corpus), never for students.

Protocol: one JSON request per line on stdin (``{"spec": BoxSpec, "socket": path}``), one JSON
answer per line on stdout: ``{"pid": ...}`` (killing it ends the sandbox) or ``{"error": ...}``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["BoxServer", "serve", "THREAD_ENV"]

THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_WARM = ("numpy", "torch", "torch.nn.functional", "torchvision", "einops", "scipy.ndimage", "scipy.optimize",
         "matplotlib.pyplot", "IPython.core.interactiveshell", "attnlab.grader.box")


def _warm_up() -> None:
    import importlib
    import pkgutil

    import attnlab

    for name in _WARM:
        importlib.import_module(name)
    for info in pkgutil.walk_packages(attnlab.__path__, "attnlab."):
        if not info.name.startswith(("attnlab.course", "attnlab.grader")):
            importlib.import_module(info.name)
    from IPython.core.interactiveshell import InteractiveShell

    InteractiveShell.instance()  # built once here, so that each box starts with it


def _child(request: dict, report: int, log: str) -> None:
    """Process A: leave the server's pipes, enter the sandbox (or not, in plain mode), report."""
    from . import box, sandbox

    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, report)
    os.closerange(report + 1, 1 << 16)
    path = request["socket"]
    spec = sandbox.BoxSpec(**request["spec"])

    def start() -> None:
        os.environ.clear()
        os.environ.update(spec.env)
        box.main(path)

    if request.get("plain"):
        os.write(report, json.dumps({"pid": os.getpid()}).encode())
        os.close(report)
        os.chdir(spec.workdir)
        start()
        os._exit(0)
    try:
        pid = sandbox.enter(spec, start)
    except OSError as err:
        os.write(report, json.dumps({"error": f"the sandbox could not be made: {err}"}).encode())
        os._exit(71)
    os.write(report, json.dumps({"pid": pid}).encode())
    os.close(report)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
        except InterruptedError:
            continue


def _spawn(request: dict) -> dict:
    read_fd, write_fd = os.pipe()
    log = str(Path(request["spec"]["workdir"]).parent / "sandbox.log")
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _child(request, write_fd, log)
        finally:
            os._exit(70)
    os.close(write_fd)
    ready, _, _ = select.select([read_fd], [], [], 30)
    data = os.read(read_fd, 4096) if ready else b""
    os.close(read_fd)
    try:
        return json.loads(data.decode())
    except ValueError:
        return {"error": "the sandbox did not start (see sandbox.log)"}


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve() -> None:
    """The server loop (``python -m attnlab.grader.server``)."""
    os.environ.update(THREAD_ENV)
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.dont_write_bytecode = True
    _warm_up()
    import gc

    gc.collect()
    gc.freeze()  # the warm objects stay shared between the forks
    print(json.dumps({"ready": True, "uid": os.getuid()}), flush=True)
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        _reap()
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line:
            return
        print(json.dumps(_spawn(json.loads(line))), flush=True)


class BoxServer:
    """A warm server for one lab's stubbed package; :meth:`start` forks one sandboxed box."""

    def __init__(self, mode: str, stub_root: Path, *, startup_timeout: float = 120):
        cmd = [sys.executable, "-m", "attnlab.grader.server"]
        if mode == "user":
            cmd = ["unshare", "--user", "--map-root-user", *cmd]
        self._mpl = tempfile.mkdtemp(prefix="attnlab-mpl-")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **THREAD_ENV,
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": self._mpl, "HOME": os.environ.get("HOME", "/tmp"),
               "PYTHONPATH": str(stub_root), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
               "ATTNLAB_FORCE_PROFILE": "smoke", "ATTNLAB_PROGRESS": "off", "IPYTHONDIR": self._mpl}
        self.mode = mode
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                      cwd=self._mpl)
        first = self._read(time.monotonic() + startup_timeout)
        if not first or not json.loads(first).get("ready"):
            self.close()
            raise RuntimeError("the grading sandboxes' warm server did not start")

    def _read(self, deadline: float) -> str:
        ready, _, _ = select.select([self._proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        return self._proc.stdout.readline() if ready else ""

    def start(self, request: dict, timeout: float = 60) -> dict:
        """Send one request; ``{"pid": ...}`` or ``{"error": ...}``."""
        if self._proc.poll() is not None:
            return {"error": "the grading sandboxes' warm server has stopped"}
        self._proc.stdin.write(json.dumps(dict(request, plain=self.mode == "plain")) + "\n")
        self._proc.stdin.flush()
        answer = self._read(time.monotonic() + timeout)
        return json.loads(answer) if answer else {"error": "the grading sandboxes' warm server did not answer"}

    def close(self) -> None:
        import shutil

        proc = self._proc
        if proc.poll() is None:
            try:
                proc.stdin.close()
                proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
        shutil.rmtree(self._mpl, ignore_errors=True)


if __name__ == "__main__":
    serve()
