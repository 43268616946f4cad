"""Visual-search displays: one odd item among identical distractors (chapter 1, saliency maps).

A *pop-out* display is the classic stimulus of Treisman's visual-search experiments and of Itti,
Koch and Niebur (1998): bars on a black background, all alike except one (the *target*) that differs
in a single feature, its colour (a red bar among green ones) or its orientation (a bar tilted by
90 degrees among parallel ones). The right answer is known, so a saliency model can be scored: its
maximum should land on the target.

Every display is drawn from a ``torch.Generator`` passed in: the same generator state gives the same
display, and no global random state is read or changed. Nothing is downloaded.

Simplifications: bars are hard-edged rectangles (no anti-aliasing); the colours are pure red
(1, 0, 0) and pure green (0, 1, 0), which have the same intensity (R + G + B) / 3, so that only the
colour-opponency channel can tell them apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["FEATURES", "SearchDisplay", "draw_bars", "make_display", "make_displays", "nearest_item"]

FEATURES = ("colour", "orientation")
RED = (1.0, 0.0, 0.0)
GREEN = (0.0, 1.0, 0.0)
WHITE = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class SearchDisplay:
    """One generated display.

    Attributes:
        image: (3, Hi, Wi) float32 RGB in [0, 1], black background.
        centres: (N, 2) float32, (row, column) of each item's centre in pixels.
        angles: (N,) float32, each bar's orientation in radians (0 = horizontal, counter-clockwise).
        target: index (into ``centres``) of the odd item.
        feature: ``"colour"`` or ``"orientation"``, the feature in which the target differs.
    """

    image: torch.Tensor
    centres: torch.Tensor
    angles: torch.Tensor
    target: int
    feature: str


def draw_bars(
    size: int, centres: torch.Tensor, angles: torch.Tensor, colours: torch.Tensor, *, length: float, width: float
) -> torch.Tensor:
    """Rasterise bars on a black square canvas.

    Args:
        size: the canvas is ``size`` x ``size`` pixels.
        centres: (N, 2) float, (row, column) of each bar's centre.
        angles: (N,) float, orientation in radians (0 = horizontal, counter-clockwise on screen).
        colours: (N, 3) float RGB in [0, 1].
        length, width: bar size in pixels.

    Returns:
        (3, Hi, Wi) float32 image; a pixel belongs to a bar when its offset from the centre,
        measured along and across the bar, is within half the length and half the width.
    """
    image = torch.zeros(3, size, size)
    half = math.hypot(length, width) / 2 + 1                              # the bar fits in this box
    for (r, c), a, colour in zip(centres.tolist(), angles.tolist(), colours):
        r0, r1 = max(0, int(r - half)), min(size, int(r + half) + 1)      # only look near the bar
        c0, c1 = max(0, int(c - half)), min(size, int(c + half) + 1)
        rows = torch.arange(r0, r1, dtype=torch.float32)[:, None] + 0.5   # (h, 1) pixel centres
        cols = torch.arange(c0, c1, dtype=torch.float32)[None, :] + 0.5   # (1, w)
        dx, dy = cols - c, -(rows - r)                                    # (h, w) each, y points up
        along = dx * math.cos(a) + dy * math.sin(a)
        across = -dx * math.sin(a) + dy * math.cos(a)
        inside = (along.abs() <= length / 2) & (across.abs() <= width / 2)  # (h, w)
        image[:, r0:r1, c0:c1][:, inside] = colour[:, None].to(image.dtype)
    return image


def make_display(
    *,
    generator: torch.Generator,
    feature: str = "colour",
    size: int = 256,
    grid: int = 6,
    length: float | None = None,
    width: float | None = None,
    jitter: float = 0.15,
) -> SearchDisplay:
    """Draw one pop-out display with ``grid`` x ``grid`` bars, one of them the target.

    Args:
        generator: the seeded source of every random choice (target cell, jitter, orientation).
        feature: ``"colour"``: a red bar among green bars, all with one (random) orientation;
            ``"orientation"``: white bars, the target turned by 90 degrees from the others.
        size: image side in pixels.
        grid: items per row and column; each sits in its own cell, jittered by up to
            ``jitter`` x the cell size.
        length, width: bar size in pixels (default: 0.6 and 0.15 of the cell size).

    Returns:
        a :class:`SearchDisplay`.
    """
    if feature not in FEATURES:
        raise ValueError(f"feature must be one of {FEATURES}, got {feature!r}")
    cell = size / grid
    length = 0.6 * cell if length is None else length
    width = 0.15 * cell if width is None else width
    n = grid * grid
    ij = torch.stack(torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij"), -1)  # (grid, grid, 2)
    centres = (ij.reshape(n, 2).float() + 0.5) * cell                                               # (N, 2)
    centres = centres + (torch.rand(n, 2, generator=generator) * 2 - 1) * jitter * cell
    target = int(torch.randint(n, (1,), generator=generator))
    base = float(torch.randint(4, (1,), generator=generator)) * math.pi / 4   # 0, 45, 90 or 135 degrees
    angles = torch.full((n,), base)
    if feature == "colour":
        colours = torch.tensor([GREEN]).repeat(n, 1)                          # (N, 3)
        colours[target] = torch.tensor(RED)
    else:
        colours = torch.tensor([WHITE]).repeat(n, 1)
        angles[target] = base + math.pi / 2
    image = draw_bars(size, centres, angles, colours, length=length, width=width)
    return SearchDisplay(image=image, centres=centres, angles=angles, target=target, feature=feature)


def make_displays(n: int, *, generator: torch.Generator, **kwargs) -> list[SearchDisplay]:
    """``n`` displays drawn one after another from ``generator`` (keyword arguments go to :func:`make_display`)."""
    return [make_display(generator=generator, **kwargs) for _ in range(n)]


def nearest_item(display: SearchDisplay, point: tuple[float, float]) -> int:
    """Index of the item whose centre is nearest to ``point`` = (row, column) in pixels."""
    p = torch.tensor(point, dtype=torch.float32)
    return int(((display.centres - p) ** 2).sum(-1).argmin())
