"""The sweep's ledger of submitted jobs: ``<store>/_sweeps/<grid name>/jobs.json`` (job id, executor,
host and time per run folder), and the state of such a job now.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..claims import exclusive, pid_alive
from ..store import RunStore, atomic_write_text
from .grid import Grid

#: submitit states of a job that is waiting or working (anything else: finished, failed or unknown).
ACTIVE_JOB_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")


def sweep_folder(store: RunStore, grid: Grid) -> Path:
    """``<store>/_sweeps/<grid name>``: ``jobs.json`` and submitit's ``logs/``."""
    return Path(store.root) / "_sweeps" / grid.name


def read_jobs(folder: Path) -> dict:
    """The ledger's entries by run key (empty when there is none, or it cannot be read)."""
    p = folder / "jobs.json"
    try:
        return json.loads(p.read_text()).get("jobs", {}) if p.exists() else {}
    except ValueError:
        return {}


def update_jobs(folder: Path, grid: Grid, entries: Mapping[str, dict]) -> None:
    """Merge ``entries`` into ``jobs.json`` (read-modify-write under a short O_EXCL guard)."""
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(200):
        with exclusive(folder / "jobs.json.lock") as mine:
            if mine:
                jobs = read_jobs(folder)
                jobs.update(entries)
                atomic_write_text(folder / "jobs.json", json.dumps({"grid": grid.name, "jobs": jobs}, indent=2))
                return
        time.sleep(0.05)
    raise TimeoutError(f"sweep: {folder / 'jobs.json.lock'} stayed locked")


def job_state(entry: Mapping[str, Any], folder: Path) -> str:
    """The submitit job's state now: ``PENDING``/``RUNNING``/… or ``UNKNOWN`` when it cannot be asked."""
    executor = entry.get("executor")
    if executor == "debug":  # submitit's local controller: a process on the submitting host
        if entry.get("host") == socket.gethostname():
            with contextlib.suppress(ValueError):
                return "RUNNING" if pid_alive(int(entry["job_id"])) else "FINISHED"
        return "UNKNOWN"
    if executor == "slurm":
        try:
            import submitit

            return str(submitit.SlurmJob(folder=folder / "logs", job_id=str(entry["job_id"])).state).upper()
        except Exception:  # no sacct here, or the job is too old for it; the claim lock still protects
            return "UNKNOWN"
    return "UNKNOWN"
