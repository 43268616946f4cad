"""Shared fixtures and the run-time report of the lab harness."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# nbgrader runs alembic as a subprocess: the venv's bin must be on PATH.
os.environ["PATH"] = str(Path(os.sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("ATTNLAB_PROGRESS", "off")
TIMES = ROOT / "build" / "reports" / "smoke_times"  # one <lab>.json per lab (xdist workers write in parallel)


def pytest_sessionstart(session):
    """Forget the timings of earlier runs (only the controller, before any xdist worker starts)."""
    if not hasattr(session.config, "workerinput"):
        shutil.rmtree(ROOT / "build" / "reports", ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    """Print the smoke run time of every lab solution measured in this run (see test_labs.py)."""
    times = {p.stem: json.loads(p.read_text()) for p in sorted(TIMES.glob("*.json"))}
    if times:
        terminalreporter.section("smoke run time of each lab solution (papermill, 2 cores)")
        for lab, seconds in sorted(times.items()):
            terminalreporter.write_line(f"{lab:32s} {seconds:6.1f} s")
    book = ROOT / "build" / "reports" / "book_times.txt"
    if book.exists():
        terminalreporter.section("book pages executed in this run (cpu profile)")
        for line in book.read_text().splitlines():
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
