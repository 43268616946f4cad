"""Diagrams of chapter 7: MAE, CLIP, and BERT against GPT, drawn with the sizes of the models on the page.

* :func:`mae`: the masked autoencoder as in figure 1 of He et al. (2022); which patches are hidden,
  and the shuffled order of the visible ones, are drawn by :func:`attnlab.mae.random_masking` itself;
* :func:`clip`: contrastive pre-training as in figure 1 (left) of Radford et al. (2021), the B x B
  similarity matrix with the pairs on its diagonal, and zero-shot classification by prompts;
* :func:`bert_and_gpt`: BERT's masked words read with attention in both directions, beside GPT's
  next word read with the causal mask (the mask drawn is :func:`attnlab.attention.causal_mask`);
* :func:`dalle`: DALL-E's two stages as in Ramesh et al. (2021): a discrete VAE that turns an image
  into a grid of codebook ids, and a decoder-only Transformer over text tokens then image tokens
  (a reading diagram: the course trains no DALL-E; the sizes default to the paper's).
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch

from ..attention import causal_mask
from ..data.scenes import SHAPES
from ..mae import random_masking
from .core import PALETTE, Box, arrow, box, canvas, grid, label

__all__ = ["mae", "clip", "bert_and_gpt", "dalle"]

_HIDDEN = "#adb5bd"       # a hidden patch, a mask token, a blocked pair of the attention pattern
_POSITIVE = "#b2f2bb"     # CLIP's matching pairs


def _masking(num_patches: int, mask_ratio: float) -> tuple[list[bool], list[int]]:
    """One draw of the package's random masking: hidden (True) per patch, and the visible patches in
    the shuffled order the encoder reads them."""
    x = torch.zeros(1, num_patches, 1)
    _, mask, _, ids_keep = random_masking(x, mask_ratio, generator=torch.Generator().manual_seed(0))
    return mask[0].tolist(), ids_keep[0].tolist()


def _shade(k: int, side: int):
    """The colour of patch ``k`` of a ``side`` x ``side`` image: a gradient, so that a patch keeps its
    colour wherever it goes."""
    return plt.get_cmap("Blues")(0.2 + 0.5 * (k // side + k % side) / max(1, 2 * side - 2))


def _patches(ax, xy: tuple[float, float], side: int, size: float, hidden: Sequence[bool] | None = None,
             colours: Sequence[str] | None = None) -> Box:
    """The image's ``side`` x ``side`` patches, numbered in reading order, ``size`` units across."""
    flat = list(colours or [_shade(k, side) for k in range(side * side)])
    if hidden is not None:
        flat = [_HIDDEN if h else c for h, c in zip(hidden, flat)]
    face = [flat[i * side:(i + 1) * side] for i in range(side)]
    text = [[str(i * side + j) for j in range(side)] for i in range(side)]
    return grid(ax, xy, side, side, cell=size / side, colors=face, text=text, fontsize=6.5)


def _column(ax, x: float, y: float, texts: Sequence[str], colours: Sequence[str], cell: float) -> Box:
    """A column of tokens centred at ``(x, y)``, the first on top."""
    n = len(texts)
    return grid(ax, (x - cell / 2, y - n * cell / 2), n, 1, cell=cell, colors=[[c] for c in colours],
                text=[[t] for t in texts], fontsize=6.0)


