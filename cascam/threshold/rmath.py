"""R's numerics, as the EbayesThresh port needs them: the same doubles as R 4.2 computes.

One concern: how R evaluates the elementary pieces (``dnorm``, ``pnorm``, ``exp``, ``log``, ``mean``,
``sum``, ``mad``, ``NA``) so that :mod:`cascam.threshold.ebayesthresh` can follow R's formulas operation
for operation. Each function names the R (nmath, ``stats``) code it copies. ``dnorm``/``pnorm`` work on
numpy vectors; ``dnorm1``/``pnorm1`` are scalar twins with the same operations, for the 30-step
bisections on one unknown where numpy's per-call overhead would dominate. Nothing here knows about
empirical Bayes.

Example:
    >>> import numpy as np
    >>> from cascam.threshold.rmath import pnorm, pnorm1, mad
    >>> float(pnorm(np.array([1.96]))[0]) == pnorm1(1.96), round(pnorm1(1.96), 6)
    (True, 0.975002)
    >>> round(mad(np.array([1.0, -2.0, 3.0, -4.0]), center=0.0), 4)   # 1.4826 · median|x|
    3.7065
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import special

__all__ = [
    "ArrayLike",
    "M_1_SQRT_2PI",
    "MAD_CONSTANT",
    "as_vector",
    "is_na",
    "check_no_nan",
    "scalar_or_vector",
    "r_exp",
    "r_log",
    "dnorm",
    "dnorm1",
    "pnorm",
    "pnorm1",
    "qnorm",
    "r_mean",
    "r_sum",
    "mad",
    "ieee_div",
]

ArrayLike = Any  # float, sequence of floats or numpy array

M_1_SQRT_2PI = 0.398942280401432677939946059934  # 1/√(2π), R's M_1_SQRT_2PI
MAD_CONSTANT = 1.4826  # R's mad(constant = 1.4826)
DBL_EPSILON = float(np.finfo(float).eps)
# R's dnorm: beyond this |x| the density underflows to 0 (IEEE doubles, denormals included).
_DNORM_ZERO = math.sqrt(-2 * math.log(2) * (-1021 + 1 - 53))


# ----------------------------------------------------------------------------------------------
# R vectors and NA
# ----------------------------------------------------------------------------------------------


def as_vector(x: ArrayLike, name: str = "x") -> np.ndarray:
    """``x`` as a 1-d float64 array (R vectors are 1-d; a scalar becomes length 1)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: must be numeric; got {x!r}") from err
    return arr.reshape(-1)


def is_na(v: Any) -> bool:
    """R's ``is.na`` of a length-1 argument: None (R's ``NA``) or a single NaN."""
    if v is None:
        return True
    arr = np.asarray(v, dtype=np.float64)
    return arr.size == 1 and bool(np.isnan(arr.reshape(-1)[0]))


def check_no_nan(v: np.ndarray, name: str) -> None:
    """Raise where R's logical subscripts stop: "NAs are not allowed in subscripted assignments"."""
    if np.isnan(v).any():
        raise ValueError(f"{name}: contains NaN (R: NAs are not allowed in subscripted assignments)")


def scalar_or_vector(v: np.ndarray) -> float | np.ndarray:
    """A length-1 R vector as a float, any other as the array."""
    return float(v[0]) if v.size == 1 else v


# ----------------------------------------------------------------------------------------------
# exp and log: the C library's, as R's
# ----------------------------------------------------------------------------------------------

# R evaluates exp() and log() with the C library (glibc on Linux), and so does Python's
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


def r_exp(x: ArrayLike) -> np.ndarray:
    """R's ``exp(x)``: the C library's exp, element-wise (numpy's where that is the same)."""
    return np.exp(x) if _NUMPY_IS_LIBM["exp"] else _libm_exp(x)


def r_log(x: ArrayLike) -> np.ndarray:
    """R's ``log(x)``: the C library's log, element-wise (numpy's where that is the same)."""
    return np.log(x) if _NUMPY_IS_LIBM["log"] else _libm_log(x)


# ----------------------------------------------------------------------------------------------
# The normal distribution: dnorm, pnorm, qnorm
# ----------------------------------------------------------------------------------------------


def dnorm(x: np.ndarray) -> np.ndarray:
    """R's ``dnorm(x)`` (nmath/dnorm.c): :math:`\\phi(x)=e^{-x^2/2}/\\sqrt{2\\pi}`.

    For :math:`|x|\\ge 5` R splits :math:`x=x_1+x_2` with :math:`x_1` a multiple of :math:`2^{-16}`, so
    that :math:`x_1^2` is exact; copying that keeps the tail ratios ``pnorm/dnorm`` bit-close to R.
    """
    ax = np.abs(x)
    out = ax * ax
    out *= -0.5
    out = r_exp(out)
    out *= M_1_SQRT_2PI
    big = ax >= 5
    if big.any():
        xb = ax[big]
        # x1 = x rounded to a multiple of 2^-16 (scaling by 2^16 is exact); x1² is then exact.
        x1 = np.rint(xb * 65536.0) / 65536.0
        with np.errstate(invalid="ignore"):
            vb = _dnorm_split(x1, xb - x1, r_exp)
        vb[xb > _DNORM_ZERO] = 0.0
        out[big] = vb
    return out


def dnorm1(x: float) -> float:
    """Scalar :func:`dnorm`, the same operations."""
    ax = abs(x)
    if ax < 5:
        return M_1_SQRT_2PI * math.exp(-0.5 * ax * ax)
    if ax > _DNORM_ZERO:
        return 0.0
    x1 = math.ldexp(float(round(math.ldexp(ax, 16))), -16)
    return _dnorm_split(x1, ax - x1, math.exp)


