"""A small CNN for the synthetic benchmark: trains on CPU in under a minute per cascade iteration."""

from __future__ import annotations

from torch import nn

from .base import CamNet

__all__ = ["small_cnn"]


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def small_cnn(num_classes: int = 2, width: int = 32) -> CamNet:
    """Four conv blocks (32-64-128-128 channels at ``width=32``), BN + ReLU, total stride 8.

    The first three blocks have stride 2 and the last keeps the resolution, so a 64-px input gives
    an 8×8 CAM. Striding from the first block costs about a quarter of the compute of a full-resolution
    first block (one training epoch of 2,000 images takes a few seconds on 2 CPU cores), and the
    benchmark's cues (ears, outlines, the label box) are still learned. Inputs in [0, 1] are
    normalised with mean = std = 0.5.
    """
    w = width
    features = nn.Sequential(
        _block(3, w, 2),
        _block(w, 2 * w, 2),
        _block(2 * w, 4 * w, 2),
        _block(4 * w, 4 * w, 1),
    )
    return CamNet(features, 4 * w, num_classes, target_layer=features[-1], stride=8)
