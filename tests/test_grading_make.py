"""``make grade`` in any checkout: it grades with that checkout's sources, never reinstalls into the
venv it finds (a link to another checkout's, or one older than the sources), and writes no bytecode
into the package's sources."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("target", ["grade", "similarity"])
def test_make_grade_uses_this_checkout_and_installs_nothing(target, tmp_path):
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "Makefile").write_text((ROOT / "Makefile").read_text())
    for name in ("pyproject.toml",):
        (clone / name).write_text((ROOT / name).read_text())
    (clone / "requirements").mkdir()
    for name in ("pins.txt", "constraints.txt"):
        (clone / "requirements" / name).write_text((ROOT / "requirements" / name).read_text())
    (clone / ".venv").symlink_to(ROOT / ".venv")          # another checkout's venv, older than these sources
    os.utime(clone / "pyproject.toml", None)
    plan = subprocess.run(["make", "-n", target, "LAB=lab03_transformer"], cwd=clone, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr
    commands = [line for line in plan.stdout.splitlines() if "attnlab.grader" in line]
    assert len(commands) == 1, plan.stdout
    assert f"PYTHONPATH={clone}/src" in commands[0] and "PYTHONDONTWRITEBYTECODE=1" in commands[0]
    assert "pip" not in plan.stdout, f"make {target} would install into the venv it found:\n{plan.stdout}"


@pytest.mark.slow
def test_the_sandboxes_write_no_bytecode(tmp_path):
    """A student's box imports the lab's stubbed copy of the package with bytecode writing off:
    after grading a notebook, no ``__pycache__`` exists in that copy."""
    from attnlab.course import notebook
    from attnlab.grader import boxes, judge, sandbox, stubs

    lab = "lab08_properties"
    plan = judge.plan_lab(lab, notebook.read(ROOT / "solutions" / lab / f"{lab}.ipynb"),
                          notebook.read(ROOT / "labs" / lab / f"{lab}.ipynb"))
    bx = boxes.Boxes(package=ROOT / "src" / "attnlab", graded=stubs.graded_names(plan.solutions), mode="plain",
                     limits=sandbox.Limits(), work=tmp_path / "work")
    try:
        verdict = judge.judge(plan, plan.solutions, bx.connect)
        assert sum(verdict.scores.values()) == sum(plan.points.values()), verdict.errors
        assert not list(bx.stub_root.rglob("__pycache__"))
    finally:
        bx.close()
