"""The pieces of the grading kernel, each on its own (fast: no notebook is graded here).

The audit hook, the module guard and the run-time own-work check stay in a process for its life,
so they are tried in a fresh interpreter (``_audit_driver.py``); the snapshot guard, the grader's
check of confirmations, the static own-work check and the feedback page are tried here.
"""

from __future__ import annotations

import functools
import json
import linecache
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from attnlab import grading as G
from attnlab.course import executor, feedback, grade, kernel_guard, sandbox

DRIVER = Path(__file__).resolve().parent / "_audit_driver.py"


def _drive(scenario: str) -> dict:
    proc = subprocess.run([sys.executable, str(DRIVER), scenario], capture_output=True, text=True, timeout=300,
                          cwd=DRIVER.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_audit_hook_refuses_what_student_code_may_not_do():
    out = _drive("audit")
    refused = ["getframe", "gc", "compile", "eval", "exec", "system", "fork", "proc_mem", "socket", "settrace",
               "code_read", "gi_frame", "tb_frame", "type_hints", "marshal", "import_csv", "trusted_helper_frame"]
    for name in refused:
        assert out[name].startswith("refused: not allowed while grading"), (name, out[name])
    assert "a stack frame" in out["trusted_helper_frame"]  # trusted code, called by student code
    assert "compiling code at run time" in out["type_hints"]  # a library that evaluates a string
    for name in ("import_statistics", "namedtuple", "dataclass", "arithmetic", "trusted_alone"):
        assert out[name] == "ran", (name, out[name])
    assert out["student_hook_called"] is False  # a student's own audit hook is never added


def test_own_work_is_checked_while_the_tests_run():
    """Calls into the forbidden reference from answer code are caught however they are made; the
    test's own calls, the reference's inner calls and graded_alone's stand-ins are not."""
    out = _drive("tripwire")
    assert out["via_dict"] == ["your code called torch.softmax, which this exercise asks you to write yourself"]
    assert out["via_map"] == out["via_dict"]  # through functools.partial and map: the TorchFunctionMode
    assert out["local_import"] == ["your code called torch.nn.functional.softmax, which this exercise asks you to "
                                   "write yourself"]
    assert out["own"] == [] and out["uses_stand_in"] == [] and out["test_calls_reference"] == []


def test_modules_refuse_assignment_from_student_code():
    out = _drive("modules")
    assert out["trusted"] is True
    assert out["student"] == "refused: not allowed while grading: assigning math.pi"
    assert out["pi"] == pytest.approx(3.14159, abs=1e-5)


def test_guard_sees_and_undoes_changes_to_classes_and_modules():
    guard = kernel_guard.Guard()
    assert guard.changed() == []
    sum_before = torch.Tensor.sum
    try:
        torch.Tensor.sum = lambda self, *a, **k: torch.zeros(())  # shadows the inherited method
        torch.nn.Linear.forward = lambda self, x: x
        torch.nn.functional.softmax, saved = (lambda x, dim=None: x), torch.nn.functional.softmax
        changed = guard.changed()
        assert {"torch.Tensor.sum (added)", "torch.nn.modules.linear.Linear.forward",
                "torch.nn.functional.softmax"} <= set(changed), changed
        namespace = {}
        guard.bindings = {"G": G}
        assert guard.restore(namespace) == changed
        assert guard.changed() == [] and namespace == {"G": G}
        assert torch.Tensor.sum is sum_before and torch.nn.functional.softmax is saved
        assert torch.nn.Linear(2, 2)(torch.ones(2)).shape == (2,)
    finally:
        guard.restore({})


def test_the_grader_gives_points_only_for_a_valid_confirmation():
    key, challenge, digest = b"k" * 32, "c" * 32, "d" * 64
    good = kernel_guard.confirmation(key, challenge, digest)

    def conf(mac):
        return nbformat.v4.new_output("display_data", data={kernel_guard.CONFIRM_MIME: {"cell": "t", "mac": mac}})

    text = nbformat.v4.new_output("stream", name="stdout", text="hello\n")
    error = nbformat.v4.new_output("error", ename="AssertionError", evalue="no", traceback=[])
    assert executor._judge([text, conf(good)], key, challenge, digest) == ([text], True)
    assert executor._judge([text], key, challenge, digest)[1] is False  # never confirmed
    assert executor._judge([conf("0" * 64)], key, challenge, digest)[1] is False  # forged
    assert executor._judge([conf(good), conf(good)], key, challenge, digest)[1] is False  # replayed
    assert executor._judge([conf(good), error], key, challenge, digest)[1] is False  # an error anyway
    other = kernel_guard.confirmation(key, "e" * 32, digest)
    assert executor._judge([conf(other)], key, challenge, digest)[1] is False  # another cell's challenge


def _source_cell(source: str, name: str) -> dict:
    """Compile ``source`` as a notebook cell would be (its text in linecache); its namespace."""
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    namespace = {"torch": torch, "G": G, "F": torch.nn.functional}
    exec(compile(source, name, "exec"), namespace)
    return namespace


FORBIDDEN = ["torch.softmax", "torch.nn.functional.softmax", "torch.nn.MultiheadAttention"]
SHORTCUTS = {
    "local_import": "def f(x):\n    import torch.nn.functional as F2\n    return F2.softmax(x, -1)\n",
    "from_import": "def f(x):\n    from torch.nn import functional\n    return functional.softmax(x, -1)\n",
    "global_alias": "def f(x):\n    return F.softmax(x, -1)\n",
    "default_argument": "def f(x, g=torch.softmax):\n    return g(x, -1)\n",
    "closure": "def make():\n    g = torch.softmax\n    def f(x):\n        return g(x, -1)\n    return f\nf = make()\n",
    "partial": "import functools\nf = functools.partial(torch.softmax, dim=-1)\n",
    "is_the_reference": "f = torch.softmax\n",
    "inherits": "class f(torch.nn.MultiheadAttention):\n    pass\n",
}


@pytest.mark.parametrize("shortcut", sorted(SHORTCUTS))
def test_check_own_work_reads_past_local_names(shortcut):
    namespace = _source_cell(SHORTCUTS[shortcut], f"<answer {shortcut}>")
    with pytest.raises(AssertionError, match="which this exercise asks you to write yourself"):
        G.check_own_work(namespace["f"], FORBIDDEN, "f")


def test_check_own_work_passes_own_work_and_applies_the_answer_rules():
    honest = _source_cell("def f(x):\n    e = (x - x.max(-1, keepdim=True).values).exp()\n"
                          "    return e / e.sum(-1, keepdim=True)\n", "<answer honest>")
    G.check_own_work(honest["f"], FORBIDDEN, "f")
    ruled = _source_cell("import os\ndef f(x):\n    return x\n", "<answer ruled>")
    with pytest.raises(AssertionError, match=r"would not be run at grading .*`import os` is not allowed"):
        G.check_own_work(ruled["f"], FORBIDDEN, "f")
    uses_g = _source_cell("def f(x):\n    G.check_close(x, x)\n    return x\n", "<answer uses_g>")
    with pytest.raises(AssertionError, match="`G` is bound by the lab's own cells"):
        G.check_own_work(uses_g["f"], FORBIDDEN, "f")


def test_feedback_says_how_it_was_graded_and_needs_no_internet(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    clean = feedback.sanitize_for_feedback(nb, [], ["ex1: graded as unanswered, because ..."])
    assert clean.cells[0].cell_type == "markdown"
    assert "How this notebook was graded" in clean.cells[0].source and "graded as unanswered" in clean.cells[0].source
    page = ("<head><!-- Load mathjax -->\n<script src=\"https://cdnjs.cloudflare.com/ajax/libs/mathjax/2.7.7/latest.js\">"
            "</script>\n<script type=\"text/x-mathjax-config\">init_mathjax();</script>\n"
            "<!-- End of mathjax configuration --></head><body>$x^2$</body>")
    mathjax = tmp_path / "tex-svg.js"
    mathjax.write_text("window.MATHJAX_LOADED = 1; // no closing tag here")
    html = feedback.offline_mathjax(page, mathjax)
    assert "cdnjs" not in html and 'src="http' not in html
    assert "window.MATHJAX_LOADED = 1" in html and "inlineMath: [['$', '$']" in html and "$x^2$" in html
    found = feedback.find_mathjax(Path(__file__).resolve().parents[1])
    assert found is None or found.name == "tex-svg.js"


def test_workers_follow_cores_memory_and_students():
    limits = sandbox.Limits()
    assert grade.worker_count(1, limits) == 1
    assert 1 <= grade.worker_count(100, limits) <= (len(__import__("os").sched_getaffinity(0)))
    assert grade.worker_count(100, sandbox.Limits(memory=10**15)) == 1  # no room for two
    assert grade.worker_count(100, limits, requested=1) == 1


def test_graded_alone_registers_its_stand_ins_and_always_removes_them():
    ns = {"f": "student's"}
    stand_in = functools.partial(print)
    with pytest.raises(ValueError):
        with G.graded_alone(ns, f=stand_in):
            assert G._ALONE[-1] == {"f": stand_in}
            raise ValueError("a failing test inside")
    assert G._ALONE == [] and ns == {"f": "student's"}
