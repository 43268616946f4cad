"""Feedback for students that shows no hidden test, says how the notebook was graded, and works offline.

Before ``nbgrader generate_feedback`` renders the HTML, each autograded notebook is sanitised: the
hidden regions are cut out of the test cells, a test cell's traceback is reduced to its message,
and any cell or output that quotes a line of hidden test code is removed. A note at the top says
how the notebook was graded (the answer cells in a sandbox, the tests in the judge) and repeats the
student's grading messages (an answer cell that raised an error, cells that were not run). A
rendered page that still mentions hidden code is withheld, and the student's messages say so.

nbgrader's feedback page loads MathJax 2 from a CDN; the page is rewritten to carry the course's
own MathJax 3 (``build/mathjax``, made by ``make setup``) inside it, so that equations are typeset
without internet and the page is still a single file to hand back.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat

from ..course import notebook
from .nbgrader_setup import config_text, run_nbgrader

__all__ = ["REDACTED", "GRADING_NOTE", "hidden_lines", "strip_hidden", "sanitize_for_feedback", "grading_note",
           "find_mathjax", "offline_mathjax", "generate_feedback"]

REDACTED = "[removed from the feedback: this output quoted hidden test code]\n"
GRADING_NOTE = ("**How this notebook was graded.** The grader ran the lab's set-up cells and your answer cells, in "
                "order, in a sandbox of their own (in the `smoke` profile); cells you added, and the demonstrations, "
                "were not run. The test cells, hidden tests included, ran in a separate judge that called your "
                "functions and classes on its own inputs and compared the results. A test cell earned its points when "
                "it ran to its end without an error.")
_MATHJAX_BLOCK = re.compile(r"<!-- Load mathjax -->.*?<!-- End of mathjax configuration -->", re.S)
_MATHJAX_CONFIG = ("window.MathJax = {tex: {inlineMath: [['$', '$'], ['\\\\(', '\\\\)']], "
                   "displayMath: [['$$', '$$'], ['\\\\[', '\\\\]']], processEscapes: true, "
                   "processEnvironments: true, tags: 'ams'}, svg: {fontCache: 'global'}};")


def hidden_lines(sources: dict[str, nbformat.NotebookNode]) -> list[str]:
    """Every hidden-test line of 12 characters or more (stripped), longest first."""
    lines = {line.strip() for nb in sources.values() for cell in nb.cells if notebook.is_test_cell(cell)
             for line in notebook.split_hidden(cell.source)[1] if len(line.strip()) >= 12}
    return sorted(lines, key=len, reverse=True)


def strip_hidden(source: str) -> str:
    """A test cell's source with its hidden region replaced by one comment line."""
    out, inside = [], False
    for line in source.splitlines():
        if notebook.HIDDEN_BEGIN in line:
            inside = True
            out.append(line[: line.index(notebook.HIDDEN_BEGIN)] + "# (hidden tests were run here)")
        elif notebook.HIDDEN_END in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _mentions(text: str, hidden: list[str]) -> bool:
    return any(h in text for h in hidden)


def _output_text(output) -> str:
    parts = [str(output.get("text", "")), str(output.get("evalue", "")), "\n".join(output.get("traceback", []) or [])]
    for v in (output.get("data") or {}).values():
        parts.append(v if isinstance(v, str) else json.dumps(v))
    return "\n".join(parts)


def _short_error(out):
    name, value = out.get("ename", "Error"), str(out.get("evalue", ""))
    return nbformat.v4.new_output("error", ename=name, evalue=value, traceback=[f"{name}: {value}"])


def grading_note(messages: list[str]) -> str:
    """The markdown of the note at the top of a feedback page."""
    lines = [GRADING_NOTE]
    if messages:
        lines += ["", "**About your submission:**", ""] + [f"- {m}" for m in messages]
    return "\n".join(lines)


