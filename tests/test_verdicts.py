"""The verdict rule: held / contradicted / inconclusive / not testable from the paired interval."""

from __future__ import annotations

import numpy as np
import pytest

from cascam.verdicts import (
    VERDICTS,
    Verdict,
    all_of,
    not_testable,
    paired_interval,
    paired_verdict,
    rises_along,
    verdict_of_interval,
)


@pytest.mark.parametrize(
    "low,high,claimed,expected",
    [
        (0.01, 0.2, "greater", "held"),
        (-0.2, -0.01, "greater", "contradicted"),
        (-0.1, 0.1, "greater", "inconclusive"),
        (0.0, 0.1, "greater", "inconclusive"),  # touching 0 is not clear of it
        (-0.2, -0.01, "less", "held"),
        (0.01, 0.2, "less", "contradicted"),
        (float("nan"), float("nan"), "greater", "not testable"),
    ],
)
def test_verdict_of_interval(low, high, claimed, expected):
    assert verdict_of_interval(low, high, claimed) == expected


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="claimed"):
        verdict_of_interval(0, 1, "bigger")
    with pytest.raises(ValueError, match="verdict: must be one of"):
        Verdict("yes")
    with pytest.raises(ValueError, match="pair the same images"):
        paired_interval([1, 2], [1, 2, 3])


def test_constant_paired_difference_gives_a_point_interval():
    b = np.linspace(0, 1, 50)
    v = paired_verdict(b + 0.25, b, metric="iou", compared="A − B")
    (ev,) = v.evidence
    assert v.verdict == "held"
    assert ev.difference == pytest.approx(0.25) and ev.low == pytest.approx(0.25) and ev.high == pytest.approx(0.25)
    assert (ev.n_images, ev.n_seeds) == (50, 1)
    assert paired_verdict(b - 0.25, b, metric="iou", compared="A − B").verdict == "contradicted"
    assert paired_verdict(b - 0.25, b, metric="iou", compared="A − B", claimed="less").verdict == "held"


def test_pairing_matters():
    """Huge differences between images, a small consistent difference within each pair: the paired
    interval sees it (an unpaired comparison of the two means would not)."""
    rng = np.random.default_rng(1)
    b = rng.normal(0, 10, 200)
    a = b + 0.1 + rng.normal(0, 0.01, 200)
    assert paired_verdict(a, b, metric="m", compared="a − b").verdict == "held"


def test_zero_mean_noise_is_inconclusive_and_nan_pairs_are_dropped():
    rng = np.random.default_rng(2)
    d = rng.normal(0, 1, 300)
    d -= d.mean()
    a = np.concatenate([d, [np.nan, 5.0]])
    b = np.concatenate([np.zeros(300), [0.0, np.nan]])
    v = paired_verdict(a, b, metric="m", compared="a − b")
    assert v.verdict == "inconclusive" and v.evidence[0].n_images == 300
    assert v.evidence[0].low < 0 < v.evidence[0].high


def test_seed_to_seed_variance_widens_the_interval():
    """Three seeds whose differences are +1, −1 and +0.9 with little noise within a seed: pooled as
    one sample of images the mean (+0.3) looks clear of 0; resampling seeds shows it is not."""
    rng = np.random.default_rng(3)
    per_seed = [1.0, -1.0, 0.9]
    diffs = np.concatenate([m + rng.normal(0, 0.05, 400) for m in per_seed])
    seeds = np.repeat([0, 1, 2], 400)
    zeros = np.zeros_like(diffs)
    pooled = paired_verdict(diffs, zeros, metric="m", compared="a − b")
    by_seed = paired_verdict(diffs, zeros, metric="m", compared="a − b", seeds=seeds)
    assert pooled.verdict == "held"
    assert by_seed.verdict == "inconclusive"
    ev = by_seed.evidence[0]
    assert (ev.n_images, ev.n_seeds) == (1200, 3)
    assert ev.difference == pytest.approx(np.mean([d.mean() for d in np.split(diffs, 3)]))
    assert ev.low < -0.5 and ev.high > 0.9  # spans the seeds' own means


