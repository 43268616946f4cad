"""attnlab.vit: patches, the patch embedding as a strided convolution, positions, the ViT's shapes;
equality with torchvision's VisionTransformer (weights converted both ways); attention rollout and
mean attention distance against brute-force references."""

import math

import pytest
import torch
from torch import nn
from torchvision.models import VisionTransformer

from _shared import conv_rounding_bound

from attnlab.vit import (ConvTokenizer, PatchEmbedding, ViT, attention_rollout, classifier_rollout,
                         conv_weight_to_linear, embed_patches,
                         mean_attention_distance, package_state_dict, patch_distances, patchify,
                         sincos_2d_positions, torchvision_state_dict, unpatchify, vit_from_torchvision,
                         vit_to_torchvision)


def test_patchify_cuts_row_major_patches_and_unpatchify_inverts_it():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 12, generator=g)
    p = patchify(x, 4)
    assert p.shape == (2, 6, 48)
    # patch 4 is row 1, column 1: pixels [4:8, 4:8], flattened as (P, P, C)
    torch.testing.assert_close(p[:, 4], x[:, :, 4:8, 4:8].permute(0, 2, 3, 1).reshape(2, 48))
    torch.testing.assert_close(unpatchify(p, 4, image_size=(8, 12)), x)
    with pytest.raises(ValueError, match="multiple"):
        patchify(x, 5)


def test_patch_embedding_is_a_linear_map_of_the_flattened_patches():
    torch.manual_seed(0)
    emb = PatchEmbedding(image_size=8, patch_size=4, in_channels=3, dim=5).double()   # float64: to 1e-12
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    weight = emb.proj.weight.permute(0, 2, 3, 1).reshape(5, -1)          # (D, P*P*C), patch order (P, P, C)
    linear = patchify(x, 4) @ weight.T + emb.proj.bias                    # (B, N, D)
    torch.testing.assert_close(emb(x), linear, rtol=1e-12, atol=1e-12)


def test_sincos_positions_differ_per_patch_and_share_rows_and_columns():
    t = sincos_2d_positions(4, 8)
    assert t.shape == (16, 8)
    assert len({tuple(r) for r in t.round(decimals=5).tolist()}) == 16
    torch.testing.assert_close(t[1, :4], t[2, :4])                        # same row: the row half agrees
    torch.testing.assert_close(t[1, 4:], t[5, 4:])                        # same column: the column half agrees


@pytest.mark.parametrize("class_token,positions", [(True, "learned"), (False, "sincos")])
def test_vit_shapes_and_attention_maps(class_token, positions):
    torch.manual_seed(0)
    vit = ViT(image_size=16, patch_size=4, num_classes=7, dim=32, depth=2, num_heads=4,
              class_token=class_token, positions=positions).eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = 16 + int(class_token)
    assert vit(x).shape == (3, 7)
    tokens, weights = vit.forward_features(x, need_weights=True)
    assert tokens.shape == (3, t, 32) and len(weights) == 2 and weights[0].shape == (3, 4, t, t)
    torch.testing.assert_close(tokens, vit.forward_features(x), rtol=1e-5, atol=1e-5)   # teaching == fused path


def test_vit_is_device_agnostic_on_the_meta_device():
    vit = ViT(image_size=16, patch_size=4, num_classes=5, dim=16, depth=1, num_heads=2).to("meta")
    assert vit(torch.empty(2, 3, 16, 16, device="meta")).shape == (2, 5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_embed_patches_is_the_strided_convolution(dtype):
    """The linear form (patchify, one matrix product) equals the Conv2d with kernel = stride = P."""
    torch.manual_seed(0)
    emb = PatchEmbedding(image_size=12, patch_size=4, in_channels=3, dim=7).to(dtype)
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(2), dtype=dtype)
    linear = embed_patches(x, conv_weight_to_linear(emb.proj.weight), emb.proj.bias, 4)
    # equal within what rounding allows: the bound that any order of summation obeys (tests/_shared.py)
    bound = conv_rounding_bound(x, emb.proj.weight, emb.proj.bias, stride=4).flatten(2).transpose(1, 2)
    assert ((linear - emb(x)).abs() <= bound).all()
    conv = torch.nn.functional.conv2d(x, emb.proj.weight, emb.proj.bias, stride=4).flatten(2).transpose(1, 2)
    assert ((linear - conv).abs() <= bound).all()
    # column (i P + j) C + c of the matrix is channel c of pixel (i, j): read one entry by hand
    assert conv_weight_to_linear(emb.proj.weight)[5, (2 * 4 + 1) * 3 + 2] == emb.proj.weight[5, 2, 2, 1]


