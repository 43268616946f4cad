"""Copied answers: a similarity report over a class and the course's own code.

For one lab, every student's answer to each exercise (the nbgrader solution cells of
``submitted/<student>/<lab>/<lab>.ipynb``, by ``grade_id``) is compared with every other student's
answer to that exercise and with the course's own code for it: the solution cell of
``solutions/<lab>/<lab>.ipynb`` and the package's source of the functions and classes that cell
defines (``patchify`` of lab 4 is compared with ``attnlab/vit.py``'s ``patchify``). The comparison is
copydetect's winnowing over pygments tokens: names become ``V``/``F``/``O``, strings ``S``, comments
and white space vanish, so renamed identifiers, rewritten comments and reformatting change nothing;
every run of at least ``NOISE`` normalised characters that two answers share is found (the guarantee
threshold equals the noise threshold: short cells are cheap to fingerprint whole), so reordered
independent statements still match, each run of that length on its own. The lab's given code (the
released cells: signature, docstring, stub lines) never counts: it is copydetect's boilerplate, and
its lines are blanked before fingerprinting so that no match straddles given and answered code.
``NOISE``, ``THRESHOLD`` and ``MIN_MATCH`` were set on the planted class of tests/test_similarity.py
(book/instructors.md gives what it measured).

Output: ``similarity.csv`` (the pairs at or above the threshold) and ``similarity.html`` (each flagged
pair side by side, matching regions highlighted; one file, offline).

What it promises and what it cannot: it *flags*, an instructor judges. A short exercise has few ways
to be written, and two honest students can write the same tokens (and a student who copies a
one-line answer looks like one who wrote it); a student who rewrites a copied answer thoroughly
enough is not flagged. The scores are evidence for a conversation with the student, not a verdict.
"""

from __future__ import annotations

import argparse
import ast
import csv
import functools
import html
import io
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from attnlab.course import notebook as N

__all__ = ["NOISE", "THRESHOLD", "MIN_MATCH", "Pair", "SimilarityReport", "similarity_report", "main"]

NOISE = 16          # shortest shared run of normalised characters that counts (a statement or two)
THRESHOLD = 0.6     # flag a pair when this share of either answer matches the other
MIN_MATCH = 60      # ... and at least this many normalised characters match (four statements or so)


@dataclass(frozen=True)
class Pair:
    """One comparison: ``a`` (a student) against ``b`` (another student, or the course's code)."""

    exercise: str
    a: str
    b: str
    kind: str                       # "student" or "course"
    a_to_b: float                   # share of a's answer (given code aside) found in b
    b_to_a: float
    matched: int                    # normalised characters of a that match b
    source_a: str = field(repr=False, compare=False, default="")
    source_b: str = field(repr=False, compare=False, default="")
    slices_a: np.ndarray = field(repr=False, compare=False, default=None)   # (2, n) starts and ends in source_a
    slices_b: np.ndarray = field(repr=False, compare=False, default=None)

    @property
    def score(self) -> float:
        return max(self.a_to_b, self.b_to_a)


@dataclass
class SimilarityReport:
    lab: str
    students: list[str]             # compared
    skipped: dict[str, str]         # student -> why their notebook was not compared
    compared: list[Pair]            # every comparison made
    flagged: list[Pair]             # those at or above the threshold
    threshold: float
    csv_path: Path
    html_path: Path
    seconds: float


# ------------------------------------------------------------------------------ the course's code
@dataclass(frozen=True)
class _Exercise:
    name: str
    solution: str                   # the solution cell
    references: dict[str, str]      # label -> the package's source of a name the cell defines


