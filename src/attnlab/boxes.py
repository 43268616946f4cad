"""Boxes (chapter 5, "Detection as set prediction"): two formats, intersection over union, and GIoU.

A detector such as DETR predicts a box as its centre and size, ``(cx, cy, w, h)``, as fractions of
the image (the format of :meth:`attnlab.data.scenes.Scenes.targets`); overlaps are easiest to
compute from the corners, ``(x0, y0, x1, y1)``. Bottom-up, as the file reads:

* :func:`box_cxcywh_to_xyxy` / :func:`box_xyxy_to_cxcywh`: the two formats (equal to
  ``torchvision.ops.box_convert``);
* :func:`box_area`, :func:`box_iou`: the area and the **intersection over union** of every pair of
  boxes of two sets (equal to ``torchvision.ops.box_area`` / ``box_iou``);
* :func:`generalized_box_iou`: GIoU (Rezatofighi et al., 2019), IoU minus the part of the smallest
  enclosing box that neither box covers; unlike IoU it still says *how far apart* two boxes that
  do not overlap are, so it gives a gradient where IoU is flat at 0 (equal to
  ``torchvision.ops.generalized_box_iou``);
* :func:`paired_generalized_box_iou`: GIoU of box ``i`` with box ``i`` only (the loss needs the
  diagonal, not the whole matrix; ``1 -`` it equals ``torchvision.ops.generalized_box_iou_loss``);
* :func:`average_precision`: how a detector is scored, COCO's way: per class, detections sorted by
  score are matched greedily to true boxes with IoU >= t, precision is read at 101 recall levels
  and averaged (AP at t = 0.5 is **AP50**; the mean over t = 0.50, 0.55, ..., 0.95 is **AP**). The
  tests check it against ``pycocotools``.

Every function takes any number of leading dimensions, so a batch of images is one call (the
matcher of :mod:`attnlab.detr` builds the costs of a whole batch at once). The formulas are
torchvision's, to the operation, so that the tests can demand equality on every input, degenerate
ones included: two boxes of zero area give ``0 / 0 = nan``, as torchvision does (a trained
detector's boxes have positive sides: its box head ends in a sigmoid and the scenes' boxes are
at least a pixel wide).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

__all__ = [
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "box_area",
    "box_iou",
    "generalized_box_iou",
    "paired_generalized_box_iou",
    "COCO_IOU_THRESHOLDS",
    "average_precision",
]

# COCO's IoU thresholds 0.50, 0.55, ..., 0.95 and recall levels 0, 0.01, ..., 1, computed as pycocotools does.
COCO_IOU_THRESHOLDS = tuple(np.linspace(0.5, 0.95, 10).tolist())
_RECALL_LEVELS = np.linspace(0.0, 1.0, 101)


def box_cxcywh_to_xyxy(boxes: torch.Tensor) -> torch.Tensor:
    """(*, 4) centre and size ``(cx, cy, w, h)`` -> (*, 4) corners ``(x0, y0, x1, y1)``."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)


