"""The built-in "shortcut pets" benchmark: procedurally drawn cats and dogs plus a class-correlated
label box, rendered offline, fast and bit-for-bit deterministic, with exact object and artifact masks.

Why it exists: CasCAM explains a classifier that learned a shortcut (the inserted "Cat"/"Dog" box). Here
the shortcut is perfect by construction (:func:`box_only_accuracy` is 1.0) while the animal alone is
also learnable (a small CNN trained on :attr:`ImageData.clean_images` reaches ≥ 95 %), so whether a
model and an explanation use the animal or the box can be measured against ground truth.

Two drawings exist, chosen by ``version`` (:data:`BENCHMARK_VERSIONS`; default
:data:`DEFAULT_BENCHMARK_VERSION` = 2, and ``benchmark_version`` in :class:`~cascam.config.CascadeConfig`).
Version 1 is kept bit-identical; each has its own string in ``meta["version"]`` (:data:`SYNTHETIC_VERSIONS`).

Drawing version 2 (``meta["version"] == "2"``), faithful to the paper's geometry (Oxford-IIIT Pet
photos, where the pet fills roughly a third to two thirds of the frame and an 86-px box on a 512-px
image may cover part of it):

* Background and noise: as version 1 (below).
* Animal: a whole animal in side view, facing left or right (½ each), rotated by up to ±12°, of
  random fur colour (the same distribution for both classes), 1-px dark outline, drawn at 4× (2× above
  128 px) and box-downsampled. Drawing order, back to front: the two far legs (fur × 0.78), the tail,
  a neck and the body ellipse, the two near legs, the head. Each part tells the class to a different
  degree (ranges in body units, body half-height ≈ 0.55):

  - head (strongly): version 1's heads, scaled 0.55–0.70 and tilted ±20°, set on the front top of the
    body: a cat's pointed upright ears with pink inner ears, almond eyes and a small pink nose; a dog's
    long floppy ears, light muzzle and big black nose;
  - tail (moderately): cat 0.95–1.55 long and 0.10–0.19 thick, leaving the back at 190–215° and
    curling 25–90° upward; dog 0.60–1.15 long and 0.15–0.26 thick, at 195–235°, bending −15–45°;
  - body (weakly): half-length cat 1.05–1.45, dog 1.00–1.40; half-height cat 0.48–0.63, dog 0.51–0.66;
  - legs (barely): length cat 0.70–0.95, dog 0.71–0.96; width 0.19–0.26 and stride ±14° for both.

  Size: a target silhouette area for the whole animal is drawn uniformly in 28–95 % of the frame
  (the unit silhouette is measured on a 32-px-per-unit raster, and the animal scaled to it). The
  offset is uniform along each axis over the positions that keep the animal inside the frame where it
  fits, else over those where it spans the frame (cropped by the edges, like a close-up), and in both
  cases keep the head's bounding box inside up to 15 % of its extent. Cropping makes the realised
  share of the frame smaller than the target: at 64 px its median is ≈ 0.52, its 10–90 % range
  ≈ 0.35–0.61 (:func:`benchmark_geometry` measures it).
* Label box (``artifact1``): the paper's proportion, a square of side ``round(86/512 · size)`` px
  (``box_fraction`` = 86/512, 2.8 % of the frame; at least 3 px), drawn exactly as in version 1 (white
  "Cat" box with a black word, black "Dog" box with a white word); its top-left corner uniform over
  the positions that keep it fully inside the frame, with **no** avoidance of the animal (it covers
  part of the animal in about four images out of five at 64 px).
* ``multi_artifact``: version 1's corner stamp (``artifact2``), placed as in version 1.
  ``multi_object``: a second animal of the same class, 55–75 % the linear size of the first and drawn
  behind it (the two share the target area), placed so that their bounding boxes overlap as little as
  possible.

Masks of version 2 (``(N, H, W)`` bool): ``object_masks`` is the **whole** silhouette (pixels the
animal covers ≥ 50 %), box pixels included — as an Oxford trimap includes the pet under a pasted box —
the union of ``parts["object1"]`` (first animal) and ``parts["object2"]`` (second animal minus the
first); ``parts["object1_visible"]`` is ``object1`` minus every artifact pixel (version 1's reading);
``parts["head"]``, ``["body"]``, ``["legs"]``, ``["tail"]`` split the silhouette (of every animal) by
the part covering most of each pixel (the part drawn on top), so they are disjoint and their union is
``object_masks``; ``artifact1`` / ``artifact2`` and ``artifact_masks`` as in version 1. Object and
artifact masks overlap; ``clean_images`` show the whole animal. Keys: :data:`PART_NAMES_V2`.

Drawing version 1 (``meta["version"] == "1"``):

* Background: a smooth colour field (a random 3×3 grid of RGB colours, bilinearly interpolated) plus
  Gaussian pixel noise (σ = 8), the noise also covering the animals.
* Animal: a head of random fur colour, size 30–50 % of the side (largest extent), rotation ±25°,
  random ear tilt and head aspect, 1-px dark outline. A **cat** has large dark pointed ears on top
  with pink inner ears, almond eyes and a small pink nose; a **dog** has long dark floppy ears hanging
  beside the head, a light muzzle and a big black nose. Shapes are drawn at 4× (2× above 128 px) and
  box-downsampled, so edges are antialiased.
* Label box (``artifact1``): a square of side ``round(box_fraction · size)`` px, always fully inside
  the image and aligned to the pixel grid; cats get a white box, 1-px black outline and the black word
  "Cat", dogs a black box with the white word "Dog" (:func:`~cascam.data.artifacts.draw_label_tile`,
  drawn at 4× and downsampled). Its position is uniform, re-drawn (up to 30 times) while it would hide more than a
  quarter of an animal, so the animal stays recognisable; it may overlap an animal and is drawn on top.
* ``multi_artifact`` adds ``artifact2``, a corner stamp of side ≈ 14 % of the image: a red disc for
  cats, a blue upward triangle for dogs (class-correlated in both colour and shape), in one of the four
  corners, never touching the label box.
* ``multi_object`` draws two animals of the same class (``object2`` is 55–75 % the size of
  ``object1`` and drawn behind it, placed so their bounding boxes overlap as little as possible).

Masks of version 1 (all ``(N, H, W)`` bool, at the final resolution; keys :data:`PART_NAMES`):

* ``object1`` / ``object2``: pixels where the animal covers ≥ 50 % of the pixel, **minus** every
  artifact pixel (and, for ``object2``, minus ``object1``) — they describe what is visible in
  :attr:`ImageData.images`, and object and artifact masks are disjoint.
* ``artifact1`` / ``artifact2``: every pixel the artifact touches (coverage > 0), so that
  ``clean_images`` equals ``images`` exactly outside ``artifact_masks``.

Determinism (both versions): image ``i`` depends only on ``(seed, i, size, variant, box_fraction,
cat_fraction, version)``, never on ``n``, through ``numpy.random.default_rng([seed, i, stream])``. The random draws do not depend
on ``artifact`` either: ``generate_synthetic(n, artifact=False).images`` equals
``generate_synthetic(n).clean_images``. Outputs are bit-identical within one environment; other numpy
or Pillow versions may change pixels (both versions are recorded in ``meta``).
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL
import torch
from PIL import Image, ImageDraw

from .artifacts import LabelStyle, draw_label_tile
from .base import CLASS_NAMES, ImageData

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = [
    "generate_synthetic",
    "write_synthetic",
    "preview_grid",
    "box_only_accuracy",
    "SYNTHETIC_VARIANTS",
    "SYNTHETIC_VERSION",
    "SYNTHETIC_VERSIONS",
    "BENCHMARK_VERSIONS",
    "DEFAULT_BENCHMARK_VERSION",
    "PART_NAMES",
    "PART_NAMES_V2",
    "benchmark_geometry",
]

#: Drawing versions :func:`generate_synthetic` can draw (``version=``); 1 is kept bit-identical.
BENCHMARK_VERSIONS: tuple[int, ...] = (1, 2)

#: The drawing :func:`generate_synthetic` and :class:`~cascam.config.CascadeConfig` use by default.
DEFAULT_BENCHMARK_VERSION = 2

#: The version string recorded in ``meta["version"]`` per drawing version; bump a drawing's string
#: whenever that drawing changes (any pixel of any image).
SYNTHETIC_VERSIONS: dict[int, str] = {1: "1", 2: "2"}

#: The version string of the default drawing.
SYNTHETIC_VERSION = SYNTHETIC_VERSIONS[DEFAULT_BENCHMARK_VERSION]

#: Variants accepted by :func:`generate_synthetic`.
SYNTHETIC_VARIANTS: tuple[str, ...] = ("single", "multi_artifact", "multi_object")

#: Keys of :attr:`ImageData.parts` for synthetic data of drawing version 1 (all present; all-False
#: where absent).
PART_NAMES: tuple[str, ...] = ("object1", "object2", "artifact1", "artifact2")

#: Keys of :attr:`ImageData.parts` for drawing version 2 (all present; all-False where absent):
#: whole silhouettes (``object1``, ``object2``), the first animal minus the artifacts
#: (``object1_visible``), the animal parts (of every animal) and the artifacts.
PART_NAMES_V2: tuple[str, ...] = (
    "object1", "object1_visible", "object2", "head", "body", "legs", "tail", "artifact1", "artifact2",
)

_SIZE_RANGE = (0.30, 0.50)  # largest extent of the (first) animal, fraction of the side
_SECOND_SIZE_RANGE = (0.55, 0.75)  # object2 size relative to object1
_MAX_ROTATION_DEG = 25.0
_NOISE_SIGMA = 8.0
_STAMP_FRACTION = 0.14
_MAX_HIDDEN_FRACTION = 0.25  # an artifact may hide at most this share of an animal
_PLACEMENT_TRIES = 30
_UNIT_EXTENT = 2.65  # largest extent of a unit-scale head with ears (cat ≈ 2.6, dog ≈ 2.7)
_ELLIPSE_POINTS = 36
_BOX_SUPERSAMPLE = 4
# The label box drawn at 4× and downsampled; a thin stroke makes the word legible at 14 px; both words
# share one font size (the wider fills 90 % of the inner width).
_LABEL_STYLE = LabelStyle(supersample=_BOX_SUPERSAMPLE, text_fraction=0.9, stroke_ratio=56, shared_size=True)

# Independent random streams per image, so that "multi_artifact" is "single" plus a stamp (same
# background, animal and label box) and "multi_object" shares background and first animal with
# "single" (its label box may move, as it also avoids hiding the second animal).
_STREAM_BACKGROUND, _STREAM_ANIMAL, _STREAM_ANIMAL2, _STREAM_BOX, _STREAM_STAMP = range(5)

# Palette indices of the label map an animal is drawn into (0 = transparent).
_FUR, _EAR, _OUTLINE, _EYE, _NOSE, _MUZZLE, _INNER_EAR = range(1, 8)


# --------------------------------------------------------------------------------------------------
# Geometry of the animals, in head units (head radius ≈ 1, y pointing down), before pose and scale.


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * np.pi, _ELLIPSE_POINTS, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(angle), math.sin(angle)
    return np.stack([cx + c * x - s * y, cy + s * x + c * y], axis=1)


def _rotate_about(points: np.ndarray, centre: tuple[float, float], angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    d = points - np.asarray(centre)
    return np.stack([centre[0] + c * d[:, 0] - s * d[:, 1], centre[1] + s * d[:, 0] + c * d[:, 1]], axis=1)


def _cat_parts(rng: np.random.Generator) -> list[tuple[np.ndarray, int, bool]]:
    """(polygon, palette index, outlined) in drawing order: ears behind the head, face on top."""
    aspect = rng.uniform(0.92, 1.08)
    parts: list[tuple[np.ndarray, int, bool]] = []
    for side in (-1.0, 1.0):
        tilt = side * math.radians(rng.uniform(-10.0, 10.0))
        base_out, base_in = (side * 0.95, -0.25), (side * 0.18, -0.82)
        tip = (side * 0.85, -1.72)
        ear = _rotate_about(np.array([base_out, tip, base_in]), (side * 0.55, -0.55), tilt)
        inner = _rotate_about(
            np.array([(side * 0.78, -0.45), (side * 0.80, -1.35), (side * 0.38, -0.78)]),
            (side * 0.55, -0.55),
            tilt,
        )
        parts += [(ear, _EAR, True), (inner, _INNER_EAR, False)]
    parts.append((_ellipse(0.0, 0.0, 1.0 * aspect, 0.88), _FUR, True))
    for side in (-1.0, 1.0):
        parts.append((_ellipse(side * 0.38, -0.08, 0.21, 0.12, side * 0.25), _EYE, False))
    parts.append((np.array([(-0.14, 0.28), (0.14, 0.28), (0.0, 0.42)]), _NOSE, False))
    return parts


def _dog_parts(rng: np.random.Generator) -> list[tuple[np.ndarray, int, bool]]:
    """Head, light muzzle and black nose, then long floppy ears hanging over the sides of the head."""
    aspect = rng.uniform(0.92, 1.08)
    parts: list[tuple[np.ndarray, int, bool]] = [
        (_ellipse(0.0, 0.0, 0.88 * aspect, 1.0), _FUR, True),
        (_ellipse(0.0, 0.52, 0.50, 0.38), _MUZZLE, True),
        (_ellipse(0.0, 0.30, 0.21, 0.14), _NOSE, False),
    ]
    for side in (-1.0, 1.0):
        parts.append((_ellipse(side * 0.36, -0.18, 0.12, 0.12), _EYE, False))
    for side in (-1.0, 1.0):
        tilt = side * math.radians(14.0 + rng.uniform(-8.0, 8.0))
        parts.append((_ellipse(side * 0.92, 0.22, 0.36, 0.98, -tilt), _EAR, True))
    return parts


def _palette(rng: np.random.Generator, label: int) -> np.ndarray:
    fur = rng.uniform(40.0, 225.0, size=3)
    pal = np.zeros((8, 3), np.float32)
    pal[_FUR] = fur
    pal[_EAR] = fur * 0.55
    pal[_OUTLINE] = (22.0, 22.0, 22.0)
    pal[_EYE] = (12.0, 12.0, 12.0)
    pal[_NOSE] = (235.0, 125.0, 145.0) if label == 0 else (18.0, 18.0, 18.0)
    pal[_MUZZLE] = fur * 0.5 + 127.5
    pal[_INNER_EAR] = fur * 0.4 + np.array([240.0, 150.0, 170.0]) * 0.6
    return pal


class _Layer:
    """One animal rendered at the final resolution: premultiplied colour and coverage, (H, W[, 3])."""

    def __init__(self, colour: np.ndarray, alpha: np.ndarray) -> None:
        self.colour = colour
        self.alpha = alpha

    @property
    def mask(self) -> np.ndarray:
        return self.alpha >= 0.5


def _pose_animal(rng: np.random.Generator, label: int, extent_px: float) -> tuple[list, np.ndarray]:
    """Parts of one animal posed (rotated, scaled) around the origin, in final-pixel units."""
    parts = _cat_parts(rng) if label == 0 else _dog_parts(rng)
    angle = math.radians(rng.uniform(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG))
    scale = extent_px / _UNIT_EXTENT
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]]) * scale
    posed = [(poly @ rot, index, outlined) for poly, index, outlined in parts]
    points = np.concatenate([p for p, _, _ in posed])
    return posed, np.array([points.min(0), points.max(0)])


def _render_animal(
    posed: list, offset: np.ndarray, pal: np.ndarray, size: int, supersample: int, outline_px: int
) -> _Layer:
    """Draw the posed parts shifted by ``offset`` at ``supersample``× and box-downsample to ``size``."""
    points = np.concatenate([p for p, _, _ in posed]) + offset
    # Draw only the pixel-aligned bounding box of the animal (a quarter of the image at most).
    x0, y0 = np.clip(np.floor(points.min(0)).astype(int) - 1, 0, size)
    x1, y1 = np.clip(np.ceil(points.max(0)).astype(int) + 2, 0, size)
    colour = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    if x1 <= x0 or y1 <= y0:
        return _Layer(colour, alpha)
    w, h = x1 - x0, y1 - y0
    canvas = Image.new("L", (w * supersample, h * supersample), 0)
    draw = ImageDraw.Draw(canvas)
    origin = np.array([x0, y0], np.float64)
    width = outline_px * supersample
    for poly, index, outlined in posed:
        xy = [tuple(p) for p in ((poly + offset - origin) * supersample).tolist()]
        if outlined:
            draw.polygon(xy, fill=index, outline=_OUTLINE, width=width)
        else:
            draw.polygon(xy, fill=index)
    # Box downsampling through a histogram of palette indices per output pixel: counts @ palette is
    # the premultiplied colour (palette[0] = 0 is transparent) and 1 - counts[0] the coverage.
    labels = np.asarray(canvas).reshape(h, supersample, w, supersample).astype(np.intp)
    pixel = (np.arange(h)[:, None, None, None] * w + np.arange(w)[None, None, :, None]) * len(pal)
    counts = np.bincount((pixel + labels).ravel(), minlength=h * w * len(pal)).reshape(h * w, len(pal))
    counts = counts.astype(np.float32) / supersample**2
    colour[y0:y1, x0:x1] = (counts @ pal).reshape(h, w, 3)
    alpha[y0:y1, x0:x1] = (1.0 - counts[:, 0]).reshape(h, w)
    return _Layer(colour, alpha)


def _place(rng: np.random.Generator, bbox: np.ndarray, size: int) -> np.ndarray:
    """A uniform offset that keeps the posed bounding box inside the image."""
    low = -bbox[0]
    high = size - bbox[1]
    return np.array([rng.uniform(low[k], max(low[k], high[k])) for k in range(2)])


def _box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    (ax0, ay0), (ax1, ay1) = a
    (bx0, by0), (bx1, by1) = b
    return max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))


# --------------------------------------------------------------------------------------------------
# Artifacts: patches rendered once per call, pasted at integer positions.


@functools.lru_cache(maxsize=16)
def _stamp(label: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The corner stamp, ``(colour (side, side, 3) float32, coverage (side, side) float32)``."""
    s = _BOX_SUPERSAMPLE
    hi = side * s
    canvas = Image.new("L", (hi, hi), 0)
    draw = ImageDraw.Draw(canvas)
    if label == 0:
        draw.ellipse([0, 0, hi - 1, hi - 1], fill=255)
        colour = (225.0, 35.0, 35.0)
    else:
        draw.polygon([(hi / 2, 0), (hi - 1, hi - 1), (0, hi - 1)], fill=255)
        colour = (35.0, 80.0, 230.0)
    alpha = np.asarray(canvas, np.float32).reshape(side, s, side, s).mean((1, 3)) / 255.0
    return np.broadcast_to(np.array(colour, np.float32), (side, side, 3)), alpha


