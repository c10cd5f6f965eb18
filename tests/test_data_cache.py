"""The run store's cache of synthetic data sets returns exactly what the generator returns."""

from __future__ import annotations

import torch

import cascam.data.synthetic as synthetic
from cascam.data.cache import cached_synthetic, synthetic_key

ARGS = dict(n=12, size=32, variant="single", seed=4, artifact=True, version=2)


def _same(a, b):
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.clean_images, b.clean_images)
    assert torch.equal(a.object_masks, b.object_masks) and torch.equal(a.artifact_masks, b.artifact_masks)
    assert a.parts.keys() == b.parts.keys()
    assert all(torch.equal(a.parts[k], b.parts[k]) for k in a.parts)
    assert a.names == b.names and a.class_names == b.class_names
    assert a.meta["benchmark_version"] == b.meta["benchmark_version"]


def test_a_cached_set_equals_the_generators_and_is_not_drawn_again(tmp_path, monkeypatch):
    fresh = synthetic.generate_synthetic(**ARGS)
    first = cached_synthetic(tmp_path, **ARGS)
    _same(first, fresh)
    assert (tmp_path / f"{synthetic_key(**ARGS)}.npz").exists()

    def refuse(*args, **kwargs):
        raise AssertionError("drawn again")

    monkeypatch.setattr(synthetic, "generate_synthetic", refuse)
    _same(cached_synthetic(tmp_path, **ARGS), fresh)


def test_every_argument_names_its_own_set():
    keys = {synthetic_key(**{**ARGS, name: value}) for name, value in
            [("n", 13), ("size", 48), ("variant", "multi_object"), ("seed", 5), ("artifact", False), ("version", 1)]}
    assert len(keys | {synthetic_key(**ARGS)}) == 7


def test_an_unreadable_file_is_drawn_again(tmp_path):
    path = tmp_path / f"{synthetic_key(**ARGS)}.npz"
    path.write_bytes(b"not a zip")
    _same(cached_synthetic(tmp_path, **ARGS), synthetic.generate_synthetic(**ARGS))
    assert path.stat().st_size > 1000  # rewritten


def test_a_run_draws_its_data_once(tmp_path, monkeypatch):
    from cascam import run_cascade
    from cascam.config import CascadeConfig

    cfg = CascadeConfig(n_images=24, image_size=16, K=1, epochs=1, min_epochs=0, patience=0, batch_size=16,
                        device="cpu", progress=False)
    first = run_cascade(cfg, tmp_path)
    calls = []
    original = synthetic.generate_synthetic
    monkeypatch.setattr(synthetic, "generate_synthetic", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = run_cascade(cfg, tmp_path)
    assert calls == [] and torch.equal(again.data.images, first.data.images)
