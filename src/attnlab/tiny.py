"""A one-layer attention model small enough to train in seconds (chapter 3 and lab 3).

It embeds tokens, adds learned position embeddings, applies one multi-head attention layer with a
residual connection, and reads the next prediction out with a linear layer. The attention layer is
an argument, so a lab can plug in the student's own ``MultiHeadAttention``.

Simplifications: no feed-forward block, no layer normalisation, one layer (chapter 3 builds the
full Transformer block).
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadAttention, causal_mask

__all__ = ["TinyAttentionModel"]


class TinyAttentionModel(nn.Module):
    """tokens (B, T) -> logits (B, T, V), attending causally.

    Args:
        vocab_size: V.
        max_len: the longest sequence T it accepts.
        dim: width D.
        num_heads: H.
        attention: a module with the interface of :class:`attnlab.attention.MultiHeadAttention`
            (``attention(x, mask=...) -> out``; ``attention(x, mask=..., need_weights=True) ->
            (out, weights)``); default: ours.
    """

    def __init__(self, *, vocab_size: int, max_len: int, dim: int = 32, num_heads: int = 2,
                 attention: nn.Module | None = None) -> None:
        super().__init__()
        self.token_embed = nn.Embedding(vocab_size, dim)
        self.pos_embed = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.attention = attention if attention is not None else MultiHeadAttention(dim=dim, num_heads=num_heads)
        self.readout = nn.Linear(dim, vocab_size)
        self.register_buffer("mask", causal_mask(max_len), persistent=False)

    def forward(self, tokens: torch.Tensor, *, need_weights: bool = False):
        """Returns logits (B, T, V) and, if asked, the attention weights (B, H, T, T)."""
        B, T = tokens.shape
        x = self.token_embed(tokens) + self.pos_embed[:T]                  # (B, T, D)
        if need_weights:
            a, weights = self.attention(x, mask=self.mask[:T, :T], need_weights=True)
            return self.readout(x + a), weights                             # (B, T, V), (B, H, T, T)
        return self.readout(x + self.attention(x, mask=self.mask[:T, :T]))  # (B, T, V)
