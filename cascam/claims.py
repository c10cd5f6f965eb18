"""Claims on a run folder: who trains the run now, so that no two processes train it at once.

A claim is ``<run>/claim.lock``, created atomically (``O_CREAT | O_EXCL``) and holding host, pid,
job and time; a daemon thread touches it while its holder lives, so a lock that nobody touched for
long (or whose pid is gone on this host) is stale and may be broken. Every claim, break, start,
end and failure is one line of ``<run>/claims.log``; the last failure is ``<run>/failed.json``.

The run store reaches these through its records (:meth:`~cascam.store.RunRecord.claim`,
:meth:`~cascam.store.RunRecord.claim_holder`); nothing here knows what a run computes.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "CLAIMS_LOG",
    "FAILED_NAME",
    "HEARTBEAT_S",
    "LOCK_NAME",
    "STALE_AFTER_S",
    "LockHeld",
    "RunLock",
    "claim_run",
    "exclusive",
    "holder_text",
    "lock_holder",
    "lock_is_stale",
    "log_claim",
    "pid_alive",
]

#: Files a claim writes in a run folder (next to what the engine writes).
LOCK_NAME = "claim.lock"
CLAIMS_LOG = "claims.log"
FAILED_NAME = "failed.json"
#: A live holder touches its lock this often (seconds) ...
HEARTBEAT_S = 60.0
#: ... so a lock untouched for this long is stale on any host (15 heartbeats: room for clock skew).
STALE_AFTER_S = 900.0


class LockHeld(RuntimeError):
    """The run is claimed by a live holder; ``holder`` is the lock's content (host, pid, job, time)."""

    def __init__(self, holder: dict) -> None:
        super().__init__(f"claimed by {holder_text(holder)}")
        self.holder = holder


def holder_text(holder: Mapping[str, Any]) -> str:
    """``host pid 123 job 45 since 2026-01-02 03:04``: who holds a claim, for a person to read."""
    job = f" job {holder['job']}" if holder.get("job") else ""
    since = holder.get("time")
    when = f" since {time.strftime('%Y-%m-%d %H:%M', time.localtime(since))}" if since else ""
    return f"{holder.get('host', '?')} pid {holder.get('pid', '?')}{job}{when}"


def pid_alive(pid: Any) -> bool:
    """True when a process ``pid`` lives on this host."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_lock(path: Path) -> tuple[bytes, dict] | None:
    """The lock's raw bytes and content (empty while its creator is still writing), or None if gone."""
    try:
        raw = path.read_bytes()
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    try:
        holder = json.loads(raw.decode())
    except (ValueError, UnicodeDecodeError):
        holder = {}
    holder["mtime"] = mtime
    return raw, holder


def lock_is_stale(holder: Mapping[str, Any], stale_after_s: float = STALE_AFTER_S) -> bool:
    """A lock is stale when its holder's pid is gone on this host, or when nobody touched it for
    ``stale_after_s`` seconds (its holder on another host died or lost the shared filesystem)."""
    if time.time() - float(holder.get("mtime", 0)) > stale_after_s:
        return True
    return holder.get("host") == socket.gethostname() and "pid" in holder and not pid_alive(holder["pid"])


@contextlib.contextmanager
def exclusive(path: Path, stale_after_s: float = 60.0) -> Iterator[bool]:
    """A short-lived O_EXCL guard (yields False when another process holds it and it is fresh)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime > stale_after_s:  # its holder died mid-way
                path.unlink()
        yield False
        return
    try:
        os.close(fd)
        yield True
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _break_lock(path: Path, raw: bytes) -> None:
    """Remove the lock if it still holds ``raw`` (breakers serialise on ``<lock>.break``)."""
    with exclusive(path.with_name(path.name + ".break")) as mine:
        if mine:
            with contextlib.suppress(FileNotFoundError):
                if path.read_bytes() == raw:
                    path.unlink()


def log_claim(run_dir: Path, event: str, info: Mapping[str, Any]) -> None:
    """Append ``<time> host=… pid=… job=… <event>`` to ``<run>/claims.log``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
    line = f"{stamp} host={info.get('host')} pid={info.get('pid')} job={info.get('job') or '-'} {event}\n"
    fd = os.open(run_dir / CLAIMS_LOG, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


class RunLock:
    """A held claim on a run folder; a daemon thread touches the file every ``heartbeat_s`` seconds."""

    def __init__(self, path: Path, info: dict, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.path = path
        self.info = info
        self._raw = json.dumps(info).encode()
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._beat, args=(heartbeat_s,), daemon=True)
        self._thread.start()

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                if self.path.read_bytes() != self._raw:
                    self.lost = True
                    return
                os.utime(self.path)
            except OSError:
                self.lost = True
                return

    def log(self, event: str) -> None:
        """One line of the run's ``claims.log``, signed by this holder."""
        log_claim(self.path.parent, event, self.info)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours."""
        self._stop.set()
        with contextlib.suppress(FileNotFoundError):
            if self.path.read_bytes() == self._raw:
                self.path.unlink()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def claim_run(
    run_dir: Path,
    *,
    job: str | None = None,
    stale_after_s: float = STALE_AFTER_S,
    heartbeat_s: float = HEARTBEAT_S,
) -> RunLock:
    """Claim ``run_dir`` with an atomic lock file (``os.open(O_CREAT | O_EXCL)``) holding host, pid, job and time.

    A stale lock (see :func:`lock_is_stale`) is broken; so is a lock of the same submitit/SLURM
    ``job`` id (a preempted job requeued under its old id). Raises :class:`LockHeld` otherwise.
    """
    path = Path(run_dir) / LOCK_NAME
    info = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job": job,
        "time": time.time(),
        "token": uuid.uuid4().hex,
    }
    for _ in range(20):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            current = _read_lock(path)
            if current is None:
                continue
            raw, holder = current
            if not raw and time.time() - holder["mtime"] < 5:  # its creator is writing it right now
                time.sleep(0.05)
                continue
            if (job is not None and holder.get("job") == job) or lock_is_stale(holder, stale_after_s):
                _break_lock(path, raw)
                log_claim(Path(run_dir), f"broke lock of {holder_text(holder)}", info)
                time.sleep(0.01)
                continue
            raise LockHeld(holder) from None
        try:
            os.write(fd, json.dumps(info).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        return RunLock(path, info, heartbeat_s)
    current = _read_lock(path)
    raise LockHeld(current[1] if current else {})


def lock_holder(run_dir: Path, stale_after_s: float = STALE_AFTER_S) -> dict | None:
    """The live holder of ``run_dir``'s claim, or None when it is free or stale."""
    current = _read_lock(Path(run_dir) / LOCK_NAME)
    if current is None or lock_is_stale(current[1], stale_after_s):
        return None
    return current[1]
