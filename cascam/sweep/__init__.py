"""Sweeps: expand a grid file into validated configurations and train them — one after another here,
or as independent submitit jobs (local subprocesses or SLURM) — all sharing one run store.

This package's face only hands names on: :mod:`.grid` expands grid files, :mod:`.run` trains a
sweep's runs under their claims, :mod:`.jobs` keeps the ledger of submitted jobs and :mod:`.status`
tells what a sweep has done. Claims themselves belong to the run store (:mod:`cascam.claims`).

Example:
    >>> grid = load_grid("grids/smoke.yaml")                     # doctest: +SKIP
    >>> len(grid.points), len(grid.groups)                       # doctest: +SKIP
    (4, 2)
    >>> run_sweep(grid, RunStore("runs"), executor="local")      # doctest: +SKIP
"""

from ..claims import (
    CLAIMS_LOG,
    FAILED_NAME,
    HEARTBEAT_S,
    LOCK_NAME,
    STALE_AFTER_S,
    LockHeld,
    RunLock,
    claim_run,
    lock_holder,
    lock_is_stale,
)
from .grid import (
    GRID_SECTIONS,
    THRESHOLD_SPEC,
    Grid,
    GridPoint,
    RunGroup,
    expand_grid,
    load_grid,
    parse_threshold_spec,
    resolve_grid_path,
    threshold_text,
)
from .jobs import sweep_folder
from .run import EXECUTORS, SweepJob, run_group, run_sweep
from .status import HEADLINE_NAME, completed_runs, format_status, grid_status

#: Every name the module ``cascam.sweep`` offered before it became this package.
__all__ = [
    "CLAIMS_LOG",
    "EXECUTORS",
    "FAILED_NAME",
    "GRID_SECTIONS",
    "HEADLINE_NAME",
    "HEARTBEAT_S",
    "LOCK_NAME",
    "STALE_AFTER_S",
    "THRESHOLD_SPEC",
    "Grid",
    "GridPoint",
    "LockHeld",
    "RunGroup",
    "RunLock",
    "SweepJob",
    "claim_run",
    "completed_runs",
    "expand_grid",
    "format_status",
    "grid_status",
    "load_grid",
    "lock_holder",
    "lock_is_stale",
    "parse_threshold_spec",
    "resolve_grid_path",
    "run_group",
    "run_sweep",
    "sweep_folder",
    "threshold_text",
]
