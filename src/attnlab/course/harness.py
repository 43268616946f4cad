"""The lab harness: what the test suite proves for every lab, as plain functions.

A lab is ``solutions/<lab>/<lab>.ipynb`` with nbgrader markup: solution cells with a ``grade_id``
such as ``ex1_sdpa``, and autograded test cells whose ids start with ``test_`` + that id. This
module reads that structure, substitutes mutants (plausible wrong answers) into solution cells,
executes notebooks in the ``smoke`` profile and scores test cells the way nbgrader does (a test
cell earns its points when it runs without an error).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from .release import ROOT, lab_names

__all__ = [
    "Mutant",
    "lab_names",
    "solution_path",
    "load_mutants",
    "exercises",
    "test_cells",
    "substitute",
    "execute",
    "cell_scores",
    "environment",
]


@contextlib.contextmanager
def environment(**variables: str):
    """Set environment variables (inherited by the kernels started inside) and restore them after."""
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass(frozen=True)
class Mutant:
    """A plausible wrong answer: ``source`` replaces the whole solution cell ``exercise``."""

    exercise: str
    name: str
    why: str
    source: str

    @property
    def id(self) -> str:
        return f"{self.exercise}:{self.name}"


def solution_path(lab: str, root: Path = ROOT) -> Path:
    return root / "solutions" / lab / f"{lab}.ipynb"


def load_mutants(lab: str, root: Path = ROOT) -> list[Mutant]:
    """The ``MUTANTS`` list of ``tests/mutants/<lab>.py`` (empty if the file is missing)."""
    path = root / "tests" / "mutants" / f"{lab}.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"mutants_{lab}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.MUTANTS)


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def exercises(nb) -> list[str]:
    """Grade ids of the solution cells, in notebook order."""
    return [_nbgrader(c)["grade_id"] for c in nb.cells if _nbgrader(c).get("solution")]


def test_cells(nb) -> dict[str, float]:
    """Grade id -> points of every autograded test cell, in notebook order."""
    return {_nbgrader(c)["grade_id"]: float(_nbgrader(c).get("points", 0))
            for c in nb.cells if _nbgrader(c).get("grade") and c.cell_type == "code"}


def tests_of(nb, exercise: str) -> list[str]:
    """The test cells that hold ``exercise``: ids starting with ``test_<exercise>``."""
    return [gid for gid in test_cells(nb) if gid.startswith(f"test_{exercise}")]


def substitute(nb, mutant: Mutant, *, truncate: bool = True):
    """A copy of ``nb`` with the mutant's source in its exercise's solution cell.

    With ``truncate``, cells after the exercise's last test cell are dropped (they cannot change
    its score and would only cost time).
    """
    nb = copy.deepcopy(nb)
    ids = [_nbgrader(c).get("grade_id") for c in nb.cells]
    if mutant.exercise not in ids:
        raise KeyError(f"mutant {mutant.id}: no solution cell {mutant.exercise!r}")
    nb.cells[ids.index(mutant.exercise)].source = mutant.source.strip("\n")
    if truncate:
        last = max(ids.index(t) for t in tests_of(nb, mutant.exercise))
        nb.cells = nb.cells[: last + 1]
    return nb


def execute(nb, *, cwd: Path, profile: str = "smoke", timeout: int = 300, allow_errors: bool = True):
    """Execute ``nb`` in a fresh kernel with the profile forced; return (executed nb, seconds)."""
    nb = copy.deepcopy(nb)
    with environment(ATTNLAB_FORCE_PROFILE=profile, ATTNLAB_PROGRESS="off"):
        start = time.perf_counter()
        NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                       resources={"metadata": {"path": str(cwd)}}).execute()
        return nb, time.perf_counter() - start


def cell_scores(nb) -> dict[str, float]:
    """Points earned by each test cell of an executed notebook (all or nothing, as nbgrader)."""
    scores = {}
    for c in nb.cells:
        meta = _nbgrader(c)
        if meta.get("grade") and c.cell_type == "code":
            failed = any(o.get("output_type") == "error" for o in c.get("outputs", []))
            scores[meta["grade_id"]] = 0.0 if failed else float(meta.get("points", 0))
    return scores


def error_of(nb, grade_id: str) -> str:
    """The error a test cell raised ('' if none): for messages."""
    for c in nb.cells:
        if _nbgrader(c).get("grade_id") == grade_id:
            for o in c.get("outputs", []):
                if o.get("output_type") == "error":
                    return f"{o.get('ename')}: {o.get('evalue')}"
    return ""


def read(path: Path):
    return nbformat.read(str(path), as_version=4)
