"""Where events go: JSON lines on a stream (stdout by default). The MQTT sink is in :mod:`rtser.mqtt`.

A sink has ``deliver(event)``, ``stats()`` (counters for status events) and ``close()``, which
returns how many events it could not deliver.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO


def json_line(obj) -> str:
    """One event as the JSON line rtser prints."""
    return json.dumps(obj, separators=(", ", ": ")) + "\n"


class JsonLinesSink:
    """Writes each event as one JSON line and flushes, so a pipe sees it at once."""

    def __init__(self, stream: TextIO | None = None):
        self._stream = stream

    def deliver(self, event: dict) -> None:
        """Write one event."""
        stream = self._stream or sys.stdout
        stream.write(json_line(event))
        stream.flush()

    def stats(self) -> dict:
        """Nothing to report."""
        return {}

    def close(self) -> int:
        """Nothing to release (the stream belongs to the caller); every event was written."""
        return 0
