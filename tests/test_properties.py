"""attnlab.properties (chapter 8): each experiment's pieces on exact or tiny inputs; of training results only
one is asserted (a tiny Transformer learns associative recall), the rest must run and return numbers of the
right form."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr

from attnlab import properties as P
from attnlab.data import scenes as sc
from attnlab.vit import attention_rollout


def test_recall_task_answer_is_the_value_paired_with_the_query_key():
    g = torch.Generator().manual_seed(0)
    tokens, labels = P.recall_task(200, pairs=6, num_keys=9, num_values=4, generator=g)
    assert tokens.shape == (200, 7, 2) and labels.shape == (200,)
    keys, values = tokens[..., 0], tokens[..., 1]
    assert all(len(set(row[:6].tolist())) == 6 for row in keys)          # distinct keys in every sequence
    assert (values[:, -1] == 4).all() and (values[:, :6] < 4).all()      # the blank only at the query
    match = keys[:, :6] == keys[:, 6:]                                   # (200, 6): exactly one pair matches
    assert (match.sum(-1) == 1).all()
    assert torch.equal(values[:, :6][match], labels)
    distance = 6 - match.float().argmax(-1)
    assert set(distance.tolist()) == set(range(1, 7))                    # random distances, all reached
    tokens, labels = P.recall_task(50, pairs=6, num_keys=9, num_values=4, generator=g, distance=2)
    assert torch.equal(tokens[:, 4, 0], tokens[:, 6, 0]) and torch.equal(tokens[:, 4, 1], labels)
    with pytest.raises(ValueError):
        P.recall_task(2, pairs=6, num_keys=9, num_values=4, generator=g, distance=7)
    with pytest.raises(ValueError):
        P.recall_task(2, pairs=6, num_keys=5, num_values=4, generator=g)


def test_cnn_reach_is_depth_times_kernel_minus_one():
    """The causal CNN's output at the last position depends on exactly the last depth * (K - 1) + 1 pairs."""
    torch.manual_seed(0)
    model = P.RecallModel(kind="cnn", num_keys=4, num_values=4, dim=8, depth=3, kernel=3).eval()
    tokens = torch.zeros(1, 20, 2, dtype=torch.long)
    base = model(tokens)
    reach = 3 * 2
    for position in range(20):
        changed = tokens.clone()
        changed[0, position, 0] = 1
        differs = not torch.allclose(model(changed), base)
        assert differs == (position >= 19 - reach), f"position {position}"


@pytest.mark.parametrize("kind", ["lstm", "cnn", "transformer"])
def test_recall_models_give_logits_and_train(kind):
    g = torch.Generator().manual_seed(0)
    x, y = P.recall_task(64, pairs=5, num_keys=8, num_values=3, generator=g)
    model = P.RecallModel(kind=kind, num_keys=8, num_values=3, dim=8, depth=1, max_len=6)
    assert model(x).shape == (64, 3)
    P.fit_classifier(model, x, y, steps=3, batch_size=32, generator=g)
    acc, loss = P.accuracy_and_loss(model, x, y)
    assert 0 <= acc <= 1 and loss > 0


def test_transformer_learns_recall_by_content_at_every_distance():
    """A tiny Transformer finds the pair by its key wherever it stands (a few seconds of training)."""
    torch.manual_seed(0)
    out = P.long_range_experiment(distances=[1, 5, 10], pairs=10, num_keys=12, num_values=4,
                                  models={"transformer": {"dim": 32, "depth": 1}}, steps=150, batch_size=64,
                                  n_train=4000, n_test=300, generator=torch.Generator().manual_seed(0))
    assert out["distances"] == [1, 5, 10] and out["parameters"]["transformer"] > 0
    assert min(out["accuracy"]["transformer"]) > 0.9                    # chance: 0.25


def test_translation_configs_keep_objects_in_their_half():
    left, right = P.translation_configs(size=32)
    g = torch.Generator().manual_seed(0)
    a, b = sc.make_scenes(40, generator=g, config=left), sc.make_scenes(40, generator=g, config=right)
    # masks: class 0 is background; objects only in their half
    assert (a.masks[:, :, 16:] == 0).all() and (a.masks[:, :, :16] > 0).any()
    assert (b.masks[:, :, :16] == 0).all() and (b.masks[:, :, 16:] > 0).any()


