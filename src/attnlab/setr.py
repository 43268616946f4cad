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
* :class:`MLAHead` (SETR-MLA, multi-level feature aggregation): the token maps of M blocks spread
  evenly over the encoder (the paper: blocks 6, 12, 18, 24 of 24), each projected by a 1 x 1
  convolution, merged top-down (each level plus every deeper one), refined by 3 x 3 convolutions,
  upsampled, concatenated and classified;
* :class:`SETR`: :class:`attnlab.vit.ViT` with ``num_classes=0`` and no CLS token, the token maps
  of the blocks its head reads (:meth:`SETR.forward_levels`), and one of the three heads;
* :func:`class_iou`, :func:`mean_iou`: intersection over union of each class's pixels, accumulated
  over a whole set of images, and their mean (mIoU), the metric of segmentation benchmarks.

Simplifications with respect to the paper: a small ViT trained from scratch (the paper starts from
ImageNet-pretrained ViT-L); no auxiliary heads on intermediate blocks; batch norm rather than
synchronised batch norm. In MLA: M is at most the encoder's depth (a 2-block encoder gives 2
levels); one width C' for the projections and the merge, C' / 2 after the two 3 x 3 convolutions of
each level; each level upsampled by min(4, P) (the paper: 4, with P = 16), the concatenation
classified by a 1 x 1 convolution and brought to full resolution in one bilinear step; the
intermediate levels are the blocks' outputs without the encoder's final LayerNorm (only the last
level has it), since the batch norm after each projection normalises them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .data.tokens import IGNORE_INDEX
from .vit import ViT

