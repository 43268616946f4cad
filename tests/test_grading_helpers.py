"""Unit tests of the grading pieces: the checks test cells call, the pre-flight check, feedback
sanitising, and the sandbox's view of the machine (fast: no notebook is executed)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from attnlab import grading as G
from attnlab.grader import feedback, grade, preflight, sandbox

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


def test_a_comparison_that_fails_by_its_dtype_says_so():
    """A float32 result against a float64 reference at a float64 tolerance: the printed values agree
    to six digits, so the message gives more and names both dtypes."""
    expected = torch.tensor([1.0, -4.041100001], dtype=torch.float64)
    message = _fails(G.check_close, expected.float(), expected, "rollout", rtol=1e-10, atol=1e-12,
                     match="the result is torch.float32, the reference torch.float64")
    got = float(expected.float()[1])
    assert f"expected {-4.041100001:.17g}, got {got:.17g}" in message, message
    # same dtypes: no note; values far apart keep the short form
    message = _fails(G.check_close, torch.ones(2), torch.zeros(2), "y", match="expected 0, got 1")
    assert "dtype" not in message, message
    G.check_close(expected.float(), expected, "float32 against float64 at a float32 tolerance", rtol=1e-6)


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


# -- the sandbox's view (both sandboxes: a fresh uid as root, an unprivileged user namespace) -------

SANDBOXES = [m for m in ("root", "user") if sandbox.available(m)[0]]


@pytest.fixture(params=SANDBOXES)
def mode(request):
    return request.param


# Run as the sandbox's student process (C of attnlab.grader.sandbox.enter): the probe's output goes
# to probe.out in the socket folder (the only host folder the sandbox may write), whose path the
# probe's code finds as IPC. argv: the BoxSpec as JSON, the probe's code.
_PROBE_DRIVER = """
import json, os, sys
from attnlab.grader import sandbox
spec, code = sandbox.BoxSpec(**json.loads(sys.argv[1])), sys.argv[2]

def start():
    with open(os.path.join(spec.ipc_dir, "probe.out"), "w") as out:
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
        try:
            exec(compile(code, "<probe>", "exec"), {"__name__": "__main__", "IPC": spec.ipc_dir})
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()

a = os.fork()
if a == 0:
    try:
        b = sandbox.enter(spec, start)
    except OSError as err:
        print(f"the sandbox could not be made: {err}", file=sys.stderr)
        os._exit(71)
    os.waitpid(b, 0)
    os._exit(0)
os.waitpid(a, 0)
"""


def _probe(mode: str, tmp_path: Path, code: str, limits=None, timeout: float = 60) -> tuple[str, Path]:
    """Run ``code`` as the sandboxed student process, in a sandbox of ``mode`` (``"root"`` or ``"user"``)."""
    import dataclasses
    import subprocess

    box = tmp_path / f"box-{mode}"
    for d in ("root", "work", "ipc"):
        (box / d).mkdir(parents=True)
    spec = sandbox.BoxSpec(mode, str(box / "root"), str(box / "work"), str(box / "ipc"), uid=sandbox.pick_uid(),
                           limits=dataclasses.asdict(limits or sandbox.Limits(kernel_nproc=32)),
                           ro=sandbox.python_roots())
    cmd = [sys.executable, "-c", _PROBE_DRIVER, json.dumps(dataclasses.asdict(spec)), textwrap.dedent(code)]
    if mode == "user":
        cmd = ["unshare", "--user", "--map-root-user", *cmd]
    with open(box / "sandbox.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=log, timeout=timeout, check=False)
    out = box / "ipc" / "probe.out"
    return (out.read_text() if out.exists() else "") + (box / "sandbox.log").read_text(), box


VIEW_PROBE = """
import json, os, resource, socket, time
out = {{"solutions": os.path.exists({solutions!r}), "secret": os.path.exists({secret!r}),
       "shared": os.path.exists("/work/shared"), "cwd": os.getcwd(), "uid": os.getuid()}}
for host, port in (("127.0.0.1", {port}), ("1.1.1.1", 53)):
    try:
        socket.create_connection((host, port), timeout=2)
        out["net"] = True
    except OSError:
        out.setdefault("net", False)
