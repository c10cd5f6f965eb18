"""L-BFGS-B as R's ``optim(method = "L-BFGS-B")`` runs it, step for step.

One concern: a port of L-BFGS-B version 2.3 (Zhu, Byrd, Lu & Nocedal, ACM TOMS 778, 1997; R's
src/appl/lbfgsb.c) and of R's ``optim`` driver around it (central finite-difference gradient,
default controls), so that a caller minimising the same function gets R's answer to the last bit
where the function values are R's. :func:`optim_lbfgsb` is the entry point; the EbayesThresh port
uses it to estimate (w, a) by marginal maximum likelihood (:func:`~cascam.threshold.ebayesthresh.wandafromx`).
The LINPACK and BLAS pieces that 2.3 calls (``dpofa``, ``dtrsl``, ``ddot``) accumulate left to right
without fused multiply-add, as the reference Fortran does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["optim_lbfgsb"]

_EPS = float(np.finfo(float).eps)  # DBL_EPSILON, L-BFGS-B's machine epsilon


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
            gamm = _cubic_gamma(theta, dx, dp)
            if stp < stx:
                gamm = -gamm
            r = (gamm - dx + theta) / (gamm - dx + gamm + dp)
            stpc = stx + r * (stp - stx)
            stpq = stx + dx / ((fx - fp) / (stp - stx) + dx) / 2.0 * (stp - stx)
            stpf = stpc if abs(stpc - stx) < abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
            self.brackt = True
        elif sgnd < 0:  # lower value, derivatives of opposite sign: bracketed
            stpc = _cubic_step(stp, fp, dp, stx, fx, dx)
            stpq = stp + dp / (dp - dx) * (stx - stp)
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            self.brackt = True
        elif abs(dp) < abs(dx):  # lower value, same sign, derivative decreasing
            theta = (fx - fp) * 3.0 / (stp - stx) + dx + dp
            gamm = _cubic_gamma(theta, dx, dp, clip=True)  # 0 where the cubic has no minimiser
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
                stpf = _cubic_step(stp, fp, dp, sty, fy, dy)
            else:
                stpf = self.stmax if stp > stx else self.stmin
        if fp > fx:
            sty, fy, dy = stp, fp, dp
        else:
            if sgnd < 0:
                sty, fy, dy = stx, fx, dx
            stx, fx, dx = stp, fp, dp
        return stx, fx, dx, sty, fy, dy, stpf


def _cubic_gamma(theta: float, d1: float, d2: float, clip: bool = False) -> float:
    r"""dcstep's :math:`\gamma=s\sqrt{(\theta/s)^2-(d_1/s)(d_2/s)}`, :math:`s=\max(|\theta|,|d_1|,|d_2|)`
    (scaled against overflow); with ``clip``, 0 where the radicand is negative."""
    s = max(abs(theta), abs(d1), abs(d2))
    q = (theta / s) ** 2 - d1 / s * (d2 / s)
    return 0.0 if clip and q < 0 else s * math.sqrt(q)


def _cubic_step(stp: float, fp: float, dp: float, sto: float, fo: float, do: float) -> float:
    """dcstep's minimiser of the cubic through (stp, fp, dp) and (sto, fo, do), stepping from stp.

    (fp − fo)/(sto − stp) is the same double as dcstep's (fo − fp)/(stp − sto): IEEE rounding is
    symmetric under negation.
    """
    theta = (fp - fo) * 3.0 / (sto - stp) + do + dp
    gamm = _cubic_gamma(theta, do, dp)
    if stp > sto:
        gamm = -gamm
    r = (gamm - dp + theta) / (gamm - dp + gamm + do)
    return stp + r * (sto - stp)


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

    def newest(self) -> int:
        """Column of the most recent stored pair (s, y) in the circular memory (1-based)."""
        p = self.head + self.col - 1
        return p - self.m if p > self.m else p

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
                f2 = max(f2, _EPS * f2_org)
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
            ipntr, jpntr = self.newest(), head
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
            ipntr, jpntr = head, self.newest()
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
    eps = _EPS
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


def optim_lbfgsb(
    fn: Callable[[np.ndarray], float],
    par: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    ndeps: float = 1e-3,
) -> np.ndarray:
    """R's ``optim(par, fn, method="L-BFGS-B", lower, upper)`` with default controls.

    The gradient is R's central difference with step ``ndeps``, shortened at the bounds (optim.c
    ``fmingr``): :math:`g_i=(f(p+h^+e_i)-f(p-h^-e_i))/(h^++h^-)`. Like R, a non-finite ``fn`` value
    or difference quotient stops with an error (here :class:`ValueError`). Every bound must be finite.

    Example (R gives the same, ``optim(c(0.5, 0.5), f, method = "L-BFGS-B", lower = 0, upper = 1)``):
        >>> import numpy as np
        >>> p = optim_lbfgsb(lambda p: (p[0] - 0.25) ** 2 + (p[1] - 2) ** 2, np.array([0.5, 0.5]),
        ...                  np.zeros(2), np.ones(2))
        >>> np.round(p, 6)
        array([0.25, 1.  ])
    """

    def fg(p: np.ndarray) -> tuple[float, np.ndarray]:
        f = fn(p)
        if not math.isfinite(f):
            raise ValueError("L-BFGS-B needs finite values of 'fn' (as in R)")
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
                raise ValueError(f"non-finite finite-difference value [{i + 1}] (as in R)")
        return f, g

    return _lbfgsb_r(fg, np.asarray(par, dtype=np.float64), lower, upper)
