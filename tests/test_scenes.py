"""Tests of attnlab.data.scenes: the generated image world of chapters 4-8.

Every check reads the scenes back from their pixels (or their masks) with code of its own, rather
than trusting the generator's bookkeeping: boxes from mask pixels, shapes from the filled fraction of
their box, colours from the nearest palette entry, positions from box centres.
"""

import dataclasses
import math

import pytest
import torch

from attnlab.data import scenes as sc
from attnlab.data.tokens import IGNORE_INDEX

DETECTION = sc.preset("medium", size=64, num_objects=(1, 4), scale=(0.15, 0.35), max_overlap=0.2)
FIELDS = [f.name for f in dataclasses.fields(sc.Scenes)]


def scenes(n, config=sc.SceneConfig(), seed=0):
    return sc.make_scenes(n, generator=torch.Generator().manual_seed(seed), config=config)


def assert_same(a, b):
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y, name


def test_the_same_generator_state_gives_the_same_scenes_and_global_state_is_untouched():
    torch.manual_seed(1)
    before = torch.random.get_rng_state()
    a = scenes(64, DETECTION, seed=5)
    assert torch.equal(torch.random.get_rng_state(), before), "make_scenes changed the global generator"
    torch.manual_seed(2)                                        # a different global state changes nothing
    assert_same(a, scenes(64, DETECTION, seed=5))
    g = torch.Generator().manual_seed(5)
    first, second = sc.make_scenes(32, generator=g, config=DETECTION), sc.make_scenes(32, generator=g, config=DETECTION)
    assert not torch.equal(first.images, second.images), "a generator must move on between calls"
    assert not torch.equal(a.images, scenes(64, DETECTION, seed=6).images)


def test_fields_have_the_documented_shapes_dtypes_and_padding():
    s = scenes(50, DETECTION)
    b, n, size = 50, 4, 64
    assert s.images.shape == (b, 3, size, size) and s.images.dtype == torch.float32
    assert 0 <= s.images.min() and s.images.max() <= 1
    for name in ("shapes", "colours", "sizes", "positions"):
        assert getattr(s, name).shape == (b, n) and getattr(s, name).dtype == torch.long, name
    assert s.labels.shape == (b,) and s.num_objects.shape == (b,) and s.labels.dtype == torch.long
    assert s.boxes.shape == (b, n, 4) and s.rgb.shape == (b, n, 3) and s.boxes.dtype == torch.float32
    assert s.masks.shape == s.instances.shape == (b, size, size) and s.masks.dtype == s.instances.dtype == torch.long
    assert len(s.captions) == len(s) == b and all(isinstance(c, str) for c in s.captions)
    assert all(getattr(s, name).is_contiguous() for name in FIELDS if name != "captions")
    valid = s.valid
    assert valid.dtype == torch.bool and torch.equal(valid.sum(1), s.num_objects)
    assert (1 <= s.num_objects).all() and (s.num_objects <= 4).all() and len(set(s.num_objects.tolist())) == 4
    for name in ("shapes", "colours", "sizes", "positions"):
        assert (getattr(s, name)[~valid] == IGNORE_INDEX).all() and (getattr(s, name)[valid] >= 0).all(), name
    assert (s.boxes[~valid] == 0).all() and (s.rgb[~valid] == 0).all()
    assert torch.equal(s.labels, s.shapes[:, 0])
    assert int(s.masks.max()) <= len(sc.SHAPES) and int(s.instances.max()) <= n
    targets = s.targets()
    assert len(targets) == b
    for t, k, shapes, boxes in zip(targets, s.num_objects.tolist(), s.shapes, s.boxes):
        assert torch.equal(t["labels"], shapes[:k]) and torch.equal(t["boxes"], boxes[:k])
    assert_same(s, s.to("cpu"))


def test_boxes_tightly_enclose_each_objects_visible_pixels():
    s = scenes(80, DETECTION, seed=1)
    pixel_boxes = s.pixel_boxes()
    assert torch.equal(pixel_boxes, pixel_boxes.round())
    for b in range(len(s)):
        for j in range(int(s.num_objects[b])):
            ys, xs = torch.nonzero(s.instances[b] == j + 1, as_tuple=True)
            assert len(ys) > 0, "every object stays visible"
            want = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=torch.float32)
            assert torch.equal(pixel_boxes[b, j], want), (b, j)
            x0, y0, x1, y1 = want.long().tolist()                  # the crop holds the whole object
            assert int((s.instances[b, y0:y1, x0:x1] == j + 1).sum()) == len(ys)
        assert (s.instances[b] <= s.num_objects[b]).all()


