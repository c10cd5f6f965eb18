"""What a sweep has done: each run folder's state (done, running, queued, failed, ...), the headline
metrics of each configuration (computed once and cached in ``<run>/headline.json``), and the
status table of a grid.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..claims import holder_text
from ..config import CascadeConfig
from ..store import RunRecord, RunStore
from .grid import FIELD_NAMES, Grid, GridPoint, RunGroup, threshold_text
from .jobs import ACTIVE_JOB_STATES, job_state, read_jobs, sweep_folder

#: The cache of headline metrics in a run folder, one entry per configuration (:func:`point_id`).
HEADLINE_NAME = "headline.json"


def point_id(cfg: CascadeConfig) -> str:
    """A configuration's entry in ``headline.json``: what changes its numbers within one run folder."""
    return f"K={cfg.K} lam={cfg.lam:g} combine={cfg.combine} explain_on={cfg.explain_on}"


def last_line(exc: BaseException) -> str:
    """``Error: message``'s last line: what a failed run or metric says in one line."""
    text = f"{exc.__class__.__name__}: {exc}".strip().splitlines()
    return text[-1] if text else exc.__class__.__name__


def cache_headlines(cascade: Any, points: Sequence[CascadeConfig], record: RunRecord) -> None:
    """Pointing game and AP (CAM vs CasCAM) per configuration of the group, cached in ``headline.json``."""
    from ..report import headline

    cache = record.read_json(HEADLINE_NAME, {})
    for cfg in points:
        pid = point_id(cfg)
        if pid in cache or cfg.K > cascade.K:
            continue
        try:
            view = dataclasses.replace(cascade.truncated(cfg.K), config=cfg)
            table = headline(view)
            cache[pid] = {m: {k: float(v) for k, v in row.items()} for m, row in table.to_dict("index").items()}
        except Exception as exc:  # the run itself is done; say why its numbers are missing
            cache[pid] = {"error": last_line(exc)}
    record.write_json(HEADLINE_NAME, cache)


def has_headlines(record: RunRecord, points: Sequence[CascadeConfig]) -> bool:
    """True when the run folder's cache holds the headline metrics of every configuration in ``points``."""
    cached = record.read_json(HEADLINE_NAME, {})
    return all(point_id(p) in cached for p in points)


def group_state(group: RunGroup, store: RunStore, jobs: Mapping[str, dict], folder: Path) -> dict:
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
    elif entry and (state := job_state(entry, folder)) in ACTIVE_JOB_STATES:
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
    for f in FIELD_NAMES:
        if f in ("progress", "topk"):
            continue
        if len({json.dumps(getattr(p.config, f), default=str) for p in points}) > 1:
            names.append(f)
    if "threshold" in names or len({p.config.topk for p in points if p.config.threshold == "topk"}) > 1:
        names = [n for n in names if n != "threshold"] + ["threshold"]
    return names


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
    from ..cascade import run_cascade

    folder = sweep_folder(store, grid)
    jobs = read_jobs(folder)
    varied = _varied_fields(grid.points)
    rows = []
    for group in grid.groups:
        gstate = group_state(group, store, jobs, folder)
        record = store.get(group.config)
        cache = record.read_json(HEADLINE_NAME, {}) if record else {}
        missing = [
            p.config for p in group.points if gstate["iterations"] >= p.config.K and point_id(p.config) not in cache
        ]
        if metrics and missing and gstate["state"] in ("done", "partial", "failed") and record is not None:
            needed = (
                group.config.replace(K=max(c.K for c in missing))
                if isinstance(group.config.explainer, str)
                else group.config
            )
            cascade = run_cascade(needed, store, progress=False)
            cache_headlines(cascade, missing, cascade.record)
            cache = record.read_json(HEADLINE_NAME, {})
        for p in group.points:
            cfg = p.config
            row: dict[str, Any] = {"run": group.key}
            for f in varied:
                row[f] = threshold_text(cfg) if f == "threshold" else getattr(cfg, f)
            done = gstate["iterations"] >= cfg.K
            row["state"] = "done" if done else gstate["state"]
            row["iterations"] = f"{min(gstate['iterations'], cfg.K)}/{cfg.K}"
            head = cache.get(point_id(cfg), {})
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
