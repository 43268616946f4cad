"""Tests of attnlab.rnn against torch.nn.RNN / torch.nn.LSTM with copied weights."""

import math

import torch
from torch import nn

from attnlab.rnn import LSTM, RNN, gradient_norms_through_time, lstm_cell, rnn_cell, unroll


def _torch_rnn(d_in, d, seed):
    torch.manual_seed(seed)
    return nn.RNN(d_in, d, batch_first=True).double()


def test_rnn_cell_unrolled_equals_torch_rnn():
    ref = _torch_rnn(3, 5, 0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 7, 3, generator=g, dtype=torch.float64)
    h0 = torch.randn(4, 5, generator=g, dtype=torch.float64)
    want, h_last = ref(x, h0[None])
    b = ref.bias_ih_l0 + ref.bias_hh_l0

    def step(xt, h):
        h = rnn_cell(xt, h, ref.weight_ih_l0, ref.weight_hh_l0, b)
        return h, h

    got, state = unroll(step, x, h0)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(state, h_last[0])


def test_rnn_module_states_and_outputs():
    model = RNN(in_dim=3, dim=6, out_dim=2).double()
    ref = nn.RNN(3, 6, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(model.U1)
        ref.weight_hh_l0.copy_(model.U2)
        ref.bias_ih_l0.copy_(model.b)
        ref.bias_hh_l0.zero_()
    x = torch.randn(2, 9, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    o, h = model(x)
    want_h, _ = ref(x)
    torch.testing.assert_close(h, want_h)
    torch.testing.assert_close(o, h @ model.U3.weight.T + model.U3.bias)
    assert o.shape == (2, 9, 2)


def test_lstm_cell_unrolled_equals_torch_lstm():
    torch.manual_seed(3)
    ref = nn.LSTM(4, 5, batch_first=True).double()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 6, 4, generator=g, dtype=torch.float64)
    h0 = torch.randn(1, 3, 5, generator=g, dtype=torch.float64)
    c0 = torch.randn(1, 3, 5, generator=g, dtype=torch.float64)
    want, (h_n, c_n) = ref(x, (h0, c0))
    b = ref.bias_ih_l0 + ref.bias_hh_l0

    def step(xt, hc):
        h, c = lstm_cell(xt, hc[0], hc[1], ref.weight_ih_l0, ref.weight_hh_l0, b)
        return h, (h, c)

    got, (h, c) = unroll(step, x, (h0[0], c0[0]))
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(h, h_n[0])
    torch.testing.assert_close(c, c_n[0])


def test_lstm_module_equals_torch_lstm_and_forget_bias():
    model = LSTM(in_dim=3, dim=4, forget_bias=2.0).double()
    ref = nn.LSTM(3, 4, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(model.W_ih)
        ref.weight_hh_l0.copy_(model.W_hh)
        ref.bias_ih_l0.copy_(model.b)
        ref.bias_hh_l0.zero_()
    x = torch.randn(2, 5, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    got, (h, c) = model(x)
    want, (h_n, c_n) = ref(x)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(c, c_n[0])
    k = 1 / math.sqrt(4)
    forget = model.b[4:8]
    others = torch.cat([model.b[:4], model.b[8:]])
    assert bool(((forget >= 2 - k) & (forget <= 2 + k)).all())
    assert bool((others.abs() <= k).all())


def test_gradient_norms_match_autograd_on_torch_rnn():
    model = RNN(in_dim=3, dim=8, out_dim=1).double()
    ref = nn.RNN(3, 8, batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(model.U1)
        ref.weight_hh_l0.copy_(model.U2)
        ref.bias_ih_l0.copy_(model.b)
        ref.bias_hh_l0.zero_()
    x = torch.randn(5, 12, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    got = gradient_norms_through_time(model, x)
    xr = x.clone().requires_grad_(True)
    out, _ = ref(xr)
    (out[:, -1].sum() / math.sqrt(8)).backward()
    want = xr.grad.norm(dim=-1).mean(0)
    assert got.shape == (12,)
    torch.testing.assert_close(got, want)


def test_vanilla_rnn_gradients_vanish_with_distance():
    torch.manual_seed(0)
    model = RNN(in_dim=8, dim=32, out_dim=1)
    x = torch.randn(64, 60, 8, generator=torch.Generator().manual_seed(7))
    norms = gradient_norms_through_time(model, x)
    near, far = norms[-5:].mean(), norms[:5].mean()   # distance 0-4 vs 55-59
    assert far < 1e-4 * near
