"""The warm server that starts sandboxed grading kernels by ``fork`` (one server per grading worker).

Starting a Jupyter kernel costs an ``import torch`` (4-5 s on this kind of machine). The server
imports ``torch``, NumPy, ``ipykernel`` and the whole ``attnlab`` package once; for each kernel it
forks a child that enters a fresh sandbox (:func:`attnlab.course.sandbox.enter`) and becomes the
kernel (:func:`attnlab.course.kernel_guard.start_kernel`): a kernel is ready in about half a second,
and it starts from the same clean state every time. The server never runs notebook code itself,
it is single-threaded when it forks (BLAS and OpenMP are limited to one thread), and as an
ordinary user it runs inside ``unshare --user --map-root-user`` so that its children may build
namespaces.

Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.
``{"op": "kernel", "spec": BoxSpec, "config": KernelConfig, "key": hex}`` and ``{"op": "probe",
"spec": BoxSpec, "code": str}`` answer ``{"pid": ...}`` (the first process of the new pid namespace:
interrupting it interrupts the kernel, killing it ends the sandbox) or ``{"error": ...}``.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

from ..grader import sandbox

__all__ = ["Zygote", "serve", "THREAD_ENV"]

THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
_WARM = ("numpy", "torch", "torch.nn.functional", "torchvision", "einops", "scipy.ndimage", "matplotlib.pyplot",
         "ipykernel.kernelapp", "ipykernel.ipkernel", "attnlab.course.kernel_guard")


def _warm_up() -> None:
    import importlib
    import pkgutil

    import attnlab

    for name in _WARM:
        importlib.import_module(name)
    for info in pkgutil.walk_packages(attnlab.__path__, "attnlab."):
        if not info.name.startswith("attnlab.course"):
            importlib.import_module(info.name)


def _probe(code: str) -> None:
    """Run ``code`` as the sandboxed student process would (no kernel, no audit hook): for tests."""
    with open("probe.out", "w") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            exec(compile(code, "<probe>", "exec"), {"__name__": "__main__"})  # noqa: S102 - the test suite's probes
        except BaseException:  # noqa: BLE001 - the probe's own failure is its output
            import traceback

            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()


def _child(request: dict, report: int, log: str) -> None:
    """Process A: leave the server's pipes, enter the sandbox, report B's pid, wait for it."""
    null = os.open(os.devnull, os.O_RDONLY)
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, report)
    os.closerange(report + 1, 1 << 16)
    spec = sandbox.BoxSpec(**request["spec"])
    if request["op"] == "kernel":
        from . import kernel_guard

        key = bytes.fromhex(request.pop("key"))
        config = request["config"]
        start = (lambda: kernel_guard.start_kernel(config, key))
    else:
        code = request["code"]
        start = (lambda: _probe(code))
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
    """The server loop (``python -m attnlab.course.zygote``)."""
    os.environ.update(THREAD_ENV)
    os.environ.setdefault("MPLBACKEND", "Agg")
    _warm_up()
    import gc

    gc.collect()
    gc.freeze()  # the garbage collector leaves the warm objects alone: forks do not copy their pages
    print(json.dumps({"ready": True, "uid": os.getuid()}), flush=True)
    while True:
        ready, _, _ = select.select([sys.stdin], [], [], 0.2)
        _reap()
        if not ready:
            continue
        line = sys.stdin.readline()
        if not line:
            return
        request = json.loads(line)
        del line
        answer = _spawn(request)
        request.clear()
        print(json.dumps(answer), flush=True)


class Zygote:
    """A warm server; ``start(...)`` forks a sandboxed kernel (or a probe) and returns its pid."""

    def __init__(self, mode: str, *, startup_timeout: float = 120):
        cmd = [sys.executable, "-E", "-m", "attnlab.course.zygote"]
        if mode == "user":
            cmd = ["unshare", "--user", "--map-root-user", *cmd]
        import tempfile

        self._mpl = tempfile.mkdtemp(prefix="attnlab-mpl-")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", **THREAD_ENV,
               "MPLBACKEND": "Agg", "MPLCONFIGDIR": self._mpl, "HOME": os.environ.get("HOME", "/tmp")}
        self.mode = mode
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + startup_timeout
        first = self._read(deadline)
        if not first or not json.loads(first).get("ready"):
            self.close()
            raise RuntimeError("the grading kernels' warm server did not start")

    def _read(self, deadline: float) -> str:
        ready, _, _ = select.select([self._proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        return self._proc.stdout.readline() if ready else ""

    def start(self, request: dict, timeout: float = 60) -> dict:
        """Send one request; ``{"pid": ...}`` or ``{"error": ...}``."""
        if self._proc.poll() is not None:
            return {"error": "the grading kernels' warm server has stopped"}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer = self._read(time.monotonic() + timeout)
        return json.loads(answer) if answer else {"error": "the grading kernels' warm server did not answer"}

    def close(self) -> None:
        import shutil

        from .cellrunner import stop_server

        stop_server(self._proc)
        shutil.rmtree(self._mpl, ignore_errors=True)


if __name__ == "__main__":
    serve()
