"""The grading command against hostile and broken submissions (issues 5 and 13).

One class run of the tiny fixture lab (``tests/fixtures/course``: exercise 1 = 3 points, exercise 2
= 2 points) grades honest students and one student per kind of attack or accident, side by side,
and the whole class is graded twice: in the root sandbox (when the tests run as root, as CI does)
and **as an unprivileged user** (a fresh uid, no capabilities: the user-namespace sandbox). For every
kind the test asserts the exact score in both, and for the class: the honest students' scores, a
consistent gradebook, course files byte-identical afterwards, no hidden test in any feedback or
autograded output, and no connection reaching a server on the grading machine.

The kinds added for issue 13 are written as an attacker who has read ``attnlab.course``: each is
an unanswered notebook (every exercise left as the stub) plus an attack on the grading itself (the
guard, the judge, the kernel, the verdict, the own-work check); each must score exactly what the
unanswered notebook scores, zero. Several get past the answer-cell rules on purpose, so that the
layers behind them (the run-time own-work check, the module guard, the snapshot comparison) are
what stops them, and the test checks that the feedback says which.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import textwrap
import threading
from pathlib import Path

import nbformat
import pytest
from _shared import run_unprivileged, shared_run

from attnlab.course import grade, sandbox
from attnlab.course.release import generate

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "course"
LAB = "lab99_fixture"
ROOT = os.geteuid() == 0
# the root sandbox when the tests run as root (CI), and the unprivileged one wherever user namespaces work
RUNS = ([m for m in ("root", "unprivileged") if sandbox.available("root" if m == "root" else "user")[0]]
        if ROOT else ["unprivileged"] * sandbox.available("user")[0])
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not RUNS, reason="no sandbox can be built here")]

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


@kind("os_exit", 2)  # the rules stop it before it runs: exercise 1 scores as unanswered, exercise 2 counts
def _(folder, course, port):
    _write(folder, _answer("import os\nos._exit(0)\n" + SOFTMAX))


@kind("sys_exit", 2)
def _(folder, course, port):
    _write(folder, _answer("import sys\nsys.exit(3)\n" + SOFTMAX))


@kind("kernel_killed", 0)
def _(folder, course, port):
    # within the rules: a cell that swallows the interrupt of its time limit is killed with its
    # sandbox; nothing after it runs
    spin = "while True:\n    try:\n        while True:\n            pass\n    except KeyboardInterrupt:\n        pass\n"
    _write(folder, _answer(spin + SOFTMAX))


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
    # within the answer-cell rules (numpy reads files), so that the sandbox's view is what stops it
    steal = f"""
import numpy as np
for path in ["{course}/solutions/{LAB}/{LAB}.ipynb", "{course}/gradebook.db", "/grade/course/gradebook.db",
             "/work/shared/DESIGN.md", "../../../gradebook.db", "{LAB}.ipynb", "/student/{LAB}.ipynb"]:
    try:
        print(np.loadtxt(path, dtype=str, delimiter="\\x00", comments=None)[:50])
    except Exception as err:
        print("blocked:", path, repr(err)[:80])
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


@kind("overwrites_course_files", 5)
def _(folder, course, port):
    hack = f"""
import numpy as np
for path in ["{course}/labs/{LAB}/{LAB}.ipynb", "{course}/solutions/{LAB}/{LAB}.ipynb", "{course}/nbgrader_config.py",
             "{course}/gradebook.db", "/usr/lib/attnlab_probe"]:
    try:
        np.savetxt(path, np.zeros(3))
        print("wrote", path)
    except Exception as err:
        print("blocked:", path, repr(err)[:80])
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
import numpy as np
for url in ["http://127.0.0.1:{port}/stolen", "http://1.1.1.1/", "https://pypi.org/"]:
    try:
        np.lib.npyio.DataSource(None).open(url).read()
        print("connected", url)
    except Exception as err:
        print("blocked:", url, repr(err)[:80])
""" + SOFTMAX
    _write(folder, _answer(hack))


