"""Sequence to sequence, with and without attention (chapter 2, "seq2seq" and "Bahdanau attention").

* Sutskever et al. (2014): an encoder LSTM reads the source; its **last** state, the context
  vector (문맥 벡터), is all the decoder LSTM ever sees of it. As in Cho et al. (2014), our
  decoder starts from that state *and* reads the same context vector at every step, so that
  the model with attention differs only in how c_i is made. The decoder is trained with
  **teacher forcing** (교사 강요: it reads the true previous token) and used **auto-regressively**
  (자기 회귀: it reads its own previous output) until it writes ``<EOS>``.
* Bahdanau et al. (2015): at every step i the decoder scores *every* encoder state h_j against
  its previous state g_{i-1}, turns the scores into weights a_i = softmax(e_i) (the attention
  vector, 주목 벡터) and reads the context vector c_i = sum_j a_ij h_j, a different one per step.
  Scores: the dot product ``g^T h_j`` of the notes, or the paper's additive
  ``v^T tanh(W_q g + W_k h_j)``.
* The single-query form of the notes, ``c = softmax(q K^T) V`` (q: 1 x d; K, V: n x d), is
  :func:`qkv_attention`; chapter 3 scales and batches it.
* The Korean-number experiment (:func:`korean_numbers_experiment`): train a translation model on
  generated pairs and measure exact match by number of digits. Chapter 2 runs it for the RNNs,
  chapter 3 for the Transformer, with one budget (:func:`korean_numbers_budget`), so that the
  numbers of the two chapters agree by construction.

Decoding is written against a ``step`` function, ``step(y_prev (B,), state) -> (logits (B, V),
state)``, so that :func:`teacher_forcing_loss` and :func:`greedy_decode` work for any decoder (and
the lab can ask for exactly these two loops). Masks follow ``attnlab.attention``: bool, True =
may not be attended to (here: the source's padding).

Simplifications with respect to the papers: one layer, a unidirectional encoder (Bahdanau et
al. used a bidirectional GRU), no reversal of the source (Sutskever et al.), greedy decoding
instead of beam search, no dropout; in both models the decoder's first state is the encoder's
last state, and the decoder reads a context vector c_i at every step (fixed without attention).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attnlab.attention import masked_softmax
from attnlab.data import translation as tr
from attnlab.data.tokens import EOS_ID, IGNORE_INDEX, PAD_ID, SOS_ID, ignore_padding
from attnlab.training import History, by_profile, get_device, train

__all__ = [
    "dot_score", "additive_score", "AdditiveScore", "attend", "bahdanau_attention", "qkv_attention",
    "Encoder", "Decoder", "Seq2Seq", "teacher_forcing_loss", "greedy_decode",
    "KoreanNumbersBudget", "korean_numbers_budget", "TranslationRun", "exact_match", "korean_numbers_experiment",
]

Step = Callable[[torch.Tensor, object], tuple[torch.Tensor, object]]


# ----------------------------------------------------------------------------- attention maths
def dot_score(query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The notes' score e_j = s^T h_j. query: (B, D); keys: (B, S, D). Returns (B, S)."""
    return (keys @ query.unsqueeze(-1)).squeeze(-1)                       # (B, S, 1) -> (B, S)


def additive_score(query: torch.Tensor, keys: torch.Tensor, W_q: torch.Tensor, W_k: torch.Tensor,
                   v: torch.Tensor) -> torch.Tensor:
    """Bahdanau's score e_j = v^T tanh(W_q s + W_k h_j).

    Args:
        query: (B, D_q) the decoder's previous state; keys: (B, S, D_k) the encoder states.
        W_q: (A, D_q), W_k: (A, D_k), v: (A,) with A the width of the scoring layer.

    Returns:
        (B, S) scores, one per source position.
    """
    hidden = torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T)     # (B, 1, A) + (B, S, A) -> (B, S, A)
    return hidden @ v                                                     # (B, S)


