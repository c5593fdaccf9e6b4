"""Keeping native libraries quiet: some print to file descriptor 2 themselves (LiteRT announces its
XNNPACK delegate, libsndfile's MP3 decoder warns about garbage), which would break rtser's promise
of one clear line per error."""

from __future__ import annotations

import contextlib
import os
import sys


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
