"""BERT: an encoder pre-trained by filling in hidden words (chapter 7, "BERT").

Devlin et al. (2019), "BERT: pre-training of deep bidirectional Transformers for language
understanding". Self-supervised (자율지도 학습): the labels are the text itself. Bottom-up:

* :func:`mask_tokens`: the masked language model's input. 15% of the word positions are chosen;
  of those, 80% are replaced by ``<MASK>``, 10% by a random word and 10% are left as they are
  (the 80/10/10 rule), and only the chosen positions carry a target;
* :class:`BERT`: token, position and segment embeddings, chapter 3's encoder stack
  (:class:`attnlab.transformer.Encoder`, post-norm as in the paper, GELU), and two heads: the MLM
  head (a vocabulary distribution at every position) and the next-sentence-prediction (NSP) head
  on the ``<CLS>`` vector;
* :func:`mlm_loss`, :func:`bert_loss` (MLM + NSP) and :func:`mlm_accuracy`.

The input of a pair is ``<CLS> sentence A <SEP> sentence B <SEP>`` (``attnlab.data.text``).
Simplifications with respect to the paper: whole words are tokens (no WordPiece); the output layer
does not share its weights with the token embedding; masked positions are drawn independently
(each word with probability 0.15, as common implementations do) instead of exactly 15% per
sequence; no dropout on the attention weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data.tokens import FIRST_WORD_ID, IGNORE_INDEX, MASK_ID, PAD_ID
from .transformer import Encoder, LayerNorm, LearnedPositionEmbedding, TokenEmbedding

__all__ = ["mask_tokens", "BERT", "mlm_loss", "bert_loss", "mlm_accuracy", "frequency_baselines"]


def mask_tokens(tokens: torch.Tensor, *, vocab_size: int, generator: torch.Generator, mask_prob: float = 0.15,
                mask_frac: float = 0.8, random_frac: float = 0.1, mask_id: int = MASK_ID,
                first_word_id: int = FIRST_WORD_ID) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's masking with the 80/10/10 rule.

    Each word position (an id ``>= first_word_id``; special tokens and padding are never chosen) is
    chosen with probability ``mask_prob``. A chosen position becomes ``mask_id`` with probability
    ``mask_frac``, a word drawn uniformly from ``[first_word_id, vocab_size)`` with probability
    ``random_frac``, and stays as it is otherwise. The model must predict the original word at
    every chosen position, whichever of the three happened to it: it cannot know which inputs were
    changed, so it has to keep a good representation of every word.

    Args:
        tokens: (B, T) long ids; not modified.
        generator: the only source of randomness.

    Returns:
        inputs: (B, T) long, the model's input; labels: (B, T) long, the original id at the chosen
        positions and ``IGNORE_INDEX`` everywhere else.
    """
    def draw(fn, *args):                                           # on the generator's device, then moved
        return fn(*args, tokens.shape, generator=generator).to(tokens.device)

    chosen = (draw(torch.rand) < mask_prob) & (tokens >= first_word_id)
    labels = torch.where(chosen, tokens, IGNORE_INDEX)
    u = draw(torch.rand)                                           # one draw decides what happens to a position
    to_mask = chosen & (u < mask_frac)
    to_random = chosen & (u >= mask_frac) & (u < mask_frac + random_frac)
    random_words = draw(torch.randint, first_word_id, vocab_size)
    inputs = torch.where(to_mask, mask_id, torch.where(to_random, random_words, tokens))
    return inputs, labels


