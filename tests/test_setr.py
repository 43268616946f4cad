"""attnlab.setr: the model is chapter 4's ViT (every patch token) with a naive, a progressive-upsampling
or a multi-level aggregation head; mean IoU against hand-computed cases and scikit-learn's jaccard_score."""

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange
from sklearn.metrics import jaccard_score

from attnlab import setr as S
from attnlab.data.scenes import make_scenes, preset
from attnlab.data.tokens import IGNORE_INDEX
from attnlab.vit import ViT


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("head", ["pup", "naive"])
def test_setr_is_the_vit_encoder_and_a_head_back_to_pixels(head):
    torch.manual_seed(0)
    model = S.SETR(num_classes=4, image_size=32, patch_size=8, dim=32, depth=2, num_heads=4, head=head).eval()
    assert isinstance(model.encoder, ViT) and model.encoder.cls_token is None
    assert isinstance(model.encoder.head, torch.nn.Identity)
    images = torch.rand(2, 3, 32, 32, generator=_gen(1))
    with torch.no_grad():
        scores = model(images)
        tokens = model.encoder.forward_features(images)                     # (2, 16, 32): one token per patch
        manual = model.decoder(rearrange(tokens, "b (h w) d -> b d h w", h=4))
    assert scores.shape == (2, 4, 32, 32) and tokens.shape == (2, 16, 32)
    torch.testing.assert_close(scores, manual)


def test_pup_upsamples_in_log2_p_stages_and_naive_in_one_jump():
    grid = torch.randn(2, 16, 4, 4, generator=_gen(2))
    pup = S.PUPHead(dim=16, channels=8, num_classes=3, scale=8).eval()
    assert len(pup.stages) == 3
    sizes, x = [], grid
    for stage in pup.stages:
        x = stage(x)
        sizes.append(x.shape[-1])
    assert sizes == [8, 16, 32] and pup(grid).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="power of 2"):
        S.PUPHead(dim=16, channels=8, num_classes=3, scale=6)
    naive = S.NaiveHead(dim=16, channels=8, num_classes=3, scale=8).eval()
    with torch.no_grad():
        expected = F.interpolate(naive.classify(grid), size=(32, 32), mode="bilinear", align_corners=False)
        torch.testing.assert_close(naive(grid), expected)


def test_mla_reads_evenly_spaced_blocks_ending_with_the_last():
    assert S.mla_levels(24, 4) == (6, 12, 18, 24)                            # the paper's ViT-L
    assert S.mla_levels(2, 2) == (1, 2) and S.mla_levels(6, 3) == (2, 4, 6) and S.mla_levels(5, 1) == (5,)
    with pytest.raises(ValueError, match="levels"):
        S.mla_levels(2, 4)
    with pytest.raises(ValueError, match="MLA head"):
        S.SETR(num_classes=3, image_size=16, patch_size=4, head="pup", num_levels=2)


def test_mla_levels_are_the_blocks_outputs_and_the_scores_full_size():
    torch.manual_seed(0)
    model = S.SETR(num_classes=4, image_size=32, patch_size=8, dim=16, depth=4, num_heads=2, head="mla",
                   channels=8, num_levels=2).eval()
    images = torch.rand(2, 3, 32, 32, generator=_gen(5))
    with torch.no_grad():
        maps = model.forward_levels(images)
        x = model.encoder.embed(images)
        outputs = []
        for block in model.encoder.blocks:                                  # blocks 1 .. 4 by hand
            x = block(x)
            outputs.append(rearrange(x, "b (h w) d -> b d h w", h=4))
        last = rearrange(model.encoder.forward_features(images), "b (h w) d -> b d h w", h=4)
        scores = model(images)
    assert model.levels == (2, 4) and len(maps) == 2 and maps[0].shape == (2, 16, 4, 4)
    torch.testing.assert_close(maps[0], outputs[1])                          # block 2, no final norm
    torch.testing.assert_close(maps[1], last)                                # block 4 after the final norm
    assert scores.shape == (2, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scores, model.decoder(maps))


def test_mla_aggregates_top_down_so_the_deepest_level_reaches_every_stream():
    torch.manual_seed(0)
    head = S.MLAHead(dim=8, channels=6, num_classes=3, scale=4, num_levels=3).eval()
    grids = [torch.randn(2, 8, 4, 4, generator=_gen(10 + m)) for m in range(3)]
    with torch.no_grad():
        merged = head.aggregate(grids)
        projected = [project(g) for project, g in zip(head.project, grids)]
        for m in range(3):                                                   # level m + every deeper level
            torch.testing.assert_close(merged[m], sum(projected[m:]))
        changed = [grids[0], grids[1], grids[2] + 1.0]                       # move the deepest level only
        moved = [(a - b).abs().amax().item() for a, b in zip(head.aggregate(changed), merged)]
        assert min(moved) > 0                                                # it reaches all three streams
        changed = [grids[0] + 1.0, grids[1], grids[2]]                       # move the shallowest level only
        moved = [(a - b).abs().amax().item() for a, b in zip(head.aggregate(changed), merged)]
        assert moved[0] > 0 and moved[1:] == [0.0, 0.0]                      # only its own stream
    with pytest.raises(ValueError, match="3 levels"):
        head(grids[:2])
    with pytest.raises(ValueError, match="even"):
        S.MLAHead(dim=8, channels=5, num_classes=3, scale=4, num_levels=3)


