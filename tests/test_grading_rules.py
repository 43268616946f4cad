"""The answer-cell rules of grading (attnlab.course.rules) and the graded notebook (attnlab.course.answers).

The rules are checked by the grader on an answer cell's source before anything runs; an answer that
breaks one is graded as unanswered. These tests prove that every lab's solution, every mutant and
every released stub follows them (an honest student is never caught), that each rule catches what
it is for and says so in plain words, and that nothing dangerous can be reached by name from what
an answer may use (a search through the modules and classes reachable by public attribute names).
"""

from __future__ import annotations

import collections
import importlib
import sys
import types
import warnings
from pathlib import Path

import nbformat
import pytest

from attnlab.course import answers, harness, notebook, release, rules

ROOT = Path(__file__).resolve().parents[1]
LABS = release.lab_names(ROOT)
FIXTURE_SRC = ROOT / "tests" / "fixtures" / "course" / "solutions" / "lab99_fixture" / "lab99_fixture.ipynb"


def _lab_cells(nb) -> list[str]:
    return [c.source for c in nb.cells if c.cell_type == "code" and not notebook.is_solution_cell(c)]


@pytest.mark.parametrize("lab", LABS)
def test_every_solution_mutant_and_stub_follows_the_rules(lab):
    """The rules never catch an honest answer: the solutions, the mutants (plausible mistakes) and
    the released stubs all pass them."""
    nb = harness.read(harness.solution_path(lab, ROOT))
    names = rules.lab_names(_lab_cells(nb))
    assert "G" in names
    solutions = {notebook.grade_id(c): c.source for c in nb.cells if notebook.is_solution_cell(c)}
    for gid, source in solutions.items():
        assert rules.check(source, lab_names=names) == [], (lab, gid)
    for mutant in harness.load_mutants(lab, ROOT):
        assert rules.check(mutant.apply(solutions[mutant.exercise]), lab_names=names) == [], mutant.id
    released = harness.read(ROOT / "labs" / lab / f"{lab}.ipynb")
    for cell in released.cells:
        if notebook.is_solution_cell(cell):
            assert rules.check(cell.source, lab_names=names) == [], (lab, notebook.grade_id(cell))


CAUGHT = {
    "import os\n": "`import os` is not allowed",
    "from attnlab import grading\n": "`from attnlab import grading` is not allowed",
    "import attnlab.course.kernel_guard\n": "is not allowed",
    "from . import x\n": "is not allowed",
    "from torch import *\n": "import *",
    "x = eval('1')\n": "`eval` is not allowed",
    "f = getattr(torch, 'softmax')\n": "`getattr` is not allowed",
    "g = globals()\n": "`globals` is not allowed",
    "ip = get_ipython()\n": "`get_ipython` is not allowed",
    "print(In[-1])\n": "`In` is not allowed",
    "print(_i3)\n": "`_i3` is not allowed",
    "G.check_close = None\n": "bound by the lab's own cells",
    "c = x.__class__\n": "`.__class__`: attributes that start with an underscore",
    "r = _ref.causal_mask(3)\n": "`_ref` belongs to the lab's test cells",
    "s = torch.sys\n": "`.sys` is not allowed",
    "f = frame.f_back\n": "`.f_back` is not allowed",
    "torch.softmax = abs\n": "only attributes of `self` may be assigned",
    "del torch.nn.functional.softmax\n": "only attributes of `self` may be assigned",
    "def f():\n    global G\n": "`global` is not allowed",
    "class A(metaclass=M):\n    pass\n": "`metaclass=` is not allowed",
    "class A:\n    def __eq__(self, other):\n        return True\n": "`__eq__` may not be defined here",
    "d = {'__del__': print}\n": "spells a special name",
    "T = type('T', (), {})\n": "`type` may be used only as `type(x)`",
    "t = type\n": "`type` may be used only as `type(x)`",
    "s = '{0.__class__}'.format(x)\n": "`.format` is allowed only on a string literal",
    "s = fmt.format(x)\n": "`.format` is allowed only on a string literal",
    "def f(x: 'torch.Tensor'):\n    pass\n": "annotations as expressions, not strings",
    "%timeit f(x)\n": "IPython magics and shell commands are not run at grading",
    "\uff45\uff56\uff41\uff4c('1')\n": "`eval` is not allowed",  # full-width letters: Python reads them as eval
    "h = torch.utils.cpp_extension.load_inline\n": "`.cpp_extension` is not allowed",
    "torch.library.impl\n": "`.library` is not allowed",
}


