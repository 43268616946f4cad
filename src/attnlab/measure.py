"""Measuring models: parameters, FLOPs, memory and time, shared by every chapter.

* :func:`count_parameters` counts what ``torch`` allocated; :func:`count_flops` counts the floating-
  point operations of one forward pass with PyTorch's ``FlopCounterMode`` (a multiply-add is 2 FLOPs;
  matrix products, convolutions and fused attention are counted, element-wise work is not). PyTorch's
  counter knows the GPU attention kernels only; the CPU kernel that ``scaled_dot_product_attention``
  runs here is given the same formula (:data:`_CPU_ATTENTION`), so the count does not depend on the
  device.
* :func:`peak_memory` is the largest number of bytes held by tensors *created during* a call: on a
  CUDA device from the caching allocator's statistics, elsewhere (CPU, meta) by following every
  tensor an operator returns until it is freed. The second way needs no allocator hooks, so it gives
  the same answer on every machine, and it works on the ``meta`` device, where shapes are computed
  but nothing is allocated: memory curves for sizes far beyond a laptop's RAM.
* :func:`time_call` is the median wall time of a call after warm-up, synchronising CUDA.

Speed claims in the course are always *ratios* of two :func:`time_call` results measured in the same
process, never absolute seconds compared with a fixed number.
"""

from __future__ import annotations

import statistics
import time
import weakref
from typing import Any, Callable

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

__all__ = ["count_parameters", "count_flops", "peak_memory", "time_call"]


def count_parameters(module: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)                      # shapes (B, H, T, Dh), as on a GPU


def _cpu_attention_backward_flops(grad_out, query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# the fused attention kernel of the CPU, which torch's FlopCounterMode does not count
_CPU_ATTENTION = {op: formula for name, formula in (
    ("_scaled_dot_product_flash_attention_for_cpu", _cpu_attention_flops),
    ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_attention_backward_flops))
    if (op := getattr(torch.ops.aten, name, None)) is not None}


def count_flops(fn: nn.Module | Callable[..., Any], *args: Any, backward: bool = False, **kwargs: Any) -> int:
    """FLOPs of ``fn(*args, **kwargs)``, counted by ``FlopCounterMode``.

    ``fn`` is a module or any callable (``count_flops(model, x)``). With ``backward=True`` the
    result must be a tensor; its ``.sum().backward()`` is counted too (forward + backward).
    """
    counter = FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
    with counter:
        if backward:
            fn(*args, **kwargs).sum().backward()
        else:
            with torch.no_grad():
                fn(*args, **kwargs)
    return int(counter.get_total_flops())


class _LiveTensors(TorchDispatchMode):
    """Follows every storage an operator returns; ``peak`` is the most bytes alive at once."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()  # one Python object per storage while it lives
                key = id(storage)
                if key in self._seen or storage.nbytes() == 0:
                    continue
                self._seen.add(key)
                self.live += storage.nbytes()
                self.peak = max(self.peak, self.live)
                weakref.finalize(storage, self._free, key, storage.nbytes())
        return out


def peak_memory(fn: Callable[..., Any], *args: Any, device: torch.device | str | None = None, **kwargs: Any) -> int:
    """Peak bytes of the tensors created while ``fn(*args, **kwargs)`` runs (inputs not counted).

    On CUDA (``device`` a CUDA device) this is ``torch.cuda.max_memory_allocated`` above what was
    allocated before the call; elsewhere the tensors returned by every operator are followed until
    they are freed (see the module docstring).
    """
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn(*args, **kwargs)
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device) - before)
    mode = _LiveTensors()
    with mode:
        result = fn(*args, **kwargs)
    del result
    return int(mode.peak)


def time_call(fn: Callable[[], Any], *, repeat: int = 5, warmup: int = 1,
              device: torch.device | str | None = None) -> float:
    """Median seconds of ``fn()`` over ``repeat`` runs after ``warmup`` runs (CUDA synchronised)."""
    sync = (lambda: torch.cuda.synchronize(device)) if device is not None and torch.device(device).type == "cuda" \
        else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
