"""Sandboxes for one lab: a warm server, and a fresh connected box per student (or per restart).

:class:`Boxes` holds the lab's stubbed package and the server that forks boxes from it; each
:meth:`Boxes.connect` makes a folder for one box (its working folder and its socket), asks the
server for a sandbox, and waits for the box to connect: the judge gets a
:class:`~attnlab.grader.remote.Channel`. :meth:`Boxes.close_box` ends a box and its whole sandbox.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
from dataclasses import asdict
from pathlib import Path

from . import remote, sandbox, stubs
from .server import THREAD_ENV, BoxServer

__all__ = ["Boxes", "BOX_ENV"]

BOX_ENV = {"ATTNLAB_FORCE_PROFILE": "smoke", "ATTNLAB_PROGRESS": "off", "MPLBACKEND": "Agg", **THREAD_ENV,
           "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp/home", "MPLCONFIGDIR": "/tmp/mpl",
           "IPYTHONDIR": "/tmp/ipython", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


def _ro_roots(stub_root: Path) -> list[str]:
    """What the sandbox may read besides the system: the interpreter, the venv, the stubbed package."""
    import sys

    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix, str(stub_root)}
    roots.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    return sorted(roots)


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every process below it (read from the host's ``/proc``)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        rss[int(entry)] = int(fields[21]) * page
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


class Boxes:
    """The sandboxes of one grading worker for one lab."""

    def __init__(self, *, package: Path, graded: dict[str, str], mode: str, limits: sandbox.Limits,
                 work: Path | None = None):
        self.mode, self.limits = mode, limits
        self.work = Path(work or tempfile.mkdtemp(prefix="attnlab-boxes-"))
        self.work.mkdir(parents=True, exist_ok=True)
        os.chmod(self.work, 0o711)
        self.stub_root = stubs.write_stubbed_package(package, self.work / "package", graded)
        self.server = BoxServer(mode, self.stub_root)
        self.count = 0
        self.live: dict[int, tuple[int, list[str], Path]] = {}

    def connect(self, timeout: float = 30.0) -> remote.Channel:
        """A fresh box that has connected; its channel (:class:`remote.BoxDied` if none came)."""
        self.count += 1
        folder = self.work / f"box-{self.count}"
        (folder / "student").mkdir(parents=True)
        (folder / "ipc").mkdir()
        for d in (folder, folder / "student", folder / "ipc"):
            os.chmod(d, 0o755)
        path = str(folder / "ipc" / "judge.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        os.chmod(path, 0o777)
        listener.listen(1)
        spec = self._spec(folder)
        answer = self.server.start({"spec": asdict(spec), "socket": path})
        if "pid" not in answer:
            listener.close()
            sandbox.remove_cgroups(spec.cgroups)
            raise remote.BoxDied(answer.get("error", "the sandbox did not start"))
        listener.settimeout(timeout)
        try:
            conn, _ = listener.accept()
        except OSError:
            self._kill(int(answer["pid"]), spec.cgroups, folder)
            raise remote.BoxDied("the sandbox did not connect") from None
        finally:
            listener.close()
        pid = int(answer["pid"])
        channel = remote.Channel(conn, timeout=self.limits.cell_timeout_s,
                                 watch=lambda: self._over_memory(pid))
        self.live[id(channel)] = (pid, spec.cgroups, folder)
        return channel

    def _over_memory(self, pid: int) -> str | None:
        """Why the sandbox must stop (its processes hold more memory than the limit), or None."""
        rss = _tree_rss(pid)
        if rss > self.limits.memory:
            self._kill(pid, [], None)
            return f"your code used more than {self.limits.memory / 2**30:.1f} GiB of memory"
        return None

    def _spec(self, folder: Path) -> sandbox.BoxSpec:
        uid = sandbox.pick_uid() if self.mode == "root" else 0
        cgroups = sandbox.make_cgroups(f"attnlab-{os.getpid()}-{self.count}", self.limits) if self.mode == "root" else []
        return sandbox.BoxSpec(mode=self.mode, newroot=str(self._newroot(folder)), workdir=str(folder / "student"),
                               ipc_dir=str(folder / "ipc"), uid=uid, limits=asdict(self.limits),
                               ro=_ro_roots(self.stub_root), cgroups=cgroups, env=dict(BOX_ENV))

    @staticmethod
    def _newroot(folder: Path) -> Path:
        root = folder / "root"
        root.mkdir()
        return root

    def close_box(self, channel: remote.Channel) -> None:
        """End a box: close its channel, kill its sandbox, remove its folder."""
        try:
            channel.sock.close()
        except OSError:
            pass
        pid, cgroups, folder = self.live.pop(id(channel), (None, [], None))
        if pid is not None:
            self._kill(pid, cgroups, folder)

    def _kill(self, pid: int, cgroups: list[str], folder: Path | None) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        sandbox.remove_cgroups(cgroups)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        for pid, cgroups, folder in list(self.live.values()):
            self._kill(pid, cgroups, folder)
        self.live.clear()
        self.server.close()
        shutil.rmtree(self.work, ignore_errors=True)
