"""Empirical Bayes thresholding: a numpy/scipy port of the R package EbayesThresh (1.4-12 code).
Also a batched torch entry point, :func:`ebayes_threshold_maps`, that thresholds a stack of CAMs.

The model (Johnstone & Silverman 2005, J. Stat. Soft. 12(8)) for data :math:`x_i` with noise sd
:math:`s_i` is

$$ x_i = \\mu_i + s_i\\,\\varepsilon_i,\\qquad \\varepsilon_i\\sim N(0,1),\\qquad
   \\mu_i \\sim (1-w)\\,\\delta_0 + w\\,\\gamma, $$

with :math:`\\gamma` the Laplace density :math:`\\tfrac a2 e^{-a|u|}` or the quasi-Cauchy density.
The mixing weight :math:`w` (and for the Laplace prior optionally the scale :math:`a`) is found by
marginal maximum likelihood, then each :math:`x_i` is replaced by its posterior median (a
thresholding rule), posterior mean, or hard/soft thresholded value.

Every function keeps R's argument names, defaults and numerical recipe: R's ``pnorm``/``dnorm``
algorithms, ``exp`` and ``log`` of the C library as R's (not numpy's own SIMD kernels), its fixed
30-step bisections, its long-double ``sum`` in the likelihood, and for the
estimate of ``a`` R's ``optim(method="L-BFGS-B")`` (L-BFGS-B 2.3 with R's finite-difference gradient)
step for step. Results agree with R's to about 1e-13 relative, ``a`` estimated or not (checked
against 2603 outputs of the R package in ``tests/test_ebayesthresh.py``). R's dotted names become
underscores (``beta.laplace`` → :func:`beta_laplace`), R's ``NA`` becomes ``None``. Where R stops with
an error, or cannot compute, these functions raise :class:`ValueError` naming the argument.

Example (the values are R's):
    >>> import numpy as np
    >>> from cascam.threshold.ebayesthresh import ebayesthresh
    >>> x = [2.188648, 6.541683, -5.227337, -2.506536, -0.557311,
    ...      -0.143559, 1.091502, -0.622944, -0.90746, -1.593713]
    >>> r = ebayesthresh(x, sdev=1, verbose=True)
    >>> np.round(r["muhat"][:4], 4), round(r["threshold.sdevscale"], 4), round(r.w, 4)
    (array([ 1.6242,  6.0417, -4.7273, -1.969 ]), 0.5589, 0.855)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special

__all__ = [
    "EbayesThreshResult",
    "ebayesthresh",
    "ebayesthresh_wavelet",
    "ebayes_threshold_maps",
    "ebayes_threshold",
    "wfromx",
    "wandafromx",
    "tfromw",
    "tfromx",
    "wfromt",
    "postmed",
    "postmean",
    "postmed_laplace",
    "postmean_laplace",
    "postmed_cauchy",
    "postmean_cauchy",
    "beta_laplace",
    "beta_cauchy",
    "wpost_laplace",
    "negloglik_laplace",
    "laplace_threshzero",
    "cauchy_threshzero",
    "cauchy_medzero",
    "vecbinsolv",
    "threshld",
    "isotone",
    "zetafromx",
    "wmonfromx",
]

ArrayLike = Any  # float, sequence of floats or numpy array

_M_1_SQRT_2PI = 0.398942280401432677939946059934
# R's dnorm: beyond this |x| the density underflows to 0 (IEEE doubles, denormals included).
_DNORM_ZERO = math.sqrt(-2 * math.log(2) * (-1021 + 1 - 53))
_MAD_CONSTANT = 1.4826
_DBL_EPSILON = float(np.finfo(float).eps)


# ----------------------------------------------------------------------------------------------
# R's numerics: dnorm, pnorm, qnorm, mad, argument handling
# ----------------------------------------------------------------------------------------------


# R's exp() and log(): R evaluates them with the C library (glibc on Linux), and so does Python's
# math.exp/math.log. numpy's np.exp/np.log are the C library's only where numpy has no kernel of its
# own for the CPU: on x86-64 with AVX-512, numpy computes float64 exp and log with its own vectorised
# code (SVML), which differs from glibc's in the last bit for a few percent of arguments (numpy
# issue #23523). One ulp matters where R's formulas cancel: in postmean.cauchy,
# x - 2(1 - e^(-x^2/2))/x for |x| ~ 1e-4 is pure rounding noise of e^(-x^2/2), amplified by ~1/x^3,
# so R's posterior mean there changes by up to ~1e-2 with one ulp of exp; likewise the path of R's
# L-BFGS-B (and whether it meets a non-finite likelihood) follows every bit of the likelihood. So
# every exp and log that R evaluates is evaluated here by the C library: by numpy when numpy's
# results equal the C library's on a probe of arguments (checked once, at import), else element by
# element with math.exp/math.log (slower, the same bits).
_EXP_OVERFLOW = 709.782712893384  # log(DBL_MAX): above it exp() is inf (math.exp raises instead)


def _libm_exp(x: ArrayLike) -> np.ndarray:
    """``exp(x)`` element-wise by the C library's ``exp`` (``math.exp``), with IEEE results (inf, 0)."""
    x = np.asarray(x, dtype=np.float64)
    flat = np.where(x > _EXP_OVERFLOW, np.inf, x).ravel().tolist()
    return np.fromiter(map(math.exp, flat), dtype=np.float64, count=len(flat)).reshape(x.shape)


def _libm_log(x: ArrayLike) -> np.ndarray:
    """``log(x)`` element-wise by the C library's ``log`` (``math.log``): -inf at 0, NaN below 0."""
    x = np.asarray(x, dtype=np.float64)
    pos = x > 0
    out = np.where(x == 0, -np.inf, np.nan)
    out[pos] = np.fromiter(map(math.log, x[pos].tolist()), dtype=np.float64, count=int(pos.sum()))
    return out


def _probe_arguments() -> tuple[np.ndarray, np.ndarray]:
    """Arguments on which numpy's exp and log are compared with the C library's (the ranges used here)."""
    grid = np.geomspace(1e-12, 40.0, 3000)
    exp_args = np.concatenate([-0.5 * grid * grid, np.linspace(-745.0, 709.0, 3001), grid * 2.5])
    log_args = np.concatenate([np.geomspace(1e-300, 1e300, 2000), 1.0 + np.linspace(-0.999, 9.0, 3001)])
    return exp_args, log_args


def _numpy_is_libm() -> dict[str, bool]:
    """Whether numpy's float64 exp and log give the C library's bits on this CPU (probed)."""
    exp_args, log_args = _probe_arguments()
    with np.errstate(all="ignore"):
        return {
            "exp": bool(np.array_equal(np.exp(exp_args), _libm_exp(exp_args))),
            "log": bool(np.array_equal(np.log(log_args), _libm_log(log_args))),
        }


_NUMPY_IS_LIBM = _numpy_is_libm()


def _exp(x: ArrayLike) -> np.ndarray:
    """R's ``exp(x)``: the C library's exp, element-wise (numpy's where that is the same)."""
    return np.exp(x) if _NUMPY_IS_LIBM["exp"] else _libm_exp(x)


def _log(x: ArrayLike) -> np.ndarray:
    """R's ``log(x)``: the C library's log, element-wise (numpy's where that is the same)."""
    return np.log(x) if _NUMPY_IS_LIBM["log"] else _libm_log(x)


def _vec(x: ArrayLike, name: str = "x") -> np.ndarray:
    """``x`` as a 1-d float64 array (R vectors are 1-d; a scalar becomes length 1)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: must be numeric; got {x!r}") from err
    return arr.reshape(-1)


def _dnorm(x: np.ndarray) -> np.ndarray:
    """R's ``dnorm(x)`` (nmath/dnorm.c): :math:`\\phi(x)=e^{-x^2/2}/\\sqrt{2\\pi}`.

    For :math:`|x|\\ge 5` R splits :math:`x=x_1+x_2` with :math:`x_1` a multiple of :math:`2^{-16}`, so
    that :math:`x_1^2` is exact; copying that keeps the tail ratios ``pnorm/dnorm`` bit-close to R.
    """
    ax = np.abs(x)
    out = ax * ax
    out *= -0.5
    out = _exp(out)
    out *= _M_1_SQRT_2PI
    big = ax >= 5
    if big.any():
        xb = ax[big]
        # x1 = x rounded to a multiple of 2^-16 (scaling by 2^16 is exact); x1² is then exact.
        x1 = np.rint(xb * 65536.0) / 65536.0
        x2 = xb - x1
        with np.errstate(invalid="ignore"):
            vb = _M_1_SQRT_2PI * (_exp(-0.5 * x1 * x1) * _exp((-0.5 * x2 - x1) * x2))
        vb[xb > _DNORM_ZERO] = 0.0
        out[big] = vb
    return out


# Cody's (1969/1993, ACM TOMS 715 ANORM) rational approximations for Φ, with R's region limits and its
# exact split of exp(−x²/2) (nmath/pnorm.c), so that the likelihood R maximises is reproduced bit for bit.
_PN_A = (
    2.2352520354606839287,
    161.02823106855587881,
    1067.6894854603709582,
    18154.981253343561249,
    0.065682337918207449113,
)
_PN_B = (47.20258190468824187, 976.09855173777669322, 10260.932208618978205, 45507.789335026729956)
_PN_C = (
    0.39894151208813466764,
    8.8831497943883759412,
    93.506656132177855979,
    597.27027639480026226,
    2494.5375852903726711,
    6848.1904505362823326,
    11602.651437647350124,
    9842.7148383839780218,
    1.0765576773720192317e-8,
)
_PN_D = (
    22.266688044328115691,
    235.38790178262499861,
    1519.377599407554805,
    6485.558298266760755,
    18615.571640885098091,
    34900.952721145977266,
    38912.003286093271411,
    19685.429676859990727,
)
_PN_P = (
    0.21589853405795699,
    0.1274011611602473639,
    0.022235277870649807,
    0.001421619193227893466,
    2.9112874951168792e-5,
    0.02307344176494017303,
)
_PN_Q = (
    1.28426009614491121,
    0.468238212480865118,
    0.0659881378689285515,
    0.00378239633202758244,
    7.29751555083966205e-5,
)
_M_SQRT_32 = 5.656854249492380195206754896838


def _pnorm(x: np.ndarray) -> np.ndarray:
    r"""R's ``pnorm(x)`` (lower tail). Three regions of |x|: ≤ 0.674 (a rational function of x²),
    ≤ √32 (of |x|), < 37.5 (of 1/x², times φ); in the last two :math:`e^{-x^2/2}` is evaluated as
    :math:`e^{-x_s^2/2}e^{-\delta/2}` with :math:`x_s=\lfloor 16x\rfloor/16`, :math:`\delta=(x-x_s)(x+x_s)`."""
    x = np.asarray(x, dtype=np.float64)
    out = np.empty_like(x)
    y = np.abs(x)
    r1 = y <= 0.67448975
    r2 = ~r1 & (y <= _M_SQRT_32)
    r3 = ~r1 & ~r2 & (-37.5193 < x) & (x < 8.2924)
    r4 = ~(r1 | r2 | r3)
    if r1.any():
        xv = x[r1]
        xsq = np.where(np.abs(xv) > _DBL_EPSILON * 0.5, xv * xv, 0.0)
        xnum = _PN_A[4] * xsq
        xden = xsq.copy()
        for i in range(3):
            xnum = (xnum + _PN_A[i]) * xsq
            xden = (xden + _PN_B[i]) * xsq
        out[r1] = 0.5 + xv * (xnum + _PN_A[3]) / (xden + _PN_B[3])
    for region, split in ((r2, True), (r3, False)):
        if not region.any():
            continue
        xv, yv = x[region], y[region]
        if split:
            xnum = _PN_C[8] * yv
            xden = yv.copy()
            for i in range(7):
                xnum = (xnum + _PN_C[i]) * yv
                xden = (xden + _PN_D[i]) * yv
            temp = (xnum + _PN_C[7]) / (xden + _PN_D[7])
            xd = yv
        else:
            xsq = 1.0 / (xv * xv)
            xnum = _PN_P[5] * xsq
            xden = xsq.copy()
            for i in range(4):
                xnum = (xnum + _PN_P[i]) * xsq
                xden = (xden + _PN_Q[i]) * xsq
            temp = xsq * (xnum + _PN_P[4]) / (xden + _PN_Q[4])
            temp = (_M_1_SQRT_2PI - temp) / yv
            xd = xv
        xs = np.trunc(xd * 16.0) / 16.0
        dl = (xd - xs) * (xd + xs)
        cum = _exp(-xs * (xs / 2)) * _exp(-(dl / 2)) * temp
        out[region] = np.where(xv > 0, 1.0 - cum, cum)
    if r4.any():
        out[r4] = np.where(x[r4] > 0, 1.0, 0.0)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = np.nan
    return out


def _pnorm1(x: float) -> float:
    """Scalar :func:`_pnorm`, the same operations."""
    if math.isnan(x):
        return x
    y = abs(x)
    if y <= 0.67448975:
        xsq = x * x if y > _DBL_EPSILON * 0.5 else 0.0
        xnum = _PN_A[4] * xsq
        xden = xsq
        for i in range(3):
            xnum = (xnum + _PN_A[i]) * xsq
            xden = (xden + _PN_B[i]) * xsq
        return 0.5 + x * (xnum + _PN_A[3]) / (xden + _PN_B[3])
    if y <= _M_SQRT_32:
        xnum = _PN_C[8] * y
        xden = y
        for i in range(7):
            xnum = (xnum + _PN_C[i]) * y
            xden = (xden + _PN_D[i]) * y
        temp = (xnum + _PN_C[7]) / (xden + _PN_D[7])
        xd = y
    elif -37.5193 < x < 8.2924:
        xsq = 1.0 / (x * x)
        xnum = _PN_P[5] * xsq
        xden = xsq
        for i in range(4):
            xnum = (xnum + _PN_P[i]) * xsq
            xden = (xden + _PN_Q[i]) * xsq
        temp = xsq * (xnum + _PN_P[4]) / (xden + _PN_Q[4])
        temp = (_M_1_SQRT_2PI - temp) / y
        xd = x
    else:
        return 1.0 if x > 0 else 0.0
    xs = math.trunc(xd * 16.0) / 16.0
    dl = (xd - xs) * (xd + xs)
    cum = math.exp(-xs * (xs / 2)) * math.exp(-(dl / 2)) * temp
    return 1.0 - cum if x > 0 else cum


_qnorm = special.ndtri  # Φ⁻¹(p)


# Scalar twins of the vector formulas, operation for operation (math.exp is the C library's exp, as
# _exp), for the 30-step bisections on one unknown where numpy's per-call overhead would dominate.
def _dnorm1(x: float) -> float:
    ax = abs(x)
    if ax < 5:
        return _M_1_SQRT_2PI * math.exp(-0.5 * ax * ax)
    if ax > _DNORM_ZERO:
        return 0.0
    x1 = math.ldexp(float(round(math.ldexp(ax, 16))), -16)
    x2 = ax - x1
    return _M_1_SQRT_2PI * (math.exp(-0.5 * x1 * x1) * math.exp((-0.5 * x2 - x1) * x2))


def _beta_laplace1(x: float, s: float, a: float) -> float:
    x = abs(x)
    xpa = x / s + s * a
    xma = x / s - s * a
    rat1 = _pnorm1(-xpa) / _dnorm1(xpa) if xpa < 35 else 1 / xpa
    xmc = min(xma, 35.0)
    rat2 = _pnorm1(xmc) / _dnorm1(xmc) if xma > -35 else 1 / abs(xma)
    return (a * s) / 2 * (rat1 + rat2) - 1


def _beta_cauchy1(x: float) -> float:
    if x == 0:
        return -0.5
    phix = _dnorm1(x)
    return ((_M_1_SQRT_2PI / phix - 1) / x**2 - 1) if phix > 0 else math.inf


def _laplace_threshzero1(x: float, s: float, w: float, a: float) -> float:
    a = min(a, 20.0)
    xma = x / s - s * a
    if xma > 25:
        return 0.5
    winv = 1 / w if w != 0 else math.inf
    return _pnorm1(xma) - 1 / a * (1 / s * _dnorm1(xma)) * (winv + _beta_laplace1(x, s, a))


def _cauchy_threshzero1(z: float, w: float) -> float:
    winv = 1 / w if w != 0 else math.inf
    return _pnorm1(z) - z * _dnorm1(z) - 0.5 - (z**2 * math.exp(-(z**2) / 2) * (winv - 1)) / 2


def _ieee_div(num: float, den: float) -> float:
    """num / den with IEEE results for den = 0 (Python floats raise instead)."""
    if den != 0:
        return num / den
    return math.nan if num == 0 or math.isnan(num) else math.copysign(math.inf, num) * math.copysign(1.0, den)


def _wfromt_laplace1(tt: float, s: float, a: float) -> float:
    tma = tt / s - s * a
    wi = _ieee_div(_pnorm1(tma), _dnorm1(tma)) if tma > -35 else 1 / abs(tma)
    return _ieee_div(1.0, a * s * wi - _beta_laplace1(tt, s, a))


def _binsolv1(zf: float, fun: Callable[[float], float], tlo: float, thi: float, nits: int = 30) -> float:
    """:func:`vecbinsolv` for one unknown, same steps."""
    for _ in range(nits):
        tmid = (tlo + thi) / 2
        if fun(tmid) <= zf:
            tlo = tmid
        else:
            thi = tmid
    return (tlo + thi) / 2


def _mad0(x: np.ndarray) -> float:
    """R's ``mad(x, center = 0)`` = 1.4826 · median(|x|)."""
    return _MAD_CONSTANT * float(np.median(np.abs(x)))