@pytest.mark.parametrize("source", sorted(CAUGHT))
def test_each_rule_catches_what_it_is_for_in_plain_words(source):
    found = rules.check(source, lab_names={"G"})
    assert found, source
    assert any(CAUGHT[source] in str(v) for v in found), (source, found)
    assert all(str(v).startswith("line ") for v in found)


ALLOWED = [
    "import torch\nimport torch.nn.functional as F\nfrom torch import nn\nimport numpy as np\nimport math, einops\n",
    "from attnlab.data.tokens import PAD_ID\nfrom collections import namedtuple\nimport dataclasses, functools\n",
    "class M(nn.Module):\n    def __init__(self, *, dim):\n        super().__init__()\n        self.proj = nn.Linear(dim, dim)\n"
    "    def __repr__(self):\n        return f'M({self.proj})'\n",
    "def f(x):\n    _tmp = x * 2\n    for _ in range(3):\n        _tmp = _tmp + 1\n    return _tmp\n",
    "ok = type(x) is tuple\nprint('{:.3f} {}'.format(1.0, 'a'))\nprint(f'{x!r:>10}')\n",
    "def f(x: torch.Tensor) -> torch.Tensor:\n    nonlocal_free = 1\n    return x\n",
]


@pytest.mark.parametrize("source", ALLOWED)
def test_ordinary_answers_pass(source):
    assert rules.check(source, lab_names={"G"}) == []


def test_lab_names_are_what_answers_may_not_import():
    names = rules.lab_names(["from attnlab import grading as G\nfrom unittest import mock\n"
                             "import matplotlib.pyplot as plt\nimport torch\nfrom attnlab import plotting\n"
                             "import torch.nn.functional as F\nfrom attnlab.grading import check_close\n"])
    assert names == {"G", "mock", "plt", "check_close"}


# -- nothing dangerous reachable by name -------------------------------------------------------------

DANGEROUS_MODULES = ("sys", "os", "posix", "gc", "builtins", "ctypes", "importlib", "inspect", "subprocess",
                     "threading", "_thread", "signal", "socket", "marshal", "pickle", "linecache", "IPython",
                     "ipykernel", "zmq", "types", "code", "codeop", "runpy", "multiprocessing", "asyncio", "atexit",
                     "faulthandler", "attnlab.grading", "attnlab.course", "io", "_io", "shutil", "tempfile", "pathlib",
                     "mmap", "weakref", "operator", "logging", "unittest")


def _dangerous(obj) -> str | None:
    import builtins
    import gc
    import os

    if isinstance(obj, types.ModuleType):
        name = obj.__name__
        return name if any(name == d or name.startswith(d + ".") for d in DANGEROUS_MODULES) else None
    named = {id(getattr(builtins, n)): n for n in ("eval", "exec", "compile", "getattr", "setattr", "delattr",
                                                   "globals", "locals", "vars", "__import__", "open", "breakpoint")}
    named.update({id(sys._getframe): "sys._getframe", id(gc.get_objects): "gc.get_objects",
                  id(sys.modules): "sys.modules", id(os.system): "os.system"})
    return named.get(id(obj))


def _public_items(obj) -> list:
    """A module's attributes, or a class's (its own and inherited, looked up without running code)."""
    if isinstance(obj, types.ModuleType):
        return list(vars(obj).items())
    items: dict = {}
    for cls in reversed(obj.__mro__):
        items.update(vars(cls))
    return list(items.items())


