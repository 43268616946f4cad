"""attnlab.properties (chapter 8): each experiment's pieces on exact or tiny inputs; no result of training
is asserted beyond "it ran and returned numbers of the right form"."""

from __future__ import annotations

import math

import pytest
import torch
from scipy.stats import spearmanr

from attnlab import properties as P
from attnlab.data import scenes as sc
from attnlab.vit import attention_rollout


def test_distance_task_answer_is_the_token_d_before_the_last():
    tokens, labels = P.distance_task(50, length=10, distance=3, num_classes=5, generator=torch.Generator().manual_seed(0))
    assert tokens.shape == (50, 10) and labels.shape == (50,)
    assert torch.equal(labels, tokens[:, 6])
    assert int(tokens.max()) < 5 and int(tokens.min()) >= 0
    with pytest.raises(ValueError):
        P.distance_task(2, length=10, distance=10, num_classes=5, generator=torch.Generator())


def test_cnn_reach_is_depth_times_kernel_minus_one():
    """The causal CNN's output at the last position depends on exactly the last depth * (K - 1) + 1 tokens."""
    torch.manual_seed(0)
    model = P.DistanceModel(kind="cnn", vocab_size=4, num_classes=4, dim=8, depth=3, kernel=3).eval()
    tokens = torch.zeros(1, 20, dtype=torch.long)
    base = model(tokens)
    reach = 3 * 2
    for position in range(20):
        changed = tokens.clone()
        changed[0, position] = 1
        differs = not torch.allclose(model(changed), base)
        assert differs == (position >= 19 - reach), f"position {position}"


@pytest.mark.parametrize("kind", ["lstm", "cnn", "transformer"])
def test_distance_models_give_logits_and_train(kind):
    g = torch.Generator().manual_seed(0)
    x, y = P.distance_task(64, length=12, distance=1, num_classes=3, generator=g)
    model = P.DistanceModel(kind=kind, vocab_size=3, num_classes=3, dim=8, depth=1, max_len=12)
    assert model(x).shape == (64, 3)
    P.fit_classifier(model, x, y, steps=3, batch_size=32, generator=g)
    acc, loss = P.accuracy_and_loss(model, x, y)
    assert 0 <= acc <= 1 and loss > 0


def test_long_range_experiment_shape():
    out = P.long_range_experiment(distances=[1, 3], length=8, num_classes=3,
                                  models={"cnn": {"dim": 8, "depth": 1}, "transformer": {"dim": 8, "depth": 1}},
                                  steps=2, batch_size=16, n_train=32, n_test=16,
                                  generator=torch.Generator().manual_seed(0))
    assert out["distances"] == [1, 3]
    assert set(out["accuracy"]) == {"cnn", "transformer"} and all(len(v) == 2 for v in out["accuracy"].values())
    assert all(n > 0 for n in out["parameters"].values())


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
        assert set(out[key]) == {"CNN", "ViT"} and all(len(v) == 2 for v in out[key].values())
    assert set(out["models"]) == {"CNN", "ViT"}
    scaling = P.scaling_experiment(dims=[4, 8], images=train.images, labels=train.labels, test_images=seen.images,
                                   test_labels=seen.labels, steps=2, batch_size=16, generator=g, depth=1)
    assert scaling["parameters"][0] < scaling["parameters"][1] and len(scaling["loss"]) == 2


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
