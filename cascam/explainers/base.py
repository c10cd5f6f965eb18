"""The explainer protocol: a model and a batch in, one saliency map per image out.

The cascade depends only on this protocol, so any saliency method can drive it (Cas-GradCAM …).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["Explainer"]


@runtime_checkable
class Explainer(Protocol):
    """Computes saliency maps for a batch.

    ``__call__(model, images, targets)`` with ``images`` a float tensor ``(B, 3, H, W)`` already
    normalised for the model and on its device, ``targets`` int64 ``(B,)`` class indices, returns a
    float tensor ``(B, H, W)`` on the same device: the raw (not normalised) map, upsampled
    bilinearly to the input size. Implementations must leave the model as they found it (no hooks
    left behind, same train/eval mode).
    """

    name: str

    def __call__(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...
