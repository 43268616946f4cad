"""The special tokens and the ignored-target value of the whole package, defined once.

Every tokenizer of the course reserves the same first ids, so that padding, start and end mean the
same number in every chapter:

=======  ====  ===================================================================
token    id    meaning
=======  ====  ===================================================================
<PAD>    0     padding after a sequence's end (never predicted, never attended to)
<SOS>    1     start of sequence: the decoder's first input
<EOS>    2     end of sequence: generation stops after it
<MASK>   3     a hidden word that a masked language model must guess (BERT)
<CLS>    4     the first token of a BERT input: its vector summarises the input
<SEP>    5     the end of each segment of a BERT input (sentence A, sentence B)
=======  ====  ===================================================================

The first three are reserved by every tokenizer. The last three are reserved only by the
tokenizers of models that use them (chapter 7, ``attnlab.data.text``): such a tokenizer passes
:data:`BERT_TOKENS` before its words, so its ordinary words start at :data:`FIRST_WORD_ID`.

**Ignored targets.** A target position that a loss must skip holds :data:`IGNORE_INDEX` (-100,
``torch.nn.functional.cross_entropy``'s default ``ignore_index``), never a token id: a batch maker
writes ``IGNORE_INDEX`` into the *targets* where the *inputs* hold ``<PAD>`` (or where a task has
nothing to predict), and every loss calls ``cross_entropy(..., ignore_index=IGNORE_INDEX)``.
"""

from __future__ import annotations

import torch

__all__ = ["PAD", "SOS", "EOS", "SPECIAL_TOKENS", "PAD_ID", "SOS_ID", "EOS_ID", "MASK", "CLS", "SEP", "BERT_TOKENS",
           "MASK_ID", "CLS_ID", "SEP_ID", "FIRST_WORD_ID", "IGNORE_INDEX", "ignore_padding"]

PAD, SOS, EOS = "<PAD>", "<SOS>", "<EOS>"
SPECIAL_TOKENS = (PAD, SOS, EOS)
PAD_ID, SOS_ID, EOS_ID = 0, 1, 2
MASK, CLS, SEP = "<MASK>", "<CLS>", "<SEP>"
BERT_TOKENS = (MASK, CLS, SEP)
MASK_ID, CLS_ID, SEP_ID = 3, 4, 5
FIRST_WORD_ID = 6      # the first ordinary word of a tokenizer that reserves BERT_TOKENS
IGNORE_INDEX = -100


def ignore_padding(targets: torch.Tensor, pad_id: int = PAD_ID) -> torch.Tensor:
    """``targets`` (any shape, long) with every ``pad_id`` replaced by :data:`IGNORE_INDEX`."""
    return targets.masked_fill(targets == pad_id, IGNORE_INDEX)
