"""Sweeps: expand a grid file into validated configurations and train them — one after another here,
or as independent submitit jobs (local subprocesses or SLURM) — all sharing one run store.

A run is claimed with an atomic lock file in its run folder, so concurrent sweeps, duplicate
submissions and requeued jobs never train the same run twice at once; a job that dies leaves the
run resumable from its last finished iteration.

Example:
    >>> grid = load_grid("grids/smoke.yaml")                     # doctest: +SKIP
    >>> len(grid.points), len(grid.groups)                       # doctest: +SKIP
    (4, 2)
    >>> run_sweep(grid, RunStore("runs"), executor="local")      # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .claims import (
    CLAIMS_LOG,
    FAILED_NAME,
    HEARTBEAT_S,
    LOCK_NAME,
    STALE_AFTER_S,
    LockHeld,
    RunLock,
    claim_run,
    exclusive,
    holder_text,
    lock_holder,
    lock_is_stale,
    pid_alive,
)
from .config import CascadeConfig, ConfigError, read_yaml
from .store import RunRecord, RunStore, atomic_write_text

try:  # submitit is only needed for --executor debug/slurm (the ``cluster`` extra)
    from submitit.helpers import Checkpointable as _Checkpointable
except ImportError:  # pragma: no cover - exercised only without submitit

    class _Checkpointable:  # type: ignore[no-redef]
        pass


__all__ = [
    "CLAIMS_LOG",
    "FAILED_NAME",
    "HEARTBEAT_S",
    "LOCK_NAME",
    "STALE_AFTER_S",
    "lock_holder",
    "lock_is_stale",
    "EXECUTORS",
    "Grid",
    "GridPoint",
    "RunGroup",
    "RunLock",
    "LockHeld",
    "SweepJob",
    "claim_run",
    "expand_grid",
    "format_status",
    "grid_status",
    "completed_runs",
    "threshold_text",
    "load_grid",
    "parse_threshold_spec",
    "run_group",
    "run_sweep",
    "sweep_folder",
]

EXECUTORS = ("local", "debug", "slurm")
#: Sections a grid file may have.
GRID_SECTIONS = ("name", "description", "base", "grid", "extra")
#: A pseudo-parameter that sets ``threshold`` (and ``topk``) in one value: ``topk:10``, ``none``, ``ebayes``.
THRESHOLD_SPEC = "threshold_spec"
#: The cache of headline metrics in a run folder (next to what the engine writes).
HEADLINE_NAME = "headline.json"
#: submitit states of a job that is waiting or working (anything else: finished, failed or unknown).
_ACTIVE_JOB_STATES = ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING", "RESIZING", "SUSPENDED")

_FIELD_NAMES = tuple(f.name for f in fields(CascadeConfig))


# ---------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class GridPoint:
    """One configuration of a grid; ``label`` says where it came from (``grid K=3 theta=0.1`` or ``extra 2``)."""

    config: CascadeConfig
    label: str


@dataclass(frozen=True)
class RunGroup:
    """Configurations that share one run folder (same :meth:`CascadeConfig.key`).

    K is not hashed when one explainer drives every iteration, so ``K = 3, 5, 10`` are prefixes of
    one run: the group trains ``config`` (the largest K) once and each point is done as soon as the
    folder holds its K iterations. Points may also differ in λ, ``combine`` or ``explain_on``, which
    change only the explanation.
    """

    key: str
    config: CascadeConfig
    points: tuple[GridPoint, ...]


@dataclass(frozen=True)
class Grid:
    """An expanded grid file: its name (the sweep's folder under ``<store>/_sweeps``) and configurations."""

    name: str
    points: tuple[GridPoint, ...]
    description: str = ""

    @property
    def groups(self) -> list[RunGroup]:
        """One :class:`RunGroup` per run folder, in the order the grid first names them."""
        by_key: dict[str, list[GridPoint]] = {}
        for p in self.points:
            by_key.setdefault(p.config.key(), []).append(p)
        out = []
        for key, pts in by_key.items():
            longest = max(pts, key=lambda p: p.config.K).config
            out.append(RunGroup(key, longest, tuple(pts)))
        return out


def parse_threshold_spec(spec: Any) -> dict[str, Any]:
    """``"topk:10"`` → ``{"threshold": "topk", "topk": 10.0}``; ``"topk"``, ``"none"``, ``"ebayes"`` set only ``threshold``."""
    if spec is None:
        spec = "none"
    if not isinstance(spec, str):
        raise ConfigError(f"{THRESHOLD_SPEC}: expected topk:<percent>, none or ebayes; got {spec!r}")
    name, _, arg = spec.strip().lower().partition(":")
    if name == "topk" and arg:
        try:
            return {"threshold": "topk", "topk": float(arg)}
        except ValueError:
            raise ConfigError(f"{THRESHOLD_SPEC}: topk:<percent> needs a number; got {spec!r}") from None
    if name in ("topk", "none", "ebayes") and not arg:
        return {"threshold": name}
    raise ConfigError(f"{THRESHOLD_SPEC}: unknown value {spec!r}; use topk:<percent> (topk:10), none or ebayes")


def _layer(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A mapping of parameters with ``threshold_spec`` resolved; unknown names are rejected here."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"{where}: expected a mapping of parameter: value; got {values!r}")
    out = dict(values)
    unknown = sorted(set(out) - set(_FIELD_NAMES) - {THRESHOLD_SPEC})
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s): {', '.join(map(str, unknown))}")
    if THRESHOLD_SPEC in out:
        clash = [n for n in ("threshold", "topk") if n in out]
        if clash:
            raise ConfigError(f"{where}: give {THRESHOLD_SPEC} or {'/'.join(clash)}, not both")
        try:
            out.update(parse_threshold_spec(out.pop(THRESHOLD_SPEC)))
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return out


def _profile_parameters(name: str, search: Sequence[Path]) -> dict[str, Any]:
    """``profiles/<name>.yaml``'s ``parameters`` restricted to :class:`CascadeConfig` fields."""
    for folder in search:
        path = folder / "profiles" / f"{name}.yaml"
        if path.is_file():
            params = (read_yaml(path, "profile") or {}).get("parameters", {}) or {}
            return {k: v for k, v in params.items() if k in _FIELD_NAMES}
    looked = ", ".join(str(f / "profiles") for f in search)
    raise ConfigError(f"base.profile: unknown profile {name!r} (looked in {looked})")


def _describe(values: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in values.items())


def expand_grid(
    spec: Mapping[str, Any],
    overrides: Mapping[str, Any] | None = None,
    *,
    name: str = "grid",
    search: Sequence[Path] = (),
) -> Grid:
    """Expand a grid specification into validated configurations.

    ``spec`` has ``base`` (parameters, optionally ``profile: NAME`` for ``profiles/NAME.yaml``),
    ``grid`` (parameter → list of values; the Cartesian product, in the order given) and ``extra``
    (a list of explicit parameter mappings, each on top of ``base``). ``threshold_spec`` may stand
    for ``threshold``/``topk`` anywhere. ``overrides`` (``--set``) apply to ``base`` and may not name
    a parameter the grid or an extra sets. Configurations equal in every field are kept once.

    Raises :class:`ConfigError` naming the section, the point and the parameter of the first bad value.
    """
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{name}: a grid file must hold a mapping with base, grid and/or extra")
    unknown = sorted(set(spec) - set(GRID_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{name}: unknown section(s) {', '.join(map(str, unknown))}; expected {', '.join(GRID_SECTIONS)}"
        )
    name = str(spec.get("name") or name)
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise ConfigError(f"name: {name!r} cannot name a folder")

    if not isinstance(spec.get("base") or {}, Mapping):
        raise ConfigError(f"{name}: base: expected a mapping of parameter: value")
    raw_base = dict(spec.get("base") or {})
    base: dict[str, Any] = {}
    if "profile" in raw_base:
        base.update(_profile_parameters(str(raw_base.pop("profile")), search))
    base.update(_layer(raw_base, f"{name}: base"))  # a threshold_spec here replaces the profile's

    grid = spec.get("grid") or {}
    if not isinstance(grid, Mapping):
        raise ConfigError(f"{name}: grid: expected a mapping of parameter: [values]")
    unknown = sorted(set(grid) - set(_FIELD_NAMES) - {THRESHOLD_SPEC})
    if unknown:
        raise ConfigError(f"{name}: grid: unknown parameter(s): {', '.join(map(str, unknown))}")
    for param, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{name}: grid.{param}: expected a non-empty list of values; got {values!r}")
    extras = spec.get("extra") or []
    if not isinstance(extras, list):
        raise ConfigError(f"{name}: extra: expected a list of parameter mappings")
    extra_layers = [_layer(e, f"{name}: extra {i + 1}") for i, e in enumerate(extras)]

    # --set changes the base; a parameter the grid or an extra sets would be silently lost, so refuse it
    sets = _layer(overrides or {}, "--set")
    varied = set(grid) | ({"threshold", "topk"} if THRESHOLD_SPEC in grid else set())
    for param in sets:
        if param in varied:
            raise ConfigError(f"--set {param}: the grid varies {param}; edit the grid file instead")
        for i, layer in enumerate(extra_layers):
            if param in layer:
                raise ConfigError(f"--set {param}: extra {i + 1} sets {param}; edit the grid file instead")
    start = {**base, **sets}

    candidates: list[tuple[dict[str, Any], str]] = []
    names = list(grid)
    for combo in itertools.product(*(grid[n] for n in names)) if names else []:
        point = dict(zip(names, combo, strict=True))
        candidates.append(
            ({**start, **_layer(point, f"{name}: grid point {_describe(point)}")}, f"grid {_describe(point)}")
        )
    for i, (layer, raw) in enumerate(zip(extra_layers, extras, strict=True)):
        candidates.append(({**start, **layer}, f"extra {i + 1}: {_describe(raw)}"))
    if not candidates:
        candidates.append((start, "base"))

    points: list[GridPoint] = []
    seen: set[CascadeConfig] = set()
    for values, label in candidates:
        try:
            cfg = CascadeConfig.from_dict(values)
        except ConfigError as exc:
            hint = " (give it with --set data_path=DIR)" if str(exc).startswith("data_path:") else ""
            raise ConfigError(f"{name}: {label}: {exc}{hint}") from None
        if cfg not in seen:
            seen.add(cfg)
            points.append(GridPoint(cfg, label))
    return Grid(name, tuple(points), str(spec.get("description") or ""))


def _repo_root() -> Path:
    return Path(os.environ.get("CASCAM_BOOK_ROOT") or Path(__file__).resolve().parents[1])


def resolve_grid_path(path: str | Path) -> Path:
    """A grid file path, or a bare name looked up in the repository's ``grids/`` folder."""
    p = Path(path)
    if p.is_file():
        return p
    named = _repo_root() / "grids" / f"{p.name}.yaml"
    if p.suffix == "" and named.is_file():
        return named
    known = sorted(q.stem for q in (_repo_root() / "grids").glob("*.yaml"))
    raise ConfigError(f"grid: file not found: {path} (named grids: {', '.join(known) or 'none'})")


def load_grid(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Grid:
    """Read and expand a grid file (see :func:`expand_grid`); the grid's name defaults to the file's stem."""
    p = resolve_grid_path(path)
    spec = read_yaml(p, "grid")
    search = [p.resolve().parent, p.resolve().parent.parent, _repo_root()]
    return expand_grid(spec or {}, overrides, name=p.stem, search=search)


# ---------------------------------------------------------------------------------------- one run
def _point_id(cfg: CascadeConfig) -> str:
    return f"K={cfg.K} lam={cfg.lam:g} combine={cfg.combine} explain_on={cfg.explain_on}"


def _last_line(exc: BaseException) -> str:
    text = f"{exc.__class__.__name__}: {exc}".strip().splitlines()
    return text[-1] if text else exc.__class__.__name__


def _headlines(cascade: Any, points: Sequence[CascadeConfig], record: RunRecord) -> None:
    """Pointing game and AP (CAM vs CasCAM) per configuration of the group, cached in ``headline.json``."""
    from .report import headline

    cache = record.read_json(HEADLINE_NAME, {})
    for cfg in points:
        pid = _point_id(cfg)
        if pid in cache or cfg.K > cascade.K:
            continue
        try:
            view = dataclasses.replace(cascade.truncated(cfg.K), config=cfg)
            table = headline(view)
            cache[pid] = {m: {k: float(v) for k, v in row.items()} for m, row in table.to_dict("index").items()}
        except Exception as exc:  # the run itself is done; say why its numbers are missing
            cache[pid] = {"error": _last_line(exc)}
    record.write_json(HEADLINE_NAME, cache)


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
    from .cascade import run_cascade

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
                _headlines(cascade, points, cascade.record)
        except Exception as exc:
            record.record_failure(_last_line(exc), lock)
            raise
        record.clear_failure()
        after = record.iterations_available()
        lock.log(f"end iterations={after}/{config.K}")
    return {**out, "outcome": "trained" if after > before else "done", "iterations": [before, after]}


def _nothing_to_do(
    have: int, config: CascadeConfig, record: RunRecord, points: Sequence[CascadeConfig], metrics: bool
) -> bool:
    """K iterations saved and, where metrics are asked for, every configuration's headline cached."""
    if have < config.K:
        return False
    cached = record.read_json(HEADLINE_NAME, {})
    return not metrics or all(_point_id(p) in cached for p in points)


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


# ---------------------------------------------------------------------------------------- sweeps
def sweep_folder(store: RunStore, grid: Grid) -> Path:
    """``<store>/_sweeps/<grid name>``: ``jobs.json`` and submitit's ``logs/``."""
    return Path(store.root) / "_sweeps" / grid.name


def _read_jobs(folder: Path) -> dict:
    p = folder / "jobs.json"
    try:
        return json.loads(p.read_text()).get("jobs", {}) if p.exists() else {}
    except ValueError:
        return {}


def _update_jobs(folder: Path, grid: Grid, entries: Mapping[str, dict]) -> None:
    """Merge ``entries`` into ``jobs.json`` (read-modify-write under a short O_EXCL guard)."""
    folder.mkdir(parents=True, exist_ok=True)
    for _ in range(200):
        with exclusive(folder / "jobs.json.lock") as mine:
            if mine:
                jobs = _read_jobs(folder)
                jobs.update(entries)
                atomic_write_text(folder / "jobs.json", json.dumps({"grid": grid.name, "jobs": jobs}, indent=2))
                return
        time.sleep(0.05)
    raise TimeoutError(f"sweep: {folder / 'jobs.json.lock'} stayed locked")


def _job_state(entry: Mapping[str, Any], folder: Path) -> str:
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


def _group_state(group: RunGroup, store: RunStore, jobs: Mapping[str, dict], folder: Path) -> dict:
    """State of one run folder: ``done``, ``running``, ``queued``, ``failed``, ``partial`` or ``not started``."""
    record = store.get(group.config)
    have = record.iterations_available() if record else 0
    out: dict[str, Any] = {"iterations": have, "note": ""}
    holder = record.claim_holder() if record else None
    failed = record.failure() if record else None
    entry = jobs.get(group.key)
    if have >= group.config.K:
        out["state"] = "done"
    elif holder:
        out.update(state="running", note=holder_text(holder))
    elif entry and (state := _job_state(entry, folder)) in _ACTIVE_JOB_STATES:
        out.update(state="queued", note=f"{entry.get('executor')} job {entry.get('job_id')} {state}")
    elif failed:
        out.update(state="failed", note=str(failed.get("error", "")))
    else:
        out["state"] = "partial" if have else "not started"
    if entry:
        out["job"] = entry.get("job_id")
    return out


def _varied_fields(points: Sequence[GridPoint]) -> list[str]:
    names = []
    for f in _FIELD_NAMES:
        if f in ("progress", "topk"):
            continue
        if len({json.dumps(getattr(p.config, f), default=str) for p in points}) > 1:
            names.append(f)
    if "threshold" in names or len({p.config.topk for p in points if p.config.threshold == "topk"}) > 1:
        names = [n for n in names if n != "threshold"] + ["threshold"]
    return names


def threshold_text(cfg: CascadeConfig) -> str:
    """The grid files' ``threshold_spec`` of a configuration: ``topk:10``, ``none`` or ``ebayes``."""
    return f"topk:{cfg.topk:g}" if cfg.threshold == "topk" else cfg.threshold


def completed_runs(grid: Grid, store: RunStore) -> list[CascadeConfig]:
    """The part of a sweep that the store holds: for each run folder of ``grid`` with at least one
    finished iteration, its configuration with K = the iterations available (at most the group's K).

    Nothing is trained or locked: a book page reads what a (possibly still running) sweep has
    finished and lists the rest with :func:`grid_status`. A configuration with an explainer list
    counts only when complete, since its K is part of its hash.
    """
    out = []
    for group in grid.groups:
        record = store.get(group.config)
        have = min(record.iterations_available(), group.config.K) if record else 0
        if have == 0 or (have < group.config.K and not isinstance(group.config.explainer, str)):
            continue
        out.append(group.config.replace(K=have))
    return out


def grid_status(grid: Grid, store: RunStore, *, metrics: bool = True) -> list[dict]:
    """One row per configuration: the fields the grid varies, state, iterations and (done) headline metrics.

    With ``metrics``, a done run whose ``headline.json`` lacks a configuration is loaded once and
    its numbers are computed and cached (the jobs normally cache them right after training).
    """
    from .cascade import run_cascade

    folder = sweep_folder(store, grid)
    jobs = _read_jobs(folder)
    varied = _varied_fields(grid.points)
    rows = []
    for group in grid.groups:
        gstate = _group_state(group, store, jobs, folder)
        record = store.get(group.config)
        cache = record.read_json(HEADLINE_NAME, {}) if record else {}
        missing = [
            p.config for p in group.points if gstate["iterations"] >= p.config.K and _point_id(p.config) not in cache
        ]
        if metrics and missing and gstate["state"] in ("done", "partial", "failed") and record is not None:
            needed = (
                group.config.replace(K=max(c.K for c in missing))
                if isinstance(group.config.explainer, str)
                else group.config
            )
            cascade = run_cascade(needed, store, progress=False)
            _headlines(cascade, missing, cascade.record)
            cache = record.read_json(HEADLINE_NAME, {})
        for p in group.points:
            cfg = p.config
            row: dict[str, Any] = {"run": group.key}
            for f in varied:
                row[f] = threshold_text(cfg) if f == "threshold" else getattr(cfg, f)
            done = gstate["iterations"] >= cfg.K
            row["state"] = "done" if done else gstate["state"]
            row["iterations"] = f"{min(gstate['iterations'], cfg.K)}/{cfg.K}"
            head = cache.get(_point_id(cfg), {})
            row["CAM PG"] = _pct(head.get("CAM", {}).get("pointing_game"))
            row["CasCAM PG"] = _pct(head.get("CasCAM", {}).get("pointing_game"))
            row["CasCAM AP"] = _num(head.get("CasCAM", {}).get("average_precision"))
            row["note"] = (
                ("metrics: " + head["error"]) if done and "error" in head else ("" if done else gstate["note"])
            )
            rows.append(row)
    return rows


def _pct(v: Any) -> str:
    return "" if v is None else f"{100 * v:.1f}%"


def _num(v: Any) -> str:
    return "" if v is None else f"{v:.3f}"


def format_status(grid: Grid, rows: Sequence[dict]) -> str:
    """A plain-text table of :func:`grid_status` rows with a one-line summary."""
    import pandas as pd

    table = pd.DataFrame(list(rows)).fillna("").to_string(index=False)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return f"grid {grid.name}: {len(rows)} configurations in {len(grid.groups)} runs — {summary}\n{table}"


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
    jobs = _read_jobs(folder)
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
        state = _group_state(g, store, jobs, folder)
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
                report["failed"].append(f"{g.key}: {_last_line(exc)}")
                echo(f"  failed: {_last_line(exc)} (recorded in {store.path(g.config) / FAILED_NAME})")
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
        _update_jobs(folder, grid, entries)
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
                report["failed"].append(f"{g.key}: {_last_line(exc)}")
                echo(f"  failed {g.key}: {_last_line(exc)} (log: {folder / 'logs'})")
                final[g.key] = {**entries[g.key], "state": "FAILED"}
        _update_jobs(folder, grid, final)
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
