"""Stopping ``rtser listen`` on SIGINT or SIGTERM within a bounded time, whatever the main thread
is blocked in.

A Python signal handler runs only in the main thread, between bytecodes: a main thread stuck in a
device call (PortAudio closing a stream on a frozen sound server, say) would never see it, and
systemd would end the service with SIGKILL, without its final status. So the signals are blocked
in every thread and taken by a watchdog thread of their own (``sigwait``): it asks the main loop to
stop and, if the process has not ended ``grace_seconds`` later, runs ``on_stuck`` (which reports the
final status from there) and ends the process itself.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from typing import Callable

SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Watchdog:
    """Takes SIGINT and SIGTERM for the whole process. Create it on the main thread before any
    other thread starts (threads inherit the blocked signals)."""

    def __init__(self, grace_seconds: float = 2.0):
        self.stop = threading.Event()  # set when a signal asks the program to stop
        self.grace_seconds = grace_seconds
        self._on_stuck: Callable[[], None] = lambda: None
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        threading.Thread(target=self._watch, name="rtser-watchdog", daemon=True).start()

    def on_stuck(self, action: Callable[[], None]) -> None:
        """What to do, from the watchdog's thread, before ending a process that did not stop in time."""
        self._on_stuck = action

    def _watch(self) -> None:
        signal.sigwait(SIGNALS)
        self.stop.set()
        time.sleep(self.grace_seconds)  # a process that ends meanwhile ends this thread with it
        try:
            self._on_stuck()
        finally:
            os._exit(0)
