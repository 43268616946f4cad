"""Helpers shared by test modules (kept out of conftest.py, which pytest loads itself)."""

from __future__ import annotations

import json
import os
import shutil


def shared_run(tmp_path_factory, name: str, make) -> dict:
    """Run ``make(folder)`` once per test session, even across xdist workers; return its JSON result.

    A file lock guards a folder that all workers share. (``--dist loadgroup`` with ``xdist_group``
    does not keep a group on one worker with pytest 9.2 and pytest-xdist 3.8.0: measured.)
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"attnlab-{name}"
    with FileLock(str(shared) + ".lock"):
        done = shared / "done.json"
        if not done.exists():
            if shared.exists():
                shutil.rmtree(shared)
            shared.mkdir()
            done.write_text(json.dumps(make(shared)))
        return json.loads(done.read_text())



def conv_rounding_bound(x, w, b=None, *, stride=1, padding=0):
    """How far two correct computations of ``F.conv2d(x, w, b)`` in x's dtype may differ: each
    output is a sum of n = C*K*K products (plus the bias), which any order of summation computes
    to within gamma_n * sum|terms| (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1),
    gamma_n = n u / (1 - n u) with u the unit round-off; two computations, twice that."""
    import torch
    import torch.nn.functional as F

    n = w[0].numel() + (b is not None)
    u = torch.finfo(x.dtype).eps / 2
    terms = F.conv2d(x.double().abs(), w.double().abs(), None if b is None else b.double().abs(),
                     stride=stride, padding=padding)                 # sum |terms| per output
    return 2 * n * u / (1 - n * u) * terms


# -- running as an unprivileged user (CI runs as root) ------------------------------------------

MS_REC, MS_PRIVATE, MS_BIND = 1 << 14, 1 << 18, 4096


def _mount(lib, src, target, fstype, flags, data=None) -> None:
    enc = (lambda s: s.encode() if isinstance(s, str) else s)
    if lib.mount(enc(src), enc(target), enc(fstype), flags, enc(data)) != 0:
        import ctypes

        raise OSError(ctypes.get_errno(), f"mount {target}")


def _make_reachable(lib, path: str, keep: str) -> None:
    """In this mount namespace, let every user pass through the ancestors of ``path``: an ancestor
    only its owner may enter (``/root``, a ``mktemp -d`` folder) is covered by a world-enterable
    tmpfs with each of its entries bound back in place (the entries keep their own permissions)."""
    parts = os.path.abspath(path).split("/")[1:-1]
    for depth in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:depth])
        if os.stat(folder).st_mode & 0o001:
            continue
        hidden = os.path.join(keep, folder.strip("/").replace("/", "_"))
        os.makedirs(hidden, exist_ok=True)
        _mount(lib, folder, hidden, None, MS_BIND | MS_REC)
        _mount(lib, "none", folder, "tmpfs", 0, "mode=755")
        for entry in os.listdir(hidden):
            source, target = os.path.join(hidden, entry), os.path.join(folder, entry)
            if os.path.isdir(source) and not os.path.islink(source):
                os.mkdir(target)
            elif os.path.islink(source):
                os.symlink(os.readlink(source), target)
                continue
            else:
                open(target, "w").close()
            _mount(lib, source, target, None, MS_BIND | MS_REC)


def become_unprivileged(uid: int, binds: list[tuple[str, str]], argv: list[str]) -> None:
    """As root: in a private mount namespace, bind ``(src, dest)`` folders, keep the interpreter and
    this checkout reachable (they may live under ``/root`` or a ``mktemp -d`` folder, which only root
    may enter), then become ``uid`` with no groups and exec ``argv``. Nothing outside this process
    tree changes."""
    import ctypes
    import sys

    lib = ctypes.CDLL(None, use_errno=True)
    if lib.unshare(0x00020000) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
    _mount(lib, None, "/", None, MS_REC | MS_PRIVATE)
    for src, dest in binds:
        _mount(lib, src, dest, None, MS_BIND | MS_REC)
    keep = binds[0][1] + "/.reachable" if binds else "/tmp/.attnlab-reachable"
    for path in (sys.executable, os.path.realpath(sys.executable), os.path.realpath(__file__)):
        _make_reachable(lib, path, keep)
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    os.execvpe(argv[0], argv, {**os.environ, "HOME": binds[0][1] if binds else "/tmp"})


def run_unprivileged(code: str, *, folder, uid: int, timeout: float):
    """Run Python ``code`` as ``uid`` (which owns ``folder``); the code sees ``folder`` at
    ``/tmp/attnlab-unprivileged-<uid>`` (its parents may be root's only). Returns the finished process."""
    import subprocess
    import sys
    from pathlib import Path

    view = f"/tmp/attnlab-unprivileged-{uid}"
    os.makedirs(view, exist_ok=True)
    os.chown(folder, uid, uid)
    tests = str(Path(__file__).resolve().parent)
    launcher = (f"import sys; sys.path.insert(0, {tests!r}); from _shared import become_unprivileged; "
                f"become_unprivileged({uid}, [({str(folder)!r}, {view!r})], "
                f"[sys.executable, '-c', {code!r}])")
    try:
        return subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=timeout,
                              cwd="/")
    finally:
        try:
            os.rmdir(view)
        except OSError:
            pass
