"""Localisation metrics of saliency maps against ground-truth masks, one value per image, as the authors
computed them (docs/method.md, § Metrics).

Every metric min-max normalises each map to [0, 1], resizes it bilinearly to the mask's size (torch),
then measures the whole batch in numpy; :func:`compute_all` prepares each map once and sorts it once.

Conventions shared by every function here:

* Inputs: ``saliency`` is ``(B, H', W')`` real maps (torch tensor on any device, or numpy array),
  ``mask`` is ``(B, H, W)`` bool (or 0/1 integers); ``True`` marks the region (object G or
  artifact R). Results are numpy float64 ``(B,)``, never NaN; NaN or infinite maps raise.
* Preparation (:func:`prepare`): S = (s − min s) / (max s − min s) per map, then
  ``F.interpolate(mode="bilinear", align_corners=False)`` to the mask's size, float32 in [0, 1]. A
  constant map (max = min) becomes all zeros. The resize comes *after* the min-max, as in the
  authors' evaluator, so an upsampled map's maximum can sit slightly below 1. Pass
  ``normalized=True`` to skip this step for maps that :func:`prepare` already produced (they must
  then be in [0, 1] and have the mask's size).
* Scores are float32: two pixels are tied when their float32 values are equal.
* Ties for the maximum: the pointing games use the *first* maximal pixel in row-major order
  (``argmax``); a constant (all-zero) map therefore points at pixel (0, 0).
* Top-k %: the k = ⌈p·HW/100⌉ highest pixels, exactly k of them; pixels tied with the k-th largest
  value are taken in row-major order (the order of a stable descending sort). This differs from
  :func:`cascam.threshold.topk_threshold`, which keeps every tie.
* Ratios whose denominator is 0 are 0: the energy of a map that sums to 0, the IoU of an empty
  prediction with an empty mask, the AP of an image whose mask is empty.
* Cost: ≈ 2 ms of one CPU core per 224×224 map for all nine metrics (AP included); the work is
  chunked (``chunk_size`` maps prepared at once, 8 measured at once), so memory stays bounded.

Quantus (0.6) counterparts, checked in tests/test_metrics_quantus.py. Quantus is given the maps
measured here, S = prepare(saliency), with ``normalise=False, abs=False``; on raw maps the two
differ by design: its default ``normalise_by_max`` divides by max |s| (no shift, no resize) and
``abs=True`` would fold negative values up, while this module shifts by the minimum and resizes.

* :func:`pointing_game` ↔ ``PointingGame``: equal when the maximum is unique. On a tie ours takes the
  first maximal pixel in row-major order; Quantus hits when *any* maximal pixel is in the mask.
* :func:`energy_in_gt` ↔ ``RelevanceMassAccuracy``: Σ S·G / Σ S, equal to float rounding.
* :func:`topk_precision` with ``percent = 100·|G|/HW`` (k = |G|) ↔ ``RelevanceRankAccuracy``, and
  with ``percent = 100·k/HW`` ↔ ``TopKIntersection(k)`` (without ``concept_influence``): equal when
  the k-th largest value is not tied; on a tie ours takes tied pixels in row-major order, Quantus in
  the order of ``np.argsort(-a)`` (quicksort, not stable, so not defined by the data).
* :func:`average_precision` has no Quantus counterpart: Quantus's ``AUC`` is the area under the
  *ROC* curve (sklearn ``roc_curve`` + ``auc``), not under the precision–recall curve; both are 1
  for a map that ranks every mask pixel first, and they differ otherwise (a constant map: ROC 0.5,
  AP the prevalence |G|/HW).
* Empty masks and zero sums: ours give 0.0; Quantus gives NaN (and its ``PointingGame`` stores the
  NaN in a bool array, so it reads True). Quantus also refuses constant maps (all 0 or all 1),
  which ours score as described above.

Example:
    >>> import torch
    >>> from cascam.metrics import compute_all
    >>> maps = torch.rand(8, 7, 7)                                   # low-resolution CAMs
    >>> masks = torch.zeros(8, 224, 224, dtype=torch.bool)
    >>> masks[:, 50:150, 60:170] = True
    >>> scores = compute_all(maps, object_mask=masks)                  # dict of (8,) float64 arrays
    >>> sorted(scores)[:3]
    ['average_precision', 'energy_in_gt', 'iou']
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

#: The metrics measured against the object mask and against the artifact mask (each is also a
#: function of this module under the same name).
_OBJECT = ("average_precision", "iou", "iou_topk", "pointing_game", "energy_in_gt", "topk_precision", "topk_energy")
_ARTIFACT = ("artifact_energy", "artifact_pointing")

__all__ = ["TOP_PERCENT", "IOU_THRESHOLD", "prepare", "topk_count", *_OBJECT, "top15_precision", "top15_energy",
           *_ARTIFACT, "compute_all"]

TOP_PERCENT = 15.0
"""The paper's top-k share, in percent of the pixels."""
IOU_THRESHOLD = 0.5
"""The paper's binarisation threshold of a normalised map for the IoU."""

