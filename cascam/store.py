"""The run store: a run is a folder named by its configuration's hash, holding everything it produced.

Every file is written to a temporary name and renamed, so a killed job never leaves a half-written
file that a reader would trust; ``status.json`` says ``complete`` only once the last iteration is saved.
A record also hands out its folder's claim (:mod:`cascam.claims`: who trains it now), and the store
finds the run whose model 1 another configuration may take instead of training it again.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml
from torch import nn

from .claims import FAILED_NAME, HEARTBEAT_S, STALE_AFTER_S, RunLock, claim_run, lock_holder
from .config import CascadeConfig, ConfigError, first_model_key, read_yaml

__all__ = ["RunStore", "RunRecord", "atomic_write_bytes", "atomic_write_text", "default_store_root"]


def default_store_root() -> Path:
    """``$CASCAM_STORE`` if set, else ``./runs``."""
    return Path(os.environ.get("CASCAM_STORE", "runs"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class RunRecord:
    """One run's folder: ``config.yaml``, ``status.json``, ``iter_XX/{model.pt, history.csv, stats.json}``,
    and while a streamed run is going ``stream/x_KK.npy`` (its current x^(k), :mod:`cascam.streaming`)."""

    def __init__(self, directory: Path, config: CascadeConfig) -> None:
        self.dir = Path(directory)
        self.config = config

    def __repr__(self) -> str:
        return f"RunRecord({str(self.dir)!r}, complete={self.is_complete})"

    # ------------------------------------------------------------------ generic files
    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_text(self.dir / name, json.dumps(obj, indent=2, default=_json_default))

    def read_json(self, name: str, default: Any = None) -> Any:
        p = self.dir / name
        return json.loads(p.read_text()) if p.exists() else default

    def write_frame(self, name: str, frame: pd.DataFrame) -> None:
        atomic_write_text(self.dir / name, frame.to_csv(index=False))

    def read_frame(self, name: str) -> pd.DataFrame | None:
        p = self.dir / name
        return pd.read_csv(p) if p.exists() else None

    # ------------------------------------------------------------------ status
    @property
    def status(self) -> dict:
        return self.read_json("status.json", {"complete": False})

    @property
    def is_complete(self) -> bool:
        """True when iterations 1..K of this record's configuration are all saved and marked done."""
        return int(self.status.get("iterations_complete", 0)) >= self.config.K and self.has_iteration(self.config.K)

    def mark_complete(self, *, keep_stream: bool = False) -> None:
        """Record that iterations 1..K are finished (never lowers a count a longer run recorded), and
        delete the streamed images x^(k) (``stream/``, :mod:`cascam.streaming`) unless ``keep_stream``."""
        done = max(self.config.K, int(self.status.get("iterations_complete", 0)))
        self.write_json("status.json", {"complete": True, "iterations_complete": done})
        if not keep_stream:
            from .streaming import remove_stream

            remove_stream(self.dir)

    # ------------------------------------------------------------------ claims
    def claim(
        self, *, job: str | None = None, stale_after_s: float = STALE_AFTER_S, heartbeat_s: float = HEARTBEAT_S
    ) -> RunLock:
        """Claim this run for the calling process (:func:`~cascam.claims.claim_run`): a lock to release,
        or :class:`~cascam.claims.LockHeld` when a live process holds it."""
        return claim_run(self.dir, job=job, stale_after_s=stale_after_s, heartbeat_s=heartbeat_s)

    def claim_holder(self, stale_after_s: float = STALE_AFTER_S) -> dict | None:
        """The live holder of this run's claim (host, pid, job, time), or None when it is free or stale."""
        return lock_holder(self.dir, stale_after_s)

    def failure(self) -> dict | None:
        """The last failure recorded by a holder of this run's claim (``failed.json``), or None."""
        return self.read_json(FAILED_NAME)

    def record_failure(self, error: str, lock: RunLock) -> None:
        """Write ``failed.json`` (the error, the time, the holder) and log the failure."""
        self.write_json(FAILED_NAME, {"error": error, "time": time.time(), **lock.info})
        lock.log(f"failed: {error}")

    def clear_failure(self) -> None:
        (self.dir / FAILED_NAME).unlink(missing_ok=True)

    # ------------------------------------------------------------------ iterations
    def iteration_dir(self, k: int) -> Path:
        return self.dir / f"iter_{k:02d}"

    def has_iteration(self, k: int) -> bool:
        """True when iteration ``k``'s model and stats were both written completely."""
        d = self.iteration_dir(k)
        return (d / "model.pt").exists() and (d / "stats.json").exists()

    def iterations_done(self) -> list[int]:
        """The saved iterations 1..k with no gap (at most K of this record's configuration)."""
        done = []
        for k in range(1, self.config.K + 1):
            if not self.has_iteration(k):
                break
            done.append(k)
        return done

    def iterations_available(self) -> int:
        """How many consecutive iterations the folder holds (a longer run may have saved more than K)."""
        k = 0
        while self.has_iteration(k + 1):
            k += 1
        return k

    def save_iteration(self, k: int, model: nn.Module, history: list[dict], stats: dict) -> None:
        """Save model k, its training history and stats; ``stats.json`` is written last (the commit mark)."""
        d = self.iteration_dir(k)
        d.mkdir(parents=True, exist_ok=True)
        buf = _state_bytes(model)
        atomic_write_bytes(d / "model.pt", buf)
        atomic_write_text(d / "history.csv", pd.DataFrame(history).to_csv(index=False))
        atomic_write_text(d / "stats.json", json.dumps(stats, indent=2, default=_json_default))

    def update_stats(self, k: int, extra: dict) -> None:
        d = self.iteration_dir(k)
        stats = json.loads((d / "stats.json").read_text())
        stats.update(extra)
        atomic_write_text(d / "stats.json", json.dumps(stats, indent=2, default=_json_default))

    def load_state(self, k: int) -> dict:
        """Model k's state dict, loaded safely (``weights_only=True``)."""
        path = self.iteration_dir(k) / "model.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"run: checkpoint not found: {path}") from None
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
            first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0][:200]
            raise ValueError(
                f"run: {path} is not a model state dict that cascam can load safely ({first}); "
                "nothing was run from it — delete that run folder to retrain it"
            ) from None
        if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"run: {path} is not a model state dict (a mapping of names to tensors)")
        return state

    def stats(self, k: int) -> dict:
        return json.loads((self.iteration_dir(k) / "stats.json").read_text())

    def history(self, k: int) -> pd.DataFrame:
        return pd.read_csv(self.iteration_dir(k) / "history.csv")

    def iteration_table(self) -> pd.DataFrame:
        """One row per finished iteration with its stats (timings, accuracies, early stopping)."""
        rows = []
        for k in self.iterations_done():
            s = self.stats(k)
            rows.append({"iteration": k, **{key: v for key, v in s.items() if not isinstance(v, (dict, list))}})
        return pd.DataFrame(rows)


