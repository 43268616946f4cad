"""The Swin Transformer (chapter 6, "Swin Transformer"): attention inside windows, shifted between blocks.

Liu et al. (2021), "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows".
Feature maps are **channels-last**, (B, Hi, Wi, C), as in torchvision. Bottom-up, as the file reads:

* :func:`window_partition` / :func:`window_reverse`: a feature map cut into nW = (Hi / M)(Wi / M)
  windows of M x M tokens, (B, nW, M * M, C), and put back;
* :func:`cyclic_shift`: ``torch.roll`` of the map by -s rows and columns (s = M / 2), so that the
  shifted windows are again a regular grid; :func:`shifted_window_mask` keeps the pieces that the
  roll brought together apart: a bool mask (nW, M * M, M * M) in the package's convention (True =
  may not be attended to), where the paper's code adds -100 to the scores instead;
* :func:`relative_position_index`: for every pair of tokens of a window, the row of a learned
  ((2M - 1)^2, H) table that holds their bias; :class:`RelativePositionBias` holds the table;
* :func:`window_attention` (the teaching path, with the weights) and
  :func:`fast_window_attention` (PyTorch's fused kernel): attention with an additive bias and the
  mask, through :mod:`attnlab.attention`'s masked softmax and ``-inf`` fill;
* :class:`WindowAttention` (W-MSA, and SW-MSA when given the mask), :class:`SwinBlock` (chapter 3's
  pre-norm :class:`~attnlab.transformer.AddNorm` around window attention and the GELU
  :class:`~attnlab.transformer.FeedForward`), :class:`PatchMerging` (2 x 2 neighbours -> 4C ->
  LayerNorm -> linear -> 2C), :class:`SwinStage` and :class:`SwinTransformer` (ViT's
  :class:`~attnlab.vit.PatchEmbedding` with P = 4, no CLS token, four stages, a pooled head);
* :func:`msa_macs` / :func:`wmsa_macs`: the paper's complexity formulas.

Simplifications with respect to the paper and torchvision: no stochastic depth (drop path) and no
dropout on the attention weights; feature maps must be multiples of the window and patch merging
needs even sizes (no padding). Where a stage's map is no larger than the window, the window shrinks
to the map and is not shifted, as in the paper's code (torchvision pads such a map with zeros that
take part in attention instead; the two agree when the map equals the window, as at 224 x 224).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .attention import masked_fill_scores, masked_softmax, zero_fully_masked_rows
from .transformer import AddNorm, FeedForward, LayerNorm
from .vit import make_tokenizer

__all__ = [
    "window_partition",
    "window_reverse",
    "cyclic_shift",
    "shifted_window_mask",
    "relative_position_index",
    "RelativePositionBias",
    "window_attention",
    "fast_window_attention",
    "WindowAttention",
    "SwinBlock",
    "PatchMerging",
    "SwinStage",
    "SwinTransformer",
    "msa_macs",
    "wmsa_macs",
]


# ---------------------------------------------------------------------------------- windows
def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """Cut a feature map into non-overlapping M x M windows.

    Args:
        x: (B, Hi, Wi, C), channels last; Hi and Wi multiples of M = ``window_size``.

    Returns:
        (B, nW, M * M, C), nW = (Hi / M)(Wi / M): windows in row-major order, the tokens of each
        window in row-major order. Window n holds rows ``M * (n // (Wi / M))`` onwards.
    """
    B, H, W, C = x.shape
    if H % window_size or W % window_size:
        raise ValueError(f"feature map {H} x {W} is not a multiple of the window size {window_size}")
    return rearrange(x, "b (nh m1) (nw m2) c -> b (nh nw) (m1 m2) c", m1=window_size, m2=window_size)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """(B, nW, M * M, C) -> (B, Hi, Wi, C) with Hi = ``height``, Wi = ``width``: the inverse of
    :func:`window_partition`."""
    return rearrange(windows, "b (nh nw) (m1 m2) c -> b (nh m1) (nw m2) c", nh=height // window_size,
                     nw=width // window_size, m1=window_size, m2=window_size)


def cyclic_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Roll a (B, Hi, Wi, C) map ``shift`` rows up and ``shift`` columns left, cyclically: the token
    at (i, j) moves to ((i - s) mod Hi, (j - s) mod Wi). ``cyclic_shift(x, -s)`` undoes it."""
    return torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))


