"""attnlab.clip: the symmetric InfoNCE loss against an independent computation, the text tower read
at <EOS> (padding unread), zero-shot weights and logits."""

import math

import pytest
import torch

from attnlab import clip as C
from attnlab.data.tokens import EOS_ID, PAD_ID, SOS_ID


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def reference_infonce(image, text, scale):
    """Written from the definition, in float64, one term at a time."""
    image = image.double() / image.double().norm(dim=1, keepdim=True)
    text = text.double() / text.double().norm(dim=1, keepdim=True)
    s = math.exp(scale) * image @ text.t()
    n = s.shape[0]
    i2t = [-(s[i, i] - torch.logsumexp(s[i, :], 0)) for i in range(n)]
    t2i = [-(s[j, j] - torch.logsumexp(s[:, j], 0)) for j in range(n)]
    return (sum(i2t) / n + sum(t2i) / n) / 2


@pytest.mark.parametrize("seed, scale", [(1, math.log(1 / 0.07)), (2, 0.0), (3, 4.6)])
def test_clip_loss_matches_the_definition(seed, scale):
    g = gen(seed)                                                   # float64: the definition, to rounding
    image = torch.randn(6, 5, generator=g, dtype=torch.float64) * 3
    text = torch.randn(6, 5, generator=g, dtype=torch.float64)
    loss = C.clip_loss(image, text, torch.tensor(scale, dtype=torch.float64))
    assert loss.item() == pytest.approx(reference_infonce(image, text, scale).item(), rel=1e-12)


def test_clip_loss_is_symmetric_and_low_for_matching_pairs():
    g = gen(4)
    image = torch.randn(5, 8, generator=g, dtype=torch.float64)
    text = torch.randn(5, 8, generator=g, dtype=torch.float64)
    scale = torch.tensor(2.0, dtype=torch.float64)                  # float64: equal to rounding, in any order
    assert C.clip_loss(image, text, scale).item() == pytest.approx(C.clip_loss(text, image, scale).item(), rel=1e-12)
    assert C.clip_loss(image, image, torch.tensor(5.0, dtype=torch.float64)).item() < 0.1
    # rows and columns differ: a loss over one direction only is not the same number
    logits = C.contrastive_logits(image, text, scale)
    rows = torch.nn.functional.cross_entropy(logits, torch.arange(5)).item()
    cols = torch.nn.functional.cross_entropy(logits.t(), torch.arange(5)).item()
    assert rows != pytest.approx(cols, rel=1e-3)
    assert C.clip_loss(image, text, scale).item() == pytest.approx((rows + cols) / 2, rel=1e-12)


def test_text_encoder_reads_eos_and_ignores_padding():
    torch.manual_seed(0)
    enc = C.TextEncoder(vocab_size=20, max_len=8, dim=16, num_layers=1, num_heads=2).eval()
    a = torch.tensor([[SOS_ID, 7, 8, EOS_ID]])
    b = torch.tensor([[SOS_ID, 7, 8, EOS_ID, PAD_ID, PAD_ID]])
    with torch.no_grad():
        assert torch.allclose(enc(a), enc(b), atol=1e-5)
        assert enc(torch.tensor([[SOS_ID, 7, 9, EOS_ID]])).sub(enc(a)).abs().max() > 1e-4


def test_model_and_zero_shot():
    torch.manual_seed(0)
    m = C.CLIP(vocab_size=20, max_len=8, image_size=16, patch_size=4, dim=16, depth=1, num_heads=2, text_dim=16,
               text_depth=1, embed_dim=8)
    images = torch.rand(3, 3, 16, 16, generator=gen(5))
    tokens = torch.tensor([[SOS_ID, 7, EOS_ID, PAD_ID], [SOS_ID, 8, 9, EOS_ID], [SOS_ID, 10, EOS_ID, PAD_ID]])
    loss = m(images, tokens)
    loss.backward()
    assert m.logit_scale.grad is not None and m.image_proj.weight.grad.abs().sum() > 0
    with torch.no_grad():
        m.logit_scale.fill_(10.0)                                           # clamped at ln 100 in the loss
        expected = C.clip_loss(m.encode_image(images), m.encode_text(tokens), torch.tensor(math.log(100.0)))
        assert m(images, tokens).item() == pytest.approx(expected.item(), rel=1e-5)
    prompts = torch.randn(4, 3, 8, generator=gen(6))                          # 4 classes, 3 prompts each
    w = C.zero_shot_weights(prompts)
    unit = prompts / prompts.norm(dim=-1, keepdim=True)
    mean = unit.mean(1)
    assert torch.allclose(w, mean / mean.norm(dim=-1, keepdim=True), atol=1e-6)
    feats = torch.randn(5, 8, generator=gen(7))
    logits = C.zero_shot_logits(feats, prompts)
    assert logits.shape == (5, 4) and logits.abs().max() <= 1 + 1e-6
    assert torch.equal(logits.argmax(1), (feats @ w.t()).argmax(1))
