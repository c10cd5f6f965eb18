"""The one verdict rule for every claim of the paper that the book tests.

A claim compares two things measured on the same images (CasCAM against CAM, K = 10 against K = 5,
…). Its verdict comes from the 95 % interval of the paired difference, never from two point
estimates:

* ``held`` — the interval lies entirely on the claimed side of 0;
* ``contradicted`` — it lies entirely on the other side;
* ``inconclusive`` — it contains 0;
* ``not testable`` — the data cannot measure it (no object masks, a single configuration, …).

The interval is a percentile bootstrap of the mean paired difference
:math:`\\bar\\delta = \\frac1S\\sum_s \\frac1{n_s}\\sum_i (a_{si} - b_{si})` over S seeds (each seed
is a whole replication: data, split and initialisation) and the n_s images of each seed. With
several seeds it is a two-stage bootstrap: seeds are resampled with replacement, then images within
each drawn seed, so the interval carries the training variance across seeds as well as the sampling
of images. With one seed it is the ordinary paired bootstrap over images, and the evidence says
``n_seeds = 1``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> cam = rng.random(400) < 0.40                       # CAM points at the animal on 40 % of images
    >>> cascam = cam | (rng.random(400) < 0.3)             # CasCAM on those and more
    >>> v = paired_verdict(cascam, cam, metric="pointing game", compared="CasCAM − CAM")
    >>> v.verdict, v.evidence[0].n_images
    ('held', 400)
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .stats import bootstrap_means

__all__ = [
    "VERDICTS",
    "Evidence",
    "Verdict",
    "verdict_of_interval",
    "paired_interval",
    "paired_verdict",
    "mean_interval",
    "not_testable",
    "all_of",
    "compare_in_frame",
    "rises_along",
    "k_ladder",
]

VERDICTS = ("held", "contradicted", "inconclusive", "not testable")
_SIDES = ("greater", "less")


def verdict_of_interval(low: float, high: float, claimed: str = "greater") -> str:
    """The verdict of a claim "difference > 0" (``claimed="greater"``) or "< 0" (``"less"``) from
    the interval ``[low, high]`` of the difference: held / contradicted / inconclusive, or
    ``not testable`` when the interval is undefined (NaN).

    Example:
        >>> verdict_of_interval(0.02, 0.10), verdict_of_interval(-0.3, -0.1), verdict_of_interval(-0.1, 0.2)
        ('held', 'contradicted', 'inconclusive')
        >>> verdict_of_interval(-0.3, -0.1, claimed="less")
        'held'
    """
    if claimed not in _SIDES:
        raise ValueError(f"claimed: must be one of {_SIDES}; got {claimed!r}")
    if not (math.isfinite(low) and math.isfinite(high)):
        return "not testable"
    if low > high:
        raise ValueError(f"interval: low {low!r} is above high {high!r}")
    above, below = low > 0, high < 0
    if claimed == "less":
        above, below = below, above
    return "held" if above else ("contradicted" if below else "inconclusive")


@dataclass(frozen=True)
class Evidence:
    """One paired comparison: the mean difference, its interval and what it was computed on."""

    compared: str
    metric: str
    difference: float
    low: float
    high: float
    level: float
    n_images: int
    n_seeds: int
    claimed: str = "greater"
    unit: str = "images"
    rate: bool = False  # a 0/1 per image (pointing game, detected): the mean is a share, shown in pp

    def text(self, scale: float | None = None, unit: str | None = None, digits: int = 3) -> str:
        """``"CasCAM − CAM, pointing game: +12.3 [5.1, 19.0] pp; 400 images × 3 seeds"``.

        A :attr:`rate` (a share of images) is shown in percentage points (``scale`` 100, ``unit`` " pp"),
        like the tables that show it in %; other metrics as they are. ``scale``/``unit`` override.
        """
        scale = (100.0 if self.rate else 1.0) if scale is None else scale
        unit = (" pp" if self.rate else "") if unit is None else unit

        def f(v: float, sign: bool = False) -> str:
            if not math.isfinite(v):
                return "—"
            return f"{v * scale:+.{digits}g}" if sign else f"{v * scale:.{digits}g}"

        seeds = f" × {self.n_seeds} seeds" if self.n_seeds > 1 else ", 1 seed"
        return (f"{self.compared}, {self.metric}: {f(self.difference, True)} [{f(self.low)}, {f(self.high)}]{unit}; "
                f"{self.n_images} {self.unit}{seeds}")


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict (one of :data:`VERDICTS`) with the evidence it was read from."""

    verdict: str
    evidence: tuple[Evidence, ...] = ()
    reason: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: must be one of {VERDICTS}; got {self.verdict!r}")

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "evidence": [asdict(e) for e in self.evidence], "reason": self.reason}

    def text(self, **fmt) -> str:
        """The evidence as one line (each comparison, separated by "; "), or the reason."""
        parts = [e.text(**fmt) for e in self.evidence]
        return " | ".join(parts) if parts else self.reason


