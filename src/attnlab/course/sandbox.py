"""Run one student's autograde in a throw-away Linux sandbox.

What Linux gives, nothing home-made (measured as root in this kind of container):

* ``unshare --mount --net --pid --ipc --uts --fork --kill-child``: a private mount table, a network
  namespace holding only the loopback interface (nbgrader talks to its kernel over 127.0.0.1; no
  route leaves the box), a pid namespace whose every process dies with its first one;
* a new root made of read-only bind mounts of exactly what the grading needs (``/usr``, ``/etc``,
  the Python installation, the virtual environment, the ``attnlab`` sources) plus the student's
  scratch folder: ``solutions/``, the class gradebook, other students' files, the release and the
  rest of the machine do not exist in it;
* the student's code never runs as root: the kernel is started through
  ``python -m attnlab.course.sandbox kernel``, which drops to a dedicated unprivileged uid
  (``setresuid``, no supplementary groups, ``PR_SET_NO_NEW_PRIVS``) after setting rlimits (address
  space, processes, CPU time, file size, open files, no core files); only the kernel's working copy
  is owned by that uid, the per-student gradebook is root's and mode 0600;
* cgroup v1 ``memory`` and ``pids`` limits for the whole sandbox when the machine offers them;
* a wall-clock limit on the whole sandbox (the caller kills ``unshare``, ``--kill-child`` takes the
  namespace down with it).

The grader (root, outside) only copies files in and reads the per-student gradebook back.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

__all__ = ["Limits", "SandboxResult", "available", "run_in_sandbox", "pick_uid", "write_kernel_spec", "main"]

PR_SET_NO_NEW_PRIVS = 38
GIB = 1024**3
MIB = 1024**2
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class Limits:
    """Resource limits of one student's sandbox."""

    wall_s: float = 600.0  # the whole autograde of one student
    cell_timeout_s: int = 60  # one cell (nbgrader's Execute.timeout)
    kernel_address_space: int = 6 * GIB  # RLIMIT_AS of the kernel (torch maps ~3.5 GiB of address space at import)
    memory: int = 3 * GIB  # cgroup memory limit of the whole sandbox
    pids: int = 256  # cgroup pids limit of the whole sandbox
    kernel_nproc: int = 192  # RLIMIT_NPROC of the student uid (threads count)
    kernel_cpu_s: int = 900  # RLIMIT_CPU of the kernel
    file_size: int = 256 * MIB  # RLIMIT_FSIZE of the kernel
    open_files: int = 512
    tmp_size: int = 256 * MIB  # the sandbox's /tmp and /dev/shm


@dataclass
class SandboxResult:
    returncode: int
    timed_out: bool
    wall_s: float
    stdout: str
    stderr: str
    cgroups: bool = False
    notes: list[str] = field(default_factory=list)


def available() -> tuple[bool, str]:
    """Can this machine build the sandbox (root, ``unshare``, user-less namespaces)?"""
    if os.geteuid() != 0:
        return False, "the grading sandbox needs root (namespaces, bind mounts, a dedicated uid)"
    if shutil.which("unshare") is None:
        return False, "`unshare` (util-linux) is missing"
    proc = subprocess.run(["unshare", "--mount", "--net", "--pid", "--fork", "true"], capture_output=True, text=True)
    if proc.returncode != 0:
        return False, f"unshare failed: {proc.stderr.strip()}"
    return True, "ok"


def pick_uid() -> int:
    """A uid no account uses, fresh per grading run (so RLIMIT_NPROC counts only this run)."""
    base = 200_000 + (os.getpid() * 7919 + int(time.time())) % 500_000
    return base


# ---------------------------------------------------------------------------------------------
# outside: the grader starts a sandbox


def _python_roots() -> list[str]:
    """Folders the kernel and nbgrader need to read: the interpreter, the venv, the attnlab sources."""
    import attnlab

    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix}
    roots.add(str(Path(attnlab.__file__).resolve().parents[1]))  # .../src (editable install) or site-packages
    exe = os.path.realpath(sys.executable)
    roots.add(str(Path(exe).parent.parent))
    return sorted(roots)