def _regions(n: int, window_size: int, shift: int) -> torch.Tensor:
    """(n,) long: 0 for the rows (or columns) that stay in their window after the roll, 1 for the
    last window's rows that were not rolled round, 2 for the ``shift`` rows that came round."""
    region = torch.zeros(n, dtype=torch.long)
    region[n - window_size:n - shift] = 1
    region[n - shift:] = 2
    return region


def shifted_window_mask(height: int, width: int, window_size: int, shift: int, *,
                        device: torch.device | str | None = None) -> torch.Tensor:
    """The attention mask of SW-MSA, for a (Hi, Wi) map rolled by :func:`cyclic_shift`.

    After the roll, the windows of the last row and column hold pieces of the map that were not
    neighbours (the rows that came round from the top sit under rows from the bottom). Each token
    gets a region id (3 row bands x 3 column bands: where it came from); a token may attend only to
    the tokens of its window that have its id.

    Returns:
        (nW, M * M, M * M) bool, True = may not be attended to (the package's convention). With
        ``shift = 0`` every entry is False. No row is fully masked: a token always sees itself.
    """
    if not 0 <= shift < window_size:
        raise ValueError(f"shift must be in [0, window_size), got {shift} for window size {window_size}")
    ids = _regions(height, window_size, shift)[:, None] * 3 + _regions(width, window_size, shift)[None, :]  # (Hi, Wi)
    ids = window_partition(ids[None, :, :, None], window_size)[0, :, :, 0]      # (nW, M * M) id of each token
    return (ids[:, :, None] != ids[:, None, :]).to(device)                      # (nW, M * M, M * M)


