"""Explainers: CAM's formula, the grad-cam adapter's wiring (layer, target, scale) and its promise to
leave the model exactly as it found it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cascam.explainers import EXPLAINER_NAMES, get_explainer
from cascam.models.base import CamNet

GRAD_CAM_NAMES = [n for n in EXPLAINER_NAMES if n != "cam"]
HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
    )


def tiny_camnet(seed: int = 0, register_target: bool = True) -> CamNet:
    """Two stride-2 blocks (32 px → 8 × 8 × 16 features), 2 classes, BatchNorm with non-trivial stats.

    ``register_target`` passes the last block as ``target_layer`` (as the model zoo does, which makes
    it reachable twice in the module tree); otherwise the target layer defaults to ``features``.
    """
    torch.manual_seed(seed)
    features = nn.Sequential(_block(3, 8), _block(8, 16))
    for m in features.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0.0, 0.5)
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    model = CamNet(features, 16, 2, target_layer=features[-1] if register_target else None, stride=4)
    nn.init.normal_(model.classifier.weight)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> CamNet:
    return tiny_camnet()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(3, 3, 32, 32, generator=g), torch.tensor([0, 1, 1])


def _hand_cam(model: CamNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Σ_c W_{y,c} A_c at feature resolution (B, h, w), computed without the explainer."""
    with torch.no_grad():
        a = model.features((x - model.input_mean) / model.input_std)
        w = model.classifier.weight[y]
        return (w[:, :, None, None] * a).sum(dim=1)


