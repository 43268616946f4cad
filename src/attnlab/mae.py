"""The masked autoencoder (MAE): masked image modelling with a ViT (chapter 7, "MAE").

He et al. (2022), "Masked autoencoders are scalable vision learners". Hide most of an image's
patches, encode only the visible ones, and reconstruct the hidden ones: masked image modelling
(MIM), BERT's idea for pixels. The methods are named after the paper's steps, as in the authors'
code (``models_mae.py``), bottom-up:

* :func:`random_masking`: a different random subset of patches per image, by sorting random
  noise; returns the visible patches, the mask (bool, **True = hidden**, the patches the loss is
  computed on) and the indices that undo the shuffle;
* :class:`MAE`: the encoder *is* a :class:`attnlab.vit.ViT` (its patch embedding, fixed sine-cosine
  positions, CLS token, blocks and final norm: the encoder used for transfer afterwards), run on
  the visible patches only (:meth:`MAE.forward_encoder`); a light decoder puts a shared learned
  mask token at every hidden position, adds its own position embeddings and predicts the pixels
  of every patch (:meth:`MAE.forward_decoder`); :meth:`MAE.forward_loss` is the mean squared
  error on the hidden patches only, against targets normalised per patch (mean 0, variance 1).

Simplifications with respect to the paper: tiny widths and depths; no data augmentation; the
encoder's blocks are chapter 3's (the paper uses timm's, with LayerScale-free pre-norm blocks
that compute the same function up to initialisation).
"""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn

from .transformer import EncoderLayer, LayerNorm
from .vit import ViT, patchify, sincos_2d_positions, unpatchify

__all__ = ["random_masking", "MAE", "normalise_patches", "reconstruct"]


def random_masking(x: torch.Tensor, mask_ratio: float, *, generator: torch.Generator):
    """Per-sample random masking by per-sample shuffling.

    Each row draws N uniform numbers; sorting them gives a random order of its patches, and the
    first ``len_keep = int(N (1 - mask_ratio))`` of that order stay visible.

    Args:
        x: (B, N, D) patch tokens; mask_ratio: the fraction hidden (0.75 in the paper).
        generator: the only source of randomness.

    Returns:
        x_visible: (B, len_keep, D), the kept tokens in shuffled order (``x`` gathered at ids_keep);
        mask: (B, N) bool, True = hidden (removed), in the original patch order;
        ids_restore: (B, N) long, the inverse permutation: gathering the shuffled sequence
            (visible tokens, then mask tokens) at ``ids_restore`` puts every patch back in place;
        ids_keep: (B, len_keep) long, the indices of the visible patches.
    """
    B, N, D = x.shape
    len_keep = int(N * (1 - mask_ratio))
    noise = torch.rand(B, N, generator=generator).to(x.device)        # (B, N) in [0, 1)
    ids_shuffle = torch.argsort(noise, dim=1)                          # small noise: kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)                    # the inverse permutation
    ids_keep = ids_shuffle[:, :len_keep]                               # (B, len_keep)
    x_visible = torch.gather(x, 1, repeat(ids_keep, "b n -> b n d", d=D))   # (B, len_keep, D)
    mask = torch.ones(B, N, dtype=torch.bool, device=x.device)
    mask[:, :len_keep] = False                                         # in shuffled order: kept first
    mask = torch.gather(mask, 1, ids_restore)                          # (B, N) back in patch order
    return x_visible, mask, ids_restore, ids_keep