ArrayLike = torch.Tensor | np.ndarray
APMethod = Literal["step", "trapezoid"]

_DEFAULT_CHUNK = 64  # maps prepared at once (torch): 64 × 224² float32 ≈ 13 MB
_BLOCK = 8  # maps measured at once (numpy): ≈ 400 k pixels keep the temporaries in the CPU caches


# --------------------------------------------------------------------------------------------------
# Input handling and preparation
# --------------------------------------------------------------------------------------------------


def _as_3d(x: ArrayLike, name: str) -> ArrayLike:
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name}: expected a torch tensor or numpy array; got {type(x).__name__}")
    if x.ndim != 3:
        raise ValueError(f"{name}: expected shape (B, H, W); got {tuple(x.shape)}")
    return x


def _saliency_tensor(saliency: ArrayLike) -> torch.Tensor:
    s = _as_3d(saliency, "saliency")
    if isinstance(s, np.ndarray):
        s = torch.from_numpy(np.ascontiguousarray(s))
    if s.dtype == torch.bool or s.is_complex():
        raise TypeError(f"saliency: expected real-valued maps; got {s.dtype}")
    return s


def _mask_array(mask: ArrayLike, name: str, batch: int) -> np.ndarray:
    """``(B, H·W)`` C-contiguous numpy bool on the CPU."""
    m = _as_3d(mask, name)
    if m.shape[0] != batch:
        raise ValueError(f"{name}: batch size {m.shape[0]} differs from the saliency maps' {batch}")
    m = m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m)
    if m.dtype != np.bool_:
        if m.size and not bool(((m == 0) | (m == 1)).all()):
            raise ValueError(f"{name}: a non-bool mask must hold only 0 and 1 (got other values)")
        m = m != 0
    return np.ascontiguousarray(m).reshape(batch, m.shape[1] * m.shape[2])


def prepare(saliency: ArrayLike, size: tuple[int, int]) -> torch.Tensor:
    r"""Min-max normalise each map to [0, 1], then resize it bilinearly to ``size``.

    $$ S = \operatorname{resize}_{H \times W}\Big(\frac{s - \min s}{\max s - \min s}\Big) $$

    A constant map becomes all zeros. The min-max runs in float32 (float64 for float64 input, or
    where a map's range overflows float32); the resize is ``F.interpolate(mode="bilinear",
    align_corners=False)``, skipped when the map already has ``size``; the result is clamped to
    [0, 1] against rounding. Bilinear weights are convex, so no value leaves [0, 1] and no −0.0
    appears.

    Args:
        saliency: ``(B, H', W')`` real maps, torch (any device) or numpy, finite.
        size: the target ``(H, W)``, normally the mask's size.
    Returns:
        ``(B, H, W)`` float32 on the input's device (CPU for numpy input), values in [0, 1].

    Example:
        >>> prepare(torch.tensor([[[0.0, 2.0], [4.0, 4.0]]]), (2, 2))
        tensor([[[0.0000, 0.5000],
                 [1.0000, 1.0000]]])
    """
    return _prepare(saliency, size, clamp=True)