def _hidden_fraction(window: tuple[int, int, int], animals: list[np.ndarray]) -> float:
    """Largest share of any animal's pixels inside the square window ``(x, y, side)``."""
    x, y, side = window
    worst = 0.0
    for mask in animals:
        area = mask.sum()
        if area:
            worst = max(worst, mask[y : y + side, x : x + side].sum() / area)
    return worst


def _choose_box(rng: np.random.Generator, size: int, side: int, animals: list[np.ndarray]) -> tuple[int, int]:
    best, best_hidden = (0, 0), math.inf
    for _ in range(_PLACEMENT_TRIES):
        x, y = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        hidden = _hidden_fraction((x, y, side), animals)
        if hidden <= _MAX_HIDDEN_FRACTION:
            return x, y
        if hidden < best_hidden:
            best, best_hidden = (x, y), hidden
    return best


def _choose_stamp(
    rng: np.random.Generator, size: int, side: int, box: tuple[int, int, int], animals: list[np.ndarray]
) -> tuple[int, int]:
    margin = int(rng.integers(1, 4))
    bx, by, bs = box
    candidates = []
    for corner in rng.permutation(4).tolist():
        x = margin if corner % 2 == 0 else size - side - margin
        y = margin if corner < 2 else size - side - margin
        # Keep one pixel of background between the stamp and the label box.
        touches = x <= bx + bs and bx <= x + side and y <= by + bs and by <= y + side
        hidden = _hidden_fraction((x, y, side), animals)
        if not touches and hidden <= _MAX_HIDDEN_FRACTION:
            return x, y
        candidates.append((touches, hidden, x, y))
    _, _, x, y = min(candidates)
    return x, y


