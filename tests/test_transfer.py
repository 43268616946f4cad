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


def test_block_features_one_per_depth_the_last_as_encoder_features():
    enc = encoder()
    images = torch.rand(5, 3, 8, 8, generator=gen(5))
    feats = T.block_features(enc, images, batch_size=2)
    assert len(feats) == len(enc.blocks) + 1 and all(f.shape == (5, 8) for f in feats)
    torch.testing.assert_close(feats[-1], T.encoder_features(enc, images))
    torch.testing.assert_close(feats[0], enc.embed(images)[:, 1:].mean(1))
    assert not torch.allclose(feats[1], feats[2])


def test_probe_accuracy_reads_separable_features_and_not_noise():
    g = gen(6)
    labels = torch.randint(4, (400,), generator=g)
    signal = torch.nn.functional.one_hot(labels, 4).float() * 3 + torch.randn(400, 4, generator=g)
    noise = torch.randn(400, 4, generator=g)
    assert T.probe_accuracy(signal[:200], labels[:200], signal[200:], labels[200:], num_classes=4) > 0.9
    assert T.probe_accuracy(noise[:200], labels[:200], noise[200:], labels[200:], num_classes=4) < 0.45


def test_pretrained_mae_trains_once_then_loads(tmp_path):
    config = dict(scenes="easy", n_unlabelled=16, data_seed=1, seed=0, steps=2, batch=4, lr=1e-3,
                  model=dict(image_size=32, patch_size=8, dim=8, depth=1, num_heads=2, decoder_dim=8))
    first, record = T.pretrained_mae(config, directory=tmp_path)
    again, record_again = T.pretrained_mae(config, directory=tmp_path)
    assert not record["from_cache"] and record_again["from_cache"] and len(record["fit"]["loss"]) == 2
    for (k, a), b in zip(first.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), k
    vit, colour_record = T.pretrained_colour_vit(dict(config, model=dict(image_size=32, patch_size=8, dim=8, depth=1,
                                                                          num_heads=2)), directory=tmp_path)
    assert vit.head.out_features == 7 and not colour_record["from_cache"]
