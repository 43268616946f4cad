"""Diagrams of chapter 3, part 2: Add & Norm in both placements, the feed-forward layer, the encoder
and decoder layers and the whole encoder-decoder, drawn with the sizes of the model on the page.

Post-norm (the paper) and pre-norm (ViT, GPT) are drawn differently on purpose: in post-norm the
LayerNorm box sits *on* the residual path, after the addition; in pre-norm it sits on the side
branch, before the sublayer, and the residual path runs from bottom to top without a box.
"""

from __future__ import annotations

from .core import Box, arrow, box, canvas, group, label

__all__ = ["add_norm", "feed_forward", "encoder_layer", "decoder_layer", "transformer"]

_PLACEMENT = {False: "post-norm (the paper): x = LN(x + Sublayer(x))",
              True: "pre-norm (ViT, GPT): x = x + Sublayer(LN(x))"}


def _residual(ax, start: tuple[float, float], plus: Box, *, side: float) -> None:
    """The shortcut: a line from ``start`` out to x = ``side``, up, and into the (+) box."""
    ax.plot([start[0], side, side], [start[1], start[1], plus.y], color="#343a40", linewidth=1.0, zorder=1)
    arrow(ax, (side, plus.y), plus.left if side < plus.x else plus.right)


def _sublayer(ax, x: float, y: float, text: str, kind: str, *, norm_first: bool, side: float,
              extra_inputs: int = 0) -> tuple[float, Box]:
    """One sublayer inside Add & Norm, from height ``y`` (its input) upwards; returns its output
    height and the sublayer's box.

    Post-norm: sublayer -> (+) -> LayerNorm. Pre-norm: LayerNorm -> sublayer -> (+).
    ``extra_inputs``: arrows drawn into the sublayer from the right (the encoder's memory).
    """
    start = (x, y)
    if norm_first:
        norm = box(ax, (x, y + 0.8), "LayerNorm", kind="norm", w=2.2, h=0.6)
        arrow(ax, start, norm.bottom)
        sub = box(ax, (x, y + 2.0), text, kind=kind, w=4.2, h=0.9)
        arrow(ax, norm.top, sub.bottom)
        plus = box(ax, (x, y + 3.1), "+", kind="op", w=0.6, h=0.5)
        arrow(ax, sub.top, plus.bottom)
        _residual(ax, start, plus, side=side)
        top = plus.top[1]
    else:
        sub = box(ax, (x, y + 1.0), text, kind=kind, w=4.2, h=0.9)
        arrow(ax, start, sub.bottom)
        plus = box(ax, (x, y + 2.1), "+", kind="op", w=0.6, h=0.5)
        arrow(ax, sub.top, plus.bottom)
        norm = box(ax, (x, y + 3.0), "LayerNorm", kind="norm", w=2.2, h=0.6)
        arrow(ax, plus.top, norm.bottom)
        _residual(ax, start, plus, side=side)
        top = norm.top[1]
    for k in range(extra_inputs):
        arrow(ax, (sub.right[0] + 1.4, sub.y - 0.2 + 0.4 * k), (sub.right[0], sub.y - 0.2 + 0.4 * k))
    return top + 0.2, sub


def add_norm(*, norm_first: bool = False):
    """Add & Norm around one sublayer, in the placement ``norm_first`` chooses."""
    fig, ax = canvas(8.0, 6.4, title=_PLACEMENT[norm_first])
    inp = box(ax, (4.0, 0.5), "x  (T, D)", kind="input", w=2.0, h=0.6)
    top, _ = _sublayer(ax, 4.0, inp.top[1] + 0.2, "Sublayer\n(attention or FFN)", "attention",
                       norm_first=norm_first, side=1.3)
    arrow(ax, (4.0, inp.top[1]), (4.0, inp.top[1] + 0.2))
    out = box(ax, (4.0, top + 0.9), "output  (T, D)", kind="output", w=2.4, h=0.6)
    arrow(ax, (4.0, top), out.bottom)
    label(ax, (1.2, 2.9), "residual\n(shortcut)", fontsize=7, ha="right")
    if norm_first:
        label(ax, (1.2, 2.0), "no LayerNorm\non this path", fontsize=7, ha="right", color="#c92a2a")
    else:
        label(ax, (6.6, 4.8), "every token's vector\nis normalised here", fontsize=7, color="#c92a2a")
    return fig


def feed_forward(*, dim: int = 4, ffn_dim: int = 16, tokens: int = 3, activation: str = "relu"):
    """The position-wise FFN: the same two linear layers applied to each token on its own."""
    fig, ax = canvas(3.2 * tokens + 2.2, 6.2, title=f"position-wise feed-forward: D = {dim} -> F = {ffn_dim} -> D")
    for t in range(tokens):
        x = 1.8 + 3.2 * t
        inp = box(ax, (x, 0.6), f"token {t}  ({dim},)", kind="input", w=2.4, h=0.6)
        up = box(ax, (x, 2.0), f"x W1 + b1, {activation}  ({ffn_dim},)", kind="ffn", w=2.9, h=0.7, fontsize=7.5)
        down = box(ax, (x, 3.5), f"h W2 + b2  ({dim},)", kind="ffn", w=2.6, h=0.7, fontsize=7.5)
        out = box(ax, (x, 5.0), f"token {t}'", kind="output", w=1.6, h=0.6)
        arrow(ax, inp.top, up.bottom)
        arrow(ax, up.top, down.bottom)
        arrow(ax, down.top, out.bottom)
    label(ax, (1.8 + 1.6 * (tokens - 1), 5.75), "the same W1, W2 for every position; no token sees another",
          fontsize=7.5)
    return fig


