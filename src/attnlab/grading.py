"""The checks that the labs' test cells call.

Every check raises ``AssertionError`` with a message that says what was expected and what came
("expected shape (B, T, D) = (2, 5, 16), got (2, 16, 5)"), so that a student can act on it.

Types are strict: a result must be a real ``torch.Tensor`` (``type(x) is torch.Tensor`` or an
``nn.Parameter``), not an object that pretends to be one; values are compared after
``detach().to("cpu", float64)``, with the comparison functions bound here when the module is
first imported.

While a student works, the checks run in the student's own kernel. At grading they run in the
judge's process, not the student's: the student's answers run in a sandbox, and what a test
compares reached the judge as data (see :mod:`attnlab.grader`).
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

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
    "graded_alone",
]

# Trusted copies, taken at import time (before student code runs in a lab): the checks call these
# functions, never operators or methods looked up on the student's objects at check time.
_Tensor = torch.Tensor
_Parameter = torch.nn.Parameter
_isfinite = torch.isfinite
_isinf = torch.isinf
_isnan = torch.isnan
_abs = torch.abs
_max = torch.max
_sub = torch.sub
_add = torch.add
_mul = torch.mul
_gt = torch.gt
_ne = torch.ne
_eq = torch.eq
_any = torch.any
_sum = torch.sum
_nonzero = torch.nonzero
_where = torch.where
_logical_or = torch.logical_or
_logical_and = torch.logical_and
_logical_not = torch.logical_not
_zeros_like = torch.zeros_like
_detach = torch.Tensor.detach
_to = torch.Tensor.to
_item = torch.Tensor.item
_numel = torch.Tensor.numel
_size = torch.Tensor.size
_dtype_of = torch.Tensor.dtype.__get__
_float64 = torch.float64
_bool = torch.bool
_isinstance = isinstance
_type = type
_tuple = tuple
_int = int
_float = float
_bbool = bool
_babs = abs
_math_isfinite = math.isfinite
_ndarray = np.ndarray
_number_types = (int, float, np.float64, np.float32, np.int64, np.int32)


def _is_tensor(x: Any) -> bool:
    return _type(x) is _Tensor or _type(x) is _Parameter


def _fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _dtype(x):
    return _dtype_of(x)


def _shape(x) -> tuple:
    return _tuple(_int(v) for v in _size(x))


def _cpu64(x):
    return _to(_detach(x), "cpu", _float64)


def _first(mask) -> tuple:
    return _tuple(_int(i) for i in _nonzero(mask)[0])


def _dtype_note(actual, expected) -> str:
    """What to add to a failed comparison when the two tensors' dtypes differ (a float32 result
    against a float64 reference fails a tight tolerance though its printed values agree)."""
    if _dtype(actual) == _dtype(expected):
        return ""
    return (f"; the result is {_dtype(actual)}, the reference {_dtype(expected)}: "
            "keep the dtype of the inputs (no .float(), no new float32 tensors)")


def check_tensor(x: Any, name: str = "result", *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Require a real ``torch.Tensor`` (optionally of ``dtype``); return it."""
    if not _is_tensor(x):
        raise AssertionError(f"{name}: expected a torch.Tensor, got {_type(x).__module__}.{_type(x).__qualname__}")
    if dtype is not None and _dtype(x) != dtype:
        raise AssertionError(f"{name}: expected dtype {dtype}, got {_dtype(x)}")
    return x