# --------------------------------------------------------------------------------------------------
# One image.


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    grid = rng.uniform(0.0, 255.0, size=(3, 3, 3)).astype(np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) * (2.0 / size)
    i0 = np.minimum(t.astype(int), 1)
    f = (t - i0)[:, None]
    # Interpolate rows, then columns (bilinear on the 3×3 grid).
    rows = grid[i0] * (1 - f[:, :, None]) + grid[i0 + 1] * f[:, :, None]  # (size, 3, 3)
    cols = rows[:, i0] * (1 - f.T[:, :, None]) + rows[:, i0 + 1] * f.T[:, :, None]  # (size, size, 3)
    return cols


def _place_artifacts(stream, size, variant, box, box_side, stamp_side, animals):
    """The label box's mask at ``box`` = (x, y), and the corner stamp's position (``multi_artifact``
    only, drawn from its own stream; None otherwise)."""
    bx, by = box
    artifact1 = np.zeros((size, size), bool)
    artifact1[by : by + box_side, bx : bx + box_side] = True
    stamp_pos = None
    if variant == "multi_artifact":
        stamp_pos = _choose_stamp(stream(_STREAM_STAMP), size, stamp_side, (bx, by, box_side), animals)
    return artifact1, stamp_pos


def _start_image(seed: int, index: int, size: int, cat_fraction: float):
    """What every drawing version draws first for image ``index``: its random streams, the render
    settings for ``size``, the background with its noise, and the label (from the animal's stream,
    which the caller goes on drawing from)."""

    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([seed, index, k])

    supersample = 4 if size <= 128 else 2
    outline_px = max(1, round(size / 64))
    rng_bg = stream(_STREAM_BACKGROUND)
    background = _background(rng_bg, size)
    noise = rng_bg.normal(0.0, _NOISE_SIGMA, size=(size, size, 3)).astype(np.float32)
    rng = stream(_STREAM_ANIMAL)
    label = 0 if rng.random() < cat_fraction else 1
    return stream, supersample, outline_px, background, noise, rng, label


