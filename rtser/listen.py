"""``rtser listen``: the recognizer fed by a microphone, its events sent to every sink.

One loop on the main thread reads what the capture callback put in the ring buffer, pushes it
through the :class:`~rtser.pipeline.Recognizer` and hands the events to the sinks. Live events carry
``timestamp``: the Unix time at which the last sample they cover was delivered by the device.
Status events (``{"type": "status", ...}``) report the device state and counters when something
changes and every ``status_seconds``. A device that fails is reopened with backoff, and at once
when the machine's audio devices or sound server change; the audio missed meanwhile counts as a gap
in the stream's time line. Intervals (status, stalls, gaps) are measured
on the monotonic clock, so a wall clock set back (NTP on a board that booted without network) does
not stop them; only timestamps use the wall clock.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import TextIO

import numpy as np

from .capture import Captured, DeviceLost, Microphone
from .config import ListenConfig
from .device_watch import audio_landscape, wait_for_change
from .errors import RtserError, warn
from .events import selected
from .pipeline import Event, Recognizer


QUIET_SECONDS = 10.0  # input this long below the speech detector's floor is reported
METER_SECONDS = 0.25  # how often --meter shows the level


class InputLevel:
    """The input's level (dBFS, the loudest 10 ms of each block) and how long it has stayed below
    ``floor_dbfs``, the level under which the speech detector hears nothing."""

    def __init__(self, floor_dbfs: float):
        self.floor_dbfs = floor_dbfs
        self.dbfs = -120.0
        self.quiet_seconds = 0.0
        self.warned = False

    def hear(self, samples: np.ndarray, rate: int) -> bool:
        """Take a block (``[n, channels]``); True when the input has just stayed too quiet for
        ``QUIET_SECONDS`` (once, until it is loud again)."""
        step = max(1, rate // 100)
        mono = samples.mean(axis=1) if samples.ndim == 2 else samples
        usable = mono[: len(mono) // step * step].reshape(-1, step) if len(mono) >= step else mono[None]
        self.dbfs = float(10 * np.log10(np.max(np.mean(np.square(usable, dtype=np.float64), axis=1)) + 1e-12))
        if self.dbfs >= self.floor_dbfs:
            self.quiet_seconds, self.warned = 0.0, False
            return False
        self.quiet_seconds += len(mono) / rate
        if self.quiet_seconds >= QUIET_SECONDS and not self.warned:
            self.warned = True
            return True
        return False


class Listener:
    """Runs a :class:`Microphone` into a :class:`Recognizer` until stopped."""

    def __init__(self, config: ListenConfig, recognizer: Recognizer, sinks: list | None = None):
        self.config = config
        self.recognizer = recognizer
        self.sinks = sinks or []
        self.microphone = Microphone(config.audio, recognizer.manifest.features.sample_rate)
        self.position = 0.0  # seconds of stream time so far, gaps included
        self.dropped_seconds = 0.0
        self.device_restarts = 0
        self._state = "starting"
        self._last_status = time.monotonic()
        self._stopped = threading.Lock()  # taken by whoever reports the final status
        self._level = InputLevel(recognizer.manifest.speech_detector.floor_dbfs)
        self._connections: tuple = ()  # the outputs' connection states last reported
        self.meter: TextIO | None = None  # where --meter shows the input level
        self._last_meter = 0.0

    def open(self) -> None:
        """Open the microphone (RtserError when it cannot be: checked before any output starts)."""
        self.microphone.open()

    def run(self, stop: threading.Event) -> None:
        """Capture and recognize until ``stop`` is set (the microphone opened first if it is not);
        then flush and report ``stopped``. Raises RtserError only when the device cannot be opened
        at start, or when every output has failed."""
        if self.microphone.device is None:
            self.open()
        self._set_state("listening")
        poll = self.config.audio.block_seconds / 2
        try:
            while not stop.is_set():
                try:
                    captured = self.microphone.read()
                except DeviceLost as lost:
                    self._recover(lost, stop)
                    continue
                if len(captured.samples) == 0:
                    stop.wait(poll)
                else:
                    self._process(captured)
                self._maybe_report()
        finally:
            self._emit(self.recognizer.flush(), time.time())
            self.report_stopped()

    def close_device(self) -> None:
        """Close the microphone (after the outputs: closing may block on a frozen sound server)."""
        if not self.microphone.close():
            warn("the sound device did not close within a second (a frozen sound server?); left behind")

    def report_stopped(self) -> None:
        """The final status event, once, from whichever thread gets here first."""
        if self._stopped.acquire(blocking=False):
            self._set_state("stopped")

    def _process(self, captured: Captured) -> None:
        rate = self.microphone.rate
        if captured.dropped:
            seconds = captured.dropped / rate
            self.dropped_seconds += seconds
            self._report(event="overflow", lost_seconds=round(seconds, 3))
            self._gap(seconds, captured.arrival - len(captured.samples) / rate)
        if self._level.hear(captured.samples, rate):
            floor = self._level.floor_dbfs
            warn(f"the input has stayed below {floor:g} dBFS for {QUIET_SECONDS:g} s: speech that quiet is not heard "
                 "(a muted microphone, or its gain too low? alsamixer or pavucontrol set it)")  # fmt: skip
            self._report(event="input_too_quiet", level_dbfs=round(self._level.dbfs, 1))
        events = self.recognizer.push(captured.samples, rate)
        self.position += len(captured.samples) / rate
        self._emit(events, captured.arrival)
        self._show_meter()

    def _show_meter(self) -> None:
        """The input level and whether speech is heard, on the meter's stream (``--meter``)."""
        now = time.monotonic()
        if self.meter is None or now - self._last_meter < METER_SECONDS:
            return
        self._last_meter = now
        level = self._level.dbfs
        bar = "█" * max(0, min(30, round((level + 90) / 3)))
        heard = "speech" if self.recognizer.in_speech else ("too quiet" if level < self._level.floor_dbfs else "")
        end = "\r" if self.meter.isatty() else "\n"
        with contextlib.suppress(OSError, ValueError):
            self.meter.write(f"{level:6.1f} dBFS {bar:<30} {heard:<9}{end}")
            self.meter.flush()

    def _gap(self, seconds: float, resumed_at: float) -> None:
        # Events closing the audio before a gap end where that audio ended: before the gap began.
        self._emit(self.recognizer.gap(seconds), resumed_at - seconds)
        self.position += seconds

    def _emit(self, events: list[Event], arrival: float) -> None:
        for event in events:
            end = event.get("end", event.get("time", self.position))
            event["timestamp"] = round(arrival - (self.position - end), 3)
            self._deliver(event)

    def _deliver(self, event: Event) -> None:
        if not selected(event, self.config.output.events):
            return
        for sink in self.sinks:
            sink.deliver(event)
        if self.sinks and all(getattr(sink, "failed", None) for sink in self.sinks):
            raise RtserError("every output failed: " + "; ".join(f"{sink.name}: {sink.failed}" for sink in self.sinks))

    def _recover(self, lost: DeviceLost, stop: threading.Event) -> None:
        """Close the failed device and reopen it until it works or ``stop`` is set: at once, then
        with backoff, and at once again whenever the machine's audio devices or sound server change."""
        lost_at, lost_tick = self.microphone.last_arrival, self.microphone.last_tick
        self.microphone.close()
        self._set_state("device_lost", error=str(lost))
        delay, (first, longest) = 0.0, self.config.audio.retry_seconds
        seen = audio_landscape()
        while True:
            changed = wait_for_change(stop, delay, seen)
            if stop.is_set():
                return
            seen = audio_landscape()
            try:
                self.microphone.open(rescan=True)
            except RtserError as err:
                delay = first if changed else min(max(first, 2 * delay), longest)
                self._report(event="retry", error=str(err), next_retry_seconds=delay)
                continue
            self.device_restarts += 1
            missed = max(0.0, time.monotonic() - lost_tick)
            self._gap(missed, lost_at + missed)
            self._set_state("listening")
            return

    def _set_state(self, state: str, **details) -> None:
        self._state = state
        self._report(**details)

    def _maybe_report(self) -> None:
        connections = tuple(sorted((name, stats["connected"]) for sink in self.sinks for name, stats in sink.stats().items() if "connected" in stats))
        if connections != self._connections:
            changed = [f"{name}_{'connected' if up else 'disconnected'}" for name, up in sorted(set(connections) - set(self._connections))]
            self._connections = connections
            if changed and self._state != "starting":
                self._report(event=",".join(changed))
                return
        every = self.config.output.status_seconds
        if every > 0 and time.monotonic() - self._last_status >= every:
            self._report()

    def _report(self, **details) -> None:
        now = time.time()
        self._last_status = time.monotonic()
        microphone = self.microphone
        event: Event = {
            "type": "status",
            "state": self._state,
            "time": round(self.position, 3),
            "timestamp": round(now, 3),
            "device": microphone.name,
            "sample_rate": microphone.rate,
            "channels": microphone.channels,
            "dropped_seconds": round(self.dropped_seconds, 3),
            "overflows": microphone.overflows,
            "device_restarts": self.device_restarts,
            **details,
        }
        for sink in self.sinks:
            event.update(sink.stats())
        self._deliver(event)
