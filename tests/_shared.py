"""Helpers shared by test modules (kept out of conftest.py, which pytest loads itself)."""

from __future__ import annotations

import json
import os
import shutil


def shared_run(tmp_path_factory, name: str, make) -> dict:
    """Run ``make(folder)`` once per test session, even across xdist workers; return its JSON result.

    A file lock guards a folder that all workers share. (``--dist loadgroup`` with ``xdist_group``
    does not keep a group on one worker with pytest 9.2 and pytest-xdist 3.8.0: measured.)
    """
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / f"attnlab-{name}"
    with FileLock(str(shared) + ".lock"):
        done = shared / "done.json"
        if not done.exists():
            if shared.exists():
                shutil.rmtree(shared)
            shared.mkdir()
            done.write_text(json.dumps(make(shared)))
        return json.loads(done.read_text())
