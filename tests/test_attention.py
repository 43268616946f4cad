"""attnlab.attention against independent references (torch's MHA and fused SDPA), plus gradcheck."""

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab import attention as A


def _qkv(b=2, h=3, t_q=5, t_k=7, d=8, dv=6, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, h, t_q, d, generator=g, dtype=dtype)
    k = torch.randn(b, h, t_k, d, generator=g, dtype=dtype)
    v = torch.randn(b, h, t_k, dv, generator=g, dtype=dtype)
    return q, k, v


# Equalities with torch's own attention are shown in float64, to 1e-12: the same function, not
# merely a close one (in float32 the two sum in different orders, on each CPU differently).
F64 = dict(rtol=1e-12, atol=1e-12)


def test_sdpa_matches_torch_fused_without_mask():
    q, k, v = _qkv(dtype=torch.float64)
    out, w = A.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), **F64)
    assert w.shape == (2, 3, 5, 7)


def test_sdpa_matches_explicit_formula():
    q, k, v = _qkv(dtype=torch.float64)
    out, w = A.scaled_dot_product_attention(q, k, v)
    scores = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1])
    expected_w = scores.exp() / scores.exp().sum(-1, keepdim=True)
    torch.testing.assert_close(w, expected_w)
    torch.testing.assert_close(out, torch.einsum("bhij,bhjd->bhid", expected_w, v))


def test_weights_rows_sum_to_one_and_are_non_negative():
    q, k, v = _qkv()
    mask = torch.rand(2, 1, 5, 7, generator=torch.Generator().manual_seed(1)) < 0.4
    mask[..., 0] = False  # every query keeps at least one key
    _, w = A.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 3, 5))
    assert (w >= 0).all()


def test_masked_keys_get_exactly_zero_weight():
    q, k, v = _qkv()
    mask = torch.zeros(5, 7, dtype=torch.bool)
    mask[:, [1, 4]] = True
    _, w = A.scaled_dot_product_attention(q, k, v, mask)
    assert torch.equal(w[..., [1, 4]], torch.zeros(2, 3, 5, 2))
    # and the output does not depend on the masked values at all
    v2 = v.clone()
    v2[..., [1, 4], :] = 1e6
    out1, _ = A.scaled_dot_product_attention(q, k, v, mask)
    out2, _ = A.scaled_dot_product_attention(q, k, v2, mask)
    torch.testing.assert_close(out1, out2)


def test_fully_masked_row_gives_zero_weights_and_output():
    q, k, v = _qkv(t_q=3, t_k=4)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1] = True
    out, w = A.scaled_dot_product_attention(q, k, v, mask)
    assert torch.equal(w[:, :, 1], torch.zeros(2, 3, 4))
    assert torch.equal(out[:, :, 1], torch.zeros(2, 3, 6))
    assert torch.isfinite(out).all()
    fast = A.fast_attention(q, k, v, mask)
    assert torch.equal(fast[:, :, 1], torch.zeros(2, 3, 6))


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "random"])
def test_fast_path_equals_teaching_path(kind):
    q, k, v = _qkv(t_q=6, t_k=6, dtype=torch.float64)
    g = torch.Generator().manual_seed(3)
    mask = {
        "none": None,
        "causal": A.causal_mask(6),
        "padding": A.padding_mask(torch.tensor([6, 3]), 6),
        "random": torch.rand(2, 3, 6, 6, generator=g) < 0.5,
    }[kind]
    slow, _ = A.scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(A.fast_attention(q, k, v, mask), slow, **F64)


def test_causal_mask_blocks_exactly_the_future():
    m = A.causal_mask(4)
    expected = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(m, expected)
    # queries that are the last 2 of 4 positions
    assert torch.equal(A.causal_mask(2, 4), expected[2:])


def test_causal_attention_output_ignores_future_tokens():
    q, k, v = _qkv(t_q=6, t_k=6)
    out, _ = A.scaled_dot_product_attention(q, k, v, A.causal_mask(6))
    k2, v2 = k.clone(), v.clone()
    k2[..., 4:, :] += 5.0
    v2[..., 4:, :] -= 3.0
    out2, _ = A.scaled_dot_product_attention(q, k2, v2, A.causal_mask(6))
    torch.testing.assert_close(out[..., :4, :], out2[..., :4, :])
    assert not torch.allclose(out[..., 4:, :], out2[..., 4:, :])


def test_padding_mask_shape_and_values():
    m = A.padding_mask(torch.tensor([2, 4, 0]), 4)
    assert m.shape == (3, 1, 1, 4)
    assert torch.equal(m[:, 0, 0], torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool))


