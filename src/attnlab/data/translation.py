"""Generated translation tasks for seq2seq (chapter 2, "RNNs, seq2seq and the birth of attention").

Two toy "languages" whose translation is exactly known, so that accuracy means something and
nothing has to be downloaded:

* **dates**: a human-readable date in one of many formats, followed by ``pad_words`` filler
  words, to its ISO form::

      "Tuesday, 3 March 2015 as noted"  ->  "2015-03-03"
      "03/03/15"                       ->  "2015-03-03"

  The filler words make the input as long as we like while the answer stays the same: the
  knob the chapter turns to show the bottleneck of a single context vector.
* **Korean number words** (Sino-Korean numerals) to digits::

      "삼천이백십일"  ->  "3211"       "이만삼"  ->  "20003"

  Longer numbers give longer inputs *and* longer outputs (``digits`` controls both).

Both are read character by character with :class:`CharTokenizer`, which reserves the special
tokens of :mod:`attnlab.data.tokens`: ``<PAD>`` = 0, ``<SOS>`` = 1 and ``<EOS>`` = 2. Every generator takes a ``torch.Generator``, so
that a data set depends only on its seed, never on the global random state.

Simplifications: dates are drawn uniformly from 1950-2049 (two-digit years are read in that
window); Korean numbers use the common reading where a leading 일 is dropped before 십, 백, 천
and before 만 (만 = 10,000, but 일억 = 100,000,000), and zero is 영.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Sequence

import torch

from .tokens import EOS, EOS_ID, PAD, PAD_ID, SOS, SOS_ID

__all__ = [
    "CharTokenizer",
    "DATE_FORMATS", "FILLER_WORDS", "format_date", "random_date", "date_pairs", "date_tokenizers",
    "korean_number", "korean_number_pairs", "korean_tokenizers", "romanize",
    "TranslationBatch", "make_batch",
]



class CharTokenizer:
    """A character vocabulary: ``<PAD>`` = 0, ``<SOS>`` = 1, ``<EOS>`` = 2, then ``alphabet``.

    Args:
        alphabet: the characters of the language, in a fixed order (so ids never depend on data).
            (A word-level vocabulary, ``attnlab.data.coreference.WordTokenizer``, passes a list of
            words and sets ``sep = " "``.)
    """

    sep = ""  # what decode() puts between tokens

    def __init__(self, alphabet: str | Sequence[str]) -> None:
        chars = list(dict.fromkeys(alphabet))  # unique, order kept
        self.itos: list[str] = [PAD, SOS, EOS] + chars
        self.stoi: dict[str, int] = {s: i for i, s in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str | Sequence[str], *, sos: bool = False, eos: bool = True) -> list[int]:
        """Ids of ``text``, optionally framed by ``<SOS>`` and ``<EOS>``; unknown characters raise."""
        unknown = sorted({ch for ch in text if ch not in self.stoi})
        if unknown:
            raise KeyError(f"characters not in the vocabulary: {unknown}")
        ids = [self.stoi[ch] for ch in text]
        return ([SOS_ID] if sos else []) + ids + ([EOS_ID] if eos else [])

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """Text of ``ids``: stops at the first ``<EOS>``, skips ``<PAD>`` and ``<SOS>``."""
        if isinstance(ids, torch.Tensor):
            ids = ids.tolist()
        out = []
        for i in ids:
            if i == EOS_ID:
                break
            if i in (PAD_ID, SOS_ID):
                continue
            out.append(self.itos[i])
        return self.sep.join(out)


# --------------------------------------------------------------------------------------- dates
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
FILLER_WORDS = ["as", "noted", "in", "the", "minutes", "of", "our", "last", "meeting", "please",
                "confirm", "by", "reply", "thanks", "see", "you", "then", "at", "noon", "sharp"]

# Each format is a function of the date; together they cover the ways people write dates.
DATE_FORMATS = {
    "weekday_day_month_year": lambda d: f"{WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}",
    "day_month_year": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "day_mon_year": lambda d: f"{d.day} {MONTHS[d.month - 1][:3]} {d.year}",
    "month_day_year": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "mon_day_year": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",
    "dd/mm/yy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year % 100:02d}",
    "dd.mm.yyyy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "weekday_mon_day": lambda d: f"{WEEKDAYS[d.weekday()][:3]} {MONTHS[d.month - 1][:3]} {d.day} {d.year}",
}
_DATE_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,./"
_FIRST_DAY = _dt.date(1950, 1, 1)
_N_DAYS = (_dt.date(2049, 12, 31) - _FIRST_DAY).days + 1


def format_date(date: _dt.date, fmt: str) -> str:
    """``date`` written in the format named ``fmt`` (a key of :data:`DATE_FORMATS`)."""
    return DATE_FORMATS[fmt](date)


def random_date(generator: torch.Generator) -> _dt.date:
    """A date drawn uniformly from 1950-01-01 to 2049-12-31."""
    offset = int(torch.randint(_N_DAYS, (1,), generator=generator))
    return _FIRST_DAY + _dt.timedelta(days=offset)


def date_pairs(
    n: int, *, generator: torch.Generator, pad_words: int | tuple[int, int] = 0,
    formats: Sequence[str] | None = None,
) -> list[tuple[str, str]]:
    """``n`` (human date, ISO date) pairs.

    Args:
        n: number of pairs.
        generator: the only source of randomness.
        pad_words: number of filler words appended after the date: an int, or an inclusive range
            ``(lo, hi)`` drawn uniformly per example. The answer never depends on them.
        formats: names of :data:`DATE_FORMATS` to draw from (default: all).

    Returns:
        a list of ``(source, target)`` strings, e.g. ``("3 Mar 2015 see you", "2015-03-03")``.
    """
    lo, hi = (pad_words, pad_words) if isinstance(pad_words, int) else pad_words
    if not 0 <= lo <= hi:
        raise ValueError(f"pad_words must satisfy 0 <= lo <= hi, got {pad_words}")
    names = list(formats) if formats is not None else list(DATE_FORMATS)
    pairs = []
    for _ in range(n):
        date = random_date(generator)
        fmt = names[int(torch.randint(len(names), (1,), generator=generator))]
        k = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        words = [FILLER_WORDS[int(i)] for i in torch.randint(len(FILLER_WORDS), (k,), generator=generator)]
        source = " ".join([format_date(date, fmt)] + words)
        pairs.append((source, date.isoformat()))
    return pairs


def date_tokenizers() -> tuple[CharTokenizer, CharTokenizer]:
    """(source, target) tokenizers of the date task; the target alphabet is ``0-9`` and ``-``."""
    return CharTokenizer(_DATE_ALPHABET), CharTokenizer("0123456789-")


# ------------------------------------------------------------------------ Korean number words
_KO_DIGITS = "영일이삼사오육칠팔구"
_KO_SMALL = [(1000, "천"), (100, "백"), (10, "십")]
_KO_GROUPS = [(10**12, "조"), (10**8, "억"), (10**4, "만")]


def _korean_below_10000(n: int) -> str:
    out = []
    for value, unit in _KO_SMALL:
        d = n // value % 10
        if d:
            out.append(("" if d == 1 else _KO_DIGITS[d]) + unit)
    if n % 10:
        out.append(_KO_DIGITS[n % 10])
    return "".join(out)


def korean_number(n: int) -> str:
    """The Sino-Korean reading of ``0 <= n < 10**16``: ``korean_number(3211) == "삼천이백십일"``."""
    if not 0 <= n < 10**16:
        raise ValueError(f"n must be in [0, 10**16), got {n}")
    if n == 0:
        return _KO_DIGITS[0]
    out = []
    for value, unit in _KO_GROUPS:
        group = n // value % 10000
        if group:
            out.append(("" if group == 1 and unit == "만" else _korean_below_10000(group)) + unit)
    out.append(_korean_below_10000(n % 10000))
    return "".join(out)


_KO_ROMAN = {"영": "yeong", "일": "il", "이": "i", "삼": "sam", "사": "sa", "오": "o", "육": "yuk", "칠": "chil",
             "팔": "pal", "구": "gu", "십": "sip", "백": "baek", "천": "cheon", "만": "man", "억": "eok", "조": "jo"}


def romanize(text: str) -> list[str]:
    """Revised Romanization of each syllable of a Korean number, for plot labels in fonts without
    Hangul: ``romanize("삼천") == ["sam", "cheon"]``; other characters are kept as they are."""
    return [_KO_ROMAN.get(ch, ch) for ch in text]


def korean_number_pairs(
    n: int, *, generator: torch.Generator, digits: int | tuple[int, int] = (1, 8)
) -> list[tuple[str, str]]:
    """``n`` (Korean number words, digits) pairs, e.g. ``("삼천이백십일", "3211")``.

    Args:
        digits: number of decimal digits (1-16): an int or an inclusive range drawn per example.
            A number's digits are drawn uniformly, so zeros (which are never read) are common.
    """
    lo, hi = (digits, digits) if isinstance(digits, int) else digits
    if not 1 <= lo <= hi <= 16:
        raise ValueError(f"digits must satisfy 1 <= lo <= hi <= 16, got {digits}")
    pairs = []
    for _ in range(n):
        k = int(torch.randint(lo, hi + 1, (1,), generator=generator))
        first = int(torch.randint(1 if k > 1 else 0, 10, (1,), generator=generator))
        rest = torch.randint(10, (k - 1,), generator=generator).tolist()
        value = int("".join(str(d) for d in [first] + rest))
        pairs.append((korean_number(value), str(value)))
    return pairs


def korean_tokenizers() -> tuple[CharTokenizer, CharTokenizer]:
    """(source, target) tokenizers of the Korean number task."""
    return CharTokenizer(_KO_DIGITS + "십백천만억조"), CharTokenizer("0123456789")


# ------------------------------------------------------------------------------------ batches
@dataclass
class TranslationBatch:
    """A padded batch of pairs.

    Attributes:
        src: (B, S) long, source ids followed by ``<EOS>``, padded with ``<PAD>``.
        src_len: (B,) long, true source lengths (``<EOS>`` included).
        tgt: (B, T + 1) long, ``<SOS>``, target ids, ``<EOS>``, then ``<PAD>``: the decoder reads
            ``tgt[:, :-1]`` and must predict ``tgt[:, 1:]`` (teacher forcing).
        pairs: the strings the batch was made from.
    """

    src: torch.Tensor
    src_len: torch.Tensor
    tgt: torch.Tensor
    pairs: list[tuple[str, str]]

    def to(self, device: torch.device | str) -> "TranslationBatch":
        return TranslationBatch(self.src.to(device), self.src_len.to(device), self.tgt.to(device), self.pairs)


def _pad(seqs: list[list[int]]) -> torch.Tensor:
    out = torch.full((len(seqs), max(len(s) for s in seqs)), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def make_batch(pairs: Sequence[tuple[str, str]], src_tok: CharTokenizer, tgt_tok: CharTokenizer) -> TranslationBatch:
    """Encode and pad ``pairs`` into a :class:`TranslationBatch`."""
    src = [src_tok.encode(s) for s, _ in pairs]
    tgt = [tgt_tok.encode(t, sos=True) for _, t in pairs]
    return TranslationBatch(_pad(src), torch.tensor([len(s) for s in src]), _pad(tgt), list(pairs))
