"""Run a student's box in a throw-away Linux sandbox, as root or as an ordinary user.

Only the student's box (:mod:`attnlab.grader.box`: the lab's set-up cells and the student's answers,
and whatever they start) is sandboxed; the judge that asks it for results runs outside
(:mod:`attnlab.grader.judge`). What Linux gives, nothing home-made:

* new **mount, network, pid, IPC and UTS namespaces**: the network namespace holds only a loopback
  interface that is down (the box talks to the judge over one Unix socket), and the pid namespace
  dies with its first process, taking every process the student started with it; ``/proc`` is the
  sandbox's own, showing only its processes;
* a **new root** made of read-only bind mounts of exactly what the box needs (``/usr``, ``/etc``,
  the Python installation, the virtual environment, the lab's stubbed copy of ``attnlab``), small
  tmpfs ``/tmp``, ``/dev/shm`` and working folder, and the socket folder, the only place of the host
  it may write: ``solutions/``, the course's own sources, the gradebook, other students' work and
  the rest of the machine do not exist in it;
* **no privileges**: as root, the box switches to a fresh unprivileged uid; as an ordinary user
  (``mode="user"``), the namespaces come from an unprivileged user namespace (``unshare --user
  --map-root-user``, what Debian's ``bubblewrap`` uses too) and the box drops every capability
  before any student code runs; both set ``PR_SET_NO_NEW_PRIVS``;
* **limits**: rlimits on address space, processes (counted per user namespace), CPU time, file size
  and open files; as root also cgroup v1 ``memory`` and ``pids`` limits; the judge adds a time limit
  per request and per student, and watches the memory of the sandbox's processes.

The process tree: the warm server (:mod:`attnlab.grader.server`) forks **A**, which enters the new
namespaces and forks **B**, the first process of the new pid namespace; B builds the root, drops its
privileges and forks **C**, the box. B exits with C; killing B ends the whole namespace.
"""

from __future__ import annotations

import ctypes
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

__all__ = ["Limits", "BoxSpec", "mode", "available", "pick_uid", "python_roots", "make_cgroups",
           "remove_cgroups", "enter", "capabilities"]

GIB = 1024**3
MIB = 1024**2
CGROUP_ROOT = Path("/sys/fs/cgroup")
STUDENT_DIR = "/student"  # the kernel's working folder, inside the sandbox

# linux/sched.h, linux/mount.h, linux/prctl.h, linux/capability.h
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
_LIBC = ctypes.CDLL(None, use_errno=True)


@dataclass
class Limits:
    """Resource limits of one student's sandbox."""

    wall_s: float = 600.0  # the whole notebook of one student
    cell_timeout_s: int = 60  # one cell; then an interrupt, then the kernel is killed
    kernel_address_space: int = 6 * GIB  # RLIMIT_AS of the kernel (torch maps ~3.5 GiB of address space at import)
    memory: int = 3 * GIB  # resident memory of the whole sandbox (cgroup, or the grader's watch)
    pids: int = 256  # cgroup pids limit of the whole sandbox
    kernel_nproc: int = 192  # RLIMIT_NPROC (threads count; per user namespace in the unprivileged mode)
    kernel_cpu_s: int = 900  # RLIMIT_CPU of the kernel
    file_size: int = 64 * MIB  # RLIMIT_FSIZE of the box (its log and its own tmpfs files)
    open_files: int = 512
    tmp_size: int = 256 * MIB  # the sandbox's /tmp and /dev/shm


@dataclass
class BoxSpec:
    """Where and how one sandbox is built (plain data: it travels as JSON to the warm server)."""

    mode: str  # "root" (a fresh uid) or "user" (an unprivileged user namespace)
    newroot: str  # an empty folder of the host that becomes the sandbox's root
    workdir: str  # a host folder beside the box's (its log); inside, STUDENT_DIR is a tmpfs
    ipc_dir: str  # the folder of the kernel's sockets, at the same path inside and outside
    uid: int = 0  # root mode: the uid the kernel runs as
    limits: dict = field(default_factory=lambda: asdict(Limits()))
    ro: list[str] = field(default_factory=list)  # read-only folders besides the system's
    cgroups: list[str] = field(default_factory=list)
    env: dict = field(default_factory=dict)


