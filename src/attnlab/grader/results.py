"""What grading a class produces: one :class:`StudentResult` per student, one :class:`ClassResult`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["StudentResult", "ClassResult"]


@dataclass
class StudentResult:
    student: str
    scores: dict[str, float] = field(default_factory=dict)  # grade_id -> points
    messages: list[str] = field(default_factory=list)
    status: str = "graded"  # graded | not gradable | autograde failed ... | timed out ...
    seconds: float = 0.0


@dataclass
class ClassResult:
    lab: str
    max_scores: dict[str, float]  # grade_id -> points
    exercises: dict[str, list[str]]  # exercise -> its test cells' grade ids
    students: dict[str, StudentResult]
    out_dir: Path
    csv_path: Path
    summary_path: Path
    plot_path: Path | None
    seconds: float = 0.0  # grading the class, wall clock
    workers: int = 1

    @property
    def per_minute(self) -> float:
        """Students graded per minute."""
        return 60 * len(self.students) / self.seconds if self.seconds else 0.0

    def save(self, path: Path) -> None:
        """Write this result as JSON (``grades/<lab>/result.json``)."""
        data = {"lab": self.lab, "max_scores": self.max_scores, "exercises": self.exercises,
                "students": {k: vars(v) for k, v in self.students.items()},
                "out_dir": str(self.out_dir), "csv_path": str(self.csv_path),
                "summary_path": str(self.summary_path), "plot_path": str(self.plot_path) if self.plot_path else None,
                "seconds": self.seconds, "workers": self.workers}
        Path(path).write_text(json.dumps(data, indent=1))

    @classmethod
    def load(cls, path: Path) -> "ClassResult":
        d = json.loads(Path(path).read_text())
        return cls(d["lab"], d["max_scores"], d["exercises"],
                   {k: StudentResult(**v) for k, v in d["students"].items()}, Path(d["out_dir"]),
                   Path(d["csv_path"]), Path(d["summary_path"]), Path(d["plot_path"]) if d["plot_path"] else None,
                   d.get("seconds", 0.0), d.get("workers", 1))

    def exercise_scores(self, student: str) -> dict[str, float]:
        s = self.students[student].scores
        return {ex: sum(s.get(g, 0.0) for g in gids) for ex, gids in self.exercises.items()}

    def exercise_max(self) -> dict[str, float]:
        return {ex: sum(self.max_scores[g] for g in gids) for ex, gids in self.exercises.items()}
