"""Check each submitted file before grading, and say in plain words what is wrong with it.

A file that cannot be graded (not UTF-8, not JSON, not a notebook, too big) is reported and scores
zero; a file with repairable damage is repaired and graded, and the repair is reported:

* a notebook under another name (``lab03 (1).ipynb``) is graded as the expected notebook when it is
  the only notebook submitted;
* a test cell whose nbgrader metadata was stripped (copied into a new notebook) gets it back when
  its source is the lab's; a deleted test cell is put back by nbgrader (``add_missing_cells``);
* a duplicated grade id (a copied test cell) would stop nbgrader: the later copies lose their
  nbgrader marks and run as ordinary cells.

Nothing here runs student code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from ..course.notebook import nbgrader_meta, visible_source

__all__ = ["MAX_BYTES", "Preflight", "cell_ids", "check_submission"]

MAX_BYTES = 20 * 1024 * 1024


@dataclass
class Preflight:
    """What the pre-flight check found for one student's submission."""

    student: str
    notebooks: dict[str, nbformat.NotebookNode] = field(default_factory=dict)  # expected name -> cleaned notebook
    problems: list[str] = field(default_factory=list)  # a notebook could not be graded
    repairs: list[str] = field(default_factory=list)  # graded after a repair
    notes: list[str] = field(default_factory=list)  # ignored files and the like

    @property
    def gradable(self) -> bool:
        return bool(self.notebooks)

    def messages(self) -> list[str]:
        return self.problems + self.repairs + self.notes


def cell_ids(nb) -> dict[str, str]:
    """``grade_id -> kind`` ('test', 'solution', 'locked') of the nbgrader cells of a notebook."""
    out = {}
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        gid = meta.get("grade_id")
        if not gid:
            continue
        kind = "test" if meta.get("grade") and not meta.get("solution") else "solution" if meta.get("solution") else "locked"
        out[gid] = kind
    return out


def _load(path: Path) -> tuple[nbformat.NotebookNode | None, str | None, str | None]:
    size = path.stat().st_size
    if size > MAX_BYTES:
        return None, None, f"{path.name}: {size / 1e6:.1f} MB is more than the {MAX_BYTES / 1e6:.0f} MB a lab notebook may have"
    if size == 0:
        return None, None, f"{path.name}: the file is empty"
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return None, None, f"{path.name}: not UTF-8 text (byte {err.start}); re-save it from Jupyter"
    try:
        data = json.loads(text)
    except ValueError as err:
        return None, None, f"{path.name}: not a valid notebook file: the JSON is broken ({err}); re-save it from Jupyter"
    if not isinstance(data, dict) or "cells" not in data:
        return None, None, f"{path.name}: JSON, but not a Jupyter notebook (no cells)"
    try:
        nb = nbformat.reads(text, as_version=4)
    except Exception as err:  # noqa: BLE001 - nbformat raises many kinds
        return None, None, f"{path.name}: not a readable notebook ({type(err).__name__}: {err})"
    try:
        nbformat.validate(nb)
    except nbformat.ValidationError as err:
        # Cells with odd fields still run; report, keep going.
        msg = str(err).splitlines()[0]
        return nb, f"{path.name}: the notebook format has errors ({msg}); graded anyway", None
    return nb, None, None


def _copy_meta(cell) -> dict:
    meta = json.loads(json.dumps(cell.metadata["nbgrader"]))
    meta.pop("checksum", None)
    return meta


