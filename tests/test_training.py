"""attnlab.training: profiles, seeding, the loop, recorded metrics; attnlab.plotting draws what it says."""

import json
import re

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from attnlab import plotting, training  # noqa: E402


@pytest.fixture
def clean_env(monkeypatch):
    for k in ("ATTNLAB_FORCE_PROFILE", "ATTNLAB_PROFILE", "ATTNLAB_METRICS_FILE"):
        monkeypatch.delenv(k, raising=False)
    return monkeypatch


def test_profile_resolution_order(clean_env):
    auto = "full" if torch.cuda.is_available() else "cpu"
    assert training.resolve_profile(None) == auto
    clean_env.setenv("ATTNLAB_PROFILE", "smoke")
    assert training.resolve_profile(None) == "smoke"
    assert training.resolve_profile("cpu") == "cpu"            # the notebook's parameter wins over the variable
    clean_env.setenv("ATTNLAB_FORCE_PROFILE", "smoke")
    assert training.resolve_profile("full") == "smoke"         # the grader's forced profile wins over everything


def test_unknown_profile_is_a_clear_error(clean_env):
    with pytest.raises(ValueError, match="unknown profile 'huge'.*smoke"):
        training.resolve_profile("huge")
    clean_env.setenv("ATTNLAB_PROFILE", "gpu")
    with pytest.raises(ValueError, match="ATTNLAB_PROFILE"):
        training.resolve_profile(None)


def test_by_profile_picks_the_budget():
    assert training.by_profile("cpu", smoke=1, cpu=2, full=3) == 2
    with pytest.raises(ValueError):
        training.by_profile("laptop", smoke=1, cpu=2, full=3)


def test_seed_everything_makes_draws_repeatable():
    g1 = training.seed_everything(123)
    a = torch.rand(3), torch.rand(3, generator=g1)
    g2 = training.seed_everything(123)
    b = torch.rand(3), torch.rand(3, generator=g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_train_reduces_the_loss_of_a_linear_regression(clean_env):
    clean_env.setenv("ATTNLAB_PROGRESS", "off")
    g = torch.Generator().manual_seed(0)
    w_true = torch.randn(4, 1, generator=g)
    x = torch.randn(256, 4, generator=g)
    y = x @ w_true
    model = torch.nn.Linear(4, 1)
    history = training.train(model, lambda: [(x, y)], lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
                             steps=200, lr=0.05, evaluate=lambda m: {"mse": ((m(x) - y) ** 2).mean()}, eval_every=50)
    assert len(history.loss) == 200 and history.eval_step == [50, 100, 150, 200]
    assert history.last("mse") < 0.01 * history.loss[0]
    assert not model.training


def test_train_records_the_loss_of_every_step_although_it_reads_them_in_blocks(clean_env):
    clean_env.setenv("ATTNLAB_PROGRESS", "off")
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(1))
    model = torch.nn.Linear(2, 1)
    seen = []

    def loss_fn(m, batch):
        loss = (m(batch[0]) ** 2).mean()
        seen.append(loss.item())
        return loss

    history = training.train(model, lambda: [(x,)], loss_fn, steps=23, lr=0.01, clip_grad=None)
    assert history.step == list(range(23)) and history.loss == pytest.approx(seen)   # 23: not a multiple of 10


def test_text_progress_prints_one_line_when_a_training_run_ends(clean_env, capsys):
    """The book's style: no bar and no line while training; one line at the end naming the run,
    its steps, its time and its final loss (the loss of the last step, as History recorded it)."""
    clean_env.setenv("ATTNLAB_PROGRESS", "text")
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(2))
    model = torch.nn.Linear(3, 1)
    lines = []

    def loss_fn(m, batch):
        lines.append(capsys.readouterr())                       # what was printed before this step
        return (m(batch[0]) ** 2).mean()

    history = training.train(model, lambda: [(x,)], loss_fn, steps=25, lr=0.01, desc="a linear map")
    out = capsys.readouterr()
    assert all(seen.out == "" and seen.err == "" for seen in lines)  # nothing while it trains
    assert out.err == "" and out.out.count("\n") == 1, out
    match = re.fullmatch(r"a linear map: 25 steps in (\d+\.\d) s, final loss (\d+\.\d{3})\n", out.out)
    assert match, out.out
    assert match.group(2) == f"{history.loss[-1]:.3f}"
    training.train(model, lambda: [(x,)], lambda m, b: (m(b[0]) ** 2).mean(), steps=3)
    assert capsys.readouterr().out.startswith("Linear: 3 steps in ")   # no desc: the model's class