@kind("warnings_in_correct_answer", 5)
def _(folder, course, port):
    warn = "import warnings\n" + SOFTMAX.replace("    z = ", "    warnings.warn('careful: large inputs', UserWarning)\n    z = ")
    _write(folder, _answer(warn, "def mean_square(x):\n    warnings.warn('deprecated', DeprecationWarning)\n"
                                 "    return float((x.double() ** 2).mean())"))


# -- issue 13: attacks on the grading itself, each on an unanswered notebook (score 0) ------------------

def _unanswered(ex1_before: str = "", ex2_before: str = "", added: str | None = None, *, ex1: str | None = None,
                ex2: str | None = None):
    """The released notebook with both stubs kept, attack code put before a stub, and optionally a
    cell added at the top (as a student would, to run first); or, with ``ex1`` or ``ex2``, that
    exercise answered by the attack itself and the other left as the stub."""
    nb = _released()
    for gid, answer in (("ex1_softmax", ex1), ("ex2_meansq", ex2)):
        if answer is not None:
            _set(nb, gid, answer)
    for gid, before in (("ex1_softmax", ex1_before), ("ex2_meansq", ex2_before)):
        if before:
            cell = nb.cells[_idx(nb, gid)]
            cell.source = textwrap.dedent(before) + "\n" + cell.source
    if added is not None:
        nb.cells.insert(1, nbformat.v4.new_code_cell(textwrap.dedent(added)))
    return nb


SWITCH_OFF_GUARD = """
import types, ipykernel.ipkernel
plain = ipykernel.ipkernel.IPythonKernel
kernel = get_ipython().kernel
for cls in type(kernel).__mro__:
    for name in ("do_execute", "execute_request", "dispatch_shell"):
        if cls is not plain and name in vars(cls):
            setattr(cls, name, getattr(plain, name))
kernel.do_execute = types.MethodType(plain.do_execute, kernel)
get_ipython().input_transformers_cleanup.append(lambda lines: ["pass\\n"])
get_ipython().input_transformers_post.append(lambda lines: ["pass\\n"])
"""


CUSTOM_HANDLER = """
def _quiet(shell, etype, value, tb, tb_offset=None):
    return None
get_ipython().set_custom_exc((Exception,), _quiet)
"""


PATCH_KERNEL = """
import attnlab.course.kernel_guard as kg, ipykernel.ipkernel
kg.Judge._test = lambda *a, **k: None
kg.confirmation = lambda *a, **k: "0" * 64
ipykernel.ipkernel.IPythonKernel.do_execute = kg.Judge.execute
"""


KILL_JUDGE = """
import os, signal
for pid in (os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL)
    except Exception as err:
        print("blocked:", pid, err)
"""


DETACH = """
import os, time, sqlite3
if os.fork() == 0:
    os.setsid()
    time.sleep(3)
    for path in ("/grade/course/gradebook.db", "../../gradebook.db"):
        try:
            db = sqlite3.connect(path); db.execute("UPDATE grade SET auto_score = 100"); db.commit()
        except Exception:
            pass
    os._exit(0)
"""


SWALLOW = """
import builtins
builtins.AssertionError = type("Quiet", (Warning,), {})
"""


