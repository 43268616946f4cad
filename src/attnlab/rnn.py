"""Recurrent cells written out: the RNN of the notes and the LSTM (chapter 2, sections "The
recurrent network" and "Long-range dependency and the LSTM").

The notes' RNN (순환 신경망) has three weight matrices {U1, U2, U3}: at step i the input x_i and
the previous state h_{i-1} make the new state h_i, and h_i makes the output o_i::

    h_i = tanh(U1 x_i + U2 h_{i-1} + b)        o_i = U3 h_i + b_o

Vectors are rows here (``x @ U1.T``), the layout of ``torch.nn.RNN``: ``U1`` is its
``weight_ih_l0``, ``U2`` its ``weight_hh_l0`` and ``b = bias_ih_l0 + bias_hh_l0``, so the tests can
copy weights across and compare. The LSTM cell uses ``torch.nn.LSTM``'s gate order (i, f, g, o).

Teaching path and fast path: :func:`rnn_cell`, :func:`lstm_cell` and :func:`unroll` show the
maths one step at a time; models that train (``attnlab.seq2seq``) use ``torch.nn.LSTM``, which
the tests prove equal to them.

Simplifications: one layer, one direction, no dropout; torch's two biases are summed into one.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

__all__ = ["rnn_cell", "lstm_cell", "unroll", "RNN", "LSTM", "gradient_norms_through_time"]


def rnn_cell(x: torch.Tensor, h: torch.Tensor, U1: torch.Tensor, U2: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """One step of the RNN: ``h_i = tanh(U1 x_i + U2 h_{i-1} + b)``.

    Args:
        x: (B, D_in) the input x_i (an embedding vector for a token).
        h: (B, D) the previous state h_{i-1}.
        U1: (D, D_in) input-to-hidden weights.
        U2: (D, D) hidden-to-hidden weights: the recurrent edge.
        b: (D,) bias.

    Returns:
        (B, D) the new state h_i.
    """
    return torch.tanh(x @ U1.T + h @ U2.T + b)


def lstm_cell(
    x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the LSTM (Hochreiter & Schmidhuber 1997; the forget gate is Gers, Schmidhuber &
    Cummins 2000).

    The gates are four slices of **one** pre-activation z = W_ih x_i + W_hh h_{i-1} + b of width 4D;
    each gate is a vector of real-valued openings in (0, 1), not a switch::

        i = sigmoid(z[0:D])      f = sigmoid(z[D:2D])      (input, forget gates)
        m~ = tanh(z[2D:3D])      o = sigmoid(z[3D:4D])     (candidate memory, output gate)
        m_i = f * m_{i-1} + i * m~          h_i = o * tanh(m_i)

    The memory cell m (the book's letter) is called ``c`` here, as in ``torch.nn.LSTM``.

    Args:
        x: (B, D_in) input; h, c: (B, D) previous state and memory cell.
        W_ih: (4D, D_in), W_hh: (4D, D), b: (4D,), rows in ``torch.nn.LSTM``'s order i, f, g, o.

    Returns:
        (h_i, c_i), each (B, D).
    """
    z = x @ W_ih.T + h @ W_hh.T + b                                      # (B, 4D): one pre-activation
    i, f, m_new, o = z.chunk(4, dim=-1)                                   # 4 slices of (B, D)
    i, f, m_new, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(m_new), torch.sigmoid(o)
    c = f * c + i * m_new                                                 # the memory cell m_i
    return o * torch.tanh(c), c


def unroll(step: Callable[[torch.Tensor, object], tuple[torch.Tensor, object]],
           xs: torch.Tensor, state: object) -> tuple[torch.Tensor, object]:
    """Apply a cell along time: ``out_i, state = step(x_i, state)`` for i = 1..T.

    Args:
        step: ``step(x (B, D_in), state) -> (h (B, D), new state)``.
        xs: (B, T, D_in) inputs.
        state: the initial state (a tensor, or a tuple for the LSTM).

    Returns:
        (B, T, D) the state h_i of every step, and the final state.
    """
    outs = []
    for t in range(xs.size(1)):
        h, state = step(xs[:, t], state)
        outs.append(h)
    return torch.stack(outs, dim=1), state                                # (B, T, D)


