"""ROAD faithfulness: the tidy frame on a tiny cascade, tie-free ranks, and a constructed model whose
confidence depends only on a known region."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_toy_data
from torch import nn

from cascam import CascadeConfig, run_cascade
from cascam.faithfulness import faithfulness_frame, rank_maps, road_scores

pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # grad-cam's np.percentile


class RegionModel(nn.Module):
    """Logits (−z, z) with z = 20·(mean brightness of rows/cols 8:16 − 0.5): only that region matters."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        z = 20 * (x[:, :, 8:16, 8:16].mean(dim=(1, 2, 3)) - 0.5)
        return torch.stack([-z, z], dim=1) + 0 * self.dummy


def test_removing_the_region_the_model_uses_costs_more_confidence_than_removing_another():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g) * 0.2
    x[:, :, 8:16, 8:16] = 1.0  # bright region → class 1 with p ≈ 1
    on = torch.zeros(4, 32, 32)
    on[:, 8:16, 8:16] = 1.0  # the map marks the region (64 px = 6.25 % of the image)
    off = torch.zeros(4, 32, 32)
    off[:, 20:28, 20:28] = 1.0  # the map marks somewhere else
    classes = [1, 1, 1, 1]
    right = road_scores(RegionModel(), x, on, classes, percents=(10,))
    wrong = road_scores(RegionModel(), x, off, classes, percents=(10,))
    assert (right[(10, "most")] < -0.9).all()  # the region is imputed from its dark surround: confidence gone
    assert (np.abs(wrong[(10, "most")]) < 1e-3).all()
    assert (right[(10, "most")] < wrong[(10, "most")]).all()
    assert (np.abs(right[(10, "least")]) < 1e-3).all()  # the least relevant 10 % lie outside the region


def test_rank_maps_breaks_ties_so_every_map_removes_the_same_share():
    maps = np.zeros((2, 8, 8), dtype=np.float32)
    maps[0, :2] = 1.0
    ranked = rank_maps(maps, seed=1)
    for r in ranked:
        np.testing.assert_array_equal(np.sort(r.ravel()), np.arange(64, dtype=np.float32) / 63)
    assert (ranked[0, :2].min() > ranked[0, 2:].max())  # order kept where values differ
    np.testing.assert_array_equal(ranked, rank_maps(maps, seed=1))
    with pytest.raises(ValueError, match="maps: expected"):
        rank_maps(maps[0])


def test_faithfulness_frame_on_a_tiny_cascade(tmp_path):
    cfg = CascadeConfig(n_images=96, image_size=32, K=2, epochs=1, min_epochs=0, batch_size=32, device="cpu",
                        progress=False)
    cascade = run_cascade(cfg, tmp_path / "runs", data=make_toy_data())
    images = cascade.data.images[:3]
    state = torch.get_rng_state()
    frame = faithfulness_frame(cascade, images, percents=(10, 50))
    assert torch.equal(state, torch.get_rng_state())
    assert list(frame.columns) == ["method", "model", "image", "percentile", "order", "score"]
    # cam, fullgrad, cascam on model 1 and the two stages on models 1, 2: 5 × 3 images × 2 percents × 2 orders
    assert len(frame) == 5 * 3 * 2 * 2
    assert set(frame["method"]) == {"cam", "fullgrad", "cascam", "cascam_stage"}
    assert sorted(frame.loc[frame["method"] == "cascam_stage", "model"].unique()) == [1, 2]
    assert np.isfinite(frame["score"]).all() and frame["score"].between(-1, 1).all()
    again = faithfulness_frame(cascade, images, percents=(10, 50))
    assert again.equals(frame)  # seeded imputation noise
