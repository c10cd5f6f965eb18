"""The cascade end to end on a toy set: caching, resuming, determinism, explanation."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

import cascam.cascade as cascade_mod
from cascam import CascadeConfig, run_cascade
from cascam.masking import combine_maps, mask_images, normalize_maps
from cascam.store import load_record

TOY = dict(n_images=96, image_size=32, K=3, epochs=2, min_epochs=1, patience=1, batch_size=32, progress=False, device="cpu")


def _states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_finished_run_is_loaded_not_retrained(toy_data, store, monkeypatch):
    cfg = CascadeConfig(**TOY)
    first = run_cascade(cfg, store, data=toy_data)
    assert first.record.is_complete and first.record.iterations_done() == [1, 2, 3]

    def boom(*a, **k):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(cascade_mod, "train_classifier", boom)
    second = run_cascade(cfg, store, data=toy_data)
    assert all(_states_equal(a, b) for a, b in zip(first.models, second.models))
    x = toy_data.images[:6]
    assert torch.equal(first.explain(x, toy_data.labels[:6]), second.explain(x, toy_data.labels[:6]))


def test_resume_after_kill_trains_only_missing_iterations(toy_data, store, monkeypatch):
    cfg = CascadeConfig(**TOY)
    full = run_cascade(cfg, store.__class__(store.root / "full"), data=toy_data)
    # a run that died after iteration 1: iteration 2 and 3 folders and the status are missing
    partial = run_cascade(cfg, store, data=toy_data)
    for k in (2, 3):
        shutil.rmtree(partial.record.iteration_dir(k))
    (partial.record.dir / "status.json").unlink()
    trained = []
    real = cascade_mod.train_classifier

    def spy(*a, **k):
        trained.append(k["desc"])
        return real(*a, **k)

    monkeypatch.setattr(cascade_mod, "train_classifier", spy)
    resumed = run_cascade(cfg, store, data=toy_data)
    assert trained == ["model 2/3", "model 3/3"]
    assert resumed.record.is_complete
    assert all(_states_equal(a, b) for a, b in zip(full.models, resumed.models))


def test_same_seed_gives_identical_models_and_maps(toy_data, tmp_path):
    cfg = CascadeConfig(**TOY)
    a = run_cascade(cfg, tmp_path / "a", data=toy_data)
    b = run_cascade(cfg, tmp_path / "b", data=toy_data)
    assert all(_states_equal(m, n) for m, n in zip(a.models, b.models))
    assert torch.equal(a.explain(toy_data.images, toy_data.labels), b.explain(toy_data.images, toy_data.labels))


def test_trace_reproduces_the_masking_formula(toy_data, store):
    cfg = CascadeConfig(**TOY)
    c = run_cascade(cfg, store, data=toy_data)
    t = c.trace(toy_data.images[:5], toy_data.labels[:5])
    assert len(t["x"]) == 3 and len(t["cams"]) == 3
    for k in range(2):
        expected = mask_images(t["x"][k], t["thresholded"][k], cfg.theta)
        assert torch.allclose(t["x"][k + 1], expected)
    # thresholded maps keep about 10% of the pixels
    kept = (t["thresholded"][0] > 0).float().mean().item()
    assert 0.09 <= kept <= 0.2


def test_explain_is_the_weighted_sum_of_normalised_stages(toy_data, store):
    cfg = CascadeConfig(**TOY)
    c = run_cascade(cfg, store, data=toy_data)
    x, y = toy_data.images[:4], toy_data.labels[:4]
    combined, ths = c.explain(x, y, return_stages=True)
    assert combined.shape == (4, 32, 32)
    assert torch.allclose(combined, combine_maps(ths, cfg.lam, "paper"))
    assert combined.min() >= 0 and combined.max() <= 1
    stages = c.stage_maps(x, y)
    assert all(torch.allclose(s, normalize_maps(t)) for s, t in zip(stages, ths))
    # changing λ needs no retraining and changes the map
    uniform = c.explain(x, y, lam=0.0)
    assert not torch.allclose(uniform, combined)


def test_masked_explanation_variant_uses_masked_inputs(toy_data, store):
    cfg = CascadeConfig(**TOY, explain_on="masked")
    c = run_cascade(cfg, store, data=toy_data)
    x, y = toy_data.images[:4], toy_data.labels[:4]
    _, ths = c.explain(x, y, return_stages=True)
    t = c.trace(x, y)
    assert all(torch.allclose(a, b) for a, b in zip(ths, t["thresholded"]))


def test_stats_record_timings_and_leakage(toy_data, store):
    c = run_cascade(CascadeConfig(**TOY), store, data=toy_data)
    table = c.iteration_table()
    for col in ("train_seconds", "explain_seconds", "mask_seconds", "epochs_run", "stopped_early", "valid_accuracy_own",
                "valid_accuracy_original"):
        assert col in table.columns
    assert table["train_seconds"].gt(0).all()
    rec = load_record(c.record.dir)
    assert rec.config.key() == c.config.key()


def test_image_size_mismatch_is_reported(toy_data, store):
    with pytest.raises(ValueError, match="image_size: data has images of 32×32"):
        run_cascade(CascadeConfig(**{**TOY, "image_size": 48}), store, data=toy_data)


def test_longer_run_extends_a_shorter_one_and_lambda_never_retrains(toy_data, store, monkeypatch):
    short = run_cascade(CascadeConfig(**{**TOY, "K": 2}), store, data=toy_data)
    trained = []
    real = cascade_mod.train_classifier

    def spy(*a, **k):
        trained.append(k["desc"])
        return real(*a, **k)

    monkeypatch.setattr(cascade_mod, "train_classifier", spy)
    longer = run_cascade(CascadeConfig(**{**TOY, "K": 3}), store, data=toy_data)
    assert trained == ["model 3/3"]
    assert longer.record.dir == short.record.dir
    assert all(_states_equal(a, b) for a, b in zip(short.models, longer.models[:2]))
    run_cascade(CascadeConfig(**{**TOY, "K": 3, "lam": 0.0, "combine": "code"}), store, data=toy_data)
    run_cascade(CascadeConfig(**{**TOY, "K": 1}), store, data=toy_data)
    assert trained == ["model 3/3"]
    prefix = longer.truncated(2)
    x, y = toy_data.images[:4], toy_data.labels[:4]
    assert torch.equal(prefix.explain(x, y), short.explain(x, y))
    assert load_record(longer.record.dir).config.K == 3


def test_load_cascade_explains_without_data_and_rejects_foreign_checkpoints(toy_data, store):
    from cascam.cascade import load_cascade

    c = run_cascade(CascadeConfig(**TOY), store, data=toy_data)
    loaded = load_cascade(c.record.dir, device="cpu")
    assert loaded.data is None and loaded.K == 3
    x, y = toy_data.images[:4], toy_data.labels[:4]
    assert torch.equal(loaded.explain(x, y), c.explain(x, y))
    assert torch.equal(load_cascade(c.record.dir, device="cpu", K=2).explain(x, y), c.truncated(2).explain(x, y))
    torch.save({"bogus": torch.zeros(1)}, c.record.iteration_dir(2) / "model.pt")
    with pytest.raises(ValueError, match="checkpoint of iteration 2 .* does not load"):
        load_cascade(c.record.dir, device="cpu")


def test_cas_cam_with_the_cam_explainer_is_the_plain_cascade_and_a_mixed_list_runs(toy_data, tmp_path):
    plain = run_cascade(CascadeConfig(**TOY), tmp_path / "a", data=toy_data)
    listed = run_cascade(CascadeConfig(**{**TOY, "explainer": ["cam", "cam", "cam"]}), tmp_path / "b", data=toy_data)
    assert all(_states_equal(m, n) for m, n in zip(plain.models, listed.models))
    x, y = toy_data.images[:4], toy_data.labels[:4]
    assert torch.equal(plain.explain(x, y), listed.explain(x, y))
    mixed = run_cascade(CascadeConfig(**{**TOY, "explainer": ["cam", "gradcam", "layercam"]}), tmp_path / "c", data=toy_data)
    assert [mixed.record.stats(k)["explainer"] for k in (1, 2, 3)] == ["cam", "gradcam", "layercam"]
    assert _states_equal(mixed.models[0], plain.models[0])  # iteration 1 never depends on the explainer
    maps = mixed.explain(x, y)
    assert maps.shape == (4, 32, 32) and torch.isfinite(maps).all()


def test_a_class_without_images_is_named(store):
    from conftest import make_toy_data

    data = make_toy_data(n=24)
    data = data.subset([i for i in range(24) if data.labels[i] == 0] + [1])  # one dog only
    with pytest.raises(ValueError, match="class 'dog' has 1 image"):
        run_cascade(CascadeConfig(**{**TOY, "n_images": len(data)}), store, data=data)


def test_runs_that_differ_only_in_masking_share_model_1_and_end_as_if_trained_alone(toy_data, tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    first = run_cascade(CascadeConfig(**{**TOY, "K": 2}), shared, data=toy_data)
    other = CascadeConfig(**{**TOY, "K": 2, "theta": 0.8, "threshold": "none", "fill": "mean"})
    alone = run_cascade(other, tmp_path / "alone", data=toy_data)  # trained from scratch
    calls = []
    real_train = cascade_mod.train_classifier
    monkeypatch.setattr(cascade_mod, "train_classifier", lambda *a, **k: calls.append(k["desc"]) or real_train(*a, **k))
    reused = run_cascade(other, shared, data=toy_data)
    assert calls == ["model 2/2"]  # model 1 came from the first run
    assert reused.record.stats(1)["shared_from"] == first.record.dir.name
    assert reused.record.stats(1)["train_seconds"] == first.record.stats(1)["train_seconds"]
    assert "mask_seconds" in reused.record.stats(1)  # its own masking was timed
    assert all(_states_equal(m, n) for m, n in zip(reused.models, alone.models))
    x, y = toy_data.images[:4], toy_data.labels[:4]
    assert torch.equal(reused.explain(x, y), alone.explain(x, y))
    # A different seed or data set is a different model 1: nothing is shared.
    calls.clear()
    run_cascade(CascadeConfig(**{**TOY, "K": 1, "seed": 1}), shared, data=toy_data)
    assert calls == ["model 1/1"]


def test_evaluation_is_cached_per_method_and_baselines_serve_every_K(toy_data, store, monkeypatch):
    import cascam.evaluate as ev

    casc = run_cascade(CascadeConfig(**{**TOY, "K": 2}), store, data=toy_data)
    asked = []
    real = ev.method_maps
    monkeypatch.setattr(ev, "method_maps", lambda c, x, y, methods, **kw: asked.append(list(methods)) or real(c, x, y, methods, **kw))
    first = ev.evaluate(casc, ["cam", "cascam"], n_images=8)
    assert asked == [["cam", "cascam"]]
    again = ev.evaluate(casc.truncated(1), ["cam", "gradcam", "cascam"], n_images=8)
    assert asked[1:] == [["gradcam", "cascam"]]  # CAM explains model 1 for every K: read, not recomputed
    cam = lambda t: t[t["method"] == "CAM"].reset_index(drop=True)  # noqa: E731
    assert cam(first).equals(cam(again))
    assert ev.evaluate(casc, ["cam", "cascam"], n_images=8).equals(first) and len(asked) == 2
    # CasCAM's numbers differ between K = 1 and K = 2, so they were not shared
    k1, k2 = again[again.method == "CasCAM"], first[first.method == "CasCAM"]
    assert not np.allclose(k1["artifact_energy"].to_numpy(), k2["artifact_energy"].to_numpy())


def test_a_format_1_evaluation_cache_is_split_into_method_files_not_recomputed(toy_data, store, monkeypatch):
    import cascam.evaluate as ev

    casc = run_cascade(CascadeConfig(**{**TOY, "K": 2}), store, data=toy_data)
    base = ev.evaluate(casc, ["cam"], n_images=8)
    for f in (casc.record.dir / "evaluation").glob("*.csv"):
        f.unlink()
    # the file an older version wrote for all 11 methods at K = 2 (values: CAM's, relabelled)
    legacy = pd.concat([base.assign(method=label) for label in ev.METHOD_LABELS.values()], ignore_index=True)
    casc.record.write_frame(ev._cache_name(casc, ev.ALL_METHODS, "valid", 8), legacy)
    monkeypatch.setattr(ev, "method_maps", lambda *a, **k: pytest.fail("recomputed a cached method"))
    out = ev.evaluate(casc.truncated(1), ["gradcam", "scorecam"], n_images=8)
    assert sorted(out.method.unique()) == ["GradCAM", "ScoreCAM"] and len(out) == 2 * len(base)
    assert ev.evaluate(casc, ["cascam"], n_images=8)["method"].eq("CasCAM").all()
