"""The one exception type the runtime raises for problems a user can fix, and rtser's own lines on
standard error."""

from __future__ import annotations

import sys


class RtserError(Exception):
    """A user-facing error: its message is printed as one line, without a traceback."""


def say(kind: str, message: str) -> None:
    """Write ``rtser: KIND: MESSAGE`` as one line on standard error; nothing when standard error is
    closed or cannot be written (``2>&-``, a full disk): never on standard output, which may be a
    stream of JSON events."""
    say_raw(f"rtser: {kind}: {' '.join(str(message).split())}")


def say_raw(line: str) -> None:
    """Write ``line`` as it is on standard error, under the same rules as :func:`say`."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def warn(message: str) -> None:
    """One ``rtser: warning:`` line on standard error."""
    say("warning", message)
