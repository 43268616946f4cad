"""The judge's side of the channel: stand-ins for the student's functions, classes and objects.

A test cell runs in the judge's process. Where it names a student's function or class, it finds a
:class:`Remote` instead: calling it sends the arguments to the sandbox as data, the student's code
runs there, and the result comes back as data (tensors, numbers, lists...) or as another
:class:`Remote` (a module the student's class built, a bound method). So a test cell written for
the notebook (``out = mha(x)``, ``mha.q_proj.weight``, ``layer.state_dict()``, ``loss.backward()``)
runs unchanged in the judge, and:

* the judge's inputs are *copies* in the sandbox: an in-place change made there never reaches
  the judge's tensors, which its reference is computed from; the change is reported
  (:class:`ModifiedInput`), since the course's functions never modify their inputs;
* gradients cross as data too: a result that depends on the judge's tensors (or on the student's
  parameters) is tied into the judge's autograd graph by :func:`attnlab.grader.wire.bridge`, whose backward asks the
  sandbox for the gradients of that call;
* the judge's global random state is sent with every call (the student's draws do not change it:
  a test never depends on how many numbers the student drew);
* an exception raised by the student's code is raised here as the same built-in type
  (``ValueError``, ``IndexError``...; any other type as :class:`StudentError`), with the student's
  own message and traceback.
"""

from __future__ import annotations

import builtins
import select
import socket
import time

import torch

from . import wire

__all__ = ["Channel", "Remote", "StudentError", "ModifiedInput", "BoxDied", "is_remote", "globals_of", "fetch_value"]

_BUILTIN_ERRORS = {name: getattr(builtins, name) for name in (
    "ArithmeticError", "AssertionError", "AttributeError", "IndexError", "KeyError", "LookupError",
    "NameError", "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError", "StopIteration",
    "TypeError", "UnboundLocalError", "ValueError", "ZeroDivisionError", "FloatingPointError", "MemoryError")}


_NAMED_ROOTS = ("torch", "numpy", "math", "attnlab", "einops", "torchvision", "builtins", "functools", "operator")


class StudentError(RuntimeError):
    """An exception of the student's code (its type is not one of Python's built-in errors)."""


class ModifiedInput(AssertionError):
    """The student's code changed, in place, a tensor or module the test handed it."""


class BoxDied(RuntimeError):
    """The sandbox stopped answering (timed out, ran out of memory, or exited)."""


def _raise(error: dict, what: str):
    kind = str(error.get("type", "Error"))[:80]
    message = f"{error.get('message', '')}"
    tb = str(error.get("traceback", ""))
    cls = _BUILTIN_ERRORS.get(kind, StudentError)
    text = message if cls is not StudentError else f"{kind}: {message}"
    err = cls(text) if cls is not KeyError else KeyError(message)
    err.student_traceback = tb  # shown in the student's feedback
    err.student_call = what
    raise err


def is_remote(obj) -> bool:
    return isinstance(obj, Remote)


