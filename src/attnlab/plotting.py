"""Plots the book and the labs share: attention heat maps, grids of heads, learning curves, and grids
of images with boxes, masks, patch lines and captions drawn over them (scenes, detections,
segmentations, reconstructions).

Nothing changes matplotlib's global state on import; call :func:`use_style` once at the top of a
notebook to apply the course's style.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["use_style", "attention_heatmap", "attention_heads", "learning_curves",
           "draw_boxes", "draw_mask", "draw_image", "image_grid"]

_STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "figure.figsize": (6.0, 4.0),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "font.size": 10,
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply the course's matplotlib style (an explicit call, never done on import)."""
    plt.rcParams.update(_STYLE)


def _to_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def attention_heatmap(
    weights: torch.Tensor | np.ndarray,
    *,
    queries: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    ax: plt.Axes | None = None,
    title: str | None = None,
    annotate: bool | None = None,
    colorbar: bool = True,
) -> plt.Axes:
    """Draw one attention matrix: row i = query i, column j = key j, colour = weight in [0, 1].

    Args:
        weights: (T_q, T_k) attention weights (each row sums to one).
        queries, keys: labels of the rows and the columns.
        annotate: write each weight in its cell (default: when the matrix is at most 10 x 10).
    """
    w = _to_numpy(weights)
    if w.ndim != 2:
        raise ValueError(f"weights: expected a 2-D (T_q, T_k) matrix, got shape {w.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(0.45 * w.shape[1] + 2.2, 0.45 * w.shape[0] + 1.2))
    im = ax.imshow(w, vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.set_xticks(range(w.shape[1]), keys if keys is not None else range(w.shape[1]),
                  rotation=90 if keys is not None else 0)
    ax.set_yticks(range(w.shape[0]), queries if queries is not None else range(w.shape[0]))
    if annotate is None:
        annotate = max(w.shape) <= 10
    if annotate:
        for i in range(w.shape[0]):
            for j in range(w.shape[1]):
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if w[i, j] < 0.6 else "black")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return ax


def attention_heads(
    weights: torch.Tensor | np.ndarray,
    *,
    queries: Sequence[str] | None = None,
    keys: Sequence[str] | None = None,
    title: str | None = None,
    ncols: int = 4,
) -> plt.Figure:
    """Draw the attention matrix of every head side by side.

    Args:
        weights: (H, T_q, T_k) weights of one example, one matrix per head.
    """
    w = _to_numpy(weights)
    if w.ndim != 3:
        raise ValueError(f"weights: expected (H, T_q, T_k), got shape {w.shape}")
    h = w.shape[0]
    ncols = min(ncols, h)
    nrows = int(np.ceil(h / ncols))
    height = 2.6 * nrows                                                # inches
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, height), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < h:
            attention_heatmap(w[i], queries=queries, keys=keys, ax=ax, title=f"head {i}",
                              annotate=False, colorbar=False)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return fig