def box_xyxy_to_cxcywh(boxes: torch.Tensor) -> torch.Tensor:
    """(*, 4) corners ``(x0, y0, x1, y1)`` -> (*, 4) centre and size ``(cx, cy, w, h)``."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], dim=-1)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """(*, 4) corners -> (*,) areas ``(x1 - x0) (y1 - y0)`` (negative for an inverted box, as torchvision)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def _intersection_union(boxes1: torch.Tensor, boxes2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Areas of the intersection and of the union of every pair: (*, N, 4), (*, M, 4) -> two (*, N, M)."""
    top_left = torch.max(boxes1[..., :, None, :2], boxes2[..., None, :, :2])       # (*, N, M, 2)
    bottom_right = torch.min(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])   # (*, N, M, 2)
    sides = (bottom_right - top_left).clamp(min=0)                                 # no overlap: 0
    inter = sides[..., 0] * sides[..., 1]                                          # (*, N, M)
    union = box_area(boxes1)[..., :, None] + box_area(boxes2)[..., None, :] - inter
    return inter, union


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every pair of boxes.

    Args:
        boxes1: (*, N, 4), boxes2: (*, M, 4), corners ``(x0, y0, x1, y1)``; the leading dimensions
            broadcast (one image or a batch).

    Returns:
        (*, N, M), IoU in [0, 1] (``nan`` for two boxes of zero area).
    """
    inter, union = _intersection_union(boxes1, boxes2)
    return inter / union


def generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Generalized IoU of every pair: ``IoU - (|C| - |A u B|) / |C|``, C the smallest box enclosing A and B.

    GIoU is in (-1, 1]: 1 for identical boxes, near -1 for two small boxes far apart; unlike IoU it
    keeps changing when the boxes do not overlap (the matcher's and the loss's third term).

    Args:
        boxes1: (*, N, 4), boxes2: (*, M, 4), corners ``(x0, y0, x1, y1)``.

    Returns:
        (*, N, M).
    """
    inter, union = _intersection_union(boxes1, boxes2)
    top_left = torch.min(boxes1[..., :, None, :2], boxes2[..., None, :, :2])       # (*, N, M, 2) of C
    bottom_right = torch.max(boxes1[..., :, None, 2:], boxes2[..., None, :, 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    enclosing = sides[..., 0] * sides[..., 1]                                      # |C|: (*, N, M)
    return inter / union - (enclosing - union) / enclosing


def paired_generalized_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """GIoU of ``boxes1[..., i]`` with ``boxes2[..., i]``: (*, 4), (*, 4) -> (*,).

    The diagonal of :func:`generalized_box_iou` without computing the rest of the matrix (DETR's
    loss takes ``torch.diag`` of the full N x N matrix).
    """
    top_left = torch.max(boxes1[..., :2], boxes2[..., :2])
    bottom_right = torch.min(boxes1[..., 2:], boxes2[..., 2:])
    sides = (bottom_right - top_left).clamp(min=0)
    inter = sides[..., 0] * sides[..., 1]                                          # (*,)
    union = box_area(boxes1) + box_area(boxes2) - inter
    outer = (torch.max(boxes1[..., 2:], boxes2[..., 2:]) - torch.min(boxes1[..., :2], boxes2[..., :2])).clamp(min=0)
    enclosing = outer[..., 0] * outer[..., 1]
    return inter / union - (enclosing - union) / enclosing


def _greedy_hits(iou: np.ndarray, threshold: float) -> np.ndarray:
    """COCO's matching in one image and class: detections in decreasing score each take the free
    true box of highest IoU, if that IoU is >= ``threshold``.

    Args: iou: (n_det, n_true), rows in decreasing score. Returns: (n_det,) bool, True = true positive.
    """
    free = np.ones(iou.shape[1], dtype=bool)
    hits = np.zeros(iou.shape[0], dtype=bool)
    for d in range(iou.shape[0]):
        candidates = np.where(free, iou[d], -1.0)                           # taken boxes cannot be matched
        if candidates.size and candidates.max() >= threshold:
            free[int(candidates.argmax())] = False
            hits[d] = True
    return hits


def _interpolated_precision(scores: np.ndarray, hits: np.ndarray, num_true: int) -> float:
    """The area under one precision-recall curve, COCO's way: the precision envelope (the best
    precision at this recall or higher) read at 101 recall levels and averaged."""
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = tp / num_true
    precision = tp / (tp + fp + np.spacing(1))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]                 # non-increasing in recall
    index = np.searchsorted(recall, _RECALL_LEVELS, side="left")           # first point reaching each level
    read = np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0) if len(envelope) \
        else np.zeros_like(_RECALL_LEVELS)
    return float(read.mean())


def average_precision(predictions: Sequence[dict[str, torch.Tensor]], targets: Sequence[dict[str, torch.Tensor]], *,
                      iou_thresholds: Sequence[float] = COCO_IOU_THRESHOLDS,
                      max_detections: int = 100) -> dict[str, float]:
    """COCO-style average precision of detections against true boxes.

    For each class and each IoU threshold t: every detection of that class, over all images, sorted
    by score, is a true positive if it takes a true box of its class with IoU >= t that no
    higher-scored detection took (:func:`_greedy_hits`); the precision-recall curve is read at 101
    recall levels. AP is the mean over the classes that have true boxes (a class with true boxes and
    no detection scores 0) and over the thresholds.

    Args:
        predictions: per image ``{"scores": (n,), "labels": (n,) long, "boxes": (n, 4) (cx, cy, w, h)}``;
            at most ``max_detections`` per image and class are kept, the highest scored (as COCO).
        targets: per image ``{"labels": (k,) long, "boxes": (k, 4) (cx, cy, w, h)}`` (``Scenes.targets()``).
        iou_thresholds: t; COCO's ten by default.

    Returns:
        ``{"AP": mean over the thresholds, "AP50": at t = 0.5, "AP75": at t = 0.75}`` (the last two when
        those thresholds are among ``iou_thresholds``); NaN if no image has a true box.
    """
    thresholds = list(iou_thresholds)
    per_threshold = np.zeros(len(thresholds))
    classes = sorted({int(c) for t in targets for c in t["labels"].tolist()})
    for c in classes:
        scores, hits, num_true = [], [[] for _ in thresholds], 0
        for pred, true in zip(predictions, targets):
            keep = pred["labels"] == c
            s = pred["scores"][keep].detach().cpu().double().numpy()
            order = np.argsort(-s, kind="mergesort")[:max_detections]      # this image's detections of c
            det = pred["boxes"][keep].detach().cpu().double()[order]
            gt = true["boxes"][true["labels"] == c].detach().cpu().double()
            iou = box_iou(box_cxcywh_to_xyxy(det), box_cxcywh_to_xyxy(gt)).numpy()   # (n_det, n_true)
            scores.append(s[order])
            num_true += len(gt)
            for i, t in enumerate(thresholds):
                hits[i].append(_greedy_hits(iou, t))
        all_scores = np.concatenate(scores)
        for i in range(len(thresholds)):
            per_threshold[i] += _interpolated_precision(all_scores, np.concatenate(hits[i]), num_true)
    if not classes:
        return {"AP": float("nan")}
    per_threshold /= len(classes)
    result = {"AP": float(per_threshold.mean())}
    for name, t in (("AP50", 0.5), ("AP75", 0.75)):
        found = [i for i, u in enumerate(thresholds) if abs(u - t) < 1e-9]
        if found:
            result[name] = float(per_threshold[found[0]])
    return result