# Attacks that are an unanswered notebook plus code: (what it tries, the parts for _unanswered).
ATTACKS = {
    "switches_off_guard_added_cell": ("issue 13's first attack: a first cell puts IPythonKernel's methods back and "
                                      "empties every later cell", dict(added=SWITCH_OFF_GUARD)),
    "switches_off_guard_in_answer": ("the same, in an answer cell", dict(ex1_before=SWITCH_OFF_GUARD)),
    "reference_via_local_import": ("issue 13's second attack: the reference imported under a local name",
                                   dict(ex1="def softmax_last(x):\n    import torch.nn.functional as F2\n"
                                            "    return F2.softmax(x, dim=-1)\n")),
    "reference_via_dynamic_import": ("the reference imported by name at run time",
                                     dict(ex1="import importlib\ndef softmax_last(x):\n"
                                              "    return importlib.import_module('torch').softmax(x, dim=-1)\n",
                                          ex2_before="def mean_square(x):\n"
                                                     "    return float(getattr(x.double() ** 2, 'mean')())\n")),
    "reference_hidden_in_a_dict": ("within the rules and past check_own_work's reading: the run-time check stops it",
                                   dict(ex1="REFS = {'f': torch.softmax}\ndef softmax_last(x):\n"
                                            "    return REFS['f'](x, dim=-1)\n")),
    "reference_captured_in_default": ("the reference as a default argument",
                                      dict(ex1="def softmax_last(x, f=torch.nn.functional.softmax):\n"
                                               "    return f(x, dim=-1)\n")),
    "answer_is_the_reference": ("the answer is the reference itself",
                                dict(ex1="import functools\nsoftmax_last = functools.partial(torch.softmax, dim=-1)\n")),
    "custom_exception_handler": ("IPython's custom exception handler swallows the tests' failures",
                                 dict(ex1_before=CUSTOM_HANDLER, added=CUSTOM_HANDLER)),
    "patches_kernel_class": ("the judge's class and the kernel's class patched", dict(ex1_before=PATCH_KERNEL,
                                                                                     added=PATCH_KERNEL)),
    "patches_torch_module_midcell": ("within the rules: torch.softmax (the reference) made the identity while the "
                                     "test runs", dict(ex1="def _patch(self):\n    self.softmax = lambda x, dim=-1: x\n"
                                                           "def softmax_last(x):\n    try:\n        _patch(torch)\n"
                                                           "    except Exception:\n        pass\n    return x\n")),
    "changes_tensor_class_midcell": ("within the rules: torch.Tensor's methods changed while the test runs",
                                     dict(ex2="def _patch(self):\n    self.double = lambda t: t\n"
                                              "    self.mean = lambda t: torch.zeros(())\n"
                                              "def mean_square(x):\n    _patch(torch.Tensor)\n    return 0.0\n")),
    "kills_the_judge": ("kill the grader's side of the sandbox", dict(ex1_before=KILL_JUDGE, added=KILL_JUDGE)),
    "detaches_from_judge": ("a daemon that outlives the kernel and writes the gradebook later",
                            dict(ex1_before=DETACH, added=DETACH)),
    "unicode_lookalike_names": ("full-width letters that Python reads as getattr",
                                dict(ex1_before="softmax_last = \uff47\uff45\uff54\uff41\uff54\uff54\uff52(torch, 'softmax')\n")),
    "raises_system_exit": ("SystemExit and KeyboardInterrupt from the answers, to end the tests early",
                           dict(ex1="def softmax_last(x):\n    raise SystemExit(0)\n",
                                ex2="def mean_square(x):\n    raise KeyboardInterrupt\n")),
    "swallows_test_exceptions": ("AssertionError made a warning", dict(ex1_before=SWALLOW, added=SWALLOW)),
}
for _name, (_why, _parts) in ATTACKS.items():
    kind(_name, 0)(lambda folder, course, port, parts=_parts: _write(folder, _unanswered(**parts)))


@kind("forges_confirmation", 0)
def _(folder, course, port):
    fake = "{'application/x-attnlab-confirmation+json': {'cell': 'test_ex1_softmax_values', 'mac': '0' * 64}}"
    display = f"from IPython.display import display\ndisplay({fake}, raw=True)\n"
    nb = _unanswered(added=display)
    _set(nb, "ex1_softmax", f"def softmax_last(x):\n    print({fake})\n    return x\n")
    _write(folder, nb)



@kind("test_cell_source_tricks", 0)
def _(folder, course, port):
    """Time-of-check tricks: the student's copy of a test cell emptied, an answer cell dressed up as the
    test cell (nbgrader marks with points, `pass` inside) and the real test cell deleted."""
    nb = _released()
    _set(nb, "test_ex1_softmax_values", "pass")
    fake = nb.cells[_idx(nb, "ex2_meansq")]
    fake.metadata["nbgrader"].update(grade=True, solution=False, locked=True, points=2,
                                     grade_id="test_ex2_meansq_values")
    fake.source = "pass"
    del nb.cells[_idx(nb, "test_ex2_meansq_values") + 1]
    _write(folder, nb)


@kind("duplicate_answer_cells", 0)
def _(folder, course, port):
    """The graded answer is the first copy (the stub); the filled-in second copy is not run."""
    nb = _released()
    copy_ = nbformat.from_dict(json.loads(json.dumps(nb.cells[_idx(nb, "ex1_softmax")])))
    copy_.source = SOFTMAX
    nb.cells.insert(_idx(nb, "ex1_softmax") + 1, copy_)
    _write(folder, nb)


