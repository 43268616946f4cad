"""Generated scenes of coloured shapes: the image world of chapters 4 to 8.

Nothing can be downloaded, so the vision chapters share one generated world. A *scene* is a small
square RGB image with one or more objects on a grey background. Every object has four attributes,
each a word of a fixed vocabulary:

* a **shape**: ``circle``, ``square``, ``triangle``, ``cross``, ``ring`` or ``diamond``
  (:data:`SHAPES`; the class of the object);
* a **colour**: one of :data:`COLOURS` (``red``, ``orange``, ...), drawn from a fixed palette;
* a **size**: ``small`` or ``large`` (:data:`SIZES`), the lower or upper half of the size range;
* a **position**: the ninth of the image that holds the centre of its box (:data:`POSITIONS`).

For the same scene :func:`make_scenes` returns what every later chapter needs (a :class:`Scenes`):
the image and its class label (chapter 4, ViT; chapter 8, CNN vs ViT), boxes and per-object classes
(chapter 5, DETR), a per-pixel class mask (chapter 5, SETR; chapter 6, Swin), a caption and the
attributes as integers (chapter 7, CLIP). A :class:`SceneConfig` sets the difficulty (object sizes,
colour jitter, background texture, clutter, noise); :data:`PRESETS` names three levels. It can hold
out (colour, shape) pairs, for CLIP's zero-shot test, and confine the objects to a region of the
image, for chapter 8's translation experiment.

Every object of every scene is rasterised at once: an implicit function of the coordinates
(``u**2 + v**2 <= 1`` is a circle) is evaluated on the pixel centres of a window around each object
(:func:`rasterise`), and the objects are written into the images in drawing order by scattering
their ids; Python loops run over the six shapes and the few object slots, never over pixels or
scenes. Every random choice comes from the ``torch.Generator`` passed in: the same generator state
gives the same scenes, and the global random state is never read or changed.

Simplifications: shapes are axis-aligned (no rotation: a square turned by 45 degrees *is* the
diamond) and hard-edged (no anti-aliasing), so that a mask pixel is exactly an object pixel; the
background is grey (red = green = blue), so colour belongs to the objects and the clutter only;
clutter is thin strokes that belong to no class and to no mask; objects are drawn largest first,
so later (smaller) objects may cover part of earlier ones, never more than ``max_overlap`` of a box.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .tokens import IGNORE_INDEX

__all__ = [
    "SHAPES", "COLOURS", "PALETTE", "SIZES", "POSITIONS",
    "SceneConfig", "PRESETS", "preset", "Scenes", "make_scenes",
    "SHAPE_FUNCTIONS", "rasterise", "caption", "position_phrase",
]

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple")
PALETTE = torch.tensor([                   # (len(COLOURS), 3) RGB in [0, 1], one row per colour
    [0.90, 0.12, 0.12], [1.00, 0.55, 0.05], [0.95, 0.88, 0.10], [0.15, 0.75, 0.20],
    [0.10, 0.85, 0.90], [0.15, 0.30, 0.95], [0.60, 0.20, 0.80],
])
SIZES = ("small", "large")
POSITIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")
GREY_RANGE = (0.25, 0.55)                  # the background's base grey level is drawn from this range
RING_HOLE = 0.5                            # inner radius of a ring, as a fraction of its outer radius
PLACEMENT_TRIES = 20                       # candidate positions tried for each object


@dataclass(frozen=True)
class SceneConfig:
    """What a scene may contain, and how hard it is to read (the defaults are the ``easy`` preset).

    Attributes:
        size: the image side Hi = Wi in pixels (32 for classification, 64 and up for detection).
        num_objects: inclusive range (lo, hi) of the number of objects per scene, drawn uniformly.
        scale: inclusive range of an object's side, as a fraction of the image side.
        shapes, colours: the names (of :data:`SHAPES`, :data:`COLOURS`) that may be drawn.
        held_out: (colour, shape) pairs never drawn, e.g. ``(("red", "triangle"),)``.
        region: (x0, y0, x1, y1), fractions of the image: every object lies inside this rectangle.
        max_overlap: the largest fraction of an object's box that the objects drawn on top of it
            may cover together; below 0.5, so every object stays visible. An object that finds no
            place after :data:`PLACEMENT_TRIES` tries is left out of its scene.
        colour_jitter: each RGB channel of an object is moved by up to this much from its palette colour.
        texture: amplitude of the background's texture (two random gratings); 0 = plain grey.
        clutter: number of distractor strokes (thin coloured lines, class "background") per scene.
        noise: standard deviation of Gaussian noise added to every pixel, the same to its red, green
            and blue (then clipped to [0, 1]).
    """

    size: int = 32
    num_objects: tuple[int, int] = (1, 1)
    scale: tuple[float, float] = (0.5, 0.9)
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = COLOURS
    held_out: tuple[tuple[str, str], ...] = ()
    region: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0)
    max_overlap: float = 0.0
    colour_jitter: float = 0.0
    texture: float = 0.0
    clutter: int = 0
    noise: float = 0.0

    def __post_init__(self) -> None:
        _check_config(self)

    def allowed_colours(self) -> torch.Tensor:
        """(len(SHAPES), len(COLOURS)) bool: True where that colour may be drawn on that shape."""
        allowed = torch.zeros(len(SHAPES), len(COLOURS), dtype=torch.bool)
        for s in self.shapes:
            for c in self.colours:
                allowed[SHAPES.index(s), COLOURS.index(c)] = (c, s) not in self.held_out
        return allowed


def _check_config(config: SceneConfig) -> None:
    """Raise ValueError on a configuration that cannot be drawn, naming the field."""
    unknown = [s for s in config.shapes if s not in SHAPES] + [c for c in config.colours if c not in COLOURS] + \
        [p for pair in config.held_out for p in pair if p not in SHAPES + COLOURS]
    if unknown:
        raise ValueError(f"unknown shape or colour names: {unknown}; known: {SHAPES}, {COLOURS}")
    lo, hi = config.num_objects
    if not 1 <= lo <= hi:
        raise ValueError(f"num_objects must satisfy 1 <= lo <= hi, got {config.num_objects}")
    x0, y0, x1, y1 = config.region
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ValueError(f"region must be (x0, y0, x1, y1) with 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1, got {config.region}")
    if not 0 < config.scale[0] <= config.scale[1] <= min(x1 - x0, y1 - y0):
        raise ValueError(f"scale {config.scale} must be increasing, positive and fit the region {config.region}")
    if not 0 <= config.max_overlap < 0.5:
        raise ValueError(f"max_overlap must be in [0, 0.5), got {config.max_overlap}")
    if min(config.colour_jitter, config.texture, config.noise, config.clutter) < 0:
        raise ValueError("colour_jitter, texture, noise and clutter must not be negative")
    starved = [s for s in config.shapes if not any((c, s) not in config.held_out for c in config.colours)]
    if starved:
        raise ValueError(f"every colour of {starved} is held out: these shapes cannot be drawn")


PRESETS: dict[str, SceneConfig] = {
    # large objects on plain grey: the shape is plain to see
    "easy": SceneConfig(scale=(0.5, 0.9)),
    # smaller objects, a faint texture, one stroke of clutter, a little noise
    "medium": SceneConfig(scale=(0.4, 0.75), colour_jitter=0.05, texture=0.08, clutter=1, noise=0.02),
    # small objects, strong texture, four strokes of clutter, visible noise
    "hard": SceneConfig(scale=(0.25, 0.5), colour_jitter=0.15, texture=0.25, clutter=4, noise=0.08),
}


def preset(name: str, **changes) -> SceneConfig:
    """The preset ``name`` of :data:`PRESETS` with ``changes`` applied, e.g. for detection:
    ``preset("medium", size=64, num_objects=(1, 4), scale=(0.15, 0.35), max_overlap=0.2)``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {tuple(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **changes)


@dataclass
class Scenes:
    """A batch of B scenes with up to N objects each; object slots ``j >= num_objects[b]`` are padding.

    Objects are stored largest first, in the order they were drawn (later on top).

    Attributes:
        images: (B, 3, Hi, Wi) float32 RGB in [0, 1].
        labels: (B,) long, the class of the scene: the shape id of its largest object (slot 0).
        num_objects: (B,) long, how many slots of each scene hold an object.
        shapes: (B, N) long, each object's shape id (index into :data:`SHAPES`); IGNORE_INDEX in padding.
        colours: (B, N) long, colour ids (:data:`COLOURS`); IGNORE_INDEX in padding.
        sizes: (B, N) long, size-word ids (:data:`SIZES`); IGNORE_INDEX in padding.
        positions: (B, N) long, position-word ids (:data:`POSITIONS`); IGNORE_INDEX in padding.
        rgb: (B, N, 3) float32, the colour each object was painted with (palette + jitter); 0 in padding.
        boxes: (B, N, 4) float32, (cx, cy, w, h) in [0, 1] (fractions of the image width and height)
            of the smallest box that holds every visible pixel of the object; 0 in padding.
        masks: (B, Hi, Wi) long, the class of each pixel: 0 = background, 1 + shape id for an object.
        instances: (B, Hi, Wi) long, which object each pixel shows: 0 = background, 1 + slot j.
        captions: B strings, e.g. "a small red circle at the top left" (objects joined by "and").
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_objects: torch.Tensor
    shapes: torch.Tensor
    colours: torch.Tensor
    sizes: torch.Tensor
    positions: torch.Tensor
    rgb: torch.Tensor
    boxes: torch.Tensor
    masks: torch.Tensor
    instances: torch.Tensor
    captions: list[str]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def valid(self) -> torch.Tensor:
        """(B, N) bool, True where the slot holds an object."""
        return torch.arange(self.shapes.shape[1], device=self.shapes.device) < self.num_objects[:, None]

    def pixel_boxes(self) -> torch.Tensor:
        """(B, N, 4) float32 boxes as pixel edges (x0, y0, x1, y1): ``x0 = (cx - w / 2) * Wi``,
        ``x1 = (cx + w / 2) * Wi`` (exclusive), likewise y with Hi; ``images[b, :, y0:y1, x0:x1]``
        crops object j exactly (the values are whole numbers)."""
        cx, cy, w, h = self.boxes.unbind(-1)
        hi, wi = self.images.shape[-2:]
        return torch.stack([(cx - w / 2) * wi, (cy - h / 2) * hi, (cx + w / 2) * wi, (cy + h / 2) * hi], -1).round()

    def targets(self) -> list[dict[str, torch.Tensor]]:
        """Per-image detection targets, DETR's format: ``{"labels": (k,) long shape ids,
        "boxes": (k, 4) float (cx, cy, w, h) in [0, 1]}`` with k = ``num_objects[b]``."""
        return [{"labels": self.shapes[b, :k], "boxes": self.boxes[b, :k]}
                for b, k in enumerate(self.num_objects.tolist())]

    def to(self, device: torch.device | str) -> "Scenes":
        moved = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Scenes(**{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in moved.items()})


# ---------------------------------------------------------------------- shapes as implicit functions
# Each takes the pixel centres in an object's own coordinates, u to the right and v downwards, both
# -1 .. 1 across the object's box, and says which pixels are inside. The box is the object's side s.
SHAPE_FUNCTIONS = {
    "circle": lambda u, v: u * u + v * v <= 1,
    "square": lambda u, v: (u.abs() <= 1) & (v.abs() <= 1),
    "triangle": lambda u, v: (v <= 1) & (2 * u.abs() <= v + 1),           # apex (0, -1) at the top
    "cross": lambda u, v: ((u.abs() <= 1 / 3) & (v.abs() <= 1)) | ((v.abs() <= 1 / 3) & (u.abs() <= 1)),
    "ring": lambda u, v: (u * u + v * v <= 1) & (u * u + v * v >= RING_HOLE ** 2),
    "diamond": lambda u, v: u.abs() + v.abs() <= 1,
}


def rasterise(shapes: torch.Tensor, centres: torch.Tensor, sides: torch.Tensor, *, size: int):
    """Which pixels each object covers, all objects at once, each in a window just larger than its box.

    Args:
        shapes: (B, N) long shape ids (:data:`SHAPES`); any other value draws nothing.
        centres: (B, N, 2) float, (x, y) of each object's centre in pixels (x to the right, y down).
        sides: (B, N) float, each object's side s in pixels; its box is centre +- s / 2, inside the image.
        size: the image side Hi = Wi.

    Returns:
        inside: (B, N, w, w) bool with w = the largest side + 2 (at most ``size``): True where the
            centre of a pixel of object j's w x w window lies inside the object (occlusion ignored).
        corners: (B, N, 2) long, (x, y) of the top-left pixel of each window in the image.
    """
    window = min(size, int(sides.max()) + 2)
    corners = (centres - sides[..., None] / 2).floor().long().clamp(0, size - window)  # (B, N, 2)
    pixels = corners[..., None] + torch.arange(window) + 0.5               # (B, N, 2, w) pixel centres
    local = (pixels - centres[..., None]) / (sides[..., None, None] / 2)   # (B, N, 2, w) in -1 .. 1 on the box
    u, v = local.unbind(2)                                                 # (B, N, w) each
    inside = torch.zeros(*shapes.shape, window, window, dtype=torch.bool)  # (B, N, w, w)
    for k, name in enumerate(SHAPES):
        chosen = shapes == k                                               # (B, N)
        if chosen.any():
            inside[chosen] = SHAPE_FUNCTIONS[name](u[chosen][:, None, :], v[chosen][:, :, None])  # (chosen, w, w)
    return inside, corners


def _window_pixels(corners: torch.Tensor, window: int, size: int) -> torch.Tensor:
    """(B, N, w, w) long: the index y * size + x in the flattened image of each pixel of each w x w window."""
    steps = torch.arange(window)
    rows = corners[..., 1, None] + steps                                   # (B, N, w)
    cols = corners[..., 0, None] + steps
    return rows[..., :, None] * size + cols[..., None, :]                  # (B, N, w, w)


def _draw_instances(inside: torch.Tensor, corners: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (B, Hi, Wi) long instance map (0 = background, 1 + j = object j, later slots on top) and
    the (B, N, 4) boxes (cx, cy, w, h) in [0, 1] of each object's visible pixels (0 for none)."""
    b, n, window = inside.shape[:3]
    pixels = _window_pixels(corners, window, size)                         # (B, N, w, w)
    spare = size * size                                                    # pixels outside a shape go here
    flat = torch.zeros(b, spare + 1, dtype=torch.long)
    for j in range(n):                                                     # painter's order: later on top
        flat.scatter_(1, torch.where(inside[:, j], pixels[:, j], spare).view(b, -1), j + 1)
    slot = torch.arange(1, n + 1).view(1, n, 1, 1)
    visible = flat.gather(1, pixels.view(b, -1)).view_as(pixels) == slot   # (B, N, w, w)
    rows, cols = visible.any(3), visible.any(2)                            # (B, N, w) each
    first = lambda m: m.float().argmax(-1)                                 # noqa: E731  first True
    y0, x0 = corners[..., 1] + first(rows), corners[..., 0] + first(cols)
    y1, x1 = corners[..., 1] + window - first(rows.flip(-1)), corners[..., 0] + window - first(cols.flip(-1))
    boxes = torch.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], -1) / size  # (B, N, 4)
    boxes = boxes * rows.any(-1, keepdim=True)                             # no visible pixel: zeros
    return flat[:, :spare].reshape(b, size, size).contiguous(), boxes


