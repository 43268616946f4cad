"""Real photographs for the pages that want one, from the images that ship inside scikit-image.

Chapter 4 cuts a photo into patches, chapter 1 computes its saliency: a real image shows what a
generated scene cannot. The photographs are files inside the installed ``scikit-image`` wheel
(``skimage.data``), so nothing is downloaded. :func:`load_photo` returns one as the course's image
tensor, (3, Hi, Wi) float32 in [0, 1], optionally cropped to a centred square and resized.
"""

from __future__ import annotations

import torch

from ..saliency import image_to_tensor, resize

__all__ = ["PHOTOS", "load_photo"]

# name: what it shows. Each is a function of skimage.data; "camera" is grey (its channels are equal).
PHOTOS = {
    "astronaut": "Eileen Collins, NASA portrait (512 x 512)",
    "camera": "a man with a camera, grey (512 x 512)",
    "chelsea": "Chelsea the cat (300 x 451)",
    "coffee": "a cup of coffee (400 x 600)",
    "rocket": "a rocket on its launch pad (427 x 640)",
}


def load_photo(name: str, *, size: int | None = None) -> torch.Tensor:
    """The photograph ``name`` (a key of :data:`PHOTOS`) as a (3, Hi, Wi) float32 tensor in [0, 1].

    Args:
        name: which photo.
        size: ``None`` keeps the whole photo at its own size; an int crops the largest centred
            square and resizes it to ``size`` x ``size`` (bilinear, anti-aliased when shrinking).
    """
    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; expected one of {tuple(PHOTOS)}")
    from skimage import data                                               # imported when a photo is asked for

    array = getattr(data, name)()                                          # (Hi, Wi, 3) or (Hi, Wi) uint8
    if array.ndim == 2:
        array = array[:, :, None].repeat(3, axis=2)                        # grey -> (Hi, Wi, 3)
    image = image_to_tensor(array)                                         # (3, Hi, Wi) float32 in [0, 1]
    if size is None:
        return image
    hi, wi = image.shape[1:]
    side = min(hi, wi)
    top, left = (hi - side) // 2, (wi - side) // 2
    return resize(image[:, top:top + side, left:left + side], (size, size)).clamp(0, 1)
