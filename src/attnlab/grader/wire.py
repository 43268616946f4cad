"""What crosses between the judge and a student's sandbox: plain data, never code.

A message is a JSON header and the raw bytes of the arrays it names::

    8 bytes: header length (big-endian)   header: UTF-8 JSON   then each buffer, in order

Values are ``None``, booleans, numbers, strings, lists, tuples, dictionaries, tensors and NumPy
arrays (dtype, shape, bytes), NumPy scalars, ``torch.dtype``, ``torch.device``, ``torch.Size``,
slices, and *handles*: a number naming an object that stays on the side that owns it (a student's
``nn.Module``, a function, anything that is not data). Decoding a message builds only those types:
there is no pickle, no class looked up by name, no ``eval``.

The judge also *ships* its own objects to the sandbox (a generator's state, one of its modules with
its weights, a function of ``torch`` or ``attnlab`` by name): that direction carries the judge's
objects into the student's process, never back. :func:`decode` takes the set of extra tags the
reading side accepts; the judge accepts none.
"""

from __future__ import annotations

import json
import math
import socket
import struct

import numpy as np
import torch

__all__ = ["WireError", "encode", "decode", "send", "recv", "tensors_in", "tensors_reachable", "bridge",
           "MAX_MESSAGE", "TORCH_DTYPES"]

MAX_MESSAGE = 256 * 1024 * 1024  # bytes of one message (a student's result larger than this is refused)
MAX_HEADER = 8 * 1024 * 1024
MAX_DEPTH = 32
MAX_STR = 1 << 20

TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64, torch.complex128,
    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}
NUMPY_DTYPES = {"float64", "float32", "float16", "complex64", "complex128", "int64", "int32", "int16", "int8",
                "uint8", "uint16", "uint32", "uint64", "bool"}


class WireError(ValueError):
    """A message that is not well-formed data (too large, an unknown tag, a bad array)."""


# ---------------------------------------------------------------------------------------------
# encoding


