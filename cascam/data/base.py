"""In-memory image sets: the one container every data source (synthetic, Oxford, COCO, folders) returns.

Images are kept as uint8 tensors so a data set of a few thousand images fits in memory and is
converted to float on the model's device, batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["ImageData", "CLASS_NAMES"]

CLASS_NAMES: tuple[str, ...] = ("cat", "dog")


@dataclass
class ImageData:
    """A labelled image set with optional ground-truth masks.

    Attributes:
        images: uint8 tensor ``(N, 3, H, W)``, RGB, the images the classifier sees (with artifacts).
        labels: int64 tensor ``(N,)``, class index into ``class_names`` (0 = cat, 1 = dog).
        object_masks: bool tensor ``(N, H, W)`` — union of all objects (animals) per image, or None
            when the source has no object annotation (metrics that need it are skipped).
        artifact_masks: bool tensor ``(N, H, W)`` — union of all artifacts per image, or None.
        clean_images: uint8 tensor ``(N, 3, H, W)`` — the same images without artifacts, or None.
        parts: optional dict of per-element bool masks ``(N, H, W)``, e.g. ``{"object1": ...,
            "object2": ..., "artifact1": ..., "artifact2": ...}`` (all-False where absent).
        names: one identifier per image (file name or synthetic index).
        class_names: names of the classes, index-aligned with ``labels``.
        meta: free-form description of the source (generator parameters, folder path …).
    """

    images: torch.Tensor
    labels: torch.Tensor
    object_masks: torch.Tensor | None = None
    artifact_masks: torch.Tensor | None = None
    clean_images: torch.Tensor | None = None
    parts: dict[str, torch.Tensor] = field(default_factory=dict)
    names: list[str] = field(default_factory=list)
    class_names: tuple[str, ...] = CLASS_NAMES
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, 3, H, W); got {self.images.dtype} "
                f"{tuple(self.images.shape)}"
            )
        n, _, h, w = self.images.shape
        if self.labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},); got {tuple(self.labels.shape)}")
        self.labels = self.labels.long()
        for name in ("object_masks", "artifact_masks"):
            m = getattr(self, name)
            if m is not None and tuple(m.shape) != (n, h, w):
                raise ValueError(f"{name} must have shape ({n}, {h}, {w}); got {tuple(m.shape)}")
            if m is not None:
                setattr(self, name, m.bool())
        if self.clean_images is not None and self.clean_images.shape != self.images.shape:
            raise ValueError(
                f"clean_images must match images {tuple(self.images.shape)}; "
                f"got {tuple(self.clean_images.shape)}"
            )
        for key, m in self.parts.items():
            if tuple(m.shape) != (n, h, w):
                raise ValueError(f"parts[{key!r}] must have shape ({n}, {h}, {w}); got {tuple(m.shape)}")
        if not self.names:
            self.names = [str(i) for i in range(n)]
        if len(self.names) != n:
            raise ValueError(f"names has {len(self.names)} entries for {n} images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, index: np.ndarray | torch.Tensor | list[int]) -> ImageData:
        """Return the images at ``index`` (all masks and names follow)."""
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)

        def take(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t[idx]

        return ImageData(
            images=self.images[idx],
            labels=self.labels[idx],
            object_masks=take(self.object_masks),
            artifact_masks=take(self.artifact_masks),
            clean_images=take(self.clean_images),
            parts={k: v[idx] for k, v in self.parts.items()},
            names=[self.names[i] for i in idx.tolist()],
            class_names=self.class_names,
            meta=dict(self.meta),
        )
