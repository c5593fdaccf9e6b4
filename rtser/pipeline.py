"""The recognizer: samples in, emotion events out. ``replay``, ``listen`` and library users all
drive this one class."""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
import warnings
from typing import Callable, Iterable, Iterator

import numpy as np

from .audio import StreamResampler, audio_array, band_problem, check_rate, scale_problem, to_float_mono
from .backends import Backend, load_backend
from .calibration import temperature_scaled
from .blas import one_blas_thread
from .errors import RtserError
from .features import StreamingExtractor
from .manifest import Manifest, WindowSpec, load_manifest
from .smoothing import Smoother
from .speech import EDGE, LOUD, SPEECH, VOICED, voice_detector
from .windows import FrameHistory, FrameQueue, fill_window, speech_mask

DEFAULT_MODEL = os.path.join(os.path.dirname(__file__), "models", "default")

Event = dict

MAX_BLOCK_SECONDS = 5.0  # a push is worked on at most this much at once
HISTORY_CHUNK = 128  # decided frames put in the window history at once
BATCH_SECONDS = 0.25  # audio gathered before it is worked on, by default (Recognizer's batch_seconds)
# the stages whose CPU time a recognizer counts (Recognizer.stage_cpu_seconds)
STAGES = ("features", "speech_detector", "model", "windows_and_events")


class AudioWarning(UserWarning):
    """Audio that rtser takes but that is probably not what the caller meant (its scale), or that
    lacks part of what the model reads (a band narrower than the model's features)."""


def load_model(
    model: str | Manifest | None = None, backend: str | Backend = "auto", threads: int = 1
) -> tuple[Manifest, Backend]:
    """The manifest and a ready backend for ``model`` (a path, a loaded manifest, or None for the
    shipped default); ``backend`` names a runtime or is a ready :class:`Backend`."""
    manifest = model if isinstance(model, Manifest) else load_manifest(model or DEFAULT_MODEL)
    if isinstance(backend, Backend):
        return manifest, backend
    return manifest, load_backend(manifest, backend, threads)


def check_settings(*, hop_seconds: float | None, smoothing: float, switch_margin: float, pause_seconds: float | None,
                   min_confidence: float, batch_seconds: float) -> None:  # fmt: skip
    """Raise RtserError naming the first of the recognizer's settings out of its range (the board
    file's ``recognizer`` section is checked by the same function; the hop is checked against the
    model's window once the model is loaded)."""
    if hop_seconds is not None and not 0 < hop_seconds <= 60:
        raise RtserError(f"hop_seconds must be more than 0 and at most 60 (and the model's window), got {hop_seconds}")
    if not 0 < smoothing <= 1:
        raise RtserError(f"smoothing must be in (0, 1] (1: no smoothing), got {smoothing}")
    if not 0 <= switch_margin < 1:
        raise RtserError(f"switch_margin must be in [0, 1), got {switch_margin}")
    if pause_seconds is not None and not 0.05 <= pause_seconds <= 60:
        raise RtserError(f"pause_seconds must be between 0.05 and 60, got {pause_seconds}")
    if not 0 <= min_confidence < 1:
        raise RtserError(f"min_confidence must be in [0, 1), got {min_confidence}")
    if not 0.01 <= batch_seconds <= 1:
        raise RtserError(f"batch_seconds must be between 0.01 and 1, got {batch_seconds}")


def _seconds(value: float) -> float:
    return round(float(value), 3)


