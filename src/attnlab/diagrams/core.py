"""Drawing primitives for architecture diagrams: boxes, arrows, groups and grids on a matplotlib canvas.

Every diagram of the book is a function that draws with these primitives, so that diagrams build
offline with the book, look alike, and can take the sizes of the real modules as arguments (a
multi-head diagram drawn with the ``num_heads`` and ``dim`` of the model on the page).

Coordinates are in *units* of a canvas (``canvas(12, 6)`` is 12 units wide, 6 high; a unit is
``scale`` inches). A :class:`Box` knows its anchors (``box.top``, ``box.left``...), so arrows are
drawn between boxes, not between numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

__all__ = ["PALETTE", "Box", "canvas", "box", "arrow", "group", "label", "grid", "tensor_bar"]

# One colour per kind of block, the same in every diagram of the book.
PALETTE = {
    "input": "#e9ecef",
    "embed": "#d0ebff",
    "attention": "#ffd8a8",
    "norm": "#fff3bf",
    "ffn": "#d3f9d8",
    "conv": "#e5dbff",
    "rnn": "#ffc9c9",
    "output": "#c5f6fa",
    "op": "#ffffff",
    "group": "#f8f9fa",
}


@dataclass(frozen=True)
class Box:
    """A drawn box: centre ``(x, y)``, width ``w``, height ``h`` (canvas units)."""

    x: float
    y: float
    w: float
    h: float

    @property
    def top(self) -> tuple[float, float]:
        return (self.x, self.y + self.h / 2)

    @property
    def bottom(self) -> tuple[float, float]:
        return (self.x, self.y - self.h / 2)

    @property
    def left(self) -> tuple[float, float]:
        return (self.x - self.w / 2, self.y)

    @property
    def right(self) -> tuple[float, float]:
        return (self.x + self.w / 2, self.y)

    @property
    def center(self) -> tuple[float, float]:
        return (self.x, self.y)


def canvas(width: float, height: float, *, scale: float = 0.55, title: str | None = None):
    """A blank figure of ``width`` x ``height`` units with no axes; returns ``(fig, ax)``."""
    fig, ax = plt.subplots(figsize=(width * scale, height * scale))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=10)
    return fig, ax


def box(ax, xy: tuple[float, float], text: str, *, w: float = 2.6, h: float = 0.8, kind: str = "op",
        color: str | None = None, fontsize: float = 8.5, round_: bool = True, dashed: bool = False) -> Box:
    """A labelled box centred at ``xy``; ``kind`` picks its colour from :data:`PALETTE`."""
    x, y = xy
    style = "round,pad=0.02,rounding_size=0.15" if round_ else "square,pad=0.0"
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle=style, linewidth=1.0,
                           edgecolor="#343a40", facecolor=color or PALETTE[kind],
                           linestyle="--" if dashed else "-", zorder=2)
    ax.add_patch(patch)
    ax.text(x, y, text, ha="center", va="center", fontsize=fontsize, zorder=3)
    return Box(x, y, w, h)


def arrow(ax, start: tuple[float, float], end: tuple[float, float], *, text: str | None = None,
          color: str = "#343a40", style: str = "-|>", dashed: bool = False, rad: float = 0.0,
          fontsize: float = 7.5, text_offset: tuple[float, float] = (0.15, 0.0)) -> None:
    """An arrow from ``start`` to ``end`` (optionally curved by ``rad``), with an optional label."""
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=10, linewidth=1.0, color=color,
                                 linestyle="--" if dashed else "-", connectionstyle=f"arc3,rad={rad}",
                                 shrinkA=1, shrinkB=1, zorder=1))
    if text:
        mx, my = (start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1]
        ax.text(mx, my, text, fontsize=fontsize, ha="left", va="center", color=color, zorder=3)


def group(ax, boxes: Sequence[Box], text: str | None = None, *, pad: float = 0.3, color: str | None = None,
          text_side: str = "right") -> Box:
    """A dashed frame around ``boxes`` (a block repeated N times, a stage...), labelled on one side."""
    x0 = min(b.x - b.w / 2 for b in boxes) - pad
    x1 = max(b.x + b.w / 2 for b in boxes) + pad
    y0 = min(b.y - b.h / 2 for b in boxes) - pad
    y1 = max(b.y + b.h / 2 for b in boxes) + pad
    ax.add_patch(FancyBboxPatch((x0, y0), x1 - x0, y1 - y0, boxstyle="round,pad=0.02,rounding_size=0.2",
                                linewidth=1.0, edgecolor="#868e96", facecolor=color or PALETTE["group"],
                                linestyle="--", zorder=0))
    if text:
        if text_side == "right":
            ax.text(x1 + 0.15, (y0 + y1) / 2, text, fontsize=9, ha="left", va="center")
        else:
            ax.text(x0 - 0.15, (y0 + y1) / 2, text, fontsize=9, ha="right", va="center")
    return Box((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)


def label(ax, xy: tuple[float, float], text: str, *, fontsize: float = 8.0, ha: str = "center",
          va: str = "center", color: str = "#212529", **kwargs) -> None:
    """Plain text at ``xy``."""
    ax.text(*xy, text, fontsize=fontsize, ha=ha, va=va, color=color, zorder=3, **kwargs)


def grid(ax, xy: tuple[float, float], rows: int, cols: int, *, cell: float = 0.4,
         colors: np.ndarray | Sequence | None = None, values: np.ndarray | None = None,
         cmap: str = "viridis", edge: str = "#495057", text: np.ndarray | None = None,
         fontsize: float = 6.5) -> Box:
    """A ``rows`` x ``cols`` grid of cells with its lower-left corner at ``xy`` (row 0 on top).

    ``colors``: one colour per cell (``rows x cols``), or ``values`` in [0, 1] mapped through
    ``cmap``; ``text``: one string per cell. Returns the grid's bounding :class:`Box`.
    """
    x0, y0 = xy
    colormap = plt.get_cmap(cmap)
    for i in range(rows):
        for j in range(cols):
            if colors is not None:
                face = colors[i][j]
            elif values is not None:
                face = colormap(float(values[i][j]))
            else:
                face = "white"
            ax.add_patch(Rectangle((x0 + j * cell, y0 + (rows - 1 - i) * cell), cell, cell,
                                   facecolor=face, edgecolor=edge, linewidth=0.6, zorder=2))
            if text is not None and text[i][j] != "":
                ax.text(x0 + (j + 0.5) * cell, y0 + (rows - 0.5 - i) * cell, str(text[i][j]),
                        ha="center", va="center", fontsize=fontsize, zorder=3)
    return Box(x0 + cols * cell / 2, y0 + rows * cell / 2, cols * cell, rows * cell)


def tensor_bar(ax, xy: tuple[float, float], parts: Sequence[str], *, cell: float = 0.55, h: float = 0.45,
               colors: Sequence[str] | None = None, fontsize: float = 7.0) -> list[Box]:
    """A horizontal vector cut into labelled parts (e.g. a token's width cut into heads)."""
    x0, y0 = xy
    out = []
    cycle = colors or ["#ffd8a8", "#d0ebff", "#d3f9d8", "#e5dbff", "#ffc9c9", "#fff3bf", "#c5f6fa", "#e9ecef"]
    for k, text in enumerate(parts):
        ax.add_patch(Rectangle((x0 + k * cell, y0), cell, h, facecolor=cycle[k % len(cycle)],
                               edgecolor="#495057", linewidth=0.7, zorder=2))
        ax.text(x0 + (k + 0.5) * cell, y0 + h / 2, text, ha="center", va="center", fontsize=fontsize, zorder=3)
        out.append(Box(x0 + (k + 0.5) * cell, y0 + h / 2, cell, h))
    return out