def test_objects_keep_to_the_overlap_limit():
    # without overlap no two boxes share a pixel; with it every object still shows most of itself
    apart = scenes(100, dataclasses.replace(DETECTION, max_overlap=0.0), seed=2)
    for b in range(len(apart)):
        k = int(apart.num_objects[b])
        boxes = apart.pixel_boxes()[b, :k]
        for i in range(k):
            for j in range(i + 1, k):
                w = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                h = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                assert w <= 0 or h <= 0, (b, i, j)
    crowded = scenes(200, dataclasses.replace(DETECTION, num_objects=(4, 4), max_overlap=0.3), seed=3)
    assert (crowded.num_objects >= 2).all() and (crowded.num_objects == 4).float().mean() > 0.5
    seen = torch.stack([(crowded.instances == j + 1).flatten(1).sum(1) for j in range(4)], 1)  # (B, N)
    assert (seen[crowded.valid] > 0).all()


def test_masks_are_the_instances_classes_and_agree_with_the_pixels():
    config = dataclasses.replace(DETECTION, noise=0.0, clutter=0, colour_jitter=0.1)
    s = scenes(60, config, seed=4)
    for b in range(len(s)):
        obj = s.instances[b] > 0
        assert torch.equal(s.masks[b] > 0, obj)
        assert torch.equal(s.masks[b][obj], s.shapes[b][s.instances[b][obj] - 1] + 1)
        pixels = s.images[b].permute(1, 2, 0)                      # (Hi, Wi, 3)
        assert torch.equal(pixels[obj], s.rgb[b][s.instances[b][obj] - 1])   # painted with its colour
        background = pixels[~obj]                                  # grey: red = green = blue
        assert torch.equal(background[:, 0], background[:, 1]) and torch.equal(background[:, 1], background[:, 2])
        lo, hi = sc.GREY_RANGE
        assert lo - config.texture - 1e-6 <= background.min() and background.max() <= hi + config.texture + 1e-6
    # with noise, object pixels scatter around their colour by about the noise level
    noisy = scenes(60, dataclasses.replace(config, noise=0.05, texture=0.0), seed=4)
    obj = noisy.instances > 0
    colour = noisy.rgb[torch.arange(60)[:, None, None].expand_as(obj)[obj], noisy.instances[obj] - 1]  # (M, 3)
    error = noisy.images.permute(0, 2, 3, 1)[obj] - colour
    inner = (colour > 0.15) & (colour < 0.85)                      # where clipping cannot bias the error
    assert abs(float(error[inner].mean())) < 0.01 and 0.04 < float(error[inner].std()) < 0.06


def test_clutter_paints_palette_strokes_on_the_background_only():
    config = dataclasses.replace(DETECTION, noise=0.0, texture=0.0, clutter=4)
    s = scenes(40, config, seed=5)
    pixels = s.images.permute(0, 2, 3, 1)                          # (B, Hi, Wi, 3)
    background = pixels[s.instances == 0]
    coloured = (background[:, 0] != background[:, 1]) | (background[:, 1] != background[:, 2])
    assert 0 < coloured.float().mean() < 0.1
    # every stroke pixel is a palette colour, bit for bit: painting copies it (no noise, no texture here)
    is_palette = (background[coloured][:, None, :] == sc.PALETTE[None]).all(-1)   # (pixels, colours)
    assert is_palette.any(1).all()
    plain = scenes(40, dataclasses.replace(config, clutter=0), seed=5)
    grey = plain.images.permute(0, 2, 3, 1)[plain.instances == 0]
    assert torch.equal(grey[:, 0], grey[:, 2])


