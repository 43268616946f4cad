"""The checks that the labs' test cells call.

Every check raises ``AssertionError`` with a message that says what was expected and what came
("expected shape (B, T, D) = (2, 5, 16), got (2, 16, 5)"), so that a student can act on it.

The checks do not trust objects the student made:

* types are strict: a result must be a real ``torch.Tensor`` (``type(x) is torch.Tensor`` or an
  ``nn.Parameter``), not an object that pretends to be one or whose ``__eq__`` always says yes;
* the comparison functions are the trusted copies bound here when this module is first imported
  (the lab's setup cell imports it before any student code runs), so replacing
  ``torch.allclose`` or ``numpy.testing.assert_allclose`` later changes nothing here;
* values are compared after ``detach().to("cpu", float64)`` with our own arithmetic.

A student can still reach into this module from their own cells; the grading command closes
that door by re-running the decisive checks in a fresh process (see ``attnlab.course.grade``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np
import torch

__all__ = [
    "check_tensor",
    "check_shape",
    "check_close",
    "check_equal",
    "check_float",
    "check_raises",
    "check_true",
    "check_own_work",
]

# Trusted copies, taken at import time (before student code runs in a lab).
_Tensor = torch.Tensor
_Parameter = torch.nn.Parameter
_isfinite = torch.isfinite
_abs = torch.abs
_max = torch.max
_float64 = torch.float64
_isinstance = isinstance
_type = type
_tuple = tuple
_math_isfinite = math.isfinite
_ndarray = np.ndarray


def _is_tensor(x: Any) -> bool:
    return _type(x) is _Tensor or _type(x) is _Parameter


def _fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def check_tensor(x: Any, name: str = "result", *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Require a real ``torch.Tensor`` (optionally of ``dtype``); return it."""
    if not _is_tensor(x):
        raise AssertionError(f"{name}: expected a torch.Tensor, got {_type(x).__module__}.{_type(x).__qualname__}")
    if dtype is not None and x.dtype != dtype:
        raise AssertionError(f"{name}: expected dtype {dtype}, got {x.dtype}")
    return x


def check_shape(x: Any, expected: Sequence[int], name: str = "result", *, letters: str | None = None) -> None:
    """Require a tensor of shape ``expected``.

    ``letters`` names the dimensions in the message: ``check_shape(out, (2, 5, 16), "out",
    letters="B, T, D")`` fails with "out: expected shape (B, T, D) = (2, 5, 16), got (2, 16, 5)".
    """
    check_tensor(x, name)
    got = _tuple(int(s) for s in x.shape)
    want = _tuple(int(s) for s in expected)
    if got != want:
        named = f"({letters}) = " if letters else ""
        raise AssertionError(f"{name}: expected shape {named}{_fmt_shape(want)}, got {_fmt_shape(got)}")


def check_close(
    actual: Any,
    expected: torch.Tensor,
    name: str = "result",
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    letters: str | None = None,
) -> None:
    """Require ``actual`` to be a tensor of ``expected``'s shape with close, finite values.

    Both are compared in float64 on the CPU: ``|actual - expected| <= atol + rtol * |expected|``.
    NaN in ``actual`` fails unless ``expected`` has NaN at the same place.
    """
    check_tensor(expected, "reference")
    check_shape(actual, expected.shape, name, letters=letters)
    a = actual.detach().to("cpu", _float64)
    e = expected.detach().to("cpu", _float64)
    nan_a, nan_e = a != a, e != e
    if bool((nan_a != nan_e).any()):
        where = _tuple(int(i) for i in (nan_a != nan_e).nonzero()[0])
        raise AssertionError(f"{name}: NaN where the reference has none (or the reverse), first at index {where}")
    a = a.masked_fill(nan_a, 0.0)
    e = e.masked_fill(nan_e, 0.0)
    inf_mismatch = (a.isinf() | e.isinf()) & (a != e)
    if bool(inf_mismatch.any()):
        where = _tuple(int(i) for i in inf_mismatch.nonzero()[0])
        raise AssertionError(f"{name}: infinite values differ from the reference, first at index {where}")
    finite = ~(a.isinf() | e.isinf())
    diff = _abs(a - e).masked_fill(~finite, 0.0)
    bound = atol + rtol * _abs(e).masked_fill(~finite, 0.0)
    bad = diff > bound
    if bool(bad.any()):
        where = _tuple(int(i) for i in bad.nonzero()[0])
        raise AssertionError(
            f"{name}: values differ from the reference at {int(bad.sum())} of {bad.numel()} positions; "
            f"largest difference {float(_max(diff)):.3g} (tolerance {atol:g} + {rtol:g}*|expected|); "
            f"first at index {where}: expected {float(e[where]):.6g}, got {float(a[where]):.6g}"
        )