# torchvision's layout: (image, patch, layers, heads, width, MLP width); the second is vit_b_16's
# blocks at a 32 x 32 image (4 patches), so that the test stays fast on a CPU.
CONFIGS = {"small": (16, 4, 2, 4, 32, 48),
           "vit_b_16_layout": pytest.param((32, 16, 12, 12, 768, 3072), marks=pytest.mark.slow)}   # ~17 s here (float64)


def _torchvision_vit(image, patch, layers, heads, width, mlp, num_classes=5):
    torch.manual_seed(0)
    model = VisionTransformer(image_size=image, patch_size=patch, num_layers=layers, num_heads=heads,
                              hidden_dim=width, mlp_dim=mlp, num_classes=num_classes).eval()
    with torch.no_grad():                     # torchvision zero-initialises the head: give it weights to check
        model.heads.head.weight.normal_(generator=torch.Generator().manual_seed(1))
        model.heads.head.bias.normal_(generator=torch.Generator().manual_seed(2))
        model.class_token.normal_(generator=torch.Generator().manual_seed(3))
    return model


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_vit_equals_torchvision_with_converted_weights(config):
    image = config[0]
    theirs = _torchvision_vit(*config).double()          # float64: the same function, to 1e-10 even at depth 12
    ours = vit_from_torchvision(theirs)
    assert not ours.training and ours.norm.eps == 1e-6 and ours.blocks[0].attn_block.norm.eps == 1e-6
    x = torch.randn(2, 3, image, image, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with torch.no_grad():
        expected = theirs(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-10, atol=1e-10)
    back = vit_to_torchvision(ours)                                            # and back again
    assert not back.training and back.encoder.ln.eps == 1e-6
    mine, original = back.state_dict(), theirs.state_dict()
    assert mine.keys() == original.keys() and all(torch.equal(mine[k], original[k]) for k in original)


def test_vit_and_its_torchvision_copy_agree_through_both_attention_paths():
    ours = vit_from_torchvision(_torchvision_vit(*CONFIGS["small"]))
    back = vit_to_torchvision(ours)
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        teaching = ours.head(ours.forward_features(x, need_weights=True)[0][:, 0])     # weights kept
        torch.testing.assert_close(teaching, back(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ours(x), back(x), rtol=1e-5, atol=1e-5)              # fused attention


def test_state_dict_converters_are_inverse_and_complete():
    torch.manual_seed(0)
    ours = ViT(image_size=8, patch_size=4, num_classes=3, dim=8, depth=2, num_heads=2)
    state = ours.state_dict()
    theirs = torchvision_state_dict(state)
    assert "encoder.layers.encoder_layer_1.self_attention.in_proj_weight" in theirs
    assert theirs["encoder.layers.encoder_layer_1.self_attention.in_proj_weight"].shape == (24, 8)
    back = package_state_dict(theirs)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    with pytest.raises(KeyError, match="counterpart"):
        package_state_dict({"heads.pre_logits.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="CLS token"):
        vit_to_torchvision(ViT(image_size=8, patch_size=4, num_classes=3, dim=8, depth=1, num_heads=2, class_token=False))


def test_vit_has_the_gradients_of_torchvision():
    """Same weights, same batch, training mode (dropout 0): the same loss and the same gradients
    (in float64, to 1e-10: the same function, not merely a close one)."""
    theirs = _torchvision_vit(*CONFIGS["small"]).double().train()
    ours = vit_from_torchvision(theirs)
    assert ours.training and next(ours.parameters()).dtype == torch.float64
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(4, 3, 16, 16, generator=g, dtype=torch.float64), torch.randint(0, 5, (4,), generator=g)
    for model in (ours, theirs):
        nn.functional.cross_entropy(model(x), y).backward()
    grads = package_state_dict({k: p.grad for k, p in theirs.named_parameters()})
    for key, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, grads[key], rtol=1e-10, atol=1e-10, msg=key)


def _rollout_by_hand(weights, residual=0.5):
    """Per image and layer, in float64 loops: the definition of rollout, written out."""
    B, H, T, _ = weights[0].shape
    out = torch.zeros(B, T, T, dtype=torch.float64)
    for b in range(B):
        r = torch.eye(T, dtype=torch.float64)
        for w in weights:
            a = sum(w[b, h].double() for h in range(H)) / H
            a = (1 - residual) * a + residual * torch.eye(T, dtype=torch.float64)
            a = a / a.sum(1, keepdim=True)
            r = a @ r
        out[b] = r
    return out


def _random_attention(g, layers, B, H, T):
    return [torch.softmax(torch.randn(B, H, T, T, generator=g) * 2, dim=-1) for _ in range(layers)]


def test_attention_rollout_matches_its_definition():
    g = torch.Generator().manual_seed(6)
    weights = _random_attention(g, 3, 2, 4, 5)
    rollout = attention_rollout(weights)
    torch.testing.assert_close(rollout.double(), _rollout_by_hand(weights), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rollout.sum(-1), torch.ones(2, 5))                 # still a mixing matrix
    one = attention_rollout(weights[:1])
    torch.testing.assert_close(one, 0.5 * weights[0].mean(1) + 0.5 * torch.eye(5))  # one layer: the mix itself
    # the order matters: the last layer is applied last (on the left)
    assert not torch.allclose(rollout, attention_rollout(weights[::-1]))
    # with no residual, it is the plain product of the head-averaged attentions
    plain = weights[2].mean(1) @ weights[1].mean(1) @ weights[0].mean(1)
    torch.testing.assert_close(attention_rollout(weights, residual=0.0), plain)


def test_attention_rollout_of_a_trained_shape_finds_the_attended_patch():
    """Attention that always reads patch 3 (besides itself) makes patch 3 the top of the CLS row."""
    T = 1 + 9
    w = torch.full((1, 2, T, T), 0.02)
    w[..., 4] = 1.0                                                        # token 4 = patch 3
    w = w / w.sum(-1, keepdim=True)
    cls_map = attention_rollout([w, w, w])[0, 0, 1:]
    assert int(cls_map.argmax()) == 3


def test_patch_distances_are_euclidean_between_centres():
    d = patch_distances(3, 4)
    assert d.shape == (9, 9) and torch.all(d.diagonal() == 0)
    assert d[0, 1] == 4 and d[0, 3] == 4 and math.isclose(float(d[0, 8]), math.hypot(8, 8), rel_tol=1e-6)


def test_mean_attention_distance_against_brute_force():
    g = torch.Generator().manual_seed(7)
    grid, P, H = 3, 4, 2
    weights = _random_attention(g, 2, 2, H, 1 + grid * grid)
    got = mean_attention_distance(weights, grid_size=grid, patch_size=P)
    assert got.shape == (2, H)
    centres = [(r * P, c * P) for r in range(grid) for c in range(grid)]
    for layer, w in enumerate(weights):
        for h in range(H):
            total = 0.0
            for b in range(2):
                for q in range(9):
                    row = w[b, h, 1 + q, 1:].double()
                    row = row / row.sum()
                    total += sum(float(row[k]) * math.dist(centres[q], centres[k]) for k in range(9))
            assert math.isclose(float(got[layer, h]), total / 18, rel_tol=1e-5)
    # each patch attending to itself only: distance 0; uniform attention: the mean pairwise distance
    local = torch.eye(10).expand(1, 1, 10, 10)
    assert float(mean_attention_distance([local], grid_size=3, patch_size=4)) == 0.0
    uniform = torch.full((1, 1, 9, 9), 1 / 9)
    # two float32 means of the same 81 positive distances, summed in different orders: they agree to
    # 2 gamma_81 = 2 * 81 * 2**-24 ~ 1e-5 (relative), whatever the order (Higham, 3.1)
    assert math.isclose(float(mean_attention_distance([uniform], grid_size=3, patch_size=4, class_token=False)),
                        float(patch_distances(3, 4).mean()), rel_tol=2 * 81 * 2**-24)


def test_eps_reaches_every_layer_norm():
    vit = ViT(image_size=8, patch_size=4, num_classes=2, dim=8, depth=2, num_heads=2, eps=1e-6)
    eps = {m.eps for m in vit.modules() if hasattr(m, "eps")}
    assert eps == {1e-6}


def test_conv_tokenizer_gives_one_token_per_stride_and_sees_beyond_its_patch():
    torch.manual_seed(0)
    tok = ConvTokenizer(image_size=32, dim=8, channels=4, layers=2)
    assert (tok.patch_size, tok.grid_size, tok.num_patches) == (4, 8, 64)
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0), requires_grad=True)
    tok(x)[0, 9].sum().backward()                                        # token (1, 1): pixels 4..7 as a patch
    touched = x.grad[0].abs().sum(0).nonzero()                           # (pixels, 2): rows and columns it reads
    assert touched.min() < 4 and touched.max() > 7                       # its receptive field overlaps neighbours
    with pytest.raises(ValueError, match="multiple"):
        ConvTokenizer(image_size=30, dim=8, layers=2)


@pytest.mark.parametrize("pool,class_token", [("cls", True), ("mean", False), ("seq", False), ("seq", True)])
def test_pool_weights_give_the_feature_the_head_reads(pool, class_token):
    torch.manual_seed(0)
    vit = ViT(image_size=16, patch_size=4, num_classes=3, dim=16, depth=1, num_heads=2, pool=pool,
              class_token=class_token, tokenizer="conv").eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    tokens = vit.forward_features(x)
    feature, weights = vit.pool(tokens)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    torch.testing.assert_close(feature, (weights[..., None] * tokens).sum(1))   # the weighted sum, by hand
    torch.testing.assert_close(vit(x), vit.head(feature))
    if class_token and pool != "cls":
        assert (weights[:, 0] == 0).all()                                # CLS not pooled unless asked
    with pytest.raises(ValueError, match="pool"):
        ViT(image_size=16, patch_size=4, num_classes=3, dim=16, depth=1, num_heads=2, pool="cls", class_token=False)


def test_classifier_rollout_is_the_cls_row_of_the_rollout_or_the_pooled_rows():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    for pool, class_token in (("cls", True), ("mean", False)):
        vit = ViT(image_size=16, patch_size=4, num_classes=3, dim=16, depth=2, num_heads=2, pool=pool,
                  class_token=class_token).eval()
        with torch.no_grad():
            _, maps = vit.forward_features(x, need_weights=True)
        rollout = attention_rollout(maps)
        expected = rollout[:, 0, 1:] if class_token else rollout.mean(dim=1)
        expected = expected / expected.sum(-1, keepdim=True)
        torch.testing.assert_close(classifier_rollout(vit, x), expected)


def test_make_tokenizer_is_the_one_tokenizer_of_vit_and_swin():
    from attnlab import vit as V
    from attnlab.swin import SwinTransformer

    conv = V.make_tokenizer("conv", image_size=32, patch_size=4, dim=8)
    assert isinstance(conv, V.ConvTokenizer) and (conv.patch_size, conv.grid_size, conv.num_patches) == (4, 8, 64)
    assert conv(torch.rand(2, 3, 32, 32)).shape == (2, 64, 8)
    assert isinstance(V.make_tokenizer("linear", image_size=32, patch_size=4, dim=8), V.PatchEmbedding)
    with pytest.raises(ValueError, match="power of 2"):
        V.make_tokenizer("conv", image_size=36, patch_size=3, dim=8)
    with pytest.raises(ValueError, match="'linear' or 'conv'"):
        V.make_tokenizer("patches", image_size=32, patch_size=4, dim=8)
    swin = SwinTransformer(image_size=32, num_classes=2, dim=8, depths=(1,), num_heads=(1,), window_size=4,
                           tokenizer="conv")
    assert isinstance(swin.patch_embed, V.ConvTokenizer)
    with pytest.raises(ValueError, match="power of 2"):
        SwinTransformer(image_size=36, num_classes=2, patch_size=3, dim=8, depths=(1,), num_heads=(1,),
                        window_size=4, tokenizer="conv")


def test_object_patches_are_the_patches_an_object_pixel_falls_in():
    from attnlab import vit as V

    masks = torch.zeros(2, 8, 8, dtype=torch.long)
    masks[0, 0, 0] = 3                       # one pixel in patch 0
    masks[1, 2:6, 2:6] = 1                   # a square over all four 4 x 4 patches
    got = V.object_patches(masks, 4)
    assert got.dtype == torch.bool and got.tolist() == [[True, False, False, False], [True] * 4]
    # the same as the two formulas chapters 4 and 8 used before
    assert torch.equal(got.float(), patchify((masks[:, None] > 0).float(), 4).amax(-1))
    pooled = torch.nn.functional.avg_pool2d((masks > 0).float()[:, None], 4).flatten(1)
    assert torch.equal(got, pooled > 0)


def test_rollout_on_object_measures_the_classifiers_rollout_on_the_objects_patches():
    from attnlab import vit as V

    torch.manual_seed(0)
    vit = ViT(image_size=16, patch_size=4, num_classes=3, dim=16, depth=2, num_heads=2).eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    masks = torch.zeros(3, 16, 16, dtype=torch.long)
    masks[0, :4, :4] = 1                     # patch 0
    masks[1, 4:12, 4:12] = 2                 # patches 5, 6, 9, 10
    masks[2] = 3                             # every patch
    flow = classifier_rollout(vit, x)
    on = V.object_patches(masks, 4).float()
    got = V.rollout_on_object(vit, x, masks)
    assert got["area"] == pytest.approx((1 / 16 + 4 / 16 + 1) / 3)
    assert got["share"] == pytest.approx(float((flow * on).sum(-1).mean()))
    assert got["ratio"] == pytest.approx(got["share"] / got["area"])
    brightest = flow.argmax(-1)
    expected_peak = (float(brightest[0] == 0) + float(int(brightest[1]) in (5, 6, 9, 10)) + 1) / 3
    assert got["peak"] == pytest.approx(expected_peak)
