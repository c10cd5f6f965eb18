"""Tests of cascam.stats: bootstrap intervals, tidy summaries, paired differences and both Cohen's d."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from cascam.stats import (
    bootstrap_mean_ci,
    bootstrap_means,
    cohens_d_paired,
    cohens_d_pooled,
    paired_differences,
    summarize,
)


def per_image_frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.6, n)
    rows = []
    for method, shift in (("cam", 0.0), ("fullgrad", 0.05), ("cascam", 0.15)):
        values = np.clip(base + shift + rng.normal(0, 0.05, n), 0, 1)
        rows.append(pd.DataFrame({"method": method, "image": np.arange(n), "iou": values, "ap": values**0.5}))
    return pd.concat(rows, ignore_index=True)


# ---------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_the_mean_and_is_seeded():
    x = np.random.default_rng(1).exponential(size=80)
    lo, hi = bootstrap_mean_ci(x, n_boot=2000, seed=3)
    assert lo < x.mean() < hi
    assert bootstrap_mean_ci(x, n_boot=2000, seed=3) == (lo, hi)
    assert bootstrap_mean_ci(x, n_boot=2000, seed=4) != (lo, hi)


def test_bootstrap_width_matches_the_standard_error():
    x = np.random.default_rng(2).normal(size=400)
    lo, hi = bootstrap_mean_ci(x, n_boot=4000, seed=0)
    normal_width = 2 * 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert hi - lo == pytest.approx(normal_width, rel=0.1)


def test_bootstrap_means_batches_equal_one_pass():
    x = np.arange(10.0)
    one = bootstrap_means(x, 50, np.random.default_rng(0))
    assert one.shape == (50,)
    assert np.all((one >= 0) & (one <= 9))
    # the batching (≈ 4 M draws at a time) must not change the stream for small problems
    np.testing.assert_array_equal(one, bootstrap_means(x, 50, np.random.default_rng(0)))


def test_bootstrap_degenerate_samples():
    assert bootstrap_mean_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)  # exactly, no rounding noise
    assert bootstrap_mean_ci([0.7]) == (0.7, 0.7)
    lo, hi = bootstrap_mean_ci([math.nan, math.nan])
    assert math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError):
        bootstrap_mean_ci([1.0, 2.0], level=95)


# ---------------------------------------------------------------------------- summarize


def test_summarize_values_and_layout():
    df = per_image_frame()
    out = summarize(df, ["iou", "ap"], n_boot=500, seed=1)
    assert list(out.columns) == ["method", "metric", "mean", "sd", "n", "ci_low", "ci_high"]
    assert list(out["method"]) == ["cam", "cam", "fullgrad", "fullgrad", "cascam", "cascam"]
    for row in out.itertuples():
        values = df.loc[df.method == row.method, row.metric]
        assert row.mean == pytest.approx(values.mean())
        assert row.sd == pytest.approx(values.std(ddof=1))
        assert row.n == len(values)
        assert row.ci_low < row.mean < row.ci_high
    pd.testing.assert_frame_equal(out, summarize(df, ["iou", "ap"], n_boot=500, seed=1))


def test_summarize_group_interval_does_not_depend_on_other_groups():
    df = per_image_frame()
    full = summarize(df, ["iou"], n_boot=300).set_index("method")
    alone = summarize(df[df.method == "cascam"], ["iou"], n_boot=300).set_index("method")
    assert full.loc["cascam", "ci_low"] == alone.loc["cascam", "ci_low"]
    assert full.loc["cascam", "ci_high"] == alone.loc["cascam", "ci_high"]


def test_summarize_small_groups_nan_and_no_warnings():
    df = pd.DataFrame(
        {
            "method": ["a", "b", "b", "c", "c"],
            "iou": [0.4, 0.5, 0.5, math.nan, math.nan],
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = summarize(df, ["iou"]).set_index("method")
    assert out.loc["a", "n"] == 1 and math.isnan(out.loc["a", "sd"])
    assert (out.loc["a", "ci_low"], out.loc["a", "ci_high"]) == (0.4, 0.4)
    assert out.loc["b", "sd"] == 0.0 and out.loc["b", "ci_low"] == out.loc["b", "ci_high"] == 0.5
    assert out.loc["c", "n"] == 0 and out.loc[["c"], ["mean", "sd", "ci_low", "ci_high"]].isna().all(
        axis=None
    )


def test_summarize_by_several_columns_or_none():
    df = per_image_frame(n=10)
    df["config"] = np.where(df.image < 5, "K3", "K5")
    out = summarize(df, ["iou"], by=["config", "method"], n_boot=100)
    assert len(out) == 6 and list(out.columns[:3]) == ["config", "method", "metric"]
    assert set(out.n) == {5}
    whole = summarize(df, ["iou"], by=None, n_boot=100)
    assert len(whole) == 1 and whole.n.iloc[0] == 30
    with pytest.raises(KeyError, match="nope"):
        summarize(df, ["nope"])


# ---------------------------------------------------------------------------- effect sizes and paired differences


def test_cohens_d_hand_computed():
    a, b = [3.0, 5.0, 7.0], [1.0, 2.0, 3.0]
    assert cohens_d_paired(a, b) == pytest.approx(3.0)  # differences 2, 3, 4: mean 3, sd 1
    assert cohens_d_pooled(a, b) == pytest.approx(3.0 / math.sqrt(2.5))  # variances 4 and 1
    # unequal sizes: means 2 and 6, variances 1 and 10/3, s_p² = (2·1 + 3·10/3) / 5 = 2.4
    assert cohens_d_pooled([1.0, 2.0, 3.0], [4.0, 5.0, 7.0, 8.0]) == pytest.approx(-4 / math.sqrt(2.4))


def test_cohens_d_degenerate_cases():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isnan(cohens_d_paired([1.0], [0.0]))
        assert math.isnan(cohens_d_paired([1.0, 2.0], [1.0, 2.0]))  # all differences 0: 0/0
        assert cohens_d_paired([1.5, 2.5], [1.0, 2.0]) == math.inf  # equal nonzero differences
        assert math.isnan(cohens_d_pooled([1.0, 1.0], [1.0, 1.0]))
        assert cohens_d_pooled([1.0, 1.0], [0.0, 0.0]) == math.inf
    with pytest.raises(ValueError, match="pair"):
        cohens_d_paired([1.0, 2.0], [1.0])


def test_paired_differences_against_hand_and_scipy():
    df = per_image_frame()
    out = paired_differences(df, "iou", baseline="fullgrad", n_boot=800, seed=2)
    assert list(out["method"]) == ["cam", "cascam"]
    wide = df.pivot(index="image", columns="method", values="iou")
    for row in out.itertuples():
        delta = wide[row.method] - wide["fullgrad"]
        assert row.n == len(delta)
        assert row.mean_diff == pytest.approx(delta.mean())
        assert row.sd_diff == pytest.approx(delta.std(ddof=1))
        assert row.d_paired == pytest.approx(delta.mean() / delta.std(ddof=1))
        pooled = math.sqrt((wide[row.method].var() + wide["fullgrad"].var()) / 2)
        assert row.d_pooled == pytest.approx((wide[row.method].mean() - wide["fullgrad"].mean()) / pooled)
        assert row.p_value == pytest.approx(sps.ttest_rel(wide[row.method], wide["fullgrad"]).pvalue)
        assert row.ci_low < row.mean_diff < row.ci_high
    assert out.set_index("method").loc["cascam", "ci_low"] > 0  # +0.10 on average: clearly above 0
    pd.testing.assert_frame_equal(out, paired_differences(df, "iou", baseline="fullgrad", n_boot=800, seed=2))


def test_paired_differences_pairs_by_image_and_drops_missing():
    df = pd.DataFrame(
        {
            "method": ["base"] * 4 + ["new"] * 3,
            "image": [0, 1, 2, 3, 3, 1, 0],  # shuffled, image 2 missing for "new"
            "iou": [0.1, 0.2, 0.3, math.nan, 0.9, 0.5, 0.3],
        }
    )
    row = paired_differences(df, "iou", "base").iloc[0]
    assert row.n == 2  # image 2 has no partner, image 3's baseline is NaN
    assert row.mean_diff == pytest.approx(((0.3 - 0.1) + (0.5 - 0.2)) / 2)


def test_paired_differences_degenerate_and_invalid():
    df = pd.DataFrame({"method": ["base", "new"], "image": [0, 0], "iou": [0.2, 0.5]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        row = paired_differences(df, "iou", "base").iloc[0]
    assert row.n == 1 and row.mean_diff == pytest.approx(0.3)
    assert all(math.isnan(row[c]) for c in ("sd_diff", "d_paired", "d_pooled", "p_value"))
    with pytest.raises(ValueError, match="baseline"):
        paired_differences(df, "iou", "missing")
    with pytest.raises(ValueError, match="twice"):
        paired_differences(pd.concat([df, df]), "iou", "base")
