"""What makes Transformers work (chapter 8): the notes' claims about Transformers, as experiments.

The notes (section 11.6) state the properties of Transformers as claims; each is put to an
experiment here that returns its numbers, small enough to run while the book builds:

* **long-range dependency** (장거리 의존): :func:`recall_task` is associative recall (key-value
  pairs, then a query key; the answer is the value paired with it, found by content at a chosen
  distance); :class:`RecallModel` is an LSTM, a causal CNN or a Transformer of similar size;
  :func:`long_range_experiment` gives accuracy against the distance;
* **inductive bias** (귀납 편향): :func:`translation_configs` draws the scenes with every object in
  the left half (training) or the right half (testing: positions never seen);
  :func:`inductive_bias_experiment` trains a CNN (:class:`attnlab.cnn.ScalableCNN`) and a
  :class:`attnlab.vit.ViT` of similar size on training sets of several sizes, without and with
  augmentation (:func:`augment_scenes`, DeiT's lesson), on :func:`standardise`'d scenes, and returns
  accuracy and loss on both halves;
* **scalability** (확장성): :func:`scaling_experiment` trains ViTs of several widths on one data
  budget; :func:`non_embedding_parameters` counts Kaplan et al.'s N; :func:`fit_power_law` fits
  ``loss = a * x ** -alpha`` on a log-log scale;
* **explainability** (설명 가능): :func:`rollout_maps` (chapter 4's attention rollout, read at the
  CLS token) against :func:`gradient_saliency` pooled to patches (:func:`pool_to_patches`), compared
  by :func:`rank_correlation`, and on the object against a baseline (:func:`object_share`);
  :func:`randomise_top` and :func:`sanity_check` run the model-
  randomisation test of Adebayo et al. (2018), "Sanity checks for saliency maps";
* **quadratic memory**: :func:`attention_memory` measures (with :func:`attnlab.measure.peak_memory`,
  on the ``meta`` device) the memory of global attention and of attention inside M x M windows, as
  Swin (chapter 6) computes it.

Simplifications: the Transformers are small and trained for a few hundred steps on one CPU thread
at the ``cpu`` profile, so every result is a statement about this scale only (the book says which
claims cannot be decided at it); in the recall task each position holds a whole key-value pair
(Ba et al.'s associative recall, 2016, gives keys and values a token each, which needs two layers
working together and far more training); the windows here are cut by a plain reshape, without Swin's shift
and without its relative position bias (chapter 6 has both); the randomisation re-draws weights
from N(0, 0.02) (LayerNorms: weight 1, bias 0) rather than from each layer's own initialiser.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention
from .cnn import ScalableCNN
from .data import scenes as sc
from .measure import count_parameters, peak_memory
from .training import train
from .transformer import Encoder, LayerNorm
from .vit import ViT, attention_rollout

__all__ = ["recall_task", "RecallModel", "fit_classifier", "accuracy_and_loss", "long_range_experiment",
           "translation_configs", "make_cnn", "make_vit", "standardise", "augment_scenes",
           "inductive_bias_experiment", "non_embedding_parameters", "scaling_experiment", "fit_power_law",
           "rollout_maps", "gradient_saliency", "pool_to_patches", "rank_correlation", "object_share",
           "randomise_top", "sanity_check", "attention_memory"]


# ------------------------------------------------------------------------- long-range dependency
def recall_task(n: int, *, pairs: int, num_keys: int, num_values: int, generator: torch.Generator,
                distance: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Associative recall: ``pairs`` key-value pairs, then a query key; the answer is the value paired
    with the query's key, found by content at ``distance`` positions before the query.

    Each position holds one pair (a key token and a value token); the keys of a sequence are distinct,
    values may repeat. The last position holds the query: its key and the blank value ``num_values``.
    The pair asked for stands ``distance`` places before the query (1 = the pair just before it), at a
    random distance in ``[1, pairs]`` for each sequence when ``distance`` is ``None``.

    Returns:
        tokens (n, T, 2) int64 with T = pairs + 1: ``[..., 0]`` keys in [0, num_keys), ``[..., 1]``
        values in [0, num_values] (num_values = blank, at the query only); labels (n,) in [0, num_values).
    """
    if num_keys < pairs:
        raise ValueError(f"need num_keys >= pairs for distinct keys, got {num_keys} < {pairs}")
    if distance is not None and not 1 <= distance <= pairs:
        raise ValueError(f"distance must be in [1, pairs], got {distance} for {pairs} pairs")
    keys = torch.rand(n, num_keys, generator=generator).argsort(dim=-1)[:, :pairs]      # (n, P) distinct
    values = torch.randint(num_values, (n, pairs), generator=generator)                # (n, P)
    if distance is None:
        distance_ = torch.randint(1, pairs + 1, (n,), generator=generator)             # (n,)
    else:
        distance_ = torch.full((n,), distance)
    where = (pairs - distance_)[:, None]                                               # (n, 1) the pair asked for
    query = torch.stack([keys.gather(1, where), torch.full_like(where, num_values)], dim=-1)  # (n, 1, 2)
    tokens = torch.cat([torch.stack([keys, values], dim=-1), query], dim=1)            # (n, P + 1, 2)
    return tokens, values.gather(1, where)[:, 0]