def test_inductive_bias_and_scaling_experiments_return_their_numbers():
    g = torch.Generator().manual_seed(0)
    left, right = P.translation_configs()
    train, seen, unseen = (sc.make_scenes(n, generator=g, config=c) for n, c in ((40, left), (20, left), (20, right)))
    out = P.inductive_bias_experiment(sizes=[20, 40], train_set=train, test_seen=seen, test_unseen=unseen, steps=2,
                                      batch_size=16, generator=g, vit_dim=8)
    for key in ("accuracy", "shifted", "loss"):
        assert all(len(v) == 2 for v in out[key].values())
    runs = {"CNN", "ViT", "CNN + aug.", "ViT + aug."}
    assert set(out["accuracy"]) == runs and set(out["models"]) == runs and set(out["parameters"]) == {"CNN", "ViT"}
    scaling = P.scaling_experiment(dims=[4, 8], images=train.images, labels=train.labels, test_images=seen.images,
                                   test_labels=seen.labels, steps=2, batch_size=16, generator=g, depth=1)
    assert scaling["parameters"][0] < scaling["parameters"][1] and len(scaling["loss"]) == 2
    assert all(0 < n < m for n, m in zip(scaling["non_embedding"], scaling["parameters"]))


def test_non_embedding_parameters_leave_out_patches_positions_and_cls():
    model = P.make_vit(dim=8, depth=1, image_size=16, patch_size=4)      # 16 patches of 4 x 4 x 3
    embedding = (48 * 8 + 8) + 17 * 8 + 8                               # patch projection, positions, CLS
    assert P.non_embedding_parameters(model) == sum(p.numel() for p in model.parameters()) - embedding
    deeper = P.make_vit(dim=8, depth=2, image_size=16, patch_size=4)
    block = sum(p.numel() for p in deeper.blocks[1].parameters())
    assert P.non_embedding_parameters(deeper) - P.non_embedding_parameters(model) == block


def test_standardise_puts_the_background_at_zero():
    images = torch.full((2, 3, 8, 8), 0.4)
    images[1] = 0.3
    images[:, 0, :2, :2] = 0.9                                          # an object, red, 4 of 64 pixels
    out = P.standardise(images, scale=0.5)
    assert torch.allclose(out[:, :, 4:, 4:], torch.zeros(2, 3, 4, 4))
    assert torch.allclose(out[:, 0, :2, :2], torch.tensor([1.0, 1.2])[:, None, None].expand(2, 2, 2))


def test_augment_scenes_shifts_flips_and_jitters_but_keeps_the_object():
    images = torch.zeros(64, 3, 16, 16)
    images[:, 0, 2:6, 3:7] = 1.0                                        # a 4 x 4 red square, background 0
    out = P.augment_scenes(images, torch.Generator().manual_seed(0), shift=2, jitter=0.2)
    assert out.shape == images.shape
    mass = out.abs().sum(1) > 0.5                                       # (64, 16, 16) object pixels
    assert (mass.sum((1, 2)) == 16).all()                               # the square stays whole
    rows, cols = mass.any(2).float().argmax(1), mass.any(1).float().argmax(1)
    assert set(cols.tolist()) == {1, 2, 3, 4, 5}                        # shifted across by -2 ... 2
    assert len(set(rows.tolist())) > 5                                  # down, and upside down (rows 8 ... 12)
    assert (rows >= 8).any() and (rows <= 4).any()
    assert not torch.allclose(out[:, 1].abs().sum((1, 2)), torch.zeros(64))   # some red mixed into green
    plain = P.augment_scenes(images, torch.Generator().manual_seed(1), shift=0, jitter=0.0)
    same, flipped = (plain == images).all((1, 2, 3)), (plain == images.flip(2)).all((1, 2, 3))
    assert (same | flipped).all() and same.any() and flipped.any()       # only flips are left


