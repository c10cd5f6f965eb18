"""Tests of the synthetic "shortcut pets" generator, drawing version 1 (tests/test_synthetic_v2.py: version 2)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from cascam.data.synthetic import (
    PART_NAMES,
    SYNTHETIC_VARIANTS,
    SYNTHETIC_VERSIONS,
    box_only_accuracy,
    generate_synthetic,
    preview_grid,
    write_synthetic,
)

N = 24


@pytest.fixture(scope="module", params=SYNTHETIC_VARIANTS)
def data(request):
    return generate_synthetic(N, variant=request.param, seed=3, version=1)


def _luma(images: torch.Tensor) -> torch.Tensor:
    return (images.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1)


def test_deterministic_and_independent_of_n():
    a = generate_synthetic(12, seed=5, variant="multi_artifact", version=1)
    b = generate_synthetic(12, seed=5, variant="multi_artifact", version=1)
    c = generate_synthetic(5, seed=5, variant="multi_artifact", version=1)
    for x, y in ((a, b), (a.subset(range(5)), c)):
        assert torch.equal(x.images, y.images)
        assert torch.equal(x.clean_images, y.clean_images)
        assert torch.equal(x.labels, y.labels)
        assert torch.equal(x.object_masks, y.object_masks)
        assert torch.equal(x.artifact_masks, y.artifact_masks)
        for key in PART_NAMES:
            assert torch.equal(x.parts[key], y.parts[key])
    assert a.names[:5] == c.names
    other = generate_synthetic(5, seed=6, variant="multi_artifact", version=1)
    assert not torch.equal(c.images, other.images)


def test_shapes_dtypes_and_meta(data):
    n, size = N, 64
    assert data.images.shape == data.clean_images.shape == (n, 3, size, size)
    assert data.images.dtype == data.clean_images.dtype == torch.uint8
    assert data.labels.dtype == torch.int64 and set(data.labels.tolist()) <= {0, 1}
    assert 0 < int(data.labels.sum()) < n  # both classes occur
    assert set(data.parts) == set(PART_NAMES)
    for m in (data.object_masks, data.artifact_masks, *data.parts.values()):
        assert m.shape == (n, size, size) and m.dtype == torch.bool
    assert data.meta["version"] == SYNTHETIC_VERSIONS[1] == "1"
    assert data.meta["variant"] in SYNTHETIC_VARIANTS and data.meta["seed"] == 3 and data.meta["n"] == n
    assert len(set(data.names)) == n


def test_masks_are_unions_disjoint_and_nonempty(data):
    parts = data.parts
    assert torch.equal(data.object_masks, parts["object1"] | parts["object2"])
    assert torch.equal(data.artifact_masks, parts["artifact1"] | parts["artifact2"])
    assert not (data.object_masks & data.artifact_masks).any()
    assert not (parts["object1"] & parts["object2"]).any()
    assert not (parts["artifact1"] & parts["artifact2"]).any()
    assert parts["object1"].flatten(1).any(1).all()
    assert parts["artifact1"].flatten(1).any(1).all()
    variant = data.meta["variant"]
    assert parts["object2"].any() == (variant == "multi_object")
    assert parts["artifact2"].any() == (variant == "multi_artifact")


def test_label_box_is_white_for_cats_black_for_dogs(data):
    box = data.parts["artifact1"]
    side = data.meta["box_side_px"]
    assert (box.flatten(1).sum(1) == side * side).all()  # fully inside the image, square
    luma = _luma(data.images).round()
    # Dominant (most frequent) value: the box fill; mean: fill plus outline and word, far from grey.
    mode = torch.stack([luma[i][box[i]].mode().values for i in range(len(data))])
    mean = torch.stack([luma[i][box[i]].mean() for i in range(len(data))])
    cats = data.labels == 0
    assert (mode[cats] == 255).all() and (mean[cats] > 140).all()
    assert (mode[~cats] == 0).all() and (mean[~cats] < 90).all()
    assert box_only_accuracy(data) == 1.0



def test_label_box_is_the_package_label_tile(data):
    """One renderer: every box is cascam.data.artifacts' tile for the class, in the benchmark's style."""
    from cascam.data.artifacts import draw_label_tile
    from cascam.data.synthetic import _LABEL_STYLE

    side = data.meta["box_side_px"]
    tiles = [torch.from_numpy(np.array(draw_label_tile(label, side, _LABEL_STYLE))).permute(2, 0, 1) for label in (0, 1)]
    for i in range(len(data)):
        ys, xs = torch.nonzero(data.parts["artifact1"][i], as_tuple=True)
        box = data.images[i, :, ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        assert torch.equal(box, tiles[int(data.labels[i])])

def test_clean_images_differ_only_under_artifacts(data):
    outside = ~data.artifact_masks[:, None].expand_as(data.images)
    assert torch.equal(data.images[outside], data.clean_images[outside])
    # The box really changes the pixels it covers.
    inside = data.artifact_masks[:, None].expand_as(data.images)
    assert not torch.equal(data.images[inside], data.clean_images[inside])


def test_multi_object_second_animal_is_smaller():
    d = generate_synthetic(N, variant="multi_object", seed=1, artifact=False, version=1)
    area1 = d.parts["object1"].flatten(1).sum(1)
    area2 = d.parts["object2"].flatten(1).sum(1)
    assert (area2 > 0).all()
    assert (area2 < area1).all()


def test_multi_artifact_stamp_is_class_coloured():
    d = generate_synthetic(N, variant="multi_artifact", seed=2, version=1)
    stamp = d.parts["artifact2"]
    assert stamp.flatten(1).any(1).all()
    rgb = (d.images.float() * stamp[:, None]).flatten(2).sum(2) / stamp.flatten(1).sum(1, keepdim=True)
    cats = d.labels == 0
    assert (rgb[cats, 0] > rgb[cats, 2]).all()  # red disc
    assert (rgb[~cats, 2] > rgb[~cats, 0]).all()  # blue triangle


def test_artifact_false_gives_clean_images_and_same_animals():
    with_box = generate_synthetic(10, seed=4, version=1)
    without = generate_synthetic(10, seed=4, artifact=False, version=1)
    assert torch.equal(without.images, without.clean_images)
    assert torch.equal(without.images, with_box.clean_images)
    assert torch.equal(without.labels, with_box.labels)
    assert not without.artifact_masks.any()
    # Box pixels are removed from the object mask only when the box is drawn.
    assert torch.equal(with_box.object_masks, without.object_masks & ~with_box.artifact_masks)
    with pytest.raises(ValueError):
        box_only_accuracy(without)


def test_cat_fraction_and_argument_checks():
    assert (generate_synthetic(8, cat_fraction=1.0, version=1).labels == 0).all()
    assert (generate_synthetic(8, cat_fraction=0.0, version=1).labels == 1).all()
    assert len(generate_synthetic(0, version=1)) == 0
    with pytest.raises(ValueError):
        generate_synthetic(4, variant="nope", version=1)
    with pytest.raises(ValueError):
        generate_synthetic(4, box_fraction=0.0, version=1)


def test_other_sizes():
    d = generate_synthetic(4, size=96, variant="multi_artifact", box_fraction=0.25, version=1)
    assert d.images.shape == (4, 3, 96, 96)
    assert d.meta["box_side_px"] == 24
    assert box_only_accuracy(d) == 1.0


def test_write_synthetic_round_trips(tmp_path):
    d = generate_synthetic(6, variant="multi_artifact", seed=7, version=1)
    out = write_synthetic(d, tmp_path / "syn")
    with open(out / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == d.names
    assert [int(r["label"]) for r in rows] == d.labels.tolist()
    assert {r["class_name"] for r in rows} <= {"cat", "dog"}
    assert {r["variant"] for r in rows} == {"multi_artifact"}
    for i, name in enumerate(d.names):
        image = np.asarray(Image.open(out / "images" / f"{name}.png"))
        assert np.array_equal(image, d.images[i].permute(1, 2, 0).numpy())
        clean = np.asarray(Image.open(out / "clean" / f"{name}.png"))
        assert np.array_equal(clean, d.clean_images[i].permute(1, 2, 0).numpy())
        for key, masks in (
            ("object", d.object_masks),
            ("artifact", d.artifact_masks),
            ("artifact2", d.parts["artifact2"]),
        ):
            m = np.asarray(Image.open(out / "masks" / f"{name}_{key}.png")) > 127
            assert np.array_equal(m, masks[i].numpy())
    assert not list((out / "masks").glob("*_object2.png"))  # empty parts are not written


def test_preview_grid_draws_requested_images():
    fig = preview_grid(generate_synthetic(6, variant="multi_object", version=1), n=6, columns=3)
    assert len([ax for ax in fig.axes if ax.images]) == 6