def _dnorm_split(x1: Any, x2: Any, exp: Callable[[Any], Any]) -> Any:
    """φ(x1 + x2) for |x| ≥ 5 as R: :math:`e^{-x_1^2/2}\\,e^{-(x_2/2 + x_1)x_2}/\\sqrt{2\\pi}`."""
    return M_1_SQRT_2PI * (exp(-0.5 * x1 * x1) * exp((-0.5 * x2 - x1) * x2))


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
# Cody's three rational functions and the exp split are written once, with operators that act the
# same on floats and on numpy arrays: pnorm (vectors) and pnorm1 (floats) share them.


def _pn_central(x: Any, xsq: Any) -> Any:
    """Φ(x) for |x| ≤ 0.674, a rational function of x²."""
    xnum = _PN_A[4] * xsq
    xden = xsq
    for i in range(3):
        xnum = (xnum + _PN_A[i]) * xsq
        xden = (xden + _PN_B[i]) * xsq
    return 0.5 + x * (xnum + _PN_A[3]) / (xden + _PN_B[3])


def _pn_middle(y: Any) -> Any:
    """Φ(−y)·e^{y²/2} for 0.674 < y ≤ √32, a rational function of y."""
    xnum = _PN_C[8] * y
    xden = y
    for i in range(7):
        xnum = (xnum + _PN_C[i]) * y
        xden = (xden + _PN_D[i]) * y
    return (xnum + _PN_C[7]) / (xden + _PN_D[7])


def _pn_tail(x: Any, y: Any) -> Any:
    """Φ(−y)·e^{x²/2} for √32 < y, x in R's range, a rational function of 1/x²."""
    xsq = 1.0 / (x * x)
    xnum = _PN_P[5] * xsq
    xden = xsq
    for i in range(4):
        xnum = (xnum + _PN_P[i]) * xsq
        xden = (xden + _PN_Q[i]) * xsq
    temp = xsq * (xnum + _PN_P[4]) / (xden + _PN_Q[4])
    return (M_1_SQRT_2PI - temp) / y


def _pn_times_density(xd: Any, temp: Any, exp: Callable[[Any], Any], trunc: Callable[[Any], Any]) -> Any:
    """``temp`` · e^{−xd²/2}, the exponential split as :math:`e^{-x_s^2/2}e^{-\\delta/2}` (R's way)."""
    xs = trunc(xd * 16.0) / 16.0
    dl = (xd - xs) * (xd + xs)
    return exp(-xs * (xs / 2)) * exp(-(dl / 2)) * temp


def pnorm(x: np.ndarray) -> np.ndarray:
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
        out[r1] = _pn_central(xv, np.where(np.abs(xv) > DBL_EPSILON * 0.5, xv * xv, 0.0))
    for region, middle in ((r2, True), (r3, False)):
        if not region.any():
            continue
        xv, yv = x[region], y[region]
        cum = (
            _pn_times_density(yv, _pn_middle(yv), r_exp, np.trunc)
            if middle
            else _pn_times_density(xv, _pn_tail(xv, yv), r_exp, np.trunc)
        )
        out[region] = np.where(xv > 0, 1.0 - cum, cum)
    if r4.any():
        out[r4] = np.where(x[r4] > 0, 1.0, 0.0)
    nan = np.isnan(x)
    if nan.any():
        out[nan] = np.nan
    return out


def pnorm1(x: float) -> float:
    """Scalar :func:`pnorm`, the same operations."""
    if math.isnan(x):
        return x
    y = abs(x)
    if y <= 0.67448975:
        return _pn_central(x, x * x if y > DBL_EPSILON * 0.5 else 0.0)
    if y <= _M_SQRT_32:
        cum = _pn_times_density(y, _pn_middle(y), math.exp, math.trunc)
    elif -37.5193 < x < 8.2924:
        cum = _pn_times_density(x, _pn_tail(x, y), math.exp, math.trunc)
    else:
        return 1.0 if x > 0 else 0.0
    return 1.0 - cum if x > 0 else cum


qnorm = special.ndtri  # Φ⁻¹(p) (cephes; R's qnorm is AS 241, equal to about 1e-16 relative)


# ----------------------------------------------------------------------------------------------
# Summaries: mean, sum, mad
# ----------------------------------------------------------------------------------------------


def r_mean(x: np.ndarray) -> float:
    """R's ``mean``: an accurate sum (R uses long double and a correction pass) divided by n."""
    if x.size and np.all(x == x[0]):
        return float(x[0])
    m = math.fsum(x) / x.size
    return m + math.fsum(x - m) / x.size


def r_sum(v: np.ndarray) -> float:
    """R's ``sum`` of doubles: sequential accumulation in long double (80-bit on x86-64), then rounded."""
    return float(np.cumsum(v, dtype=np.longdouble)[-1]) if v.size else 0.0


def mad(x: np.ndarray, center: float | None = None) -> float:
    """R's ``mad(x, center)`` = 1.4826 · median(|x − center|); ``center`` None is R's default, median(x)."""
    c = np.median(x) if center is None else center
    return MAD_CONSTANT * float(np.median(np.abs(x - c)))


def ieee_div(num: float, den: float) -> float:
    """num / den with IEEE results for den = 0, as in R (Python floats raise instead)."""
    if den != 0:
        return num / den
    return math.nan if num == 0 or math.isnan(num) else math.copysign(math.inf, num) * math.copysign(1.0, den)
