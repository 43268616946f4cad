"""How the grading command configures and runs nbgrader (always in a scratch course folder).

nbgrader runs ``alembic`` as a subprocess, so the interpreter's ``bin`` goes first on ``PATH``; the
smoke profile is forced for every kernel it starts (``ATTNLAB_FORCE_PROFILE=smoke``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["COURSE_ID", "nbgrader_env", "config_text", "run_nbgrader", "register_assignment"]

COURSE_ID = "attnlab"


def nbgrader_env() -> dict[str, str]:
    """This process's environment with the venv's ``bin`` on ``PATH`` and the smoke profile forced."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["ATTNLAB_FORCE_PROFILE"] = "smoke"
    return env


def config_text(root: str, db_url: str, *, cell_timeout: int, kernel_name: str | None = None) -> str:
    """An ``nbgrader_config.py`` for a scratch course at ``root`` with the gradebook ``db_url``."""
    lines = [
        "c = get_config()  # noqa: F821",
        f"c.CourseDirectory.root = {root!r}",
        f"c.CourseDirectory.course_id = {COURSE_ID!r}",
        "c.CourseDirectory.source_directory = 'source'",
        "c.CourseDirectory.release_directory = 'release'",
        f"c.CourseDirectory.db_url = {db_url!r}",
        "c.ClearSolutions.code_stub = {'python': '# YOUR CODE HERE\\nraise NotImplementedError()'}",
        "c.ClearSolutions.text_stub = 'YOUR ANSWER HERE'",
        f"c.Execute.timeout = {int(cell_timeout)}",
        "c.Execute.startup_timeout = 120",
        "c.OverwriteCells.add_missing_cells = True",
        "c.Autograde.create_student = True",
    ]
    if kernel_name:
        lines.append(f"c.Execute.kernel_name = {kernel_name!r}")
    return "\n".join(lines) + "\n"


def run_nbgrader(args: list[str], course: Path, *, check: bool = True) -> subprocess.CompletedProcess:
    """``python -m nbgrader ARGS`` in ``course`` (its own Jupyter config folder); raise on failure if ``check``."""
    cmd = [sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"]
    env = nbgrader_env()
    env["JUPYTER_CONFIG_DIR"] = str(course / ".jupyter")
    proc = subprocess.run(cmd, cwd=course, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def register_assignment(lab: str, sources_dir: Path, db_url: str, scratch: Path) -> None:
    """``nbgrader generate_assignment`` into ``db_url`` from a scratch copy (no release is kept)."""
    (scratch / "source").mkdir(parents=True, exist_ok=True)
    shutil.copytree(sources_dir, scratch / "source" / lab, ignore=shutil.ignore_patterns(".*", "*.pyc"),
                    dirs_exist_ok=True)
    for p in (scratch / "source" / lab).iterdir():  # only notebooks reach the gradebook
        if p.suffix != ".ipynb":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    (scratch / "nbgrader_config.py").write_text(config_text(str(scratch), db_url, cell_timeout=30))
    run_nbgrader(["generate_assignment", lab, "--force"], scratch)
