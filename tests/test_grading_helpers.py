"""Unit tests of the grading pieces: the checks test cells call, the pre-flight check, feedback
sanitising, and the sandbox's view of the machine (fast: no notebook is executed)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from attnlab import grading as G
from attnlab.course import feedback, grade, preflight, sandbox

FIXTURE_SRC = Path(__file__).resolve().parent / "fixtures" / "course" / "solutions" / "lab99_fixture" / "lab99_fixture.ipynb"


# -- attnlab.grading ---------------------------------------------------------------------------


def _fails(fn, *args, match: str = "", **kwargs) -> str:
    with pytest.raises(AssertionError) as err:
        fn(*args, **kwargs)
    assert match in str(err.value), str(err.value)
    return str(err.value)


def test_messages_say_expected_and_got():
    x = torch.zeros(2, 16, 5)
    _fails(G.check_shape, x, (2, 5, 16), "out", letters="B, T, D",
           match="out: expected shape (B, T, D) = (2, 5, 16), got (2, 16, 5)")
    _fails(G.check_close, torch.ones(3), torch.zeros(3), "y", match="values differ from the reference at 3 of 3")
    _fails(G.check_float, 2.0, 3.0, "loss", match="loss: expected 3, got 2")
    _fails(G.check_equal, torch.tensor([1, 2]), torch.tensor([1, 3]), "idx", match="1 of 2 entries differ")
    _fails(G.check_raises, lambda: None, ValueError, match="nothing was raised")
    _fails(G.check_true, False, "must hold", match="must hold")


def test_close_values_pass():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g)
    G.check_close(x + 1e-9, x, "x")
    G.check_close(torch.tensor([float("nan"), float("inf")]), torch.tensor([float("nan"), float("inf")]))
    G.check_float(torch.tensor(2.5), 2.5)
    G.check_float(np.float32(2.5), 2.5)
    G.check_equal(x > 0, x > 0)
    G.check_true(torch.tensor(True), "ok")
    G.check_raises(lambda: int("x"), ValueError)


def test_types_are_strict():
    class Fake:
        shape = (3,)
        dtype = torch.float32

        def __eq__(self, other):
            return True

        def __float__(self):
            return 1.0

    _fails(G.check_close, Fake(), torch.zeros(3), match="expected a torch.Tensor")
    _fails(G.check_float, Fake(), 1.0, match="expected a number")
    _fails(G.check_true, np.array([True]), "m", match="not a bool")
    _fails(G.check_close, torch.zeros(3), torch.zeros(3) + float("nan"), match="NaN")


def test_checks_survive_monkeypatched_comparisons(monkeypatch):
    import numpy.testing

    zero = lambda *a, **k: torch.zeros(3)  # noqa: E731
    monkeypatch.setattr(torch, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(torch, "abs", zero)
    monkeypatch.setattr(torch, "sub", zero)
    monkeypatch.setattr(torch.Tensor, "__sub__", zero)
    monkeypatch.setattr(torch.Tensor, "__gt__", lambda *a: torch.zeros(3, dtype=torch.bool))
    monkeypatch.setattr(torch.Tensor, "any", lambda *a: torch.tensor(False))
    monkeypatch.setattr(numpy.testing, "assert_allclose", lambda *a, **k: None)
    _fails(G.check_close, torch.ones(3), torch.zeros(3), match="values differ")


# -- pre-flight ----------------------------------------------------------------------------------


@pytest.fixture()
def source():
    return {"lab99_fixture": nbformat.read(str(FIXTURE_SRC), as_version=4)}


def _write(folder: Path, nb, name="lab99_fixture.ipynb"):
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(folder / name))


def test_preflight_reports_broken_files(tmp_path, source):
    cases = {
        "json": b'{"cells": [',
        "utf8": nbformat.writes(source["lab99_fixture"]).replace("tiny", "kl\u00fcin").encode("latin-1"),
        "empty": b"",
        "notnb": b'{"a": 1}',
    }
    words = {"json": "JSON", "utf8": "UTF-8", "empty": "empty", "notnb": "not a Jupyter notebook"}
    for name, data in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "lab99_fixture.ipynb").write_bytes(data)
        pf = preflight.check_submission(name, folder, source)
        assert not pf.gradable and any(words[name] in m for m in pf.problems), (name, pf)
    (tmp_path / "nothing").mkdir()
    pf = preflight.check_submission("n", tmp_path / "nothing", source)
    assert not pf.gradable and "no notebook" in pf.problems[0]


def test_preflight_repairs(tmp_path, source):
    nb = nbformat.from_dict(json.loads(json.dumps(source["lab99_fixture"])))
    dup = nbformat.from_dict(json.loads(json.dumps(nb.cells[5])))
    nb.cells.insert(6, dup)
    for cell in nb.cells[:3]:
        cell.metadata.pop("nbgrader", None)
    _write(tmp_path / "a", nb, name="my copy.ipynb")
    pf = preflight.check_submission("a", tmp_path / "a", source)
    assert pf.gradable
    text = " ".join(pf.messages())
    assert "expected the name" in text and "more than once" in text and "were put back" in text
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in pf.notebooks["lab99_fixture"].cells]
    assert ids.count("test_ex1_softmax_values") == 1 and "setup" in ids


# -- feedback ------------------------------------------------------------------------------------


def test_feedback_hides_hidden_tests(source):
    nb = nbformat.from_dict(json.loads(json.dumps(source["lab99_fixture"])))
    test = nb.cells[5]
    test.outputs = [nbformat.v4.new_output("error", ename="AssertionError", evalue="softmax of large inputs: bad",
                                           traceback=["big = torch.randn(4, 7, generator=g) * 1000.0", "AssertionError"])]
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="big = torch.randn(4, 7, generator=g) * 1000.0\n")]
    hidden = feedback.hidden_lines(source)
    clean = feedback.sanitize_for_feedback(nb, hidden)
    text = nbformat.writes(clean)
    assert "BEGIN HIDDEN TESTS" not in text and "1000.0" not in text
    assert "hidden tests were run here" in clean.cells[5].source
    assert clean.cells[5].outputs[0].traceback == ["AssertionError: softmax of large inputs: bad"]
    assert "removed from the feedback" in clean.cells[4].outputs[0].text


def test_exercises_of_fixture(source):
    exercises, points = grade.exercises_of(source)
    assert exercises == {"ex1_softmax": ["test_ex1_softmax_values"], "ex2_meansq": ["test_ex2_meansq_values"]}
    assert points == {"test_ex1_softmax_values": 3.0, "test_ex2_meansq_values": 2.0}


# -- the sandbox's view ----------------------------------------------------------------------------


@pytest.mark.skipif(not sandbox.available()[0], reason=sandbox.available()[1])
def test_sandbox_view(tmp_path):
    """Inside: no course, no solutions, no network; system folders read-only; /grade writable."""
    import attnlab

    repo = Path(attnlab.__file__).resolve().parents[2]
    box = tmp_path / "box"
    box.mkdir()
    probe = textwrap.dedent(f"""
        import os, socket, json
        out = {{}}
        out["solutions"] = os.path.exists({str(repo / 'solutions')!r})
        out["tmp_path"] = os.path.exists({str(tmp_path)!r})
        out["shared"] = os.path.exists("/work/shared")
        out["root_home"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else None
        try:
            socket.create_connection(("1.1.1.1", 53), timeout=2); out["net"] = True
        except OSError:
            out["net"] = False
        try:
            open("/usr/attnlab_probe", "w"); out["usr_writable"] = True
        except OSError:
            out["usr_writable"] = False
        open("/grade/ok", "w").write("x")
        out["procs"] = len([p for p in os.listdir("/proc") if p.isdigit()])
        import attnlab.grading
        print(json.dumps(out))
    """)
    res = sandbox.run_in_sandbox(box, [sys.executable, "-E", "-c", probe], uid=sandbox.pick_uid(),
                                 limits=sandbox.Limits(wall_s=60), env={})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["solutions"] is False and out["tmp_path"] is False and out["shared"] is False
    assert out["net"] is False and out["usr_writable"] is False
    assert out["procs"] < 5  # its own pid namespace: nothing of the host is visible
    assert (box / "ok").read_text() == "x"


@pytest.mark.skipif(not sandbox.available()[0], reason=sandbox.available()[1])
def test_kernel_launcher_drops_root(tmp_path):
    """The kernel half of the sandbox: rlimits set, uid dropped, no_new_privs, cannot regain root."""
    box = tmp_path / "box"
    box.mkdir()
    conn = box / "conn.json"
    conn.write_text("{}")
    uid = sandbox.pick_uid()
    probe = textwrap.dedent("""
        import os, resource, json
        st = open("/proc/self/status").read()
        nnp = [l for l in st.splitlines() if l.startswith("NoNewPrivs")][0].split()[1]
        try:
            os.setuid(0); regained = True
        except PermissionError:
            regained = False
        print(json.dumps({"uid": os.getuid(), "nnp": nnp, "regained": regained,
                          "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
                          "groups": os.getgroups()}))
    """)
    (box / "probe.py").write_text(probe)
    script = textwrap.dedent(f"""
        import os, sys
        os.execve = lambda exe, argv, env: os.execv(exe, [exe, "/grade/probe.py"])
        from attnlab.course import sandbox
        sandbox._kernel(["--uid", "{uid}", "--limits", {json.dumps(json.dumps(sandbox.Limits().__dict__))},
                         "--hashes", "/nonexistent", "--connection-file", "/grade/conn.json"])
    """)
    res = sandbox.run_in_sandbox(box, [sys.executable, "-E", "-c", script], uid=uid,
                                 limits=sandbox.Limits(wall_s=60), env={})
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"uid": uid, "nnp": "1", "regained": False, "nproc": sandbox.Limits().kernel_nproc, "groups": []}
    assert conn.stat().st_uid == uid


def test_graded_alone_swaps_names_and_always_puts_them_back():
    from attnlab import grading as G

    ns = {"f": "student's f"}
    with G.graded_alone(ns, f="reference f", g="reference g"):
        assert ns["f"] == "reference f" and ns["g"] == "reference g"
    assert ns == {"f": "student's f"}
    with pytest.raises(AssertionError):
        with G.graded_alone(ns, f="reference f"):
            raise AssertionError("a failing check inside")
    assert ns == {"f": "student's f"}
