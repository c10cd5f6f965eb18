"""Tests of cascam.metrics: AP against sklearn (ties, empty and full masks), hand-built cases, the resize path.

Reference values come from sklearn or from small numpy re-implementations written straight from the
definitions in docs/method.md, § Metrics, never from the functions under test.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import auc, average_precision_score, precision_recall_curve

from cascam import metrics
from cascam.metrics import (
    artifact_energy,
    artifact_pointing,
    average_precision,
    compute_all,
    energy_in_gt,
    iou,
    iou_topk,
    pointing_game,
    prepare,
    top15_energy,
    top15_precision,
    topk_count,
    topk_energy,
    topk_precision,
)

OBJECT_KEYS = {
    "average_precision",
    "iou",
    "iou_top15",
    "pointing_game",
    "energy_in_gt",
    "top15_precision",
    "top15_energy",
}
ARTIFACT_KEYS = {"artifact_energy", "artifact_pointing"}


# ---------------------------------------------------------------------------- references (sklearn, numpy)


def sk_ap(labels: np.ndarray, scores: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on an empty mask and returns 0
        return float(average_precision_score(labels.ravel(), scores.ravel().astype(np.float64)))


def sk_trapezoid(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(labels.ravel(), scores.ravel().astype(np.float64))
    return float(auc(recall, precision))


def ref_top(scores: np.ndarray, percent: float) -> np.ndarray:
    """Top-k set by a stable descending argsort: ties taken in row-major order."""
    flat = scores.ravel()
    k = math.ceil(percent * flat.size / 100 - 1e-9)
    top = np.zeros(flat.size, dtype=bool)
    top[np.argsort(-flat.astype(np.float64), kind="stable")[:k]] = True
    return top.reshape(scores.shape)


def random_batch(seed: int, b: int = 20, low: int = 7, size: int = 24, p: float = 0.3):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(b, low, low, generator=g)
    masks = torch.rand(b, size, size, generator=g) < p
    return maps, masks


# ---------------------------------------------------------------------------- average precision


@pytest.mark.parametrize("seed", [0, 1])
def test_ap_equals_sklearn_on_upsampled_maps(seed):
    maps, masks = random_batch(seed)
    masks[3] = False  # empty mask: AP 0 by convention (sklearn: 0 with a warning)
    masks[4] = True  # full mask: AP 1
    maps[5] = 0.7  # constant map: one threshold, AP = prevalence
    prepared = prepare(maps, (24, 24)).numpy()
    ap = average_precision(maps, masks)
    expected = [sk_ap(masks[i].numpy(), prepared[i]) for i in range(len(maps))]
    np.testing.assert_allclose(ap, expected, rtol=0, atol=1e-12)
    assert ap[3] == 0.0 and ap[4] == 1.0
    assert ap[5] == pytest.approx(masks[5].float().mean().item())


def test_ap_equals_sklearn_with_heavy_ties():
    g = torch.Generator().manual_seed(3)
    maps = torch.randint(0, 5, (17, 16, 16), generator=g).float()  # five levels: every threshold tied
    maps[:, :4] = 0  # and a large tie at the bottom, as after a ReLU
    masks = torch.rand(17, 16, 16, generator=g) < 0.4
    prepared = prepare(maps, (16, 16)).numpy()
    ap = average_precision(maps, masks)
    expected = [sk_ap(masks[i].numpy(), prepared[i]) for i in range(17)]
    np.testing.assert_allclose(ap, expected, rtol=0, atol=1e-12)


def test_ap_trapezoid_equals_sklearn_auc():
    maps, masks = random_batch(5, b=12)
    maps[:, :2] = torch.round(maps[:, :2] * 3)  # some ties too
    prepared = prepare(maps, (24, 24)).numpy()
    trap = average_precision(maps, masks, method="trapezoid")
    step = average_precision(maps, masks)
    expected = [sk_trapezoid(masks[i].numpy(), prepared[i]) for i in range(12)]
    np.testing.assert_allclose(trap, expected, rtol=0, atol=1e-12)
    assert not np.allclose(trap, step)  # the two methods are really different


def test_ap_trapezoid_empty_mask_is_zero_not_sklearns_half():
    maps = torch.rand(1, 5, 5)
    empty = torch.zeros(1, 5, 5, dtype=torch.bool)
    assert average_precision(maps, empty, method="trapezoid")[0] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sk_trapezoid(empty[0].numpy(), maps[0].numpy()) == 0.5  # the artefact we avoid


def test_ap_hand_computed():
    # scores 0.9 (pos), 0.5 (neg), 0.5 (pos), 0.1 (neg): thresholds 0.9 → P = 1, R = 1/2;
    # 0.5 (tied pair) → P = 2/3, R = 1; AP = 1/2·1 + 1/2·2/3 = 5/6
    scores = torch.tensor([[[0.9, 0.5], [0.5, 0.1]]])
    labels = torch.tensor([[[True, False], [True, False]]])
    assert average_precision(scores, labels, normalized=False)[0] == pytest.approx(5 / 6)
    # trapezoid: (0, 1) → (1/2, 1) → (1, 2/3): 1/2·1 + 1/2·(1 + 2/3)/2 = 11/12
    assert average_precision(scores, labels, method="trapezoid")[0] == pytest.approx(11 / 12)


def test_ap_unknown_method_raises():
    maps, masks = random_batch(0, b=2)
    with pytest.raises(ValueError, match="unknown method"):
        average_precision(maps, masks, method="interpolated")


@settings(max_examples=60, deadline=None)
@given(
    scores=arrays(np.float32, (3, 5, 6), elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])),
    labels=arrays(np.bool_, (3, 5, 6)),
)
def test_ap_property_prepared_maps(scores, labels):
    ap = average_precision(scores, labels, normalized=True)
    trap = average_precision(scores, labels, normalized=True, method="trapezoid")
    for i in range(3):
        assert ap[i] == pytest.approx(sk_ap(labels[i], scores[i]), abs=1e-12)
        if labels[i].any():
            assert trap[i] == pytest.approx(sk_trapezoid(labels[i], scores[i]), abs=1e-12)
        else:
            assert ap[i] == 0.0 and trap[i] == 0.0


def test_negative_zero_ties_with_zero():
    scores = np.array([[[0.0, -0.0, 0.5, 1.0]]], dtype=np.float32)
    labels = np.array([[[True, False, False, True]]])
    assert average_precision(scores, labels, normalized=True)[0] == pytest.approx(
        sk_ap(labels, scores), abs=1e-12
    )


# ---------------------------------------------------------------------------- hand-built cases

# a 4×4 map with distinct values 0..15 (row-major), already normalised by /15
RAMP = (torch.arange(16, dtype=torch.float32) / 15).reshape(1, 4, 4)
RIGHT = torch.zeros(1, 4, 4, dtype=torch.bool)
RIGHT[..., 2:] = True  # columns 2, 3: pixels 2,3,6,7,10,11,14,15


def test_iou_thresholded_hand_computed():
    # S ≥ 0.5 ⇔ value ≥ 7.5 ⇔ pixels 8..15; ∩ right half = {10,11,14,15}; ∪ = 8 + 8 − 4 = 12
    assert iou(RAMP, RIGHT)[0] == pytest.approx(4 / 12)
    assert iou(RAMP, RIGHT, threshold=0.9)[0] == pytest.approx(2 / 8)  # pixels 14, 15 vs 8 mask pixels
    # a score exactly at τ counts as predicted, inside or outside the mask: S ≥ 0.5 is {0.5, 1.0}
    at_threshold = torch.tensor([[[0.0, 0.5, 1.0, 0.25]], [[0.0, 0.5, 1.0, 0.25]]])
    masks = torch.stack([at_threshold[0] == 0.5, at_threshold[1] == 1.0])
    np.testing.assert_allclose(iou(at_threshold, masks, normalized=True), [1 / 2, 1 / 2])


def test_iou_topk_and_top15_hand_computed():
    # k = ⌈0.15·16⌉ = 3: pixels 13, 14, 15; 14 and 15 are in the right half
    assert topk_count(16) == 3
    assert iou_topk(RAMP, RIGHT)[0] == pytest.approx(2 / (3 + 8 - 2))
    assert top15_precision(RAMP, RIGHT)[0] == pytest.approx(2 / 3)
    assert top15_energy(RAMP, RIGHT)[0] == pytest.approx((14 + 15) / (13 + 14 + 15))
    # 50 %: pixels 8..15, four of them in the right half
    assert topk_precision(RAMP, RIGHT, 50)[0] == pytest.approx(4 / 8)
    assert topk_energy(RAMP, RIGHT, 50)[0] == pytest.approx((10 + 11 + 14 + 15) / sum(range(8, 16)))


def test_energy_in_gt_hand_computed():
    assert energy_in_gt(RAMP, RIGHT)[0] == pytest.approx((2 + 3 + 6 + 7 + 10 + 11 + 14 + 15) / 120)
    assert artifact_energy(RAMP, RIGHT)[0] == pytest.approx(68 / 120)


def test_pointing_game_and_first_maximum_tie_rule():
    assert pointing_game(RAMP, RIGHT)[0] == 1.0  # max at pixel 15
    assert pointing_game(RAMP, ~RIGHT)[0] == 0.0
    tied = torch.tensor([[[0.0, 1.0, 0.0, 1.0]]])  # maxima at pixels 1 and 3: the first wins
    only_3 = torch.tensor([[[False, False, False, True]]])
    assert pointing_game(tied, only_3)[0] == 0.0
    assert pointing_game(tied, ~only_3)[0] == 1.0
    assert artifact_pointing(tied, ~only_3)[0] == 1.0


def test_topk_ties_taken_in_row_major_order():
    # 10 pixels, k = ⌈1.5⌉ = 2: one clear maximum, then a tie of three 0.5s at pixels 2, 5, 7
    s = torch.tensor([[[0.0, 0.0, 0.5, 1.0, 0.0], [0.5, 0.0, 0.5, 0.0, 0.0]]])
    g = torch.zeros(1, 2, 5, dtype=torch.bool)
    g[0, 0, 2] = True  # the first tied pixel: the rule takes it
    assert top15_precision(s, g)[0] == pytest.approx(0 / 2 + 1 / 2)
    g2 = torch.zeros(1, 2, 5, dtype=torch.bool)
    g2[0, 1, 0] = True  # a later tied pixel: left out
    assert top15_precision(s, g2)[0] == 0.0
    assert top15_energy(s, g)[0] == pytest.approx(0.5 / 1.5)
    assert iou_topk(s, g)[0] == pytest.approx(1 / 2)


def test_topk_metrics_match_a_stable_sort_reference():
    g = torch.Generator().manual_seed(11)
    maps = torch.randint(0, 4, (9, 12, 12), generator=g).float() / 3  # ties at every cut-off
    masks = torch.rand(9, 12, 12, generator=g) < 0.5
    out = compute_all(maps, masks, normalized=True)
    for i in range(9):
        s, m = maps[i].numpy().astype(np.float64), masks[i].numpy()
        top = ref_top(s, 15)
        assert out["top15_precision"][i] == pytest.approx((top & m).sum() / top.sum())
        assert out["iou_top15"][i] == pytest.approx((top & m).sum() / (top | m).sum())
        expected_energy = s[top & m].sum() / s[top].sum() if s[top].sum() > 0 else 0.0
        assert out["top15_energy"][i] == pytest.approx(expected_energy)


# ---------------------------------------------------------------------------- preparation and resize


def test_prepare_min_max_then_bilinear():
    low = torch.tensor([[[2.0, 6.0], [2.0, 6.0]]])  # min-max → [[0, 1], [0, 1]]
    s = prepare(low, (4, 4))
    # align_corners=False: output columns sample x = −0.25, 0.25, 0.75, 1.25 → clamped 0, .25, .75, 1
    np.testing.assert_allclose(s[0].numpy(), np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)), atol=1e-7)
    expected = F.interpolate(((low - 2) / 4).unsqueeze(1), size=(4, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(s, expected.squeeze(1))
    assert s.dtype == torch.float32


def test_resized_map_is_measured_at_mask_resolution():
    low = torch.tensor([[[2.0, 6.0], [2.0, 6.0]]])
    right = torch.zeros(1, 4, 4, dtype=torch.bool)
    right[..., 2:] = True
    out = compute_all(low, right)
    assert out["iou"][0] == 1.0  # S ≥ 0.5 exactly on columns 2, 3
    assert out["pointing_game"][0] == 1.0  # first maximum: pixel (0, 3)
    assert out["energy_in_gt"][0] == pytest.approx(1.75 / 2.0)
    assert out["average_precision"][0] == 1.0


def test_normalized_true_matches_prepare_and_checks_its_input():
    maps, masks = random_batch(2, b=5)
    prepared = prepare(maps, (24, 24))
    a = compute_all(maps, masks)
    b = compute_all(prepared, masks, normalized=True)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    with pytest.raises(ValueError, match="differ from the mask"):
        iou(maps, masks, normalized=True)  # 7×7 maps, 24×24 masks
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        iou(prepared * 2, masks, normalized=True)


# ---------------------------------------------------------------------------- edge cases and conventions


def test_constant_and_zero_maps_are_defined():
    maps = torch.zeros(3, 6, 6)
    maps[1] = 5.0
    maps[2] = -1.0
    masks = torch.zeros(3, 12, 12, dtype=torch.bool)
    masks[:, 3:9, 3:9] = True
    masks[2, 0, 0] = True  # pixel 0 in the mask: the constant map "points" there
    out = compute_all(maps, masks, masks)
    for key, values in out.items():
        assert np.isfinite(values).all(), key
    for key in ("energy_in_gt", "top15_energy", "artifact_energy", "iou"):
        np.testing.assert_array_equal(out[key], 0.0)
    np.testing.assert_array_equal(out["pointing_game"], [0.0, 0.0, 1.0])
    np.testing.assert_allclose(out["average_precision"], masks.flatten(1).float().mean(1).numpy())
    # the top 15 % of a constant map are its first k pixels in row-major order (rows 0–1 and 4 of row 2)
    k = topk_count(144)
    first_k = np.zeros(144, dtype=bool)
    first_k[:k] = True
    expected = [(first_k & m.numpy().ravel()).sum() / k for m in masks]
    np.testing.assert_allclose(out["top15_precision"], expected)


def test_empty_mask_gives_zeros_not_nan():
    maps, _ = random_batch(4, b=3)
    empty = torch.zeros(3, 24, 24, dtype=torch.bool)
    out = compute_all(maps, empty, empty)
    for key, values in out.items():
        np.testing.assert_array_equal(values, 0.0, err_msg=key)


def test_full_mask():
    maps, _ = random_batch(6, b=4)
    full = torch.ones(4, 24, 24, dtype=torch.bool)
    out = compute_all(maps, full)
    for key in ("average_precision", "pointing_game", "energy_in_gt", "top15_precision", "top15_energy"):
        np.testing.assert_array_equal(out[key], 1.0, err_msg=key)
    np.testing.assert_allclose(out["iou_top15"], topk_count(24 * 24) / (24 * 24))


# ---------------------------------------------------------------------------- compute_all and the API


def test_compute_all_matches_single_metrics_across_chunks_and_threads():
    maps, masks = random_batch(7, b=21)  # 21 maps: several 8-map blocks and a ragged end
    artifacts = torch.zeros(21, 12, 12, dtype=torch.bool)  # a different size: its own resize
    artifacts[:, :4, :4] = True
    out = compute_all(maps, masks, artifacts, chunk_size=5)
    assert set(out) == OBJECT_KEYS | ARTIFACT_KEYS
    singles = {
        "average_precision": average_precision(maps, masks),
        "iou": iou(maps, masks),
        "iou_top15": iou_topk(maps, masks),
        "pointing_game": pointing_game(maps, masks),
        "energy_in_gt": energy_in_gt(maps, masks),
        "top15_precision": top15_precision(maps, masks),
        "top15_energy": top15_energy(maps, masks),
        "artifact_energy": artifact_energy(maps, artifacts),
        "artifact_pointing": artifact_pointing(maps, artifacts),
    }
    threaded = compute_all(maps, masks, artifacts, chunk_size=1, workers=2)
    for key, values in singles.items():
        assert values.shape == (21,) and values.dtype == np.float64
        np.testing.assert_array_equal(out[key], values, err_msg=key)
        np.testing.assert_array_equal(threaded[key], values, err_msg=key)


def test_compute_all_skips_missing_groups_and_names_the_percent():
    maps, masks = random_batch(8, b=2)
    assert set(compute_all(maps, object_mask=masks)) == OBJECT_KEYS
    assert set(compute_all(maps, artifact_mask=masks)) == ARTIFACT_KEYS
    assert compute_all(maps) == {}
    assert {"iou_top10", "top10_precision", "top10_energy"} <= set(compute_all(maps, masks, percent=10))


def test_numpy_input_and_integer_masks():
    maps, masks = random_batch(9, b=4)
    a = compute_all(maps, masks)
    b = compute_all(maps.numpy().astype(np.float64), masks.numpy().astype(np.uint8))
    for key in a:
        np.testing.assert_allclose(a[key], b[key], atol=1e-6, err_msg=key)


def test_energies_match_a_float64_reference():
    maps, masks = random_batch(10, b=6)
    s = prepare(maps, (24, 24)).numpy().astype(np.float64)
    m = masks.numpy()
    np.testing.assert_allclose(energy_in_gt(maps, masks), (s * m).sum((1, 2)) / s.sum((1, 2)), rtol=1e-12)
    np.testing.assert_allclose(
        iou(maps, masks), ((s >= 0.5) & m).sum((1, 2)) / ((s >= 0.5) | m).sum((1, 2)), rtol=1e-12
    )
    np.testing.assert_array_equal(
        pointing_game(maps, masks), m.reshape(6, -1)[np.arange(6), s.reshape(6, -1).argmax(1)]
    )


def test_invalid_inputs_raise():
    maps, masks = random_batch(0, b=2)
    with pytest.raises(ValueError, match="NaN"):
        iou(torch.full((2, 7, 7), math.nan), masks)
    with pytest.raises(ValueError, match="only 0 and 1"):
        iou(maps, masks.to(torch.uint8) * 2)
    with pytest.raises(ValueError, match="batch size"):
        iou(maps, masks[:1])
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        iou(maps[0], masks)
    with pytest.raises(ValueError, match="percent"):
        iou_topk(maps, masks, percent=0)


def test_empty_batch():
    out = compute_all(torch.zeros(0, 7, 7), torch.zeros(0, 24, 24, dtype=torch.bool))
    assert all(v.shape == (0,) for v in out.values())


def test_module_exports_resolve():
    for name in metrics.__all__:
        assert hasattr(metrics, name), name


def test_detection_frame_marks_each_image_and_leaves_absent_elements_out():
    from cascam.evaluate import detection_frame, detection_table

    size = 20
    part_a = torch.zeros(2, size, size, dtype=torch.bool)
    part_a[:, 0:6, 0:10] = True  # 60 px = the top 15 % of 400
    part_b = torch.zeros(2, size, size, dtype=torch.bool)
    part_b[:, 14:20, 10:20] = True
    part_b[1] = False  # absent from image 1
    on_a = part_a.float()  # the map covers exactly part a
    on_b = torch.zeros(2, size, size)
    on_b[:, 14:20, 10:20] = 1.0
    frame = detection_frame({"cam": on_a, "fullgrad": on_b}, {"a": part_a, "b": part_b})
    cam = frame[frame.method == "CAM"].set_index("image")
    fg = frame[frame.method == "FullGrad"].set_index("image")
    assert cam["a"].tolist() == [1.0, 1.0] and cam["b"].iloc[0] == 0.0 and np.isnan(cam["b"].iloc[1])
    assert fg["a"].tolist() == [0.0, 0.0] and fg["b"].iloc[0] == 1.0 and np.isnan(fg["b"].iloc[1])
    table = detection_table({"cam": on_a, "fullgrad": on_b}, {"a": part_a, "b": part_b})
    assert table.loc["CAM", "a"] == 1.0 and table.loc["FullGrad", "b"] == 1.0 and table.loc["CAM", "b"] == 0.0


def test_visible_reading_counts_only_the_pixels_the_box_leaves_visible():
    """Benchmark v2's secondary reading: a peak on the box lying over the animal is a hit for the
    silhouette (trimap-like) but a miss for the visible pixels; energy splits the same way."""
    from cascam.evaluate import visible_scores

    silhouette = torch.zeros(2, 8, 8, dtype=torch.bool)
    silhouette[:, 2:6, 2:6] = True
    box = torch.zeros_like(silhouette)
    box[:, 2:4, 2:4] = True  # the box covers a quarter of the animal
    visible = silhouette & ~box
    maps = torch.zeros(2, 8, 8)
    maps[0, 2, 2] = 1.0  # image 0 peaks on the box, over the animal
    maps[1, 5, 5] = 1.0  # image 1 peaks on a visible animal pixel
    full = compute_all(maps, object_mask=silhouette)
    vis = visible_scores(maps, visible)
    assert full["pointing_game"].tolist() == [1.0, 1.0]
    assert vis["pointing_game_visible"].tolist() == [0.0, 1.0]
    assert vis["energy_in_gt_visible"][0] == pytest.approx(0.0)
    assert vis["energy_in_gt_visible"][1] == pytest.approx(1.0)


def test_box_shortcut_pointing_counts_box_centres_on_the_animal():
    from cascam.report import box_shortcut_pointing

    obj = torch.zeros(3, 10, 10, dtype=torch.bool)
    obj[:, 0:5, :] = True  # the animal fills the top half
    box = torch.zeros_like(obj)
    box[0, 1:4, 1:4] = True  # centre (2, 2): on the animal
    box[1, 6:9, 6:9] = True  # centre (7, 7): off it
    # image 2 has no box: a miss
    assert box_shortcut_pointing(obj, box) == pytest.approx(1 / 3)
