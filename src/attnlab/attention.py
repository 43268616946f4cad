"""Scaled dot-product attention, masks and multi-head attention (chapter 3, "The Transformer").

The mask convention of the whole package
----------------------------------------
A mask is a **boolean** tensor that broadcasts to the scores ``(..., T_q, T_k)``:
``True`` means *this key may not be attended to by this query*. Masked scores are set to
``-inf`` by :func:`masked_fill_scores` (the package's one place that does so), so after the
softmax a masked key gets a weight of exactly zero.

A query whose every key is masked (a *fully masked row*, e.g. a padding query) would give
``softmax([-inf, ..., -inf]) = NaN``. This package returns **zero weights and a zero output** for
such a row instead, in both the teaching function and the fast path, so NaNs never reach the loss:
:func:`masked_softmax` (weights) and :func:`zero_fully_masked_rows` (outputs of the fused kernel)
are the one place each that does so; every attention in the package goes through them.

Teaching path and fast path
---------------------------
:func:`scaled_dot_product_attention` shows the maths step by step and returns the weights.
:func:`fast_attention` calls ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels,
no weights) with the same convention; the tests prove the two equal. :class:`MultiHeadAttention`
uses the fast path unless weights are asked for.

Simplifications with respect to Vaswani et al. (2017): no dropout on the attention weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = [
    "masked_fill_scores",
    "masked_softmax",
    "zero_fully_masked_rows",
    "causal_mask",
    "padding_mask",
    "scaled_dot_product_attention",
    "fast_attention",
    "split_heads",
    "merge_heads",
    "MultiHeadAttention",
]


def _checked(mask: torch.Tensor) -> torch.Tensor:
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may not be attended to), got {mask.dtype}")
    return mask


def masked_fill_scores(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Set the scores of masked keys to ``-inf``.

    Args:
        scores: (..., T_q, T_k) float attention logits.
        mask: bool, broadcastable to ``scores``; True = may not be attended to. ``None``: no mask.
    """
    if mask is None:
        return scores
    return scores.masked_fill(_checked(mask), float("-inf"))


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None, dim: int = -1) -> torch.Tensor:
    """softmax of the scores over ``dim`` with masked keys at weight 0; a fully masked row is all zeros.

    Args:
        scores: (..., T_k) float logits (any layout; the softmax runs over ``dim``).
        mask: bool broadcastable to ``scores``, True = may not be attended to, or ``None``.
    """
    weights = torch.softmax(masked_fill_scores(scores, mask), dim=dim)
    return torch.nan_to_num(weights, nan=0.0)                     # fully masked row: 0/0 -> 0


def zero_fully_masked_rows(out: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the output rows of queries that may attend to no key (``mask`` all True on the row).

    Args:
        out: (..., T_q, D_v) attention output; mask: bool broadcastable to (..., T_q, T_k), or ``None``.
    """
    if mask is None:
        return out
    any_allowed = (~mask).any(dim=-1, keepdim=True)               # (..., T_q, 1)
    return torch.where(any_allowed, out, torch.zeros((), dtype=out.dtype, device=out.device))


def causal_mask(t_q: int, t_k: int | None = None, *, device: torch.device | str | None = None) -> torch.Tensor:
    """The decoder's mask: query i may not look at keys j > i (the future).

    Returns:
        (T_q, T_k) bool, True above the diagonal. With ``t_k > t_q`` (queries are the last
        ``t_q`` positions of a longer sequence) the diagonal is shifted accordingly.
    """
    t_k = t_q if t_k is None else t_k
    ones = torch.ones(t_q, t_k, dtype=torch.bool, device=device)
    return torch.triu(ones, diagonal=t_k - t_q + 1)


def padding_mask(lengths: torch.Tensor, t_k: int) -> torch.Tensor:
    """Mask the padding keys of a batch of sequences of different lengths.

    Args:
        lengths: (B,) int, the true length of each sequence.
        t_k: the padded length.

    Returns:
        (B, 1, 1, T_k) bool, True at positions ``>= lengths[b]``; it broadcasts over heads and
        queries of scores shaped (B, H, T_q, T_k).
    """
    positions = torch.arange(t_k, device=lengths.device)
    return (positions[None, :] >= lengths[:, None])[:, None, None, :]


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, the teaching version.

    Args:
        q: (..., T_q, Dh) queries.
        k: (..., T_k, Dh) keys.
        v: (..., T_k, D_v) values.
        mask: optional bool, broadcastable to (..., T_q, T_k); True = may not be attended to.

    Returns:
        output: (..., T_q, D_v), each row a weighted average of the values.
        weights: (..., T_q, T_k), each row sums to one (zero for a fully masked row).
    """
    d_k = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)          # (..., T_q, T_k)
    weights = masked_softmax(scores, mask)                        # (..., T_q, T_k); masked keys -> 0
    return weights @ v, weights                                   # (..., T_q, D_v)


