"""The Vision Transformer (chapter 4, "Vision Transformer"): an image read as a sequence of patches.

Dosovitskiy et al. (2021), "An image is worth 16x16 words", bottom-up as the file reads:

* :func:`patchify` / :func:`unpatchify`: an image (C, Hi, Wi) cut into N = Hi Wi / P^2 patches of
  P x P pixels, each flattened to P * P * C numbers (and back);
* :func:`embed_patches` and :class:`PatchEmbedding`: the linear projection of every flattened patch
  to width D, written as a matrix product (the teaching path) and computed as a convolution with
  kernel = stride = P (the fast path); :func:`conv_weight_to_linear` turns the convolution's weight
  into the matrix, and the tests prove the two equal;
* :func:`sincos_2d_positions`: the fixed 2-D sine-cosine position table that MAE uses, the option
  beside learned position embeddings;
* :class:`ConvTokenizer`: the option beside the linear patches for small data, a small
  convolutional stem whose output pixels are the tokens (the paper's hybrid; Hassani et al., 2021,
  "Escaping the Big Data Paradigm with Compact Transformers", CCT);
* :class:`ViT`: a CLS token and position embeddings, the pre-norm encoder blocks of chapter 3
  (:class:`attnlab.transformer.EncoderLayer` with ``norm_first=True, activation="gelu"``), a final
  LayerNorm and a linear head on the CLS token (or on the mean of the patch tokens, or on CCT's
  sequence pooling: :meth:`ViT.pool`);
* :func:`torchvision_state_dict` / :func:`package_state_dict` rename the weights of
  ``torchvision.models.VisionTransformer`` into this module's and back; :func:`vit_to_torchvision`
  and :func:`vit_from_torchvision` build the other model with the same weights (the tests prove
  both compute the same function);
* reading a trained ViT: :func:`attention_rollout` (Abnar & Zuidema, 2020) and
  :func:`classifier_rollout` (what the head's feature draws from each input token),
  :func:`mean_attention_distance` (the ViT paper's figure 7), with :func:`patch_distances`.

The encoder blocks are chapter 3's, not a copy: every vision chapter (SETR, MAE, CLIP) reuses this
module's pieces. Simplifications with respect to the paper: the hybrid input is CCT's two-layer
stem, not a ResNet's stages; no representation layer before the head, no fine-tuning at higher resolution (no position-embedding
interpolation). The LayerNorms' epsilon is torch's default, 1e-5, unless ``eps`` says otherwise
(torchvision's ViT, like the paper's code, uses 1e-6; the converters carry it over).
"""

from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .transformer import EncoderLayer, LayerNorm

__all__ = ["patchify", "unpatchify", "conv_weight_to_linear", "embed_patches", "PatchEmbedding",
           "sincos_2d_positions", "ConvTokenizer", "make_tokenizer", "POOLS", "ViT", "torchvision_state_dict",
           "package_state_dict", "vit_to_torchvision", "vit_from_torchvision", "attention_rollout",
           "object_patches", "classifier_rollout", "rollout_on_object", "patch_distances", "mean_attention_distance"]


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


def conv_weight_to_linear(weight: torch.Tensor) -> torch.Tensor:
    """A patch convolution's weight (D, C, P, P) as the (D, P * P * C) matrix of :func:`embed_patches`.

    The convolution multiplies channel c of pixel (i, j) of a patch by ``weight[:, c, i, j]``;
    :func:`patchify` puts that pixel's channel at position (i P + j) C + c of the flattened patch,
    so the columns are reordered (C, P, P) -> (P, P, C) before flattening.
    """
    return rearrange(weight, "d c p1 p2 -> d (p1 p2 c)")


def embed_patches(images: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                  patch_size: int) -> torch.Tensor:
    """The patch embedding as the paper writes it, x_p E: flatten every patch, one matrix product.

    Args:
        images: (B, C, Hi, Wi); weight: (D, P * P * C), the matrix E transposed, columns in
        :func:`patchify`'s order; bias: (D,) or ``None``; patch_size: P.

    Returns:
        (B, N, D), the same numbers as a Conv2d with kernel = stride = P and weight W whenever
        ``weight = conv_weight_to_linear(W)`` (:class:`PatchEmbedding`; the tests prove it).
    """
    return F.linear(patchify(images, patch_size), weight, bias)              # (B, N, PPC) @ (PPC, D) -> (B, N, D)


