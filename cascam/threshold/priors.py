"""The two priors of EbayesThresh at a given weight: the R functions below the estimation.

One concern: everything R's EbayesThresh computes once the prior (Laplace with scale ``a``, or
quasi-Cauchy) and the mixing weight ``w`` are fixed: the likelihood ratio β(x), the posterior
probability of a non-zero mean, posterior medians and means, the thresholds that go with a weight
and the weights that go with a threshold (with the functions whose zeros they are, solved by R's
fixed 30-step bisection), and hard/soft thresholding. Estimating ``w`` (and ``a``) from data, and
the entry points, are in :mod:`cascam.threshold.ebayesthresh`, which also serves every function
here: import them from there. R's numerics come from :mod:`cascam.threshold.rmath`.

Each public function is the R function of the same name with dots as underscores
(``beta.laplace`` → :func:`beta_laplace`), R's arguments and defaults, and R's operations.

Example (R: ``tfromw(0.1)``, ``postmed(4, w = 0.2)``):
    >>> import numpy as np
    >>> from cascam.threshold.ebayesthresh import postmed, tfromw
    >>> float(np.round(tfromw(0.1)[0], 4)), float(np.round(postmed(4.0, w=0.2)[0], 4))
    (2.8163, 3.4826)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .rmath import (
    M_1_SQRT_2PI,
    ArrayLike,
    as_vector,
    check_no_nan,
    dnorm,
    dnorm1,
    ieee_div,
    is_na,
    pnorm,
    pnorm1,
    qnorm,
    r_exp,
)

__all__ = [
    "PRIORS",
    "THRESHRULES",
    "beta_laplace",
    "beta_cauchy",
    "wfromt",
    "wpost_laplace",
    "laplace_threshzero",
    "cauchy_threshzero",
    "cauchy_medzero",
    "vecbinsolv",
    "tfromw",
    "postmed_laplace",
    "postmean_laplace",
    "postmean_cauchy",
    "postmed_cauchy",
    "postmed",
    "postmean",
    "threshld",
]

#: The priors of R's ``ebayesthresh(prior = ...)``; R reads only the first letter.
PRIORS = ("laplace", "cauchy")
#: R's ``threshrule``: posterior median, posterior mean, soft or hard thresholding at the estimated
#: threshold, or ``"none"`` (estimate the parameters only).
THRESHRULES = ("median", "mean", "soft", "hard", "none")


def _prior_code(prior: str) -> str:
    """First letter of ``prior`` (R's ``substring(prior, 1, 1)``): ``l`` Laplace, ``c`` quasi-Cauchy."""
    code = prior[:1] if isinstance(prior, str) else ""
    if code not in {p[0] for p in PRIORS}:
        raise ValueError(f"prior: must be 'laplace' or 'cauchy' (first letter used); got {prior!r}")
    return code


def _fixed_a(a: float | None, pr: str) -> float:
    """A given Laplace scale ``a``, checked (the Cauchy prior ignores ``a``: 0.5 stands in)."""
    if pr == "c":
        return 0.5 if is_na(a) else float(a)  # ignored by the Cauchy prior
    a = float(a)
    if not (a > 0 and math.isfinite(a)):
        raise ValueError(f"a: the Laplace scale must be a finite number > 0 (or None to estimate); got {a!r}")
    return a


def _bisect(
    where: Callable[[Any, Any, Any], Any], zf: Any, fun: Callable[[Any], Any], lo: Any, hi: Any, nits: int
) -> Any:
    """R's ``vecbinsolv`` loop: ``nits`` bisections of [lo, hi] towards ``fun(t) = zf`` (increasing fun).

    ``where(cond, a, b)`` picks elementwise (``np.where``, ``torch.where``, or a float conditional),
    so the scalar, vector and batched twins run the same steps.
    """
    for _ in range(nits):
        tmid = (lo + hi) / 2
        indt = fun(tmid) <= zf
        lo = where(indt, tmid, lo)
        hi = where(indt, hi, tmid)
    return (lo + hi) / 2


# ----------------------------------------------------------------------------------------------
# Scalar twins of the vector formulas, operation for operation (math.exp is the C library's exp, as
# r_exp), for the 30-step bisections on one unknown where numpy's per-call overhead would dominate.
# ----------------------------------------------------------------------------------------------


def _beta_laplace1(x: float, s: float, a: float) -> float:
    x = abs(x)
    xpa = x / s + s * a
    xma = x / s - s * a
    rat1 = pnorm1(-xpa) / dnorm1(xpa) if xpa < 35 else 1 / xpa
    xmc = min(xma, 35.0)
    rat2 = pnorm1(xmc) / dnorm1(xmc) if xma > -35 else 1 / abs(xma)
    return (a * s) / 2 * (rat1 + rat2) - 1


def _beta_cauchy1(x: float) -> float:
    if x == 0:
        return -0.5
    phix = dnorm1(x)
    return ((M_1_SQRT_2PI / phix - 1) / x**2 - 1) if phix > 0 else math.inf


def _laplace_threshzero1(x: float, s: float, w: float, a: float) -> float:
    a = min(a, 20.0)
    xma = x / s - s * a
    if xma > 25:
        return 0.5
    winv = 1 / w if w != 0 else math.inf
    return pnorm1(xma) - 1 / a * (1 / s * dnorm1(xma)) * (winv + _beta_laplace1(x, s, a))


def _cauchy_threshzero1(z: float, w: float) -> float:
    winv = 1 / w if w != 0 else math.inf
    return pnorm1(z) - z * dnorm1(z) - 0.5 - (z**2 * math.exp(-(z**2) / 2) * (winv - 1)) / 2


def _wfromt_laplace1(tt: float, s: float, a: float) -> float:
    tma = tt / s - s * a
    wi = ieee_div(pnorm1(tma), dnorm1(tma)) if tma > -35 else 1 / abs(tma)
    return ieee_div(1.0, a * s * wi - _beta_laplace1(tt, s, a))


def _where1(cond: bool, yes: float, no: float) -> float:
    return yes if cond else no


def _binsolv1(zf: float, fun: Callable[[float], float], tlo: float, thi: float, nits: int = 30) -> float:
    """:func:`vecbinsolv` for one unknown, same steps."""
    return _bisect(_where1, zf, fun, tlo, thi, nits)


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

    R: ``beta.laplace(x, s = 1, a = 0.5)``.

    Example:
        >>> np.round(beta_laplace([0.0, 1.0, 3.0]), 4)
        array([-0.5618, -0.38  , 13.2407])
    """
    x = np.abs(as_vector(x))
    s = as_vector(s, "s")
    xpa = x / s + s * a
    xma = x / s - s * a
    check_no_nan(xpa, "x")
    n = xpa.size
    xmc = np.minimum(xma, 35.0)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # both Mills ratios Φ(−x₊)/φ(x₊) and Φ(x₋)/φ(x₋) in one pass (φ is even)
        both = np.concatenate([-xpa, xmc])
        mills = pnorm(both) / dnorm(both)
        rat1 = np.where(xpa < 35, mills[:n], 1 / xpa)
        rat2 = np.where(xma > -35, mills[n:], 1 / np.abs(xma))
    return (a * s) / 2 * (rat1 + rat2) - 1


def beta_cauchy(x: ArrayLike) -> np.ndarray:
    """:math:`\\beta(x)=g(x)/\\phi(x)-1` for the quasi-Cauchy prior (noise sd 1).

    $$ \\beta(x) = \\frac{\\phi(0)/\\phi(x) - 1}{x^2} - 1,\\qquad \\beta(0) = -\\tfrac12 . $$

    Overflows to ``inf`` for :math:`|x|\\gtrsim 37.6`, exactly as R does.

    R: ``beta.cauchy(x)``.

    Example:
        >>> np.round(beta_cauchy([0.0, 1.0, 3.0]), 4)
        array([-0.5   , -0.3513,  8.8908])
    """
    x = as_vector(x)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        beta = (dnorm(np.zeros(1)) / dnorm(x) - 1) / x**2 - 1
    return np.where(x != 0, beta, -0.5)


def wfromt(tt: ArrayLike, s: ArrayLike = 1.0, prior: str = "laplace", a: float = 0.5) -> np.ndarray:
    """The weight :math:`w` whose posterior-median threshold is ``tt``.

    Laplace, with :math:`t_-=t/s-sa`:
    $$ w(t) = \\Big(as\\,\\frac{\\Phi(t_-)}{\\phi(t_-)} - \\beta(t)\\Big)^{-1}, $$
    (the Mills ratio replaced by :math:`1/|t_-|` when :math:`t_-\\le-35`). Quasi-Cauchy:
    $$ w(t)^{-1} = 1 + \\frac{\\Phi(t) - t\\phi(t) - 1/2}{\\sqrt{\\pi/2}\\,\\phi(t)\\,t^2}, $$
    set to 1 where that is not finite (t = 0 or φ(t) = 0).

    R: ``wfromt(tt, s = 1, prior = "laplace", a = 0.5)``.

    Example:
        >>> np.round(wfromt([1.0, 3.0]), 4)
        array([0.7342, 0.0662])
    """
    pr = _prior_code(prior)
    tt = as_vector(tt, "tt")
    if pr == "l" and tt.size == 1 and np.size(s) == 1 and not np.isnan(tt[0]):
        return np.array([_wfromt_laplace1(float(tt[0]), float(as_vector(s, "s")[0]), float(a))])
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        if pr == "l":
            s = as_vector(s, "s")
            tma = tt / s - s * a
            wi = np.where(tma > -35, pnorm(tma) / dnorm(tma), 1 / np.abs(tma))
            wi = a * s * wi - beta_laplace(tt, s, a)
        else:
            dnz = dnorm(tt)
            wi = 1 + (pnorm(tt) - tt * dnz - 0.5) / (math.sqrt(math.pi / 2) * dnz * tt**2)
            wi = np.where(np.isfinite(wi), wi, 1.0)
        return 1 / wi


def wpost_laplace(w: ArrayLike, x: ArrayLike, s: ArrayLike = 1.0, a: float = 0.5) -> np.ndarray:
    """Posterior probability that :math:`\\mu\\ne0` under the Laplace prior:

    $$ P(\\mu\\ne0\\mid x) = 1 - \\frac{1-w}{1 + w\\,\\beta(x)} . $$

    R: ``EbayesThresh:::wpost.laplace(w, x, s = 1, a = 0.5), not exported``.

    Example:
        >>> np.round(wpost_laplace(0.2, [0.5, 2.0, 4.0]), 4)
        array([0.1066, 0.3209, 0.9862])
    """
    w = as_vector(w, "w")
    return 1 - (1 - w) / (1 + w * beta_laplace(x, s, a))


def laplace_threshzero(x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, a: float = 0.5) -> np.ndarray:
    """The function whose zero in ``x`` is the Laplace posterior-median threshold.

    With :math:`a\\leftarrow\\min(a,20)` and :math:`x_-=x/s-sa`,
    $$ z(x) = \\Phi(x_-) - \\frac{1}{a}\\,\\frac{\\phi(x_-)}{s}\\,\\Big(\\frac1w + \\beta(x)\\Big), $$
    set to 1/2 where :math:`x_->25`.

    R: ``laplace.threshzero(x, s = 1, w = 0.5, a = 0.5)``.

    Example:
        >>> t = tfromw(0.2)  # the threshold for w = 0.2 is its zero
        >>> bool(abs(laplace_threshzero(t, w=0.2)[0]) < 1e-8)
        True
    """
    a = min(a, 20.0)
    x = as_vector(x)
    s = as_vector(s, "s")
    w = as_vector(w, "w")
    xma = x / s - s * a
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        z = pnorm(xma) - 1 / a * (1 / s * dnorm(xma)) * (1 / w + beta_laplace(x, s, a))
    return np.where(xma > 25, 0.5, z)


def cauchy_threshzero(z: ArrayLike, w: ArrayLike) -> np.ndarray:
    """The function whose zero in ``z`` is the quasi-Cauchy posterior-median threshold:

    $$ \\Phi(z) - z\\phi(z) - \\tfrac12 - \\tfrac12 z^2 e^{-z^2/2}\\,(1/w - 1) . $$

    R: ``cauchy.threshzero(z, w)``.

    Example:
        >>> t = tfromw(0.2, prior='cauchy')  # the threshold for w = 0.2 is its zero
        >>> bool(abs(cauchy_threshzero(t, w=0.2)[0]) < 1e-8)
        True
    """
    z = as_vector(z, "z")
    w = as_vector(w, "w")
    with np.errstate(divide="ignore", invalid="ignore"):
        return pnorm(z) - z * dnorm(z) - 0.5 - (z**2 * r_exp(-(z**2) / 2) * (1 / w - 1)) / 2


def cauchy_medzero(x: ArrayLike, z: ArrayLike, w: ArrayLike) -> np.ndarray:
    """The function whose zero in ``x`` is the quasi-Cauchy posterior median for data ``z``.

    With :math:`h=z-x`,
    $$ \\tfrac12\\big(1 + e^{-z^2/2}(z^2(1/w-1)-1)\\big)
       - \\Big(\\Phi(h) - z\\phi(h) + \\frac{(zx-1)\\,\\phi(h)\\,\\Phi(-x)}{\\phi(x)}\\Big). $$

    R: ``cauchy.medzero(x, z, w)``.

    Example:
        >>> m = postmed_cauchy(3.0, 0.2)  # the posterior median of data 3 is its zero
        >>> bool(abs(cauchy_medzero(m, 3.0, 0.2)[0]) < 1e-8)
        True
    """
    x = as_vector(x)
    z = as_vector(z, "z")
    w = as_vector(w, "w")
    hh = z - x
    dnhh = dnorm(hh)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        yleft = pnorm(hh) - z * dnhh + ((z * x - 1) * dnhh * pnorm(-x)) / dnorm(x)
        yright2 = 1 + r_exp(-(z**2) / 2) * (z**2 * (1 / w - 1) - 1)
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

    R: ``vecbinsolv(zf, fun, tlo, thi, nits = 30, ...)``.

    Example:
        >>> np.round(vecbinsolv([2.0, 3.0], lambda t: t * t, 0.0, 2.0), 6)
        array([1.414214, 1.732051])
    """
    zf = as_vector(zf, "zf")
    nz = zf.size
    lo = as_vector(tlo, "tlo").copy()
    hi = as_vector(thi, "thi").copy()
    if lo.size == 1:
        lo = np.repeat(lo, nz)
    if lo.size != nz:
        raise ValueError("tlo: lower constraint has to be homogeneous or have the same length as zf")
    if hi.size == 1:
        hi = np.repeat(hi, nz)
    if hi.size != nz:
        raise ValueError("thi: upper constraint has to be homogeneous or have the same length as zf")

    def f(t: np.ndarray) -> np.ndarray:
        fmid = np.asarray(fun(t, **kwargs), dtype=np.float64)
        if fmid.size != nz:
            raise ValueError(f"fun: returned {fmid.size} values for {nz} targets (R cannot recycle these)")
        return fmid

    return _bisect(np.where, zf, f, lo, hi, int(nits))


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

    R: ``tfromw(w, s = 1, prior = "laplace", bayesfac = FALSE, a = 0.5)``.

    Example:
        >>> np.round(tfromw([0.1, 0.5]), 4)
        array([2.8163, 1.6744])
        >>> np.round(tfromw(0.1, prior='cauchy', bayesfac=True), 4)
        array([2.9597])
    """
    pr = _prior_code(prior)
    w = as_vector(w, "w")
    s = as_vector(s, "s")
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

    R: ``postmed.laplace(x, s = 1, w = 0.5, a = 0.5)``.

    Example:
        >>> np.round(postmed_laplace([0.5, 2.0, 4.0], w=0.2), 4)
        array([0.    , 0.    , 3.4826])
    """
    return _postmed_laplace(as_vector(x), as_vector(s, "s"), as_vector(w, "w"), a)


def _postmed_laplace(x: np.ndarray, s: np.ndarray, w: np.ndarray, a: float, beta: np.ndarray | None = None):
    """:func:`postmed_laplace`; ``beta`` = β(x) at min(a, 20) if already known."""
    a = min(a, 20.0)
    sx = np.sign(x)
    ax = np.abs(x)
    xma = ax / s - s * a
    if beta is None:
        beta = beta_laplace(ax, s, a)
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        zz = 1 / a * (1 / s * dnorm(xma)) * (1 / w + beta)
        zz = np.where(xma > 25, 0.5, zz)
        mucor = qnorm(np.minimum(zz, 1.0))
        return sx * np.maximum(0.0, xma - mucor) * s


def postmean_laplace(x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, a: float = 0.5) -> np.ndarray:
    """Posterior mean of :math:`\\mu` under the Laplace prior.

    With :math:`a\\leftarrow\\min(a,20)`, :math:`x_\\pm=|x|/s\\pm sa` (capped at ±35),
    :math:`c_1=\\Phi(x_-)`, :math:`c_2=\\Phi(-x_+)`, :math:`e=\\exp(\\min(2a|x|,100))`,
    $$ E[\\mu\\mid x] = \\mathrm{sign}(x)\\,P(\\mu\\ne0\\mid x)\\,
       \\Big(|x| - as^2\\Big(\\frac{2c_1}{c_1 + e\\,c_2} - 1\\Big)\\Big). $$

    R: ``postmean.laplace(x, s = 1, w = 0.5, a = 0.5)``.

    Example:
        >>> np.round(postmean_laplace([0.5, 2.0, 4.0], w=0.2), 4)
        array([0.0366, 0.4963, 3.452 ])
    """
    a = min(a, 20.0)
    x = as_vector(x)
    s = as_vector(s, "s")
    wpost = wpost_laplace(w, x, s, a)
    sx = np.sign(x)
    ax = np.abs(x)
    xpa = np.minimum(ax / s + s * a, 35.0)
    xma = np.maximum(ax / s - s * a, -35.0)
    cp1 = pnorm(xma)
    cp2 = pnorm(-xpa)
    ef = r_exp(np.minimum(2 * a * ax, 100.0))
    postmeancond = ax - a * s**2 * (2 * cp1 / (cp1 + ef * cp2) - 1)
    return sx * wpost * postmeancond


def postmean_cauchy(x: ArrayLike, w: ArrayLike) -> np.ndarray:
    """Posterior mean under the quasi-Cauchy prior (noise sd 1), 0 at x = 0:

    $$ E[\\mu\\mid x] = \\frac{w\\,\\big(x - 2(1-e^{-x^2/2})/x\\big)}
       {w\\,(1-e^{-x^2/2}) + (1-w)\\,e^{-x^2/2}\\,x^2} . $$

    For :math:`|x|\\ll1` the numerator cancels to about :math:`wx^3/4`, far below the rounding error
    of :math:`2(1-e^{-x^2/2})/x`: R's value there is rounding noise of ``exp`` (one ulp moves it by up
    to ~1e-2 at :math:`|x|\\sim10^{-4}`). The port makes R's operations with the C library's ``exp``
    (:func:`~cascam.threshold.rmath.r_exp`), so it returns R's bits there too.

    R: ``postmean.cauchy(x, w)``.

    Example:
        >>> np.round(postmean_cauchy([0.5, 2.0, 4.0], w=0.2), 4)
        array([0.03  , 0.3747, 3.4277])
    """
    x = as_vector(x)
    w = as_vector(w, "w")
    nz = x != 0
    xs = np.where(nz, x, 1.0)
    ex = r_exp(-(xs**2) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = w * (xs - (2 * (1 - ex)) / xs)
        z = z / (w * (1 - ex) + (1 - w) * ex * xs**2)
    return np.where(nz, z, x)


def postmed_cauchy(x: ArrayLike, w: ArrayLike) -> np.ndarray:
    """Posterior median under the quasi-Cauchy prior (noise sd 1).

    For :math:`|x|<20` the zero of :func:`cauchy_medzero` on :math:`[0,\\max|x|]` by
    :func:`vecbinsolv`; for :math:`|x|\\ge20` the approximation :math:`|x| - 2/|x|`. Values below 1e-7
    become 0, then the sign of ``x`` is restored.

    R: ``postmed.cauchy(x, w)``.

    Example:
        >>> np.round(postmed_cauchy([0.5, 2.0, 4.0], w=0.2), 4)
        array([0.    , 0.    , 3.4806])
    """
    x = as_vector(x)
    nx = x.size
    w = np.resize(as_vector(w, "w"), nx)
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

    R: ``postmed(x, s = 1, w = 0.5, prior = "laplace", a = 0.5)``.

    Example:
        >>> np.round(postmed([0.5, 2.0, 4.0], w=0.2), 4)
        array([0.    , 0.    , 3.4826])
    """
    return _by_prior(prior, postmed_laplace, postmed_cauchy, x, s, w, a)


def postmean(
    x: ArrayLike, s: ArrayLike = 1.0, w: ArrayLike = 0.5, prior: str = "laplace", a: float = 0.5
) -> np.ndarray:
    """Posterior mean :math:`E[\\mu\\mid x_i]`; see :func:`postmean_laplace`, :func:`postmean_cauchy`.

    Raises:
        ValueError: ``s`` ≠ 1 with the quasi-Cauchy prior (R: only sd 1 is allowed).

    R: ``postmean(x, s = 1, w = 0.5, prior = "laplace", a = 0.5)``.

    Example:
        >>> np.round(postmean([0.5, 2.0, 4.0], w=0.2, prior='cauchy'), 4)
        array([0.03  , 0.3747, 3.4277])
    """
    return _by_prior(prior, postmean_laplace, postmean_cauchy, x, s, w, a)


def _by_prior(
    prior: str, laplace: Callable[..., np.ndarray], cauchy: Callable[..., np.ndarray], x: ArrayLike,
    s: ArrayLike, w: ArrayLike, a: float,
) -> np.ndarray:
    """R's dispatch in ``postmed``/``postmean``: ``laplace(x, s, w, a)``, or ``cauchy(x, w)`` with sd 1."""
    if _prior_code(prior) == "l":
        return laplace(x, s, w, a)
    if np.any(as_vector(s, "s") != 1):
        raise ValueError("s: only a standard deviation of 1 is allowed for the Cauchy prior")
    return cauchy(x, w)


def threshld(x: ArrayLike, t: ArrayLike, hard: bool = True) -> np.ndarray:
    """Hard :math:`x\\,1\\{|x|\\ge t\\}` or soft :math:`\\mathrm{sign}(x)\\max(0,|x|-t)` thresholding.

    R: ``threshld(x, t, hard = TRUE)``.

    Example:
        >>> threshld([-3.0, -1.0, 0.5, 2.0], 1.0)
        array([-3., -1.,  0.,  2.])
        >>> threshld([-3.0, 0.5, 2.0], 1.0, hard=False)
        array([-2.,  0.,  1.])
    """
    x = as_vector(x)
    t = as_vector(t, "t")
    if hard:
        return x * (np.abs(x) >= t)
    return np.sign(x) * np.maximum(0.0, np.abs(x) - t)
