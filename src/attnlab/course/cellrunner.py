"""Run the code cells of many notebooks fast: import once, fork a fresh interpreter per notebook.

The lab harness executes every mutant of every lab (a hundred and more notebooks). A Jupyter kernel
per notebook costs its start and an ``import torch`` (4-5 s each on this kind of machine). Here one
*warm* server process imports torch, NumPy, matplotlib (Agg) and the whole ``attnlab`` package once;
for each notebook it forks a child that starts from that clean state, executes the code cells in
order with ``exec`` (an error is recorded and the next cell still runs, as nbgrader does), reports
each cell's error, and exits. The server never runs notebook code itself, and it is single-threaded
when it forks.

What this does not reproduce of a real kernel: IPython magics and ``display`` rich output (the labs
use neither in graded cells), and nbgrader itself; the slow, faithful paths (papermill for the
solutions, nbgrader for a class of students) are tested separately.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import traceback

__all__ = ["CellRunner", "run_cells", "serve", "stop_server"]

_WARM = ("numpy", "torch", "torch.nn.functional", "torchvision", "einops", "scipy.ndimage", "sklearn.datasets",
         "matplotlib.pyplot")


def run_cells(sources: list[str]) -> list[str | None]:
    """Execute ``sources`` in one fresh namespace; return each cell's error (``"Name: message"``) or None."""
    namespace: dict = {"__name__": "__main__"}
    errors: list[str | None] = []
    for i, source in enumerate(sources):
        try:
            exec(compile(source, f"<cell {i}>", "exec"), namespace)  # noqa: S102 - the course's own notebooks
            errors.append(None)
        except BaseException as err:  # noqa: BLE001 - a failing cell is a result, as in nbgrader
            errors.append(f"{type(err).__name__}: {err}")
    return errors


def _child(request: dict, write_fd: int) -> None:
    os.environ.update(request.get("env", {}))
    os.chdir(request["cwd"])
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    try:
        result = {"errors": run_cells(request["sources"])}
    except BaseException:  # noqa: BLE001
        result = {"crash": traceback.format_exc()[-2000:]}
    os.write(write_fd, json.dumps(result).encode())
    os._exit(0)


def _run_forked(request: dict) -> dict:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _child(request, write_fd)
    os.close(write_fd)
    deadline = time.monotonic() + float(request.get("timeout", 300))
    chunks = []
    while True:
        left = deadline - time.monotonic()
        ready, _, _ = select.select([read_fd], [], [], max(0.0, left))
        if not ready:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_fd)
            return {"timeout": True}
        chunk = os.read(read_fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if not chunks:
        return {"crash": f"the notebook's process died (status {status})"}
    return json.loads(b"".join(chunks))


def serve() -> None:
    """The warm server: import once, then answer one JSON request per line on stdin."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    import importlib
    import pkgutil

    for name in _WARM:
        importlib.import_module(name)
    import attnlab

    for info in pkgutil.walk_packages(attnlab.__path__, "attnlab."):
        if not info.name.startswith("attnlab.course"):
            importlib.import_module(info.name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(_run_forked(json.loads(line))), flush=True)


class CellRunner:
    """A warm server process; ``runner.run(sources, cwd=...)`` executes one notebook's code cells."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ, **(env or {}))
        self._proc = subprocess.Popen([sys.executable, "-m", "attnlab.course.cellrunner"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True, env=full_env)
        first = self._proc.stdout.readline()
        if not first or not json.loads(first).get("ready"):
            raise RuntimeError("the cell runner did not start")

    def run(self, sources: list[str], *, cwd: str, env: dict[str, str] | None = None, timeout: float = 300) -> dict:
        """``{"errors": [...]}`` (one per cell, None when it ran), ``{"timeout": True}`` or ``{"crash": ...}``."""
        request = {"sources": sources, "cwd": str(cwd), "env": env or {}, "timeout": timeout}
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline()
        if not answer:
            raise RuntimeError("the cell runner stopped")
        return json.loads(answer)

    def close(self) -> None:
        stop_server(self._proc)


def stop_server(proc: subprocess.Popen, timeout: float = 10) -> None:
    """End a warm server that reads requests on stdin: close its stdin, wait, kill if it lingers."""
    if proc.poll() is None:
        proc.stdin.close()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    serve()
