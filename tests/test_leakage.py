"""The mask probe: high when masks are class-dependent by construction, near chance when they are
not; the attenuation maps reproduce training; the cached table is read back without retraining.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import cascam.leakage as leakage
from cascam import CascadeConfig, run_cascade
from cascam.cascade import Cascade
from cascam.masking import mask_images
from tests.conftest import make_toy_data

TOY = dict(n_images=96, image_size=32, K=2, epochs=1, min_epochs=0, batch_size=32, device="cpu", progress=False)


@pytest.fixture(scope="module")
def toy_cascade(tmp_path_factory) -> Cascade:
    return run_cascade(CascadeConfig(**TOY), tmp_path_factory.mktemp("runs"), data=make_toy_data())


def _fabricated(tmp_path, monkeypatch, class_dependent: bool, n: int = 400) -> Cascade:
    """A cascade of two untrained models whose thresholded maps are made up: an 8×8 CAM-scale map
    holding one 3×3 block of raw value 20, in the left half for class 0 and the right half for
    class 1 (``class_dependent``), or anywhere regardless of the class."""
    from cascam.store import RunStore
    from cascam.training import split_indices

    cfg = CascadeConfig(**{**TOY, "n_images": n})
    data = make_toy_data(n)
    train, valid = split_indices(data.labels, cfg.valid_fraction, cfg.seed)
    record = RunStore(tmp_path).open(cfg)
    models = [torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)]  # never called: trace is fabricated
    rng = np.random.default_rng(1)

    def fake_trace(self, images, labels=None, batch_size=128):
        maps = []
        for _ in range(self.K):
            m = torch.zeros(len(images), 8, 8)
            for i, y in enumerate(labels.tolist()):
                col = rng.integers(0, 2) * 4 + rng.integers(0, 2) if not class_dependent else 4 * y + rng.integers(0, 2)
                row = rng.integers(0, 6)
                m[i, row : row + 3, col : col + 3] = 20.0
            maps.append(m)
        return {"thresholded": maps, "targets": labels}

    monkeypatch.setattr(Cascade, "trace", fake_trace)
    return Cascade(cfg, record, data, train, valid, models)


def test_probe_reads_class_dependent_masks(tmp_path, monkeypatch):
    cascade = _fabricated(tmp_path, monkeypatch, class_dependent=True)
    assert leakage.mask_probe_accuracy(cascade, 2, seed=0) > 0.9


def test_probe_is_near_chance_on_class_independent_masks(tmp_path, monkeypatch):
    cascade = _fabricated(tmp_path, monkeypatch, class_dependent=False)
    assert leakage.mask_probe_accuracy(cascade, 2, seed=0) < 0.7


def test_first_iteration_is_chance_without_training(toy_cascade, monkeypatch):
    monkeypatch.setattr(leakage, "train_probe", lambda *a, **k: pytest.fail("k = 1 has no mask to probe"))
    assert leakage.mask_probe_accuracy(toy_cascade, 1) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="k: must be in"):
        leakage.mask_probe_accuracy(toy_cascade, 3)


def test_attenuation_maps_reproduce_the_training_masks(toy_cascade):
    """exp(−θ·M_1) applied with the multiply fill gives exactly x^(2) of the trace."""
    c = toy_cascade
    a = leakage.attenuation_maps(c.truncated(1), size=32)[:, 0]  # (N, 32, 32): image resolution
    x = c.data.images[:8].float() / 255
    tr = c.trace(c.data.images[:8], c.data.labels[:8])
    assert torch.allclose(mask_images(x, tr["thresholded"][0], c.config.theta), tr["x"][1])
    from cascam.masking import minmax_images

    assert torch.allclose(minmax_images(x * a[:8, None]), tr["x"][1], atol=1e-5)
    assert a.min() >= 0 and a.max() <= 1 and (a < 1).any()


def test_attenuation_maps_follow_the_dilated_masks(toy_cascade):
    """With ``mask_dilate`` the probe sees the grown masks that training applied, not the raw ones."""
    c = toy_cascade
    grown = Cascade(c.config.replace(mask_dilate=0.1), c.record, c.data, c.train_index, c.valid_index,
                    c.models[:1], c.device)
    plain = leakage.attenuation_maps(c.truncated(1), size=32)[:8, 0]
    a = leakage.attenuation_maps(grown, size=32)[:8, 0]
    x = c.data.images[:8].float() / 255
    tr = grown.trace(c.data.images[:8], c.data.labels[:8])
    from cascam.masking import minmax_images

    assert torch.allclose(minmax_images(x * a[:, None]), mask_images(x, tr["thresholded"][0], c.config.theta,
                                                                      dilate=0.1), atol=1e-5)
    assert (a <= plain + 1e-6).all() and (a < plain - 1e-3).any()  # more pixels darkened, none less


def test_leakage_table_is_cached_and_read_back(toy_cascade, monkeypatch):
    table = leakage.leakage_table(toy_cascade, epochs=2)
    assert list(table["iteration"]) == [1, 2]
    for col in ("valid_accuracy_own", "valid_accuracy_original", "mask_probe_accuracy", "chance"):
        assert table[col].between(0, 1).all(), col
    assert table["valid_accuracy_clean"].isna().all()  # the toy data has no box-free twins
    assert table["mask_probe_accuracy"].iloc[0] == table["chance"].iloc[0]
    assert (toy_cascade.record.dir / "leakage.csv").exists()

    monkeypatch.setattr(leakage, "train_probe", lambda *a, **k: pytest.fail("cached: must not retrain"))
    monkeypatch.setattr(leakage, "attenuation_maps", lambda *a, **k: pytest.fail("cached: must not trace"))
    again = leakage.leakage_table(toy_cascade, epochs=2)
    assert np.allclose(again["mask_probe_accuracy"], table["mask_probe_accuracy"])
    short = leakage.leakage_table(toy_cascade.truncated(1), epochs=2)
    assert list(short["iteration"]) == [1]
    without = leakage.leakage_table(toy_cascade, probe=False)
    assert "mask_probe_accuracy" not in without.columns
