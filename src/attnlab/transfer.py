"""Transfer learning: a pre-trained encoder, a new head, a small labelled set (chapter 7, "Transfer").

A network pre-trained on one task (reconstructing hidden patches, or classifying other labels) is
reused for another: its encoder is kept, a new head is attached for the new labels, and then either

* only the head is trained on frozen features: a **linear probe** (:func:`linear_probe`, on
  features computed once by :func:`encoder_features`); or
* the whole network is trained further, **fine-tuned** (:func:`fine_tune`), possibly with its first
  k blocks frozen (:func:`freeze_first_blocks`).

The notes' claim that early layers learn patterns useful to any task and later layers specialise
is measured by a linear probe at every depth (:func:`block_features`, :func:`probe_accuracy`).
The chapter's pre-trained encoders (:func:`pretrained_mae`, :func:`pretrained_colour_vit`) are
trained once and stored by :func:`attnlab.zoo.cached`, keyed by their configuration and code.

The encoders are :class:`attnlab.vit.ViT` s (the MAE's encoder, a ViT trained with labels, or a new
one for training from scratch). :class:`Classifier` puts a head on one, reading the mean of its
patch tokens (or its CLS token).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import attention, mae, training, transformer, vit, zoo
from .data import scenes
from .training import History, train
from .vit import ViT

__all__ = ["Classifier", "freeze_first_blocks", "encoder_features", "block_features", "linear_probe", "fine_tune",
           "probe_accuracy", "pretrained_mae", "pretrained_colour_vit"]


def _pool(tokens: torch.Tensor, encoder: ViT, pool: str) -> torch.Tensor:
    """(B, T, D) tokens after the encoder -> (B, D): the CLS token, or the mean of the patch tokens."""
    if pool == "cls":
        return tokens[:, 0]
    return tokens[:, int(encoder.cls_token is not None):].mean(dim=1)


class Classifier(nn.Module):
    """A (pre-trained) ViT encoder with a new linear head.

    Args:
        encoder: a :class:`~attnlab.vit.ViT` (its own ``head`` is not used); num_classes: Y;
        pool: ``"mean"`` (mean of the patch tokens) or ``"cls"`` (the CLS token).
    """

    def __init__(self, *, encoder: ViT, num_classes: int, pool: str = "mean") -> None:
        super().__init__()
        if pool not in ("mean", "cls"):
            raise ValueError(f"pool must be 'mean' or 'cls', got {pool!r}")
        self.encoder, self.pool = encoder, pool
        self.head = nn.Linear(encoder.norm.weight.numel(), num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, Hi, Wi) -> logits (B, Y)."""
        return self.head(_pool(self.encoder.forward_features(images), self.encoder, self.pool))


def freeze_first_blocks(encoder: ViT, k: int) -> int:
    """Freeze the patch embedding, the CLS token and positions and the first ``k`` blocks of
    ``encoder`` (``k = 0``: nothing frozen; ``k = depth``: every block, the final norm still free).

    Frozen parameters get ``requires_grad = False``; everything else is made trainable. Returns the
    number of parameters left trainable in the encoder.
    """
    if not 0 <= k <= len(encoder.blocks):
        raise ValueError(f"k must be in 0 .. {len(encoder.blocks)}, got {k}")
    for p in encoder.parameters():
        p.requires_grad_(True)
    if k > 0:
        frozen = [encoder.patch_embed, *encoder.blocks[:k]]
        for p in [q for m in frozen for q in m.parameters()] + [encoder.cls_token, encoder.pos_embed]:
            if isinstance(p, nn.Parameter):
                p.requires_grad_(False)
    return sum(p.numel() for p in encoder.parameters() if p.requires_grad)


@torch.no_grad()
def encoder_features(encoder: ViT, images: torch.Tensor, *, pool: str = "mean", batch_size: int = 256) -> torch.Tensor:
    """(n, C, Hi, Wi) -> (n, D) features of a frozen encoder (eval mode, no gradients)."""
    encoder.eval()
    device = next(encoder.parameters()).device
    return torch.cat([_pool(encoder.forward_features(b.to(device)), encoder, pool).cpu()
                      for b in images.split(batch_size)])


@torch.no_grad()
def block_features(encoder: ViT, images: torch.Tensor, *, batch_size: int = 256) -> list[torch.Tensor]:
    """The mean patch token at every depth of a frozen ``encoder``: ``depth + 1`` tensors (n, D), the
    embedded patches (index 0) and the output of each block (index k, the last one after the final
    norm, as :func:`encoder_features`). A linear probe on each tells what a depth makes readable."""
    encoder.eval()
    device = next(encoder.parameters()).device
    first = int(encoder.cls_token is not None)
    per_batch = []
    for b in images.split(batch_size):
        x, outs = encoder.embed(b.to(device)), []
        outs.append(x[:, first:].mean(1).cpu())
        for i, block in enumerate(encoder.blocks):
            x = block(x)
            y = encoder.norm(x) if i == len(encoder.blocks) - 1 else x
            outs.append(y[:, first:].mean(1).cpu())
        per_batch.append(outs)
    return [torch.cat(depth) for depth in zip(*per_batch)]


