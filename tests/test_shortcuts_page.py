"""Page 08 on a photo folder without object masks: it reports the artifact energy per fill and K and
the leakage diagnostic instead of the pointing game, and runs the dilated fill as its own cascade."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from cascam import CascadeConfig
from cascam.store import RunStore
from tests.test_data_real import _write_artifact_folder

ROOT = Path(__file__).resolve().parents[1]


def test_the_fill_page_on_a_folder_reports_artifact_energy_and_dilated_runs(tmp_path, monkeypatch):
    import nbformat

    from cascam.book import execute_notebook

    folder = tmp_path / "photos"
    _write_artifact_folder(folder, n_cats=24, n_dogs=24, side=32)
    work = tmp_path / "book"
    for name in ("notebooks", "profiles"):
        shutil.copytree(ROOT / name, work / name)
    shutil.copy(ROOT / "_config.yml", work)
    store = work / "runs"
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(work))  # tables and status lines go to work, not the clone
    monkeypatch.setenv("CASCAM_STORE", str(store))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    params = dict(
        data="folder", data_path=str(folder), n_images=48, image_size=32, arch="small_cnn", epochs=1,
        min_epochs=0, patience=0, batch_size=16, device="cpu", n_eval=8, shortcut_n_images=0, shortcut_K=4,
        fills=["multiply"], dilate_fills=["multiply"], mask_dilate=0.1,
    )
    out = execute_notebook("08_shortcuts", "smoke", params, work, print)
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
        for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "no object masks" in text
    assert "- `multiply` (the paper’s fill): artifact energy" in text
    assert "- `multiply+dilate`: artifact energy" in text
    # the ladder of K starts at model 1's map alone: K = 1, then Table 6's K ≤ 4, then the last K
    assert re.search(r"`multiply` \(the paper’s fill\): artifact energy [\d.]+ \(K=1\) → [\d.]+ \(K=3\) → [\d.]+ \(K=4\)", text)
    assert re.search(r"mask probe \d+ %, its peak \d+ % before model [1-4] \(chance \d+ %\)", text)

    metrics = pd.read_csv(work / "book/_build/pages/tables/shortcuts_metrics.csv", header=[0, 1], index_col=[0, 1, 2])
    assert set(metrics.index.get_level_values("fill")) == {"multiply", "multiply+dilate"}
    assert list(metrics.columns.get_level_values(0).unique()) == ["artifact energy"]
    energy = metrics[("artifact energy", "mean")]
    assert energy.between(0, 1).all()
    # K = 1 is model 1 alone, which the two runs share: the same map, the same number
    assert energy[("folder", "multiply", 1)] == energy[("folder", "multiply+dilate", 1)]

    base = CascadeConfig(data="folder", data_path=str(folder), n_images=48, image_size=32, epochs=1, min_epochs=0,
                         patience=0, batch_size=16, K=4)
    runs = RunStore(store)
    assert runs.get(base).is_complete and runs.get(base.replace(mask_dilate=0.1)).is_complete
    assert runs.path(base) != runs.path(base.replace(mask_dilate=0.1))