def test_non_bool_mask_is_rejected_with_a_clear_message():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="bool"):
        A.scaled_dot_product_attention(q, k, v, torch.zeros(5, 7))


def test_split_and_merge_heads_are_inverse_and_match_view_transpose():
    x = torch.randn(2, 5, 12)
    s = A.split_heads(x, 3)
    assert s.shape == (2, 3, 5, 4)
    assert torch.equal(s, x.view(2, 5, 3, 4).transpose(1, 2))
    assert torch.equal(A.merge_heads(s), x)


def _copy_into_torch_mha(mha: A.MultiHeadAttention) -> torch.nn.MultiheadAttention:
    ref = torch.nn.MultiheadAttention(mha.dim, mha.num_heads, batch_first=True, dtype=mha.q_proj.weight.dtype)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref.eval()


@pytest.mark.parametrize("need_weights", [False, True])
def test_mha_matches_torch_multihead_attention_self_attention(need_weights):
    torch.manual_seed(0)
    mha = A.MultiHeadAttention(dim=16, num_heads=4).double().eval()
    ref = _copy_into_torch_mha(mha)
    x = torch.randn(3, 5, 16, dtype=torch.float64)
    result = mha(x, need_weights=need_weights)
    ref_out, ref_w = ref(x, x, x, need_weights=True, average_attn_weights=False)
    if need_weights:  # weights only when asked: (output, weights); else the output alone
        out, w = result
        torch.testing.assert_close(w, ref_w, **F64)
    else:
        assert isinstance(result, torch.Tensor)
        out = result
    torch.testing.assert_close(out, ref_out, **F64)


def test_mha_matches_torch_with_causal_mask_and_cross_attention():
    torch.manual_seed(1)
    mha = A.MultiHeadAttention(dim=16, num_heads=2).double().eval()
    ref = _copy_into_torch_mha(mha)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    out, w = mha(x, mask=A.causal_mask(6), need_weights=True)
    # torch: bool attn_mask True = NOT allowed, the same convention as ours
    ref_out, ref_w = ref(x, x, x, attn_mask=A.causal_mask(6), average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, **F64)
    torch.testing.assert_close(w, ref_w, **F64)
    # cross-attention: 4 decoder queries attend over 6 encoder states
    y = torch.randn(2, 4, 16, dtype=torch.float64)
    out = mha(y, x)
    ref_out, _ = ref(y, x, x)
    torch.testing.assert_close(out, ref_out, **F64)


def test_mha_matches_torch_with_padding_mask():
    torch.manual_seed(2)
    mha = A.MultiHeadAttention(dim=8, num_heads=2).eval()
    ref = _copy_into_torch_mha(mha)
    x = torch.randn(2, 5, 8)
    lengths = torch.tensor([5, 3])
    out = mha(x, mask=A.padding_mask(lengths, 5))
    key_padding = torch.arange(5)[None] >= lengths[:, None]   # (B, T_k) True = pad, torch's convention
    ref_out, _ = ref(x, x, x, key_padding_mask=key_padding)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)


def test_mha_rejects_indivisible_width():
    with pytest.raises(ValueError, match="divisible"):
        A.MultiHeadAttention(dim=10, num_heads=3)


def test_sdpa_gradcheck_float64():
    q, k, v = _qkv(b=1, h=2, t_q=3, t_k=4, d=5, dv=3, dtype=torch.float64)
    mask = A.causal_mask(3, 4)
    for t in (q, k, v):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q, k, v: A.scaled_dot_product_attention(q, k, v, mask)[0], (q, k, v))


def test_mha_gradcheck_float64():
    torch.manual_seed(3)
    mha = A.MultiHeadAttention(dim=6, num_heads=2).double()
    x = torch.randn(1, 3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: mha(x, need_weights=True)[0], (x,))


def test_models_are_device_agnostic_on_the_meta_device():
    """Nothing in forward creates a tensor on a fixed device: on the meta device, mixing devices would fail.

    (CI has no GPU; this is how the suite checks that the models can be moved to one.)
    """
    from attnlab.tiny import TinyAttentionModel

    model = TinyAttentionModel(vocab_size=10, max_len=8, dim=16, num_heads=2).to("meta")
    tokens = torch.zeros(2, 8, dtype=torch.long, device="meta")
    logits, weights = model(tokens, need_weights=True)
    assert logits.shape == (2, 8, 10) and logits.device.type == "meta"
    assert weights.shape == (2, 2, 8, 8)
    q = torch.empty(2, 3, 5, 4, device="meta")
    out = A.fast_attention(q, q, q, A.causal_mask(5, device="meta"))
    assert out.device.type == "meta"
    lengths = torch.tensor([5, 2], device="meta")
    assert A.padding_mask(lengths, 5).device.type == "meta"
