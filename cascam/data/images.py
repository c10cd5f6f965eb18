"""Reading image files into uint8 tensors, with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

__all__ = ["read_image", "read_images"]


def read_image(path: str | Path, size: int | None = None) -> np.ndarray:
    """One image as uint8 ``(H, W, 3)`` RGB (grayscale/RGBA/palette converted), resized to ``size``² if given.

    Raises ValueError naming the file when it is missing, truncated or not an image.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image: file not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"image: cannot read {p} ({exc.__class__.__name__}: {exc})") from None
    if size is not None and rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def read_images(paths: list[str | Path], size: int) -> tuple[torch.Tensor, list[str]]:
    """Images as uint8 ``(N, 3, size, size)`` plus their file stems."""
    if not paths:
        raise ValueError("images: no image files given")
    arrays = [read_image(p, size) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), [Path(p).stem for p in paths]
