"""Diagrams of chapter 5: DETR (backbone, encoder, decoder of object queries, heads, matching) and SETR
(a ViT encoder on patches, the tokens back on their grid, a CNN decoder), drawn with the sizes of the
models on the page."""

from __future__ import annotations

from .core import arrow, box, canvas, grid, group, label

__all__ = ["detr", "setr"]


def detr(*, image_size: int = 48, grid_size: int = 6, dim: int = 64, num_queries: int = 6,
         encoder_layers: int = 2, decoder_layers: int = 2, num_classes: int = 3):
    """DETR: CNN features + 2-D positions -> encoder -> decoder reading N_q learned queries in parallel
    -> a class (Y + 1 with ∅) and a box per query -> Hungarian matching with the true boxes (training)."""
    n = grid_size * grid_size
    fig, ax = canvas(17.0, 10.4, title=f"DETR: {image_size} x {image_size} image, N = {n} tokens, D = {dim}, "
                                       f"N_q = {num_queries} queries")
    x_enc, x_dec = 3.6, 11.0
    img = box(ax, (x_enc, 0.6), f"image (B, 3, {image_size}, {image_size})", kind="input", w=4.2, h=0.6)
    cnn = box(ax, (x_enc, 1.9), f"CNN backbone (chapter 0): (B, C, {grid_size}, {grid_size})\n1x1 conv: C -> D",
              kind="conv", w=5.6, h=0.9)
    arrow(ax, img.top, cnn.bottom)
    tokens = box(ax, (x_enc, 3.4), f"flatten the grid: (B, {n}, {dim})\n+ 2-D sine positions (chapter 4)",
                 kind="embed", w=5.6, h=0.9)
    arrow(ax, cnn.top, tokens.bottom)
    enc = box(ax, (x_enc, 5.3), f"encoder x {encoder_layers} (chapter 3)\nself-attention over the {n} cells",
              kind="attention", w=5.6, h=0.9)
    arrow(ax, tokens.top, enc.bottom)
    queries = grid(ax, (x_dec - num_queries * 0.25, 1.6), 1, num_queries, cell=0.5,
                   colors=[["#ffc9c9"] * num_queries], text=[[f"q{i}" for i in range(num_queries)]])
    label(ax, (x_dec, 1.1), f"{num_queries} learned object queries (B, {num_queries}, {dim})", fontsize=7.5)
    dec = box(ax, (x_dec, 5.3), f"decoder x {decoder_layers} (chapter 3)\nno causal mask: all queries at once",
              kind="attention", w=5.6, h=0.9)
    arrow(ax, queries.top, dec.bottom)
    arrow(ax, enc.right, dec.left)
    label(ax, ((enc.right[0] + dec.left[0]) / 2, 5.75), "memory:\nkeys, values", fontsize=7.5)
    heads = box(ax, (x_dec, 7.0), f"per query: class head, Y + 1 = {num_classes + 1} (last = ∅)\n"
                                  "box head: MLP -> sigmoid -> (cx, cy, w, h)", kind="ffn", w=6.2, h=0.9)
    arrow(ax, dec.top, heads.bottom)
    out = grid(ax, (x_dec - num_queries * 0.25, 8.1), 1, num_queries, cell=0.5,
               colors=[["#c5f6fa" if i % 3 else "#e9ecef" for i in range(num_queries)]],
               text=[["∅" if i % 3 == 0 else "box" for i in range(num_queries)]])
    arrow(ax, heads.top, out.bottom)
    match = box(ax, (x_enc, 8.35), "Hungarian matching with the true boxes\n(training only: the loss)",
                kind="output", w=6.2, h=0.9)
    arrow(ax, out.left, match.right)
    label(ax, (x_dec, 9.25), f"a set of {num_queries} predictions: no proposals, no non-maximum suppression",
          fontsize=8)
    return fig


def setr(*, image_size: int = 32, patch_size: int = 4, dim: int = 64, depth: int = 2, num_classes: int = 4,
         head: str = "pup"):
    """SETR: patches -> ViT encoder (every token kept) -> tokens back on the grid -> CNN decoder to pixels."""
    hp = image_size // patch_size
    stages = patch_size.bit_length() - 1
    name = "SETR-PUP" if head == "pup" else "SETR-Naive"
    height = max(7.2, 3.4 + 1.25 * stages + 1.4)
    fig, ax = canvas(15.0, height, title=f"{name}: {image_size} x {image_size} image, P = {patch_size}, "
                                         f"{hp} x {hp} patches, D = {dim}")
    img = box(ax, (3.6, 0.6), f"image (B, 3, {image_size}, {image_size})", kind="input", w=4.2, h=0.6)
    patches = box(ax, (3.6, 1.9), f"patch embedding (chapter 4)\n(B, {hp * hp}, {dim}) + positions", kind="embed",
                  w=5.4, h=0.9)
    arrow(ax, img.top, patches.bottom)
    enc = box(ax, (3.6, 3.5), f"ViT encoder x {depth}, num_classes=0\nno CLS token: every patch token kept",
              kind="attention", w=5.4, h=0.9)
    arrow(ax, patches.top, enc.bottom)
    fold = box(ax, (3.6, 5.1), f"tokens back on their grid\n(B, {dim}, {hp}, {hp})", kind="op", w=5.4, h=0.9)
    arrow(ax, enc.top, fold.bottom)
    if head == "pup":
        steps = [box(ax, (11.0, 1.6 + 1.25 * k), f"3x3 conv, BN, ReLU, up x2\n-> {hp * 2 ** (k + 1)} x "
                                                 f"{hp * 2 ** (k + 1)}", kind="conv", w=5.0, h=0.9)
                 for k in range(stages)]
        text = f"progressive upsampling: {stages} stages of x2"
    else:
        steps = [box(ax, (11.0, 1.6), "1x1 conv, BN, ReLU, 1x1 conv:\nclass scores per token", kind="conv", w=5.0,
                     h=0.9),
                 box(ax, (11.0, 2.85), f"bilinear upsampling x {patch_size}\nin one jump", kind="op", w=5.0, h=0.9)]
        text = "naive: classify the tokens, then one jump"
    arrow(ax, fold.right, steps[0].left, rad=-0.3)
    for a, b in zip(steps[:-1], steps[1:]):
        arrow(ax, a.top, b.bottom)
    group(ax, steps, None)
    label(ax, (11.0, 0.6), text, fontsize=8)
    out = box(ax, (11.0, steps[-1].top[1] + 1.3), f"class scores (B, {num_classes}, {image_size}, {image_size})\n"
                                                   "argmax: a class per pixel", kind="output", w=5.0, h=0.9)
    arrow(ax, steps[-1].top, out.bottom, text="1x1 conv to Y" if head == "pup" else None)
    return fig
