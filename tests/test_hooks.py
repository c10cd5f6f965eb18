"""The pause point ends on Ctrl-C however the signal lands, and leaves the SIGINT handler as it was."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from cascam.hooks import PAUSE_ENV, pause_after_iteration


def test_sigint_ends_the_pause_and_the_handler_is_restored(tmp_path, monkeypatch):
    flag = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_ENV, f"2:{flag}")
    before = signal.getsignal(signal.SIGINT)
    released = threading.Event()

    def interrupt_when_paused():
        while not flag.exists():
            released.wait(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    pause_after_iteration(1)  # another iteration: no pause, no flag
    assert not flag.exists()
    threading.Thread(target=interrupt_when_paused, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        pause_after_iteration(2)
    assert int(flag.read_text()) == os.getpid()
    assert signal.getsignal(signal.SIGINT) is before