class Recognizer:
    """Streaming speech emotion recognizer.

    Push samples of any rate, format and chunk size with :meth:`push`; each call returns the events
    it produced (and passes them to ``on_event`` if given). Call :meth:`flush` at the end of a
    stream to close the speech still open. Speech is found frame by frame by the model's speech
    detector (:mod:`rtser.speech`); each speech segment (speech with no pause of ``pause_seconds``)
    gives ``speech`` start and stop events, ``emotion`` events every hop inside it, and one
    ``utterance`` event when it ends, its label ``"uncertain"`` below ``min_confidence``. Events are
    dicts; see the README for their fields. Audio is worked on in batches of ``batch_seconds``
    (smaller pushes wait for the next; a batch's cost is mostly fixed, so larger batches cost less
    CPU), so an event can come up to that much later than the audio that completed it. One
    recognizer serves one stream; calls from several threads are taken one at a time (a lock), so
    their audio joins one stream in the order the calls get the lock. ``stage_cpu_seconds`` counts
    the CPU time (of the calling threads) each of :data:`STAGES` took since the recognizer was made.
    """

    def __init__(
        self,
        model: str | Manifest | None = None,
        *,
        backend: str | Backend = "auto",
        hop_seconds: float | None = None,
        smoothing: float = 0.5,
        switch_margin: float = 0.1,
        pause_seconds: float | None = None,
        min_confidence: float = 0.0,
        on_event: Callable[[Event], None] | None = None,
        threads: int = 1,
        batch_seconds: float = BATCH_SECONDS,
    ):
        check_settings(hop_seconds=hop_seconds, smoothing=smoothing, switch_margin=switch_margin, pause_seconds=pause_seconds,
                       min_confidence=min_confidence, batch_seconds=batch_seconds)  # fmt: skip
        self.manifest, self.backend = load_model(model, backend, threads)
        self.labels = self.manifest.labels
        self._features = self.manifest.features
        window = self.manifest.window
        if hop_seconds is not None:
            if hop_seconds > window.seconds:  # more than 0 and at most 60: check_settings
                raise RtserError(f"hop_seconds must be at most the model's window, {window.seconds} s, got {hop_seconds}")
            window = WindowSpec(window.seconds, hop_seconds)
        detector = self.manifest.speech_detector
        if pause_seconds is not None:
            detector = dataclasses.replace(detector, pause_seconds=float(pause_seconds))
        self._min_confidence = float(min_confidence)
        self.batch_seconds = float(batch_seconds)
        self._batch_samples = round(batch_seconds * self._features.sample_rate)
        self._window_frames = window.frames(self._features)
        self._hop_frames = window.hop_frames(self._features)
        self._pause_frames = max(1, round(detector.pause_seconds * self._features.frames_per_second))
        self._confirm_frames = max(1, round(detector.confirm_seconds * self._features.frames_per_second))
        self._backfill_frames = round(detector.backfill_seconds * self._features.frames_per_second)
        self._detector = voice_detector(detector, self._features, self.manifest.folder)
        self._voice = self.manifest.voice_statistics()
        self._smoother = Smoother(smoothing, switch_margin)
        self._on_event = on_event
        self._lock = threading.RLock()
        self.stage_cpu_seconds = dict.fromkeys(STAGES, 0.0)
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far, the voice's statistics included (call it when another speaker
        or microphone takes over); the next push starts a new stream at time 0."""
        with self._lock:
            self._stretch_start = 0.0
            self._voice.reset()
            self.non_finite_samples = 0
            self._warned: set[str] = set()
            self._start_stretch()

    def _start_stretch(self) -> None:
        # A stretch is contiguous audio; a gap in the input starts a new one (and ends any speech).
        self._extractor = StreamingExtractor(self._features)
        self._detector.reset()
        # a window reaches back from its segment's last speech frame, at most a pause before the
        # newest frame decided, itself at most a chunk before the newest frame stored
        self._history = FrameHistory(self._window_frames + self._pause_frames + HISTORY_CHUNK, self._features.n_features)
        self._frames_stored = 0
        self._undecided = FrameQueue(self._features.n_features)
        self._unheard: list[np.ndarray] = []  # samples waiting for a batch
        self._unheard_samples = 0
        self._resampler: StreamResampler | None = None
        self._frames_seen = 0
        self._stretch_samples = 0
        self._speech: SpeechSegment | None = None
        self._onset_run = 0  # loud or voiced frames in a row up to the newest: where a segment may begin

    @property
    def in_speech(self) -> bool:
        """Whether the stream is inside a reported stretch of speech."""
        return self._speech is not None and self._speech.confirmed

    def push(self, samples: np.ndarray, sample_rate: int | None = None) -> list[Event]:
        """Feed samples (``[n]`` or ``[n, channels]``, int or float) at ``sample_rate`` (the model's
        rate if None); return the events they completed. A push of any length is worked on in
        blocks of at most ``MAX_BLOCK_SECONDS``, so memory does not grow with it."""
        with self._lock:
            rate = self._features.sample_rate if sample_rate is None else check_rate(sample_rate)
            if self._resampler is None:
                self._resampler = StreamResampler(rate, self._features.sample_rate)
                self._warn_once("band", band_problem(rate, self._features.fmax))
            elif rate != self._resampler.in_rate:
                raise RtserError(f"sample rate changed from {self._resampler.in_rate} to {rate} mid-stream; call reset()")
            samples = audio_array(samples)
            self._warn_once("scale", scale_problem(samples))
            block = round(MAX_BLOCK_SECONDS * rate)
            events: list[Event] = []
            for start in range(0, max(len(samples), 1), block):
                mono, bad = to_float_mono(samples[start : start + block])
                self.non_finite_samples += bad
                events += self._hear(self._resampler.process(mono))
            return events

    def _warn_once(self, kind: str, problem: str | None) -> None:
        """An :class:`AudioWarning` for the first problem of each kind in a stream (a scale that
        looks wrong, a narrow band), however many pushes show it."""
        if problem is not None and kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(problem, AudioWarning, stacklevel=3)

    def _hear(self, samples: np.ndarray, last: bool = False) -> list[Event]:
        self._stretch_samples += len(samples)
        self._unheard.append(samples)
        self._unheard_samples += len(samples)
        if self._unheard_samples < self._batch_samples and not last:
            return []
        samples = np.concatenate(self._unheard)
        self._unheard, self._unheard_samples = [], 0
        with one_blas_thread():
            started = time.thread_time()
            frames = self._extractor.push(samples)
            featured = time.thread_time()
            decisions = self._detector.push(samples, frames)
            if last:
                decisions = np.concatenate([decisions, self._detector.finish()])
            detected = time.thread_time()
        self._undecided.append(frames)
        decided = min(len(decisions), len(self._undecided))
        self.stage_cpu_seconds["features"] += featured - started
        self.stage_cpu_seconds["speech_detector"] += detected - featured
        return self._emit_all(self._windows_timed(self._consume, self._undecided.take(decided), decisions[:decided]))

    def flush(self) -> list[Event]:
        """End of stream: drain the resampler, judge the last frames, close the speech still open
        (its last window and its utterance). Audio pushed afterwards continues the stream's time
        line and the voice's statistics."""
        with self._lock:
            return self._end_stretch()

    def gap(self, seconds: float) -> list[Event]:
        """Audio of ``seconds`` was lost (a capture overflow, a device that came back): finish the
        audio before the gap like :meth:`flush`, and count the gap in the times of later events,
        so no window ever joins audio from both sides of it."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.number)) or not math.isfinite(seconds) or seconds < 0:
            raise RtserError(f"a gap must be a finite number of seconds, 0 or more, got {seconds!r}"[:120])
        with self._lock:
            events = self._end_stretch()
            self._stretch_start += float(seconds)
            return events

    def _end_stretch(self) -> list[Event]:
        tail = self._resampler.process(np.zeros(0, np.float32), last=True) if self._resampler else np.zeros(0, np.float32)
        events = self._hear(tail, last=True)
        if self._speech is not None:
            events += self._emit_all(self._windows_timed(self._close_speech))
        self._stretch_start += self._stretch_samples / self._features.sample_rate
        self._start_stretch()
        return events

    def stream(self, chunks: Iterable[np.ndarray], sample_rate: int | None = None) -> Iterator[Event]:
        """Iterate over the events of a whole stream of chunks, flushing at its end."""
        for chunk in chunks:
            yield from self.push(chunk, sample_rate)
        yield from self.flush()

    def _windows_timed(self, work: Callable[..., list[Event]], *args) -> list[Event]:
        """``work(*args)``, its CPU time counted as windows and events, less the model's runs in it."""
        started, model_before = time.thread_time(), self.stage_cpu_seconds["model"]
        events = work(*args)
        self.stage_cpu_seconds["windows_and_events"] += time.thread_time() - started - (self.stage_cpu_seconds["model"] - model_before)
        return events

    def _consume(self, frames: np.ndarray, decisions: np.ndarray) -> list[Event]:
        events: list[Event] = []
        for start in range(0, len(frames), HISTORY_CHUNK):
            chunk = frames[start : start + HISTORY_CHUNK]
            self._history.extend(chunk)
            self._frames_stored += len(chunk)
            events += self._follow(decisions[start : start + HISTORY_CHUNK].tolist())
        return events

    def _follow(self, decisions: list[int]) -> list[Event]:
        """Open, hold and close speech segments frame by frame; evaluate their windows."""
        events: list[Event] = []
        for decision in decisions:
            index = self._frames_seen
            self._frames_seen += 1
            self._onset_run = self._onset_run + 1 if decision & (LOUD | VOICED) else 0
            segment = self._speech
            if decision & SPEECH and segment is None:
                segment = self._speech = SpeechSegment(index - min(max(self._onset_run - 1, 0), self._backfill_frames))
            if decision & VOICED and segment is not None:
                segment.last = segment.end = index
                segment.speech_frames += 1
                if not segment.confirmed and segment.speech_frames >= self._confirm_frames:
                    segment.confirmed = True
                    events.append(self._speech_event("start", self._step_start(segment.first)))
            elif segment is not None:
                if decision & EDGE and segment.end == index - 1:
                    segment.end = index
                if index - segment.last >= self._pause_frames:
                    events += self._close_speech()
                    continue
            if segment is not None and segment.confirmed and index - segment.evaluated_to >= self._hop_frames and segment.last > segment.evaluated_to:
                events += self._evaluate_window(segment)
        return events

    def _evaluate_window(self, segment: SpeechSegment) -> list[Event]:
        """The window ending at the segment's last speech frame, from the segment's frames only."""
        first = max(segment.first, segment.last - self._window_frames + 1)
        newest = self._frames_stored - 1
        window = self._history.latest(newest - first + 1)[: segment.last - first + 1]
        segment.evaluated_to = segment.last
        mask = speech_mask(window, self._features, self.manifest.gate)
        if mask is None:
            return []
        fresh = np.arange(first, segment.last + 1) > segment.voice_to
        self._voice.add(window[mask & fresh])
        segment.voice_to = segment.last
        window = fill_window(self._voice.standardize(window[mask]), self._window_frames)
        started = time.thread_time()
        probs = self.backend.predict(window)
        self.stage_cpu_seconds["model"] += time.thread_time() - started
        segment.window_probs.append(probs)
        smoothed, label = self._smoother.update(probs)
        return [
            {
                "type": "emotion",
                "start": _seconds(self._frame_time(first)),
                "end": _seconds(self._frame_end(segment.last)),
                "label": self.labels[label],
                "confidence": round(float(smoothed[label]), 4),
                "probs": self._rounded(smoothed),
                "window_probs": self._rounded(probs),
            }
        ]

    def _close_speech(self) -> list[Event]:
        """End the open speech segment: its last window, the stop event, its utterance (nothing for
        a segment too short to be confirmed as speech)."""
        segment, self._speech = self._speech, None
        events = self._evaluate_window(segment) if segment.confirmed and segment.last > segment.evaluated_to else []
        self._smoother.reset()
        if not segment.confirmed:
            return []
        start, end = _seconds(self._step_start(segment.first)), _seconds(self._step_end(segment.end))
        events.append(self._speech_event("stop", end))
        if segment.window_probs:
            probs = temperature_scaled(np.mean(segment.window_probs, axis=0), self.manifest.temperature)
            best = int(np.argmax(probs))
            label = self.labels[best] if probs[best] >= self._min_confidence else "uncertain"
            events.append(
                {"type": "utterance", "start": start, "end": end, "label": label, "confidence": round(float(probs[best]), 4),
                 "probs": self._rounded(probs), "windows": len(segment.window_probs)}
            )  # fmt: skip
        return events

    def _rounded(self, probs: np.ndarray) -> dict:
        return {name: round(float(p), 4) for name, p in zip(self.labels, probs)}

    def _frame_time(self, frame: int) -> float:
        return self._stretch_start + frame * self._features.hop_length / self._features.sample_rate

    def _frame_end(self, frame: int) -> float:
        return self._frame_time(frame) + self._features.n_fft / self._features.sample_rate

    def _step_start(self, frame: int) -> float:
        """Where the detector step that decided ``frame`` begins (the speech boundary it marks)."""
        return self._frame_time(frame) + (self._features.n_fft - self._features.hop_length) / 2 / self._features.sample_rate

    def _step_end(self, frame: int) -> float:
        return self._step_start(frame) + self._features.hop_length / self._features.sample_rate

    def _speech_event(self, state: str, time: float) -> Event:
        return {"type": "speech", "state": state, "time": _seconds(time)}

    def _emit_all(self, events: list[Event]) -> list[Event]:
        if self._on_event is not None:
            for event in events:
                self._on_event(event)
        return events


class SpeechSegment:
    """Frame indices of one open speech segment (opened by a speech frame, held by voiced ones):
    its first and last voiced frame, its end (the last voiced frame moved on over the edge frames
    right after it), how far windows and the voice's statistics have taken it, how many voiced
    frames it has (it is reported once they make the detector's ``confirm_seconds``), and the
    probabilities of its windows."""

    def __init__(self, first: int):
        self.first = self.last = self.end = first
        self.evaluated_to = self.voice_to = first - 1
        self.speech_frames = 0
        self.confirmed = False  # enough speech frames to be reported
        self.window_probs: list[np.ndarray] = []