def classify_from_mask(mask):
    """Shape id of a (h, w) bool mask cropped to its box, from simple properties of each shape."""
    h, w = mask.shape
    fill = float(mask.float().mean())                              # area / box area
    row = lambda y: float(mask[y].float().mean())                  # noqa: E731 share of a row inside
    if not mask[h // 2, w // 2]:
        return sc.SHAPES.index("ring")                             # the only one with a hole
    if fill > 0.93:
        return sc.SHAPES.index("square")
    if 0.72 < fill < 0.85:
        return sc.SHAPES.index("circle")
    if row(h - 1) > 0.85 and row(0) < 0.25:
        return sc.SHAPES.index("triangle")                         # wide base, narrow apex
    if row(0) < 0.25 and row(h - 1) < 0.25:
        return sc.SHAPES.index("diamond")                          # narrow at both ends
    if 0.2 < row(0) < 0.5:
        return sc.SHAPES.index("cross")                            # its arms are a third of the box
    return -1


def test_labels_match_the_drawn_shapes():
    s = scenes(300, sc.SceneConfig(size=64, scale=(0.4, 0.9)), seed=6)
    fills = {k: [] for k in range(len(sc.SHAPES))}
    for b in range(len(s)):
        x0, y0, x1, y1 = s.pixel_boxes()[b, 0].long().tolist()
        crop = s.instances[b, y0:y1, x0:x1] == 1
        assert classify_from_mask(crop) == int(s.labels[b]), (b, sc.SHAPES[int(s.labels[b])])
        fills[int(s.labels[b])].append(float(crop.float().mean()))
    expected = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5, "cross": 5 / 9,
                "ring": math.pi / 4 * (1 - sc.RING_HOLE ** 2), "diamond": 0.5}
    for name, area in expected.items():
        mean = sum(fills[sc.SHAPES.index(name)]) / len(fills[sc.SHAPES.index(name)])
        assert abs(mean - area) < 0.04, (name, mean, area)


def test_rasterised_shapes_have_their_exact_areas():
    sides = torch.full((1, len(sc.SHAPES)), 300.0)
    centres = torch.full((1, len(sc.SHAPES), 2), 160.0)
    inside, corners = sc.rasterise(torch.arange(len(sc.SHAPES))[None], centres, sides, size=320)
    assert inside.shape == (1, len(sc.SHAPES), 302, 302) and corners.shape == (1, len(sc.SHAPES), 2)
    area = inside.flatten(2).sum(-1)[0].float() / 300 ** 2
    want = torch.tensor([math.pi / 4, 1, 0.5, 5 / 9, math.pi / 4 * (1 - sc.RING_HOLE ** 2), 0.5])
    assert torch.allclose(area, want, atol=0.01), area
    nothing, _ = sc.rasterise(torch.tensor([[-1]]), centres[:, :1], sides[:, :1], size=320)
    assert not nothing.any()


def nearest_palette_colour(rgb):
    return torch.cdist(rgb, sc.PALETTE).argmin(-1)


def test_captions_and_attributes_say_what_the_pixels_show():
    s = scenes(400, sc.preset("medium"), seed=7)
    widths = {0: [], 1: []}
    for b in range(len(s)):
        shape, colour, size, position = (int(getattr(s, k)[b, 0]) for k in ("shapes", "colours", "sizes", "positions"))
        words = s.captions[b].split()
        assert words[:4] == ["a", sc.SIZES[size], sc.COLOURS[colour], sc.SHAPES[shape]], s.captions[b]
        assert s.captions[b].endswith(sc.POSITIONS[position]), s.captions[b]
        painted = s.images[b].permute(1, 2, 0)[s.instances[b] == 1].mean(0)      # mean colour of the object
        assert int(nearest_palette_colour(painted[None])[0]) == colour
        cx, cy = s.boxes[b, 0, :2].tolist()
        assert position == 3 * min(int(cy * 3), 2) + min(int(cx * 3), 2)
        widths[size].append(float(s.boxes[b, 0, 2]))
    middle = sum(sc.PRESETS["medium"].scale) / 2
    assert max(widths[0]) <= middle + 1.5 / 32 and min(widths[1]) >= middle - 1.5 / 32  # +- a pixel of rounding
    assert sc.caption(shape=2, colour=0) == "a red triangle"
    assert sc.caption(shape=0, size=1, colour=5, position=4) == "a large blue circle in the centre"
    assert sc.caption(shape=1, position=3) == "a square on the left"
    assert sc.caption(shape=1, position=0) == "a square at the top left"
    many = scenes(30, DETECTION, seed=7)
    for text, k in zip(many.captions, many.num_objects.tolist()):
        assert text.count(" and ") == k - 1 and text.count("a ") >= k


def test_held_out_pairs_never_appear():
    held = (("red", "triangle"), ("blue", "circle"))
    s = scenes(3000, sc.SceneConfig(held_out=held, num_objects=(1, 2), scale=(0.3, 0.45)), seed=8)
    pairs = {(sc.COLOURS[c], sc.SHAPES[k]) for c, k in zip(s.colours[s.valid].tolist(), s.shapes[s.valid].tolist())}
    assert not pairs & set(held)
    assert ("green", "triangle") in pairs and ("red", "circle") in pairs and ("blue", "triangle") in pairs
    assert len(pairs) == len(sc.COLOURS) * len(sc.SHAPES) - len(held)
    shown = scenes(50, sc.SceneConfig(shapes=("triangle",), colours=("red",)), seed=8)   # the zero-shot test set
    assert (shown.shapes[:, 0] == sc.SHAPES.index("triangle")).all() and (shown.colours[:, 0] == 0).all()
    with pytest.raises(ValueError, match="held out"):
        sc.SceneConfig(colours=("red",), held_out=(("red", "triangle"),))