def _render_one(
    seed: int, index: int, size: int, variant: str, cat_fraction: float, box_side: int, stamp_side: int
) -> dict[str, np.ndarray | int]:
    stream, supersample, outline_px, background, noise, rng, label = _start_image(seed, index, size, cat_fraction)
    extent = rng.uniform(*_SIZE_RANGE) * size
    posed1, bbox1 = _pose_animal(rng, label, extent)
    offset1 = _place(rng, bbox1, size)
    pal1 = _palette(rng, label)
    layers = [_render_animal(posed1, offset1, pal1, size, supersample, outline_px)]

    if variant == "multi_object":
        rng2 = stream(_STREAM_ANIMAL2)
        posed2, bbox2 = _pose_animal(rng2, label, extent * rng2.uniform(*_SECOND_SIZE_RANGE))
        placed1 = bbox1 + offset1
        best, best_overlap = None, math.inf
        for _ in range(_PLACEMENT_TRIES):
            offset2 = _place(rng2, bbox2, size)
            overlap = _box_overlap(placed1, bbox2 + offset2)
            if overlap < best_overlap:
                best, best_overlap = offset2, overlap
            if overlap == 0.0:
                break
        layers.append(_render_animal(posed2, best, _palette(rng2, label), size, supersample, outline_px))

    # Composite back to front: object2 behind object1.
    clean = background
    for layer in reversed(layers):
        clean = clean * (1.0 - layer.alpha[:, :, None]) + layer.colour
    clean = np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)

    animal_masks = [layer.mask for layer in layers]
    if len(animal_masks) == 2:
        animal_masks[1] = animal_masks[1] & ~animal_masks[0]

    bx, by = _choose_box(stream(_STREAM_BOX), size, box_side, animal_masks)
    artifact1, stamp_pos = _place_artifacts(stream, size, variant, (bx, by), box_side, stamp_side, animal_masks)
    return {
        "label": label,
        "clean": clean,
        "animals": animal_masks,
        "box": (bx, by),
        "artifact1": artifact1,
        "stamp": stamp_pos,
    }


def _add_artifacts(item: dict, box_side: int, stamp_side: int) -> tuple[np.ndarray, np.ndarray]:
    """The image with its artifacts and the artifact2 mask (artifact1 is the box square)."""
    label = item["label"]
    image = item["clean"].copy()
    bx, by = item["box"]
    image[by : by + box_side, bx : bx + box_side] = np.asarray(draw_label_tile(label, box_side, _LABEL_STYLE))
    artifact2 = np.zeros(image.shape[:2], bool)
    if item["stamp"] is not None:
        sx, sy = item["stamp"]
        colour, alpha = _stamp(label, stamp_side)
        window = image[sy : sy + stamp_side, sx : sx + stamp_side].astype(np.float32)
        a = alpha[:, :, None]
        image[sy : sy + stamp_side, sx : sx + stamp_side] = np.rint(window * (1.0 - a) + colour * a).astype(
            np.uint8
        )
        artifact2[sy : sy + stamp_side, sx : sx + stamp_side] = alpha > 0
    return image, artifact2


# --------------------------------------------------------------------------------------------------
# Drawing version 2: a whole animal in side view (head, body, four legs, tail), 30–65 % of the frame.

# Part ids of the version-2 part map (0 = no animal), in the order of :data:`PART_NAMES_V2`'s parts.
_HEAD, _BODY, _LEGS, _TAIL = range(1, 5)
_ANIMAL_PARTS: tuple[str, ...] = ("head", "body", "legs", "tail")
_FAR = 8  # palette index of the far-side legs (the fur, darker)
_V2_PALETTE_SIZE = 9
_V2_AREA_RANGE = (0.28, 0.95)  # target silhouette area ÷ frame area of the whole animal (before cropping)
_V2_MAX_ROTATION_DEG = 12.0
_V2_HEAD_OVERHANG = 0.15  # the head's bounding box may leave the frame by this share of its extent
_V2_AREA_GRID = 32.0  # pixels per body unit of the low-resolution area estimate
_V2_BOX_FRACTION = 86 / 512  # the paper's box: 86 px on 512 px images, 2.8 % of the frame


def _animal_params(rng: np.random.Generator, label: int) -> dict[str, float]:
    """The shape parameters of one version-2 animal, in body units (body half-height ≈ 0.55).

    How much each part tells the class: the head completely (drawn separately, :func:`_cat_parts` /
    :func:`_dog_parts`); the tail moderately (cats' tails are longer, thinner and curl upward, dogs'
    shorter, thicker and straighter, with overlapping ranges); the body weakly (cats slightly longer
    and flatter, ranges overlapping by about 85 %); the legs barely (ranges shifted by 0.01).
    Every draw is made whatever the class, so the number of draws is the same for cats and dogs.
    """
    cat = label == 0
    u = rng.uniform
    return {
        "facing": 1.0 if rng.random() < 0.5 else -1.0,
        "rotation": u(-_V2_MAX_ROTATION_DEG, _V2_MAX_ROTATION_DEG),
        "body_length": u(1.05, 1.45) if cat else u(1.00, 1.40),  # half-length
        "body_height": u(0.48, 0.63) if cat else u(0.51, 0.66),  # half-height
        "leg_length": u(0.70, 0.95) if cat else u(0.71, 0.96),
        "leg_width": u(0.19, 0.26),
        "leg_spread": u(0.55, 0.72),  # legs at ± spread × half-length
        "stride": u(-14.0, 14.0),  # degrees; near and far legs swing opposite ways
        "tail_length": u(0.95, 1.55) if cat else u(0.60, 1.15),
        "tail_width": u(0.10, 0.19) if cat else u(0.15, 0.26),
        "tail_angle": u(190.0, 215.0) if cat else u(195.0, 235.0),  # degrees; 180 = straight back, 270 = up
        "tail_turn": u(25.0, 90.0) if cat else u(-15.0, 45.0),  # degrees the tail bends towards "up"
        "head_scale": u(0.55, 0.70),  # head units per body unit
        "head_tilt": u(-20.0, 20.0),
        "head_x": u(0.80, 1.00),  # head centre: × half-length in front of the body centre
        "head_y": u(1.00, 1.30),  # … and × half-height above it
    }


