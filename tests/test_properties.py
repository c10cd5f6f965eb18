"""Property-based tests over the configuration space: every accepted configuration runs the masking and
combination maths without NaN or Inf; every rejected one is rejected at construction."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cascam.config import CascadeConfig, ConfigError
from cascam.masking import combine_maps, mask_images
from cascam.threshold import apply_threshold

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.integers(min_value=-5, max_value=200),
)


@settings(max_examples=60, deadline=None)
@given(
    theta=numbers,
    K=st.one_of(st.integers(-2, 12), st.floats(-1, 12)),
    topk=numbers,
    lam=numbers,
    threshold=st.sampled_from(["none", "topk", "ebayes", "otsu"]),
    fill=st.sampled_from(["multiply", "mean", "blur", "paint"]),
    combine=st.sampled_from(["paper", "code"]),
    scale=st.floats(0, 1e4),
)
def test_accepted_configs_give_finite_masks_and_maps(theta, K, topk, lam, threshold, fill, combine, scale):
    try:
        cfg = CascadeConfig(theta=theta, K=K, topk=topk, lam=lam, threshold=threshold, fill=fill, combine=combine)
    except ConfigError as exc:
        msg = str(exc)
        assert "\n" not in msg and ":" in msg
        # rejected for a reason the rules name
        bad = (
            not (isinstance(theta, (int, float)) and math.isfinite(theta) and theta > 0)
            or not (float(K).is_integer() and 1 <= K <= 100)
            or not (math.isfinite(topk) and 0 < topk <= 100)
            or not (math.isfinite(lam) and lam >= 0)
            or threshold == "otsu"
            or fill == "paint"
        )
        assert bad, msg
        return
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 16, 16, generator=g)
    cams = (torch.randn(3, 16, 16, generator=g) * scale)
    cams[0] = 0.0  # a constant (all-zero) map
    ths = []
    for _ in range(cfg.K):
        th = apply_threshold(cams, cfg.threshold, topk=cfg.topk)
        assert torch.isfinite(th).all() and (th >= 0).all()
        x = mask_images(x, th, cfg.theta, cfg.fill)
        assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
        ths.append(th)
    out = combine_maps(ths, cfg.lam, cfg.combine)
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