class PatchEmbedding(nn.Module):
    """Flattened patches times a (P P C, D) matrix, computed as a Conv2d with kernel = stride = P.

    The convolution visits each patch once (stride = kernel) and takes one dot product per output
    channel with all its P x P x C numbers: exactly :func:`embed_patches` with
    ``conv_weight_to_linear(proj.weight)``, in one fused kernel.

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


class ConvTokenizer(nn.Module):
    """Tokens from a small convolutional stem instead of linear patches (CCT; the ViT paper's hybrid).

    Each of ``layers`` stages is a 3 x 3 convolution (padding 1), a ReLU and a 3 x 3 max-pool of
    stride 2 (padding 1), which halves the image's side; the last stage has D channels, and each
    pixel of its output is one token. A token thus sees an overlapping neighbourhood of the image
    (its receptive field is wider than its stride), which the linear patches lack: locality and
    translation equivariance are built in where the data are too few to learn them (Hassani et al.,
    2021). The attributes of :class:`PatchEmbedding` are kept: ``patch_size`` is the stride of a
    token on the image (2 ** layers), ``grid_size`` its side in tokens.

    Args:
        image_size: Hi = Wi (a multiple of 2 ** layers); in_channels: C; dim: D;
        channels: the width of the stages before the last; layers: the number of stages.
    """

    def __init__(self, *, image_size: int, in_channels: int = 3, dim: int, channels: int = 32,
                 layers: int = 2) -> None:
        super().__init__()
        self.patch_size = 2 ** layers
        if image_size % self.patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of 2 ** layers = {self.patch_size}")
        self.grid_size = image_size // self.patch_size
        self.num_patches = self.grid_size ** 2
        widths = [in_channels] + [channels] * (layers - 1) + [dim]
        self.stages = nn.Sequential(*[nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(),
                                                    nn.MaxPool2d(3, stride=2, padding=1))
                                      for c_in, c_out in zip(widths[:-1], widths[1:])])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, C, Hi, Wi) -> (B, N, D)."""
        return rearrange(self.stages(images), "b d hp wp -> b (hp wp) d")    # (B, D, Hp, Wp) -> (B, N, D)


def make_tokenizer(kind: str, *, image_size: int, patch_size: int, in_channels: int = 3,
                   dim: int) -> PatchEmbedding | ConvTokenizer:
    """The image's tokenizer: ``"linear"`` (the paper's patches, :class:`PatchEmbedding`) or ``"conv"``
    (:class:`ConvTokenizer` with log2(P) stages, P a power of 2); both give (B, N, D) with the same
    ``patch_size``, ``grid_size`` and ``num_patches``. The ViT and chapter 6's Swin build theirs here."""
    if kind == "linear":
        return PatchEmbedding(image_size=image_size, patch_size=patch_size, in_channels=in_channels, dim=dim)
    if kind != "conv":
        raise ValueError(f"tokenizer must be 'linear' or 'conv', got {kind!r}")
    layers = patch_size.bit_length() - 1
    if patch_size < 2 or 2 ** layers != patch_size:
        raise ValueError(f"the conv tokenizer's patch_size must be a power of 2, got {patch_size}")
    return ConvTokenizer(image_size=image_size, in_channels=in_channels, dim=dim, layers=layers)


POOLS = ("cls", "mean", "seq")


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
        class_token: prepend a learned CLS token (T = 1 + N).
        pool: how the head's feature is read from the final tokens (:meth:`pool`): ``"cls"`` (the
            paper; needs the CLS token), ``"mean"`` (of the patch tokens) or ``"seq"`` (CCT's
            sequence pooling: a learned softmax weighting of the patch tokens). ``None``: ``"cls"``
            with a CLS token, else ``"mean"``.
        positions: ``"learned"`` (the paper) or ``"sincos"`` (a fixed 2-D table, as MAE).
        tokenizer: ``"linear"`` (the paper's patches, :class:`PatchEmbedding`) or ``"conv"``
            (:class:`ConvTokenizer` with ``image_size / patch_size`` tokens a side).
        eps: the LayerNorms' epsilon (1e-6 in torchvision's ViT and the paper's code).
    """

    def __init__(self, *, image_size: int, patch_size: int, num_classes: int, dim: int, depth: int,
                 num_heads: int, ffn_dim: int | None = None, in_channels: int = 3, dropout: float = 0.0,
                 class_token: bool = True, pool: str | None = None, positions: str = "learned",
                 tokenizer: str = "linear", eps: float = 1e-5) -> None:
        super().__init__()
        if positions not in ("learned", "sincos"):
            raise ValueError(f"positions must be 'learned' or 'sincos', got {positions!r}")
        pool = pool or ("cls" if class_token else "mean")
        if pool not in POOLS or (pool == "cls" and not class_token):
            raise ValueError(f"pool must be one of {POOLS} ('cls' needs class_token=True), got {pool!r}")
        self.patch_embed = make_tokenizer(tokenizer, image_size=image_size, patch_size=patch_size,
                                          in_channels=in_channels, dim=dim)
        self.pool_mode = pool
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
                                                  dropout=dropout, norm_first=True, activation="gelu", eps=eps)
                                     for _ in range(depth)])
        self.norm = LayerNorm(dim=dim, eps=eps)
        self.pool_score = nn.Linear(dim, 1) if pool == "seq" else None        # CCT's sequence pooling
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

    def pool(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's feature from the final tokens (B, T, D): ``(feature (B, D), weights (B, T))``,
        the feature being ``sum_t weights[:, t] tokens[:, t]``: one-hot on the CLS token (``"cls"``),
        even over the patch tokens (``"mean"``), or CCT's sequence pooling (``"seq"``), a softmax
        over the patch tokens of a learned score of each."""
        B, T, _ = tokens.shape
        first = int(self.cls_token is not None)
        weights = tokens.new_zeros(B, T)
        if self.pool_mode == "cls":
            weights[:, 0] = 1.0
            return tokens[:, 0], weights
        if self.pool_mode == "mean":
            weights[:, first:] = 1.0 / (T - first)
        else:
            weights = torch.cat([weights[:, :first], self.pool_score(tokens[:, first:]).squeeze(-1).softmax(-1)],
                                dim=1)                                       # (B, T), zero on the CLS token
        return torch.einsum("bt,btd->bd", weights, tokens), weights

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, Hi, Wi) -> logits (B, Y) from the pooled feature (:meth:`pool`)."""
        tokens = self.forward_features(images)                              # (B, T, D)
        return self.head(self.pool(tokens)[0])                              # (B, D) -> (B, Y)

    @property
    def grid_size(self) -> int:
        return self.patch_embed.grid_size




# ------------------------------------------------------------------ torchvision's weights and back
# (this module's name, torchvision's name) of every weight outside the attention's projections, which
# torchvision stacks into one in_proj (3D, D) and this package keeps apart (q_proj, k_proj, v_proj).
# {i}: a block's number; {w}: weight or bias.
_NAMES = [
    ("cls_token", "class_token"),
    ("patch_embed.proj.{w}", "conv_proj.{w}"),
    ("pos_embed", "encoder.pos_embedding"),
    ("blocks.{i}.attn_block.norm.{w}", "encoder.layers.encoder_layer_{i}.ln_1.{w}"),
    ("blocks.{i}.self_attn.out_proj.{w}", "encoder.layers.encoder_layer_{i}.self_attention.out_proj.{w}"),
    ("blocks.{i}.ffn_block.norm.{w}", "encoder.layers.encoder_layer_{i}.ln_2.{w}"),
    ("blocks.{i}.ffn.linear1.{w}", "encoder.layers.encoder_layer_{i}.mlp.0.{w}"),
    ("blocks.{i}.ffn.linear2.{w}", "encoder.layers.encoder_layer_{i}.mlp.3.{w}"),
    ("norm.{w}", "encoder.ln.{w}"),
    ("head.{w}", "heads.head.{w}"),
]
_OURS_QKV = "blocks.{i}.self_attn.{c}_proj.{w}"
_THEIRS_QKV = "encoder.layers.encoder_layer_{i}.self_attention.in_proj_{w}"


def _pattern(template: str) -> re.Pattern:
    """A name template (``blocks.{i}.ffn.{w}``) as a regular expression with groups i, c and w."""
    groups = {"i": r"(?P<i>\d+)", "c": r"(?P<c>[qkv])", "w": r"(?P<w>weight|bias)"}
    return re.compile(re.sub(r"\\\{(\w)\\\}", lambda m: groups[m[1]], re.escape(template)))


def _rename(state: dict[str, torch.Tensor], pairs: list[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """Each key matching the first template of a pair, renamed to the second; any other key is an error."""
    out = {}
    for key, value in state.items():
        for source, target in pairs:
            match = _pattern(source).fullmatch(key)
            if match:
                out[target.format(**match.groupdict())] = value
                break
        else:
            raise KeyError(f"{key!r} has no counterpart (only the plain ViT is covered: a CLS token, learned "
                           "positions, a linear head; no representation layer, no convolutional stem)")
    return out


def package_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A ``torchvision.models.VisionTransformer`` state dict in the names of :class:`ViT`.

    Each block's ``in_proj_weight`` (3D, D) is cut into the ``q_proj``, ``k_proj`` and ``v_proj``
    weights (D, D) of :class:`attnlab.attention.MultiHeadAttention` (likewise the bias); the MLP's
    ``mlp.0`` and ``mlp.3`` become ``ffn.linear1`` and ``ffn.linear2``; ``ln_1`` and ``ln_2`` the
    norms of the two Add & Norm blocks.
    """
    stacked, theirs_qkv = {}, _pattern(_THEIRS_QKV)
    for key, value in state.items():
        match = theirs_qkv.fullmatch(key)
        if match:                                                            # (3D, ...) -> three (D, ...)
            for c, part in zip("qkv", value.chunk(3)):
                stacked[_OURS_QKV.format(c=c, **match.groupdict())] = part
    rest = {k: v for k, v in state.items() if not theirs_qkv.fullmatch(k)}
    return {**_rename(rest, [(theirs, ours) for ours, theirs in _NAMES]), **stacked}