__all__ = ["NaiveHead", "PUPHead", "MLAHead", "SETR", "mla_levels", "conv_bn_relu", "confusion_matrix", "class_iou", "mean_iou"]


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


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    """A K x K convolution (same size out), batch norm and ReLU: (B, C_in, Hi, Wi) -> (B, C_out, Hi, Wi)."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU())


def mla_levels(depth: int, num_levels: int) -> tuple[int, ...]:
    """The blocks (numbered 1 .. depth) whose outputs SETR-MLA reads: M evenly spaced, the last block
    included (depth 24, M = 4: blocks 6, 12, 18, 24)."""
    if not 1 <= num_levels <= depth:
        raise ValueError(f"MLA reads 1 to depth = {depth} levels, got {num_levels}")
    return tuple(depth * (m + 1) // num_levels for m in range(num_levels))


class MLAHead(nn.Module):
    """SETR-MLA: M token maps -> 1 x 1 projections -> top-down sums -> 3 x 3 convs -> upsample, concat, classify.

    Level 0 is the shallowest block read, level M - 1 the last. The top-down aggregation adds to
    each level's projection the aggregated level above it, so the deepest map reaches every stream
    and the shallowest only its own (:meth:`aggregate`).

    Args:
        dim: D; channels: C', the width of the projections (C' / 2 after each level's decoder, so
            C' must be even); num_classes: Y; scale: P; num_levels: M, the token maps it reads.
    """

    def __init__(self, *, dim: int, channels: int, num_classes: int, scale: int, num_levels: int) -> None:
        super().__init__()
        if channels % 2:
            raise ValueError(f"MLA halves the width of each level: channels must be even, got {channels}")
        self.project = nn.ModuleList([conv_bn_relu(dim, channels, 1) for _ in range(num_levels)])
        self.merge = nn.ModuleList([conv_bn_relu(channels, channels, 3) for _ in range(num_levels)])
        self.decode = nn.ModuleList([nn.Sequential(conv_bn_relu(channels, channels // 2, 3),
                                                   conv_bn_relu(channels // 2, channels // 2, 3))
                                     for _ in range(num_levels)])
        self.classify = nn.Conv2d(num_levels * (channels // 2), num_classes, 1)
        self.scale, self.level_scale = scale, min(4, scale)          # P and s = min(4, P)

    def aggregate(self, grids: list[torch.Tensor]) -> list[torch.Tensor]:
        """M maps (B, D, Hp, Wp), shallowest first -> M maps (B, C', Hp, Wp): level m's
        projection plus the aggregate of level m + 1 (the deepest: projected alone)."""
        levels = len(self.project)
        if len(grids) != levels:
            raise ValueError(f"MLA head built for {levels} levels, got {len(grids)}")
        projected = [project(g) for project, g in zip(self.project, grids)]
        merged = [projected[-1]]                          # each (B, C', Hp, Wp)
        for p in reversed(projected[:-1]):                # top-down: deepest first
            merged.insert(0, p + merged[0])
        return merged

    def forward(self, grids: list[torch.Tensor]) -> torch.Tensor:
        """M maps (B, D, Hp, Wp), shallowest first -> scores (B, Y, Hp P, Wp P)."""
        streams = []
        for merge, decode, x in zip(self.merge, self.decode, self.aggregate(grids)):
            x = decode(merge(x))                          # (B, C' / 2, Hp, Wp)
            x = F.interpolate(x, scale_factor=self.level_scale, mode="bilinear",
                              align_corners=False)        # (B, C' / 2, s Hp, s Wp)
            streams.append(x)
        scores = self.classify(torch.cat(streams, dim=1))  # (B, Y, s Hp, s Wp)
        size = (grids[0].shape[-2] * self.scale, grids[0].shape[-1] * self.scale)
        return F.interpolate(scores, size=size, mode="bilinear",
                             align_corners=False)         # (B, Y, Hi, Wi)


class SETR(nn.Module):
    """SETR: a ViT encoder over patches (every token kept), tokens back on their grid, a CNN decoder.

    Args:
        num_classes: Y, background included (the scenes' masks: 0 = background, 1 + shape id).
        image_size, patch_size: Hi = Wi and P (a power of 2 for the PUP head).
        dim, depth, num_heads, ffn_dim: the ViT encoder (:class:`attnlab.vit.ViT`).
        head: ``"pup"`` (progressive upsampling), ``"naive"`` or ``"mla"`` (multi-level feature
            aggregation); channels: C', the decoder's width.
        num_levels: M, the blocks MLA reads (default min(4, depth)); the other heads read the last.
        encoder: a ViT to use instead of a new one (e.g. chapter 4's trained classifier, as a
            pre-trained backbone; chapter 6): its sizes replace image_size, patch_size, dim, depth,
            num_heads and ffn_dim, and its CLS token, if any, is left out of the maps.
    """

    def __init__(self, *, num_classes: int, image_size: int, patch_size: int, dim: int = 64, depth: int = 2,
                 num_heads: int = 4, ffn_dim: int | None = None, head: str = "pup", channels: int = 32,
                 num_levels: int | None = None, encoder: ViT | None = None) -> None:
        super().__init__()
        heads = {"pup": PUPHead, "naive": NaiveHead, "mla": MLAHead}
        if head not in heads:
            raise ValueError(f"head must be one of {sorted(heads)}, got {head!r}")
        if num_levels is not None and head != "mla":
            raise ValueError(f"num_levels is for the MLA head; the {head!r} head reads the last block")
        if encoder is None:
            encoder = ViT(image_size=image_size, patch_size=patch_size, num_classes=0, dim=dim, depth=depth,
                          num_heads=num_heads, ffn_dim=ffn_dim, class_token=False)
        self.encoder = encoder
        dim, depth, patch_size = encoder.pos_embed.shape[-1], len(encoder.blocks), encoder.patch_embed.patch_size
        sizes = dict(dim=dim, channels=channels, num_classes=num_classes, scale=patch_size)
        if head == "mla":
            self.levels = mla_levels(depth, num_levels or min(4, depth))
            self.decoder = MLAHead(**sizes, num_levels=len(self.levels))
        else:
            self.levels = (depth,)
            self.decoder = heads[head](**sizes)

    def forward_levels(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images (B, C, Hi, Wi) -> the token maps (B, D, Hp, Wp) of the blocks in ``self.levels``,
        shallowest first; the last block's after the encoder's final LayerNorm (its ``forward_features``)."""
        x, maps = self.encoder.embed(images), []                                 # (B, T, D), T = N (+ 1: CLS)
        first = int(self.encoder.cls_token is not None)
        for number, block in enumerate(self.encoder.blocks, start=1):
            x = block(x)                                                         # (B, T, D)
            if number in self.levels:
                tokens = self.encoder.norm(x) if number == len(self.encoder.blocks) else x
                tokens = tokens[:, first:]                                       # (B, N, D): patch tokens
                maps.append(rearrange(tokens, "b (hp wp) d -> b d hp wp", hp=self.encoder.grid_size))
        return maps                                                              # each (B, D, Hp, Wp)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C, Hi, Wi) -> class scores (B, Y, Hi, Wi) for every pixel."""
        maps = self.forward_levels(images)           # one (B, D, Hp, Wp) per level
        if isinstance(self.decoder, MLAHead):
            return self.decoder(maps)                # every level
        return self.decoder(maps[-1])                # the last block's map alone


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