def mae(*, image_size: int = 32, patch_size: int = 8, in_channels: int = 3, dim: int = 64, depth: int = 4,
        num_heads: int = 4, decoder_dim: int = 32, decoder_depth: int = 1, mask_ratio: float = 0.75):
    """MAE: patches -> random masking -> encoder on the visible patches only -> mask tokens inserted and
    unshuffled -> light decoder -> pixels of every patch, the loss on the hidden ones only."""
    side = image_size // patch_size
    n = side * side
    hidden, keep = _masking(n, mask_ratio)
    fig, ax = canvas(21.0, 9.2, title=f"MAE: {image_size} x {image_size} image, P = {patch_size}, N = {n} patches, "
                                       f"{sum(hidden)} hidden ({mask_ratio:.0%}); encoder D = {dim}, L = {depth}, "
                                       f"H = {num_heads}; decoder D = {decoder_dim}, L = {decoder_depth}")
    y = 4.3
    image = _patches(ax, (0.4, y - 1.2), side, 2.4)
    label(ax, (image.x, y + 1.85), f"image {in_channels} x {image_size} x {image_size}\n{n} patches "
          f"of {patch_size} x {patch_size}", fontsize=7.5)
    masked = _patches(ax, (3.8, y - 1.2), side, 2.4, hidden=hidden)
    arrow(ax, image.right, masked.left)
    label(ax, (masked.x, y + 1.85), f"random masking: {sum(hidden)} of {n}\nhidden ({mask_ratio:.0%})", fontsize=7.5)
    label(ax, (masked.x, y - 1.75), "a new draw\nfor every image", fontsize=7, color="#495057")
    cell = min(0.42, 7.4 / (n + 1))
    visible = _column(ax, 7.6, y, ["CLS"] + [str(k) for k in keep],
                      [PALETTE["output"]] + [_shade(k, side) for k in keep], cell)
    arrow(ax, masked.right, visible.left)
    label(ax, (visible.x, visible.top[1] + 0.55), f"CLS + {len(keep)} visible\n(shuffled)", fontsize=7.5)
    encoder = box(ax, (9.8, y), f"encoder\n(a ViT)\nL = {depth}\nD = {dim}\nH = {num_heads}", kind="attention",
                  w=2.0, h=3.0)
    arrow(ax, visible.right, encoder.left)
    label(ax, (encoder.x, encoder.bottom[1] - 0.5), f"{len(keep) + 1} of {n + 1} tokens:\nthe cheap part",
          fontsize=7, color="#495057")
    encoded = _column(ax, 11.8, y, ["CLS"] + [str(k) for k in keep], [PALETTE["embed"]] * (len(keep) + 1), cell)
    arrow(ax, encoder.right, encoded.left)
    label(ax, (encoded.x, encoded.top[1] + 0.55), f"linear\n{dim} -> {decoder_dim}", fontsize=7.5)
    full = _column(ax, 14.3, y, ["CLS"] + [str(k) for k in range(n)],
                   [PALETTE["embed"]] + [_HIDDEN if h else PALETTE["embed"] for h in hidden], cell)
    arrow(ax, encoded.right, full.left)
    label(ax, (full.x, full.top[1] + 0.55), f"+ {sum(hidden)} mask tokens (grey),\nunshuffled, + positions",
          fontsize=7.5)
    _mae_decoder(ax, full, y=y, side=side, hidden=hidden, decoder_dim=decoder_dim, decoder_depth=decoder_depth,
                 pixels=patch_size * patch_size * in_channels)
    return fig


def _mae_decoder(ax, full: Box, *, y: float, side: int, hidden: Sequence[bool], decoder_dim: int,
                 decoder_depth: int, pixels: int) -> None:
    """The light decoder over every token, its pixel predictions, and the loss on the hidden patches."""
    decoder = box(ax, (16.4, y), f"decoder\nL = {decoder_depth}\nD = {decoder_dim}", kind="attention", w=1.6, h=2.0)
    arrow(ax, full.right, decoder.left)
    label(ax, (decoder.x, decoder.bottom[1] - 0.5), "light: all\ntokens", fontsize=7, color="#495057")
    colours = [PALETTE["output"] if h else "#ffffff" for h in hidden]
    out = _patches(ax, (18.1, y - 1.1), side, 2.2, colours=colours)
    arrow(ax, decoder.right, out.left)
    label(ax, (out.x, y + 1.75), f"{pixels} pixel values\nper patch", fontsize=7.5)
    label(ax, (out.x, y - 2.2), f"loss: mean squared\nerror on the {sum(hidden)}\nhidden patches only\n"
          "(coloured), targets\nnormalised per patch", fontsize=7.5)