class RNN(nn.Module):
    """The notes' RNN with weights {U1, U2, U3}: states h_i and outputs o_i = U3 h_i + b_o.

    Initialised like ``torch.nn.RNN`` (uniform in +-1/sqrt(D)).
    """

    def __init__(self, *, in_dim: int, dim: int, out_dim: int) -> None:
        super().__init__()
        k = 1.0 / math.sqrt(dim)
        self.U1 = nn.Parameter(torch.empty(dim, in_dim).uniform_(-k, k))
        self.U2 = nn.Parameter(torch.empty(dim, dim).uniform_(-k, k))
        self.b = nn.Parameter(torch.empty(dim).uniform_(-k, k))
        self.U3 = nn.Linear(dim, out_dim)  # o_i = U3 h_i + b_o (b_o: the Linear's bias)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, T, D_in); h0: (B, D) or None (zeros). Returns outputs o (B, T, D_out) and states h (B, T, D)."""
        B = x.size(0)
        if h0 is None:
            h0 = x.new_zeros(B, self.U2.size(0))

        def step(xt: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            h = rnn_cell(xt, h, self.U1, self.U2, self.b)
            return h, h                                                   # output and new state

        hs, _ = unroll(step, x, h0)                                       # (B, T, D)
        return self.U3(hs), hs                                            # (B, T, D_out), (B, T, D)


class LSTM(nn.Module):
    """An LSTM layer written with :func:`lstm_cell`; same parameters and initialisation as ``torch.nn.LSTM``.

    Args:
        forget_bias: added to the forget gate's bias at initialisation; 1 or more keeps the
            memory open at the start of training (Jozefowicz et al. 2015). ``torch.nn.LSTM`` uses 0.
    """

    def __init__(self, *, in_dim: int, dim: int, forget_bias: float = 0.0) -> None:
        super().__init__()
        k = 1.0 / math.sqrt(dim)
        self.W_ih = nn.Parameter(torch.empty(4 * dim, in_dim).uniform_(-k, k))
        self.W_hh = nn.Parameter(torch.empty(4 * dim, dim).uniform_(-k, k))
        self.b = nn.Parameter(torch.empty(4 * dim).uniform_(-k, k))
        with torch.no_grad():
            self.b[dim: 2 * dim] += forget_bias

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x: (B, T, D_in). Returns the states h (B, T, D) and the final (h, c)."""
        if state is None:
            zeros = x.new_zeros(x.size(0), self.W_hh.size(1))
            state = (zeros, zeros)

        def step(xt: torch.Tensor, hc: tuple[torch.Tensor, torch.Tensor]):
            h, c = lstm_cell(xt, hc[0], hc[1], self.W_ih, self.W_hh, self.b)
            return h, (h, c)

        return unroll(step, x, state)


def gradient_norms_through_time(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """How much the last state still depends on each input: ``||d (u . h_T) / d x_i||`` for every i.

    What is differentiated is one number, the projection of the last state on a fixed direction
    u = (1, ..., 1) / sqrt(D) (a gradient needs a scalar); its norm over the input x_i measures how
    strongly a change at step i still reaches step T. Distance T - i grows from right to left.

    Args:
        model: an :class:`RNN` or an :class:`LSTM` of this module.
        x: (B, T, D_in) inputs.

    Returns:
        (T,) the gradient norm at each input position, averaged over the batch; entry ``T - 1 - k``
        is the norm at distance ``k``.
    """
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    hs = out[1] if isinstance(model, RNN) else out[0]                    # (B, T, D)
    h_last = hs[:, -1]                                                    # (B, D)
    (h_last.sum(dim=-1) / math.sqrt(h_last.size(-1))).sum().backward()
    return x.grad.norm(dim=-1).mean(dim=0)                               # (T,)
