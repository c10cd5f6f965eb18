"""Pause points that a test (or a person debugging an interruption) controls.

A run can be made to stop right after iteration k is saved and wait there, so that a test interrupts
it at a known place instead of racing it: set ``CASCAM_PAUSE_AFTER_ITERATION=k:PATH``. When the run
has trained and saved iteration k, it writes its process id to ``PATH`` and waits until ``PATH`` is
removed (the test deletes it to let the run go on, or kills the process while it waits). The hook
fires only for an iteration trained by this process, never for one loaded from the run store, so a
resumed run does not stop again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

PAUSE_ENV = "CASCAM_PAUSE_AFTER_ITERATION"


def pause_after_iteration(k: int) -> None:
    """Wait after iteration ``k`` was saved, if ``CASCAM_PAUSE_AFTER_ITERATION`` asks for it."""
    spec = os.environ.get(PAUSE_ENV)
    if not spec:
        return
    want, sep, path = spec.partition(":")
    if not sep or not path or not want.strip().isdigit():
        raise ValueError(f"{PAUSE_ENV}: expected 'k:PATH' (e.g. '1:/tmp/paused'); got {spec!r}")
    if int(want) != k:
        return
    flag = Path(path)
    # Ctrl-C (SIGINT) must end the wait. Python raises KeyboardInterrupt wherever the main thread is
    # when the signal is handled, and one raised inside a finaliser (a ``__del__`` run by a garbage
    # collection during the loop) is printed and dropped, so the wait would go on forever. Here the
    # handler only notes the signal and the loop raises it itself.
    interrupted: list[int] = []
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signum)) if main_thread else None
    try:
        tmp = flag.with_name(f".{flag.name}.tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(flag)  # the test sees the whole file or none
        while flag.exists():
            if interrupted:
                raise KeyboardInterrupt
            time.sleep(0.05)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
