"""GPT: a decoder-only Transformer pre-trained to predict the next word (chapter 7, "GPT").

Radford et al. (2018, 2019), "Improving language understanding by generative pre-training" and
"Language models are unsupervised multitask learners" (GPT-2). The model reads a text and, at
every position, gives a distribution over the next token: a **causal language model**. The labels
are the text itself, shifted by one (자율지도 학습, self-supervision). Bottom-up:

* :func:`causal_lm_loss`: the shift. The logits at position t are scored against token t + 1;
* :class:`GPT`: token and learned position embeddings, N pre-norm blocks with a causal mask, a final
  LayerNorm and a linear layer to the vocabulary. "Decoder-only" means the decoder of chapter 3
  *without* cross-attention (there is no encoder to attend to), which is chapter 3's
  :class:`~attnlab.transformer.EncoderLayer` given the causal mask: the package builds it so;
* generation: :func:`top_k_filter`, :func:`sample_next` (greedy, temperature, top-k) and
  :func:`generate`, auto-regressive (자기 회귀), one token per step;
* :func:`perplexity`: exp of the mean cross-entropy per predicted token.

Simplifications with respect to GPT-2: whole words are tokens (no byte-pair encoding); the output
layer does not share the token embedding's weights; generation recomputes the whole prefix at each
step (no key-value cache); no dropout on the attention weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import causal_mask
from .data.tokens import EOS_ID, IGNORE_INDEX, PAD_ID, ignore_padding
from .transformer import Encoder, LearnedPositionEmbedding, TokenEmbedding

__all__ = ["causal_lm_loss", "GPT", "top_k_filter", "sample_next", "generate", "perplexity"]


def causal_lm_loss(logits: torch.Tensor, tokens: torch.Tensor, *, pad_id: int = PAD_ID) -> torch.Tensor:
    """The causal language-modelling loss: position t predicts token t + 1.

    Args:
        logits: (B, T, V), the model's output for the input ``tokens``.
        tokens: (B, T) long, e.g. ``<SOS> w_1 .. w_n <EOS> <PAD>...``; the last position has no next
            token, the first token is never a target, and ``<PAD>`` targets are skipped.

    Returns:
        the mean cross-entropy over the (B, T - 1) predicted positions that are not padding.
    """
    predictions = logits[:, :-1]                                       # (B, T - 1, V): positions 0 .. T - 2
    targets = ignore_padding(tokens[:, 1:], pad_id)                     # (B, T - 1): tokens 1 .. T - 1
    return F.cross_entropy(predictions.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)


class GPT(nn.Module):
    """A tiny GPT: embeddings, N pre-norm blocks with a causal mask, final LayerNorm, vocabulary layer.

    Args:
        vocab_size: V; max_len: the longest input T; dim: D; num_layers: N; num_heads: H;
        ffn_dim: F (default 4 D); dropout: on the embeddings and inside the blocks.
    """

    def __init__(self, *, vocab_size: int, max_len: int, dim: int = 64, num_layers: int = 2, num_heads: int = 4,
                 ffn_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        self.max_len = max_len
        self.token_embed = TokenEmbedding(vocab_size=vocab_size, dim=dim, scale=False)
        self.pos_embed = LearnedPositionEmbedding(dim=dim, max_len=max_len)
        self.dropout = nn.Dropout(dropout)
        self.blocks = Encoder(num_layers=num_layers, dim=dim, num_heads=num_heads, ffn_dim=ffn_dim or 4 * dim,
                              dropout=dropout, norm_first=True, activation="gelu")      # ends with GPT-2's ln_f
        self.lm_head = nn.Linear(dim, vocab_size)
        self.register_buffer("causal", causal_mask(max_len), persistent=False)          # (T, T), True above the diagonal

    def forward(self, tokens: torch.Tensor, *, need_weights: bool = False):
        """tokens: (B, T) ids, T <= max_len. Returns logits (B, T, V) of the token after each position;
        with ``need_weights``, ``(logits, [weights (B, H, T, T) per block])``."""
        T = tokens.size(1)
        if T > self.max_len:
            raise ValueError(f"input of {T} tokens is longer than max_len = {self.max_len}")
        x = self.dropout(self.pos_embed(self.token_embed(tokens)))                       # (B, T, D)
        out = self.blocks(x, mask=self.causal[:T, :T], need_weights=need_weights)
        if need_weights:
            return self.lm_head(out[0]), out[1]
        return self.lm_head(out)                                                         # (B, T, V)


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` largest logits of each row (ties with the k-th kept too); set the rest to -inf.

    logits: (..., V). Returns a new tensor of the same shape.
    """
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]     # (..., 1) the k-th largest
    return logits.masked_fill(logits < kth, float("-inf"))


def sample_next(logits: torch.Tensor, *, generator: torch.Generator, temperature: float = 1.0,
                top_k: int | None = None) -> torch.Tensor:
    """One token per row from the logits of the next position.

    ``temperature == 0`` is greedy decoding (the most likely token). Otherwise the logits are
    divided by the temperature (below 1: sharper, above 1: flatter), restricted to the ``top_k``
    most likely tokens if given, and a token is drawn from their softmax.

    Args:
        logits: (B, V). Returns (B,) long.
    """
    if temperature == 0:
        return logits.argmax(-1)
    scaled = logits / temperature
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    probs = torch.softmax(scaled, dim=-1)                                          # (B, V)
    return torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(logits.device)


@torch.no_grad()
def generate(model: GPT, prompt: torch.Tensor, *, max_new_tokens: int, generator: torch.Generator,
             temperature: float = 1.0, top_k: int | None = None) -> torch.Tensor:
    """Auto-regressive generation: append one sampled token at a time to ``prompt`` (B, T0).

    A row that has written ``<EOS>`` writes ``<PAD>`` from then on; generation stops when every row
    has finished or after ``max_new_tokens``. Returns (B, T0 + L) long, L <= max_new_tokens.
    """
    model.eval()
    out = prompt
    done = torch.zeros(prompt.size(0), dtype=torch.bool, device=prompt.device)
    for _ in range(max_new_tokens):
        logits = model(out[:, -model.max_len:])[:, -1]                                  # (B, V) next token
        nxt = sample_next(logits, generator=generator, temperature=temperature, top_k=top_k)
        nxt = nxt.masked_fill(done, PAD_ID)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done |= nxt == EOS_ID
        if bool(done.all()):
            break
    return out


@torch.no_grad()
def perplexity(model: GPT, tokens: torch.Tensor, *, batch_size: int = 256) -> float:
    """exp(mean cross-entropy per predicted token) on ``tokens`` (n, T), padding skipped: the number
    of equally likely choices the model is, on average, hesitating between."""
    model.eval()
    total, count = 0.0, 0
    for batch in tokens.split(batch_size):
        logits = model(batch)
        n = int((batch[:, 1:] != PAD_ID).sum())
        total += float(causal_lm_loss(logits, batch)) * n
        count += n
    return math.exp(total / count)
