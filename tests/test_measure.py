"""attnlab.measure: counts checked against hand formulas, memory against the sizes of known tensors."""

import torch
from torch import nn

from attnlab.attention import fast_attention, scaled_dot_product_attention
from attnlab.data.digits import digits_tensors
from attnlab.measure import count_flops, count_parameters, peak_memory, time_call


def test_count_parameters_trainable_and_all():
    lin = nn.Linear(4, 3)
    lin.bias.requires_grad_(False)
    assert count_parameters(lin) == 12 and count_parameters(lin, trainable_only=False) == 15


def test_count_flops_of_a_matrix_product_and_its_backward():
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    assert count_flops(torch.matmul, a, b) == 2 * 8 * 16 * 4
    lin = nn.Linear(16, 4, bias=False)
    x = torch.randn(8, 16, requires_grad=True)
    # backward of y = x W^T: dL/dx = g W and dL/dW = g^T x, two more products of the same size
    assert count_flops(lin, x, backward=True) == 3 * 2 * 8 * 16 * 4


def test_count_flops_counts_the_fused_attention_of_the_cpu_like_the_teaching_path():
    q = torch.randn(2, 3, 10, 8, requires_grad=True)
    products = 2 * (2 * 2 * 3 * 10 * 10 * 8)                # Q K^T and A V: 2 FLOPs per multiply-add
    assert count_flops(fast_attention, q, q, q) == count_flops(lambda *a: scaled_dot_product_attention(*a)[0], q, q, q)
    assert count_flops(fast_attention, q, q, q) == products
    # backward: dV, dP, dQ, dK and the scores computed again (the kernel keeps no T x T matrix): 5 products
    assert count_flops(fast_attention, q, q, q, backward=True) == products + 5 * products // 2


def test_peak_memory_sees_the_attention_matrix_and_not_the_inputs():
    t, d = 256, 16
    q = torch.randn(1, 1, t, d)
    teaching = peak_memory(scaled_dot_product_attention, q, q, q)
    one_matrix = t * t * 4                                  # one (T, T) float32 matrix
    assert one_matrix <= teaching <= 4 * one_matrix + 2 * q.numel() * 4
    fused = peak_memory(fast_attention, q, q, q)            # CPU flash kernel: no (T, T) matrix
    assert fused < one_matrix
    meta = torch.empty(1, 1, 4096, d, device="meta")        # far beyond RAM on a real device
    assert peak_memory(scaled_dot_product_attention, meta, meta, meta) >= 4096 * 4096 * 4


def test_peak_memory_frees_what_dies_inside_the_call():
    def make_and_drop():
        for _ in range(10):
            x = torch.ones(1000)                            # 4,000 bytes, freed at each turn
            del x
    assert 4000 <= peak_memory(make_and_drop) <= 8000


def test_time_call_is_a_positive_median():
    assert time_call(lambda: sum(range(1000)), repeat=3) > 0


def test_digits_tensors_split_depends_only_on_the_generator():
    xtr, ytr, xte, yte = digits_tensors(generator=torch.Generator().manual_seed(3))
    assert xtr.shape[1:] == (1, 8, 8) and xtr.dtype == torch.float32 and ytr.dtype == torch.int64
    assert len(xtr) + len(xte) == 1797 and len(xte) == round(0.25 * 1797)
    assert float(xtr.min()) >= 0.0 and float(xtr.max()) == 1.0
    assert set(ytr.tolist()) == set(range(10))
    again = digits_tensors(generator=torch.Generator().manual_seed(3))
    assert torch.equal(again[0], xtr) and torch.equal(again[3], yte)
    assert not torch.equal(digits_tensors(generator=torch.Generator().manual_seed(4))[1], ytr)