def _mad(x: np.ndarray) -> float:
    """R's ``mad(x)`` = 1.4826 · median(|x − median(x)|)."""
    return _MAD_CONSTANT * float(np.median(np.abs(x - np.median(x))))


def _rmean(x: np.ndarray) -> float:
    """R's ``mean``: an accurate sum (R uses long double and a correction pass) divided by n."""
    if x.size and np.all(x == x[0]):
        return float(x[0])
    m = math.fsum(x) / x.size
    return m + math.fsum(x - m) / x.size


def _prior_code(prior: str) -> str:
    """First letter of ``prior`` (R's ``substring(prior, 1, 1)``): ``l`` Laplace, ``c`` quasi-Cauchy."""
    code = prior[:1] if isinstance(prior, str) else ""
    if code not in ("l", "c"):
        raise ValueError(f"prior: must be 'laplace' or 'cauchy' (first letter used); got {prior!r}")
    return code


def _is_na(v: Any) -> bool:
    if v is None:
        return True
    arr = np.asarray(v, dtype=np.float64)
    return arr.size == 1 and bool(np.isnan(arr.reshape(-1)[0]))


def _check_no_nan(v: np.ndarray, name: str) -> None:
    # R's logical subscripts stop with "NAs are not allowed in subscripted assignments".
    if np.isnan(v).any():
        raise ValueError(f"{name}: contains NaN (R: NAs are not allowed in subscripted assignments)")


def _rsum(v: np.ndarray) -> float:
    """R's ``sum`` of doubles: sequential accumulation in long double (80-bit on x86-64), then rounded."""
    return float(np.cumsum(v, dtype=np.longdouble)[-1]) if v.size else 0.0


def _scalar_or_vector(v: np.ndarray) -> float | np.ndarray:
    return float(v[0]) if v.size == 1 else v


# ----------------------------------------------------------------------------------------------
# The Laplace and quasi-Cauchy building blocks
# ----------------------------------------------------------------------------------------------


