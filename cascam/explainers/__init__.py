"""Saliency methods behind one protocol (model, batch, targets) → (B, H, W) maps."""

from __future__ import annotations

from .base import Explainer
from .cam import CAM
from .cascam_cam import CasCAM

__all__ = ["Explainer", "CAM", "CasCAM", "get_explainer", "EXPLAINER_NAMES"]

#: Names accepted by :func:`get_explainer` (and by the cascade's ``explainer`` option).
EXPLAINER_NAMES: tuple[str, ...] = (
    "cam",
    "gradcam",
    "gradcam++",
    "scorecam",
    "xgradcam",
    "layercam",
    "hirescam",
    "fullgrad",
    "eigengradcam",
    "ablationcam",
)


def get_explainer(name: str, **options) -> Explainer:
    """Return the explainer called ``name`` (one of :data:`EXPLAINER_NAMES`, case-insensitive)."""
    key = name.lower()
    if key not in EXPLAINER_NAMES:
        raise ValueError(f"explainer: unknown method {name!r}; choose one of {', '.join(EXPLAINER_NAMES)}")
    if key == "cam":
        return CAM()
    from .gradcam import GradCamExplainer

    return GradCamExplainer(key, **options)
