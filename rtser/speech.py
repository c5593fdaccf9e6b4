"""Which feature frames carry speech: a cheap energy pre-filter in front of a trained voice detector.

The detector is pymicro-vad (the voice activity detector of Home Assistant's voice satellites: a
small streaming network on 10 ms steps of 16 kHz audio, in a wheel with no dependencies, aarch64
included). It runs only while the audio is loud enough to be speech: a step counts as loud when its
level is above ``floor_dbfs`` and ``above_noise_db`` above the noise floor (the quietest recent
level, rising slowly), and the detector keeps running for ``active_seconds`` after the last loud
step. After a rest it is reset and first hears the ``warmup_seconds`` of audio before the step that
woke it. Silence and steady noise therefore cost one level per 10 ms and nothing more.

pymicro-vad judges a step 0.45 s after hearing it in the median, but anywhere from 0.2 to 0.7 s
(measured on EMO-DB and RAVDESS utterances; see ``docs/speech_detection.md``). A step is taken as
speech when the detector says so both ``lag_seconds`` and ``min_lag_seconds`` after it: the first
alone would call the end of a pause speech where the detector rose early; with both, a late rise
only delays the start, which the backfill (see :class:`SpeechDetectorSpec`) then moves back.
Decisions trail the audio by ``lag_seconds``, and the end of a stream is judged as if silence
followed it. The detector says speech when its probability reaches ``threshold`` (the pre-filter
only decides when it runs: within speech in noise, many steps are no louder than the noise). A
feature frame takes the decision of the step under its centre.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from .errors import RtserError
from .features import FeatureConfig

DETECTOR_RATE = 16000
STEP = 160  # samples per detector step: 10 ms at 16 kHz
STEPS_PER_SECOND = DETECTOR_RATE // STEP
DETECTORS = ("micro_vad",)
LOUD, SPEECH = 1, 2  # a frame's decision: bits


@dataclass(frozen=True)
class SpeechDetectorSpec:
    """The manifest's ``speech_detector``: the detector, its threshold and timing, the pre-filter,
    how long a pause ends a speech segment (the recognizer may override ``pause_seconds``), how
    much detected speech makes a segment worth reporting (``confirm_seconds``), and how far before
    the detector's first speech frame a segment may start, over the loud frames just before it
    (``backfill_seconds``: the detector is slower to rise than to fall)."""

    kind: str = "micro_vad"
    threshold: float = 0.6
    lag_seconds: float = 0.46
    min_lag_seconds: float = 0.25
    pause_seconds: float = 0.5
    confirm_seconds: float = 0.5
    backfill_seconds: float = 0.5
    floor_dbfs: float = -70.0
    above_noise_db: float = 3.0
    noise_rise_db_per_second: float = 5.0
    active_seconds: float = 1.0
    warmup_seconds: float = 0.3

    def __post_init__(self) -> None:
        if self.kind not in DETECTORS:
            raise ValueError(f"speech_detector.kind must be one of {', '.join(DETECTORS)}, got {self.kind!r}")
        if not 0 < self.threshold < 1:
            raise ValueError("speech_detector.threshold must be in (0, 1)")
        timings = (self.lag_seconds, self.min_lag_seconds, self.active_seconds, self.warmup_seconds, self.noise_rise_db_per_second, self.above_noise_db)
        if not all(np.isfinite(v) and 0 <= v <= 60 for v in (*timings, self.pause_seconds, self.confirm_seconds, self.backfill_seconds)) or self.pause_seconds <= 0:
            raise ValueError("speech_detector timings must be finite, between 0 and 60, and pause_seconds positive")
        if not -120 <= self.floor_dbfs <= 0:
            raise ValueError("speech_detector.floor_dbfs must be between -120 and 0")

    def to_dict(self) -> dict:
        """The manifest entry."""
        return asdict(self)


def _micro_vad():
    try:
        from pymicro_vad import MicroVad
    except ImportError:
        raise RtserError("the model's speech detector needs the package pymicro-vad (pip install pymicro-vad)") from None
    return MicroVad()


def step_levels(samples: np.ndarray) -> np.ndarray:
    """Level in dBFS of each whole 10 ms step of float samples in [-1, 1] (its variance: a DC
    offset is no sound)."""
    steps = samples[: len(samples) // STEP * STEP].reshape(-1, STEP).astype(np.float64)
    return 10 * np.log10(np.var(steps, axis=1) + 1e-12)


class VoiceDetector:
    """Speech decisions for each feature frame of one contiguous stream of model-rate samples."""

    def __init__(self, spec: SpeechDetectorSpec, features: FeatureConfig):
        if features.sample_rate != DETECTOR_RATE:
            raise RtserError(f"the speech detector runs at {DETECTOR_RATE} Hz; the model's features are at {features.sample_rate} Hz")
        self.spec = spec
        self._detector = _micro_vad()
        self._lag = round(spec.lag_seconds * STEPS_PER_SECOND)
        self._min_lag = min(self._lag, round(spec.min_lag_seconds * STEPS_PER_SECOND))
        self._rise = spec.noise_rise_db_per_second / STEPS_PER_SECOND
        self._active_steps = round(spec.active_seconds * STEPS_PER_SECOND)
        self._hop, self._centre = features.hop_length, features.n_fft // 2
        self.detector_steps = 0  # steps the detector itself ran on (its cost), warm-up included
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._detector.reset()
        self._carry = np.zeros(0, np.float32)
        self._warmup: deque[bytes] = deque(maxlen=round(self.spec.warmup_seconds * STEPS_PER_SECOND))
        self._noise = np.inf  # the first step sets it
        self._active_until = -1
        self._running = False
        self._steps = 0  # steps heard
        self._loud: deque[bool] = deque()  # the pre-filter of each step not decided yet
        self._outputs: deque[float] = deque()  # the detector's output at each step not decided yet
        self._next_frame = 0  # the first frame not decided yet
        self._decided: deque[int] = deque()  # LOUD | SPEECH of each step from self._decided_from on
        self._decided_from = 0

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Hear model-rate float samples; return the decisions of the frames now decided, each
        ``LOUD`` (passed the pre-filter) and ``SPEECH`` (the detector's call) or'd together."""
        audio = np.concatenate([self._carry, samples.astype(np.float32, copy=False)])
        whole = len(audio) // STEP * STEP
        self._carry = audio[whole:]
        self._hear(audio[:whole])
        return self._frames()

    def finish(self) -> np.ndarray:
        """The decisions of the stream's last frames, judged as if silence followed it."""
        self._hear(np.zeros(self._lag * STEP + self._centre + self._hop, np.float32))
        return self._frames()

    def _hear(self, audio: np.ndarray) -> None:
        levels = step_levels(audio)
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
        for i, level in enumerate(levels):
            self._noise = min(float(level), self._noise + self._rise)
            loud = level >= self.spec.floor_dbfs and level >= self._noise + self.spec.above_noise_db
            if loud:
                self._active_until = self._steps + self._active_steps
            step = pcm[i * STEP : (i + 1) * STEP].tobytes()
            active = self._steps <= self._active_until
            self._outputs.append(self._detect(step) if active else 0.0)
            self._running = active
            self._warmup.append(step)
            self._loud.append(bool(loud))
            self._steps += 1
        while len(self._outputs) > self._lag:
            # the detector's judgement of the oldest pending step, after its typical and its shortest delay
            speech = self._outputs[self._lag] >= self.spec.threshold and self._outputs[self._min_lag] >= self.spec.threshold
            self._outputs.popleft()
            self._decided.append(LOUD * self._loud.popleft() + SPEECH * speech)

    def _detect(self, step: bytes) -> float:
        if not self._running:
            self._detector.reset()
            for earlier in self._warmup:
                self._detector.process_10ms(earlier)
                self.detector_steps += 1
        self.detector_steps += 1
        return float(self._detector.process_10ms(step))

    def _frames(self) -> np.ndarray:
        flags = []
        while True:
            step = (self._next_frame * self._hop + self._centre) // STEP
            if step >= self._decided_from + len(self._decided):
                break
            while self._decided_from < step:
                self._decided.popleft()
                self._decided_from += 1
            flags.append(self._decided[0])
            self._next_frame += 1
        return np.array(flags, dtype=np.uint8)