class BERT(nn.Module):
    """A tiny BERT: embeddings (token + position + segment, then LayerNorm), N post-norm encoder
    layers, an MLM head at every position and an NSP head on ``<CLS>``.

    Args:
        vocab_size: V; max_len: the longest input T; dim: D; num_layers: N; num_heads: H;
        ffn_dim: F (default 4 D); dropout: on the embeddings and inside the layers;
        norm_first: pre-norm instead of the paper's post-norm.
    """

    def __init__(self, *, vocab_size: int, max_len: int, dim: int = 64, num_layers: int = 2, num_heads: int = 4,
                 ffn_dim: int | None = None, dropout: float = 0.1, norm_first: bool = False) -> None:
        super().__init__()
        self.token_embed = TokenEmbedding(vocab_size=vocab_size, dim=dim, scale=False)
        self.pos_embed = LearnedPositionEmbedding(dim=dim, max_len=max_len)
        self.segment_embed = nn.Embedding(2, dim)
        for table in (self.pos_embed.table, self.segment_embed.weight):
            # The three tables start at one scale (the token table's, std D^-1/2): the LayerNorm that
            # follows their sum would otherwise let the largest drown the others. With nn.Embedding's
            # default N(0, 1) the segment table hid the words and MLM learned several times slower.
            nn.init.normal_(table, std=dim ** -0.5)
        self.embed_norm = LayerNorm(dim=dim)
        self.dropout = nn.Dropout(dropout)
        self.encoder = Encoder(num_layers=num_layers, dim=dim, num_heads=num_heads, ffn_dim=ffn_dim or 4 * dim,
                               dropout=dropout, norm_first=norm_first, activation="gelu")
        self.mlm_head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), LayerNorm(dim=dim), nn.Linear(dim, vocab_size))
        self.nsp_head = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 2))   # BERT's pooler, then 2 classes

    def encode(self, tokens: torch.Tensor, segments: torch.Tensor | None = None, *, need_weights: bool = False):
        """tokens: (B, T) ids (``<PAD>`` = padding, never attended to); segments: (B, T) 0/1 or None.

        Returns the vectors in context (B, T, D); with ``need_weights``, ``(vectors, [weights
        (B, H, T, T) per layer])``.
        """
        segments = torch.zeros_like(tokens) if segments is None else segments
        x = self.pos_embed(self.token_embed(tokens)) + self.segment_embed(segments)     # (B, T, D)
        x = self.dropout(self.embed_norm(x))
        pad = (tokens == PAD_ID)[:, None, None, :]                                       # (B, 1, 1, T)
        return self.encoder(x, mask=pad, need_weights=need_weights)

    def forward(self, tokens: torch.Tensor, segments: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns MLM logits (B, T, V) and NSP logits (B, 2) (class 1 = "is next")."""
        h = self.encode(tokens, segments)                                                 # (B, T, D)
        return self.mlm_head(h), self.nsp_head(h[:, 0])                                   # <CLS> is position 0


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the chosen positions only: logits (B, T, V), labels (B, T) with
    ``IGNORE_INDEX`` where nothing was chosen."""
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


def bert_loss(model: BERT, tokens: torch.Tensor, segments: torch.Tensor, is_next: torch.Tensor, *,
              generator: torch.Generator, nsp_weight: float = 1.0) -> tuple[torch.Tensor, dict[str, float]]:
    """BERT's pre-training loss on one batch of pairs: MLM (masking drawn from ``generator``) +
    ``nsp_weight`` NSP (0: MLM alone, as RoBERTa; the NSP head then learns nothing).

    Returns the loss and ``{"mlm": ..., "nsp": ...}`` (floats, for logging).
    """
    inputs, labels = mask_tokens(tokens, vocab_size=model.mlm_head[-1].out_features, generator=generator)
    mlm_logits, nsp_logits = model(inputs, segments)
    mlm = mlm_loss(mlm_logits, labels)
    nsp = F.cross_entropy(nsp_logits, is_next)
    return mlm + nsp_weight * nsp, {"mlm": float(mlm.detach()), "nsp": float(nsp.detach())}


@torch.no_grad()
def mlm_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The fraction of chosen positions (labels != IGNORE_INDEX) whose most likely word is right."""
    chosen = labels != IGNORE_INDEX
    return float((logits.argmax(-1)[chosen] == labels[chosen]).float().mean())


def frequency_baselines(train_tokens: torch.Tensor, labels: torch.Tensor, *,
                        first_word_id: int = FIRST_WORD_ID) -> dict[str, float]:
    """The MLM accuracy of two guesses that read no context, for comparison with a model's.

    ``"most frequent word"``: always the word (id ``>= first_word_id``) most frequent in
    ``train_tokens`` (B, T); ``"most frequent word at its position"``: at position t, the word most
    frequent at t in ``train_tokens`` (a position never holding a word falls back to the first).
    Both are scored on the chosen positions of ``labels`` (B', T' <= T, ``IGNORE_INDEX`` elsewhere).
    """
    words = train_tokens >= first_word_id
    vocab = int(train_tokens.max()) + 1
    overall = torch.bincount(train_tokens[words], minlength=vocab).argmax()
    T = train_tokens.size(1)
    counts = torch.zeros(T, vocab)
    positions = torch.arange(T).expand_as(train_tokens)
    counts.index_put_((positions[words], train_tokens[words]), torch.ones(int(words.sum())), accumulate=True)
    per_position = torch.where(counts.sum(1) > 0, counts.argmax(1), overall)        # (T,)
    chosen = labels != IGNORE_INDEX
    truth = labels[chosen]
    at = torch.arange(labels.size(1)).expand_as(labels)[chosen]
    return {"most frequent word": float((truth == overall).float().mean()),
            "most frequent word at its position": float((truth == per_position[at]).float().mean())}
