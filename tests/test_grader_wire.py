"""The judge's channel: data only across it, and the student's objects behave through it as in a notebook.

The wire format is checked on its own (every kind of value goes across and back; what is not data
is refused). The stand-ins are checked against a box served in a thread of this process over a
socket pair (the protocol, not the sandbox: ``test_grading_adversarial.py`` holds the sandbox).
"""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np
import pytest
import torch
from torch import nn

from attnlab.grader import box as box_mod
from attnlab.grader import remote, wire


def roundtrip(value, **kw):
    header, buffers = wire.encode(value)
    return wire.decode(header, buffers, **kw)


def test_every_kind_of_data_goes_across_and_back():
    t = torch.randn(3, 4, dtype=torch.float64)
    value = {"a": [1, 2.5, float("nan"), None, True, "text"], "t": t, "b": torch.tensor([1.5], dtype=torch.bfloat16),
             "n": np.arange(6, dtype=np.int32).reshape(2, 3), "s": np.float64(2.5), "d": torch.float16,
             "size": torch.Size([2, 3]), "tup": (1, (2, 3)), "sl": slice(1, None, 2), "set": {1, 2},
             "big": 2**70, "p": nn.Parameter(torch.ones(2))}
    back = roundtrip(value)
    assert back["a"][:2] == [1, 2.5] and np.isnan(back["a"][2]) and back["a"][3:] == [None, True, "text"]
    assert torch.equal(back["t"], t) and back["t"].dtype == torch.float64
    assert back["b"].dtype == torch.bfloat16 and back["b"].item() == 1.5
    assert back["n"].dtype == np.int32 and back["n"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert type(back["s"]) is np.float64 and isinstance(back["s"], float)
    assert back["d"] is torch.float16 and back["size"] == torch.Size([2, 3]) and type(back["size"]) is torch.Size
    assert back["tup"] == (1, (2, 3)) and back["sl"] == slice(1, None, 2) and back["set"] == {1, 2}
    assert back["big"] == 2**70 and isinstance(back["p"], nn.Parameter)


def test_what_is_not_data_cannot_be_sent_or_read():
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode(lambda x: x)
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode(object())
    for forged in ({"$fn": "os:system"}, {"$mod": "builtins:object", "state": {}}, {"$cb": 1}, {"$pickle": "x"},
                   {"$gen": 0}):
        with pytest.raises(wire.WireError, match="unknown tag"):
            wire.decode(forged, [])       # what the judge reads knows no tag that builds an object
    header, buffers = wire.encode(torch.zeros(2, 3))
    header["shape"] = [4, 4]
    with pytest.raises(wire.WireError, match="do not match"):
        wire.decode(header, buffers)
    with pytest.raises(wire.WireError, match="dtype"):
        wire.decode({"$t": 0, "dtype": "object", "shape": [1]}, [b"x"])


def test_a_message_over_the_limit_is_refused_before_it_is_read():
    a, b = socket.socketpair()
    header = b'{"nbuf": [1000000000]}'
    a.sendall(struct.pack(">Q", len(header)) + header)
    with pytest.raises(wire.WireError, match="over the limit"):
        wire.recv(b, limit=1 << 20)
    a.close(), b.close()


# ---------------------------------------------------------------------------------------------
# stand-ins, against a box served in a thread


STUDENT = '''
import torch
from torch import nn

def scale_in_place(x):
    x.mul_(0)                                    # changes its input: must be refused
    return x

def double(x):
    return 2 * x

def run(step, x, n):
    for _ in range(n):
        x = step(x)
    return x

class Affine(nn.Module):
    def __init__(self, *, dim):
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self._last = None

    def forward(self, x):
        self._last = x                           # private attributes are fine
        return self.lin(x)

def noisy(shape):
    return torch.rand(shape)
'''


@pytest.fixture()
def channel():
    judge_side, box_side = socket.socketpair()
    box = box_mod.Box()
    box.sock = box_side
    thread = threading.Thread(target=box_mod.serve, args=(box_side, box), daemon=True)
    thread.start()
    ch = remote.Channel(judge_side, timeout=30)
    ch.ask({"op": "setup", "setup": []})
    item, _ = ch.ask({"op": "cell", "id": "ex", "source": STUDENT})
    assert item["error"] is None, item
    yield ch, remote.globals_of(ch, item["names"])
    judge_side.close()
    thread.join(5)
    box_side.close()


def test_a_call_returns_data_and_an_in_place_change_never_reaches_the_judge(channel):
    ch, g = channel
    x = torch.ones(3)
    assert torch.equal(g["double"](x), 2 * x)
    with pytest.raises(remote.ModifiedInput, match="in place"):
        g["scale_in_place"](x)
    assert torch.equal(x, torch.ones(3))          # the judge's own tensor is as it was


def test_a_module_behaves_as_in_the_notebook_with_gradients_across(channel):
    ch, g = channel
    torch.manual_seed(0)
    m = g["Affine"](dim=4)
    assert isinstance(m, remote.Remote) and isinstance(m, g["Affine"])
    w, b = m.lin.weight, m.lin.bias                 # data: the judge's copies
    x = torch.randn(2, 4, requires_grad=True)
    y = m(x)
    assert torch.allclose(y, x @ w.T + b)
    (y * torch.arange(4.0)).sum().backward()        # gradients come back from the sandbox
    assert torch.allclose(x.grad, torch.arange(4.0).expand(2, 4) @ w)
    assert torch.allclose(m.lin.weight.grad, torch.arange(4.0)[:, None] * x.detach().sum(0)[None])
    with torch.no_grad():
        m.lin.bias.zero_()                          # an in-place change of the judge's copy is sent across
    assert torch.allclose(m(x), x @ w.T)
    assert set(m.state_dict()) == {"lin.weight", "lin.bias"}


def test_the_judges_function_is_called_back_with_its_gradients(channel):
    ch, g = channel
    seen = []
    w = torch.tensor(3.0, requires_grad=True)

    def step(v):
        seen.append(v.clone())
        return v * w

    out = g["run"](step, torch.tensor([1.0, 2.0]), 3)
    assert torch.allclose(out, torch.tensor([27.0, 54.0])) and len(seen) == 3
    out.sum().backward()
    assert torch.allclose(w.grad, torch.tensor(3 * 9.0 * 3.0))    # d/dw sum(v w^3) = 3 w^2 (1 + 2)


def test_random_draws_follow_the_judges_seed_but_not_its_state(channel):
    ch, g = channel
    torch.manual_seed(5)
    a = g["noisy"]((3,))
    b = g["noisy"]((3,))                            # the sandbox goes on with its own stream
    torch.manual_seed(5)
    assert torch.equal(g["noisy"]((3,)), a) and not torch.equal(a, b)


def test_a_students_exception_arrives_with_its_type_and_traceback(channel):
    ch, g = channel
    with pytest.raises(TypeError) as err:
        g["double"]("a", "b")
    assert "double" in err.value.student_call and "Traceback" in err.value.student_traceback
