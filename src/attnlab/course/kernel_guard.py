"""The grading kernel: an IPython kernel that runs one student's notebook and judges its test cells.

It is started inside the sandbox (:mod:`attnlab.course.sandbox`) by the warm server, before any
student code, and does this:

1. **the audit hook** (:mod:`attnlab.course.audit`) goes in first; nothing in Python can take it
   out again;
2. **a snapshot** of the interpreter as the lab's tests need it: the functions, classes and
   submodules of ``torch``, ``numpy``, ``attnlab``, ``math``, ``builtins`` and friends, and the
   attributes of their classes; every module becomes a :class:`GuardedModule`, whose attributes
   student code may not assign;
3. **its own dispatch**: every cell is compiled and run by the kernel itself (not through IPython's
   input transformers, AST transformers or event hooks), under a made-up file name that tells the
   audit hook whose code it is. The grader says with each cell what it is (a lab cell, an answer
   cell or a test cell); a lab or test cell must also be one of the lab's own (its SHA-256 is
   checked), or it runs as an answer cell. The method is a data descriptor on the class, so an
   instance attribute cannot shadow it;
4. **before each test cell** the snapshot is put back (and so are the names the lab's own cells
   bound, such as ``G``), the own-work tripwires of its exercise are armed
   (:mod:`attnlab.course.tripwire`), and warnings go to the cell's standard output (shown, not
   counted as a failure);
5. **after each test cell** it fails the cell when an own-work tripwire fired, when the audit hook
   refused anything while the cell ran, when anything in the snapshot changed while it ran, or
   when a thread started by the student was running; otherwise it sends the grader a
   **confirmation**: an HMAC of the grader's per-cell challenge and the cell's SHA-256 under a key
   that only the grader and this kernel know. The grader gives a test cell its points only with a
   valid confirmation, so a cell that was skipped, emptied, cut short or answered by anything other
   than this code scores nothing. The key lives only in a generator's frame, which student code
   cannot read (frames are refused by the audit hook).
"""

from __future__ import annotations

import hashlib
import hmac
import linecache
import operator
import os
import secrets
import sys
import threading
import types
from dataclasses import dataclass, field

from . import audit, rules, tripwire
from .notebook import cell_hash

__all__ = ["CONFIRM_MIME", "PROTECTED", "SKIPPED", "KernelConfig", "Guard", "Judge", "confirmation", "guarded_module_class",
           "guard_modules", "make_kernel_class", "start_kernel"]

CONFIRM_MIME = "application/x-attnlab-confirmation+json"
PROTECTED = ("torch", "numpy", "attnlab", "math", "warnings", "builtins", "einops", "torchvision", "functools",
             "itertools", "collections", "copy", "typing", "random", "dataclasses")
# Parts of those packages that no lab's test uses (and that answer cells may not reach: see rules.py).
SKIPPED = ("torch.distributed", "torch.testing", "torch.fx", "torch.jit", "torch.onnx", "torch.export", "torch.cuda",
           "torch.utils", "torch.ao", "torch.quantization", "torch.package", "torch.profiler", "torch.compiler",
           "torch.xpu", "torch.mps", "torch.mtia", "torch.backends", "torch.masked", "torch.sparse", "torch.nested",
           "torch.futures", "torch.multiprocessing", "torch.accelerator", "torch.monitor", "torch.hub", "torch.library",
           "torch.overrides", "torch.func", "numpy.f2py", "numpy.distutils", "numpy.testing", "numpy.typing",
           "numpy.ma", "numpy.polynomial", "torchvision.datasets", "torchvision.io", "torchvision.ops")
_HEAPTYPE = 1 << 9
_compile, _exec, _id, _list, _map, _len = compile, exec, id, list, map, len


@dataclass
class KernelConfig:
    """What the grader tells a grading kernel (plain data)."""

    connection_file: str
    env: dict = field(default_factory=dict)
    lab: dict = field(default_factory=dict)  # SHA-256 of each of the lab's own cells -> its name
    tests: dict = field(default_factory=dict)  # SHA-256 of each test cell -> its grade id
    forbidden: dict = field(default_factory=dict)  # test grade id -> dotted names its exercise may not call
    trusted_roots: list = field(default_factory=list)


