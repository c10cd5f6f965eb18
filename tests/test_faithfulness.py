"""ROAD faithfulness: the tidy frame on a tiny cascade, tie-free ranks, and a constructed model whose
confidence depends only on a known region."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_toy_data
from torch import nn

from cascam import CascadeConfig, run_cascade
from cascam.evaluate import METHOD_LABELS
from cascam.faithfulness import (
    RANDOM,
    TABLE5_METHODS,
    faithfulness_frame,
    faithfulness_grid,
    faithfulness_summary,
    faithfulness_table,
    interval_text,
    rank_maps,
    road_scores,
)

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


def _region_case():
    """Four images whose class is decided by a bright 8 × 8 region, and three maps: the region (the
    model's true evidence), its complement, and a random ranking."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g) * 0.2
    x[:, :, 8:16, 8:16] = 1.0
    evidence = torch.zeros(4, 32, 32)
    evidence[:, 8:16, 8:16] = 1.0
    maps = {"evidence": evidence, "complement": 1 - evidence,
            RANDOM: torch.rand(4, 32, 32, generator=torch.Generator().manual_seed(1))}
    rows = []
    for name, m in maps.items():
        for (p, o), values in road_scores(RegionModel(), x, m, [1] * 4, percents=(10,)).items():
            rows.append(pd.DataFrame({"method": name, "model": 1, "image": np.arange(4), "percentile": float(p),
                                      "order": o, "score": values}))
    return pd.concat(rows, ignore_index=True)


def test_the_true_evidence_beats_random_and_its_complement_under_most_and_least():
    summary = faithfulness_summary(_region_case(), reference="evidence", n_boot=200).set_index(["method", "order"])
    most, least = summary.xs("most", level="order")["mean"], summary.xs("least", level="order")["mean"]
    # most relevant first: removing the evidence costs the confidence, the others barely touch it
    assert most["evidence"] < -0.9 and abs(most[RANDOM]) < 0.05 and abs(most["complement"]) < 1e-3
    # least relevant first: the complement's least relevant pixels are the evidence
    assert abs(least["evidence"]) < 1e-3 and least["complement"] < -0.9
    # paired differences (evidence − method) and intervals around their means
    assert (summary.loc[[(RANDOM, "most"), ("complement", "most")], "diff_high"] < 0).all()
    assert np.isnan(summary.loc[("evidence", "most"), "diff"])
    assert (summary["ci_low"] <= summary["mean"] + 1e-12).all() and (summary["mean"] <= summary["ci_high"] + 1e-12).all()
    assert (summary["n_images"] == 4).all()


def test_faithfulness_table_has_one_readable_row_per_map():
    summary = faithfulness_summary(_region_case(), reference="evidence", n_boot=200)
    table = faithfulness_table(summary, 10, labels={"evidence": "Evidence"}, reference="evidence")
    assert list(table.index) == ["Evidence", "complement", RANDOM]
    assert list(table.columns) == ["most relevant 10 % removed", "least relevant 10 % removed",
                                   "Evidence − method, most relevant 10 % (paired)"]
    assert table.loc["Evidence", "Evidence − method, most relevant 10 % (paired)"] == "—"
    assert table.loc["complement", "most relevant 10 % removed"].count("[") == 1
    with pytest.raises(ValueError, match="percentile"):
        faithfulness_table(summary, 50)
    grid = faithfulness_grid(summary, "least", labels={"evidence": "Evidence"}, reference="evidence")
    assert list(grid.columns) == ["10 % removed"] and list(grid.index) == list(table.index)
    assert grid.loc["complement", "10 % removed"] == table.loc["complement", "least relevant 10 % removed"]


def test_interval_text_uses_a_true_minus_and_no_negative_zero():
    assert interval_text(-0.42, -0.47, -0.37, digits=2) == "−0.42 [−0.47, −0.37]"
    assert interval_text(-0.0001, -0.002, 0.003) == "0.000 [−0.002, 0.003]"
    assert interval_text(float("nan"), 0, 1) == "—"


def test_faithfulness_frame_on_a_tiny_cascade(tmp_path):
    cfg = CascadeConfig(n_images=96, image_size=32, K=2, epochs=1, min_epochs=0, batch_size=32, device="cpu",
                        progress=False)
    cascade = run_cascade(cfg, tmp_path / "runs", data=make_toy_data())
    images = cascade.data.images[:3]
    state = torch.get_rng_state()
    frame = faithfulness_frame(cascade, images, percents=(10, 50), cascam_on_every_model=True)
    assert torch.equal(state, torch.get_rng_state())
    assert list(frame.columns) == ["method", "model", "image", "percentile", "order", "score"]
    # every method of Table 5 and the random reference on model 1, CasCAM's combined map on model 2 as well,
    # and the two stages on models 1, 2: (11 + 1 + 1 + 2) maps × 3 images × 2 percents × 2 orders
    assert set(frame["method"]) == {*TABLE5_METHODS, RANDOM, "cascam_stage"}
    assert set(TABLE5_METHODS) == set(METHOD_LABELS)  # the book's Table 5 and this default list agree
    assert len(frame) == 15 * 3 * 2 * 2
    assert sorted(frame.loc[frame["method"] == "cascam_stage", "model"].unique()) == [1, 2]
    assert sorted(frame.loc[frame["method"] == "cascam", "model"].unique()) == [1, 2]
    assert np.isfinite(frame["score"]).all() and frame["score"].between(-1, 1).all()
    some = ("cam", "cascam")
    again = faithfulness_frame(cascade, images, methods=some, percents=(10, 50), cascam_on_every_model=True)
    kept = frame[frame["method"].isin([*some, "cascam_stage"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(again, kept)  # seeded imputation noise: the same scores in a smaller call
    table = faithfulness_table(faithfulness_summary(frame, n_boot=100), 10, labels=METHOD_LABELS)
    assert len(table) == 15 and "CasCAM on model 2" in table.index and "CasCAM stage 2 (model 2)" in table.index
    with pytest.raises(ValueError, match="unknown method"):
        faithfulness_frame(cascade, images, methods=("gradcam", "nope"))
