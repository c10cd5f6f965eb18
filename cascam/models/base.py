"""The CAM-exact network shape every cascam model shares: features → global average pooling →
bias-free linear head, with input normalisation inside the model.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["CamNet"]


class CamNet(nn.Module):
    """A classifier whose class activation map is exact.

    .. math::
        f(x)_y = \\sum_c W_{y,c} \\frac{1}{hw} \\sum_{i,j} A_c(x)[i,j], \\qquad
        \\mathrm{CAM}(x)[i,j] = \\sum_c W_{y,c} A_c(x)[i,j]

    Args:
        features: module mapping a normalised image ``(B, 3, H, W)`` to feature maps
            ``(B, C, h, w)`` (the last conv block's output, A in the formula).
        num_features: C.
        num_classes: number of classes.
        mean, std: per-channel input normalisation applied inside ``forward``; the model takes
            images in [0, 1].
        target_layer: the module whose output is A (used by the grad-cam baselines); defaults to
            ``features``.

    Inputs are float ``(B, 3, H, W)`` in [0, 1]; ``forward`` returns logits ``(B, num_classes)``.
    """

    def __init__(
        self,
        features: nn.Module,
        num_features: int,
        num_classes: int = 2,
        mean: Sequence[float] = (0.5, 0.5, 0.5),
        std: Sequence[float] = (0.5, 0.5, 0.5),
        target_layer: nn.Module | None = None,
        stride: int = 1,
    ) -> None:
        super().__init__()
        self.features = features
        self.classifier = nn.Linear(num_features, num_classes, bias=False)
        self.register_buffer("input_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("input_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        # A plain reference, not a registered submodule: the layer already lives inside ``features``, and
        # registering it twice would duplicate its parameters in the state dict and in module walks.
        object.__setattr__(self, "_target_layer_ref", target_layer)
        self.stride = stride

    @property
    def target_layer(self) -> nn.Module:
        """The last conv block (A), the layer CAM and the grad-cam baselines explain."""
        ref = self.__dict__.get("_target_layer_ref")
        return ref if ref is not None else self.features

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """A(x): ``(B, C, h, w)`` for images ``x`` in [0, 1]."""
        return self.features((x - self.input_mean) / self.input_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feature_maps(x).mean(dim=(2, 3)))
