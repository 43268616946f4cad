"""attnlab.transfer: freezing the first k blocks, a linear probe on frozen features, fine-tuning
that leaves frozen weights unchanged."""

import pytest
import torch

from attnlab import transfer as T
from attnlab.training import accuracy
from attnlab.vit import ViT


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def encoder():
    torch.manual_seed(0)
    return ViT(image_size=8, patch_size=4, num_classes=0, dim=8, depth=3, num_heads=2)


def test_freeze_first_blocks_counts():
    enc = encoder()
    total = sum(p.numel() for p in enc.parameters())
    per_block = sum(p.numel() for p in enc.blocks[0].parameters())
    stem = sum(p.numel() for p in enc.patch_embed.parameters()) + enc.cls_token.numel() + enc.pos_embed.numel()
    assert T.freeze_first_blocks(enc, 0) == total
    assert T.freeze_first_blocks(enc, 2) == total - stem - 2 * per_block
    assert not any(p.requires_grad for p in enc.blocks[1].parameters()) and not enc.cls_token.requires_grad
    assert all(p.requires_grad for p in enc.blocks[2].parameters()) and enc.norm.weight.requires_grad
    assert T.freeze_first_blocks(enc, 0) == total                          # unfreezes again
    with pytest.raises(ValueError):
        T.freeze_first_blocks(enc, 4)


def test_linear_probe_separates_separable_features():
    g = gen(1)
    centres = torch.randn(3, 5, generator=g) * 4 + 10                        # far from zero: the standardisation matters
    labels = torch.randint(3, (300,), generator=g)
    features = centres[labels] + torch.randn(300, 5, generator=g)
    layer = T.linear_probe(features, labels, num_classes=3)
    assert (layer(features).argmax(1) == labels).float().mean() > 0.95


def test_fine_tune_keeps_frozen_weights_and_changes_the_rest():
    model = T.Classifier(encoder=encoder(), num_classes=2)
    images = torch.rand(16, 3, 8, 8, generator=gen(2))
    labels = torch.randint(2, (16,), generator=gen(3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    T.fine_tune(model, images, labels, steps=3, generator=gen(4), batch_size=8, frozen_blocks=2)
    after = model.state_dict()
    for k in after:
        if k.startswith(("encoder.blocks.0.", "encoder.blocks.1.", "encoder.patch_embed.")) or k in ("encoder.cls_token", "encoder.pos_embed"):
            assert torch.equal(after[k], before[k]), k
    assert not torch.equal(after["head.weight"], before["head.weight"])
    changed = [k for k in after if k.startswith("encoder.blocks.2.") and not torch.equal(after[k], before[k])]
    assert changed
    acc = accuracy(model, images, labels)
    assert 0 <= acc <= 1
    cls = T.Classifier(encoder=encoder(), num_classes=2, pool="cls")
    assert cls(images).shape == (16, 2)
    assert T.encoder_features(cls.encoder, images, pool="cls").shape == (16, 8)
