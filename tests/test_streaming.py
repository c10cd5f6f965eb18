"""The streamed cascade: x^(k) on disk, read batch by batch, equal to the in-memory path up to the stored
dtype's rounding; the file's life in the run folder; a resumed run that reads it instead of recomputing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import cascam.cascade as cascade_mod
from cascam import CascadeConfig, run_cascade
from cascam.cascade import cascade_step
from cascam.explainers import get_explainer
from cascam.hooks import PAUSE_ENV
from cascam.store import RunStore
from cascam.streaming import DiskImages, ImageWriter, TensorImages, iterate_batches, open_x, stream_dir, x_path

SMALL = dict(n_images=96, image_size=32, K=3, epochs=2, min_epochs=1, patience=1, batch_size=32, progress=False,
             device="cpu")


def _states_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _max_param_diff(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa)


# ---------------------------------------------------------------------- the reader and the writer
@pytest.mark.parametrize("dtype", ["float16", "float32", "uint8"])
def test_the_disk_reader_returns_the_rows_it_is_asked_for(tmp_path, dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(37, 3, 5, 4, generator=g)
    writer = ImageWriter(tmp_path / "x.npy", x.shape, dtype)
    for s in (0, 16, 32):  # batch by batch, out of order is allowed too
        writer[s : min(s + 16, 37)] = x[s : s + 16]
    reader = writer.finish()
    stored = {"float16": x.half(), "float32": x, "uint8": (x * 255).round().to(torch.uint8)}[dtype]
    assert reader.shape == (37, 3, 5, 4) and reader.dtype == stored.dtype and len(reader) == 37
    assert torch.equal(reader[3:11], stored[3:11])
    idx = torch.tensor([5, 4, 36, 0, 1, 2, 20])  # any order, with consecutive runs
    assert torch.equal(reader[idx], stored[idx])
    sub = reader.subset(np.array([30, 2, 7, 8, 9]))
    assert len(sub) == 5 and torch.equal(sub[torch.tensor([4, 0, 1])], stored[[9, 30, 2]])
    assert torch.equal(sub.subset([1, 2])[0:2], stored[[2, 7]])
    assert torch.equal(reader.to("cpu"), stored)
    assert np.array_equal(np.load(tmp_path / "x.npy", mmap_mode="r"), stored.numpy())  # an ordinary .npy
    view = TensorImages(stored, [30, 2, 7])
    assert torch.equal(view[torch.tensor([2, 0])], stored[[7, 30]]) and torch.equal(view[0:2], stored[[30, 2]])


def test_only_a_complete_file_of_the_expected_kind_is_trusted(tmp_path):
    x = torch.rand(8, 3, 4, 4)
    shape = tuple(x.shape)
    writer = ImageWriter(x_path(tmp_path, 2), shape, "float16")
    writer[0:8] = x
    assert open_x(tmp_path, 2, "float16", shape) is None  # written, not finished: no marker, hidden name
    writer.finish()
    assert isinstance(open_x(tmp_path, 2, "float16", shape), DiskImages)
    assert open_x(tmp_path, 2, "uint8", shape) is None  # another dtype than the run asks for
    assert open_x(tmp_path, 2, "float16", (9, 3, 4, 4)) is None  # another data set
    with open(x_path(tmp_path, 2), "r+b") as fh:  # truncated behind the marker's back
        fh.truncate(100)
    assert open_x(tmp_path, 2, "float16", shape) is None
    half = ImageWriter(x_path(tmp_path, 3), shape, "float16")
    half[0:4] = x[:4]
    with pytest.raises(ValueError, match="4 row"):
        half.finish()


@pytest.mark.parametrize("workers", [0, 2])
def test_training_batches_from_disk_equal_those_from_memory(tmp_path, workers):
    x = torch.rand(21, 3, 4, 4)
    writer = ImageWriter(tmp_path / "x.npy", x.shape, "float32")
    writer[0:21] = x
    disk = writer.finish().subset(np.arange(1, 21))
    disk.num_workers = workers
    order = torch.randperm(20, generator=torch.Generator().manual_seed(1))
    got = list(iterate_batches(disk, order, 6, torch.device("cpu")))
    want = list(iterate_batches(x[1:], order, 6, torch.device("cpu")))
    assert [len(i) for i, _ in got] == [6, 6, 6, 2]
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(got, want, strict=True))
    assert [len(i) for i, _ in iterate_batches(x, torch.arange(13), 6, torch.device("cpu"))] == [6, 6]  # no batch of 1


# ---------------------------------------------------------------------- the cascade
def test_streamed_and_in_memory_runs_give_the_same_models_and_maps(toy_data, tmp_path):
    memory = run_cascade(CascadeConfig(**SMALL, stream=False), tmp_path / "memory", data=toy_data)
    exact = run_cascade(CascadeConfig(**SMALL, stream_dtype="float32"), tmp_path / "f32", data=toy_data)
    half = run_cascade(CascadeConfig(**SMALL), tmp_path / "f16", data=toy_data)
    assert memory.record.dir.name == half.record.dir.name  # stream, stream_dtype: not part of the run's hash
    x, y = toy_data.images, toy_data.labels
    # float32 on disk is the in-memory path exactly
    assert all(_states_equal(a, b) for a, b in zip(memory.models, exact.models, strict=True))
    assert torch.equal(memory.explain(x, y), exact.explain(x, y))
    # float16: model 1 never sees x^(k≥2), so it is the same network; later models and the maps move
    # only by what rounding x^(k) to float16 (relative 2^-11) does to training
    assert _states_equal(memory.models[0], half.models[0])
    assert all(_max_param_diff(a, b) < 0.05 for a, b in zip(memory.models, half.models, strict=True))
    diff = (memory.explain(x, y) - half.explain(x, y)).abs()
    assert diff.mean() < 0.02
    acc = [memory.record.stats(k)["valid_accuracy_original"] - half.record.stats(k)["valid_accuracy_original"]
           for k in (1, 2, 3)]
    assert max(abs(a) for a in acc) <= 0.07  # at most one of the 16 validation images
    for run in (exact, half):  # nothing streamed is left once the run is complete
        assert not stream_dir(run.record.dir).exists()


def test_keep_stream_keeps_every_iterations_file(toy_data, tmp_path):
    cfg = CascadeConfig(**{**SMALL, "epochs": 1, "min_epochs": 0}, keep_stream=True)
    run = run_cascade(cfg, tmp_path / "runs", data=toy_data)
    names = sorted(p.name for p in stream_dir(run.record.dir).iterdir())
    assert names == ["x_02.done", "x_02.npy", "x_03.done", "x_03.npy"]
    x2, x3 = (torch.from_numpy(np.load(x_path(run.record.dir, k))) for k in (2, 3))
    assert x2.dtype == x3.dtype == torch.float16
    # x^(2) is the in-memory x^(2) rounded to float16; x^(3) is model 2's step on the stored x^(2)
    t = run.trace(toy_data.images, toy_data.labels, batch_size=256)
    assert torch.equal(x2, t["x"][1].half())
    _, _, x3_again = cascade_step(run.models[1], get_explainer("cam"), x2, toy_data.labels, cfg, keep_maps=False)
    assert torch.equal(x3, x3_again.half())


_CHILD = """
import sys
from cascam import CascadeConfig, run_cascade
run_cascade(CascadeConfig(**eval(sys.argv[1])), sys.argv[2])
"""


def test_a_resumed_run_reads_x_k_from_disk_instead_of_recomputing_it(tmp_path, monkeypatch):
    tiny = {**SMALL, "epochs": 1, "min_epochs": 0}
    cfg = CascadeConfig(**tiny)
    reference = run_cascade(cfg, tmp_path / "ref")
    flag = tmp_path / "paused"
    env = {**os.environ, PAUSE_ENV: f"2:{flag}", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, repr(tiny), str(tmp_path / "killed")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 600
    while not flag.exists():
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        assert time.monotonic() < deadline, "the run never reached its pause point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # after iteration 2 was saved and x^(3) written
    proc.wait(timeout=120)
    run_dir = RunStore(tmp_path / "killed").path(cfg)
    assert open_x(run_dir, 3, "float16", (96, 3, 32, 32)) is not None
    fallback = tmp_path / "fallback"
    shutil.copytree(tmp_path / "killed", fallback)

    def recompute(*a, **k):
        raise AssertionError("the masks were recomputed although x^(3) is on disk")

    trained = []
    real_train = cascade_mod.train_classifier
    monkeypatch.setattr(cascade_mod, "train_classifier", lambda *a, **k: trained.append(k["desc"]) or real_train(*a, **k))
    with monkeypatch.context() as m:
        m.setattr(cascade_mod, "_recompute_step", recompute)
        resumed = run_cascade(cfg, tmp_path / "killed")
    assert trained == ["model 3/3"] and resumed.record.is_complete
    assert all(_states_equal(a, b) for a, b in zip(reference.models, resumed.models, strict=True))
    assert not stream_dir(run_dir).exists()
    # without complete files (their markers lost) the masks are recomputed from models 1 and 2: same result
    for marker in stream_dir(fallback / run_dir.name).glob("*.done"):
        marker.unlink()
    steps = []
    real_step = cascade_mod._recompute_step
    monkeypatch.setattr(cascade_mod, "_recompute_step", lambda run, k, *a: steps.append(k) or real_step(run, k, *a))
    recomputed = run_cascade(cfg, fallback)
    assert trained == ["model 3/3", "model 3/3"] and steps == [1, 2]
    assert all(_states_equal(a, b) for a, b in zip(reference.models, recomputed.models, strict=True))