# ------------------------------------------------------------------------ relative positions
def relative_position_index(window_size: int) -> torch.Tensor:
    """Which entry of the ((2M - 1)^2, H) bias table each pair of tokens of a window reads.

    Token i at (y_i, x_i) and token j at (y_j, x_j) (row-major in the window) are
    (dy, dx) = (y_i - y_j, x_i - x_j) apart, each in [-(M - 1), M - 1]: 2M - 1 values per axis,
    so (2M - 1)^2 different offsets. Index = (dy + M - 1) * (2M - 1) + (dx + M - 1).

    Returns:
        (M * M, M * M) long with values in [0, (2M - 1)^2); the same offset gives the same index.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
    coords = coords.flatten(1)                                                  # (2, M * M): row, column
    offsets = coords[:, :, None] - coords[:, None, :] + (window_size - 1)       # (2, N, N), in [0, 2M - 2]
    return offsets[0] * (2 * window_size - 1) + offsets[1]                      # (N, N)


class RelativePositionBias(nn.Module):
    """A learned bias per head for every relative offset inside a window: B = table[index].

    Args:
        window_size: M; num_heads: H. The table ((2M - 1)^2, H) starts at trunc-normal(0.02), as in
        the paper's code; the index (M * M, M * M) is a buffer.
    """

    def __init__(self, *, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        nn.init.trunc_normal_(self.table, std=0.02)
        self.register_buffer("index", relative_position_index(window_size), persistent=False)

    def forward(self) -> torch.Tensor:
        """Returns the bias (H, M * M, M * M) added to the scores of every window."""
        return rearrange(self.table[self.index], "n m h -> h n m")               # (N, N, H) -> (H, N, N)


# ---------------------------------------------------------------------------- window attention
def window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None = None,
                     mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q K^T / sqrt(d_k) + bias) V inside each window, the teaching path.

    Args:
        q, k, v: (B, nW, H, N, Dh), N = M * M tokens per window (any leading dimensions work).
        bias: broadcastable to the scores (B, nW, H, N, N), e.g. the relative position bias (H, N, N).
        mask: bool broadcastable to the scores, e.g. (nW, 1, N, N); True = may not be attended to.

    Returns:
        output (B, nW, H, N, Dh) and weights (B, nW, H, N, N).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))                    # (B, nW, H, N, N)
    if bias is not None:
        scores = scores + bias
    weights = masked_softmax(scores, mask)                                       # masked keys -> 0
    output = weights @ v                                                         # (B, nW, H, N, Dh)
    return output, weights


def fast_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor,
                          mask: torch.Tensor | None = None) -> torch.Tensor:
    """The same output as :func:`window_attention`, through ``F.scaled_dot_product_attention``.

    The bias and the mask become one float ``attn_mask`` (the bias, ``-inf`` where masked). The
    kernel runs on 4-D tensors with the windows and heads as its batch and the images as its
    "heads", so that the (nW, H, N, N) mask is shared by the images of a batch without a copy.

    Args:
        q, k, v: (B, nW, H, N, Dh); bias: (H, N, N); mask: (nW, 1, N, N) bool or None.

    Returns:
        (B, nW, H, N, Dh).
    """
    B, nW, H, N, Dh = q.shape
    attn_mask = masked_fill_scores(bias.to(q.dtype).expand(nW, H, N, N), mask)          # (nW, H, N, N)
    to_kernel = lambda t: rearrange(t, "b w h n d -> (w h) b n d")                         # noqa: E731
    out = F.scaled_dot_product_attention(to_kernel(q), to_kernel(k), to_kernel(v),
                                         attn_mask=attn_mask.reshape(nW * H, 1, N, N))    # (nW H, B, N, Dh)
    out = rearrange(out, "(w h) b n d -> b w h n d", w=nW)                             # (B, nW, H, N, Dh)
    return zero_fully_masked_rows(out, mask)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside each window, with a relative position bias (W-MSA; SW-MSA
    when :class:`SwinBlock` passes the shifted-window mask).

    Args:
        dim: C; num_heads: H (C divisible by H); window_size: M. ``qkv`` projects to queries, keys
        and values at once (C -> 3C), ``out_proj`` is W_O, as in the paper's code.
    """

    def __init__(self, *, dim: int, num_heads: int, window_size: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.window_size = window_size
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.relative_position_bias = RelativePositionBias(window_size=window_size, num_heads=num_heads)

    def forward(self, windows: torch.Tensor, *, mask: torch.Tensor | None = None, need_weights: bool = False):
        """windows: (B, nW, N, C); mask: (nW, N, N) bool (True = may not be attended to) or None.

        Returns (B, nW, N, C); with ``need_weights``, ``(output, weights (B, nW, H, N, N))``.
        """
        qkv = rearrange(self.qkv(windows), "b w n (three h d) -> three b w h n d", three=3, h=self.num_heads)
        q, k, v = qkv.unbind(0)                                                  # each (B, nW, H, N, Dh)
        bias = self.relative_position_bias()                                     # (H, N, N)
        mask = None if mask is None else mask[:, None]                           # (nW, 1, N, N)
        if need_weights:
            out, weights = window_attention(q, k, v, bias, mask)
        else:
            out = fast_window_attention(q, k, v, bias, mask)                     # (B, nW, H, N, Dh)
        out = self.out_proj(rearrange(out, "b w h n d -> b w n (h d)"))          # (B, nW, N, C)
        if not need_weights:
            return out
        return out, weights


# ------------------------------------------------------------------------------------ blocks
class SwinBlock(nn.Module):
    """One Swin Transformer block: (shifted-)window attention, then the FFN, each in pre-norm Add & Norm.

    ``shift = 0`` gives a W-MSA block, ``shift = M // 2`` an SW-MSA block: the map is rolled by
    :func:`cyclic_shift`, attended in windows with the mask of :func:`shifted_window_mask` (a
    buffer), and rolled back.

    Args:
        dim: C; num_heads: H; window_size: M; shift: s; resolution: (Hi, Wi) of the map it reads
        (multiples of M); ffn_dim: F (default 4C); dropout: on each sublayer's output.
    """

    def __init__(self, *, dim: int, num_heads: int, window_size: int, resolution: tuple[int, int], shift: int = 0,
                 ffn_dim: int | None = None, dropout: float = 0.0) -> None:
        super().__init__()
        height, width = resolution
        if height % window_size or width % window_size:
            raise ValueError(f"resolution {resolution} is not a multiple of the window size {window_size}")
        self.window_size, self.shift, self.resolution = window_size, shift, (height, width)
        self.attn = WindowAttention(dim=dim, num_heads=num_heads, window_size=window_size)
        self.attn_block = AddNorm(dim=dim, dropout=dropout, norm_first=True)
        self.ffn = FeedForward(dim=dim, ffn_dim=ffn_dim or 4 * dim, dropout=dropout, activation="gelu")
        self.ffn_block = AddNorm(dim=dim, dropout=dropout, norm_first=True)
        mask = shifted_window_mask(height, width, window_size, shift) if shift else None
        self.register_buffer("mask", mask, persistent=False)                     # (nW, N, N) or None

    def attend(self, x: torch.Tensor, *, need_weights: bool = False):
        """The attention sublayer alone: x (B, Hi, Wi, C) -> (B, Hi, Wi, C) (and the weights)."""
        B, H, W, C = x.shape
        windows = window_partition(cyclic_shift(x, self.shift), self.window_size)   # (B, nW, N, C)
        if need_weights:
            out, weights = self.attn(windows, mask=self.mask, need_weights=True)
        else:
            out = self.attn(windows, mask=self.mask)                               # (B, nW, N, C)
        x = cyclic_shift(window_reverse(out, self.window_size, H, W), -self.shift)  # (B, Hi, Wi, C), rolled back
        if not need_weights:
            return x
        return x, weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, Hi, Wi, C) with (Hi, Wi) = ``resolution``. Returns (B, Hi, Wi, C)."""
        if tuple(x.shape[1:3]) != self.resolution:
            raise ValueError(f"this block was built for a {self.resolution} map, got {tuple(x.shape[1:3])}")
        x = self.attn_block(x, self.attend)                                        # (B, Hi, Wi, C)
        return self.ffn_block(x, self.ffn)                                         # (B, Hi, Wi, C)


class PatchMerging(nn.Module):
    """Halve the resolution and double the width: each 2 x 2 group of tokens becomes one token.

    (B, Hi, Wi, C) -> the four neighbours side by side (B, Hi/2, Wi/2, 4C), in the order
    (2i, 2j), (2i+1, 2j), (2i, 2j+1), (2i+1, 2j+1) of the paper's code -> LayerNorm -> a linear
    map without bias to 2C. Like a stride-2 convolution with a 2 x 2 kernel, after a norm.

    Args:
        dim: C, the input width (the output has 2C).
    """

    def __init__(self, *, dim: int) -> None:
        super().__init__()
        self.norm = LayerNorm(dim=4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, Hi, Wi, C), Hi and Wi even. Returns (B, Hi / 2, Wi / 2, 2C)."""
        if x.shape[1] % 2 or x.shape[2] % 2:
            raise ValueError(f"patch merging needs an even map, got {tuple(x.shape[1:3])}")
        x = rearrange(x, "b (h dy) (w dx) c -> b h w (dx dy c)", dy=2, dx=2)     # (B, Hi/2, Wi/2, 4C)
        return self.reduction(self.norm(x))                                      # (B, Hi/2, Wi/2, 2C)


