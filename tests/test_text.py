"""attnlab.data.text: the grammar's sentences, their exact probabilities, agreement, NSP pairs, tokens."""

import math

import pytest
import torch

from attnlab.data import scenes as sc
from attnlab.data import text as tx
from attnlab.data import tokens


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_the_same_generator_state_gives_the_same_sentences():
    assert [s.words for s in tx.sentences(20, generator=gen(3))] == [s.words for s in tx.sentences(20, generator=gen(3))]
    assert [s.words for s in tx.sentences(20, generator=gen(3))] != [s.words for s in tx.sentences(20, generator=gen(4))]


def test_every_sentence_is_grammatical_and_agrees():
    for s in tx.sentences(500, generator=gen(1)):
        assert tx.is_grammatical(s.words), s.text
        noun = s.words[s.subject]
        assert (noun in tx.PLURALS.values()) == s.plural, s.text
        assert s.words[s.verb] == ("are" if s.plural else "is"), s.text
        if s.attractor >= 0:
            assert s.words[s.subject + 1] == "that", s.text
            assert s.words[s.subject + 2] in [verb[int(s.plural)] for verb in tx.VERBS], s.text
            assert s.subject < s.attractor < s.verb
        else:
            assert s.verb == s.subject + 1


@pytest.mark.parametrize("text", [
    "the circles is small",                                  # agreement of the main verb
    "the circle are small",
    "the circle that touch the squares is small",            # agreement inside the relative clause
    "the circle that touches the squares are small",         # the attractor's number, not the subject's
    "the circle is",                                         # no predicate
    "the circle is at the",                                  # a broken position phrase
    "the small small circle is large",
    "circle is large",
    "the circle is next to the small square",                # no size inside "next to"
])
def test_ungrammatical_sentences_are_recognised(text):
    assert not tx.is_grammatical(text)


def test_log_prob_is_the_exact_probability():
    """"the ring is large": no size (1/2), no colour (1/2), ring (1/6), singular (1/2), no relative
    clause (1/2), a size predicate (1/3), large (1/2): 1/576; and a family of sentences comes out as
    often as its probability says."""
    batch = tx.sentences(6000, generator=gen(2))
    ring = [s for s in batch if s.text == "the ring is large"]
    assert ring and all(s.log_prob == pytest.approx(-math.log(576)) for s in ring)
    # "the <noun> is/are <size>": 1/2 * 1/2 * 1/2 * 1/3 = 1/24 of all sentences
    family = sum(len(s.words) == 4 and s.words[3] in sc.SIZES for s in batch)
    expected, sd = 6000 / 24, math.sqrt(6000 / 24 * 23 / 24)
    assert abs(family - expected) < 4 * sd, (family, expected)
    for s in batch[:200]:
        assert s.log_prob < 0


def test_entropy_per_token_counts_eos():
    batch = tx.sentences(50, generator=gen(5))
    h = tx.entropy_per_token(batch)
    assert h == pytest.approx(-sum(s.log_prob for s in batch) / sum(len(s.words) + 1 for s in batch))
    assert 0.5 < h < math.log(len(tx.text_tokenizer()))


def test_pairs_continue_the_same_object_half_the_time():
    pairs = tx.sentence_pairs(400, generator=gen(6))
    share = sum(p.is_next for p in pairs) / len(pairs)
    assert 0.4 < share < 0.6
    for p in pairs:
        a, b = p.first, p.second
        assert tx.is_grammatical(a.words) and tx.is_grammatical(b.words)
        if p.is_next:
            assert a.words[a.subject] == b.words[b.subject]
            colours = [w for s in (a, b) for w in s.words[: s.subject] if w in sc.COLOURS]
            assert len(set(colours)) <= 1, (a.text, b.text)
    different = [p for p in pairs if not p.is_next and p.first.words[p.first.subject] != p.second.words[p.second.subject]]
    assert len(different) > 0.8 * sum(not p.is_next for p in pairs)


def test_tokenizer_reserves_the_special_ids_and_reads_every_caption():
    tok = tx.text_tokenizer()
    assert tok.itos[:6] == list(tokens.SPECIAL_TOKENS + tokens.BERT_TOKENS)
    assert [tok.stoi[t] for t in tokens.BERT_TOKENS] == [tokens.MASK_ID, tokens.CLS_ID, tokens.SEP_ID]
    assert tokens.FIRST_WORD_ID == 6 and len(set(tok.itos)) == len(tok.itos)
    scenes = sc.make_scenes(40, generator=gen(7), config=sc.preset("easy", num_objects=(1, 3)))
    for caption in scenes.captions:
        assert tok.decode(tok.encode(caption)) == caption
    for s in tx.sentences(100, generator=gen(8)):
        assert tok.decode(tok.encode(s.words)) == s.text


def test_encode_texts_frames_and_pads():
    tok = tx.text_tokenizer()
    out = tx.encode_texts(["a circle", "a large red ring"], tok)
    assert out.tolist() == [[1, tok.stoi["a"], tok.stoi["circle"], 2, 0, 0],
                            [1, tok.stoi["a"], tok.stoi["large"], tok.stoi["red"], tok.stoi["ring"], 2]]
    assert tx.encode_texts(["a circle"], tok, sos=False, length=5).tolist() == [[tok.stoi["a"], tok.stoi["circle"], 2, 0, 0]]
    with pytest.raises(ValueError):
        tx.encode_texts(["a large red ring"], tok, length=3)


def test_pair_batch_layout():
    tok = tx.text_tokenizer()
    pairs = tx.sentence_pairs(5, generator=gen(9))
    batch = tx.make_pair_batch(pairs, tok)
    for i, p in enumerate(pairs):
        a, b = len(p.first.words), len(p.second.words)
        row = batch.tokens[i].tolist()
        assert row[0] == tokens.CLS_ID and row[a + 1] == tokens.SEP_ID and row[a + b + 2] == tokens.SEP_ID
        assert tok.decode(row[1: a + 1]) == p.first.text and tok.decode(row[a + 2: a + b + 2]) == p.second.text
        assert all(t == tokens.PAD_ID for t in row[a + b + 3:])
        assert batch.segments[i, : a + 2].eq(0).all() and batch.segments[i, a + 2:].eq(1).all()
    assert batch.is_next.tolist() == [int(p.is_next) for p in pairs]
