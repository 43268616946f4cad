"""The student's side: runs the lab's set-up cells and the student's answer cells, then serves the judge.

This is the only process of the grader that runs student code, and it runs inside the sandbox
(:mod:`attnlab.grader.sandbox`). It knows nothing worth stealing or forging: the ``attnlab`` it
imports is the lab's *stubbed* copy (:mod:`attnlab.grader.stubs`: the graded reference functions
and classes raise an error naming their exercise), it never sees a hidden test (only each
request's inputs), and it holds no key. Whatever it answers is data, checked by the judge.

Protocol (:mod:`attnlab.grader.wire` messages on one Unix socket; the judge asks, the box answers):

* ``setup``: the lab's set-up cells; ``cell``: one answer cell -> its outcome (error, its printed
  output, capped) and the names it defined;
* ``call`` a handle or a global with arguments; ``getattr``, ``setattr``, ``getitem``, ``len``,
  ``iter``, ``bool``, ``str``, ``isinstance``; ``backward`` through the graph of an earlier call;
  ``inject``/``restore``: put the course's own solution of earlier exercises under their names
  while an exercise is graded on its own; ``release``: forget the graphs of the last test cell.

Answers are ``{"ok": value}`` (tensors as data, other objects as handles) or ``{"error": {...}}``
with the student's exception: its type name, message and traceback, capped.
"""

from __future__ import annotations

import importlib
import io
import marshal
import os
import socket
import sys
import traceback

import torch

from . import wire

__all__ = ["Box", "CappedStream", "JudgeFunction", "main", "serve", "OUTPUT_CAP", "SHIP_ROOTS"]

OUTPUT_CAP = 20_000  # characters of printed output kept per answer cell (and per error)
SHIP_ROOTS = ("torch", "numpy", "math", "attnlab", "einops", "torchvision", "builtins", "functools", "operator")


class CappedStream(io.TextIOBase):
    """A text stream that keeps the first ``cap`` characters and counts the rest."""

    def __init__(self, cap: int = OUTPUT_CAP):
        self.cap, self.parts, self.kept, self.dropped = cap, [], 0, 0

    def write(self, s) -> int:
        s = str(s)
        room = self.cap - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def writable(self) -> bool:
        return True

    def text(self) -> str:
        tail = f"\n[... {self.dropped} more characters of output not kept]" if self.dropped else ""
        return "".join(self.parts) + tail


def _capped(text: str, cap: int = OUTPUT_CAP) -> str:
    return text if len(text) <= cap else text[:cap] + f"\n[... {len(text) - cap} more characters not kept]"


def _student_frames(tb):
    """The traceback without the grader's own frames (the student's cells and what they called)."""
    here = os.path.dirname(os.path.abspath(__file__))
    frames = [f for f in traceback.extract_tb(tb) if not os.path.abspath(f.filename).startswith(here)
              and "IPython/core" not in f.filename]
    return traceback.StackSummary.from_list(frames)


def _error(err: BaseException) -> dict:
    frames = _student_frames(err.__traceback__)
    tb = "".join(["Traceback (most recent call last):\n", *frames.format(),
                  *traceback.format_exception_only(type(err), err)])
    try:
        message = str(err)
    except Exception:  # noqa: BLE001 - a student's exception whose str() fails
        message = "(no message)"
    return {"type": type(err).__name__, "message": _capped(message, 2000), "traceback": _capped(tb, 8000)}