class RecallModel(nn.Module):
    """Reads a sequence of key-value pairs and answers at its last position, with one of three bodies.

    Each position's input is the sum of its key's and its value's embeddings.

    * ``"lstm"``: ``torch.nn.LSTM`` (one layer); every pair must be kept in its state until the query;
    * ``"cnn"``: ``depth`` causal 1-D convolutions of kernel ``kernel`` with residual connections:
      the last position sees ``depth * (kernel - 1)`` pairs back, no further;
    * ``"transformer"``: learned positions and a pre-norm :class:`attnlab.transformer.Encoder` of
      ``depth`` layers: the query can attend to the pair whose key matches its own, wherever it is.

    Args:
        kind: ``"lstm"``, ``"cnn"`` or ``"transformer"``; num_keys: K; num_values: V (the value
            vocabulary has V + 1 tokens: the blank at the query); dim: D; depth: layers (CNN,
            Transformer); max_len: T (positions of the Transformer); kernel: the CNN's; num_heads: H.
    """

    def __init__(self, *, kind: str, num_keys: int, num_values: int, dim: int, depth: int = 2,
                 max_len: int = 64, kernel: int = 3, num_heads: int = 2) -> None:
        super().__init__()
        if kind not in ("lstm", "cnn", "transformer"):
            raise ValueError(f"kind must be 'lstm', 'cnn' or 'transformer', got {kind!r}")
        self.kind, self.kernel = kind, kernel
        self.key_embed = nn.Embedding(num_keys, dim)
        self.value_embed = nn.Embedding(num_values + 1, dim)
        if kind == "lstm":
            self.body = nn.LSTM(dim, dim, batch_first=True)
        elif kind == "cnn":
            self.body = nn.ModuleList([nn.Conv1d(dim, dim, kernel) for _ in range(depth)])
        else:
            self.pos_embed = nn.Parameter(torch.randn(1, max_len, dim) * 0.02)
            self.body = Encoder(num_layers=depth, dim=dim, num_heads=num_heads, ffn_dim=2 * dim, dropout=0.0,
                                norm_first=True)
        self.head = nn.Linear(dim, num_values)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, T, 2) keys and values -> logits (B, V), read at the last one."""
        x = self.key_embed(tokens[..., 0]) + self.value_embed(tokens[..., 1])  # (B, T, D)
        if self.kind == "lstm":
            x = self.body(x)[0]                                         # (B, T, D)
        elif self.kind == "cnn":
            x = x.transpose(1, 2)                                       # (B, D, T)
            for conv in self.body:                                 # causal: pad left only
                x = x + F.relu(conv(F.pad(x, (self.kernel - 1, 0))))    # (B, D, T)
            x = x.transpose(1, 2)                                       # (B, T, D)
        else:
            x = self.body(x + self.pos_embed[:, :x.size(1)])            # (B, T, D)
        return self.head(x[:, -1])                                      # (B, V)


def fit_classifier(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, steps: int, batch_size: int,
                   generator: torch.Generator, lr: float = 3e-3, augment: Callable | None = None,
                   desc: str = "train") -> nn.Module:
    """Train ``model`` with cross-entropy on ``(inputs, labels)`` (reshuffled every epoch, using
    ``generator``) for ``steps`` steps of AdamW with :func:`attnlab.training.train`; returns it in eval mode.

    ``augment(batch, generator) -> batch``, if given, transforms each batch of inputs anew every
    time it is drawn (e.g. :func:`augment_scenes`)."""
    def _batches() -> list:
        order = torch.randperm(len(labels), generator=generator)            # a new order every epoch
        return [(inputs[i] if augment is None else augment(inputs[i], generator), labels[i])
                for i in order.split(batch_size)]

    train(model, _batches, lambda m, b: F.cross_entropy(m(b[0]), b[1]), steps=steps, lr=lr, weight_decay=0.01,
          warmup=max(1, steps // 10), desc=desc)
    return model.eval()


@torch.no_grad()
def accuracy_and_loss(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(accuracy, mean cross-entropy in nats) of ``model`` on a test set (moved to the model's device)."""
    device = next(model.parameters()).device
    logits, labels = model.eval()(inputs.to(device)), labels.to(device)
    return (logits.argmax(-1) == labels).float().mean().item(), F.cross_entropy(logits, labels).item()


