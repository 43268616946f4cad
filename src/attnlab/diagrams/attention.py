"""Diagrams of chapter 3: queries, keys and values; multi-head attention's split and concatenation."""

from __future__ import annotations

from .core import arrow, box, canvas, group, label, tensor_bar

__all__ = ["scaled_dot_product", "multi_head"]


def scaled_dot_product():
    """Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V, as a pipeline with shapes."""
    fig, ax = canvas(9, 8.2, title="scaled dot-product attention")
    q = box(ax, (1.5, 0.6), "Q  (T_q, d_k)", kind="input", w=2.2)
    k = box(ax, (4.5, 0.6), "K  (T_k, d_k)", kind="input", w=2.2)
    v = box(ax, (7.5, 0.6), "V  (T_k, d_v)", kind="input", w=2.2)
    s = box(ax, (3.0, 2.2), "Q K^T / sqrt(d_k)\n(T_q, T_k)", kind="attention", w=3.0, h=0.9)
    arrow(ax, q.top, s.bottom)
    arrow(ax, k.top, s.bottom)
    m = box(ax, (3.0, 3.8), "mask: -inf where True\n(optional)", kind="op", w=3.0, h=0.9, dashed=True)
    arrow(ax, s.top, m.bottom)
    a = box(ax, (3.0, 5.4), "softmax over keys\nA (T_q, T_k), rows sum to 1", kind="norm", w=3.4, h=0.9)
    arrow(ax, m.top, a.bottom)
    c = box(ax, (5.5, 7.2), "C = A V  (T_q, d_v)", kind="output", w=3.0)
    arrow(ax, a.top, c.bottom)
    arrow(ax, v.top, c.bottom, rad=0.1)
    return fig


def multi_head(*, dim: int = 8, num_heads: int = 4, tokens: int = 3):
    """A token's width D cut into H heads of Dh = D / H, attention per head, concatenation, W_O."""
    dh = dim // num_heads
    fig, ax = canvas(14, 8.4, title=f"multi-head attention: D = {dim} cut into H = {num_heads} heads of Dh = {dh}")
    parts = [f"h{h}" for h in range(num_heads) for _ in range(dh)]
    head_colors = ["#ffd8a8", "#d0ebff", "#d3f9d8", "#e5dbff", "#ffc9c9", "#fff3bf", "#c5f6fa", "#e9ecef"]
    proj = box(ax, (7.0, 0.6), f"X W_Q, X W_K, X W_V   ({tokens} tokens x D = {dim})", kind="embed", w=8.0)
    bar = tensor_bar(ax, (7.0 - dim * 0.55 / 2, 1.7), parts, cell=0.55,
                     colors=[head_colors[h % len(head_colors)] for h in range(num_heads) for _ in range(dh)])
    arrow(ax, proj.top, (7.0, 1.7))
    label(ax, (7.0 + dim * 0.55 / 2 + 0.3, 1.92), "one token's q (or k, v)", ha="left", fontsize=7.5)
    heads = []
    for h in range(num_heads):
        x = 7.0 + (h - (num_heads - 1) / 2) * 3.1
        hb = box(ax, (x, 3.9), f"head {h}\nAttention(Q{h}, K{h}, V{h})", kind="attention", w=2.9, h=0.9, fontsize=7.5,
                 color=head_colors[h % len(head_colors)])
        arrow(ax, bar[h * dh + dh // 2].top if dh > 1 else bar[h].top, hb.bottom)
        heads.append(hb)
    group(ax, heads, None)
    cat = box(ax, (7.0, 6.0), f"Concat(head_0, ..., head_{num_heads - 1})  (T, D = {dim})", kind="op", w=7.0)
    for hb in heads:
        arrow(ax, hb.top, cat.bottom)
    out = box(ax, (7.0, 7.6), "W_O  (out_proj)  ->  (T, D)", kind="output", w=5.0)
    arrow(ax, cat.top, out.bottom)
    return fig
