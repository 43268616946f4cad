"""Diagrams of chapter 6: Swin's four stages, a block pair, windows over an image, the cyclic shift
and its mask step by step, and the relative position index, drawn with the sizes of the model on
the page. The masks and indices drawn are computed by :mod:`attnlab.swin` itself."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..swin import PatchMerging, relative_position_index, shifted_window_mask
from .core import PALETTE, Box, arrow, box, canvas, grid, group, label, tensor_bar
from .transformer import _sublayer

__all__ = ["stages", "block_pair", "windows_over_image", "cyclic_shift_steps", "relative_positions", "patch_merging"]

_REGION_COLOURS = ["#d0ebff", "#ffd8a8", "#d3f9d8", "#e5dbff", "#ffc9c9", "#fff3bf", "#c5f6fa", "#f1f3f5",
                   "#fcc2d7"]


def stages(*, image_size: int = 224, patch_size: int = 4, dim: int = 96, depths=(2, 2, 6, 2),
           num_heads=(3, 6, 12, 24), window_size: int = 7):
    """The hierarchy: patch partition, then stages of Swin blocks with patch merging between them;
    each stage's map is half the size and twice the width of the one before."""
    n, step = len(depths), 3.8
    fig, ax = canvas(8.0 + step * n, 8.6, title=f"Swin: {n} stages, C = {dim}, M = {window_size}, "
                                                f"{image_size} x {image_size} images")
    img = box(ax, (1.6, 1.0), f"image\n{image_size} x {image_size} x 3", kind="input", w=2.4, h=0.9)
    part = box(ax, (1.6, 2.6), f"patch partition\n{patch_size} x {patch_size} x 3 = {3 * patch_size ** 2}",
               kind="embed", w=2.6, h=0.9)
    arrow(ax, img.top, part.bottom)
    prev, side = part, image_size // patch_size
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        x, width = 5.4 + step * i, dim * 2 ** i
        first = box(ax, (x, 2.6), "linear embedding" if i == 0 else "patch merging\n2 x 2 -> 4C -> 2C",
                    kind="embed" if i == 0 else "conv", w=3.1, h=0.9)
        blocks = box(ax, (x, 4.0), f"Swin blocks x {depth}\nH = {heads} heads", kind="attention", w=3.1, h=0.9)
        arrow(ax, prev.right, first.left)
        arrow(ax, first.top, blocks.bottom)
        group(ax, [first, blocks], None, pad=0.15)
        label(ax, (x, 1.7), f"stage {i + 1}", fontsize=9, color="#495057")
        label(ax, (x, 5.0), f"{side} x {side} x {width}", fontsize=8.5)
        cells = 2 ** (n - 1 - i)                                     # the map drawn as a grid, halving each stage
        grid(ax, (x - 0.9, 5.4), cells, cells, cell=1.8 / cells, colors=[[PALETTE["attention"]] * cells] * cells)
        prev, side = blocks, side // 2
    head = box(ax, (5.4 + step * n + 0.3, 4.0), "LayerNorm, mean\nover the map,\nlinear: classes", kind="output",
               w=2.6, h=1.2)
    arrow(ax, prev.right, head.left)
    label(ax, (5.4 + step * (n - 1) / 2, 7.7), "hierarchical feature maps: detection and segmentation heads read "
          "every stage; classification pools the last", fontsize=8.5)
    label(ax, (5.4 + step * (n - 1) / 2, 0.5), "blocks come in pairs: W-MSA (regular windows), then SW-MSA "
          f"(windows shifted by {window_size // 2})", fontsize=8.5)
    return fig


