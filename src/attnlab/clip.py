"""CLIP: images and texts in one space, learned by contrast (chapter 7, "CLIP").

Radford et al. (2021), "Learning transferable visual models from natural language supervision".
Two towers, trained together on (image, caption) pairs: in a batch of B pairs, each image must pick
out its own caption among the B captions, and each caption its own image. Bottom-up:

* :func:`contrastive_logits` and :func:`clip_loss`: cosine similarities of every image with every
  text, times a learned temperature ``exp(logit_scale)``; the **symmetric InfoNCE** loss is the mean
  of the cross-entropy over each row (image -> texts) and over each column (text -> images), with
  the matching pair on the diagonal as the target;
* :class:`TextEncoder`: chapter 3's :class:`~attnlab.transformer.TokenEncoder` (pre-norm, learned
  positions) read at the ``<EOS>`` token, as CLIP reads its end-of-text token;
* :class:`CLIP`: a :class:`attnlab.vit.ViT` (its CLS feature) and the text encoder, each followed
  by a linear projection into the joint space of width E, and the learned ``logit_scale``;
* zero-shot classification: :func:`zero_shot_weights` turns the embeddings of prompts ("a circle",
  "a red circle", ...) into one unit vector per class, and :func:`zero_shot_logits` scores images
  against them: a classifier written in words, without a single labelled image.

Simplifications with respect to the paper: tiny towers; the text encoder attends in both
directions (CLIP's is causal, for the option of a language-model loss it did not use); a caption is
a sentence of the scenes' grammar, so the prompt template is the grammar's own phrase ("a {shape}")
rather than CLIP's "a photo of a {label}".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .data.tokens import EOS_ID, PAD_ID
from .transformer import TokenEncoder
from .vit import ViT

__all__ = ["contrastive_logits", "clip_loss", "TextEncoder", "CLIP", "zero_shot_weights", "zero_shot_logits"]

MAX_LOGIT_SCALE = math.log(100.0)        # CLIP clips the temperature's exponent at ln 100


def contrastive_logits(image_features: torch.Tensor, text_features: torch.Tensor,
                       logit_scale: torch.Tensor) -> torch.Tensor:
    """exp(logit_scale) * cos(image i, text j): (B, E), (B', E), scalar -> (B, B')."""
    image = F.normalize(image_features, dim=-1)                                   # (B, E) unit rows
    text = F.normalize(text_features, dim=-1)                                     # (B', E)
    return logit_scale.exp() * image @ text.t()                                   # (B, B')


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """The symmetric InfoNCE loss of a batch of B matching pairs (pair i = image i, text i).

    Args:
        image_features, text_features: (B, E), not necessarily normalised (this function does it).
        logit_scale: scalar tensor, the log of the inverse temperature (CLIP starts at ln(1 / 0.07)).

    Returns:
        (CE(rows) + CE(columns)) / 2, each the mean over the batch of -log softmax at the diagonal.
    """
    logits = contrastive_logits(image_features, text_features, logit_scale)      # (B, B)
    targets = torch.arange(logits.size(0), device=logits.device)                  # pair i is on the diagonal
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


class TextEncoder(nn.Module):
    """Token ids -> one vector per text: a pre-norm :class:`~attnlab.transformer.TokenEncoder` read at
    each text's ``<EOS>`` token (padding after it is never attended to).

    Args:
        vocab_size: V; max_len: the longest text T; dim: D; num_layers, num_heads, ffn_dim (default 4 D).
    """

    def __init__(self, *, vocab_size: int, max_len: int, dim: int = 64, num_layers: int = 2, num_heads: int = 4,
                 ffn_dim: int | None = None) -> None:
        super().__init__()
        self.body = TokenEncoder(vocab_size=vocab_size, max_len=max_len, num_layers=num_layers, dim=dim,
                                 num_heads=num_heads, ffn_dim=ffn_dim or 4 * dim, dropout=0.0, norm_first=True,
                                 activation="gelu", positions="learned", scale_embeddings=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, T) ids, each text ending with ``<EOS>`` then ``<PAD>``. Returns (B, D)."""
        pad = (tokens == PAD_ID)[:, None, None, :]                                 # (B, 1, 1, T)
        h = self.body(tokens, mask=pad)                                            # (B, T, D)
        eos = (tokens == EOS_ID).float().argmax(dim=1)                             # (B,) the first <EOS>
        return h[torch.arange(tokens.size(0), device=tokens.device), eos]          # (B, D)


class CLIP(nn.Module):
    """An image tower (ViT, CLS feature) and a text tower, projected into one space of width E.

    Args:
        vocab_size, max_len: the text side (V, the longest caption T).
        image_size, patch_size, dim, depth, num_heads: the image tower (a :class:`~attnlab.vit.ViT`).
        text_dim, text_depth: the text tower's width and number of layers (num_heads heads).
        embed_dim: E, the width of the joint space.
    """

    def __init__(self, *, vocab_size: int, max_len: int, image_size: int, patch_size: int, dim: int = 64,
                 depth: int = 2, num_heads: int = 4, text_dim: int = 64, text_depth: int = 2,
                 embed_dim: int = 32) -> None:
        super().__init__()
        self.visual = ViT(image_size=image_size, patch_size=patch_size, num_classes=0, dim=dim, depth=depth,
                          num_heads=num_heads)
        self.text = TextEncoder(vocab_size=vocab_size, max_len=max_len, dim=text_dim, num_layers=text_depth,
                                num_heads=num_heads)
        self.image_proj = nn.Linear(dim, embed_dim, bias=False)
        self.text_proj = nn.Linear(text_dim, embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, Hi, Wi) -> (B, E), not normalised."""
        return self.image_proj(self.visual(images))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, E), not normalised."""
        return self.text_proj(self.text(tokens))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """The symmetric InfoNCE loss of B (image, caption) pairs."""
        scale = self.logit_scale.clamp(max=MAX_LOGIT_SCALE)                        # as CLIP, without editing the parameter
        return clip_loss(self.encode_image(images), self.encode_text(tokens), scale)


def zero_shot_weights(prompt_features: torch.Tensor) -> torch.Tensor:
    """One unit vector per class from the text embeddings of its prompts.

    Each prompt's embedding is normalised, the class's prompts are averaged, and the mean is
    normalised again (CLIP's prompt ensembling).

    Args:
        prompt_features: (Y, R, E), R prompts per class. Returns (Y, E) with unit rows.
    """
    return F.normalize(F.normalize(prompt_features, dim=-1).mean(dim=1), dim=-1)


def zero_shot_logits(image_features: torch.Tensor, prompt_features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each image with each class: (B, E), (Y, R, E) -> (B, Y), in [-1, 1].

    The predicted class is the argmax of a row.
    """
    return F.normalize(image_features, dim=-1) @ zero_shot_weights(prompt_features).t()