def long_range_experiment(*, distances: Sequence[int], pairs: int, num_keys: int, num_values: int,
                          models: dict[str, dict], steps: int, batch_size: int, n_train: int, n_test: int,
                          generator: torch.Generator, lr: float = 3e-3, device: str = "cpu") -> dict:
    """Accuracy of associative recall (:func:`recall_task`) against the distance of the pair asked for.

    One model per kind, trained on ``n_train`` sequences whose pair stands at a random distance, then
    tested on ``n_test`` new sequences at each distance of ``distances``.

    Args:
        models: ``{kind: keyword arguments of RecallModel}``, e.g. ``{"cnn": {"dim": 40, "depth": 4}}``.
        device: where the models train (data are made on the CPU and moved batch by batch); the
            other experiments take it too.

    Returns:
        ``{"distances": [...], "accuracy": {kind: [one per distance]}, "parameters": {kind: count}}``.
    """
    task = dict(pairs=pairs, num_keys=num_keys, num_values=num_values, generator=generator)
    x, y = recall_task(n_train, **task)
    tests = [recall_task(n_test, distance=d, **task) for d in distances]
    accuracy, parameters = {}, {}
    for kind, sizes in models.items():
        model = RecallModel(kind=kind, num_keys=num_keys, num_values=num_values, max_len=pairs + 1,
                            **sizes).to(device)
        parameters[kind] = count_parameters(model)
        fit_classifier(model, x, y, steps=steps, batch_size=batch_size, generator=generator, lr=lr, desc=kind)
        accuracy[kind] = [accuracy_and_loss(model, xt, yt)[0] for xt, yt in tests]
    return {"distances": list(distances), "accuracy": accuracy, "parameters": parameters}


# --------------------------------------------------------------------------------- inductive bias
def translation_configs(*, size: int = 32, name: str = "easy") -> tuple[sc.SceneConfig, sc.SceneConfig]:
    """Two scene worlds that differ only in where the objects are: (left half, right half).

    Objects are confined with :class:`attnlab.data.scenes.SceneConfig`'s ``region``; their side is
    30-50 % of the image, so that one fits in a half.
    """
    left = sc.preset(name, size=size, region=(0.0, 0.0, 0.5, 1.0), scale=(0.3, 0.5))
    right = sc.preset(name, size=size, region=(0.5, 0.0, 1.0, 1.0), scale=(0.3, 0.5))
    return left, right


def make_cnn(*, width_mult: float = 0.5) -> ScalableCNN:
    """The CNN of the comparison: chapter 0's :class:`ScalableCNN` (3 stages, global average pooling)."""
    return ScalableCNN(width_mult=width_mult, num_classes=len(sc.SHAPES), base_channels=(16, 32, 64))


