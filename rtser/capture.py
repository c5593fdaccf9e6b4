"""Live audio in: a PortAudio input stream whose callback only copies into a ring buffer.

The recognizer reads the ring buffer from its own thread at its own pace. If it falls behind by more
than the buffer holds, the oldest audio is dropped and counted (never fatal); a device that stops
delivering audio (unplugged, its sound server gone) raises :class:`DeviceLost` so the caller can
reopen it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from .config import AudioSettings
from .devices import InputDevice, default_input_index, input_devices, portaudio, resolve_device, same_device, shown_name
from .errors import RtserError
from .ringbuffer import RingBuffer

# A freshly opened stream may be slow to deliver its first block (PulseAudio: up to 1.7 s measured), so
# until it does, a stall is declared only after this long or ``stall_seconds``, whichever is longer.
FIRST_BLOCK_SECONDS = 5.0
CLOSE_SECONDS = 1.0  # how long closing a stream may take before it is left behind


class DeviceLost(RtserError):
    """The input device stopped delivering audio."""


@dataclass
class Captured:
    """What one read of the microphone returns."""

    samples: np.ndarray  # [n, channels] float32 (one channel when a channel is selected)
    dropped: int  # frames lost to overflow since the previous read
    arrival: float  # Unix time at which the newest of these samples was delivered by the device


class Microphone:
    """An input device opened at a rate and channel count it supports, feeding a ring buffer."""

    def __init__(self, settings: AudioSettings, preferred_rate: int):
        self.settings = settings
        self.preferred_rate = preferred_rate
        self.device: InputDevice | None = None
        self.name: str | None = None  # the device's name as status events show it (see devices.shown_name)
        self.rate = 0
        self.channels = 0
        self.overflows = 0  # blocks PortAudio itself reported as overflowed
        self._stream = None
        self._ring: RingBuffer | None = None
        self.last_arrival = 0.0  # Unix time of the newest block (for event timestamps)
        self.last_tick = 0.0  # the same on the monotonic clock (for intervals: the wall clock may jump)
        self._delivered = False  # whether the stream opened last has delivered a block yet

    def open(self, rescan: bool = False) -> None:
        """Find the device, pick its format and start capturing; ``rescan`` refreshes the device list.
        A device opened before is looked for first (by name), then the one the settings name."""
        sounddevice = portaudio()
        devices = input_devices(refresh=rescan)
        again = same_device(self.device, devices) if self.device else None
        self.device = again or resolve_device(self.settings.device, devices, default_input_index())
        self.rate, self.channels = self._choose_format(sounddevice)
        self._ring = RingBuffer(round(self.settings.buffer_seconds * self.rate), self.channels)
        try:
            self._stream = sounddevice.InputStream(
                device=self.device.index,
                samplerate=self.rate,
                channels=self.channels,
                dtype="float32",
                blocksize=max(1, round(self.settings.block_seconds * self.rate)),
                callback=self._callback,
            )
            self._delivered = False
            self._stream.start()
        except sounddevice.PortAudioError as err:
            self.close()
            raise RtserError(f"cannot open input device {self.device.describe()}: {err}") from None
        self.name = shown_name(self.device)
        self.last_arrival, self.last_tick = time.time(), time.monotonic()

    def _choose_format(self, sounddevice) -> tuple[int, int]:
        settings, device = self.settings, self.device

        def supported(rate: int, channels: int) -> bool:
            try:
                sounddevice.check_input_settings(device.index, samplerate=rate, channels=channels, dtype="float32")
                return True
            except (sounddevice.PortAudioError, ValueError):
                return False

        if settings.channels is not None:
            channels = settings.channels
        else:
            channels = 1 if supported(int(device.default_rate), 1) else device.channels
        if settings.channel is not None and settings.channel >= channels:
            raise RtserError(f"audio.channel {settings.channel} is not among the {channels} channel(s) opened "
                             f"(counted from 0; open more with --channels or audio.channels, up to the device's {device.channels})")  # fmt: skip
        rates = [settings.sample_rate] if settings.sample_rate else [self.preferred_rate, int(device.default_rate), 48000, 44100]
        for rate in rates:
            if supported(rate, channels):  # a rate under the model's band: the Recognizer's AudioWarning
                return rate, channels
        tried = ", ".join(f"{r} Hz" for r in rates)
        raise RtserError(f"input device {device.describe()} cannot capture {channels} channel(s) at {tried}")

    def _callback(self, indata, frames, time_info, status) -> None:
        # The audio thread: copy and return. No allocation beyond Python's own, no locks, no I/O.
        self._ring.write(indata)
        self.last_arrival, self.last_tick = time.time(), time.monotonic()
        self._delivered = True
        if status.input_overflow:
            self.overflows += 1

    def read(self) -> Captured:
        """Everything captured since the last read (possibly nothing); raises :class:`DeviceLost`
        when the stream has ended or no audio came for ``stall_seconds`` (from its first block on;
        before it, for ``FIRST_BLOCK_SECONDS`` from the opening if that is longer)."""
        if self._stream is None:
            raise DeviceLost("input device is not open")
        delivered = self._delivered  # read before the arrival time, which is then no older than the first block
        arrival, tick = self.last_arrival, self.last_tick  # read before the ring: a block written meanwhile is then dated no later than it came
        before = self._ring.dropped
        block = self._ring.read()
        if len(block) == 0:
            if not self._stream.active:
                raise DeviceLost(f"input device {self.device.describe()} stopped")
            limit = self.settings.stall_seconds if delivered else max(self.settings.stall_seconds, FIRST_BLOCK_SECONDS)
            if time.monotonic() - tick > limit:
                raise DeviceLost(f"no audio from {self.device.describe()} for {limit:g} s")
        if self.settings.channel is not None:
            block = block[:, self.settings.channel : self.settings.channel + 1]
        return Captured(block, self._ring.dropped - before, arrival)

    def close(self, timeout: float = CLOSE_SECONDS) -> bool:
        """Stop capturing (safe to call more than once, and on a stream that already failed).
        PortAudio may block closing a stream whose sound server froze: after ``timeout`` seconds
        the stream is left to a thread of its own and False returned."""
        stream, self._stream = self._stream, None
        if stream is None:
            return True
        closer = threading.Thread(target=_close_quietly, args=(stream,), name="rtser-device-close", daemon=True)
        closer.start()
        closer.join(timeout)
        return not closer.is_alive()


def _close_quietly(stream) -> None:
    try:
        stream.abort()
        stream.close()
    except Exception:  # a vanished device may fail to close; the stream is gone either way
        pass
