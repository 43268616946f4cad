"""How readers get the book online: GitHub Pages, through a workflow that cannot run here, so its file
is checked (the offline archive is opened in a browser in test_book.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def test_the_pages_workflow_builds_what_make_book_builds_and_deploys_it():
    wf = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    on = wf.get("on") or wf.get(True)                     # YAML reads a bare `on:` key as True
    assert "main" in on["push"]["branches"]
    assert wf["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    runs = " ".join(step.get("run", "") for step in build["steps"])
    assert "make book" in runs, "the workflow must build the book with the README's command"
    uses = {step.get("uses", "").split("@")[0]: step for step in build["steps"]}
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    assert "actions/checkout" in uses and "actions/setup-python" in uses
    assert deploy["needs"] == "build" and deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")
    assert "make book-archive" in runs or "book-archive" in runs
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\nbook:" in makefile and "\nbook-archive:" in makefile
