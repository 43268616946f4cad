"""attnlab.bert: the 80/10/10 masking (its statistics with a fixed generator, exact small cases),
the MLM loss on chosen positions only, and the model (bidirectional, padding never read)."""

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab import bert as B
from attnlab.data.tokens import CLS_ID, FIRST_WORD_ID, IGNORE_INDEX, MASK_ID, PAD_ID, SEP_ID

V = 30


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def words(shape, seed=0):
    return torch.randint(FIRST_WORD_ID, V, shape, generator=gen(seed))


def test_masking_statistics_follow_the_80_10_10_rule():
    tokens = words((400, 250), seed=1)                               # 100,000 word positions
    inputs, labels = B.mask_tokens(tokens, vocab_size=V, generator=gen(2))
    chosen = labels != IGNORE_INDEX
    n, k = tokens.numel(), int(chosen.sum())
    assert abs(k / n - 0.15) < 4 * math.sqrt(0.15 * 0.85 / n)
    masked = (inputs == MASK_ID) & chosen
    changed = (inputs != tokens) & (inputs != MASK_ID) & chosen
    kept = (inputs == tokens) & chosen
    p_same = 1 / (V - FIRST_WORD_ID)                                  # a random word may draw the original
    for count, p in ((masked, 0.8), (changed, 0.1 * (1 - p_same)), (kept, 0.1 + 0.1 * p_same)):
        assert abs(int(count.sum()) / k - p) < 4 * math.sqrt(p * (1 - p) / k), (int(count.sum()) / k, p)
    replaced = inputs[changed]
    assert replaced.min() >= FIRST_WORD_ID and replaced.max() < V  # never a special token
    counts = torch.bincount(replaced - FIRST_WORD_ID, minlength=V - FIRST_WORD_ID).float()
    expected = counts.sum() / (V - FIRST_WORD_ID)
    assert float(((counts - expected) ** 2 / expected).sum()) < 60   # chi-square, 23 degrees of freedom
    assert torch.equal(inputs[~chosen], tokens[~chosen])
    assert torch.equal(labels[chosen], tokens[chosen])


def test_special_tokens_and_padding_are_never_chosen():
    row = torch.tensor([[CLS_ID, 7, 8, SEP_ID, 9, 10, SEP_ID, PAD_ID, PAD_ID]])
    inputs, labels = B.mask_tokens(row.repeat(200, 1), vocab_size=V, generator=gen(3), mask_prob=1.0)
    specials = torch.tensor([True, False, False, True, False, False, True, True, True])
    assert (labels[:, specials] == IGNORE_INDEX).all() and (inputs[:, specials] == row[:, specials]).all()
    assert (labels[:, ~specials] == row[:, ~specials]).all()


def test_exact_small_cases():
    tokens = torch.tensor([[CLS_ID, 6, 7, 8, SEP_ID, PAD_ID], [CLS_ID, 9, 10, 11, 12, SEP_ID]])
    word = tokens >= FIRST_WORD_ID
    inputs, labels = B.mask_tokens(tokens, vocab_size=V, generator=gen(4), mask_prob=0.0)
    assert torch.equal(inputs, tokens) and (labels == IGNORE_INDEX).all()
    inputs, labels = B.mask_tokens(tokens, vocab_size=V, generator=gen(4), mask_prob=1.0, mask_frac=1.0, random_frac=0.0)
    assert torch.equal(inputs, torch.where(word, MASK_ID, tokens))
    assert torch.equal(labels, torch.where(word, tokens, IGNORE_INDEX))
    inputs, _ = B.mask_tokens(tokens, vocab_size=V, generator=gen(4), mask_prob=1.0, mask_frac=0.0, random_frac=0.0)
    assert torch.equal(inputs, tokens)                               # chosen, and kept as they are
    inputs, labels = B.mask_tokens(tokens, vocab_size=V, generator=gen(4), mask_prob=1.0, mask_frac=0.0, random_frac=1.0)
    assert torch.equal(inputs[~word], tokens[~word]) and (inputs[word] >= FIRST_WORD_ID).all()
    assert torch.equal(labels[word], tokens[word])


