"""The non-local block of Wang, Girshick, Gupta and He (2018) (chapter 1, "Non-local neural networks").

A non-local operation computes the response at a position as a weighted sum of the features at
*all* positions:

    y_i = (1 / C(x)) sum_j f(x_i, x_j) g(x_j),        z_i = W_z y_i + x_i.

With the *embedded Gaussian* pairwise function f(x_i, x_j) = exp(theta(x_i)^T phi(x_j)) and
C(x) = sum_j f(x_i, x_j), the weights 1 / C(x) f(x_i, x_j) are a softmax over j, so
y = softmax(theta(x)^T phi(x)) g(x): self-attention (자기 주목) over the Hi * Wi positions of a feature
map, with queries theta, keys phi and values g (all 1 x 1 convolutions) and **no** 1 / sqrt(d)
scale. The *dot-product* form uses f = theta^T phi and C(x) = N, the number of positions.

Shapes: x is (B, C, Hi, Wi); the embeddings have C' = ``inner_channels`` channels (C / 2 in the
paper); N = Hi * Wi positions.

Simplifications with respect to the paper: 2-D feature maps only (the paper also handles
space-time volumes); no max-pooling subsampling of phi and g; no batch normalisation after W_z
(the paper zero-initialises that BN's scale so the block starts as the identity; pass
``zero_init=True`` for the same effect on W_z itself).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["MODES", "nonlocal_attention", "NonLocalBlock"]

MODES = ("embedded_gaussian", "dot_product")


def nonlocal_attention(
    theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor, *, mode: str = "embedded_gaussian"
) -> tuple[torch.Tensor, torch.Tensor]:
    """y_i = (1 / C(x)) sum_j f(x_i, x_j) g(x_j) over all positions of a feature map.

    Args:
        theta, phi: (B, C', Hi, Wi) embeddings of the queries and the keys.
        g: (B, Cv, Hi, Wi) embedded values.
        mode: ``"embedded_gaussian"`` (weights = softmax_j(theta_i . phi_j)) or
            ``"dot_product"`` (weights = theta_i . phi_j / N).

    Returns:
        y: (B, Cv, Hi, Wi), the response at every position.
        weights: (B, N, N), row i = how much position i takes from each position j
            (positions numbered row by row, i = row * Wi + column).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    b, _, h, w = theta.shape
    q = rearrange(theta, "b c h w -> b (h w) c")                  # (B, N, C')
    k = rearrange(phi, "b c h w -> b (h w) c")                    # (B, N, C')
    v = rearrange(g, "b c h w -> b (h w) c")                      # (B, N, Cv)
    scores = q @ k.transpose(1, 2)                                # (B, N, N), no 1/sqrt(d) scale
    if mode == "embedded_gaussian":
        weights = torch.softmax(scores, dim=-1)                   # each row sums to one
    else:
        weights = scores / (h * w)                                # C(x) = N
    y = weights @ v                                               # (B, N, Cv)
    return rearrange(y, "b (h w) c -> b c h w", h=h, w=w), weights  # (B, Cv, Hi, Wi)


class NonLocalBlock(nn.Module):
    """z = W_z y + x with y = nonlocal_attention(theta(x), phi(x), g(x)).

    Args:
        channels: C, the channels of the input (and output) feature map.
        inner_channels: C', the width of theta, phi and g (default C // 2, as in the paper).
        mode: the pairwise function, see :func:`nonlocal_attention`.
        zero_init: start W_z at zero, so that the block starts as the identity.
    """

    def __init__(self, *, channels: int, inner_channels: int | None = None,
                 mode: str = "embedded_gaussian", zero_init: bool = False) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        inner = max(1, channels // 2) if inner_channels is None else inner_channels
        self.mode = mode
        self.theta = nn.Conv2d(channels, inner, kernel_size=1)    # queries
        self.phi = nn.Conv2d(channels, inner, kernel_size=1)      # keys
        self.g = nn.Conv2d(channels, inner, kernel_size=1)        # values
        self.w_z = nn.Conv2d(inner, channels, kernel_size=1)      # back to C channels
        if zero_init:
            nn.init.zeros_(self.w_z.weight)
            nn.init.zeros_(self.w_z.bias)

    def forward(self, x: torch.Tensor, *, need_weights: bool = False):
        """x: (B, C, Hi, Wi) -> z: (B, C, Hi, Wi) (and the (B, N, N) weights if ``need_weights``)."""
        y, weights = nonlocal_attention(self.theta(x), self.phi(x), self.g(x), mode=self.mode)  # (B, C', Hi, Wi)
        z = self.w_z(y) + x                                       # (B, C, Hi, Wi), residual
        return (z, weights) if need_weights else z