class Channel:
    """One connected sandbox: requests and answers, with a time limit per request."""

    def __init__(self, sock: socket.socket, *, timeout: float = 60.0, watch=None):
        self.sock, self.timeout, self.watch = sock, timeout, watch
        self.requests = 0
        self.modified: list[str] = []
        self.dead: str | None = None
        self._rng_sent: torch.Tensor | None = None
        self.callables: dict[int, object] = {}  # the judge's functions the sandbox may call back
        self.cb_graphs: dict[int, tuple[list, list]] = {}
        self.mirrors: list[tuple] = []

    # -- raw requests ------------------------------------------------------------------------

    def ask(self, header: dict, buffers: list[bytes] = (), *, what: str = "your code", timeout: float | None = None):
        """Send one request; serve the judge's callbacks it makes; return ``(value, answer header)``."""
        if self.dead:
            raise BoxDied(self.dead)
        if header.get("op") != "assign":
            self._sync()
        self.requests += 1
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        self._send(header, buffers, what)
        while True:
            answer, bufs = self._recv(deadline, limit, what)
            if "callback" in answer or "callback_backward" in answer:
                reply, rbufs = self._serve_callback(answer, bufs)
                self._send(reply, rbufs, what)
                continue
            break
        if "error" in answer:
            _raise(answer["error"] if isinstance(answer["error"], dict) else {}, what)
        try:
            value = wire.decode(answer.get("ok"), bufs, handle=self._remote)
        except (wire.WireError, KeyError, TypeError, ValueError) as err:  # the protocol is broken: stop this box
            self.dead = f"{what} sent back something that is not data ({type(err).__name__}: {err})"
            raise BoxDied(self.dead) from None
        return value, answer

    def _send(self, header, buffers, what):
        try:
            self.sock.settimeout(30)
            wire.send(self.sock, header, buffers)
        except OSError as err:
            self.dead = f"the sandbox stopped while running {what} ({type(err).__name__})"
            raise BoxDied(self.dead) from None

    def _recv(self, deadline: float, limit: float, what: str):
        try:
            while True:  # wait in short steps, watching the sandbox (its memory) between them
                ready, _, _ = select.select([self.sock], [], [], max(0.0, min(0.5, deadline - time.monotonic())))
                if ready:  # a message has begun: read all of it
                    self.sock.settimeout(max(30.0, deadline - time.monotonic()))
                    return wire.recv(self.sock)
                why = self.watch() if self.watch else None
                if why or time.monotonic() >= deadline:
                    self.dead = why or f"{what} did not return within {limit:g} s"
                    raise BoxDied(self.dead)
        except (EOFError, OSError) as err:
            self.dead = f"the sandbox stopped while running {what} ({type(err).__name__})"
        except wire.WireError as err:
            self.dead = f"{what} sent back something that is not data: {err}"
        raise BoxDied(self.dead)

    # -- the judge's functions that the student's code calls (a test's ``step``) ---------------

    def _serve_callback(self, request: dict, bufs) -> tuple[dict, list[bytes]]:
        """Run one of the judge's own functions on the student's data (and its backward)."""
        try:
            if "callback_backward" in request:
                outs, leaves = self.cb_graphs[int(request["callback_backward"])]
                grads = wire.decode(request.get("grads"), bufs)
                for t in leaves:
                    t.grad = None
                pairs = [(o, g) for o, g in zip(outs, grads) if isinstance(g, torch.Tensor)]
                if pairs:
                    torch.autograd.backward([o for o, _ in pairs], [g for _, g in pairs], retain_graph=True)
                header, out = self.encode([t.grad for t in leaves])
                return {"ok": header}, out
            fn = self.callables[int(request["callback"])]
            args, kwargs = wire.decode(request.get("args"), bufs, handle=self._remote)
            leaves = [t for t in wire.tensors_in([args, kwargs]) if t.requires_grad]
            with torch.set_grad_enabled(bool(request.get("grad"))):
                result = fn(*args, **dict(kwargs))
            header, out = self.encode(result)
            reply = {"ok": header}
            outs = [t for t in wire.tensors_in(result) if t.requires_grad]
            if outs and request.get("grad"):
                self.cb_graphs[len(self.cb_graphs) + 1] = (outs, leaves)
                reply["graph"] = len(self.cb_graphs)
            return reply, out
        except Exception as err:  # noqa: BLE001 - the test's own function failed: tell the sandbox
            return {"error": {"type": type(err).__name__, "message": str(err)[:2000]}}, []

    def _sync(self) -> None:
        """Send the judge's in-place changes of the student's tensors (``block.weight.zero_()``)."""
        for i, (t, version, target, name) in enumerate(self.mirrors):
            if t._version != version:
                self.mirrors[i] = (t, t._version, target, name)
                payload, buffers = self.encode(t)
                self.ask({"op": "assign", **target, "name": name, "value": payload}, buffers,
                         what=f"setting {name}")

    def mirror(self, t: torch.Tensor, target: dict, name: str) -> None:
        """Remember that ``t`` is the judge's copy of the student's tensor ``target.name``."""
        self.mirrors.append((t, t._version, target, name))

    def _remote(self, d: dict) -> "Remote":
        return Remote(self, {"$h": int(d["$h"])}, str(d.get("type", "object"))[:80], str(d.get("kind", "value")),
                      bool(d.get("module")))

    # -- encoding the judge's objects ----------------------------------------------------------

    def _ship(self, obj, enc):
        if isinstance(obj, Remote):
            if obj._channel is not self:
                raise wire.WireError("an object of another sandbox")
            return dict(obj._ref)
        if isinstance(obj, torch.Generator):
            return {"$gen": enc.value(obj.get_state()), "device": str(obj.device)}
        if isinstance(obj, torch.nn.Module):
            cls = type(obj)
            return {"$mod": f"{cls.__module__}:{cls.__qualname__}", "state": enc.value(dict(obj.__dict__))}
        if callable(obj):
            module, qual = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
            if module and qual and "<" not in qual and module.split(".")[0] in _NAMED_ROOTS:
                return {"$fn": f"{module}:{qual}"}
            n = len(self.callables) + 1  # the test's own function: called back here, on the student's data
            self.callables[n] = obj
            return {"$cb": n}
        raise wire.WireError(f"the judge cannot send a {type(obj).__name__} to the sandbox")

    def encode(self, value):
        return wire.encode(value, ship=self._ship)

    # -- calls ---------------------------------------------------------------------------------

    def call(self, ref: dict, args: tuple, kwargs: dict, what: str):
        payload, buffers = self.encode([list(args), dict(kwargs)])
        header = {"op": "call", **ref, "args": payload[0], "kwargs": payload[1], "grad": torch.is_grad_enabled()}
        state = torch.get_rng_state()
        if self._rng_sent is None or not torch.equal(state, self._rng_sent):
            # the judge seeded or drew since the last call: the student's code draws from that state,
            # as it would in the notebook; otherwise the sandbox goes on with its own stream
            rng, rng_buf = wire.encode(state)
            rng["$t"] += len(buffers)
            header["rng"], buffers = rng, buffers + rng_buf
            self._rng_sent = state
        value, answer = self.ask(header, buffers, what=what)
        if answer.get("modified_input"):
            self.modified.append(what)
            raise ModifiedInput(f"{what} changed, in place, a tensor it was given: an answer must leave its "
                                "inputs as they were (work on a copy, e.g. x.clone(), or out-of-place operations)")
        if answer.get("graph") and torch.is_grad_enabled():
            value = self._bridge(int(answer["graph"]), value, [args, kwargs])
        return value

    def _bridge(self, graph: int, value, inputs):
        leaves = [t for t in wire.tensors_reachable(inputs, skip=_remote_ids(inputs)) if t.requires_grad]
        return wire.bridge(value, leaves, graph, self.backward)

    def backward(self, graph: int, grads: list) -> list:
        payload, buffers = self.encode(grads)
        value, _ = self.ask({"op": "backward", "graph": graph, "grads": payload}, buffers, what="the backward pass")
        return value

    def release(self) -> None:
        """The end of a test cell: the sandbox forgets its graphs, the judge its callbacks."""
        if not self.dead:
            self.ask({"op": "release"}, what="releasing the graphs")
        self.callables.clear()
        self.cb_graphs.clear()
        self.mirrors.clear()


