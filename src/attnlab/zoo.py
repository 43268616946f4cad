"""Trained models shared between the book's pages: trained once, stored, loaded by every page that reads them.

Chapter 4 trains a ViT on the scenes and looks inside it; chapters 6 and 8 compare with the same
model. Training it once per page would cost the book build minutes and could let two chapters
disagree about "the" ViT, so the pages ask this module for it:

* :func:`cached`: build a model, train it once, store its ``state_dict`` and what training
  measured under the cache folder (:func:`cache_dir`), keyed by :func:`cache_key`: a hash of the
  configuration and of the source code of everything that shapes the trained weights (the recipe
  and the package modules it uses). A prose edit of a page retrains nothing; a change of the code or
  of the configuration gives a new key, and the model is trained again;
* :func:`scenes_vit`: chapter 4's recipe (section "What makes a small Transformer train"), a ViT
  with a convolutional tokenizer trained on the ``easy`` scenes, per profile (or on other scenes,
  e.g. :data:`SMALL_OBJECTS`, where chapter 4 measures its rollout a second time);
* :func:`scenes_swin`: chapter 6's Swin, with the same tokenizer, trained the same way;
* :func:`korean_numbers_rnn`: chapter 2's seq2seq LSTMs (without attention, with Bahdanau's or the
  dot score) trained on Korean numbers; chapter 3 races its Transformer against the same two.

The cache is a build product (``_build/.attnlab_models`` of the course, or ``ATTNLAB_MODEL_CACHE``);
deleting it only costs the training again. Two pages executed at once that ask for the same model
wait for each other (a file lock) instead of training it twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import json
import os
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from . import attention, seq2seq, swin, training, transformer, vit
from .attention import masked_softmax
from .data import scenes
from .data import translation
from .training import History, accuracy, by_profile, seed_everything, train

__all__ = ["cache_dir", "cache_key", "cached", "SCENES_VIT", "SMALL_OBJECTS", "scenes_world", "scenes_vit_config",
           "build_scenes_vit", "train_scenes_vit", "scenes_vit", "korean_numbers_rnn", "SCENES_SWIN",
           "scenes_swin_config", "build_scenes_swin", "scenes_swin"]


def cache_dir() -> Path:
    """Where trained models are stored: ``ATTNLAB_MODEL_CACHE``, else ``_build/.attnlab_models`` under
    the course root found from the working directory (a page runs in ``book/``)."""
    if os.environ.get("ATTNLAB_MODEL_CACHE"):
        return Path(os.environ["ATTNLAB_MODEL_CACHE"])
    from .course.notebook import find_course_root

    return find_course_root() / "_build" / ".attnlab_models"


def _source(item: ModuleType | Callable) -> str:
    return inspect.getsource(item)


def cache_key(name: str, config: dict[str, Any], code: Iterable[ModuleType | Callable]) -> str:
    """A hex digest of ``name``, ``config`` (JSON, keys sorted), the source text of ``code`` (modules
    or functions, in order) and torch's version: equal exactly when all four are equal."""
    digest = hashlib.sha256()
    digest.update(f"{name}\0{torch.__version__}".encode())
    digest.update(json.dumps(config, sort_keys=True).encode())
    for item in code:
        digest.update(b"\0" + _source(item).encode())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path`` (where ``fcntl`` exists; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:                                                      # Windows: no lock
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached(name: str, config: dict[str, Any], build: Callable[[dict], nn.Module],
           fit: Callable[[nn.Module, dict], dict[str, Any]], *, code: Iterable[ModuleType | Callable] = (),
           directory: Path | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model ``build(config)`` after ``fit(model, config)``, trained only if not stored yet.

    Args:
        name: the model's name in the cache (a folder name); config: JSON-serialisable settings,
            passed to ``build`` and ``fit``; build: makes the untrained model; fit: trains it in
            place and returns a JSON-serialisable record of what it measured (e.g. the history);
        code: modules and functions whose source shapes the trained weights; ``build`` and ``fit``
            are always included; directory: the cache folder (default :func:`cache_dir`).

    Returns:
        ``(model, record)``: the trained model in eval mode on the CPU, and a dict with ``name``,
        ``key``, ``config``, ``train_seconds`` (of the run that trained it), ``fit`` (what ``fit``
        returned) and ``from_cache`` (whether this call loaded it instead of training).
    """
    key = cache_key(name, config, [build, fit, *code])
    folder = Path(directory or cache_dir()) / f"{name}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    weights, record_file = folder / "model.pt", folder / "record.json"
    model = build(config)
    with _locked(folder / ".lock"):
        if record_file.is_file() and weights.is_file():
            model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
            record = json.loads(record_file.read_text(encoding="utf-8"))
            return model.eval(), {**record, "from_cache": True}
        start = time.perf_counter()
        fitted = fit(model, config)
        record = dict(name=name, key=key, config=config, train_seconds=time.perf_counter() - start, fit=fitted)
        torch.save(model.state_dict(), folder / "model.pt.tmp")
        os.replace(folder / "model.pt.tmp", weights)                         # whole files only
        (folder / "record.json.tmp").write_text(json.dumps(record, indent=1), encoding="utf-8")
        os.replace(folder / "record.json.tmp", record_file)
    return model.eval(), {**record, "from_cache": False}


# ------------------------------------------------------------------ chapter 4's ViT on the scenes
SCENES_VIT = "scenes_vit"


# chapter 4's second world: one shape of 30 to 60 % of the image's side instead of 50 to 90 %
SMALL_OBJECTS = {"preset": "easy", "scale": (0.3, 0.6)}


def scenes_world(spec: str | dict[str, Any]) -> scenes.SceneConfig:
    """The scenes a recipe trains on: a preset's name, or ``{"preset": name, **changes}`` (e.g.
    :data:`SMALL_OBJECTS`; lists, as a configuration read back from JSON has them, become tuples)."""
    if isinstance(spec, str):
        return scenes.preset(spec)
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.items() if k != "preset"}
    return scenes.preset(spec["preset"], **changes)


def scenes_vit_config(profile: str, world: str | dict[str, Any] = "easy") -> dict[str, Any]:
    """Chapter 4's recipe at ``profile``: the model's sizes and its training (see :func:`train_scenes_vit`),
    on the scenes ``world`` (see :func:`scenes_world`)."""
    model = dict(image_size=32, patch_size=4, tokenizer="conv", dim=48, depth=2, num_heads=2, ffn_dim=96)
    budget = by_profile(profile, smoke=dict(steps=30, batch=32, eval_every=10),
                        cpu=dict(steps=400, batch=64, eval_every=50),
                        full=dict(steps=3000, batch=256, eval_every=250, max_scenes=100_000))
    return dict(model=model, **budget, lr=3e-3, weight_decay=0.05, warmup=0.1, label_smoothing=0.0,
                scenes=world, n_val=500, seed=0)


def build_scenes_vit(config: dict[str, Any]) -> vit.ViT:
    """The untrained ViT of ``config`` (6 classes, one per shape of the scenes), seeded by ``config["seed"]``."""
    seed_everything(config["seed"])
    return vit.ViT(num_classes=len(scenes.SHAPES), **config["model"])


def train_scenes_vit(model: vit.ViT, config: dict[str, Any]) -> dict[str, Any]:
    """Train ``model`` on fresh scenes, ``config["batch"]`` per step, AdamW with warm-up and cosine
    decay; every ``eval_every`` steps, the accuracy on ``n_val`` validation scenes (not the pages'
    test scenes; ``max_scenes``, if given, caps the scenes made, which are then seen again: 3000 x 256
    new scenes would take 9 GB). Returns the :class:`~attnlab.training.History` as a dict."""
    world = scenes_world(config["scenes"])
    n_train = min(config["steps"] * config["batch"], config.get("max_scenes") or float("inf"))
    data = scenes.make_scenes(n_train, generator=torch.Generator().manual_seed(config["seed"]), config=world)
    val = scenes.make_scenes(config["n_val"], generator=torch.Generator().manual_seed(config["seed"] + 2),
                             config=world)
    batches = list(zip(data.images.split(config["batch"]), data.labels.split(config["batch"])))

    def loss(m, batch):
        return F.cross_entropy(m(batch[0]), batch[1], label_smoothing=config["label_smoothing"])

    history = train(model, lambda: batches, loss, steps=config["steps"], lr=config["lr"],
                    weight_decay=config["weight_decay"], warmup=int(config["warmup"] * config["steps"]),
                    evaluate=lambda m: {"accuracy": accuracy(m, val.images, val.labels)},
                    eval_every=config["eval_every"])
    return dict(step=history.step, loss=history.loss, eval_step=history.eval_step, eval=history.eval)


def scenes_vit(profile: str, *, world: str | dict[str, Any] = "easy",
               directory: Path | None = None) -> tuple[vit.ViT, dict[str, Any], History]:
    """Chapter 4's trained ViT at ``profile`` on ``world`` (trained on the first call, then loaded).

    Returns:
        ``(model, record, history)``: the model in eval mode, :func:`cached`'s record, and the
        training's :class:`~attnlab.training.History` (loss per step, validation accuracy).
    """
    model, record = cached(SCENES_VIT, scenes_vit_config(profile, world), build_scenes_vit, train_scenes_vit,
                           code=[vit, transformer, attention, training, scenes], directory=directory)
    return model, record, History(**record["fit"])


# ------------------------------------------------------------------ chapter 2's LSTMs on Korean numbers
KOREAN_NUMBERS_RNN = "korean_numbers_rnn"


def _build_rnn(config: dict[str, Any]) -> seq2seq.Seq2Seq:
    src_tok, tgt_tok = translation.korean_tokenizers()
    return seq2seq.Seq2Seq(src_vocab=len(src_tok), tgt_vocab=len(tgt_tok), embed_dim=config["embed_dim"],
                           dim=config["budget"]["dim"], attention=config["attention"])


def _fit_rnn(model: seq2seq.Seq2Seq, config: dict[str, Any]) -> dict[str, Any]:
    """Train as :func:`attnlab.seq2seq.korean_numbers_experiment` does (its seeded start, data and test
    sets), into ``model``; return the history, exact match per number of digits and the seconds."""
    budget = seq2seq.KoreanNumbersBudget(**config["budget"])
    run = seq2seq.korean_numbers_experiment(lambda: _build_rnn(config), budget, lr=config["lr"], seed=config["seed"],
                                            desc=f"attention={config['attention']}")
    model.load_state_dict(run.model.state_dict())
    h = run.history
    return dict(history=dict(step=h.step, loss=h.loss, eval_step=h.eval_step, eval=h.eval),
                accuracy={str(d): a for d, a in run.accuracy.items()}, seconds=run.seconds)


def korean_numbers_rnn(attention: str | None, profile: str, *, directory: Path | None = None) -> seq2seq.TranslationRun:
    """Chapter 2's seq2seq LSTM (``attention``: ``None``, ``"additive"`` or ``"dot"``) trained on Korean
    numbers at ``profile`` (learning rate 1e-2, seed 0), trained on the first call, then loaded.

    Returns:
        a :class:`~attnlab.seq2seq.TranslationRun` (model in eval mode on the CPU; ``seconds`` is the
        training time of the run that trained it).
    """
    budget = seq2seq.korean_numbers_budget(profile)
    config = dict(attention=attention, budget=dataclasses.asdict(budget), embed_dim=16, lr=1e-2, seed=0)
    model, record = cached(KOREAN_NUMBERS_RNN, config, _build_rnn, _fit_rnn,
                           code=[seq2seq, masked_softmax, training, translation], directory=directory)
    fit = record["fit"]
    return seq2seq.TranslationRun(model, History(**fit["history"]), {int(d): a for d, a in fit["accuracy"].items()},
                                  fit["seconds"])


# ------------------------------------------------------------------ chapter 6's Swin on the scenes
SCENES_SWIN = "scenes_swin"


def scenes_swin_config(profile: str) -> dict[str, Any]:
    """Chapter 6's recipe at ``profile``: chapter 4's data, steps, batch and schedule
    (:func:`scenes_vit_config`) for a Swin with chapter 4's convolutional tokenizer,
    C = 32, one block in each of two stages, windows of M = 4 (section "Swin against
    ViT on the scenes")."""
    model = dict(image_size=32, patch_size=4, tokenizer="conv", dim=32, depths=[1, 1],
                 num_heads=[2, 4], window_size=4)
    return {**scenes_vit_config(profile), "model": model}


def build_scenes_swin(config: dict[str, Any]) -> swin.SwinTransformer:
    """The untrained Swin of ``config`` (6 classes), seeded by ``config["seed"]``."""
    seed_everything(config["seed"])
    sizes = {**config["model"], "depths": tuple(config["model"]["depths"]),
             "num_heads": tuple(config["model"]["num_heads"])}
    return swin.SwinTransformer(num_classes=len(scenes.SHAPES), **sizes)


def scenes_swin(profile: str, *, directory: Path | None = None) -> tuple[swin.SwinTransformer, dict[str, Any], History]:
    """Chapter 6's trained Swin at ``profile``, trained by :func:`train_scenes_vit` as chapter 4's ViT is
    (on the first call, then loaded). Returns ``(model, record, history)`` as :func:`scenes_vit`."""
    model, record = cached(SCENES_SWIN, scenes_swin_config(profile), build_scenes_swin, train_scenes_vit,
                           code=[swin, vit, transformer, attention, training, scenes], directory=directory)
    return model, record, History(**record["fit"])