def _leg(x: float, top: float, length: float, width: float, tilt: float) -> np.ndarray:
    """A leg hanging from ``(x, top)``, swung by ``tilt`` radians, with a paw pointing forward (+x)."""
    w = width / 2.0
    pts = np.array([(-w, 0.0), (w, 0.0), (w, length - width * 0.55), (w + width * 0.35, length), (-w, length)])
    return _rotate_about(pts, (0.0, 0.0), tilt) + np.array([x, top])


def _tail(start: tuple[float, float], length: float, width: float, angle: float, turn: float) -> np.ndarray:
    """A tapering tail along an arc from ``start`` (angles in degrees, y pointing down)."""
    steps = 10
    t = np.linspace(0.0, 1.0, steps)
    a = np.radians(angle + turn * t)  # direction along the arc; turning towards 270° bends it upward
    ds = length / (steps - 1)
    dirs = np.stack([np.cos(a), np.sin(a)], axis=1)
    centre = np.asarray(start) + np.concatenate([[[0.0, 0.0]], np.cumsum(dirs[:-1] * ds, axis=0)])
    normal = np.stack([-dirs[:, 1], dirs[:, 0]], axis=1)
    half = (width / 2.0) * (1.0 - 0.5 * t)[:, None]
    tip = centre[-1] + dirs[-1] * width * 0.25
    return np.concatenate([centre + normal * half, tip[None], (centre - normal * half)[::-1]])


def _animal_v2_parts(rng: np.random.Generator, label: int) -> tuple[list, dict[str, float]]:
    """(polygon, palette index, outlined, part id) in drawing order, in body units, posed (facing,
    rotation) around the body centre; plus the parameters and the head's polygon count (last ones)."""
    p = _animal_params(rng, label)
    rx, ry = p["body_length"], p["body_height"]
    head = _cat_parts(rng) if label == 0 else _dog_parts(rng)
    stride = math.radians(p["stride"])
    spread = p["leg_spread"] * rx
    width = p["leg_width"]
    parts: list[tuple[np.ndarray, int, bool, int]] = []
    # Far-side legs (darker, a little higher and behind the body), then the tail and the body.
    for x, tilt in ((spread - 0.12, -stride), (-spread - 0.12, stride)):
        parts.append((_leg(x, ry * 0.15, p["leg_length"] * 0.97, width, tilt), _FAR, True, _LEGS))
    tail = _tail((-rx * 0.85, -ry * 0.30), p["tail_length"], p["tail_width"], p["tail_angle"], p["tail_turn"])
    parts.append((tail, _FUR, True, _TAIL))
    parts.append((_ellipse(rx * 0.72, -ry * 0.55, 0.30, 0.42, -0.5), _FUR, True, _BODY))  # neck
    parts.append((_ellipse(0.0, 0.0, rx, ry), _FUR, True, _BODY))
    for x, tilt in ((spread, stride), (-spread, -stride)):
        parts.append((_leg(x, ry * 0.30, p["leg_length"], width, tilt), _FUR, True, _LEGS))
    # The head (v1's cat or dog face), scaled, tilted and set on the front of the body.
    hs = p["head_scale"]
    c, s = math.cos(math.radians(p["head_tilt"])), math.sin(math.radians(p["head_tilt"]))
    head_rot = np.array([[c, s], [-s, c]]) * hs
    centre = np.array([rx * p["head_x"], -ry * p["head_y"]])
    parts += [(poly @ head_rot + centre, index, outlined, _HEAD) for poly, index, outlined in head]
    # Pose: mirror to face left or right, then rotate the whole animal.
    a = math.radians(p["rotation"])
    c, s = math.cos(a), math.sin(a)
    pose = np.array([[p["facing"], 0.0], [0.0, 1.0]]) @ np.array([[c, s], [-s, c]])
    return [(poly @ pose, index, outlined, part) for poly, index, outlined, part in parts], p


def _unit_area(parts: list) -> float:
    """Silhouette area of posed parts (in squared units), rasterised at :data:`_V2_AREA_GRID` px per unit."""
    points = np.concatenate([q[0] for q in parts])
    low = points.min(0)
    k = _V2_AREA_GRID
    w, h = (np.ceil((points.max(0) - low) * k).astype(int) + 2).tolist()
    canvas = Image.new("1", (w, h), 0)
    draw = ImageDraw.Draw(canvas)
    for poly, *_ in parts:
        draw.polygon([tuple(q) for q in ((poly - low) * k + 1.0).tolist()], fill=1)
    return float(np.count_nonzero(np.asarray(canvas))) / k**2


def _bbox(polys: list[np.ndarray]) -> np.ndarray:
    points = np.concatenate(polys)
    return np.array([points.min(0), points.max(0)])


def _place_v2(rng: np.random.Generator, bbox: np.ndarray, head: np.ndarray, size: int) -> np.ndarray:
    """A uniform offset per axis: the animal inside the frame where it fits, else covering the frame
    along that axis (cropped at the edges, like a close-up photo), and always its head's bounding box
    inside up to :data:`_V2_HEAD_OVERHANG` of the head's extent."""
    offset = np.zeros(2)
    for k in range(2):
        a, b = -bbox[0, k], size - bbox[1, k]
        lo_full, hi_full = min(a, b), max(a, b)
        margin = _V2_HEAD_OVERHANG * (head[1, k] - head[0, k])
        lo_head, hi_head = -head[0, k] - margin, size - head[1, k] + margin
        lo, hi = max(lo_full, lo_head), min(hi_full, hi_head)
        if lo > hi:  # cannot hold both: the head wins
            lo, hi = (lo_head, hi_head) if lo_head <= hi_head else ((lo_head + hi_head) / 2,) * 2
        offset[k] = rng.uniform(lo, hi)
    return offset


