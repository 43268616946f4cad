"""Device choice, seeding, profiles and a plain training loop.

Every notebook of the course (book chapters and labs) that trains something reads its budget from
one place, :func:`resolve_profile`:

==========  ==========================================  =============================================
profile     where                                       budget
==========  ==========================================  =============================================
``smoke``   CI, autograding, ``make test``              the whole notebook well under a minute on 2 cores
``cpu``     a student's laptop (default without a GPU)  minutes; enough to see the idea work
``full``    a CUDA GPU (default with one)               reproduces the numbers the book quotes
==========  ==========================================  =============================================

Resolution order: ``ATTNLAB_FORCE_PROFILE`` (set by the grader, so that a submission can never make
grading train a full model), else the notebook's explicit ``profile`` parameter, else the
``ATTNLAB_PROFILE`` environment variable, else ``"full"`` when CUDA is available and ``"cpu"``
otherwise.

Nothing here runs on import: seeding is an explicit call (:func:`seed_everything`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

__all__ = [
    "PROFILES",
    "resolve_profile",
    "by_profile",
    "get_device",
    "seed_everything",
    "PROGRESS_STYLES",
    "progress",
    "History",
    "train",
    "accuracy",
    "warmup_cosine",
    "to_device",
    "record_metric",
]

PROFILES = ("smoke", "cpu", "full")
T = TypeVar("T")


def resolve_profile(profile: str | None = None) -> str:
    """Return the profile a notebook runs in: ``"smoke"``, ``"cpu"`` or ``"full"``.

    Args:
        profile: the notebook's ``profile`` parameter; ``None`` means "decide for me".

    Raises:
        ValueError: if a profile name (from the argument or the environment) is not one of
            :data:`PROFILES`; the message lists the valid names.
    """
    forced = os.environ.get("ATTNLAB_FORCE_PROFILE")
    for source, value in (
        ("ATTNLAB_FORCE_PROFILE", forced),
        ("the notebook's profile parameter", profile),
        ("ATTNLAB_PROFILE", os.environ.get("ATTNLAB_PROFILE")),
    ):
        if value:
            if value not in PROFILES:
                raise ValueError(f"unknown profile {value!r} from {source}; expected one of {PROFILES}")
            return value
    return "full" if torch.cuda.is_available() else "cpu"


def by_profile(profile: str, *, smoke: T, cpu: T, full: T) -> T:
    """Pick the budget of ``profile``: ``by_profile(p, smoke=50, cpu=2_000, full=20_000)``."""
    budgets = {"smoke": smoke, "cpu": cpu, "full": full}
    if profile not in budgets:
        raise ValueError(f"unknown profile {profile!r}; expected one of {PROFILES}")
    return budgets[profile]


def get_device(prefer: str | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA when available, else the CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python's, NumPy's and PyTorch's global generators; return a fresh seeded CPU generator.

    Prefer passing the returned generator (or one made from ``seed``) to data generators: results
    then do not depend on how many random numbers other code drew before.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


PROGRESS_STYLES = ("auto", "text", "off")


class _Summary:
    """The ``text`` style of :func:`progress`: no bar; one line on standard output when the loop ends.

    It keeps what ``set_postfix`` last received (as a tqdm bar shows it), so that the line can end
    with the final loss: ``ViT: 300 steps in 41.2 s, final loss 0.412``.
    """

    def __init__(self, iterable: Iterable[T], desc: str | None, unit: str):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.postfix: dict[str, Any] = {}

    def set_postfix(self, **values: Any) -> None:
        self.postfix.update(values)

    def __iter__(self) -> Iterator[T]:
        start, count = time.perf_counter(), 0
        for item in self.iterable:
            yield item
            count += 1
        seconds = time.perf_counter() - start
        final = "".join(f", final {key} {value}" for key, value in self.postfix.items())
        print(f"{self.desc or 'loop'}: {count} {self.unit} in {seconds:.1f} s{final}", flush=True)


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str | None = None,
             unit: str = "steps") -> Iterable[T]:
    """Wrap ``iterable`` so that a reader sees how a loop goes; iterate over the result.

    ``ATTNLAB_PROGRESS`` chooses how (:data:`PROGRESS_STYLES`):

    - ``auto`` (default): a live tqdm bar, a widget in JupyterLab and text in a terminal (the labs);
    - ``text``: no bar; one line on standard output when the loop has run to its end,
      ``<desc>: <count> <unit> in <seconds> s``, followed by the last values given to the result's
      ``set_postfix`` (``, final loss 0.412``). The book build, the grader and the GPU reports use
      it: a built page shows one line per training run instead of one output block per bar update;
    - ``off``: nothing.

    The result of ``auto`` and ``text`` has tqdm's ``set_postfix(**values)``; test for it with
    ``hasattr`` (``off`` gives a plain iterator).
    """
    style = os.environ.get("ATTNLAB_PROGRESS", "auto")
    if style not in PROGRESS_STYLES:
        raise ValueError(f"unknown ATTNLAB_PROGRESS {style!r}; expected one of {PROGRESS_STYLES}")
    if style == "off":
        return iter(iterable)
    if style == "text":
        return _Summary(iterable, desc, unit)
    from tqdm.auto import tqdm
    return tqdm(iterable, total=total, desc=desc)


@dataclass
class History:
    """What :func:`train` measured: one entry per step, plus evaluations every ``eval_every`` steps."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    eval_step: list[int] = field(default_factory=list)
    eval: list[dict[str, float]] = field(default_factory=list)

    def last(self, key: str) -> float:
        """The latest evaluation value of ``key`` (e.g. ``history.last("accuracy")``)."""
        if not self.eval:
            raise ValueError("no evaluation was recorded; pass evaluate= and eval_every= to train()")
        return self.eval[-1][key]


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor of a batch (a tensor, tuple, named tuple, list, dict or dataclass) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(b, device) for b in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return dataclasses.replace(batch, **{f.name: to_device(getattr(batch, f.name), device)
                                             for f in dataclasses.fields(batch) if f.init})
    return batch