def test_object_share_baseline_is_the_objects_share_of_the_possible_region():
    on_object = torch.tensor([[True, False, False, False], [False, True, True, False]])
    left = torch.tensor([True, True, False, False])                     # objects may only be in patches 0, 1
    maps = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    out = P.object_share(maps, on_object, left)
    assert torch.allclose(out["share"], torch.tensor([0.5, 0.5]))
    assert torch.allclose(out["baseline"], torch.tensor([1 / 2, 2 / 3]))  # the region grows to hold the object
    assert torch.allclose(out["in_region"], torch.tensor([1.0, 0.3]))
    anywhere = P.object_share(maps, on_object, torch.ones(4, dtype=torch.bool))
    assert torch.allclose(anywhere["baseline"], torch.tensor([1 / 4, 2 / 4]))


def test_fit_power_law_recovers_exact_data():
    x = torch.tensor([1e3, 3e3, 1e4, 3e4, 1e5], dtype=torch.float64)   # float64: exact data, fit to 1e-12
    y = 7.5 * x ** -0.31
    a, alpha = P.fit_power_law(x, y)
    assert a == pytest.approx(7.5, rel=1e-12) and alpha == pytest.approx(0.31, rel=1e-12)
    a, alpha = P.fit_power_law(x, 2.0 * x ** 0.5)                     # growing: alpha < 0
    assert alpha == pytest.approx(-0.5, rel=1e-12) and a == pytest.approx(2.0, rel=1e-12)


def test_fit_power_law_is_least_squares_in_log_space():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(20, generator=g) * 100 + 1
    y = torch.rand(20, generator=g) + 0.1
    a, alpha = P.fit_power_law(x, y)
    A = torch.stack([torch.ones(20, dtype=torch.float64), torch.log(x.double())], 1)
    coef = torch.linalg.lstsq(A, torch.log(y.double())[:, None]).solution.flatten()
    assert math.log(a) == pytest.approx(coef[0].item(), abs=1e-9) and -alpha == pytest.approx(coef[1].item(), abs=1e-9)


def test_rank_correlation_matches_scipy():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(5, 30, generator=g), torch.randn(5, 30, generator=g)
    b[0] = a[0] * 3 + 1                                                 # same order: 1
    b[1] = -a[1]                                                        # reversed: -1
    ours = P.rank_correlation(a, b)
    theirs = torch.tensor([spearmanr(a[i], b[i]).statistic for i in range(5)], dtype=torch.float64)
    assert torch.allclose(ours, theirs, atol=1e-12)
    assert ours[0].item() == pytest.approx(1.0) and ours[1].item() == pytest.approx(-1.0)


def test_pool_to_patches_sums_each_patch():
    maps = torch.zeros(1, 8, 8)
    maps[0, 0, 5] = 2.0                                                  # row 0, column 5: patch (0, 1) of P = 4
    maps[0, 6, 1] = 6.0                                                  # patch (1, 0)
    pooled = P.pool_to_patches(maps, 4)
    assert torch.allclose(pooled, torch.tensor([[0.0, 0.25, 0.75, 0.0]]))


def test_rollout_maps_is_the_cls_row_of_chapter_4s_rollout():
    torch.manual_seed(0)
    model = P.make_vit(dim=8, depth=2, image_size=16, patch_size=4).eval()
    images = torch.rand(3, 3, 16, 16)
    maps = P.rollout_maps(model, images)
    _, weights = model.forward_features(images, need_weights=True)
    row = attention_rollout(weights)[:, 0, 1:]
    assert maps.shape == (3, 16)
    assert torch.allclose(maps, row / row.sum(-1, keepdim=True))
    assert torch.allclose(maps.sum(-1), torch.ones(3))


def test_gradient_saliency_is_zero_where_the_score_does_not_look():
    """A linear 'model' that reads only the top-left 2 x 2 pixels of channel 0 has saliency there only."""
    weight = torch.zeros(2, 3, 4, 4)
    weight[1, 0, :2, :2] = torch.tensor([[1.0, -2.0], [3.0, 0.5]])
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 2, bias=False))
    model[1].weight.data = weight.flatten(1)
    sal = P.gradient_saliency(model, torch.rand(2, 3, 4, 4), torch.tensor([1, 1]))
    expected = torch.zeros(4, 4)
    expected[:2, :2] = torch.tensor([[1.0, 2.0], [3.0, 0.5]])
    assert torch.allclose(sal, expected.expand(2, 4, 4))


