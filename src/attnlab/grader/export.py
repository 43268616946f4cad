"""What an instructor takes away from grading a class: ``grades.csv`` (a row per student, a column
per exercise), nbgrader's own ``nbgrader_grades.csv``, ``summary.md`` (per-exercise statistics and
each student's messages) and ``scores.png`` (the score distribution of each exercise)."""

from __future__ import annotations

import csv
from pathlib import Path

from .nbgrader_setup import config_text, run_nbgrader
from .results import ClassResult

__all__ = ["export"]


def export(result: ClassResult, db_url: str, scratch: Path) -> None:
    """Write the CSV files, the summary and the plot of ``result`` into ``result.out_dir``."""
    _write_csv(result)
    scratch.mkdir()
    (scratch / "nbgrader_config.py").write_text(config_text(str(scratch), db_url, cell_timeout=30))
    run_nbgrader(["export", f"--to={result.out_dir / 'nbgrader_grades.csv'}"], scratch, check=False)
    result.summary_path.write_text(_summary(result))
    try:
        result.plot_path = _plot(result)
    except Exception:  # noqa: BLE001 - a plot never stops grading
        result.plot_path = None


def _write_csv(result: ClassResult) -> None:
    exmax = result.exercise_max()
    with open(result.csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *exmax, "total", "max", "status", "messages"])
        for student, res in result.students.items():
            ex = result.exercise_scores(student)
            w.writerow([student, *(f"{ex[e]:g}" for e in exmax), f"{sum(ex.values()):g}",
                        f"{sum(exmax.values()):g}", res.status, " | ".join(res.messages)])


def _summary(result: ClassResult) -> str:
    exmax = result.exercise_max()
    n = len(result.students)
    lines = [f"# Grades of {result.lab}", "", f"{n} student(s).", "",
             "| exercise | max | mean | median | full marks | zero |", "|---|---|---|---|---|---|"]
    for ex, mx in exmax.items():
        vals = sorted(result.exercise_scores(s)[ex] for s in result.students)
        if vals:
            mean = sum(vals) / n
            med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
            full = sum(v >= mx for v in vals)
            zero = sum(v == 0 for v in vals)
            lines.append(f"| {ex} | {mx:g} | {mean:.2f} | {med:g} | {full} ({100 * full / n:.0f}%) | {zero} ({100 * zero / n:.0f}%) |")
    lines += ["", "## Students", ""]
    for student, res in result.students.items():
        lines.append(f"- **{student}**: {sum(res.scores.values()):g} ({res.status})")
        lines += [f"    - {m}" for m in res.messages]
    return "\n".join(lines) + "\n"


def _plot(result: ClassResult) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exmax = result.exercise_max()
    if not result.students or not exmax:
        return None
    names = list(exmax)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(names), 3.2))
    fracs = [[result.exercise_scores(s)[e] / exmax[e] if exmax[e] else 0.0 for s in result.students] for e in names]
    zero = [sum(v == 0 for v in f) for f in fracs]
    full = [sum(v >= 1 for v in f) for f in fracs]
    part = [len(f) - z - u for f, z, u in zip(fracs, zero, full)]
    x = range(len(names))
    ax.bar(x, full, color="#2a9d8f", label="full marks")
    ax.bar(x, part, bottom=full, color="#e9c46a", label="partial")
    ax.bar(x, zero, bottom=[a + b for a, b in zip(full, part)], color="#e76f51", label="zero")
    ax.set_xticks(list(x), names, rotation=20, ha="right")
    ax.set_ylabel("students")
    ax.set_title(f"{result.lab}: scores per exercise", pad=26)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, frameon=False)
    fig.tight_layout()
    path = result.out_dir / "scores.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