def block_pair(*, dim: int = 96, num_heads: int = 3, window_size: int = 7):
    """Two consecutive blocks (the paper's Figure 3b): pre-norm W-MSA then pre-norm SW-MSA, each with
    its MLP; the output of the first is the input of the second."""
    fig, ax = canvas(15.0, 9.6, title=f"a Swin block pair: C = {dim}, H = {num_heads}, M = {window_size}")
    shift = window_size // 2
    for x, name, text, names in ((3.6, "block l", f"W-MSA\n{window_size} x {window_size} windows", ("z_(l-1)", "z_l")),
                                 (10.8, "block l + 1", f"SW-MSA: rolled by {shift},\nwindows, mask", ("z_l", "z_(l+1)"))):
        inp = box(ax, (x, 0.5), f"{names[0]}  (B, Hi, Wi, C)", kind="input", w=3.0, h=0.6)
        y = inp.top[1] + 0.2
        arrow(ax, inp.top, (x, y))
        y, _ = _sublayer(ax, x, y, text, "attention", norm_first=True, side=x - 2.9)
        y, _ = _sublayer(ax, x, y, "MLP: C -> 4C -> C\nGELU", "ffn", norm_first=True, side=x - 2.9)
        out = box(ax, (x, y + 0.7), f"{names[1]}  (B, Hi, Wi, C)", kind="output", w=3.0, h=0.6)
        arrow(ax, (x, y), out.bottom)
        label(ax, (x, y + 1.5), name, fontsize=9, color="#495057")
    return fig


def windows_over_image(image: torch.Tensor | None = None, *, patch_size: int = 4, window_size: int = 7,
                       shift: int = 0, ax=None):
    """An image with its P x P patches (thin lines) and the M x M-patch windows (thick frames); with
    ``shift``, the windows are those of SW-MSA (moved by ``shift`` patches; at the border they are cut)."""
    if image is None:
        from ..data.photos import load_photo

        image = load_photo("astronaut", size=224)
    hi, wi = image.shape[1:]
    fig, ax = (plt.subplots(figsize=(4.0, 4.0)) if ax is None else (ax.figure, ax))
    ax.imshow(image.permute(1, 2, 0).clamp(0, 1).numpy(), interpolation="nearest")
    for k in range(patch_size, hi, patch_size):
        ax.axhline(k - 0.5, color="white", linewidth=0.3, alpha=0.6)
    for k in range(patch_size, wi, patch_size):
        ax.axvline(k - 0.5, color="white", linewidth=0.3, alpha=0.6)
    side, offset = window_size * patch_size, (shift * patch_size) % (window_size * patch_size)
    starts_y = sorted({0, *range(side - offset if offset else side, hi, side)} - {hi})
    starts_x = sorted({0, *range(side - offset if offset else side, wi, side)} - {wi})
    edges_y, edges_x = starts_y + [hi], starts_x + [wi]
    for y0, y1 in zip(edges_y, edges_y[1:]):
        for x0, x1 in zip(edges_x, edges_x[1:]):
            ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="#f03e3e",
                                   linewidth=1.6))
    n_windows = (len(edges_y) - 1) * (len(edges_x) - 1)
    ax.set_title(f"{'shifted windows (SW-MSA)' if shift else 'windows (W-MSA)'}: {n_windows} windows of up to "
                 f"{window_size} x {window_size} patches", fontsize=8)
    ax.text(2, hi - 3, f"{patch_size} x {patch_size}-pixel patches", color="white", fontsize=7, va="bottom")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def _frames(ax, xy, rows: int, edges_y, edges_x, cell: float) -> None:
    """Thick frames around the windows whose row / column edges (in tokens) are given."""
    for y0, y1 in zip(edges_y, edges_y[1:]):
        for x0, x1 in zip(edges_x, edges_x[1:]):
            ax.add_patch(Rectangle((xy[0] + x0 * cell, xy[1] + (rows - y1) * cell), (x1 - x0) * cell, (y1 - y0) * cell,
                                   fill=False, edgecolor="#c92a2a", linewidth=1.8, zorder=4))


def _letters(ids: np.ndarray, xy, ax, cell: float, names: str = "ABCDEFGHI", colours=None) -> Box:
    colours = colours or _REGION_COLOURS
    return grid(ax, xy, ids.shape[0], ids.shape[1], cell=cell,
                colors=[[colours[int(v) % len(colours)] for v in row] for row in ids],
                text=[[names[int(v)] for v in row] for row in ids], fontsize=6.5)