def learning_curves(history, *, metric: str | None = None, title: str | None = None, smooth: int = 10) -> plt.Figure:
    """Training loss per step (smoothed over ``smooth`` steps) and, if given, an evaluation metric.

    Args:
        history: an :class:`attnlab.training.History`.
        metric: key of ``history.eval`` to draw on a second panel (e.g. ``"accuracy"``).
    """
    ncols = 2 if metric else 1
    height = 3.2                                                        # inches
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, height), squeeze=False)
    loss = np.asarray(history.loss)
    k = max(1, min(smooth, len(loss)))
    smoothed = np.convolve(loss, np.ones(k) / k, mode="valid")
    ax = axes[0, 0]
    ax.plot(history.step, loss, alpha=0.3, label="per step")
    ax.plot(history.step[k - 1:], smoothed, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    if metric:
        ax = axes[0, 1]
        ax.plot(history.eval_step, [e[metric] for e in history.eval], marker="o")
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return fig


# --------------------------------------------------------------------------------------- images
_CAPTION_WIDTH = 26                     # characters per line of a caption above an image
def draw_boxes(
    ax: plt.Axes,
    boxes: torch.Tensor | np.ndarray,
    *,
    image_size: tuple[int, int],
    labels: Sequence[str] | None = None,
    colour: str = "white",
) -> None:
    """Draw boxes given as (cx, cy, w, h) fractions of the image (DETR's format) on an image shown by ``imshow``.

    Args:
        boxes: (N, 4); boxes with w or h <= 0 (padding) are skipped.
        image_size: (Hi, Wi) of the image under the boxes.
        labels: one text per box, written at its top-left corner.
    """
    hi, wi = image_size
    for i, (cx, cy, w, h) in enumerate(_to_numpy(boxes).reshape(-1, 4)):
        if w <= 0 or h <= 0:
            continue
        x0, y0 = (cx - w / 2) * wi - 0.5, (cy - h / 2) * hi - 0.5          # imshow puts pixel i at i +- 0.5
        ax.add_patch(plt.Rectangle((x0, y0), w * wi, h * hi, fill=False, edgecolor=colour, linewidth=1.2))
        if labels is not None:
            ax.text(x0, y0, labels[i], fontsize=6, color="black", va="bottom",
                    bbox={"facecolor": colour, "edgecolor": "none", "pad": 0.5, "alpha": 0.8})


def draw_mask(ax: plt.Axes, mask: torch.Tensor | np.ndarray, *, alpha: float = 0.5) -> None:
    """Overlay a (Hi, Wi) class map: class 0 is transparent, class c > 0 gets colour c - 1 of ``tab10``."""
    m = _to_numpy(mask).astype(int)
    colours = plt.get_cmap("tab10")((m - 1) % 10)                          # (Hi, Wi, 4) RGBA
    colours[..., 3] = np.where(m > 0, alpha, 0.0)
    ax.imshow(colours, interpolation="nearest")


def draw_image(
    ax: plt.Axes,
    image: torch.Tensor | np.ndarray,
    *,
    boxes: torch.Tensor | np.ndarray | None = None,
    box_labels: Sequence[str] | None = None,
    mask: torch.Tensor | np.ndarray | None = None,
    caption: str | None = None,
    patch_size: int | None = None,
    mask_alpha: float = 0.5,
) -> None:
    """Show one image on ``ax`` with what a chapter wants over it.

    Args:
        image: (3, Hi, Wi) RGB or (Hi, Wi) grey, values in [0, 1] (clipped).
        boxes, box_labels: see :func:`draw_boxes` (boxes as (cx, cy, w, h) fractions).
        mask, mask_alpha: (Hi, Wi) integer class map and its opacity, see :func:`draw_mask`.
        caption: a title above the image, wrapped.
        patch_size: draw the lines between P x P patches (a ViT's view of the image).
    """
    x = np.clip(_to_numpy(image), 0.0, 1.0)
    if x.ndim == 3:
        x = x.transpose(1, 2, 0)                                           # (Hi, Wi, 3) for imshow
    ax.imshow(x, cmap="gray" if x.ndim == 2 else None, vmin=0.0, vmax=1.0, interpolation="nearest")
    hi, wi = x.shape[:2]
    if mask is not None:
        draw_mask(ax, mask, alpha=mask_alpha)
    if boxes is not None:
        draw_boxes(ax, boxes, image_size=(hi, wi), labels=box_labels)
    if patch_size:
        for k in range(patch_size, hi, patch_size):
            ax.axhline(k - 0.5, color="white", linewidth=0.6)
        for k in range(patch_size, wi, patch_size):
            ax.axvline(k - 0.5, color="white", linewidth=0.6)
    if caption:
        ax.set_title(textwrap.fill(caption, _CAPTION_WIDTH), fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def image_grid(
    images: torch.Tensor | np.ndarray | Sequence,
    *,
    ncols: int = 8,
    boxes: Sequence | None = None,
    box_labels: Sequence[Sequence[str]] | None = None,
    masks: Sequence | None = None,
    captions: Sequence[str] | None = None,
    patch_size: int | None = None,
    mask_alpha: float = 0.5,
    panel: float = 1.5,
    title: str | None = None,
) -> plt.Figure:
    """A grid of images, each drawn by :func:`draw_image` with its own boxes, mask and caption.

    Args:
        images: (B, 3, Hi, Wi) or (B, Hi, Wi), or a sequence of such images (sizes may differ).
        boxes: per image, (N, 4) (cx, cy, w, h) fractions (N may differ between images); a padded
            (B, N, 4) tensor works too (zero boxes are skipped).
        box_labels: per image, one text per box.
        masks: per image, a (Hi, Wi) class map (a (B, Hi, Wi) tensor works).
        captions: per image, a title.
        panel: the side of one panel in inches.

    The layout is computed, not searched for (``tight_layout`` costs seconds on a large grid).
    """
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    lines = max((textwrap.fill(c, _CAPTION_WIDTH).count("\n") + 1 for c in captions), default=0) if captions else 0
    above = 0.05 + lines * 9 / 72                                          # inches above a panel: its caption
    top = 0.4 if title else 0.0
    height = nrows * (panel + above) + top
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, height), squeeze=False)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.05 / height, top=1 - (above + top) / height,
                        wspace=0.05, hspace=(above + 0.05) / panel)
    pick = lambda items, i: None if items is None else items[i]            # noqa: E731
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.axis("off")
            continue
        draw_image(ax, images[i], boxes=pick(boxes, i), box_labels=pick(box_labels, i), mask=pick(masks, i),
                   caption=pick(captions, i), patch_size=patch_size, mask_alpha=mask_alpha)
    if title:
        fig.suptitle(title, y=1 - 0.1 / height, va="top")
    return fig