def mode() -> str:
    """``"root"`` when this process is root, else ``"user"`` (unprivileged user namespaces)."""
    return "root" if os.geteuid() == 0 else "user"


def available(which: str | None = None) -> tuple[bool, str]:
    """Can this machine build the sandbox in ``which`` mode (default: :func:`mode`)?"""
    which = which or mode()
    if shutil.which("unshare") is None:
        return False, "`unshare` (util-linux) is missing"
    cmd = ["unshare", "--mount", "--net", "--pid", "--ipc", "--uts", "--fork", "true"]
    if which == "user":
        cmd[1:1] = ["--user", "--map-root-user"]
    elif os.geteuid() != 0:
        return False, "the root sandbox needs root; an ordinary user grades in the user-namespace sandbox"
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        hint = (" (user namespaces are disabled here: grade in a container, see the book's page For instructors)"
                if which == "user" else "")
        return False, f"unshare failed: {proc.stderr.strip()}{hint}"
    return True, "ok"


def pick_uid() -> int:
    """A uid no account uses, fresh per kernel (so that RLIMIT_NPROC counts only that kernel)."""
    return 200_000 + int.from_bytes(os.urandom(3), "big") % 500_000


def python_roots() -> list[str]:
    """Folders the kernel needs to read: the interpreter, the venv, the attnlab sources."""
    import attnlab

    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), sys.prefix}
    roots.add(str(Path(attnlab.__file__).resolve().parents[1]))  # .../src (editable install) or site-packages
    roots.add(str(Path(os.path.realpath(sys.executable)).parent.parent))
    return sorted(roots)


