"""JupyterLab for a student, or for an instructor: ``python -m attnlab.course.lab_app student|instructor``.

nbgrader installs one JupyterLab extension with instructor and student parts. A student needs
*Validate* (and the assignment list, where an exchange is configured); the *Create Assignment*
panel, the formgrader and the course list are instructors' tools. This module writes a Jupyter
configuration folder per role (``build/jupyter/<role>/``) that turns the other parts off, both the
browser plugins (``labconfig/page_config.json``) and their server extensions, and starts JupyterLab
with it (``make lab``: student; ``make lab-instructor``: everything).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .notebook import find_course_root

__all__ = ["ROLES", "INSTRUCTOR_PLUGINS", "write_config", "lab_command", "main"]

ROLES = ("student", "instructor")
# nbgrader's browser plugins and server extensions that only an instructor uses
INSTRUCTOR_PLUGINS = ("@jupyter/nbgrader:create-assignment", "@jupyter/nbgrader:formgrader",
                      "@jupyter/nbgrader:course-list", "@jupyter/nbgrader:menu")
INSTRUCTOR_SERVER_EXTENSIONS = ("nbgrader.server_extensions.formgrader", "nbgrader.server_extensions.course_list")
EXCHANGE_PLUGIN = "@jupyter/nbgrader:assignment-list"
EXCHANGE_SERVER_EXTENSION = "nbgrader.server_extensions.assignment_list"


def write_config(folder: Path, role: str, *, exchange: bool = False) -> Path:
    """Write the Jupyter configuration folder of ``role``; return it (use it as JUPYTER_CONFIG_DIR).

    ``exchange``: keep the student's assignment list (only useful where nbgrader's exchange is set up).
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    folder = Path(folder)
    (folder / "labconfig").mkdir(parents=True, exist_ok=True)
    disabled, server_off = {}, {}
    if role == "student":
        disabled = {name: True for name in INSTRUCTOR_PLUGINS}
        server_off = {name: False for name in INSTRUCTOR_SERVER_EXTENSIONS}
        if not exchange:
            disabled[EXCHANGE_PLUGIN] = True
            server_off[EXCHANGE_SERVER_EXTENSION] = False
    (folder / "labconfig" / "page_config.json").write_text(json.dumps({"disabledExtensions": disabled}, indent=1))
    (folder / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": server_off}}, indent=1))
    return folder


def lab_command(notebook_dir: Path, *, port: int | None = None, browser: bool = True) -> list[str]:
    """The ``jupyter lab`` command line (``--allow-root`` when run as root, as in a container)."""
    cmd = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={notebook_dir}"]
    if port is not None:
        cmd.append(f"--port={port}")
    if not browser:
        cmd.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--course", type=Path, default=None, help="course root (default: found from the working directory)")
    parser.add_argument("--exchange", action="store_true", help="keep the assignment list (an nbgrader exchange is set up)")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)
    root = find_course_root(args.course)
    config = write_config(root / "build" / "jupyter" / args.role, args.role, exchange=args.exchange)
    notebooks = root / ("labs" if args.role == "student" else ".")
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config))
    cmd = lab_command(notebooks, port=args.port, browser=not args.no_browser)
    os.execvpe(cmd[0], cmd, env)


if __name__ == "__main__":
    main()
