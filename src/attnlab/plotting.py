"""Plots the book and the labs share: attention heat maps, grids of heads, learning curves.

Nothing changes matplotlib's global state on import; call :func:`use_style` once at the top of a
notebook to apply the course's style.
"""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["use_style", "attention_heatmap", "attention_heads", "learning_curves"]

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
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 2.6 * nrows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < h:
            attention_heatmap(w[i], queries=queries, keys=keys, ax=ax, title=f"head {i}",
                              annotate=False, colorbar=False)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(history, *, metric: str | None = None, title: str | None = None, smooth: int = 10) -> plt.Figure:
    """Training loss per step (smoothed over ``smooth`` steps) and, if given, an evaluation metric.

    Args:
        history: an :class:`attnlab.training.History`.
        metric: key of ``history.eval`` to draw on a second panel (e.g. ``"accuracy"``).
    """
    ncols = 2 if metric else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4.2 * ncols, 3.2), squeeze=False)
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
        fig.suptitle(title)
    fig.tight_layout()
    return fig
