"""Plain class activation mapping (Zhou et al. 2016), exact for a GAP + bias-free linear head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CAM"]


class CAM:
    """Class activation map of the target class.

    .. math::
        \\mathrm{CAM}(x)[i,j] = \\sum_c W_{y,c} A_c(x)[i,j]

    bilinearly upsampled to the input size. Raw values (not normalised): the cascade's masking
    step uses the raw scale (docs/method.md, § The classifier and its CAM). The model is evaluated
    in eval mode (batch-norm running statistics, not the batch's) and left in the mode it was in.

    Example:
        >>> maps = CAM()(model, images, labels)   # (B, H, W)
    """

    name = "cam"

    @torch.no_grad()
    def __call__(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        modes = [(m, m.training) for m in model.modules()]
        model.eval()
        try:
            feats = model.feature_maps(images)  # (B, C, h, w)
        finally:
            for m, training in modes:  # restore each module's own flag (mixed modes survive)
                m.training = training
        weights = model.classifier.weight[targets]  # (B, C)
        cams = torch.einsum("bc,bchw->bhw", weights.to(feats.dtype), feats)
        cams = F.interpolate(cams[:, None].float(), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return cams[:, 0]
