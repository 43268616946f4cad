"""Diagrams of chapter 2: the unrolled RNN, the LSTM cell, seq2seq with and without attention."""

from __future__ import annotations

from .core import arrow, box, canvas, group, label

__all__ = ["unrolled_rnn", "lstm_cell", "seq2seq"]


def unrolled_rnn(*, steps: int = 4):
    """h_i = tanh(U1 x_i + U2 h_{i-1} + b), o_i = U3 h_i + b_o, unrolled over ``steps`` inputs."""
    fig, ax = canvas(3.2 * steps + 2.4, 6.2, title="an RNN unrolled in time: the same U1, U2, U3 at every step")
    prev = box(ax, (1.0, 3.0), "h0", kind="input", w=1.0)
    for i in range(1, steps + 1):
        cx = 1.0 + 3.2 * i
        x = box(ax, (cx, 0.7), f"x{i}", kind="input", w=1.0)
        h = box(ax, (cx, 3.0), f"h{i}", kind="rnn", w=1.0)
        o = box(ax, (cx, 5.3), f"o{i}", kind="output", w=1.0)
        arrow(ax, x.top, h.bottom, text="U1")
        arrow(ax, h.top, o.bottom, text="U3")
        arrow(ax, prev.right, h.left, text="U2", text_offset=(-0.3, 0.25))
        prev = h
    return fig


def lstm_cell():
    """One LSTM step: four slices of one 4D pre-activation make the gates i, f, o and the candidate m~."""
    fig, ax = canvas(14.5, 8.6, title="LSTM cell: gates are real-valued openings in (0, 1)")
    inp = box(ax, (7.2, 0.6), "x_i and h_{i-1}", kind="input", w=2.8)
    pre = box(ax, (7.2, 2.1), "z = W_ih x_i + W_hh h_{i-1} + b   (one vector of 4D values)", kind="embed", w=8.4)
    arrow(ax, inp.top, pre.bottom)
    gates = [("i = sigmoid(z[0:D])", "input gate"), ("f = sigmoid(z[D:2D])", "forget gate"),
             ("m~ = tanh(z[2D:3D])", "candidate"), ("o = sigmoid(z[3D:4D])", "output gate")]
    boxes = []
    for k, (text, name) in enumerate(gates):
        b = box(ax, (1.9 + 3.55 * k, 4.1), text, kind="ffn" if k != 2 else "attention", w=3.3, h=0.8, fontsize=8)
        label(ax, (b.x, 4.75), name, fontsize=7, color="#495057")
        arrow(ax, (pre.x - 3.6 + 2.4 * k, pre.y + pre.h / 2), b.bottom)
        boxes.append(b)
    cell = box(ax, (5.4, 6.3), "m_i = f * m_{i-1} + i * m~", kind="rnn", w=4.4)
    for b in boxes[:3]:
        arrow(ax, b.top, cell.bottom)
    hid = box(ax, (11.3, 6.3), "h_i = o * tanh(m_i)", kind="output", w=3.6)
    arrow(ax, cell.right, hid.left)
    arrow(ax, boxes[3].top, hid.bottom)
    prev = box(ax, (1.2, 7.9), "m_{i-1}", kind="input", w=1.6)
    arrow(ax, prev.right, (cell.x - 1.2, cell.y + cell.h / 2), text="the memory cell", text_offset=(0.1, 0.2))
    return fig


def seq2seq(*, attention: bool, src_len: int = 4, tgt_len: int = 3):
    """Encoder-decoder: without attention only the last state h_S reaches the decoder (the bottleneck);
    with Bahdanau attention, each decoder step reads a weighted average of all encoder states."""
    width = 2.0 + 1.9 * (src_len + tgt_len) + 1.0
    title = ("seq2seq with Bahdanau attention: c_i = sum_j a_ij h_j, new at every step" if attention
             else "seq2seq (Sutskever): one context vector c = h_S for every step")
    fig, ax = canvas(width, 7.4, title=title)
    enc = []
    for j in range(1, src_len + 1):
        x = box(ax, (1.2 + 1.9 * (j - 1), 0.7), f"x{j}", kind="input", w=1.1)
        h = box(ax, (1.2 + 1.9 * (j - 1), 2.4), f"h{j}", kind="rnn", w=1.1)
        arrow(ax, x.top, h.bottom)
        if enc:
            arrow(ax, enc[-1].right, h.left)
        enc.append(h)
    group(ax, enc, None)
    label(ax, (enc[0].x, 3.35), "encoder", fontsize=8, ha="left")
    dec = []
    x0 = 1.2 + 1.9 * src_len + 0.6
    for i in range(1, tgt_len + 1):
        g = box(ax, (x0 + 1.9 * (i - 1), 4.6), f"g{i}", kind="rnn", w=1.1)
        y = box(ax, (g.x, 6.4), f"y{i}", kind="output", w=1.1)
        arrow(ax, g.top, y.bottom)
        label(ax, (g.x - 0.55, 3.55), f"y{i - 1}" if i > 1 else "<SOS>", fontsize=7, ha="right")
        arrow(ax, (g.x - 0.55, 3.7), g.bottom)
        if dec:
            arrow(ax, dec[-1].right, g.left)
        dec.append(g)
    label(ax, (dec[0].x, 5.45), "decoder", fontsize=8, ha="left")
    if attention:
        last = dec[-1]
        c = box(ax, (last.x - 0.4, 2.4), "c_i = sum_j a_ij h_j", kind="attention", w=2.6, h=0.7, fontsize=7.5)
        for h in enc:
            arrow(ax, h.top, (c.x - c.w / 2, c.y + 0.1), rad=-0.25, color="#e8590c")
        for g in dec:
            arrow(ax, (c.x, c.y + c.h / 2), g.bottom, color="#e8590c", dashed=True)
        label(ax, (c.x, c.y - 0.65), "weights a_i = softmax(scores of g_{i-1} against every h_j)", fontsize=7)
    else:
        arrow(ax, enc[-1].right, dec[0].left, color="#c92a2a")
        label(ax, (enc[-1].x + 0.9, enc[-1].y + 0.95), "c = h_S", fontsize=8, color="#c92a2a")
        for g in dec[1:]:
            arrow(ax, (enc[-1].x + 0.6, enc[-1].y + 0.2), g.bottom, color="#c92a2a", dashed=True, rad=-0.15)
    return fig
