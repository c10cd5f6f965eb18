"""Oxford-IIIT Pet through torchvision: its splits, its file-name rules, and the data set as cat/dog
images with pet masks (optionally with the paper's label boxes pasted on).

The folder format (``load_artifact_folder``, ``ArtifactFolderWriter``) lives in :mod:`cascam.data.folder`;
its names are also importable from here.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .artifacts import artifact_rng, insert_label_box
from .base import ImageData
from .folder import ArtifactFolderWriter, label_from_name, load_artifact_folder, stratified_indices
from .images import fit_photo, map_in_threads

__all__ = [
    "ArtifactFolderWriter",
    "label_from_name",
    "breed_from_name",
    "load_artifact_folder",
    "load_oxford_pets",
    "oxford_pets_splits",
    "stratified_indices",
]


def breed_from_name(name: str) -> str:
    """The breed part of an Oxford-IIIT Pet name: ``"Abyssinian_12.jpg"`` → ``"Abyssinian"``."""
    return Path(name).stem.rsplit("_", 1)[0]


def oxford_pets_splits(
    root: str | os.PathLike, split: str = "trainval", download: bool = False
) -> list[tuple]:
    """torchvision's ``OxfordIIITPet`` for ``split`` (``"all"`` = trainval then test), with image names.

    Returns a list of ``(dataset, names)``; ``names[i]`` is the file name of ``dataset[i]``
    (``"Abyssinian_1.jpg"``), read from ``annotations/<split>.txt`` in the same order torchvision reads it.
    Each item of a dataset is ``(PIL image, (breed index, PIL trimap))``.
    """
    from torchvision.datasets import OxfordIIITPet

    if split not in ("trainval", "test", "all"):
        raise ValueError(f"split must be 'trainval', 'test' or 'all'; got {split!r}")
    base = Path(root) / "oxford-iiit-pet"
    out = []
    for part in ("trainval", "test") if split == "all" else (split,):
        try:
            ds = OxfordIIITPet(root, split=part, target_types=["category", "segmentation"], download=download)
        except RuntimeError as exc:
            if download:
                raise
            raise FileNotFoundError(
                f"Oxford-IIIT Pet not found: expected {base}/images and {base}/annotations "
                f"(torchvision's layout); pass download=True to fetch it ({exc})"
            ) from None
        with open(base / "annotations" / f"{part}.txt") as f:
            names = [line.split()[0] + ".jpg" for line in f if line.strip()]
        if len(names) != len(ds):
            raise RuntimeError(
                f"{base}/annotations/{part}.txt lists {len(names)} images; torchvision read {len(ds)}"
            )
        out.append((ds, names))
    return out


def load_oxford_pets(
    root: str | os.PathLike,
    split: str = "trainval",
    size: int = 224,
    download: bool = False,
    artifacts: bool = False,
    seed: int = 0,
    workers: int | None = None,
) -> ImageData:
    """Oxford-IIIT Pet as a cat/dog :class:`ImageData` with pet masks.

    Photos are resized (squashed, Lanczos) to ``size × size``. Labels follow the file-name rule
    (uppercase first letter = cat = 0, else dog = 1). ``object_masks`` are the trimap's pet pixels
    (value 1; the border value 3 counts as background), resized nearest.

    Args:
        root: folder that holds (or will hold) ``oxford-iiit-pet/`` in torchvision's layout.
        split: ``"trainval"``, ``"test"`` or ``"all"`` (both, trainval first).
        size: output side in pixels.
        download: let torchvision download the data set (about 800 MB) when it is absent.
        artifacts: paste the paper's label box (:func:`~cascam.data.artifacts.insert_label_box`) on
            every image at ``size`` px, seeded per image by ``(seed, name)``; then ``artifact_masks``
            and ``clean_images`` (the photos without the box) are filled in.
        seed: seed for the artifact positions.
        workers: decoding threads (default: up to 8).

    Returns:
        :class:`ImageData` with ``images (N, 3, size, size)``, ``labels``, ``object_masks`` and,
        with ``artifacts=True``, ``artifact_masks`` and ``clean_images``.
    """
    splits = oxford_pets_splits(root, split, download)
    items = [(ds, i, name) for ds, names in splits for i, name in enumerate(names)]
    n = len(items)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    clean = np.empty_like(images) if artifacts else None
    object_masks = np.empty((n, size, size), dtype=np.bool_)
    artifact_masks = np.zeros((n, size, size), dtype=np.bool_) if artifacts else None
    labels = np.array([label_from_name(name) for _, _, name in items], dtype=np.int64)

    def load(k: int) -> None:
        ds, i, name = items[k]
        image, (_, trimap) = ds[i]
        photo = fit_photo(image, size)
        object_masks[k] = np.asarray(trimap.resize((size, size), Image.NEAREST)) == 1
        if artifacts:
            clean[k] = np.asarray(photo).transpose(2, 0, 1)
            photo, _, artifact_masks[k] = insert_label_box(photo, int(labels[k]), artifact_rng(seed, name))
        images[k] = np.asarray(photo).transpose(2, 0, 1)

    map_in_threads(load, n, workers)
    return ImageData(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels),
        object_masks=torch.from_numpy(object_masks),
        artifact_masks=None if artifact_masks is None else torch.from_numpy(artifact_masks),
        clean_images=None if clean is None else torch.from_numpy(clean),
        names=[name for _, _, name in items],
        meta={
            "source": "oxford-iiit-pet",
            "root": str(root),
            "split": split,
            "size": size,
            "artifacts": artifacts,
            "seed": seed if artifacts else None,
        },
    )