def make_vit(*, dim: int = 32, depth: int = 2, image_size: int = 32, patch_size: int = 8) -> ViT:
    """The ViT of the comparison and of the scaling sweep: learned positions, a CLS token, 2 heads, F = 2 D."""
    return ViT(image_size=image_size, patch_size=patch_size, num_classes=len(sc.SHAPES), dim=dim, depth=depth,
               num_heads=2, ffn_dim=2 * dim)


def standardise(images: torch.Tensor, *, scale: float = 0.3) -> torch.Tensor:
    """Each image minus its background grey, divided by ``scale``: what both models of the
    comparison read.

    The scenes' background grey changes from image to image (:data:`attnlab.data.scenes.GREY_RANGE`).
    The CNN's batch norms take such offsets out, but a ViT's linear patch embedding receives them in
    every token, and at this budget it barely trains on raw scenes (the book measures it); the
    background, taken as each channel's median (it covers most of a scene), becomes 0.

    Args:
        images: (B, C, Hi, Wi) floats. Returns: (B, C, Hi, Wi), background 0.
    """
    grey = images.flatten(2).median(dim=-1).values[:, :, None, None]        # (B, C, 1, 1)
    return (images - grey) / scale


def augment_scenes(images: torch.Tensor, generator: torch.Generator, *, shift: int = 1,
                   jitter: float = 0.1) -> torch.Tensor:
    """Random shifts, vertical flips and colour jitter for :func:`standardise`'d scenes (DeiT's
    lesson at this scale).

    * **shift** (a random crop of the image padded by ``shift`` pixels of background): each image
      moves by up to ``shift`` pixels across and down;
    * **vertical flip** with probability 1/2: every shape of :data:`attnlab.data.scenes.SHAPES` stays
      the same shape upside down, and an object in the left half stays there (a horizontal flip would
      carry it into the right half, the positions :func:`translation_configs` keeps for testing);
    * **colour jitter**: each image's contrast scaled by a factor in ``[1 - jitter, 1 + jitter]`` and
      its channels mixed ``1 - jitter / 2 : jitter / 2`` with a random permutation of them (the class
      is the shape: colour is a nuisance).

    Args:
        images: (B, C, Hi, Wi), background 0 (:func:`standardise`); generator: draws every choice.

    Returns:
        (B, C, Hi, Wi).
    """
    B, C, H, W = images.shape
    padded = F.pad(images, (shift,) * 4)                                    # (B, C, H + 2s, W + 2s)
    dx, dy = torch.randint(2 * shift + 1, (2, B), generator=generator).tolist()
    out = torch.stack([padded[b, :, dy[b]:dy[b] + H, dx[b]:dx[b] + W] for b in range(B)])   # (B, C, H, W)
    flip = torch.rand(B, generator=generator) < 0.5
    out = torch.where(flip[:, None, None, None], out.flip(2), out)          # upside down
    contrast = 1 + jitter * (2 * torch.rand(B, 1, 1, 1, generator=generator) - 1)   # (B, 1, 1, 1)
    order = torch.rand(B, C, generator=generator).argsort(dim=-1)           # (B, C) a channel order each
    mixed = out.gather(1, order[:, :, None, None].expand_as(out))          # (B, C, H, W)
    return ((1 - jitter / 2) * out + jitter / 2 * mixed) * contrast