def linear_probe(features: torch.Tensor, labels: torch.Tensor, *, num_classes: int, steps: int = 300,
                 lr: float = 0.05, weight_decay: float = 1e-3) -> nn.Linear:
    """A linear classifier (logistic regression) on frozen features: full-batch AdamW from zero weights.

    The features are standardised with their own mean and standard deviation, folded into the
    returned layer, so it applies to raw features. features: (n, D); labels: (n,) long.
    """
    features = features.detach()
    mean, std = features.mean(0), features.std(0) + 1e-6
    x = (features - mean) / std
    layer = nn.Linear(features.size(1), num_classes).to(features.device)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    opt = torch.optim.AdamW(layer.parameters(), lr=lr, weight_decay=weight_decay)
    with torch.enable_grad():                                          # also when called under no_grad
        for _ in range(steps):
            loss = F.cross_entropy(layer(x), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():                                              # fold the standardisation into the layer
        layer.weight.div_(std)
        layer.bias.sub_(layer.weight @ mean)
    return layer


def fine_tune(model: Classifier, images: torch.Tensor, labels: torch.Tensor, *, steps: int, generator: torch.Generator,
              batch_size: int = 32, lr: float = 1e-3, frozen_blocks: int = 0, desc: str = "fine-tune") -> History:
    """Train ``model`` (its head and every encoder parameter after the first ``frozen_blocks`` blocks)
    on the labelled set, with random mini-batches drawn from ``generator``, a warm-up of a tenth of
    the steps and a cosine decay (:func:`attnlab.training.train`)."""
    freeze_first_blocks(model.encoder, frozen_blocks)
    trainable = [p for p in model.parameters() if p.requires_grad]
    n = len(labels)

    def _batches():
        idx = torch.randint(n, (min(batch_size, n),), generator=generator)
        return [(images[idx], labels[idx])]

    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.05)
    return train(model, _batches, lambda m, b: F.cross_entropy(m(b[0]), b[1]), steps=steps, optimizer=optimizer,
                 warmup=max(1, steps // 10), desc=desc)


def probe_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                   test_labels: torch.Tensor, *, num_classes: int) -> float:
    """Test accuracy of a :func:`linear_probe` fitted on ``(train_features, train_labels)``."""
    head = linear_probe(train_features, train_labels, num_classes=num_classes)
    with torch.no_grad():
        return float((head(test_features).argmax(1) == test_labels).float().mean())


# ------------------------------------------------------------ chapter 7's pre-trained encoders, cached
def _unlabelled(config: dict) -> scenes.Scenes:
    return scenes.make_scenes(config["n_unlabelled"], generator=torch.Generator().manual_seed(config["data_seed"]),
                              config=scenes.preset(config["scenes"]))


def _build_mae(config: dict) -> mae.MAE:
    torch.manual_seed(config["seed"])
    return mae.MAE(**config["model"])


def _fit_mae(model: mae.MAE, config: dict) -> dict:
    images = _unlabelled(config).images
    batch_gen, mask_gen = torch.Generator().manual_seed(config["seed"] + 1), torch.Generator().manual_seed(config["seed"] + 2)
    history = train(model, lambda: [images[torch.randint(len(images), (config["batch"],), generator=batch_gen)]],
                    lambda m, x: m(x, generator=mask_gen)[0], steps=config["steps"], lr=config["lr"],
                    weight_decay=0.05, warmup=config["steps"] // 10, desc="MAE")
    return dict(step=history.step, loss=history.loss)


def pretrained_mae(config: dict, *, directory=None) -> tuple[mae.MAE, dict]:
    """The MAE of ``config`` pre-trained on ``n_unlabelled`` scenes (no label read), through
    :func:`attnlab.zoo.cached`: trained on the first call, loaded afterwards while the code and the
    configuration are unchanged. ``config``: ``model`` (the :class:`~attnlab.mae.MAE` arguments),
    ``scenes`` (a preset name), ``n_unlabelled``, ``data_seed``, ``seed``, ``steps``, ``batch``, ``lr``."""
    return zoo.cached("ch07_mae", config, _build_mae, _fit_mae, directory=directory,
                      code=[mae, vit, transformer, attention, training, scenes, _unlabelled])


def _build_colour_vit(config: dict) -> ViT:
    torch.manual_seed(config["seed"])
    return ViT(**config["model"], num_classes=len(scenes.COLOURS), positions="sincos")


def _fit_colour_vit(model: ViT, config: dict) -> dict:
    data = _unlabelled(config)
    gen = torch.Generator().manual_seed(config["seed"] + 1)

    def _batches():
        idx = torch.randint(len(data.labels), (config["batch"],), generator=gen)
        return [(data.images[idx], data.colours[idx, 0])]

    history = train(model, _batches, lambda m, b: F.cross_entropy(m(b[0]), b[1]), steps=config["steps"],
                    lr=config["lr"], warmup=config["steps"] // 10, desc="supervised (colour)")
    return dict(step=history.step, loss=history.loss)


def pretrained_colour_vit(config: dict, *, directory=None) -> tuple[ViT, dict]:
    """A ViT pre-trained *with labels* on the colour of the largest object of the same unlabelled
    scenes as :func:`pretrained_mae` (same ``config`` keys; ``model`` holds the ViT's sizes), cached."""
    return zoo.cached("ch07_colour_vit", config, _build_colour_vit, _fit_colour_vit, directory=directory,
                      code=[vit, transformer, attention, training, scenes, _unlabelled])
