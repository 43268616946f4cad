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