def fast_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The same result as :func:`scaled_dot_product_attention`, through PyTorch's fused kernel.

    PyTorch's boolean ``attn_mask`` means the opposite of ours (True = *may* attend), so it is
    inverted here. Fully masked rows are zeroed afterwards, as in the teaching version.
    """
    if mask is None:
        return F.scaled_dot_product_attention(q, k, v)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=~_checked(mask))   # PyTorch: True = may attend
    return zero_fully_masked_rows(out, mask)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, D) -> (B, H, T, Dh): cut the width into ``num_heads`` slices of Dh = D / H."""
    return rearrange(x, "b t (h d) -> b h t d", h=num_heads)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(B, H, T, Dh) -> (B, T, H * Dh): concatenate the heads again (the inverse of split_heads)."""
    return rearrange(x, "b h t d -> b t (h d)")


class MultiHeadAttention(nn.Module):
    """Multi-head attention with separate query, key, value and output projections.

    MultiHead(Q, K, V) = Concat(head_1, ..., head_H) W_O, head_i = Attention(Q W_Q^i, K W_K^i, V W_V^i).

    Args:
        dim: model width D.
        num_heads: H; D must be divisible by H (Dh = D / H).
        bias: whether the four projections have biases.
    """

    def __init__(self, *, dim: int, num_heads: int, bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim, bias=bias)
        self.k_proj = nn.Linear(dim, dim, bias=bias)
        self.v_proj = nn.Linear(dim, dim, bias=bias)
        self.out_proj = nn.Linear(dim, dim, bias=bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        *,
        mask: torch.Tensor | None = None,
        need_weights: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Attend from ``query`` to ``key``/``value`` (self-attention when they are omitted).

        Args:
            query: (B, T_q, D).
            key, value: (B, T_k, D); default to ``query``.
            mask: bool broadcastable to (B, H, T_q, T_k), True = may not be attended to; a
                (T_q, T_k) causal mask or a (B, 1, 1, T_k) padding mask (:func:`padding_mask`)
                both work. A (B, T_k) mask would broadcast against the wrong axes: make it
                (B, 1, 1, T_k) first.
            need_weights: also return the attention weights (uses the teaching path).

        Returns:
            output (B, T_q, D); with ``need_weights``, ``(output, weights (B, H, T_q, T_k))``.
        """
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.q_proj(query), self.num_heads)        # (B, H, T_q, Dh)
        k = split_heads(self.k_proj(key), self.num_heads)          # (B, H, T_k, Dh)
        v = split_heads(self.v_proj(value), self.num_heads)        # (B, H, T_k, Dh)
        if need_weights:
            out, weights = scaled_dot_product_attention(q, k, v, mask)
            return self.out_proj(merge_heads(out)), weights        # (B, T_q, D), (B, H, T_q, T_k)
        return self.out_proj(merge_heads(fast_attention(q, k, v, mask)))   # (B, T_q, D)