def normalise_patches(patches: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(..., P P C) -> each patch minus its mean, over sqrt(its unbiased variance + eps) (MAE's
    ``norm_pix_loss`` targets). A flat patch becomes zeros."""
    mean = patches.mean(dim=-1, keepdim=True)
    var = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (var + eps) ** 0.5


class MAE(nn.Module):
    """A masked autoencoder: a ViT encoder on the visible patches, a light Transformer decoder.

    Args:
        image_size, patch_size, in_channels: the input (Hi = Wi, P, C).
        dim, depth, num_heads: the encoder (a :class:`~attnlab.vit.ViT` with sine-cosine positions
            and no head); decoder_dim, decoder_depth, decoder_heads: the decoder.
        mask_ratio: the fraction of patches hidden; norm_pix_loss: normalised targets (the paper's
            better choice) or raw pixels.
    """

    def __init__(self, *, image_size: int, patch_size: int, dim: int, depth: int, num_heads: int,
                 decoder_dim: int = 32, decoder_depth: int = 1, decoder_heads: int = 4, in_channels: int = 3,
                 mask_ratio: float = 0.75, norm_pix_loss: bool = True) -> None:
        super().__init__()
        self.patch_size, self.in_channels = patch_size, in_channels
        self.mask_ratio, self.norm_pix_loss = mask_ratio, norm_pix_loss
        self.encoder = ViT(image_size=image_size, patch_size=patch_size, num_classes=0, dim=dim, depth=depth,
                           num_heads=num_heads, in_channels=in_channels, positions="sincos")
        nn.init.normal_(self.encoder.cls_token, std=0.02)
        grid = self.encoder.grid_size
        self.decoder_embed = nn.Linear(dim, decoder_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, decoder_dim) * 0.02)
        table = torch.cat([torch.zeros(1, decoder_dim), sincos_2d_positions(grid, decoder_dim)])   # (1 + N, Dd)
        self.register_buffer("decoder_pos_embed", table[None], persistent=False)
        self.decoder_blocks = nn.ModuleList([
            EncoderLayer(dim=decoder_dim, num_heads=decoder_heads, ffn_dim=4 * decoder_dim, dropout=0.0,
                         norm_first=True, activation="gelu") for _ in range(decoder_depth)])
        self.decoder_norm = LayerNorm(dim=decoder_dim)
        self.decoder_pred = nn.Linear(decoder_dim, patch_size ** 2 * in_channels)

    def forward_encoder(self, images: torch.Tensor, *, generator: torch.Generator):
        """Encode the visible patches only.

        Returns latent (B, 1 + len_keep, D) (CLS first), mask (B, N) bool (True = hidden) and
        ids_restore (B, N).
        """
        vit = self.encoder
        x = vit.patch_embed(images) + vit.pos_embed[:, 1:]                         # (B, N, D) with positions
        x, mask, ids_restore, _ = random_masking(x, self.mask_ratio, generator=generator)   # (B, len_keep, D)
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(x.size(0), -1, -1)      # (B, 1, D)
        x = torch.cat([cls, x], dim=1)                                              # (B, 1 + len_keep, D)
        for block in vit.blocks:
            x = block(x)
        return vit.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1 + len_keep, D), ids_restore (B, N) -> predicted pixels (B, N, P P C)."""
        x = self.decoder_embed(latent)                                              # (B, 1 + len_keep, Dd)
        B, N = ids_restore.shape
        masks = self.mask_token.expand(B, N + 1 - x.size(1), -1)                    # (B, N - len_keep, Dd)
        shuffled = torch.cat([x[:, 1:], masks], dim=1)                              # (B, N, Dd) visible, then hidden
        x_ = torch.gather(shuffled, 1, repeat(ids_restore, "b n -> b n d", d=x.size(-1)))   # (B, N, Dd) patch order
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed               # (B, 1 + N, Dd)
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]                       # (B, N, P P C), CLS dropped

    def forward_loss(self, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error per patch, averaged over the hidden patches only.

        images (B, C, Hi, Wi); pred (B, N, P P C); mask (B, N) bool, True = hidden.
        """
        target = patchify(images, self.patch_size)                                  # (B, N, P P C)
        if self.norm_pix_loss:
            target = normalise_patches(target)
        per_patch = ((pred - target) ** 2).mean(dim=-1)                             # (B, N)
        return (per_patch * mask).sum() / mask.sum()

    def forward(self, images: torch.Tensor, *, generator: torch.Generator):
        """Returns the loss, the predictions (B, N, P P C) and the mask (B, N) (True = hidden)."""
        latent, mask, ids_restore = self.forward_encoder(images, generator=generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(images, pred, mask), pred, mask


def reconstruct(model: MAE, images: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images for display: the masked input (hidden patches grey) and the reconstruction (visible
    patches as they were, hidden patches as predicted), both (B, C, Hi, Wi) in [0, 1].

    With ``norm_pix_loss`` the predictions are per-patch normalised, so each hidden patch is shown
    with **its own true mean and variance** put back: the shape inside a patch is the model's, its
    average colour and contrast are taken from the image (a display convention, not the model's work).
    """
    P, size = model.patch_size, images.shape[-1]
    target = patchify(images, P)                                                    # (B, N, P P C)
    if model.norm_pix_loss:
        pred = pred * (target.var(-1, keepdim=True) + 1e-6) ** 0.5 + target.mean(-1, keepdim=True)
    hidden = mask[..., None]                                                        # (B, N, 1)
    masked = torch.where(hidden, torch.full_like(target, 0.5), target)
    mixed = torch.where(hidden, pred, target)
    back = lambda t: unpatchify(t, P, image_size=size, channels=model.in_channels).clamp(0, 1)  # noqa: E731
    return back(masked), back(mixed)