def _contrast_matrix(ax, xy: tuple[float, float], shown: Sequence[str], cell: float) -> Box:
    """The B x B similarities I_i . T_j (a few rows and columns drawn), the pairs on the diagonal."""
    k = len(shown)
    colours = [["#f1f3f5" if "..." in (a, b) else _POSITIVE if i == j else "#ffffff"
                for j, b in enumerate(shown)] for i, a in enumerate(shown)]
    text = [["..." if "..." in (a, b) else f"I{a}·T{b}" for b in shown] for a in shown]
    x0, y0 = xy
    grid(ax, (x0 - cell - 0.15, y0), k, 1, cell=cell, colors=[[PALETTE["attention"]]] * k,
         text=[[f"I{a}" if a != "..." else a] for a in shown])
    grid(ax, (x0, y0 + k * cell + 0.15), 1, k, cell=cell, colors=[[PALETTE["embed"]] * k],
         text=[[f"T{b}" if b != "..." else b for b in shown]])
    return grid(ax, xy, k, k, cell=cell, colors=colours, text=text)


def clip(*, image_size: int = 32, patch_size: int = 8, dim: int = 64, depth: int = 2, num_heads: int = 4,
         text_dim: int = 64, text_depth: int = 1, embed_dim: int = 32, batch_size: int = 64,
         classes: Sequence[str] = SHAPES, prompts_per_class: int = 8):
    """CLIP: two towers projected into one space, the B x B cosine similarities with the pairs on the
    diagonal and the symmetric cross-entropy; below, zero-shot classification by prompts."""
    fig, ax = canvas(20.0, 14.2, title=f"CLIP: ViT image tower ({image_size} x {image_size}, P = {patch_size}, "
                                       f"D = {dim}, L = {depth}, H = {num_heads}), text tower (D = {text_dim}, "
                                       f"L = {text_depth}), joint space E = {embed_dim}")
    label(ax, (0.2, 13.6), f"1. contrastive pre-training on a batch of B = {batch_size} (image, caption) pairs",
          fontsize=9, ha="left")
    caption = box(ax, (2.0, 12.3), "caption\n\"a large red triangle ...\"", kind="input", w=3.6, h=0.9)
    text = box(ax, (5.9, 12.3), f"text encoder\nL = {text_depth}, read at <EOS>", kind="attention", w=3.2, h=0.9)
    text_proj = box(ax, (9.6, 12.3), f"W_t: {text_dim} -> E = {embed_dim}\nnormalise", kind="embed", w=3.2, h=0.9)
    arrow(ax, caption.right, text.left)
    arrow(ax, text.right, text_proj.left)
    image = box(ax, (2.0, 5.8), f"image\n3 x {image_size} x {image_size}", kind="input", w=2.6, h=0.9)
    vit = box(ax, (2.0, 7.6), f"image encoder\nViT, L = {depth}\nits CLS feature", kind="attention", w=2.8, h=1.2)
    image_proj = box(ax, (2.0, 9.5), f"W_i: {dim} -> E = {embed_dim}\nnormalise", kind="embed", w=3.2, h=0.9)
    arrow(ax, image.top, vit.bottom)
    arrow(ax, vit.top, image_proj.bottom)
    shown = ["1", "2", "3", "...", "B"] if batch_size > 4 else [str(i + 1) for i in range(batch_size)]
    matrix = _contrast_matrix(ax, (7.2, 5.3), shown, 1.0)
    arrow(ax, text_proj.bottom, (text_proj.x, matrix.top[1] + 1.15))
    arrow(ax, image_proj.right, (matrix.left[0] - 1.15, image_proj.y))
    box(ax, (16.2, matrix.y), "symmetric cross-entropy (InfoNCE)\n\nlogits: exp(s) cos(I_i, T_j), s learned\n"
        f"rows: each image picks its caption of B\ncolumns: each caption its image of B\n"
        "targets: the diagonal (green)", kind="output", w=6.6, h=2.6, fontsize=8)
    arrow(ax, matrix.right, (12.9, matrix.y))
    label(ax, (matrix.x, matrix.bottom[1] - 0.4), f"{batch_size} positives, {batch_size * batch_size - batch_size} "
          "negatives", fontsize=7.5)
    _zero_shot(ax, classes=classes, prompts_per_class=prompts_per_class, embed_dim=embed_dim)
    return fig