def _make_cgroups(name: str, limits: Limits) -> list[Path]:
    made = []
    for ctrl, files in (("memory", {"memory.limit_in_bytes": limits.memory, "memory.memsw.limit_in_bytes": None}),
                        ("pids", {"pids.max": limits.pids})):
        base = CGROUP_ROOT / ctrl
        if not (base / "cgroup.procs").exists():
            continue
        path = base / name
        try:
            path.mkdir(exist_ok=True)
            for fname, value in files.items():
                if value is not None:
                    (path / fname).write_text(str(value))
            made.append(path)
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
    return made


def _remove_cgroups(paths: list[Path]) -> None:
    for path in paths:
        for _ in range(50):
            try:
                procs = (path / "cgroup.procs").read_text().split()
                for pid in procs:
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.1)


def run_in_sandbox(
    workdir: Path,
    argv: list[str],
    *,
    uid: int,
    limits: Limits,
    env: dict[str, str],
    cwd: str = "/grade",
) -> SandboxResult:
    """Run ``argv`` (as root inside the namespaces, in a root containing only what grading needs).

    ``workdir`` appears as ``/grade`` (read-write); the student's kernel, started through the
    kernel spec that :func:`write_kernel_spec` writes, runs as ``uid``.
    """
    workdir = Path(workdir).resolve()
    name = f"attnlab_grade_{os.getpid()}_{uid}_{int(time.time() * 1000) % 10**8}"
    cgroups = _make_cgroups(name, limits)
    spec = {
        "workdir": str(workdir),
        "ro": _python_roots(),
        "argv": argv,
        "cwd": cwd,
        "env": env,
        "limits": asdict(limits),
        "cgroups": [str(p) for p in cgroups],
    }
    spec_path = workdir.parent / (workdir.name + ".sandbox.json")
    spec_path.write_text(json.dumps(spec))
    os.chmod(spec_path, 0o600)
    cmd = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "--kill-child",
           "--propagation", "private", sys.executable, "-E", "-m", "attnlab.course.sandbox", "init", str(spec_path)]
    start = time.monotonic()
    timed_out = False
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    finally:
        _remove_cgroups(cgroups)
        spec_path.unlink(missing_ok=True)
    return SandboxResult(proc.returncode, timed_out, time.monotonic() - start, out[-20000:], err[-20000:], bool(cgroups))


def write_kernel_spec(jupyter_dir: Path, *, uid: int, limits: Limits, test_hashes_file: str,
                      name: str = "python3") -> None:
    """A kernel spec that starts the student's kernel through the privilege drop."""
    kdir = jupyter_dir / "kernels" / name
    kdir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-E", "-m", "attnlab.course.sandbox", "kernel",
            "--uid", str(uid), "--limits", json.dumps(asdict(limits)), "--hashes", test_hashes_file,
            "--connection-file", "{connection_file}"]
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": argv, "display_name": "Python 3 (sandboxed grading)", "language": "python",
        "metadata": {"debugger": False},
    }))


