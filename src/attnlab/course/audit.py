"""The audit hook of the grading kernel: what student code may not do, decided where it cannot reach.

PEP 578 audit hooks are called by the interpreter itself for sensitive operations, and once added
they cannot be removed or replaced by Python code. The grading kernel adds this one before any
student code runs. It tells student code from trusted code by **where the running code comes
from**: code loaded from the read-only Python installation, the virtual environment or the
``attnlab`` sources, and the lab's own cells (whose names the kernel makes up per run), is
trusted; everything else (the answer cells, code compiled while student code was running, files
written at run time) is student code. When any frame of student code is on the stack, the hook
refuses:

* running code that is not in the answer cells: ``compile``, ``exec`` and ``eval`` of strings
  (except the standard library's code generators for ``namedtuple`` and ``dataclass``), so that a
  library that evaluates strings cannot run code the answer-cell rules never saw;
* frames: ``sys._getframe``, ``sys._current_frames``, ``tb_frame``, ``gi_frame``, ``cr_frame``,
  ``f_code`` (except for the standard library's few internal uses: ``namedtuple``, ``typing``,
  ``enum``), and reading a function's ``__code__`` from student code;
* tracing, profiling, new audit hooks, the garbage collector's object lists;
* new code or function objects, ``marshal``, unpickling (``pickle.find_class``);
* ``ctypes``, processes (``fork``, ``exec``, ``system``, ``subprocess``, ``kill``), sockets,
  ``mmap``, anything under ``/proc``, ``input``;
* replacing ``__code__``, ``__class__`` and the like on objects;
* importing a module that the answer-cell rules do not allow (when student code imports it).

Each refusal raises :class:`Refused` in the student's code and is recorded: a test cell during
which anything was refused fails (the grading kernel checks after the cell).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

__all__ = ["Refused", "Policy", "install"]

_FRAME_EVENTS = {"sys._getframe", "sys._current_frames", "sys._current_exceptions"}
_FRAME_ATTRS = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_code", "gi_code", "cr_code", "ag_code"}
_SET_ATTRS = {"__code__", "__class__", "__defaults__", "__kwdefaults__", "__globals__", "__closure__",
              "__bases__", "__dict__", "__builtins__"}
_DENIED = {"sys.settrace", "sys.setprofile", "gc.get_objects", "gc.get_referrers", "gc.get_referents",
           "code.__new__", "function.__new__", "marshal.load", "marshal.loads", "marshal.dumps", "pickle.find_class",
           "os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty", "os.kill", "os.killpg",
           "subprocess.Popen", "pty.spawn", "signal.pthread_kill", "mmap.__new__", "builtins.input",
           "builtins.breakpoint", "fcntl.ioctl", "os.putenv", "os.unsetenv", "sys.setrecursionlimit"}
_DENIED_PREFIXES = ("ctypes.", "socket.", "_posixsubprocess.", "os.exec", "os.spawn", "syslog.", "winreg.")
_WATCHED = (_DENIED | _FRAME_EVENTS | {"object.__getattr__", "object.__setattr__", "object.__delattr__", "compile",
                                       "exec", "import", "open", "sys.addaudithook"})
# Standard-library files whose internal use of a frame never hands it to the caller.
_SAFE_FRAME_USERS = ("/collections/__init__.py", "/typing.py", "/enum.py")
# Standard-library code generators that compile text made only of checked identifiers.
_SAFE_CODEGEN = ("/collections/__init__.py", "/dataclasses.py")


class Refused(RuntimeError):
    """Raised in student code for an operation the grading kernel does not allow."""


class Policy:
    """The trusted state of the hook: which code is trusted, what was refused.

    ``trusted_roots`` are folder prefixes (read-only in the sandbox); ``trusted_names`` are the
    made-up file names of the lab's own cells; ``import_allowed(name)`` says whether student code
    may import module ``name``.
    """

    def __init__(self, trusted_roots, import_allowed):
        self.trusted_roots = tuple(os.path.join(r, "") for r in trusted_roots) + ("<frozen ",)
        self.trusted_names: set[str] = set()
        self.untrusted_names: set[str] = set()
        self.import_allowed = import_allowed
        self.refusals: list[str] = []
        self._cache: dict[str, bool] = {}
        self._busy: set[int] = set()
        self._own = __file__

    def trust(self, filename: str) -> None:
        """Trust code compiled under ``filename`` (a lab cell), unless student code compiled it first."""
        if filename not in self.untrusted_names:
            self.trusted_names.add(filename)
            self._cache.pop(filename, None)

    def is_trusted(self, filename: str) -> bool:
        hit = self._cache.get(filename)
        if hit is None:
            hit = filename not in self.untrusted_names and (
                filename in self.trusted_names or filename.startswith(self.trusted_roots))
            self._cache[filename] = hit
        return hit

    @contextlib.contextmanager
    def quiet(self):
        """Trusted code that must look at frames while student code is on the stack (the own-work
        check) runs inside this: the hook lets this thread through."""
        ident = threading.get_ident()
        added = ident not in self._busy
        self._busy.add(ident)
        try:
            yield
        finally:
            if added:
                self._busy.discard(ident)

    def caller_is_student(self, depth: int = 1) -> bool:
        """Is the code that called the caller (``depth`` frames out) student code?"""
        with self.quiet():
            return not self.is_trusted(sys._getframe(depth + 1).f_code.co_filename)

    def _stack(self, frame) -> tuple[bool, str | None, str | None]:
        """(is any frame student code, the file of the first frame outside this module and importlib,
        the file of the first frame outside this module)."""
        direct, first, student = None, None, False
        while frame is not None:
            name = frame.f_code.co_filename
            if first is None and name != self._own:
                first = name
            if direct is None and name != self._own and not name.startswith("<frozen importlib"):
                direct = name
            if not self.is_trusted(name):
                student = True
                break
            frame = frame.f_back
        return student, direct, first

    def hook(self, event: str, args: tuple) -> None:
        """The audit hook (see the module docstring)."""
        if event not in _WATCHED and not event.startswith(_DENIED_PREFIXES):
            return
        ident = threading.get_ident()
        if ident in self._busy:
            return
        self._busy.add(ident)
        try:
            why = self._decide(event, args)
        finally:
            self._busy.discard(ident)
        if why:
            self.refusals.append(why)
            raise Refused(f"not allowed while grading: {why}")

    def _decide(self, event: str, args: tuple) -> str | None:
        if event == "sys.addaudithook":
            return "adding an audit hook"
        student, direct, first = self._stack(sys._getframe(2))
        if not student:
            return None
        direct_is_student = direct is not None and not self.is_trusted(direct)
        if event in ("compile", "exec"):
            return self._code(event, args, first or "")
        if event in _FRAME_EVENTS or (event == "object.__getattr__" and args[1] in _FRAME_ATTRS):
            safe = not direct_is_student and direct is not None and direct.endswith(_SAFE_FRAME_USERS)
            return None if safe else f"{event if event in _FRAME_EVENTS else 'the attribute ' + args[1]} (a stack frame)"
        if event == "object.__getattr__":
            return f"reading {args[1]} of a function" if direct_is_student and args[1] == "__code__" else None
        if event in ("object.__setattr__", "object.__delattr__"):
            return f"changing {args[1]} of an object" if args[1] in _SET_ATTRS else None
        if event == "import":
            ok = not direct_is_student or self.import_allowed(str(args[0]))
            return None if ok else f"importing {args[0]}"
        if event in ("marshal.loads", "marshal.load") and (first or "").startswith("<frozen importlib"):
            return None  # the compiled file of a module being imported
        if event == "open":
            path = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else ""
            return f"opening {path}" if path.startswith("/proc") or path.startswith("/dev/mem") else None
        return event

    def _code(self, event: str, args: tuple, first: str) -> str | None:
        """Compiling or running code while student code is on the stack: only module imports and
        the standard library's code generators; what they compile is not trusted."""
        if event == "compile":
            name = args[1] if len(args) > 1 else None
            if isinstance(name, (str, bytes)):
                name = os.fsdecode(name)
                self.untrusted_names.add(name)
                self._cache.pop(name, None)
        safe = first.endswith(_SAFE_CODEGEN) and self.is_trusted(first)
        if event == "exec" and first.startswith("<frozen importlib"):
            safe = True  # a module's own code, run by an import the rules allowed
        return None if safe else ("compiling code at run time" if event == "compile" else "running code at run time")


def install(policy: Policy) -> Policy:
    """Add the hook (for the life of the process); return ``policy``."""
    sys.addaudithook(policy.hook)
    return policy
