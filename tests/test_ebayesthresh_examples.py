"""A few literal outputs of the R package EbayesThresh 1.4-12 (R 4.2.2), checked without the case file.

The values were produced by R, e.g. ``ebayesthresh(x, sdev = 1, verbose = TRUE)``; see
tests/test_ebayesthresh.py for the full reference set.
"""

from __future__ import annotations

import numpy as np
import pytest

from cascam.threshold.ebayesthresh import (
    beta_laplace,
    ebayesthresh,
    tfromw,
    wandafromx,
    wfromt,
)

X10 = [
    2.188648,
    6.541683,
    -5.227337,
    -2.506536,
    -0.557311,
    -0.143559,
    1.091502,
    -0.622944,
    -0.90746,
    -1.593713,
]

X50 = [
    0.003094, -0.630985, -0.948741, -1.659549, 0.196371, 3.197988, -1.670141, -1.169067, 7.433992, -0.852178,
    -2.139981, 0.805348, 0.518818, 0.534956, -0.045071, 2.042334, 0.559111, -1.006368, 1.135043, 1.354031,
    -0.827337, 0.780458, 0.360567, 0.35666, 3.245612, -0.212555, 1.007315, -1.615827, -1.571089, -1.668719,
    -3.337197, -0.032189, -0.845251, 0.695752, -2.869078, -0.661026, -0.122498, -0.264632, 0.179853, -0.795578,
    0.562238, -0.198461, 2.614866, 0.606196, -1.040814, -0.744759, 1.763686, 1.366377, 2.215766, -1.023115,
]  # fmt: skip


def test_ebayesthresh_posterior_median_sdev_1():
    r = ebayesthresh(X10, sdev=1, verbose=True)
    np.testing.assert_allclose(
        r["muhat"],
        [1.6241566404903276, 6.041682996110096, -4.727332472340178, -1.9689770659208616, 0, 0,
         0.44531672545338774, -0.04601064737093008, -0.2759020766695674, -0.9666563269511077],
        rtol=1e-10, atol=1e-14,
    )  # fmt: skip
    assert r["threshold.sdevscale"] == pytest.approx(0.5589124958496541, rel=1e-12)
    assert r.w == pytest.approx(0.8549658997344431, rel=1e-12)
    assert r["a"] == 0.5 and r["prior"] == "laplace" and r["sdev"] == 1


def test_wandafromx_matches_r_optim():
    r = wandafromx(X50, 1, True)
    assert r["w"] == pytest.approx(0.47293375222201334, rel=1e-10)
    assert r["a"] == pytest.approx(0.7014862778071075, rel=1e-10)


def test_building_blocks():
    np.testing.assert_allclose(
        beta_laplace([0, -0.3, 1, 8, 37], 1, 0.5),
        [
            -0.5618177717731538,
            -0.5481854173731364,
            -0.3800417166060108,
            1026980615772.4113,
            6.3445395441725995e265,
        ],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        wfromt([0, 1, 3, 10], 1, "laplace", 0.5),
        [1, 0.7341871877889183, 0.0661925474440213, 4.031174157720004e-20],
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        tfromw([1e-06, 0.1, 0.5], 1, "laplace", False, 0.5),
        [5.844691846752539, 2.8163059337530285, 1.6743986180517823],
        rtol=1e-12,
    )


def test_r_errors_raise_value_error():
    with pytest.raises(ValueError, match="stabadjustment"):
        ebayesthresh(X10, sdev=1, stabadjustment=True)
    with pytest.raises(ValueError, match="sdev"):
        ebayesthresh(np.zeros(50))  # mad(x, center = 0) is 0: R fails too
    with pytest.raises(ValueError, match="sdev"):
        ebayesthresh(X10, prior="cauchy", sdev=np.ones(10))
    with pytest.raises(ValueError, match="w"):
        tfromw([0.1, 0.2], prior="cauchy")
