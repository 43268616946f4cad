"""SETR (chapter 5, "Segmentation with a ViT"): a Transformer encoder on patches, a CNN decoder to pixels.

Zheng et al. (2021), "Rethinking semantic segmentation from a sequence-to-sequence perspective with
transformers". Segmentation gives every pixel a class. SETR reads the image as chapter 4's ViT does
(patches of P x P pixels, no convolutional backbone), keeps **every** patch token (there is no CLS
token to classify from), lays the N = (Hi / P)^2 tokens back on their grid, and decodes that
coarse (D, Hi / P, Wi / P) map to a (Y, Hi, Wi) map of class scores. Bottom-up, as the file reads:

* :class:`NaiveHead` (SETR-Naive): two 1 x 1 convolutions classify each token, then one bilinear
  upsampling by P to full resolution;
* :class:`PUPHead` (SETR-PUP, progressive upsampling): log2(P) stages of 3 x 3 convolution, batch
  norm, ReLU and 2x bilinear upsampling, so that the resolution is recovered in small steps with
  convolutions in between (a single jump by P gives blurry, blocky edges), then a 1 x 1 classifier;
* :class:`SETR`: :class:`attnlab.vit.ViT` with ``num_classes=0`` and no CLS token, its
  ``forward_features``, and one of the two heads;
* :func:`class_iou`, :func:`mean_iou`: intersection over union of each class's pixels, accumulated
  over a whole set of images, and their mean (mIoU), the metric of segmentation benchmarks.

Simplifications with respect to the paper: a small ViT trained from scratch (the paper starts from
ImageNet-pretrained ViT-L); no auxiliary heads on intermediate blocks; no multi-level feature
aggregation (SETR-MLA); batch norm rather than synchronised batch norm.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .data.tokens import IGNORE_INDEX
from .vit import ViT

__all__ = ["NaiveHead", "PUPHead", "SETR", "confusion_matrix", "class_iou", "mean_iou"]


class NaiveHead(nn.Module):
    """SETR-Naive: 1 x 1 conv -> BN -> ReLU -> 1 x 1 conv to Y classes, then one bilinear upsampling by ``scale``.

    Args:
        dim: D, the tokens' width; channels: C', the hidden width; num_classes: Y; scale: P.
    """

    def __init__(self, *, dim: int, channels: int, num_classes: int, scale: int) -> None:
        super().__init__()
        self.classify = nn.Sequential(nn.Conv2d(dim, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(),
                                      nn.Conv2d(channels, num_classes, 1))
        self.scale = scale

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """grid: (B, D, Hp, Wp) -> class scores (B, Y, Hp P, Wp P)."""
        coarse = self.classify(grid)                                             # (B, Y, Hp, Wp)
        return F.interpolate(coarse, scale_factor=self.scale, mode="bilinear", align_corners=False)


class PUPHead(nn.Module):
    """SETR-PUP: log2(P) stages of [3 x 3 conv -> BN -> ReLU -> 2x bilinear upsampling], then a 1 x 1 classifier.

    Args:
        dim: D; channels: C', the width of every stage; num_classes: Y; scale: P, a power of 2.
    """

    def __init__(self, *, dim: int, channels: int, num_classes: int, scale: int) -> None:
        super().__init__()
        stages = int(math.log2(scale))
        if 2 ** stages != scale:
            raise ValueError(f"PUP upsamples by 2 per stage: scale must be a power of 2, got {scale}")
        widths = [dim] + [channels] * stages
        self.stages = nn.ModuleList([
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                          nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
            for c_in, c_out in zip(widths[:-1], widths[1:])])
        self.classify = nn.Conv2d(widths[-1], num_classes, 1)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        """grid: (B, D, Hp, Wp) -> class scores (B, Y, Hp P, Wp P)."""
        x = grid
        for stage in self.stages:
            x = stage(x)                                                         # (B, C', 2 Hp, 2 Wp), ...
        return self.classify(x)                                                  # (B, Y, Hi, Wi)


class SETR(nn.Module):
    """SETR: a ViT encoder over patches (every token kept), tokens back on their grid, a CNN decoder.

    Args:
        num_classes: Y, background included (the scenes' masks: 0 = background, 1 + shape id).
        image_size, patch_size: Hi = Wi and P (a power of 2 for the PUP head).
        dim, depth, num_heads, ffn_dim: the ViT encoder (:class:`attnlab.vit.ViT`).
        head: ``"pup"`` (progressive upsampling) or ``"naive"``; channels: C', the decoder's width.
    """

    def __init__(self, *, num_classes: int, image_size: int, patch_size: int, dim: int = 64, depth: int = 2,
                 num_heads: int = 4, ffn_dim: int | None = None, head: str = "pup", channels: int = 32) -> None:
        super().__init__()
        heads = {"pup": PUPHead, "naive": NaiveHead}
        if head not in heads:
            raise ValueError(f"head must be one of {sorted(heads)}, got {head!r}")
        self.encoder = ViT(image_size=image_size, patch_size=patch_size, num_classes=0, dim=dim, depth=depth,
                           num_heads=num_heads, ffn_dim=ffn_dim, class_token=False)
        self.decoder = heads[head](dim=dim, channels=channels, num_classes=num_classes, scale=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, Hi, Wi) -> class scores (B, Y, Hi, Wi) for every pixel."""
        tokens = self.encoder.forward_features(images)                           # (B, N, D), no CLS token
        grid = rearrange(tokens, "b (hp wp) d -> b d hp wp", hp=self.encoder.patch_embed.grid_size)  # (B, D, Hp, Wp)
        return self.decoder(grid)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, *, num_classes: int,
                     ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """Counts of (true class, predicted class) over every pixel: (Y, Y) long, rows = true.

    Args:
        pred, target: integer class maps of the same shape (any, e.g. (B, Hi, Wi)), values in
            0 .. Y - 1; pixels whose target is ``ignore_index`` are not counted.
    """
    keep = target != ignore_index
    pairs = target[keep].long() * num_classes + pred[keep].long()               # one index per (true, predicted)
    return torch.bincount(pairs, minlength=num_classes ** 2).view(num_classes, num_classes)


def class_iou(pred: torch.Tensor, target: torch.Tensor, *, num_classes: int,
              ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    """IoU of each class over all pixels given: |pred = c and target = c| / |pred = c or target = c|.

    Returns:
        (Y,) float64; NaN for a class that is neither predicted nor present (its IoU is undefined).
    """
    counts = confusion_matrix(pred, target, num_classes=num_classes, ignore_index=ignore_index).double()
    inter = counts.diagonal()                                                    # (Y,)
    union = counts.sum(0) + counts.sum(1) - inter                                # predicted + true - both
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))


def mean_iou(pred: torch.Tensor, target: torch.Tensor, *, num_classes: int, ignore_index: int = IGNORE_INDEX) -> float:
    """mIoU: the mean of :func:`class_iou` over the classes where it is defined (background included).

    The counts are summed over all the images given before dividing, as segmentation benchmarks do;
    the mean of per-image mIoUs would be a different (and noisier) number.
    """
    return float(class_iou(pred, target, num_classes=num_classes, ignore_index=ignore_index).nanmean())
