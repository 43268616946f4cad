"""The Transformer of "Attention is all you need", built from its pieces (chapter 3, part 2).

Every later chapter imports its blocks from here: the ViT's block *is* :class:`EncoderLayer` with
``norm_first=True, activation="gelu"``; DETR uses :class:`Encoder` and :class:`Decoder`; BERT and
GPT use the stacks with their own heads. Bottom-up, as the file reads:

* **embeddings**: :class:`TokenEmbedding` (ids -> vectors, times sqrt(D) as in the paper),
  :func:`sinusoidal_positions` and :class:`SinusoidalPositionalEncoding` (위치 인코딩), and
  :class:`LearnedPositionEmbedding`, the modern alternative;
* **layer normalisation** (층 정규화): :func:`layer_norm` shows the maths (the teaching path),
  :class:`LayerNorm` runs PyTorch's fused kernel (the fast path); the tests prove them equal;
* **Add & Norm** (지름길 연결 + 층 정규화) in both placements, :class:`AddNorm` with ``norm_first``:
  post-norm ``x = LN(x + Sublayer(x))`` (the paper, and the notes) or pre-norm
  ``x = x + Sublayer(LN(x))`` (ViT, GPT, and every vision chapter of this course);
* the **position-wise feed-forward layer** (위치별 FF층) :class:`FeedForward`;
* :class:`EncoderLayer`, :class:`DecoderLayer`, the stacks :class:`Encoder` and :class:`Decoder`;
  :class:`TokenEncoder` (ids -> vectors in context, the body of encoder-only models) and the
  encoder-decoder :class:`Transformer` with teacher forcing (:func:`shift_right`) and greedy
  auto-regressive decoding.

Attention is :class:`attnlab.attention.MultiHeadAttention` (one implementation for the whole
package); masks follow its convention: bool, ``True`` = may not be attended to. Layers run the
fused attention unless ``need_weights=True`` asks for the weights (the teaching path).

Simplifications with respect to Vaswani et al. (2017): no dropout on the attention weights (the
paper has none either; torch's layers add it); the embeddings and the output projection do not
share weights; greedy decoding instead of beam search; no label smoothing. Weights are initialised
as ``torch.nn.Transformer`` does (Xavier-uniform for every matrix), the embeddings with standard
deviation D^-1/2 so that the scaled embedding has unit variance, like the sinusoids (fairseq's
choice).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadAttention, causal_mask
from .data.tokens import IGNORE_INDEX, PAD_ID, SOS_ID, ignore_padding
from .seq2seq import greedy_decode

__all__ = [
    "TokenEmbedding",
    "sinusoidal_positions",
    "SinusoidalPositionalEncoding",
    "LearnedPositionEmbedding",
    "layer_norm",
    "LayerNorm",
    "AddNorm",
    "FeedForward",
    "EncoderLayer",
    "DecoderLayer",
    "Encoder",
    "Decoder",
    "TokenEncoder",
    "shift_right",
    "Transformer",
]

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "gelu": F.gelu}


# ----------------------------------------------------------------------------------- embeddings
class TokenEmbedding(nn.Module):
    """Token ids -> vectors: a learned table, multiplied by sqrt(D) as in the paper (section 3.4).

    Args:
        vocab_size: V; dim: D; scale: multiply by sqrt(D) (the paper) or not (ViT, GPT-2).
    """

    def __init__(self, *, vocab_size: int, dim: int, scale: bool = True) -> None:
        super().__init__()
        self.table = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        nn.init.normal_(self.table.weight, std=dim ** -0.5)       # scaled by sqrt(D): unit variance
        with torch.no_grad():
            self.table.weight[PAD_ID].zero_()
        self.factor = math.sqrt(dim) if scale else 1.0

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (B, T) long ids. Returns (B, T, D)."""
        return self.table(tokens) * self.factor