@functools.lru_cache(maxsize=8)
def _count_luts(npal: int, supersample: int) -> tuple[list[int], ...]:
    """Look-up tables of canvas codes → s² (selected) or 0: drawn at all, then each animal part."""
    codes = np.arange(256)
    full = supersample**2
    selections = [codes > 0] + [codes // npal == k for k in range(1, len(_ANIMAL_PARTS) + 1)]
    return tuple(np.where(sel, full, 0).tolist() for sel in selections)


def _render_animal_v2(
    parts: list, offset: np.ndarray, pal: np.ndarray, size: int, supersample: int, outline_px: int
) -> tuple[_Layer, np.ndarray]:
    """Like :func:`_render_animal`, plus the part map: per pixel the part id covering most of it."""
    npal = len(pal)
    colour = np.zeros((size, size, 3), np.float32)
    alpha = np.zeros((size, size), np.float32)
    part_map = np.zeros((size, size), np.uint8)
    points = np.concatenate([q[0] for q in parts]) + offset
    x0, y0 = np.clip(np.floor(points.min(0)).astype(int) - 1, 0, size)
    x1, y1 = np.clip(np.ceil(points.max(0)).astype(int) + 2, 0, size)
    if x1 <= x0 or y1 <= y0:
        return _Layer(colour, alpha), part_map
    w, h = x1 - x0, y1 - y0
    # One canvas of codes palette index + npal × part id; Pillow's box reduction then gives the
    # premultiplied colour (through a palette), the coverage and the sub-pixel count of every part
    # (through look-up tables that map a code to s² or 0, so the reduced value is an exact count).
    canvas = Image.new("L", (w * supersample, h * supersample), 0)
    draw = ImageDraw.Draw(canvas)
    origin = np.array([x0, y0], np.float64)
    width = outline_px * supersample
    for poly, index, outlined, part in parts:
        xy = [tuple(q) for q in ((poly + offset - origin) * supersample).tolist()]
        if outlined:
            draw.polygon(xy, fill=index + npal * part, outline=_OUTLINE + npal * part, width=width)
        else:
            draw.polygon(xy, fill=index + npal * part)
    rgb = np.rint(pal[np.arange(256) % npal]).astype(np.uint8)
    indexed = Image.frombytes("P", canvas.size, canvas.tobytes())
    indexed.putpalette(rgb.tobytes(), "RGB")
    colour[y0:y1, x0:x1] = np.asarray(indexed.convert("RGB").reduce(supersample), np.float32)
    covered_lut, *part_luts = _count_luts(npal, supersample)

    def count(lut: list[int]) -> np.ndarray:
        return np.asarray(canvas.point(lut).reduce(supersample))

    alpha[y0:y1, x0:x1] = count(covered_lut).astype(np.float32) / supersample**2
    by_part = np.stack([count(lut) for lut in part_luts])
    layer = _Layer(colour, alpha)
    part_map[y0:y1, x0:x1] = by_part.argmax(0) + 1
    part_map[~layer.mask] = 0
    return layer, part_map


def _palette_v2(rng: np.random.Generator, label: int) -> np.ndarray:
    pal = np.zeros((_V2_PALETTE_SIZE, 3), np.float32)
    pal[:8] = _palette(rng, label)
    pal[_FAR] = pal[_FUR] * 0.78
    return pal


def _pose_v2(rng: np.random.Generator, label: int, area_px: float) -> tuple[list, dict]:
    """One animal scaled to a silhouette of ``area_px`` pixels (before cropping), around the origin."""
    parts, params = _animal_v2_parts(rng, label)
    scale = math.sqrt(area_px / _unit_area(parts))
    params["scale_px"] = scale
    return [(poly * scale, index, outlined, part) for poly, index, outlined, part in parts], params


def _render_one_v2(
    seed: int, index: int, size: int, variant: str, cat_fraction: float, box_side: int, stamp_side: int
) -> dict:
    stream, supersample, outline_px, background, noise, rng, label = _start_image(seed, index, size, cat_fraction)
    area = rng.uniform(*_V2_AREA_RANGE) * size * size
    ratio = rng.uniform(*_SECOND_SIZE_RANGE) if variant == "multi_object" else 0.0
    area1 = area / (1.0 + ratio**2)  # two animals share the target area (object2 ratio× the linear size)
    parts1, _ = _pose_v2(rng, label, area1)
    head1 = _bbox([q[0] for q in parts1 if q[3] == _HEAD])
    bbox1 = _bbox([q[0] for q in parts1])
    offset1 = _place_v2(rng, bbox1, head1, size)
    animals = [_render_animal_v2(parts1, offset1, _palette_v2(rng, label), size, supersample, outline_px)]

    if variant == "multi_object":
        rng2 = stream(_STREAM_ANIMAL2)
        parts2, _ = _pose_v2(rng2, label, area1 * ratio**2)
        head2 = _bbox([q[0] for q in parts2 if q[3] == _HEAD])
        bbox2 = _bbox([q[0] for q in parts2])
        placed1 = bbox1 + offset1
        best, best_overlap = None, math.inf
        for _ in range(_PLACEMENT_TRIES):
            offset2 = _place_v2(rng2, bbox2, head2, size)
            overlap = _box_overlap(placed1, bbox2 + offset2)
            if overlap < best_overlap:
                best, best_overlap = offset2, overlap
            if overlap == 0.0:
                break
        animals.append(_render_animal_v2(parts2, best, _palette_v2(rng2, label), size, supersample, outline_px))

    clean = background
    for layer, _ in reversed(animals):
        clean = clean * (1.0 - layer.alpha[:, :, None]) + layer.colour
    clean = np.clip(np.rint(clean + noise), 0, 255).astype(np.uint8)

    silhouettes = [layer.mask for layer, _ in animals]
    part_map = animals[0][1].copy()
    if len(silhouettes) == 2:
        silhouettes[1] = silhouettes[1] & ~silhouettes[0]
        part_map[silhouettes[1]] = animals[1][1][silhouettes[1]]

    # The label box: uniform over the frame (fully inside), wherever the animal is.
    bx, by = (int(v) for v in stream(_STREAM_BOX).integers(0, size - box_side + 1, size=2))
    artifact1, stamp_pos = _place_artifacts(stream, size, variant, (bx, by), box_side, stamp_side, silhouettes)
    return {
        "label": label,
        "clean": clean,
        "animals": silhouettes,
        "part_map": part_map,
        "box": (bx, by),
        "artifact1": artifact1,
        "stamp": stamp_pos,
    }


# --------------------------------------------------------------------------------------------------
# Public API.


#: Images per task when the drawing runs in worker processes (small enough that a chunk in flight costs
#: little memory even at 224 px).
_CHUNK = 128


def generation_workers(n: int) -> int:
    """Worker processes for drawing ``n`` images: ``$CASCAM_GEN_WORKERS`` if set, else one per CPU core
    (at most 4) from 512 images on, else 1 (starting processes would cost more than it saves)."""
    import os

    env = os.environ.get("CASCAM_GEN_WORKERS")
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"CASCAM_GEN_WORKERS: expected a positive integer; got {env!r}")
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, 4) if n >= 512 else 1


