"""The similarity report (attnlab.grader.similarity) on a planted class of lab 4.

The class (tests/similarity_class.py): 22 students answering ``patchify`` and ``attention_rollout``
each in their own style, 2 who gave up after a line or two, 7 who copied (the package verbatim,
renamed, reordered, reformatted, all three; two from a classmate, with edits), one who handed in the
untouched lab, and two whose notebooks cannot be read (cut off; valid JSON but no notebook). The
report must flag at least 95% of the planted copies and at most 5% of the honest pairs (honest
student with honest student, or with the course).
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from pathlib import Path

import pytest
import similarity_class as K
from test_book import Visit, _serve, browser  # noqa: F401 - browser is a fixture

from attnlab.course import notebook as N
from attnlab.grader import similarity as S

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "build" / "reports"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    base = tmp_path_factory.mktemp("similarity")
    submitted = base / "submitted"
    copies = K.build_class(ROOT, submitted)
    blank = submitted / "blank" / K.LAB
    blank.mkdir(parents=True)
    shutil.copy(ROOT / "labs" / K.LAB / f"{K.LAB}.ipynb", blank / f"{K.LAB}.ipynb")   # the lab as released
    broken = submitted / "broken" / K.LAB
    broken.mkdir(parents=True)
    (broken / f"{K.LAB}.ipynb").write_text('{"cells": [{"cell_type": "code", "source": ')    # cut off mid-file
    odd = submitted / "odd" / K.LAB
    odd.mkdir(parents=True)
    (odd / f"{K.LAB}.ipynb").write_text('{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "x"}')
    start = time.perf_counter()
    report = S.similarity_report(course=ROOT, lab=K.LAB, submitted=submitted, out=base / "out")
    return report, copies, time.perf_counter() - start, submitted


def _record(lines: list[str]) -> None:
    """Print the figures of the closing note and keep them in build/reports/similarity.txt."""
    REPORTS.mkdir(parents=True, exist_ok=True)
    with open(REPORTS / "similarity.txt", "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n" + "\n".join(lines))


def _found(report, student, exercise, source) -> bool:
    for p in report.flagged:
        if p.exercise == exercise and student in (p.a, p.b):
            other = p.b if p.a == student else p.a
            if (source == "course" and p.kind == "course") or other == source:
                return True
    return False


def test_the_planted_answers_are_correct():
    """Every honest answer and every copy works: the class is a class of real answers."""
    import torch

    import attnlab.vit as V

    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 8, 12, generator=g)
    weights = [torch.softmax(torch.randn(2, 4, 5, 5, generator=g), -1) for _ in range(3)]
    released = {N.grade_id(c): c.source for c in N.read(ROOT / "labs" / K.LAB / f"{K.LAB}.ipynb").cells}
    answers = {**K.honest(), **{s: {ex: a for ex, (a, _, _) in c.items()} for s, c in K.planted_copies().items()}}
    for student, mine in answers.items():
        if student in K.PARTIAL:
            continue
        ns = {"torch": torch, "F": torch.nn.functional}
        for ex in K.EXERCISES:
            exec(K.answer_cell(released[ex], mine[ex]), ns)
        torch.testing.assert_close(ns["patchify"](images, 4), V.patchify(images, 4), msg=student)
        with pytest.raises(ValueError):
            ns["patchify"](images, 5)
        torch.testing.assert_close(ns["attention_rollout"](weights), V.attention_rollout(weights), msg=student)
        torch.testing.assert_close(ns["attention_rollout"](weights[:1], 0.3),
                                   V.attention_rollout(weights[:1], residual=0.3), msg=student)


def test_the_report_finds_the_planted_copies_and_spares_honest_pairs(planted):
    report, copies, seconds, _ = planted
    cases = [(s, ex, src) for s, c in copies.items() for ex, (src, _) in c.items()]
    missed = [c for c in cases if not _found(report, *c)]
    honest = set(K.honest())
    honest_pairs = [p for p in report.compared if p.exercise in K.EXERCISES and p.a in honest
                    and (p.kind == "course" or p.b in honest)]
    false = [p for p in honest_pairs if p in report.flagged]
    recall = 1 - len(missed) / len(cases)
    rate = len(false) / len(honest_pairs)
    lines = [f"similarity, planted class of {len(report.students)} notebooks (+2 malformed): "
             f"recall {len(cases) - len(missed)}/{len(cases)} = {recall:.1%}, "
             f"false flags {len(false)}/{len(honest_pairs)} honest pairs = {rate:.1%}, {seconds:.1f} s"]
    lines += [f"  honest pair flagged: {p.exercise} {p.a} / {p.b}: {p.a_to_b:.2f} {p.b_to_a:.2f}" for p in false]
    _record(lines)
    assert recall >= 0.95, f"missed planted copies: {missed}"
    assert rate <= 0.05, [(p.exercise, p.a, p.b, round(p.score, 2)) for p in false]


def test_given_code_never_counts(planted, monkeypatch, tmp_path):
    """The untouched lab matches nothing (its signature, docstring and stub are the lab's given code),
    and it is the handling of given code that makes it so: without the boilerplate and the blanked given
    lines, the untouched lab is flagged against the solution cells (lab 4's encoder block gives its
    whole constructor)."""
    report = planted[0]
    blank = [p for p in report.compared if "blank" in (p.a, p.b)]
    assert blank and all(p.a_to_b == 0 and p.b_to_a == 0 for p in blank)
    assert not [p for p in report.flagged if "blank" in (p.a, p.b)]
    monkeypatch.setattr(S, "_boilerplate", lambda given: S.np.array([], dtype=S.np.int64))
    monkeypatch.setattr(S, "_blank_given", lambda source, given_lines: source)
    submitted = tmp_path / "submitted"
    shutil.copytree(planted[3] / "blank", submitted / "blank")
    alone = S.similarity_report(course=ROOT, lab=K.LAB, submitted=submitted, out=tmp_path / "out")
    assert [p.exercise for p in alone.flagged if p.b.startswith("solution:")]


def test_a_malformed_notebook_is_reported_and_does_not_stop_the_report(planted):
    report = planted[0]
    assert set(report.skipped) == {"broken", "odd"} and all("unreadable" in why for why in report.skipped.values())
    assert len(report.students) == len(K.honest()) + len(planted[1]) + 1       # everyone else, and the blank lab
    page = report.html_path.read_text()
    assert "<b>broken</b>" in page and "<b>odd</b>" in page


def test_the_csv_lists_the_flagged_pairs(planted):
    report = planted[0]
    with open(report.csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["exercise", "a", "b", "similarity_a_to_b", "similarity_b_to_a", "kind", "matched_tokens"]
    assert [(r["exercise"], r["a"], r["b"], r["kind"]) for r in rows] == [(p.exercise, p.a, p.b, p.kind) for p in report.flagged]
    assert all(max(float(r["similarity_a_to_b"]), float(r["similarity_b_to_a"])) >= S.THRESHOLD - 5e-4 for r in rows)


def test_a_class_of_30_and_the_command(planted, tmp_path, capsys):
    """`python -m attnlab.grader.similarity LAB` on a course folder writes grades/LAB/similarity.*; timed on 30 notebooks."""
    course = tmp_path / "course"
    course.mkdir()
    for name in ("nbgrader_config.py", "solutions", "labs", "src"):
        os.symlink(ROOT / name, course / name)
    readable = [d for d in sorted(planted[3].iterdir()) if d.name not in ("broken", "odd")][:30]
    assert len(readable) == 30
    for d in readable:
        shutil.copytree(d, course / "submitted" / d.name)
    start = time.perf_counter()
    S.main([K.LAB, "--course", str(course)])
    seconds = time.perf_counter() - start
    out = capsys.readouterr().out
    assert "30 notebooks" in out
    assert (course / "grades" / K.LAB / "similarity.csv").is_file() and (course / "grades" / K.LAB / "similarity.html").is_file()
    _record([f"similarity report, a class of 30 notebooks of {K.LAB}: {seconds:.1f} s ({os.cpu_count()} cores)"])


@pytest.mark.browser
def test_the_report_shows_each_pair_side_by_side_offline(planted, browser):
    """similarity.html in headless Chromium with outside hosts refused: side-by-side panes, visible
    highlighted matches, no console error; screenshots in build/reports/similarity*.png."""
    report = planted[0]
    httpd = _serve(report.html_path.parent)
    visit = Visit(browser, f"http://127.0.0.1:{httpd.server_address[1]}")
    try:
        page = visit.open(report.html_path.name)
        pairs = page.locator("article.pair")
        assert pairs.count() == len(report.flagged) > 0
        assert page.locator(".how").is_visible() and "not a verdict" in page.locator(".how").inner_text()
        for i in range(pairs.count()):
            left, right = pairs.nth(i).locator("figure.pane").all()
            a, b = left.bounding_box(), right.bounding_box()
            assert abs(a["y"] - b["y"]) < 1 and a["x"] + a["width"] <= b["x"], f"pair {i}: panes not side by side"
            for pane in (left, right):
                marks = pane.locator("mark.match")
                assert marks.count() > 0 and marks.first.is_visible(), f"pair {i}: no visible highlighted match"
                assert marks.first.evaluate("m => getComputedStyle(m).backgroundColor") != "rgba(0, 0, 0, 0)"
        assert not visit.errors and not visit.outside, (visit.errors, visit.outside)
        REPORTS.mkdir(parents=True, exist_ok=True)
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.screenshot(path=str(REPORTS / "similarity.png"))             # the header: how to read it
        pairs.first.screenshot(path=str(REPORTS / "similarity_pair.png"))  # the first flagged pair
    finally:
        visit.close()
        httpd.shutdown()
