"""The built-in "shortcut pets" benchmark: procedurally drawn cat and dog heads plus a class-correlated
label box, rendered offline, fast and bit-for-bit deterministic, with exact object and artifact masks.

Why it exists: CasCAM explains a classifier that learned a shortcut (the inserted "Cat"/"Dog" box). Here
the shortcut is perfect by construction (:func:`box_only_accuracy` is 1.0) while the animal alone is
also learnable (a small CNN trained on :attr:`ImageData.clean_images` reaches ≥ 95 %), so whether a
model and an explanation use the animal or the box can be measured against ground truth.

Drawing (version ``SYNTHETIC_VERSION``):

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

Masks (all ``(N, H, W)`` bool, at the final resolution):

* ``object1`` / ``object2``: pixels where the animal covers ≥ 50 % of the pixel, **minus** every
  artifact pixel (and, for ``object2``, minus ``object1``) — they describe what is visible in
  :attr:`ImageData.images`, and object and artifact masks are disjoint.
* ``artifact1`` / ``artifact2``: every pixel the artifact touches (coverage > 0), so that
  ``clean_images`` equals ``images`` exactly outside ``artifact_masks``.

Determinism: image ``i`` depends only on ``(seed, i, size, variant, box_fraction, cat_fraction)``,
never on ``n``, through ``numpy.random.default_rng([seed, i, stream])``. The random draws do not depend
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
    from matplotlib.figure import Figure

__all__ = [
    "generate_synthetic",
    "write_synthetic",
    "preview_grid",
    "box_only_accuracy",
    "SYNTHETIC_VARIANTS",
    "SYNTHETIC_VERSION",
    "PART_NAMES",
]

#: Bump whenever the drawing changes (any pixel of any image).
SYNTHETIC_VERSION = "1"

#: Variants accepted by :func:`generate_synthetic`.
SYNTHETIC_VARIANTS: tuple[str, ...] = ("single", "multi_artifact", "multi_object")

#: Keys of :attr:`ImageData.parts` for synthetic data (all present; all-False where absent).
PART_NAMES: tuple[str, ...] = ("object1", "object2", "artifact1", "artifact2")

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


def _render_one(
    seed: int, index: int, size: int, variant: str, cat_fraction: float, box_side: int, stamp_side: int
) -> dict[str, np.ndarray | int]:
    def stream(k: int) -> np.random.Generator:
        return np.random.default_rng([seed, index, k])

    supersample = 4 if size <= 128 else 2
    outline_px = max(1, round(size / 64))

    rng_bg = stream(_STREAM_BACKGROUND)
    background = _background(rng_bg, size)
    noise = rng_bg.normal(0.0, _NOISE_SIGMA, size=(size, size, 3)).astype(np.float32)

    rng = stream(_STREAM_ANIMAL)
    label = 0 if rng.random() < cat_fraction else 1
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
    artifact1 = np.zeros((size, size), bool)
    artifact1[by : by + box_side, bx : bx + box_side] = True
    stamp_pos = None
    if variant == "multi_artifact":
        stamp_pos = _choose_stamp(stream(_STREAM_STAMP), size, stamp_side, (bx, by, box_side), animal_masks)
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
# Public API.


def generate_synthetic(
    n: int,
    *,
    size: int = 64,
    variant: str = "single",
    seed: int = 0,
    artifact: bool = True,
    cat_fraction: float = 0.5,
    box_fraction: float = 0.22,
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
        artifact: draw the artifacts; with ``False``, ``images`` equals ``clean_images`` and the
            artifact masks are all False (the animals and backgrounds are unchanged).
        cat_fraction: probability that an image is a cat (label 0); each label is drawn independently.
        box_fraction: side of the square label box as a fraction of the image side.

    Returns:
        :class:`ImageData` with ``images`` and ``clean_images`` uint8 ``(N, 3, size, size)``, labels
        (0 = cat, 1 = dog), ``object_masks`` / ``artifact_masks`` bool ``(N, size, size)`` (disjoint),
        ``parts`` with the keys of :data:`PART_NAMES`, and ``meta`` holding every parameter and
        :data:`SYNTHETIC_VERSION`.

    Example:
        >>> data = generate_synthetic(8, seed=1)
        >>> data.images.shape, box_only_accuracy(data)
        (torch.Size([8, 3, 64, 64]), 1.0)
    """
    if n < 0:
        raise ValueError(f"n must be ≥ 0; got {n}")
    if size < 16:
        raise ValueError(f"size must be ≥ 16 px; got {size}")
    if variant not in SYNTHETIC_VARIANTS:
        raise ValueError(f"variant: unknown {variant!r}; choose one of {', '.join(SYNTHETIC_VARIANTS)}")
    if not 0.0 <= cat_fraction <= 1.0:
        raise ValueError(f"cat_fraction must lie in [0, 1]; got {cat_fraction}")
    if not 0.0 < box_fraction <= 0.5:
        raise ValueError(f"box_fraction must lie in (0, 0.5]; got {box_fraction}")
    box_side = max(6, round(box_fraction * size))
    stamp_side = max(5, round(_STAMP_FRACTION * size))

    images = np.zeros((n, size, size, 3), np.uint8)
    clean = np.zeros((n, size, size, 3), np.uint8)
    labels = np.zeros(n, np.int64)
    parts = {name: np.zeros((n, size, size), bool) for name in PART_NAMES}
    for i in range(n):
        item = _render_one(seed, i, size, variant, cat_fraction, box_side, stamp_side)
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
        parts["object1"][i] = animals[0] & ~covered
        if len(animals) > 1:
            parts["object2"][i] = animals[1] & ~covered

    def to_chw(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a).permute(0, 3, 1, 2).contiguous()

    part_tensors = {k: torch.from_numpy(v) for k, v in parts.items()}
    return ImageData(
        images=to_chw(images),
        labels=torch.from_numpy(labels),
        object_masks=part_tensors["object1"] | part_tensors["object2"],
        artifact_masks=part_tensors["artifact1"] | part_tensors["artifact2"],
        clean_images=to_chw(clean),
        parts=part_tensors,
        names=[f"{variant}-s{seed}-{i:05d}" for i in range(n)],
        class_names=CLASS_NAMES,
        meta={
            "source": "synthetic",
            "version": SYNTHETIC_VERSION,
            "n": n,
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


def preview_grid(data: ImageData, n: int = 16, columns: int = 8) -> Figure:
    """A figure of the first ``n`` images, object masks outlined in green and artifact masks in cyan."""
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
        for masks, colour in ((data.object_masks, "lime"), (data.artifact_masks, "cyan")):
            if masks is not None and bool(masks[k].any()):
                ax.contour(masks[k].numpy().astype(np.float32), levels=[0.5], colors=colour, linewidths=0.8)
        ax.set_title(data.class_names[int(data.labels[k])], fontsize=8)
    return fig