def check_shape(x: Any, expected: Sequence[int], name: str = "result", *, letters: str | None = None) -> None:
    """Require a tensor of shape ``expected``.

    ``letters`` names the dimensions in the message: ``check_shape(out, (2, 5, 16), "out",
    letters="B, T, D")`` fails with "out: expected shape (B, T, D) = (2, 5, 16), got (2, 16, 5)".
    """
    check_tensor(x, name)
    got = _shape(x)
    want = _tuple(_int(s) for s in expected)
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
    NaN in ``actual`` fails unless ``expected`` has NaN at the same place. The dtypes need not
    agree (pass ``dtype=`` to ``check_tensor`` for that), but a failure names them when they differ.
    """
    check_tensor(expected, "reference")
    check_shape(actual, _shape(expected), name, letters=letters)
    a = _cpu64(actual)
    e = _cpu64(expected)
    nan_a, nan_e = _isnan(a), _isnan(e)
    nan_bad = _ne(nan_a, nan_e)
    if _bbool(_any(nan_bad)):
        raise AssertionError(f"{name}: NaN where the reference has none (or the reverse), first at index {_first(nan_bad)}")
    a = _where(nan_a, _zeros_like(a), a)
    e = _where(nan_e, _zeros_like(e), e)
    inf_any = _logical_or(_isinf(a), _isinf(e))
    inf_mismatch = _logical_and(inf_any, _ne(a, e))
    if _bbool(_any(inf_mismatch)):
        raise AssertionError(f"{name}: infinite values differ from the reference, first at index {_first(inf_mismatch)}")
    zero = _zeros_like(a)
    diff = _where(inf_any, zero, _abs(_sub(a, e)))
    bound = _add(_mul(_where(inf_any, zero, _abs(e)), _float(rtol)), _float(atol))
    bad = _gt(diff, bound)
    if _bbool(_any(bad)):
        where = _first(bad)
        want, got = _float(e[where]), _float(a[where])
        digits = 6 if f"{want:.6g}" != f"{got:.6g}" else 17             # never "expected x, got x"
        raise AssertionError(
            f"{name}: values differ from the reference at {_int(_sum(bad))} of {_numel(bad)} positions; "
            f"largest difference {_float(_max(diff)):.3g} (tolerance {atol:g} + {rtol:g}*|expected|); "
            f"first at index {where}: expected {want:.{digits}g}, got {got:.{digits}g}"
            + _dtype_note(actual, expected)
        )


def check_equal(actual: Any, expected: torch.Tensor, name: str = "result") -> None:
    """Require exactly equal tensors (same shape, dtype and values): for masks and indices."""
    check_tensor(expected, "reference")
    check_shape(actual, _shape(expected), name)
    if _dtype(actual) != _dtype(expected):
        raise AssertionError(f"{name}: expected dtype {_dtype(expected)}, got {_dtype(actual)}")
    bad = _ne(_to(_detach(actual), "cpu"), _to(_detach(expected), "cpu"))
    if _bbool(_any(bad)):
        where = _first(bad)
        raise AssertionError(
            f"{name}: {_int(_sum(bad))} of {_numel(bad)} entries differ; first at index {where}: "
            f"expected {_item(expected[where])!r}, got {_item(actual[where])!r}"
        )


def check_float(actual: Any, expected: float, name: str = "result", *, rtol: float = 1e-6, atol: float = 1e-9,
                python: bool = False) -> None:
    """Require a real Python number (``int``/``float``, or a one-element tensor) close to ``expected``.

    With ``python=True`` only a Python ``float`` or ``int`` is accepted (the exercise asks for one).
    """
    if python and _type(actual) not in (float, int):
        got = "a torch.Tensor" if _is_tensor(actual) else f"a {_type(actual).__module__}.{_type(actual).__qualname__}"
        raise AssertionError(f"{name}: got {got}; a Python float is required (convert it with float(...))")
    if _is_tensor(actual):
        if _numel(actual) != 1:
            raise AssertionError(f"{name}: expected a number, got a tensor of shape {_fmt_shape(_shape(actual))}")
        value = _float(_item(_to(_detach(actual), "cpu")))
    elif _type(actual) in _number_types:
        value = _float(actual)
    else:
        raise AssertionError(f"{name}: expected a number, got {_type(actual).__qualname__}")
    if not _math_isfinite(value) or _babs(value - expected) > atol + rtol * _babs(expected):
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
    if _is_tensor(condition) and _numel(condition) == 1 and _dtype(condition) == _bool:
        condition = _bbool(_item(condition))
    if _type(condition) is not bool and _type(condition) is not np.bool_:
        raise AssertionError(f"{message} (the check got a {_type(condition).__qualname__}, not a bool)")
    if not condition:
        raise AssertionError(message)


@contextlib.contextmanager
def graded_alone(namespace: dict, **replacements: Any) -> Iterator[None]:
    """Grade one exercise on its own: temporarily bind ``replacements`` in the notebook's namespace.

    An exercise that builds on earlier ones (multi-head attention calls the student's
    ``scaled_dot_product_attention``) would otherwise lose its points for an earlier mistake too.
    Inside ``with G.graded_alone(globals(), scaled_dot_product_attention=ref.scaled_dot_product_attention):``
    the student's later code sees the reference; the student's own functions are put back on exit,
    whatever happened inside.
    """
    judge = namespace.get("__judge__")
    if judge is not None:  # at grading: the judge puts the course's answers in place in the sandbox
        with judge.graded_alone(replacements):
            yield
        return
    missing = object()
    saved = {name: namespace.get(name, missing) for name in replacements}
    namespace.update(replacements)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value