# ---------------------------------------------------------------------------------------------
# inside: root in the new namespaces builds the view, then runs nbgrader


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _bind(src: str, root: str, *, rw: bool = False) -> None:
    dest = root + src
    if os.path.isdir(src):
        os.makedirs(dest, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if not os.path.exists(dest):
            open(dest, "w").close()
    _mount("--rbind" if os.path.isdir(src) else "--bind", src, dest)
    if not rw:
        _mount("-o", "remount,bind,ro,nosuid,nodev", dest)


def _loopback_up() -> None:
    """``ip link set lo up`` without iproute2: SIOCGIFFLAGS / SIOCSIFFLAGS on ``lo``."""
    import fcntl
    import socket
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        ifr = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, 0x8913, ifr)[:18])[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sh", b"lo", flags | 0x1))


def _init(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    limits = Limits(**spec["limits"])
    for cg in spec["cgroups"]:
        Path(cg, "cgroup.procs").write_text("0")  # this process and everything it starts
    newroot = spec["workdir"] + ".root"
    os.makedirs(newroot, exist_ok=True)
    _mount("-t", "tmpfs", "-o", "size=16m,mode=755", "none", newroot)
    for d in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(d):
            os.symlink(os.readlink(d), newroot + d)
        elif os.path.isdir(d):
            _bind(d, newroot)
    # the sandbox's own /tmp comes first, so that read-only paths below /tmp (a course cloned into
    # /tmp, as CI does) are bound on top of it instead of being hidden by it
    os.makedirs(newroot + "/tmp", exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={limits.tmp_size},mode=1777,nosuid,nodev", "none", newroot + "/tmp")
    for d in spec["ro"]:
        if os.path.isdir(d) and not os.path.exists(newroot + d):
            _bind(d, newroot)
    os.makedirs(newroot + "/grade", exist_ok=True)
    _mount("--bind", spec["workdir"], newroot + "/grade")
    _mount("-o", "remount,bind,nosuid,nodev", newroot + "/grade")
    os.makedirs(newroot + "/proc")
    _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", newroot + "/proc")
    os.makedirs(newroot + "/dev")
    for dev in ("null", "zero", "full", "random", "urandom"):
        _bind("/dev/" + dev, newroot, rw=True)
    os.makedirs(newroot + "/dev/shm", exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={limits.tmp_size},mode=1777,nosuid,nodev", "none", newroot + "/dev/shm")
    _mount("-o", "remount,ro,bind", newroot)
    # loopback up: nbgrader reaches its kernel over 127.0.0.1; nothing else exists in this namespace
    _loopback_up()
    os.chroot(newroot)
    os.chdir(spec["cwd"])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": "/grade/home"}
    env.update(spec["env"])
    os.umask(0o022)
    proc = subprocess.run(spec["argv"], env=env)
    return proc.returncode


def _kernel(argv: list[str]) -> None:
    """Root half of the kernel start: give the connection file and working copy to ``uid``, drop, exec."""
    import argparse

    p = argparse.ArgumentParser()
    p.add_argument("--uid", type=int, required=True)
    p.add_argument("--limits", required=True)
    p.add_argument("--hashes", required=True)
    p.add_argument("--connection-file", required=True)
    args = p.parse_args(argv)
    limits = Limits(**json.loads(args.limits))
    uid = args.uid
    os.chown(args.connection_file, uid, uid)
    hashes = Path(args.hashes).read_text() if os.path.exists(args.hashes) else "[]"
    # The working copy (the kernel's cwd) becomes the student's; the notebook nbgrader put there
    # already holds the hidden tests, so it stays root's and unreadable to the student.
    cwd = os.getcwd()
    for dirpath, dirnames, filenames in os.walk(cwd):
        os.chown(dirpath, uid, uid)
        for f in filenames:
            path = os.path.join(dirpath, f)
            if f.endswith(".ipynb") and not os.path.islink(path):
                os.chown(path, 0, 0)
                os.chmod(path, 0o600)
            else:
                os.lchown(path, uid, uid)
    home = "/tmp/home"
    os.makedirs(home, exist_ok=True)
    os.chown(home, uid, uid)
    for rlim, value in ((resource.RLIMIT_AS, limits.kernel_address_space),
                        (resource.RLIMIT_NPROC, limits.kernel_nproc),
                        (resource.RLIMIT_CPU, limits.kernel_cpu_s),
                        (resource.RLIMIT_FSIZE, limits.file_size),
                        (resource.RLIMIT_NOFILE, limits.open_files),
                        (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(rlim, (value, value))
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise SystemExit("prctl(PR_SET_NO_NEW_PRIVS) failed")
    if os.geteuid() == 0 or os.getuid() == 0:
        raise SystemExit("could not drop root")
    env = dict(os.environ)
    env.update({"HOME": home, "MPLCONFIGDIR": "/tmp/mpl", "IPYTHONDIR": "/tmp/ipython",
                "ATTNLAB_TEST_HASHES": hashes})
    os.execve(sys.executable, [sys.executable, "-E", "-m", "ipykernel_launcher",
                               "--IPKernelApp.kernel_class=attnlab.course.kernel_guard.GuardedKernel",
                               "--HistoryManager.hist_file=:memory:",
                               "-f", args.connection_file], env)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "init":
        sys.exit(_init(argv[1]))
    if argv and argv[0] == "kernel":
        _kernel(argv[1:])
        return
    raise SystemExit("usage: python -m attnlab.course.sandbox {init SPEC | kernel ...} (internal)")


if __name__ == "__main__":
    main()
