"""Reading photos into uint8 arrays: one decoder and one resampling for every image that enters a model.

Errors name the file; many files are decoded in threads.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["RESAMPLE", "fit_photo", "read_image", "read_images", "map_in_threads"]


#: The one resampling filter for every image that enters a model (training data, evaluation and
#: ``cascam explain``): Lanczos.
RESAMPLE = Image.Resampling.LANCZOS


def _target(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """``(W, H)`` from an int (a square) or a pair; None stays None."""
    return None if size is None else ((int(size), int(size)) if isinstance(size, int | np.integer) else tuple(size))


def read_image(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """One image as uint8 ``(H, W, 3)`` RGB, resized to ``size`` (an int for a square, or ``(W, H)``).

    The single image reader of the package: folder data sets and ``cascam explain`` decode through
    it, and photos that arrive decoded (Oxford-IIIT Pet through torchvision, the folder writer) end
    with its last step, :func:`fit_photo`; so a model is explained on pixels resampled exactly as it
    was trained on.
    Grayscale, palette, CMYK and RGBA files are converted to RGB (an alpha channel is dropped, not
    composited). JPEGs use Pillow's draft mode, which decodes directly at a reduced scale when the
    file is at least twice the requested size; resizing uses :data:`RESAMPLE` (Lanczos).

    Raises:
        FileNotFoundError: ``image: file not found: <path>``.
        ValueError: the file is truncated, corrupt or not an image (the message names the file).
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image: file not found: {p}")
    target = _target(size)
    try:
        with Image.open(p) as im:
            if target is not None and im.format == "JPEG":
                im.draft("RGB", target)
            rgb = im.convert("RGB")  # forces the decode, so a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image: cannot read {p} ({exc.__class__.__name__}: {exc})") from None
    return np.asarray(fit_photo(rgb, target), dtype=np.uint8)


def fit_photo(photo: Image.Image, size: int | tuple[int, int] | None) -> Image.Image:
    """A decoded photo as RGB at ``size`` (an int for a square, ``(W, H)``, or None to keep it), resized
    with :data:`RESAMPLE`: the last step of :func:`read_image`, for photos that arrive decoded (from
    torchvision, or handed to a writer). Returns ``photo`` itself when nothing changes."""
    rgb = photo if photo.mode == "RGB" else photo.convert("RGB")
    target = _target(size)
    if target is not None and rgb.size != target:
        rgb = rgb.resize(target, RESAMPLE)
    return rgb


def read_images(paths: list[str | Path], size: int) -> tuple[torch.Tensor, list[str]]:
    """Images as uint8 ``(N, 3, size, size)`` plus their file stems."""
    if not paths:
        raise ValueError("images: no image files given")
    arrays = [read_image(p, size) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), [Path(p).stem for p in paths]


def map_in_threads(fn: Callable[[int], None], n: int, workers: int | None = None) -> None:
    """Call ``fn(0)`` … ``fn(n − 1)`` on up to ``workers`` threads (default: up to 8); in this thread when
    ``workers`` is 1 or ``n`` < 16. Pillow releases the GIL while decoding, so threads decode in parallel."""
    workers = workers or max(1, min(8, os.cpu_count() or 1))
    if workers == 1 or n < 16:
        for i in range(n):
            fn(i)
        return
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, range(n)):
            pass