def inductive_bias_experiment(*, sizes: Sequence[int], train_set: sc.Scenes, test_seen: sc.Scenes,
                              test_unseen: sc.Scenes, steps: int, batch_size: int, generator: torch.Generator,
                              augment: Sequence[bool] = (False, True), vit_dim: int = 32, patch_size: int = 8,
                              cnn_width: float = 0.5, lr: float = 1e-3, device: str = "cpu") -> dict:
    """A CNN and a ViT trained on the first ``n`` scenes of ``train_set`` for each ``n`` in ``sizes``
    (the same ``steps`` each: small sets are seen many times), without and with :func:`augment_scenes`
    (``augment``), tested on ``test_seen`` (positions as in training) and ``test_unseen`` (positions
    never seen in training; see :func:`translation_configs`).

    Returns:
        ``{"sizes", "parameters": {model: count}, "accuracy": {run: [...]}, "shifted": {run: [...]},
        "loss": {run: [...]}, "models": {run: the model trained on the largest set}}``, a run being
        ``"CNN"``, ``"ViT"``, ``"CNN + aug."`` or ``"ViT + aug."``.
    """
    out = {"sizes": list(sizes), "parameters": {}, "accuracy": {}, "shifted": {}, "loss": {}, "models": {}}
    builders = {"CNN": lambda: make_cnn(width_mult=cnn_width),
                "ViT": lambda: make_vit(dim=vit_dim, patch_size=patch_size, image_size=train_set.images.shape[-1])}
    for name, build in builders.items():
        for aug in augment:
            run = f"{name} + aug." if aug else name
            for key in ("accuracy", "shifted", "loss"):
                out[key][run] = []
            for n in sizes:
                model = build().to(device)
                fit_classifier(model, train_set.images[:n], train_set.labels[:n], steps=steps,
                               batch_size=batch_size, generator=generator, lr=lr,
                               augment=augment_scenes if aug else None, desc=f"{run} n={n}")
                acc, loss = accuracy_and_loss(model, test_seen.images, test_seen.labels)
                out["accuracy"][run].append(acc)
                out["loss"][run].append(loss)
                out["shifted"][run].append(accuracy_and_loss(model, test_unseen.images, test_unseen.labels)[0])
            out["parameters"][name], out["models"][run] = count_parameters(model), model
    return out


# ----------------------------------------------------------------------------------- scalability
def non_embedding_parameters(model: ViT) -> int:
    """Kaplan et al.'s N for a ViT: the trained parameters less the embeddings (the patch embedding,
    the position embeddings and the CLS token); the blocks, the final norm and the head remain."""
    embedding = [model.patch_embed] + [p for p in (model.cls_token, model.pos_embed) if isinstance(p, nn.Parameter)]
    return count_parameters(model) - sum(count_parameters(e) if isinstance(e, nn.Module) else e.numel()
                                         for e in embedding)


def scaling_experiment(*, dims: Sequence[int], images: torch.Tensor, labels: torch.Tensor,
                       test_images: torch.Tensor, test_labels: torch.Tensor, steps: int, batch_size: int,
                       generator: torch.Generator, depth: int = 2, patch_size: int = 8, lr: float = 1e-3,
                       device: str = "cpu") -> dict:
    """ViTs of widths ``dims`` (same depth), each trained on the same data for the same steps.

    Returns:
        ``{"dims", "parameters": [all trained], "non_embedding": [:func:`non_embedding_parameters`],
        "loss": [test cross-entropy], "accuracy": [...]}``.
    """
    out = {"dims": list(dims), "parameters": [], "non_embedding": [], "loss": [], "accuracy": []}
    for dim in dims:
        model = make_vit(dim=dim, depth=depth, image_size=images.shape[-1], patch_size=patch_size).to(device)
        fit_classifier(model, images, labels, steps=steps, batch_size=batch_size, generator=generator, lr=lr,
                       desc=f"ViT D={dim}")
        acc, loss = accuracy_and_loss(model, test_images, test_labels)
        out["parameters"].append(count_parameters(model))
        out["non_embedding"].append(non_embedding_parameters(model))
        out["loss"].append(loss)
        out["accuracy"].append(acc)
    return out