def not_testable(reason: str) -> Verdict:
    """The verdict of a claim the data cannot measure, with the reason in words."""
    return Verdict("not testable", (), reason)


def _aligned(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError(f"{name}: no values")
    return x


def paired_interval(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    seeds: Sequence | np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float, int, int]:
    r"""Mean paired difference of ``a − b`` and its percentile-bootstrap interval.

    ``a[i]`` and ``b[i]`` are the same image measured two ways; ``seeds[i]`` (optional) names the
    replication the image belongs to. Pairs with a NaN are dropped. Returns
    ``(difference, low, high, n_images, n_seeds)``; the difference is the mean over seeds of each
    seed's mean difference (:math:`\bar\delta` in the module docstring).
    """
    x, y = _aligned(a, "a"), _aligned(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b: must pair the same images; got {x.size} and {y.size} values")
    g = np.zeros(x.size, dtype=np.int64) if seeds is None else np.unique(np.asarray(seeds).ravel(), return_inverse=True)[1]
    if g.size != x.size:
        raise ValueError(f"seeds: one label per image; got {g.size} labels for {x.size} images")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}")
    keep = ~(np.isnan(x) | np.isnan(y))
    delta, g = x[keep] - y[keep], g[keep]
    groups = [delta[g == s] for s in np.unique(g)]
    if not groups:
        return (math.nan, math.nan, math.nan, 0, 0)
    S = len(groups)
    point = float(np.mean([d.mean() for d in groups]))
    rng = np.random.default_rng([int(seed), zlib.crc32(b"paired_interval")])
    # inner[s, b, j]: seed s's images resampled for outer draw b at position j
    inner = np.stack([bootstrap_means(d, n_boot * S, rng).reshape(n_boot, S) for d in groups])
    outer = rng.integers(0, S, size=(n_boot, S)) if S > 1 else np.zeros((n_boot, 1), dtype=np.int64)
    draws = inner[outer, np.arange(n_boot)[:, None], np.arange(S)[None, :]].mean(axis=1)
    # A resampled mean that is zero in exact arithmetic can come out as ±1e-17 (summation order); left
    # so, a bound of 1e-17 would read as "above zero" and turn an interval that touches zero into a
    # verdict. Rounding to 12 decimals removes that noise and no difference the metrics can resolve.
    draws = np.round(draws, 12)
    low, high = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return (point, float(low), float(high), int(delta.size), S)


def mean_interval(
    values: Sequence[float] | np.ndarray,
    seeds: Sequence | np.ndarray | None = None,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    r"""The mean of per-image ``values`` over seeds and its interval, by the same two-stage bootstrap as
    :func:`paired_interval` (seeds resampled, then images within each drawn seed): the mean over seeds
    of each seed's mean, :math:`\bar x = \frac1S\sum_s \frac1{n_s}\sum_i x_{si}`, and its percentile
    interval. Returns ``(mean, low, high)``.

    Example:
        >>> m, lo, hi = mean_interval([0, 1, 1, 1, 0, 1], seeds=[0, 0, 0, 1, 1, 1])
        >>> round(m, 3), lo <= m <= hi
        (0.667, True)
    """
    x = _aligned(values, "values")
    point, low, high, _, _ = paired_interval(x, np.zeros_like(x), seeds, n_boot=n_boot, level=level, seed=seed)
    return (point, low, high)


def paired_verdict(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    *,
    metric: str,
    compared: str,
    claimed: str = "greater",
    seeds: Sequence | np.ndarray | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    unit: str = "images",
) -> Verdict:
    """The verdict of the claim "mean of ``a`` is greater (``claimed="greater"``) / less than that of
    ``b``" on paired images (or other paired units, named by ``unit``), with its :class:`Evidence`.
    See :func:`paired_interval`. When every value is 0 or 1 (a per-image hit) the evidence is a
    :attr:`Evidence.rate`, shown in percentage points."""
    diff, low, high, n, s = paired_interval(a, b, seeds, n_boot=n_boot, level=level, seed=seed)
    values = np.concatenate([_aligned(a, "a"), _aligned(b, "b")])
    values = values[~np.isnan(values)]
    rate = bool(values.size) and bool(np.isin(values, (0.0, 1.0)).all())
    ev = Evidence(compared, metric, diff, low, high, level, n, s, claimed, unit, rate)
    return Verdict(verdict_of_interval(low, high, claimed), (ev,))


def all_of(verdicts: Iterable[Verdict], reason: str = "") -> Verdict:
    """A claim made of several comparisons that must all hold ("best on all four metrics", "rises
    from K = 3 to 5 to 10"): ``held`` if every part held, ``contradicted`` if any part was
    contradicted, ``not testable`` if no part could be tested, ``inconclusive`` otherwise.

    Example:
        >>> h, i = Verdict("held"), Verdict("inconclusive")
        >>> all_of([h, h]).verdict, all_of([h, i]).verdict, all_of([i, Verdict("contradicted")]).verdict
        ('held', 'inconclusive', 'contradicted')
    """
    parts = list(verdicts)
    words = [v.verdict for v in parts]
    evidence = tuple(e for v in parts for e in v.evidence)
    reasons = "; ".join(v.reason for v in parts if v.reason)
    if not parts or all(w == "not testable" for w in words):
        return Verdict("not testable", evidence, reason or reasons or "nothing to test")
    if "contradicted" in words:
        word = "contradicted"
    elif all(w == "held" for w in words):
        word = "held"
    else:
        word = "inconclusive"
    return Verdict(word, evidence, reason or reasons)


def compare_in_frame(
    frame,
    a: str,
    b: str,
    metric: str,
    *,
    claimed: str = "greater",
    label: str | None = None,
    by: str = "method",
    id_col: str = "image",
    seed_col: str | None = "seed",
    **kwargs,
) -> Verdict:
    """:func:`paired_verdict` on a tidy per-image frame (one row per image × ``by`` value [× seed]):
    ``a``'s ``metric`` against ``b``'s on the images both have. Images are paired by ``id_col``
    (and ``seed_col`` when the frame has it, which then also names the seeds)."""
    if metric not in frame.columns:
        return not_testable(f"{metric} is not measured on this data")
    keys = [id_col] + ([seed_col] if seed_col and seed_col in frame.columns else [])
    wide = frame.pivot_table(index=keys, columns=by, values=metric, aggfunc="first")
    for name in (a, b):
        if name not in wide.columns:
            raise ValueError(f"compare_in_frame: no rows for {by}={name!r} (have {list(wide.columns)})")
    seeds = wide.index.get_level_values(seed_col) if len(keys) > 1 else None
    return paired_verdict(wide[a].to_numpy(), wide[b].to_numpy(), metric=label or metric.replace("_", " "),
                          compared=f"{a} − {b}", claimed=claimed, seeds=seeds, **kwargs)


def rises_along(frames: dict, order: Sequence, metric: str, *, label: str | None = None, **kwargs) -> Verdict:
    """The claim "``metric`` rises along ``order``" (K = 3 → 5 → 10, θ = 0.1 → 0.3, …) as
    :func:`all_of` the consecutive paired comparisons. ``frames`` maps each setting's name to its
    per-image frame (``image`` column [, ``seed``], the metric); the settings must share images.
    Fewer than two settings present: ``not testable``."""
    present = [name for name in order if name in frames]
    if len(present) < 2:
        return not_testable(f"needs at least two of {list(order)}; this build has {present}")
    import pandas as pd

    parts = []
    for lo, hi in zip(present, present[1:], strict=False):
        both = pd.concat([frames[hi].assign(setting=str(hi)), frames[lo].assign(setting=str(lo))], ignore_index=True)
        parts.append(compare_in_frame(both, str(hi), str(lo), metric, by="setting", label=label, **kwargs))
    return all_of(parts)


def k_ladder(k_max: int) -> list[int]:
    """The numbers of iterations Table 6's claim compares in a run of ``k_max`` iterations: the
    paper's K = 3, 5, 10 that the run reaches, plus ``k_max`` itself; K = 1 and ``k_max`` when that
    leaves fewer than two.

    Example:
        >>> k_ladder(10), k_ladder(5), k_ladder(4), k_ladder(2)
        ([3, 5, 10], [3, 5], [3, 4], [1, 2])
    """
    ks = sorted({k for k in (3, 5, 10) if k <= k_max} | {k_max})
    return ks if len(ks) > 1 else sorted({1, k_max})
