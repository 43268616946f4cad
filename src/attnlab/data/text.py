"""Generated English about the scenes' objects: the text that chapter 7's language models pre-train on.

No text corpus can be downloaded, so this module writes one from a small grammar whose words are
the words of the scenes' captions (:mod:`attnlab.data.scenes`: shapes, colours, sizes, positions)::

    sentence  -> subject [relative clause] verb predicate
    subject   -> "the" [size] [colour] noun                    noun: singular or plural shape
    relative  -> "that" touches/covers "the" [colour] noun      (half the sentences have one)
    verb      -> "is" (singular subject) | "are" (plural subject)
    predicate -> size | position phrase | "next to the" [colour] noun

e.g. "the small red circle that touches the blue squares is at the top left". Two kinds of
structure are there to be learned:

* **agreement**: the verb of the relative clause ("touches" / "touch") and the main verb ("is" /
  "are") agree with the subject's number;
* a **long-range dependency**: the main verb agrees with the subject *across* the relative clause,
  whose own noun has its own number (the "attractor": "the circle that touches the squares *is*").

Every choice is drawn from the ``torch.Generator`` passed in, and the grammar is unambiguous, so
each :class:`Sentence` carries the natural log of its exact probability: the entropy of the
corpus, the best any language model can do, is known (:func:`entropy_per_token`).

For next-sentence prediction (BERT), :func:`sentence_pairs` writes two sentences about one object
(the same shape and number, the colour said or not); half the pairs have their second sentence
replaced by one about another object. Words are tokens: :func:`text_tokenizer` is the course's
:class:`~attnlab.data.coreference.WordTokenizer` with ``<PAD>``, ``<SOS>``, ``<EOS>`` = 0, 1, 2 and
BERT's ``<MASK>``, ``<CLS>``, ``<SEP>`` = 3, 4, 5 (:mod:`attnlab.data.tokens`), and it also reads
every caption of the scenes (CLIP).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from .coreference import WordTokenizer
from .scenes import COLOURS, POSITIONS, SHAPES, SIZES, position_phrase
from .tokens import BERT_TOKENS, CLS_ID, EOS_ID, FIRST_WORD_ID, PAD_ID, SEP_ID, SOS_ID

__all__ = [
    "PLURALS", "VERBS", "Sentence", "sentences", "entropy_per_token", "is_grammatical", "SentencePair",
    "sentence_pairs", "text_tokenizer", "encode_texts", "PairBatch", "make_pair_batch",
]

PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "cross": "crosses",
           "ring": "rings", "diamond": "diamonds"}
VERBS = (("touches", "touch"), ("covers", "cover"))       # (singular, plural) verbs of the relative clause
_POSITION_PHRASES = [position_phrase(p).split() for p in range(len(POSITIONS))]
_PREDICATES = ("size", "position", "next to")


@dataclass(frozen=True)
class Sentence:
    """One sentence of the grammar.

    Attributes:
        words: the sentence, one word per token.
        log_prob: natural log of the probability that :func:`sentences` writes exactly these words.
        subject: index of the subject's noun; verb: index of the main verb ("is" / "are").
        attractor: index of the relative clause's noun, or -1 when there is no relative clause.
        plural: whether the subject (and so the verb) is plural.
    """

    words: tuple[str, ...]
    log_prob: float
    subject: int
    verb: int
    attractor: int
    plural: bool

    @property
    def text(self) -> str:
        return " ".join(self.words)


class _Writer:
    """Draws words and adds up the log-probability of every choice."""

    def __init__(self, generator: torch.Generator) -> None:
        self.generator, self.log_prob, self.words = generator, 0.0, []

    def _pick(self, n: int) -> int:
        self.log_prob -= math.log(n)
        return int(torch.randint(n, (1,), generator=self.generator))

    def maybe(self) -> bool:
        return self._pick(2) == 1

    def noun_phrase(self, *, size: bool, shape: int | None = None, plural: bool | None = None,
                    colour: int | None = None) -> tuple[int, bool]:
        """"the [size] [colour] noun", the size (if allowed) and the colour said half the time each. A
        shape, number or colour passed in is not drawn (and adds nothing to ``log_prob``)."""
        self.words.append("the")
        if size and self.maybe():
            self.words.append(SIZES[self._pick(len(SIZES))])
        if self.maybe():
            self.words.append(COLOURS[self._pick(len(COLOURS)) if colour is None else colour])
        shape = self._pick(len(SHAPES)) if shape is None else shape
        plural = self.maybe() if plural is None else plural
        self.words.append(PLURALS[SHAPES[shape]] if plural else SHAPES[shape])
        return shape, plural


def _sentence(generator: torch.Generator, subject: tuple[int, bool, int] | None = None) -> Sentence:
    """One sentence; ``subject`` = (shape, plural, colour) fixes what its subject is (the colour is
    still said or not at random)."""
    w = _Writer(generator)
    shape, plural, colour = subject if subject is not None else (None, None, None)
    shape, plural = w.noun_phrase(size=True, shape=shape, plural=plural, colour=colour)
    head, attractor = len(w.words) - 1, -1
    if w.maybe():                                                  # a relative clause
        w.words += ["that", VERBS[w._pick(len(VERBS))][int(plural)]]
        w.noun_phrase(size=False)
        attractor = len(w.words) - 1
    verb = len(w.words)
    w.words.append("are" if plural else "is")
    kind = _PREDICATES[w._pick(len(_PREDICATES))]
    if kind == "size":
        w.words.append(SIZES[w._pick(len(SIZES))])
    elif kind == "position":
        w.words += _POSITION_PHRASES[w._pick(len(POSITIONS))]
    else:
        w.words += ["next", "to"]
        w.noun_phrase(size=False)
    return Sentence(tuple(w.words), w.log_prob, head, verb, attractor, plural)


def sentences(n: int, *, generator: torch.Generator) -> list[Sentence]:
    """``n`` sentences of the grammar, every choice drawn from ``generator``."""
    return [_sentence(generator) for _ in range(n)]


def entropy_per_token(batch: Sequence[Sentence]) -> float:
    """The corpus's cross-entropy under the grammar itself, in nats per predicted token: the total
    -log p of the sentences over their words plus one ``<EOS>`` each. Its exponential is the lowest
    perplexity a language model can reach on text drawn from :func:`sentences`."""
    return -sum(s.log_prob for s in batch) / sum(len(s.words) + 1 for s in batch)


_NOUNS = {**{shape: False for shape in SHAPES}, **{plural: True for plural in PLURALS.values()}}


def _read_noun_phrase(words: Sequence[str], i: int, *, size: bool) -> tuple[int, bool | None]:
    """Read "the [size] [colour] noun" from ``words[i]``; return the index after it and the noun's
    number (None when the words are not a noun phrase)."""
    if i >= len(words) or words[i] != "the":
        return i, None
    i += 1
    if size and i < len(words) and words[i] in SIZES:
        i += 1
    if i < len(words) and words[i] in COLOURS:
        i += 1
    if i < len(words) and words[i] in _NOUNS:
        return i + 1, _NOUNS[words[i]]
    return i, None


def is_grammatical(words: Sequence[str] | str) -> bool:
    """Whether :func:`sentences` can write ``words`` (a string or a list of words), agreement included."""
    words = words.split() if isinstance(words, str) else list(words)
    i, plural = _read_noun_phrase(words, 0, size=True)
    if plural is None:
        return False
    if i < len(words) and words[i] == "that":
        if i + 1 >= len(words) or words[i + 1] not in [v[int(plural)] for v in VERBS]:
            return False
        i, other = _read_noun_phrase(words, i + 2, size=False)
        if other is None:
            return False
    if i >= len(words) or words[i] != ("are" if plural else "is"):
        return False
    rest = words[i + 1:]
    if rest[:2] == ["next", "to"]:
        end, other = _read_noun_phrase(rest, 2, size=False)
        return other is not None and end == len(rest)
    return (len(rest) == 1 and rest[0] in SIZES) or rest in _POSITION_PHRASES


@dataclass(frozen=True)
class SentencePair:
    """Two sentences and whether the second continues the first (NSP's label).

    ``is_next``: the second sentence is about the same object as the first (the same shape and
    number; the colour, when said, the same); otherwise it is about an object drawn independently.
    """

    first: Sentence
    second: Sentence
    is_next: bool


def sentence_pairs(n: int, *, generator: torch.Generator) -> list[SentencePair]:
    """``n`` pairs, half of them (drawn at random) with a second sentence about another object."""
    def _thing() -> tuple[int, bool, int]:
        return (int(torch.randint(len(SHAPES), (1,), generator=generator)),
                bool(torch.randint(2, (1,), generator=generator)),
                int(torch.randint(len(COLOURS), (1,), generator=generator)))

    pairs = []
    for _ in range(n):
        subject = _thing()
        is_next = bool(torch.randint(2, (1,), generator=generator))
        first = _sentence(generator, subject)
        second = _sentence(generator, subject if is_next else _thing())
        pairs.append(SentencePair(first, second, is_next))
    return pairs


def text_tokenizer() -> WordTokenizer:
    """The vocabulary of the grammar and of every scene caption, in a fixed order: ``<PAD>``,
    ``<SOS>``, ``<EOS>``, ``<MASK>``, ``<CLS>``, ``<SEP>``, then the words (from :data:`FIRST_WORD_ID`)."""
    words = ["the", "a", "that", "is", "are", "next", "to", "at", "on", "in", "and"] + [w for v in VERBS for w in v]
    words += list(SIZES) + list(COLOURS) + list(SHAPES) + list(PLURALS.values())
    words += sorted({w for phrase in _POSITION_PHRASES for w in phrase} - set(words))
    tokenizer = WordTokenizer(list(BERT_TOKENS) + words)
    assert [tokenizer.stoi[t] for t in BERT_TOKENS] == list(range(FIRST_WORD_ID - len(BERT_TOKENS), FIRST_WORD_ID))
    return tokenizer


def encode_texts(texts: Sequence[Sentence | str | Sequence[str]], tokenizer: WordTokenizer, *, sos: bool = True,
                 eos: bool = True, length: int | None = None) -> torch.Tensor:
    """(B, T) long ids of ``texts`` (sentences, strings or word lists), each framed by ``<SOS>`` /
    ``<EOS>`` as asked and padded with ``<PAD>`` to the longest (or to ``length``)."""
    rows = [tokenizer.encode(t.words if isinstance(t, Sentence) else t, sos=sos, eos=eos) for t in texts]
    T = max(len(r) for r in rows) if length is None else length
    out = torch.full((len(rows), T), PAD_ID, dtype=torch.long)
    for b, r in enumerate(rows):
        if len(r) > T:
            raise ValueError(f"text {b} has {len(r)} tokens, more than length = {T}")
        out[b, : len(r)] = torch.tensor(r)
    return out


@dataclass
class PairBatch:
    """BERT's input for a batch of sentence pairs: ``<CLS> first <SEP> second <SEP> <PAD>...``.

    Attributes:
        tokens: (B, T) long ids; segments: (B, T) long, 0 for ``<CLS>``, the first sentence and its
        ``<SEP>``, 1 for the rest (padding included); is_next: (B,) long, 1 = the second sentence
        continues the first.
    """

    tokens: torch.Tensor
    segments: torch.Tensor
    is_next: torch.Tensor


def make_pair_batch(pairs: Sequence[SentencePair], tokenizer: WordTokenizer) -> PairBatch:
    """Encode and pad ``pairs`` into a :class:`PairBatch`."""
    first = [tokenizer.encode(p.first.words) for p in pairs]
    second = [tokenizer.encode(p.second.words) for p in pairs]
    T = max(len(a) + len(b) for a, b in zip(first, second)) + 3
    tokens = torch.full((len(pairs), T), PAD_ID, dtype=torch.long)
    segments = torch.ones(len(pairs), T, dtype=torch.long)
    for i, (a, b) in enumerate(zip(first, second)):
        row = [CLS_ID] + a + [SEP_ID] + b + [SEP_ID]
        tokens[i, : len(row)] = torch.tensor(row)
        segments[i, : len(a) + 2] = 0
    return PairBatch(tokens, segments, torch.tensor([int(p.is_next) for p in pairs]))