def attend(scores: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights a = softmax(e) over the source positions, and the context vector c = sum_j a_j v_j.

    Args:
        scores: (B, S); values: (B, S, D); mask: (B, S) bool, True = may not be attended to.

    Returns:
        context (B, D) and weights (B, S) (each row sums to one; zeros for a fully masked row).
    """
    weights = masked_softmax(scores, mask)                                # (B, S); fully masked row -> 0
    context = (weights.unsqueeze(1) @ values).squeeze(1)                 # (B, 1, S) @ (B, S, D) -> (B, D)
    return context, weights


def bahdanau_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                       mask: torch.Tensor | None, W_q: torch.Tensor, W_k: torch.Tensor, v: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoder step of Bahdanau attention with the additive score.

    Args:
        query: (B, D_q) decoder state g_{i-1}; keys: (B, S, D_k); values: (B, S, D_v) (in the
            paper both are the encoder states h_j); mask: (B, S) bool, True = padding, or None;
        W_q: (A, D_q), W_k: (A, D_k), v: (A,) the scoring layer.

    Returns:
        context c_i (B, D_v) and weights a_i (B, S).
    """
    return attend(additive_score(query, keys, W_q, W_k, v), values, mask)


def qkv_attention(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The notes' query-key-value attention for one query: a = softmax(q K^T), c = a V.

    Args:
        q: (1, D) the query; K: (N, D) keys; V: (N, D_v) values (N = n in the notes).

    Returns:
        c (1, D_v) the context vector and a (1, N) the attention vector.
    """
    a = torch.softmax(q @ K.T, dim=-1)                                    # (1, N)
    return a @ V, a                                                       # (1, D_v)


class AdditiveScore(nn.Module):
    """Holds W_q, W_k and v of :func:`additive_score`."""

    def __init__(self, *, query_dim: int, key_dim: int, dim: int) -> None:
        super().__init__()
        self.W_q = nn.Linear(query_dim, dim, bias=False)
        self.W_k = nn.Linear(key_dim, dim, bias=False)
        self.v = nn.Linear(dim, 1, bias=False)

    def forward(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query: (B, D_q); keys: (B, S, D_k). Returns (B, S)."""
        return additive_score(query, keys, self.W_q.weight, self.W_k.weight, self.v.weight[0])


# -------------------------------------------------------------------------------------- model
class Encoder(nn.Module):
    """Embedding vectors (임베딩 벡터) of the source characters read by an LSTM."""

    def __init__(self, *, vocab_size: int, embed_dim: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.rnn = nn.LSTM(embed_dim, dim, batch_first=True)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """src: (B, S) ids; src_len: (B,) true lengths.

        Returns:
            states (B, S, D) (zeros at padding) and the state (h, c), each (B, D), after each
            sequence's last real token: Sutskever's context vector is that h.
        """
        B, S = src.shape
        lengths = src_len.cpu()                                           # packing reads the lengths on the CPU
        packed = pack_padded_sequence(self.embed(src), lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.rnn(packed)                                    # h, c: (1, B, D)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=S)   # (B, S, D)
        return states, (h[0], c[0])


class Decoder(nn.Module):
    """An LSTM decoder reading a context vector c_i with y_{i-1} at every step.

    Its state is g_i (the notes' letter; the LSTM's memory cell travels with it). The notes'
    extra weight U_4 for c_i is the part of ``cell.weight_ih`` that multiplies c_i (its last D
    columns), together with the part of ``out.weight`` that reads c_i.

    Args:
        attention: ``None`` (Sutskever / Cho: c_i = the encoder's last state, the same at every
            step), ``"dot"`` or ``"additive"`` (Bahdanau: c_i computed afresh by attention).
        bahdanau: the additive attention of one step, ``bahdanau(query, keys, values, mask, W_q,
            W_k, v) -> (context, weights)`` (default :func:`bahdanau_attention`; a lab plugs in the
            student's).
    """

    def __init__(self, *, vocab_size: int, embed_dim: int, dim: int, attention: str | None = None,
                 bahdanau: Callable | None = None) -> None:
        super().__init__()
        if attention not in (None, "dot", "additive"):
            raise ValueError(f"attention must be None, 'dot' or 'additive', got {attention!r}")
        self.attention = attention
        self.bahdanau = bahdanau or bahdanau_attention
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.cell = nn.LSTMCell(embed_dim + dim, dim)      # reads y_{i-1} and c_i
        self.score = (AdditiveScore(query_dim=dim, key_dim=dim, dim=dim)
                      if attention == "additive" else None)
        self.out = nn.Linear(dim + dim, vocab_size)       # predicts y_i from g_i and c_i

    def step(self, y_prev: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], memory: torch.Tensor,
             mask: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor | None]:
        """One decoding step.

        Args:
            y_prev: (B,) previous token; state: (g, memory cell), each (B, D).
            memory: with attention, (B, S, D) every encoder state; without, (B, D) the one
                context vector (the encoder's last state), the same at every step.
            mask: (B, S) bool, True = padding (ignored without attention).

        Returns:
            logits (B, V) of y_i, the new state, and the weights a_i (B, S) (None without attention).
        """
        weights = None
        g = state[0]                                                      # (B, D): the query g_{i-1}
        if self.attention == "dot":
            context, weights = attend(dot_score(g, memory), memory, mask)  # (B, D), (B, S)
        elif self.attention == "additive":
            score = self.score
            context, weights = self.bahdanau(g, memory, memory, mask, score.W_q.weight, score.W_k.weight,
                                             score.v.weight[0])           # (B, D), (B, S)
        else:
            context = memory                                              # (B, D): fixed context vector
        x = torch.cat([self.embed(y_prev), context], dim=-1)              # (B, E + D)
        g, cell = self.cell(x, state)                                     # (B, D) each
        return self.out(torch.cat([g, context], dim=-1)), (g, cell), weights   # (B, V)


class Seq2Seq(nn.Module):
    """Encoder + decoder; ``attention=None`` is Sutskever's model, ``"dot"``/``"additive"`` Bahdanau's.

    ``bahdanau`` replaces the additive attention function of the decoder (see :class:`Decoder`).
    """

    def __init__(self, *, src_vocab: int, tgt_vocab: int, embed_dim: int = 32, dim: int = 64,
                 attention: str | None = None, bahdanau: Callable | None = None) -> None:
        super().__init__()
        self.encoder = Encoder(vocab_size=src_vocab, embed_dim=embed_dim, dim=dim)
        self.decoder = Decoder(vocab_size=tgt_vocab, embed_dim=embed_dim, dim=dim, attention=attention,
                               bahdanau=bahdanau)

    def start(self, src: torch.Tensor, src_len: torch.Tensor, record: list | None = None) -> tuple[Step, object]:
        """Encode ``src`` (B, S); return a decoder ``step`` and its initial state.

        ``step(y_prev (B,), state) -> (logits (B, V), state)``; if ``record`` is a list, each
        step appends its attention weights (B, S) to it.
        """
        states, state = self.encoder(src, src_len)                        # (B, S, D), (B, D) x 2
        mask = src == PAD_ID                                              # (B, S) True = padding
        memory = states if self.decoder.attention else state[0]           # (B, S, D) or (B, D)

        def step(y_prev: torch.Tensor, st: object) -> tuple[torch.Tensor, object]:
            logits, st, weights = self.decoder.step(y_prev, st, memory, mask)
            if record is not None and weights is not None:
                record.append(weights)
            return logits, st

        return step, state

    def loss(self, src: torch.Tensor, src_len: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """Teacher-forcing cross-entropy of a batch; tgt: (B, T + 1) = <SOS> y_1 .. y_T <EOS> <PAD>..."""
        step, state = self.start(src, src_len)
        return teacher_forcing_loss(step, state, tgt)

    @torch.no_grad()
    def translate(self, src: torch.Tensor, src_len: torch.Tensor, *, max_len: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Greedy auto-regressive decoding. Returns tokens (B, L) and, with attention, weights (B, L, S)."""
        record: list[torch.Tensor] = []
        step, state = self.start(src, src_len, record)
        tokens = greedy_decode(step, state, batch_size=src.size(0), max_len=max_len)
        weights = torch.stack(record, dim=1) if record else None         # (B, L, S)
        return tokens, weights


# ------------------------------------------------------------------------ training and decoding
def teacher_forcing_loss(step: Step, state: object, tgt: torch.Tensor, *, pad_id: int = PAD_ID) -> torch.Tensor:
    """Cross-entropy of a decoder trained with teacher forcing.

    At step i the decoder reads the *true* previous token tgt[:, i] (not its own guess) and is
    scored on predicting tgt[:, i + 1].

    Args:
        step: ``step(y_prev (B,), state) -> (logits (B, V), state)``.
        state: the decoder's initial state.
        tgt: (B, T + 1) long, ``<SOS> y_1 ... y_T <EOS>`` then ``pad_id``.

    Returns:
        scalar: mean cross-entropy over the target tokens that are not padding (``<EOS>`` included).
    """
    inputs, labels = tgt[:, :-1], tgt[:, 1:]                              # (B, T) each
    logits = []
    for i in range(inputs.size(1)):
        out, state = step(inputs[:, i], state)                            # (B, V)
        logits.append(out)
    logits = torch.stack(logits, dim=1)                                   # (B, T, V)
    labels = ignore_padding(labels, pad_id)                              # padding is not scored
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


@torch.no_grad()
def greedy_decode(step: Step, state: object, *, batch_size: int, max_len: int, sos_id: int = SOS_ID,
                  eos_id: int = EOS_ID, pad_id: int = PAD_ID) -> torch.Tensor:
    """Auto-regressive greedy decoding: feed back the most likely token until ``<EOS>``.

    Args:
        step: ``step(y_prev (B,), state) -> (logits (B, V), state)``; state: its initial state.
        batch_size: B; max_len: the most tokens to write per sequence.

    Returns:
        (B, L) long with L <= max_len: each row's tokens up to and including its ``<EOS>``, then
        ``pad_id``, on the device of ``state`` (the CPU if it holds no tensor). Decoding stops as
        soon as every row has written ``<EOS>``. Every row is fed its own previous output, so a
        finished row is fed its ``<EOS>`` once, then ``pad_id``. ``max_len = 0`` gives a (B, 0) tensor.
    """
    device = _state_device(state)                                         # tokens live where the model does
    y = torch.full((batch_size,), sos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    out = [torch.empty(batch_size, 0, dtype=torch.long, device=device)]   # so that max_len = 0 gives (B, 0)
    for _ in range(max_len):
        logits, state = step(y, state)
        y = logits.argmax(dim=-1).masked_fill(done, pad_id)               # (B,); finished rows write padding
        out.append(y[:, None])
        done = done | (y == eos_id)
        if len(out) <= max_len and bool(done.all()):                     # no check needed after the last step
            break
    return torch.cat(out, dim=1)                                          # (B, L)


def _state_device(state: object) -> torch.device:
    """The device of a decoder state (a tensor or a tuple of tensors); the CPU for anything else."""
    while isinstance(state, (tuple, list)) and state:
        state = state[0]
    return state.device if isinstance(state, torch.Tensor) else torch.device("cpu")


# ---------------------------------------------------------- the Korean-number experiment (ch. 2, 3)
@dataclass(frozen=True)
class KoreanNumbersBudget:
    """What every model compared on the Korean-number task gets (chapters 2 and 3).

    Attributes:
        steps: optimisation steps, each on a fresh batch of ``batch_size`` pairs of 1 to
            ``max_digits`` digits; n_test: test pairs per number of digits; dim: the models' width D.
    """

    steps: int
    max_digits: int
    n_test: int
    dim: int
    batch_size: int = 64


def korean_numbers_budget(profile: str) -> KoreanNumbersBudget:
    """The budget of ``profile`` (``"smoke"``, ``"cpu"`` or ``"full"``)."""
    return by_profile(profile, smoke=KoreanNumbersBudget(steps=60, max_digits=6, n_test=50, dim=32),
                      cpu=KoreanNumbersBudget(steps=400, max_digits=8, n_test=200, dim=64),
                      full=KoreanNumbersBudget(steps=4000, max_digits=12, n_test=1000, dim=128))


@dataclass
class TranslationRun:
    """A trained model, its training :class:`History`, exact match by number of digits, seconds of training."""

    model: nn.Module
    history: History
    accuracy: dict[int, float]
    seconds: float


def exact_match(model: nn.Module, batch: tr.TranslationBatch, tgt_tok: tr.CharTokenizer, *, max_len: int) -> float:
    """Fraction of ``batch`` that ``model.translate`` (greedy) gets exactly right."""
    device = next(model.parameters()).device
    tokens, _ = model.translate(batch.src.to(device), batch.src_len, max_len=max_len)
    return sum(tgt_tok.decode(t) == target for t, (_, target) in zip(tokens.cpu(), batch.pairs)) / len(batch.pairs)


def korean_numbers_experiment(make_model: Callable[[], nn.Module], budget: KoreanNumbersBudget, *, lr: float,
                              warmup: int = 0, seed: int = 0, desc: str = "train") -> TranslationRun:
    """Build, train and test a translation model on Korean numbers -> digits.

    Args:
        make_model: builds the model (called once, under ``torch.random.fork_rng`` seeded with
            ``seed``: its initial weights and dropout depend on ``seed`` only, and the caller's
            random state is left as it was). The model has ``loss(src, src_len, tgt)`` and
            ``translate(src, src_len, max_len=) -> (tokens, ...)``, as :class:`Seq2Seq` and
            :class:`attnlab.transformer.Transformer` do.
        budget: steps, batch size, lengths and test size (:func:`korean_numbers_budget`).
        lr, warmup: the learning rate of AdamW and its linear warm-up (:func:`attnlab.training.train`).

    Returns:
        a :class:`TranslationRun`; the training batches come from a generator seeded with
        ``seed``, the test pairs with d digits from one seeded with 1000 + d: every model sees
        the same data.
    """
    src_tok, tgt_tok = tr.korean_tokenizers()
    data = torch.Generator().manual_seed(seed)

    def batches():
        pairs = tr.korean_number_pairs(budget.batch_size, generator=data, digits=(1, budget.max_digits))
        return [tr.make_batch(pairs, src_tok, tgt_tok)]

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = make_model().to(get_device())
        start = time.perf_counter()
        history = train(model, batches, lambda m, b: m.loss(b.src, b.src_len, b.tgt), steps=budget.steps, lr=lr,
                        warmup=warmup, desc=desc)
        seconds = time.perf_counter() - start
    accuracy = {}
    for d in range(1, budget.max_digits + 1):
        pairs = tr.korean_number_pairs(budget.n_test, generator=torch.Generator().manual_seed(1000 + d), digits=d)
        accuracy[d] = exact_match(model, tr.make_batch(pairs, src_tok, tgt_tok), tgt_tok, max_len=budget.max_digits + 2)
    return TranslationRun(model, history, accuracy, seconds)