def _zero_shot(ax, *, classes: Sequence[str], prompts_per_class: int, embed_dim: int) -> None:
    """Zero-shot classification: prompts -> one unit vector per class; an image -> the nearest class."""
    label(ax, (0.2, 4.1), f"2. zero-shot: {len(classes)} classes, {prompts_per_class} prompts each, "
          "not one labelled image", fontsize=9, ha="left")
    shape = classes[min(2, len(classes) - 1)]
    prompts = box(ax, (2.4, 2.8), f"prompts per class:\n\"a {shape}\", \"a red {shape}\", ...", kind="input",
                  w=4.4, h=0.9)
    text = box(ax, (7.4, 2.8), f"text tower, normalise,\nmean of {prompts_per_class}, normalise", kind="attention",
               w=3.8, h=0.9)
    arrow(ax, prompts.right, text.left)
    cell = 1.1
    vectors = grid(ax, (13.4 - len(classes) * cell / 2, 2.8 - cell / 2), 1, len(classes), cell=cell,
                   colors=[[PALETTE["embed"]] * len(classes)], text=[list(classes)])
    arrow(ax, text.right, vectors.left)
    label(ax, (vectors.x, vectors.top[1] + 0.3), f"one unit vector per class: ({len(classes)}, {embed_dim})",
          fontsize=7.5)
    image = box(ax, (2.4, 0.8), "image of a colour-shape\npair never seen in training", kind="input", w=4.4, h=0.9)
    tower = box(ax, (7.4, 0.8), "image tower, normalise", kind="attention", w=3.8, h=0.7)
    arrow(ax, image.right, tower.left)
    answer = box(ax, (vectors.x, 0.8), "cosine with each class vector\nargmax: the predicted class", kind="output",
                 w=5.0, h=0.9)
    arrow(ax, tower.right, answer.left)
    arrow(ax, vectors.bottom, answer.top)


def _tokens(ax, x0: float, y: float, words: Sequence[str], colours: Sequence[str]) -> list[Box]:
    """A row of token boxes from ``x0``."""
    return [box(ax, (x0 + 0.6 + 1.2 * k, y), word, color=c, w=1.12, h=0.55, fontsize=6.8)
            for k, (word, c) in enumerate(zip(words, colours))]


def _pattern(ax, xy: tuple[float, float], words: Sequence[str], *, causal: bool) -> Box:
    """Who attends to whom: rows are queries, columns keys; filled = may attend (the package's causal
    mask for GPT, nothing blocked for BERT)."""
    t = len(words)
    blocked = causal_mask(t).tolist() if causal else [[False] * t for _ in range(t)]
    colours = [[_HIDDEN if b else PALETTE["attention"] for b in row] for row in blocked]
    cell = 0.36
    out = grid(ax, xy, t, t, cell=cell, colors=colours)
    for i, w in enumerate(words):
        label(ax, (xy[0] - 0.1, xy[1] + (t - 0.5 - i) * cell), w, fontsize=6, ha="right")
    label(ax, (out.x, out.bottom[1] - 0.25), "keys (same order)", fontsize=6.5, color="#495057")
    return out