def _state_bytes(model: nn.Module) -> bytes:
    import io

    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    return buf.getvalue()


class RunStore:
    """A folder of runs, one sub-folder per configuration hash (``CascadeConfig.key()``)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_store_root()

    def __repr__(self) -> str:
        return f"RunStore({str(self.root)!r})"

    def path(self, config: CascadeConfig) -> Path:
        return self.root / config.key()

    def open(self, config: CascadeConfig) -> RunRecord:
        """The record for ``config``, creating its folder and ``config.yaml`` if new."""
        d = self.path(config)
        d.mkdir(parents=True, exist_ok=True)
        if not (d / "config.yaml").exists():
            atomic_write_text(d / "config.yaml", yaml.safe_dump(config.training_dict(), sort_keys=True))
        return RunRecord(d, config)

    def pretrain_dir(self, key: str) -> Path:
        """The folder of one pre-trained network (:mod:`cascam.pretrain`), shared by the runs that use it."""
        return self.root / "_pretrain" / key

    def get(self, config: CascadeConfig) -> RunRecord | None:
        """The record for ``config`` if its folder exists, else None."""
        d = self.path(config)
        return RunRecord(d, config) if d.exists() else None

    def first_model_for(self, config: CascadeConfig) -> RunRecord | None:
        """The run whose model 1 ``config``'s run takes instead of training it, or None.

        Model 1 sees only the original images, so runs that differ only in masking parameters
        (θ, threshold, fill, explainer, K: :data:`~cascam.config.MASKING_FIELDS`) train the same
        model 1 (:func:`~cascam.config.first_model_key`). Returns the first other run of this store
        with such a model 1 committed, or None.
        """
        if not self.root.exists():
            return None
        want, own = config.first_model_key(), self.path(config).resolve()
        for d in sorted(self.root.iterdir()):
            cfg_path = d / "config.yaml"
            if d.resolve() == own or not cfg_path.exists():
                continue
            try:
                values = yaml.safe_load(cfg_path.read_text())
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(values, dict) and first_model_key(values) == want:
                record = load_record(d)
                if record.has_iteration(1):
                    return record
        return None

    def __iter__(self) -> Iterator[RunRecord]:
        if not self.root.exists():
            return
        for d in sorted(self.root.iterdir()):
            if (d / "config.yaml").exists():
                yield load_record(d)


def load_record(directory: str | Path, **explanation: Any) -> RunRecord:
    """Open an existing run folder (reads its ``config.yaml``).

    K is the number of iterations the folder holds unless given; ``explanation`` may set ``lam``,
    ``combine``, ``explain_on`` (not stored with the training configuration).
    """
    d = Path(directory)
    cfg_path = d / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"run: {d} is not a run folder (no config.yaml)")
    values = read_yaml(cfg_path, "run")
    if not isinstance(values, dict):
        raise ConfigError(f"run: {cfg_path} must hold a mapping of parameter: value")
    if "K" not in values:
        k = RunRecord(d, CascadeConfig()).iterations_available()
        values["K"] = max(1, k)
    values.update(explanation)
    return RunRecord(d, CascadeConfig.from_dict(values))
