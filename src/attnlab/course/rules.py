"""The rules an answer cell follows to be run at grading, checked on its source: no code runs.

At grading, the grader checks every answer cell *before* anything is executed, in its own process,
where no student code can reach. An answer cell that breaks a rule is not run: its exercise is
graded as unanswered, and the feedback says which line broke which rule. The labs' own-work
checks (``G.check_own_work``) run the same check in the student's notebook, so a student meets
these messages while working, never first in the grades.

The rules keep an answer to what an exercise needs: the maths, written with ``torch`` and friends.

* imports only from :data:`ALLOWED_IMPORTS` (``torch``, ``numpy``, ``math``, ``einops``, ``scipy``,
  ``attnlab`` except its grading code, and small standard modules), never private modules;
* none of ``eval``, ``exec``, ``compile``, ``__import__``, ``getattr``, ``setattr``, ``delattr``,
  ``globals``, ``locals``, ``vars``, ``open``, ``input``, ``breakpoint``, ``get_ipython``, IPython's
  history names (``In``, ``Out``, ``_ih``...), the names the lab's cells bind to what answers may
  not import (its grading module ``G``, ``mock``, ``plt``), and ``type`` only as ``type(x)``;
* no attribute or name that starts with an underscore (``x.__class__``, ``_ref``), except
  ``super().__init__`` and names the cell binds itself; none of the attributes in
  :data:`DENIED_ATTRS` (``torch.sys``, ``.f_back``, ``torch.library``...);
* attributes may be assigned only on ``self`` (``self.proj = nn.Linear(...)``);
* no ``global``; no ``import *``; no ``metaclass=``; a class may define only the special methods
  in :data:`ALLOWED_DUNDERS`; no string that spells a special name (``"__del__"``);
* ``str.format`` only on a literal whose fields are plain (``"{:.3f}".format(x)``);
* the cell must be plain Python: IPython magics (``%timeit``) and shell commands (``!ls``) are not
  run at grading.
"""

from __future__ import annotations

import ast
import re
import string
from dataclasses import dataclass
from typing import Iterable

__all__ = ["ALLOWED_IMPORTS", "DENIED_ATTRS", "ALLOWED_DUNDERS", "Violation", "check", "import_allowed",
           "lab_names", "describe"]

ALLOWED_IMPORTS = ("torch", "torchvision", "numpy", "math", "cmath", "einops", "scipy", "attnlab", "collections",
                   "itertools", "functools", "typing", "dataclasses", "random", "copy", "statistics", "heapq",
                   "bisect", "numbers", "fractions", "decimal", "re", "time", "warnings")
DENIED_ATTRS = frozenset({
    # modules that other modules happen to import (torch.sys, torch.os, torch.inspect...)
    "sys", "os", "posix", "gc", "builtins", "inspect", "ctypes", "ctypeslib", "importlib", "linecache", "subprocess",
    "threading", "multiprocessing", "signal", "socket", "shutil", "pickle", "marshal", "traceback", "types",
    "IPython", "ipykernel", "zmq", "jupyter_client", "tornado", "asyncio", "concurrent", "weakref", "atexit",
    "faulthandler", "pdb", "bdb", "code", "codeop", "runpy", "site", "sysconfig", "glob", "platform", "pathlib",
    "tempfile", "io", "mmap", "resource", "logging", "unittest", "operator", "copyreg", "dis", "enum", "bltns",
    "mp", "tunable", "serialization", "tarfile", "bltn_open", "python_multiprocessing",
    # attnlab's grading code, and the kernel's own objects
    "grading", "course", "kernel", "shell", "user_ns", "displayhook", "excepthook", "comm_manager",
    # frames, code and closures
    "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next", "gi_frame",
    "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "co_code", "co_consts", "co_names", "cell_contents",
    "func_globals", "func_code", "settrace", "setprofile", "addaudithook", "modules",
    # run-time code, native memory and global switches of torch/numpy
    "compile", "jit", "fx", "ops", "library", "hub", "package", "cpp_extension", "model_zoo", "distributed",
    "load", "loads", "from_file", "fromfile", "frombuffer", "memmap", "as_strided", "stride_tricks", "f2py",
    "attrgetter", "methodcaller", "Formatter", "set_default_dtype", "set_default_device", "set_default_tensor_type",
    "register_module_forward_hook", "register_module_forward_pre_hook", "register_module_backward_hook",
    "register_module_full_backward_hook", "register_module_full_backward_pre_hook",
    "register_module_buffer_registration_hook", "register_module_module_registration_hook",
    "register_module_parameter_registration_hook", "overrides", "export", "benchmark", "timeit", "Timer",
    "LowLevelCallable",
    # functions that evaluate strings as code
    "get_type_hints", "singledispatch", "singledispatchmethod", "ForwardRef",
})
ALLOWED_DUNDERS = frozenset({"__init__", "__call__", "__repr__", "__str__", "__len__", "__getitem__", "__iter__"})
FORBIDDEN_NAMES = frozenset({"eval", "exec", "compile", "getattr", "setattr", "delattr", "globals", "locals", "vars",
                             "open", "input", "breakpoint", "help", "exit", "quit", "get_ipython", "display",
                             "memoryview", "In", "Out"})
