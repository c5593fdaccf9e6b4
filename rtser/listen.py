"""``rtser listen``: the recognizer fed by a microphone, its events sent to every sink.

One loop on the main thread reads what the capture callback put in the ring buffer, pushes it
through the :class:`~rtser.pipeline.Recognizer` and hands the events to the sinks. Live events carry
``timestamp``: the Unix time at which the last sample they cover was delivered by the device.
Status events (``{"type": "status", ...}``) report the device state and counters when something
changes and every ``status_seconds``. A device that fails is reopened with backoff; the audio missed
meanwhile counts as a gap in the stream's time line. Intervals (status, stalls, gaps) are measured
on the monotonic clock, so a wall clock set back (NTP on a board that booted without network) does
not stop them; only timestamps use the wall clock.
"""

from __future__ import annotations

import threading
import time

from .capture import Captured, DeviceLost, Microphone
from .config import ListenConfig
from .errors import RtserError, warn
from .events import selected
from .pipeline import Event, Recognizer


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
        events = self.recognizer.push(captured.samples, rate)
        self.position += len(captured.samples) / rate
        self._emit(events, captured.arrival)

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
        """Close the failed device and reopen it with backoff until it works or ``stop`` is set."""
        lost_at, lost_tick = self.microphone.last_arrival, self.microphone.last_tick
        self.microphone.close()
        self._set_state("device_lost", error=str(lost))
        delay, (first, longest) = 0.0, self.config.audio.retry_seconds  # the first retry at once
        while not stop.wait(delay):
            try:
                self.microphone.open(rescan=True)
            except RtserError as err:
                delay = min(max(first, 2 * delay), longest)
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
            "device": microphone.device.name if microphone.device else None,
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