def capabilities() -> int:
    """This process's effective capabilities (``CapEff`` of ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return int(line.split()[1], 16)
    return -1


# ---------------------------------------------------------------------------------------------
# cgroups (root mode only)


def make_cgroups(name: str, limits: Limits) -> list[str]:
    """cgroup v1 ``memory`` and ``pids`` groups for one sandbox (none when the machine has no v1)."""
    made = []
    for ctrl, files in (("memory", {"memory.limit_in_bytes": limits.memory}), ("pids", {"pids.max": limits.pids})):
        base = CGROUP_ROOT / ctrl
        if os.geteuid() != 0 or not (base / "cgroup.procs").exists():
            continue
        path = base / name
        try:
            path.mkdir(exist_ok=True)
            for fname, value in files.items():
                (path / fname).write_text(str(value))
            made.append(str(path))
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
    return made


def remove_cgroups(paths: list[str]) -> None:
    """Kill what is left in the groups and remove them."""
    for path in map(Path, paths):
        for _ in range(50):
            try:
                for pid in (path / "cgroup.procs").read_text().split():
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


# ---------------------------------------------------------------------------------------------
# inside: system calls


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_LIBC.mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _kept_flags(path: str) -> int:
    """The flags a read-only remount must keep (an unprivileged namespace may not clear them)."""
    f = os.statvfs(path).f_flag
    flags = f & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME)
    return flags | (MS_RELATIME if f & 4096 else 0)


def _bind(src: str, root: str, *, rw: bool = False, dest: str | None = None) -> None:
    """Bind ``src`` at ``root + (dest or src)``, read-only unless ``rw``."""
    target = root + (dest or src)
    if os.path.isdir(src):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    _mount(src, target, None, MS_BIND | MS_REC)
    extra = 0 if rw else MS_RDONLY
    _mount(None, target, None, MS_REMOUNT | MS_BIND | extra | MS_NOSUID | _kept_flags(target))


def _build_root(spec: BoxSpec) -> None:
    """Mount the sandbox's root at ``spec.newroot`` and enter it."""
    limits, root = Limits(**spec.limits), spec.newroot
    _mount("none", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=755")
    for d in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(d):
            os.symlink(os.readlink(d), root + d)
        elif os.path.isdir(d):
            _bind(d, root)
    # /tmp first, so that read-only folders below /tmp (a course cloned there) are bound on top of it
    for d in ("/tmp", "/dev/shm"):
        os.makedirs(root + d, exist_ok=True)
        _mount("none", root + d, "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.tmp_size},mode=1777")
    for d in spec.ro:
        if os.path.isdir(d) and not os.path.exists(root + d):
            _bind(d, root)
    for dev in ("null", "zero", "full", "random", "urandom"):
        _bind("/dev/" + dev, root, rw=True)
    # the student's working folder is a small tmpfs of the sandbox's own: nothing of the host is
    # writable in the sandbox but the judge's socket folder
    os.makedirs(root + STUDENT_DIR, exist_ok=True)
    _mount("none", root + STUDENT_DIR, "tmpfs", MS_NOSUID | MS_NODEV, f"size={limits.tmp_size},mode=1777")
    _bind(spec.ipc_dir, root, rw=True)
    os.makedirs(root + "/proc", exist_ok=True)
    _mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount(None, root, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chroot(root)
    os.chdir(STUDENT_DIR)


def _drop_privileges(spec: BoxSpec) -> None:
    """rlimits, then no capabilities (user mode) or a fresh uid (root mode), then no_new_privs."""
    limits = Limits(**spec.limits)
    for rlim, value in ((resource.RLIMIT_AS, limits.kernel_address_space), (resource.RLIMIT_NPROC, limits.kernel_nproc),
                        (resource.RLIMIT_CPU, limits.kernel_cpu_s), (resource.RLIMIT_FSIZE, limits.file_size),
                        (resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_CORE, 0)):
        resource.setrlimit(rlim, (value, value))
    _LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    for cap in range(64):
        _LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)  # EINVAL past the last capability: ignored
    if spec.mode == "root":
        os.setgroups([])
        os.setresgid(spec.uid, spec.uid, spec.uid)
        os.setresuid(spec.uid, spec.uid, spec.uid)
    else:
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        _check(_LIBC.capset(header, (ctypes.c_uint32 * 6)()), "capset")
    _check(_LIBC.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    if capabilities() != 0 or (spec.mode == "root" and (os.geteuid() == 0 or os.getuid() == 0)):
        raise SystemExit("could not drop privileges")


def _supervise(child: int) -> None:
    """The namespace's first process: forward interrupts to the kernel, end with it."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda s, _f: os.kill(child, s))
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            status = 0
            break
        except InterruptedError:
            continue
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def enter(spec: BoxSpec, start: Callable[[], None]) -> int:
    """In process A (a fresh fork): enter new namespaces and fork B; return B's pid (A's side).

    B builds the root, drops its privileges and forks C, which calls ``start()`` (the kernel) and
    exits; B never returns. Raises ``OSError`` (in A) when the namespaces cannot be made.
    """
    if spec.mode == "root":
        for cg in spec.cgroups:
            Path(cg, "cgroup.procs").write_text(str(os.getpid()))
        for d in (spec.ipc_dir,):
            os.chown(d, spec.uid, spec.uid)
    _check(_LIBC.unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    pid = os.fork()
    if pid:
        return pid
    try:  # B: pid 1 of the new namespace
        os.setsid()
        _build_root(spec)
        os.umask(0o022)
        _drop_privileges(spec)
        child = os.fork()
        if child == 0:
            try:
                start()
            finally:
                os._exit(0)
        _supervise(child)
    except BaseException as err:  # noqa: BLE001 - report and leave; the grader sees the kernel never came
        os.write(2, f"sandbox: {type(err).__name__}: {err}\n".encode())
    os._exit(70)
