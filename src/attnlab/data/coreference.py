"""Generated sentences in which "it" refers to one of two nouns, and only an adjective says which (chapter 3).

The notes' example (seed 004) is the pair

    the animal didn't cross the street because it was too tired     ("it" = the animal)
    the animal didn't cross the street because it was too wide      ("it" = the street)

No pretrained model can be downloaded here, so this module makes the phenomenon instead: many such
sentences, from a small lexicon in which every adjective fits **one kind** of noun only:

* creatures (animal, dog, horse, ...) can be tired, scared, lazy, ...; they never are wide;
* ways (street, river, road, ...) can be wide, busy, icy, ...; they never are tired.

Each sentence has one creature and one way, in either order ("the animal didn't cross the
street", "the street didn't stop the animal"), an optional opening ("yesterday", "this
morning") and a negation of one or two words, so the nouns move around. The label is the
**position** of the noun that "it" refers to: the noun whose kind the adjective fits. Neither the
order of the nouns nor the adjective alone gives the answer; both together do.

Words are tokens: :class:`WordTokenizer` is the course's :class:`~attnlab.data.translation.CharTokenizer`
over whole words (the same special ids, ``<PAD>`` = 0). Every generator takes a ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .tokens import PAD_ID
from .translation import CharTokenizer

__all__ = [
    "CREATURES", "WAYS", "CREATURE_ADJECTIVES", "WAY_ADJECTIVES", "CREATURE_VERBS", "WAY_VERBS",
    "NEGATIONS", "OPENINGS", "NOTES_SENTENCES",
    "CorefSentence", "parse", "coreference_sentences", "WordTokenizer", "coreference_tokenizer",
    "CorefBatch", "make_coref_batch",
]

CREATURES = ["animal", "dog", "cat", "horse", "cow", "boy", "girl", "child"]
WAYS = ["street", "road", "river", "bridge", "field", "valley", "canal", "highway"]
CREATURE_ADJECTIVES = ["tired", "scared", "lazy", "sleepy", "weak", "hungry", "nervous", "shy"]
WAY_ADJECTIVES = ["wide", "busy", "icy", "long", "steep", "muddy", "crowded", "deep"]
CREATURE_VERBS = ["cross", "enter", "leave", "climb"]     # "the creature didn't <verb> the way"
WAY_VERBS = ["stop", "slow", "hold", "welcome"]           # "the way didn't <verb> the creature"
NEGATIONS = ["didn't", "did not", "couldn't", "could not"]
OPENINGS = ["", "yesterday", "this morning", "at night"]
NOTES_SENTENCES = ("the animal didn't cross the street because it was too tired",
                   "the animal didn't cross the street because it was too wide")


@dataclass(frozen=True)
class CorefSentence:
    """One sentence and what its "it" refers to.

    Attributes:
        words: the sentence, one word per token.
        it: index of "it" in ``words``; referent: index of the noun it refers to; other: index
            of the other noun.
    """

    words: tuple[str, ...]
    it: int
    referent: int
    other: int

    @property
    def text(self) -> str:
        return " ".join(self.words)


def parse(text: str) -> CorefSentence:
    """Label a sentence written with the lexicon: ``parse(NOTES_SENTENCES[0]).referent == 1`` (animal).

    Raises:
        ValueError: if the sentence lacks "it", has not exactly one creature and one way, or its
            last word is not an adjective of the lexicon.
    """
    words = tuple(text.split())
    creatures = [i for i, w in enumerate(words) if w in CREATURES]
    ways = [i for i, w in enumerate(words) if w in WAYS]
    if "it" not in words or len(creatures) != 1 or len(ways) != 1:
        raise ValueError(f"need one 'it', one creature and one way: {text!r}")
    adjective = words[-1]
    if adjective not in CREATURE_ADJECTIVES + WAY_ADJECTIVES:
        raise ValueError(f"the last word must be an adjective of the lexicon, got {adjective!r}")
    fits_creature = adjective in CREATURE_ADJECTIVES
    referent, other = (creatures[0], ways[0]) if fits_creature else (ways[0], creatures[0])
    return CorefSentence(words, words.index("it"), referent, other)


def _pick(options: Sequence[str], generator: torch.Generator) -> str:
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def coreference_sentences(n: int, *, generator: torch.Generator) -> list[CorefSentence]:
    """``n`` random sentences "[opening] the X <negation> <verb> the Y because it was too <adjective>".

    The order (creature first or way first), the nouns, the verb, the negation, the opening and
    the adjective (half the time one that fits the creature, half the time the way) are drawn
    independently from ``generator``.
    """
    out = []
    for _ in range(n):
        creature, way = _pick(CREATURES, generator), _pick(WAYS, generator)
        creature_first = bool(torch.randint(2, (1,), generator=generator))
        subject, verb, obj = ((creature, _pick(CREATURE_VERBS, generator), way) if creature_first
                              else (way, _pick(WAY_VERBS, generator), creature))
        fits_creature = bool(torch.randint(2, (1,), generator=generator))
        adjective = _pick(CREATURE_ADJECTIVES if fits_creature else WAY_ADJECTIVES, generator)
        opening, negation = _pick(OPENINGS, generator), _pick(NEGATIONS, generator)
        text = f"{opening} the {subject} {negation} {verb} the {obj} because it was too {adjective}"
        out.append(parse(text))
    return out


class WordTokenizer(CharTokenizer):
    """:class:`~attnlab.data.translation.CharTokenizer` over whole words: ``encode`` splits a string
    on spaces, ``decode`` joins with spaces. ``<PAD>``, ``<SOS>``, ``<EOS>`` keep ids 0, 1, 2."""

    sep = " "

    def encode(self, text: str | Sequence[str], *, sos: bool = False, eos: bool = False) -> list[int]:
        """Ids of the words of ``text`` (no ``<EOS>`` by default: a sentence to classify, not to generate)."""
        return super().encode(text.split() if isinstance(text, str) else list(text), sos=sos, eos=eos)


def coreference_tokenizer() -> WordTokenizer:
    """The vocabulary of every sentence :func:`coreference_sentences` can write, in a fixed order."""
    words = ["the", "because", "it", "was", "too"] + " ".join(NEGATIONS + OPENINGS).split()
    return WordTokenizer(words + CREATURES + WAYS + CREATURE_VERBS + WAY_VERBS + CREATURE_ADJECTIVES + WAY_ADJECTIVES)


@dataclass
class CorefBatch:
    """Padded sentences and their labels.

    Attributes:
        tokens: (B, T) long word ids, padded with ``<PAD>``; pad: (B, T) bool, True = padding;
        it: (B,) long index of "it"; referent: (B,) long index of its noun (the label).
    """

    tokens: torch.Tensor
    pad: torch.Tensor
    it: torch.Tensor
    referent: torch.Tensor


def make_coref_batch(sentences: Sequence[CorefSentence], tokenizer: WordTokenizer) -> CorefBatch:
    """Encode and pad ``sentences`` into a :class:`CorefBatch`."""
    T = max(len(s.words) for s in sentences)
    tokens = torch.full((len(sentences), T), PAD_ID, dtype=torch.long)
    for b, s in enumerate(sentences):
        tokens[b, : len(s.words)] = torch.tensor(tokenizer.encode(s.words))
    it = torch.tensor([s.it for s in sentences])
    referent = torch.tensor([s.referent for s in sentences])
    return CorefBatch(tokens, tokens == PAD_ID, it, referent)