def test_progress_styles(clean_env, capsys):
    clean_env.setenv("ATTNLAB_PROGRESS", "off")
    assert list(training.progress(range(4), desc="x")) == [0, 1, 2, 3]
    assert capsys.readouterr() == ("", "")
    clean_env.setenv("ATTNLAB_PROGRESS", "text")
    loop = training.progress(iter("abc"), desc="letters", unit="letters")
    assert list(loop) == ["a", "b", "c"]
    assert re.fullmatch(r"letters: 3 letters in \d+\.\d s\n", capsys.readouterr().out)
    broken = training.progress(range(5), desc="stopped early")
    for i in broken:
        if i == 2:
            break
    assert capsys.readouterr().out == ""                       # a loop left early claims no total
    clean_env.setenv("ATTNLAB_PROGRESS", "auto")               # the labs' live bar (text outside Jupyter)
    bar = training.progress(range(3), total=3, desc="live")
    assert list(bar) == [0, 1, 2] and hasattr(bar, "set_postfix")
    assert "live: 100%" in capsys.readouterr().err
    clean_env.setenv("ATTNLAB_PROGRESS", "widget")
    with pytest.raises(ValueError, match="unknown ATTNLAB_PROGRESS 'widget'.*'text'"):
        training.progress(range(3))


def test_train_rejects_zero_steps():
    with pytest.raises(ValueError, match="steps"):
        training.train(torch.nn.Linear(1, 1), lambda: [], lambda m, b: None, steps=0)


def test_record_metric_writes_the_report_file(clean_env, tmp_path, capsys):
    path = tmp_path / "m.json"
    clean_env.setenv("ATTNLAB_METRICS_FILE", str(path))
    training.record_metric("accuracy", 0.5)
    training.record_metric("loss", torch.tensor(1.25))
    assert json.loads(path.read_text()) == {"accuracy": 0.5, "loss": 1.25}
    assert "accuracy = 0.5" in capsys.readouterr().out


def test_attention_heatmap_draws_the_weights():
    w = torch.softmax(torch.randn(3, 4), -1)
    ax = plotting.attention_heatmap(w, queries=list("abc"), keys=list("wxyz"), title="t")
    image = ax.images[0].get_array()
    assert image.shape == (3, 4)
    assert torch.allclose(torch.as_tensor(image.data), w, atol=1e-6)
    assert [t.get_text() for t in ax.get_xticklabels()] == list("wxyz")
    assert len(ax.texts) == 12  # each weight written in its cell
    with pytest.raises(ValueError, match="2-D"):
        plotting.attention_heatmap(torch.rand(2, 3, 4))


def test_attention_heads_draws_one_panel_per_head():
    fig = plotting.attention_heads(torch.rand(5, 3, 3), ncols=4, title="heads")
    drawn = [ax for ax in fig.axes if ax.images]
    assert len(drawn) == 5 and fig._suptitle.get_text() == "heads"


def test_learning_curves_draw_the_loss_and_the_metric_under_a_title():
    history = training.History(step=list(range(30)), loss=[1.0 / (1 + s) for s in range(30)],
                               eval_step=[10, 20, 30], eval=[{"accuracy": a} for a in (0.2, 0.5, 0.9)])
    fig = plotting.learning_curves(history, metric="accuracy", title="a title")
    assert fig._suptitle.get_text() == "a title" and len(fig.axes) == 2
    assert list(fig.axes[1].lines[0].get_ydata()) == [0.2, 0.5, 0.9]


def test_use_style_is_explicit():
    matplotlib.rcParams["axes.spines.top"] = True
    plotting.use_style()
    assert matplotlib.rcParams["axes.spines.top"] is False


def test_to_device_moves_every_tensor_of_a_batch():
    from collections import namedtuple
    from dataclasses import dataclass

    Pair = namedtuple("Pair", "x y")

    @dataclass
    class Batch:
        src: torch.Tensor
        n: int

    meta = torch.device("meta")
    moved = training.to_device({"a": [torch.ones(2), (torch.zeros(1), 3)], "p": Pair(torch.ones(1), "s"),
                                "b": Batch(torch.ones(3), 5)}, meta)
    assert moved["a"][0].device == meta and moved["a"][1][0].device == meta and moved["a"][1][1] == 3
    assert isinstance(moved["p"], Pair) and moved["p"].x.device == meta and moved["p"].y == "s"
    assert isinstance(moved["b"], Batch) and moved["b"].src.device == meta and moved["b"].n == 5


def test_train_moves_batches_to_the_models_device(clean_env):
    clean_env.setenv("ATTNLAB_PROGRESS", "off")
    seen = []
    model = torch.nn.Linear(2, 1).to("meta")
    def loss_fn(m, b):
        seen.append(b[0].device)
        return torch.zeros((), requires_grad=True)
    try:
        training.train(model, lambda: [(torch.ones(1, 2), torch.ones(1, 1))], loss_fn, steps=1, clip_grad=None)
    except (NotImplementedError, RuntimeError):
        pass  # the meta device cannot run the optimiser; the batch has been moved by then
    assert seen and seen[0] == torch.device("meta")
