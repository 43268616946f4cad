"""attnlab.vit: patches, the patch embedding as a strided convolution, positions, the ViT's shapes."""

import pytest
import torch

from attnlab.vit import PatchEmbedding, ViT, patchify, sincos_2d_positions, unpatchify


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
    emb = PatchEmbedding(image_size=8, patch_size=4, in_channels=3, dim=5)
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    weight = emb.proj.weight.permute(0, 2, 3, 1).reshape(5, -1)          # (D, P*P*C), patch order (P, P, C)
    linear = patchify(x, 4) @ weight.T + emb.proj.bias                    # (B, N, D)
    torch.testing.assert_close(emb(x), linear, rtol=1e-5, atol=1e-6)


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
