"""The student's JupyterLab, opened in a real browser: a lab runs and *Validate* says it passes, and
none of nbgrader's instructor tools (Create Assignment, formgrader, course list) is there.

The server is started the way ``make lab`` starts it (``attnlab.course.lab_app``'s student
configuration), on a copy of the released lab with every answer filled in from the solution.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from attnlab.course import lab_app, notebook

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAB = "lab03_transformer"


def test_student_config_turns_off_the_instructor_tools(tmp_path):
    student = lab_app.write_config(tmp_path / "s", "student")
    page = json.loads((student / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    assert all(page[p] for p in lab_app.INSTRUCTOR_PLUGINS) and page[lab_app.EXCHANGE_PLUGIN]
    assert "@jupyter/nbgrader:validate-assignment" not in page
    server = json.loads((student / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert server == {"nbgrader.server_extensions.formgrader": False, "nbgrader.server_extensions.course_list": False,
                      "nbgrader.server_extensions.assignment_list": False}
    with_exchange = lab_app.write_config(tmp_path / "e", "student", exchange=True)
    assert lab_app.EXCHANGE_PLUGIN not in json.loads((with_exchange / "labconfig" / "page_config.json").read_text())["disabledExtensions"]
    instructor = lab_app.write_config(tmp_path / "i", "instructor")
    assert json.loads((instructor / "labconfig" / "page_config.json").read_text())["disabledExtensions"] == {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answered_lab(folder: Path) -> None:
    """The released lab with each answer cell replaced by the solution's (a student who got it right)."""
    solution = notebook.read(notebook.solution_path(LAB, ROOT))
    answers = {notebook.grade_id(c): c.source for c in solution.cells if notebook.is_solution_cell(c)}
    nb = notebook.read(ROOT / "labs" / LAB / f"{LAB}.ipynb")
    for cell in nb.cells:
        if notebook.grade_id(cell) in answers:
            cell.source = answers[notebook.grade_id(cell)]
    folder.mkdir(parents=True)
    nbformat.write(nb, str(folder / f"{LAB}.ipynb"))


@pytest.fixture(scope="module")
def student_lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("jupyterlab")
    _answered_lab(base / "labs" / LAB)
    config = lab_app.write_config(base / "config", "student")
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(base / "runtime"),
               JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"), ATTNLAB_PROFILE="smoke", ATTNLAB_PROGRESS="off",
               HOME=str(base))
    cmd = lab_app.lab_command(base / "labs", port=port, browser=False) + [
        "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.ip=127.0.0.1",
        "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{url}/api/status", timeout=1)
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not start:\n" + proc.stdout.read()[-3000:])
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.slow
@pytest.mark.browser
def test_a_student_runs_a_lab_and_validates_it(student_lab):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make browser-deps`")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{student_lab}/lab/tree/{LAB}/{LAB}.ipynb")
        page.wait_for_function("window.jupyterapp && window.jupyterapp.commands.hasCommand('notebook:run-all-cells')",
                               timeout=60_000)
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
        commands = page.evaluate("window.jupyterapp.commands.listCommands()")
        for tool in ("nbgrader:open-create-assignment", "nbgrader:open-formgrader", "nbgrader:open-course-list"):
            assert tool not in commands, f"the student's JupyterLab offers the instructor tool {tool}"
        assert page.locator("text=Formgrader").count() == 0
        kernel_idle = """() => { const w = window.jupyterapp.shell.currentWidget;
            const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
            return !!k && k.status === 'idle'; }"""
        page.wait_for_function(kernel_idle, timeout=120_000)
        page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
        # every code cell has run when each prompt shows a number (none "[*]" or blank) and the kernel is idle
        page.wait_for_function("""() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent);
            return prompts.length > 0 && prompts.every(t => /\\[\\d+\\]/.test(t));
        }""", timeout=240_000)
        page.wait_for_function(kernel_idle, timeout=240_000)
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .jp-RenderedText:has-text('Error')")
        assert page.locator(".jp-OutputArea-output:has-text('Traceback')").count() == 0, "a cell raised an error"
        assert errors.count() == 0
        page.locator("button:has-text('Validate'), .validate-button").first.click()
        page.wait_for_selector(".validation-success, .validation-failed", timeout=240_000)
        assert page.locator(".validation-success").count() == 1, page.locator(".jp-Dialog").inner_text()
        assert "Success! Your notebook passes all the tests." in page.locator(".jp-Dialog").inner_text()
        browser.close()
