"""The Vision Transformer (chapter 4, "Vision Transformer"): an image read as a sequence of patches.

Dosovitskiy et al. (2021), "An image is worth 16x16 words", bottom-up as the file reads:

* :func:`patchify` / :func:`unpatchify`: an image (C, Hi, Wi) cut into N = Hi Wi / P^2 patches of
  P x P pixels, each flattened to P * P * C numbers (and back);
* :class:`PatchEmbedding`: the linear projection of every flattened patch to width D, computed as a
  convolution with kernel = stride = P (the same thing: see the tests);
* :func:`sincos_2d_positions`: the fixed 2-D sine-cosine position table that MAE uses, the option
  beside learned position embeddings;
* :class:`ViT`: a CLS token and position embeddings, the pre-norm encoder blocks of chapter 3
  (:class:`attnlab.transformer.EncoderLayer` with ``norm_first=True, activation="gelu"``), a final
  LayerNorm and a linear head on the CLS token.

The encoder blocks are chapter 3's, not a copy: every vision chapter (SETR, MAE, CLIP) reuses this
module's pieces. Simplifications with respect to the paper: no hybrid (CNN-feature) input, no
representation layer before the head, no fine-tuning at higher resolution (no position-embedding
interpolation).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .transformer import EncoderLayer, LayerNorm

__all__ = ["patchify", "unpatchify", "PatchEmbedding", "sincos_2d_positions", "ViT"]


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, Hi, Wi) -> (B, N, P * P * C), patches in row-major order, each flattened as (P, P, C).

    Hi and Wi must be multiples of P; N = (Hi / P) (Wi / P).
    """
    B, C, H, W = images.shape
    if H % patch_size or W % patch_size:
        raise ValueError(f"image size {H} x {W} is not a multiple of the patch size {patch_size}")
    return rearrange(images, "b c (hp p1) (wp p2) -> b (hp wp) (p1 p2 c)", p1=patch_size, p2=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, *, image_size: tuple[int, int] | int,
               channels: int = 3) -> torch.Tensor:
    """(B, N, P * P * C) -> (B, C, Hi, Wi), the inverse of :func:`patchify`."""
    H, W = (image_size, image_size) if isinstance(image_size, int) else image_size
    return rearrange(patches, "b (hp wp) (p1 p2 c) -> b c (hp p1) (wp p2)", hp=H // patch_size,
                     wp=W // patch_size, p1=patch_size, p2=patch_size, c=channels)


class PatchEmbedding(nn.Module):
    """Flattened patches times a (P P C, D) matrix, computed as a Conv2d with kernel = stride = P.

    Args:
        image_size: Hi = Wi; patch_size: P; in_channels: C; dim: D.
    """

    def __init__(self, *, image_size: int, patch_size: int, in_channels: int = 3, dim: int) -> None:
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.grid_size = image_size // patch_size
        self.num_patches = self.grid_size ** 2
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, C, Hi, Wi) -> (B, N, D)."""
        return rearrange(self.proj(images), "b d hp wp -> b (hp wp) d")      # (B, D, Hp, Wp) -> (B, N, D)


def sincos_2d_positions(grid_size: int, dim: int, *, base: float = 10_000.0) -> torch.Tensor:
    """The fixed 2-D sine-cosine position table of MAE: (grid_size ** 2, D), rows in row-major order.

    Half of the width encodes the row, half the column, each with chapter 3's 1-D sinusoids.
    D must be a multiple of 4.
    """
    if dim % 4:
        raise ValueError(f"dim must be a multiple of 4, got {dim}")
    quarter = dim // 4
    omega = 1.0 / base ** (torch.arange(quarter, dtype=torch.float64) / quarter)     # (D/4,)
    pos = torch.arange(grid_size, dtype=torch.float64)
    angles = pos[:, None] * omega[None]                                              # (G, D/4)
    one_axis = torch.cat([angles.sin(), angles.cos()], dim=1)                         # (G, D/2)
    rows = one_axis[:, None, :].expand(grid_size, grid_size, dim // 2)                # row r of every patch
    cols = one_axis[None, :, :].expand(grid_size, grid_size, dim // 2)                # column c of every patch
    return torch.cat([rows, cols], dim=-1).reshape(grid_size ** 2, dim).float()       # (N, D)


class ViT(nn.Module):
    """The Vision Transformer: patches -> tokens (+ CLS, + positions) -> pre-norm blocks -> head.

    Args:
        image_size, patch_size, in_channels: the input (Hi = Wi, P, C).
        num_classes: Y, the width of the head (0: no head, ``forward`` returns the CLS feature).
        dim: D; depth: the number of encoder blocks; num_heads: H; ffn_dim: F (default 4 D).
        dropout: inside the blocks and on the embedded tokens.
        class_token: prepend a learned CLS token and classify from it (else: mean of the patches).
        positions: ``"learned"`` (the paper) or ``"sincos"`` (a fixed 2-D table, as MAE).
    """

    def __init__(self, *, image_size: int, patch_size: int, num_classes: int, dim: int, depth: int,
                 num_heads: int, ffn_dim: int | None = None, in_channels: int = 3, dropout: float = 0.0,
                 class_token: bool = True, positions: str = "learned") -> None:
        super().__init__()
        if positions not in ("learned", "sincos"):
            raise ValueError(f"positions must be 'learned' or 'sincos', got {positions!r}")
        self.patch_embed = PatchEmbedding(image_size=image_size, patch_size=patch_size, in_channels=in_channels,
                                          dim=dim)
        n_tokens = self.patch_embed.num_patches + int(class_token)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if class_token else None
        if positions == "learned":
            self.pos_embed = nn.Parameter(torch.randn(1, n_tokens, dim) * 0.02)
        else:
            table = sincos_2d_positions(self.patch_embed.grid_size, dim)
            table = torch.cat([torch.zeros(1, dim), table]) if class_token else table
            self.register_buffer("pos_embed", table[None], persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([EncoderLayer(dim=dim, num_heads=num_heads, ffn_dim=ffn_dim or 4 * dim,
                                                  dropout=dropout, norm_first=True, activation="gelu")
                                     for _ in range(depth)])
        self.norm = LayerNorm(dim=dim)
        self.head = nn.Linear(dim, num_classes) if num_classes else nn.Identity()

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, Hi, Wi) -> the tokens the encoder reads, (B, T, D) with T = N (+ 1 for CLS)."""
        x = self.patch_embed(images)                                       # (B, N, D)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.size(0), -1, -1), x], dim=1)   # (B, 1 + N, D)
        return self.dropout(x + self.pos_embed)

    def forward_features(self, images: torch.Tensor, *, need_weights: bool = False):
        """All tokens after the blocks and the final norm: (B, T, D); with ``need_weights``,
        ``(tokens, [attention weights (B, H, T, T) of each block])``."""
        x, weights = self.embed(images), []
        for block in self.blocks:
            if need_weights:
                x, w = block(x, need_weights=True)
                weights.append(w)
            else:
                x = block(x)                                               # (B, T, D)
        x = self.norm(x)
        return (x, weights) if need_weights else x

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, Hi, Wi) -> logits (B, Y) from the CLS token (or the mean patch without one)."""
        tokens = self.forward_features(images)                              # (B, T, D)
        feature = tokens[:, 0] if self.cls_token is not None else tokens.mean(dim=1)   # (B, D)
        return self.head(feature)

    @property
    def grid_size(self) -> int:
        return self.patch_embed.grid_size