def cyclic_shift_steps(*, size: int = 8, window_size: int = 4):
    """The shifted-window trick step by step, on a size x size map of tokens with M = ``window_size``:
    (1) W-MSA's regular windows; (2) SW-MSA's windows, moved by s = M / 2 (9 of them, some cut), each
    token lettered by its window; (3) after ``torch.roll`` by -s, the same tokens in a regular grid of
    windows, some holding several letters; (4) the mask of each window (dark: may not attend)."""
    shift, cell, n, gap = window_size // 2, 0.4, size // window_size, 1.5
    band = (np.arange(size) + window_size - shift) // window_size          # shifted window of each row / column
    ids = band[:, None] * (n + 1) + band[None, :]                            # (size, size) letters A, B, ...
    regular = list(range(0, size + 1, window_size))
    cut = [0] + list(range(window_size - shift, size, window_size)) + [size]
    side = size * cell
    fig, ax = canvas(4 * side + 3 * gap + 0.6, side + 1.6, title=f"the cyclic shift and its mask: "
                     f"{size} x {size} tokens, M = {window_size}, s = {shift}")
    rolled = np.roll(ids, (-shift, -shift), axis=(0, 1))
    window_of = np.arange(size)[:, None] // window_size * n + np.arange(size)[None, :] // window_size
    panels = [(window_of, regular, "1. W-MSA: regular windows\n(numbered)", "0123456789", ["#f1f3f5"]),
              (ids, cut, f"2. SW-MSA: windows moved by s = {shift}\n(lettered; some are cut)", "ABCDEFGHI", None),
              (rolled, regular, f"3. after torch.roll by -{shift}:\nregular windows again", "ABCDEFGHI", None)]
    for k, (panel_ids, edges, title, names, colours) in enumerate(panels):
        x = 0.3 + k * (side + gap)
        _letters(panel_ids, (x, 0.3), ax, cell, names, colours)
        _frames(ax, (x, 0.3), size, edges, edges, cell)
        label(ax, (x + side / 2, side + 0.75), title, fontsize=8)
        arrow(ax, (x + side + 0.15, 0.3 + side / 2), (x + side + gap - 0.15, 0.3 + side / 2))
    mask = shifted_window_mask(size, size, window_size, shift).numpy()          # (nW, N, N), the package's mask
    x0, m_cell = 0.3 + 3 * (side + gap), side / (n * window_size ** 2 + n - 1)
    for w in range(n * n):
        r, c = divmod(w, n)
        grid(ax, (x0 + c * (window_size ** 2 + 1) * m_cell, 0.3 + (n - 1 - r) * (window_size ** 2 + 1) * m_cell),
             window_size ** 2, window_size ** 2, cell=m_cell, edge="#dee2e6",
             colors=[["#343a40" if v else "white" for v in row] for row in mask[w]])
    label(ax, (x0 + side / 2, side + 0.75), "4. the mask of each window\n(dark = True: may not attend)", fontsize=8)
    return fig


def relative_positions(*, window_size: int = 3):
    """The relative position index of an M x M window: token numbers, the (M^2, M^2) index that
    :func:`attnlab.swin.relative_position_index` computes, and the (2M - 1)^2 offsets (rows of the
    bias table) it points to, coloured alike."""
    m, cell = window_size, 0.42
    index = relative_position_index(m).numpy()
    n, t, big = m * m, 2 * m - 1, cell * 1.9
    top = max(n * cell, t * big) + 0.4
    fig, ax = canvas(m * cell + n * cell + t * big + 5.2, top + 1.4,
                     title=f"relative position index, M = {m}: {n} x {n} pairs of tokens, {t * t} offsets")
    tokens = grid(ax, (0.4, top - m * cell), m, m, cell=cell, text=[[str(i * m + j) for j in range(m)] for i in range(m)],
                  colors=[["#f1f3f5"] * m] * m)
    label(ax, (tokens.x, top + 0.4), "tokens of\na window", fontsize=8)
    x1 = tokens.right[0] + 1.6
    idx = grid(ax, (x1, top - n * cell), n, n, cell=cell, values=0.1 + 0.6 * index / index.max(), cmap="YlGnBu",
               text=index.astype(str), fontsize=5.5)
    label(ax, (idx.x, top + 0.4), "index[i, j]: query i, key j", fontsize=8)
    x2 = idx.right[0] + 1.8
    table_text = [[f"{dy * t + dx}\n({dy - m + 1},{dx - m + 1})" for dx in range(t)] for dy in range(t)]
    table = grid(ax, (x2, top - t * big), t, t, cell=big, values=0.1 + 0.6 * np.arange(t * t).reshape(t, t) / (t * t - 1),
                 cmap="YlGnBu", text=table_text, fontsize=5.5)
    label(ax, (table.x, top + 0.4), "bias table rows: index\n(dy, dx) = offset of i from j", fontsize=8)
    arrow(ax, (idx.right[0] + 0.1, idx.y), (table.left[0] - 0.1, idx.y), text="  table[index]", text_offset=(-0.6, 0.25))
    return fig


