"""Sweeps: grid expansion, the claim lock, and runs that share one store — in this process, as
submitit subprocesses, after a dead job, under preemption, and with two sweeps at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from cascam.cli import main
from cascam.config import CascadeConfig, ConfigError
from cascam.hooks import PAUSE_ENV
from cascam.store import RunStore
from cascam.sweep import (
    CLAIMS_LOG,
    FAILED_NAME,
    LOCK_NAME,
    LockHeld,
    SweepJob,
    claim_run,
    completed_runs,
    expand_grid,
    grid_status,
    load_grid,
    parse_threshold_spec,
    run_sweep,
)

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "grids" / "smoke.yaml"
CLI = str(Path(sys.executable).with_name("cascam"))
TINY = {
    "data": "synthetic",
    "n_images": 96,
    "image_size": 32,
    "epochs": 1,
    "min_epochs": 0,
    "patience": 0,
    "batch_size": 32,
    "device": "cpu",
    "progress": False,
}


def _grid_file(tmp_path: Path, name: str, grid: dict, base: dict | None = None) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"base": {**TINY, **(base or {})}, "grid": grid}))
    return path


def _starts(run_dir: Path) -> list[str]:
    log = run_dir / CLAIMS_LOG
    return [ln for ln in log.read_text().splitlines() if " start " in ln] if log.exists() else []


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ------------------------------------------------------------------------------------------ expansion
def test_cartesian_product_threshold_spec_and_extras():
    grid = expand_grid(
        {
            "base": {**TINY, "threshold_spec": "topk:10"},
            "grid": {"theta": [0.1, 0.3], "threshold_spec": ["topk:20", "none", "ebayes"]},
            "extra": [{"theta": 0.2, "seed": 1}, {"theta": 0.1, "threshold_spec": "none"}],  # the 2nd repeats a point
        }
    )
    assert len(grid.points) == 2 * 3 + 1
    got = [(p.config.theta, p.config.threshold, p.config.topk) for p in grid.points]
    assert got[:3] == [(0.1, "topk", 20.0), (0.1, "none", 10.0), (0.1, "ebayes", 10.0)]
    assert grid.points[-1].config.seed == 1 and grid.points[-1].label.startswith("extra 1")
    assert parse_threshold_spec("TopK:15") == {"threshold": "topk", "topk": 15.0}


def test_configurations_differing_only_in_K_share_one_run_of_the_largest_K():
    grid = expand_grid({"base": TINY, "grid": {"K": [3, 1, 2], "lam": [0.0, 0.1]}, "extra": [{"K": 5}]})
    assert len(grid.points) == 7
    (group,) = grid.groups
    assert group.config.K == 5 and len(group.points) == 7
    smoke = load_grid(SMOKE)
    assert len(smoke.points) == 4 and [g.config.K for g in smoke.groups] == [2, 2]


def test_paper_grids_expand_to_the_papers_counts():
    oxford = load_grid(ROOT / "grids" / "paper-oxford.yaml", {"data_path": "/data/pets512"})
    assert len(oxford.points) == 23 and len(oxford.groups) == 8
    assert {p.config.arch for p in oxford.points} == {"resnet50"} and {p.config.lam for p in oxford.points} == {0.1}
    coco = load_grid("paper-coco", {"data_path": "/data/coco"})  # a bare name is looked up in grids/
    assert len(coco.points) == 7 and len(coco.groups) == 4
    best = [p.config for p in coco.points if p.config.K == 15 and p.config.theta == 0.1]
    assert best and best[0].lam == 0.0 and best[0].threshold == "topk" and best[0].topk == 10


@pytest.mark.parametrize(
    "spec,overrides,needle",
    [
        ({"grid": {"K": [1, 0]}}, None, "grid K=0: K: must be an integer in [1, 100]; got 0"),
        ({"grid": {"tehta": [0.1]}}, None, "grid: unknown parameter(s): tehta"),
        ({"grid": {"K": 3}}, None, "grid.K: expected a non-empty list of values; got 3"),
        ({"grid": {"threshold_spec": ["topk:x"]}}, None, "threshold_spec: topk:<percent> needs a number"),
        ({"grid": {"threshold_spec": ["otsu"]}}, None, "threshold_spec: unknown value 'otsu'"),
        ({"extra": [{"theta": -1}]}, None, "extra 1: theta=-1: theta: masking strength must be > 0"),
        ({"extra": [{"threshold_spec": "none", "topk": 5}]}, None, "give threshold_spec or topk, not both"),
        ({"grids": {}}, None, "unknown section(s) grids"),
        ({"grid": {"K": [1, 2]}}, {"K": 4}, "--set K: the grid varies K"),
        ({"base": {"profile": "paper"}}, None, "data_path: required when data='folder'"),
    ],
)
def test_bad_grids_fail_before_anything_runs_naming_the_value(spec, overrides, needle):
    spec = {**spec, "base": {**TINY, **spec.get("base", {})}}
    if "profile" in spec["base"]:
        spec["base"] = {"profile": "paper"}
    with pytest.raises(ConfigError) as err:
        expand_grid(spec, overrides, name="g", search=[ROOT])
    assert needle in str(err.value)


def test_cli_grid_errors_exit_2_with_one_line(tmp_path, capsys):
    assert main(["sweep", "paper-oxford", "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "data_path: required" in err and "--set data_path=DIR" in err and err.count("\n") == 1
    assert main(["sweep", str(tmp_path / "missing.yaml")]) == 2
    assert "grid: file not found" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ the claim lock
def test_claim_lock_rules(tmp_path):
    lock = tmp_path / LOCK_NAME

    def plant(**holder):
        lock.write_text(json.dumps({"time": time.time(), "token": "t", **holder}))

    with claim_run(tmp_path) as mine:  # O_EXCL: a second claim fails while the first is held
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(LockHeld):
            claim_run(tmp_path)
    assert not lock.exists() and not mine.lost
    plant(host="elsewhere", pid=1, job="77")  # a live job on another host
    with pytest.raises(LockHeld, match="elsewhere"):
        claim_run(tmp_path)
    claim_run(tmp_path, job="77").release()  # ... unless we are that job, requeued
    plant(host="elsewhere", pid=1, job=None)
    old = time.time() - 3600
    os.utime(lock, (old, old))  # nobody touched it for an hour: stale on any host
    claim_run(tmp_path).release()
    plant(host=socket.gethostname(), pid=_dead_pid(), job=None)  # this host, its process is gone
    claim_run(tmp_path).release()
    plant(host=socket.gethostname(), pid=os.getpid(), job=None)  # this host, alive
    with pytest.raises(LockHeld):
        claim_run(tmp_path)
    assert "broke lock" in (tmp_path / CLAIMS_LOG).read_text()


# ------------------------------------------------------------------------------------------ sweeps
@pytest.fixture(scope="module")
def smoke_store(tmp_path_factory):
    """The smoke grid swept once with the local executor (in this process)."""
    root = tmp_path_factory.mktemp("smoke-store")
    assert main(["sweep", str(SMOKE), "--store", str(root), "--set", "progress=false"]) == 0
    return root


def test_local_sweep_completes_and_a_second_sweep_skips_everything(smoke_store, capsys):
    grid = load_grid(SMOKE)
    store = RunStore(smoke_store)
    for g in grid.groups:
        record = store.get(g.config)
        assert record.is_complete and len(_starts(record.dir)) == 1
        assert not (record.dir / LOCK_NAME).exists()
    mtimes = {p: p.stat().st_mtime_ns for p in smoke_store.glob("*/iter_*/model.pt")}
    assert len(mtimes) == 4
    capsys.readouterr()
    assert main(["sweep", str(SMOKE), "--store", str(smoke_store)]) == 0
    assert "2 done, 0 running or queued, 0 to run" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in smoke_store.glob("*/iter_*/model.pt")} == mtimes


def test_status_prints_states_and_metrics(smoke_store, tmp_path, capsys):
    assert main(["sweep", "--status", str(SMOKE), "--store", str(smoke_store)]) == 0
    out = capsys.readouterr().out
    assert "4 configurations in 2 runs — 4 done" in out
    assert "CasCAM PG" in out and out.count(" done ") == 4 and "%" in out
    # failed and not started, without training anything
    grid = load_grid(SMOKE)
    store = RunStore(tmp_path)
    store.open(grid.groups[0].config).write_json(FAILED_NAME, {"error": "RuntimeError: CUDA out of memory"})
    rows = grid_status(grid, store)
    assert [r["state"] for r in rows] == ["failed", "failed", "not started", "not started"]
    assert rows[0]["note"] == "RuntimeError: CUDA out of memory"


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, monkeypatch, capsys):
    import cascam.cascade

    def boom(*args, **kwargs):
        raise RuntimeError("disk full\nwhile saving model 1")

    monkeypatch.setattr(cascam.cascade, "run_cascade", boom)
    assert main(["sweep", str(SMOKE), "--store", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("failed:") == 2
    for d in tmp_path.glob("*/"):
        if d.name.startswith("_"):
            continue
        assert json.loads((d / FAILED_NAME).read_text())["error"] == "while saving model 1"
        assert not (d / LOCK_NAME).exists()


def test_a_dead_jobs_run_resumes_without_redoing_finished_iterations(tmp_path, capsys):
    from cascam.cascade import run_cascade

    path = _grid_file(tmp_path, "resume", {"K": [2], "theta": [0.3]})
    store = RunStore(tmp_path / "runs")
    (group,) = load_grid(path).groups
    run_cascade(group.config.replace(K=1), store)  # the dead job finished iteration 1 of 2
    run_dir = store.path(group.config)
    first = (run_dir / "iter_01" / "stats.json").stat().st_mtime_ns
    lock = run_dir / LOCK_NAME
    lock.write_text(json.dumps({"host": "node-17", "pid": 4242, "job": "9_1", "time": time.time(), "token": "x"}))
    args = ["sweep", str(path), "--store", str(store.root)]
    assert main(args) == 0  # its lock is fresh: it may be alive on node-17, so the run is left alone
    assert "running" in capsys.readouterr().out and not (run_dir / "iter_02").exists()
    assert main([*args, "--status", "--no-metrics"]) == 0
    assert "running" in capsys.readouterr().out
    old = time.time() - 3600
    os.utime(lock, (old, old))  # no heartbeat for an hour: node-17's job is dead
    assert main(args) == 0
    assert "trained iterations 2..2" in capsys.readouterr().out
    assert (run_dir / "iter_01" / "stats.json").stat().st_mtime_ns == first
    assert store.get(group.config).is_complete and not lock.exists()
    log = (run_dir / CLAIMS_LOG).read_text()
    assert "broke lock of node-17" in log and "start iterations=1/2" in log


@pytest.fixture
def subprocess_env(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two processes on a small machine
    monkeypatch.setenv("MKL_NUM_THREADS", "1")


def test_debug_executor_runs_each_configuration_in_its_own_process(tmp_path, subprocess_env, capsys):
    path = _grid_file(tmp_path, "pair", {"theta": [0.1, 0.3]}, {"K": 1})
    store = tmp_path / "runs"
    args = [
        "sweep",
        str(path),
        "--store",
        str(store),
        "--executor",
        "debug",
        "--gpus-per-job",
        "0",
        "--timeout-min",
        "10",
    ]
    assert main(args) == 0, capsys.readouterr()
    jobs = json.loads((store / "_sweeps" / "pair" / "jobs.json").read_text())["jobs"]
    assert len(jobs) == 2 and {j["state"] for j in jobs.values()} == {"COMPLETED"}
    pids = set()
    for key, job in jobs.items():
        (start,) = _starts(store / key)
        assert f"job={job['job_id']}" in start
        pids.add(start.split("pid=")[1].split()[0])
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two worker processes, not this one
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 done" in out and "submitted" not in out
    assert json.loads((store / "_sweeps" / "pair" / "jobs.json").read_text())["jobs"] == jobs


def test_a_preempted_job_requeues_itself_and_resumes(tmp_path, subprocess_env, monkeypatch):
    submitit = pytest.importorskip("submitit")
    cfg = CascadeConfig(**{**TINY, "K": 3})
    store = RunStore(tmp_path / "runs")
    flag = tmp_path / "paused"
    # The worker stops after saving iteration 1 and waits there until preempted (the requeued worker
    # loads iteration 1 instead of training it, so it does not stop).
    monkeypatch.setenv(PAUSE_ENV, f"1:{flag}")
    executor = submitit.AutoExecutor(folder=tmp_path / "logs", cluster="local")
    executor.update_parameters(timeout_min=10, gpus_per_node=0)
    job = executor.submit(SweepJob(cfg.to_dict(), str(store.root), [cfg.to_dict()]))
    run_dir = store.path(cfg)
    deadline = time.monotonic() + 600
    while not flag.exists() and not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert flag.exists() and not job.done(), (job.stdout() or "")[-2000:] + (job.stderr() or "")[-2000:]
    worker = json.loads((run_dir / LOCK_NAME).read_text())["pid"]
    os.kill(worker, signal.SIGUSR2)  # what SLURM sends before preemption or the time limit: checkpoint() → requeue
    result = job.result()
    assert store.get(cfg).is_complete and result["key"] == cfg.key()
    starts = _starts(run_dir)
    jobs = [line.split("job=")[1].split()[0] for line in starts]
    pids = [line.split("pid=")[1].split()[0] for line in starts]
    assert len(starts) == 2 and jobs[0] == jobs[1] and pids[0] != pids[1]  # the same job, requeued
    assert "start iterations=0/3" in starts[0] and "iterations=0/3" not in starts[1]


def test_two_sweeps_at_once_never_train_a_run_twice(tmp_path):
    path = _grid_file(tmp_path, "race", {"theta": [0.1, 0.3]}, {"K": 1})
    store = tmp_path / "runs"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [CLI, "sweep", str(path), "--store", str(store)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    grid = load_grid(path)
    for g in grid.groups:
        assert RunStore(store).get(g.config) is not None, outs
        assert RunStore(store).get(g.config).is_complete
        assert len(_starts(store / g.key)) == 1, (store / g.key / CLAIMS_LOG).read_text()
    assert sum("trained" in o for o in outs) >= 1


def test_run_sweep_dry_run_and_argument_errors(tmp_path, capsys):
    grid = load_grid(SMOKE)
    report = run_sweep(grid, RunStore(tmp_path), dry_run=True)
    assert report["runs"] == 2 and not list(tmp_path.iterdir())
    assert "would run" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="--max-parallel"):
        run_sweep(grid, RunStore(tmp_path), max_parallel=0)
    assert main(["sweep", str(SMOKE), "--store", str(tmp_path), "--executor", "debug", "--executor-param", "nope"]) == 2
    assert "--executor-param: expected key=value" in capsys.readouterr().err


def test_completed_runs_lists_what_the_store_holds_with_the_iterations_it_has(smoke_store, tmp_path):
    import shutil

    grid = load_grid(SMOKE)
    assert sorted((c.theta, c.K) for c in completed_runs(grid, RunStore(smoke_store))) == [(0.1, 2), (0.3, 2)]
    partial = tmp_path / "partial"
    shutil.copytree(smoke_store, partial)
    first, second = grid.groups
    shutil.rmtree(RunStore(partial).path(second.config))
    shutil.rmtree(RunStore(partial).path(first.config) / "iter_02")
    (done,) = completed_runs(grid, RunStore(partial))
    assert done == first.config.replace(K=1)
    assert [r["state"] for r in grid_status(grid, RunStore(partial), metrics=False)] == [
        "done", "partial", "not started", "not started"]


def test_the_parameter_page_fills_from_a_sweep_and_lists_what_is_missing(smoke_store, tmp_path, monkeypatch):
    """Page 05 with ``grid_file``: tables from the finished runs, a status table, the missing ones named."""
    import shutil

    import nbformat

    from cascam.book import execute_notebook, load_profile

    work = tmp_path / "book"
    for name in ("notebooks", "profiles"):
        shutil.copytree(ROOT / name, work / name)
    shutil.copy(ROOT / "_config.yml", work)
    store = work / "runs"
    shutil.copytree(smoke_store, store)
    grid = load_grid(SMOKE)
    shutil.rmtree(RunStore(store).path(grid.groups[0].config))  # θ = 0.1 never ran
    monkeypatch.setenv("CASCAM_BOOK_ROOT", str(work))  # tables and status lines go to work, not the clone
    monkeypatch.setenv("CASCAM_STORE", str(store))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    profile = load_profile("smoke", ROOT)
    params = {**profile["parameters"], "grid_file": str(SMOKE), "grid_run_missing": False}
    out = execute_notebook("05_parameters", "smoke", params, work, print)
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", "")) + str(o.get("data", {}).get("text/html", ""))
        for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "2 of 4 configurations are done" in text
    assert "Missing" in text and "K=1, theta=0.1 (not started)" in text and "K=2, theta=0.1 (not started)" in text
    assert "Table 6." in text and "Table 6–8 sweep." in text
    assert not RunStore(store).path(grid.groups[0].config).exists()  # nothing was trained