def beta_laplace(x: ArrayLike, s: ArrayLike = 1.0, a: float = 0.5) -> np.ndarray:
    """:math:`\\beta(x)=g(x)/\\phi(x)-1` for the Laplace prior with scale ``a`` and noise sd ``s``.

    With :math:`x\\ge0` (``|x|`` is used), :math:`x_\\pm=x/s\\pm sa` and Mills ratios
    :math:`r_1=\\Phi(-x_+)/\\phi(x_+)`, :math:`r_2=\\Phi(x_-)/\\phi(x_-)`,

    $$ \\beta(x) = \\frac{as}{2}\\,(r_1 + r_2) - 1 . $$

    As in R, :math:`r_1 = 1/x_+` once :math:`x_+\\ge35`, :math:`r_2 = 1/|x_-|` when
    :math:`x_-\\le-35`, and :math:`x_-` is capped at 35 (so β stays finite, ≈ 6.3e265 at most).

    Args:
        x: data, any length. s: noise sd, scalar or same length as ``x``. a: Laplace scale > 0.
    Returns:
        β, shape of ``x`` broadcast with ``s``.
    """
    x = np.abs(_vec(x))
    s = _vec(s, "s")
    xpa = x / s + s * a
    xma = x / s - s * a
    _check_no_nan(xpa, "x")
    n = xpa.size
    xmc = np.minimum(xma, 35.0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # both Mills ratios Φ(−x₊)/φ(x₊) and Φ(x₋)/φ(x₋) in one pass (φ is even)
        both = np.concatenate([-xpa, xmc])
        mills = _pnorm(both) / _dnorm(both)
        rat1 = np.where(xpa < 35, mills[:n], 1 / xpa)
        rat2 = np.where(xma > -35, mills[n:], 1 / np.abs(xma))
    return (a * s) / 2 * (rat1 + rat2) - 1


def beta_cauchy(x: ArrayLike) -> np.ndarray:
    """:math:`\\beta(x)=g(x)/\\phi(x)-1` for the quasi-Cauchy prior (noise sd 1).

    $$ \\beta(x) = \\frac{\\phi(0)/\\phi(x) - 1}{x^2} - 1,\\qquad \\beta(0) = -\\tfrac12 . $$

    Overflows to ``inf`` for :math:`|x|\\gtrsim 37.6`, exactly as R does.
    """
    x = _vec(x)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        beta = (_dnorm(np.zeros(1)) / _dnorm(x) - 1) / x**2 - 1
    return np.where(x != 0, beta, -0.5)


def wfromt(tt: ArrayLike, s: ArrayLike = 1.0, prior: str = "laplace", a: float = 0.5) -> np.ndarray:
    """The weight :math:`w` whose posterior-median threshold is ``tt``.

    Laplace, with :math:`t_-=t/s-sa`:
    $$ w(t) = \\Big(as\\,\\frac{\\Phi(t_-)}{\\phi(t_-)} - \\beta(t)\\Big)^{-1}, $$
    (the Mills ratio replaced by :math:`1/|t_-|` when :math:`t_-\\le-35`). Quasi-Cauchy:
    $$ w(t)^{-1} = 1 + \\frac{\\Phi(t) - t\\phi(t) - 1/2}{\\sqrt{\\pi/2}\\,\\phi(t)\\,t^2}, $$
    set to 1 where that is not finite (t = 0 or φ(t) = 0).
    """
    pr = _prior_code(prior)
    tt = _vec(tt, "tt")
    if pr == "l" and tt.size == 1 and np.size(s) == 1 and not np.isnan(tt[0]):
        return np.array([_wfromt_laplace1(float(tt[0]), float(_vec(s, "s")[0]), float(a))])
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if pr == "l":
            s = _vec(s, "s")
            tma = tt / s - s * a
            wi = np.where(tma > -35, _pnorm(tma) / _dnorm(tma), 1 / np.abs(tma))
            wi = a * s * wi - beta_laplace(tt, s, a)
        else:
            dnz = _dnorm(tt)
            wi = 1 + (_pnorm(tt) - tt * dnz - 0.5) / (math.sqrt(math.pi / 2) * dnz * tt**2)
            wi = np.where(np.isfinite(wi), wi, 1.0)
        return 1 / wi


def wpost_laplace(w: ArrayLike, x: ArrayLike, s: ArrayLike = 1.0, a: float = 0.5) -> np.ndarray:
    """Posterior probability that :math:`\\mu\\ne0` under the Laplace prior:

    $$ P(\\mu\\ne0\\mid x) = 1 - \\frac{1-w}{1 + w\\,\\beta(x)} . $$
    """
    w = _vec(w, "w")
    return 1 - (1 - w) / (1 + w * beta_laplace(x, s, a))


def laplace_threshzero(x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, a: float = 0.5) -> np.ndarray:
    """The function whose zero in ``x`` is the Laplace posterior-median threshold.

    With :math:`a\\leftarrow\\min(a,20)` and :math:`x_-=x/s-sa`,
    $$ z(x) = \\Phi(x_-) - \\frac{1}{a}\\,\\frac{\\phi(x_-)}{s}\\,\\Big(\\frac1w + \\beta(x)\\Big), $$
    set to 1/2 where :math:`x_->25`.
    """
    a = min(a, 20.0)
    x = _vec(x)
    s = _vec(s, "s")
    w = _vec(w, "w")
    xma = x / s - s * a
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        z = _pnorm(xma) - 1 / a * (1 / s * _dnorm(xma)) * (1 / w + beta_laplace(x, s, a))
    return np.where(xma > 25, 0.5, z)


def cauchy_threshzero(z: ArrayLike, w: ArrayLike) -> np.ndarray:
    """The function whose zero in ``z`` is the quasi-Cauchy posterior-median threshold:

    $$ \\Phi(z) - z\\phi(z) - \\tfrac12 - \\tfrac12 z^2 e^{-z^2/2}\\,(1/w - 1) . $$
    """
    z = _vec(z, "z")
    w = _vec(w, "w")
    with np.errstate(divide="ignore", invalid="ignore"):
        return _pnorm(z) - z * _dnorm(z) - 0.5 - (z**2 * _exp(-(z**2) / 2) * (1 / w - 1)) / 2


def cauchy_medzero(x: ArrayLike, z: ArrayLike, w: ArrayLike) -> np.ndarray:
    """The function whose zero in ``x`` is the quasi-Cauchy posterior median for data ``z``.

    With :math:`h=z-x`,
    $$ \\tfrac12\\big(1 + e^{-z^2/2}(z^2(1/w-1)-1)\\big)
       - \\Big(\\Phi(h) - z\\phi(h) + \\frac{(zx-1)\\,\\phi(h)\\,\\Phi(-x)}{\\phi(x)}\\Big). $$
    """
    x = _vec(x)
    z = _vec(z, "z")
    w = _vec(w, "w")
    hh = z - x
    dnhh = _dnorm(hh)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        yleft = _pnorm(hh) - z * dnhh + ((z * x - 1) * dnhh * _pnorm(-x)) / _dnorm(x)
        yright2 = 1 + _exp(-(z**2) / 2) * (z**2 * (1 / w - 1) - 1)
    return yright2 / 2 - yleft


def vecbinsolv(
    zf: ArrayLike,
    fun: Callable[..., np.ndarray],
    tlo: ArrayLike,
    thi: ArrayLike,
    nits: int = 30,
    **kwargs: Any,
) -> np.ndarray:
    """Solve :math:`f_i(t_i)=z_i` for increasing ``fun`` by ``nits`` fixed bisections of [tlo, thi].

    Each step sets :math:`t_m=(t_{lo}+t_{hi})/2` and moves :math:`t_{lo}\\leftarrow t_m` where
    :math:`f(t_m)\\le z`, else :math:`t_{hi}\\leftarrow t_m`; the answer is the final midpoint. A root
    outside the bracket gives the nearer end (to within :math:`2^{-nits}` of its width). Extra keyword
    arguments go to ``fun(t, **kwargs)``, which must work elementwise on vectors.

    Args:
        zf: targets, length n. tlo, thi: bracket ends, scalar or length n.
    """
    zf = _vec(zf, "zf")
    nz = zf.size
    lo = _vec(tlo, "tlo").copy()
    hi = _vec(thi, "thi").copy()
    if lo.size == 1:
        lo = np.repeat(lo, nz)
    if lo.size != nz:
        raise ValueError("tlo: lower constraint has to be homogeneous or have the same length as zf")
    if hi.size == 1:
        hi = np.repeat(hi, nz)
    if hi.size != nz:
        raise ValueError("thi: upper constraint has to be homogeneous or have the same length as zf")
    for _ in range(int(nits)):
        tmid = (lo + hi) / 2
        fmid = np.asarray(fun(tmid, **kwargs), dtype=np.float64)
        if fmid.size != nz:
            raise ValueError(f"fun: returned {fmid.size} values for {nz} targets (R cannot recycle these)")
        indt = fmid <= zf
        lo = np.where(indt, tmid, lo)
        hi = np.where(indt, hi, tmid)
    return (lo + hi) / 2


# ----------------------------------------------------------------------------------------------
# Thresholds and posterior summaries
# ----------------------------------------------------------------------------------------------


def tfromw(
    w: ArrayLike, s: ArrayLike = 1.0, prior: str = "laplace", bayesfac: bool = False, a: float = 0.5
) -> np.ndarray:
    """Threshold(s) for weight(s) ``w``.

    Posterior-median threshold (default): the :math:`t` with :math:`\\mathrm{median}(\\mu\\mid x=t)=0`,
    i.e. the zero of :func:`laplace_threshzero` on :math:`[0, s(25+sa)]` or of
    :func:`cauchy_threshzero` on [0, 10]. Bayes-factor threshold (``bayesfac=True``): the :math:`t`
    with :math:`P(\\mu\\ne0\\mid t)=1/2`, i.e. :math:`\\beta(t)=1/w-2`, searched on [0, 10]. All by
    :func:`vecbinsolv` with 30 steps.

    Raises:
        ValueError: a vector ``w`` with the quasi-Cauchy posterior-median threshold (R supports only a
            scalar ``w`` there).
    """
    pr = _prior_code(prior)
    w = _vec(w, "w")
    s = _vec(s, "s")
    if w.size == 1 and s.size == 1:
        w1, s1 = float(w[0]), float(s[0])
        if bayesfac:
            z1 = (1 / w1 if w1 != 0 else math.inf) - 2
            fun = (lambda t: _beta_laplace1(t, s1, a)) if pr == "l" else _beta_cauchy1
            return np.array([_binsolv1(z1, fun, 0.0, 10.0)])
        if pr == "l":
            fun = lambda t: _laplace_threshzero1(t, s1, w1, a)  # noqa: E731
            return np.array([_binsolv1(0.0, fun, 0.0, s1 * (25 + s1 * a))])
        return np.array([_binsolv1(0.0, lambda t: _cauchy_threshzero1(t, w1), 0.0, 10.0)])
    if bayesfac:
        with np.errstate(divide="ignore"):
            z = 1 / w - 2
        if pr == "l":
            zz = z if w.size >= s.size else np.repeat(z, s.size)
            return vecbinsolv(zz, beta_laplace, 0.0, 10.0, s=s, a=a)
        return vecbinsolv(z, beta_cauchy, 0.0, 10.0)
    if pr == "l":
        zz = np.zeros(max(s.size, w.size))
        return vecbinsolv(zz, laplace_threshzero, 0.0, s * (25 + s * a), s=s, w=w, a=a)
    if w.size != 1:
        raise ValueError("w: the quasi-Cauchy posterior-median threshold needs a scalar w (as in R)")
    return vecbinsolv(np.zeros(1), cauchy_threshzero, 0.0, 10.0, w=w)


def postmed_laplace(x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, a: float = 0.5) -> np.ndarray:
    """Posterior median of :math:`\\mu` under the Laplace prior (a thresholding rule).

    With :math:`a\\leftarrow\\min(a,20)`, :math:`x_-=|x|/s-sa` and
    :math:`z=\\min\\!\\big(1,\\ \\tfrac1a\\tfrac{\\phi(x_-)}{s}(1/w+\\beta(x))\\big)` (1/2 when
    :math:`x_->25`),
    $$ \\hat\\mu = \\mathrm{sign}(x)\\; s\\,\\max\\big(0,\\ x_- - \\Phi^{-1}(z)\\big). $$
    """
    return _postmed_laplace(_vec(x), _vec(s, "s"), _vec(w, "w"), a)


def _postmed_laplace(x: np.ndarray, s: np.ndarray, w: np.ndarray, a: float, beta: np.ndarray | None = None):
    """:func:`postmed_laplace`; ``beta`` = β(x) at min(a, 20) if already known."""
    a = min(a, 20.0)
    sx = np.sign(x)
    ax = np.abs(x)
    xma = ax / s - s * a
    if beta is None:
        beta = beta_laplace(ax, s, a)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        zz = 1 / a * (1 / s * _dnorm(xma)) * (1 / w + beta)
        zz = np.where(xma > 25, 0.5, zz)
        mucor = _qnorm(np.minimum(zz, 1.0))
        return sx * np.maximum(0.0, xma - mucor) * s


def postmean_laplace(x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, a: float = 0.5) -> np.ndarray:
    """Posterior mean of :math:`\\mu` under the Laplace prior.

    With :math:`a\\leftarrow\\min(a,20)`, :math:`x_\\pm=|x|/s\\pm sa` (capped at ±35),
    :math:`c_1=\\Phi(x_-)`, :math:`c_2=\\Phi(-x_+)`, :math:`e=\\exp(\\min(2a|x|,100))`,
    $$ E[\\mu\\mid x] = \\mathrm{sign}(x)\\,P(\\mu\\ne0\\mid x)\\,
       \\Big(|x| - as^2\\Big(\\frac{2c_1}{c_1 + e\\,c_2} - 1\\Big)\\Big). $$
    """
    a = min(a, 20.0)
    x = _vec(x)
    s = _vec(s, "s")
    wpost = wpost_laplace(w, x, s, a)
    sx = np.sign(x)
    ax = np.abs(x)
    xpa = np.minimum(ax / s + s * a, 35.0)
    xma = np.maximum(ax / s - s * a, -35.0)
    cp1 = _pnorm(xma)
    cp2 = _pnorm(-xpa)
    ef = _exp(np.minimum(2 * a * ax, 100.0))
    postmeancond = ax - a * s**2 * (2 * cp1 / (cp1 + ef * cp2) - 1)
    return sx * wpost * postmeancond


def postmean_cauchy(x: ArrayLike, w: ArrayLike) -> np.ndarray:
    """Posterior mean under the quasi-Cauchy prior (noise sd 1), 0 at x = 0:

    $$ E[\\mu\\mid x] = \\frac{w\\,\\big(x - 2(1-e^{-x^2/2})/x\\big)}
       {w\\,(1-e^{-x^2/2}) + (1-w)\\,e^{-x^2/2}\\,x^2} . $$
    """
    x = _vec(x)
    w = _vec(w, "w")
    nz = x != 0
    xs = np.where(nz, x, 1.0)
    ex = _exp(-(xs**2) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = w * (xs - (2 * (1 - ex)) / xs)
        z = z / (w * (1 - ex) + (1 - w) * ex * xs**2)
    return np.where(nz, z, x)


def postmed_cauchy(x: ArrayLike, w: ArrayLike) -> np.ndarray:
    """Posterior median under the quasi-Cauchy prior (noise sd 1).

    For :math:`|x|<20` the zero of :func:`cauchy_medzero` on :math:`[0,\\max|x|]` by
    :func:`vecbinsolv`; for :math:`|x|\\ge20` the approximation :math:`|x| - 2/|x|`. Values below 1e-7
    become 0, then the sign of ``x`` is restored.
    """
    x = _vec(x)
    nx = x.size
    w = np.resize(_vec(w, "w"), nx)
    ax = np.abs(x)
    j = ax < 20
    zest = np.full(nx, np.nan)
    with np.errstate(divide="ignore"):
        zest[~j] = ax[~j] - 2 / ax[~j]
    if j.any():
        zest[j] = vecbinsolv(np.zeros(int(j.sum())), cauchy_medzero, 0.0, ax[j].max(), z=ax[j], w=w[j])
    zest[zest < 1e-7] = 0.0
    return np.sign(x) * zest


def postmed(
    x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, prior: str = "laplace", a: float = 0.5
) -> np.ndarray:
    """Posterior median :math:`\\hat\\mu_i=\\mathrm{median}(\\mu\\mid x_i)`; see :func:`postmed_laplace`,
    :func:`postmed_cauchy`.

    Raises:
        ValueError: ``s`` ≠ 1 with the quasi-Cauchy prior (R: only sd 1 is allowed).
    """
    if _prior_code(prior) == "l":
        return postmed_laplace(x, s, w, a)
    if np.any(_vec(s, "s") != 1):
        raise ValueError("s: only a standard deviation of 1 is allowed for the Cauchy prior")
    return postmed_cauchy(x, w)


def postmean(
    x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, prior: str = "laplace", a: float = 0.5
) -> np.ndarray:
    """Posterior mean :math:`E[\\mu\\mid x_i]`; see :func:`postmean_laplace`, :func:`postmean_cauchy`.

    Raises:
        ValueError: ``s`` ≠ 1 with the quasi-Cauchy prior (R: only sd 1 is allowed).
    """
    if _prior_code(prior) == "l":
        return postmean_laplace(x, s, w, a)
    if np.any(_vec(s, "s") != 1):
        raise ValueError("s: only a standard deviation of 1 is allowed for the Cauchy prior")
    return postmean_cauchy(x, w)


def threshld(x: ArrayLike, t: ArrayLike, hard: bool = True) -> np.ndarray:
    """Hard :math:`x\\,1\\{|x|\\ge t\\}` or soft :math:`\\mathrm{sign}(x)\\max(0,|x|-t)` thresholding."""
    x = _vec(x)
    t = _vec(t, "t")
    if hard:
        return x * (np.abs(x) >= t)
    return np.sign(x) * np.maximum(0.0, np.abs(x) - t)


# ----------------------------------------------------------------------------------------------
# Estimating w (and a)
# ----------------------------------------------------------------------------------------------


def wfromx(
    x: ArrayLike, s: ArrayLike = 1.0, prior: str = "laplace", a: float = 0.5, universalthresh: bool = True
) -> float:
    """Marginal maximum likelihood weight :math:`\\hat w`: the zero of the score

    $$ S(w) = \\sum_i \\frac{\\beta_i}{1 + w\\,\\beta_i},\\qquad \\beta_i=\\min(\\beta(x_i), 10^{20}), $$

    which decreases in :math:`w`. Returns 1 if :math:`S(1)\\ge0`, :math:`w_{lo}` if
    :math:`S(w_{lo})\\le0`, else 30 geometric bisections :math:`w_m=\\sqrt{w_{lo}w_{hi}}` of
    :math:`[w_{lo}, 1]`. :math:`w_{lo}` is the weight whose threshold is the universal threshold
    :math:`\\sqrt{2\\log n}\\,s` (``universalthresh=True``) or 0; like R, a lower end of 0 makes the
    geometric bisection stay at 0, so then :math:`\\hat w = 0` whenever :math:`S(1) < 0 < S(0)`.
    The quasi-Cauchy prior uses s = 1.
    """
    pr = _prior_code(prior)
    return _wfromx(_vec(x), _vec(1.0 if pr == "c" else s, "s"), pr, a, universalthresh)


def _wfromx(
    x: np.ndarray, s: np.ndarray, pr: str, a: float, universalthresh: bool, beta: np.ndarray | None = None
) -> float:
    """:func:`wfromx`; ``beta`` = β(x) if already known."""
    prior = "laplace" if pr == "l" else "cauchy"
    if universalthresh:
        tuniv = math.sqrt(2 * math.log(x.size)) * s
        wlo = float(np.max(wfromt(tuniv, s, prior, a)))
    else:
        wlo = 0.0
    if beta is None:
        beta = beta_laplace(x, s, a) if pr == "l" else beta_cauchy(x)
    beta = np.minimum(beta, 1e20)
    buf = np.empty_like(beta)

    def score(w: float) -> float:  # Σ β/(1 + wβ), without temporaries
        np.multiply(beta, w, out=buf)
        np.add(buf, 1.0, out=buf)
        with np.errstate(divide="ignore", invalid="ignore"):  # β = -1 at w = 1: -inf, as in R
            np.divide(beta, buf, out=buf)
        return float(buf.sum())

    whi = 1.0
    if score(1.0) >= 0:
        return 1.0
    if score(wlo) <= 0:
        return wlo
    for _ in range(30):
        wmid = math.sqrt(wlo * whi)
        smid = score(wmid)
        if smid == 0:
            return wmid
        if smid > 0:
            wlo = wmid
        else:
            whi = wmid
    return math.sqrt(wlo * whi)


def negloglik_laplace(xpar: ArrayLike, xx: ArrayLike, ss: ArrayLike, tlo: ArrayLike, thi: ArrayLike) -> float:
    """Marginal negative log-likelihood for the Laplace prior in the parametrisation of :func:`wandafromx`.

    ``xpar = (u, a)``; the weight is :math:`w = w_{lo} + u\\,(w_{hi}-w_{lo})` with
    :math:`w_{lo}=\\max_i w(t^{hi}_i)`, :math:`w_{hi}=\\min_i w(t^{lo}_i)` (:func:`wfromt`), and

    $$ -\\ell(u, a) = -\\sum_i \\log\\big(1 + w\\,\\beta_a(x_i)\\big) . $$
    """
    xpar = _vec(xpar, "xpar")
    parts = _negloglik_parts(
        float(xpar[1]), _vec(xx, "xx"), _vec(ss, "ss"), _vec(tlo, "tlo"), _vec(thi, "thi")
    )
    return _negloglik_from_parts(float(xpar[0]), *parts)


def _negloglik_parts(
    a: float, xx: np.ndarray, ss: np.ndarray, tlo: np.ndarray, thi: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """The parts of :func:`negloglik_laplace` that depend on ``a`` only: (w_lo, w_hi, β)."""
    wlo = float(np.max(wfromt(thi, ss, a=a)))
    whi = float(np.min(wfromt(tlo, ss, a=a)))
    return wlo, whi, beta_laplace(xx, ss, a)


def _negloglik_from_parts(u: float, wlo: float, whi: float, beta: np.ndarray) -> float:
    with np.errstate(invalid="ignore", divide="ignore"):
        loglik = _rsum(_log(1 + (u * (whi - wlo) + wlo) * beta))
    return float(-loglik)


class _LineSearch:
    r"""Moré–Thuente line search (MINPACK-2 ``dcsrch``/``dcstep``) in reverse communication, as used
    by L-BFGS-B: find a step with :math:`f(\alpha)\le f(0)+10^{-3}\alpha f'(0)` and
    :math:`|f'(\alpha)|\le0.9|f'(0)|` (xtol 0.1)."""

    ftol, gtol, xtol, stpmin = 1e-3, 0.9, 0.1, 0.0

    def __init__(self, f: float, g: float, stp: float, stpmax: float) -> None:
        self.stpmax = stpmax
        self.error = stp < self.stpmin or stp > stpmax or g >= 0
        self.brackt = False
        self.stage = 1
        self.finit, self.ginit = f, g
        self.gtest = self.ftol * g
        self.width = stpmax - self.stpmin
        self.width1 = self.width / 0.5
        self.stx, self.fx, self.gx = 0.0, f, g
        self.sty, self.fy, self.gy = 0.0, f, g
        self.stmin, self.stmax = 0.0, stp + stp * 4.0

    def next(self, f: float, g: float, stp: float) -> tuple[str, float]:
        """Given f and f' at ``stp``: ``("FG", new_stp)``, ``("CONV", stp)`` or ``("WARN", stp)``."""
        ftest = self.finit + stp * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0:
            self.stage = 2
        task = "FG"
        if self.brackt and (stp <= self.stmin or stp >= self.stmax):
            task = "WARN"
        if self.brackt and self.stmax - self.stmin <= self.xtol * self.stmax:
            task = "WARN"
        if stp == self.stpmax and f <= ftest and g <= self.gtest:
            task = "WARN"
        if stp == self.stpmin and (f > ftest or g >= self.gtest):
            task = "WARN"
        if f <= ftest and abs(g) <= self.gtol * (-self.ginit):
            task = "CONV"
        if task != "FG":
            return task, stp
        if self.stage == 1 and f <= self.fx and f > ftest:
            # modified function ψ(α) = f(α) − f(0) − ftol·α·f'(0) while the decrease is insufficient
            gt = self.gtest
            st = self._dcstep(
                self.stx,
                self.fx - self.stx * gt,
                self.gx - gt,
                self.sty,
                self.fy - self.sty * gt,
                self.gy - gt,
                stp,
                f - stp * gt,
                g - gt,
            )
            self.stx, fxm, gxm, self.sty, fym, gym, stp = st
            self.fx, self.fy = fxm + self.stx * gt, fym + self.sty * gt
            self.gx, self.gy = gxm + gt, gym + gt
        else:
            st = self._dcstep(self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, f, g)
            self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp = st
        if self.brackt:
            if abs(self.sty - self.stx) >= self.width1 * 0.66:
                stp = self.stx + (self.sty - self.stx) * 0.5
            self.width1 = self.width
            self.width = abs(self.sty - self.stx)
            self.stmin, self.stmax = min(self.stx, self.sty), max(self.stx, self.sty)
        else:
            self.stmin = stp + (stp - self.stx) * 1.1
            self.stmax = stp + (stp - self.stx) * 4.0
        stp = min(max(stp, self.stpmin), self.stpmax)
        if self.brackt and (
            stp <= self.stmin or stp >= self.stmax or self.stmax - self.stmin <= self.xtol * self.stmax
        ):
            stp = self.stx
        return "FG", stp

    def _dcstep(self, stx, fx, dx, sty, fy, dy, stp, fp, dp):  # noqa: ANN001, ANN202
        """Safeguarded cubic/quadratic step and update of the bracketing interval."""
        sgnd = dp * (dx / abs(dx))
        if fp > fx:  # higher value: minimum bracketed
            theta = (fx - fp) * 3.0 / (stp - stx) + dx + dp
            s = max(abs(theta), abs(dx), abs(dp))
            gamm = s * math.sqrt((theta / s) ** 2 - dx / s * (dp / s))
            if stp < stx:
                gamm = -gamm
            r = (gamm - dx + theta) / (gamm - dx + gamm + dp)
            stpc = stx + r * (stp - stx)
            stpq = stx + dx / ((fx - fp) / (stp - stx) + dx) / 2.0 * (stp - stx)
            stpf = stpc if abs(stpc - stx) < abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
            self.brackt = True
        elif sgnd < 0:  # lower value, derivatives of opposite sign: bracketed
            theta = (fx - fp) * 3.0 / (stp - stx) + dx + dp
            s = max(abs(theta), abs(dx), abs(dp))
            gamm = s * math.sqrt((theta / s) ** 2 - dx / s * (dp / s))
            if stp > stx:
                gamm = -gamm
            r = (gamm - dp + theta) / (gamm - dp + gamm + dx)
            stpc = stp + r * (stx - stp)
            stpq = stp + dp / (dp - dx) * (stx - stp)
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            self.brackt = True
        elif abs(dp) < abs(dx):  # lower value, same sign, derivative decreasing
            theta = (fx - fp) * 3.0 / (stp - stx) + dx + dp
            s = max(abs(theta), abs(dx), abs(dp))
            q2 = (theta / s) ** 2 - dx / s * (dp / s)
            gamm = 0.0 if q2 < 0 else s * math.sqrt(q2)
            if stp > stx:
                gamm = -gamm
            r = (gamm - dp + theta) / (gamm + (dx - dp) + gamm)
            if r < 0 and gamm != 0:
                stpc = stp + r * (stx - stp)
            elif stp > stx:
                stpc = self.stmax
            else:
                stpc = self.stmin
            stpq = stp + dp / (dp - dx) * (stx - stp)
            if self.brackt:
                stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
                bound = stp + (sty - stp) * 0.66
                stpf = min(bound, stpf) if stp > stx else max(bound, stpf)
            else:
                stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
                stpf = max(self.stmin, min(self.stmax, stpf))
        else:  # lower value, same sign, derivative not decreasing
            if self.brackt:
                theta = (fp - fy) * 3.0 / (sty - stp) + dy + dp
                s = max(abs(theta), abs(dy), abs(dp))
                gamm = s * math.sqrt((theta / s) ** 2 - dy / s * (dp / s))
                if stp > sty:
                    gamm = -gamm
                r = (gamm - dp + theta) / (gamm - dp + gamm + dy)
                stpf = stp + r * (sty - stp)
            else:
                stpf = self.stmax if stp > stx else self.stmin
        if fp > fx:
            sty, fy, dy = stp, fp, dp
        else:
            if sgnd < 0:
                sty, fy, dy = stx, fx, dx
            stx, fx, dx = stp, fp, dp
        return stx, fx, dx, sty, fy, dy, stpf


def _ddot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ aᵢbᵢ accumulated left to right without fused multiply-add, as the reference BLAS ``ddot``."""
    acc = 0.0
    for u, v in zip(a.tolist(), b.tolist()):
        acc += u * v
    return acc


def _dsum(terms: Iterable[float]) -> float:
    """Left-to-right sum (Python ≥ 3.12's ``sum`` compensates rounding, which R's loops do not)."""
    acc = 0.0
    for v in terms:
        acc += v
    return acc


def _dpofa(a: np.ndarray, off: int, n: int) -> int:
    r"""LINPACK ``dpofa``: Cholesky :math:`A=R^\top R` in place on the upper triangle of the n×n block
    of ``a`` starting at 1-based (off+1, off+1). Returns 0, or the order of the failing minor."""
    for j in range(1, n + 1):
        s = 0.0
        for k in range(1, j):
            t = a[off + k, off + j] - _dsum(a[off + i, off + k] * a[off + i, off + j] for i in range(1, k))
            t /= a[off + k, off + k]
            a[off + k, off + j] = t
            s += t * t
        s = a[off + j, off + j] - s
        if s <= 0:
            return j
        a[off + j, off + j] = math.sqrt(s)
    return 0


def _dtrsl_upper(t: np.ndarray, n: int, b: np.ndarray, trans: bool) -> int:
    r"""LINPACK ``dtrsl`` for upper-triangular T (1-based, n×n): solve :math:`T^\top x=b` (job 11) or
    :math:`Tx=b` (job 01) in place on b[1..n]. Returns 0, or the index of a zero diagonal."""
    for i in range(1, n + 1):
        if t[i, i] == 0:
            return i
    if trans:
        b[1] /= t[1, 1]
        for j in range(2, n + 1):
            b[j] = (b[j] - _dsum(t[k, j] * b[k] for k in range(1, j))) / t[j, j]
    else:
        b[n] /= t[n, n]
        for j in range(n - 1, 0, -1):
            temp = -b[j + 1]
            for k in range(1, j + 1):
                b[k] += temp * t[k, j + 1]
            b[j] /= t[j, j]
    return 0


class _Lbfgsb:
    r"""L-BFGS-B version 2.3 (Zhu, Byrd, Lu & Nocedal, ACM TOMS 778, 1997) as R's ``optim`` runs it,
    for problems whose variables all have finite lower and upper bounds.

    Each iteration finds the generalized Cauchy point of the model
    :math:`g^\top s+\tfrac12 s^\top Bs`, :math:`B=\theta I-WMW^\top` (m stored pairs, compact form)
    along the projected gradient path; takes the direct primal subspace step for the variables
    still free there, shortened along its direction to stay in the box (2.3's rule; 3.0 projects);
    then a Moré–Thuente line search from step 1 (:class:`_LineSearch`). The pair (s, y) is skipped
    when :math:`s^\top y\le\epsilon(-g^\top s)`; a failed factorisation or line search drops the
    memory. Stops when :math:`(f_k-f_{k+1})/\max(|f_k|,|f_{k+1}|,1)\le\text{factr}\cdot\epsilon`, the
    projected gradient is ≤ pgtol, after ``maxit`` iterations, or when a line search fails with no
    memory left. The matrices and their updates follow the 2.3 routines (``cauchy``, ``formk``,
    ``subsm``, ``matupd``, ``formt``, ``bmv``) step by step, 1-based, because R's answers depend on
    them — for instance ``formk`` updates its inner products incrementally, so they go stale while
    the free set is empty, and that changes the subspace step afterwards.
    """

    def __init__(self, n: int, m: int, lower: np.ndarray, upper: np.ndarray) -> None:
        self.n, self.m = n, m
        self.lo = np.concatenate([[0.0], lower])
        self.up = np.concatenate([[0.0], upper])
        self.ws = np.zeros((n + 1, m + 1))
        self.wy = np.zeros((n + 1, m + 1))
        self.sy = np.zeros((m + 1, m + 1))
        self.ss = np.zeros((m + 1, m + 1))
        self.wt = np.zeros((m + 1, m + 1))
        self.wn = np.zeros((2 * m + 1, 2 * m + 1))
        self.wn1 = np.zeros((2 * m + 1, 2 * m + 1))
        self.iwhere = np.zeros(n + 1, dtype=np.int64)
        self.indx = np.zeros(n + 1, dtype=np.int64)
        self.indx2 = np.zeros(n + 1, dtype=np.int64)
        self.nfree = n
        self.refresh()
        self.itail = 0

    def refresh(self) -> None:
        self.col, self.head, self.theta, self.iupdat, self.updatd = 0, 1, 1.0, 0, False

    def nxt(self, p: int) -> int:
        return p % self.m + 1

    def bmv(self, v: np.ndarray) -> np.ndarray | None:
        """p = M v for the 2col-vector v (1-based), M the middle matrix; None if singular."""
        col, sy = self.col, self.sy
        p = np.zeros(2 * self.m + 1)
        if col == 0:
            return p
        p[col + 1] = v[col + 1]
        for i in range(2, col + 1):
            p[col + i] = v[col + i] + _dsum(sy[i, k] * v[k] / sy[k, k] for k in range(1, i))
        sub = p[col:]  # view: sub[1..col] = p[col+1..2col]
        if _dtrsl_upper(self.wt, col, sub, trans=True):
            return None
        for i in range(1, col + 1):
            p[i] = v[i] / math.sqrt(sy[i, i])
        if _dtrsl_upper(self.wt, col, sub, trans=False):
            return None
        for i in range(1, col + 1):
            p[i] = -p[i] / math.sqrt(sy[i, i])
        for i in range(1, col + 1):
            p[i] += _dsum(sy[k, i] * p[col + k] / sy[i, i] for k in range(i + 1, col + 1))
        return p

    def cauchy(self, x: np.ndarray, g: np.ndarray, sbgnrm: float) -> tuple[np.ndarray, np.ndarray] | None:
        """Generalized Cauchy point x^c and c = Wᵀ(x^c − x); updates iwhere. None if bmv fails."""
        n, m, col, theta, lo, up = self.n, self.m, self.col, self.theta, self.lo, self.up
        iwhere, ws, wy = self.iwhere, self.ws, self.wy
        xcp = x.copy()
        c = np.zeros(2 * m + 1)
        if sbgnrm <= 0:
            return xcp, c
        col2 = 2 * col
        p = np.zeros(2 * m + 1)
        d = np.zeros(n + 1)
        t = np.zeros(n + 1)
        iorder = np.zeros(n + 1, dtype=np.int64)
        bnded, nfree, nbreak, ibkmin, bkmin, f1 = True, n + 1, 0, 0, 0.0, 0.0
        for i in range(1, n + 1):
            neggi = -g[i]
            tl = x[i] - lo[i]
            tu = up[i] - x[i]
            iwhere[i] = 0
            if tl <= 0:
                if neggi <= 0:
                    iwhere[i] = 1
            elif tu <= 0:
                if neggi >= 0:
                    iwhere[i] = 2
            elif abs(neggi) <= 0:
                iwhere[i] = -3
            pointr = self.head
            if iwhere[i] != 0:
                d[i] = 0.0
                continue
            d[i] = neggi
            f1 -= neggi * neggi
            for j in range(1, col + 1):
                p[j] += wy[i, pointr] * neggi
                p[col + j] += ws[i, pointr] * neggi
                pointr = self.nxt(pointr)
            if neggi < 0 or neggi > 0:
                nbreak += 1
                iorder[nbreak] = i
                t[nbreak] = tl / -neggi if neggi < 0 else tu / neggi
                if nbreak == 1 or t[nbreak] < bkmin:
                    bkmin, ibkmin = t[nbreak], nbreak
            else:
                nfree -= 1
                iorder[nfree] = i
        if theta != 1:
            p[col + 1 : col2 + 1] *= theta
        if nbreak == 0 and nfree == n + 1:
            return xcp, c
        f2 = -theta * f1
        f2_org = f2
        if col > 0:
            v = self.bmv(p)
            if v is None:
                return None
            f2 -= _ddot(v[1 : col2 + 1], p[1 : col2 + 1])
        dtm = -f1 / f2
        tsum = 0.0
        if nbreak > 0:
            nleft, it, tj = nbreak, 1, 0.0
            while True:
                tj0 = tj
                if it == 1:
                    tj, ibp = bkmin, iorder[ibkmin]
                else:
                    if it == 2 and ibkmin != nbreak:
                        t[ibkmin], iorder[ibkmin] = t[nbreak], iorder[nbreak]
                    _hpsolb(nleft, t, iorder, it - 2)
                    tj, ibp = t[nleft], iorder[nleft]
                dt = tj - tj0
                if dtm < dt:
                    break
                tsum += dt
                nleft -= 1
                it += 1
                dibp = d[ibp]
                d[ibp] = 0.0
                if dibp > 0:
                    zibp = up[ibp] - x[ibp]
                    xcp[ibp] = up[ibp]
                    iwhere[ibp] = 2
                else:
                    zibp = lo[ibp] - x[ibp]
                    xcp[ibp] = lo[ibp]
                    iwhere[ibp] = 1
                if nleft == 0 and nbreak == n:  # all variables fixed: x^c is a corner
                    if col > 0:
                        c[1 : col2 + 1] += dt * p[1 : col2 + 1]
                    return xcp, c
                dibp2 = dibp * dibp
                f1 += dt * f2 + dibp2 - theta * dibp * zibp
                f2 -= theta * dibp2
                if col > 0:
                    c[1 : col2 + 1] += dt * p[1 : col2 + 1]
                    wbp = np.zeros(2 * m + 1)
                    pointr = self.head
                    for j in range(1, col + 1):
                        wbp[j] = wy[ibp, pointr]
                        wbp[col + j] = theta * ws[ibp, pointr]
                        pointr = self.nxt(pointr)
                    v = self.bmv(wbp)
                    if v is None:
                        return None
                    sl = slice(1, col2 + 1)
                    wmc, wmp, wmw = _ddot(c[sl], v[sl]), _ddot(p[sl], v[sl]), _ddot(wbp[sl], v[sl])
                    p[sl] -= dibp * wbp[sl]
                    f1 += dibp * wmc
                    f2 += 2.0 * dibp * wmp - dibp2 * wmw
                f2 = max(f2, _DBL_EPSILON * f2_org)
                if nleft > 0:
                    dtm = -f1 / f2
                    continue
                dtm = 0.0 if bnded else -f1 / f2
                break
        dtm = max(dtm, 0.0)
        tsum += dtm
        xcp[1:] += tsum * d[1:]
        if col > 0:
            c[1 : col2 + 1] += dtm * p[1 : col2 + 1]
        return xcp, c

    def freev(self, it: int) -> tuple[int, int, bool]:
        """Free/active sets at the Cauchy point; entering (indx2[1..nenter]) and leaving
        (indx2[ileave..n]) variables since the last iteration."""
        n, iwhere, indx, indx2 = self.n, self.iwhere, self.indx, self.indx2
        nenter, ileave = 0, n + 1
        if it > 0:
            for i in range(1, self.nfree + 1):
                k = indx[i]
                if iwhere[k] > 0:
                    ileave -= 1
                    indx2[ileave] = k
            for i in range(self.nfree + 1, n + 1):
                k = indx[i]
                if iwhere[k] <= 0:
                    nenter += 1
                    indx2[nenter] = k
        wrk = ileave < n + 1 or nenter > 0 or self.updatd
        nfree, iact = 0, n + 1
        for i in range(1, n + 1):
            if iwhere[i] <= 0:
                nfree += 1
                indx[nfree] = i
            else:
                iact -= 1
                indx[iact] = i
        self.nfree = nfree
        return nenter, ileave, wrk

    def formk(self, nenter: int, ileave: int) -> int:
        """The LELᵀ factorisation of K (2.3's ``formk``), with its incremental inner products wn1."""
        n, m, col, head, theta = self.n, self.m, self.col, self.head, self.theta
        ws, wy, wn, wn1, sy, ind, indx2 = self.ws, self.wy, self.wn, self.wn1, self.sy, self.indx, self.indx2
        nsub = self.nfree
        if self.updatd:
            if self.iupdat > m:  # shift old part of wn1
                for jy in range(1, m):
                    js = m + jy
                    wn1[jy:m, jy] = wn1[jy + 1 : m + 1, jy + 1].copy()
                    wn1[js : 2 * m, js] = wn1[js + 1 : 2 * m + 1, js + 1].copy()
                    wn1[m + 1 : 2 * m, jy] = wn1[m + 2 : 2 * m + 1, jy + 1].copy()
            iy, is_ = col, m + col
            ipntr = head + col - 1
            if ipntr > m:
                ipntr -= m
            jpntr = head
            for jy in range(1, col + 1):
                js = m + jy
                temp1 = temp2 = temp3 = 0.0
                for k in range(1, nsub + 1):
                    k1 = ind[k]
                    temp1 += wy[k1, ipntr] * wy[k1, jpntr]
                for k in range(nsub + 1, n + 1):
                    k1 = ind[k]
                    temp2 += ws[k1, ipntr] * ws[k1, jpntr]
                    temp3 += ws[k1, ipntr] * wy[k1, jpntr]
                wn1[iy, jy] = temp1
                wn1[is_, js] = temp2
                wn1[is_, jy] = temp3
                jpntr = self.nxt(jpntr)
            jy = col
            jpntr = head + col - 1
            if jpntr > m:
                jpntr -= m
            ipntr = head
            for i in range(1, col + 1):
                is_ = m + i
                temp3 = 0.0
                for k in range(1, nsub + 1):
                    k1 = ind[k]
                    temp3 += ws[k1, ipntr] * wy[k1, jpntr]
                ipntr = self.nxt(ipntr)
                wn1[is_, jy] = temp3
            upcl = col - 1
        else:
            upcl = col
        ipntr = head
        for iy in range(1, upcl + 1):
            is_ = m + iy
            jpntr = head
            for jy in range(1, iy + 1):
                js = m + jy
                temp1 = temp2 = temp3 = temp4 = 0.0
                for k in range(1, nenter + 1):
                    k1 = indx2[k]
                    temp1 += wy[k1, ipntr] * wy[k1, jpntr]
                    temp2 += ws[k1, ipntr] * ws[k1, jpntr]
                for k in range(ileave, n + 1):
                    k1 = indx2[k]
                    temp3 += wy[k1, ipntr] * wy[k1, jpntr]
                    temp4 += ws[k1, ipntr] * ws[k1, jpntr]
                wn1[iy, jy] = wn1[iy, jy] + temp1 - temp3
                wn1[is_, js] = wn1[is_, js] - temp2 + temp4
                jpntr = self.nxt(jpntr)
            ipntr = self.nxt(ipntr)
        ipntr = head
        for is_ in range(m + 1, m + upcl + 1):
            jpntr = head
            for jy in range(1, upcl + 1):
                temp1 = temp3 = 0.0
                for k in range(1, nenter + 1):
                    k1 = indx2[k]
                    temp1 += ws[k1, ipntr] * wy[k1, jpntr]
                for k in range(ileave, n + 1):
                    k1 = indx2[k]
                    temp3 += ws[k1, ipntr] * wy[k1, jpntr]
                if is_ <= jy + m:
                    wn1[is_, jy] += temp1 - temp3
                else:
                    wn1[is_, jy] += -temp1 + temp3
                jpntr = self.nxt(jpntr)
            ipntr = self.nxt(ipntr)
        for iy in range(1, col + 1):
            is_, is1 = col + iy, m + iy
            for jy in range(1, iy + 1):
                js, js1 = col + jy, m + jy
                wn[jy, iy] = wn1[iy, jy] / theta
                wn[js, is_] = wn1[is1, js1] * theta
            for jy in range(1, iy):
                wn[jy, is_] = -wn1[is1, jy]
            for jy in range(iy, col + 1):
                wn[jy, is_] = wn1[is1, jy]
            wn[iy, iy] += sy[iy, iy]
        if _dpofa(wn, 0, col):
            return -1
        col2 = 2 * col
        for js in range(col + 1, col2 + 1):
            colvec = wn[:, js].copy()
            _dtrsl_upper(wn, col, colvec, trans=True)
            wn[1 : col + 1, js] = colvec[1 : col + 1]
        for is_ in range(col + 1, col2 + 1):
            for js in range(is_, col2 + 1):
                wn[is_, js] += _ddot(wn[1 : col + 1, is_], wn[1 : col + 1, js])
        if _dpofa(wn, col, col):
            return -2
        return 0

    def cmprlb(self, x: np.ndarray, g: np.ndarray, z: np.ndarray, c: np.ndarray) -> np.ndarray | None:
        """r = −Zᵀ(B(x^c − x) + g) over the free variables (1-based r[1..nfree])."""
        col, theta, ind = self.col, self.theta, self.indx
        r = np.zeros(self.n + 1)
        for i in range(1, self.nfree + 1):
            k = ind[i]
            r[i] = -theta * (z[k] - x[k]) - g[k]
        wa = self.bmv(c)
        if wa is None:
            return None
        pointr = self.head
        for j in range(1, col + 1):
            a1, a2 = wa[j], theta * wa[col + j]
            for i in range(1, self.nfree + 1):
                k = ind[i]
                r[i] += self.wy[k, pointr] * a1 + self.ws[k, pointr] * a2
            pointr = self.nxt(pointr)
        return r

    def subsm(self, z: np.ndarray, d: np.ndarray) -> bool:
        """Subspace Newton step d = (ZᵀBZ)⁻¹r from x^c = z, backtracked into the box; z updated."""
        col, theta, ind, ns, lo, up = self.col, self.theta, self.indx, self.nfree, self.lo, self.up
        if ns <= 0:
            return True
        wv = np.zeros(2 * self.m + 1)
        pointr = self.head
        for i in range(1, col + 1):
            temp1 = temp2 = 0.0
            for j in range(1, ns + 1):
                k = ind[j]
                temp1 += self.wy[k, pointr] * d[j]
                temp2 += self.ws[k, pointr] * d[j]
            wv[i], wv[col + i] = temp1, theta * temp2
            pointr = self.nxt(pointr)
        col2 = 2 * col
        if _dtrsl_upper(self.wn, col2, wv, trans=True):
            return False
        wv[1 : col + 1] = -wv[1 : col + 1]
        if _dtrsl_upper(self.wn, col2, wv, trans=False):
            return False
        pointr = self.head
        for jy in range(1, col + 1):
            js = col + jy
            for i in range(1, ns + 1):
                k = ind[i]
                d[i] += self.wy[k, pointr] * wv[jy] / theta + self.ws[k, pointr] * wv[js]
            pointr = self.nxt(pointr)
        d[1 : ns + 1] /= theta
        alpha, temp1, ibd = 1.0, 1.0, 0
        for i in range(1, ns + 1):
            k, dk = ind[i], d[i]
            if dk < 0:
                temp2 = lo[k] - z[k]
                if temp2 >= 0:
                    temp1 = 0.0
                elif dk * alpha < temp2:
                    temp1 = temp2 / dk
            elif dk > 0:
                temp2 = up[k] - z[k]
                if temp2 <= 0:
                    temp1 = 0.0
                elif dk * alpha > temp2:
                    temp1 = temp2 / dk
            if temp1 < alpha:
                alpha, ibd = temp1, i
        if alpha < 1:
            dk, k = d[ibd], ind[ibd]
            if dk > 0:
                z[k] = up[k]
                d[ibd] = 0.0
            elif dk < 0:
                z[k] = lo[k]
                d[ibd] = 0.0
        for i in range(1, ns + 1):
            z[ind[i]] += alpha * d[i]
        return True

    def matupd(self, d: np.ndarray, r: np.ndarray, rr: float, dr: float, stp: float, dtd: float) -> None:
        m = self.m
        if self.iupdat <= m:
            self.col = self.iupdat
            self.itail = (self.head + self.iupdat - 2) % m + 1
        else:
            self.itail = self.itail % m + 1
            self.head = self.head % m + 1
        col, ws, wy, sy, ss = self.col, self.ws, self.wy, self.sy, self.ss
        ws[1:, self.itail] = d[1:]
        wy[1:, self.itail] = r[1:]
        self.theta = rr / dr
        if self.iupdat > m:
            for j in range(1, col):
                ss[1 : j + 1, j] = ss[2 : j + 2, j + 1].copy()
                sy[j:col, j] = sy[j + 1 : col + 1, j + 1].copy()
        pointr = self.head
        for j in range(1, col):
            sy[col, j] = _ddot(d[1:], wy[1:, pointr])
            ss[j, col] = _ddot(ws[1:, pointr], d[1:])
            pointr = self.nxt(pointr)
        ss[col, col] = dtd if stp == 1 else stp * stp * dtd
        sy[col, col] = dr

    def formt(self) -> int:
        col, theta, wt, sy, ss = self.col, self.theta, self.wt, self.sy, self.ss
        for j in range(1, col + 1):
            wt[1, j] = theta * ss[1, j]
        for i in range(2, col + 1):
            for j in range(i, col + 1):
                ddum = _dsum(sy[i, k] * sy[j, k] / sy[k, k] for k in range(1, i))
                wt[i, j] = ddum + theta * ss[i, j]
        return -3 if _dpofa(wt, 0, col) else 0


def _hpsolb(n: int, t: np.ndarray, iorder: np.ndarray, iheap: int) -> None:
    """Heap step of L-BFGS-B's breakpoint search: least of t[1..n] moved to t[n], the rest a heap."""
    if iheap == 0:
        for k in range(2, n + 1):
            ddum, indxin = t[k], iorder[k]
            i = k
            while i > 1:
                j = i // 2
                if ddum < t[j]:
                    t[i], iorder[i] = t[j], iorder[j]
                    i = j
                else:
                    break
            t[i], iorder[i] = ddum, indxin
    if n > 1:
        i = 1
        out, indxou = t[1], iorder[1]
        ddum, indxin = t[n], iorder[n]
        while True:
            j = i + i
            if j <= n - 1:
                if t[j + 1] < t[j]:
                    j += 1
                if t[j] < ddum:
                    t[i], iorder[i] = t[j], iorder[j]
                    i = j
                    continue
            break
        t[i], iorder[i] = ddum, indxin
        t[n], iorder[n] = out, indxou


def _lbfgsb_r(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    m: int = 5,
    factr: float = 1e7,
    pgtol: float = 0.0,
    maxit: int = 100,
) -> np.ndarray:
    """Minimise f over the box [lower, upper] with :class:`_Lbfgsb`; returns R's ``optim(...)$par``."""
    n = x0.size
    eps = _DBL_EPSILON
    tol = factr * eps
    opt = _Lbfgsb(n, m, lower, upper)
    x = np.concatenate([[0.0], np.minimum(np.maximum(x0, lower), upper)])

    def evaluate(x1: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = fg(x1[1:].copy())
        return f, np.concatenate([[0.0], g])

    def projgr(x1: np.ndarray, g1: np.ndarray) -> float:
        gi = np.where(g1 < 0, np.maximum(g1, x1 - opt.up), np.minimum(g1, x1 - opt.lo))
        return float(np.max(np.abs(gi[1:])))

    f, g = evaluate(x)
    sbgnrm = projgr(x, g)
    if sbgnrm <= pgtol:
        return x[1:]
    it = 0
    while True:
        cp = opt.cauchy(x, g, sbgnrm)
        if cp is None:
            opt.refresh()
            continue
        z, c = cp
        nenter, ileave, wrk = opt.freev(it)
        if opt.nfree > 0 and opt.col > 0:
            info = opt.formk(nenter, ileave) if wrk else 0
            r = opt.cmprlb(x, g, z, c) if info == 0 else None
            if r is None or not opt.subsm(z, r):
                opt.refresh()
                continue
        # Line search along d = z − x from step 1 (every variable is bounded: R's "boxed").
        d = z - x
        dtd = _ddot(d[1:], d[1:])
        stpmx = 1.0
        if it > 0:
            stpmx = 1e10
            for i in range(1, n + 1):
                a1 = d[i]
                if a1 < 0:
                    a2 = opt.lo[i] - x[i]
                    if a2 >= 0:
                        stpmx = 0.0
                    elif a1 * stpmx < a2:
                        stpmx = a2 / a1
                elif a1 > 0:
                    a2 = opt.up[i] - x[i]
                    if a2 <= 0:
                        stpmx = 0.0
                    elif a1 * stpmx > a2:
                        stpmx = a2 / a1
        stp = 1.0
        t, rg, fold = x.copy(), g.copy(), f
        gd = gdold = _ddot(g[1:], d[1:])
        failed = gd >= 0
        if not failed:
            ls = _LineSearch(f, gd, stp, stpmx)
            failed = ls.error
        ifun = 0
        while not failed:
            if ifun > 0:
                task, stp = ls.next(f, gd, stp)
                if task != "FG":
                    break
            if ifun >= 20:  # R evaluates at most 20 trial points per line search
                failed = True
                break
            ifun += 1
            x = z.copy() if stp == 1 else np.concatenate([[0.0], stp * d[1:] + t[1:]])
            f, g = evaluate(x)
            gd = _ddot(g[1:], d[1:])
        if failed:
            x, g, f = t, rg, fold
            if opt.col == 0:
                return x[1:]  # R: "ERROR: ABNORMAL_TERMINATION_IN_LNSRCH"; optim returns this point
            opt.refresh()
            continue
        it += 1
        sbgnrm = projgr(x, g)
        if it > maxit or sbgnrm <= pgtol:
            return x[1:]
        if fold - f <= tol * max(abs(fold), abs(f), 1.0):
            return x[1:]
        y = g - rg
        rr = _ddot(y[1:], y[1:])
        if stp == 1:
            dr, ddum = gd - gdold, -gdold
        else:
            dr, ddum = (gd - gdold) * stp, -gdold * stp
            d = d * stp
        if dr <= eps * ddum:
            opt.updatd = False
            continue
        opt.updatd = True
        opt.iupdat += 1
        opt.matupd(d, y, rr, dr, stp, dtd)
        if opt.formt() != 0:
            opt.refresh()


def _r_optim_lbfgsb(
    fn: Callable[[np.ndarray], float],
    par: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    ndeps: float = 1e-3,
) -> np.ndarray:
    """R's ``optim(par, fn, method="L-BFGS-B", lower, upper)`` with default controls.

    The gradient is R's central difference with step ``ndeps``, shortened at the bounds (optim.c
    ``fmingr``): :math:`g_i=(f(p+h^+e_i)-f(p-h^-e_i))/(h^++h^-)`. Like R, a non-finite ``fn`` value
    or difference quotient stops with an error (here :class:`ValueError`).
    """

    def fg(p: np.ndarray) -> tuple[float, np.ndarray]:
        f = fn(p)
        if not math.isfinite(f):
            raise ValueError("a: cannot estimate (w, a): L-BFGS-B needs finite values of 'fn' (as in R)")
        g = np.empty_like(p)
        for i in range(p.size):
            q = p.copy()
            h_up = h_down = ndeps
            q[i] = p[i] + ndeps
            if q[i] > upper[i]:
                q[i] = upper[i]
                h_up = q[i] - p[i]
            f1 = fn(q)
            q[i] = p[i] - ndeps
            if q[i] < lower[i]:
                q[i] = lower[i]
                h_down = p[i] - q[i]
            f2 = fn(q)
            g[i] = (f1 - f2) / (h_up + h_down)
            if not math.isfinite(g[i]):
                raise ValueError(f"a: cannot estimate (w, a): non-finite finite-difference value [{i + 1}]")
        return f, g

    return _lbfgsb_r(fg, np.asarray(par, dtype=np.float64), lower, upper)


def wandafromx(x: ArrayLike, s: ArrayLike = 1.0, universalthresh: bool = True) -> dict[str, float]:
    """Joint marginal maximum likelihood :math:`(\\hat w, \\hat a)` for the Laplace prior.

    Minimises :func:`negloglik_laplace` over :math:`u\\in[0,1]`, :math:`a\\in[0.04, 3]` from (0.5, 0.5)
    with R's L-BFGS-B (finite-difference gradient, step 1e-3), the threshold range being
    :math:`[0, \\sqrt{2\\log n}\\,s]` (``universalthresh=True``) or :math:`[0,\\infty)`; then
    :math:`\\hat w = w_{lo} + \\hat u\\,(w_{hi} - w_{lo})`.

    Returns:
        ``{"w": w, "a": a}``.
    Raises:
        ValueError: where R's optim stops (non-finite likelihood).
    """
    x = _vec(x)
    s = _vec(s, "s")
    thi = math.sqrt(2 * math.log(x.size)) * s if universalthresh else np.array([np.inf])
    tlo = np.zeros(s.size)
    lower = np.array([0.0, 0.04])
    upper = np.array([1.0, 3.0])
    cache: dict[float, tuple[float, float, np.ndarray]] = {}

    def fn(p: np.ndarray) -> float:
        # The finite differences in u reuse β and the w range at the same a (3 of 5 evaluations).
        a = float(p[1])
        if a not in cache:
            if len(cache) > 8:
                cache.clear()
            cache[a] = _negloglik_parts(a, x, s, tlo, thi)
        return _negloglik_from_parts(float(p[0]), *cache[a])

    uu = _r_optim_lbfgsb(fn, np.array([0.5, 0.5]), lower, upper)
    a = float(uu[1])
    wlo = float(np.max(wfromt(thi, s, a=a)))
    whi = float(np.min(wfromt(tlo, s, a=a)))
    return {"w": float(uu[0] * (whi - wlo) + wlo), "a": a}


def tfromx(
    x: ArrayLike,
    s: ArrayLike = 1.0,
    prior: str = "laplace",
    bayesfac: bool = False,
    a: float | None = 0.5,
    universalthresh: bool = True,
) -> np.ndarray:
    """Threshold estimated from data: :func:`wfromx` (or :func:`wandafromx` when ``a`` is None and the
    prior is Laplace), then :func:`tfromw`. As in R, ``universalthresh`` reaches only
    :func:`wandafromx`; with a fixed ``a`` the weight always uses the universal lower bound.
    """
    pr = _prior_code(prior)
    if pr == "c":
        s = 1.0
    if pr == "l" and _is_na(a):
        pp = wandafromx(x, s, universalthresh)
        w, a = pp["w"], pp["a"]
    else:
        w = wfromx(x, s, prior=prior, a=_fixed_a(a, pr))
    return tfromw(w, s, prior=prior, bayesfac=bayesfac, a=_fixed_a(a, pr))


def _fixed_a(a: float | None, pr: str) -> float:
    if pr == "c":
        return 0.5 if _is_na(a) else float(a)  # ignored by the Cauchy prior
    a = float(a)
    if not (a > 0 and math.isfinite(a)):
        raise ValueError(f"a: the Laplace scale must be a finite number > 0 (or None to estimate); got {a!r}")
    return a


def isotone(x: ArrayLike, wt: ArrayLike | None = None, increasing: bool = False) -> np.ndarray:
    """Weighted least-squares monotone fit by pool-adjacent-violators (R's ``isotone``):

    $$ \\hat z = \\arg\\min_{z\\ \\mathrm{monotone}} \\sum_i wt_i\\,(x_i - z_i)^2, $$

    decreasing unless ``increasing=True``. Each pass pools every maximal run between a local
    maximum and the next local minimum into its weighted mean.
    """
    x = _vec(x).copy()
    nn = x.size
    if nn == 1:
        return x
    wt = np.ones(nn) if wt is None else np.resize(_vec(wt, "wt"), nn).copy()
    if not increasing:
        x = -x
    ip = np.arange(nn)
    dx = np.diff(x)
    while x.size > 1 and dx.min() < 0:
        nx = x.size
        down = np.append(dx <= 0, False) & np.insert(dx > 0, 0, True)
        up = np.append(dx > 0, True) & np.insert(dx <= 0, 0, False)
        jmax = np.flatnonzero(down)
        jmin = np.flatnonzero(up)
        keep = np.ones(nx, dtype=bool)
        for j0, j1 in zip(jmax, jmin):
            ind = slice(j0, j1 + 1)
            wtn = wt[ind].sum()
            x[j0] = (wt[ind] * x[ind]).sum() / wtn
            wt[j0] = wtn
            keep[j0 + 1 : j1 + 1] = False
        x, wt, ip = x[keep], wt[keep], ip[keep]
        dx = np.diff(x)
    jj = np.zeros(nn, dtype=np.int64)
    jj[ip] = 1
    z = x[np.cumsum(jj) - 1]
    return z if increasing else -z


def zetafromx(
    xd: ArrayLike, cs: ArrayLike, pilo: float | None = None, prior: str = "laplace", a: float = 0.5
) -> dict[str, Any]:
    """Marginal maximum likelihood :math:`\\zeta` for weights :math:`w_i=\\mathrm{median}(p_{lo},
    \\zeta c_i, 1)` (noise sd 1), as in R's ``zetafromx``.

    The log-likelihood :math:`\\sum_i\\log(1+c_i\\beta_i\\,\\min(\\max(\\zeta, p_{lo}/c_i), 1/c_i))` is
    piecewise smooth with kinks at :math:`p_{lo}/c_i` and :math:`1/c_i`; local minima are found among
    the kinks, each local maximum between two of them by 10 bisection steps, and the largest wins (the
    smaller ζ on an exact tie). ``pilo=None`` uses the weight of the universal threshold.

    Returns:
        ``{"zeta": ζ, "w": w, "cs": cs, "pilo": p_lo}``.
    """
    pr = _prior_code(prior)
    xd = _vec(xd, "xd")
    cs = _vec(cs, "cs")
    if _is_na(pilo):
        pilo = float(wfromt(math.sqrt(2 * math.log(xd.size)), prior=prior, a=a)[0])
    beta = beta_laplace(xd, a=a) if pr == "l" else beta_cauchy(xd)
    zs1 = pilo / cs
    zs2 = 1 / cs
    zj = np.unique(np.concatenate([zs1, zs2]))
    cb = cs * beta
    mz = zj.size
    zlmax: list[float] = []
    lmin = np.zeros(mz, dtype=bool)

    def score(ze: float, sel: np.ndarray) -> float:
        c = cb[sel]
        return float(np.sum(c / (1 + ze * c)))

    # R's `for (j in 2:(mz - 1))` runs downwards when mz < 3; copy that.
    inner = range(2, mz) if mz >= 3 else ([2, 1] if mz == 2 else [])
    for j in inner:
        ze = zj[j - 1]
        if score(ze, (ze > zs1) & (ze <= zs2)) <= 0:
            lmin[j - 1] = score(ze, (ze >= zs1) & (ze < zs2)) >= 0
    if score(zj[0], zj[0] == zs1) > 0:
        lmin[0] = True
    else:
        zlmax = [float(zj[0])]
    if score(zj[-1], zj[-1] == zs2) < 0:
        lmin[-1] = True
    else:
        zlmax = [float(zj[-1])]
    zlmin = zj[lmin]
    for j in range(1, zlmin.size):
        zlo, zhi = zlmin[j - 1], zlmin[j]
        ze = (zlo + zhi) / 2
        zstep = (zhi - zlo) / 2
        for _ in range(10):
            likd = score(ze, (ze >= zs1) & (ze <= zs2))
            zstep = zstep / 2
            ze = ze + zstep * np.sign(likd)
        zlmax.append(float(ze))
    zm = np.array([np.sum(_log(1 + cb * np.maximum(zs1, np.minimum(z, zs2)))) for z in zlmax])
    zeta = float(np.min(np.asarray(zlmax)[zm == zm.max()]))
    w = np.minimum(1.0, np.maximum(zeta * cs, pilo))
    return {"zeta": zeta, "w": w, "cs": cs, "pilo": float(pilo)}


def wmonfromx(
    xd: ArrayLike, prior: str = "laplace", a: float = 0.5, tol: float = 1e-8, maxits: int = 20
) -> np.ndarray:
    """Monotone (decreasing) marginal maximum likelihood weights :math:`w_1\\ge w_2\\ge\\dots`
    (noise sd 1), by iterated weighted isotone regression: with :math:`\\alpha_i=w_i+1/\\beta_i`,

    $$ w \\leftarrow \\min\\big(1, \\max\\big(w_{min},\\ \\mathrm{isotone}(w+\\alpha,\\ \\alpha^{-2})\\big)\\big), $$

    :math:`w_{min}` the weight of the universal threshold, until the largest change is below ``tol``
    (a :class:`RuntimeWarning` after ``maxits`` passes, as R warns).
    """
    pr = _prior_code(prior)
    xd = _vec(xd, "xd")
    wmin = float(wfromt(math.sqrt(2 * math.log(xd.size)), prior=prior, a=a)[0])
    beta = beta_laplace(xd, a=a) if pr == "l" else beta_cauchy(xd)
    w = np.ones(beta.size)
    for _ in range(int(maxits)):
        with np.errstate(divide="ignore"):
            aa = w + 1 / beta
        ps = w + aa
        ww = 1 / aa**2
        wnew = np.minimum(1.0, np.maximum(wmin, isotone(ps, ww, increasing=False)))
        diff = wnew - w
        zinc = max(abs(diff.min()), abs(diff.max()))
        w = wnew
        if zinc < tol:
            return w
    warnings.warn("wmonfromx: more iterations required to achieve convergence", RuntimeWarning, stacklevel=2)
    return w


# ----------------------------------------------------------------------------------------------
# The main entry point
# ----------------------------------------------------------------------------------------------

_RULES = ("median", "mean", "soft", "hard", "none")


@dataclass(frozen=True, eq=False)
class EbayesThreshResult(Mapping):
    """What ``ebayesthresh(..., verbose=True)`` returns: R's list, as attributes and as a mapping.

    ``result["threshold.sdevscale"]`` and ``result.threshold_sdevscale`` are the same value. As in R,
    the mapping omits ``a`` for the Cauchy prior and ``muhat`` for ``threshrule="none"`` (the
    attributes are then None).

    Attributes:
        muhat: the estimate of μ, shape of ``x`` (None for ``threshrule="none"``).
        x: the data on the sd scale (x / mean(sdev) when rescaled, as R returns it).
        threshold_sdevscale: threshold on the sd scale (scalar, or a vector for vector ``sdev``).
        threshold_origscale: threshold on the original scale.
        prior, w, a, bayesfac, sdev (after MAD estimation), threshrule.
    """

    muhat: np.ndarray | None
    x: np.ndarray
    threshold_sdevscale: float | np.ndarray
    threshold_origscale: float | np.ndarray
    prior: str
    w: float
    a: float | None
    bayesfac: bool
    sdev: float | np.ndarray
    threshrule: str

    _R_NAMES = (
        "muhat",
        "x",
        "threshold.sdevscale",
        "threshold.origscale",
        "prior",
        "w",
        "a",
        "bayesfac",
        "sdev",
        "threshrule",
    )

    def _names(self) -> list[str]:
        names = list(self._R_NAMES)
        if self.prior[:1] == "c":
            names.remove("a")
        if self.threshrule == "none":
            names.remove("muhat")
        return names

    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key.replace(".", "_"))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def ebayesthresh(
    x: ArrayLike,
    prior: str = "laplace",
    a: float | None = 0.5,
    bayesfac: bool = False,
    sdev: ArrayLike | None = None,
    verbose: bool = False,
    threshrule: str = "median",
    universalthresh: bool = True,
    stabadjustment: bool | None = None,
) -> np.ndarray | EbayesThreshResult | None:
    """Empirical Bayes thresholding of ``x`` (R's ``ebayesthresh``).

    1. Noise sd: ``sdev`` (scalar or one per entry) or, if None, :math:`1.4826\\,\\mathrm{median}|x_i|`
       (``mad(x, center=0)``). A scalar sdev :math:`\\sigma` rescales :math:`x\\leftarrow x/\\sigma`
       and :math:`s=1`; a vector sdev does so by its mean only if ``stabadjustment=True``.
    2. Weight by marginal maximum likelihood, :math:`\\hat w=\\arg\\max_w\\sum_i\\log(1+w\\beta(x_i))`
       (:func:`wfromx`), jointly with :math:`\\hat a` when ``a`` is None and the prior is Laplace
       (:func:`wandafromx`).
    3. :math:`\\hat\\mu_i`: posterior median (``"median"``), mean (``"mean"``), or hard/soft
       thresholding at :func:`tfromw`'s threshold (posterior-median or, with ``bayesfac=True``,
       Bayes-factor threshold); ``"none"`` only estimates the parameters. Rescaled back to the
       original units.

    Args:
        x: data, any shape (treated as one vector; ``muhat`` keeps the shape).
        prior: ``"laplace"`` or ``"cauchy"`` (first letter decides).
        a: Laplace scale; None estimates it (R's ``NA``). Ignored by the Cauchy prior.
        sdev: noise sd, scalar, one per entry, or None (MAD). Vector sdev is Laplace-only.
        stabadjustment: only for vector ``sdev`` (None = R's missing = False); divide data and sdev by
            mean(sdev) first.
    Returns:
        ``muhat`` (ndarray, shape of ``x``; None for ``"none"``), or with ``verbose=True`` an
        :class:`EbayesThreshResult` holding R's list.
    Raises:
        ValueError: R's argument errors (vector sdev with the Cauchy prior or of the wrong length,
            ``stabadjustment`` given with a scalar sdev), an unknown prior or threshrule, a zero or
            non-finite noise sd (R fails there: all-zero data has MAD 0), and where R's optimiser
            stops (non-finite likelihood while estimating ``a``).
    """
    pr = _prior_code(prior)
    if threshrule not in _RULES:
        raise ValueError(
            f"threshrule: unknown threshold rule {threshrule!r}; choose one of {', '.join(_RULES)}"
        )
    shape = np.shape(x)
    xv = _vec(x)
    sd = _vec(np.nan if sdev is None else sdev, "sdev")
    if sd.size == 1:
        if stabadjustment is not None:
            raise ValueError("stabadjustment: not applicable when variances are homogeneous (scalar sdev)")
        sdev_used: float | np.ndarray = _mad0(xv) if np.isnan(sd[0]) else float(sd[0])
        stab = True
        m_sdev = float(sdev_used)
    else:
        if pr == "c":
            raise ValueError("sdev: the standard deviation has to be homogeneous for the Cauchy prior")
        if sd.size != xv.size:
            raise ValueError("sdev: has to be homogeneous (scalar) or have the same length as x")
        sdev_used = sd
        stab = bool(stabadjustment)
        m_sdev = _rmean(sd)
    check = sd if sd.size > 1 else np.array([m_sdev])
    if not (np.all(np.isfinite(check)) and np.all(check > 0)):
        hint = " (mad(x, center=0) is 0: more than half of x is exactly 0)" if sdev is None else ""
        raise ValueError(f"sdev: the noise sd must be finite and > 0; got {sdev_used!r}{hint}")
    if stab:
        s = sd / m_sdev if sd.size > 1 else np.ones(1)
        xs = xv / m_sdev
    else:
        s, xs = sd, xv
    beta = None  # β(x) is shared by the weight and the posterior median (same a, a ≤ 20)
    if pr == "l" and _is_na(a):
        pp = wandafromx(xs, s, universalthresh)
        w, a_used = pp["w"], pp["a"]
    else:
        a_used = _fixed_a(a, pr)
        if pr == "l" and a_used <= 20 and threshrule == "median":
            beta = beta_laplace(xs, s, a_used)
        w = _wfromx(xs, s if pr == "l" else np.ones(1), pr, a_used, universalthresh, beta)
    tt = tfromw(w, s, prior=prior, bayesfac=bayesfac, a=a_used)
    tcor = tt * m_sdev if stab else tt
    if threshrule == "median" and pr == "l":
        muhat = _postmed_laplace(xs, s, np.array([w]), a_used, beta)
    elif threshrule == "median":
        muhat = postmed(xs, s, w, prior=prior, a=a_used)
    elif threshrule == "mean":
        muhat = postmean(xs, s, w, prior=prior, a=a_used)
    elif threshrule == "hard":
        muhat = threshld(xs, tt)
    elif threshrule == "soft":
        muhat = threshld(xs, tt, hard=False)
    else:
        muhat = None
    if muhat is not None:
        if stab:
            muhat = muhat * m_sdev
        muhat = muhat.reshape(shape)
    if not verbose:
        return muhat
    return EbayesThreshResult(
        muhat=muhat,
        x=xs,
        threshold_sdevscale=_scalar_or_vector(tt),
        threshold_origscale=_scalar_or_vector(tcor),
        prior=prior,
        w=float(w),
        a=float(a_used) if pr == "l" else None,
        bayesfac=bool(bayesfac),
        sdev=sdev_used,
        threshrule=threshrule,
    )


def ebayesthresh_wavelet(
    details: Mapping[int, ArrayLike] | Sequence[ArrayLike],
    vscale: str | float = "independent",
    smooth_levels: float = math.inf,
    prior: str = "laplace",
    a: float | None = 0.5,
    bayesfac: bool = False,
    threshrule: str = "median",
) -> dict[int, np.ndarray]:
    """The level loop of R's ``ebayesthresh.wavelet`` (``.wd`` method) on detail coefficients.

    ``details[j]`` holds level j's detail coefficients, j = 0 … J−1 (coarse to fine, as wavethresh's
    ``accessD``); no wavelet transform is done here. Levels :math:`J-\\min(J-1, L)` … J−1
    (L = ``smooth_levels``) are each replaced by ``ebayesthresh(d_j, prior, a, bayesfac, sdev,
    threshrule=threshrule)`` with ``sdev`` = ``mad(d_{J-1})`` (median-centred MAD of the finest level)
    for ``vscale="independent"``, estimated per level for ``"level"``, or the number given.

    Returns:
        ``{level: coefficients}`` for every level, thresholded where the loop reached it.
    """
    levels = dict(enumerate(details)) if not isinstance(details, Mapping) else dict(details)
    coeffs = {int(j): _vec(v, f"details[{j}]") for j, v in levels.items()}
    nlevs = len(coeffs)
    if sorted(coeffs) != list(range(nlevs)):
        raise ValueError(f"details: levels must be 0 … {nlevs - 1}; got {sorted(coeffs)}")
    slevs = min(nlevs - 1, smooth_levels)
    sdev: float | None
    if isinstance(vscale, str):
        if vscale[:1] == "i":
            sdev = _mad(coeffs[nlevs - 1])
        elif vscale[:1] == "l":
            sdev = None
        else:
            raise ValueError(f"vscale: 'independent', 'level' or a number; got {vscale!r}")
    else:
        sdev = float(vscale)
    out = dict(coeffs)
    for j in range(int(nlevs - slevs), nlevs):
        out[j] = ebayesthresh(coeffs[j], prior, a, bayesfac, sdev, False, threshrule)
    return out


# ----------------------------------------------------------------------------------------------
# Batched thresholding of CAM maps: the same recipe on a (B, N) stack (scale s = 1 after rescaling)
# ----------------------------------------------------------------------------------------------

_STANDARDIZE = ("max", "none", "median")
_ZERO_MAD = ("nonzero", "keep", "raise")
_SQRT_HALF_PI = math.sqrt(math.pi / 2)
_SQRT_2 = math.sqrt(2.0)


class _NumpyOps:
    """Array operations of the batched path on the CPU (numpy/scipy, in-place where it pays)."""

    exp, abs, sign, where, isfinite = np.exp, np.abs, np.sign, np.where, np.isfinite
    mul, add, div = np.multiply, np.add, np.divide
    erfc, erfcx, ndtri = special.erfc, special.erfcx, special.ndtri

    @staticmethod
    def cmin(v: Any, c: Any) -> Any:
        return np.minimum(v, c)

    @staticmethod
    def cmax(v: Any, c: Any) -> Any:
        return np.maximum(v, c)

    @staticmethod
    def rowsum(v: np.ndarray) -> np.ndarray:
        return v.sum(axis=1, keepdims=True)

    @staticmethod
    def rowmax(v: np.ndarray) -> np.ndarray:
        return v.max(axis=1, keepdims=True)

    @staticmethod
    def rowall(v: np.ndarray) -> np.ndarray:
        return v.all(axis=1, keepdims=True)

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

    @staticmethod
    def any(v: np.ndarray) -> bool:
        return bool(v.any())

    empty_like, zeros_like, ones_like = np.empty_like, np.zeros_like, np.ones_like


class _TorchOps:
    """The same operations in torch (used for CUDA maps)."""

    exp, abs, sign, where, isfinite = torch.exp, torch.abs, torch.sign, torch.where, torch.isfinite
    mul, add, div = torch.mul, torch.add, torch.div
    erfc, erfcx, ndtri = torch.special.erfc, torch.special.erfcx, torch.special.ndtri

    @staticmethod
    def cmin(v: torch.Tensor, c: Any) -> torch.Tensor:
        return torch.minimum(v, c) if isinstance(c, torch.Tensor) else v.clamp(max=c)

    @staticmethod
    def cmax(v: torch.Tensor, c: Any) -> torch.Tensor:
        return torch.maximum(v, c) if isinstance(c, torch.Tensor) else v.clamp(min=c)

    @staticmethod
    def rowsum(v: torch.Tensor) -> torch.Tensor:
        return v.sum(dim=1, keepdim=True)

    @staticmethod
    def rowmax(v: torch.Tensor) -> torch.Tensor:
        return v.amax(dim=1, keepdim=True)

    @staticmethod
    def rowall(v: torch.Tensor) -> torch.Tensor:
        return v.all(dim=1, keepdim=True)

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

    @staticmethod
    def any(v: torch.Tensor) -> bool:
        return bool(v.any())

    empty_like, zeros_like, ones_like = torch.empty_like, torch.zeros_like, torch.ones_like


def _b_mills(ops: Any, t: Any) -> Any:
    """Mills ratio Φ(−t)/φ(t) = √(π/2)·erfcx(t/√2), one accurate operation."""
    return _SQRT_HALF_PI * ops.erfcx(t / _SQRT_2)


def _b_pnorm(ops: Any, v: Any) -> Any:
    return 0.5 * ops.erfc(-v / _SQRT_2)


def _b_dnorm(ops: Any, v: Any) -> Any:
    return _M_1_SQRT_2PI * ops.exp(-0.5 * v * v)


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
    """:func:`wfromx` for each row (β already capped at 1e20): the same 30 geometric bisections."""
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
    for _ in range(nits):
        tmid = (lo + hi) / 2
        indt = fun(tmid) <= zf
        lo = ops.where(indt, tmid, lo)
        hi = ops.where(indt, hi, tmid)
    return (lo + hi) / 2


def _b_tfromw(ops: Any, w: Any, a: Any, pr: str, bayesfac: bool) -> Any:
    """:func:`tfromw` per row (one w per map): ``(B, 1)``."""
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
    a_fixed = None if (pr == "l" and _is_na(a)) else _fixed_a(a, pr)
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
        sd = _MAD_CONSTANT * ops.median(ops.abs(x))
        bad = (sd == 0) & ~allzero
        if ops.any(bad):
            if zero_mad == "raise":
                raise ValueError("sdev: mad(x, center=0) is 0 for a map (more than half of it is exactly 0)")
            if zero_mad == "nonzero":
                sd = ops.where(bad, _MAD_CONSTANT * ops.nonzero_abs_median(x), sd)
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
    :func:`ebayesthresh` to about 1e-12 relative.

    Args:
        cams: ``(B, H, W)`` torch tensor (CPU or CUDA) or numpy array, any float dtype.
        standardize: ``"max"``, ``"none"`` or ``"median"``.
        prior, a, bayesfac, threshrule, universalthresh: as :func:`ebayesthresh` (threshrule one of
            ``median``, ``mean``, ``soft``, ``hard``; ``a=None`` estimates a per map).
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
    if standardize not in _STANDARDIZE:
        raise ValueError(f"standardize: choose one of {', '.join(_STANDARDIZE)}; got {standardize!r}")
    if zero_mad not in _ZERO_MAD:
        raise ValueError(f"zero_mad: choose one of {', '.join(_ZERO_MAD)}; got {zero_mad!r}")
    if threshrule not in _RULES[:-1]:
        raise ValueError(f"threshrule: choose one of {', '.join(_RULES[:-1])}; got {threshrule!r}")
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