def _draw_range(task: tuple, first: int, count: int) -> dict:
    """Images ``first .. first + count − 1`` of the stream ``task`` describes, as arrays (the body of
    :func:`generate_synthetic`; image i depends only on the seed and i, so ranges can be drawn anywhere)."""
    seed, size, variant, cat_fraction, box_side, stamp_side, version, artifact = task
    render = _render_one if version == 1 else _render_one_v2
    part_names = PART_NAMES if version == 1 else PART_NAMES_V2
    images = np.zeros((count, size, size, 3), np.uint8)
    clean = np.zeros((count, size, size, 3), np.uint8)
    labels = np.zeros(count, np.int64)
    parts = {name: np.zeros((count, size, size), bool) for name in part_names}
    for i in range(count):
        item = render(seed, first + i, size, variant, cat_fraction, box_side, stamp_side)
        labels[i] = item["label"]
        clean[i] = item["clean"]
        animals = item["animals"]
        if artifact:
            images[i], artifact2 = _add_artifacts(item, box_side, stamp_side)
            covered = item["artifact1"] | artifact2
            parts["artifact1"][i] = item["artifact1"]
            parts["artifact2"][i] = artifact2
        else:
            images[i] = item["clean"]
            covered = np.zeros((size, size), bool)
        if version == 1:
            parts["object1"][i] = animals[0] & ~covered
            if len(animals) > 1:
                parts["object2"][i] = animals[1] & ~covered
        else:
            parts["object1"][i] = animals[0]
            parts["object1_visible"][i] = animals[0] & ~covered
            if len(animals) > 1:
                parts["object2"][i] = animals[1]
            for k, name in enumerate(_ANIMAL_PARTS, start=1):
                parts[name][i] = item["part_map"] == k
    return {"images": images, "clean": clean, "labels": labels, "parts": parts}


def _draw_task(args: tuple) -> dict:
    return _draw_range(*args)


def _draw_chunks(task: tuple, start: int, n: int):
    """``(offset, arrays)`` for consecutive ranges covering images ``start .. start + n − 1``, drawn in
    :func:`generation_workers` forked processes when that is more than one and the system is Linux
    (the same arrays either way)."""
    import multiprocessing as mp
    import sys

    offsets = list(range(0, n, _CHUNK))
    jobs = [(task, start + lo, min(_CHUNK, n - lo)) for lo in offsets]
    workers = generation_workers(n)
    # fork only on Linux: on macOS forking a process that has loaded system frameworks is unsafe
    if workers <= 1 or len(jobs) <= 1 or not sys.platform.startswith("linux"):
        yield from ((lo, _draw_task(job)) for lo, job in zip(offsets, jobs, strict=True))
        return
    with mp.get_context("fork").Pool(min(workers, len(jobs))) as pool:
        yield from zip(offsets, pool.imap(_draw_task, jobs), strict=True)


def generate_synthetic(
    n: int,
    *,
    size: int = 64,
    variant: str = "single",
    seed: int = 0,
    artifact: bool = True,
    cat_fraction: float = 0.5,
    box_fraction: float | None = None,
    version: int = DEFAULT_BENCHMARK_VERSION,
    start: int = 0,
) -> ImageData:
    """Generate ``n`` synthetic cat/dog images with a class-correlated label box ("shortcut pets").

    Args:
        n: number of images. Image ``i`` depends only on ``(seed, i)`` and the other parameters, so
            ``generate_synthetic(100)`` starts with the images of ``generate_synthetic(10)``.
        size: side of the square images in pixels (≥ 16).
        variant: ``"single"`` (one animal, one label box), ``"multi_artifact"`` (plus a class-coloured
            corner stamp, ``artifact2``) or ``"multi_object"`` (two animals of the same class, the
            second smaller).
        seed: base seed.
        start: index of the first image: the call returns images ``start .. start + n − 1`` of the
            stream (e.g. pre-training images far from any run's own, without drawing those first).
        artifact: draw the artifacts; with ``False``, ``images`` equals ``clean_images`` and the
            artifact masks are all False (the animals and backgrounds are unchanged).
        cat_fraction: probability that an image is a cat (label 0); each label is drawn independently.
        box_fraction: side of the square label box as a fraction of the image side (default: 0.22 in
            version 1, the paper's 86/512 in version 2).
        version: the drawing (:data:`BENCHMARK_VERSIONS`): 1, heads with a box that avoids them; 2, whole
            animals filling a third to two thirds of the frame with the paper's box anywhere (see the
            module docstring).

    Returns:
        :class:`ImageData` with ``images`` and ``clean_images`` uint8 ``(N, 3, size, size)``, labels
        (0 = cat, 1 = dog), ``object_masks`` / ``artifact_masks`` bool ``(N, size, size)``, ``parts``
        with the keys of :data:`PART_NAMES` (version 1) or :data:`PART_NAMES_V2` (version 2), and
        ``meta`` holding every parameter and the drawing's :data:`SYNTHETIC_VERSIONS` string. In
        version 1 object and artifact masks are disjoint (the visible animal); in version 2
        ``object_masks`` is the whole silhouette, box pixels included.

    Example:
        >>> data = generate_synthetic(8, seed=1)
        >>> data.images.shape, box_only_accuracy(data)
        (torch.Size([8, 3, 64, 64]), 1.0)
    """
    if n < 0:
        raise ValueError(f"n must be ≥ 0; got {n}")
    if size < 16:
        raise ValueError(f"size must be ≥ 16 px; got {size}")
    if isinstance(version, bool) or version not in BENCHMARK_VERSIONS:
        raise ValueError(f"version: unknown drawing {version!r}; choose one of {', '.join(map(str, BENCHMARK_VERSIONS))}")
    if variant not in SYNTHETIC_VARIANTS:
        raise ValueError(f"variant: unknown {variant!r}; choose one of {', '.join(SYNTHETIC_VARIANTS)}")
    if not 0.0 <= cat_fraction <= 1.0:
        raise ValueError(f"cat_fraction must lie in [0, 1]; got {cat_fraction}")
    if box_fraction is None:
        box_fraction = 0.22 if version == 1 else _V2_BOX_FRACTION
    if not 0.0 < box_fraction <= 0.5:
        raise ValueError(f"box_fraction must lie in (0, 0.5]; got {box_fraction}")
    box_side = max(6, round(box_fraction * size)) if version == 1 else max(3, round(box_fraction * size))
    stamp_side = max(5, round(_STAMP_FRACTION * size))
    part_names = PART_NAMES if version == 1 else PART_NAMES_V2
    if isinstance(start, bool) or not isinstance(start, int) or start < 0:
        raise ValueError(f"start must be an integer ≥ 0; got {start!r}")
    # Channels-first from the start: chunks (drawn channels-last) are transposed into place, so the
    # images are never held twice (a channels-last array plus its channels-first copy doubled the
    # generator's peak memory: 18.4 GB for 16,000 images at 224 px whose data take 13.7 GB).
    images = np.zeros((n, 3, size, size), np.uint8)
    clean = np.zeros((n, 3, size, size), np.uint8)
    labels = np.zeros(n, np.int64)
    parts = {name: np.zeros((n, size, size), bool) for name in part_names}
    task = (seed, size, variant, cat_fraction, box_side, stamp_side, version, artifact)
    for lo, chunk in _draw_chunks(task, start, n):
        hi = lo + len(chunk["labels"])
        images[lo:hi] = chunk["images"].transpose(0, 3, 1, 2)
        clean[lo:hi] = chunk["clean"].transpose(0, 3, 1, 2)
        labels[lo:hi] = chunk["labels"]
        for name in part_names:
            parts[name][lo:hi] = chunk["parts"][name]

    part_tensors = {k: torch.from_numpy(v) for k, v in parts.items()}
    prefix = "" if version == 1 else f"v{version}-"
    return ImageData(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        object_masks=part_tensors["object1"] | part_tensors["object2"],
        artifact_masks=part_tensors["artifact1"] | part_tensors["artifact2"],
        clean_images=torch.from_numpy(clean),
        parts=part_tensors,
        names=[f"{prefix}{variant}-s{seed}-{i:05d}" for i in range(start, start + n)],
        class_names=CLASS_NAMES,
        meta={
            "source": "synthetic",
            "version": SYNTHETIC_VERSIONS[version],
            "benchmark_version": version,
            "n": n,
            "start": start,
            "size": size,
            "variant": variant,
            "seed": seed,
            "artifact": artifact,
            "cat_fraction": cat_fraction,
            "box_fraction": box_fraction,
            "box_side_px": box_side,
            "stamp_side_px": stamp_side if variant == "multi_artifact" else 0,
            "numpy_version": np.__version__,
            "pillow_version": PIL.__version__,
        },
    )


