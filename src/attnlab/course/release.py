"""Regenerate ``labs/`` from ``solutions/`` with ``nbgrader generate_assignment``.

``python -m attnlab.course.release [LAB ...] [--course DIR]`` (``make release``) releases every lab,
or the ones named, of the course found from the working directory (or ``--course``). The release is done in a temporary copy of the course, so the gradebook and the real
``labs/`` are touched only when the generated notebooks are copied back; a lab folder in
``solutions/`` may hold only notebooks (nbgrader would hand any other file to students).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .notebook import find_course_root, lab_names

__all__ = ["lab_names", "generate", "release", "main"]


def _check_sources(lab_dir: Path) -> None:
    extra = [p.name for p in lab_dir.iterdir() if p.suffix != ".ipynb" and p.name != ".ipynb_checkpoints"]
    if extra:
        raise SystemExit(
            f"{lab_dir}: only notebooks may live here (nbgrader copies every file to students); "
            f"move these out: {', '.join(sorted(extra))}"
        )


def generate(lab: str, out_dir: Path, *, root: Path) -> Path:
    """Run ``nbgrader generate_assignment`` for ``lab`` in a scratch course; put the result in ``out_dir/lab``."""
    src = root / "solutions" / lab
    if not src.is_dir():
        raise SystemExit(f"no such lab: {src}")
    _check_sources(src)
    with tempfile.TemporaryDirectory(prefix="attnlab-release-") as tmp:
        course = Path(tmp)
        shutil.copy(root / "nbgrader_config.py", course / "nbgrader_config.py")
        (course / "solutions").mkdir()
        shutil.copytree(src, course / "solutions" / lab, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        cmd = [sys.executable, "-m", "nbgrader", "generate_assignment", lab, "--force", "--no-db",
               f"--CourseDirectory.root={course}", "--log-level=WARN"]
        proc = subprocess.run(cmd, cwd=course, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"nbgrader generate_assignment {lab} failed:\n{proc.stdout}\n{proc.stderr}")
        dest = Path(out_dir) / lab
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(course / "labs" / lab, dest)
    return dest


def release(labs: list[str] | None = None, *, root: Path) -> list[Path]:
    """Regenerate ``labs/<lab>/`` for each lab (all by default), one nbgrader process per core at a
    time (each lab has its own scratch course and its own ``labs/<lab>``); in the order given."""
    names = labs or lab_names(root)
    with ThreadPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda lab: generate(lab, root / "labs", root=root), names))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab folder names (default: all)")
    parser.add_argument("--course", type=Path, default=None, help="course root (default: found from the working directory)")
    args = parser.parse_args(argv)
    root = find_course_root(args.course)
    for path in release(args.labs or None, root=root):
        print(f"released {path.relative_to(root)}")


if __name__ == "__main__":
    main()