# ------------------------------------------------------------------------------------ model
class SwinStage(nn.Module):
    """One stage: patch merging (stages 2 and later), then ``depth`` blocks, W-MSA and SW-MSA in turn.

    Where the map (after merging) is no larger than the window, the window shrinks to the map and
    no block is shifted (one window sees everything), as in the paper's code.

    Args:
        dim: C of this stage (the merging reads C / 2); depth: the number of blocks (even in the
        paper); num_heads: H; window_size: M; resolution: (Hi, Wi) of this stage's map;
        merge: start with :class:`PatchMerging`; ffn_ratio: F / C; dropout: as :class:`SwinBlock`.
    """

    def __init__(self, *, dim: int, depth: int, num_heads: int, window_size: int, resolution: tuple[int, int],
                 merge: bool, ffn_ratio: float = 4.0, dropout: float = 0.0) -> None:
        super().__init__()
        self.merge = PatchMerging(dim=dim // 2) if merge else nn.Identity()
        window = min(window_size, *resolution)
        shift = window // 2 if window < min(resolution) else 0
        self.blocks = nn.ModuleList([
            SwinBlock(dim=dim, num_heads=num_heads, window_size=window, resolution=resolution,
                      shift=shift if i % 2 else 0, ffn_dim=int(dim * ffn_ratio), dropout=dropout)
            for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, 2Hi, 2Wi, C / 2) with merging, else (B, Hi, Wi, C). Returns (B, Hi, Wi, C)."""
        x = self.merge(x)
        for block in self.blocks:
            x = block(x)
        return x


class SwinTransformer(nn.Module):
    """Swin: 4 x 4 patches (48 numbers each) -> linear embedding -> stages of blocks with patch
    merging between them -> LayerNorm -> mean over the map -> linear head. No CLS token and no
    absolute position embedding: positions enter through the relative position bias only.

    Args:
        image_size: Hi = Wi; num_classes: Y (0: no head, ``forward`` returns the pooled feature).
        patch_size: P (4); dim: C of stage 1 (96 for Swin-T); depths, num_heads: per stage
        ((2, 2, 6, 2) and (3, 6, 12, 24) for Swin-T); window_size: M (7); ffn_ratio: F / C (4);
        in_channels: 3; dropout: inside the blocks.
        tokenizer: ``"linear"`` (the paper's patch partition and linear embedding) or ``"conv"``
            (chapter 4's :class:`~attnlab.vit.ConvTokenizer`, log2(P) stages of 3 x 3 convolution,
            ReLU and max-pool, for small data: chapter 6, "Swin against ViT on the scenes").
    """

    def __init__(self, *, image_size: int, num_classes: int, patch_size: int = 4, dim: int = 96,
                 depths: tuple[int, ...] = (2, 2, 6, 2), num_heads: tuple[int, ...] = (3, 6, 12, 24),
                 window_size: int = 7, ffn_ratio: float = 4.0, in_channels: int = 3, dropout: float = 0.0,
                 tokenizer: str = "linear") -> None:
        super().__init__()
        if len(depths) != len(num_heads):
            raise ValueError(f"depths {depths} and num_heads {num_heads} must name the same stages")
        self.patch_embed = make_tokenizer(tokenizer, image_size=image_size, patch_size=patch_size,
                                          in_channels=in_channels, dim=dim)
        self.patch_norm = LayerNorm(dim=dim)
        grid = self.patch_embed.grid_size
        self.stages = nn.ModuleList([
            SwinStage(dim=dim * 2 ** i, depth=depth, num_heads=heads, window_size=window_size,
                      resolution=(grid // 2 ** i, grid // 2 ** i), merge=i > 0, ffn_ratio=ffn_ratio, dropout=dropout)
            for i, (depth, heads) in enumerate(zip(depths, num_heads))])
        self.num_features = dim * 2 ** (len(depths) - 1)
        self.norm = LayerNorm(dim=self.num_features)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        """As the paper's code and torchvision: trunc-normal(0.02) matrices, zero biases (the bias
        tables are initialised by :class:`RelativePositionBias`)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch partition and linear embedding: (B, 3, Hi, Wi) -> (B, Hi / P, Wi / P, C), normalised."""
        tokens = self.patch_embed(images)                                        # (B, N, C)
        grid = self.patch_embed.grid_size
        return self.patch_norm(rearrange(tokens, "b (h w) c -> b h w c", h=grid, w=grid))

    def forward_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The hierarchical feature maps: one (B, Hi_s, Wi_s, C_s) per stage, each half the size
        and twice the width of the one before (what a detection or segmentation head reads)."""
        x, maps = self.embed(images), []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, Hi, Wi) -> logits (B, Y) from the mean of the last map's tokens."""
        last = self.norm(self.forward_features(images)[-1])                      # (B, Hi_4, Wi_4, 8C)
        return self.head(last.mean(dim=(1, 2)))                                  # (B, Y)


# ------------------------------------------------------------------------------ complexity
def msa_macs(h: int, w: int, channels: int) -> int:
    """Multiply-adds of global multi-head self-attention over h x w tokens of width C (the paper's
    eq. 1): 4hwC^2 (the Q, K, V and output projections) + 2(hw)^2 C (Q K^T and A V)."""
    n = h * w
    return 4 * n * channels ** 2 + 2 * n * n * channels


def wmsa_macs(h: int, w: int, channels: int, window_size: int) -> int:
    """Multiply-adds of window attention (eq. 2): 4hwC^2 + 2 M^2 hwC: each token meets M^2 keys."""
    n = h * w
    return 4 * n * channels ** 2 + 2 * window_size ** 2 * n * channels