def _defined_names(source: str) -> list[str]:
    """Top-level functions and classes a cell defines."""
    try:
        return [n.name for n in ast.parse(source).body
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    except SyntaxError:
        return re.findall(r"^(?:async\s+)?(?:def|class)\s+(\w+)", source, flags=re.M)


def _package_dir(course: Path) -> Path:
    """The course's ``src/attnlab``, else the installed package."""
    here = course / "src" / "attnlab"
    if here.is_dir():
        return here
    import attnlab

    return Path(attnlab.__file__).parent


@functools.lru_cache(maxsize=4)
def _package_definitions(package: Path) -> dict[str, list[tuple[str, str]]]:
    """Name -> [(label, source)] of every top-level function and class of the package's modules
    (the authoring tools in ``course/`` and the grader aside)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent)
        if rel.parts[1] in ("course", "grader"):
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.parse(text).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                found.setdefault(node.name, []).append((f"{rel.as_posix()}:{node.name}",
                                                        ast.get_source_segment(text, node)))
    return found


def _course_code(course: Path, lab: str) -> tuple[dict[str, _Exercise], list[str]]:
    """The lab's exercises with the course's code for each, and the given code of every released cell."""
    solutions = N.read(N.solution_path(lab, course))
    released_path = course / "labs" / lab / f"{lab}.ipynb"
    if not released_path.is_file():
        raise FileNotFoundError(f"{released_path} is missing (make release writes it)")
    given = [c.source for c in N.read(released_path).cells if N.is_solution_cell(c)]
    definitions = _package_definitions(_package_dir(course))
    exercises = {}
    for cell in solutions.cells:
        if N.is_solution_cell(cell) and N.grade_id(cell):
            refs = {label: src for name in _defined_names(cell.source) for label, src in definitions.get(name, [])}
            exercises[N.grade_id(cell)] = _Exercise(N.grade_id(cell), cell.source, refs)
    return exercises, given


# ------------------------------------------------------------------------------ the students' answers
def _answers(submitted: Path, lab: str, exercises) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """student -> exercise -> answer cell source; and student -> why their notebook was skipped."""
    answers, skipped = {}, {}
    for folder in sorted(p for p in Path(submitted).iterdir() if p.is_dir()):
        path = folder / lab / f"{lab}.ipynb"
        if not path.is_file():
            if (folder / lab).is_dir():
                skipped[folder.name] = f"no {lab}.ipynb in {folder.name}/{lab}/"
            continue
        try:
            nb = N.read(path)
            cells = [c for c in nb.cells if N.is_solution_cell(c)]
            mine = {ex: "\n".join(str(c.source) for c in cells if N.grade_id(c) == ex) for ex in exercises}
        except Exception as err:  # any unreadable notebook is reported, never stops the report
            skipped[folder.name] = f"unreadable notebook: {type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            continue
        answers[folder.name] = {ex: src for ex, src in mine.items() if src.strip()}
    return answers, skipped


# ------------------------------------------------------------------------------ comparing
def _fingerprint(name: str, source: str, boilerplate: np.ndarray, given_lines: frozenset = frozenset()):
    """copydetect's fingerprint of ``source``, whose lines of given code are blanked first (same length,
    so that the matches' positions are positions in ``source``)."""
    from copydetect import CodeFingerprint

    fp = CodeFingerprint(f"{name}.py", NOISE, 1, boilerplate, language="python",
                         fp=io.StringIO(_blank_given(source, given_lines)))
    fp.raw_code = source
    return fp


def _blank_given(source: str, given_lines: frozenset) -> str:
    """Lines that are the lab's given code, as spaces: no fingerprint spans given and answered code
    (copydetect's boilerplate removes the given code's own fingerprints, not those that straddle it)."""
    return "".join(" " * len(line.rstrip("\n")) + line[len(line.rstrip("\n")):]
                   if line.strip() in given_lines else line for line in source.splitlines(keepends=True))


def _boilerplate(given: list[str]) -> np.ndarray:
    hashes = [h for src in given for h in _fingerprint("given", src, np.array([])).hashes]
    return np.unique(np.array(hashes, dtype=np.int64))


def _compare(exercise: str, a: str, b: str, kind: str, fa, fb) -> Pair:
    from copydetect import compare_files

    matched, (ab, ba), (sa, sb) = compare_files(fa, fb)
    return Pair(exercise, a, b, kind, float(ab), float(ba), int(matched), fa.raw_code, fb.raw_code, sa, sb)


def _flag(pair: Pair, threshold: float) -> bool:
    return pair.score >= threshold and pair.matched >= MIN_MATCH


def similarity_report(*, course: Path, lab: str, submitted: Path, out: Path,
                      threshold: float = THRESHOLD) -> SimilarityReport:
    """Compare the class's answers to ``lab`` with each other and with the course's code; write
    ``out/similarity.csv`` and ``out/similarity.html``; return what was compared and flagged."""
    start = time.perf_counter()
    course, submitted, out = Path(course), Path(submitted), Path(out)
    exercises, given = _course_code(course, lab)
    boilerplate = _boilerplate(given)
    given_lines = frozenset(line.strip() for src in given for line in src.splitlines() if line.strip())
    answers, skipped = _answers(submitted, lab, exercises)
    compared = []
    for ex, exercise in exercises.items():
        course_refs = {f"solution:{ex}": exercise.solution, **exercise.references}
        refs = {label: _fingerprint(label, src, boilerplate, given_lines) for label, src in course_refs.items()}
        prints = {s: _fingerprint(s, a[ex], boilerplate, given_lines) for s, a in answers.items() if ex in a}
        names = list(prints)
        for i, s in enumerate(names):
            compared += [_compare(ex, s, t, "student", prints[s], prints[t]) for t in names[i + 1:]]
            compared += [_compare(ex, s, label, "course", prints[s], fp) for label, fp in refs.items()]
    flagged = sorted((p for p in compared if _flag(p, threshold)),
                     key=lambda p: (list(exercises).index(p.exercise), -p.score, p.a, p.b))
    out.mkdir(parents=True, exist_ok=True)
    report = SimilarityReport(lab, sorted(answers), skipped, compared, flagged, threshold,
                              out / "similarity.csv", out / "similarity.html", 0.0)
    _write_csv(report)
    report.seconds = time.perf_counter() - start
    _write_html(report)
    return report


# ------------------------------------------------------------------------------ writing
def _write_csv(report: SimilarityReport) -> None:
    with open(report.csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["exercise", "a", "b", "similarity_a_to_b", "similarity_b_to_a", "kind", "matched_tokens"])
        for p in report.flagged:
            w.writerow([p.exercise, p.a, p.b, f"{p.a_to_b:.3f}", f"{p.b_to_a:.3f}", p.kind, p.matched])


_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 1rem 2rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin: 0 0 .4rem; }
.how { background: #f4f6fa; border-left: 4px solid #4a6fa5; padding: .6rem 1rem; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
td, th { border-bottom: 1px solid #ddd; padding: .25rem .7rem; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pair { border: 1px solid #ccc; border-radius: 6px; padding: .8rem 1rem; margin: 1.2rem 0; }
.panes { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
.pane { margin: 0; min-width: 0; }
.pane figcaption { font-weight: 600; margin-bottom: .3rem; }
.pane pre { background: #fafafa; border: 1px solid #e2e2e2; padding: .6rem; overflow-x: auto;
            font: 13px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; margin: 0; white-space: pre; }
mark.match { background: #ffd54f; color: inherit; border-radius: 2px; }
.skipped { color: #8a2b00; }
"""


def _highlighted(source: str, slices) -> str:
    from copydetect.utils import highlight_overlap

    if slices is None or len(slices) == 0 or np.asarray(slices).size == 0:
        return html.escape(source)
    marked, _ = highlight_overlap(source, np.asarray(slices), "<mark class='match'>", "</mark>",
                                  escape_html=True)
    return marked


def _pair_html(i: int, p: Pair) -> str:
    e = html.escape
    return f"""<article class="pair" id="pair-{i}" data-exercise="{e(p.exercise)}">
<h2>{e(p.exercise)}: {e(p.a)} and {e(p.b)} <small>({e(p.kind)})</small></h2>
<p>{p.a_to_b:.0%} of {e(p.a)}'s answer matches {e(p.b)}; {p.b_to_a:.0%} of {e(p.b)} matches {e(p.a)}
({p.matched} normalised characters).</p>
<div class="panes">
<figure class="pane"><figcaption>{e(p.a)}</figcaption><pre><code>{_highlighted(p.source_a, p.slices_a)}</code></pre></figure>
<figure class="pane"><figcaption>{e(p.b)}</figcaption><pre><code>{_highlighted(p.source_b, p.slices_b)}</code></pre></figure>
</div></article>"""


def _write_html(report: SimilarityReport) -> None:
    e = html.escape
    rows = "\n".join(
        f'<tr><td>{e(p.exercise)}</td><td><a href="#pair-{i}">{e(p.a)}</a></td><td>{e(p.b)}</td>'
        f'<td class="num">{p.a_to_b:.2f}</td><td class="num">{p.b_to_a:.2f}</td><td>{e(p.kind)}</td></tr>'
        for i, p in enumerate(report.flagged))
    per_exercise = "".join(
        f"<li>{e(ex)}: {len({x for p in report.compared if p.exercise == ex for x in (p.a, p.b) if p.kind == 'student' or x == p.a})}"
        f" answers, {sum(p.exercise == ex for p in report.flagged)} of {sum(p.exercise == ex for p in report.compared)} pairs flagged</li>"
        for ex in dict.fromkeys(p.exercise for p in report.compared))
    skipped = "".join(f"<li><b>{e(s)}</b>: {e(why)}</li>" for s, why in report.skipped.items())
    body = "\n".join(_pair_html(i, p) for i, p in enumerate(report.flagged)) or "<p>No pair reached the threshold.</p>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Similarity report: {e(report.lab)}</title>
<style>{_CSS}</style></head><body>
<h1>Similarity report: {e(report.lab)}</h1>
<div class="how"><p><b>How to read it.</b> Each exercise's answer of every student was compared with every
other student's and with the course's own code (the solution cell and the package's source of the graded
function). Names, comments, layout and string contents are ignored; the lab's given code (signature,
docstring, stub) never counts. A pair is listed when at least {report.threshold:.0%} of either answer
matches the other (and at least {MIN_MATCH} normalised characters do); matching regions are highlighted.</p>
<p><b>This is evidence for a conversation, not a verdict.</b> Short exercises have few ways to be written:
read both answers, and ask the student to explain theirs, before deciding anything.</p></div>
<p>{len(report.students)} notebooks compared, {len(report.compared)} comparisons,
{len(report.flagged)} pairs flagged, in {report.seconds:.1f} s. An exercise where most pairs are flagged
has one natural answer: its flags say little.</p>
<ul class="exercises">{per_exercise}</ul>
{f'<h2 class="skipped">Notebooks not compared</h2><ul class="skipped">{skipped}</ul>' if skipped else ''}
<table><thead><tr><th>exercise</th><th>a</th><th>b</th><th>a&rarr;b</th><th>b&rarr;a</th><th>kind</th></tr></thead>
<tbody>{rows}</tbody></table>
{body}
</body></html>
"""
    report.html_path.write_text(page, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Similarity report of a lab's answers (see module docstring).")
    parser.add_argument("lab")
    parser.add_argument("--course", type=Path, default=None, help="course folder (default: found from here)")
    parser.add_argument("--submitted", type=Path, default=None, help="submissions folder (default: COURSE/submitted)")
    parser.add_argument("--threshold", type=float, default=THRESHOLD, help=f"share that flags a pair (default {THRESHOLD})")
    args = parser.parse_args(argv)
    course = N.find_course_root(args.course)
    report = similarity_report(course=course, lab=args.lab, submitted=args.submitted or course / "submitted",
                               out=course / "grades" / args.lab, threshold=args.threshold)
    for student, why in report.skipped.items():
        print(f"similarity: skipped {student}: {why}")
    print(f"similarity: {len(report.students)} notebooks, {len(report.flagged)} pairs flagged "
          f"({report.seconds:.1f} s)\n{report.csv_path}\n{report.html_path}")


if __name__ == "__main__":
    main()
