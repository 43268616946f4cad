"""The IPython kernel that runs a student's notebook during grading.

It is an ordinary ``ipykernel`` kernel with one addition: before a cell whose source is one of the
lab's test cells (the grader passes their SHA-256 in ``ATTNLAB_TEST_HASHES``; nbgrader has already
put the instructor's source back into every test cell), it undoes what earlier student cells may
have done to the interpreter:

* IPython's input transformers, AST transformers and event callbacks are reset to the state the
  kernel started with (a hook that rewrites later cells - e.g. empties them - has no effect);
* the callables of ``builtins``, ``torch``, ``numpy``, ``attnlab`` and their submodules, and the
  methods of ``torch.Tensor`` / ``torch.nn.Module``, are put back if a student replaced them
  (``torch.allclose = lambda *a, **k: True``), and so are the ``sys.modules`` entries;
* the names the instructor's cells bound (``G`` for ``attnlab.grading``, imported references) are
  bound again, in case a student cell rebound them;
* ``sys.settrace`` / ``sys.setprofile`` hooks are removed;
* while the test cell runs, ``sys.stderr`` is the cell's standard output, so a warning raised
  inside a correct answer is shown but does not make nbgrader count the test as failed.

This is a guard inside the student's own process, so it raises the bar rather than giving a
proof: a student who attacks this guard itself (patches this class) is not stopped here. The
grading command's process-level sandbox is what protects the course, the gradebook and other
students; see ``attnlab.course.grade``.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import types

from ipykernel.ipkernel import IPythonKernel

from .notebook import cell_hash

__all__ = ["GuardedKernel"]

_SNAP_PREFIXES = ("torch", "numpy", "attnlab", "math", "warnings", "builtins", "scipy", "einops")


def _import_attnlab() -> None:
    import attnlab

    for info in pkgutil.walk_packages(attnlab.__path__, "attnlab."):
        if info.name.startswith("attnlab.course"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - a broken optional module is not the guard's business
            pass


class GuardedKernel(IPythonKernel):
    """``IPythonKernel`` that restores a trusted interpreter state before each test cell."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        try:
            spec = json.loads(os.environ.get("ATTNLAB_TEST_HASHES", "{}") or "{}")
        except ValueError:
            spec = {}
        self._tests = set(spec.get("tests", []))
        self._trusted = set(spec.get("trusted", [])) | self._tests
        import numpy  # noqa: F401
        import numpy.testing  # noqa: F401
        import torch  # noqa: F401
        import torch.testing  # noqa: F401

        _import_attnlab()
        shell = self.shell
        self._modules = {}
        for name, mod in list(sys.modules.items()):
            if isinstance(mod, types.ModuleType) and name.split(".")[0] in _SNAP_PREFIXES:
                self._modules[name] = (mod, {k: v for k, v in vars(mod).items()
                                             if callable(v) or isinstance(v, types.ModuleType)})
        self._classes = []
        import torch as _torch

        for cls in (_torch.Tensor, _torch.nn.Module, _torch.nn.Parameter, type(shell), type(self)):
            self._classes.append((cls, dict(vars(cls))))
        self._shell_state = {
            "input_transformers_cleanup": list(shell.input_transformers_cleanup),
            "input_transformers_post": list(shell.input_transformers_post),
            "ast_transformers": list(shell.ast_transformers),
            "line_transforms": list(shell.input_transformer_manager.line_transforms),
            "token_transformers": list(shell.input_transformer_manager.token_transformers),
            "cleanup_transforms": list(shell.input_transformer_manager.cleanup_transforms),
            "events": {k: list(v) for k, v in shell.events.callbacks.items()},
            "custom_exceptions": shell.custom_exceptions,
            "CustomTB": shell.CustomTB,
        }
        self._bindings: dict[str, object] = {}
        self._stdout = sys.stdout

    # -- restoring -------------------------------------------------------------------------------
    def _restore(self) -> None:
        sys.settrace(None)
        sys.setprofile(None)
        import threading

        threading.settrace(None)
        threading.setprofile(None)
        for name, (mod, snap) in self._modules.items():
            sys.modules[name] = mod
            d = vars(mod)
            for k, v in snap.items():
                if d.get(k, _MISSING) is not v:
                    d[k] = v
        for cls, snap in self._classes:
            for k, v in snap.items():
                if k in ("__dict__", "__weakref__", "__doc__"):
                    continue
                if vars(cls).get(k, _MISSING) is not v:
                    try:
                        setattr(cls, k, v)
                    except (AttributeError, TypeError):
                        pass
            for k in list(vars(cls)) if cls.__module__.startswith("torch") else ():
                if k not in snap:
                    try:
                        delattr(cls, k)
                    except (AttributeError, TypeError):
                        pass
        shell = self.shell
        for attr in ("run_cell", "run_cell_async", "run_ast_nodes", "run_code", "transform_cell",
                     "showtraceback", "_run_cell", "should_run_async"):
            shell.__dict__.pop(attr, None)
        self.__dict__.pop("do_execute", None)
        st = self._shell_state
        shell.input_transformers_cleanup[:] = st["input_transformers_cleanup"]
        shell.input_transformers_post[:] = st["input_transformers_post"]
        shell.ast_transformers[:] = st["ast_transformers"]
        mgr = shell.input_transformer_manager
        mgr.line_transforms[:] = st["line_transforms"]
        mgr.token_transformers[:] = st["token_transformers"]
        mgr.cleanup_transforms[:] = st["cleanup_transforms"]
        shell.events.callbacks.clear()
        shell.events.callbacks.update({k: list(v) for k, v in st["events"].items()})
        shell.custom_exceptions = st["custom_exceptions"]
        shell.CustomTB = st["CustomTB"]
        shell.user_ns.update(self._bindings)

    # -- executing -------------------------------------------------------------------------------
    async def do_execute(self, code, silent, *args, **kwargs):
        digest = cell_hash(code)
        trusted = digest in self._trusted
        is_test = digest in self._tests
        before = dict(self.shell.user_ns) if trusted else None
        if is_test:
            self._restore()
            saved_err = sys.stderr
            sys.stderr = sys.stdout  # warnings are shown, not counted as a failure
            try:
                reply = await super().do_execute(code, silent, *args, **kwargs)
            finally:
                sys.stderr = saved_err
        else:
            reply = await super().do_execute(code, silent, *args, **kwargs)
        if trusted and before is not None:
            for k, v in self.shell.user_ns.items():
                if not k.startswith("_") and before.get(k, _MISSING) is not v:
                    if isinstance(v, types.ModuleType) or callable(v):
                        self._bindings[k] = v
        return reply


_MISSING = object()
