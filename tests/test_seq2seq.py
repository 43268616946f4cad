"""Tests of attnlab.seq2seq: attention maths, encoder, teacher forcing, greedy decoding, the model."""

import math

import torch
from torch import nn

from attnlab.attention import scaled_dot_product_attention
from attnlab.data import translation as tr
from attnlab.data.tokens import PAD_ID
from attnlab.seq2seq import (Encoder, Seq2Seq, additive_score, attend, bahdanau_attention, dot_score,
                             greedy_decode, qkv_attention, teacher_forcing_loss)

G = lambda s: torch.Generator().manual_seed(s)  # noqa: E731


def test_scores_against_loops():
    g = G(0)
    q, k = torch.randn(3, 4, generator=g, dtype=torch.float64), torch.randn(3, 6, 4, generator=g, dtype=torch.float64)
    W_q, W_k = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    v = torch.randn(5, generator=g, dtype=torch.float64)
    dot = dot_score(q, k)
    add = additive_score(q, k, W_q, W_k, v)
    for b in range(3):
        for j in range(6):
            assert math.isclose(dot[b, j].item(), float(q[b] @ k[b, j]), rel_tol=1e-12, abs_tol=1e-12)
            e = v @ torch.tanh(W_q @ q[b] + W_k @ k[b, j])
            assert math.isclose(add[b, j].item(), e.item(), rel_tol=1e-12, abs_tol=1e-12)


def test_attend_and_bahdanau_respect_the_mask():
    g = G(1)
    B, S, D = 3, 5, 4
    q = torch.randn(B, D, generator=g, dtype=torch.float64)
    keys = torch.randn(B, S, D, generator=g, dtype=torch.float64)
    values = torch.randn(B, S, 7, generator=g, dtype=torch.float64)
    W_q, W_k, v = (torch.randn(6, D, generator=g, dtype=torch.float64), torch.randn(6, D, generator=g, dtype=torch.float64),
                   torch.randn(6, generator=g, dtype=torch.float64))
    lengths = torch.tensor([5, 2, 3])
    mask = torch.arange(S)[None] >= lengths[:, None]
    ctx, w = bahdanau_attention(q, keys, values, mask, W_q, W_k, v)
    assert ctx.shape == (B, 7) and w.shape == (B, S)
    for b in range(B):
        n = int(lengths[b])
        e = torch.stack([v @ torch.tanh(W_q @ q[b] + W_k @ keys[b, j]) for j in range(n)])
        a = torch.exp(e - e.max()) / torch.exp(e - e.max()).sum()
        torch.testing.assert_close(w[b, :n], a)
        assert bool((w[b, n:] == 0).all())
        torch.testing.assert_close(ctx[b], (a[:, None] * values[b, :n]).sum(0))
    # no mask = every position; a fully masked row gives zeros, not NaN
    _, w_all = attend(dot_score(q, keys), values, None)
    torch.testing.assert_close(w_all, torch.softmax(torch.einsum("bd,bsd->bs", q, keys), -1))
    c0, w0 = attend(dot_score(q, keys), values, torch.ones(B, S, dtype=torch.bool))
    assert bool((w0 == 0).all()) and bool((c0 == 0).all())


def test_qkv_attention_is_unscaled_sdpa():
    g = G(2)
    q, K, V = torch.randn(1, 8, generator=g), torch.randn(5, 8, generator=g), torch.randn(5, 3, generator=g)
    c, a = qkv_attention(q, K, V)
    want_c, want_a = scaled_dot_product_attention(q * math.sqrt(8), K, V)
    torch.testing.assert_close(a, want_a)
    torch.testing.assert_close(c, want_c)
    assert a.shape == (1, 5) and c.shape == (1, 3)
    torch.testing.assert_close(a.sum(), torch.tensor(1.0))


def test_encoder_last_state_ignores_padding():
    torch.manual_seed(0)
    enc = Encoder(vocab_size=11, embed_dim=4, dim=6).double()
    src = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0]])
    states, (h, c) = enc(src, torch.tensor([4, 2]))
    assert states.shape == (2, 4, 6)
    assert bool((states[1, 2:] == 0).all())
    for b, n in enumerate([4, 2]):
        out, (h1, c1) = enc.rnn(enc.embed(src[b:b + 1, :n]))
        torch.testing.assert_close(h[b], h1[0, 0])
        torch.testing.assert_close(c[b], c1[0, 0])
        torch.testing.assert_close(states[b, :n], out[0])


