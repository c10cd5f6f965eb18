"""The shortcut study (page 09): its measurements on constructed maps, its formatting, its choice of
regime, its caching in the run store, and the page's path without photos (the recorded CSV)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from cascam.config import CascadeConfig, ConfigError
from cascam.data.folder import ArtifactFolderWriter
from cascam.shortcut_study import (
    STUDY_COLUMNS,
    Regime,
    box_scores,
    choose_shortcut_regime,
    format_study_table,
    read_recorded,
    run_study,
    summarize_box,
    write_recorded,
)
from cascam.stats import wilson_interval

ROOT = Path(__file__).resolve().parents[1]


def _box(size=8, y0=2, y1=4, x0=5, x1=8):
    r = torch.zeros(size, size, dtype=torch.bool)
    r[y0:y1, x0:x1] = True
    return r


def test_a_map_peaking_in_the_box_points_at_it_and_its_energy_is_its_mass_there():
    box = _box()
    inside = torch.zeros(8, 8)
    inside[3, 6] = 1.0  # the peak, in the box
    inside[0, 0] = 0.5  # more mass outside
    outside = torch.zeros(8, 8)
    outside[7, 1] = 1.0
    outside[2, 5] = 0.25
    maps = torch.stack([inside, outside])
    got = box_scores(maps, torch.stack([box, box]))
    assert got["box_pointing"].tolist() == [1.0, 0.0]
    # min is 0 and max 1, so the normalised map is the map itself: energy = mass in the box / all mass
    assert got["box_energy"][0] == pytest.approx(1.0 / 1.5)
    assert got["box_energy"][1] == pytest.approx(0.25 / 1.25)


def test_energy_does_not_depend_on_the_maps_scale_and_offset():
    box = _box()
    rng = np.random.default_rng(0)
    m = torch.from_numpy(rng.random((1, 8, 8))).float()
    a = box_scores(m, box[None])["box_energy"]
    b = box_scores(3 * m + 7, box[None])["box_energy"]
    s = (m - m.min()) / (m.max() - m.min())
    assert a == pytest.approx(b, rel=1e-5)
    assert a[0] == pytest.approx(float((s * box).sum() / s.sum()), rel=1e-5)


def test_summarize_box_gives_the_rate_mean_and_intervals_around_them():
    s = summarize_box([1, 0, 1, 1, 1, 0, 1, 1], [0.2, 0.1, 0.3, 0.4, 0.2, 0.0, 0.3, 0.5])
    assert s["n"] == 8 and s["box_pointing"] == pytest.approx(0.75) and s["box_energy"] == pytest.approx(0.25)
    assert s["box_pointing_low"] < 0.75 < s["box_pointing_high"] <= 1.0
    assert s["box_energy_low"] < 0.25 < s["box_energy_high"]
    assert summarize_box([1, 1, 1], [0.5, 0.5, 0.5])["box_pointing_low"] == 1.0


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = wilson_interval(8, 10)  # Newcombe (1998): 0.4902 to 0.9433
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)


def _row(regime, size, pointing, low, high, share=0.03, pretrained=True):
    return {"regime": regime, "arch": "x", "pretrained": pretrained, "image_size": size, "n_train": 644,
            "n_valid": 129, "n_original": 129, "accuracy_box": 0.9, "accuracy_box_low": 0.85,
            "accuracy_box_high": 0.94, "accuracy_original": 0.5, "accuracy_original_low": 0.41,
            "accuracy_original_high": 0.59, "box_pointing": pointing, "box_pointing_low": low,
            "box_pointing_high": high, "box_energy": 0.12345, "box_energy_low": 0.1, "box_energy_high": 0.15,
            "box_area_share": share, "epochs_run": 2, "train_seconds": 10.0, "run": "abc"}


def test_the_table_for_people_rounds_percentages_and_writes_intervals():
    t = format_study_table(pd.DataFrame([_row("probe", 224, 0.1234, 0.091, 0.158)]))
    assert t.loc[0, "CAM peaks on the box"] == "12.3 % [9.1, 15.8]"
    assert t.loc[0, "accuracy on box-free originals"] == "50.0 % [41.0, 59.0]"
    assert t.loc[0, "CAM mass on the box"] == "12.3 % [10.0, 15.0]"
    assert t.loc[0, "image size"] == "224 px"


def test_the_chosen_regime_points_at_the_box_most_often_and_above_chance():
    table = pd.DataFrame([_row("a", 128, 0.20, 0.12, 0.28), _row("b", 224, 0.60, 0.50, 0.70),
                          _row("c", 128, 0.70, 0.01, 0.99)])  # c: highest, but its interval reaches chance
    assert choose_shortcut_regime(table)["regime"] == "b"
    assert choose_shortcut_regime(pd.DataFrame([_row("a", 128, 0.05, 0.01, 0.09)])) is None


def test_recorded_csv_round_trips_with_its_provenance(tmp_path):
    table = pd.DataFrame([_row("a", 128, 0.2, 0.1, 0.3)], columns=list(STUDY_COLUMNS))
    write_recorded(tmp_path / "s.csv", table, {"command": "python x.py", "commit": "abc1234"})
    back, prov = read_recorded(tmp_path / "s.csv")
    assert prov == {"command": "python x.py", "commit": "abc1234"}
    pd.testing.assert_frame_equal(back, table)


def _photo_folder(root: Path, n: int = 16, without_original: tuple[int, ...] = (1, 4, 9, 14)) -> Path:
    """``n`` noise photos of 32 px with label boxes, all with originals except ``without_original``."""
    writer = ArtifactFolderWriter(root, size=32, save_originals=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        label = i % 2
        name = f"Cat_{i}.jpg" if label == 0 else f"dog_{i}.jpg"
        writer.add(name, Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)), label)
    writer.finish()
    csv = root / "artifacts.csv"
    table = pd.read_csv(csv)
    table.loc[list(without_original), "has_original"] = 0
    table.to_csv(csv, index=False)
    return root


def test_only_with_original_needs_a_folder():
    with pytest.raises(ConfigError, match="only_with_original"):
        CascadeConfig(only_with_original=True)


def test_the_study_is_cached_in_the_run_store_and_a_rerun_trains_nothing(tmp_path, monkeypatch):
    import cascam.cascade as cascade_module

    folder = _photo_folder(tmp_path / "photos")
    calls = []
    real = cascade_module.train_classifier

    def counting(*args, **kwargs):
        calls.append(kwargs.get("desc"))
        return real(*args, **kwargs)

    monkeypatch.setattr(cascade_module, "train_classifier", counting)
    base = CascadeConfig(data="folder", data_path=str(folder), n_images=0, only_with_original=True, image_size=32,
                         batch_size=8, device="cpu", progress=False)
    regimes = (Regime("scratch", "small_cnn", False, epochs=1, lr=2e-3, min_epochs=0),
               Regime("frozen", "small_cnn", False, epochs=1, freeze_epochs=1, train_bn=False, lr=2e-3, min_epochs=0))
    first = run_study(base, tmp_path / "runs", regimes, (32,), n_boot=200)
    assert len(calls) == 2
    assert list(first.columns) == list(STUDY_COLUMNS) and len(first) == 2
    # the 4 photos without an original are left out, and every validation photo has its original
    assert (first["n_train"] + first["n_valid"]).tolist() == [12, 12]
    assert (first["n_original"] == first["n_valid"]).all()
    assert first["accuracy_original"].between(0, 1).all() and first["box_pointing"].between(0, 1).all()
    assert first["run"].nunique() == 2
    second = run_study(base, tmp_path / "runs", regimes, (32,), n_boot=200)
    assert len(calls) == 2  # nothing retrained
    pd.testing.assert_frame_equal(first.drop(columns="train_seconds"), second.drop(columns="train_seconds"))


def test_a_frozen_body_without_batch_norm_training_keeps_every_body_weight(tmp_path):
    from cascam.cascade import run_cascade

    folder = _photo_folder(tmp_path / "photos")
    cfg = CascadeConfig(data="folder", data_path=str(folder), n_images=0, only_with_original=True, image_size=32,
                        batch_size=8, device="cpu", progress=False, K=1, epochs=1, freeze_epochs=1, train_bn=False,
                        min_epochs=0)
    torch.manual_seed(cfg.seed * 1000 + 1)  # the seed _train sets before building model 1
    from cascam.models import build_model

    fresh = build_model("small_cnn").features.state_dict()
    trained = run_cascade(cfg, tmp_path / "runs").models[0].features.state_dict()
    for name, value in fresh.items():
        assert torch.equal(value, trained[name]), name  # weights and running statistics alike


def test_the_page_without_photos_shows_the_recorded_study(tmp_path, monkeypatch):
    import nbformat

    from cascam.book import execute_notebook

    records = tmp_path / "records"
    records.mkdir()
    prov = {"command": "python benchmarks/shortcut_study.py --data X", "commit": "feed123", "date": "2026-11-30",
            "photos": "773 with originals", "machine": "CPU, 1 thread"}
    study = pd.DataFrame([_row("linear probe", 224, 0.1234, 0.091, 0.158),
                          _row("from scratch", 128, 0.642, 0.55, 0.73, pretrained=False)], columns=list(STUDY_COLUMNS))
    write_recorded(records / "shortcut_study.csv", study, prov)
    write_recorded(records / "pets_cpu_methods.csv", pd.DataFrame([
        {"method": "CasCAM", "n": 129, "box_pointing": 0.5, "box_pointing_low": 0.4, "box_pointing_high": 0.6,
         "box_energy": 0.2, "box_energy_low": 0.15, "box_energy_high": 0.25},
        {"method": "CAM", "n": 129, "box_pointing": 0.642, "box_pointing_low": 0.55, "box_pointing_high": 0.73,
         "box_energy": 0.3, "box_energy_low": 0.25, "box_energy_high": 0.35}]), {"what": "pets-cpu cascade"})
    write_recorded(records / "pets_cpu_models.csv", pd.DataFrame([
        {"model": k, "n_valid": 129, "valid_accuracy_own": 0.8, "valid_accuracy_own_low": 0.72,
         "valid_accuracy_own_high": 0.86, "valid_accuracy_original": 0.9, "valid_accuracy_original_low": 0.84,
         "valid_accuracy_original_high": 0.94, "valid_accuracy_clean": 0.6, "valid_accuracy_clean_low": 0.51,
         "valid_accuracy_clean_high": 0.68} for k in (1, 2)]), {"what": "pets-cpu cascade"})
    write_recorded(records / "pets_cpu_examples.csv", pd.DataFrame([
        {"image": "Russian_Blue_61.jpg", "method": "CasCAM", "box_pointing": 0.0, "box_energy": 0.05},
        {"image": "Russian_Blue_61.jpg", "method": "CAM", "box_pointing": 1.0, "box_energy": 0.4321}]), prov)
    (records / "figures").mkdir()
    Image.new("RGB", (40, 30), "white").save(records / "figures" / "example_Russian_Blue_61.png")
    work = tmp_path / "book"
    for name in ("notebooks", "profiles"):
        shutil.copytree(ROOT / name, work / name)
    shutil.copy(ROOT / "_config.yml", work)
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(work))
    monkeypatch.setenv("CASCAM_STORE", str(work / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = execute_notebook("09_real_photos", "smoke", {"records_dir": str(records)}, work, print)
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/html", ""))
        for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "recorded, not recomputed in this build" in text
    cells = [c for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" and c.get("outputs")]
    first = {key: next(i for i, c in enumerate(cells) if key in str(c["outputs"]))
             for key in ("Findings (recorded run", "this build has no photo folder")}
    assert first["Findings (recorded run"] < first["this build has no photo folder"]  # findings first, provenance after
    assert "feed123" in text and "python benchmarks/shortcut_study.py --data X" in text
    assert "64.2 % [55.0, 73.0]" in text  # the from-scratch row, rounded for people, in the findings and tables
    assert "12.3 % [9.1, 15.8]" in text
    # the closing paragraph reads the separation from the intervals: pretrained [9.1, 15.8] < scratch [55.0, 73.0]
    assert "depends on its starting point" in text
    assert "Traceback" not in text
    # one line per panel of the recorded example, from its measured peak and mass
    assert "- CasCAM: peaks off the box; 5.0 % of its mass on the box." in text
    assert "- CAM: peaks on the box; 43.2 % of its mass on the box." in text
    assert (work / "book/_build/pages/figures/example_Russian_Blue_61.png").is_file()
    shown = pd.read_csv(work / "book/_build/pages/tables/real_photos_study.csv", index_col=0)
    assert shown["CAM peaks on the box"].tolist() == ["12.3 % [9.1, 15.8]", "64.2 % [55.0, 73.0]"]
    models = pd.read_csv(work / "book/_build/pages/tables/real_photos_models.csv", index_col=0)
    assert models["accuracy on box-free originals"].tolist() == ["60.0 % [51.0, 68.0]"] * 2
    assert not list(work.glob("runs/*"))  # nothing was trained


def test_the_committed_record_has_the_study_columns_and_its_provenance():
    path = ROOT / "book" / "records" / "shortcut_study.csv"
    table, prov = read_recorded(path)
    assert list(table.columns) == list(STUDY_COLUMNS) and len(table) >= 1
    assert {"command", "commit", "date", "photos"} <= set(prov)
    assert table["box_pointing"].between(0, 1).all()
    assert (table["box_pointing_low"] <= table["box_pointing"]).all()
    assert (table["box_pointing"] <= table["box_pointing_high"]).all()


def test_a_folder_loads_just_the_named_photos_with_their_boxes(tmp_path):
    from cascam.data.folder import load_artifact_folder

    folder = _photo_folder(tmp_path / "photos")
    data = load_artifact_folder(folder, names=["dog_3.jpg", "Cat_0.jpg"])
    assert data.names == ["Cat_0.jpg", "dog_3.jpg"] and data.labels.tolist() == [0, 1]
    assert data.artifact_masks.flatten(1).any(1).all()
    with pytest.raises(FileNotFoundError, match="Nope.jpg"):
        load_artifact_folder(folder, names=["Nope.jpg"])


def test_the_page_without_photos_or_records_says_how_to_record_them(tmp_path, monkeypatch):
    import nbformat

    from cascam.book import execute_notebook

    work = tmp_path / "book"
    for name in ("notebooks", "profiles"):
        shutil.copytree(ROOT / name, work / name)
    shutil.copy(ROOT / "_config.yml", work)
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(work))
    monkeypatch.setenv("CASCAM_STORE", str(work / "runs"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    out = execute_notebook("09_real_photos", "smoke", {"records_dir": str(tmp_path / "empty")}, work, print)
    text = "\n".join(str(o.get("data", {}).get("text/markdown", ""))
                     for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "no recorded study" in text and "benchmarks/shortcut_study.py" in text
    assert not (work / "book/_build/pages/tables/real_photos_study.csv").exists()
