"""Data sources: the built-in synthetic benchmark, Oxford-IIIT Pet, and folders of images with artifacts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import CLASS_NAMES, ImageData
from .folder import ArtifactFolderWriter, load_artifact_folder

if TYPE_CHECKING:
    from ..config import CascadeConfig

__all__ = ["ImageData", "CLASS_NAMES", "ArtifactFolderWriter", "load_artifact_folder", "load_data"]


def load_data(config: CascadeConfig, cache_dir=None) -> ImageData:
    """The image set a configuration names (``data``, ``data_path``, ``n_images``, ``image_size`` …).

    ``cache_dir``: where generated synthetic sets are kept (:mod:`cascam.data.cache`; the run store's
    ``_data`` folder when a run loads them), so the same set is drawn once; a photo folder is decoded
    into memory-mapped files there once (``load_artifact_folder(memmap_dir=…)``)."""
    if config.data == "synthetic":
        from .cache import cached_synthetic

        return cached_synthetic(
            cache_dir,
            n=config.n_images,
            size=config.image_size,
            variant=config.variant,
            seed=config.seed,
            artifact=config.artifact,
            version=config.benchmark_version,
        )
    if config.data == "folder":
        from pathlib import Path

        # A prepared folder's trimaps (data_scripts/prepare_oxford_pets.py writes trimaps/<stem>.png): the
        # object masks, so the pages measure localisation on the animal (Table 5) as well as on the box.
        trimaps = Path(config.data_path) / "trimaps"
        return load_artifact_folder(
            config.data_path,
            size=config.image_size,
            limit=config.n_images or None,
            seed=config.seed,
            only_with_original=config.only_with_original,
            object_masks_dir=trimaps if trimaps.is_dir() and any(trimaps.glob("*.png")) else None,
            memmap_dir=cache_dir,
        )
    if config.data == "oxford":
        from .oxford import load_oxford_pets

        data = load_oxford_pets(config.data_path, split="all", size=config.image_size)
        if config.n_images and config.n_images < len(data):
            import numpy as np

            idx = np.random.default_rng(config.seed).choice(len(data), config.n_images, replace=False)
            data = data.subset(np.sort(idx))
        return data
    raise ValueError(f"data: unknown source {config.data!r}")