class _Encoder:
    def __init__(self, handle_of, ship):
        self.buffers: list[bytes] = []
        self.handle_of, self.ship = handle_of, ship

    def buffer(self, data: bytes) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def tensor(self, t: torch.Tensor) -> dict:
        d = t.detach().to("cpu").contiguous()
        name = str(d.dtype).removeprefix("torch.")
        if name not in TORCH_DTYPES:
            raise WireError(f"tensors of dtype {d.dtype} cannot be sent")
        raw = d.view(torch.int16) if d.dtype == torch.bfloat16 else d
        out = {"$t": self.buffer(raw.numpy().tobytes()), "dtype": name, "shape": list(d.shape)}
        if t.requires_grad:
            out["rg"] = True
        if isinstance(t, torch.nn.Parameter):
            out["param"] = True
        if t.is_leaf and t.grad is not None:
            out["grad"] = self.tensor(t.grad)
        return out

    def value(self, x, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError("nested too deeply")
        if x is None or isinstance(x, (bool, str)):
            return x
        if isinstance(x, int) and not isinstance(x, np.integer):
            return x if abs(x) < 2**63 else {"$bigint": str(x)}
        if isinstance(x, float) and not isinstance(x, np.floating):
            return x if math.isfinite(x) else {"$float": repr(x)}
        if isinstance(x, torch.Tensor):
            return self.tensor(x)
        if isinstance(x, np.ndarray) and x.dtype.name in NUMPY_DTYPES:
            a = np.ascontiguousarray(x)
            return {"$a": self.buffer(a.tobytes()), "dtype": a.dtype.name, "shape": list(a.shape)}
        if isinstance(x, np.generic) and x.dtype.name in NUMPY_DTYPES:
            return {"$ns": x.dtype.name, "v": self.value(x.item(), depth + 1)}
        if isinstance(x, torch.dtype):
            return {"$dtype": str(x).removeprefix("torch.")}
        if isinstance(x, torch.device):
            return {"$device": str(x)}
        if isinstance(x, torch.Size):
            return {"$size": list(x)}
        if isinstance(x, slice):
            return {"$slice": [self.value(x.start), self.value(x.stop), self.value(x.step)]}
        if x is Ellipsis:
            return {"$ellipsis": True}
        if type(x) in (list, tuple):
            items = [self.value(v, depth + 1) for v in x]
            return items if type(x) is list else {"$tuple": items}
        if type(x) in (set, frozenset):
            return {"$set": [self.value(v, depth + 1) for v in x], "frozen": type(x) is frozenset}
        if isinstance(x, dict) and type(x).__module__ in ("builtins", "collections"):
            if all(isinstance(k, str) for k in x):
                return {"$dict": [[k, self.value(v, depth + 1)] for k, v in x.items()]}
            return {"$dict": [[self.value(k, depth + 1), self.value(v, depth + 1)] for k, v in x.items()],
                    "keys": True}
        shipped = self.ship(x, self) if self.ship else None
        if shipped is not None:
            return shipped
        if self.handle_of is None:
            raise WireError(f"a {type(x).__name__} cannot be sent")
        return self.handle_of(x)


def encode(value, *, handle_of=None, ship=None) -> tuple[dict | list, list[bytes]]:
    """``(header value, buffers)`` of ``value``; objects that are not data become ``handle_of(obj)``
    (a dict with ``"$h"``) or, on the judge's side, ``ship(obj, encoder)``."""
    enc = _Encoder(handle_of, ship)
    return enc.value(value), enc.buffers


# ---------------------------------------------------------------------------------------------
# decoding


def _array(buf: bytes, dtype: str, shape) -> np.ndarray:
    if not (isinstance(shape, list) and all(isinstance(s, int) and 0 <= s < 2**40 for s in shape)):
        raise WireError("bad shape")
    count = math.prod(shape)
    if count * np.dtype(dtype).itemsize != len(buf):
        raise WireError("an array's bytes do not match its shape")
    return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()


class _Decoder:
    def __init__(self, buffers, handle, extra):
        self.buffers, self.handle, self.extra = buffers, handle, extra or {}

    def buf(self, i) -> bytes:
        if not isinstance(i, int) or not 0 <= i < len(self.buffers):
            raise WireError("bad buffer index")
        return self.buffers[i]

    def tensor(self, d: dict) -> torch.Tensor:
        name = d.get("dtype")
        if name not in TORCH_DTYPES:
            raise WireError(f"unknown tensor dtype {name!r}")
        np_name = "int16" if name == "bfloat16" else str(torch.empty(0, dtype=TORCH_DTYPES[name]).numpy().dtype)
        t = torch.from_numpy(_array(self.buf(d["$t"]), np_name, d.get("shape")))
        if name == "bfloat16":
            t = t.view(torch.bfloat16)
        if d.get("param"):
            t = torch.nn.Parameter(t, requires_grad=bool(d.get("rg")))
        elif d.get("rg") and t.is_floating_point():
            t.requires_grad_(True)
        if isinstance(d.get("grad"), dict):
            grad = self.tensor(d["grad"])
            if grad.shape != t.shape or grad.dtype != t.dtype or not t.requires_grad:
                raise WireError("a gradient that does not fit its tensor")
            t.grad = grad
        return t

    def value(self, x, depth: int = 0):
        if depth > MAX_DEPTH:
            raise WireError("nested too deeply")
        if x is None or isinstance(x, (bool, int, float)):
            return x
        if isinstance(x, str):
            if len(x) > MAX_STR:
                raise WireError("a string is too long")
            return x
        if isinstance(x, list):
            return [self.value(v, depth + 1) for v in x]
        if not isinstance(x, dict) or len(x) == 0:
            raise WireError("not a value")
        return self.tagged(next(iter(x)), x, depth)

    def tagged(self, tag: str, x: dict, depth: int):
        if tag == "$t":
            return self.tensor(x)
        if tag == "$a":
            if x.get("dtype") not in NUMPY_DTYPES:
                raise WireError("unknown array dtype")
            return _array(self.buf(x["$a"]), x["dtype"], x.get("shape"))
        if tag == "$ns":
            if x["$ns"] not in NUMPY_DTYPES:
                raise WireError("unknown scalar dtype")
            return np.dtype(x["$ns"]).type(self.value(x.get("v"), depth + 1))
        if tag == "$tuple":
            return tuple(self.value(v, depth + 1) for v in x["$tuple"])
        if tag == "$dict":
            pairs = x["$dict"]
            if not isinstance(pairs, list) or not all(isinstance(p, list) and len(p) == 2 for p in pairs):
                raise WireError("bad dict")
            keys = [self.value(k, depth + 1) if x.get("keys") else k for k, _ in pairs]
            if not all(isinstance(k, (str, int, float, bool, tuple, type(None))) for k in keys):
                raise WireError("bad dict key")
            return {k: self.value(v, depth + 1) for k, (_, v) in zip(keys, pairs)}
        if tag == "$set":
            items = [self.value(v, depth + 1) for v in x["$set"]]
            if not all(isinstance(v, (str, int, float, bool, tuple, type(None))) for v in items):
                raise WireError("bad set item")
            return frozenset(items) if x.get("frozen") else set(items)
        if tag == "$dtype":
            if x["$dtype"] not in TORCH_DTYPES:
                raise WireError("unknown dtype")
            return TORCH_DTYPES[x["$dtype"]]
        if tag == "$device":
            return torch.device(str(x["$device"])[:32])
        if tag == "$size":
            return torch.Size([int(s) for s in x["$size"]])
        if tag == "$slice":
            return slice(*(self.value(v, depth + 1) for v in x["$slice"]))
        if tag == "$ellipsis":
            return Ellipsis
        if tag == "$bigint":
            return int(str(x["$bigint"])[:400])
        if tag == "$float":
            if x["$float"] not in ("nan", "inf", "-inf"):
                raise WireError("bad float")
            return float(x["$float"])
        if tag == "$h" and self.handle is not None:
            return self.handle(x)
        if tag in self.extra:
            return self.extra[tag](x, self)
        raise WireError(f"unknown tag {tag!r}")


def decode(header_value, buffers: list[bytes], *, handle=None, extra=None):
    """The value of an encoded message; ``handle(d)`` turns a ``{"$h": ...}`` into the reader's
    object for it; ``extra`` maps further tags to readers (the sandbox's side only)."""
    return _Decoder(buffers, handle, extra).value(header_value)


def _is_container_dict(x) -> bool:
    return isinstance(x, dict) and type(x).__module__ in ("builtins", "collections")


def tensors_in(value, out: list | None = None) -> list:
    """The tensors of ``value`` in the order :func:`encode` writes them (through lists, tuples and
    dictionaries only): both sides use it to pair a result's tensors with their gradients."""
    out = [] if out is None else out
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif type(value) in (list, tuple):
        for v in value:
            tensors_in(v, out)
    elif _is_container_dict(value):
        for v in value.values():
            tensors_in(v, out)
    return out


def tensors_reachable(value, out: list | None = None, *, skip=frozenset()) -> list:
    """Like :func:`tensors_in`, and also into ``nn.Module`` s (parameters, then buffers): what an
    argument lends to a call. Objects whose ``id`` is in ``skip`` are left out."""
    out = [] if out is None else out
    if id(value) in skip:
        return out
    if isinstance(value, torch.Tensor):
        out.append(value)
    elif type(value) in (list, tuple):
        for v in value:
            tensors_reachable(v, out, skip=skip)
    elif _is_container_dict(value):
        for v in value.values():
            tensors_reachable(v, out, skip=skip)
    elif isinstance(value, torch.nn.Module):
        out.extend(value.parameters())
        out.extend(value.buffers())
    return out


def _rebuild(value, swap: dict):
    if isinstance(value, torch.Tensor):
        return swap.get(id(value), value)
    if type(value) in (list, tuple):
        items = [_rebuild(v, swap) for v in value]
        return items if type(value) is list else tuple(items)
    if _is_container_dict(value):
        return {k: _rebuild(v, swap) for k, v in value.items()}
    return value


class _Bridge(torch.autograd.Function):
    """A call made on the other side, as one node of this side's autograd graph."""

    @staticmethod
    def forward(ctx, ask, graph, outs, n_inputs, anchor, *inputs):
        ctx.ask, ctx.graph, ctx.n = ask, graph, n_inputs
        ctx.shapes = [(o.shape, o.dtype) for o in outs]
        return tuple(o.detach().clone() for o in outs)

    @staticmethod
    def backward(ctx, *grads):
        grads = [g if g is not None else torch.zeros(s, dtype=d) for g, (s, d) in zip(grads, ctx.shapes)]
        got = ctx.ask(ctx.graph, grads)
        if not isinstance(got, list) or len(got) != ctx.n:
            raise WireError("the other side sent back the wrong number of gradients")
        return (None, None, None, None, None, *got)


def bridge(value, inputs: list, graph: int, ask):
    """``value`` (a result that came across, whose tensors requiring grad were computed on the other
    side from copies of ``inputs``) with those tensors tied into this side's autograd graph: their
    backward calls ``ask(graph, grads of the outputs)``, which returns the gradients of ``inputs``.
    (An anchor makes backward reach the other side even when no input here requires grad: the other
    side's own parameters get their gradients.)"""
    outs = [t for t in tensors_in(value) if t.requires_grad]
    anchor = torch.zeros((), requires_grad=True)
    bridged = _Bridge.apply(ask, graph, outs, len(inputs), anchor, *inputs)
    return _rebuild(value, {id(o): b for o, b in zip(outs, bridged)})


# ---------------------------------------------------------------------------------------------
# framing on a socket


def send(sock: socket.socket, header: dict, buffers: list[bytes] = ()) -> None:
    header = dict(header, nbuf=[len(b) for b in buffers])
    data = json.dumps(header, allow_nan=False).encode()
    sock.sendall(struct.pack(">Q", len(data)) + data)
    for b in buffers:
        sock.sendall(b)


def _exactly(sock: socket.socket, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = sock.recv(min(n - got, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the channel")
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def recv(sock: socket.socket, *, limit: int = MAX_MESSAGE) -> tuple[dict, list[bytes]]:
    """One message: ``(header, buffers)``; :class:`WireError` if it breaks the format or the limit."""
    (n,) = struct.unpack(">Q", _exactly(sock, 8))
    if n > MAX_HEADER:
        raise WireError(f"a header of {n} bytes is over the limit")
    try:
        header = json.loads(_exactly(sock, n))
    except ValueError as err:
        raise WireError(f"the header is not JSON: {err}") from None
    sizes = header.get("nbuf", []) if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise WireError("bad buffer sizes")
    if n + sum(sizes) > limit:
        raise WireError(f"a message of {n + sum(sizes)} bytes is over the limit of {limit}")
    return header, [_exactly(sock, s) for s in sizes]