def _remote_ids(value, out: set | None = None) -> set:
    out = set() if out is None else out
    if isinstance(value, Remote):
        out.add(id(value))
    elif type(value) in (list, tuple):
        for v in value:
            _remote_ids(v, out)
    elif isinstance(value, dict):
        for v in value.values():
            _remote_ids(v, out)
    return out


class Remote:
    """A student's object that stays in the sandbox: a function, a class, a module, anything."""

    __attnlab_remote__ = True

    def __init__(self, channel: Channel, ref: dict, type_name: str, kind: str, module: bool = False, name: str = ""):
        object.__setattr__(self, "_channel", channel)
        object.__setattr__(self, "_ref", ref)
        object.__setattr__(self, "_type", type_name)
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_is_module", module)
        object.__setattr__(self, "_name", name or type_name)

    def _ask(self, op: str, what: str, **fields):
        return self._channel.ask({"op": op, **self._ref, **fields} if "global" in self._ref
                                 else {"op": op, "target": self._ref, **fields}, what=what)[0]

    def _target(self) -> dict:
        return dict(self._ref) if "global" in self._ref else {"target": self._ref}

    def __call__(self, *args, **kwargs):
        what = f"{self._name}(...)"
        value = self._channel.call(self._target(), args, kwargs, what)
        if isinstance(value, Remote) and self._kind == "class":
            object.__setattr__(value, "_name", f"your {self._name}")
        return value

    def __getattr__(self, name: str):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        value = self._ask("getattr", f"{self._name}.{name}", name=name)
        if isinstance(value, Remote):
            object.__setattr__(value, "_name", f"{self._name}.{name}")
        elif isinstance(value, torch.Tensor):
            self._channel.mirror(value, self._target(), name)
        return value

    def __setattr__(self, name: str, value) -> None:
        payload, buffers = self._channel.encode(value)
        self._channel.ask({"op": "setattr", **self._target(), "name": name, "value": payload}, buffers,
                          what=f"setting {self._name}.{name}")

    def __getitem__(self, key):
        payload, buffers = self._channel.encode(key)
        return self._channel.ask({"op": "getitem", **self._target(), "key": payload}, buffers,
                                 what=f"{self._name}[...]")[0]

    def __len__(self) -> int:
        n = self._ask("len", f"len({self._name})")
        if not isinstance(n, int) or n < 0:
            raise TypeError(f"len({self._name}) is not a non-negative integer")
        return n

    def __iter__(self):
        items = self._ask("iter", f"iterating over {self._name}")
        return iter(items if isinstance(items, list) else [])

    def __bool__(self) -> bool:
        return bool(self._ask("bool", f"bool({self._name})") is True)

    def __repr__(self) -> str:
        try:
            text = self._ask("str", f"repr({self._name})", how="repr")
        except Exception:  # noqa: BLE001 - a repr never fails
            text = None
        return text if isinstance(text, str) else f"<{self._type} in the sandbox>"

    def __str__(self) -> str:
        return self.__repr__()

    def __instancecheck__(self, obj) -> bool:
        if not isinstance(obj, Remote) or obj._channel is not self._channel:
            return False
        return self._ask("isinstance", "isinstance(...)", value=obj._ref) is True

    def __mro_entries__(self, bases):
        raise TypeError(f"a test cannot subclass the student's {self._name}")


def globals_of(channel: Channel, names: dict[str, str]) -> dict:
    """A stand-in for each name the student's answers defined (``{name: kind}``); a name bound to
    data (a constant) is fetched as data."""
    out = {}
    for n, kind in names.items():
        out[n] = fetch_value(channel, n) if kind == "value" else Remote(channel, {"global": n}, n, kind, name=n)
    return out


def fetch_value(channel: Channel, name: str):
    """The value of a global that the answers defined and that is not a function or class: data
    comes back as the judge's copy, anything else as a :class:`Remote`."""
    return channel.ask({"op": "get", "global": name}, what=name)[0]