def test_nothing_dangerous_is_reachable_by_name_from_what_answers_may_use():
    """A breadth-first search from every module an answer may import (and every module the labs'
    own cells bind to a name an answer may use), through public attribute names the rules allow,
    over modules and classes: no path reaches ``sys``, ``os``, ``gc``, ``builtins``, ``ctypes``, the
    grading code, ``eval``/``getattr``/``open``... (each finding becomes a name in DENIED_ATTRS)."""
    roots = [m for m in rules.ALLOWED_IMPORTS] + ["torch.nn.functional", "torch.nn", "numpy"]
    for lab in LABS:
        for source in _lab_cells(harness.read(harness.solution_path(lab, ROOT))):
            roots += [n for n in _imported_modules(source) if rules.import_allowed(n)]
    queue = collections.deque()
    for name in dict.fromkeys(roots):
        try:
            queue.append((importlib.import_module(name), name))
        except ImportError:
            pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # some modules warn when their deprecated attributes are read
        seen, found = _search(queue)
    assert len(seen) > 1000
    assert not found, f"reachable by name from an answer (deny the attribute in rules.DENIED_ATTRS): {found}"


def _search(queue: collections.deque) -> tuple[set, dict]:
    seen, found = set(), {}
    while queue:
        obj, path = queue.popleft()
        if id(obj) in seen or path.count(".") > 12:
            continue
        seen.add(id(obj))
        for key, value in _public_items(obj):
            if key.startswith("_") or key in rules.DENIED_ATTRS:
                continue
            hit = _dangerous(value)
            if hit:
                found.setdefault(hit, f"{path}.{key}")
            elif isinstance(value, (types.ModuleType, type)):
                queue.append((value, f"{path}.{key}"))
    return seen, found


def _imported_modules(source: str) -> list[str]:
    import ast

    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append(node.module)
    return out


# -- the graded notebook ---------------------------------------------------------------------------------

def _fixture():
    source = nbformat.read(str(FIXTURE_SRC), as_version=4)
    released = nbformat.from_dict(source)
    for cell in released.cells:
        if notebook.is_solution_cell(cell):
            cell.source = cell.source.split("### BEGIN SOLUTION")[0] + "    # YOUR CODE HERE\n    raise NotImplementedError()"
        elif notebook.is_test_cell(cell):
            cell.source = notebook.visible_source(cell.source)
    return source, released


def test_graded_notebook_runs_only_the_labs_cells_and_rule_abiding_answers():
    source, released = _fixture()
    student = nbformat.from_dict(released)
    student.cells.insert(1, nbformat.v4.new_code_cell("print('my own cell')"))
    for cell in student.cells:
        if notebook.grade_id(cell) == "ex1_softmax":
            cell.source = "import os\ndef softmax_last(x):\n    return x\n"
        elif notebook.grade_id(cell) == "ex2_meansq":
            cell.source = "def mean_square(x):\n    return 1.0\n"
        elif notebook.grade_id(cell) == "test_ex1_softmax_values":
            cell.source = "pass"
    graded = answers.graded_notebook(released, source, student, lab_names={"G"})
    by_id = {notebook.grade_id(c): c.source for c in graded.nb.cells if notebook.grade_id(c)}
    assert by_id["ex2_meansq"] == "def mean_square(x):\n    return 1.0\n"
    assert "raise NotImplementedError()" in by_id["ex1_softmax"] and "# | import os" in by_id["ex1_softmax"]
    assert "BEGIN HIDDEN TESTS" in by_id["test_ex1_softmax_values"]  # the instructor's test cell, in full
    assert "my own cell" not in nbformat.writes(graded.nb)
    assert len(graded.nb.cells) == len(released.cells)
    assert list(graded.broken) == ["ex1_softmax"]
    text = " ".join(graded.messages)
    assert "ex1_softmax: graded as unanswered" in text and "`import os` is not allowed" in text
    assert "1 code cell(s) you added" in text


def test_kernel_facts_forbid_per_exercise():
    nb = harness.read(harness.solution_path("lab03_transformer", ROOT))
    facts = answers.kernel_facts(nb, nb)
    assert set(facts["tests"].values()) == set(notebook.test_cells(nb))
    masked = facts["forbidden"]["test_ex1_sdpa_masked"]  # no check_own_work of its own: its exercise's list
    assert masked == facts["forbidden"]["test_ex1_sdpa_unmasked"] and "attnlab.attention" in masked
    assert facts["forbidden"]["test_ex4_causal_future"] == ["attnlab.attention"]
    lab_cells = [c for c in nb.cells if c.cell_type == "code" and not notebook.is_test_cell(c)
                 and not notebook.is_solution_cell(c)]
    assert {notebook.cell_hash(c.source) for c in lab_cells} == set(facts["lab"])