def torchvision_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The other way: a :class:`ViT` state dict (a CLS token, learned positions, a head) in torchvision's names."""
    stacked, ours_qkv = {}, _pattern(_OURS_QKV)
    for key in state:
        match = ours_qkv.fullmatch(key)
        if match and match["c"] == "q":                                      # k and v join q's entry
            i, w = match["i"], match["w"]
            stacked[_THEIRS_QKV.format(i=i, w=w)] = torch.cat([state[_OURS_QKV.format(i=i, c=c, w=w)] for c in "qkv"])
    rest = {k: v for k, v in state.items() if not ours_qkv.fullmatch(k)}
    return {**_rename(rest, _NAMES), **stacked}


def vit_to_torchvision(vit: ViT):
    """A ``torchvision.models.VisionTransformer`` with the sizes and the weights of ``vit`` (its dtype,
    device and train/eval mode too). ``vit`` must have a CLS token, learned positions and a head."""
    from torchvision.models import VisionTransformer                        # imported when asked for

    block = vit.blocks[0]
    if vit.pool_mode != "cls" or not isinstance(vit.pos_embed, nn.Parameter) or isinstance(vit.head, nn.Identity):
        raise ValueError("torchvision's ViT has a CLS token, learned positions and a head: so must vit")
    ref = VisionTransformer(image_size=vit.grid_size * vit.patch_embed.patch_size, patch_size=vit.patch_embed.patch_size,
                            num_layers=len(vit.blocks), num_heads=block.self_attn.num_heads, hidden_dim=block.self_attn.dim,
                            mlp_dim=block.ffn.linear1.out_features, dropout=block.attn_block.dropout.p,
                            num_classes=vit.head.out_features, norm_layer=lambda d: nn.LayerNorm(d, eps=vit.norm.eps))
    p = next(vit.parameters())
    ref = ref.to(device=p.device, dtype=p.dtype)
    ref.load_state_dict(torchvision_state_dict(vit.state_dict()))
    return ref.train(vit.training)