def test_gradients_reach_every_level_mla_reads_and_every_block():
    torch.manual_seed(0)
    model = S.SETR(num_classes=3, image_size=16, patch_size=4, dim=16, depth=3, num_heads=2, head="mla",
                   channels=8, num_levels=3)
    images = torch.rand(2, 3, 16, 16, generator=_gen(6))
    maps = [m.detach().requires_grad_() for m in model.forward_levels(images)]
    scores = model.decoder(maps)
    assert scores.shape == (2, 3, 16, 16)
    scores.square().sum().backward()
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in maps)   # every level feeds the output
    model.zero_grad()
    F.cross_entropy(model(images), torch.randint(0, 3, (2, 16, 16), generator=_gen(7))).backward()
    for number, block in enumerate(model.encoder.blocks, start=1):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters()), number
    # each level's projection learns from the loss (not only the last level's)
    assert all(p.grad.abs().sum() > 0 for project in model.decoder.project for p in project.parameters())


def test_class_iou_of_hand_made_maps():
    target = torch.tensor([[0, 0, 1, 1],
                           [0, 0, 1, 1],
                           [2, 2, 2, 2]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [0, 0, 1, 1],
                         [2, 2, 0, 2]])
    # class 0: 3 common pixels, 4 true + 4 predicted -> 3 / 5; class 1: 4 / 5; class 2: 3 / 4; class 3: absent
    iou = S.class_iou(pred, target, num_classes=4)
    torch.testing.assert_close(iou[:3], torch.tensor([3 / 5, 4 / 5, 3 / 4], dtype=torch.float64))
    assert math.isnan(iou[3])
    assert S.mean_iou(pred, target, num_classes=4) == pytest.approx((3 / 5 + 4 / 5 + 3 / 4) / 3)
    # a class only predicted counts (IoU 0); an ignored pixel counts for nothing
    assert S.class_iou(torch.tensor([3]), torch.tensor([1]), num_classes=4)[3] == 0
    ignored = target.clone()
    ignored[0, 1] = IGNORE_INDEX                                             # the one wrong pixel of class 0
    assert S.class_iou(pred, ignored, num_classes=4)[0] == pytest.approx(3 / 4)
    assert S.mean_iou(target, target, num_classes=4) == 1.0


def test_class_iou_equals_scikit_learn_over_a_set_of_images():
    g = _gen(3)
    target = torch.randint(0, 5, (6, 16, 16), generator=g)
    pred = torch.where(torch.rand(6, 16, 16, generator=g) < 0.7, target, torch.randint(0, 5, (6, 16, 16), generator=g))
    reference = jaccard_score(target.flatten().numpy(), pred.flatten().numpy(), labels=list(range(5)), average=None)
    torch.testing.assert_close(S.class_iou(pred, target, num_classes=5), torch.tensor(reference))
    assert S.mean_iou(pred, target, num_classes=5) == pytest.approx(
        jaccard_score(target.flatten().numpy(), pred.flatten().numpy(), average="macro"))
    per_image = sum(S.mean_iou(pred[i], target[i], num_classes=5) for i in range(6)) / 6
    assert per_image != pytest.approx(S.mean_iou(pred, target, num_classes=5), abs=1e-6)   # pooled, not averaged


@pytest.mark.parametrize("head, steps", [("pup", 30), ("mla", 60)])     # MLA's four batch norms per level settle slower
def test_setr_learns_a_fixed_batch(head, steps):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)                                                 # tiny model: one thread is fastest
    try:
        torch.manual_seed(0)
        config = preset("easy", size=32, num_objects=(1, 2), scale=(0.3, 0.5), shapes=("circle", "square", "triangle"))
        scenes = make_scenes(8, generator=_gen(4), config=config)
        model = S.SETR(num_classes=4, image_size=32, patch_size=4, dim=32, depth=1, num_heads=4, channels=16,
                       head=head)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
        before = S.mean_iou(model(scenes.images).argmax(1), scenes.masks, num_classes=4)
        for _ in range(steps):
            loss = F.cross_entropy(model(scenes.images), scenes.masks)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        after = S.mean_iou(model(scenes.images).argmax(1), scenes.masks, num_classes=4)
    finally:
        torch.set_num_threads(threads)
    assert after > before + 0.2, (before, after)
