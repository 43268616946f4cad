"""attnlab.saliency and attnlab.data.search_displays against scipy.ndimage / scikit-image and brute force."""

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.filters import gabor_kernel as sk_gabor_kernel
from skimage.transform import resize as sk_resize

from attnlab import saliency as Z
from attnlab.data import search_displays as S


@pytest.fixture(autouse=True)
def one_thread():
    """The maps are small: on a shared 2-core machine one thread is several times faster than two."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("sigma", [0.7, 1.0, 2.5])
@pytest.mark.parametrize("shape", [(17, 23), (3, 2)])
def test_gaussian_blur_matches_scipy(sigma, shape):
    x = _rand(*shape)
    expected = ndimage.gaussian_filter(x.numpy(), sigma, mode="nearest", truncate=4.0)
    np.testing.assert_allclose(Z.gaussian_blur(x, sigma).numpy(), expected, rtol=1e-6, atol=1e-7)


def test_gaussian_blur_works_on_a_batch_of_maps():
    x = _rand(3, 12, 9)
    batched = Z.gaussian_blur(x, 1.0)
    for j in range(3):
        torch.testing.assert_close(batched[j], Z.gaussian_blur(x[j], 1.0))


def test_gaussian_pyramid_matches_iterated_scipy_blur_and_decimation():
    x = _rand(45, 64, seed=1)
    pyr = Z.gaussian_pyramid(x, levels=5)
    ref = x.numpy()
    assert len(pyr) == 5
    for k, level in enumerate(pyr):
        assert level.shape == (math.ceil(45 / 2**k), math.ceil(64 / 2**k))
        np.testing.assert_allclose(level.numpy(), ref, rtol=1e-6, atol=1e-7)
        ref = ndimage.gaussian_filter(ref, 1.0, mode="nearest")[::2, ::2]


@pytest.mark.parametrize("small,big", [((4, 5), (16, 20)), ((3, 3), (32, 24)), ((7, 2), (9, 13))])
def test_resize_up_matches_skimage_bilinear(small, big):
    x = _rand(*small, seed=2)
    expected = sk_resize(x.numpy(), big, order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_allclose(Z.resize(x, big).numpy(), expected, rtol=1e-6, atol=1e-7)


def test_resize_down_keeps_a_constant_map_constant():
    x = torch.full((32, 48), 0.3, dtype=torch.float64)
    torch.testing.assert_close(Z.resize(x, (8, 12)), torch.full((8, 12), 0.3, dtype=torch.float64))


def test_center_surround_is_abs_difference_with_upsampled_surround():
    c, s = _rand(16, 16, seed=3), _rand(2, 2, seed=4)
    expected = np.abs(c.numpy() - sk_resize(s.numpy(), (16, 16), order=1, mode="edge", anti_aliasing=False))
    out = Z.center_surround(c, s)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6, atol=1e-7)
    assert (out >= 0).all()


def test_center_surround_maps_pairs_levels_c_and_c_plus_delta():
    pyr = Z.gaussian_pyramid(_rand(256, 256, seed=5), levels=9)
    maps = Z.center_surround_maps(pyr)
    assert len(maps) == 6
    pairs = [(c, c + d) for c in (2, 3, 4) for d in (3, 4)]
    for m, (c, s) in zip(maps, pairs):
        torch.testing.assert_close(m, Z.center_surround(pyr[c], pyr[s]))
        assert m.shape == pyr[c].shape


def _scipy_peaks(mm: np.ndarray) -> np.ndarray:
    """Independent reference: pixels >= their 3 x 3 maximum, one per 8-connected plateau (its first pixel)."""
    on = (mm >= ndimage.maximum_filter(mm, size=3, mode="constant", cval=-np.inf)) & (mm > 0)
    labels, n = ndimage.label(on, structure=np.ones((3, 3)))
    out = np.zeros_like(on)
    for k in range(1, n + 1):
        i, j = np.argwhere(labels == k)[0]          # argwhere is row-major: the first pixel
        out[i, j] = True
    return out


@pytest.mark.parametrize("seed", [6, 7])
def test_local_maxima_matches_scipy(seed):
    m = torch.relu(_rand(20, 30, seed=seed) - 0.3)
    m = torch.round(m * 4) / 4                      # coarse values: many plateaus
    assert np.array_equal(Z.local_maxima(m).numpy(), _scipy_peaks(m.numpy()))


def test_a_flat_topped_peak_is_one_peak():
    m = torch.zeros(9, 9, dtype=torch.float64)
    m[2, 2] = m[2, 3] = m[3, 3] = 1.0               # one peak, three pixels wide
    m[6, 6] = 0.5
    peaks = Z.local_maxima(m)
    assert peaks.sum() == 2 and peaks[2, 2] and peaks[6, 6]
    # N(.) counts the plateau once: m_bar = 0.5 (the other peak), not (1 + 1 + 0.5) / 3
    torch.testing.assert_close(Z.normalize_map(m), m * 0.25)


def _normalize_brute_force(m: np.ndarray) -> np.ndarray:
    if m.max() <= 0:
        return np.zeros_like(m)
    m = m / m.max()
    peaks = list(m[_scipy_peaks(m)])
    peaks.remove(max(peaks))
    m_bar = float(np.mean(peaks)) if peaks else 0.0
    return m * (1 - m_bar) ** 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_normalize_map_matches_brute_force(seed):
    m = torch.relu(_rand(11, 13, seed=seed) - 0.5) * 7.0
    np.testing.assert_allclose(Z.normalize_map(m).numpy(), _normalize_brute_force(m.numpy()), rtol=1e-9, atol=1e-12)


def test_normalize_map_promotes_one_peak_and_suppresses_many():
    one = torch.zeros(16, 16, dtype=torch.float64)
    one[5, 7] = 4.0
    torch.testing.assert_close(Z.normalize_map(one), one / 4.0)          # m_bar = 0: just rescaled
    many = torch.zeros(16, 16, dtype=torch.float64)
    many[2, 2] = many[2, 10] = many[10, 2] = many[10, 10] = 4.0
    torch.testing.assert_close(Z.normalize_map(many), torch.zeros_like(many))  # m_bar = 1
    mixed = torch.zeros(16, 16, dtype=torch.float64)
    mixed[3, 3], mixed[3, 12], mixed[12, 3] = 2.0, 1.0, 1.0              # m_bar = 0.5
    torch.testing.assert_close(Z.normalize_map(mixed), mixed / 2.0 * 0.25)
    torch.testing.assert_close(Z.normalize_map(torch.zeros(4, 4)), torch.zeros(4, 4))


@pytest.mark.parametrize("theta", [0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4, 0.3])
def test_gabor_kernel_matches_skimage(theta):
    expected = sk_gabor_kernel(0.4, theta=theta, sigma_x=2.0, sigma_y=2.0, n_stds=3)
    radius = expected.shape[0] // 2
    assert expected.shape == (2 * radius + 1, 2 * radius + 1)
    k = Z.gabor_kernel(theta=theta, frequency=0.4, sigma=2.0, radius=radius)
    np.testing.assert_allclose(k.numpy(), expected, rtol=1e-5, atol=1e-7)


def test_gabor_energy_matches_scipy_convolution():
    x = _rand(20, 25, seed=7).float()
    theta = math.pi / 4
    k = Z.gabor_kernel(theta=theta).numpy()
    re = ndimage.convolve(x.numpy(), k.real, mode="nearest")
    im = ndimage.convolve(x.numpy(), k.imag, mode="nearest")
    np.testing.assert_allclose(Z.gabor_energy(x, theta).numpy(), np.hypot(re, im), rtol=1e-4, atol=1e-6)


def test_gabor_energy_prefers_its_orientation():
    vertical = torch.zeros(1, 3, 64, 64)
    vertical[0, :, 16:48, 30:34] = 1.0
    horizontal = vertical.transpose(-1, -2)
    i_v, i_h = Z.intensity(vertical[0]), Z.intensity(horizontal[0])
    # theta is the direction the wave travels: theta = 0 responds to vertical structure
    assert Z.gabor_energy(i_v, 0.0).sum() > 2 * Z.gabor_energy(i_v, math.pi / 2).sum()
    assert Z.gabor_energy(i_h, math.pi / 2).sum() > 2 * Z.gabor_energy(i_h, 0.0).sum()


def test_colour_opponents_separate_red_from_green_at_equal_intensity():
    image = torch.zeros(3, 1, 4)
    image[:, 0, 0] = torch.tensor([1.0, 0.0, 0.0])    # red
    image[:, 0, 1] = torch.tensor([0.0, 1.0, 0.0])    # green
    image[:, 0, 2] = torch.tensor([0.0, 0.0, 1.0])    # blue
    image[:, 0, 3] = torch.tensor([0.01, 0.0, 0.0])   # too dark: no hue
    ch = Z.colour_opponents(image)
    i = Z.intensity(image)
    assert i[0, 0] == i[0, 1] == i[0, 2]
    assert ch["red-green"][0, 0] == 3.0 and ch["green-red"][0, 0] == 0.0
    assert ch["green-red"][0, 1] == 3.0 and ch["red-green"][0, 1] == 0.0
    assert ch["blue-yellow"][0, 2] == 3.0 and ch["yellow-blue"][0, 2] == 0.0
    assert all(float(c[0, 3]) == 0.0 for c in ch.values())
    yellow = torch.tensor([1.0, 1.0, 0.0]).view(3, 1, 1)
    assert Z.colour_opponents(yellow)["yellow-blue"][0, 0] == 1.5


def test_search_displays_are_deterministic_and_have_one_odd_item():
    a = S.make_displays(3, generator=torch.Generator().manual_seed(11), feature="colour")
    b = S.make_displays(3, generator=torch.Generator().manual_seed(11), feature="colour")
    for da, db in zip(a, b):
        assert torch.equal(da.image, db.image) and da.target == db.target
    d = a[0]
    assert d.image.shape == (3, 256, 256) and d.centres.shape == (36, 2)
    r, c = (int(v) for v in d.centres[d.target])
    assert torch.equal(d.image[:, r, c], torch.tensor([1.0, 0.0, 0.0]))           # the target is red
    others = [i for i in range(36) if i != d.target]
    for i in others[:5]:
        r, c = (int(v) for v in d.centres[i])
        assert torch.equal(d.image[:, r, c], torch.tensor([0.0, 1.0, 0.0]))       # distractors green
    o = S.make_displays(1, generator=torch.Generator().manual_seed(3), feature="orientation")[0]
    diff = (o.angles - o.angles[o.target]).abs()
    assert torch.allclose(diff[torch.arange(36) != o.target], torch.tensor(math.pi / 2))
    assert S.nearest_item(d, tuple(d.centres[d.target].tolist())) == d.target
    with pytest.raises(ValueError):
        S.make_display(generator=torch.Generator(), feature="size")


def test_draw_bars_fills_the_expected_rectangle():
    img = S.draw_bars(20, torch.tensor([[10.0, 10.0]]), torch.tensor([0.0]),
                      torch.tensor([[1.0, 1.0, 1.0]]), length=8, width=2)
    assert int(img[0].sum()) == 8 * 2                      # a horizontal 8 x 2 bar
    assert img[0, 9:11, 6:14].all()


def test_draw_bars_matches_a_pixel_by_pixel_loop():
    centres, angles = torch.tensor([[12.3, 20.7], [30.0, 9.5]]), torch.tensor([0.6, 2.0])
    colours = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]])
    img = S.draw_bars(40, centres, angles, colours, length=15, width=4)
    expected = torch.zeros(3, 40, 40)
    for i in range(40):
        for j in range(40):
            for (r, c), a, col in zip(centres.tolist(), angles.tolist(), colours):
                dx, dy = j + 0.5 - c, -(i + 0.5 - r)
                if abs(dx * math.cos(a) + dy * math.sin(a)) <= 7.5 and abs(-dx * math.sin(a) + dy * math.cos(a)) <= 2:
                    expected[:, i, j] = col
    assert torch.equal(img, expected)


def test_itti_koch_shapes_and_range():
    image = Z.image_to_tensor((np.arange(256 * 256 * 3) % 251).reshape(256, 256, 3).astype(np.uint8))
    assert image.shape == (3, 256, 256) and 0 <= float(image.min()) and float(image.max()) <= 1
    sm = Z.itti_koch_saliency(image)
    assert sm.saliency.shape == (16, 16)
    assert set(sm.conspicuity) == {"intensity", "colour", "orientation"}
    assert len(sm.feature_maps) == 9 and all(len(v) == 6 for v in sm.feature_maps.values())
    assert float(sm.saliency.min()) >= 0 and float(sm.saliency.max()) <= 1


@pytest.mark.parametrize("feature", ["colour", "orientation"])
def test_saliency_peak_finds_the_odd_item(feature):
    displays = S.make_displays(10, generator=torch.Generator().manual_seed(123), feature=feature)
    hits = 0
    for d in displays:
        peak = Z.saliency_peak(Z.itti_koch_saliency(d.image).saliency, d.image.shape[-2:])
        hits += S.nearest_item(d, peak) == d.target
    # chance is 1/36; the model finds the odd item in (nearly) every display
    assert hits >= 9, f"{hits}/10"
