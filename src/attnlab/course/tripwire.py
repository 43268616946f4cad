"""The own-work check at run time: a call from student code into what an exercise forbids is caught.

``G.check_own_work(fn, ["attnlab.attention", ...], name)`` reads the answer before it runs; it
cannot see a reference that was imported under another name inside the function, captured in a
default argument, or fetched at run time. At grading, the kernel therefore also watches while each
test cell of the exercise runs: every Python function and class method of what the exercise
forbids (a module forbids everything defined in it) and every such ``torch`` built-in are
tripwires, and a tripwire fires when the nearest code that called it, walking out from the call
through library code, is an answer cell. Calls made by the lab's own cells (the tests compare with
the reference) and by a stand-in that ``G.graded_alone`` put in place do not count, and neither do
the reference's calls of its own helpers.

Python calls are seen through ``sys.setprofile`` (which student code may not change: the audit hook
refuses it); ``torch`` built-ins through a ``TorchFunctionMode``, which also sees calls made through
``functools.partial`` or ``map``.
"""

from __future__ import annotations

import sys
import types

__all__ = ["OwnWork"]

_FUNCTION_KINDS = (types.FunctionType, types.MethodType)


def _codes_of(fn, label: str, codes: dict) -> None:
    fn = getattr(fn, "__func__", fn)
    codes.setdefault(("globals", id(fn.__globals__)), fn.__globals__)
    code = getattr(fn, "__code__", None)
    stack = [code] if isinstance(code, types.CodeType) else []
    while stack:
        c = stack.pop()
        codes.setdefault(c, label)
        stack.extend(k for k in c.co_consts if isinstance(k, types.CodeType))


def _collect(obj, label: str, codes: dict, builtins: dict, keep: list) -> None:
    """Add the code objects (Python) and the identities (built-ins) of ``obj`` to the tripwires."""
    keep.append(obj)
    if isinstance(obj, types.ModuleType):
        for value in list(vars(obj).values()):
            if getattr(value, "__module__", None) == obj.__name__ and (callable(value) or isinstance(value, type)):
                name = getattr(value, "__qualname__", getattr(value, "__name__", "?"))
                _collect(value, f"{obj.__name__}.{name}", codes, builtins, keep)
    elif isinstance(obj, type):
        for value in vars(obj).values():
            for fn in (getattr(value, "__func__", None), getattr(value, "fget", None), getattr(value, "fset", None),
                       value):
                if isinstance(fn, _FUNCTION_KINDS):
                    _codes_of(fn, label, codes)
    elif isinstance(obj, _FUNCTION_KINDS):
        _codes_of(obj, label, codes)
    elif callable(obj):
        builtins[id(obj)] = label


class OwnWork:
    """Tripwires for one kernel; :meth:`arm` before a test cell, :meth:`disarm` after it.

    ``policy`` is the kernel's :class:`~attnlab.course.audit.Policy` (which code is an answer cell);
    ``alone`` is ``attnlab.grading``'s list of the stand-ins ``G.graded_alone`` has put in place.
    """

    def __init__(self, policy, alone: list):
        self.policy, self.alone = policy, alone
        self._sets: dict[tuple, tuple[dict, dict, set]] = {}
        self._keep: list = []
        self.codes: dict = {}
        self.builtins: dict = {}
        self._globals: set[int] = set()
        self.hits: list[str] = []
        self._mode = None

    def prepare(self, names: list[str]) -> None:
        """Resolve ``names`` now (before any student code runs)."""
        from attnlab.grading import resolve_name

        key = tuple(sorted(set(names)))
        if key in self._sets:
            return
        codes, builtins = {}, {}
        for name in key:
            _collect(resolve_name(name), name, codes, builtins, self._keep)
        module_dicts = {k[1] for k in codes if isinstance(k, tuple)}
        codes = {k: v for k, v in codes.items() if not isinstance(k, tuple)}
        self._sets[key] = (codes, builtins, module_dicts)

    def arm(self, names: list[str]) -> None:
        """Watch calls into ``names`` until :meth:`disarm`."""
        self.hits = []
        if not names:
            return
        self.prepare(names)
        self.codes, self.builtins, self._globals = self._sets[tuple(sorted(set(names)))]
        sys.setprofile(self._profile)
        if self.builtins:
            self._mode = _mode_class()(self)
            self._mode.__enter__()

    def disarm(self) -> list[str]:
        """Stop watching; return what fired (one message per forbidden function)."""
        sys.setprofile(None)
        if self._mode is not None:
            self._mode.__exit__(None, None, None)
            self._mode = None
        self.codes, self.builtins, self._globals = {}, {}, set()
        return list(dict.fromkeys(self.hits))

    def _profile(self, frame, event, arg) -> None:
        if event == "call" and id(frame.f_globals) in self._globals:
            with self.policy.quiet():
                label = self.codes.get(frame.f_code)
                if label is not None:
                    self.hit(frame.f_back, label, frame.f_code)
        elif event == "c_call" and self.builtins:
            target = getattr(arg, "func", arg) if type(arg).__name__ == "partial" else arg
            label = self.builtins.get(id(target))
            if label is not None:
                self.hit(frame, label, target)

    def _stand_in(self, target) -> bool:
        for replaced in self.alone:
            for value in replaced.values():
                if value is target or getattr(value, "__code__", None) is target:
                    return True
        return False

    def hit(self, caller, label: str, target) -> None:
        """A tripwire was reached from ``caller``: record it when the caller is an answer cell."""
        with self.policy.quiet():
            if self._stand_in(target):
                return
            frame = caller
            while frame is not None:
                code = frame.f_code
                if code in self.codes:
                    return  # the reference calling its own helpers
                name = code.co_filename
                if not self.policy.is_trusted(name):
                    self.hits.append(f"your code called {label}, which this exercise asks you to write yourself")
                    return
                if name in self.policy.trusted_names:
                    return  # the lab's own cells
                frame = frame.f_back


def _mode_class():
    from torch.overrides import TorchFunctionMode

    class _OwnWorkMode(TorchFunctionMode):
        """Sees every ``torch`` function call, however it was reached."""

        def __init__(self, owner: OwnWork):
            super().__init__()
            self.owner = owner

        def __torch_function__(self, func, types_, args=(), kwargs=None):
            label = self.owner.builtins.get(id(func))
            if label is not None:
                with self.owner.policy.quiet():
                    caller = sys._getframe(1)
                self.owner.hit(caller, label, func)
            return func(*args, **(kwargs or {}))

    return _OwnWorkMode
