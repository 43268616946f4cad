"""Diagrams of chapter 1: the Itti-Koch saliency pipeline and the non-local block."""

from __future__ import annotations

from .core import arrow, box, canvas, group

__all__ = ["itti_koch", "nonlocal_block"]


def itti_koch():
    """Image -> pyramids -> centre-surround feature maps -> normalised conspicuity maps -> saliency."""
    fig, ax = canvas(13, 7.4, title="Itti-Koch saliency: hand-designed, bottom-up")
    img = box(ax, (6.5, 0.6), "image (RGB)", kind="input", w=3.0)
    names = [("intensity\nI = (R+G+B)/3", "norm"), ("colour\nR-G, B-Y", "rnn"), ("orientation\nGabor 0/45/90/135", "conv")]
    conspicuity = []
    for k, (name, kind) in enumerate(names):
        x = 2.4 + 4.1 * k
        ch = box(ax, (x, 2.2), name, kind=kind, w=3.2, h=0.9)
        arrow(ax, img.top, ch.bottom)
        cs = box(ax, (x, 3.8), "Gaussian pyramid\ncentre - surround", kind="op", w=3.2, h=0.9)
        arrow(ax, ch.top, cs.bottom)
        nm = box(ax, (x, 5.3), "N(.) normalise\n(promote lone peaks)", kind="norm", w=3.2, h=0.9)
        arrow(ax, cs.top, nm.bottom)
        conspicuity.append(nm)
    sal = box(ax, (6.5, 6.85), "saliency = mean of the three", kind="output", w=4.6)
    for nm in conspicuity:
        arrow(ax, nm.top, sal.bottom)
    return fig


def nonlocal_block():
    """z = W_z y + x, y_i = sum_j softmax_j(theta_i . phi_j) g_j: self-attention over positions."""
    fig, ax = canvas(11, 8.2, title="non-local block = self-attention over the N = Hi Wi positions")
    x = box(ax, (5.5, 0.6), "x  (B, C, Hi, Wi)", kind="input", w=3.2)
    embeds = []
    for k, (name, role) in enumerate([("theta 1x1", "queries"), ("phi 1x1", "keys"), ("g 1x1", "values")]):
        b = box(ax, (2.2 + 3.3 * k, 2.2), f"{name}\n{role} (B, N, C')", kind="conv", w=2.9, h=0.9)
        arrow(ax, x.top, b.bottom)
        embeds.append(b)
    w = box(ax, (3.8, 3.9), "softmax_j(theta_i . phi_j)\n(B, N, N)", kind="attention", w=3.4, h=0.9)
    arrow(ax, embeds[0].top, w.bottom)
    arrow(ax, embeds[1].top, w.bottom)
    y = box(ax, (5.5, 5.5), "y = weights @ g  (B, N, C')", kind="attention", w=3.8)
    arrow(ax, w.top, y.bottom)
    arrow(ax, embeds[2].top, y.bottom)
    group(ax, embeds + [w, y], None)
    z = box(ax, (5.5, 7.4), "z = W_z y + x", kind="output", w=3.2)
    arrow(ax, y.top, z.bottom)
    arrow(ax, (7.1, 0.6), (10.2, 0.6), style="-")
    arrow(ax, (10.2, 0.6), (10.2, 7.4), style="-", text="residual")
    arrow(ax, (10.2, 7.4), z.right)
    return fig
