"""Running a sweep: each run folder of a grid trained once, under its claim — one after another in
this process, or as independent submitit jobs (local subprocesses or SLURM) sharing one run store.

A run is claimed through the store (:meth:`~cascam.store.RunRecord.claim`), so concurrent sweeps,
duplicate submissions and requeued jobs never train the same run twice at once; a job that dies
leaves the run resumable from its last finished iteration.
"""

from __future__ import annotations

import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..claims import FAILED_NAME, HEARTBEAT_S, STALE_AFTER_S, LockHeld, holder_text
from ..config import CascadeConfig, ConfigError
from ..store import RunRecord, RunStore
from .grid import Grid, RunGroup
from .jobs import read_jobs, sweep_folder, update_jobs
from .status import cache_headlines, group_state, has_headlines, last_line

try:  # submitit is only needed for --executor debug/slurm (the ``cluster`` extra)
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - exercised only without submitit

    class _Checkpointable:  # type: ignore[no-redef]
        pass


EXECUTORS = ("local", "debug", "slurm")


def run_group(
    config: CascadeConfig,
    store: RunStore,
    points: Sequence[CascadeConfig] = (),
    *,
    job: str | None = None,
    progress: bool | None = None,
    metrics: bool = True,
    stale_after_s: float = STALE_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
) -> dict:
    """Claim ``config``'s run folder, train (or resume) it with :func:`run_cascade`, cache headline metrics.

    Returns ``{"key", "outcome", ...}`` with outcome ``trained`` (this call trained iterations),
    ``done`` (nothing was missing) or ``held`` (another live process holds the claim; nothing done).
    A failure is written to ``failed.json`` (the exception's last line) and re-raised.
    """
    from ..cascade import run_cascade

    points = list(points) or [config]
    record = store.open(config)
    out = {"key": config.key(), "K": config.K, "dir": str(record.dir)}
    if _nothing_to_do(record.iterations_available(), config, record, points, metrics):
        return {**out, "outcome": "done"}
    try:
        lock = record.claim(job=job, stale_after_s=stale_after_s, heartbeat_s=heartbeat_s)
    except LockHeld as held:
        return {**out, "outcome": "held", "holder": held.holder}
    with lock:
        before = record.iterations_available()  # re-read under the claim: someone may have finished it
        if _nothing_to_do(before, config, record, points, metrics):
            return {**out, "outcome": "done"}
        # "start" marks training (tests count it); "metrics" only loads the finished run
        lock.log(f"{'start' if before < config.K else 'metrics'} iterations={before}/{config.K}")
        try:
            cascade = run_cascade(config, store, progress=progress)
            if metrics:
                cache_headlines(cascade, points, cascade.record)
        except Exception as exc:
            record.record_failure(last_line(exc), lock)
            raise
        record.clear_failure()
        after = record.iterations_available()
        lock.log(f"end iterations={after}/{config.K}")
    return {**out, "outcome": "trained" if after > before else "done", "iterations": [before, after]}


def _nothing_to_do(
    have: int, config: CascadeConfig, record: RunRecord, points: Sequence[CascadeConfig], metrics: bool
) -> bool:
    """K iterations saved and, where metrics are asked for, every configuration's headline cached."""
    return have >= config.K and (not metrics or has_headlines(record, points))


def _submitit_job_id() -> str | None:
    try:
        import submitit

        return str(submitit.JobEnvironment().job_id)
    except Exception:  # not inside a submitit job
        return None


class SweepJob(_Checkpointable):
    """One run of a sweep as a submitit callable; preempted or timed out, it requeues itself and
    resumes from the store (the engine skips every finished iteration)."""

    def __init__(
        self,
        config: dict,
        store_root: str,
        points: list[dict],
        *,
        progress: bool = False,
        stale_after_s: float = STALE_AFTER_S,
    ) -> None:
        self.config = config
        self.store_root = store_root
        self.points = points
        self.progress = progress
        self.stale_after_s = stale_after_s

    def __call__(self) -> dict:
        cfg = CascadeConfig.from_dict(self.config)
        points = [CascadeConfig.from_dict(p) for p in self.points]
        return run_group(
            cfg,
            RunStore(self.store_root),
            points,
            job=_submitit_job_id(),
            progress=self.progress,
            stale_after_s=self.stale_after_s,
        )

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """Requeue the same job: no state to save, the run store holds every finished iteration."""
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args, **kwargs)


def _make_executor(
    kind: str,
    folder: Path,
    *,
    max_parallel: int,
    gpus_per_job: int,
    timeout_min: int,
    slurm_partition: str | None,
    params: Mapping[str, Any],
) -> Any:
    try:
        import submitit
    except ImportError:
        raise ConfigError(f"--executor {kind}: submitit is not installed (pip install 'cascam[cluster]')") from None
    if kind == "slurm" and shutil.which("sbatch") is None:
        raise ConfigError("--executor slurm: no sbatch on this machine; run the sweep from a SLURM login node")
    executor = submitit.AutoExecutor(folder=folder / "logs", cluster="local" if kind == "debug" else "slurm")
    options: dict[str, Any] = {
        "timeout_min": timeout_min,
        "gpus_per_node": gpus_per_job,
        "name": f"cascam-{folder.name}",
    }
    if kind == "slurm":
        options.update(slurm_array_parallelism=max_parallel, tasks_per_node=1, nodes=1)
        if slurm_partition:
            options["slurm_partition"] = slurm_partition
    options.update(params)
    try:
        executor.update_parameters(**options)
    except (ValueError, TypeError, NameError) as exc:
        raise ConfigError(f"--executor-param: {exc}") from None
    return executor


