"""Configuration validation: every bad value is rejected with one line naming the parameter."""

from __future__ import annotations

import math

import pytest

from cascam.config import CascadeConfig, ConfigError, load_config, parse_overrides


@pytest.mark.parametrize(
    "field,value",
    [
        ("theta", 0),
        ("theta", -1.0),
        ("theta", math.inf),
        ("theta", math.nan),
        ("theta", "strong"),
        ("K", 0),
        ("K", 2.5),
        ("K", "3"),
        ("topk", 0),
        ("topk", 100.5),
        ("topk", -5),
        ("lam", -0.1),
        ("threshold", "otsu"),
        ("explainer", "magiccam"),
        ("arch", "vgg99"),
        ("image_size", 8),
        ("batch_size", 0),
        ("valid_fraction", 1.0),
        ("fill", "paint"),
        ("device", "tpu"),
        ("combine", "max"),
        ("explain_on", "both"),
        ("lr", 0),
        ("artifact", "yes"),
    ],
)
def test_bad_values_name_the_parameter(field, value):
    with pytest.raises(ConfigError) as info:
        CascadeConfig(**{field: value})
    msg = str(info.value)
    assert msg.startswith(f"{field}:"), msg
    assert "\n" not in msg
    assert repr(value) in msg or str(value) in msg


def test_image_size_too_small_for_architecture():
    with pytest.raises(ConfigError, match=r"image_size: 32 px is too small for arch='resnet50'"):
        CascadeConfig(arch="resnet50", image_size=32)


def test_explainer_list_must_have_k_entries():
    cfg = CascadeConfig(K=3, explainer=["cam", "GradCAM", "scorecam"])
    assert cfg.explainer == ("cam", "gradcam", "scorecam")
    assert cfg.explainer_for(2) == "gradcam"
    with pytest.raises(ConfigError, match="explainer: a list must have K=3"):
        CascadeConfig(K=3, explainer=["cam", "gradcam"])


def test_folder_data_needs_a_path():
    with pytest.raises(ConfigError, match="data_path"):
        CascadeConfig(data="folder")


def test_integral_float_is_accepted_as_integer():
    assert CascadeConfig(K=3.0).K == 3


def test_key_is_stable_and_ignores_execution_fields():
    a = CascadeConfig()
    assert a.key() == CascadeConfig().key()
    assert a.key() == CascadeConfig(device="cpu", num_workers=2, progress=False).key()
    assert a.key() != CascadeConfig(theta=0.1).key()
    assert a.key() != CascadeConfig(explainer=("cam", "gradcam", "cam", "cam", "cam")).key()


def test_mask_dilate_enters_the_hash_only_when_set():
    """Runs stored before ``mask_dilate`` existed keep their names; a dilated run is another run
    that still shares model 1 with the undilated one."""
    from cascam.config import first_model_key

    base = CascadeConfig()
    assert "mask_dilate" not in base.training_dict()
    dilated = CascadeConfig(mask_dilate=0.05)
    assert dilated.training_dict()["mask_dilate"] == 0.05
    assert dilated.key() != base.key()
    assert dilated.first_model_key() == base.first_model_key() == first_model_key(base.training_dict())
    for bad in (-0.1, 0.6, "wide", float("nan")):
        with pytest.raises(ConfigError, match="mask_dilate"):
            CascadeConfig(mask_dilate=bad)


def test_unknown_parameter_is_named():
    with pytest.raises(ConfigError, match="unknown parameter.*tehta"):
        CascadeConfig.from_dict({"tehta": 0.3})
    with pytest.raises(ConfigError, match="unknown parameter.*tehta"):
        CascadeConfig().replace(tehta=0.3)


def test_overrides_are_parsed_as_yaml(tmp_path):
    assert parse_overrides(["K=3", "theta=0.1", "explainer=[cam, gradcam, cam]", "threshold=none"]) == {
        "K": 3,
        "theta": 0.1,
        "explainer": ["cam", "gradcam", "cam"],
        "threshold": "none",
    }
    with pytest.raises(ConfigError, match="--set"):
        parse_overrides(["K3"])
    path = tmp_path / "c.yaml"
    path.write_text("K: 4\ntheta: 0.2\n")
    cfg = load_config(path, {"K": 2})
    assert (cfg.K, cfg.theta) == (2, 0.2)
    with pytest.raises(ConfigError, match="config: file not found"):
        load_config(tmp_path / "missing.yaml")


def test_round_trip_through_dict():
    cfg = CascadeConfig(K=3, explainer=["cam", "gradcam", "cam"], ebayes_a=None, threshold="ebayes")
    assert CascadeConfig.from_dict(cfg.to_dict()) == cfg