try:
    open("/usr/attnlab_probe", "w")
    out["usr_writable"] = True
except OSError:
    out["usr_writable"] = False
open("written.txt", "w").write("x")
out["written"] = open("written.txt").read()
out["procs"] = len([p for p in os.listdir("/proc") if p.isdigit()])
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
out["capeff"], out["nnp"] = int(status["CapEff"], 16), int(status["NoNewPrivs"])
try:
    os.setuid(0 if os.getuid() else 12345)
    out["setuid"] = True
except OSError:  # EPERM, or EINVAL for a uid that does not exist in the sandbox's user namespace
    out["setuid"] = False
out["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)[0]
forks = 0
try:
    while forks < 40:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        forks += 1
except OSError:
    pass
out["forks"] = forks
print(json.dumps(out))
"""


def view_report(mode: str, base: Path) -> dict:
    """What the sandbox shows a student process (see :data:`VIEW_PROBE`); ``base`` is a scratch folder."""
    import socket

    import attnlab

    secret = base / "secret.txt"
    secret.write_text("the grader's")
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        code = VIEW_PROBE.format(solutions=str(Path(attnlab.__file__).resolve().parents[2] / "solutions"),
                                 secret=str(secret), port=server.getsockname()[1])
        text, _ = _probe(mode, base, code)
    finally:
        server.close()
    return json.loads(text.strip().splitlines()[-1])


def _check_view(out: dict, mode: str, nproc_enforced: bool) -> None:
    assert out["solutions"] is False and out["secret"] is False and out["shared"] is False, out
    assert out["net"] is False and out["usr_writable"] is False, out
    assert out["cwd"] == sandbox.STUDENT_DIR and out["written"] == "x", out
    assert out["procs"] < 5, out  # its own pid namespace: nothing of the host is visible
    assert out["capeff"] == 0 and out["nnp"] == 1 and out["setuid"] is False, out
    assert out["nproc"] == 32, out
    if nproc_enforced:  # (root's own uid is exempt from RLIMIT_NPROC: the user sandbox run as root)
        assert out["forks"] < 32, out
    if mode == "root":
        assert out["uid"] >= 200_000, out  # a fresh uid, never root


def test_sandbox_view(mode, tmp_path):
    """Inside: no course, no solutions, no network (not even the host's loopback), system folders
    read-only, its own folder writable, its own processes only, no privileges, a process limit."""
    _check_view(view_report(mode, tmp_path), mode, mode == "root" or os.geteuid() != 0)


def unprivileged_view(base: Path) -> None:
    """Run by :func:`test_sandbox_view_as_an_unprivileged_user` as that user."""
    (base / "report.json").write_text(json.dumps(view_report("user", base)))


@pytest.mark.skipif(os.geteuid() != 0 or not sandbox.available("user")[0], reason="run as root, to become a user")
def test_sandbox_view_as_an_unprivileged_user(tmp_path):
    """The same view when an ordinary user grades (CI is root: it becomes a fresh uid first)."""
    from _shared import run_unprivileged

    uid = sandbox.pick_uid()
    view = f"/tmp/attnlab-unprivileged-{uid}"
    code = (f"import sys; from pathlib import Path; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            f"import test_grading_helpers as T; T.unprivileged_view(Path({view!r}))")
    proc = run_unprivileged(code, folder=tmp_path, uid=uid, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "report.json").read_text())
    _check_view(out, "user", nproc_enforced=True)
    assert out["uid"] == 0  # root of its own user namespace, with no capability (checked above)


def test_a_killed_sandbox_takes_its_processes_with_it(mode, tmp_path):
    """The student's processes die with the sandbox: a child that outlives the probe does not survive."""
    probe = """
        import os, time
        if os.fork() == 0:
            os.setsid()
            time.sleep(3)
            open(os.path.join(IPC, "survived.txt"), "w").write("yes")
            os._exit(0)
        print("parent done")
    """
    text, box = _probe(mode, tmp_path, probe)
    import time

    time.sleep(4)
    assert "parent done" in text and not (box / "ipc" / "survived.txt").exists()


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
