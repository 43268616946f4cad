"""Tests of attnlab.data.translation: tokenizer, date and Korean-number generators, batches."""

import datetime as dt
import re

import pytest
import torch

from attnlab.data import translation as tr
from attnlab.data.tokens import EOS_ID, PAD_ID, SOS_ID

# strptime patterns of each format (an independent reading of what format_date writes).
STRPTIME = {
    "weekday_day_month_year": "%A, %d %B %Y",
    "day_month_year": "%d %B %Y",
    "day_mon_year": "%d %b %Y",
    "month_day_year": "%B %d, %Y",
    "mon_day_year": "%b %d, %Y",
    "dd/mm/yy": "%d/%m/%y",
    "dd.mm.yyyy": "%d.%m.%Y",
    "weekday_mon_day": "%a %b %d %Y",
}


def test_tokenizer_specials_and_round_trip():
    tok = tr.CharTokenizer("abca")
    assert tok.itos[:3] == ["<PAD>", "<SOS>", "<EOS>"]
    assert (PAD_ID, SOS_ID, EOS_ID) == (0, 1, 2)
    assert len(tok) == 6  # duplicates removed
    ids = tok.encode("cab", sos=True)
    assert ids == [1, 5, 3, 4, 2]
    assert tok.decode(ids) == "cab"
    assert tok.decode([3, 0, 4, 2, 5, 5]) == "ab"  # PAD skipped, stops at EOS
    assert tok.decode(torch.tensor([4, 4])) == "bb"
    with pytest.raises(KeyError):
        tok.encode("abz")


def test_every_date_format_parses_back_to_its_target():
    src_tok, tgt_tok = tr.date_tokenizers()
    g = torch.Generator().manual_seed(1)
    for name, pattern in STRPTIME.items():
        for source, target in tr.date_pairs(40, generator=g, formats=[name]):
            parsed = dt.datetime.strptime(source, pattern).date()
            want = dt.date.fromisoformat(target)
            assert 1950 <= want.year <= 2049
            if name == "dd/mm/yy":  # strptime's two-digit window differs from ours
                assert (parsed.year % 100, parsed.month, parsed.day) == (want.year % 100, want.month, want.day)
            else:
                assert parsed == want, (source, target)
            assert src_tok.decode(src_tok.encode(source)) == source
            assert tgt_tok.decode(tgt_tok.encode(target)) == target


def test_date_pairs_are_deterministic_and_padded_as_asked():
    a = tr.date_pairs(30, generator=torch.Generator().manual_seed(7), pad_words=(2, 5))
    b = tr.date_pairs(30, generator=torch.Generator().manual_seed(7), pad_words=(2, 5))
    c = tr.date_pairs(30, generator=torch.Generator().manual_seed(8), pad_words=(2, 5))
    assert a == b and a != c
    counts = set()
    for source, target in a:
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", target)
        # the filler words are the trailing words that are in FILLER_WORDS and not part of the date
        words = source.split(" ")
        k = 0
        while words[-1 - k] in tr.FILLER_WORDS:
            k += 1
        counts.add(k)
        assert 2 <= k <= 5
    assert len(counts) > 1
    short = tr.date_pairs(20, generator=torch.Generator().manual_seed(3), pad_words=0)
    longer = tr.date_pairs(20, generator=torch.Generator().manual_seed(3), pad_words=6)
    assert [t for _, t in short] != [] and all(len(s) > 20 for s, _ in longer)
    with pytest.raises(ValueError):
        tr.date_pairs(1, generator=torch.Generator(), pad_words=(3, 1))


# An independent reader of Korean numerals, for the round trip.
_DIG = {ch: i for i, ch in enumerate("영일이삼사오육칠팔구")}
_SMALL = {"십": 10, "백": 100, "천": 1000}
_BIG = {"만": 10**4, "억": 10**8, "조": 10**12}


def _parse_korean(text: str) -> int:
    total, group, digit = 0, 0, None
    for ch in text:
        if ch in _DIG:
            digit = _DIG[ch]
        elif ch in _SMALL:
            group += (1 if digit is None else digit) * _SMALL[ch]
            digit = None
        else:
            group += digit or 0
            total += (group or 1) * _BIG[ch]
            group, digit = 0, None
    return total + group + (digit or 0)


def test_korean_numbers_known_readings():
    assert tr.korean_number(3211) == "삼천이백십일"
    assert tr.korean_number(0) == "영"
    assert tr.korean_number(10) == "십"
    assert tr.korean_number(1111) == "천백십일"
    assert tr.korean_number(10000) == "만"
    assert tr.korean_number(20003) == "이만삼"
    assert tr.korean_number(100_000_000) == "일억"
    assert tr.korean_number(1_0001_0000) == "일억만"
    with pytest.raises(ValueError):
        tr.korean_number(10**16)
    assert tr.romanize("삼천이백십일") == ["sam", "cheon", "i", "baek", "sip", "il"]
    src_tok, _ = tr.korean_tokenizers()
    syllables = [ch for ch in src_tok.itos[3:]]
    names = tr.romanize("".join(syllables))
    assert len(set(names)) == len(syllables) and all(n.isascii() for n in names)


def test_korean_numbers_round_trip_exhaustively_and_at_random():
    for n in range(0, 30000):
        assert _parse_korean(tr.korean_number(n)) == n
    g = torch.Generator().manual_seed(0)
    pairs = tr.korean_number_pairs(500, generator=g, digits=(1, 16))
    src_tok, tgt_tok = tr.korean_tokenizers()
    for words, digits in pairs:
        assert _parse_korean(words) == int(digits)
        assert digits == str(int(digits))  # no leading zeros
        src_tok.encode(words), tgt_tok.encode(digits)
    assert {len(d) for _, d in pairs} == set(range(1, 17))
    assert tr.korean_number_pairs(5, generator=torch.Generator().manual_seed(2), digits=6) == \
        tr.korean_number_pairs(5, generator=torch.Generator().manual_seed(2), digits=6)


def test_make_batch_pads_and_frames():
    src_tok, tgt_tok = tr.korean_tokenizers()
    pairs = [("삼천이백십일", "3211"), ("십", "10")]
    b = tr.make_batch(pairs, src_tok, tgt_tok)
    assert b.src.shape == (2, 7) and b.src.dtype == torch.long
    assert b.src_len.tolist() == [7, 2]
    assert b.src[1, 1].item() == EOS_ID and (b.src[1, 2:] == PAD_ID).all()
    assert b.tgt.shape == (2, 6)
    assert b.tgt[:, 0].tolist() == [SOS_ID, SOS_ID]
    assert tgt_tok.decode(b.tgt[0]) == "3211" and tgt_tok.decode(b.tgt[1]) == "10"
    assert b.tgt[1].tolist()[3:] == [EOS_ID, PAD_ID, PAD_ID]
