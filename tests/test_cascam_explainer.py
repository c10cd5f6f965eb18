"""The CasCAM explainer with grad-cam's calling convention: same maps as Cascade.explain, targets honoured,
uint8 = float, one-line errors, and grad-cam's own tools (ROAD, show_cam_on_image) take its output."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_toy_data
from pytorch_grad_cam.metrics.road import ROADCombined, ROADMostRelevantFirst
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget, ClassifierOutputTarget

from cascam import CascadeConfig, CasCAM, run_cascade
from cascam.cascade import load_cascade


@pytest.fixture(scope="module")
def cascade(tmp_path_factory):
    cfg = CascadeConfig(n_images=96, image_size=32, K=2, epochs=1, min_epochs=0, batch_size=32, device="cpu",
                        progress=False)
    return run_cascade(cfg, tmp_path_factory.mktemp("runs"), data=make_toy_data())


@pytest.fixture(scope="module")
def images(cascade):
    return cascade.data.images[:6]  # uint8 (6, 3, 32, 32)


def test_maps_equal_cascade_explain_at_the_cascade_size(cascade, images):
    labels = cascade.data.labels[:6]
    with CasCAM(cascade) as cam:
        maps = cam(input_tensor=images.float() / 255, targets=[ClassifierOutputTarget(int(c)) for c in labels])
        default = cam(input_tensor=images)
    assert maps.dtype == np.float32 and maps.shape == (6, 32, 32)
    np.testing.assert_array_equal(maps, cascade.explain(images, labels).numpy())
    np.testing.assert_array_equal(default, cascade.explain(images).numpy())  # None → model 1's prediction
    assert maps.min() >= 0 and maps.max() <= 1
    assert cam.last_stages.shape == (2, 6, 32, 32)
    np.testing.assert_array_equal(cam.last_stages[0], cascade.stage_maps(images)[0].numpy())


def test_a_run_folder_gives_the_same_maps(cascade, images):
    np.testing.assert_array_equal(CasCAM(cascade.record.dir, device="cpu")(images), CasCAM(cascade)(images))
    loaded = load_cascade(cascade.record.dir, device="cpu")
    np.testing.assert_array_equal(CasCAM(loaded)(images), CasCAM(cascade)(images))


def test_targets_are_honoured(cascade, images):
    cam = CasCAM(cascade)
    for c in (0, 1):
        got = cam(images, targets=[ClassifierOutputTarget(c)] * len(images))
        np.testing.assert_array_equal(got, cascade.explain(images, torch.full((6,), c)).numpy())
        np.testing.assert_array_equal(got, cam(images, targets=[c] * len(images)))  # plain ints too
    mixed = [ClassifierOutputTarget(i % 2) for i in range(6)]
    np.testing.assert_array_equal(cam(images, mixed), cascade.explain(images, torch.arange(6) % 2).numpy())


def test_uint8_and_float_inputs_agree(cascade, images):
    cam = CasCAM(cascade)
    np.testing.assert_array_equal(cam(images), cam(images.float() / 255))
    np.testing.assert_array_equal(cam(images), cam(images.numpy()))


def test_another_size_is_resized_there_and_back(cascade, images):
    """48 px in: resize to 32 (bilinear, antialiased), explain, resize the map back to 48 (bilinear), clamp."""
    x = F.interpolate(images.float() / 255, size=(48, 48), mode="bilinear", align_corners=False).clamp(0, 1)
    got = CasCAM(cascade)(x, [ClassifierOutputTarget(1)] * 6)
    assert got.shape == (6, 48, 48) and got.dtype == np.float32
    small = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
    want = F.interpolate(cascade.explain(small, torch.ones(6, dtype=torch.long))[:, None], size=(48, 48),
                         mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
    np.testing.assert_array_equal(got, want.numpy())


@pytest.mark.parametrize(
    "call,needle",
    [
        (lambda cam, x: cam(x[:, :1]), "input_tensor: expected shape (B, 3, H, W)"),
        (lambda cam, x: cam(x[0]), "input_tensor: expected shape (B, 3, H, W)"),
        (lambda cam, x: cam(x.float() * 2), "float images must lie in [0, 1]"),
        (lambda cam, x: cam(x.long()), "expected uint8 or float images"),
        (lambda cam, x: cam(x, [ClassifierOutputTarget(1)]), "1 target(s) for 6 image(s)"),
        (lambda cam, x: cam(x, [ClassifierOutputTarget(2)] * 6), "class 2 is not one of the model's classes"),
        (lambda cam, x: cam(x, [ClassifierOutputSoftmaxTarget(1)] * 6), "got ClassifierOutputSoftmaxTarget"),
        (lambda cam, x: cam(x, ClassifierOutputTarget(1)), "expected a list of ClassifierOutputTarget"),
        (lambda cam, x: cam(x, aug_smooth=True), "not defined for CasCAM"),
        (lambda cam, x: CasCAM(object()), "cascade: expected a Cascade or a run folder"),
    ],
)
def test_bad_inputs_raise_one_line_value_errors(cascade, images, call, needle):
    with pytest.raises(ValueError) as info:
        call(CasCAM(cascade), images)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # grad-cam's np.percentile on a tensor
def test_grad_cams_road_metric_and_overlay_take_the_maps(cascade, images):
    x = images.float() / 255
    targets = [ClassifierOutputTarget(int(c)) for c in cascade.predict_targets(images)]
    with CasCAM(cascade) as cam:
        maps = cam(input_tensor=x, targets=targets)
        torch.manual_seed(0)
        combined = ROADCombined(percentiles=[20, 80])(x, maps, targets, cam.model)
        morf = ROADMostRelevantFirst(percentile=80)(x, maps, targets, cam.model)
    assert combined.shape == (6,) and np.isfinite(combined).all()
    assert morf.shape == (6,) and np.isfinite(morf).all()
    overlay = show_cam_on_image(x[0].permute(1, 2, 0).numpy(), maps[0], use_rgb=True)
    assert overlay.shape == (32, 32, 3) and overlay.dtype == np.uint8
