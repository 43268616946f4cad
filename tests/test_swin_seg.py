"""attnlab.swin_seg (and the pieces chapter 6 adds to attnlab.swin and attnlab.setr): Swin's convolutional
tokenizer, the FPN head's sum of upsampled levels, the segmenter's shapes, that it learns a fixed batch,
and SETR on a given (pre-trained) ViT with a CLS token."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from attnlab import setr as S
from attnlab import swin as SW
from attnlab.data.scenes import make_scenes, preset
from attnlab.swin_seg import FPNHead, SwinSegmenter
from attnlab.vit import ConvTokenizer, ViT


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _small_swin(**changes):
    torch.manual_seed(0)
    sizes = dict(image_size=32, num_classes=6, tokenizer="conv", dim=8, depths=(2, 1), num_heads=(1, 2),
                 window_size=4)
    return SW.SwinTransformer(**{**sizes, **changes})


def test_swin_conv_tokenizer_gives_the_same_grid_as_the_linear_patches():
    conv, linear = _small_swin(), _small_swin(tokenizer="linear")
    assert isinstance(conv.patch_embed, ConvTokenizer) and conv.patch_embed.patch_size == 4
    images = torch.rand(2, 3, 32, 32, generator=_gen(1))
    with torch.no_grad():
        for model in (conv, linear):
            assert [tuple(m.shape) for m in model.forward_features(images)] == [(2, 8, 8, 8), (2, 4, 4, 16)]
    with pytest.raises(ValueError):
        _small_swin(patch_size=3)
    with pytest.raises(ValueError):
        _small_swin(tokenizer="pixels")


def test_fpn_head_sums_the_upsampled_projections_of_every_level():
    torch.manual_seed(0)
    head = FPNHead(dims=(8, 16), channels=4, num_classes=3, scale=4).eval()
    fine, coarse = torch.randn(2, 8, 8, 8, generator=_gen(2)), torch.randn(2, 16, 4, 4, generator=_gen(3))
    with torch.no_grad():
        scores = head([fine, coarse])
        up = F.interpolate(head.lateral[1](coarse), size=(8, 8), mode="bilinear", align_corners=False)
        refined = head.refine(head.fuse(head.lateral[0](fine) + up))          # (2, 4, 16, 16)
        manual = F.interpolate(head.classify(refined), scale_factor=2, mode="bilinear", align_corners=False)
    assert scores.shape == (2, 3, 32, 32)
    torch.testing.assert_close(scores, manual)
    with pytest.raises(ValueError):
        FPNHead(dims=(8,), channels=4, num_classes=3, scale=3)
    # the coarse level reaches the scores: changing it changes them
    with torch.no_grad():
        assert not torch.allclose(head([fine, coarse + 1.0]), scores)


def test_swin_segmenter_reads_the_backbones_maps_and_scores_every_pixel():
    backbone = _small_swin()
    model = SwinSegmenter(backbone=backbone, num_classes=7, channels=8).eval()
    assert [l[0].in_channels for l in model.head.lateral] == [8, 16]       # C and 2C, finest first
    images = torch.rand(3, 3, 32, 32, generator=_gen(4))
    with torch.no_grad():
        scores = model(images)
        maps = [rearrange(m, "b h w c -> b c h w") for m in backbone.forward_features(images)]
        torch.testing.assert_close(scores, model.head(maps))
    assert scores.shape == (3, 7, 32, 32)
    assert SwinSegmenter(backbone=backbone, num_classes=7, stages=1).head.lateral[0][0].in_channels == 8
    loss = F.cross_entropy(model.train()(images), torch.zeros(3, 32, 32, dtype=torch.long))
    loss.backward()
    used = [*model.head.parameters(), *model.backbone.patch_embed.parameters(), *model.backbone.stages.parameters()]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in used)
    assert model.backbone.head.weight.grad is None                          # the classifier's head is not read


def test_swin_segmenter_learns_a_fixed_batch():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = preset("easy", size=32, num_objects=(1, 2), scale=(0.3, 0.5), shapes=("circle", "square", "triangle"))
        scenes = make_scenes(8, generator=_gen(5), config=config)
        model = SwinSegmenter(backbone=_small_swin(dim=16), num_classes=4, channels=16)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        with torch.no_grad():
            before = S.mean_iou(model.eval()(scenes.images).argmax(1), scenes.masks, num_classes=4)
        model.train()
        for _ in range(60):
            loss = F.cross_entropy(model(scenes.images), scenes.masks)
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            after = S.mean_iou(model.eval()(scenes.images).argmax(1), scenes.masks, num_classes=4)
    finally:
        torch.set_num_threads(threads)
    assert after >= 0.6 and after > before + 0.3, (before, after)


def test_setr_on_a_given_vit_with_a_cls_token_reads_its_patch_tokens():
    torch.manual_seed(0)
    vit = ViT(image_size=32, patch_size=4, num_classes=6, dim=16, depth=2, num_heads=2, tokenizer="conv")
    model = S.SETR(num_classes=7, image_size=32, patch_size=4, head="pup", channels=8, encoder=vit).eval()
    assert model.encoder is vit and model.levels == (2,)
    images = torch.rand(2, 3, 32, 32, generator=_gen(6))
    with torch.no_grad():
        tokens = vit.forward_features(images)                                 # (2, 1 + 64, 16)
        manual = model.decoder(rearrange(tokens[:, 1:], "b (h w) d -> b d h w", h=8))
        torch.testing.assert_close(model(images), manual)
    assert model(images).shape == (2, 7, 32, 32)
    mla = S.SETR(num_classes=7, image_size=32, patch_size=4, head="mla", channels=8, encoder=vit)
    assert [tuple(m.shape) for m in mla.forward_levels(images)] == [(2, 16, 8, 8)] * 2


def test_chapter_6s_swin_recipe_is_chapter_4s_training_for_a_swin_with_its_tokenizer():
    from attnlab import zoo

    for profile in ("smoke", "cpu", "full"):
        swin_config, vit_config = zoo.scenes_swin_config(profile), zoo.scenes_vit_config(profile)
        assert {k: v for k, v in swin_config.items() if k != "model"} == \
               {k: v for k, v in vit_config.items() if k != "model"}
    model = zoo.build_scenes_swin(zoo.scenes_swin_config("cpu"))
    assert isinstance(model.patch_embed, ConvTokenizer) and len(model.stages) == 2
    with torch.no_grad():
        assert model(torch.rand(2, 3, 32, 32, generator=_gen(7))).shape == (2, 6)
    again = zoo.build_scenes_swin(zoo.scenes_swin_config("cpu"))                 # seeded: the same start
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