def test_teacher_forcing_loss_equals_one_call_lstm():
    torch.manual_seed(1)
    V, E, D = 9, 5, 7
    embed, cell, out = nn.Embedding(V, E), nn.LSTMCell(E, D), nn.Linear(D, V)
    ref = nn.LSTM(E, D, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(ref, name + "_l0").copy_(getattr(cell, name))
    tgt = torch.tensor([[1, 4, 5, 6, 2], [1, 7, 2, 0, 0]])
    g = G(3)
    h0, c0 = torch.randn(2, D, generator=g), torch.randn(2, D, generator=g)

    def step(y, st):
        h, c = cell(embed(y), st)
        return out(h), (h, c)

    got = teacher_forcing_loss(step, (h0, c0), tgt)
    hs, _ = ref(embed(tgt[:, :-1]), (h0[None], c0[None]))
    logits = out(hs)
    labels = tgt[:, 1:]
    keep = labels != PAD_ID
    want = -torch.log_softmax(logits, -1).gather(-1, labels[..., None])[..., 0][keep].mean()
    torch.testing.assert_close(got, want)


class _Scripted:
    """A decoder that writes a fixed script per row (then its own EOS), ignoring its input."""

    def __init__(self, scripts, vocab=8):
        self.scripts, self.vocab, self.seen = scripts, vocab, []

    def __call__(self, y, t):
        self.seen.append(y.clone())
        logits = torch.full((len(self.scripts), self.vocab), -5.0)
        for b, s in enumerate(self.scripts):
            logits[b, s[t] if t < len(s) else 3] = 5.0
        return logits, t + 1


def test_greedy_decode_stops_at_eos_and_pads_after():
    step = _Scripted([[4, 5, 2], [6, 2, 7], [4, 4, 4, 4, 2]])
    out = greedy_decode(step, 0, batch_size=3, max_len=10)
    assert out.dtype == torch.long
    assert out.tolist() == [[4, 5, 2, 0, 0], [6, 2, 0, 0, 0], [4, 4, 4, 4, 2]]
    assert step.seen[0].tolist() == [tr.SOS_ID] * 3
    assert step.seen[1].tolist() == [4, 6, 4]  # its own previous outputs
    short = greedy_decode(_Scripted([[4, 4, 4, 4, 2]]), 0, batch_size=1, max_len=3)
    assert short.tolist() == [[4, 4, 4]]


def _batch(pairs):
    src_tok, tgt_tok = tr.korean_tokenizers()
    return tr.make_batch(pairs, src_tok, tgt_tok), src_tok, tgt_tok


def test_seq2seq_batched_equals_one_by_one():
    pairs = tr.korean_number_pairs(4, generator=G(4), digits=(1, 6))
    b, src_tok, tgt_tok = _batch(pairs)
    for attention in (None, "dot", "additive"):
        torch.manual_seed(2)
        model = Seq2Seq(src_vocab=len(src_tok), tgt_vocab=len(tgt_tok), embed_dim=8, dim=12,
                        attention=attention).double().eval()   # float64: one by one equals batched to 1e-12
        toks, weights = model.translate(b.src, b.src_len, max_len=6)
        losses = []
        for i in range(4):
            one = tr.make_batch([pairs[i]], src_tok, tgt_tok)
            t1, w1 = model.translate(one.src, one.src_len, max_len=6)
            assert tgt_tok.decode(toks[i]) == tgt_tok.decode(t1[0])
            if attention:
                n = int(one.src_len[0])
                torch.testing.assert_close(weights[i, : t1.size(1), :n], w1[0], atol=1e-12, rtol=1e-12)
                assert bool((weights[i, :, n:] == 0).all())
            else:
                assert weights is None
            losses.append(model.loss(one.src, one.src_len, one.tgt) * (one.tgt[0, 1:] != 0).sum())
        n_tok = (b.tgt[:, 1:] != 0).sum()
        torch.testing.assert_close(model.loss(b.src, b.src_len, b.tgt), torch.stack(losses).sum() / n_tok,
                                   atol=1e-12, rtol=1e-12)


def test_seq2seq_with_attention_learns_a_tiny_set():
    pairs = tr.korean_number_pairs(8, generator=G(5), digits=(2, 4))
    b, src_tok, tgt_tok = _batch(pairs)
    torch.manual_seed(3)
    model = Seq2Seq(src_vocab=len(src_tok), tgt_vocab=len(tgt_tok), embed_dim=16, dim=32, attention="dot")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = model.loss(b.src, b.src_len, b.tgt).item()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is faster, above all on a busy machine
    try:
        for _ in range(150):
            loss = model.loss(b.src, b.src_len, b.tgt)
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    assert loss.item() < 0.05 * first
    toks, w = model.translate(b.src, b.src_len, max_len=8)
    assert [tgt_tok.decode(t) for t in toks] == [t for _, t in pairs]
    torch.testing.assert_close(w.sum(-1)[toks != 0], torch.ones(int((toks != 0).sum())))


def test_decoder_rejects_unknown_attention():
    import pytest

    with pytest.raises(ValueError):
        Seq2Seq(src_vocab=5, tgt_vocab=5, attention="multiplicative")


def test_models_are_device_agnostic_on_the_meta_device(monkeypatch):
    """Nothing in encoding, decoding or the loss creates a tensor on a fixed device.

    On the meta device (no data) mixing devices fails, so this checks without a GPU that the
    chapter's models can train and decode on one. Two torch functions cannot run on meta and are
    stood in for: ``pad_packed_sequence`` (it copies its own meta indices to the CPU) and the
    all-rows-finished test of :func:`greedy_decode` (it reads a value), hence ``max_len=1``.
    """
    import attnlab.seq2seq as s2s
    from attnlab.rnn import LSTM, RNN

    def pad_packed_on_meta(packed, batch_first, total_length):   # shapes only: (B, S, D)
        B, D = int(packed.batch_sizes[0]), packed.data.size(-1)
        return packed.data.new_zeros(B, total_length, D), None

    monkeypatch.setattr(s2s, "pad_packed_sequence", pad_packed_on_meta)
    meta = torch.device("meta")
    src = torch.zeros(2, 5, dtype=torch.long, device=meta)
    src_len = torch.tensor([5, 3])          # packing wants the lengths on the CPU; the encoder copies them there
    tgt = torch.zeros(2, 6, dtype=torch.long, device=meta)
    for attention in (None, "dot", "additive"):
        model = Seq2Seq(src_vocab=11, tgt_vocab=9, embed_dim=4, dim=6, attention=attention).to(meta)
        states, (h, c) = model.encoder(src, src_len)
        assert states.shape == (2, 5, 6) and h.device == c.device == meta
        loss = model.loss(src, src_len, tgt)                      # teacher forcing through Decoder.step
        assert loss.shape == () and loss.device == meta
        loss.backward()
        assert all(p.grad is None or p.grad.device == meta for p in model.parameters())
        tokens, weights = model.translate(src, src_len, max_len=1)   # greedy decoding
        assert tokens.shape == (2, 1) and tokens.dtype == torch.long and tokens.device == meta
        assert weights is None if attention is None else (weights.shape == (2, 1, 5) and weights.device == meta)
    # the recurrent layers of the chapter's first sections (initial states made from x)
    x = torch.zeros(2, 4, 3, device=meta)
    out, hs = RNN(in_dim=3, dim=5, out_dim=2).to(meta)(x)
    assert out.shape == (2, 4, 2) and out.device == hs.device == meta
    hs, (h, c) = LSTM(in_dim=3, dim=5).to(meta)(x)
    assert hs.shape == (2, 4, 5) and h.device == c.device == meta


def test_greedy_decode_feeds_finished_rows_their_eos_then_padding_and_takes_max_len_zero():
    scripts = [[4, 2], [5, 6, 2]]                          # row 0 ends at step 2, row 1 at step 3
    seen = []

    def step(y, t):
        seen.append(y.clone())
        logits = torch.full((2, 8), -5.0)
        for b, s in enumerate(scripts):
            logits[b, s[t] if t < len(s) else 3] = 5.0
        return logits, t + 1

    tokens = greedy_decode(step, 0, batch_size=2, max_len=10)
    assert tokens.tolist() == [[4, 2, 0], [5, 6, 2]]
    assert [int(s[0]) for s in seen] == [1, 4, 2]            # row 0: <SOS>, its 4, then its <EOS>
    empty = greedy_decode(step, 0, batch_size=2, max_len=0)
    assert empty.shape == (2, 0) and empty.dtype == torch.long


def test_the_korean_number_experiment_is_the_same_for_every_model_and_deterministic():
    from attnlab.seq2seq import KoreanNumbersBudget, korean_numbers_budget, korean_numbers_experiment
    from attnlab.transformer import Transformer

    budget = KoreanNumbersBudget(steps=3, max_digits=3, n_test=5, dim=16, batch_size=8)
    src_tok, tgt_tok = tr.korean_tokenizers()
    rnn = lambda: Seq2Seq(src_vocab=len(src_tok), tgt_vocab=len(tgt_tok), embed_dim=8, dim=16, attention="dot")  # noqa: E731
    state = torch.random.get_rng_state()
    first = korean_numbers_experiment(rnn, budget, lr=1e-2)
    second = korean_numbers_experiment(rnn, budget, lr=1e-2)
    assert torch.equal(torch.random.get_rng_state(), state), "the caller's random state must be left alone"
    assert first.history.loss == second.history.loss and first.accuracy == second.accuracy
    assert sorted(first.accuracy) == [1, 2, 3] and all(0 <= a <= 1 for a in first.accuracy.values())
    assert len(first.history.loss) == 3 and first.seconds > 0
    other_seed = korean_numbers_experiment(rnn, budget, lr=1e-2, seed=1)
    assert other_seed.history.loss != first.history.loss
    tf = korean_numbers_experiment(lambda: Transformer(src_vocab=len(src_tok), tgt_vocab=len(tgt_tok), dim=16,
                                                       num_heads=2, num_layers=1, ffn_dim=32), budget, lr=1e-3)
    assert sorted(tf.accuracy) == [1, 2, 3] and not tf.model.training
    assert korean_numbers_budget("cpu").steps > korean_numbers_budget("smoke").steps
