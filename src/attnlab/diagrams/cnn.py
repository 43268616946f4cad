"""Diagrams of chapter 0: the residual block, and a stack of convolutions growing its receptive field."""

from __future__ import annotations

from .core import arrow, box, canvas, grid, label

__all__ = ["residual_block", "receptive_field_stack"]


def residual_block(*, shortcut: bool = True):
    """ResNet's basic block: conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus the identity, then ReLU."""
    fig, ax = canvas(9, 9.2, title="residual block: y = ReLU(F(x) + x)" if shortcut else "plain block: y = ReLU(F(x))")
    x = box(ax, (3.5, 0.6), "x  (B, C, Hi, Wi)", kind="input", w=3.4)
    names = ["conv 3x3 (conv1)", "BatchNorm (bn1)", "ReLU", "conv 3x3 (conv2)", "BatchNorm (bn2)"]
    kinds = ["conv", "norm", "op", "conv", "norm"]
    prev, boxes = x, []
    for k, (name, kind) in enumerate(zip(names, kinds)):
        b = box(ax, (3.5, 1.9 + 1.15 * k), name, kind=kind, w=3.4)
        arrow(ax, prev.top, b.bottom)
        prev, boxes = b, boxes + [b]
    plus = box(ax, (3.5, 7.6), "+" if shortcut else "", w=0.6, h=0.6, kind="op")
    arrow(ax, prev.top, plus.bottom)
    out = box(ax, (3.5, 8.6), "ReLU -> y", kind="output", w=3.4)
    arrow(ax, plus.top, out.bottom)
    label(ax, (1.2, 4.2), "F(x)", fontsize=10, rotation=90)
    if shortcut:
        arrow(ax, (5.2, 0.6), (7.2, 0.6), style="-")
        arrow(ax, (7.2, 0.6), (7.2, 7.6), style="-", text="identity x\n(gradient\npasses\nunchanged)")
        arrow(ax, (7.2, 7.6), plus.right)
    return fig


def receptive_field_stack(*, layers: int = 3, kernel: int = 3):
    """``layers`` stacked KxK convolutions (stride 1): one output pixel sees 1 + L(K-1) input pixels."""
    size = 1 + layers * (kernel - 1) + 2
    fig, ax = canvas(4 + (layers + 1) * (size * 0.35 + 0.8), size * 0.35 + 2.2,
                     title=f"{layers} stacked {kernel}x{kernel} convolutions: receptive field {1 + layers * (kernel - 1)}")
    x = 0.5
    for level in range(layers + 1):
        seen = 1 + (layers - level) * (kernel - 1)                # pixels at this level that reach the output pixel
        lo = (size - seen) // 2
        colors = [["#ffa94d" if lo <= i < lo + seen and lo <= j < lo + seen else "white" for j in range(size)]
                  for i in range(size)]
        g = grid(ax, (x, 1.0), size, size, cell=0.35, colors=colors)
        label(ax, (g.x, 0.55), "input" if level == 0 else f"layer {level}", fontsize=8)
        if level < layers:
            arrow(ax, (g.x + g.w / 2 + 0.1, g.y), (g.x + g.w / 2 + 0.7, g.y), text=None)
        x += g.w + 0.8
    return fig