def _prepare(saliency: ArrayLike, size: tuple[int, int], *, clamp: bool) -> torch.Tensor:
    s = _saliency_tensor(saliency)
    b = s.shape[0]
    if s.shape[-1] * s.shape[-2] == 0:
        raise ValueError("saliency: maps have no pixels")
    work = torch.float64 if s.dtype == torch.float64 else torch.float32
    flat = s.reshape(b, -1).to(work)
    lo, hi = torch.aminmax(flat, dim=1, keepdim=True)  # NaN propagates into lo and hi
    if not (bool(torch.isfinite(lo).all()) and bool(torch.isfinite(hi).all())):
        raise ValueError("saliency: maps contain NaN or infinite values")
    rng = hi - lo
    if not bool(torch.isfinite(rng).all()):  # a range beyond float32: redo in float64
        flat = s.reshape(b, -1).to(torch.float64)
        lo, hi = torch.aminmax(flat, dim=1, keepdim=True)
        rng = hi - lo
    # a constant map has s − min s = 0 everywhere, so dividing by 1 instead of 0 makes it all zeros
    norm = ((flat - lo) / torch.where(rng > 0, rng, torch.ones_like(rng))).to(torch.float32).reshape(s.shape)
    size = (int(size[0]), int(size[1]))
    if tuple(norm.shape[-2:]) != size:
        norm = F.interpolate(norm.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    return norm.clamp_(0.0, 1.0) if clamp else norm


def _check_prepared(s: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(s.shape[-2:]) != tuple(size):
        raise ValueError(
            f"normalized=True: maps of size {tuple(s.shape[-2:])} differ from the mask's {tuple(size)}; "
            "call prepare(saliency, size) first"
        )
    s = s.to(torch.float32)
    if s.numel() and not (bool(s.min() >= 0) and bool(s.max() <= 1)):
        raise ValueError("normalized=True: prepared maps must lie in [0, 1]; call prepare(saliency, size)")
    return s + 0.0  # a copy with −0.0 turned into +0.0, so that equal scores have equal bit patterns


def topk_count(n_pixels: int, percent: float = TOP_PERCENT) -> int:
    """k = ⌈percent·n/100⌉ (at least 1): the number of pixels in a map's top ``percent`` %.

    For 224×224 maps and 15 %: ⌈7526.4⌉ = 7527.
    """
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100]; got {percent!r}")
    return max(1, math.ceil(percent * n_pixels / 100 - 1e-9))


# --------------------------------------------------------------------------------------------------
# Kernels on one prepared chunk: S (b, n) float32 in [0, 1] and G (b, n) bool, numpy on the CPU.
# The measuring runs in numpy, the package's edge to numpy: its vectorised int32 sort is ≈ 10× faster
# than torch.sort on a CPU, and its reductions ≈ 3× faster than torch's on these shapes.
# --------------------------------------------------------------------------------------------------


def _sorted_keys(s: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's pixels by descending score: the sorted keys and the running count of background pixels.

    The key of a pixel is ¬(2·bits(S) + G), ``(b, n)`` int32, sorted ascending. A non-negative
    float32's IEEE bit pattern, read as an int32, orders like the value, and bits(1.0) = 0x3F800000,
    so 2·bits + 1 still fits an int32; the bitwise NOT (−x − 1) reverses the order without
    overflow. One values-only sort of these keys carries both the score order and each pixel's
    label (the key's lowest bit is 1 − G); equal scores form one run of equal ``key >> 1``.

    Returns:
        ``keys`` ``(b, n)`` int32 and ``fp`` ``(b, n)`` int32, fp[:, j] = the background pixels among
        the j + 1 highest (the false positives at that rank).
    """
    keys = s.view(np.int32) << 1
    np.bitwise_or(keys, g, out=keys, casting="unsafe")
    np.invert(keys, out=keys)
    keys.sort(axis=1)
    return keys, np.cumsum(keys & 1, axis=1, dtype=np.int32)


def _decode(keys: np.ndarray) -> np.ndarray:
    """The float32 scores of sorted keys (any shape)."""
    return np.ascontiguousarray(~keys >> 1).view(np.float32)


@lru_cache(maxsize=8)
def _ranks(b: int, n: int) -> np.ndarray:
    """1, 2, …, n repeated b times, ``(b·n,)`` int32, read-only: the rank of each sorted position."""
    ranks = np.tile(np.arange(1, n + 1, dtype=np.int32), b)
    ranks.flags.writeable = False
    return ranks


def _average_precision(keys: np.ndarray, fp: np.ndarray, method: APMethod) -> np.ndarray:
    r"""Average precision of every row from its sorted keys (scores descending), ``(b,)`` float64.

    Each run of equal scores is one threshold t and its last position e carries all its counts:
    PP(t) = e + 1 (within the row), FP(t) = fp[e], TP(t) = PP − FP. The runs' ends are gathered
    across the whole block in one compaction (row-major, so each row's thresholds stay in
    descending order) and summed per row with ``np.add.reduceat``; the two formulas are in
    :func:`average_precision`.
    """
    b, n = keys.shape
    flat = keys.ravel()
    ends = np.empty(b * n, dtype=bool)  # a run ends where the score bits change, and at every row's end
    np.greater(flat[1:] ^ flat[:-1], 1, out=ends[:-1])
    ends[n - 1 :: n] = True
    last = np.flatnonzero(ends)
    row_first = np.searchsorted(last, np.arange(0, b * n, n))  # each row's highest threshold in `last`
    pp = _ranks(b, n)[last]
    tp = pp - fp.ravel()[last]
    precision = tp / pp
    gain = np.empty_like(tp)  # TP added by each threshold; the highest one starts from 0
    np.subtract(tp[1:], tp[:-1], out=gain[1:])
    gain[row_first] = tp[row_first]
    if method == "step":
        area = gain * precision
    else:  # above a row's highest threshold the curve starts at (R, Prec) = (0, 1)
        precision_prev = np.empty_like(precision)
        precision_prev[1:] = precision[:-1]
        precision_prev[row_first] = 1.0
        area = gain * (precision + precision_prev) / 2
    return _ratio(np.add.reduceat(area, row_first), n - fp[:, -1])


def _true_positives_at(fp: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Foreground pixels among each row's ``count`` highest, ``(b,)`` int64 (0 where count = 0)."""
    rows = np.arange(len(fp))
    return np.where(count > 0, count - fp[rows, np.maximum(count, 1) - 1], 0)


def _iou_counts(keys: np.ndarray, fp: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """|{S ≥ τ}| and |{S ≥ τ} ∩ G| per row, by binary search in the sorted keys.

    S ≥ τ ⇔ 2·bits(S) + G ≥ 2·bits(τ) ⇔ key ≤ ¬(2·bits(τ)), for τ in (0, 1].
    """
    bound = ~(np.float32(threshold).view(np.int32) << 1)
    n_pred = np.array([np.searchsorted(row, bound, side="right") for row in keys], dtype=np.int64)
    return n_pred, _true_positives_at(fp, n_pred)


def _topk_sums(
    s: np.ndarray, g: np.ndarray, keys: np.ndarray, fp: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """|T ∩ G|, Σ_{T∩G} S and Σ_{T∖G} S for the top-k set T of each row, each ``(b,)``.

    T is read off the first k sorted keys, except in rows where the k-th largest value is tied
    beyond the k-th place: there T takes the tied pixels in row-major order (the sorted keys put
    foreground first among ties), so those rows are measured on the maps directly.
    """
    n_hit = _true_positives_at(fp, np.full(len(keys), k)).astype(np.float64)
    top = keys[:, :k]
    scores = _decode(top)
    background = (top & 1).astype(bool)
    hit_sum = np.einsum("ij,ij->i", scores, ~background, dtype=np.float64)
    miss_sum = np.einsum("ij,ij->i", scores, background, dtype=np.float64)
    if k < keys.shape[1]:
        fix = np.flatnonzero((keys[:, k] >> 1) == (keys[:, k - 1] >> 1))  # the (k+1)-th ties the k-th
        if fix.size:
            sub, cut = s[fix], _decode(keys[fix, k - 1 : k])
            above, tied = sub > cut, sub == cut
            room = k - np.count_nonzero(above, axis=1, keepdims=True)
            in_top = above | (tied & (np.cumsum(tied, axis=1, dtype=np.int32) <= room))
            n_hit[fix] = np.count_nonzero(in_top & g[fix], axis=1)
            hit_sum[fix] = _masked_sum(sub, in_top & g[fix])
            miss_sum[fix] = _masked_sum(sub, in_top & ~g[fix])
    return n_hit, hit_sum, miss_sum


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den = 0, clipped to [0, 1] against rounding (every ratio here is a share)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.clip(out, 0.0, 1.0, out=out)


def _masked_sum(s: np.ndarray, where: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", s, where, dtype=np.float64)


def _share(s: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Σ S·R / Σ S as inside / (inside + outside): exactly 1 for a full region, 0 for an empty one."""
    inside = _masked_sum(s, region)
    return _ratio(inside, inside + _masked_sum(s, ~region))


# --------------------------------------------------------------------------------------------------
# The engine: one pass over the batch, chunk by chunk
# --------------------------------------------------------------------------------------------------

_SORTED = ("average_precision", "iou", "iou_topk", "topk_precision", "topk_energy")
_TOPK = ("iou_topk", "topk_precision", "topk_energy")


def _measure_object(
    s: np.ndarray,
    g: np.ndarray,
    want: list[str],
    first_max: np.ndarray,
    *,
    k: int,
    threshold: float,
    ap_method: APMethod,
) -> dict[str, np.ndarray]:
    """The object metrics of one block: S ``(b, n)`` float32 prepared, G ``(b, n)`` bool."""
    out: dict[str, np.ndarray] = {}
    if "pointing_game" in want:
        out["pointing_game"] = g[np.arange(len(g)), first_max].astype(np.float64)
    if "energy_in_gt" in want:
        out["energy_in_gt"] = _share(s, g)
    if not any(m in want for m in _SORTED):
        return out
    keys, fp = _sorted_keys(s, g)
    n_g = s.shape[1] - fp[:, -1]
    if "average_precision" in want:
        out["average_precision"] = _average_precision(keys, fp, ap_method)
    if "iou" in want:
        n_pred, inter = _iou_counts(keys, fp, threshold)
        out["iou"] = _ratio(inter, n_pred + n_g - inter)
    if any(m in want for m in _TOPK):
        n_hit, hit_sum, miss_sum = _topk_sums(s, g, keys, fp, k)
        if "iou_topk" in want:
            out["iou_topk"] = _ratio(n_hit, k + n_g - n_hit)
        if "topk_precision" in want:
            out["topk_precision"] = n_hit / k
        if "topk_energy" in want:
            out["topk_energy"] = _ratio(hit_sum, hit_sum + miss_sum)
    return out


def _measure_artifact(
    s: np.ndarray, r: np.ndarray, want: list[str], first_max: np.ndarray
) -> dict[str, np.ndarray]:
    """The artifact metrics of one block: S ``(b, n)`` float32 prepared, R ``(b, n)`` bool."""
    out: dict[str, np.ndarray] = {}
    if "artifact_energy" in want:
        out["artifact_energy"] = _share(s, r)
    if "artifact_pointing" in want:
        out["artifact_pointing"] = r[np.arange(len(r)), first_max].astype(np.float64)
    return out


def _evaluate(
    saliency: ArrayLike,
    object_mask: ArrayLike | None,
    artifact_mask: ArrayLike | None,
    wanted: tuple[str, ...],
    *,
    normalized: bool,
    percent: float = TOP_PERCENT,
    threshold: float = IOU_THRESHOLD,
    ap_method: APMethod = "step",
    chunk_size: int = _DEFAULT_CHUNK,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Prepare ``chunk_size`` maps at a time with torch, then measure them in numpy, ``_BLOCK`` rows at a time."""
    if ap_method not in ("step", "trapezoid"):
        raise ValueError(f"average_precision: unknown method {ap_method!r}; choose 'step' or 'trapezoid'")
    chunk_size, workers = int(chunk_size), int(workers)
    if chunk_size < 1 or workers < 1:
        raise ValueError(f"chunk_size and workers must be ≥ 1; got {chunk_size!r} and {workers!r}")
    if not 0 < threshold <= 1:
        raise ValueError(f"iou: threshold must be in (0, 1] (maps are normalised); got {threshold!r}")
    sal = _saliency_tensor(saliency)
    b = sal.shape[0]
    masks: dict[str, tuple[np.ndarray, tuple[int, int], list[str]]] = {}
    for group, mask, names in (("object", object_mask, _OBJECT), ("artifact", artifact_mask, _ARTIFACT)):
        want = [m for m in wanted if m in names]
        if mask is not None and want:
            masks[group] = (_mask_array(mask, f"{group}_mask", b), tuple(mask.shape[-2:]), want)
    out = {m: np.zeros(b, dtype=np.float64) for _, _, want in masks.values() for m in want}
    k = topk_count(int(np.prod(masks["object"][1])), percent) if "object" in masks else 0

    def measure(task: tuple[str, slice, np.ndarray, np.ndarray]) -> None:
        group, at, s, first_max = task
        mask, _, want = masks[group]
        if group == "object":
            measured = _measure_object(
                s, mask[at], want, first_max, k=k, threshold=threshold, ap_method=ap_method
            )
        else:
            measured = _measure_artifact(s, mask[at], want, first_max)
        for name, values in measured.items():
            out[name][at] = values  # blocks write disjoint rows, so threads never collide

    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    try:
        for lo in range(0, b, chunk_size):
            hi = min(b, lo + chunk_size)
            prepared: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
            tasks = []
            for group, (_, size, _) in masks.items():
                if size not in prepared:  # maps prepared once per size, shared by both masks
                    if normalized:
                        s = _check_prepared(sal[lo:hi], size).cpu().numpy().reshape(hi - lo, -1)
                    else:  # clamped in numpy: torch's clamp_ costs ≈ 5× more on the CPU
                        s = _prepare(sal[lo:hi], size, clamp=False).cpu().numpy().reshape(hi - lo, -1)
                        np.minimum(s, 1.0, out=s)  # bilinear weights are convex: S ≥ 0 already
                    s = np.ascontiguousarray(s)
                    prepared[size] = (s, s.argmax(axis=1))  # argmax: the first maximum, row-major
                s, first_max = prepared[size]
                for start in range(0, hi - lo, _BLOCK):  # blocks small enough for the CPU caches
                    rows = slice(start, min(hi - lo, start + _BLOCK))
                    at = slice(lo + rows.start, lo + rows.stop)
                    tasks.append((group, at, s[rows], first_max[rows]))
            if pool is None:
                for task in tasks:
                    measure(task)
            else:
                for _ in pool.map(measure, tasks):  # numpy releases the GIL in the heavy loops
                    pass
    finally:
        if pool is not None:
            pool.shutdown()
    return out


def _one(name: str, saliency: ArrayLike, mask: ArrayLike, **options) -> np.ndarray:
    if name in _ARTIFACT:
        return _evaluate(saliency, None, mask, (name,), **options)[name]
    return _evaluate(saliency, mask, None, (name,), **options)[name]


# --------------------------------------------------------------------------------------------------
# Public metrics
# --------------------------------------------------------------------------------------------------


def average_precision(
    saliency: ArrayLike,
    mask: ArrayLike,
    *,
    method: APMethod = "step",
    normalized: bool = False,
    chunk_size: int = _DEFAULT_CHUNK,
) -> np.ndarray:
    r"""Area under each image's pixel precision–recall curve of scores S against labels G.

    With one threshold per distinct score t (TP, PP: foreground and all pixels with S ≥ t;
    R = TP/|G|, Prec = TP/PP; t⁺ the next higher threshold, R = 0 and Prec = 1 above the top one):

    * ``method="step"`` (default) — equal, to float rounding, to
      ``sklearn.metrics.average_precision_score(G.ravel(), S.ravel())`` per image:
      $$ \mathrm{AP} = \sum_t (R_t - R_{t^+})\,\mathrm{Prec}_t $$
      Tied scores form one threshold, as in sklearn, so the order of tied pixels never matters.
    * ``method="trapezoid"`` — ``sklearn.metrics.auc(recall, precision)`` on
      ``precision_recall_curve``: linear interpolation between the same points,
      $$ \sum_t (R_t - R_{t^+})\,(\mathrm{Prec}_t + \mathrm{Prec}_{t^+})/2, $$
      including the segment from (R = 0, Prec = 1). Linear interpolation in PR space is
      optimistic (Davis & Goadrich, 2006): where precision falls with recall, as it usually does,
      it exceeds the step AP. Report which one a table uses.

    Edge cases: an empty mask (|G| = 0) gives 0.0 for both methods (sklearn's step AP is also 0 with
    a warning; its trapezoid would give 0.5 from the added end point); a mask covering every pixel
    gives 1.0; a constant map is one threshold, so its AP is the prevalence |G|/HW.

    Not Quantus's ``AUC``, which is the area under the ROC curve (true- against false-positive
    rate), a different quantity; see the module notes.

    Args:
        saliency: ``(B, H', W')`` maps; ``mask``: ``(B, H, W)`` bool.
        method: ``"step"`` or ``"trapezoid"``.
        normalized: the maps are already :func:`prepare`\ d to the mask's size.
        chunk_size: maps prepared at once (≈ 0.3 MB each at 224×224; they are measured 8 at a time).
    Returns:
        ``(B,)`` float64 in [0, 1].
    """
    return _one(
        "average_precision", saliency, mask, normalized=normalized, ap_method=method, chunk_size=chunk_size
    )


def iou(
    saliency: ArrayLike, mask: ArrayLike, *, threshold: float = IOU_THRESHOLD, normalized: bool = False
) -> np.ndarray:
    r"""IoU of the thresholded map with the mask: $|\{S \ge \tau\} \cap G| \,/\, |\{S \ge \tau\} \cup G|$, τ = 0.5.

    τ must lie in (0, 1]. An empty union (nothing above τ and an empty mask) gives 0.0. A constant
    map is all zeros after normalisation, so nothing is above τ and its IoU is 0.

    Returns:
        ``(B,)`` float64 in [0, 1].
    """
    return _one("iou", saliency, mask, normalized=normalized, threshold=threshold)


def iou_topk(
    saliency: ArrayLike, mask: ArrayLike, percent: float = TOP_PERCENT, *, normalized: bool = False
) -> np.ndarray:
    r"""IoU of the top-``percent`` % pixels T with the mask: $|T \cap G| / |T \cup G|$.

    T holds exactly k = ⌈percent·HW/100⌉ pixels; ties at the k-th value are taken in row-major order
    (see the module notes). Returns ``(B,)`` float64 in [0, 1].
    """
    return _one("iou_topk", saliency, mask, normalized=normalized, percent=percent)


def pointing_game(saliency: ArrayLike, mask: ArrayLike, *, normalized: bool = False) -> np.ndarray:
    r"""1.0 where the map's maximum lies in the mask, $\mathbb{1}[G(\arg\max S)]$, else 0.0.

    Ties for the maximum resolve to the first maximal pixel in row-major order, so a constant map
    scores 1.0 exactly when pixel (0, 0) is in the mask. The maximum is taken after the bilinear
    resize. Returns ``(B,)`` float64 of 0.0 / 1.0; its mean × 100 is the paper's percentage.

    Quantus: ``PointingGame`` on the prepared maps, equal when the maximum is unique (Quantus counts a
    hit when any tied maximum is in the mask); see the module notes.
    """
    return _one("pointing_game", saliency, mask, normalized=normalized)


def energy_in_gt(saliency: ArrayLike, mask: ArrayLike, *, normalized: bool = False) -> np.ndarray:
    r"""Share of the saliency energy inside the mask: $\sum S\,G \,/\, \sum S$ (the authors' "Top-15%").

    A map summing to 0 (a constant map) gives 0.0. Returns ``(B,)`` float64 in [0, 1].

    Quantus: ``RelevanceMassAccuracy`` on the prepared maps (same formula; Quantus gives NaN where
    ours gives 0, and on raw maps its divide-by-max normalisation, unlike our min-max, keeps the
    minimum in the ratio).
    """
    return _one("energy_in_gt", saliency, mask, normalized=normalized)


def topk_precision(
    saliency: ArrayLike, mask: ArrayLike, percent: float = TOP_PERCENT, *, normalized: bool = False
) -> np.ndarray:
    r"""Share of the top-``percent`` % pixels T inside the mask: $|T \cap G| / |T|$, |T| = k exactly.

    Ties at the k-th value are taken in row-major order, so a constant map's T is its first k pixels.
    Returns ``(B,)`` float64 in [0, 1].

    Quantus: ``TopKIntersection(k)`` with ``percent = 100·k/HW``, and ``RelevanceRankAccuracy`` with
    ``percent = 100·|G|/HW`` (k = |G|, per image), on the prepared maps; equal unless the k-th value
    is tied (Quantus orders ties by an unstable argsort).
    """
    return _one("topk_precision", saliency, mask, normalized=normalized, percent=percent)


def topk_energy(
    saliency: ArrayLike, mask: ArrayLike, percent: float = TOP_PERCENT, *, normalized: bool = False
) -> np.ndarray:
    r"""Share of the top-``percent`` % pixels' energy inside the mask: $\sum_{T \cap G} S \,/\, \sum_T S$.

    0.0 when the top pixels sum to 0 (a constant map). Returns ``(B,)`` float64 in [0, 1].
    """
    return _one("topk_energy", saliency, mask, normalized=normalized, percent=percent)


def top15_precision(saliency: ArrayLike, mask: ArrayLike, *, normalized: bool = False) -> np.ndarray:
    """:func:`topk_precision` with the paper's 15 %: |top-15% ∩ G| / |top-15%|."""
    return topk_precision(saliency, mask, TOP_PERCENT, normalized=normalized)


def top15_energy(saliency: ArrayLike, mask: ArrayLike, *, normalized: bool = False) -> np.ndarray:
    """:func:`topk_energy` with the paper's 15 %: Σ_{top15 ∩ G} S / Σ_{top15} S (the book's Table 5 column)."""
    return topk_energy(saliency, mask, TOP_PERCENT, normalized=normalized)


def artifact_energy(saliency: ArrayLike, artifact_mask: ArrayLike, *, normalized: bool = False) -> np.ndarray:
    r"""Share of the saliency energy on the artifact: $\sum S\,R \,/\, \sum S$; 0.0 for a map summing to 0.

    Returns ``(B,)`` float64 in [0, 1].
    """
    return _one("artifact_energy", saliency, artifact_mask, normalized=normalized)


def artifact_pointing(
    saliency: ArrayLike, artifact_mask: ArrayLike, *, normalized: bool = False
) -> np.ndarray:
    r"""1.0 where the map's maximum lies on the artifact, $\mathbb{1}[R(\arg\max S)]$ (ties: first in row-major order).

    Returns ``(B,)`` float64 of 0.0 / 1.0; its mean is the artifact pointing rate.
    """
    return _one("artifact_pointing", saliency, artifact_mask, normalized=normalized)


def compute_all(
    saliency: ArrayLike,
    object_mask: ArrayLike | None = None,
    artifact_mask: ArrayLike | None = None,
    *,
    normalized: bool = False,
    percent: float = TOP_PERCENT,
    threshold: float = IOU_THRESHOLD,
    ap_method: APMethod = "step",
    chunk_size: int = _DEFAULT_CHUNK,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """Every applicable metric of docs/method.md, § Metrics, in one pass: each map prepared once, one sort per map.

    Keys (with the default ``percent=15``): with ``object_mask`` — ``average_precision``, ``iou``,
    ``iou_top15``, ``pointing_game``, ``energy_in_gt``, ``top15_precision``, ``top15_energy``; with
    ``artifact_mask`` — ``artifact_energy``, ``artifact_pointing``. A group is skipped when its mask
    is ``None``. The values equal the single-metric functions' (same conventions, see the module
    notes); the two masks may have different sizes, each gets its own resized copy of the maps.

    Args:
        saliency: ``(B, H', W')`` maps.
        object_mask: ``(B, H, W)`` bool foreground G, or ``None``.
        artifact_mask: ``(B, H_r, W_r)`` bool artifact region R, or ``None``.
        normalized: the maps are already :func:`prepare`\\ d (then both masks must share their size).
        percent: the top-k share used by ``iou_top*`` and ``top*_precision`` / ``top*_energy``.
        threshold: τ of the IoU.
        ap_method: ``"step"`` (sklearn's AP) or ``"trapezoid"``, see :func:`average_precision`.
        chunk_size: maps prepared at once (≈ 0.3 MB each at 224×224; they are measured 8 at a time).
        workers: threads that measure blocks of maps in parallel (numpy releases the GIL in its
            loops); leave it at 1 unless cores sit idle. The results do not depend on it.
    Returns:
        ``{name: (B,) float64 array}``, never NaN.
    """
    tag = f"top{percent:g}"
    rename = {"iou_topk": f"iou_{tag}", "topk_precision": f"{tag}_precision", "topk_energy": f"{tag}_energy"}
    results = _evaluate(
        saliency,
        object_mask,
        artifact_mask,
        _OBJECT + _ARTIFACT,
        normalized=normalized,
        percent=percent,
        threshold=threshold,
        ap_method=ap_method,
        chunk_size=chunk_size,
        workers=workers,
    )
    return {rename.get(name, name): values for name, values in results.items()}