def test_randomise_top_changes_only_the_top_stages_and_not_the_original():
    torch.manual_seed(0)
    model = P.make_vit(dim=8, depth=3, image_size=16, patch_size=4).eval()
    with torch.no_grad():
        model.norm.weight.fill_(3.0)                                    # as if trained: not the reset value
    before = {k: v.clone() for k, v in model.state_dict().items()}
    random = P.randomise_top(model, 2, generator=torch.Generator().manual_seed(0))   # head + norm, last block
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"the original's {k} changed"
    changed = {k for k, v in random.state_dict().items() if not torch.equal(v, before[k])}
    assert any(k.startswith("head.") for k in changed) and any(k.startswith("blocks.2.") for k in changed)
    assert not any(k.startswith(("blocks.0.", "blocks.1.", "patch_embed", "pos_embed", "cls_token")) for k in changed)
    assert torch.equal(random.norm.weight, torch.ones(8)) and torch.equal(random.norm.bias, torch.zeros(8))
    assert 0.01 < random.head.weight.std().item() < 0.03                  # N(0, 0.02)
    assert torch.equal(P.randomise_top(model, 0, generator=torch.Generator()).state_dict()["head.weight"],
                       before["head.weight"])


def test_sanity_check_starts_at_one_and_rollout_ignores_the_head():
    torch.manual_seed(0)
    model = P.make_vit(dim=8, depth=2, image_size=16, patch_size=4).eval()
    images = torch.rand(4, 3, 16, 16)
    out = P.sanity_check(model, images, generator=torch.Generator().manual_seed(0))
    assert out["stages"] == [0, 1, 2, 3, 4]
    assert out["rollout"][0] == pytest.approx(1.0) and out["saliency"][0] == pytest.approx(1.0)
    assert out["rollout"][1] == pytest.approx(1.0)        # the head and final norm do not enter the rollout


def test_sanity_check_explains_the_class_each_model_predicts():
    """As in Adebayo et al.'s code: the randomised copy's saliency is for its own predicted class."""
    torch.manual_seed(0)
    model = P.make_vit(dim=8, depth=2, image_size=16, patch_size=4).eval()
    images = torch.rand(8, 3, 16, 16)
    out = P.sanity_check(model, images, generator=torch.Generator().manual_seed(3))
    random = P.randomise_top(model, 1, generator=torch.Generator().manual_seed(3))   # the same draw as k = 1
    with torch.no_grad():
        own, theirs = model(images).argmax(-1), random(images).argmax(-1)
    assert not torch.equal(own, theirs)                   # the premise: the two models predict differently

    def saliency(m, labels):
        return P.pool_to_patches(P.gradient_saliency(m, images, labels), 4)

    expected = P.rank_correlation(saliency(model, own), saliency(random, theirs)).mean().item()
    wrong = P.rank_correlation(saliency(model, own), saliency(random, own)).mean().item()
    assert out["saliency"][1] == pytest.approx(expected, abs=1e-6)
    assert abs(expected - wrong) > 1e-3                   # the class explained changes the answer


def test_attention_memory_global_is_quadratic_windowed_linear():
    out = P.attention_memory([4, 8, 16], dim=16, num_heads=2, window=4)
    assert out["tokens"] == [16, 64, 256]
    assert out["global"][0] == out["windowed"][0]                       # one window is the whole grid
    # the weights (H N^2 floats) dominate: each doubling of the side multiplies them by 16, windows by 4
    g, w = out["global"], out["windowed"]
    assert g[2] / g[1] > 10 and 3.5 < w[2] / w[1] < 4.5
    assert g[2] >= 2 * 256 * 256 * 4                                    # at least the weights of two heads
    with pytest.raises(ValueError):
        P.attention_memory([6], dim=16, num_heads=2, window=4)