def confirmation(key: bytes, challenge: str, digest: str) -> str:
    """The confirmation of a test cell: HMAC-SHA256 of ``challenge:digest`` under ``key``."""
    return hmac.new(key, f"{challenge}:{digest}".encode(), hashlib.sha256).hexdigest()


def _oracle(key: bytes):
    """A generator holding ``key`` in its frame; ``send((challenge, digest))`` gives the confirmation."""
    def run(secret):
        request = yield None
        while True:
            request = yield confirmation(secret, *request)

    gen = run(key)
    next(gen)
    return gen


# ---------------------------------------------------------------------------------------------
# the snapshot


@dataclass
class _Entry:
    label: str
    owner: object  # a module (restored through its dict) or a class (restored with setattr)
    mapping: object
    getter: object
    keys: tuple
    values: tuple
    ids: list
    size: int | None  # classes: the number of attributes (an added one can shadow an inherited one)


class Guard:
    """The trusted state of the interpreter: taken once, put back before each test cell, compared after.

    Module dictionaries are compared on their functions, classes and submodules; class
    dictionaries on every attribute and on their size. The comparison is by identity and runs in
    C: a few milliseconds per cell.
    """

    def __init__(self, prefixes=PROTECTED):
        self.entries: list[_Entry] = []
        seen: set[int] = set()
        modules = {name: mod for name, mod in sys.modules.items() if _protected(name, mod, prefixes)}
        for name, mod in sorted(modules.items()):
            d = vars(mod)
            self._add(name, mod, d, [k for k, v in d.items() if callable(v) or isinstance(v, types.ModuleType)])
            for value in list(d.values()):
                if (isinstance(value, type) and value.__flags__ & _HEAPTYPE and _id(value) not in seen
                        and getattr(value, "__module__", None) in modules):
                    seen.add(_id(value))
                    self._add(f"{value.__module__}.{value.__qualname__}", value, _real_dict(value),
                              list(value.__dict__), size=True)
        self.bindings: dict[str, object] = {}

    def _add(self, label: str, owner, mapping, keys: list, *, size: bool = False) -> None:
        if not keys:
            return
        keys = tuple(keys)
        values = tuple(mapping[k] for k in keys)
        getter = operator.itemgetter(*keys) if _len(keys) > 1 else (lambda d, k=keys[0]: (d[k],))
        self.entries.append(_Entry(label, owner, mapping, getter, keys, values, _list(_map(_id, values)),
                                   _len(mapping) if size else None))

    def changed(self) -> list[str]:
        """What differs from the snapshot (``"torch.Tensor.sum"``...), quickly."""
        out = []
        for e in self.entries:
            try:
                same = _list(_map(_id, e.getter(e.mapping))) == e.ids and (e.size is None or _len(e.mapping) == e.size)
            except KeyError:
                same = False
            if not same:
                diff = [f"{e.label}.{k}" for k, v in zip(e.keys, e.values) if e.mapping.get(k, _MISSING) is not v]
                extra = [f"{e.label}.{k} (added)" for k in e.mapping if e.size is not None and k not in e.keys]
                out += diff + extra or [e.label]
        return out

    def restore(self, namespace: dict) -> list[str]:
        """Put the snapshot (and the lab's bindings into ``namespace``) back; return what had changed."""
        changed = self.changed()
        if changed:
            for e in self.entries:
                if isinstance(e.owner, type):
                    _restore_class(e)
                else:
                    for k, v in zip(e.keys, e.values):
                        if e.mapping.get(k, _MISSING) is not v:
                            e.mapping[k] = v
        namespace.update(self.bindings)
        return changed

    def remember(self, namespace: dict, before: dict) -> None:
        """After a lab or test cell: the functions, classes and modules it bound are the lab's."""
        for k, v in namespace.items():
            if not k.startswith("_") and before.get(k, _MISSING) is not v and (
                    callable(v) or isinstance(v, types.ModuleType)):
                self.bindings[k] = v


def _protected(name: str, mod, prefixes) -> bool:
    """A public module of a protected package (the private ones are out of an answer's reach)."""
    parts = name.split(".")
    return (isinstance(mod, types.ModuleType) and parts[0] in prefixes and not name.startswith(SKIPPED)
            and not any(p.startswith("_") for p in parts[1:]))