def benchmark_geometry(data: ImageData) -> pd.DataFrame:
    """How big the animal is and how the label box sits on it, one row per image.

    Columns: ``image`` (name), ``label`` (class index), ``class_name``, ``animal_share`` (object-mask
    pixels ÷ frame pixels), ``visible_share`` (object pixels outside every artifact ÷ frame),
    ``box_share`` (label-box pixels ÷ frame), ``box_over_animal`` (share of the box's pixels that lie
    on the object mask) and ``animal_hidden`` (share of the object's pixels under the box). The box is
    ``parts["artifact1"]`` when present, else ``artifact_masks``. With drawing version 1 the object
    mask is the visible animal (box pixels excluded), so its last two columns are 0 by construction;
    with version 2 it is the whole silhouette.
    """
    import pandas as pd

    if data.object_masks is None or data.artifact_masks is None:
        raise ValueError("benchmark_geometry needs object_masks and artifact_masks")
    obj = data.object_masks.flatten(1)
    box = data.parts.get("artifact1", data.artifact_masks).flatten(1)
    art = data.artifact_masks.flatten(1)
    frame = obj.shape[1]
    area = obj.sum(1).double()
    box_area = box.sum(1).double()
    under = (obj & box).sum(1).double()
    return pd.DataFrame(
        {
            "image": list(data.names),
            "label": data.labels.numpy(),
            "class_name": [data.class_names[int(k)] for k in data.labels],
            "animal_share": (area / frame).numpy(),
            "visible_share": ((obj & ~art).sum(1).double() / frame).numpy(),
            "box_share": (box_area / frame).numpy(),
            "box_over_animal": (under / box_area.clamp(min=1)).numpy(),
            "animal_hidden": (under / area.clamp(min=1)).numpy(),
        }
    )


def box_only_accuracy(data: ImageData) -> float:
    """Accuracy of the rule "white label box → cat, black label box → dog" (validity condition (a)).

    Predicts the class of image ``n`` from the mean luma :math:`0.299R + 0.587G + 0.114B` of
    ``images[n]`` inside ``parts["artifact1"][n]`` (cat when above 127.5). Images without a label box
    count as errors. On :func:`generate_synthetic` output with ``artifact=True`` this is 1.0.
    """
    box = data.parts.get("artifact1")
    if box is None or not bool(box.any()):
        raise ValueError("box_only_accuracy needs parts['artifact1'] with at least one label box")
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    luma = (data.images.float() * weights).sum(1)  # (N, H, W)
    area = box.sum((1, 2))
    mean_luma = (luma * box).sum((1, 2)) / area.clamp(min=1)
    predicted = (mean_luma <= 127.5).long()  # 0 = cat (white box), 1 = dog (black box)
    correct = (predicted == data.labels) & (area > 0)
    return float(correct.float().mean())


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path)


def write_synthetic(data: ImageData, out_dir: str | Path) -> Path:
    """Write a data set as PNG files a person can browse; return ``out_dir``.

    Layout: ``images/<name>.png``, ``clean/<name>.png`` (when ``clean_images`` exists),
    ``masks/<name>_object.png``, ``masks/<name>_artifact.png`` and ``masks/<name>_<part>.png`` for
    every part that is non-empty in at least one image (masks are 0/255 grey PNGs), and ``labels.csv``
    with columns ``name,label,class_name,variant``. Works for any :class:`ImageData`.
    """
    out = Path(out_dir)
    for sub in ("images", "clean", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    images = data.images.permute(0, 2, 3, 1).numpy()
    clean = None if data.clean_images is None else data.clean_images.permute(0, 2, 3, 1).numpy()
    masks = {"object": data.object_masks, "artifact": data.artifact_masks}
    masks.update({k: v for k, v in data.parts.items() if bool(v.any())})
    masks_np = {k: v.numpy().astype(np.uint8) * 255 for k, v in masks.items() if v is not None}
    variant = str(data.meta.get("variant", ""))
    rows = []
    for i, name in enumerate(data.names):
        _save_png(images[i], out / "images" / f"{name}.png")
        if clean is not None:
            _save_png(clean[i], out / "clean" / f"{name}.png")
        for key, m in masks_np.items():
            _save_png(m[i], out / "masks" / f"{name}_{key}.png")
        label = int(data.labels[i])
        rows.append((name, label, data.class_names[label], variant))
    with open(out / "labels.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("name", "label", "class_name", "variant"))
        writer.writerows(rows)
    return out


_PART_COLOURS = ("yellow", "magenta", "orange", "red", "white", "blue")


def preview_grid(data: ImageData, n: int = 16, columns: int = 8, parts: tuple[str, ...] = ()) -> Figure:
    """A figure of the first ``n`` images, object masks outlined in green and artifact masks in cyan,
    and each of ``parts`` (keys of ``data.parts``, e.g. ``("head", "tail")``) in its own colour
    (yellow, magenta, orange, red, white, blue, in that order)."""
    from matplotlib.figure import Figure

    n = min(n, len(data))
    columns = max(1, min(columns, n))
    rows = max(1, math.ceil(n / columns))
    fig = Figure(figsize=(1.6 * columns, 1.75 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if k >= n:
            continue
        ax.imshow(data.images[k].permute(1, 2, 0).numpy(), interpolation="nearest")
        outlined = [(data.object_masks, "lime"), (data.artifact_masks, "cyan")]
        outlined += [(data.parts[name], c) for name, c in zip(parts, _PART_COLOURS, strict=False)]
        for masks, colour in outlined:
            if masks is not None and bool(masks[k].any()):
                ax.contour(masks[k].numpy().astype(np.float32), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(data.class_names[int(data.labels[k])], fontsize=8)
    return fig
