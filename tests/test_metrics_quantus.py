"""cascam.metrics against Quantus 0.6 where the definitions coincide (module notes of cascam.metrics, § Quantus).

Quantus is given the maps our metrics measure — S = prepare(saliency, mask size), min-max then bilinear —
with ``normalise=False, abs=False``, as numpy arrays (x_batch (B,3,H,W), y_batch, a_batch and s_batch
(B,1,H,W)), and a tiny torch model that its API accepts but these localisation metrics never call.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

quantus = pytest.importorskip("quantus")

from sklearn.metrics import roc_auc_score  # noqa: E402

from cascam.metrics import average_precision, energy_in_gt, pointing_game, prepare, topk_precision  # noqa: E402

H = W = 24
KW = {"abs": False, "normalise": False, "disable_warnings": True, "display_progressbar": False}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * H * W, 2)).eval()


def _quantus(metric, s: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Run a Quantus metric on prepared maps ``s`` (B, H, W) and masks ``g`` (B, H, W); float64 (B,)."""
    b = len(s)
    x = np.random.default_rng(0).random((b, 3, H, W)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = metric(model=_model(), x_batch=x, y_batch=np.zeros(b, dtype=int), a_batch=s[:, None].astype(np.float32),
                     s_batch=g[:, None].astype(np.float32), device="cpu")
    return np.asarray(out, dtype=np.float64)


def _cases(seed: int, b: int = 12, low: tuple[int, int] = (6, 6)):
    """Random low-resolution maps (continuous, so ties have probability 0 before the resize) and random
    non-empty rectangular masks at H × W (the bilinear upsampling of ``low`` maps ties pixels along the
    border, so the tests that rank pixels use full-resolution maps); returns the raw maps, the prepared maps S and the masks."""
    rng = np.random.default_rng(seed)
    raw = rng.normal(size=(b, *low)).astype(np.float32) * rng.uniform(0.1, 10, size=(b, 1, 1)).astype(np.float32)
    g = np.zeros((b, H, W), dtype=bool)
    for i in range(b):
        r0, c0 = rng.integers(0, H - 2, size=2)
        r1, c1 = r0 + rng.integers(2, H - r0 + 1), c0 + rng.integers(2, W - c0 + 1)
        g[i, r0:r1, c0:c1] = True
    s = prepare(raw, (H, W)).numpy()
    return raw, s, g


def _no_ties_at(s: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Rows whose k-th largest value is not tied with the (k+1)-th (where the top-k set is unambiguous)."""
    flat = -np.sort(-s.reshape(len(s), -1), axis=1)
    k = np.broadcast_to(k, len(s))
    return np.array([k[i] >= flat.shape[1] or flat[i, k[i] - 1] != flat[i, k[i]] for i in range(len(s))])


@pytest.mark.parametrize("seed", range(4))
def test_energy_in_gt_is_relevance_mass_accuracy(seed):
    raw, s, g = _cases(seed)
    ours = energy_in_gt(raw, g)
    np.testing.assert_allclose(ours, _quantus(quantus.RelevanceMassAccuracy(**KW), s, g), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours, energy_in_gt(s, g, normalized=True), rtol=0, atol=0)


@pytest.mark.parametrize("seed", range(4))
def test_pointing_game_is_quantus_pointing_game_when_the_maximum_is_unique(seed):
    raw, s, g = _cases(seed, low=(H, W))
    flat = s.reshape(len(s), -1)
    unique = (flat == flat.max(1, keepdims=True)).sum(1) == 1
    assert unique.sum() >= len(s) // 2
    theirs = _quantus(quantus.PointingGame(**KW), s, g)
    np.testing.assert_array_equal(pointing_game(raw, g)[unique], theirs[unique])


def test_pointing_game_ties_first_pixel_versus_any_tied_pixel():
    """Two maximal pixels, (0, 0) outside G and (6, 6) inside: ours points at the first in row-major
    order and misses; Quantus hits when *any* maximal pixel is in G. (Quantus refuses constant maps.)"""
    s = np.random.default_rng(0).uniform(0, 0.5, size=(1, H, W)).astype(np.float32)
    s[0, 0, 0] = s[0, 6, 6] = 1.0
    g = np.zeros((1, H, W), dtype=bool)
    g[0, 5:9, 5:9] = True
    np.testing.assert_array_equal(pointing_game(s, g, normalized=True), [0.0])
    np.testing.assert_array_equal(_quantus(quantus.PointingGame(**KW), s, g), [1.0])


@pytest.mark.parametrize("seed", range(4))
def test_topk_precision_at_the_mask_size_is_relevance_rank_accuracy(seed):
    raw, s, g = _cases(seed, low=(H, W))
    sizes = g.reshape(len(g), -1).sum(1)
    ours = np.array([topk_precision(raw[i : i + 1], g[i : i + 1], 100 * sizes[i] / (H * W))[0] for i in range(len(g))])
    theirs = _quantus(quantus.RelevanceRankAccuracy(**KW), s, g)
    clean = _no_ties_at(s, sizes)
    assert clean.sum() >= len(s) // 2
    np.testing.assert_allclose(ours[clean], theirs[clean], rtol=1e-12)


@pytest.mark.parametrize("k", [1, 17, 100, 300])
def test_topk_precision_is_topk_intersection(k):
    raw, s, g = _cases(10 + k, low=(H, W))
    ours = topk_precision(raw, g, 100 * k / (H * W))
    theirs = _quantus(quantus.TopKIntersection(k=k, **KW), s, g)
    clean = _no_ties_at(s, np.full(len(s), k))
    assert clean.sum() >= len(s) // 2
    np.testing.assert_allclose(ours[clean], theirs[clean], rtol=1e-12)


def test_quantus_auc_is_roc_auc_not_our_average_precision():
    """Quantus's AUC is the area under the ROC curve (sklearn roc_curve + auc); ours is the area under the
    precision–recall curve. They agree only at the top: a perfect ranking scores 1 in both (and a
    constant map, which Quantus refuses, would score 0.5 by ROC against the prevalence |G|/HW by AP)."""
    raw, s, g = _cases(3)
    theirs = _quantus(quantus.AUC(**KW), s, g)
    want = [roc_auc_score(g[i].ravel(), s[i].ravel()) for i in range(len(g))]
    np.testing.assert_allclose(theirs, want, rtol=1e-9)
    assert not np.allclose(theirs, average_precision(raw, g))
    perfect = g.astype(np.float32)  # every G pixel above every background pixel
    np.testing.assert_allclose(_quantus(quantus.AUC(**KW), perfect, g), 1.0)
    np.testing.assert_allclose(average_precision(perfect, g, normalized=True), 1.0)
