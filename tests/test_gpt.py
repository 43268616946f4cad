"""attnlab.gpt: the causal mask (the future never changes the past), the shifted loss against a
direct computation, top-k and temperature sampling, generation and perplexity."""

import math

import pytest
import torch

from attnlab import gpt as G
from attnlab.data.tokens import EOS_ID, PAD_ID, SOS_ID

V = 20


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def model():
    torch.manual_seed(0)
    return G.GPT(vocab_size=V, max_len=10, dim=16, num_layers=2, num_heads=2).eval()


def test_the_future_never_changes_the_past():
    m = model()
    tokens = torch.randint(3, V, (2, 8), generator=gen(1))
    with torch.no_grad():
        base = m(tokens)
        for t in range(7):
            changed = tokens.clone()
            changed[:, t + 1:] = torch.randint(3, V, (2, 7 - t), generator=gen(t + 2))
            out = m(changed)
            assert torch.allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5), t
            assert (out[:, t + 1:] - base[:, t + 1:]).abs().max() > 1e-4, t     # the future itself does change
        _, weights = m(tokens, need_weights=True)
    for w in weights:                                                        # (B, H, T, T): no weight above the diagonal
        assert w.shape == (2, 2, 8, 8) and w.triu(1).abs().max() == 0


def test_causal_lm_loss_is_the_shifted_cross_entropy():
    g = gen(3)
    logits = torch.randn(2, 5, V, generator=g, dtype=torch.float64)   # float64: the definition, to rounding
    tokens = torch.tensor([[SOS_ID, 7, 8, EOS_ID, PAD_ID], [SOS_ID, 9, 10, 11, EOS_ID]])
    terms = [-torch.log_softmax(logits[b, t], -1)[tokens[b, t + 1]]
             for b in range(2) for t in range(4) if tokens[b, t + 1] != PAD_ID]
    assert G.causal_lm_loss(logits, tokens).item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-12)
    assert len(terms) == 7


def test_top_k_filter_and_greedy():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0], [0.0, 0.0, 5.0, -1.0]])
    kept = G.top_k_filter(logits, 2)
    assert torch.isinf(kept).sum(1).tolist() == [2, 1]                      # a tie with the 2nd is kept
    assert kept[0, 1] == 3.0 and kept[0, 2] == 2.0 and torch.isinf(kept[0, 0])
    assert G.top_k_filter(logits, 10).eq(logits).all()
    assert G.sample_next(logits, generator=gen(), temperature=0).tolist() == [1, 2]


def test_sampling_follows_temperature_and_top_k():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2]])).repeat(20000, 1)
    draws = G.sample_next(logits, generator=gen(4))
    freq = torch.bincount(draws, minlength=3).float() / len(draws)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.2]), atol=0.02)
    hot = torch.bincount(G.sample_next(logits, generator=gen(5), temperature=100.0), minlength=3).float() / 20000
    assert torch.allclose(hot, torch.full((3,), 1 / 3), atol=0.02)               # flat at high temperature
    top1 = G.sample_next(logits, generator=gen(6), top_k=1)
    assert (top1 == 0).all()
    top2 = G.sample_next(logits, generator=gen(7), top_k=2)
    assert set(top2.tolist()) == {0, 1}
    assert (top2 == 0).float().mean().item() == pytest.approx(0.5 / 0.8, abs=0.02)


def test_generate_stops_after_eos_and_pads():
    m = model()
    with torch.no_grad():
        m.lm_head.weight.zero_()
        m.lm_head.bias.copy_(torch.arange(V, dtype=torch.float) * -1.0)
        m.lm_head.bias[EOS_ID] = 10.0                                        # EOS always wins
    out = G.generate(m, torch.tensor([[SOS_ID, 7], [SOS_ID, 8]]), max_new_tokens=5, generator=gen(), temperature=0)
    assert out.tolist() == [[SOS_ID, 7, EOS_ID], [SOS_ID, 8, EOS_ID]]


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    m = model()
    with torch.no_grad():
        m.lm_head.weight.zero_()
        m.lm_head.bias.zero_()
    tokens = torch.randint(3, V, (5, 9), generator=gen(8))
    tokens[:, -2:] = PAD_ID
    assert G.perplexity(m, tokens, batch_size=2) == pytest.approx(V, rel=1e-5)
    assert math.log(G.perplexity(model(), tokens)) > 0
