"""A hand-designed saliency map (돌출 맵) after Itti, Koch and Niebur (1998) (chapter 1, "Saliency maps").

The model turns an RGB image into a map of how much each place stands out:

1. *features*: intensity I = (r + g + b) / 3, colour opponency (red-green and blue-yellow, each
   sign in its own channel) and four orientation channels (Gabor energy at 0, 45, 90 and 135
   degrees);
2. a *Gaussian pyramid* of each feature (blur, then keep every second pixel), nine levels 0..8;
3. *centre-surround differences* |F(c) - F(s)| between a fine centre level c in {2, 3, 4} and a
   coarse surround level s = c + delta, delta in {3, 4}, the surround upsampled to the centre's
   size: six maps per feature, large where a place differs from its neighbourhood;
4. the *normalisation operator* N(.): rescale a map to [0, 1], then multiply it by (1 - m)^2 where
   m is the mean of its local maxima other than the global one: a map with one strong peak is
   promoted, a map with many comparable peaks is suppressed;
5. *conspicuity maps*: the normalised maps of one feature summed at level 4 ("across-scale
   addition"), normalised again; the *saliency map* is the mean of the three conspicuity maps.

Every function works on ``torch`` tensors; maps are (Hi, Wi) float tensors (a leading batch of
maps, (..., Hi, Wi), also works for the filters).

Simplifications with respect to the paper:

* colour: the paper's centre-surround |(R(c) - G(c)) (-) (G(s) - R(s))| becomes |RG+(c) - RG+(s)|
  and |RG-(c) - RG-(s)| on the two half-wave rectified signs RG+ = max(R - G, 0) and
  RG- = max(G - R, 0) (likewise for B - Y), as in Frintrop's VOCUS: a red bar among green bars is
  then alone in its channel, and N(.) can promote it (with |RG(c) - RG(s)| red and green bars on
  black are equally conspicuous);
* the Gabor filter's frequency (0.4 cycles/pixel at every level) and round envelope were chosen
  on the generated search displays, not taken from the paper;
* orientation uses the energy (modulus) of a complex Gabor filter applied to each level of the
  intensity pyramid, not a separate oriented pyramid;
* "local maxima" are the positive pixels that equal the maximum of their 3 x 3 neighbourhood;
* no winner-take-all network, no inhibition of return: the most salient place is the arg max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "image_to_tensor",
    "gaussian_kernel1d",
    "gaussian_blur",
    "gaussian_pyramid",
    "resize",
    "center_surround",
    "center_surround_maps",
    "local_maxima",
    "normalize_map",
    "intensity",
    "colour_opponents",
    "gabor_kernel",
    "gabor_energy",
    "SaliencyMaps",
    "itti_koch_saliency",
    "saliency_peak",
]

CENTRES = (2, 3, 4)
DELTAS = (3, 4)
COLOURS = ("red-green", "green-red", "blue-yellow", "yellow-blue")
ORIENTATIONS = (0.0, math.pi / 4, math.pi / 2, 3 * math.pi / 4)


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """(Hi, Wi, 3) uint8 or float array (e.g. ``skimage.data.astronaut()``) -> (3, Hi, Wi) float32 in [0, 1]."""
    x = torch.as_tensor(np.asarray(image))
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return x.permute(2, 0, 1).contiguous()                          # (3, Hi, Wi)


# ---------------------------------------------------------------------------- filters and pyramid
def gaussian_kernel1d(sigma: float, *, truncate: float = 4.0) -> torch.Tensor:
    """(2r + 1,) float32 normalised Gaussian, r = int(truncate * sigma + 0.5) (scipy's choice)."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).float()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (..., Hi, Wi) maps; borders repeat the edge pixel.

    Equals ``scipy.ndimage.gaussian_filter(x, sigma, mode="nearest")`` over the last two axes.
    """
    k = gaussian_kernel1d(sigma).to(x.dtype)
    r = k.numel() // 2
    shape = x.shape
    y = x.reshape(-1, 1, *shape[-2:])                               # (*, 1, Hi, Wi): leading dims stacked
    y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))  # along columns
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))  # along rows
    return y.reshape(shape)


def gaussian_pyramid(x: torch.Tensor, levels: int = 9, *, sigma: float = 1.0) -> list[torch.Tensor]:
    """Level 0 is ``x`` (..., Hi, Wi); level k + 1 is level k blurred, then every second pixel kept.

    Returns:
        ``levels`` tensors; level k has spatial size ceil(Hi / 2^k) x ceil(Wi / 2^k).
    """
    pyramid = [x]
    for _ in range(levels - 1):
        pyramid.append(gaussian_blur(pyramid[-1], sigma)[..., ::2, ::2])  # (..., ceil(h/2), ceil(w/2))
    return pyramid


def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Bilinear resampling of (..., h, w) maps to (..., *shape); pixel centres aligned (align_corners=False).

    Shrinking is anti-aliased; enlarging is plain bilinear interpolation with edge values repeated
    (what ``skimage.transform.resize(order=1, mode="edge", anti_aliasing=False)`` computes).
    """
    lead, (h, w) = x.shape[:-2], x.shape[-2:]
    if (h, w) == tuple(shape):
        return x
    shrink = shape[0] < h or shape[1] < w
    y = F.interpolate(x.reshape(-1, 1, h, w), size=tuple(shape), mode="bilinear",
                      align_corners=False, antialias=shrink)      # (M, 1, *shape)
    return y.reshape(*lead, *shape)


# --------------------------------------------------------------- centre-surround and normalisation
def center_surround(center: torch.Tensor, surround: torch.Tensor) -> torch.Tensor:
    """The across-scale difference F(c) (-) F(s) = |F(c) - upsample(F(s))|.

    Args:
        center: (Hc, Wc) map at a fine pyramid level c.
        surround: (Hs, Ws) map of the same feature at a coarser level s > c.

    Returns:
        (Hc, Wc) non-negative map: the surround is resized bilinearly to the centre's size
        (:func:`resize`), subtracted point by point, and the absolute value taken.
    """
    return (center - resize(surround, center.shape[-2:])).abs()


def center_surround_maps(
    pyramid: list[torch.Tensor], centres: tuple[int, ...] = CENTRES, deltas: tuple[int, ...] = DELTAS
) -> list[torch.Tensor]:
    """The six feature maps |F(c) - F(c + delta)| of one pyramid, ordered (c, delta) row by row."""
    return [center_surround(pyramid[c], pyramid[c + d]) for c in centres for d in deltas]


def local_maxima(m: torch.Tensor) -> torch.Tensor:
    """(Hi, Wi) bool: one True per local maximum (peak) of the map.

    A pixel is on a peak when it is positive and equals the maximum of its 3 x 3 neighbourhood. A
    flat-topped peak (neighbouring pixels at the same value: a plateau) is **one** peak, marked at
    its first pixel in row-major order, so that N(.) counts it once.
    """
    padded = F.pad(m[None, None], (1, 1, 1, 1), value=float("-inf"))
    neighbourhood_max = F.max_pool2d(padded, kernel_size=3, stride=1)[0, 0]  # (Hi, Wi)
    on_peak = (m >= neighbourhood_max) & (m > 0)
    # Adjacent pixels that are both on a peak have the same value: label each plateau by the
    # smallest row-major index it contains (min-pool the labels until nothing changes).
    big = float(m.numel())
    index = torch.arange(m.numel(), device=m.device, dtype=torch.float32).reshape(m.shape)
    label = torch.where(on_peak, index, torch.full_like(index, big))
    while True:
        spread = -F.max_pool2d(F.pad(-label[None, None], (1, 1, 1, 1), value=-big), 3, stride=1)[0, 0]
        spread = torch.where(on_peak, torch.minimum(label, spread), label)
        if torch.equal(spread, label):
            return on_peak & (label == index)
        label = spread


def normalize_map(m: torch.Tensor) -> torch.Tensor:
    """Itti's N(.): promote a map with one strong peak, suppress a map with many.

    1. rescale the (non-negative) map to [0, 1] by dividing by its maximum M;
    2. take the mean m_bar of the local maxima (:func:`local_maxima`) *other than* the global
       maximum (one occurrence of the value 1 is left out; m_bar = 0 if there is no other);
    3. multiply the map by (1 - m_bar)^2.

    Args:
        m: (Hi, Wi) float map, m >= 0.

    Returns:
        (Hi, Wi) map with values in [0, (1 - m_bar)^2]; all zeros if ``m`` is all zeros.
    """
    top = m.max()
    if top <= 0:
        return torch.zeros_like(m)
    m = m / top                                                     # now max = 1
    peaks = m[local_maxima(m)]                                      # (P,) values of local maxima
    others = peaks.numel() - 1                                      # leave the global maximum out
    m_bar = (peaks.sum() - 1.0) / others if others > 0 else m.new_zeros(())
    return m * (1.0 - m_bar) ** 2


# ----------------------------------------------------------------------------------- the features
def intensity(image: torch.Tensor) -> torch.Tensor:
    """(3, Hi, Wi) RGB in [0, 1] -> (Hi, Wi) intensity I = (r + g + b) / 3."""
    return image.mean(dim=0)


def colour_opponents(image: torch.Tensor) -> dict[str, torch.Tensor]:
    """The colour-opponency channels of Itti et al. (1998), each sign in its own map.

    r, g, b are divided by the intensity I where I > max(I) / 10 (elsewhere hue is meaningless
    and the channels are set to zero); the broadly tuned colour channels are
    R = r - (g + b)/2, G = g - (r + b)/2, B = b - (r + g)/2, Y = (r + g)/2 - |r - g|/2 - b,
    each clipped at zero. The opponency signals R - G and B - Y are then split by sign.

    Returns:
        {"red-green": max(R - G, 0), "green-red": max(G - R, 0), "blue-yellow": max(B - Y, 0),
        "yellow-blue": max(Y - B, 0)}, each (Hi, Wi).
    """
    i = intensity(image)
    bright = i > i.max() / 10
    r, g, b = torch.where(bright, image / i.clamp_min(1e-12), torch.zeros_like(image))  # (Hi, Wi) each
    red = (r - (g + b) / 2).clamp_min(0)
    green = (g - (r + b) / 2).clamp_min(0)
    blue = (b - (r + g) / 2).clamp_min(0)
    yellow = ((r + g) / 2 - (r - g).abs() / 2 - b).clamp_min(0)
    return {
        "red-green": (red - green).clamp_min(0),
        "green-red": (green - red).clamp_min(0),
        "blue-yellow": (blue - yellow).clamp_min(0),
        "yellow-blue": (yellow - blue).clamp_min(0),
    }


def gabor_kernel(*, theta: float, frequency: float = 0.4, sigma: float = 2.0, radius: int | None = None) -> torch.Tensor:
    """A complex Gabor kernel: a plane wave of ``frequency`` cycles/pixel along direction ``theta``
    under a round Gaussian envelope of std ``sigma``.

    g(x, y) = exp(-(x'^2 + y'^2) / (2 sigma^2)) exp(2 pi i f x') / (2 pi sigma^2),
    x' = x cos(theta) + y sin(theta), with x the column and y the row offset (y grows downwards),
    which is ``skimage.filters.gabor_kernel(frequency, theta, sigma_x=sigma, sigma_y=sigma)``.

    Returns:
        (2r + 1, 2r + 1) complex64 kernel, r = ``radius`` (default ceil(3 sigma)).
    """
    r = math.ceil(3 * sigma) if radius is None else radius
    y, x = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")  # (K, K)
    x_rot = x * math.cos(theta) + y * math.sin(theta)
    envelope = torch.exp(-(x**2 + y**2) / (2 * sigma**2)) / (2 * math.pi * sigma**2)
    return torch.polar(envelope, 2 * math.pi * frequency * x_rot).to(torch.complex64)


def gabor_energy(x: torch.Tensor, theta: float, **kernel_args) -> torch.Tensor:
    """|x * g_theta|: the modulus of the complex Gabor response of (..., Hi, Wi) maps (edges repeated)."""
    k = gabor_kernel(theta=theta, **kernel_args)
    r = k.shape[-1] // 2
    shape = x.shape
    y = F.pad(x.reshape(-1, 1, *shape[-2:]), (r, r, r, r), mode="replicate")  # (*, 1, Hi+2r, Wi+2r)
    weight = torch.stack([k.real, k.imag])[:, None].to(x.dtype)              # (2, 1, K, K)
    resp = F.conv2d(y, weight.flip(-2, -1))                                   # (*, 2, Hi, Wi) true convolution
    return resp.pow(2).sum(1).sqrt().reshape(shape)


# -------------------------------------------------------------------------------- the whole model
@dataclass
class SaliencyMaps:
    """Everything :func:`itti_koch_saliency` computes.

    Attributes:
        feature_maps: {"intensity", "red-green", "green-red", "blue-yellow", "yellow-blue",
            "orientation 0", "orientation 45", "orientation 90", "orientation 135"} -> six
            centre-surround maps each, ordered (c, delta), each at its centre level's size.
        conspicuity: {"intensity", "colour", "orientation"} -> (h, w) maps at the map level.
        saliency: (h, w) the combined map, mean of the normalised conspicuity maps.
    """

    feature_maps: dict[str, list[torch.Tensor]]
    conspicuity: dict[str, torch.Tensor]
    saliency: torch.Tensor


def _across_scale_sum(maps: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
    """Itti's (+): resize every normalised map to ``shape`` and add them point by point."""
    return torch.stack([resize(normalize_map(m), shape) for m in maps]).sum(0)


def itti_koch_saliency(
    image: torch.Tensor,
    *,
    levels: int = 9,
    centres: tuple[int, ...] = CENTRES,
    deltas: tuple[int, ...] = DELTAS,
    map_level: int = 4,
) -> SaliencyMaps:
    """The saliency map of an RGB image (3, Hi, Wi) in [0, 1].

    Steps as in the module docstring: features -> pyramids -> centre-surround maps -> N(.) ->
    conspicuity maps at pyramid level ``map_level`` -> S = (N(I_bar) + N(C_bar) + N(O_bar)) / 3.
    The image should be at least 2^(levels - 1) pixels on a side (256 for nine levels).
    """
    channels = {"intensity": intensity(image), **colour_opponents(image)}   # name -> (Hi, Wi)
    stacked = gaussian_pyramid(torch.stack(list(channels.values())), levels)  # levels x (5, h_k, w_k)
    pyramids = {name: [level[j] for level in stacked] for j, name in enumerate(channels)}
    feature_maps = {name: center_surround_maps(pyr, centres, deltas) for name, pyr in pyramids.items()}
    i_pyr = pyramids["intensity"]
    first = min(centres)                                              # finer levels are never used
    for theta in ORIENTATIONS:
        o_pyr = [None] * first + [gabor_energy(level, theta) for level in i_pyr[first:]]
        feature_maps[f"orientation {round(math.degrees(theta))}"] = center_surround_maps(o_pyr, centres, deltas)

    shape = tuple(i_pyr[map_level].shape[-2:])
    conspicuity = {
        "intensity": _across_scale_sum(feature_maps["intensity"], shape),
        "colour": sum(_across_scale_sum(feature_maps[name], shape) for name in COLOURS),
        "orientation": torch.stack([
            normalize_map(_across_scale_sum(feature_maps[f"orientation {round(math.degrees(t))}"], shape))
            for t in ORIENTATIONS
        ]).sum(0),
    }
    saliency = torch.stack([normalize_map(c) for c in conspicuity.values()]).mean(0)  # (h, w)
    return SaliencyMaps(feature_maps=feature_maps, conspicuity=conspicuity, saliency=saliency)


def saliency_peak(saliency: torch.Tensor, image_shape: tuple[int, int]) -> tuple[float, float]:
    """(row, column) in image pixels of the saliency map's maximum (the centre of its cell)."""
    h, w = saliency.shape
    idx = int(saliency.argmax())
    row, col = divmod(idx, w)
    return (row + 0.5) * image_shape[0] / h, (col + 0.5) * image_shape[1] / w
