"""attnlab.swin: windows, the cyclic shift and its mask, the relative position bias, patch merging, and
the whole Swin, proven equal to torchvision's (``shifted_window_attention``, ``PatchMerging``,
``SwinTransformer`` and ``swin_t`` itself) with copied weights; the complexity formulas counted."""

import pytest
import torch
from torch import nn
from torchvision.models import swin_transformer as tvs

from attnlab import convert
from attnlab.attention import MultiHeadAttention
from attnlab.measure import count_flops
from attnlab.swin import (PatchMerging, RelativePositionBias, SwinBlock, SwinTransformer, WindowAttention,
                          cyclic_shift, fast_window_attention, msa_macs, relative_position_index,
                          shifted_window_mask, window_attention, window_partition, window_reverse, wmsa_macs)


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------------- windows
def test_window_partition_cuts_row_major_windows_and_reverse_puts_them_back():
    x = _randn(2, 8, 12, 5)                                                   # (B, Hi, Wi, C), M = 4: 2 x 3 windows
    w = window_partition(x, 4)
    assert w.shape == (2, 6, 16, 5)
    # window 4 is window-row 1, window-column 1: rows 4..7, columns 4..7, tokens row-major
    torch.testing.assert_close(w[:, 4], x[:, 4:8, 4:8].reshape(2, 16, 5))
    torch.testing.assert_close(window_reverse(w, 4, 8, 12), x)
    # the same as the plain view / permute of the paper's code
    plain = x.view(2, 2, 4, 3, 4, 5).permute(0, 1, 3, 2, 4, 5).reshape(2, 6, 16, 5)
    torch.testing.assert_close(w, plain)
    with pytest.raises(ValueError, match="multiple"):
        window_partition(x, 5)


def test_cyclic_shift_rolls_up_and_left_and_back():
    x = torch.arange(16.0).view(1, 4, 4, 1)
    s = cyclic_shift(x, 1)
    assert s[0, 0, 0, 0] == x[0, 1, 1, 0] and s[0, 3, 3, 0] == x[0, 0, 0, 0]
    torch.testing.assert_close(cyclic_shift(s, -1), x)


def _band(y, window, shift):
    """Which shifted window (no wrap-around) original row y belongs to: the windows of the paper's
    code start at rows s, s + M, ... (and a first, partial one covers rows 0 .. s - 1)."""
    return (y + window - shift) // window


@pytest.mark.parametrize("height,width,window,shift", [(8, 8, 4, 2), (6, 9, 3, 1), (14, 14, 7, 3), (8, 8, 4, 0)])
def test_shifted_window_mask_keeps_apart_exactly_the_tokens_from_different_shifted_windows(height, width, window, shift):
    mask = shifted_window_mask(height, width, window, shift)
    n = window * window
    assert mask.dtype == torch.bool and mask.shape == ((height // window) * (width // window), n, n)
    # brute force: the token at rolled position (i, j) came from ((i + s) mod Hi, (j + s) mod Wi); two
    # tokens of a window may attend to each other iff they lie in the same shifted window of the map
    pos = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij"), -1)   # (Hi, Wi, 2)
    windows = window_partition(pos[None], window)[0]                                                  # (nW, N, 2)
    origin_y, origin_x = (windows[..., 0] + shift) % height, (windows[..., 1] + shift) % width
    key = _band(origin_y, window, shift) * 1000 + _band(origin_x, window, shift)                            # (nW, N)
    torch.testing.assert_close(mask, key[:, :, None] != key[:, None, :])
    assert not mask.all(-1).any(), "a token always sees itself"
    if shift == 0:
        assert not mask.any()


# ------------------------------------------------------------------------ relative positions
@pytest.mark.parametrize("window", [2, 3, 7])
def test_relative_position_index_by_brute_force_and_as_torchvision(window):
    index = relative_position_index(window)
    n = window * window
    expected = torch.empty(n, n, dtype=torch.long)
    for i in range(n):
        for j in range(n):
            dy, dx = i // window - j // window, i % window - j % window
            expected[i, j] = (dy + window - 1) * (2 * window - 1) + (dx + window - 1)
    torch.testing.assert_close(index, expected)
    assert index.max() == (2 * window - 1) ** 2 - 1
    ref = tvs.ShiftedWindowAttention(8, [window, window], [0, 0], 2)
    torch.testing.assert_close(index.flatten(), ref.relative_position_index)


def test_relative_position_bias_reads_the_table_as_torchvision():
    torch.manual_seed(0)
    bias = RelativePositionBias(window_size=3, num_heads=2)
    ref = tvs.ShiftedWindowAttention(8, [3, 3], [0, 0], 2)
    with torch.no_grad():
        ref.relative_position_bias_table.copy_(bias.table)
    torch.testing.assert_close(bias()[None], ref.get_relative_position_bias())
    assert "index" not in bias.state_dict() and "index" in dict(bias.named_buffers())


# ---------------------------------------------------------------------------- window attention
def test_teaching_and_fast_window_attention_agree_and_masked_keys_get_nothing():
    q, k, v = (_randn(2, 4, 3, 16, 8, seed=s) for s in (1, 2, 3))          # (B, nW, H, N, Dh)
    bias = _randn(3, 16, 16, seed=4)
    mask = shifted_window_mask(8, 8, 4, 2)[:, None]                          # (nW, 1, N, N)
    out, weights = window_attention(q, k, v, bias, mask)
    torch.testing.assert_close(fast_window_attention(q, k, v, bias, mask), out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast_window_attention(q, k, v, bias), window_attention(q, k, v, bias)[0],
                               rtol=1e-5, atol=1e-5)
    assert weights.shape == (2, 4, 3, 16, 16)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 3, 16))
    assert (weights.masked_select(mask.expand_as(weights)) == 0).all()