def _upsample(maps: torch.Tensor, size: int = 32) -> torch.Tensor:
    return F.interpolate(maps[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]


def _minmax(maps: torch.Tensor) -> torch.Tensor:
    lo = maps.amin(dim=(1, 2), keepdim=True)
    return (maps - lo) / (maps.amax(dim=(1, 2), keepdim=True) - lo).clamp(min=1e-7)


def _hooks_left(model: nn.Module) -> list[str]:
    return [f"{name}.{d}" for name, m in model.named_modules() for d in HOOK_DICTS if getattr(m, d)]


def test_cam_is_the_weighted_sum_of_feature_maps(model, batch):
    x, y = batch
    expected = _upsample(_hand_cam(model, x, y))
    assert torch.allclose(get_explainer("cam")(model, x, y), expected, atol=1e-6)


@pytest.mark.parametrize("name", ["gradcam", "hirescam", "xgradcam"])
def test_gradient_weights_of_a_gap_head_reduce_to_relu_cam_over_hw(model, batch, name):
    # ∂f_y/∂A_c[i,j] = W_{y,c}/(hw) for GAP + bias-free linear, so all three equal ReLU(CAM)/(hw).
    x, y = batch
    cam = _hand_cam(model, x, y)
    hw = cam.shape[-2] * cam.shape[-1]
    expected = _upsample(cam.clamp(min=0)) / hw
    raw = get_explainer(name)(model, x, y)
    assert torch.allclose(raw, expected, rtol=1e-4, atol=1e-8)
    # The package's own pipeline (min-max per image, cv2 resize, min-max) gives the same shape.
    normalised = get_explainer(name, normalized_output=True)(model, x, y)
    assert torch.allclose(normalised, _minmax(expected), atol=1e-4)


@pytest.mark.parametrize("name", EXPLAINER_NAMES)
def test_every_method_returns_finite_per_image_maps_of_the_input_size(model, batch, name):
    x, y = batch
    explain = get_explainer(name)
    maps, alone = explain(model, x, y), explain(model, x[:1], y[:1])
    for m, b in ((maps, 3), (alone, 1)):
        assert m.shape == (b, 32, 32)
        assert m.dtype == torch.float32 and m.device == x.device
        assert torch.isfinite(m).all()
    # An image's map does not depend on the rest of its batch (the cascade batches freely).
    assert torch.allclose(maps[:1], alone, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", GRAD_CAM_NAMES)
def test_normalized_output_is_the_packages_zero_one_scale(model, batch, name):
    maps = get_explainer(name, normalized_output=True)(model, *batch)
    assert maps.shape == (3, 32, 32) and torch.isfinite(maps).all()
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6


@pytest.mark.parametrize("name", EXPLAINER_NAMES)
def test_the_model_is_left_as_it_was_found(name, batch):
    model = tiny_camnet()
    model.train()
    model.features[0].eval()  # a mixed state, which model.train(flag) alone could not restore
    model.features[0][0].weight.requires_grad_(False)
    existing_grad = torch.ones_like(model.classifier.weight)
    model.classifier.weight.grad = existing_grad
    training = [m.training for m in model.modules()]
    requires_grad = [p.requires_grad for p in model.parameters()]
    modules = [id(m) for m in model.modules()]

    images = batch[0].clone()

    with torch.no_grad():  # gradient methods must still work when the caller disabled autograd
        get_explainer(name)(model, images, batch[1])

    assert torch.equal(images, batch[0]) and not images.requires_grad

    assert _hooks_left(model) == []
    assert [m.training for m in model.modules()] == training
    assert [p.requires_grad for p in model.parameters()] == requires_grad
    assert model.classifier.weight.grad is existing_grad
    assert all(p.grad is None for n, p in model.named_parameters() if n != "classifier.weight")
    assert [id(m) for m in model.modules()] == modules


@pytest.mark.parametrize(
    "name",
    [
        "cam",
        *GRAD_CAM_NAMES,
    ],
)
def test_a_model_in_train_mode_keeps_its_batchnorm_statistics(name, batch):
    model = tiny_camnet().train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    get_explainer(name)(model, *batch)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("name", EXPLAINER_NAMES)
def test_targets_are_honoured(model, batch, name):
    x = batch[0][:2]
    explain = get_explainer(name)
    as_zero = explain(model, x, torch.tensor([0, 0]))
    as_one = explain(model, x, torch.tensor([1, 1]))
    assert not torch.allclose(as_zero, as_one)


@pytest.mark.parametrize("name", ["gradcam", "fullgrad", "ablationcam"])
def test_target_layer_registered_twice_changes_nothing(batch, name):
    # The model zoo keeps target_layer as an attribute, a second path to the block in _modules;
    # FullGrad, which walks _modules, must still count each bias layer once.
    # Both target layers (the last block, or `features` ending in it) output the same tensor.
    twice = get_explainer(name)(tiny_camnet(register_target=True), *batch)
    once = get_explainer(name)(tiny_camnet(register_target=False), *batch)
    assert torch.allclose(twice, once, rtol=1e-4, atol=1e-6)


def test_ablationcam_failure_restores_the_model(model, batch, monkeypatch):
    from pytorch_grad_cam.ablation_layer import AblationLayer

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(AblationLayer, "set_next_batch", fail)  # raises after the layer swap
    modules = [id(m) for m in model.modules()]
    with pytest.raises(RuntimeError, match="boom"):
        get_explainer("ablationcam")(model, *batch)
    assert [id(m) for m in model.modules()] == modules
    assert _hooks_left(model) == []


def test_index_errors_are_not_swallowed(model, batch, monkeypatch):
    # The package's context manager returns True on IndexError; the adapter must not use it.
    from pytorch_grad_cam import GradCAM

    def fail(*args, **kwargs):
        raise IndexError("inside the package")

    monkeypatch.setattr(GradCAM, "get_cam_weights", fail)
    with pytest.raises(IndexError):
        get_explainer("gradcam")(model, *batch)
    assert _hooks_left(model) == []


def test_unknown_names_and_bad_options_are_rejected():
    with pytest.raises(ValueError, match="explainer"):
        get_explainer("unknown")
    from cascam.explainers.gradcam import GradCamExplainer

    with pytest.raises(ValueError, match="name"):
        GradCamExplainer("cam")
    with pytest.raises(ValueError, match="batch_size"):
        GradCamExplainer("scorecam", batch_size=0)
    assert GradCamExplainer("GradCAM++").name == "gradcam++"


def test_perturbation_batch_size_does_not_change_the_maps(model, batch):
    for name in ("scorecam", "ablationcam"):
        small = get_explainer(name, batch_size=5)(model, *batch)
        large = get_explainer(name, batch_size=64)(model, *batch)
        np.testing.assert_allclose(small.numpy(), large.numpy(), rtol=1e-4, atol=1e-6)