def sanitize_for_feedback(nb: nbformat.NotebookNode, hidden: list[str],
                          messages: list[str] | None = None) -> nbformat.NotebookNode:
    """A copy of an autograded notebook that shows no hidden test and no test-cell traceback; with
    ``messages`` (a list, possibly empty), the grading note goes on top."""
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    if messages is not None:
        safe = [m for m in messages if not _mentions(m, hidden)]
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(grading_note(safe)))
    for cell in nb.cells:
        if notebook.is_test_cell(cell):
            cell.source = strip_hidden(cell.source)
            cell.outputs = [_short_error(o) if o.output_type == "error" else o for o in cell.get("outputs", [])]
        elif _mentions(cell.get("source", ""), hidden):
            cell.source = REDACTED
        if cell.cell_type == "code":
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=REDACTED)
                            if _mentions(_output_text(o), hidden) else o for o in cell.get("outputs", [])]
    return nb


def find_mathjax(course: Path) -> Path | None:
    """The course's MathJax 3 (``build/mathjax/mathjax/es5/tex-svg.js``), or the package's checkout's."""
    import attnlab

    for root in (Path(course), Path(attnlab.__file__).resolve().parents[2]):
        path = root / "build" / "mathjax" / "mathjax" / "es5" / "tex-svg.js"
        if path.is_file():
            return path
    return None


def offline_mathjax(html: str, mathjax: Path) -> str:
    """``html`` (an nbgrader feedback page) with its CDN MathJax replaced by MathJax 3 inside the page."""
    code = mathjax.read_text("utf-8").replace("</script", "<\\/script")
    block = (f"<!-- MathJax 3, inside the page: equations are typeset without internet -->\n"
             f"<script>{_MATHJAX_CONFIG}</script>\n<script>{code}</script>")
    return _MATHJAX_BLOCK.sub(lambda _m: block, html, count=1)


def _stage(lab: str, course: Path, students, hidden: list[str], scratch: Path) -> bool:
    """Copy each student's autograded notebooks, sanitised, into ``scratch``; True if any."""
    any_nb = False
    for student in students:
        src = course / "autograded" / student / lab
        if not src.is_dir():
            continue
        dest = scratch / "autograded" / student / lab
        dest.mkdir(parents=True)
        for nbfile in src.glob("*.ipynb"):
            try:
                nb = notebook.read(nbfile)
            except Exception:  # noqa: BLE001 - an unreadable notebook gets no feedback
                continue
            nbformat.write(sanitize_for_feedback(nb, hidden, students[student].messages), str(dest / nbfile.name))
            any_nb = True
    return any_nb


def generate_feedback(lab: str, course: Path, db_url: str, hidden: list[str], results: dict, scratch: Path,
                      log) -> None:
    """Render ``feedback/<student>/<lab>/*.html`` for every graded student (``results``: student ->
    :class:`~attnlab.course.results.StudentResult`, whose messages record withheld pages)."""
    scratch.mkdir()
    (scratch / "nbgrader_config.py").write_text(config_text(str(scratch), db_url, cell_timeout=30))
    if not _stage(lab, course, results, hidden, scratch):
        return
    proc = run_nbgrader(["generate_feedback", lab, "--force"], scratch, check=False)
    if proc.returncode != 0:
        log(f"generate_feedback reported problems:\n{proc.stderr[-2000:]}")
    mathjax = find_mathjax(course)
    if mathjax is None:
        log("feedback: MathJax 3 was not found (run `make setup`); the pages load it from a CDN")
    for student in results:
        made = scratch / "feedback" / student / lab
        if not made.is_dir():
            continue
        dest = course / "feedback" / student / lab
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for html in made.glob("*.html"):
            text = html.read_text("utf-8", errors="replace")
            if _mentions(text, hidden) or notebook.HIDDEN_BEGIN in text:
                results[student].messages.append(f"{html.name}: feedback withheld (it would have shown hidden tests)")
                continue
            (dest / html.name).write_text(offline_mathjax(text, mathjax) if mathjax else text, encoding="utf-8")
