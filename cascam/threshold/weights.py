"""Estimating EbayesThresh's weight (and the Laplace scale) from data, as R does.

One concern: marginal maximum likelihood for the mixing weight. :func:`wfromx` finds one weight ``w``
for all the data (R's 30 geometric bisections of the score), :func:`wandafromx` the weight and the
Laplace scale ``a`` together (R's ``optim(method = "L-BFGS-B")``, :mod:`cascam.threshold.lbfgsb`),
:func:`zetafromx` and :func:`wmonfromx` weights that vary over the data (a scaled and a monotone
family), and :func:`tfromx` the threshold that the estimated weight gives. The functions at a given
weight come from :mod:`cascam.threshold.priors`; :mod:`cascam.threshold.ebayesthresh` serves every
function here under R's API.

Example (R: ``wfromx(x, prior = "cauchy")``):
    >>> from cascam.threshold.ebayesthresh import wfromx
    >>> round(wfromx([0.3, -1.2, 4.5, 0.1, -3.8, 0.7, -0.4, 2.9], prior="cauchy"), 4)
    0.8189
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .lbfgsb import optim_lbfgsb
from .priors import _fixed_a, _prior_code, beta_cauchy, beta_laplace, tfromw, wfromt
from .rmath import ArrayLike, as_vector, is_na, r_log, r_sum

__all__ = ["wfromx", "wandafromx", "negloglik_laplace", "tfromx", "isotone", "zetafromx", "wmonfromx"]


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

    R: ``wfromx(x, s = 1, prior = "laplace", a = 0.5, universalthresh = TRUE)``.

    Example:
        >>> x = [0.3, -1.2, 4.5, 0.1, -3.8, 0.7, -0.4, 2.9]
        >>> round(wfromx(x, prior='cauchy'), 4)
        0.8189
    """
    pr = _prior_code(prior)
    return _wfromx(as_vector(x), as_vector(1.0 if pr == "c" else s, "s"), pr, a, universalthresh)


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

    R: ``negloglik.laplace(xpar, xx, ss, tlo, thi)``.

    Example:
        >>> x = [0.3, -1.2, 4.5, 0.1, -3.8, 0.7, -0.4, 2.9]
        >>> round(negloglik_laplace([0.5, 0.5], x, 1.0, 0.0, 2.0), 4)
        -11.8067
    """
    xpar = as_vector(xpar, "xpar")
    parts = _negloglik_parts(
        float(xpar[1]), as_vector(xx, "xx"), as_vector(ss, "ss"), as_vector(tlo, "tlo"), as_vector(thi, "thi")
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
        loglik = r_sum(r_log(1 + (u * (whi - wlo) + wlo) * beta))
    return float(-loglik)


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

    R: ``wandafromx(x, s = 1, universalthresh = TRUE)``.

    Example:
        >>> x = [0.3, -1.2, 4.5, 0.1, -3.8, 0.7, -0.4, 2.9]
        >>> {k: round(v, 4) for k, v in wandafromx(x).items()}
        {'w': 0.7412, 'a': 0.499}
    """
    x = as_vector(x)
    s = as_vector(s, "s")
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

    try:
        uu = optim_lbfgsb(fn, np.array([0.5, 0.5]), lower, upper)
    except ValueError as err:
        raise ValueError(f"a: cannot estimate (w, a): {err}") from err
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

    R: ``tfromx(x, s = 1, prior = "laplace", bayesfac = FALSE, a = 0.5, universalthresh = TRUE)``.

    Example:
        >>> x = [0.3, -1.2, 4.5, 0.1, -3.8, 0.7, -0.4, 2.9]
        >>> np.round(tfromx(x, a=None), 4)
        array([0.9769])
    """
    pr = _prior_code(prior)
    if pr == "c":
        s = 1.0
    if pr == "l" and is_na(a):
        pp = wandafromx(x, s, universalthresh)
        w, a = pp["w"], pp["a"]
    else:
        w = wfromx(x, s, prior=prior, a=_fixed_a(a, pr))
    return tfromw(w, s, prior=prior, bayesfac=bayesfac, a=_fixed_a(a, pr))


def isotone(x: ArrayLike, wt: ArrayLike | None = None, increasing: bool = False) -> np.ndarray:
    """Weighted least-squares monotone fit by pool-adjacent-violators (R's ``isotone``):

    $$ \\hat z = \\arg\\min_{z\\ \\mathrm{monotone}} \\sum_i wt_i\\,(x_i - z_i)^2, $$

    decreasing unless ``increasing=True``. Each pass pools every maximal run between a local
    maximum and the next local minimum into its weighted mean.

    R: ``isotone(x, wt = rep(1, length(x)), increasing = FALSE)``.

    Example:
        >>> isotone([3.0, 1.0, 2.0, 0.0])
        array([3. , 1.5, 1.5, 0. ])
    """
    x = as_vector(x).copy()
    nn = x.size
    if nn == 1:
        return x
    wt = np.ones(nn) if wt is None else np.resize(as_vector(wt, "wt"), nn).copy()
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

    R: ``zetafromx(xd, cs, pilo = NA, prior = "laplace", a = 0.5)``.

    Example:
        >>> r = zetafromx([5.0, 4.0, 0.5, 3.0, 0.2, 0.1], [1.0, 1.0, 0.5, 0.5, 0.2, 0.2])
        >>> round(r['zeta'], 4), np.round(r['w'], 4)
        (1.838, array([1.    , 1.    , 0.919 , 0.919 , 0.4121, 0.4121]))
    """
    pr = _prior_code(prior)
    xd = as_vector(xd, "xd")
    cs = as_vector(cs, "cs")
    if is_na(pilo):
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
    zm = np.array([np.sum(r_log(1 + cb * np.maximum(zs1, np.minimum(z, zs2)))) for z in zlmax])
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

    R: ``wmonfromx(xd, prior = "laplace", a = 0.5, tol = 1e-08, maxits = 20)``.

    Example:
        >>> np.round(wmonfromx([5.0, 4.0, 0.5, 3.0, 0.2, 0.1]), 4)
        array([1.    , 1.    , 0.9187, 0.9187, 0.4121, 0.4121])
    """
    pr = _prior_code(prior)
    xd = as_vector(xd, "xd")
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