def _repair(nb, source, name: str, pf: Preflight) -> None:
    src_cells = {(nbgrader_meta(c).get("grade_id")): c for c in source.cells if nbgrader_meta(c).get("grade_id")}
    src_kind = cell_ids(source)
    # 1. duplicated grade ids: keep the first, unmark the others
    seen: set[str] = set()
    for cell in nb.cells:
        gid = nbgrader_meta(cell).get("grade_id")
        if not gid:
            continue
        if gid in seen:
            del cell.metadata["nbgrader"]
            pf.repairs.append(f"{name}: the cell '{gid}' appears more than once; the first copy is graded, "
                              "the others run as ordinary cells")
        seen.add(gid)
    # 2. stripped metadata: a cell whose source is one of the lab's locked or test cells (as
    #    released: hidden tests removed) gets its marks back; so does the answer cell just before
    #    a test cell of its exercise
    by_source = {visible_source(c.source): gid for gid, c in src_cells.items()
                 if src_kind[gid] in ("test", "locked") and visible_source(c.source)}
    restored = []
    for cell in nb.cells:
        if nbgrader_meta(cell):
            continue
        gid = by_source.get(visible_source(cell.get("source", "")))
        if gid and gid not in seen and cell.cell_type == src_cells[gid].cell_type:
            cell.metadata["nbgrader"] = _copy_meta(src_cells[gid])
            seen.add(gid)
            restored.append(gid)
    solutions = [gid for gid, kind in src_kind.items() if kind == "solution"]
    for sol in solutions:
        if sol in seen:
            continue
        first_test = next((i for i, c in enumerate(nb.cells)
                           if str(nbgrader_meta(c).get("grade_id", "")).startswith(f"test_{sol}")), None)
        if first_test is None:
            continue
        i = first_test - 1
        while i >= 0 and not nbgrader_meta(nb.cells[i]) and nb.cells[i].cell_type != "code":
            i -= 1
        if i >= 0 and not nbgrader_meta(nb.cells[i]) and nb.cells[i].cell_type == "code":
            nb.cells[i].metadata["nbgrader"] = _copy_meta(src_cells[sol])
            seen.add(sol)
            restored.append(sol)
    if restored:
        pf.repairs.append(f"{name}: nbgrader marks were missing on {len(restored)} lab cell(s) "
                          f"({', '.join(restored)}); they were put back")
    # 3. deleted test cells: nbgrader puts them back (add_missing_cells); say so
    missing = [gid for gid, kind in src_kind.items() if kind == "test" and gid not in seen]
    if missing:
        pf.repairs.append(f"{name}: test cell(s) {', '.join(missing)} were deleted; "
                          "they are put back from the lab and graded")
    lost = [gid for gid, kind in src_kind.items() if kind == "solution" and gid not in seen]
    if lost:
        # nbgrader needs every answer cell to put deleted test cells back: add an empty one
        for gid in lost:
            cell = nbformat.v4.new_code_cell("", metadata={"nbgrader": _copy_meta(src_cells[gid])})
            nb.cells.append(cell)
        pf.notes.append(f"{name}: the answer cell(s) {', '.join(lost)} were not found "
                        "(deleted or copied into a new cell); the code that is there still runs")


def check_submission(student: str, folder: Path, sources: dict[str, nbformat.NotebookNode]) -> Preflight:
    """Check ``folder`` (``submitted/<student>/<lab>``) against the lab's source notebooks.

    ``sources`` maps each expected notebook name (``lab03_transformer``) to its source notebook.
    """
    pf = Preflight(student)
    folder = Path(folder)
    if folder.is_symlink() or folder.parent.is_symlink():
        pf.problems.append("the submission folder is a symbolic link; copy the files instead")
        return pf
    if not folder.is_dir():
        pf.problems.append("no submission folder for this lab")
        return pf
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    notebooks = [p for p in files if p.suffix == ".ipynb" and p.is_file() and not p.is_symlink()]
    for p in files:
        if p not in notebooks and p.name != "timestamp.txt":
            pf.notes.append(f"{p.name}: not a notebook; ignored")
    if not notebooks:
        pf.problems.append("the submission has no notebook (.ipynb) file" + (" (the folder is empty)" if not files else ""))
        return pf
    by_name = {p.stem: p for p in notebooks}
    unclaimed = [p for p in notebooks if p.stem not in sources]
    for expected in sources:
        path = by_name.get(expected)
        if path is None:
            if len(sources) == 1 and len(unclaimed) == 1:
                path = unclaimed.pop()
                pf.repairs.append(f"{path.name}: expected the name {expected}.ipynb; graded as that notebook")
            else:
                pf.problems.append(f"{expected}.ipynb is missing")
                continue
        nb, note, problem = _load(path)
        if problem:
            pf.problems.append(problem)
            continue
        if note:
            pf.notes.append(note)
        _repair(nb, sources[expected], f"{expected}.ipynb", pf)
        pf.notebooks[expected] = nb
    for p in unclaimed:
        pf.notes.append(f"{p.name}: not one of this lab's notebooks; ignored")
    return pf