def run_sweep(
    grid: Grid,
    store: RunStore,
    *,
    executor: str = "local",
    max_parallel: int = 4,
    gpus_per_job: int = 1,
    timeout_min: int = 720,
    slurm_partition: str | None = None,
    executor_params: Mapping[str, Any] | None = None,
    wait: bool | None = None,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> dict:
    """Train every run of ``grid`` that the store does not hold yet.

    Runs that are done, claimed by a live process, or whose submitted job is still queued or
    running are skipped; the rest run one after another here (``local``) or are submitted as
    independent submitit jobs (``debug``: local subprocesses, ``slurm``: a job array with at most
    ``max_parallel`` running, one GPU each). Submitted job ids go to ``<store>/_sweeps/<name>/jobs.json``.
    ``wait`` (default: True for ``debug``, False for ``slurm``) waits for submitted jobs.

    Returns counts: ``{"runs", "done", "skipped", "submitted", "trained", "held", "failed": [...]}``.
    """
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor: unknown value {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if max_parallel < 1:
        raise ConfigError(f"--max-parallel: must be ≥ 1; got {max_parallel}")
    if gpus_per_job < 0 or timeout_min < 1:
        raise ConfigError("--gpus-per-job must be ≥ 0 and --timeout-min ≥ 1")
    folder = sweep_folder(store, grid)
    jobs = read_jobs(folder)
    groups = grid.groups
    report: dict[str, Any] = {
        "runs": len(groups),
        "done": 0,
        "skipped": 0,
        "submitted": 0,
        "trained": 0,
        "held": 0,
        "failed": [],
    }
    todo: list[RunGroup] = []
    for g in groups:
        state = group_state(g, store, jobs, folder)
        if state["state"] == "done":
            report["done"] += 1
        elif state["state"] in ("running", "queued"):
            report["skipped"] += 1
            echo(f"  {g.key} K={g.config.K}: {state['state']} ({state['note']})")
        else:
            todo.append(g)
    echo(
        f"grid {grid.name}: {len(grid.points)} configurations in {len(groups)} runs — {report['done']} done, "
        f"{report['skipped']} running or queued, {len(todo)} to run ({executor})"
    )
    if dry_run or not todo:
        for g in todo:
            echo(f"  would run {g.key} K={g.config.K}: " + "; ".join(p.label for p in g.points))
        return report

    def job_for(g: RunGroup, progress: bool) -> SweepJob:
        return SweepJob(
            g.config.to_dict(),
            str(Path(store.root).resolve()),
            [p.config.to_dict() for p in g.points],
            progress=progress,
        )

    if executor == "local":
        for i, g in enumerate(todo, start=1):
            echo(f"[{i}/{len(todo)}] {g.key} K={g.config.K}")
            try:
                result = run_group(g.config, store, [p.config for p in g.points])
            except Exception as exc:
                report["failed"].append(f"{g.key}: {last_line(exc)}")
                echo(f"  failed: {last_line(exc)} (recorded in {store.path(g.config) / FAILED_NAME})")
                continue
            _tally(report, result, echo)
        return report

    ex = _make_executor(
        executor,
        folder,
        max_parallel=max_parallel,
        gpus_per_job=gpus_per_job,
        timeout_min=timeout_min,
        slurm_partition=slurm_partition,
        params=executor_params or {},
    )
    wait = (executor == "debug") if wait is None else wait
    # the local executor has no array parallelism: submit in waves of max_parallel when waiting
    waves = (
        [todo[i : i + max_parallel] for i in range(0, len(todo), max_parallel)]
        if executor == "debug" and wait
        else [todo]
    )
    for wave in waves:
        with ex.batch():
            submitted = [ex.submit(job_for(g, False)) for g in wave]
        now = time.time()
        entries = {
            g.key: {
                "job_id": str(j.job_id),
                "executor": executor,
                "host": socket.gethostname(),
                "K": g.config.K,
                "submitted": now,
                "state": "SUBMITTED",
            }
            for g, j in zip(wave, submitted, strict=True)
        }
        update_jobs(folder, grid, entries)
        report["submitted"] += len(submitted)
        for g, j in zip(wave, submitted, strict=True):
            echo(f"  submitted {g.key} K={g.config.K}: job {j.job_id}")
        if not wait:
            continue
        final = {}
        for g, j in zip(wave, submitted, strict=True):
            try:
                _tally(report, j.result(), echo)
                final[g.key] = {**entries[g.key], "state": "COMPLETED"}
            except Exception as exc:
                report["failed"].append(f"{g.key}: {last_line(exc)}")
                echo(f"  failed {g.key}: {last_line(exc)} (log: {folder / 'logs'})")
                final[g.key] = {**entries[g.key], "state": "FAILED"}
        update_jobs(folder, grid, final)
    if not wait:
        echo(f"logs: {folder / 'logs'}; progress: cascam sweep --status {grid.name}.yaml --store {store.root}")
    return report


def _tally(report: dict, result: Mapping[str, Any], echo: Callable[[str], None]) -> None:
    outcome = result.get("outcome")
    if outcome == "held":
        report["held"] += 1
        echo(f"  {result['key']}: claimed by {holder_text(result.get('holder', {}))}; left to it")
    elif outcome == "trained":
        report["trained"] += 1
        before, after = result.get("iterations", [0, 0])
        echo(f"  {result['key']}: trained iterations {before + 1}..{after}")
    else:
        report["done"] += 1
