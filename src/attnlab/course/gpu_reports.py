"""Run every lab solution in the ``full`` profile on a CUDA machine; write ``reports/gpu/<lab>.json``.

``python -m attnlab.course.gpu_reports [LAB ...] [--allow-cpu] [--engine papermill|exec]``
(``make gpu-reports``). Each solution is executed with papermill (``profile="full"``), or, with
``--engine exec`` on a machine without the Jupyter stack (the lent GPU machines have torch but no
papermill), by running its code cells in order in a fresh Python process with ``profile = "full"``
set after the parameters cell; the metrics it records with
``attnlab.training.record_metric`` are collected through ``ATTNLAB_METRICS_FILE``, and the report
holds them with the device name, the torch version and the run time. Without CUDA the command
stops, unless ``--allow-cpu`` is given (then the report says so and is written under
``reports/cpu-full/`` so it is never mistaken for a GPU result).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from .notebook import environment, find_course_root, lab_names, solution_path

__all__ = ["run_lab", "notebook_code", "read_report", "describe_report", "main"]


def _device_name() -> str:
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"


def _run_papermill(src: Path, tmp: str, lab: str, profile: str, timeout: int) -> None:
    import papermill as pm

    pm.execute_notebook(str(src), str(Path(tmp) / f"{lab}.ipynb"), parameters={"profile": profile},
                        cwd=tmp, progress_bar=False, kernel_name="python3", execution_timeout=timeout)


def notebook_code(src: Path, profile: str) -> list[str]:
    """The code cells of a notebook (read as plain JSON), with ``profile`` set after the parameters cell."""
    cells = json.loads(src.read_text(encoding="utf-8"))["cells"]
    code = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        code.append(source)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            code.append(f"profile = {profile!r}")
    return code


def _run_exec(src: Path, tmp: str, profile: str, timeout: int) -> None:
    """Run the code cells in a fresh process (no Jupyter needed); raise if a cell fails."""
    import subprocess

    (Path(tmp) / "cells.json").write_text(json.dumps(notebook_code(src, profile)))
    script = ("import json, sys; from attnlab.course.cellrunner import run_cells; "
              "errors = run_cells(json.load(open('cells.json'))); bad = [e for e in errors if e]; "
              "print(bad[0] if bad else 'ok', file=sys.stderr); sys.exit(1 if bad else 0)")
    import attnlab

    # the package this process imported, also where it is not installed (PYTHONPATH=src, relative to the course)
    package_root = str(Path(attnlab.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp, timeout=timeout,
                          env={**os.environ, "MPLBACKEND": "Agg", "PYTHONPATH": path})
    if proc.returncode != 0:
        raise RuntimeError(f"{src.name}: a cell failed in the {profile} profile (see the message above)")


def run_lab(lab: str, out_dir: Path, *, root: Path, profile: str = "full", timeout: int = 1800,
            engine: str = "papermill") -> dict:
    """Execute ``solutions/<lab>`` in ``profile``; return and write its report."""
    src = solution_path(lab, root)
    with tempfile.TemporaryDirectory(prefix=f"attnlab-{lab}-") as tmp:
        metrics_file = Path(tmp) / "metrics.json"
        start = time.perf_counter()
        with environment(ATTNLAB_METRICS_FILE=str(metrics_file), ATTNLAB_PROGRESS="text"):
            if engine == "exec":
                _run_exec(src, tmp, profile, timeout)
            else:
                _run_papermill(src, tmp, lab, profile, timeout)
        seconds = time.perf_counter() - start
        metrics = json.loads(metrics_file.read_text()) if metrics_file.exists() else {}
    report = {
        "lab": lab,
        "profile": profile,
        "device": _device_name(),
        "cuda": torch.cuda.is_available(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "seconds": round(seconds, 1),
        "metrics": metrics,
        "date": time.strftime("%Y-%m-%d"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{lab}.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def read_report(lab: str, *, root: Path | None = None) -> dict | None:
    """The committed ``reports/gpu/<lab>.json`` of the course (found from the working directory), or None."""
    path = find_course_root(root) / "reports" / "gpu" / f"{lab}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def describe_report(lab: str, metric: str, *, root: Path | None = None) -> str:
    """One sentence for a page: the ``full`` profile's ``metric`` from the GPU report, or that there is none.

    Pages cite GPU results only through this, so a page never quotes a report that does not exist.
    """
    report = read_report(lab, root=root)
    if report is None:
        return (f"No GPU report of {lab} is committed yet (reports/gpu/ is empty for it); run "
                "`make gpu-reports` on a CUDA machine to produce one.")
    value = report.get("metrics", {}).get(metric)
    if value is None:
        return f"The GPU report of {lab} ({report['device']}) does not record {metric}."
    return (f"{metric} = {value:.4g} in the full profile on {report['device']} "
            f"(torch {report['torch']}, {report['seconds']:.0f} s, {report['date']}).")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", help="lab folder names (default: all)")
    parser.add_argument("--allow-cpu", action="store_true", help="run without CUDA (report goes to reports/cpu-full/)")
    parser.add_argument("--course", type=Path, default=None, help="course root (default: found from the working directory)")
    parser.add_argument("--engine", choices=("papermill", "exec"), default="papermill",
                        help="exec: run the code cells without Jupyter (for machines without papermill)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the reports (default: COURSE/reports/gpu)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        sys.exit("gpu-reports: no CUDA device here; the full profile is meant for a GPU (use --allow-cpu to force)")
    root = find_course_root(args.course)
    out_dir = args.out or root / "reports" / ("gpu" if torch.cuda.is_available() else "cpu-full")
    for lab in args.labs or lab_names(root):
        report = run_lab(lab, out_dir, root=root, engine=args.engine)
        print(f"{lab}: {report['seconds']} s on {report['device']}: {report['metrics']}")


if __name__ == "__main__":
    main()