_IPYTHON_NAME = re.compile(r"^(_i+\d*|_\d+|_ih|_oh|_dh|__|___)$")
_DUNDER = re.compile(r"^__\w+__$")
ALLOWED_TEXT = ", ".join(ALLOWED_IMPORTS)


@dataclass(frozen=True)
class Violation:
    """One broken rule: the line of the answer cell and what is wrong, in plain words."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


def import_allowed(name: str) -> bool:
    """May an answer cell import module ``name`` (``"torch.nn.functional"``: yes; ``"os"``: no)?"""
    parts = name.split(".")
    if parts[0] not in ALLOWED_IMPORTS:
        return False
    return not any(p.startswith("_") or p in DENIED_ATTRS for p in parts[1:])


def lab_names(lab_sources: Iterable[str]) -> set[str]:
    """The names the lab's own cells bind to what an answer cell may not import: its grading module
    (``G``), and modules such as ``unittest.mock`` or ``matplotlib.pyplot`` (``mock``, ``plt``)."""
    names: set[str] = set()
    for source in lab_sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.asname or a.name.split(".")[0] for a in node.names
                          if not import_allowed(a.name if a.asname else a.name.split(".")[0])}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names |= {a.asname or a.name for a in node.names
                          if not (import_allowed(node.module) and import_allowed(f"{node.module}.{a.name}"))}
    return names


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the cell binds: assignments, parameters, loop and ``with`` targets, imports, defs."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return bound


def _plain_format(text: str) -> bool:
    try:
        return all("." not in field and "[" not in field for _, field, _, _ in string.Formatter().parse(text) if field)
    except ValueError:
        return False


class _Checker(ast.NodeVisitor):
    def __init__(self, bound: set[str], names_of_lab: set[str]):
        self.bound, self.lab_names = bound, names_of_lab
        self.found: list[Violation] = []
        self.class_depth = 0

    def bad(self, node: ast.AST, message: str) -> None:
        self.found.append(Violation(getattr(node, "lineno", 0), message))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not import_allowed(alias.name):
                self.bad(node, f"`import {alias.name}` is not allowed: answer cells may import {ALLOWED_TEXT}")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not import_allowed(module):
            self.bad(node, f"`from {'.' * node.level}{module} import ...` is not allowed: answer cells may "
                           f"import {ALLOWED_TEXT}")
            return
        for alias in node.names:
            if alias.name == "*":
                self.bad(node, f"`from {module} import *` is not allowed: import the names you use")
            elif not import_allowed(f"{module}.{alias.name}"):
                self.bad(node, f"`from {module} import {alias.name}` is not allowed")

    def visit_Name(self, node: ast.Name) -> None:
        name = node.id
        if name == "get_ipython":
            self.bad(node, "`get_ipython` is not allowed in an answer cell (IPython magics such as %timeit and shell "
                           "commands such as !ls become get_ipython(): they are not run at grading)")
        elif name in FORBIDDEN_NAMES or _IPYTHON_NAME.match(name):
            self.bad(node, f"`{name}` is not allowed in an answer cell")
        elif name in self.lab_names:
            self.bad(node, f"`{name}` is bound by the lab's own cells to something answer cells may not import "
                           "(its grading module, or a module outside the allowed ones)")
        elif name.startswith("__"):
            self.bad(node, f"`{name}`: special names are not allowed in an answer cell")
        elif name.startswith("_") and name != "_" and name not in self.bound:
            self.bad(node, f"`{name}` belongs to the lab's test cells (names that start with _ may be used "
                           "only when the answer cell defines them)")
        elif name == "type":
            self.bad(node, "`type` may be used only as `type(x)`")

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "type" and len(node.args) == 1 and not node.keywords:
            for arg in node.args:
                self.visit(arg)
            return
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        attr = node.attr
        is_super_init = (attr == "__init__" and isinstance(node.value, ast.Call)
                         and isinstance(node.value.func, ast.Name) and node.value.func.id == "super")
        if attr.startswith("_") and not is_super_init:
            self.bad(node, f"`.{attr}`: attributes that start with an underscore are not allowed "
                           "(except `super().__init__`)")
        elif attr in DENIED_ATTRS:
            self.bad(node, f"`.{attr}` is not allowed in an answer cell")
        elif attr in ("format", "format_map") and not (isinstance(node.value, ast.Constant)
                                                       and isinstance(node.value.value, str)
                                                       and _plain_format(node.value.value)):
            self.bad(node, "`.format` is allowed only on a string literal with plain fields; use an f-string")
        if isinstance(node.ctx, (ast.Store, ast.Del)) and _root(node) != "self":
            self.bad(node, f"only attributes of `self` may be assigned in an answer cell (`{ast.unparse(node)}`)")
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self._annotation(node.annotation)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self._annotation(node.annotation)
        self.generic_visit(node)

    def _annotation(self, node: ast.AST | None) -> None:
        if node is not None and any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(node)):
            self.bad(node, "write type annotations as expressions, not strings")
        elif node is not None:
            self.visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and _DUNDER.match(node.value):
            self.bad(node, f"the string {node.value!r} spells a special name: not allowed in an answer cell")

    def visit_Global(self, node: ast.Global) -> None:
        self.bad(node, "`global` is not allowed in an answer cell: return the value instead")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if any(k.arg == "metaclass" for k in node.keywords):
            self.bad(node, "`metaclass=` is not allowed in an answer cell")
        self._def_name(node)
        self.class_depth += 1
        self.generic_visit(node)
        self.class_depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._def_name(node)
        self._annotation(node.returns)
        depth, self.class_depth = self.class_depth, 0
        self.generic_visit(node)
        self.class_depth = depth

    visit_AsyncFunctionDef = visit_FunctionDef

    def _def_name(self, node) -> None:
        if _DUNDER.match(node.name) and not (self.class_depth and node.name in ALLOWED_DUNDERS):
            self.bad(node, f"`{node.name}` may not be defined here: a class in an answer cell may define "
                           f"{', '.join(sorted(ALLOWED_DUNDERS))} and ordinary methods")

    def visit_MatchClass(self, node: ast.MatchClass) -> None:
        for attr in node.kwd_attrs:
            if attr.startswith("_") or attr in DENIED_ATTRS:
                self.bad(node, f"`{attr}=` in a class pattern is not allowed")
        self.generic_visit(node)


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def check(source: str, *, lab_names: Iterable[str] = ()) -> list[Violation]:
    """The rules ``source`` (one answer cell) breaks, in line order; ``[]`` when it may run.

    ``lab_names``: names the lab binds to what answers may not import (see :func:`lab_names`).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        line = (err.text or "").strip()
        hint = (" (IPython magics and shell commands are not run at grading)"
                if line.startswith(("%", "!")) else "")
        return [Violation(err.lineno or 0, f"not valid Python: {err.msg}{hint}")]
    checker = _Checker(_bound_names(tree), set(lab_names))
    checker.visit(tree)
    return sorted(set(checker.found), key=lambda v: (v.line, v.message))


def describe(violations: list[Violation], limit: int = 5) -> str:
    """The first ``limit`` violations as one readable sentence."""
    shown = "; ".join(str(v) for v in violations[:limit])
    more = f" (and {len(violations) - limit} more)" if len(violations) > limit else ""
    return shown + more
