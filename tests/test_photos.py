"""Tests of attnlab.data.photos: scikit-image's bundled photographs as course tensors, offline."""

import numpy as np
import pytest
import torch
from skimage import data

from attnlab.data.photos import PHOTOS, load_photo


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_a_photo_is_its_skimage_array_as_a_channels_first_float_tensor(name):
    array = getattr(data, name)()
    image = load_photo(name)
    assert image.dtype == torch.float32 and image.shape == (3, *array.shape[:2])
    want = torch.from_numpy(np.asarray(array, dtype=np.float32) / 255)
    want = want.permute(2, 0, 1) if want.dim() == 3 else want.expand(3, -1, -1)   # grey photos: 3 equal channels
    assert torch.equal(image, want)


def test_size_crops_the_centred_square_and_resizes_it():
    image = load_photo("coffee", size=64)                          # coffee is 400 x 600
    assert image.shape == (3, 64, 64) and 0 <= image.min() and image.max() <= 1
    full = load_photo("coffee")
    square = full[:, :, 100:500]                                   # the centred 400 x 400 square
    pooled = torch.nn.functional.adaptive_avg_pool2d(square[None], 8)[0]   # compare at a coarse scale
    assert (torch.nn.functional.adaptive_avg_pool2d(image[None], 8)[0] - pooled).abs().max() < 0.05
    assert torch.equal(load_photo("astronaut", size=512), load_photo("astronaut"))   # already square at that size
    grey = load_photo("camera", size=32)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_an_unknown_photo_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="astronaut"):
        load_photo("moon_landing")
