"""Swin as a backbone for segmentation (chapter 6, "Swin as a backbone: segmenting the scenes").

A classifier reads only the last, coarsest map of Swin; a dense task reads them all. The Swin paper
segments with UperNet (Xiao et al., 2018), a feature pyramid (FPN, Lin et al., 2017) with a pooling
module on top; this module keeps the pyramid's core, light enough to train on a CPU:

* :class:`FPNHead`: each stage's map (B, C_s, H_s, W_s), finest first, projected by a 1 x 1
  convolution and batch norm to one width C', upsampled (bilinear) to the finest map's size and
  summed (the FPN's top-down sum, done at once), a ReLU and a 3 x 3 convolution with batch norm and
  ReLU; then one stage of SETR-PUP's progressive upsampling (2x bilinear, 3 x 3 convolution, batch
  norm, ReLU), a 1 x 1 classifier, and a bilinear upsampling by P / 2 to the image;
* :class:`SwinSegmenter`: a :class:`~attnlab.swin.SwinTransformer` (e.g. trained on classification
  first, as a pre-trained backbone) whose :meth:`~attnlab.swin.SwinTransformer.forward_features`
  feeds the head.

Simplifications with respect to UperNet: no pyramid pooling module, no per-level 3 x 3 convolutions
and no concatenation of the levels (one sum, then one 3 x 3 convolution); no auxiliary head; one
2x refinement stage borrowed from SETR-PUP (:class:`attnlab.setr.PUPHead`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .setr import conv_bn_relu
from .swin import SwinTransformer

__all__ = ["FPNHead", "SwinSegmenter"]


class FPNHead(nn.Module):
    """Several maps -> 1 x 1 conv + BN each -> upsample to the finest -> sum -> ReLU -> 3 x 3 conv,
    BN, ReLU -> 2x upsampling, 3 x 3 conv, BN, ReLU -> 1 x 1 classifier -> bilinear upsampling by
    ``scale / 2``.

    Args:
        dims: C_s of each map, finest first; channels: C', the common width; num_classes: Y;
        scale: the stride of the finest map on the image (Swin's P), even.
    """

    def __init__(self, *, dims: tuple[int, ...], channels: int, num_classes: int, scale: int) -> None:
        super().__init__()
        if scale % 2:
            raise ValueError(f"the head upsamples by 2, then by scale / 2: scale must be even, got {scale}")
        self.lateral = nn.ModuleList([nn.Sequential(nn.Conv2d(d, channels, 1, bias=False), nn.BatchNorm2d(channels))
                                      for d in dims])
        self.fuse = nn.Sequential(nn.ReLU(), conv_bn_relu(channels, channels, 3))
        self.refine = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                    conv_bn_relu(channels, channels, 3))
        self.classify = nn.Conv2d(channels, num_classes, 1)
        self.scale = scale

    def forward(self, maps: list[torch.Tensor]) -> torch.Tensor:
        """maps: (B, C_s, H_s, W_s) per level, finest first -> (B, Y, H_0 P, W_0 P)."""
        size = maps[0].shape[-2:]                                 # (H_0, W_0)
        x = sum(F.interpolate(lateral(m), size=size, mode="bilinear",
                              align_corners=False)
                for lateral, m in zip(self.lateral, maps))        # (B, C', H_0, W_0)
        scores = self.classify(self.refine(self.fuse(x)))         # (B, Y, 2 H_0, 2 W_0)
        return F.interpolate(scores, scale_factor=self.scale // 2, mode="bilinear",
                             align_corners=False)                 # (B, Y, H_0 P, W_0 P)


class SwinSegmenter(nn.Module):
    """Swin's hierarchical maps -> :class:`FPNHead` -> a class score for every pixel.

    Args:
        backbone: the Swin (its classifier head, if any, is not used); num_classes: Y, background
            included (the scenes' masks: 0 = background, 1 + shape id); channels: C' of the head;
        stages: how many of the backbone's maps the head reads, finest first (default all).
    """

    def __init__(self, *, backbone: SwinTransformer, num_classes: int, channels: int = 32,
                 stages: int | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_stages = stages or len(backbone.stages)
        last = len(backbone.stages) - 1
        dims = tuple(backbone.num_features // 2 ** (last - s) for s in range(self.num_stages))   # C, 2C, ...
        self.head = FPNHead(dims=dims, channels=channels, num_classes=num_classes,
                            scale=backbone.patch_embed.patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, Hi, Wi) -> class scores (B, Y, Hi, Wi)."""
        maps = self.backbone.forward_features(images)[: self.num_stages]          # (B, H_s, W_s, C_s) each
        return self.head([rearrange(m, "b h w c -> b c h w") for m in maps])
