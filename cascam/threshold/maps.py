"""Batched EbayesThresh for stacks of class activation maps: what the cascade calls.

One concern: thresholding B maps at once, in float64, with numpy/scipy for CPU input or torch on the
maps' device (CUDA), for :func:`cascam.threshold.apply_threshold`. Each map is one data vector, and
the result equals the per-map R recipe of :func:`cascam.threshold.ebayesthresh.ebayesthresh` (after
the standardisation chosen here) to about 1e-12 relative. The exception is where R's own answer is
rounding noise: the quasi-Cauchy posterior mean of entries far below the noise sd
(:func:`~cascam.threshold.priors.postmean_cauchy`) depends on the last bit of ``exp``, and the maps'
``exp`` (numpy's or torch's) is not the C library's; such entries are tiny in a map.

Why the batched twins ``_b_*`` are not the functions of :mod:`~cascam.threshold.priors`: those
follow R operation for operation on one numpy vector (Cody's ``pnorm`` region by region with boolean
indexing, the C library's ``exp`` element by element where numpy's differs, R's recycling of ``s``
and ``w``), which torch and CUDA cannot run and which would loop over the maps. Here every map's
parameters are columns ``(B, 1)`` broadcast over its row, Φ and the Mills ratio Φ(−t)/φ(t) are one
accurate special-function call each (``erfc``, ``erfcx``), and the weight's bisection stops when
every map is done. What is the same is shared: the vocabulary and argument checks
(:data:`~cascam.threshold.priors.PRIORS`, :data:`~cascam.threshold.priors.THRESHRULES`),
the bisection loop of R's ``vecbinsolv``, and the per-map estimate of ``a`` (R's optimiser, on the
CPU).

Example:
    >>> import torch
    >>> from cascam.threshold.maps import ebayes_threshold_maps
    >>> cams = torch.rand(4, 56, 56, generator=torch.Generator().manual_seed(0)) ** 8
    >>> out = ebayes_threshold_maps(cams)
    >>> out.shape, bool((out >= 0).all()), bool((out <= cams).all())
    (torch.Size([4, 56, 56]), True, True)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy import special

from .priors import THRESHRULES, _bisect, _fixed_a, _prior_code
from .rmath import M_1_SQRT_2PI, MAD_CONSTANT, is_na
from .weights import wandafromx

__all__ = ["STANDARDIZE", "ZERO_MAD", "MAP_THRESHRULES", "ebayes_threshold_maps", "ebayes_threshold"]

#: How a map is put on a common scale before thresholding (see :func:`ebayes_threshold_maps`).
STANDARDIZE = ("max", "none", "median")
#: What to do with a map whose ``mad(x, center = 0)`` is 0 (more than half of it exactly 0).
ZERO_MAD = ("nonzero", "keep", "raise")
#: The threshold rules a map can take: R's, less ``"none"`` (which returns no map).
MAP_THRESHRULES = tuple(rule for rule in THRESHRULES if rule != "none")
_SQRT_HALF_PI = math.sqrt(math.pi / 2)
_SQRT_2 = math.sqrt(2.0)


class _NumpyOps:
    """Array operations of the batched path on the CPU (numpy/scipy, in-place where it pays).

    The row reductions are written so that numpy arrays and torch tensors both accept them
    (``axis=``/``keepdims=``); :class:`_TorchOps` overrides only what differs.
    """

    xp: Any = np
    exp, abs, sign, where, isfinite = np.exp, np.abs, np.sign, np.where, np.isfinite
    mul, add, div = np.multiply, np.add, np.divide
    erfc, erfcx, ndtri = special.erfc, special.erfcx, special.ndtri
    empty_like, zeros_like, ones_like = np.empty_like, np.zeros_like, np.ones_like

    @staticmethod
    def cmin(v: Any, c: Any) -> Any:
        return np.minimum(v, c)

    @staticmethod
    def cmax(v: Any, c: Any) -> Any:
        return np.maximum(v, c)

    @staticmethod
    def rowsum(v: Any) -> Any:
        return v.sum(axis=1, keepdims=True)

    @classmethod
    def rowmax(cls, v: Any) -> Any:
        return cls.xp.amax(v, axis=1, keepdims=True)

    @staticmethod
    def rowall(v: Any) -> Any:
        return v.all(axis=1, keepdims=True)

    @staticmethod
    def any(v: Any) -> bool:
        return bool(v.any())

    @staticmethod
    def median(v: np.ndarray) -> np.ndarray:  # R's median: mean of the two middle values
        return np.median(v, axis=1, keepdims=True)

    @staticmethod
    def nonzero_abs_median(v: np.ndarray) -> np.ndarray:
        out = np.zeros((v.shape[0], 1))
        for i, row in enumerate(np.abs(v)):
            nz = row[row != 0]
            out[i, 0] = np.median(nz) if nz.size else 0.0
        return out

    @staticmethod
    def column(values: Sequence[float], like: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=np.float64).reshape(-1, 1)


class _TorchOps(_NumpyOps):
    """The same operations in torch (used for CUDA maps)."""

    xp = torch
    exp, abs, sign, where, isfinite = torch.exp, torch.abs, torch.sign, torch.where, torch.isfinite
    mul, add, div = torch.mul, torch.add, torch.div
    erfc, erfcx, ndtri = torch.special.erfc, torch.special.erfcx, torch.special.ndtri
    empty_like, zeros_like, ones_like = torch.empty_like, torch.zeros_like, torch.ones_like

    @staticmethod
    def cmin(v: torch.Tensor, c: Any) -> torch.Tensor:
        return torch.minimum(v, c) if isinstance(c, torch.Tensor) else v.clamp(max=c)

    @staticmethod
    def cmax(v: torch.Tensor, c: Any) -> torch.Tensor:
        return torch.maximum(v, c) if isinstance(c, torch.Tensor) else v.clamp(min=c)

    @staticmethod
    def median(v: torch.Tensor) -> torch.Tensor:  # torch.median takes the lower middle value
        n = v.shape[1]
        srt = v.sort(dim=1).values
        return ((srt[:, (n - 1) // 2] + srt[:, n // 2]) / 2).unsqueeze(1)

    @staticmethod
    def nonzero_abs_median(v: torch.Tensor) -> torch.Tensor:
        av = v.abs()
        k = (av > 0).sum(dim=1, keepdim=True)
        srt = torch.where(av > 0, av, torch.full_like(av, math.inf)).sort(dim=1).values
        lo = srt.gather(1, (k - 1).clamp_min(0) // 2)
        hi = srt.gather(1, (k // 2).clamp(max=v.shape[1] - 1))
        return torch.where(k > 0, (lo + hi) / 2, torch.zeros_like(lo))

    @staticmethod
    def column(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(list(values), dtype=like.dtype, device=like.device).reshape(-1, 1)


def _b_mills(ops: Any, t: Any) -> Any:
    """Mills ratio Φ(−t)/φ(t) = √(π/2)·erfcx(t/√2), one accurate operation."""
    return _SQRT_HALF_PI * ops.erfcx(t / _SQRT_2)


def _b_pnorm(ops: Any, v: Any) -> Any:
    return 0.5 * ops.erfc(-v / _SQRT_2)


def _b_dnorm(ops: Any, v: Any) -> Any:
    return M_1_SQRT_2PI * ops.exp(-0.5 * v * v)


def _b_beta_laplace(ops: Any, x: Any, a: Any) -> Any:
    ax = ops.abs(x)
    xpa, xma = ax + a, ax - a
    rat1 = ops.where(xpa < 35, _b_mills(ops, xpa), 1 / xpa)
    rat2 = ops.where(xma > -35, _b_mills(ops, -ops.cmin(xma, 35.0)), 1 / ops.abs(xma))
    return a / 2 * (rat1 + rat2) - 1


def _b_beta_cauchy(ops: Any, x: Any) -> Any:
    beta = (ops.exp(0.5 * x * x) - 1) / (x * x) - 1  # φ(0)/φ(x) = e^{x²/2}, inf beyond |x| ≈ 37.7
    return ops.where(x != 0, beta, -0.5)


def _b_wfromt(ops: Any, tt: Any, a: Any, pr: str) -> Any:
    if pr == "l":
        tma = tt - a
        wi = ops.where(tma > -35, _b_mills(ops, -tma), 1 / ops.abs(tma))
        return 1 / (a * wi - _b_beta_laplace(ops, tt, a))
    dnz = _b_dnorm(ops, tt)
    wi = 1 + (_b_pnorm(ops, tt) - tt * dnz - 0.5) / (_SQRT_HALF_PI * dnz * tt * tt)
    return 1 / ops.where(ops.isfinite(wi), wi, 1.0)


def _b_wfromx(ops: Any, beta: Any, wlo: Any) -> Any:
    """:func:`~cascam.threshold.weights.wfromx` for each row (β already capped at 1e20): the same 30
    geometric bisections."""
    buf = ops.empty_like(beta)

    def score(w: Any) -> Any:  # Σ β/(1 + wβ) per row, in place
        ops.mul(beta, w, out=buf)
        ops.add(buf, 1.0, out=buf)
        ops.div(beta, buf, out=buf)
        return ops.rowsum(buf)

    one = ops.ones_like(wlo)
    shi = score(one)
    slo = score(wlo)
    result = ops.where(shi >= 0, one, wlo)
    active = (shi < 0) & (slo > 0)
    lo, hi = wlo, one
    for _ in range(30):
        if not ops.any(active):
            break
        wmid = (lo * hi) ** 0.5
        smid = score(wmid)
        hit = active & (smid == 0)
        result = ops.where(hit, wmid, result)
        active = active & ~hit
        lo = ops.where(active & (smid > 0), wmid, lo)
        hi = ops.where(active & (smid < 0), wmid, hi)
    return ops.where(active, (lo * hi) ** 0.5, result)


def _b_vecbinsolv(ops: Any, zf: Any, fun: Callable[[Any], Any], lo: Any, hi: Any, nits: int = 30) -> Any:
    return _bisect(ops.where, zf, fun, lo, hi, nits)


def _b_tfromw(ops: Any, w: Any, a: Any, pr: str, bayesfac: bool) -> Any:
    """:func:`~cascam.threshold.priors.tfromw` per row (one w per map): ``(B, 1)``."""
    zero = ops.zeros_like(w)
    if bayesfac:
        beta = (lambda t: _b_beta_laplace(ops, t, a)) if pr == "l" else (lambda t: _b_beta_cauchy(ops, t))
        return _b_vecbinsolv(ops, 1 / w - 2, beta, zero, zero + 10.0)
    if pr == "l":
        ac = ops.cmin(a, 20.0)

        def threshzero(t: Any) -> Any:
            xma = t - ac
            z = _b_pnorm(ops, xma) - 1 / ac * _b_dnorm(ops, xma) * (1 / w + _b_beta_laplace(ops, t, ac))
            return ops.where(xma > 25, 0.5, z)

        return _b_vecbinsolv(ops, zero, threshzero, zero, 25 + a)

    def cauchy_zero(t: Any) -> Any:
        return (
            _b_pnorm(ops, t) - t * _b_dnorm(ops, t) - 0.5 - (t * t * ops.exp(-(t * t) / 2) * (1 / w - 1)) / 2
        )

    return _b_vecbinsolv(ops, zero, cauchy_zero, zero, zero + 10.0)


def _b_postmed_laplace(ops: Any, x: Any, w: Any, a: Any, beta: Any = None) -> Any:
    ac = ops.cmin(a, 20.0)
    ax = ops.abs(x)
    xma = ax - ac
    if beta is None:
        beta = _b_beta_laplace(ops, ax, ac)
    zz = 1 / ac * _b_dnorm(ops, xma) * (1 / w + beta)
    zz = ops.where(xma > 25, 0.5, zz)
    mucor = ops.ndtri(ops.cmin(zz, 1.0))
    return ops.sign(x) * ops.cmax(xma - mucor, 0.0)


def _b_postmean_laplace(ops: Any, x: Any, w: Any, a: Any) -> Any:
    ac = ops.cmin(a, 20.0)
    wpost = 1 - (1 - w) / (1 + w * _b_beta_laplace(ops, x, ac))
    ax = ops.abs(x)
    cp1 = _b_pnorm(ops, ops.cmax(ax - ac, -35.0))
    cp2 = _b_pnorm(ops, -ops.cmin(ax + ac, 35.0))
    ef = ops.exp(ops.cmin(2 * ac * ax, 100.0))
    return ops.sign(x) * wpost * (ax - ac * (2 * cp1 / (cp1 + ef * cp2) - 1))


def _b_postmed_cauchy(ops: Any, x: Any, w: Any) -> Any:
    ax = ops.abs(x)
    j = ax < 20
    z = ops.where(j, ax, 0.0)
    thi = ops.zeros_like(ax) + ops.rowmax(z)  # R: the largest |x| < 20 of the map

    def medzero(t: Any) -> Any:
        hh = z - t
        dnhh = _b_dnorm(ops, hh)
        yleft = _b_pnorm(ops, hh) - z * dnhh + (z * t - 1) * dnhh * _b_mills(ops, t)
        return (1 + ops.exp(-(z * z) / 2) * (z * z * (1 / w - 1) - 1)) / 2 - yleft

    inner = _b_vecbinsolv(ops, ops.zeros_like(ax), medzero, ops.zeros_like(ax), thi)
    zest = ops.where(j, inner, ax - 2 / ax)
    return ops.sign(x) * ops.where(zest < 1e-7, 0.0, zest)


def _b_postmean_cauchy(ops: Any, x: Any, w: Any) -> Any:
    nz = x != 0
    xs = ops.where(nz, x, 1.0)
    ex = ops.exp(-(xs * xs) / 2)
    z = w * (xs - (2 * (1 - ex)) / xs) / (w * (1 - ex) + (1 - w) * ex * xs * xs)
    return ops.where(nz, z, x)


def _batched_maps(
    ops: Any,
    x: Any,
    *,
    standardize: str,
    prior: str,
    a: float | None,
    bayesfac: bool,
    sdev: float | None,
    threshrule: str,
    universalthresh: bool,
    zero_mad: str,
) -> Any:
    """The work of :func:`ebayes_threshold_maps` on a float64 ``(B, N)`` array of ``ops``' kind."""
    pr = _prior_code(prior)
    a_fixed = None if (pr == "l" and is_na(a)) else _fixed_a(a, pr)
    n = x.shape[1]
    ones = ops.ones_like(x[:, :1])
    if standardize == "median":
        x = x - ops.median(x)
    x_units = x  # the map in output units (centred for "median")
    scale = ones
    if standardize == "max":
        peak = ops.rowmax(ops.abs(x))
        scale = ops.where(peak > 0, peak, ones)
        x = x / scale
    allzero = ops.rowall(x == 0)
    keep = allzero & False
    if sdev is None:
        sd = MAD_CONSTANT * ops.median(ops.abs(x))
        bad = (sd == 0) & ~allzero
        if ops.any(bad):
            if zero_mad == "raise":
                raise ValueError("sdev: mad(x, center=0) is 0 for a map (more than half of it is exactly 0)")
            if zero_mad == "nonzero":
                sd = ops.where(bad, MAD_CONSTANT * ops.nonzero_abs_median(x), sd)
            else:
                keep = bad
        sd = ops.where(sd > 0, sd, ones)
    else:
        sd = ones * float(sdev)
    xs = x / sd

    beta = None
    if a_fixed is None:  # R's optimiser per map, on the CPU
        rows = np.asarray(xs.cpu() if isinstance(xs, torch.Tensor) else xs)
        skip = np.asarray((allzero | keep).cpu() if isinstance(xs, torch.Tensor) else allzero | keep).ravel()
        wa = [
            (1.0, 0.5) if skip[i] else tuple(wandafromx(rows[i], 1.0, universalthresh).values())
            for i in range(len(rows))
        ]
        w, a_col = ops.column([v[0] for v in wa], x), ops.column([v[1] for v in wa], x)
    else:
        a_col = ones * a_fixed
        beta = _b_beta_laplace(ops, xs, a_col) if pr == "l" else _b_beta_cauchy(ops, xs)
        if universalthresh:
            wlo = _b_wfromt(ops, ones * math.sqrt(2 * math.log(n)), a_col, pr)
        else:
            wlo = ops.zeros_like(ones)
        w = _b_wfromx(ops, ops.cmin(beta, 1e20), wlo)
    if threshrule == "median" and pr == "l":
        shared = beta if (beta is not None and a_fixed <= 20) else None
        muhat = _b_postmed_laplace(ops, xs, w, a_col, shared)
    elif threshrule == "median":
        muhat = _b_postmed_cauchy(ops, xs, w)
    elif threshrule == "mean":
        muhat = _b_postmean_laplace(ops, xs, w, a_col) if pr == "l" else _b_postmean_cauchy(ops, xs, w)
    else:
        tt = _b_tfromw(ops, w, a_col, pr, bayesfac)
        muhat = (
            xs * (ops.abs(xs) >= tt)
            if threshrule == "hard"
            else ops.sign(xs) * ops.cmax(ops.abs(xs) - tt, 0.0)
        )
    muhat = muhat * sd * scale
    muhat = ops.where(keep, x_units, muhat)
    muhat = ops.where(allzero, 0.0, muhat)
    return ops.cmax(muhat, 0.0)