def test_masking_depends_only_on_the_generator_and_leaves_its_input_alone():
    tokens = words((8, 12), seed=5)
    before = tokens.clone()
    a = B.mask_tokens(tokens, vocab_size=V, generator=gen(6))
    b = B.mask_tokens(tokens, vocab_size=V, generator=gen(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(tokens, before)


def test_mlm_loss_counts_only_chosen_positions():
    g = gen(7)
    logits = torch.randn(3, 5, V, generator=g, dtype=torch.float64)   # float64: the definition, to rounding
    labels = torch.full((3, 5), IGNORE_INDEX)
    labels[0, 1], labels[2, 4] = 9, 11
    expected = -(torch.log_softmax(logits[0, 1], -1)[9] + torch.log_softmax(logits[2, 4], -1)[11]) / 2
    assert B.mlm_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-12)
    assert B.mlm_accuracy(logits, labels) == pytest.approx(
        ((logits[0, 1].argmax() == 9).float() + (logits[2, 4].argmax() == 11).float()).item() / 2)


def model(**kw):
    torch.manual_seed(0)
    return B.BERT(vocab_size=V, max_len=12, dim=16, num_layers=2, num_heads=2, dropout=0.0, **kw).eval()


def test_shapes_and_the_embedding_scales():
    m = model()
    tokens = torch.tensor([[CLS_ID, 7, 8, SEP_ID, 9, SEP_ID, PAD_ID]])
    mlm, nsp = m(tokens, torch.tensor([[0, 0, 0, 0, 1, 1, 1]]))
    assert mlm.shape == (1, 7, V) and nsp.shape == (1, 2)
    stds = [m.token_embed.table.weight.std().item(), m.pos_embed.table.std().item(), m.segment_embed.weight.std().item()]
    assert max(stds) / min(stds) < 1.6, stds


def test_bidirectional_and_padding_is_never_read():
    m = model()
    tokens = torch.tensor([[CLS_ID, 7, 8, 9, SEP_ID]])
    with torch.no_grad():
        base = m.encode(tokens)
        later = tokens.clone()
        later[0, 3] = 12
        assert (m.encode(later)[0, 1] - base[0, 1]).abs().max() > 1e-4      # position 1 reads position 3
        padded = torch.cat([tokens, torch.full((1, 3), PAD_ID)], 1)
        assert torch.allclose(m.encode(padded)[:, :5], base, atol=1e-5)       # padding changes nothing


def test_bert_loss_trains_both_heads():
    m = model()
    m.train()
    tokens = words((4, 10), seed=8)
    tokens[:, 0] = CLS_ID
    loss, parts = B.bert_loss(m, tokens, torch.zeros_like(tokens), torch.tensor([0, 1, 1, 0]), generator=gen(9))
    assert set(parts) == {"mlm", "nsp"} and loss.item() == pytest.approx(parts["mlm"] + parts["nsp"], rel=1e-5)
    loss.backward()
    assert m.mlm_head[0].weight.grad.abs().sum() > 0 and m.nsp_head[0].weight.grad.abs().sum() > 0
    assert F.cross_entropy(torch.zeros(1, 2), torch.tensor([1])).item() == pytest.approx(math.log(2))


def test_frequency_baselines_count_the_chosen_positions():
    W = FIRST_WORD_ID
    train = torch.tensor([[W, W + 1, W + 2], [W, W + 1, W + 1], [W + 1, W + 1, W + 2]])   # W+1 most frequent
    labels = torch.full((2, 3), IGNORE_INDEX)
    labels[0, 0], labels[0, 2], labels[1, 1] = W, W + 2, W + 1     # per position: W, W+1, W+2
    b = B.frequency_baselines(train, labels)
    assert b["most frequent word"] == pytest.approx(1 / 3)
    assert b["most frequent word at its position"] == pytest.approx(1.0)


def test_bert_loss_without_nsp_is_the_mlm_loss():
    torch.manual_seed(0)
    model = B.BERT(vocab_size=20, max_len=8, dim=16, num_layers=1, num_heads=2, dropout=0.0)
    tokens = torch.randint(FIRST_WORD_ID, 20, (4, 8), generator=torch.Generator().manual_seed(1))
    segments, is_next = torch.zeros_like(tokens), torch.tensor([0, 1, 0, 1])
    both, parts = B.bert_loss(model, tokens, segments, is_next, generator=torch.Generator().manual_seed(2))
    mlm, parts0 = B.bert_loss(model, tokens, segments, is_next, generator=torch.Generator().manual_seed(2),
                              nsp_weight=0.0)
    assert mlm.item() == pytest.approx(parts0["mlm"]) and both.item() == pytest.approx(parts["mlm"] + parts["nsp"])
