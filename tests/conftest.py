"""Shared fixtures and the run-time report of the lab harness."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# nbgrader runs alembic as a subprocess: the venv's bin must be on PATH.
os.environ["PATH"] = str(Path(os.sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("ATTNLAB_PROGRESS", "off")
TIMES = ROOT / "build" / "reports" / "smoke_times"  # one <lab>.json per lab (xdist workers write in parallel)


def pytest_terminal_summary(terminalreporter):
    """Print the smoke run time of every lab solution measured in this run (see test_labs.py)."""
    times = {p.stem: json.loads(p.read_text()) for p in sorted(TIMES.glob("*.json"))}
    if not times:
        return
    terminalreporter.section("smoke run time of each lab solution (papermill, 2 cores)")
    for lab, seconds in sorted(times.items()):
        terminalreporter.write_line(f"{lab:32s} {seconds:6.1f} s")


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
