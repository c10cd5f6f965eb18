"""Thresholding schemes TH applied to each CAM before masking and combination (CasCAM's threshold step,
Choi, Kim & Choi, CMES 2026): keep the top k % of each map, or empirical Bayes thresholding
(:mod:`cascam.threshold.maps`, after the R package EbayesThresh: :mod:`cascam.threshold.ebayesthresh`)."""

from __future__ import annotations

import math

import torch

__all__ = ["topk_threshold", "apply_threshold"]


def topk_threshold(cams: torch.Tensor, percent: float) -> torch.Tensor:
    """Keep each map's top ``percent`` % values, set the rest to 0.

    For a map with n pixels, the cut-off t is the ⌈percent·n/100⌉-th largest value; values ≥ t
    are kept unchanged (ties at t are all kept), the others become 0.

    Args:
        cams: ``(B, H, W)`` float maps.
        percent: in (0, 100].
    Returns:
        ``(B, H, W)``, same dtype and device.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"topk: percent must be in (0, 100]; got {percent!r}")
    b = cams.shape[0]
    flat = cams.reshape(b, -1)
    k = max(1, math.ceil(percent * flat.shape[1] / 100 - 1e-9))
    cutoff = flat.topk(k, dim=1).values[:, -1:]
    return torch.where(flat >= cutoff, flat, torch.zeros_like(flat)).reshape(cams.shape)


def apply_threshold(cams: torch.Tensor, scheme: str, *, topk: float = 10.0, **ebayes_options) -> torch.Tensor:
    """TH(CAM) for ``scheme`` in ``none``, ``topk``, ``ebayes``.

    The negative part of a CAM is clipped first (ReLU), so thresholded maps are ≥ 0 and the
    masking step exp(−θ·M) only darkens; a negative raw CAM would otherwise brighten regions
    without bound.

    Args:
        cams: ``(B, H, W)`` raw maps.
        scheme: ``none`` (identity), ``topk`` (keep the top ``topk`` %), ``ebayes`` (empirical Bayes
            thresholding, :func:`cascam.threshold.maps.ebayes_threshold_maps`, with
            ``ebayes_options`` such as ``prior``, ``a``, ``threshrule``, ``standardize``).
    """
    cams = cams.clamp_min(0)
    if scheme == "none":
        return cams
    if scheme == "topk":
        return topk_threshold(cams, topk)
    if scheme == "ebayes":
        from .maps import ebayes_threshold_maps

        return ebayes_threshold_maps(cams, **ebayes_options).clamp_min(0)
    raise ValueError(f"threshold: unknown scheme {scheme!r}; choose one of none, topk, ebayes")