def fit_power_law(x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Least-squares fit of ``y = a * x ** (-alpha)``: a straight line on a log-log scale.

    ``log y = log a - alpha log x``: the slope of the line is ``-alpha``, its intercept
    ``log a``.

    Args:
        x, y: (n,) positive floats, n >= 2 (e.g. parameter counts and test losses).

    Returns:
        ``(a, alpha)`` as Python floats; alpha > 0 when y falls as x grows.
    """
    lx, ly = torch.log(x.double()), torch.log(y.double())                    # (n,), (n,)
    slope = ((lx - lx.mean()) * (ly - ly.mean())).sum() / ((lx - lx.mean()) ** 2).sum()
    intercept = ly.mean() - slope * lx.mean()
    return math.exp(intercept.item()), -slope.item()


# -------------------------------------------------------------------------------- explainability
@torch.no_grad()
def rollout_maps(model: ViT, images: torch.Tensor) -> torch.Tensor:
    """(B, C, Hi, Wi) -> (B, N): what the CLS token is made of, by attention rollout (chapter 4), over
    the patches (the CLS token's own share left out), each row renormalised to sum to one."""
    _, weights = model.forward_features(images.to(model.pos_embed.device), need_weights=True)
    cls_row = attention_rollout(weights)[:, 0, 1:]                           # (B, N)
    return cls_row / cls_row.sum(dim=-1, keepdim=True)


def gradient_saliency(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Gradient saliency (Simonyan et al., 2014): |d score / d pixel|, largest over the colour channels.

    Args:
        images: (B, C, Hi, Wi); labels: (B,) the class whose score is differentiated (default: the
            predicted class).

    Returns:
        (B, Hi, Wi) float, not normalised.
    """
    x = images.detach().to(next(model.parameters()).device).clone().requires_grad_(True)
    logits = model.eval()(x)                                                 # (B, Y)
    labels = logits.argmax(-1) if labels is None else labels
    logits.gather(1, labels.to(x.device)[:, None]).sum().backward()
    return x.grad.abs().amax(dim=1)                                          # (B, Hi, Wi)


def pool_to_patches(maps: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, Hi, Wi) pixel map -> (B, N): the sum over each P x P patch (row-major, as ViT's tokens),
    each row renormalised to sum to one."""
    pooled = F.avg_pool2d(maps[:, None], patch_size).flatten(1)              # (B, Hp * Wp)
    return pooled / pooled.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of each row of ``a`` with the same row of ``b``.

    The Pearson correlation of the ranks (0 for the smallest value, N - 1 for the largest); rows
    are assumed to have no ties.

    Args:
        a, b: (B, N) floats, N >= 2.

    Returns:
        (B,) float64 in [-1, 1].
    """
    ra = a.argsort(dim=-1).argsort(dim=-1).double()                          # (B, N) rank of each entry
    rb = b.argsort(dim=-1).argsort(dim=-1).double()
    ra, rb = ra - ra.mean(-1, keepdim=True), rb - rb.mean(-1, keepdim=True)
    return (ra * rb).sum(-1) / (ra.norm(dim=-1) * rb.norm(dim=-1))


def object_share(maps: torch.Tensor, on_object: torch.Tensor, possible: torch.Tensor) -> dict[str, torch.Tensor]:
    """How much of each map lies on the object, against what a map that knew only where objects may
    be would put there.

    A map spread evenly over the patches where objects can stand (``possible``) puts on the object
    the object's share of those patches: that is the baseline, per image. With objects anywhere it
    is the object's share of the image; with objects only in the left half (the inductive-bias
    experiment's training worlds) it is twice that, and a map that merely learned "the left half"
    reaches it.

    Args:
        maps: (B, N) non-negative, each row summing to one; on_object: (B, N) bool, the patches the
            object touches; possible: (N,) or (B, N) bool, the patches where an object may be.

    Returns:
        ``{"share": (B,) mass on the object, "baseline": (B,) object patches / possible patches,
        "in_region": (B,) mass on the possible patches}``.
    """
    possible = possible.expand_as(on_object)                                  # (B, N)
    return {"share": (maps * on_object).sum(-1),
            "baseline": on_object.sum(-1) / (on_object | possible).sum(-1),
            "in_region": (maps * possible).sum(-1)}


def _stages(model: ViT) -> list[list[nn.Module | nn.Parameter]]:
    """The ViT from the top down: [head, final norm and pooling], the blocks last first, [embeddings]."""
    bottom = [model.patch_embed] + [p for p in (model.cls_token, model.pos_embed) if isinstance(p, nn.Parameter)]
    top = [m for m in (model.head, model.norm, getattr(model, "pool_score", None)) if m is not None]
    return [top, *[[b] for b in reversed(model.blocks)], bottom]


def randomise_top(model: ViT, stages: int, *, generator: torch.Generator) -> ViT:
    """A copy of ``model`` whose top ``stages`` stages are re-drawn at random (Adebayo
    et al.'s cascading randomisation): stage 1 is the head and the final norm, then each
    block from the last, then the embeddings. Weights and biases are drawn from
    N(0, 0.02); LayerNorms reset to 1 and 0."""
    clone = copy.deepcopy(model)
    with torch.no_grad():
        for stage in _stages(clone)[:stages]:
            for item in stage:
                if isinstance(item, nn.Parameter):
                    # drawn on the CPU, then copied to the model's device
                    item.copy_(torch.randn(item.shape, generator=generator) * 0.02)
                    continue
                for module in item.modules():
                    norm = isinstance(module, (nn.LayerNorm, LayerNorm))
                    for name, p in module.named_parameters(recurse=False):
                        if norm:
                            p.fill_(1.0 if name == "weight" else 0.0)
                        else:
                            p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
    return clone.eval()


def sanity_check(model: ViT, images: torch.Tensor, *, generator: torch.Generator) -> dict:
    """The model-randomisation test of Adebayo et al. (2018) for rollout and gradient saliency.

    For k = 0, 1, ... stages randomised from the top (:func:`randomise_top`), the maps of each method
    on the randomised model are compared with its maps on the trained model by
    :func:`rank_correlation` (mean over the images). Saliency is taken for the class each model
    predicts (the trained model's for its maps, each randomised copy's for its own), as in Adebayo
    et al.'s code. A map that explains the trained model should change when the weights it explains
    are destroyed: correlations near 1 mean the method failed the check.

    Returns:
        ``{"stages": [0, 1, ...], "rollout": [...], "saliency": [...]}`` (1.0 at k = 0).
    """
    patch = model.patch_embed.patch_size

    def maps(m: ViT) -> dict[str, torch.Tensor]:
        return {"rollout": rollout_maps(m, images),
                "saliency": pool_to_patches(gradient_saliency(m, images), patch)}   # predicted class

    trained = maps(model)
    out = {"stages": [], "rollout": [], "saliency": []}
    for k in range(len(_stages(model)) + 1):
        random = maps(randomise_top(model, k, generator=generator))
        out["stages"].append(k)
        for name in ("rollout", "saliency"):
            out[name].append(rank_correlation(trained[name], random[name]).mean().item())
    return out


# -------------------------------------------------------------------------------- quadratic memory
def attention_memory(grid_sizes: Sequence[int], *, dim: int, num_heads: int, window: int,
                     device: str = "meta") -> dict:
    """Peak memory of one self-attention layer over a Hp x Hp grid of tokens, global and
    windowed.

    Global: every token attends to all N = Hp^2 tokens (N^2 weights per head).
    Windowed: the grid is cut into (Hp / M)^2 windows of M x M tokens by a reshape, and
    each window attends inside itself (N M^2 weights per head), as Swin's W-MSA
    (chapter 6) without the shift. Both use the teaching path
    (:class:`attnlab.attention.MultiHeadAttention` with ``need_weights=True``, which keeps
    the weights) and are measured by :func:`attnlab.measure.peak_memory`; on the ``meta``
    device nothing is allocated, so grids far beyond this machine's memory can be
    measured.

    Returns:
        ``{"tokens": [N...], "global": [bytes...], "windowed": [bytes...]}``.
    """
    attn = MultiHeadAttention(dim=dim, num_heads=num_heads).to(device)
    out = {"tokens": [], "global": [], "windowed": []}
    for side in grid_sizes:
        if side % window:
            raise ValueError(f"grid side {side} is not a multiple of the window {window}")
        x = torch.empty(1, side, side, dim, device=device)              # (1, Hp, Wp, D)
        tokens = x.reshape(1, side * side, dim)                         # (1, N, D)
        windows = (x.reshape(1, side // window, window, side // window, window, dim)
                   .transpose(2, 3).reshape(-1, window * window, dim))  # (nW, M * M, D)
        out["tokens"].append(side * side)
        out["global"].append(peak_memory(lambda: attn(tokens, need_weights=True)))
        out["windowed"].append(peak_memory(lambda: attn(windows, need_weights=True)))
    return out
