"""Noticing that a lost microphone may be back: the ALSA device nodes and the sound servers' sockets,
looked at with a few ``stat`` calls, so that a device is retried as soon as one of them changes
rather than when the backoff next allows (PortAudio itself tells nothing of devices coming and
going)."""

from __future__ import annotations

import os
import threading
import time

ALSA_NODES = "/dev/snd"
LOOK_SECONDS = 0.1  # how often the device nodes and sockets are looked at while a device is lost


def sound_server_sockets(environ=os.environ) -> list[str]:
    """The sockets a PulseAudio or PipeWire server of this user (or the system's) listens on."""
    paths = []
    server = environ.get("PULSE_SERVER", "")
    for part in server.split():
        if part.startswith("unix:"):
            paths.append(part[len("unix:"):])
        elif part.startswith("/"):
            paths.append(part)
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime:
        paths += [os.path.join(runtime, "pulse", "native"), os.path.join(runtime, "pipewire-0")]
    paths.append("/run/pulse/native")
    return paths


def audio_landscape(environ=os.environ) -> tuple:
    """What can be seen of the machine's audio devices: the ALSA device nodes and each sound server
    socket with its inode and time (a restarted server makes a new socket)."""
    try:
        nodes = tuple(sorted(os.listdir(ALSA_NODES)))
    except OSError:
        nodes = ()
    sockets = []
    for path in sound_server_sockets(environ):
        try:
            found = os.stat(path)
        except OSError:
            continue
        sockets.append((path, found.st_ino, found.st_mtime_ns))
    return nodes, tuple(sockets)


def wait_for_change(stop: threading.Event, seconds: float, since: tuple) -> bool:
    """Wait up to ``seconds``, ending early when ``stop`` is set or the audio landscape differs from
    ``since``; True when it changed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if stop.wait(min(LOOK_SECONDS, left)):
            return False
        if audio_landscape() != since:
            return True
    return False
