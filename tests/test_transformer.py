"""attnlab.transformer against independent references: torch's LayerNorm and Transformer layers with
copied weights (attnlab.convert), explicit formulas, gradcheck; masks, dropout, devices, decoding."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from attnlab import convert
from attnlab import transformer as TR
from attnlab.attention import MultiHeadAttention, causal_mask, padding_mask
from attnlab.data.tokens import EOS_ID, IGNORE_INDEX, PAD_ID, SOS_ID

# Tolerances of the equality with torch's layers: float64 to 1e-10, float32 to 1e-5 (both absolute
# and relative). Measured: the differences are 0.0 on this machine (the same kernels run); the
# tolerances leave room for other BLAS libraries.
TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5)}
PLACEMENTS = list(itertools.product([False, True], ["relu", "gelu"]))
IDS = [f"{'pre' if nf else 'post'}-norm-{act}" for nf, act in PLACEMENTS]


def every_configuration(test):
    """Run ``test`` for both placements, both activations, float64 and float32."""
    by_dtype = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
    return by_dtype(pytest.mark.parametrize("norm_first,activation", PLACEMENTS, ids=IDS)(test))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _padded(B=3, S=7, lengths=(7, 4, 2)):
    lengths = torch.tensor(lengths)
    return lengths, torch.arange(S)[None] >= lengths[:, None]          # (B,), (B, S) True = padding


# --------------------------------------------------------------------------------- positions
def test_sinusoidal_table_matches_the_papers_formula():
    T, D = 12, 10
    table = TR.sinusoidal_positions(T, D)
    assert table.shape == (T, D) and table.dtype == torch.float32
    for pos in range(T):
        for i in range(D // 2):
            angle = pos / 10_000 ** (2 * i / D)
            assert math.isclose(table[pos, 2 * i].item(), math.sin(angle), abs_tol=1e-6)
            assert math.isclose(table[pos, 2 * i + 1].item(), math.cos(angle), abs_tol=1e-6)
    assert table.abs().max() <= 1.0
    with pytest.raises(ValueError, match="even"):
        TR.sinusoidal_positions(4, 7)


def test_a_shift_by_k_is_one_fixed_linear_map():
    """PE(pos + k) = M_k PE(pos) with M_k block-diagonal 2x2 rotations that do not depend on pos."""
    T, D, k = 40, 16, 5
    P = TR.sinusoidal_positions(T + k, D).double()
    freq = 10_000 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    M = torch.zeros(D, D, dtype=torch.float64)
    for i, w in enumerate(freq):
        c, s = math.cos(k * w), math.sin(k * w)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[c, s], [-s, c]], dtype=torch.float64)
    torch.testing.assert_close(P[:T] @ M.T, P[k:], rtol=0, atol=1e-6)


def test_sinusoidal_module_adds_a_non_persistent_buffer():
    pe = TR.SinusoidalPositionalEncoding(dim=8, max_len=20)
    assert "table" in dict(pe.named_buffers()) and "table" not in pe.state_dict()
    assert not list(pe.parameters())
    x = torch.randn(2, 5, 8, generator=_gen(0))
    torch.testing.assert_close(pe(x), x + TR.sinusoidal_positions(5, 8))
    assert pe.double()(x.double()).dtype == torch.float64


def test_learned_positions_are_parameters_added_per_position():
    pe = TR.LearnedPositionEmbedding(dim=8, max_len=20)
    assert [n for n, _ in pe.named_parameters()] == ["table"] and pe.table.shape == (20, 8)
    x = torch.randn(2, 5, 8, generator=_gen(0))
    torch.testing.assert_close(pe(x) - x, pe.table[:5].expand(2, 5, 8))


def test_token_embedding_scales_by_sqrt_dim_and_keeps_padding_zero():
    torch.manual_seed(0)
    emb = TR.TokenEmbedding(vocab_size=11, dim=16)
    ids = torch.tensor([[3, 4, PAD_ID]])
    torch.testing.assert_close(emb(ids), emb.table(ids) * 4.0)
    assert torch.equal(emb(ids)[0, 2], torch.zeros(16))
    assert TR.TokenEmbedding(vocab_size=11, dim=16, scale=False).factor == 1.0
    big = TR.TokenEmbedding(vocab_size=5000, dim=64)
    assert 0.9 < big(torch.arange(3, 5000)).std().item() < 1.1      # unit variance after the scale


# ------------------------------------------------------------------------ layer normalisation
def test_layer_norm_from_scratch_equals_torch_layer_norm():
    g = _gen(1)
    x = torch.randn(4, 6, 10, generator=g, dtype=torch.float64) * 3 + 2
    ref = nn.LayerNorm(10).double()
    with torch.no_grad():
        ref.weight.copy_(torch.randn(10, generator=g))
        ref.bias.copy_(torch.randn(10, generator=g))
    torch.testing.assert_close(TR.layer_norm(x, ref.weight, ref.bias), ref(x), rtol=1e-12, atol=1e-12)
    # without the affine: mean 0 and biased variance 1 per token
    y = TR.layer_norm(x)
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 6, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(y.var(-1, unbiased=False), torch.full((4, 6), 1.0, dtype=torch.float64),
                               rtol=0, atol=1e-4)   # eps = 1e-5 inside the square root
    # a constant token has no spread: it comes out as the bias, not NaN
    flat = TR.layer_norm(torch.full((1, 10), 7.0, dtype=torch.float64), ref.weight, ref.bias)
    torch.testing.assert_close(flat[0], ref.bias.detach())


def test_layer_norm_gradcheck_float64():
    g = _gen(2)
    x = torch.randn(2, 3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(TR.layer_norm, (x, w, b))


def test_layer_norm_module_is_the_fast_path_of_the_function():
    g = _gen(3)
    norm = TR.LayerNorm(dim=12).double()                              # float64: equal to 1e-10
    with torch.no_grad():
        norm.weight.normal_(generator=g)
        norm.bias.normal_(generator=g)
    x = torch.randn(3, 4, 12, generator=g, dtype=torch.float64)
    torch.testing.assert_close(norm(x), TR.layer_norm(x, norm.weight, norm.bias), **TOL[torch.float64])
    ref = nn.LayerNorm(12, dtype=torch.float64)
    ref.load_state_dict(norm.state_dict())                            # same state dict as torch's
    torch.testing.assert_close(norm(x), ref(x), **TOL[torch.float64])


# ------------------------------------------------------------------------ Add & Norm and FFN
@pytest.mark.parametrize("norm_first", [False, True])
def test_add_norm_placements(norm_first):
    block = TR.AddNorm(dim=6, norm_first=norm_first).double()        # float64: equal to 1e-10
    x = torch.randn(2, 3, 6, generator=_gen(4), dtype=torch.float64)
    f = torch.tanh
    ln = lambda t: TR.layer_norm(t, block.norm.weight, block.norm.bias)  # noqa: E731
    expected = x + f(ln(x)) if norm_first else ln(x + f(x))
    torch.testing.assert_close(block(x, f), expected, **TOL[torch.float64])
    # pre-norm leaves an identity path: with a zero sublayer the input passes unchanged
    zero = block(x, torch.zeros_like)
    if norm_first:
        assert torch.equal(zero, x)
    else:
        torch.testing.assert_close(zero, ln(x), **TOL[torch.float64])


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_is_the_papers_formula_token_by_token(activation):
    torch.manual_seed(5)
    ffn = TR.FeedForward(dim=8, ffn_dim=32, activation=activation).double()
    x = torch.randn(2, 5, 8, generator=_gen(5), dtype=torch.float64)
    act = F.relu if activation == "relu" else F.gelu
    W1, b1, W2, b2 = ffn.linear1.weight.T, ffn.linear1.bias, ffn.linear2.weight.T, ffn.linear2.bias
    torch.testing.assert_close(ffn(x), act(x @ W1 + b1) @ W2 + b2)
    torch.testing.assert_close(ffn(x)[:, 3], ffn(x[:, 3:4])[:, 0])   # position-wise: one token alone, same result
    with pytest.raises(ValueError, match="activation"):
        TR.FeedForward(dim=8, ffn_dim=32, activation="tanh")


# ------------------------------------------------------------- equality with torch's layers
@every_configuration
def test_encoder_layer_equals_torch(norm_first, activation, dtype):
    torch.manual_seed(6)
    layer = TR.EncoderLayer(dim=16, num_heads=4, ffn_dim=48, dropout=0.0, norm_first=norm_first,
                            activation=activation).to(dtype).eval()
    ref = convert.encoder_layer_to_torch(layer)
    x = torch.randn(3, 7, 16, generator=_gen(6), dtype=dtype)
    lengths, pad = _padded()
    torch.testing.assert_close(layer(x), ref(x), **TOL[dtype])
    torch.testing.assert_close(layer(x, mask=padding_mask(lengths, 7)), ref(x, src_key_padding_mask=pad), **TOL[dtype])
    torch.testing.assert_close(layer(x, mask=causal_mask(7)), ref(x, src_mask=causal_mask(7)), **TOL[dtype])


@every_configuration
def test_decoder_layer_equals_torch(norm_first, activation, dtype):
    torch.manual_seed(7)
    layer = TR.DecoderLayer(dim=16, num_heads=2, ffn_dim=32, dropout=0.0, norm_first=norm_first,
                            activation=activation).to(dtype).eval()
    ref = convert.decoder_layer_to_torch(layer)
    g = _gen(7)
    y, memory = torch.randn(3, 5, 16, generator=g, dtype=dtype), torch.randn(3, 7, 16, generator=g, dtype=dtype)
    lengths, pad = _padded()
    ours = layer(y, memory, tgt_mask=causal_mask(5), memory_mask=padding_mask(lengths, 7))
    theirs = ref(y, memory, tgt_mask=causal_mask(5), memory_key_padding_mask=pad)
    torch.testing.assert_close(ours, theirs, **TOL[dtype])


@every_configuration
def test_transformer_equals_torch_transformer(norm_first, activation, dtype):
    torch.manual_seed(8)
    model = TR.Transformer(src_vocab=13, tgt_vocab=9, dim=16, num_heads=4, num_layers=2, ffn_dim=32, dropout=0.0,
                           norm_first=norm_first, activation=activation, max_len=16).to(dtype).eval()
    ref = convert.transformer_to_torch(model)
    assert (ref.encoder.norm is None) == (not norm_first)              # post-norm stacks have no final norm
    g = _gen(8)
    lengths, pad = _padded()
    src = torch.randint(3, 13, (3, 7), generator=g).masked_fill(pad, PAD_ID)
    tgt_in = torch.randint(1, 9, (3, 5), generator=g)
    x, y = model.src_pos(model.src_embed(src)), model.tgt_pos(model.tgt_embed(tgt_in))
    theirs = model.out_proj(ref(x, y, tgt_mask=causal_mask(5), src_key_padding_mask=pad, memory_key_padding_mask=pad))
    torch.testing.assert_close(model(src, tgt_in, pad), theirs, **TOL[dtype])


def test_equal_to_torchs_native_inference_kernel():
    """In eval mode without gradients torch runs its fused C++ encoder layer; still the same numbers."""
    torch.manual_seed(9)
    layer = TR.EncoderLayer(dim=32, num_heads=4, ffn_dim=64, dropout=0.0).eval()
    ref = convert.encoder_layer_to_torch(layer)
    x = torch.randn(4, 9, 32, generator=_gen(9))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), ref(x), rtol=1e-5, atol=1e-5)


def test_converters_copy_every_weight_and_keep_dtype_and_mode():
    torch.manual_seed(10)
    layer = TR.DecoderLayer(dim=8, num_heads=2, ffn_dim=16, dropout=0.2, norm_first=True, activation="gelu").double()
    ref = convert.decoder_layer_to_torch(layer)
    assert ref.training and ref.norm_first and ref.dropout.p == 0.2
    assert next(ref.parameters()).dtype == torch.float64
    assert torch.equal(ref.multihead_attn.in_proj_weight[8:16], layer.cross_attn.k_proj.weight)
    mha_ref = convert.mha_to_torch(layer.self_attn.eval())
    x = torch.randn(2, 3, 8, generator=_gen(10), dtype=torch.float64)
    torch.testing.assert_close(layer.self_attn(x), mha_ref(x, x, x)[0])


# ------------------------------------------------------------------ masks, weights, dropout
def test_need_weights_gives_the_teaching_path_with_the_same_output():
    torch.manual_seed(11)
    layer = TR.DecoderLayer(dim=16, num_heads=4, ffn_dim=32, dropout=0.0).double().eval()   # float64
    g = _gen(11)
    y = torch.randn(2, 4, 16, generator=g, dtype=torch.float64)
    memory = torch.randn(2, 6, 16, generator=g, dtype=torch.float64)
    lengths, _ = _padded(B=2, S=6, lengths=(6, 3))
    kwargs = dict(tgt_mask=causal_mask(4), memory_mask=padding_mask(lengths, 6))
    out = layer(y, memory, **kwargs)
    assert isinstance(out, torch.Tensor)                              # weights only when asked
    out_w, (self_w, cross_w) = layer(y, memory, need_weights=True, **kwargs)
    torch.testing.assert_close(out_w, out, **TOL[torch.float64])
    assert self_w.shape == (2, 4, 4, 4) and cross_w.shape == (2, 4, 4, 6)
    torch.testing.assert_close(self_w.sum(-1), torch.ones(2, 4, 4, dtype=torch.float64))
    assert torch.equal(self_w.triu(1), torch.zeros_like(self_w))       # no query looks ahead
    assert torch.equal(cross_w[1, ..., 3:], torch.zeros(4, 4, 3, dtype=torch.float64))  # nor at the padding


def test_attention_maps_of_the_whole_model():
    torch.manual_seed(12)
    model = TR.Transformer(src_vocab=10, tgt_vocab=8, dim=16, num_heads=2, num_layers=3, ffn_dim=32).eval()
    src, tgt_in = torch.randint(3, 10, (2, 6), generator=_gen(12)), torch.randint(1, 8, (2, 4), generator=_gen(13))
    maps = model.attention_maps(src, tgt_in)
    assert [len(maps[k]) for k in ("encoder", "decoder_self", "cross")] == [3, 3, 3]
    assert maps["encoder"][0].shape == (2, 2, 6, 6)
    assert maps["decoder_self"][2].shape == (2, 2, 4, 4) and maps["cross"][1].shape == (2, 2, 4, 6)


def test_the_decoder_cannot_see_the_future_and_nobody_sees_padding():
    torch.manual_seed(13)
    model = TR.Transformer(src_vocab=10, tgt_vocab=8, dim=16, num_heads=2, num_layers=2, ffn_dim=32).eval()
    g = _gen(14)
    lengths, pad = _padded(B=2, S=6, lengths=(6, 4))
    src = torch.randint(3, 10, (2, 6), generator=g).masked_fill(pad, PAD_ID)
    tgt_in = torch.randint(1, 8, (2, 5), generator=g)
    logits = model(src, tgt_in, pad)
    later = tgt_in.clone()
    later[:, 3:] = (later[:, 3:] + 1) % 8
    torch.testing.assert_close(model(src, later, pad)[:, :3], logits[:, :3])
    assert not torch.allclose(model(src, later, pad)[:, 3:], logits[:, 3:])
    other_padding = src.masked_fill(pad, 7)                            # change what sits in the padding
    torch.testing.assert_close(model(other_padding, tgt_in, pad), logits)


def test_dropout_acts_in_training_only():
    torch.manual_seed(14)
    layer = TR.EncoderLayer(dim=16, num_heads=2, ffn_dim=32, dropout=0.3)
    x = torch.randn(2, 5, 16, generator=_gen(15))
    layer.train()
    assert not torch.allclose(layer(x), layer(x))                     # a new dropout mask each call
    layer.eval()
    assert torch.equal(layer(x), layer(x))
    no_drop = TR.EncoderLayer(dim=16, num_heads=2, ffn_dim=32, dropout=0.0)
    torch.testing.assert_close(no_drop.train()(x), no_drop.eval()(x))


def test_layers_and_model_are_device_agnostic_on_the_meta_device():
    model = TR.Transformer(src_vocab=10, tgt_vocab=8, dim=16, num_heads=2, num_layers=2, ffn_dim=32,
                           norm_first=True, positions="learned").to("meta")
    src = torch.zeros(2, 6, dtype=torch.long, device="meta")
    tgt_in = torch.zeros(2, 4, dtype=torch.long, device="meta")
    pad = torch.zeros(2, 6, dtype=torch.bool, device="meta")
    logits = model(src, tgt_in, pad)
    assert logits.shape == (2, 4, 8) and logits.device.type == "meta"
    assert model.attention_maps(src, tgt_in, pad)["cross"][0].device.type == "meta"
    enc = TR.Encoder(num_layers=2, dim=16, num_heads=2, ffn_dim=32).to("meta")
    assert enc(torch.empty(2, 6, 16, device="meta"), mask=causal_mask(6, device="meta")).device.type == "meta"


# ------------------------------------------------------------ teacher forcing and decoding
def test_shift_right_prepends_sos_drops_the_last_token_and_handles_padding():
    labels = torch.tensor([[5, 6, 7, EOS_ID], [8, EOS_ID, IGNORE_INDEX, IGNORE_INDEX], [9, EOS_ID, PAD_ID, PAD_ID]])
    before = labels.clone()
    assert TR.shift_right(labels).tolist() == [[SOS_ID, 5, 6, 7], [SOS_ID, 8, EOS_ID, PAD_ID],
                                               [SOS_ID, 9, EOS_ID, PAD_ID]]
    assert torch.equal(labels, before)
    assert TR.shift_right(torch.tensor([[4]])).tolist() == [[SOS_ID]]


def test_loss_is_teacher_forced_cross_entropy_without_padding():
    from attnlab.data import translation as tr

    src_tok, tgt_tok = tr.korean_tokenizers()
    batch = tr.make_batch([("삼천이백십일", "3211"), ("오", "5")], src_tok, tgt_tok)
    torch.manual_seed(15)
    model = TR.Transformer(src_vocab=len(src_tok), tgt_vocab=len(tgt_tok), dim=16, num_heads=2, num_layers=1,
                           ffn_dim=32, dropout=0.0)
    labels = batch.tgt[:, 1:]
    logits = model(batch.src, batch.tgt[:, :-1], batch.src == PAD_ID)
    keep = labels != PAD_ID
    expected = F.cross_entropy(logits[keep], labels[keep])
    torch.testing.assert_close(model.loss(batch.src, batch.src_len, batch.tgt), expected)


def test_translate_is_greedy_auto_regressive_decoding():
    torch.manual_seed(16)
    model = TR.Transformer(src_vocab=10, tgt_vocab=8, dim=16, num_heads=2, num_layers=2, ffn_dim=32).eval()
    src = torch.randint(3, 10, (3, 5), generator=_gen(16))
    src_len = torch.tensor([5, 5, 3])
    src[2, 3:] = PAD_ID
    tokens, weights = model.translate(src, src_len, max_len=6)
    assert weights is None and tokens.shape[0] == 3 and tokens.shape[1] <= 6
    pad = torch.arange(5)[None] >= src_len[:, None]
    for b in range(3):                                                 # one sequence at a time, by hand
        prefix = torch.tensor([[SOS_ID]])
        for t in range(tokens.shape[1]):
            with torch.no_grad():
                nxt = model(src[b:b + 1], prefix, pad[b:b + 1])[0, -1].argmax().item()
            assert tokens[b, t].item() == nxt
            if nxt == EOS_ID:
                assert (tokens[b, t + 1:] == PAD_ID).all()
                break
            prefix = torch.cat([prefix, torch.tensor([[nxt]])], dim=1)


def test_constructor_checks_its_arguments():
    with pytest.raises(ValueError, match="positions"):
        TR.Transformer(src_vocab=5, tgt_vocab=5, positions="rotary")
    with pytest.raises(ValueError, match="divisible"):
        TR.EncoderLayer(dim=10, num_heads=3, ffn_dim=20)


def test_token_encoder_is_embedding_positions_and_the_stack():
    torch.manual_seed(17)
    body = TR.TokenEncoder(vocab_size=12, max_len=10, num_layers=2, dim=16, num_heads=2, ffn_dim=32, dropout=0.0).eval()
    tokens = torch.randint(0, 12, (3, 7), generator=_gen(17))
    expected = body.encoder(body.pos(body.embed(tokens)), mask=causal_mask(7))
    torch.testing.assert_close(body(tokens, mask=causal_mask(7)), expected)
    out, maps = body(tokens, need_weights=True)
    assert out.shape == (3, 7, 16) and len(maps) == 2 and maps[1].shape == (3, 2, 7, 7)
    learned = TR.TokenEncoder(vocab_size=12, max_len=10, positions="learned", num_layers=1, dim=16, num_heads=2)
    assert isinstance(learned.pos, TR.LearnedPositionEmbedding)


def test_torch_state_dict_renames_a_layer_written_with_torchs_names():
    """Lab 3's layers use torch's attribute names but separate q/k/v projections."""

    class LabLayer(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = MultiHeadAttention(dim=8, num_heads=2)
            self.cross_attn = MultiHeadAttention(dim=8, num_heads=2)
            self.linear1, self.linear2 = nn.Linear(8, 16), nn.Linear(16, 8)
            self.norm1, self.norm2, self.norm3 = nn.LayerNorm(8), nn.LayerNorm(8), nn.LayerNorm(8)

    torch.manual_seed(18)
    lab = LabLayer()
    ref = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    ref.load_state_dict(convert.torch_state_dict(lab.state_dict()))        # strict: every key matches
    q, k, v = lab.cross_attn.q_proj.bias, lab.cross_attn.k_proj.bias, lab.cross_attn.v_proj.bias
    assert torch.equal(ref.multihead_attn.in_proj_bias, torch.cat([q, k, v]))


@pytest.mark.parametrize("decoder", [False, True], ids=["encoder", "decoder"])
def test_package_state_dict_reads_torchs_names_back_into_the_package(decoder):
    torch.manual_seed(19)
    make = TR.DecoderLayer if decoder else TR.EncoderLayer
    ours = make(dim=8, num_heads=2, ffn_dim=16, dropout=0.0)
    ref = (convert.decoder_layer_to_torch if decoder else convert.encoder_layer_to_torch)(ours)
    lab_style = {}                                    # torch's names with q/k/v separate, as lab 3's layers keep them
    for key, value in ref.state_dict().items():
        if "in_proj_" in key:
            prefix, kind = key.split("in_proj_")
            lab_style.update({f"{prefix}{c}_proj.{kind}": part for c, part in zip("qkv", value.chunk(3))})
        else:
            lab_style[key.replace("multihead_attn.", "cross_attn.")] = value
    back = make(dim=8, num_heads=2, ffn_dim=16, dropout=0.0)
    back.load_state_dict(convert.package_state_dict(lab_style, decoder=decoder))   # strict: every key matches
    for name, value in ours.state_dict().items():
        assert torch.equal(back.state_dict()[name], value), name