def patch_merging(*, size: int = 4):
    """Patch merging on a size x size map: each 2 x 2 group of tokens becomes one token whose 4C
    numbers are the four neighbours side by side, in the order that :class:`attnlab.swin.PatchMerging`
    uses (read from the module itself: a one-channel map of token numbers, seen where it enters the norm),
    then LayerNorm and a linear map to 2C."""
    merge, seen = PatchMerging(dim=1), {}
    merge.norm.register_forward_hook(lambda module, inputs, output: seen.update(merged=inputs[0]))
    numbers = torch.arange(size * size, dtype=torch.float32).view(1, size, size, 1)    # token k holds k
    with torch.no_grad():
        merge(numbers)
    order = seen["merged"][0].round().long().numpy()                                    # (size/2, size/2, 4)
    corner = ["top left", "bottom left", "top right", "bottom right"]
    colours = ["#d0ebff", "#ffd8a8", "#d3f9d8", "#e5dbff"]
    pos = {(0, 0): 0, (1, 0): 1, (0, 1): 2, (1, 1): 3}                                # (dy, dx) -> colour
    cell, half = 0.6, size // 2
    fig, ax = canvas(size * cell + 13.5, size * cell + 2.2,
                     title=f"patch merging: a {size} x {size} x C map -> {half} x {half} x 4C -> LayerNorm -> linear -> 2C")
    grid(ax, (0.4, 0.5), size, size, cell=cell, text=[[str(i * size + j) for j in range(size)] for i in range(size)],
         colors=[[colours[pos[(i % 2, j % 2)]] for j in range(size)] for i in range(size)])
    label(ax, (0.4 + size * cell / 2, size * cell + 0.9), f"(Hi, Wi, C) = ({size}, {size}, C)", fontsize=8)
    x = size * cell + 1.6
    arrow(ax, (x - 1.0, 0.5 + size * cell / 2), (x - 0.2, 0.5 + size * cell / 2))
    bar_cell = 0.55
    for r in range(half):
        for c in range(half):
            y = 0.5 + size * cell - (r * half + c + 1) * (size * cell / (half * half))
            label(ax, (x + 0.3, y + 0.22), f"({r},{c})", fontsize=7, ha="left")
            tensor_bar(ax, (x + 1.3, y), [str(v) for v in order[r, c]], cell=bar_cell, colors=colours)
    label(ax, (x + 0.6, size * cell + 0.9), f"({half}, {half}, 4C): " + ", ".join(corner), fontsize=7.5, ha="left")
    out = box(ax, (x + 1.3 + 4 * bar_cell + 3.2, 0.5 + size * cell / 2), "LayerNorm(4C)\nlinear 4C -> 2C\n(no bias)",
              kind="norm", w=2.8, h=1.2)
    arrow(ax, (x + 1.3 + 4 * bar_cell + 0.2, out.y), out.left)
    result = box(ax, (out.right[0] + 2.0, out.y), f"({half}, {half}, 2C)", kind="output", w=2.0, h=0.7)
    arrow(ax, out.right, result.left)
    return fig
