"""attnlab.nonlocal_net: the non-local block is self-attention over positions (torch references, brute force)."""

import math

import pytest
import torch
import torch.nn.functional as F

from attnlab.nonlocal_net import NonLocalBlock, nonlocal_attention


def _maps(b=2, c=4, h=3, w=5, cv=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, c, h, w, generator=g, dtype=dtype), torch.randn(b, c, h, w, generator=g, dtype=dtype),
            torch.randn(b, cv, h, w, generator=g, dtype=dtype))


def test_embedded_gaussian_equals_torch_attention_over_positions_without_scale():
    theta, phi, g = _maps()
    y, w = nonlocal_attention(theta, phi, g)
    q = theta.flatten(2).transpose(1, 2)                     # (B, N, C')
    k = phi.flatten(2).transpose(1, 2)
    v = g.flatten(2).transpose(1, 2)                         # (B, N, Cv)
    expected = F.scaled_dot_product_attention(q, k, v, scale=1.0)   # softmax(q k^T) v
    torch.testing.assert_close(y, expected.transpose(1, 2).reshape(2, 6, 3, 5))
    assert w.shape == (2, 15, 15)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 15, dtype=torch.float64))


def test_embedded_gaussian_matches_brute_force_sum_over_positions():
    theta, phi, g = _maps(b=1, c=3, h=2, w=3, cv=2, seed=1)
    y, _ = nonlocal_attention(theta, phi, g)
    positions = [(r, c) for r in range(2) for c in range(3)]
    for (ri, ci) in positions:
        f = torch.stack([torch.exp(theta[0, :, ri, ci] @ phi[0, :, rj, cj]) for (rj, cj) in positions])
        expected = sum(f[j] * g[0, :, rj, cj] for j, (rj, cj) in enumerate(positions)) / f.sum()
        torch.testing.assert_close(y[0, :, ri, ci], expected)


def test_dot_product_mode_divides_by_number_of_positions():
    theta, phi, g = _maps(seed=2)
    y, w = nonlocal_attention(theta, phi, g, mode="dot_product")
    q, k, v = (t.flatten(2).transpose(1, 2) for t in (theta, phi, g))
    torch.testing.assert_close(w, q @ k.transpose(1, 2) / 15)
    torch.testing.assert_close(y, (w @ v).transpose(1, 2).reshape(2, 6, 3, 5))
    with pytest.raises(ValueError):
        nonlocal_attention(theta, phi, g, mode="gaussian_kernel")


def test_block_equals_residual_plus_multihead_attention_with_copied_weights():
    """z = x + W_z softmax(theta(x) phi(x)^T) g(x) is torch's one-head self-attention over the N positions.

    torch's MultiheadAttention works at width C and scales by 1/sqrt(C); the block works at width
    C' with no scale. Padding theta, phi, g with C - C' zero rows (and W_z with zero columns) changes
    no dot product, and multiplying theta by sqrt(C) cancels the scale.
    """
    c, inner = 8, 4
    block = NonLocalBlock(channels=c, inner_channels=inner).double()
    x = torch.randn(2, c, 4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    mha = torch.nn.MultiheadAttention(c, num_heads=1, batch_first=True).double()

    def pad_rows(w):                                         # (C', C) -> (C, C)
        return torch.cat([w, torch.zeros(c - inner, c, dtype=w.dtype)])

    def pad_vec(v):
        return torch.cat([v, torch.zeros(c - inner, dtype=v.dtype)])

    with torch.no_grad():
        wq, wk, wv = (getattr(block, n).weight[:, :, 0, 0] for n in ("theta", "phi", "g"))
        mha.in_proj_weight.copy_(torch.cat([pad_rows(wq) * math.sqrt(c), pad_rows(wk), pad_rows(wv)]))
        mha.in_proj_bias.copy_(torch.cat([pad_vec(block.theta.bias) * math.sqrt(c), pad_vec(block.phi.bias),
                                          pad_vec(block.g.bias)]))
        wz = block.w_z.weight[:, :, 0, 0]                    # (C, C')
        mha.out_proj.weight.copy_(torch.cat([wz, torch.zeros(c, c - inner, dtype=wz.dtype)], dim=1))
        mha.out_proj.bias.copy_(block.w_z.bias)
    seq = x.flatten(2).transpose(1, 2)                       # (B, N, C), positions row by row
    out, attn = mha(seq, seq, seq)                           # (B, N, C), (B, N, N)
    z, w = block(x, need_weights=True)
    torch.testing.assert_close(z, (seq + out).transpose(1, 2).reshape(2, c, 4, 3))
    torch.testing.assert_close(w, attn)


def test_block_is_permutation_equivariant_over_positions():
    block = NonLocalBlock(channels=6).double()
    x = torch.randn(1, 6, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(5))
    xp = x.flatten(2)[..., perm].reshape(1, 6, 4, 4)
    torch.testing.assert_close(block(xp).flatten(2), block(x).flatten(2)[..., perm])


def test_zero_init_block_is_identity_and_gradients_reach_every_projection():
    x = torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(NonLocalBlock(channels=4, zero_init=True)(x), x)
    block = NonLocalBlock(channels=4)
    block(x).square().sum().backward()
    for name in ("theta", "phi", "g", "w_z"):
        assert getattr(block, name).weight.grad.abs().sum() > 0, name
    assert block.theta.out_channels == 2                     # C' = C / 2 by default