def _real_dict(cls: type) -> dict:
    """The dictionary behind ``cls.__dict__`` (read through a proxy, it is several times slower)."""
    import gc

    found = [d for d in gc.get_referents(cls.__dict__) if isinstance(d, dict)]
    return found[0] if len(found) == 1 else cls.__dict__


def _restore_class(e: _Entry) -> None:
    cls = e.owner
    for k, v in zip(e.keys, e.values):
        if cls.__dict__.get(k, _MISSING) is not v:
            try:
                setattr(cls, k, v)
            except (AttributeError, TypeError):
                pass
    for k in [k for k in cls.__dict__ if k not in e.keys]:
        try:
            delattr(cls, k)
        except (AttributeError, TypeError):
            pass


def guarded_module_class(policy: audit.Policy) -> type:
    """A module type whose attributes student code may not assign or delete."""

    class GuardedModule(types.ModuleType):
        """A module of the grading kernel: student code may not assign its attributes (library code
        may: imports set attributes on modules; what it changes is compared after each test cell)."""

        def __setattr__(self, name, value):
            if policy.caller_is_student():
                policy.refusals.append(f"assigning {self.__name__}.{name}")
                raise audit.Refused(f"not allowed while grading: assigning {self.__name__}.{name}")
            types.ModuleType.__setattr__(self, name, value)

        def __delattr__(self, name):
            if policy.caller_is_student():
                policy.refusals.append(f"deleting {self.__name__}.{name}")
                raise audit.Refused(f"not allowed while grading: deleting {self.__name__}.{name}")
            types.ModuleType.__delattr__(self, name)

    return GuardedModule


def guard_modules(module_class: type) -> None:
    """Make every plain module a ``module_class`` (modules of other types keep theirs)."""
    for mod in list(sys.modules.values()):
        if type(mod) is types.ModuleType:
            mod.__class__ = module_class


_MISSING = object()


# ---------------------------------------------------------------------------------------------
# the dispatch


class Judge:
    """Runs each cell the grader sends and decides, for a test cell, whether to confirm it."""

    def __init__(self, config: KernelConfig, oracle, policy: audit.Policy, guard: Guard, own_work: tripwire.OwnWork,
                 shell, module_class: type):
        self.config, self.oracle, self.policy, self.guard, self.own_work = config, oracle, policy, guard, own_work
        self.shell, self.namespace, self.module_class = shell, shell.user_ns, module_class
        self.token = secrets.token_hex(8)
        self.threads: set | None = None  # the kernel's own threads, counted before the first cell
        self.answers = 0
        self._traceback = shell.InteractiveTB
        self._show = type(shell)._showtraceback

    def execute(self, kernel, code: str, meta: dict) -> dict:
        """Run one cell; the reply content for ipykernel."""
        if self.threads is None:
            self.threads = set(threading.enumerate())
        digest = cell_hash(code)
        kind, gid = meta.get("kind"), str(meta.get("gid", ""))
        if kind == "test" and digest in self.config.tests:
            err = self._test(kernel, code, digest, self.config.tests[digest], str(meta.get("challenge", "")))
        elif kind == "lab" and digest in self.config.lab:
            name = f"<lab {self.config.lab[digest]} {self.token}>"
            self.policy.trust(name)
            before = dict(self.namespace)
            err = self._run(code, name)
            self.guard.remember(self.namespace, before)
        else:
            self.answers += 1
            name = f"<answer {gid or self.answers} {self.token}>"
            linecache.cache[name] = (len(code), None, code.splitlines(True), name)
            err = self._run(code, name)
        if err is not None:
            return self._error(kernel, err)
        return {"status": "ok", "execution_count": kernel.execution_count, "user_expressions": {}, "payload": []}

    def _run(self, code: str, filename: str) -> BaseException | None:
        try:
            _exec(_compile(code, filename, "exec", dont_inherit=True), self.namespace)
        except BaseException as err:  # noqa: BLE001 - every failure of a cell is its result
            return err
        return None

    def _test(self, kernel, code: str, digest: str, gid: str, challenge: str) -> BaseException | None:
        name = f"<test {gid} {self.token}>"
        self.policy.trust(name)
        self.guard.restore(self.namespace)
        guard_modules(self.module_class)
        refused = len(self.policy.refusals)
        before = dict(self.namespace)
        saved = sys.stderr
        sys.stderr = sys.stdout  # a warning is shown, not counted as a failure
        self.own_work.arm(self.config.forbidden.get(gid, []))
        try:
            err = self._run(code, name)
        finally:
            hits = self.own_work.disarm()
            sys.stderr = saved
        problems = hits + [f"refused: {r}" for r in self.policy.refusals[refused:]]
        problems += [f"{c} was changed while this test ran" for c in self.guard.changed()[:3]]
        if any(self._students_thread(t) for t in set(threading.enumerate()) - self.threads):
            problems.append("a thread started by your code was still running")
        self.guard.remember(self.namespace, before)
        if problems and err is None:
            err = AssertionError("; ".join(problems))
        elif problems:  # the cell failed anyway; say what else the kernel saw
            print("grading: " + "; ".join(problems))
        if err is None:
            self._confirm(kernel, gid, self.oracle.send((challenge, digest)))
        return err

    def _students_thread(self, thread: threading.Thread) -> bool:
        """A thread that runs student code (its target, or its class's ``run``, is not trusted code)."""
        run = getattr(thread, "_target", None) or getattr(type(thread), "run", None)
        code = getattr(getattr(run, "__func__", run), "__code__", None)
        return code is None or not self.policy.is_trusted(code.co_filename)

    def _confirm(self, kernel, gid: str, mac: str) -> None:
        content = {"data": {CONFIRM_MIME: {"cell": gid, "mac": mac}}, "metadata": {}, "transient": {}}
        kernel.session.send(kernel.iopub_socket, "display_data", content, parent=kernel.get_parent(),
                            ident=b"display_data")

    def _error(self, kernel, err: BaseException) -> dict:
        etype, tb = type(err), err.__traceback__
        try:
            stb = self._traceback.structured_traceback(etype, err, tb.tb_next if tb else None)
        except Exception:  # noqa: BLE001 - a traceback that cannot be formatted still fails the cell
            stb = [f"{etype.__name__}: {err}"]
        self._show(self.shell, etype, err, stb)
        return {"status": "error", "execution_count": kernel.execution_count, "ename": etype.__name__,
                "evalue": str(err), "traceback": stb}


