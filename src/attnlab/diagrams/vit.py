"""Diagrams of chapter 4: the Vision Transformer, drawn with the sizes of the model on the page.

The left half is the path of an image (patches, linear projection, CLS token and position
embeddings, the encoder, the head on the CLS token), as in figure 1 of Dosovitskiy et al. (2021);
the right half opens one encoder block, chapter 3's pre-norm layer, drawn by the same code that
draws it in chapter 3 (:mod:`attnlab.diagrams.transformer`).
"""

from __future__ import annotations

from .core import Box, arrow, box, canvas, group, label
from .transformer import _sublayer

__all__ = ["vit"]


def _tokens(ax, y: float, num_patches: int) -> list[Box]:
    """The row of tokens the encoder reads (CLS, then patches 1 .. N, a few drawn), each with the
    position embedding added to it below."""
    shown = ["CLS", "1", "2", "3", "...", str(num_patches)] if num_patches > 5 else \
        ["CLS"] + [str(k) for k in range(1, num_patches + 1)]
    tokens = []
    for k, text in enumerate(shown):
        x = 1.6 + 1.05 * k
        if text == "...":
            label(ax, (x, y), "...", fontsize=9)
            continue
        tokens.append(box(ax, (x, y), text, kind="output" if text == "CLS" else "embed", w=0.85, h=0.55, fontsize=7.5))
        box(ax, (x, y - 0.95), "p0" if text == "CLS" else f"p{text}", w=0.7, h=0.4, fontsize=6.5, color="#ffc9c9")
        label(ax, (x, y - 0.5), "+", fontsize=8)
    return tokens


def vit(*, image_size: int = 32, patch_size: int = 4, in_channels: int = 3, dim: int = 32, depth: int = 3,
        num_heads: int = 4, ffn_dim: int = 64, num_classes: int = 6):
    """The ViT: patches -> linear projection -> CLS + positions -> ``depth`` pre-norm blocks -> head."""
    grid = image_size // patch_size
    n = grid * grid
    fig, ax = canvas(17.0, 11.4, title=f"ViT: {image_size} x {image_size} image, P = {patch_size}, "
                                       f"N = {n} patches, D = {dim}, L = {depth}, H = {num_heads}, F = {ffn_dim}")
    image = box(ax, (1.9, 0.5), f"image ({in_channels}, {image_size}, {image_size})", kind="input", w=3.4, h=0.6)
    patches = box(ax, (5.9, 0.5), f"patchify: {n} patches\nof {patch_size} x {patch_size} x {in_channels} = "
                                   f"{patch_size * patch_size * in_channels}", kind="input", w=3.6, h=0.8)
    arrow(ax, image.right, patches.left)
    proj = box(ax, (3.9, 1.85), f"linear projection E: {patch_size * patch_size * in_channels} -> D = {dim}\n"
                                f"(= Conv2d, kernel = stride = {patch_size})", kind="embed", w=5.6, h=0.8)
    arrow(ax, patches.top, (proj.x + 2.0, proj.bottom[1]))
    tokens = _tokens(ax, 3.9, n)
    arrow(ax, proj.top, (proj.x, tokens[0].y - 1.2))
    label(ax, (7.6, 2.95), "+ learned position\n   embeddings", fontsize=7, ha="left")
    label(ax, (0.55, tokens[0].y), "learned\nCLS", fontsize=7, color="#495057")
    encoder = box(ax, (3.9, 6.1), f"Transformer encoder\n{depth} pre-norm blocks (right)\n"
                                  f"tokens (B, {n + 1}, {dim}) in and out", kind="attention", w=6.4, h=1.5)
    for t in tokens:
        arrow(ax, t.top, (t.x, encoder.bottom[1]))
    norm = box(ax, (tokens[0].x, 7.75), "final LayerNorm", kind="norm", w=2.6, h=0.55)
    arrow(ax, (tokens[0].x, encoder.top[1]), norm.bottom)
    label(ax, (tokens[0].x + 1.3, 7.2), "CLS token only", fontsize=7, ha="left")
    head = box(ax, (tokens[0].x + 0.9, 9.0), f"head: linear D -> Y = {num_classes}", kind="output", w=3.6, h=0.6)
    arrow(ax, norm.top, (tokens[0].x, head.bottom[1]))
    label(ax, (head.x, 9.85), "softmax: class probability vector (Y,)", fontsize=8)
    _block(ax, x=13.6, dim=dim, num_heads=num_heads, ffn_dim=ffn_dim, depth=depth)
    arrow(ax, encoder.right, (11.2, 5.6), dashed=True, color="#868e96")
    return fig


def _block(ax, *, x: float, dim: int, num_heads: int, ffn_dim: int, depth: int) -> None:
    """One encoder block, pre-norm, from chapter 3's drawing code; framed as repeated ``depth`` times."""
    side = x - 2.6
    inp = box(ax, (x, 0.9), f"x (B, T, {dim})", kind="input", w=2.2, h=0.55)
    y = inp.top[1] + 0.2
    arrow(ax, inp.top, (x, y))
    bottom = y
    y, _ = _sublayer(ax, x, y, f"multi-head self-attention\nH = {num_heads}", "attention", norm_first=True,
                     side=side)
    y, _ = _sublayer(ax, x, y, f"MLP: D = {dim} -> F = {ffn_dim}\nGELU -> D", "ffn", norm_first=True, side=side)
    group(ax, [Box((side + x + 2.1) / 2, (bottom + y) / 2, x + 2.2 - side, y - bottom)], f"x {depth}", pad=0.15)
    out = box(ax, (x, y + 0.7), f"(B, T, {dim})", kind="output", w=2.0, h=0.55)
    arrow(ax, (x, y), out.bottom)
    label(ax, (x, y + 1.4), "encoder block = chapter 3's EncoderLayer,\nnorm_first=True, activation=\"gelu\"",
          fontsize=7.5)
