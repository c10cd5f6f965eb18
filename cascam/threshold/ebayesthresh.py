"""Empirical Bayes thresholding: the R package EbayesThresh (1.4-12 code), function by function.

One concern: R's API. Every public function here is an R function of the package under its R name
with dots as underscores (``beta.laplace`` → :func:`beta_laplace`), the same arguments, defaults and
numerical recipe, and R's ``NA`` as ``None``; where R stops with an error, or cannot compute, it
raises :class:`ValueError` naming the argument. The model (Johnstone & Silverman 2005, J. Stat.
Soft. 12(8)) for data :math:`x_i` with noise sd :math:`s_i` is

$$ x_i = \\mu_i + s_i\\,\\varepsilon_i,\\qquad \\varepsilon_i\\sim N(0,1),\\qquad
   \\mu_i \\sim (1-w)\\,\\delta_0 + w\\,\\gamma, $$

with :math:`\\gamma` the Laplace density :math:`\\tfrac a2 e^{-a|u|}` or the quasi-Cauchy density.
The mixing weight :math:`w` (and for the Laplace prior optionally the scale :math:`a`) is found by
marginal maximum likelihood, then each :math:`x_i` is replaced by its posterior median (a
thresholding rule), posterior mean, or hard/soft thresholded value.

This module holds the entry points, :func:`ebayesthresh` and :func:`ebayesthresh_wavelet`, and
serves the whole API: the functions at a given weight (β, thresholds, posterior medians and means)
are written in :mod:`cascam.threshold.priors`, the estimation of the weight in
:mod:`cascam.threshold.weights`, and :func:`ebayes_threshold_maps`, the batched thresholding of CAM
stacks that the cascade calls, in :mod:`cascam.threshold.maps`. R's numerics come from
:mod:`cascam.threshold.rmath` (R's ``pnorm``/``dnorm`` algorithms, ``exp`` and ``log`` of the C
library as R's, its long-double ``sum``), the estimate of ``a`` from :mod:`cascam.threshold.lbfgsb`
(R's ``optim(method = "L-BFGS-B")`` step for step); the fixed 30-step bisections are R's. Results
agree with R's to about 1e-13 relative, ``a`` estimated or not (checked against 2603 outputs of the
R package and 72 regression cases in ``tests/test_ebayesthresh.py``).

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .maps import ebayes_threshold, ebayes_threshold_maps
from .priors import (
    PRIORS,
    THRESHRULES,
    _fixed_a,
    _postmed_laplace,
    _prior_code,
    beta_cauchy,
    beta_laplace,
    cauchy_medzero,
    cauchy_threshzero,
    laplace_threshzero,
    postmean,
    postmean_cauchy,
    postmean_laplace,
    postmed,
    postmed_cauchy,
    postmed_laplace,
    tfromw,
    threshld,
    vecbinsolv,
    wfromt,
    wpost_laplace,
)
from .rmath import ArrayLike, as_vector, is_na, mad, r_mean, scalar_or_vector
from .weights import _wfromx, isotone, negloglik_laplace, tfromx, wandafromx, wfromx, wmonfromx, zetafromx

__all__ = [
    "PRIORS",
    "THRESHRULES",
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

# ----------------------------------------------------------------------------------------------
# The main entry points
# ----------------------------------------------------------------------------------------------


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

    R: the list that ``ebayesthresh(..., verbose = TRUE)`` returns.

    Example:
        >>> x = [0.3, -1.2, 4.5, 0.1, -3.8, 0.7, -0.4, 2.9]
        >>> r = ebayesthresh(x, sdev=1, verbose=True)
        >>> r.prior, r['threshrule'], round(r.w, 4) == round(r['w'], 4)
        ('laplace', 'median', True)
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

    R: ``ebayesthresh(x, prior = "laplace", a = 0.5, bayesfac = FALSE, sdev = NA, verbose = FALSE,
    threshrule = "median", universalthresh = TRUE, stabadjustment)``.

    Example:
        >>> x = [0.3, -1.2, 4.5, 0.1, -3.8, 0.7, -0.4, 2.9]
        >>> np.round(ebayesthresh(x, sdev=1), 4)
        array([ 0.    , -0.26  ,  3.9998,  0.    , -3.2971,  0.    , -0.    ,
                2.3636])
        >>> list(ebayesthresh(x, sdev=1, prior='cauchy', verbose=True))[:4]
        ['muhat', 'x', 'threshold.sdevscale', 'threshold.origscale']
    """
    pr = _prior_code(prior)
    if threshrule not in THRESHRULES:
        raise ValueError(
            f"threshrule: unknown threshold rule {threshrule!r}; choose one of {', '.join(THRESHRULES)}"
        )
    shape = np.shape(x)
    xv = as_vector(x)
    sd = as_vector(np.nan if sdev is None else sdev, "sdev")
    if sd.size == 1:
        if stabadjustment is not None:
            raise ValueError("stabadjustment: not applicable when variances are homogeneous (scalar sdev)")
        sdev_used: float | np.ndarray = mad(xv, center=0.0) if np.isnan(sd[0]) else float(sd[0])
        stab = True
        m_sdev = float(sdev_used)
    else:
        if pr == "c":
            raise ValueError("sdev: the standard deviation has to be homogeneous for the Cauchy prior")
        if sd.size != xv.size:
            raise ValueError("sdev: has to be homogeneous (scalar) or have the same length as x")
        sdev_used = sd
        stab = bool(stabadjustment)
        m_sdev = r_mean(sd)
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
    if pr == "l" and is_na(a):
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
        threshold_sdevscale=scalar_or_vector(tt),
        threshold_origscale=scalar_or_vector(tcor),
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

    R: ``ebayesthresh.wavelet(x.dwt, vscale = "independent", smooth.levels = Inf, prior = "laplace",
    a = 0.5, bayesfac = FALSE, threshrule = "median")`` (the ``wd`` method's level loop).

    Example:
        >>> d = {0: [3.0], 1: [0.2, -2.5], 2: [0.1, -0.3, 4.0, 0.05]}
        >>> np.round(ebayesthresh_wavelet(d, vscale=1.0)[2], 3)
        array([ 0.   , -0.   ,  3.496,  0.   ])
    """
    levels = dict(enumerate(details)) if not isinstance(details, Mapping) else dict(details)
    coeffs = {int(j): as_vector(v, f"details[{j}]") for j, v in levels.items()}
    nlevs = len(coeffs)
    if sorted(coeffs) != list(range(nlevs)):
        raise ValueError(f"details: levels must be 0 … {nlevs - 1}; got {sorted(coeffs)}")
    slevs = min(nlevs - 1, smooth_levels)
    sdev: float | None
    if isinstance(vscale, str):
        if vscale[:1] == "i":
            sdev = mad(coeffs[nlevs - 1])
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
