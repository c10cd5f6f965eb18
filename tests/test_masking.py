"""The masking, thresholding and combination formulas against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from cascam.masking import (
    combination_weights,
    combine_maps,
    fill_blur,
    fill_inpaint,
    fill_mean,
    fill_multiply,
    fit_masks,
    mask_images,
    minmax_images,
    normalize_maps,
)
from cascam.threshold import apply_threshold, topk_threshold


def test_minmax_rescales_whole_image_over_all_channels():
    x = torch.tensor([[[[1.0, 2.0]], [[3.0, 5.0]], [[1.0, 1.0]]]])  # (1, 3, 1, 2): min 1, max 5
    out = minmax_images(x)
    assert torch.allclose(out, (x - 1) / 4)


def test_minmax_constant_image_becomes_zero_not_nan():
    out = minmax_images(torch.full((2, 3, 4, 4), 0.7))
    assert torch.equal(out, torch.zeros(2, 3, 4, 4))
    assert torch.equal(normalize_maps(torch.zeros(1, 5, 5)), torch.zeros(1, 5, 5))


def test_fill_multiply_is_x_times_exp_minus_theta_m():
    x = torch.full((1, 3, 1, 2), 0.8)
    m = torch.tensor([[[0.0, 2 * math.log(2)]]])  # θ = 0.5 → factors 1 and 1/2
    out = fill_multiply(x, m, 0.5)
    assert torch.allclose(out, torch.tensor([0.8, 0.4]).view(1, 1, 1, 2).expand(1, 3, 1, 2))


def test_mask_images_hand_computed():
    # x = [0.2, 0.6, 1.0] in every channel, M = [0, 0, ln 4], θ = 1 → [0.2, 0.6, 0.25] → minmax over [0.2, 0.6]
    x = torch.tensor([0.2, 0.6, 1.0]).view(1, 1, 1, 3).repeat(1, 3, 1, 1)
    m = torch.tensor([[[0.0, 0.0, math.log(4)]]])
    out = mask_images(x, m, theta=1.0)
    expected = torch.tensor([0.0, 1.0, (0.25 - 0.2) / 0.4]).view(1, 1, 1, 3).expand(1, 3, 1, 3)
    assert torch.allclose(out, expected, atol=1e-6)


def test_mask_images_is_cumulative():
    x = torch.rand(2, 3, 8, 8)
    m1, m2 = torch.rand(2, 8, 8) * 5, torch.rand(2, 8, 8) * 5
    twice = mask_images(mask_images(x, m1, 0.3), m2, 0.3)
    by_hand = minmax_images(minmax_images(x * torch.exp(-0.3 * m1)[:, None]) * torch.exp(-0.3 * m2)[:, None])
    assert torch.allclose(twice, by_hand, atol=1e-6)


def test_fit_masks_dilates_by_a_moving_maximum():
    m = torch.zeros(1, 8, 8)
    m[0, 3, 3], m[0, 0, 7] = 2.0, 1.0
    out = fit_masks(m, (8, 8), dilate=1 / 8)  # r = round(8 / 8) = 1: a 3×3 window
    expected = torch.zeros(1, 8, 8)
    expected[0, 2:5, 2:5] = 2.0
    expected[0, 0:2, 6:8] = 1.0  # the corner value grows only inside the image
    assert torch.equal(out, expected)
    assert torch.equal(fit_masks(m, (8, 8), dilate=0.0), m)  # the paper: untouched
    assert torch.equal(fit_masks(m, (8, 8), dilate=0.01), m)  # r rounds to 0


def test_mask_images_with_dilation_darkens_the_grown_region():
    # x = 1 everywhere but one black pixel (so MinMax is the identity); M = ln 2 at (4, 4), θ = 1, r = 1
    x = torch.ones(1, 3, 8, 8)
    x[..., 7, 0] = 0.0
    m = torch.zeros(1, 8, 8)
    m[0, 4, 4] = math.log(2)
    out = mask_images(x, m, theta=1.0, dilate=1 / 8)
    expected = x.clone()
    expected[..., 3:6, 3:6] = 0.5
    assert torch.allclose(out, expected, atol=1e-6)
    only_one = x.clone()
    only_one[..., 4, 4] = 0.5
    assert torch.allclose(mask_images(x, m, theta=1.0), only_one, atol=1e-6)  # undilated: one pixel


def test_mask_images_upsamples_low_resolution_masks():
    x = torch.rand(1, 3, 8, 8)
    out = mask_images(x, torch.zeros(1, 2, 2), 0.3)
    assert torch.allclose(out, minmax_images(x))


def test_huge_theta_gives_no_nan():
    x = torch.rand(2, 3, 6, 6)
    out = mask_images(x, torch.full((2, 6, 6), 50.0), theta=1e6)
    assert torch.isfinite(out).all() and torch.equal(out, torch.zeros_like(out))


def test_fill_mean_blends_toward_image_mean():
    x = torch.tensor([0.0, 1.0]).view(1, 1, 1, 2).repeat(1, 3, 1, 1)
    m = torch.tensor([[[math.log(2), 0.0]]])  # θ = 1 → a = [1/2, 1]
    out = fill_mean(x, m, 1.0)
    assert torch.allclose(out[0, 0, 0], torch.tensor([0.5 * 0.0 + 0.5 * 0.5, 1.0]))


def test_fill_blur_keeps_unmasked_pixels_and_changes_masked():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 8, 8] = 1.0
    m = torch.zeros(1, 16, 16)
    m[0, 8, 8] = 100.0
    out = fill_blur(x, m, 1.0)
    assert out[0, 0, 8, 8] < 0.5  # the spike is replaced by its blurred (much smaller) value
    assert torch.equal(out[0, 0, 0, 0], x[0, 0, 0, 0])


def test_fill_inpaint_fills_masked_region_from_surroundings():
    x = torch.full((1, 3, 16, 16), 0.5)
    x[..., 6:10, 6:10] = 1.0
    m = torch.zeros(1, 16, 16)
    m[0, 6:10, 6:10] = 100.0
    out = fill_inpaint(x, m, 1.0)
    assert torch.allclose(out[..., 6:10, 6:10], torch.full((1, 3, 4, 4), 0.5), atol=2 / 255)


def test_unknown_fill_is_rejected():
    with pytest.raises(ValueError, match="fill"):
        mask_images(torch.rand(1, 3, 4, 4), torch.rand(1, 4, 4), 0.3, fill="paint")


def test_combination_weights():
    assert torch.allclose(combination_weights(4, 0.0), torch.full((4,), 0.25))
    assert torch.allclose(combination_weights(3, math.log(2)), torch.tensor([4 / 7, 2 / 7, 1 / 7]))


def test_combine_maps_paper_normalises_each_stage():
    s1 = torch.tensor([[[0.0, 10.0]]])  # Norm → [0, 1]
    s2 = torch.tensor([[[1.0, 0.0]]])  # Norm → [1, 0]
    w = combination_weights(2, math.log(3))  # [3/4, 1/4]
    paper = combine_maps([s1, s2], math.log(3), "paper")
    assert torch.allclose(paper, normalize_maps(w[0] * torch.tensor([[[0.0, 1.0]]]) + w[1] * torch.tensor([[[1.0, 0.0]]])))
    assert torch.allclose(paper, torch.tensor([[[0.0, 1.0]]]))
    code = combine_maps([s1, s2 * 100], math.log(3), "code")  # raw sum: [25, 7.5] → Norm → [1, 0]
    assert torch.allclose(code, torch.tensor([[[1.0, 0.0]]]))


def test_topk_keeps_the_top_percent():
    cams = torch.arange(20, dtype=torch.float32).view(1, 4, 5)
    out = topk_threshold(cams, 10)  # ceil(2) = 2 pixels: 18, 19
    assert torch.equal(out.flatten().nonzero().flatten(), torch.tensor([18, 19]))
    assert torch.equal(out.flatten()[18:], torch.tensor([18.0, 19.0]))
    assert torch.equal(topk_threshold(cams, 100), cams)


def test_topk_keeps_ties_at_the_cutoff():
    cams = torch.tensor([[[5.0, 5.0, 5.0, 1.0]]])
    assert torch.equal(topk_threshold(cams, 25), cams * torch.tensor([1.0, 1.0, 1.0, 0.0]))


def test_apply_threshold_clips_negative_cam():
    cams = torch.tensor([[[-3.0, 2.0]]])
    assert torch.equal(apply_threshold(cams, "none"), torch.tensor([[[0.0, 2.0]]]))
    with pytest.raises(ValueError, match="topk"):
        topk_threshold(cams, 0)
    with pytest.raises(ValueError, match="threshold"):
        apply_threshold(cams, "otsu")
