"""attnlab.tiny.TinyAttentionModel: shapes, causality, the pluggable attention, and that it learns."""

import torch
import torch.nn.functional as F

from attnlab.attention import MultiHeadAttention
from attnlab.data.sequences import previous_token_batch
from attnlab.data.tokens import IGNORE_INDEX
from attnlab.tiny import TinyAttentionModel


def _model(**kw):
    torch.manual_seed(0)
    return TinyAttentionModel(vocab_size=10, max_len=8, dim=16, num_heads=2, **kw).eval()


def test_shapes_and_weights_only_when_asked():
    model = _model().double()                                          # float64: the two paths agree to 1e-12
    tokens = torch.randint(10, (3, 6), generator=torch.Generator().manual_seed(0))
    logits = model(tokens)
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 6, 10) and logits.dtype == torch.float64
    logits2, w = model(tokens, need_weights=True)
    torch.testing.assert_close(logits2, logits, rtol=1e-12, atol=1e-12)  # teaching path == fast path
    assert w.shape == (3, 2, 6, 6)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 6, dtype=torch.float64))


def test_it_is_causal():
    """Changing a later token never changes an earlier prediction."""
    model = _model()
    tokens = torch.randint(10, (2, 8), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 10
    torch.testing.assert_close(model(changed)[:, :5], model(tokens)[:, :5])
    assert not torch.allclose(model(changed)[:, 5:], model(tokens)[:, 5:])


def test_the_attention_layer_is_pluggable():
    layer = MultiHeadAttention(dim=16, num_heads=4)
    model = TinyAttentionModel(vocab_size=10, max_len=8, dim=16, attention=layer)
    assert model.attention is layer
    _, w = model(torch.zeros(1, 8, dtype=torch.long), need_weights=True)
    assert w.shape == (1, 4, 8, 8)


def test_it_learns_the_previous_token_task():
    torch.manual_seed(0)
    model = TinyAttentionModel(vocab_size=8, max_len=10, dim=32, num_heads=2)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(150):
        tokens, targets = previous_token_batch(64, 10, 8, generator=g)
        loss = F.cross_entropy(model(tokens).flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX)
        opt.zero_grad()
        loss.backward()
        opt.step()
    tokens, targets = previous_token_batch(256, 10, 8, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        keep = targets != IGNORE_INDEX
        accuracy = (model(tokens).argmax(-1)[keep] == targets[keep]).float().mean()
    assert accuracy > 0.9, f"accuracy {accuracy:.3f} after 150 steps"
