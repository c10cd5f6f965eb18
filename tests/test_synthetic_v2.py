"""Tests of the synthetic benchmark's drawing version 2 (whole animals, the paper's box anywhere), of the
config field that selects it, and of version 1 staying as it was (checksums taken before version 2)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from cascam.config import CascadeConfig, ConfigError
from cascam.data import load_data
from cascam.data.synthetic import (
    PART_NAMES_V2,
    SYNTHETIC_VARIANTS,
    SYNTHETIC_VERSIONS,
    _animal_params,
    benchmark_geometry,
    box_only_accuracy,
    generate_synthetic,
    preview_grid,
    write_synthetic,
)

ANIMAL_PARTS = ("head", "body", "legs", "tail")


@pytest.fixture(scope="module")
def many():
    """300 single-variant images at 64 px (the distribution tests)."""
    return generate_synthetic(300, seed=0, version=2)


@pytest.fixture(scope="module", params=SYNTHETIC_VARIANTS)
def data(request):
    return generate_synthetic(24, variant=request.param, seed=3, version=2)


def _digest(d) -> str:
    h = hashlib.sha256()
    for t in (d.images, d.clean_images, d.labels, d.object_masks, d.artifact_masks, *[d.parts[k] for k in sorted(d.parts)]):
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------ version 1 unchanged


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        # Computed with the code of commit 10693a8, before drawing version 2 existed.
        ({"n": 6, "variant": "single", "seed": 11}, "d89ef083a51c6261"),
        ({"n": 6, "variant": "multi_artifact", "seed": 11}, "3ed733e38da1f06c"),
        ({"n": 6, "variant": "multi_object", "seed": 11}, "5a6affc96bbdae05"),
        ({"n": 4, "size": 32, "seed": 2}, "085eac1b4e35e4b5"),
        ({"n": 3, "size": 128, "seed": 2, "artifact": False}, "acc9a0d22b3f2ea8"),
    ],
)
def test_version1_is_bit_identical_to_before(kwargs, expected):
    kwargs = dict(kwargs)
    d = generate_synthetic(kwargs.pop("n"), version=1, **kwargs)
    assert _digest(d) == expected
    assert d.meta["version"] == SYNTHETIC_VERSIONS[1] == "1"


@pytest.mark.parametrize("variant", ["single", "multi_object"])
def test_drawing_in_worker_processes_gives_the_same_images_as_one_process(monkeypatch, variant):
    """Image i depends only on (seed, i): chunks drawn in forked workers and stitched together equal the
    serial drawing, byte for byte, whatever the chunk boundaries (300 images = 3 chunks of at most 128)."""
    from cascam.data.synthetic import generation_workers

    monkeypatch.setenv("CASCAM_GEN_WORKERS", "1")
    assert generation_workers(10_000) == 1
    serial = generate_synthetic(300, size=32, variant=variant, seed=4, start=7)
    monkeypatch.setenv("CASCAM_GEN_WORKERS", "2")
    assert generation_workers(10) == 2
    parallel = generate_synthetic(300, size=32, variant=variant, seed=4, start=7)
    assert _digest(parallel) == _digest(serial) and parallel.names == serial.names
    monkeypatch.setenv("CASCAM_GEN_WORKERS", "two")
    with pytest.raises(ValueError, match="CASCAM_GEN_WORKERS"):
        generate_synthetic(300, size=32)


def test_the_images_are_never_held_twice_while_drawing(monkeypatch):
    """Peak memory while drawing stays within one chunk of the data it returns: the images and the
    clean originals are drawn into channels-first arrays, never into a channels-last array that is
    then copied (which held both layouts at once: 2 × N × 3 × H × W bytes above the data)."""
    import tracemalloc

    import cascam.data.synthetic as synthetic

    monkeypatch.setenv("CASCAM_GEN_WORKERS", "1")  # numpy's allocations in this process, traced
    monkeypatch.setattr(synthetic, "_CHUNK", 32)  # a chunk's own working memory: 1/32 of the data
    tracemalloc.start()
    try:
        data = generate_synthetic(1024, size=16, seed=5)
        retained, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    one_array = data.images.numpy().nbytes  # 1024 × 3 × 16 × 16 bytes = 768 KiB
    assert retained >= 2 * one_array  # the images and the clean originals are alive
    assert data.images.is_contiguous() and data.clean_images.is_contiguous()
    assert peak - retained < one_array, f"drawing peaked {(peak - retained) / one_array:.2f} image arrays above its data"


def test_version_is_validated():
    with pytest.raises(ValueError, match="version"):
        generate_synthetic(2, version=3)
    with pytest.raises(ValueError, match="version"):
        generate_synthetic(2, version=True)


# ------------------------------------------------------------------ masks


def test_keys_shapes_and_meta(data):
    assert set(data.parts) == set(PART_NAMES_V2)
    for m in (data.object_masks, data.artifact_masks, *data.parts.values()):
        assert m.shape == (24, 64, 64) and m.dtype == torch.bool
    assert data.meta["version"] == SYNTHETIC_VERSIONS[2] == "2" and data.meta["benchmark_version"] == 2
    assert abs(data.meta["box_fraction"] - 86 / 512) < 1e-12
    assert 0 < int(data.labels.sum()) < 24


def test_parts_partition_the_silhouette(data):
    p = data.parts
    assert torch.equal(data.object_masks, p["object1"] | p["object2"])
    assert not (p["object1"] & p["object2"]).any()
    union = torch.zeros_like(data.object_masks)
    for i, a in enumerate(ANIMAL_PARTS):
        assert not (p[a] & ~data.object_masks).any(), a  # a subset of the silhouette
        for b in ANIMAL_PARTS[i + 1 :]:
            assert not (p[a] & p[b]).any(), (a, b)  # disjoint
        union |= p[a]
    assert torch.equal(union, data.object_masks)
    assert p["head"].flatten(1).any(1).all()  # the head is always in the frame
    assert p["body"].flatten(1).any(1).all()
    assert torch.equal(p["object1_visible"], p["object1"] & ~data.artifact_masks)
    assert torch.equal(data.artifact_masks, p["artifact1"] | p["artifact2"])
    variant = data.meta["variant"]
    assert p["object2"].flatten(1).any(1).all() == (variant == "multi_object")
    assert p["artifact2"].flatten(1).any(1).all() == (variant == "multi_artifact")
    assert not (p["artifact1"] & p["artifact2"]).any()


def test_silhouette_under_the_box_is_in_object_masks(many):
    box, obj, vis = many.parts["artifact1"], many.object_masks, many.parts["object1_visible"]
    under = box & many.parts["object1"]
    hit = under.flatten(1).any(1)
    assert int(hit.sum()) >= 50  # the box lies over the animal in many images
    assert obj[under].all()  # the animal's pixels under the box are object pixels ...
    assert not vis[under].any()  # ... but not visible ones
    # The box hides them: there the image shows the box, the clean image the animal.
    i = int(torch.nonzero(hit)[0])
    ys, xs = torch.nonzero(under[i], as_tuple=True)
    assert not torch.equal(many.images[i][:, ys, xs], many.clean_images[i][:, ys, xs])


@pytest.mark.parametrize("size", [32, 64, 96, 128, 224])
def test_box_is_the_papers_proportion_and_matches_its_mask(size):
    d = generate_synthetic(3, size=size, seed=1, version=2, variant="multi_artifact" if size == 96 else "single")
    side = round(86 / 512 * size)
    assert d.meta["box_side_px"] == side
    for i in range(len(d)):
        ys, xs = torch.nonzero(d.parts["artifact1"][i], as_tuple=True)
        assert len(ys) == side * side
        assert int(ys.max() - ys.min()) + 1 == side and int(xs.max() - xs.min()) + 1 == side
        # Outside the artifacts the image is the clean image; inside the box it is the label tile.
        outside = ~d.artifact_masks[i]
        assert torch.equal(d.images[i][:, outside], d.clean_images[i][:, outside])
        luma = d.images[i].float().mean(0)[d.parts["artifact1"][i]].mean()
        assert (luma > 127.5) == (int(d.labels[i]) == 0)  # white cat box, black dog box
    assert box_only_accuracy(d) == 1.0


def test_box_position_does_not_avoid_the_animal(many):
    g = benchmark_geometry(many)
    assert (g["box_over_animal"] > 0).mean() > 0.25
    assert (g["box_over_animal"] > 0.9).mean() > 0.1  # boxes fully on the animal occur too
    # Uniform corner: boxes reach all four quadrants of the positions they can take.
    corners = torch.stack([torch.nonzero(m).min(0).values for m in many.parts["artifact1"]]).float()
    half = (64 - round(86 / 512 * 64)) / 2
    quadrants = {(bool(y < half), bool(x < half)) for y, x in corners.tolist()}
    assert len(quadrants) == 4


def test_area_share_covers_a_third_to_two_thirds(many):
    share = benchmark_geometry(many)["animal_share"].to_numpy()
    p10, median, p90 = np.quantile(share, [0.1, 0.5, 0.9])
    assert 0.33 <= median <= 0.6
    assert 0.25 <= p10 and p90 <= 0.72
    assert p90 - p10 > 0.15  # a distribution, not one size


def test_geometry_columns(many):
    g = benchmark_geometry(many.subset(range(20)))
    assert list(g.columns) == ["image", "label", "class_name", "animal_share", "visible_share", "box_share",
                               "box_over_animal", "animal_hidden"]
    assert np.allclose(g["box_share"], round(86 / 512 * 64) ** 2 / 64**2)
    assert (g["visible_share"] <= g["animal_share"]).all()
    hidden = g["animal_share"] - g["visible_share"]
    assert np.allclose(hidden, g["animal_hidden"] * g["animal_share"])  # single variant: box only
    assert ((g["label"] == 0) == (g["class_name"] == "cat")).all()


# ------------------------------------------------------------------ determinism


def test_deterministic_independent_of_n_and_of_artifact():
    a = generate_synthetic(10, seed=5, variant="multi_object", version=2)
    b = generate_synthetic(4, seed=5, variant="multi_object", version=2)
    sub = a.subset(range(4))
    assert _digest(sub) == _digest(b)
    assert sub.names == b.names and b.names[0].startswith("v2-")
    bare = generate_synthetic(4, seed=5, variant="multi_object", version=2, artifact=False)
    assert torch.equal(bare.images, b.clean_images)
    assert torch.equal(bare.object_masks, b.object_masks)
    assert not bare.artifact_masks.any()
    assert torch.equal(bare.parts["object1_visible"], bare.parts["object1"])
    assert not torch.equal(generate_synthetic(4, seed=6, version=2).images, generate_synthetic(4, seed=5, version=2).images)


# ------------------------------------------------------------------ class information per part


def _auc(cats: np.ndarray, dogs: np.ndarray) -> float:
    """Probability that a random cat value exceeds a random dog value (ties count ½)."""
    diff = cats[:, None] - dogs[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_parts_tell_the_class_to_different_degrees():
    rng = np.random.default_rng(0)
    draws = {label: [_animal_params(rng, label) for _ in range(600)] for label in (0, 1)}

    def auc(key: str) -> float:
        a = _auc(*(np.array([p[key] for p in draws[label]]) for label in (0, 1)))
        return max(a, 1 - a)

    tail = max(auc("tail_length"), auc("tail_width"), auc("tail_turn"))
    body = max(auc("body_length"), auc("body_height"))
    legs = auc("leg_length")
    assert 0.75 < tail < 1.0  # moderately informative, overlapping
    assert 0.55 < body < 0.75  # weakly
    assert legs < 0.6  # barely
    assert auc("leg_width") < 0.57 and auc("head_scale") < 0.57  # same distribution for both classes
    assert tail > body > legs


# ------------------------------------------------------------------ config, data loading, output


def test_config_field_and_v1_hashes():
    base = CascadeConfig()
    assert base.benchmark_version == 2
    v1 = CascadeConfig(benchmark_version=1)
    # The hashes these configurations had before the field existed (commit 10693a8).
    assert v1.key() == "0f1f30e53000" and v1.first_model_key() == "b22755d425f3"
    assert CascadeConfig(variant="multi_object", n_images=600, benchmark_version=1).key() == "b52fc75b1cc6"
    assert CascadeConfig(data="oxford", data_path="/x").key() == "2576bf9b7b36"  # not drawn: not hashed
    assert base.key() != v1.key() and base.first_model_key() != v1.first_model_key()
    # A stored v1 run's config.yaml (no benchmark_version) reads back as drawing 1; a v2 one as 2.
    assert CascadeConfig.from_dict(v1.training_dict()).benchmark_version == 1
    assert CascadeConfig.from_dict(base.training_dict()).benchmark_version == 2
    assert CascadeConfig.from_dict({"K": 2}).benchmark_version == 2
    for bad in (0, 3, True, "two"):
        with pytest.raises(ConfigError, match="benchmark_version"):
            CascadeConfig(benchmark_version=bad)


def test_load_data_follows_the_config():
    for version in (1, 2):
        d = load_data(CascadeConfig(n_images=8, benchmark_version=version, device="cpu"))
        assert d.meta["benchmark_version"] == version
    assert "benchmark_version" in (CascadeConfig.__doc__ or "")


def test_write_preview_and_plot(tmp_path):
    d = generate_synthetic(3, variant="multi_object", version=2)
    out = write_synthetic(d, tmp_path / "v2")
    for key in ("object", "artifact", "object1_visible", "head", "tail", "object2"):
        assert (out / "masks" / f"{d.names[0]}_{key}.png").exists(), key
    fig = preview_grid(d, n=3, columns=3, parts=("head", "tail"))
    assert len(fig.axes) == 3
    from cascam.plotting import plot_area_share

    fig = plot_area_share({"version 1": benchmark_geometry(generate_synthetic(6, version=1)), "version 2": benchmark_geometry(d)})
    assert len(fig.axes) == 2
    assert fig.axes[0].get_xlabel() == "animal area ÷ frame area" and fig.axes[0].get_ylabel() == "images"


@pytest.mark.parametrize("version", [1, 2])
def test_start_returns_the_same_images_as_the_tail_of_a_longer_call(version):
    whole = generate_synthetic(7, size=32, seed=3, version=version)
    tail = generate_synthetic(3, size=32, seed=3, version=version, start=4)
    assert torch.equal(tail.images, whole.images[4:])
    assert torch.equal(tail.object_masks, whole.object_masks[4:])
    assert tail.names == whole.names[4:]
    with pytest.raises(ValueError, match="start"):
        generate_synthetic(2, size=32, start=-1)
