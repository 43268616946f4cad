"""Regenerate ``labs/`` from ``solutions/`` with ``nbgrader generate_assignment``.

``python -m attnlab.course.release [LAB ...]`` (``make release``) releases every lab, or the ones
named. The release is done in a temporary copy of the course, so the gradebook and the real
``labs/`` are touched only when the generated notebooks are copied back; a lab folder in
``solutions/`` may hold only notebooks (nbgrader would hand any other file to students).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["ROOT", "lab_names", "generate", "release"]

ROOT = Path(__file__).resolve().parents[3]


def lab_names(root: Path = ROOT) -> list[str]:
    """The labs of the course: every ``solutions/lab*/`` folder, sorted."""
    return sorted(p.name for p in (root / "solutions").glob("lab*") if p.is_dir())


def _check_sources(lab_dir: Path) -> None:
    extra = [p.name for p in lab_dir.iterdir() if p.suffix != ".ipynb" and p.name != ".ipynb_checkpoints"]
    if extra:
        raise SystemExit(
            f"{lab_dir}: only notebooks may live here (nbgrader copies every file to students); "
            f"move these out: {', '.join(sorted(extra))}"
        )


def generate(lab: str, out_dir: Path, *, root: Path = ROOT) -> Path:
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


def release(labs: list[str] | None = None, *, root: Path = ROOT) -> list[Path]:
    """Regenerate ``labs/<lab>/`` for each lab (all by default)."""
    return [generate(lab, root / "labs", root=root) for lab in (labs or lab_names(root))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab folder names (default: all)")
    args = parser.parse_args(argv)
    for path in release(args.labs or None):
        print(f"released {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
