"""The paper's shortcut artifact: a "Cat"/"Dog" text-label box, drawn and pasted on a photo.

Cats get a white box with a 1-px black outline and the black word "Cat"; dogs a black box with
the white word "Dog", so the box colour alone predicts the class (as in the paper's Oxford-IIIT Pet
images). Every label box of the package is drawn here, the synthetic benchmark's too
(in its own :class:`LabelStyle`).
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = [
    "BOX_FRACTION",
    "CORNER_RANGE",
    "LABEL_WORDS",
    "LabelStyle",
    "PAPER_STYLE",
    "artifact_rng",
    "draw_label_tile",
    "insert_label_box",
]

#: Box side ÷ image side: 86 px on the paper's 512 × 512 images.
BOX_FRACTION: float = 86 / 512

#: Range of the box's top-left corner, as fractions of the image width and height:
#: x in [0, 0.7 W], y in [0, 0.9 H] (integers, inclusive). Measured on the paper's 7,390 source
#: boxes (x_min 0 … 358, y_min 0 … 460 at 512 px), so a box can run off the bottom edge (about 8% do)
#: but never off the left, top or right.
CORNER_RANGE: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.7), (0.0, 0.9))

#: The word written in the box for each class index.
LABEL_WORDS: tuple[str, ...] = ("Cat", "Dog")

_TEXT_WIDTH_FRACTION = 0.8  # the word spans about 80% of the box width, as in the paper's images


def artifact_rng(seed: int, name: str) -> np.random.Generator:
    """A generator for one image, derived from the global ``seed`` and the image's name.

    The box of an image then depends only on (seed, name), not on which other images are processed
    or in what order, so a subset or a parallel run reproduces the same boxes.
    """
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


@dataclass(frozen=True)
class LabelStyle:
    """How the word is fitted into a label box; fill, outline, word and centring are the same in every style.

    Attributes:
        supersample: the tile is drawn at this multiple of its side and box-averaged down (antialiasing).
        text_fraction: the width the word should span, as a fraction of the box side (or of the side
            inside the outline, with ``shared_size``).
        stroke_ratio: drawn side ÷ stroke width of the word, at least 1 px (56: one pixel of stroke per
            56 px of box, which keeps the word legible at 14 px); 0 = no stroke.
        shared_size: False: each word at its own font size, shrunk from 0.45 × side until it spans at
            most ``text_fraction`` of the side (the paper's boxes). True: both words at one size,
            scaled from their widths at a font size equal to the side so that the wider word spans
            ``text_fraction`` of the side inside the outline (the synthetic benchmark's boxes).
    """

    supersample: int = 1
    text_fraction: float = _TEXT_WIDTH_FRACTION
    stroke_ratio: float = 0.0
    shared_size: bool = False


#: The paper's label box: drawn at its final size, no stroke, each word spanning about 80% of the box.
PAPER_STYLE = LabelStyle()


def _shrink_to_fit(size_px: int, word: str, target_width: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at the largest size ≤ ``size_px`` whose rendering of ``word`` fits ``target_width``."""
    size = max(1, size_px)
    font = ImageFont.load_default(size=size)
    if not isinstance(font, ImageFont.FreeTypeFont):  # Pillow without FreeType: fixed bitmap font
        return font
    while size > 1:
        x0, _, x1, _ = font.getbbox(word)
        if x1 - x0 <= target_width:
            break
        size -= 1
        font = ImageFont.load_default(size=size)
    return font


def _scale_to_fit(side: int, inner: int, fraction: float, stroke: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font at one size for every word of :data:`LABEL_WORDS`: the widest, measured at
    size ``side``, is scaled to span ``fraction`` of ``inner`` pixels."""
    probe = ImageFont.load_default(size=side)
    if not isinstance(probe, ImageFont.FreeTypeFont):
        return probe
    widest = max(
        probe.getbbox(w, stroke_width=stroke)[2] - probe.getbbox(w, stroke_width=stroke)[0] for w in LABEL_WORDS
    )
    return ImageFont.load_default(size=max(1, int(side * fraction * inner / widest)))


def draw_label_tile(label: int, side: int, style: LabelStyle = PAPER_STYLE) -> Image.Image:
    """The ``side`` × ``side`` RGB box for class ``label`` (0 = cat, 1 = dog), before pasting.

    Cat: white fill, black outline, black "Cat". Dog: black fill, white "Dog". The outline is one
    pixel at the drawing scale (``style.supersample``), the word Pillow's default font, centred and
    sized as ``style`` says (:data:`PAPER_STYLE`: about 80% of the box width).
    """
    return _label_tile(label, side, style).copy()


@functools.lru_cache(maxsize=64)
def _label_tile(label: int, side: int, style: LabelStyle = PAPER_STYLE) -> Image.Image:
    """Cached tile (rendering text is the slow part); never modified, only pasted or copied from."""
    if label not in (0, 1):
        raise ValueError(f"label must be 0 (cat) or 1 (dog); got {label!r}")
    if side < 1:
        raise ValueError(f"box side must be at least 1 px; got {side}")
    s = style.supersample
    hi = side * s
    word = LABEL_WORDS[label]
    fill, ink = ((255, 255, 255), (0, 0, 0)) if label == 0 else ((0, 0, 0), (255, 255, 255))
    tile = Image.new("RGB", (hi, hi), fill)
    draw = ImageDraw.Draw(tile)
    draw.rectangle((0, 0, hi - 1, hi - 1), outline=(0, 0, 0), width=s)  # invisible on the dog's black fill
    stroke = max(1, round(hi / style.stroke_ratio)) if style.stroke_ratio else 0
    target = max(1, round(style.text_fraction * hi))
    if style.shared_size:
        font = _scale_to_fit(hi, hi - 2 * s, style.text_fraction, stroke)
    else:
        font = _shrink_to_fit(round(0.45 * hi), word, target)
    if isinstance(font, ImageFont.FreeTypeFont):
        draw.text((hi / 2, hi / 2), word, fill=ink, font=font, anchor="mm", stroke_width=stroke, stroke_fill=ink)
    else:  # Bitmap fallback: render at native size and scale the word up to the target width.
        x0, y0, x1, y1 = font.getbbox(word)
        small = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(small).text((-x0, -y0), word, fill=255, font=font)
        scale = target / small.width
        small = small.resize((target, max(1, round(small.height * scale))), Image.NEAREST)
        tile.paste(Image.new("RGB", small.size, ink), ((hi - small.width) // 2, (hi - small.height) // 2), small)
    if s == 1:
        return tile
    blocks = np.asarray(tile, np.float32).reshape(side, s, side, s, 3).mean((1, 3))
    return Image.fromarray(np.round(blocks).astype(np.uint8))


def insert_label_box(
    image: Image.Image,
    label: int,
    rng: np.random.Generator | int | None,
    box_fraction: float = BOX_FRACTION,
    corner_range: tuple[tuple[float, float], tuple[float, float]] = CORNER_RANGE,
) -> tuple[Image.Image, tuple[int, int, int, int], np.ndarray]:
    """Paste the class's label box on a copy of ``image`` at a random position.

    The box is a square of side ``round(box_fraction · min(W, H))`` px (86 px at 512 px). Its top-left
    corner ``(x, y)`` is drawn uniformly from the integers ``[⌊a·W⌋, ⌊b·W⌋] × [⌊c·H⌋, ⌊d·H⌋]`` with
    ``corner_range = ((a, b), (c, d))``. The default, :data:`CORNER_RANGE`, reproduces the paper's
    placement, where the bottom border may cut the box; ``((-s, 1), (-s, 1))`` with ``s`` the box
    fraction lets any border cut it. Parts of the box outside the image are dropped.

    Args:
        image: the photo (converted to RGB).
        label: 0 = cat (white box, black outline, black "Cat"), 1 = dog (black box, white "Dog").
        rng: a numpy ``Generator`` or an integer seed (see :func:`artifact_rng` for per-image seeds).
        box_fraction: box side ÷ the shorter image side.
        corner_range: range of the top-left corner as fractions of (width, height).

    Returns:
        ``(image_with_box, box, mask)``: the new RGB image; the visible box ``(xmin, ymin, xmax, ymax)``
        in pixels, half-open (columns ``xmin … xmax-1``, as in numpy slicing), clipped to the image;
        and a bool array ``(H, W)`` that is True inside the visible box.

    Example:
        >>> img, box, mask = insert_label_box(Image.new("RGB", (512, 512)), 0, rng=0)
        >>> box[2] - box[0], int(mask.sum()) <= 86 * 86
        (86, True)
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    out = image.convert("RGB")  # a copy, also when the input is RGB
    width, height = out.size
    side = max(1, round(box_fraction * min(width, height)))
    (x_lo, x_hi), (y_lo, y_hi) = corner_range
    x = int(rng.integers(int(np.floor(x_lo * width)), int(np.floor(x_hi * width)) + 1))
    y = int(rng.integers(int(np.floor(y_lo * height)), int(np.floor(y_hi * height)) + 1))
    out.paste(_label_tile(int(label), side), (x, y))  # Pillow clips a paste that runs off the image
    xmin, ymin = min(max(x, 0), width), min(max(y, 0), height)
    xmax, ymax = min(max(x + side, 0), width), min(max(y + side, 0), height)
    mask = np.zeros((height, width), dtype=np.bool_)
    mask[ymin:ymax, xmin:xmax] = True
    return out, (xmin, ymin, xmax, ymax), mask
