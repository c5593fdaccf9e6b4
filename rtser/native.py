"""Keeping native libraries quiet: some print to file descriptor 2 themselves (LiteRT announces its
XNNPACK delegate, libsndfile's MP3 decoder warns about garbage), which would break rtser's promise
of one clear line per error."""

from __future__ import annotations

import contextlib
import io
import os
import select
import sys
import threading
import time

from .errors import say_raw, warn


@contextlib.contextmanager
def native_stderr_silenced():
    """Send what native code writes to file descriptor 2 to /dev/null while the block runs."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class NativeLinesAsWarnings:
    """While active, what native libraries write to file descriptor 2 (PortAudio's ``Expression
    '...' failed in 'src/hostapi/alsa/pa_linux_alsa.c'`` when a device goes away) is read by a thread
    of its own and becomes rtser warnings: one line per burst, with how many lines came with it, and
    at most one every ``every_seconds`` (the lines in between are counted into the next, or into a
    last warning at the end). rtser's own lines still go to standard error as before. With
    ``debug``, every native line is passed on as it is."""

    BURST_SECONDS = 0.3  # lines this close together are one burst

    def __init__(self, debug: bool = False, every_seconds: float = 60.0):
        self.debug = debug
        self.every_seconds = every_seconds
        self._held = 0
        self._last_warning: float | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "NativeLinesAsWarnings":
        try:
            sys.stderr.flush()
            self._saved = os.dup(2)
        except (AttributeError, OSError, ValueError):  # standard error closed: nothing to turn
            return self
        self._read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        self._python_stderr = sys.stderr
        sys.stderr = io.TextIOWrapper(io.FileIO(self._saved, "w", closefd=False), line_buffering=True, errors="backslashreplace")
        self._thread = threading.Thread(target=self._run, name="rtser-native-lines", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os.dup2(self._saved, 2)  # the pipe's last writer gone: the thread reads its end
        self._thread.join(1.0)
        if self._held:
            warn(f"{self._held} more lines from native libraries since the last warning (--debug shows them)")
        sys.stderr = self._python_stderr
        os.close(self._saved)

    def _run(self) -> None:
        burst: list[str] = []
        rest, deadline = b"", None
        while True:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            if select.select([self._read], [], [], timeout)[0]:
                chunk = os.read(self._read, 65536)
                if not chunk:
                    break
                *lines, rest = (rest + chunk).split(b"\n")
                for line in lines:
                    text = line.decode("utf-8", "backslashreplace").strip()
                    if text and self.debug:
                        say_raw(text)
                    elif text:
                        burst.append(text)
                        deadline = deadline or time.monotonic() + self.BURST_SECONDS
            elif burst:
                self._warn(burst)
                burst, deadline = [], None
        os.close(self._read)
        if rest.strip():
            burst.append(rest.decode("utf-8", "backslashreplace").strip())
        if burst:
            self._warn(burst)

    def _warn(self, burst: list[str]) -> None:
        now = time.monotonic()
        if self._last_warning is not None and now - self._last_warning < self.every_seconds:
            self._held += len(burst)
            return
        more = len(burst) - 1 + self._held
        self._last_warning, self._held = now, 0
        tail = f" (and {more} more line{'s' if more != 1 else ''}; --debug shows them)" if more else ""
        warn(f"a native library wrote: {burst[0][:200]}{tail}")
