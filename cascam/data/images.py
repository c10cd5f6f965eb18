"""Reading image files into uint8 tensors, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["RESAMPLE", "read_image", "read_images"]


#: The one resampling filter for every image that enters a model (training data, evaluation and
#: ``cascam explain``): Lanczos, like the shared Oxford-IIIT Pet data set.
RESAMPLE = Image.Resampling.LANCZOS


def read_image(path: str | Path, size: int | tuple[int, int] | None = None) -> np.ndarray:
    """One image as uint8 ``(H, W, 3)`` RGB, resized to ``size`` (an int for a square, or ``(W, H)``).

    The single image reader of the package: folder data sets, Oxford-IIIT Pet and ``cascam explain``
    all decode through it, so a model is explained on pixels resampled exactly as it was trained on.
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
    target = None if size is None else ((int(size), int(size)) if isinstance(size, int | np.integer) else tuple(size))
    try:
        with Image.open(p) as im:
            if target is not None and im.format == "JPEG":
                im.draft("RGB", target)
            rgb = im.convert("RGB")  # forces the decode, so a truncated file fails here
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"image: cannot read {p} ({exc.__class__.__name__}: {exc})") from None
    if target is not None and rgb.size != target:
        rgb = rgb.resize(target, RESAMPLE)
    return np.asarray(rgb, dtype=np.uint8)


def read_images(paths: list[str | Path], size: int) -> tuple[torch.Tensor, list[str]]:
    """Images as uint8 ``(N, 3, size, size)`` plus their file stems."""
    if not paths:
        raise ValueError("images: no image files given")
    arrays = [read_image(p, size) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), [Path(p).stem for p in paths]