def ebayes_threshold_maps(
    cams: torch.Tensor | np.ndarray,
    *,
    standardize: str = "max",
    prior: str = "laplace",
    a: float | None = 0.5,
    bayesfac: bool = False,
    sdev: float | None = None,
    threshrule: str = "median",
    universalthresh: bool = True,
    zero_mad: str = "nonzero",
) -> torch.Tensor | np.ndarray:
    """EbayesThresh each map of a ``(B, H, W)`` stack independently; returns maps with values ≥ 0.

    How a CAM is fed to EbayesThresh:

    - **Flattened.** A map's H·W values are one data vector x (the method ignores their order).
    - **Standardised** (``standardize``): ``"max"`` (default) divides by the map's largest
      :math:`|x|`, as the R reference's ``cam_4096`` case does; ``"none"`` keeps raw values;
      ``"median"`` subtracts the map's median, so that a constant background offset becomes
      zero-centred noise. With the default MAD noise sd, thresholding is scale-equivariant, so
      ``"max"`` and ``"none"`` differ only when ``sdev`` is given, which is in standardised units
      (0.05 = 5 % of the peak under ``"max"``). Results come back in the input's units: ``"max"``
      multiplies back by the peak; ``"median"`` returns the centred map, thresholded (the median is
      the background level that thresholding removes).
    - **Signed, then clipped.** The noise model is symmetric about 0, so the sd and threshold are
      estimated from the signed values; negative outputs (evidence against the class) are then set
      to 0, since a mask may only darken. :func:`cascam.threshold.apply_threshold` already clips
      CAMs at 0 before calling this.
    - **Zero MAD.** A ReLU'd CAM can be more than half exact zeros; then ``mad(x, center=0)`` is 0
      and R fails. ``zero_mad="nonzero"`` (default) takes the MAD of the non-zero values instead:
      when the zeros come from clipping symmetric noise at 0, the non-zero values are
      :math:`|\\text{noise}|` plus a sparse signal, whose ``mad(·, center=0)`` estimates the same σ.
      ``"keep"`` returns such maps unchanged (the σ → 0 limit of the posterior median); ``"raise"``
      raises like R. An all-zero map stays all zero.

    For each map, with :math:`\\sigma` its noise sd, this is
    ``ebayesthresh(x, prior, a, bayesfac, sdev=σ, threshrule=threshrule)`` clipped at 0: the weight
    :math:`\\hat w` by marginal maximum likelihood (the same 30-step bisection), then :math:`\\hat\\mu`
    by the chosen rule. With ``a`` fixed, all maps are processed together in float64 — with
    numpy/scipy for CPU input, with torch on the maps' device for CUDA tensors — using
    :math:`\\Phi(-t)/\\phi(t)=\\sqrt{\\pi/2}\\,\\mathrm{erfcx}(t/\\sqrt2)`. With ``a=None``, R's optimiser
    runs per map on the CPU and the rest is batched. The result equals the per-map
    :func:`~cascam.threshold.ebayesthresh.ebayesthresh` to about 1e-12 relative.

    Args:
        cams: ``(B, H, W)`` torch tensor (CPU or CUDA) or numpy array, any float dtype.
        standardize: ``"max"``, ``"none"`` or ``"median"``.
        prior, a, bayesfac, threshrule, universalthresh: as
            :func:`~cascam.threshold.ebayesthresh.ebayesthresh` (threshrule one of ``median``,
            ``mean``, ``soft``, ``hard``; ``a=None`` estimates a per map).
        sdev: noise sd in standardised units, shared by all maps; None = MAD per map.
        zero_mad: ``"nonzero"``, ``"keep"`` or ``"raise"``.
    Returns:
        ``(B, H, W)``, same type, device and dtype as ``cams``, values ≥ 0.

    Example:
        >>> import torch
        >>> cams = torch.rand(4, 56, 56) ** 8
        >>> out = ebayes_threshold_maps(cams)
        >>> out.shape, bool((out >= 0).all()), bool((out <= cams).all())
        (torch.Size([4, 56, 56]), True, True)
    """
    _prior_code(prior)
    if standardize not in STANDARDIZE:
        raise ValueError(f"standardize: choose one of {', '.join(STANDARDIZE)}; got {standardize!r}")
    if zero_mad not in ZERO_MAD:
        raise ValueError(f"zero_mad: choose one of {', '.join(ZERO_MAD)}; got {zero_mad!r}")
    if threshrule not in MAP_THRESHRULES:
        raise ValueError(f"threshrule: choose one of {', '.join(MAP_THRESHRULES)}; got {threshrule!r}")
    if sdev is not None and not (math.isfinite(sdev) and sdev > 0):
        raise ValueError(f"sdev: must be a finite number > 0 or None; got {sdev!r}")
    if a is not None:
        _fixed_a(a, _prior_code(prior))
    params = dict(
        standardize=standardize,
        prior=prior,
        a=a,
        bayesfac=bayesfac,
        sdev=sdev,
        threshrule=threshrule,
        universalthresh=universalthresh,
        zero_mad=zero_mad,
    )
    if np.ndim(cams) != 3:
        raise ValueError(f"cams: expected a (B, H, W) stack; got shape {tuple(np.shape(cams))}")
    if isinstance(cams, torch.Tensor):
        b = cams.shape[0]
        if cams.numel() == 0:
            return cams.clone()
        out_dtype = cams.dtype if cams.is_floating_point() else torch.get_default_dtype()
        x = cams.detach().reshape(b, -1).to(torch.float64)
        if x.is_cuda:
            out = _batched_maps(_TorchOps, x, **params)
        else:
            with np.errstate(all="ignore"):
                out = torch.from_numpy(_batched_maps(_NumpyOps, x.numpy(), **params))
        return out.reshape(cams.shape).to(device=cams.device, dtype=out_dtype)
    arr = np.asarray(cams)
    if arr.size == 0:
        return arr.copy()
    out_dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    with np.errstate(all="ignore"):
        out = _batched_maps(_NumpyOps, arr.reshape(arr.shape[0], -1).astype(np.float64), **params)
    return out.reshape(arr.shape).astype(out_dtype)


#: The name the cascade calls (:func:`cascam.threshold.apply_threshold`): the same function.
ebayes_threshold = ebayes_threshold_maps