def test_interval_is_reproducible_and_covers_the_mean():
    rng = np.random.default_rng(4)
    a, b = rng.random(100), rng.random(100)
    assert paired_interval(a, b, seed=7) == paired_interval(a, b, seed=7)
    diff, low, high, n, s = paired_interval(a, b)
    assert low < diff < high and n == 100 and s == 1


def test_all_of_combines_parts():
    h, c, i, n = Verdict("held"), Verdict("contradicted"), Verdict("inconclusive"), not_testable("no masks")
    assert all_of([h, h]).verdict == "held"
    assert all_of([h, i]).verdict == "inconclusive"
    assert all_of([h, c, i]).verdict == "contradicted"
    assert all_of([h, n]).verdict == "inconclusive"
    assert all_of([n, n]).verdict == "not testable" and "no masks" in all_of([n]).reason
    assert all_of([]).verdict == "not testable"
    assert set(VERDICTS) == {"held", "contradicted", "inconclusive", "not testable"}


def test_evidence_text_names_difference_interval_and_sample():
    b = np.zeros(40)
    v = paired_verdict(b + 0.123, b, metric="pointing game", compared="CasCAM − CAM")
    text = v.text(scale=100, unit=" pp")
    assert text == "CasCAM − CAM, pointing game: +12.3 [12.3, 12.3] pp; 40 images, 1 seed"
    assert v.to_dict()["evidence"][0]["n_images"] == 40
    assert v.text() == "CasCAM − CAM, pointing game: +0.123 [0.123, 0.123]; 40 images, 1 seed"  # not a 0/1 metric


def test_a_difference_of_hit_rates_reads_in_percentage_points_like_the_tables():
    a = np.r_[np.ones(30), np.zeros(10)]  # 75 % of the images hit
    b = np.r_[np.ones(20), np.zeros(20)]  # 50 %
    v = paired_verdict(a, b, metric="pointing game", compared="CasCAM − CAM")
    assert v.evidence[0].rate and v.to_dict()["evidence"][0]["rate"] is True
    assert v.text().startswith("CasCAM − CAM, pointing game: +25 [") and "] pp; 40 images, 1 seed" in v.text()
    assert v.text(scale=1, unit="").startswith("CasCAM − CAM, pointing game: +0.25 [")  # an explicit scale wins
    assert not paired_verdict(a * 0.5, b, metric="energy", compared="x − y").evidence[0].rate


def test_rises_along_tests_each_consecutive_pair_on_the_same_images():
    import pandas as pd

    images = np.arange(100)
    rng = np.random.default_rng(5)
    base = rng.random(100)
    frames = {k: pd.DataFrame({"image": images, "pg": base + step}) for k, step in ((3, 0.0), (5, 0.1), (10, 0.2))}
    v = rises_along(frames, [3, 5, 10], "pg")
    assert v.verdict == "held" and [e.compared for e in v.evidence] == ["5 − 3", "10 − 5"]
    frames[10] = frames[10].assign(pg=base + 0.05)  # falls from K = 5 to 10
    assert rises_along(frames, [3, 5, 10], "pg").verdict == "contradicted"
    assert rises_along(frames, [3, 20], "pg").verdict == "not testable"
    shuffled = frames[5].sample(frac=1.0, random_state=0)  # row order does not matter: pairs by image
    assert rises_along({3: frames[3], 5: shuffled}, [3, 5], "pg").evidence[0].difference == pytest.approx(0.1)


def test_an_interval_that_touches_zero_is_not_moved_off_it_by_rounding_noise():
    """Pointing-game differences are −1, 0 or +1: a resampled mean that is exactly zero must not come
    back as ±1e-17, which would turn "touches zero" (inconclusive) into held or contradicted."""
    for s in range(40):
        rng = np.random.default_rng(s)
        d = rng.choice([-1.0, 0.0, 1.0], size=100, p=[0.05, 0.85, 0.10])
        _, low, high, _, _ = paired_interval(d, np.zeros(100), seed=s)
        for bound in (low, high):
            assert bound == 0.0 or abs(bound) >= 0.01 - 1e-12, (s, bound)