def _bert(ax, x0: float, words: Sequence[str], *, masked: int, randomised: int, random_word: str, dim: int,
          layers: int, num_heads: int, mask_prob: float) -> None:
    """BERT's panel: a masked sentence in, the original word out at every chosen position."""
    inputs = ["<CLS>"] + [("<MASK>" if k == masked else random_word if k == randomised else w)
                          for k, w in enumerate(words)] + ["<SEP>"]
    chosen = {1 + masked, 1 + randomised}
    tokens = _tokens(ax, x0, 1.0, inputs, [PALETTE["rnn"] if k in chosen else PALETTE["input"]
                                           for k in range(len(inputs))])
    width = tokens[-1].right[0] - tokens[0].left[0]
    model = box(ax, (tokens[0].left[0] + width / 2, 2.6), f"encoder: {layers} post-norm layers, D = {dim}, "
                f"H = {num_heads}\nno mask: every token attends to every token", kind="attention", w=width, h=0.95)
    for t in tokens:
        arrow(ax, t.top, (t.x, model.bottom[1]))
    outs = {0: "NSP", 1 + masked: words[masked], 1 + randomised: words[randomised]}
    for k, text in outs.items():
        out = box(ax, (tokens[k].x, 4.3), text, kind="output", w=1.05, h=0.55, fontsize=7)
        arrow(ax, (out.x, model.top[1]), out.bottom)
    label(ax, (model.x, 5.05), "loss only at the chosen words (red): the original word", fontsize=7.5)
    grid_box = _pattern(ax, (x0 + 1.4, 6.0), inputs, causal=False)
    label(ax, (grid_box.right[0] + 0.3, grid_box.y), f"{mask_prob:.0%} of the words are chosen;\n"
          f"80% -> <MASK> (here: {words[masked]})\n10% -> a random word\n     (here: {words[randomised]} -> "
          f"{random_word})\n10% left as they are\nthe original word is the\ntarget at all chosen ones", fontsize=7.5,
          ha="left")
    label(ax, (model.x, 9.6), "BERT: bidirectional, fills in hidden words", fontsize=9.5)


def _gpt(ax, x0: float, words: Sequence[str], *, dim: int, layers: int, num_heads: int) -> None:
    """GPT's panel: the sentence in, the next token out at every position."""
    inputs, targets = ["<SOS>", *words], [*words, "<EOS>"]
    tokens = _tokens(ax, x0, 1.0, inputs, [PALETTE["input"]] * len(inputs))
    width = tokens[-1].right[0] - tokens[0].left[0]
    model = box(ax, (tokens[0].left[0] + width / 2, 2.6), f"decoder-only: {layers} pre-norm blocks, D = {dim}, "
                f"H = {num_heads}\ncausal mask: a token sees itself and earlier ones", kind="attention",
                w=width, h=0.95)
    for t, word in zip(tokens, targets):
        arrow(ax, t.top, (t.x, model.bottom[1]))
        out = box(ax, (t.x, 4.3), word, kind="output", w=1.05, h=0.55, fontsize=7)
        arrow(ax, (t.x, model.top[1]), out.bottom)
    label(ax, (model.x, 5.05), "loss at every position: the next token (input shifted by one)", fontsize=7.5)
    grid_box = _pattern(ax, (x0 + 1.4, 6.0), inputs, causal=True)
    label(ax, (grid_box.right[0] + 0.3, grid_box.y), "nothing after a token is\nseen when it is read, so\n"
          "sampling the last output\nand appending it writes\ntext (generation)", fontsize=7.5, ha="left")
    label(ax, (model.x, 9.6), "GPT: causal, predicts the next word", fontsize=9.5)


def bert_and_gpt(*, words: Sequence[str] = ("the", "red", "circles", "are", "small"), masked: int = 3,
                 randomised: int = 1, random_word: str = "green", bert_dim: int = 64, bert_layers: int = 2,
                 gpt_dim: int = 64, gpt_layers: int = 2, num_heads: int = 4, mask_prob: float = 0.15):
    """BERT against GPT on one sentence: masked words predicted with attention in both directions
    (the full pattern) beside the next word predicted with the causal mask (lower-triangular)."""
    fig, ax = canvas(19.6, 10.2, title="the same kind of Transformer layers, two objectives: "
                                       "attention pattern (rows: queries, orange: may attend)")
    _bert(ax, 0.2, words, masked=masked, randomised=randomised, random_word=random_word, dim=bert_dim,
          layers=bert_layers, num_heads=num_heads, mask_prob=mask_prob)
    ax.plot([9.75, 9.75], [0.5, 9.9], linestyle=":", color="#adb5bd", linewidth=1.0)
    _gpt(ax, 10.2, words, dim=gpt_dim, layers=gpt_layers, num_heads=num_heads)
    return fig