@pytest.mark.parametrize("height,width,window,shift", [(8, 8, 4, 0), (8, 8, 4, 2), (9, 6, 3, 1), (14, 21, 7, 3)])
def test_block_attention_equals_torchvision_shifted_window_attention(height, width, window, shift):
    torch.manual_seed(0)
    block = SwinBlock(dim=12, num_heads=3, window_size=window, resolution=(height, width), shift=shift).eval()
    attn = block.attn
    with torch.no_grad():
        attn.qkv.bias.normal_()
        attn.out_proj.bias.normal_()
    x = _randn(2, height, width, 12, seed=1)
    ref = tvs.shifted_window_attention(x, attn.qkv.weight, attn.out_proj.weight,
                                       attn.relative_position_bias()[None], [window, window], 3,
                                       shift_size=[shift, shift], qkv_bias=attn.qkv.bias,
                                       proj_bias=attn.out_proj.bias, training=False)
    torch.testing.assert_close(block.attend(x), ref, rtol=1e-5, atol=1e-5)
    out, weights = block.attend(x, need_weights=True)                         # the teaching path
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert weights.shape == (2, (height // window) * (width // window), 3, window ** 2, window ** 2)


def test_the_shift_mask_and_the_index_are_buffers_that_follow_the_module():
    block = SwinBlock(dim=8, num_heads=2, window_size=4, resolution=(8, 8), shift=2)
    buffers = dict(block.named_buffers())
    assert buffers["mask"].dtype == torch.bool and "attn.relative_position_bias.index" in buffers
    assert not any(k.endswith(("mask", "index")) for k in block.state_dict())     # derived, not learned
    meta = block.to("meta")
    assert meta.mask.device.type == "meta" and meta(torch.empty(2, 8, 8, 8, device="meta")).shape == (2, 8, 8, 8)


def test_patch_merging_equals_torchvision():
    torch.manual_seed(0)
    ours = PatchMerging(dim=6)
    ref = tvs.PatchMerging(6)
    with torch.no_grad():
        ours.norm.weight.normal_()
        ours.norm.bias.normal_()
    ref.load_state_dict(ours.state_dict())
    x = _randn(2, 6, 4, 6)
    out = ours(x)
    assert out.shape == (2, 3, 2, 12)
    torch.testing.assert_close(out, ref(x))
    with pytest.raises(ValueError, match="even"):
        ours(_randn(1, 5, 4, 6))


# ------------------------------------------------------------------------------- whole model
SWIN_T = dict(embed_dim=96, depths=[2, 2, 6, 2], num_heads=[3, 6, 12, 24])
NARROW = dict(embed_dim=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 3, 6])       # the same layout, smaller


@pytest.mark.parametrize("image_size,window,sizes,dtype,tol", [(64, 2, SWIN_T, torch.float32, 1e-5),
                                                                (96, 3, SWIN_T, torch.float32, 1e-5),
                                                                (64, 2, NARROW, torch.float64, 1e-10)])
def test_swin_t_sizes_equal_torchvision_through_the_converter(image_size, window, sizes, dtype, tol):
    """swin_t's sizes with a window that divides every map of a small image (torchvision's class);
    in float64 the two agree to 1e-10: the same function, not merely a close one."""
    torch.manual_seed(0)
    ref = tvs.SwinTransformer(patch_size=[4, 4], window_size=[window, window], stochastic_depth_prob=0.0,
                              num_classes=10, **sizes).to(dtype).eval()
    ours = convert.swin_from_torchvision(ref, image_size=image_size)
    assert not ours.training and next(ours.parameters()).dtype == dtype
    x = _randn(2, 3, image_size, image_size, seed=1, dtype=dtype)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=tol, atol=tol)
        back = convert.swin_to_torchvision(ours)                             # and the other way round
        torch.testing.assert_close(back(x), ref(x), rtol=tol, atol=tol)