class Box:
    """The served state: the notebook's namespace, the handles given out, the graphs kept."""

    def __init__(self):
        from IPython.core.interactiveshell import InteractiveShell

        self.shell = InteractiveShell.instance()
        self.ns = self.shell.user_ns
        self.objects: dict[int, object] = {}
        self.ids: dict[int, int] = {}
        self.graphs: dict[int, tuple[list, list]] = {}
        self.setup_ns: dict = {}
        self.saved: list[dict] = []
        self.injected: dict = {}
        self.lent: set[int] = set()  # ids of the box's own objects named by handles in a request

    # -- cells ---------------------------------------------------------------------------------

    def run_cell(self, source: str) -> dict:
        out = CappedStream()
        old = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        try:
            result = self.shell.run_cell(source, store_history=False, silent=False)
        finally:
            sys.stdout, sys.stderr = old
        err = result.error_in_exec or result.error_before_exec
        return {"output": out.text(), "error": _error(err) if err is not None else None}

    def setup(self, setup: list[str]) -> dict:
        """The lab's set-up cells (imports, settings): their outcomes."""
        report = [self.run_cell(source) for source in setup]
        self.setup_ns = dict(self.ns)
        return {"setup": report}

    def answer_cell(self, gid: str, source: str) -> dict:
        """One answer cell: its outcome and the names it defined."""
        before = {k: id(v) for k, v in self.ns.items()}
        outcome = self.run_cell(source)
        defined = {k: self.kind(v) for k, v in self.ns.items() if not k.startswith("_") and before.get(k) != id(v)}
        return {"id": gid, **outcome, "names": defined}

    @staticmethod
    def kind(obj) -> str:
        if isinstance(obj, type):
            return "class"
        if callable(obj):
            return "function"
        return "value"

    # -- handles -------------------------------------------------------------------------------

    def handle_of(self, obj) -> dict:
        key = id(obj)
        if key not in self.ids:
            n = len(self.objects) + 1
            self.objects[n], self.ids[key] = obj, n
        return {"$h": self.ids[key], "type": type(obj).__name__, "kind": self.kind(obj),
                "module": isinstance(obj, torch.nn.Module)}

    def obj(self, d: dict):
        n = d.get("$h")
        if n not in self.objects:
            raise LookupError(f"no object {n!r}")
        self.lent.add(id(self.objects[n]))
        return self.objects[n]

    def target(self, request: dict):
        if "global" in request:
            name = request["global"]
            if name not in self.ns:
                raise NameError(f"name {name!r} is not defined")
            return self.ns[name]
        return self.obj(request["target"])

    # -- what the judge ships --------------------------------------------------------------------

    def _generator(self, d, dec):
        g = torch.Generator(device=d.get("device", "cpu"))
        g.set_state(dec.value(d["$gen"]))
        return g

    @staticmethod
    def _named(d, dec=None):
        module, _, qual = d["$fn"].partition(":")
        if module.split(".")[0] not in SHIP_ROOTS:
            raise LookupError(f"cannot ship {module}")
        obj = importlib.import_module(module)
        for part in qual.split("."):
            obj = getattr(obj, part)
        return obj

    def _module(self, d, dec):
        cls = self._named({"$fn": d["$mod"]})
        obj = cls.__new__(cls)
        obj.__dict__.update(dec.value(d["state"]))
        return obj

    def _solution(self, d, dec):
        return self.injected[d["$sol"]]

    def _callback(self, d, dec):
        return JudgeFunction(self, int(d["$cb"]))

    def decode(self, value, buffers):
        extra = {"$gen": self._generator, "$fn": self._named, "$mod": self._module, "$sol": self._solution, "$cb": self._callback}
        return wire.decode(value, buffers, handle=self.obj, extra=extra)

    def encode(self, value):
        return wire.encode(value, handle_of=self.handle_of)

    # -- requests --------------------------------------------------------------------------------

    def call(self, request: dict, buffers) -> tuple[object, dict]:
        fn = self.target(request)
        self.lent = set()
        args, kwargs = self.decode([request.get("args", []), request.get("kwargs", {"$dict": []})], buffers)
        if "rng" in request:
            torch.set_rng_state(self.decode(request["rng"], buffers))
        given = wire.tensors_reachable([args, kwargs], skip=self.lent)   # what the judge lent: copies of its own
        self.lent = set()
        versions = [t._version for t in given]
        grad = bool(request.get("grad", True))
        with torch.set_grad_enabled(grad):
            result = fn(*args, **kwargs)
        extra = {"modified_input": any(t._version != v for t, v in zip(given, versions))}
        outs = [t for t in wire.tensors_in(result) if t.requires_grad]
        if outs and grad:
            gid = len(self.graphs) + 1
            self.graphs[gid] = (outs, [t for t in given if t.requires_grad])
            extra["graph"] = gid
        return result, extra

    def backward(self, request: dict, buffers):
        outs, leaves = self.graphs[request["graph"]]
        grads = self.decode(request["grads"], buffers)
        for t in leaves:
            t.grad = None
        pairs = [(o, g) for o, g in zip(outs, grads) if g is not None]
        if pairs:
            torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs], retain_graph=True)
        return [t.grad for t in leaves]

    def inject(self, request: dict, buffers):
        """Put the course's solution of earlier exercises under ``names`` (graded on its own)."""
        space = dict(self.setup_ns)
        for code in buffers[: int(request["cells"])]:
            exec(marshal.loads(code), space)  # noqa: S102 - the judge's own code (compiled there)
        self.saved.append({n: self.ns.get(n, _MISSING) for n in request["names"]})
        self.injected = {n: space[n] for n in request["names"]}
        self.ns.update(self.injected)
        return None

    def restore(self, request: dict, buffers):
        for name, value in self.saved.pop().items():
            if value is _MISSING:
                self.ns.pop(name, None)
            else:
                self.ns[name] = value
        return None

    def answer(self, request: dict, buffers):
        op = request.get("op")
        if op == "call":
            return self.call(request, buffers)
        if op == "backward":
            return self.backward(request, buffers), {}
        obj = self.target(request)
        if op == "getattr":
            return getattr(obj, request["name"]), {}
        if op == "assign":  # the judge changed its copy of this tensor in place: the same here
            value = self.decode(request["value"], buffers)
            with torch.no_grad():
                getattr(obj, request["name"]).copy_(value)
            return None, {}
        if op == "setattr":
            setattr(obj, request["name"], self.decode(request["value"], buffers))
            return None, {}
        if op == "getitem":
            return obj[self.decode(request["key"], buffers)], {}
        if op == "len":
            return len(obj), {}
        if op == "iter":
            return list(obj), {}
        if op == "bool":
            return bool(obj), {}
        if op == "str":
            return _capped(str(obj) if request.get("how") == "str" else repr(obj), 4000), {}
        if op == "isinstance":
            return isinstance(self.obj(request["value"]), obj), {}
        if op == "get":
            return obj, {}
        raise ValueError(f"unknown request {op!r}")