def caption(*, shape: int, colour: int | None = None, size: int | None = None, position: int | None = None) -> str:
    """The phrase of one object from its word ids, e.g. ``"a small red circle at the top left"``;
    a word left as None is left out (``caption(shape=2, colour=0) == "a red triangle"``)."""
    words = [SIZES[size] if size is not None else None, COLOURS[colour] if colour is not None else None, SHAPES[shape]]
    text = "a " + " ".join(w for w in words if w)
    return text if position is None else f"{text} {position_phrase(position)}"


def position_phrase(position: int) -> str:
    """Where an object of position id ``position`` (:data:`POSITIONS`) is, as a caption says it:
    ``"at the top left"``, ``"on the left"``, ``"in the centre"``."""
    where = POSITIONS[position]
    return "in the centre" if where == "centre" else f"on the {where}" if where in ("left", "right") else f"at the {where}"


# ------------------------------------------------------------------------------------ drawing
def _draw_objects(n: int, config: SceneConfig, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Number, sizes (largest first), shapes and colours of the objects of n scenes."""
    lo, hi = config.num_objects
    counts = torch.randint(lo, hi + 1, (n,), generator=generator)         # (B,)
    valid = torch.arange(hi) < counts[:, None]                             # (B, N)
    scale = config.scale[0] + torch.rand(n, hi, generator=generator) * (config.scale[1] - config.scale[0])
    scale = torch.where(valid, scale, torch.zeros(())).sort(dim=1, descending=True).values  # (B, N) largest first
    ids = torch.tensor([SHAPES.index(s) for s in config.shapes])
    balanced = (torch.arange(n) % len(ids))[torch.randperm(n, generator=generator)]   # slot 0: every class as often
    others = torch.randint(len(ids), (n, hi - 1), generator=generator)
    shapes = ids[torch.cat([balanced[:, None], others], 1)]                # (B, N)
    allowed = config.allowed_colours()[shapes]                             # (B, N, len(COLOURS))
    colours = (torch.rand(n, hi, len(COLOURS), generator=generator) * allowed).argmax(-1)  # uniform among allowed
    jitter = (torch.rand(n, hi, 3, generator=generator) * 2 - 1) * config.colour_jitter
    rgb = (PALETTE[colours] + jitter).clamp(0, 1)                          # (B, N, 3)
    middle = (config.scale[0] + config.scale[1]) / 2
    return {"valid": valid, "sides": scale * config.size, "sizes": (scale >= middle).long(),
            "shapes": shapes, "colours": colours, "rgb": rgb}


def _place(sides: torch.Tensor, valid: torch.Tensor, config: SceneConfig, generator: torch.Generator):
    """Centres (B, N, 2) in pixels inside ``config.region``, and which objects found a place (B, N).

    Object j tries :data:`PLACEMENT_TRIES` random centres and takes the first with which no earlier
    object gets more than ``max_overlap`` of its box covered (counting all objects on top of it).
    """
    b, n = sides.shape
    x0, y0, x1, y1 = (torch.tensor(config.region) * config.size).tolist()
    area = sides ** 2                                                      # (B, N)
    covered = torch.zeros(b, n)                                            # area of each box covered so far
    centres, placed = torch.zeros(b, n, 2), torch.zeros(b, n, dtype=torch.bool)
    rows = torch.arange(b)
    for j in range(n):
        s = sides[:, j, None, None]                                        # (B, 1, 1)
        low, high = torch.tensor([x0, y0]) + s / 2, torch.tensor([x1, y1]) - s / 2     # (B, 1, 2)
        candidates = low + torch.rand(b, PLACEMENT_TRIES, 2, generator=generator) * (high - low)  # (B, tries, 2)
        gap = (candidates[:, :, None] - centres[:, None, :j]).abs()        # (B, tries, j, 2) centre distances
        reach = (s[..., None] + sides[:, None, :j, None]) / 2              # (B, 1, j, 1)
        side = torch.minimum(s[..., None], sides[:, None, :j, None])         # (B, 1, j, 1) the smaller side
        overlap = torch.minimum(reach - gap, side).clamp(min=0).prod(-1) * placed[:, None, :j]  # (B, tries, j) areas
        fits = (covered[:, None, :j] + overlap <= config.max_overlap * area[:, None, :j] + 1e-6).all(-1)  # (B, tries)
        first = fits.float().argmax(1)                                     # (B,) first candidate that fits
        found = fits.any(1) & valid[:, j]
        centres[:, j] = candidates[rows, first]
        placed[:, j] = found
        covered[:, :j] += overlap[rows, first] * found[:, None]
    return centres, placed


def _background(n: int, config: SceneConfig, generator: torch.Generator) -> torch.Tensor:
    """(B, 3, Hi, Wi) grey backgrounds: a base level plus ``texture`` x the mean of two random gratings.

    A grating sin(a_y + b_x), a_y = 2 pi y sin(angle) / period + phase, b_x = 2 pi x cos(angle) / period,
    is sin(a_y) cos(b_x) + cos(a_y) sin(b_x): a sum of gratings is one (Hi, 4) x (4, Wi) matrix product.
    """
    size = config.size
    grey = GREY_RANGE[0] + torch.rand(n, 1, 1, generator=generator) * (GREY_RANGE[1] - GREY_RANGE[0])
    angle = torch.rand(n, 1, 2, generator=generator) * math.pi            # (B, 1, 2): two gratings
    period = 3 + 5 * torch.rand(n, 1, 2, generator=generator)             # 3 to 8 pixels
    phase = torch.rand(n, 1, 2, generator=generator) * 2 * math.pi
    grey = grey.expand(n, size, size)                                      # (B, Hi, Wi)
    if config.texture > 0:
        grid = torch.arange(size, dtype=torch.float32)[None, :, None]      # (1, Hi or Wi, 1)
        a = 2 * math.pi * grid * angle.sin() / period + phase              # (B, Hi, 2)
        b = 2 * math.pi * grid * angle.cos() / period                      # (B, Wi, 2)
        rows, cols = torch.cat([a.sin(), a.cos()], -1), torch.cat([b.cos(), b.sin()], -1)  # (B, Hi, 4), (B, Wi, 4)
        grey = grey + config.texture * (rows @ cols.transpose(1, 2)) / 2   # mean of the two, in [-1, 1]
    return grey[:, None].expand(n, 3, size, size)                          # (B, 3, Hi, Wi)


def _clutter(n: int, config: SceneConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``config.clutter`` thin straight strokes per scene, in palette colours.

    A stroke is drawn as the pixels that points closer than half a pixel apart along it fall in.

    Returns:
        (B, Hi, Wi) long, 1 + k where stroke k is drawn (later strokes on top), 0 elsewhere;
        (B, strokes, 3) float32, the colour of each stroke.
    """
    k, size = config.clutter, config.size
    centre = torch.rand(n, k, 1, 2, generator=generator) * size          # (B, strokes, 1, 2) x, y
    angle = torch.rand(n, k, 1, generator=generator) * math.pi
    length = size * (0.2 + 0.2 * torch.rand(n, k, 1, generator=generator))  # 0.2 to 0.4 of the side
    colours = PALETTE[torch.randint(len(COLOURS), (n, k), generator=generator)]  # (B, strokes, 3)
    t = length * torch.linspace(-0.5, 0.5, size)                           # (B, strokes, points) along each
    x = (centre[..., 0] + t * angle.cos()).floor().long()                  # (B, strokes, points) pixel columns
    y = (centre[..., 1] + t * angle.sin()).floor().long()
    on_image = (x >= 0) & (x < size) & (y >= 0) & (y < size)
    pixel = torch.where(on_image, y * size + x, size * size)              # off-image points: a spare slot
    ids = torch.zeros(n, size * size + 1, dtype=torch.long)
    for j in range(k):
        ids.scatter_(1, pixel[:, j], j + 1)
    return ids[:, :-1].view(n, size, size), colours


def _paint(background: torch.Tensor, ids: torch.Tensor, colours: torch.Tensor) -> torch.Tensor:
    """Paint everything at once: pixel (y, x) gets ``colours[b, ids - 1]`` where ``ids > 0``.

    Args:
        background: (B, 3, Hi, Wi) float; ids: (B, Hi, Wi) long; colours: (B, c, 3) float, c >= ids.max().
    """
    n = ids.shape[0]
    table = torch.cat([torch.zeros(n, 1, 3), colours], 1).transpose(1, 2)  # (B, 3, 1 + c)
    colour = table.gather(2, ids.view(n, 1, -1).expand(n, 3, -1)).view_as(background)  # (B, 3, Hi, Wi)
    return torch.where(ids[:, None] > 0, colour, background)


# Every phrase :func:`caption` can make, indexed by (shape, colour, size, position): captions by look-up.
_PHRASES = [caption(shape=s, colour=c, size=z, position=p) for s in range(len(SHAPES)) for c in range(len(COLOURS))
            for z in range(len(SIZES)) for p in range(len(POSITIONS))]


def _captions(objects: dict[str, torch.Tensor], counts: torch.Tensor) -> list[str]:
    """One caption per scene: the phrases of its objects, joined by "and"."""
    phrase = ((objects["shapes"] * len(COLOURS) + objects["colours"]) * len(SIZES) + objects["sizes"]) \
        * len(POSITIONS) + objects["positions"]                            # (B, N) index into _PHRASES
    if phrase.shape[1] == 1:
        return [_PHRASES[i] for i in phrase[:, 0].tolist()]
    return [" and ".join(_PHRASES[i] for i in row[:k]) for row, k in zip(phrase.tolist(), counts.tolist())]


def _keep_placed(objects: dict[str, torch.Tensor], centres: torch.Tensor, placed: torch.Tensor):
    """Move the objects that found a place to the first slots (their order kept); return the objects,
    their (B, N, 2) centres and the (B,) number of objects of each scene."""
    order = (~placed).long().sort(dim=1, stable=True).indices             # (B, N) placed first
    gather = lambda t: t.gather(1, order.view(*order.shape, *[1] * (t.dim() - 2)).expand_as(t))  # noqa: E731
    return {k: gather(v) for k, v in objects.items()}, gather(centres), placed.sum(1)


def _draw_images(instances: torch.Tensor, rgb: torch.Tensor, config: SceneConfig,
                 generator: torch.Generator) -> torch.Tensor:
    """(B, 3, Hi, Wi) images: background, then clutter strokes, then the objects, then noise."""
    n, size = instances.shape[0], config.size
    ids, colours = instances, rgb                                          # what to paint: (B, Hi, Wi), (B, c, 3)
    if config.clutter:
        strokes, stroke_rgb = _clutter(n, config, generator)
        ids = torch.where(instances > 0, instances + config.clutter, strokes)  # objects over strokes
        colours = torch.cat([stroke_rgb, rgb], 1)
    images = _paint(_background(n, config, generator), ids, colours)
    if config.noise > 0:
        noise = config.noise * torch.randn(n, 1, size, size, generator=generator)  # the same for R, G and B
        images = (images + noise).clamp(0, 1)
    return images


def make_scenes(n: int, *, generator: torch.Generator, config: SceneConfig = SceneConfig()) -> Scenes:
    """Draw ``n`` scenes.

    Args:
        n: number of scenes B.
        generator: the only source of randomness; the same state gives the same scenes.
        config: what the scenes contain (:class:`SceneConfig`, or a preset: ``preset("hard")``).

    Returns:
        a :class:`Scenes` with N = ``config.num_objects[1]`` object slots per scene.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    objects = _draw_objects(n, config, generator)                          # what: shapes, colours, sides
    centres, placed = _place(objects["sides"], objects["valid"], config, generator)  # where
    objects, centres, counts = _keep_placed(objects, centres, placed)
    valid = torch.arange(placed.shape[1]) < counts[:, None]                # (B, N)
    shapes = torch.where(valid, objects["shapes"], IGNORE_INDEX)           # (B, N)
    inside, corners = rasterise(shapes, centres, objects["sides"], size=config.size)
    instances, boxes = _draw_instances(inside, corners, config.size)       # (B, Hi, Wi), (B, N, 4)
    images = _draw_images(instances, objects["rgb"], config, generator)
    column, row = (boxes[..., :2] * 3).long().clamp(max=2).unbind(-1)      # (B, N) thirds of the image
    objects["positions"] = 3 * row + column
    classes = torch.cat([torch.zeros(n, 1, dtype=torch.long), torch.where(valid, shapes + 1, 0)], 1)  # (B, 1 + N)
    masks = classes.gather(1, instances.view(n, -1)).view_as(instances)   # (B, Hi, Wi) class of each pixel
    words = {k: torch.where(valid, objects[k], IGNORE_INDEX) for k in ("colours", "sizes", "positions")}
    return Scenes(
        images=images, labels=shapes[:, 0].clone(), num_objects=counts, shapes=shapes, **words,
        rgb=objects["rgb"] * valid[..., None], boxes=boxes, masks=masks, instances=instances,
        captions=_captions(objects, counts),
    )
