"""scikit-learn's handwritten digits as tensors (chapters 0 and 1): real data that ships in a wheel.

The 1,797 greyscale 8 x 8 images of ``sklearn.datasets.load_digits`` (UCI optical recognition of
handwritten digits), scaled to [0, 1]. Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["digits_tensors"]


def digits_tensors(*, generator: torch.Generator, test_fraction: float = 0.25
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The digits, split at random into train and test.

    Args:
        generator: draws the split (the same generator state gives the same split).
        test_fraction: share of the images held out for testing.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: x (N, 1, 8, 8) float32 in [0, 1]; y (N,) int64 in 0..9.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.from_numpy(np.asarray(digits.images, dtype=np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    y = torch.from_numpy(np.asarray(digits.target, dtype=np.int64))                       # (N,)
    order = torch.randperm(len(y), generator=generator)
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]
