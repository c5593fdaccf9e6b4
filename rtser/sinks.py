"""Where events go: lines on a stream (stdout by default; JSON, or text for people: :mod:`rtser.text`).
The MQTT sink is in :mod:`rtser.mqtt`.

A sink has ``deliver(event)``, ``stats()`` (counters for status events) and ``close()``, which
returns how many events it could not deliver. A live recognizer must never wait for a sink:
:class:`QueuedSink` gives a sink a bounded queue and a thread of its own, so a reader that stalls
(``rtser listen | slow-consumer``) or a stream that fails (a full disk, a closed pipe) costs only
that sink's events, dropped and counted, while the others go on.
"""

from __future__ import annotations

import json
import sys
import threading
from collections import deque
from typing import Callable, TextIO

from .errors import warn


def json_line(obj) -> str:
    """One event as the JSON line rtser prints (never NaN or Infinity, which JSON does not have)."""
    return json.dumps(obj, separators=(", ", ": "), allow_nan=False) + "\n"


class LineSink:
    """Writes each event as one line (``line(event)``: a JSON line by default; None writes nothing)
    and flushes, so a pipe sees it at once."""

    name = "stdout"

    def __init__(self, stream: TextIO | None = None, line: Callable[[dict], str | None] = json_line):
        self._stream, self._line = stream, line

    def deliver(self, event: dict) -> None:
        """Write one event (raises OSError or ValueError when the stream cannot take it)."""
        stream = self._stream or sys.stdout
        if stream is None:
            raise ValueError("standard output is closed")
        text = self._line(event)
        if text is not None:
            stream.write(text)
            stream.flush()

    def stats(self) -> dict:
        """Nothing to report."""
        return {}

    def close(self) -> int:
        """Nothing to release (the stream belongs to the caller); every event was written."""
        return 0


class QueuedSink:
    """Delivers another sink's events from a thread of its own, through a queue of ``queue_size``
    events (when it is full the oldest is dropped and counted). A sink whose delivery fails is given
    up with one warning line; its events are counted as dropped from then on."""

    def __init__(self, sink, queue_size: int = 1000):
        self.name = sink.name
        self._sink, self._size = sink, queue_size
        self._queue: deque[dict] = deque()
        self._wake = threading.Condition()
        self._busy = False  # an event is being delivered
        self._closing = False
        self.dropped = 0
        self.failed: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"rtser-{self.name}-sink", daemon=True)
        self._thread.start()

    def deliver(self, event: dict) -> None:
        """Queue one event (never blocks)."""
        with self._wake:
            if self.failed is not None:
                self.dropped += 1
                return
            if len(self._queue) >= self._size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._wake.notify()

    def stats(self) -> dict:
        """The queue and what was dropped."""
        with self._wake:
            return {self.name: {"queued": len(self._queue) + self._busy, "dropped": self.dropped}}

    def close(self, timeout: float = 2.0) -> int:
        """Wait up to ``timeout`` seconds for the queue to be delivered; return how many events were
        not (a stream still blocked after that is left to its thread, which dies with the process)."""
        with self._wake:
            self._closing = True
            self._wake.notify_all()
            self._wake.wait_for(lambda: not (self._queue or self._busy) or self.failed is not None, timeout)
            return self.dropped + len(self._queue) + self._busy

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                event = self._queue.popleft()
                self._busy = True
            try:
                self._sink.deliver(event)
            except (OSError, ValueError) as err:
                with self._wake:
                    self.failed = getattr(err, "strerror", None) or str(err)
                    self.dropped += 1 + len(self._queue)
                    self._queue.clear()
                    self._busy = False
                    self._wake.notify_all()
                warn(f"events to {self.name} stopped: {self.failed}; the other outputs go on")
                return
            with self._wake:
                self._busy = False
                self._wake.notify_all()
