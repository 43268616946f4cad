"""Feature selection: attention with weights 0 or 1 (chapter 1, "Feature selection").

Before attention was learned, it was *chosen*: feature selection (특징 선택) keeps the features
that separate the classes and throws the others away. A selection is a vector of N weights, each
0 (feature dropped) or 1 (feature kept); multiplying the features by it is the hard, hand-made
ancestor of an attention weighting.

Two classic ways to choose, both here:

* a *filter*: score each feature on its own (the ANOVA F statistic, between-class variance over
  within-class variance) and keep the k best (:func:`select_k_best`);
* a *wrapper*: greedy forward selection, adding at each step the feature that most improves a
  classifier's validation accuracy (:func:`forward_selection_step`), here a nearest-centroid
  classifier, cheap enough to try every candidate.

Selection vectors are float 0/1 weights, (N,) float32 with 1 = kept; they are *not* attention
masks (the package's boolean masks mean True = may not be attended to).

Simplifications: one train/validation split instead of cross-validation; no stopping rule (the
caller chooses k).
"""

from __future__ import annotations

import torch

__all__ = [
    "anova_f_scores",
    "select_k_best",
    "nearest_centroid_accuracy",
    "forward_selection_step",
    "forward_selection",
]


def anova_f_scores(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The one-way ANOVA F statistic of every feature (what ``sklearn.feature_selection.f_classif`` computes).

    F_j = [sum_c n_c (mean_cj - mean_j)^2 / (Y - 1)] / [sum_i (x_ij - mean_{y_i} j)^2 / (n - Y)]
    for Y classes and n samples: large when the class means differ a lot compared to the spread
    inside each class.

    Args:
        x: (n, N) float features.
        y: (n,) int64 class labels in 0..Y-1 (every class present).

    Returns:
        (N,) float64 scores; a constant feature (0 / 0) scores 0, not NaN.
    """
    x = x.to(torch.float64)
    n, k = x.shape[0], int(y.max()) + 1
    onehot = torch.nn.functional.one_hot(y, k).to(torch.float64)       # (n, Y)
    counts = onehot.sum(0)                                               # (Y,)
    class_means = (onehot.T @ x) / counts[:, None]                       # (Y, N)
    grand_mean = x.mean(0)                                               # (N,)
    between = (counts[:, None] * (class_means - grand_mean) ** 2).sum(0) / (k - 1)
    within = ((x - class_means[y]) ** 2).sum(0) / (n - k)                # (N,)
    scores = between / within
    return torch.where(within > 0, scores, torch.zeros_like(scores))


def select_k_best(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the ``k`` features with the highest scores.

    Args:
        scores: (N,) float, larger = more useful; NaN is not allowed.
        k: how many to keep, 0 <= k <= N.

    Returns:
        (N,) float32 selection: 1.0 at the k best features, 0.0 elsewhere (ties go to the
        lower index).
    """
    if not 0 <= k <= scores.numel():
        raise ValueError(f"k must be in [0, {scores.numel()}], got {k}")
    order = torch.sort(scores, descending=True, stable=True).indices     # (N,) best first
    selection = torch.zeros(scores.numel(), dtype=torch.float32)
    selection[order[:k]] = 1.0
    return selection


def nearest_centroid_accuracy(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, selection: torch.Tensor
) -> torch.Tensor:
    """Validation accuracy of a nearest-centroid classifier that sees only the selected features.

    Args:
        x_train, x_val: (n, N) and (m, N) float features; y_train, y_val: (n,), (m,) int64 labels.
        selection: (..., N) 0/1 weights; a batch of selections is scored at once.

    Returns:
        (...,) float64 accuracy in [0, 1] of each selection (ties between centroids go to the
        lower class index).
    """
    k = int(y_train.max()) + 1
    onehot = torch.nn.functional.one_hot(y_train, k).to(torch.float64)  # (n, Y)
    centroids = (onehot.T @ x_train.double()) / onehot.sum(0)[:, None]   # (Y, N)
    sq = (x_val.double()[:, None, :] - centroids[None]) ** 2              # (m, Y, N)
    w = selection.double().reshape(-1, selection.shape[-1])               # (S, N), S selections
    dist = (sq.reshape(-1, sq.shape[-1]) @ w.T).T.reshape(*selection.shape[:-1], *sq.shape[:2])  # (..., m, Y)
    return (dist.argmin(-1) == y_val).double().mean(-1)                   # (...,)


def forward_selection_step(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, selection: torch.Tensor
) -> tuple[torch.Tensor, float]:
    """One step of greedy forward selection: add the feature that helps most.

    Every feature not yet kept is tried in turn (selection with that one feature switched on);
    the one giving the highest :func:`nearest_centroid_accuracy` is kept (ties: lower index).

    Args:
        selection: (N,) float 0/1, the features kept so far (at least one 0 left).

    Returns:
        the new (N,) float32 selection (one more 1) and its validation accuracy.
    """
    candidates = (selection == 0).nonzero().flatten()                     # (M,) features to try
    if candidates.numel() == 0:
        raise ValueError("every feature is already selected")
    trials = selection.float().repeat(candidates.numel(), 1)              # (M, N)
    trials[torch.arange(candidates.numel()), candidates] = 1.0
    acc = nearest_centroid_accuracy(x_train, y_train, x_val, y_val, trials)  # (M,)
    best = int(acc.argmax())                                              # first of the ties
    return trials[best], float(acc[best])


def forward_selection(
    x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor, k: int
) -> tuple[list[torch.Tensor], list[float]]:
    """Greedy forward selection from nothing up to ``k`` features.

    Returns:
        the k selections (after 1, 2, ..., k steps) and their validation accuracies.
    """
    selection = torch.zeros(x_train.shape[1])
    selections, accuracies = [], []
    for _ in range(k):
        selection, acc = forward_selection_step(x_train, y_train, x_val, y_val, selection)
        selections.append(selection)
        accuracies.append(acc)
    return selections, accuracies