def warmup_cosine(*, steps: int, warmup: int) -> Callable[[int], float]:
    """The learning-rate factor of :func:`train`: linear warm-up over ``warmup`` steps, then a cosine
    decay to 10 % at ``steps`` (a common choice for small models)."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + float(np.cos(np.pi * t)))

    return factor


def _forever(make_batches: Callable[[], Iterable[Any]]) -> Iterator[Any]:
    while True:
        yield from make_batches()


def _evaluate(model: torch.nn.Module, evaluate: Callable, history: History, step: int) -> None:
    model.eval()
    with torch.no_grad():
        history.eval_step.append(step)
        history.eval.append({k: float(v) for k, v in evaluate(model).items()})


def _read_losses(pending: list[torch.Tensor], history: History, bar: Any) -> None:
    """Move the losses of the last steps to ``history`` in one read (one wait for a GPU) and empty ``pending``."""
    history.loss.extend(torch.stack(pending).float().tolist())
    pending.clear()
    if hasattr(bar, "set_postfix"):
        bar.set_postfix(loss=f"{history.loss[-1]:.3f}")


def train(
    model: torch.nn.Module,
    batches: Callable[[], Iterable[Any]],
    loss_fn: Callable[[torch.nn.Module, Any], torch.Tensor],
    *,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: torch.optim.Optimizer | None = None,
    warmup: int = 0,
    clip_grad: float | None = 1.0,
    evaluate: Callable[[torch.nn.Module], dict[str, float]] | None = None,
    eval_every: int = 0,
    desc: str | None = None,
) -> History:
    """A plain training loop: AdamW, optional linear warm-up then cosine decay, a progress bar.

    Args:
        model: the module to train; it is put in ``train()`` mode for steps and ``eval()`` mode
            (under ``torch.no_grad``) for evaluations.
        batches: a function returning an iterable of batches, e.g. ``lambda: loader`` (called again when one runs out).
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``. Each batch is first moved to the
            device of the model's parameters (:func:`to_device`), so a model put on the GPU with
            ``model.to(get_device())`` trains there; ``evaluate`` moves its own data.
        steps: number of optimisation steps.
        evaluate: optional ``evaluate(model) -> {"accuracy": ...}``, run every ``eval_every``
            steps and after the last step.
        desc: what is trained, for :func:`progress` (``None``: the model's class name).

    Returns:
        a :class:`History` with the loss of every step and each evaluation. Losses are read every
        10 steps: on a GPU a read waits for every queued kernel, so one per step idles the GPU.
    """
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    opt = optimizer or torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(steps=steps, warmup=warmup))
    history = History()
    stream = _forever(batches)
    device = next(model.parameters()).device
    bar = progress(range(steps), total=steps, desc=desc or type(model).__name__)
    pending: list[torch.Tensor] = []                       # losses not yet read (see Returns)
    for step in bar:
        model.train()
        loss = loss_fn(model, to_device(next(stream), device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
        opt.step()
        sched.step()
        history.step.append(step)
        pending.append(loss.detach())
        last = step == steps - 1
        if step % 10 == 0 or last:
            _read_losses(pending, history, bar)
        if evaluate is not None and (last or (eval_every and (step + 1) % eval_every == 0)):
            _evaluate(model, evaluate, history, step + 1)
    model.eval()
    return history


@torch.no_grad()
def accuracy(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 256) -> float:
    """The fraction of ``inputs`` whose most likely class is ``labels``: ``model`` in eval mode, run
    on its own device in batches of ``batch_size``."""
    model.eval()
    device = next(model.parameters()).device
    predicted = torch.cat([model(b.to(device)).argmax(-1).cpu() for b in inputs.split(batch_size)])
    return float((predicted == labels.cpu()).float().mean())


def record_metric(name: str, value: float) -> float:
    """Record a metric that the chapter quotes; print it and return it.

    When ``ATTNLAB_METRICS_FILE`` is set (``make gpu-reports`` sets it), the value is also added to
    that JSON file, which becomes ``reports/gpu/<lab>.json``.
    """
    value = float(value)
    print(f"{name} = {value:.4g}")
    path = os.environ.get("ATTNLAB_METRICS_FILE")
    if path:
        metrics = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                metrics = json.load(f)
        metrics[name] = value
        with open(path, "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
    return value
