"""The recognizer: samples in, emotion events out. ``replay``, ``listen`` and library users all
drive this one class."""

from __future__ import annotations

import os
from typing import Callable, Iterable, Iterator

import numpy as np

from .audio import StreamResampler, to_float_mono
from .backends import Backend, load_backend
from .errors import RtserError
from .features import StreamingExtractor
from .manifest import Manifest, WindowSpec, load_manifest
from .smoothing import Smoother
from .windows import FrameHistory, fill_window, speech_frames

DEFAULT_MODEL = os.path.join(os.path.dirname(__file__), "models", "default")

Event = dict


def load_model(
    model: str | Manifest | None = None, backend: str | Backend = "auto", threads: int = 1
) -> tuple[Manifest, Backend]:
    """The manifest and a ready backend for ``model`` (a path, a loaded manifest, or None for the
    shipped default); ``backend`` names a runtime or is a ready :class:`Backend`."""
    manifest = model if isinstance(model, Manifest) else load_manifest(model or DEFAULT_MODEL)
    if isinstance(backend, Backend):
        return manifest, backend
    return manifest, load_backend(manifest, backend, threads)


def _seconds(value: float) -> float:
    return round(float(value), 3)


class Recognizer:
    """Streaming speech emotion recognizer.

    Push samples of any rate, format and chunk size with :meth:`push`; each call returns the events
    it produced (and passes them to ``on_event`` if given). Call :meth:`flush` at the end of a
    stream to evaluate the last, partial window. Events are dicts; see the README for their fields.
    """

    def __init__(
        self,
        model: str | Manifest | None = None,
        *,
        backend: str | Backend = "auto",
        hop_seconds: float | None = None,
        smoothing: float = 0.5,
        switch_margin: float = 0.1,
        on_event: Callable[[Event], None] | None = None,
        threads: int = 1,
    ):
        self.manifest, self.backend = load_model(model, backend, threads)
        self.labels = self.manifest.labels
        self._features = self.manifest.features
        window = self.manifest.window
        if hop_seconds is not None:
            if not 0 < hop_seconds <= window.seconds:
                raise RtserError(f"hop must be in (0, {window.seconds}] seconds, got {hop_seconds}")
            window = WindowSpec(window.seconds, hop_seconds)
        self._window_frames = window.frames(self._features)
        self._hop_frames = window.hop_frames(self._features)
        self._voice = self.manifest.voice_statistics()
        self._smoother = Smoother(smoothing, switch_margin)
        self._on_event = on_event
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far, the voice's statistics included (call it when another speaker
        or microphone takes over); the next push starts a new stream at time 0."""
        self._segment_start = 0.0
        self._voice.reset()
        self._in_speech = False
        self._smoother.reset()
        self.non_finite_samples = 0
        self._start_segment()

    def _start_segment(self) -> None:
        # A segment is a stretch of contiguous audio; a gap in the input starts a new one.
        self._extractor = StreamingExtractor(self._features)
        self._history = FrameHistory(self._window_frames, self._features.n_features)
        self._resampler: StreamResampler | None = None
        self._since_window = 0
        self._frames_seen = 0
        self._segment_samples = 0

    def push(self, samples: np.ndarray, sample_rate: int | None = None) -> list[Event]:
        """Feed samples (``[n]`` or ``[n, channels]``, int or float) at ``sample_rate`` (the model's
        rate if None); return the events they completed."""
        rate = int(sample_rate or self._features.sample_rate)
        if self._resampler is None:
            self._resampler = StreamResampler(rate, self._features.sample_rate)
        elif rate != self._resampler.in_rate:
            raise RtserError(f"sample rate changed from {self._resampler.in_rate} to {rate} mid-stream; call reset()")
        mono, bad = to_float_mono(samples)
        self.non_finite_samples += bad
        return self._consume(self._frames_from(mono))

    def _frames_from(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        resampled = self._resampler.process(samples, last=last)
        self._segment_samples += len(resampled)
        return self._extractor.push(resampled)

    def flush(self) -> list[Event]:
        """End of stream: drain the resampler, evaluate the last partial window, close speech.
        Audio pushed afterwards continues the stream's time line and the voice's statistics."""
        return self._end_segment()

    def gap(self, seconds: float) -> list[Event]:
        """Audio of ``seconds`` was lost (a capture overflow, a device that came back): finish the
        audio before the gap like :meth:`flush`, and count the gap in the times of later events,
        so no window ever joins audio from both sides of it."""
        events = self._end_segment()
        self._segment_start += max(0.0, float(seconds))
        return events

    def _end_segment(self) -> list[Event]:
        events: list[Event] = []
        if self._resampler is not None:
            events += self._consume(self._frames_from(np.zeros(0, np.float32), last=True))
        if self._since_window:
            events += self._evaluate_window()
        if self._in_speech:
            events += self._close_speech()
        self._segment_start += self._segment_samples / self._features.sample_rate
        self._start_segment()
        return events

    def stream(self, chunks: Iterable[np.ndarray], sample_rate: int | None = None) -> Iterator[Event]:
        """Iterate over the events of a whole stream of chunks, flushing at its end."""
        for chunk in chunks:
            yield from self.push(chunk, sample_rate)
        yield from self.flush()

    def _consume(self, frames: np.ndarray) -> list[Event]:
        events: list[Event] = []
        start = 0
        while start < len(frames):
            take = min(len(frames) - start, self._hop_frames - self._since_window)
            self._history.extend(frames[start : start + take])
            start += take
            self._since_window += take
            self._frames_seen += take
            if self._since_window == self._hop_frames:
                events += self._evaluate_window()
        return events

    def _evaluate_window(self) -> list[Event]:
        new_frames, self._since_window = self._since_window, 0
        window = self._history.latest(self._window_frames)
        first_frame = self._frames_seen - len(window)
        mask = speech_frames(window, self._features, self.manifest.gate)
        events: list[Event] = []
        if mask is None:
            return self._close_speech() if self._in_speech else []
        if not self._in_speech:
            self._in_speech = True
            events.append(self._speech_event("start", self._frame_time(first_frame + int(np.argmax(mask)))))
        self._voice.add(window[-new_frames:][mask[-new_frames:]])
        probs = self.backend.predict(fill_window(self._voice.standardize(window[mask]), self._window_frames))
        smoothed, label = self._smoother.update(probs)
        events.append(
            {
                "type": "emotion",
                "start": _seconds(self._frame_time(first_frame)),
                "end": _seconds(self._end_time()),
                "label": self.labels[label],
                "confidence": round(float(smoothed[label]), 4),
                "probs": {name: round(float(p), 4) for name, p in zip(self.labels, smoothed)},
                "window_probs": {name: round(float(p), 4) for name, p in zip(self.labels, probs)},
            }
        )
        return self._emit_all(events)

    def _frame_time(self, frame: int) -> float:
        return self._segment_start + frame * self._features.hop_length / self._features.sample_rate

    def _end_time(self) -> float:
        if self._frames_seen == 0:
            return self._segment_start
        return self._frame_time(self._frames_seen - 1) + self._features.n_fft / self._features.sample_rate

    def _close_speech(self) -> list[Event]:
        self._in_speech = False
        self._smoother.reset()
        return self._emit_all([self._speech_event("stop", self._end_time())])

    def _speech_event(self, state: str, time: float) -> Event:
        return {"type": "speech", "state": state, "time": _seconds(time)}

    def _emit_all(self, events: list[Event]) -> list[Event]:
        if self._on_event is not None:
            for event in events:
                self._on_event(event)
        return events