def test_objects_stay_inside_the_region():
    config = sc.SceneConfig(size=32, region=(0.0, 0.0, 0.5, 1.0), scale=(0.25, 0.5), num_objects=(1, 2))
    s = scenes(500, config, seed=9)
    assert (s.instances[:, :, 16:] == 0).all() and (s.masks[:, :, 16:] == 0).all()
    assert (s.pixel_boxes()[..., 2][s.valid] <= 16).all()
    assert (s.instances[:, :, :16] > 0).flatten(1).any(1).all()
    right = scenes(500, dataclasses.replace(config, region=(0.5, 0.0, 1.0, 1.0)), seed=9)
    assert (right.instances[:, :, :16] == 0).all()
    assert {sc.POSITIONS[p] for p in s.positions[s.valid].tolist()} <= {"top left", "left", "bottom left", "top", "centre", "bottom"}
    with pytest.raises(ValueError, match="fit the region"):
        sc.SceneConfig(region=(0.0, 0.0, 0.5, 1.0), scale=(0.3, 0.6))


def nearest_centroid_accuracy(train, test, features):
    xt, xv = features(train.images), features(test.images)
    centroids = torch.stack([xt[train.labels == k].mean(0) for k in range(len(sc.SHAPES))])
    return float((torch.cdist(xv, centroids).argmin(1) == test.labels).float().mean())


def test_presets_are_harder_in_order():
    """A nearest-centroid classifier does worse from easy to hard, on raw pixels and on colourfulness."""
    raw = lambda x: x.flatten(1)                                           # noqa: E731
    colourful = lambda x: (x.amax(1) - x.amin(1)).flatten(1)               # noqa: E731 0 on grey
    acc = {}
    for name in ("easy", "medium", "hard"):
        train, test = scenes(2000, sc.preset(name), seed=10), scenes(1000, sc.preset(name), seed=11)
        acc[name] = (nearest_centroid_accuracy(train, test, raw), nearest_centroid_accuracy(train, test, colourful))
    assert acc["easy"][0] > acc["hard"][0] + 0.02, acc
    assert acc["easy"][1] > acc["medium"][1] + 0.08 > acc["hard"][1] + 0.12, acc
    assert acc["easy"][1] > 0.4 and acc["hard"][1] > 1 / len(sc.SHAPES), acc


def test_classes_and_attributes_are_balanced():
    s = scenes(1200, DETECTION, seed=12)
    assert torch.equal(torch.bincount(s.labels, minlength=6), torch.full((6,), 200))   # exactly, by construction
    for name, k in (("shapes", len(sc.SHAPES)), ("colours", len(sc.COLOURS)), ("sizes", len(sc.SIZES))):
        counts = torch.bincount(getattr(s, name)[s.valid], minlength=k).float()
        assert (counts - counts.mean()).abs().max() < 0.15 * counts.mean(), (name, counts)
    positions = torch.bincount(s.positions[s.valid], minlength=9)
    assert (positions > 0.05 * positions.sum()).all(), positions
    uneven = scenes(1000, sc.SceneConfig(shapes=("circle", "ring", "cross")), seed=12)
    assert set(torch.bincount(uneven.labels).tolist()) - {0} <= {333, 334}


def test_presets_and_validation():
    assert set(sc.PRESETS) == {"easy", "medium", "hard"}
    easy, hard = sc.PRESETS["easy"], sc.PRESETS["hard"]
    assert hard.scale[1] <= easy.scale[0] and hard.noise > 0 and hard.texture > 0 and hard.clutter > 0
    assert sc.preset("hard", size=64).size == 64 and sc.preset("hard", size=64).noise == hard.noise
    with pytest.raises(dataclasses.FrozenInstanceError):
        easy.size = 64
    with pytest.raises(ValueError, match="preset"):
        sc.preset("impossible")
    with pytest.raises(ValueError, match="at least 1"):
        scenes(0)
    for bad in ({"shapes": ("hexagon",)}, {"num_objects": (2, 1)}, {"max_overlap": 0.5},
                {"region": (0.5, 0.0, 0.5, 1.0)}, {"noise": -0.1}, {"scale": (0.6, 0.5)}):
        with pytest.raises(ValueError):
            sc.SceneConfig(**bad)
