"""Summaries of per-image metrics: mean ± sd with percentile-bootstrap intervals, paired differences, Cohen's d.

Every function reads a tidy per-image DataFrame (one row per image × method, one column per metric,
as :func:`cascam.metrics.compute_all` gives after ``pd.DataFrame``) and returns a tidy DataFrame.

Conventions:

* Missing values (NaN) in a metric column are dropped per metric (per pair for differences).
* Standard deviations are sample ones (ddof = 1). With fewer than 2 values a standard deviation
  and every effect size is undefined and reported as NaN, with no runtime warning.
* The bootstrap is the percentile bootstrap of the mean: ``n_boot`` resamples of the n values with
  replacement, interval = the (1 − level)/2 and (1 + level)/2 quantiles (``np.percentile``, linear)
  of the resampled means. It is seeded per group and metric from ``seed`` and the group's name, so
  a group's interval does not depend on which other groups are in the frame. Resampled means are
  computed as mean + mean of deviations, so values that are all equal give exactly [mean, mean].

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"method": ["cam"] * 3 + ["cascam"] * 3, "image": [0, 1, 2] * 2,
    ...                    "iou": [0.1, 0.2, 0.3, 0.3, 0.3, 0.6]})
    >>> summarize(df, ["iou"])[["method", "metric", "mean", "n"]]
       method metric  mean  n
    0     cam    iou   0.2  3
    1  cascam    iou   0.4  3
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

__all__ = [
    "bootstrap_means",
    "bootstrap_mean_ci",
    "summarize",
    "cohens_d_paired",
    "cohens_d_pooled",
    "paired_differences",
    "wilson_interval",
]

_MAX_DRAWS = 4_000_000  # resampled values held at once; n_boot is split into batches beyond this


def _rng(seed: int, *key: object) -> np.random.Generator:
    """A generator seeded from ``seed`` and a stable hash (CRC-32) of ``key``, independent of call order."""
    return np.random.default_rng([int(seed), zlib.crc32(repr(key).encode())])


def _clean(values: Sequence[float] | np.ndarray | pd.Series) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    return x[~np.isnan(x)]


def bootstrap_means(
    values: Sequence[float] | np.ndarray, n_boot: int = 1000, seed: int | np.random.Generator = 0
) -> np.ndarray:
    r"""Means of ``n_boot`` resamples (with replacement, same size) of ``values``, ``(n_boot,)`` float64.

    $$ \bar x^{*b} = \bar x + \frac{1}{n}\sum_{i=1}^{n} (x_{I_{bi}} - \bar x), \quad I_{bi} \sim U\{1..n\} $$

    Vectorised in batches of at most ≈ 4 M draws. NaNs are dropped first; with no values left the
    result is all NaN.

    Args:
        values: the sample, any shape (flattened).
        n_boot: the number of resamples, ≥ 1.
        seed: an integer seed or a ``np.random.Generator``.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be ≥ 1; got {n_boot!r}")
    x = _clean(values)
    n = x.size
    if n == 0:
        return np.full(n_boot, np.nan)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    mean = x.mean()
    deviations = x - mean
    out = np.empty(n_boot)
    batch = max(1, _MAX_DRAWS // n)
    for lo in range(0, n_boot, batch):
        hi = min(n_boot, lo + batch)
        out[lo:hi] = deviations[rng.integers(0, n, size=(hi - lo, n))].mean(axis=1)
    return mean + out


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    r"""Percentile-bootstrap interval of the mean: the $(1\mp\text{level})/2$ quantiles of :func:`bootstrap_means`.

    One value gives (x, x); no value gives (nan, nan).

    Example:
        >>> lo, hi = bootstrap_mean_ci([0.2, 0.4, 0.6, 0.8], n_boot=2000, seed=1)
        >>> lo < 0.5 < hi
        True
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    means = bootstrap_means(values, n_boot, seed)
    if np.isnan(means[0]):
        return (math.nan, math.nan)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return (float(lo), float(hi))


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    r"""Wilson score interval of a proportion ``successes / n``.

    $$ \frac{\hat p + \frac{z^2}{2n} \pm z\sqrt{\frac{\hat p(1-\hat p)}{n} + \frac{z^2}{4n^2}}}{1 + \frac{z^2}{n}} $$

    ``n = 0`` gives (nan, nan).

    Example:
        >>> [round(v, 3) for v in wilson_interval(8, 10)]
        [0.49, 0.943]
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in [0, n={n}]; got {successes!r}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _sd(x: np.ndarray) -> float:
    """Sample sd (ddof = 1); exactly 0 for equal values (numpy's would be rounding noise); NaN for n < 2."""
    if x.size < 2:
        return math.nan
    return 0.0 if bool((x == x[0]).all()) else float(x.std(ddof=1))


def _divide(num: float, den: float) -> float:
    """num / den, with ±inf for a nonzero num over 0 and NaN for 0 / 0 or NaN input, without warnings."""
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den == 0:
        return math.nan if num == 0 else math.copysign(math.inf, num)
    return num / den


def _groups(by: str | Sequence[str] | None) -> list[str]:
    if by is None:
        return []
    return [by] if isinstance(by, str) else list(by)


def summarize(
    df: pd.DataFrame,
    metric_cols: Sequence[str],
    by: str | Sequence[str] | None = "method",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""Mean, sd and a percentile-bootstrap interval of each metric within each group.

    $$ \bar x = \frac{1}{n}\sum_i x_i, \qquad s = \sqrt{\tfrac{1}{n-1}\sum_i (x_i - \bar x)^2} $$

    Args:
        df: one row per image (and method), the metrics as columns.
        metric_cols: the columns to summarise.
        by: the grouping column(s), ``None`` for the whole frame. Groups keep the order in which
            they first appear.
        n_boot: bootstrap resamples per group and metric.
        seed: the base seed (see the module notes).
        level: the interval's coverage, 0.95 for a 95 % interval.
    Returns:
        One row per group and metric: the ``by`` columns, ``metric``, ``mean``, ``sd``, ``n`` (non-NaN
        values), ``ci_low``, ``ci_high``. ``sd`` is NaN when n < 2; everything but ``n`` is NaN when n = 0.
    """
    keys = _groups(by)
    missing = [c for c in [*keys, *metric_cols] if c not in df.columns]
    if missing:
        raise KeyError(f"summarize: no column(s) {missing} in the frame (columns: {list(df.columns)})")
    grouped = df.groupby(keys, sort=False, dropna=False) if keys else [((), df)]
    rows = []
    for name, part in grouped:
        name = name if isinstance(name, tuple) else (name,)
        for metric in metric_cols:
            x = _clean(part[metric])
            lo, hi = bootstrap_mean_ci(x, n_boot, _rng(seed, *name, metric), level)
            rows.append(
                {
                    **dict(zip(keys, name)),
                    "metric": metric,
                    "mean": float(x.mean()) if x.size else math.nan,
                    "sd": _sd(x),
                    "n": int(x.size),
                    "ci_low": lo,
                    "ci_high": hi,
                }
            )
    return pd.DataFrame(rows, columns=[*keys, "metric", "mean", "sd", "n", "ci_low", "ci_high"])


def cohens_d_paired(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    r"""Cohen's $d_z$ of paired samples: the mean difference over the sd of the differences.

    $$ d_z = \frac{\overline{a - b}}{s_{a-b}} $$

    It measures how consistently a beats b image by image (d_z = t / √n of the paired t-test).
    NaN when fewer than 2 pairs or when every difference is 0; ±inf when the differences are all
    equal and nonzero. Pairs with a NaN are dropped.

    Example:
        >>> cohens_d_paired([3, 5, 7], [1, 2, 3])   # differences 2, 3, 4: mean 3, sd 1
        3.0
    """
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cohens_d_paired: a and b must pair up; got {a.size} and {b.size} values")
    d = (a - b)[~(np.isnan(a) | np.isnan(b))]
    if d.size < 2:
        return math.nan
    return _divide(float(d.mean()), _sd(d))


def cohens_d_pooled(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    r"""Cohen's d of two independent samples: the difference of means over the pooled sd.

    $$ d = \frac{\bar a - \bar b}{s_p}, \qquad s_p = \sqrt{\frac{(n_a - 1)s_a^2 + (n_b - 1)s_b^2}{n_a + n_b - 2}} $$

    This is the textbook d that a paper usually means by "Cohen's d"; it ignores the pairing, so
    on per-image values of two methods it is usually smaller than :func:`cohens_d_paired`. NaNs are
    dropped from each sample; NaN when a sample has fewer than 2 values or when both are constant
    and equal; ±inf when both are constant and differ.

    Example:
        >>> cohens_d_pooled([3, 5, 7], [1, 2, 3])   # means 5 and 2, variances 4 and 1: s_p = √2.5
        1.8973665961010275
    """
    a, b = _clean(a), _clean(b)
    if a.size < 2 or b.size < 2:
        return math.nan
    pooled = ((a.size - 1) * _sd(a) ** 2 + (b.size - 1) * _sd(b) ** 2) / (a.size + b.size - 2)
    return _divide(float(a.mean() - b.mean()), math.sqrt(pooled))


def _paired_t_pvalue(mean: float, sd: float, n: int) -> float:
    """Two-sided p-value of the paired t-test; NaN when n < 2 or all differences are 0, 0 when sd = 0 < |mean|."""
    if n < 2:
        return math.nan
    t = _divide(mean * math.sqrt(n), sd)
    if math.isnan(t):
        return math.nan
    return 0.0 if math.isinf(t) else float(2 * sps.t.sf(abs(t), df=n - 1))


def paired_differences(
    df: pd.DataFrame,
    metric: str,
    baseline: str,
    by: str = "method",
    id_col: str = "image",
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> pd.DataFrame:
    r"""Each method against ``baseline`` on the same images: mean paired difference, its interval, Cohen's d.

    For each method m ≠ baseline, on the images where both have a (non-NaN) value, with
    $\delta_i = x^{m}_i - x^{\text{baseline}}_i$:

    * ``mean_diff`` $= \bar\delta$, ``sd_diff`` $= s_\delta$, and the percentile-bootstrap interval of
      $\bar\delta$ (images resampled, pairs kept together);
    * ``d_paired`` $= \bar\delta / s_\delta$ (:func:`cohens_d_paired`, d_z) and ``d_pooled`` $=
      (\bar x^m - \bar x^{\text{baseline}}) / s_p$ (:func:`cohens_d_pooled`, on the same paired
      images) — the paper's remark on effect sizes most likely used the pooled one;
    * ``p_value``: the two-sided paired t-test.

    Args:
        df: one row per image × method.
        metric: the metric column.
        baseline: the value of ``by`` to compare against (e.g. ``"fullgrad"``).
        by: the method column.
        id_col: the image identifier that pairs rows.
        n_boot, seed, level: as in :func:`summarize`.
    Returns:
        One row per method other than the baseline, in order of first appearance: ``by``,
        ``baseline``, ``metric``, ``n`` (pairs), ``mean``, ``mean_baseline``, ``mean_diff``,
        ``sd_diff``, ``ci_low``, ``ci_high``, ``d_paired``, ``d_pooled``, ``p_value``. NaN marks what is
        undefined: everything but ``n`` with no pair, sd, d and p with one pair, d_paired and p when
        all differences are 0; a d is ±inf when the spread it divides by is 0 but the difference is not.
    Raises:
        KeyError: a column is missing. ValueError: ``baseline`` is not in ``df[by]``, or an image
        appears twice for one method.
    """
    missing = [c for c in (by, id_col, metric) if c not in df.columns]
    if missing:
        raise KeyError(
            f"paired_differences: no column(s) {missing} in the frame (columns: {list(df.columns)})"
        )
    methods = list(pd.unique(df[by]))
    if baseline not in methods:
        raise ValueError(f"paired_differences: baseline {baseline!r} not among {by!r} values {methods}")
    if df.duplicated([by, id_col]).any():
        raise ValueError(
            f"paired_differences: some {id_col!r} appear twice for one {by!r}; pairs are ambiguous"
        )
    wide = df.pivot(index=id_col, columns=by, values=metric)
    columns = [by, "baseline", "metric", "n", "mean", "mean_baseline", "mean_diff", "sd_diff"]
    columns += ["ci_low", "ci_high", "d_paired", "d_pooled", "p_value"]
    rows = []
    for method in methods:
        if method == baseline:
            continue
        pair = wide[[method, baseline]].to_numpy(dtype=np.float64)
        pair = pair[~np.isnan(pair).any(axis=1)]
        x, x0 = pair[:, 0], pair[:, 1]
        delta = x - x0
        n = int(delta.size)
        mean_diff = float(delta.mean()) if n else math.nan
        sd_diff = _sd(delta)
        lo, hi = bootstrap_mean_ci(delta, n_boot, _rng(seed, method, baseline, metric), level)
        rows.append(
            {
                by: method,
                "baseline": baseline,
                "metric": metric,
                "n": n,
                "mean": float(x.mean()) if n else math.nan,
                "mean_baseline": float(x0.mean()) if n else math.nan,
                "mean_diff": mean_diff,
                "sd_diff": sd_diff,
                "ci_low": lo,
                "ci_high": hi,
                "d_paired": cohens_d_paired(x, x0),
                "d_pooled": cohens_d_pooled(x, x0),
                "p_value": _paired_t_pvalue(mean_diff, sd_diff, n),
            }
        )
    return pd.DataFrame(rows, columns=columns)
