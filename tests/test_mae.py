"""attnlab.mae: random masking per sample (kept count, the unshuffle), the encoder reads only the
visible patches, the loss only the hidden ones (against an independent computation)."""

import pytest
import torch

from attnlab import mae as M
from attnlab.vit import patchify


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_random_masking_keeps_a_quarter_per_sample_and_unshuffles():
    x = torch.randn(4, 16, 3, generator=gen(1))
    visible, mask, ids_restore, ids_keep = M.random_masking(x, 0.75, generator=gen(2))
    assert visible.shape == (4, 4, 3) and mask.shape == (4, 16) and mask.dtype == torch.bool
    assert mask.sum(1).tolist() == [12] * 4
    for b in range(4):
        assert torch.equal(visible[b], x[b, ids_keep[b]])
        assert not mask[b, ids_keep[b]].any()                                 # the kept are the visible ones
    assert len({tuple(r) for r in mask.tolist()}) == 4                        # a different subset per sample
    # ids_restore undoes the shuffle: the visible tokens then placeholders, gathered at ids_restore
    placeholders = torch.full((4, 12, 3), float("nan"))
    restored = torch.gather(torch.cat([visible, placeholders], 1), 1, ids_restore[..., None].expand(-1, -1, 3))
    assert torch.equal(restored[~mask], x[~mask]) and torch.isnan(restored[mask]).all()


def test_random_masking_is_uniform_over_patches():
    x = torch.zeros(4000, 8, 1)
    _, mask, _, _ = M.random_masking(x, 0.5, generator=gen(3))
    assert torch.allclose(mask.float().mean(0), torch.full((8,), 0.5), atol=0.04)


def model(**kw):
    torch.manual_seed(0)
    return M.MAE(image_size=16, patch_size=4, dim=16, depth=2, num_heads=2, decoder_dim=8, decoder_heads=2, **kw).eval()


def test_the_encoder_never_reads_a_hidden_patch():
    m = model()
    images = torch.rand(2, 3, 16, 16, generator=gen(4))
    with torch.no_grad():
        latent, mask, _ = m.forward_encoder(images, generator=gen(5))
        changed = patchify(images, 4)
        changed[mask] = torch.rand(int(mask.sum()), 48, generator=gen(6))
        from attnlab.vit import unpatchify
        latent2, mask2, _ = m.forward_encoder(unpatchify(changed, 4, image_size=16, channels=3), generator=gen(5))
    assert latent.shape == (2, 1 + 4, 16) and torch.equal(mask, mask2)
    assert torch.allclose(latent, latent2, atol=1e-6)


def test_loss_counts_only_hidden_patches_with_normalised_targets():
    m = model()
    images = torch.rand(2, 3, 16, 16, generator=gen(7))
    with torch.no_grad():
        loss, pred, mask = m(images, generator=gen(8))
    target = patchify(images, 4).double()
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    errors = [((pred[b, n].double() - target[b, n]) ** 2).mean() for b in range(2) for n in range(16) if mask[b, n]]
    assert loss.item() == pytest.approx(torch.stack(errors).mean().item(), rel=1e-5)
    pred2 = pred.clone()
    pred2[~mask] += 100.0                                                     # visible patches: no effect
    assert m.forward_loss(images, pred2, mask).item() == pytest.approx(loss.item(), rel=1e-6)
    raw = model(norm_pix_loss=False)
    assert raw.forward_loss(images, pred, mask).item() == pytest.approx(
        ((pred - patchify(images, 4)) ** 2).mean(-1)[mask].mean().item(), rel=1e-5)


def test_decoder_output_and_reconstruction_display():
    m = model()
    images = torch.rand(3, 3, 16, 16, generator=gen(9))
    with torch.no_grad():
        _, pred, mask = m(images, generator=gen(10))
        masked, mixed = M.reconstruct(m, images, pred, mask)
    assert pred.shape == (3, 16, 48) and masked.shape == mixed.shape == images.shape
    visible = ~mask[..., None]
    assert torch.allclose(patchify(mixed, 4) * visible, patchify(images, 4) * visible, atol=1e-6)
    assert torch.allclose(patchify(masked, 4)[mask], torch.full_like(patchify(masked, 4)[mask], 0.5))


def test_mae_trains_a_little():
    m = model()
    m.train()
    images = torch.rand(8, 3, 16, 16, generator=gen(11))
    loss, _, _ = m(images, generator=gen(12))
    loss.backward()
    assert m.mask_token.grad.abs().sum() > 0 and m.encoder.patch_embed.proj.weight.grad.abs().sum() > 0