def _stream(ax, y: float, text_tokens: int, image_tokens: int) -> list[tuple[Box, str]]:
    """The one sequence DALL-E models, the caption's tokens then the image's (a few of each drawn),
    each with the token it is trained to predict."""
    shown = [("t1", "t2"), ("t2", "t3"), ("...", ""), (f"t{text_tokens}", "i1"), ("i1", "i2"), ("i2", "i3"),
             ("...", ""), (f"i{image_tokens}", "end")]
    out = []
    for k, (text, target) in enumerate(shown):
        x = 1.4 + 2.3 * k
        if text == "...":
            label(ax, (x, y), "...", fontsize=9)
            continue
        out.append((box(ax, (x, y), text, kind="input" if text[0] == "t" else "embed", w=1.2, h=0.55,
                        fontsize=7), target))
    return out


def dalle(*, image_size: int = 256, grid_size: int = 32, codebook: int = 8192, text_tokens: int = 256,
          text_vocab: int = 16384):
    """DALL-E: (1) a discrete VAE, image -> ``grid_size`` x ``grid_size`` ids of a ``codebook`` -> image;
    (2) a decoder-only Transformer over up to ``text_tokens`` text tokens followed by the image's
    ids, trained to predict every next token; generation samples the image ids after the caption and
    the dVAE's decoder turns them into pixels."""
    n = grid_size * grid_size
    fig, ax = canvas(19.0, 11.0, title=f"DALL-E: a {image_size} x {image_size} image as {n} tokens of a "
                                       f"{codebook}-entry codebook, modelled after its caption")
    label(ax, (0.2, 10.4), "1. discrete VAE (trained first, on images alone)", fontsize=9, ha="left")
    image = box(ax, (1.8, 8.8), f"image\n3 x {image_size} x {image_size}", kind="input", w=2.8, h=1.0)
    encoder = box(ax, (5.6, 8.8), "dVAE encoder\n(convolutions)", kind="conv", w=2.8, h=1.0)
    ids = [["17", "4051", "...", "8"], ["902", "33", "...", "61"], ["...", "...", "...", "..."],
           ["5", "7100", "...", "2"]]
    codes = grid(ax, (8.4, 7.8), 4, 4, cell=0.5, colors=[[PALETTE["embed"]] * 4] * 4, text=ids, fontsize=5)
    decoder = box(ax, (13.4, 8.8), "dVAE decoder\n(convolutions)", kind="conv", w=2.8, h=1.0)
    rebuilt = box(ax, (17.0, 8.8), f"image\n3 x {image_size} x {image_size}", kind="output", w=2.8, h=1.0)
    for a, b in ((image.right, encoder.left), (encoder.right, codes.left), (codes.right, decoder.left),
                 (decoder.right, rebuilt.left)):
        arrow(ax, a, b)
    label(ax, (codes.x, codes.top[1] + 0.45), f"{grid_size} x {grid_size} = {n} ids,\neach one of {codebook}",
          fontsize=7.5)
    label(ax, (codes.x, codes.bottom[1] - 0.35), f"{3 * image_size * image_size // n} times fewer values "
          "than pixels", fontsize=7, color="#495057")
    label(ax, (0.2, 6.5), "2. a decoder-only Transformer over one stream: the caption, then the image",
          fontsize=9, ha="left")
    stream = _stream(ax, 1.3, text_tokens, n)
    left, right = stream[0][0].left[0], stream[-1][0].right[0]
    model = box(ax, ((left + right) / 2, 3.0), "Transformer decoder with the causal mask:\neach token sees the "
                "caption and every token before it", kind="attention", w=right - left, h=1.0)
    for token, target in stream:
        arrow(ax, token.top, (token.x, model.bottom[1]))
        out = box(ax, (token.x, 4.7), target, kind="output", w=1.2, h=0.5, fontsize=7)
        arrow(ax, (token.x, model.top[1]), out.bottom)
    label(ax, (model.x, 5.55), "trained to predict every next token; to draw an image, the caption is given, "
          "the image ids are sampled\none by one, and the dVAE decoder (1) turns the grid into pixels",
          fontsize=7.5)
    label(ax, (stream[1][0].x, 0.5), f"caption: up to {text_tokens} BPE tokens (vocabulary {text_vocab})",
          fontsize=7.5)
    label(ax, (stream[4][0].x, 0.5), f"image: its {n} dVAE ids, row by row", fontsize=7.5)
    return fig