class _Fixed:
    """A data descriptor for a method: an instance attribute of the same name cannot shadow it."""

    def __init__(self, fn):
        self.fn = fn

    def __get__(self, obj, objtype=None):
        return self.fn if obj is None else types.MethodType(self.fn, obj)

    def __set__(self, obj, value):
        raise AttributeError("the grading kernel's dispatch cannot be replaced")


def make_kernel_class(judges: list) -> type:
    """``IPythonKernel`` whose ``do_execute`` hands every cell to ``judges[0]`` (set once the shell exists)."""
    from ipykernel.ipkernel import IPythonKernel

    async def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False, *,
                         cell_meta=None, cell_id=None):
        meta = (cell_meta or {}).get("attnlab") if isinstance(cell_meta, dict) else None
        return judges[0].execute(self, code, meta if isinstance(meta, dict) else {})

    return type("GuardedKernel", (IPythonKernel,), {"do_execute": _Fixed(do_execute), "__module__": __name__})


def start_kernel(config: dict, key: bytes) -> None:
    """Start a grading kernel in this (sandboxed) process: hook, snapshot, then serve the grader."""
    from ipykernel.kernelapp import IPKernelApp

    from attnlab import grading

    cfg = KernelConfig(**config)
    os.environ.clear()
    os.environ.update(cfg.env)
    policy = audit.install(audit.Policy(cfg.trusted_roots, rules.import_allowed))
    own_work = tripwire.OwnWork(policy, grading._ALONE)
    for names in cfg.forbidden.values():
        own_work.prepare(names)
    judges: list = []
    app = IPKernelApp.instance(kernel_class=make_kernel_class(judges))
    app.initialize(["-f", cfg.connection_file, "--HistoryManager.hist_file=:memory:"])
    sys.path[:] = [p for p in sys.path if p and os.path.isabs(p) and p.startswith(tuple(cfg.trusted_roots))]
    module_class = guarded_module_class(policy)
    guard = Guard()
    judges.append(Judge(cfg, _oracle(key), policy, guard, own_work, app.shell, module_class))
    del key
    guard_modules(module_class)
    app.start()