def sinusoidal_positions(length: int, dim: int, *, base: float = 10_000.0) -> torch.Tensor:
    """The paper's positional encoding table P (section 3.5).

    P[pos, 2i] = sin(pos / base^(2i / D)),  P[pos, 2i + 1] = cos(pos / base^(2i / D)):
    each pair of columns is a sine and a cosine of one frequency; the wavelengths grow
    geometrically from 2 pi to base * 2 pi. (Counting the columns from 1, as the notes do, the
    odd ones are sines and the even ones cosines.)

    Args:
        length: T, the number of positions 0 .. T - 1; dim: D, even.

    Returns:
        (T, D) float32, every entry in [-1, 1].
    """
    if dim % 2:
        raise ValueError(f"dim must be even (pairs of sin and cos), got {dim}")
    pos = torch.arange(length, dtype=torch.float64)[:, None]                 # (T, 1)
    freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)      # (D/2,) = 1 / base^(2i/D)
    angles = pos * freq                                                       # (T, D/2)
    table = torch.stack([angles.sin(), angles.cos()], dim=-1)                 # (T, D/2, 2)
    return table.flatten(-2).float()                                          # (T, D): sin, cos, sin, ...


class SinusoidalPositionalEncoding(nn.Module):
    """Adds the fixed sinusoidal table to a sequence of vectors: X = S + P (the notes' notation).

    The table is a buffer (it moves with ``.to(device)``), non-persistent (it is not learned, so
    it is not saved in a state dict).
    """

    def __init__(self, *, dim: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("table", sinusoidal_positions(max_len, dim), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) with T <= max_len. Returns x + P[:T]."""
        return x + self.table[: x.size(1)].to(x.dtype)


class LearnedPositionEmbedding(nn.Module):
    """One learned vector per position, added to the tokens (BERT, GPT-2, ViT): the modern alternative.

    Initialised with standard deviation 0.02, as GPT-2 and ViT do.
    """

    def __init__(self, *, dim: int, max_len: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(max_len, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D) with T <= max_len. Returns x + table[:T]."""
        return x + self.table[: x.size(1)]


# ------------------------------------------------------------------------ layer normalisation
def layer_norm(x: torch.Tensor, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """Layer normalisation, the teaching path: normalise each token over its own features.

    LN(x) = (x - mean) / sqrt(var + eps) * weight + bias, with the mean and the **biased** variance
    (divide by D, not D - 1) taken over the last dimension of each token separately: unlike batch
    normalisation, nothing is shared between the tokens or the examples of a batch.

    Args:
        x: (*, D); weight, bias: (D,) the affine (gamma, beta), or ``None`` (1 and 0).

    Returns:
        (*, D). A token whose features are all equal comes out as ``bias`` (0 / sqrt(eps) = 0).
    """
    mean = x.mean(dim=-1, keepdim=True)                                       # (*, 1)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)                        # (*, 1), biased
    x_hat = (x - mean) / torch.sqrt(var + eps)                                # (*, D): mean 0, variance 1
    if weight is not None:
        x_hat = x_hat * weight
    if bias is not None:
        x_hat = x_hat + bias
    return x_hat


class LayerNorm(nn.Module):
    """Holds the affine ``weight`` (gamma, ones) and ``bias`` (beta, zeros) of :func:`layer_norm`.

    ``forward`` calls PyTorch's fused kernel (the fast path; the tests prove it equal to
    :func:`layer_norm`). Its state dict is the one of ``torch.nn.LayerNorm``.
    """

    def __init__(self, *, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (*, D). Returns (*, D)."""
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class AddNorm(nn.Module):
    """Add & Norm around one sublayer: the residual connection and layer normalisation.

    ``norm_first=False``, **post-norm** (the paper; the notes' X' = Norm(X + MHA(X))):
    ``LN(x + Dropout(sublayer(x)))``. ``norm_first=True``, **pre-norm** (ViT, GPT):
    ``x + Dropout(sublayer(LN(x)))``: the residual path from input to output carries no
    normalisation at all, which is why deep pre-norm stacks train without learning-rate warm-up.
    ``eps``: the LayerNorm's epsilon (1e-5, torch's default; torchvision's ViT uses 1e-6).
    """

    def __init__(self, *, dim: int, dropout: float = 0.0, norm_first: bool = False, eps: float = 1e-5) -> None:
        super().__init__()
        self.norm = LayerNorm(dim=dim, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: torch.Tensor, sublayer: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """x: (B, T, D); sublayer: (B, T, D) -> (B, T, D). Returns (B, T, D)."""
        if self.norm_first:
            return x + self.dropout(sublayer(self.norm(x)))          # pre-norm
        return self.norm(x + self.dropout(sublayer(x)))              # post-norm


class FeedForward(nn.Module):
    """The position-wise feed-forward layer: FFN(x) = act(x W_1 + b_1) W_2 + b_2, token by token.

    Args:
        dim: D; ffn_dim: F, the hidden width (4 D in the paper: 2048 for D = 512).
        dropout: applied to the hidden activations (as torch's layers do).
        activation: ``"relu"`` (the paper) or ``"gelu"`` (BERT, GPT, ViT).
    """

    def __init__(self, *, dim: int, ffn_dim: int, dropout: float = 0.0, activation: str = "relu") -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.linear1 = nn.Linear(dim, ffn_dim)                       # W_1, b_1
        self.linear2 = nn.Linear(ffn_dim, dim)                       # W_2, b_2
        self.dropout = nn.Dropout(dropout)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D). Returns (B, T, D); each token is transformed on its own."""
        hidden = ACTIVATIONS[self.activation](self.linear1(x))      # (B, T, F)
        return self.linear2(self.dropout(hidden))                    # (B, T, D)


# ------------------------------------------------------------------------------------ layers
def _attend(attn: MultiHeadAttention, query: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor | None,
            kept: list | None) -> torch.Tensor:
    """``attn(query, memory, mask=mask)``; if ``kept`` is a list, the teaching path runs and the
    weights (B, H, T_q, T_k) are appended to it."""
    if kept is None:
        return attn(query, memory, mask=mask)                        # fused attention
    out, weights = attn(query, memory, mask=mask, need_weights=True)
    kept.append(weights)
    return out


class EncoderLayer(nn.Module):
    """One encoder block: self-attention, then the feed-forward layer, each inside Add & Norm.

    Args:
        dim: D; num_heads: H; ffn_dim: F; dropout: on each sublayer's output and inside the FFN;
        norm_first: pre-norm (True) or post-norm (False, the paper); activation: "relu" or "gelu";
        eps: the LayerNorms' epsilon.
    """

    def __init__(self, *, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.1,
                 norm_first: bool = False, activation: str = "relu", eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim=dim, num_heads=num_heads)
        self.attn_block = AddNorm(dim=dim, dropout=dropout, norm_first=norm_first, eps=eps)
        self.ffn = FeedForward(dim=dim, ffn_dim=ffn_dim, dropout=dropout, activation=activation)
        self.ffn_block = AddNorm(dim=dim, dropout=dropout, norm_first=norm_first, eps=eps)

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, need_weights: bool = False):
        """x: (B, S, D); mask: bool broadcastable to (B, H, S, S), e.g. a (B, 1, 1, S) padding mask.

        Returns (B, S, D); with ``need_weights``, ``(output, weights (B, H, S, S))``.
        """
        kept = [] if need_weights else None
        x = self.attn_block(x, lambda h: _attend(self.self_attn, h, h, mask, kept))   # (B, S, D)
        x = self.ffn_block(x, self.ffn)                                                # (B, S, D)
        return (x, kept[0]) if need_weights else x


class DecoderLayer(nn.Module):
    """One decoder block: masked self-attention, cross-attention to the encoder, the FFN.

    In the cross-attention the queries come from the decoder and the keys and values from the
    encoder's output ``memory``: the one place where encoder and decoder exchange information.
    Arguments as :class:`EncoderLayer`.
    """

    def __init__(self, *, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.1,
                 norm_first: bool = False, activation: str = "relu", eps: float = 1e-5) -> None:
        super().__init__()
        self.self_attn = MultiHeadAttention(dim=dim, num_heads=num_heads)
        self.self_attn_block = AddNorm(dim=dim, dropout=dropout, norm_first=norm_first, eps=eps)
        self.cross_attn = MultiHeadAttention(dim=dim, num_heads=num_heads)
        self.cross_attn_block = AddNorm(dim=dim, dropout=dropout, norm_first=norm_first, eps=eps)
        self.ffn = FeedForward(dim=dim, ffn_dim=ffn_dim, dropout=dropout, activation=activation)
        self.ffn_block = AddNorm(dim=dim, dropout=dropout, norm_first=norm_first, eps=eps)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, need_weights: bool = False):
        """x: (B, T, D) decoder states; memory: (B, S, D) encoder output.

        Args:
            tgt_mask: bool broadcastable to (B, H, T, T), usually ``causal_mask(T)``.
            memory_mask: bool broadcastable to (B, H, T, S), usually the source's (B, 1, 1, S)
                padding mask.

        Returns:
            (B, T, D); with ``need_weights``, ``(output, (self weights (B, H, T, T), cross
            weights (B, H, T, S)))``.
        """
        kept = [] if need_weights else None
        x = self.self_attn_block(x, lambda h: _attend(self.self_attn, h, h, tgt_mask, kept))             # (B, T, D)
        x = self.cross_attn_block(x, lambda h: _attend(self.cross_attn, h, memory, memory_mask, kept))   # (B, T, D)
        x = self.ffn_block(x, self.ffn)                                                                  # (B, T, D)
        return (x, (kept[0], kept[1])) if need_weights else x


# ------------------------------------------------------------------------------------ stacks
class _Stack(nn.Module):
    """N layers of the kind ``layer_type``, each with its own weights; for pre-norm, a final LayerNorm
    (the residual stream of a pre-norm stack was never normalised), as ``torch.nn.TransformerEncoder``
    is used with pre-norm layers. Arguments as :class:`EncoderLayer`, and num_layers: N."""

    layer_type: type[nn.Module]

    def __init__(self, *, num_layers: int, dim: int, num_heads: int, ffn_dim: int, dropout: float = 0.1,
                 norm_first: bool = False, activation: str = "relu") -> None:
        super().__init__()
        self.layers = nn.ModuleList([self.layer_type(dim=dim, num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout,
                                                     norm_first=norm_first, activation=activation)
                                     for _ in range(num_layers)])
        self.norm = LayerNorm(dim=dim) if norm_first else nn.Identity()


class Encoder(_Stack):
    """N encoder layers (and a final LayerNorm when pre-norm)."""

    layer_type = EncoderLayer

    def forward(self, x: torch.Tensor, *, mask: torch.Tensor | None = None, need_weights: bool = False):
        """x: (B, S, D); mask as :meth:`EncoderLayer.forward`.

        Returns (B, S, D); with ``need_weights``, ``(output, [weights (B, H, S, S) per layer])``.
        """
        maps = []
        for layer in self.layers:
            if need_weights:
                x, weights = layer(x, mask=mask, need_weights=True)
                maps.append(weights)
            else:
                x = layer(x, mask=mask)
        x = self.norm(x)
        return (x, maps) if need_weights else x


class Decoder(_Stack):
    """N decoder layers, each reading the same encoder output (and a final LayerNorm when pre-norm)."""

    layer_type = DecoderLayer

    def forward(self, x: torch.Tensor, memory: torch.Tensor, *, tgt_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, need_weights: bool = False):
        """x: (B, T, D); memory: (B, S, D); masks as :meth:`DecoderLayer.forward`.

        Returns (B, T, D); with ``need_weights``, ``(output, [(self, cross) weights per layer])``.
        """
        maps = []
        for layer in self.layers:
            if need_weights:
                x, weights = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask, need_weights=True)
                maps.append(weights)
            else:
                x = layer(x, memory, tgt_mask=tgt_mask, memory_mask=memory_mask)
        x = self.norm(x)
        return (x, maps) if need_weights else x


def _positions(kind: str, *, dim: int, max_len: int) -> nn.Module:
    if kind == "sinusoidal":
        return SinusoidalPositionalEncoding(dim=dim, max_len=max_len)
    if kind == "learned":
        return LearnedPositionEmbedding(dim=dim, max_len=max_len)
    raise ValueError(f"positions must be 'sinusoidal' or 'learned', got {kind!r}")


class TokenEncoder(nn.Module):
    """Token ids -> one vector per token in context: embedding, positions, dropout, an :class:`Encoder`.

    The body of encoder-only models (BERT; with a causal mask, GPT); a task adds its own head.
    Arguments as :class:`Transformer` (``vocab_size`` for its one vocabulary).
    """

    def __init__(self, *, vocab_size: int, max_len: int, num_layers: int = 2, dim: int = 64, num_heads: int = 4,
                 ffn_dim: int = 256, dropout: float = 0.1, norm_first: bool = False, activation: str = "relu",
                 positions: str = "sinusoidal", scale_embeddings: bool = True) -> None:
        super().__init__()
        self.embed = TokenEmbedding(vocab_size=vocab_size, dim=dim, scale=scale_embeddings)
        self.pos = _positions(positions, dim=dim, max_len=max_len)
        self.dropout = nn.Dropout(dropout)
        self.encoder = Encoder(num_layers=num_layers, dim=dim, num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout,
                               norm_first=norm_first, activation=activation)

    def forward(self, tokens: torch.Tensor, *, mask: torch.Tensor | None = None, need_weights: bool = False):
        """tokens: (B, T) ids; mask: bool broadcastable to (B, H, T, T) (e.g. (B, 1, 1, T) padding).

        Returns (B, T, D); with ``need_weights``, ``(output, [weights (B, H, T, T) per layer])``.
        """
        x = self.dropout(self.pos(self.embed(tokens)))                      # (B, T, D)
        return self.encoder(x, mask=mask, need_weights=need_weights)


# ----------------------------------------------------------------------------- the full model
def shift_right(labels: torch.Tensor, *, sos_id: int = SOS_ID, pad_id: int = PAD_ID) -> torch.Tensor:
    """The decoder's input for teacher forcing: the targets shifted one step to the right.

    Position t of the input holds target t - 1, so that the decoder predicts token t having seen
    only the tokens before it: ``<SOS>`` is prepended and the last token dropped.

    Args:
        labels: (B, T) long, ``y_1 .. y_n <EOS>`` then padding, written as ``pad_id`` or
            ``IGNORE_INDEX``.

    Returns:
        (B, T) long, ``<SOS> y_1 .. y_n <EOS>``... with every ``IGNORE_INDEX`` turned into ``pad_id``
        (an embedding table has no row -100). ``labels`` is not modified.
    """
    inputs = torch.full_like(labels, pad_id)
    inputs[:, 0] = sos_id
    inputs[:, 1:] = labels[:, :-1]
    return inputs.masked_fill(inputs == IGNORE_INDEX, pad_id)


class Transformer(nn.Module):
    """The encoder-decoder Transformer: embeddings + positions, N encoder and N decoder layers, and
    the output projection to the target vocabulary (the softmax is in the loss).

    Args:
        src_vocab, tgt_vocab: vocabulary sizes; dim: D; num_heads: H; num_layers: N (encoder and
        decoder alike); ffn_dim: F; dropout: on the embeddings and every sublayer's output;
        norm_first, activation: as :class:`EncoderLayer`; max_len: the longest sequence;
        positions: ``"sinusoidal"`` (the paper) or ``"learned"``; scale_embeddings: times sqrt(D).
    """

    def __init__(self, *, src_vocab: int, tgt_vocab: int, dim: int = 64, num_heads: int = 4, num_layers: int = 2,
                 ffn_dim: int = 256, dropout: float = 0.1, norm_first: bool = False, activation: str = "relu",
                 max_len: int = 64, positions: str = "sinusoidal", scale_embeddings: bool = True) -> None:
        super().__init__()
        sizes = dict(num_layers=num_layers, dim=dim, num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout,
                     norm_first=norm_first, activation=activation)
        self.src_embed = TokenEmbedding(vocab_size=src_vocab, dim=dim, scale=scale_embeddings)
        self.tgt_embed = TokenEmbedding(vocab_size=tgt_vocab, dim=dim, scale=scale_embeddings)
        self.src_pos = _positions(positions, dim=dim, max_len=max_len)
        self.tgt_pos = _positions(positions, dim=dim, max_len=max_len)
        self.dropout = nn.Dropout(dropout)
        self.encoder = Encoder(**sizes)
        self.decoder = Decoder(**sizes)
        self.out_proj = nn.Linear(dim, tgt_vocab)
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier-uniform for every matrix of the layers, as ``torch.nn.Transformer._reset_parameters``."""
        for name, p in self.named_parameters():
            if p.dim() > 1 and "embed" not in name and "pos" not in name:
                nn.init.xavier_uniform_(p)

    def encode(self, src: torch.Tensor, src_pad_mask: torch.Tensor | None = None, *, need_weights: bool = False):
        """src: (B, S) ids; src_pad_mask: (B, S) bool, True = padding, or None.

        Returns the memory (B, S, D); with ``need_weights``, ``(memory, [weights per layer])``.
        """
        x = self.dropout(self.src_pos(self.src_embed(src)))                 # (B, S, D)
        mask = None if src_pad_mask is None else src_pad_mask[:, None, None, :]   # (B, 1, 1, S)
        return self.encoder(x, mask=mask, need_weights=need_weights)

    def decode(self, tgt_in: torch.Tensor, memory: torch.Tensor, src_pad_mask: torch.Tensor | None = None,
               *, need_weights: bool = False):
        """tgt_in: (B, T) the decoder's input ids; memory: (B, S, D); src_pad_mask: (B, S) or None.

        Returns logits (B, T, V); with ``need_weights``, ``(logits, [(self, cross) weights per layer])``.
        """
        T = tgt_in.size(1)
        y = self.dropout(self.tgt_pos(self.tgt_embed(tgt_in)))              # (B, T, D)
        mask = None if src_pad_mask is None else src_pad_mask[:, None, None, :]   # (B, 1, 1, S)
        out = self.decoder(y, memory, tgt_mask=causal_mask(T, device=tgt_in.device), memory_mask=mask,
                           need_weights=need_weights)
        if need_weights:
            return self.out_proj(out[0]), out[1]                             # (B, T, V), weights
        return self.out_proj(out)                                            # (B, T, V)

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor, src_pad_mask: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) = ``shift_right(labels)``, src_pad_mask (B, S)
        bool (True = padding) or None. Returns logits (B, T, V) for the labels."""
        return self.decode(tgt_in, self.encode(src, src_pad_mask), src_pad_mask)

    def attention_maps(self, src: torch.Tensor, tgt_in: torch.Tensor, src_pad_mask: torch.Tensor | None = None
                       ) -> dict[str, list[torch.Tensor]]:
        """Every attention map of one teacher-forced pass (the teaching path), per layer:
        ``{"encoder": [(B, H, S, S)], "decoder_self": [(B, H, T, T)], "cross": [(B, H, T, S)]}``."""
        memory, enc = self.encode(src, src_pad_mask, need_weights=True)
        _, dec = self.decode(tgt_in, memory, src_pad_mask, need_weights=True)
        return {"encoder": enc, "decoder_self": [w[0] for w in dec], "cross": [w[1] for w in dec]}

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing cross-entropy, with the interface of :meth:`attnlab.seq2seq.Seq2Seq.loss`.

        src: (B, S); src_len: (B,) true lengths; tgt: (B, T + 1) = ``<SOS> y_1 .. y_n <EOS> <PAD>...``.
        """
        labels = tgt[:, 1:]                                                  # (B, T): y_1 .. <EOS> <PAD>..
        logits = self(src, shift_right(labels), _pad_from_lengths(src_len, src))           # (B, T, V)
        return F.cross_entropy(logits.flatten(0, 1), ignore_padding(labels).flatten(), ignore_index=IGNORE_INDEX)

    @torch.no_grad()
    def translate(self, src: torch.Tensor, src_len: torch.Tensor, *, max_len: int) -> tuple[torch.Tensor, None]:
        """Greedy auto-regressive decoding (자기 회귀): each step runs the decoder on the prefix
        written so far and appends its most likely next token, until ``<EOS>``.

        Returns tokens (B, L) (as :meth:`attnlab.seq2seq.Seq2Seq.translate`) and ``None`` (use
        :meth:`attention_maps` for the weights).
        """
        pad = _pad_from_lengths(src_len, src)
        memory = self.encode(src, pad)                                       # (B, S, D), computed once

        def step(y_prev: torch.Tensor, prefix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            prefix = torch.cat([prefix, y_prev[:, None]], dim=1)             # (B, t)
            return self.decode(prefix, memory, pad)[:, -1], prefix           # logits of the next token (B, V)

        empty = src.new_zeros(src.size(0), 0)                                # (B, 0): nothing written yet
        return greedy_decode(step, empty, batch_size=src.size(0), max_len=max_len), None


def _pad_from_lengths(lengths: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """(B,) true lengths of ``src`` (B, S) -> (B, S) bool on src's device, True at the padding."""
    positions = torch.arange(src.size(1), device=src.device)                 # (S,)
    return positions[None, :] >= lengths.to(src.device)[:, None]
