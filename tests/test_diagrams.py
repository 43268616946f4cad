"""Every architecture diagram draws (offline, headless) and shows what it names."""

import importlib
import pkgutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from attnlab import diagrams  # noqa: E402
from attnlab.diagrams import core  # noqa: E402

CHAPTER_MODULES = [m.name for m in pkgutil.iter_modules(diagrams.__path__) if m.name != "core"]
DIAGRAMS = [(mod, name) for mod in CHAPTER_MODULES
            for name in importlib.import_module(f"attnlab.diagrams.{mod}").__all__]


@pytest.mark.parametrize("module,name", DIAGRAMS, ids=[f"{m}.{n}" for m, n in DIAGRAMS])
def test_every_diagram_draws_boxes_and_text(module, name):
    fn = getattr(importlib.import_module(f"attnlab.diagrams.{module}"), name)
    kwargs = {"attention": True} if name == "seq2seq" else {}
    fig = fn(**kwargs)
    ax = fig.axes[0]
    assert len(ax.patches) >= 3, f"{name}: expected boxes and arrows, found {len(ax.patches)} patches"
    assert any(t.get_text().strip() for t in ax.texts), f"{name}: no text"
    plt.close(fig)


def test_boxes_know_their_anchors():
    fig, ax = core.canvas(4, 4)
    b = core.box(ax, (2, 2), "x", w=2, h=1)
    assert b.top == (2, 2.5) and b.bottom == (2, 1.5) and b.left == (1, 2) and b.right == (3, 2)
    g = core.grid(ax, (0, 0), 2, 3, cell=0.5, values=[[0, 0.5, 1], [1, 0.5, 0]])
    assert (g.w, g.h) == (1.5, 1.0)
    assert len(ax.patches) == 1 + 6
    plt.close(fig)


def test_the_multi_head_diagram_takes_the_model_sizes():
    from attnlab.diagrams.attention import multi_head

    fig = multi_head(dim=12, num_heads=3)
    texts = " ".join(t.get_text() for t in fig.axes[0].texts) + fig.axes[0].get_title()
    assert "H = 3" in texts and "Dh = 4" in texts and "head 2" in texts and "head 3" not in texts
    plt.close(fig)


def _texts(fig):
    return [(t.get_text(), t.get_position()) for t in fig.axes[0].texts]


@pytest.mark.parametrize("name", ["add_norm", "encoder_layer"])
def test_post_norm_and_pre_norm_are_drawn_differently(name):
    """Post-norm draws the LayerNorm above (after) its sublayer, pre-norm below (before) it."""
    from attnlab.diagrams import transformer as T

    for norm_first in (False, True):
        fig = getattr(T, name)(norm_first=norm_first)
        texts = _texts(fig)
        norm_y = min(y for s, (_, y) in texts if s == "LayerNorm")
        sub_y = min(y for s, (_, y) in texts if "attention" in s.lower())
        assert (norm_y < sub_y) == norm_first, f"{name}(norm_first={norm_first})"
        assert ("pre-norm" if norm_first else "post-norm") in fig.axes[0].get_title()
        plt.close(fig)


def test_the_transformer_diagrams_take_the_model_sizes():
    from attnlab.diagrams import transformer as T

    fig = T.transformer(num_layers=3, dim=48, num_heads=6, ffn_dim=96, norm_first=True)
    words = " ".join(s for s, _ in _texts(fig)) + fig.axes[0].get_title()
    assert "N = 3" in words and "D = 48" in words and "F = 96" in words and "x 3" in words
    assert "final LayerNorm" in words                            # pre-norm stacks end with one
    plt.close(fig)
    fig = T.transformer(norm_first=False)
    assert "final LayerNorm" not in " ".join(s for s, _ in _texts(fig))
    plt.close(fig)
