"""The ``attnlab`` a sandbox imports: the package with the lab's graded functions and classes stubbed.

A lab's exercises ask for functions and classes that the package also holds (``patchify`` is both
lab 4's exercise 1 and ``attnlab.vit.patchify``). In the sandbox those definitions are replaced by
stubs that raise an error naming the exercise, in every module that defines them, so an answer can
neither call nor read the course's own solution, however it imports it. Everything else of the
package is the real code (a later exercise may build on an earlier chapter's pieces).

The copy is written once per lab and grading run into a scratch folder that the sandbox mounts
read-only in place of the package; the real sources are not mounted at all.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

__all__ = ["graded_names", "stub_source", "write_stubbed_package"]

_MESSAGE = ("{qual} is {exercise} of this lab, which you write yourself: the course's own version "
            "is not available while the lab is graded")


def graded_names(solution_sources: dict[str, str]) -> dict[str, str]:
    """``{name: exercise grade id}`` for every function and class an answer cell defines."""
    out: dict[str, str] = {}
    for gid, source in solution_sources.items():
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                out.setdefault(node.name, gid)
    return out


def _stub(node: ast.AST, module: str, exercise: str) -> str:
    message = _MESSAGE.format(qual=f"{module}.{node.name}", exercise=f"exercise {exercise!r}")
    if isinstance(node, ast.ClassDef):
        return (f"class {node.name}:\n"
                f"    \"\"\"Stub: {message}.\"\"\"\n\n"
                f"    def __init__(self, *args, **kwargs):\n"
                f"        raise NotImplementedError({message!r})\n")
    return (f"def {node.name}(*args, **kwargs):\n"
            f"    \"\"\"Stub: {message}.\"\"\"\n"
            f"    raise NotImplementedError({message!r})\n")


def stub_source(source: str, module: str, names: dict[str, str]) -> str:
    """``source`` with each top-level definition named in ``names`` replaced by a stub."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    cuts = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name in names:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            cuts.append((first - 1, node.end_lineno, _stub(node, module, names[node.name])))
    for start, end, text in reversed(cuts):
        lines[start:end] = [text]
    return "".join(lines)


def write_stubbed_package(package: Path, dest: Path, names: dict[str, str]) -> Path:
    """Copy the package at ``package`` (``.../attnlab``) into ``dest/attnlab`` with ``names``
    stubbed; returns ``dest`` (the folder to put on the sandbox's ``sys.path``)."""
    target = dest / "attnlab"
    if target.exists():
        shutil.rmtree(target)
    for path in sorted(package.rglob("*")):
        rel = path.relative_to(package)
        if "__pycache__" in rel.parts or path.is_dir():
            continue
        out = target / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".py" and rel.parts[0] not in ("course", "grader"):
            module = ".".join(("attnlab", *rel.with_suffix("").parts)).removesuffix(".__init__")
            out.write_text(stub_source(path.read_text("utf-8"), module, names), encoding="utf-8")
        else:
            shutil.copyfile(path, out)
    for d in [dest, *target.rglob("*")]:
        if d.is_dir():
            d.chmod(0o755)
        else:
            d.chmod(0o644)
    return dest
