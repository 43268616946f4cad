"""Tests of attnlab.data.coreference: the lexicon, the labels, determinism, tokenizer and batches."""

import pytest
import torch

from attnlab.data import coreference as C
from attnlab.data.tokens import EOS_ID, PAD_ID, SOS_ID


def _g(seed):
    return torch.Generator().manual_seed(seed)


def test_the_notes_sentences_are_labelled_animal_and_street():
    tired, wide = (C.parse(s) for s in C.NOTES_SENTENCES)
    assert tired.words[tired.referent] == "animal" and tired.words[tired.other] == "street"
    assert wide.words[wide.referent] == "street" and wide.words[wide.other] == "animal"
    assert tired.words[tired.it] == "it" and tired.it == 7


def test_every_adjective_fits_one_kind_of_noun_only():
    assert not set(C.CREATURE_ADJECTIVES) & set(C.WAY_ADJECTIVES)
    assert not set(C.CREATURES) & set(C.WAYS)
    assert len(C.CREATURES) >= 4 and len(C.WAYS) >= 4           # several nouns of each kind


def test_labels_follow_the_adjective_whatever_the_order():
    sentences = C.coreference_sentences(400, generator=_g(0))
    sides = set()
    for s in sentences:
        referent, adjective = s.words[s.referent], s.words[-1]
        assert (referent in C.CREATURES) == (adjective in C.CREATURE_ADJECTIVES)
        assert (referent in C.WAYS) == (adjective in C.WAY_ADJECTIVES)
        assert s.words[s.it] == "it" and s.other != s.referent
        sides.add(s.referent < s.other)
    assert sides == {True, False}                              # the referent is sometimes first, sometimes second
    referents = [s.words[s.referent] for s in sentences]
    assert 0.35 < sum(r in C.CREATURES for r in referents) / len(referents) < 0.65
    positions = {s.referent for s in sentences}
    assert len(positions) >= 4                                 # the nouns move around


def test_generation_depends_only_on_the_generator():
    a = C.coreference_sentences(20, generator=_g(3))
    torch.manual_seed(123)
    b = C.coreference_sentences(20, generator=_g(3))
    assert a == b
    assert a != C.coreference_sentences(20, generator=_g(4))


def test_parse_rejects_sentences_it_cannot_label():
    with pytest.raises(ValueError, match="creature"):
        C.parse("the animal didn't cross the dog because it was too tired")
    with pytest.raises(ValueError, match="adjective"):
        C.parse("the animal didn't cross the street because it was too green")


def test_word_tokenizer_and_batches():
    tok = C.coreference_tokenizer()
    assert tok.itos[:3] == ["<PAD>", "<SOS>", "<EOS>"]
    ids = tok.encode(C.NOTES_SENTENCES[0])
    assert EOS_ID not in ids and tok.decode(ids) == C.NOTES_SENTENCES[0]
    assert tok.encode("the it", sos=True, eos=True)[0] == SOS_ID
    sentences = C.coreference_sentences(8, generator=_g(5))
    for s in sentences:                                          # every generated word is in the vocabulary
        tok.encode(s.words)
    batch = C.make_coref_batch(sentences, tok)
    T = max(len(s.words) for s in sentences)
    assert batch.tokens.shape == (8, T) and batch.pad.shape == (8, T)
    for b, s in enumerate(sentences):
        assert batch.pad[b].sum() == T - len(s.words)
        assert (batch.tokens[b][batch.pad[b]] == PAD_ID).all()
        assert tok.itos[batch.tokens[b, batch.it[b]]] == "it"
        assert batch.referent[b] == s.referent
