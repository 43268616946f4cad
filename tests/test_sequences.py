"""attnlab.data.sequences and attnlab.data.tokens: the previous-token task and the shared ids."""

import inspect

import pytest
import torch
import torch.nn.functional as F

from attnlab.data import tokens
from attnlab.data.sequences import previous_token_batch
from attnlab.data.translation import CharTokenizer


def test_previous_token_targets_are_the_tokens_shifted_by_one():
    tok, tgt = previous_token_batch(4, 9, 7, generator=torch.Generator().manual_seed(0))
    assert tok.shape == tgt.shape == (4, 9) and tok.dtype == tgt.dtype == torch.int64
    assert int(tok.min()) >= 0 and int(tok.max()) < 7
    assert torch.equal(tgt[:, 1:], tok[:, :-1])
    assert (tgt[:, 0] == tokens.IGNORE_INDEX).all()


def test_previous_token_depends_only_on_the_generator():
    a = previous_token_batch(3, 5, 11, generator=torch.Generator().manual_seed(4))
    torch.manual_seed(123)  # the global state must not matter
    b = previous_token_batch(3, 5, 11, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = previous_token_batch(3, 5, 11, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("seq_len,vocab", [(1, 5), (5, 1)])
def test_previous_token_rejects_degenerate_sizes(seq_len, vocab):
    with pytest.raises(ValueError, match="seq_len >= 2"):
        previous_token_batch(2, seq_len, vocab, generator=torch.Generator())


def test_the_ignored_targets_are_skipped_by_cross_entropy():
    """IGNORE_INDEX is cross_entropy's default ignore_index: an ignored position changes nothing."""
    logits = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(1))
    targets = torch.tensor([[tokens.IGNORE_INDEX, 1, 2, 3], [tokens.IGNORE_INDEX, 0, 5, 4]])
    full = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    kept = F.cross_entropy(logits[:, 1:].flatten(0, 1), targets[:, 1:].flatten())
    torch.testing.assert_close(full, kept)
    assert inspect.signature(F.cross_entropy).parameters["ignore_index"].default == tokens.IGNORE_INDEX


def test_ignore_padding_and_the_special_ids_are_shared():
    t = torch.tensor([[5, 6, tokens.EOS_ID, tokens.PAD_ID, tokens.PAD_ID]])
    assert tokens.ignore_padding(t).tolist() == [[5, 6, tokens.EOS_ID, tokens.IGNORE_INDEX, tokens.IGNORE_INDEX]]
    tok = CharTokenizer("ab")
    assert tok.itos[: len(tokens.SPECIAL_TOKENS)] == list(tokens.SPECIAL_TOKENS)
    assert [tok.stoi[s] for s in tokens.SPECIAL_TOKENS] == [tokens.PAD_ID, tokens.SOS_ID, tokens.EOS_ID]


def test_reverse_targets_are_the_tokens_mirrored_and_depend_only_on_the_generator():
    from attnlab.data.sequences import reverse_batch

    tok, tgt = reverse_batch(3, 7, 5, generator=torch.Generator().manual_seed(0))
    assert tok.shape == tgt.shape == (3, 7) and tok.dtype == torch.int64
    for t in range(7):
        assert torch.equal(tgt[:, t], tok[:, 6 - t])
    again, _ = reverse_batch(3, 7, 5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tok, again) and int(tok.max()) < 5
    with pytest.raises(ValueError):
        reverse_batch(2, 1, 5, generator=torch.Generator())