ISSUE_13_KINDS = {"switches_off_guard_added_cell", "switches_off_guard_in_answer", "reference_via_local_import",
                  "reference_via_dynamic_import", "reference_hidden_in_a_dict", "reference_captured_in_default",
                  "answer_is_the_reference", "custom_exception_handler", "patches_kernel_class", "forges_confirmation",
                  "patches_torch_module_midcell", "changes_tensor_class_midcell", "kills_the_judge",
                  "detaches_from_judge", "test_cell_source_tricks", "unicode_lookalike_names", "raises_system_exit",
                  "swallows_test_exceptions", "duplicate_answer_cells"}


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


@pytest.fixture(scope="session", params=RUNS)
def graded_class(request, tmp_path_factory):
    """The class graded in the root sandbox, or as an unprivileged user in the user-namespace sandbox."""
    if request.param == "root":
        data = shared_run(tmp_path_factory, "grading-adversarial-root", lambda shared: _run_class(shared, "root"))
    elif ROOT:
        data = shared_run(tmp_path_factory, "grading-adversarial-unprivileged", _run_as_unprivileged_user)
    else:
        data = shared_run(tmp_path_factory, "grading-adversarial-unprivileged", lambda shared: _run_class(shared, "user"))
    return {"run": request.param, "course": Path(data["course"]), "result": grade.ClassResult.load(Path(data["result"])),
            "before": data["before"], "after": data["after"], "hits": data["hits"], "uid": data["uid"]}


LIMITS = dict(cell_timeout_s=8, wall_s=120, kernel_address_space=int(4.5 * 1024**3), memory=3 * 1024**3,
              kernel_nproc=64)