def vit_from_torchvision(model) -> ViT:
    """A :class:`ViT` with the sizes and the weights of a ``torchvision.models.VisionTransformer``."""
    block = model.encoder.layers[0]
    vit = ViT(image_size=model.image_size, patch_size=model.patch_size, num_classes=model.heads.head.out_features,
              dim=model.hidden_dim, depth=len(model.encoder.layers), num_heads=block.num_heads, ffn_dim=model.mlp_dim,
              dropout=model.dropout, eps=model.encoder.ln.eps)
    p = next(model.parameters())
    vit = vit.to(device=p.device, dtype=p.dtype)
    vit.load_state_dict(package_state_dict(model.state_dict()))
    return vit.train(model.training)


# ----------------------------------------------------------------------- reading a trained ViT
def attention_rollout(weights: Sequence[torch.Tensor], *, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each input token flows into each output token.

    Each layer's attention is averaged over its heads and mixed with the identity, for the residual
    connection around it: A_l = (1 - residual) mean_h W_l + residual I, rows renormalised to sum to
    one. The layers are then chained, first layer on the right: R = A_L ... A_2 A_1.

    Args:
        weights: one (B, H, T, T) tensor per layer, first layer first (``forward_features(...,
            need_weights=True)`` returns them); residual: the identity's share (0.5 in the paper).

    Returns:
        (B, T, T): row t is how token t at the output is made of the input tokens. Row 0 (the CLS
        token), without its own column and reshaped to (Hp, Wp), is the usual rollout map.
    """
    B, _, T, _ = weights[0].shape
    eye = torch.eye(T, dtype=weights[0].dtype, device=weights[0].device)
    rollout = eye.expand(B, T, T)                                            # (B, T, T): no layer yet
    for w in weights:
        a = (1 - residual) * w.mean(dim=1) + residual * eye                  # (B, T, T), heads averaged
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a @ rollout                                                # this layer after the earlier ones
    return rollout


def object_patches(masks: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, Hi, Wi) masks (0 = background) -> (B, N) bool: the patches holding at least one object
    pixel, row-major as the ViT's tokens (chapters 4 and 8 measure the rollout's share on them)."""
    return F.max_pool2d((masks[:, None] > 0).float(), patch_size).flatten(1) > 0


@torch.no_grad()
def classifier_rollout(model: ViT, images: torch.Tensor, *, residual: float = 0.5) -> torch.Tensor:
    """What the head's feature draws from each patch: the pooling weights times the rollout.

    The feature is ``sum_t weights_t x_t`` (:meth:`ViT.pool`) and each final token t is made of the
    input tokens as row t of :func:`attention_rollout`, so the feature is made of them as
    ``weights @ R``: row 0 of R for a CLS token, the average row for mean pooling. The CLS token's
    own column is dropped and each map renormalised to sum to one over the patches.

    Returns:
        (B, N): one map per image over the patches, row-major, summing to one.
    """
    tokens, maps = model.forward_features(images, need_weights=True)
    weights = model.pool(tokens)[1]                                          # (B, T)
    flow = torch.einsum("bt,bts->bs", weights, attention_rollout(maps, residual=residual))   # (B, T)
    flow = flow[:, int(model.cls_token is not None):]                        # (B, N): the patches only
    return flow / flow.sum(dim=-1, keepdim=True)


@torch.no_grad()
def rollout_on_object(model: ViT, images: torch.Tensor, masks: torch.Tensor) -> dict[str, float]:
    """Does the classifier's rollout (:func:`classifier_rollout`) follow the object? (chapter 4)

    Returns:
        ``share``: the mean mass of the maps on the object's patches (:func:`object_patches`);
        ``area``: those patches' mean share of the image, what a map spread evenly would put there;
        ``ratio``: share / area; ``peak``: the fraction of the images whose brightest patch is one
        of the object's (the "pointing game" of saliency studies; a random patch scores ``area``).
    """
    flow = classifier_rollout(model, images)                                 # (B, N)
    on_object = object_patches(masks, model.patch_embed.patch_size).float()  # (B, N)
    share, area = float((flow * on_object).sum(-1).mean()), float(on_object.mean())
    peak = float(on_object.gather(1, flow.argmax(-1, keepdim=True)).mean())
    return dict(share=share, area=area, ratio=share / area, peak=peak)


def patch_distances(grid_size: int, patch_size: int) -> torch.Tensor:
    """(N, N) float32: the distance in pixels between the centres of patches i and j (row-major order)."""
    rows, cols = torch.meshgrid(torch.arange(grid_size), torch.arange(grid_size), indexing="ij")
    centres = torch.stack([rows.flatten(), cols.flatten()], dim=1).float() * patch_size    # (N, 2)
    return torch.cdist(centres, centres)                                     # (N, N)


def mean_attention_distance(weights: Sequence[torch.Tensor], *, grid_size: int, patch_size: int,
                            class_token: bool = True) -> torch.Tensor:
    """The ViT paper's "attention distance" (its figure 7): per layer and head, the mean distance in
    pixels between a patch and the patches it attends to, weighted by the attention.

    For each patch query the weights on the patch keys are renormalised to sum to one (the CLS
    token, which has no place in the image, is left out), the distances are averaged with them, and
    the result is averaged over the queries and the images of the batch.

    Args:
        weights: one (B, H, T, T) tensor per layer; grid_size: Hp = Wp; patch_size: P;
        class_token: whether token 0 is a CLS token (then T = 1 + N).

    Returns:
        (L, H) float: one mean distance per layer and head.
    """
    distances = patch_distances(grid_size, patch_size).to(weights[0].device)               # (N, N)
    first = int(class_token)
    out = []
    for w in weights:
        patches = w[:, :, first:, first:]                                    # (B, H, N, N) patch -> patch
        patches = patches / patches.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        per_query = (patches * distances.to(patches.dtype)).sum(dim=-1)      # (B, H, N)
        out.append(per_query.mean(dim=(0, 2)))                               # (H,)
    return torch.stack(out)                                                  # (L, H)
