"""Tests of attnlab.plotting's image grids: what each panel draws (offline, headless)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attnlab.data import scenes as sc  # noqa: E402
from attnlab.plotting import draw_image, image_grid  # noqa: E402


@pytest.fixture(scope="module")
def detection():
    config = sc.preset("easy", size=64, num_objects=(1, 3), scale=(0.2, 0.35))
    return sc.make_scenes(5, generator=torch.Generator().manual_seed(0), config=config)


def test_a_grid_has_a_panel_per_image_and_blank_ones_after(detection):
    fig = image_grid(detection.images, ncols=3, captions=detection.captions)
    axes = fig.axes
    assert len(axes) == 6 and not axes[5].axison and all(a.axison for a in axes[:5])
    assert [a.get_title().replace("\n", " ") for a in axes[:5]] == detection.captions
    shown = axes[0].images[0].get_array()
    assert shown.shape == (64, 64, 3) and np.allclose(shown, detection.images[0].permute(1, 2, 0).numpy())
    plt.close(fig)


def test_boxes_are_drawn_at_their_pixel_edges_with_their_labels(detection):
    labels = [[sc.SHAPES[k] for k in row[:n]] for row, n in zip(detection.shapes.tolist(), detection.num_objects.tolist())]
    fig = image_grid(detection.images, boxes=detection.boxes, box_labels=labels)   # padded boxes are skipped
    for ax, k, pixel_boxes, names in zip(fig.axes, detection.num_objects.tolist(), detection.pixel_boxes(), labels):
        rectangles = [p for p in ax.patches if isinstance(p, plt.Rectangle)]
        assert len(rectangles) == k
        for rect, (x0, y0, x1, y1) in zip(rectangles, pixel_boxes.tolist()):
            assert rect.get_xy() == pytest.approx((x0 - 0.5, y0 - 0.5))
            assert (rect.get_width(), rect.get_height()) == pytest.approx((x1 - x0, y1 - y0))
        assert [t.get_text() for t in ax.texts] == names
    plt.close(fig)


def test_masks_overlay_their_classes_and_leave_the_background_clear(detection):
    fig, ax = plt.subplots()
    draw_image(ax, detection.images[0], mask=detection.masks[0], mask_alpha=0.7, patch_size=16)
    overlay = ax.images[1].get_array()                             # (Hi, Wi, 4) RGBA
    obj = detection.masks[0].numpy() > 0
    assert np.allclose(overlay[..., 3][obj], 0.7) and np.allclose(overlay[..., 3][~obj], 0.0)
    classes = detection.masks[0].numpy()
    first = classes[obj][0]
    assert np.allclose(overlay[classes == first][:, :3], plt.get_cmap("tab10")(first - 1)[:3])
    assert len(ax.lines) == 3 + 3                                  # lines between 16-pixel patches of a 64 image
    plt.close(fig)


def test_grey_images_and_arrays_work_too():
    fig = image_grid([np.zeros((8, 8)), torch.ones(8, 12)], ncols=2)
    assert fig.axes[0].images[0].get_array().shape == (8, 8) and fig.axes[1].images[0].get_array().shape == (8, 12)
    plt.close(fig)