_MISSING = object()


class JudgeFunction:
    """A function of the judge's test (a decoder ``step``) that the student's code calls: each call
    goes back to the judge with its arguments as data; gradients go back the same way."""

    def __init__(self, box: Box, n: int):
        self.box, self.n = box, n

    def __call__(self, *args, **kwargs):
        box = self.box
        header, buffers = box.encode([list(args), dict(kwargs)])
        grad = torch.is_grad_enabled()
        wire.send(box.sock, {"callback": self.n, "args": header, "grad": grad}, buffers)
        answer, bufs = wire.recv(box.sock)
        if "error" in answer:
            raise RuntimeError(f"the test's function failed: {answer['error'].get('message', '')}")
        result = box.decode(answer.get("ok"), bufs)
        if answer.get("graph") and grad:
            inputs = [t for t in wire.tensors_in([args, kwargs]) if t.requires_grad]
            result = wire.bridge(result, inputs, int(answer["graph"]), self.backward)
        return result

    def backward(self, graph: int, grads: list) -> list:
        """The gradients of the arguments of an earlier call, from the judge's own graph."""
        header, buffers = self.box.encode(grads)
        wire.send(self.box.sock, {"callback_backward": graph, "grads": header}, buffers)
        answer, bufs = wire.recv(self.box.sock)
        return self.box.decode(answer.get("ok"), bufs) if "ok" in answer else None


def serve(sock: socket.socket, box: Box) -> None:
    """Answer the judge until it closes the channel."""
    while True:
        try:
            request, buffers = wire.recv(sock)
        except EOFError:
            return
        op = request.get("op")
        try:
            if op == "setup":
                value, extra = box.setup(request["setup"]), {}
            elif op == "cell":
                value, extra = box.answer_cell(str(request["id"]), request["source"]), {}
            elif op == "inject":
                value, extra = box.inject(request, buffers), {}
            elif op == "restore":
                value, extra = box.restore(request, buffers), {}
            elif op == "release":
                box.graphs.clear()
                value, extra = None, {}
            else:
                quiet = CappedStream(cap=0)  # what the student's code prints while serving is not kept
                old = sys.stdout, sys.stderr
                sys.stdout = sys.stderr = quiet
                try:
                    value, extra = box.answer(request, buffers)
                finally:
                    sys.stdout, sys.stderr = old
            header, bufs = box.encode(value)
            wire.send(sock, {"ok": header, **extra}, bufs)
        except Exception as err:  # noqa: BLE001 - the student's error is the answer
            wire.send(sock, {"error": _error(err)})


def main(path: str) -> None:
    """Connect to the judge's socket at ``path`` and serve it (the sandbox's last process)."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.dont_write_bytecode = True
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    box = Box()
    box.sock = sock
    try:
        serve(sock, box)
    finally:
        sock.close()


if __name__ == "__main__":
    main(sys.argv[1])