def _layer(title: str, sublayers: list[tuple[str, str, int]], *, norm_first: bool):
    height = 1.6 + 3.6 * len(sublayers) + 1.4
    fig, ax = canvas(11.0, height, title=title)
    x, side = 4.6, 1.7
    inp = box(ax, (x, 0.5), "x  (B, T, D)", kind="input", w=2.2, h=0.6)
    y = inp.top[1] + 0.2
    arrow(ax, inp.top, (x, y))
    bottom = y
    for text, kind, extra in sublayers:
        y, sub = _sublayer(ax, x, y, text, kind, norm_first=norm_first, side=side, extra_inputs=extra)
        if extra:
            label(ax, (sub.right[0] + 1.5, sub.y), "memory (B, S, D)\nfrom the encoder:\nkeys and values",
                  fontsize=7.5, ha="left")
    group(ax, [Box((side - 0.1 + x + 2.1) / 2, (bottom + y) / 2, x + 2.2 - side, y - bottom)], "x N",
          pad=0.15, text_side="left")
    out = box(ax, (x, y + 0.8), "(B, T, D)", kind="output", w=2.0, h=0.6)
    arrow(ax, (x, y), out.bottom)
    return fig


def encoder_layer(*, dim: int = 512, num_heads: int = 8, ffn_dim: int = 2048, norm_first: bool = False):
    """One encoder layer with the paper's sizes by default: self-attention, then the FFN."""
    sublayers = [(f"multi-head self-attention\nH = {num_heads}, D = {dim}", "attention", 0),
                 (f"feed-forward\nD = {dim} -> F = {ffn_dim} -> D", "ffn", 0)]
    return _layer(f"encoder layer, {_PLACEMENT[norm_first].split(':')[0]}", sublayers, norm_first=norm_first)


def decoder_layer(*, dim: int = 512, num_heads: int = 8, ffn_dim: int = 2048, norm_first: bool = False):
    """One decoder layer: masked self-attention, cross-attention to the encoder's output, the FFN."""
    sublayers = [(f"masked self-attention\n(causal), H = {num_heads}", "attention", 0),
                 ("cross-attention: Q from here,\nK, V from the encoder", "attention", 2),
                 (f"feed-forward\nD = {dim} -> F = {ffn_dim} -> D", "ffn", 0)]
    return _layer(f"decoder layer, {_PLACEMENT[norm_first].split(':')[0]}", sublayers, norm_first=norm_first)


def transformer(*, num_layers: int = 6, dim: int = 512, num_heads: int = 8, ffn_dim: int = 2048,
                norm_first: bool = False):
    """The encoder-decoder: N encoder layers, N decoder layers reading the encoder's output, the
    output projection; with pre-norm, each stack ends with a LayerNorm."""
    fig, ax = canvas(14.0, 10.4, title=f"the Transformer: N = {num_layers}, D = {dim}, H = {num_heads}, "
                                       f"F = {ffn_dim}, {'pre' if norm_first else 'post'}-norm")
    src = box(ax, (3.5, 0.6), "source ids (B, S)", kind="input", w=3.0, h=0.6)
    tgt = box(ax, (10.5, 0.6), "shift_right(target) (B, T)", kind="input", w=3.6, h=0.6)
    enc_emb = box(ax, (3.5, 1.8), "embedding x sqrt(D)\n+ positional encoding", kind="embed", w=3.6, h=0.9)
    dec_emb = box(ax, (10.5, 1.8), "embedding x sqrt(D)\n+ positional encoding", kind="embed", w=3.6, h=0.9)
    arrow(ax, src.top, enc_emb.bottom)
    arrow(ax, tgt.top, dec_emb.bottom)
    enc = [box(ax, (3.5, 3.4), f"self-attention (H = {num_heads})\n+ Add & Norm", kind="attention", w=3.8, h=0.9),
           box(ax, (3.5, 4.7), f"FFN (F = {ffn_dim})\n+ Add & Norm", kind="ffn", w=3.8, h=0.9)]
    dec = [box(ax, (10.5, 3.4), "masked self-attention\n+ Add & Norm", kind="attention", w=3.8, h=0.9),
           box(ax, (10.5, 4.9), "cross-attention\n+ Add & Norm", kind="attention", w=3.8, h=0.9),
           box(ax, (10.5, 6.4), f"FFN (F = {ffn_dim})\n+ Add & Norm", kind="ffn", w=3.8, h=0.9)]
    for a, b in zip([enc_emb] + enc[:-1], enc):
        arrow(ax, a.top, b.bottom)
    for a, b in zip([dec_emb] + dec[:-1], dec):
        arrow(ax, a.top, b.bottom)
    group(ax, enc, f"x {num_layers}", text_side="left")
    group(ax, dec, f"x {num_layers}")
    top = enc[-1]
    if norm_first:
        top = box(ax, (3.5, 6.0), "final LayerNorm", kind="norm", w=2.6, h=0.6)
        arrow(ax, enc[-1].top, top.bottom)
    arrow(ax, top.top, dec[1].left, rad=-0.25)
    label(ax, (6.6, 7.3), "memory (B, S, D): keys and values\nof every decoder layer's cross-attention", fontsize=7.5)
    last = dec[-1]
    if norm_first:
        last = box(ax, (10.5, 7.6), "final LayerNorm", kind="norm", w=2.6, h=0.6)
        arrow(ax, dec[-1].top, last.bottom)
    proj = box(ax, (10.5, 8.7), "linear to V, softmax", kind="output", w=3.2, h=0.6)
    arrow(ax, last.top, proj.bottom)
    label(ax, (10.5, 9.6), "next-token probabilities (B, T, V)", fontsize=8)
    label(ax, (3.5, 0.0), "encoder", fontsize=9, color="#495057")
    label(ax, (10.5, 0.0), "decoder", fontsize=9, color="#495057")
    return fig
