"""attnlab.feature_selection against scikit-learn (f_classif, SelectKBest, NearestCentroid) and brute force."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.feature_selection import SelectKBest, f_classif
from sklearn.neighbors import NearestCentroid

from attnlab import feature_selection as FS


def _blobs(n=120, features=9, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = torch.randn(n, features, generator=g, dtype=torch.float64)
    x[:, :3] += y[:, None].double() * torch.tensor([2.0, 0.7, 0.2], dtype=torch.float64)  # features 0-2 informative
    return x, y


def test_anova_f_scores_match_sklearn_on_random_data():
    x, y = _blobs()
    expected, _ = f_classif(x.numpy(), y.numpy())
    np.testing.assert_allclose(FS.anova_f_scores(x, y).numpy(), expected, rtol=1e-10)


def test_anova_f_scores_match_sklearn_on_digits_with_constant_pixels_scored_zero():
    x, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, _ = f_classif(x, y)
    scores = FS.anova_f_scores(torch.tensor(x), torch.tensor(y))
    constant = x.std(0) == 0
    assert constant.sum() >= 1
    assert torch.equal(scores[torch.tensor(constant)], torch.zeros(int(constant.sum()), dtype=torch.float64))
    np.testing.assert_allclose(scores.numpy()[~constant], expected[~constant], rtol=1e-9)
    assert not torch.isnan(scores).any()


@pytest.mark.parametrize("k", [1, 3, 5, 9])
def test_select_k_best_matches_sklearn_selectkbest(k):
    x, y = _blobs(seed=k)
    support = SelectKBest(f_classif, k=k).fit(x.numpy(), y.numpy()).get_support()
    sel = FS.select_k_best(FS.anova_f_scores(x, y), k)
    assert sel.dtype == torch.float32 and sel.shape == (9,)
    assert np.array_equal(sel.numpy() == 1.0, support)
    assert set(sel.unique().tolist()) <= {0.0, 1.0} and int(sel.sum()) == k


def test_select_k_best_edges_and_ties():
    scores = torch.tensor([1.0, 5.0, 5.0, 0.0, 5.0])
    assert torch.equal(FS.select_k_best(scores, 2), torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0]))
    assert torch.equal(FS.select_k_best(scores, 0), torch.zeros(5))
    assert torch.equal(FS.select_k_best(scores, 5), torch.ones(5))
    with pytest.raises(ValueError):
        FS.select_k_best(scores, 6)


def test_nearest_centroid_accuracy_matches_sklearn():
    x, y = _blobs(n=150, seed=3)
    xt, yt, xv, yv = x[:100], y[:100], x[100:], y[100:]
    sels = torch.stack([FS.select_k_best(torch.arange(9.0) * -1, k) for k in (1, 2, 5)])  # first k features
    acc = FS.nearest_centroid_accuracy(xt, yt, xv, yv, sels)
    assert acc.shape == (3,)
    for a, k in zip(acc, (1, 2, 5)):
        clf = NearestCentroid().fit(xt[:, :k].numpy(), yt.numpy())
        assert float(a) == pytest.approx(clf.score(xv[:, :k].numpy(), yv.numpy()), abs=1e-12)


def test_forward_selection_step_matches_brute_force():
    x, y = _blobs(n=150, features=7, seed=5)
    xt, yt, xv, yv = x[:90], y[:90], x[90:], y[90:]
    start = torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    new, acc = FS.forward_selection_step(xt, yt, xv, yv, start)
    best, best_acc = None, -1.0
    for j in range(7):                                           # try every feature by hand
        if start[j] == 1:
            continue
        cols = [i for i in range(7) if start[i] == 1 or i == j]
        a = NearestCentroid().fit(xt[:, cols].numpy(), yt.numpy()).score(xv[:, cols].numpy(), yv.numpy())
        if a > best_acc + 1e-12:
            best, best_acc = j, a
    expected = start.clone()
    expected[best] = 1.0
    assert torch.equal(new, expected)
    assert acc == pytest.approx(best_acc)
    with pytest.raises(ValueError):
        FS.forward_selection_step(xt, yt, xv, yv, torch.ones(7))


def test_forward_selection_on_digits_adds_one_feature_per_step_and_learns():
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    sels, accs = FS.forward_selection(x[:1200], y[:1200], x[1200:], y[1200:], 8)
    for k, s in enumerate(sels, start=1):
        assert int(s.sum()) == k
        assert torch.all(s >= sels[k - 2]) if k > 1 else True   # nested: never drops a feature
    assert accs[0] < 0.5 < 0.8 < accs[-1]                       # one pixel is poor; eight are good