def check_equal(actual: Any, expected: torch.Tensor, name: str = "result") -> None:
    """Require exactly equal tensors (same shape, dtype and values): for masks and indices."""
    check_tensor(expected, "reference")
    check_shape(actual, expected.shape, name)
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{name}: expected dtype {expected.dtype}, got {actual.dtype}")
    bad = actual.detach().cpu() != expected.detach().cpu()
    if bool(bad.any()):
        where = _tuple(int(i) for i in bad.nonzero()[0])
        raise AssertionError(
            f"{name}: {int(bad.sum())} of {bad.numel()} entries differ; first at index {where}: "
            f"expected {expected[where].item()!r}, got {actual[where].item()!r}"
        )


def check_float(actual: Any, expected: float, name: str = "result", *, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Require a real Python number (``int``/``float``, or a one-element tensor) close to ``expected``."""
    if _is_tensor(actual):
        if actual.numel() != 1:
            raise AssertionError(f"{name}: expected a number, got a tensor of shape {_fmt_shape(actual.shape)}")
        value = float(actual.detach().cpu().item())
    elif _type(actual) in (int, float, np.float64, np.float32, np.int64, np.int32):
        value = float(actual)
    else:
        raise AssertionError(f"{name}: expected a number, got {_type(actual).__qualname__}")
    if not _math_isfinite(value) or abs(value - expected) > atol + rtol * abs(expected):
        raise AssertionError(f"{name}: expected {expected:.6g}, got {value:.6g}")


def check_raises(fn: Callable[[], Any], exc: type[BaseException], name: str = "call") -> None:
    """Require ``fn()`` to raise ``exc`` (e.g. a ``ValueError`` for a bad argument)."""
    try:
        fn()
    except exc:
        return
    except Exception as err:  # noqa: BLE001 - we report what came instead
        raise AssertionError(f"{name}: expected {exc.__name__}, got {_type(err).__name__}: {err}") from None
    raise AssertionError(f"{name}: expected {exc.__name__}, but nothing was raised")


def check_true(condition: Any, message: str) -> None:
    """Require a real ``bool`` (or a one-element bool tensor) that is true; else fail with ``message``."""
    if _is_tensor(condition) and condition.numel() == 1 and condition.dtype == torch.bool:
        condition = bool(condition.item())
    if _type(condition) is not bool and _type(condition) is not np.bool_:
        raise AssertionError(f"{message} (the check got a {_type(condition).__qualname__}, not a bool)")
    if not condition:
        raise AssertionError(message)


def _referenced_objects(fn: Any) -> list[Any]:
    """The objects a function's code (and its nested functions') reaches through global names.

    The bytecode is read: a global name and the attribute chain that follows it
    (``F.scaled_dot_product_attention``, ``torch.nn.MultiheadAttention``) are resolved, so a call
    of a forbidden function is found however it is spelled, and nothing else is.
    """
    import builtins
    import dis

    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    g = getattr(fn, "__globals__", {})
    found, stack = [], [code]
    while stack:
        c = stack.pop()
        stack.extend(const for const in c.co_consts if _type(const) is _type(code))
        current = None
        for ins in dis.get_instructions(c):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                current = g.get(ins.argval, getattr(builtins, ins.argval, None))
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and current is not None:
                current = getattr(current, ins.argval, None)
            else:
                current = None
                continue
            if current is not None:
                found.append(current)
    return found


def check_own_work(fn: Any, forbidden: Sequence[Any], name: str = "your function") -> None:
    """Require that ``fn`` does not call the reference it is graded against.

    ``forbidden`` lists objects (functions, classes, modules) the exercise asks the student to
    write themselves, e.g. ``[attnlab.attention, F.scaled_dot_product_attention]``. Methods of a
    class are checked too.
    """
    targets = [fn]
    if _isinstance(fn, type):
        targets = [v for v in vars(fn).values() if callable(v)]
    for target in targets:
        for obj in _referenced_objects(target):
            for bad in forbidden:
                mod = getattr(obj, "__module__", None) or getattr(obj, "__name__", None)
                bad_mod = getattr(bad, "__name__", None) if _type(bad).__name__ == "module" else None
                if obj is bad or (bad_mod is not None and (obj is bad or mod == bad_mod)):
                    label = getattr(bad, "__qualname__", None) or getattr(bad, "__name__", repr(bad))
                    raise AssertionError(
                        f"{name} calls {label}, which this exercise asks you to write yourself"
                    )