@pytest.mark.slow
def test_torchvision_swin_t_itself_at_224():
    """``torchvision.models.swin_t`` as built (M = 7 divides 56, 28, 14 and 7), random weights."""
    torch.manual_seed(0)
    ref = tvs.swin_t(num_classes=10).eval()
    ours = convert.swin_from_torchvision(ref, image_size=224)
    x = _randn(1, 3, 224, 224, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_the_stages_are_a_hierarchy_and_small_maps_shrink_the_window():
    torch.manual_seed(0)
    model = SwinTransformer(image_size=64, num_classes=6, dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8),
                            window_size=4)
    maps = model.forward_features(_randn(3, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(3, 16, 16, 16), (3, 8, 8, 32), (3, 4, 4, 64), (3, 2, 2, 128)]
    blocks = [stage.blocks for stage in model.stages]
    assert [b[1].shift for b in blocks] == [2, 2, 0, 0]                        # one window: nothing to shift
    assert [b[0].window_size for b in blocks] == [4, 4, 4, 2]                  # the paper's code shrinks it
    assert model(_randn(3, 3, 64, 64)).shape == (3, 6)
    with pytest.raises(ValueError, match="smaller than the window"):
        convert.swin_to_torchvision(model)                                      # torchvision would pad instead
    with pytest.raises(ValueError, match="multiple"):
        SwinTransformer(image_size=48, num_classes=6, dim=16, depths=(2,), num_heads=(1,), window_size=5)


def test_training_mode_gradients_reach_every_parameter():
    torch.manual_seed(0)
    model = SwinTransformer(image_size=32, num_classes=4, dim=8, depths=(2, 2), num_heads=(2, 2), window_size=4)
    model(_randn(2, 3, 32, 32)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


# ------------------------------------------------------------------------------- complexity
@pytest.mark.parametrize("side,channels,window", [(8, 16, 4), (16, 32, 4), (14, 24, 7)])
def test_counted_flops_are_twice_the_papers_multiply_adds(side, channels, window):
    n = side * side
    mha = MultiHeadAttention(dim=channels, num_heads=2)
    assert count_flops(mha, _randn(1, n, channels)) == 2 * msa_macs(side, side, channels)
    attn = WindowAttention(dim=channels, num_heads=2, window_size=window)
    windows = window_partition(_randn(1, side, side, channels), window)
    assert count_flops(attn, windows) == 2 * wmsa_macs(side, side, channels, window)
    mask = shifted_window_mask(side, side, window, window // 2)
    assert count_flops(lambda w: attn(w, mask=mask), windows) == 2 * wmsa_macs(side, side, channels, window)
