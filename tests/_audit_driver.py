"""Run by ``test_grading_kernel.py`` in a fresh interpreter (an audit hook stays for a process's life).

``python _audit_driver.py SCENARIO`` installs the grading kernel's audit hook, with this file's
folder trusted, runs "student" code (compiled under an answer cell's kind of name, as the grading
kernel does) and prints a JSON object: what ran, and what was refused.
"""

from __future__ import annotations

import json
import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))

STUDENT = {
    # refused
    "getframe": "import sys\nsys._getframe()",
    "gc": "import gc\ngc.get_objects()",
    "compile": "compile('1', 'x', 'eval')",
    "eval": "eval('1 + 1')",
    "exec": "exec('x = 1')",
    "system": "import os\nos.system('true')",
    "fork": "import os\nos.fork()",
    "proc_mem": "open('/proc/self/mem', 'rb')",
    "socket": "import socket\nsocket.socket().connect(('127.0.0.1', 9))",
    "settrace": "import sys\nsys.settrace(lambda *a: None)",
    "code_read": "def f():\n    pass\nf.__code__",
    "gi_frame": "def g():\n    yield 1\ng().gi_frame",
    "tb_frame": "try:\n    1 / 0\nexcept ZeroDivisionError as e:\n    e.__traceback__.tb_frame",
    "type_hints": "import typing\ndef f(x: 'print(1)'):\n    pass\ntyping.get_type_hints(f)",
    "marshal": "import marshal\nmarshal.loads(b'N')",
    "import_csv": "import csv",
    "trusted_helper_frame": "helper_frame()",
    # allowed
    "import_statistics": "import statistics\nstatistics.mean([1, 2])",
    "namedtuple": "import collections\ncollections.namedtuple('P', 'a b')(1, 2)",
    "dataclass": "import dataclasses\n@dataclasses.dataclass\nclass P:\n    a: int = 1\nP()",
    "arithmetic": "x = sum(i * i for i in range(10))",
}


def helper_frame():
    """Trusted code (this file) that takes a frame: allowed alone, refused under student code."""
    return sys._getframe()


def _run(name: str, source: str, policy) -> str:
    from attnlab.course import audit

    before = len(policy.refusals)
    try:
        exec(compile(source, f"<answer {name}>", "exec"), {"__name__": "__main__", "helper_frame": helper_frame})
    except audit.Refused as err:
        return f"refused: {err}"
    except Exception as err:  # noqa: BLE001 - what the student code met
        return f"{type(err).__name__}: {err}"
    return "ran" if len(policy.refusals) == before else "refused quietly"


def audit_scenario() -> dict:
    from attnlab.course import audit, rules, sandbox

    import gc  # noqa: F401 - loaded already in a grading kernel, so that the calls, not the imports, are refused
    import socket  # noqa: F401

    policy = audit.install(audit.Policy(sandbox.python_roots() + [TESTS], rules.import_allowed))
    out = {name: _run(name, source, policy) for name, source in STUDENT.items()}
    out["trusted_alone"] = "ran" if helper_frame() is not None else "no"
    calls = []
    _run("add_hook", "import sys\nsys.addaudithook(lambda event, args: calls.append(event))", policy)
    open(__file__).close()
    out["student_hook_called"] = bool(calls)
    return out


def tripwire_scenario() -> dict:
    import functools

    import torch

    from attnlab import grading
    from attnlab.course import audit, rules, sandbox, tripwire

    policy = audit.install(audit.Policy(sandbox.python_roots() + [TESTS], rules.import_allowed))
    own = tripwire.OwnWork(policy, grading._ALONE)
    own.prepare(["torch.softmax", "torch.nn.functional.softmax"])
    ns = {"torch": torch, "functools": functools, "G": grading}
    exec(compile("REFS = {'f': torch.softmax}\ndef via_dict(x):\n    return REFS['f'](x, dim=-1)\n"
                 "def via_map(x):\n    return list(map(functools.partial(torch.softmax, dim=-1), [x]))[0]\n"
                 "def local_import(x):\n    import torch.nn.functional as F2\n    return F2.softmax(x, -1)\n"
                 "def own(x):\n    e = x.exp()\n    return e / e.sum(-1, keepdim=True)\n"
                 "def uses_stand_in(x):\n    return softmax_ref(x, dim=-1)\n", "<answer ex1>", "exec"), ns)
    test = "<test test_ex1 token>"
    policy.trust(test)
    out = {}
    for name in ("via_dict", "via_map", "local_import", "own", "uses_stand_in", "test_calls_reference"):
        source = {"test_calls_reference": "torch.softmax(x, dim=-1)\ntorch.nn.functional.softmax(x, -1)",
                  "uses_stand_in": "with G.graded_alone(globals(), softmax_ref=torch.softmax):\n    uses_stand_in(x)"}.get(
            name, f"{name}(x)")
        own.arm(["torch.softmax", "torch.nn.functional.softmax"])
        ns["x"] = torch.randn(2, 3)
        try:
            exec(compile(source, test, "exec"), ns)
        finally:
            out[name] = own.disarm()
    return out


def module_scenario() -> dict:
    import math

    from attnlab.course import audit, kernel_guard, rules, sandbox

    policy = audit.install(audit.Policy(sandbox.python_roots() + [TESTS], rules.import_allowed))
    kernel_guard.guard_modules(kernel_guard.guarded_module_class(policy))
    math.trusted_may = 1  # this file is trusted
    out = {"trusted": getattr(math, "trusted_may", None) == 1}
    out["student"] = _run("patch", "import math\ndef _p(self):\n    self.pi = 3\n_p(math)", policy)
    out["pi"] = math.pi
    return out


if __name__ == "__main__":
    scenario = {"audit": audit_scenario, "tripwire": tripwire_scenario, "modules": module_scenario}[sys.argv[1]]
    print(json.dumps(scenario()))