def _serve(hits: list, stop: threading.Event):
    """A server on the grading machine that no submission may reach; returns its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.5)

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                hits.append(conn.recv(100))
                conn.close()
            except OSError:
                pass
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return server.getsockname()[1]


def _run_class(shared: Path, mode: str) -> dict:
    course = shared / "course"
    shutil.copytree(FIXTURE, course)
    shutil.copy(FIXTURE.parents[1].parent / "nbgrader_config.py", course / "nbgrader_config.py")  # the course's own settings
    COURSE["path"] = course
    generate(LAB, course / "labs", root=course)
    hits, stop = [], threading.Event()
    port = _serve(hits, stop)
    for student, (_, ex1, ex2) in HONEST.items():
        folder = course / "submitted" / student / LAB
        folder.mkdir(parents=True)
        _write(folder, _answer(ex1, ex2))
    for name, (_, writer) in KINDS.items():
        folder = course / "submitted" / name / LAB
        folder.mkdir(parents=True)
        writer(folder, course, port)
    before = _tree_hashes(course)
    result = grade.grade_lab(LAB, course=course, limits=sandbox.Limits(**LIMITS), mode=mode)
    after = _tree_hashes(course)
    stop.set()
    return {"course": str(course), "result": str(result.out_dir / "result.json"), "before": before, "after": after,
            "hits": [h.decode("latin-1") for h in hits], "uid": os.getuid()}


def _run_as_unprivileged_user(shared: Path) -> dict:
    """As root (CI): grade the class as a fresh uid with no capabilities (the user-namespace sandbox)."""
    uid = sandbox.pick_uid()
    code = ("import json, sys; from pathlib import Path; sys.path.insert(0, %r); import test_grading_adversarial as T; "
            "view = Path('/tmp/attnlab-unprivileged-%d'); "
            "(view / 'run.json').write_text(json.dumps(T._run_class(view, 'user')))"
            % (str(Path(__file__).resolve().parent), uid))
    proc = run_unprivileged(code, folder=shared, uid=uid, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-5000:]
    view = f"/tmp/attnlab-unprivileged-{uid}"
    data = json.loads((shared / "run.json").read_text().replace(view, str(shared)))
    result = Path(data["result"])
    result.write_text(result.read_text().replace(view, str(shared)))
    assert data["uid"] == uid != 0
    return data


def test_there_are_at_least_38_kinds_and_19_attack_the_grading_itself():
    assert len(KINDS) >= 38, sorted(KINDS)
    assert ISSUE_13_KINDS <= set(KINDS) and len(ISSUE_13_KINDS) >= 10
    assert all(KINDS[k][0] == 0 for k in ISSUE_13_KINDS), "each issue-13 kind scores what an unanswered notebook scores"


@pytest.mark.parametrize("name", sorted(KINDS))
def test_kind_scores_exactly(graded_class, name):
    result = graded_class["result"]
    expected = KINDS[name][0]
    got = sum(result.students[name].scores.values())
    assert got == expected, f"{graded_class['run']}: {name}: expected {expected}, got {got}; {result.students[name]}"
    db = grade.gradebook_scores(f"sqlite:///{graded_class['course']}/gradebook.db", LAB)
    assert sum(v or 0 for v in db[name].values()) == expected


def test_the_unprivileged_run_was_unprivileged(graded_class):
    if graded_class["run"] == "unprivileged":
        assert graded_class["uid"] != 0
    assert graded_class["result"].workers >= 1 and graded_class["result"].per_minute > 0


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
    out = _outputs(course, "overwrites_course_files")
    assert "wrote " not in out and out.count("blocked:") == 5, out


def test_feedback_has_no_hidden_tests_and_works_offline(graded_class):
    course = graded_class["course"]
    htmls = list((course / "feedback").rglob("*.html"))
    assert len(htmls) >= 30
    for html in htmls:
        text = html.read_text("utf-8")
        assert "BEGIN HIDDEN TESTS" not in text and "softmax of large inputs" not in text, html
        assert "random tensor" not in text, html
        assert "How this notebook was graded" in text, html
        assert 'src="http' not in text and "cdnjs" not in text, f"{html} loads a script from the internet"
        assert "MathJax 3, inside the page" in text, html


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


def _test_error(course: Path, student: str, gid: str) -> str:
    """The error and the printed notes of one test cell of a student's graded notebook."""
    nb = nbformat.read(str(course / "autograded" / student / LAB / f"{LAB}.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
    return " ".join(f"{o.get('ename')}: {o.get('evalue')}" if o.output_type == "error" else str(o.get("text", ""))
                    for o in cell.outputs)


def test_each_layer_says_what_stopped_it(graded_class):
    """The attacks that get past the answer-cell rules are stopped by the layer behind them, and the
    test cell's error says which; the others are stopped by the rules or by not being run."""
    course, s = graded_class["course"], graded_class["result"].students
    assert "your code called torch.softmax" in _test_error(course, "reference_hidden_in_a_dict", "test_ex1_softmax_values")
    assert "softmax_last calls torch.nn.functional.softmax" in _test_error(course, "reference_via_local_import",
                                                                            "test_ex1_softmax_values")
    assert "softmax_last calls torch.nn.functional.softmax" in _test_error(course, "reference_captured_in_default",
                                                                            "test_ex1_softmax_values")
    assert "softmax_last calls torch.softmax" in _test_error(course, "answer_is_the_reference", "test_ex1_softmax_values")
    assert "assigning torch.softmax" in _test_error(course, "patches_torch_module_midcell", "test_ex1_softmax_values")
    assert "was changed while this test ran" in _test_error(course, "changes_tensor_class_midcell", "test_ex2_meansq_values")
    for name in ("switches_off_guard_added_cell", "custom_exception_handler", "patches_kernel_class", "kills_the_judge",
                 "detaches_from_judge", "swallows_test_exceptions", "forges_confirmation", "duplicate_answer_cells"):
        assert any("were not run at grading" in m for m in s[name].messages), (name, s[name].messages)
    for name in ("switches_off_guard_in_answer", "reference_via_dynamic_import", "custom_exception_handler",
                 "patches_kernel_class", "kills_the_judge", "detaches_from_judge", "unicode_lookalike_names",
                 "swallows_test_exceptions", "os_exit", "fork_bomb"):
        assert any("graded as unanswered" in m for m in s[name].messages), (name, s[name].messages)
    assert any("would not stop" in m for m in s["kernel_killed"].messages), s["kernel_killed"].messages
