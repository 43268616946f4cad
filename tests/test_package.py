"""The package's own conventions (CONTRIBUTING.md), checked for every module, so new chapters keep them.

* every ``__all__`` is true: each listed name exists, and every public function or class a module
  defines is listed;
* no function is longer than 60 lines;
* importing a module changes no global state (random generators, matplotlib's style);
* every ``nn.Module`` of the package has a keyword-only constructor, and no constructor names the
  model width other than ``dim`` (a feature map's width is ``channels``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import attnlab

SRC = Path(attnlab.__file__).resolve().parent
MODULES = sorted(info.name for info in pkgutil.walk_packages(attnlab.__path__, "attnlab."))
# The model width is `dim` (`in_dim`/`out_dim`, `embed_dim` where they differ); these say the same
# thing under another name.
OTHER_WIDTH_NAMES = {"hidden_size", "emb_size", "embed_size", "d_model", "hidden_dim", "width", "input_size",
                     "output_size", "emb_dim", "model_dim", "n_embd"}


def _defined_public(module) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    return {node.name for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and not node.name.startswith("_")}


@pytest.mark.parametrize("name", MODULES)
def test_all_is_true(name):
    module = importlib.import_module(name)
    if not hasattr(module, "__all__"):
        assert not _defined_public(module) or name.endswith("__main__"), f"{name} defines public names but no __all__"
        return
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    unlisted = sorted(_defined_public(module) - set(module.__all__))
    assert not unlisted, f"{name} defines public names missing from __all__: {unlisted}"


def test_no_function_is_longer_than_60_lines():
    long = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > 60:
                    long.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "functions over 60 lines (split them): " + "; ".join(long)


def test_importing_the_package_changes_no_global_state():
    code = f"""
import random, torch, numpy as np, matplotlib
before = (random.getstate(), torch.random.get_rng_state().clone(), np.random.get_state()[1].copy(),
          dict(matplotlib.rcParams))
import importlib
for name in {MODULES!r}:
    importlib.import_module(name)
after = (random.getstate(), torch.random.get_rng_state(), np.random.get_state()[1], dict(matplotlib.rcParams))
assert before[0] == after[0], "Python's random state changed"
assert torch.equal(before[1], after[1]), "torch's random state changed"
assert (before[2] == after[2]).all(), "numpy's random state changed"
changed = [k for k in before[3] if before[3][k] != after[3][k]]
assert not changed, f"matplotlib rcParams changed on import: {{changed}}"
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def _package_modules_classes():
    for name in MODULES:
        if name.startswith("attnlab.course"):
            continue
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__ == name:
                yield obj


@pytest.mark.parametrize("cls", list(_package_modules_classes()), ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_modules_have_keyword_only_constructors_and_one_name_for_the_width(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    assert not positional, f"{cls.__name__}(...) takes {positional} by position; make them keyword-only (after *)"
    other = OTHER_WIDTH_NAMES & {p.name for p in params}
    assert not other, f"{cls.__name__} names a width {sorted(other)}: use dim (tokens) or channels (feature maps)"


def test_random_functions_take_a_generator():
    """A public function that draws random numbers takes ``generator=`` (no global seeding)."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "course" in path.parts or path.name == "training.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                body = ast.unparse(node)
                draws = any(f"torch.{f}(" in body for f in ("rand", "randn", "randint", "randperm", "multinomial", "bernoulli"))
                args = {a.arg for a in node.args.args + node.args.kwonlyargs}
                if draws and "generator" not in args and "manual_seed" not in body:
                    offenders.append(f"{path.name}:{node.name}")
    assert not offenders, f"functions that draw random numbers without a generator= argument: {offenders}"
