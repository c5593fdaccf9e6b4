"""Which feature frames carry speech: a cheap energy pre-filter in front of a trained voice detector.

The manifest's ``speech_detector.kind`` chooses the detector:

- ``voice_network``: rtser's own (:mod:`rtser.voice_network`), a small network on the feature
  frames the model reads, taught by Silero VAD (``python -m training detector``). It judges a frame
  from the frames 0.3 s before to ``future`` frames (0.1 s) after it, so its decisions trail the
  audio by that much; it needs nothing beyond numpy.
- ``micro_vad``: pymicro-vad (the voice activity detector of Home Assistant's voice satellites, a
  small streaming network on 10 ms steps of 16 kHz audio). It judges a step 0.45 s after hearing it
  in the median, but anywhere from 0.2 to 0.7 s (``docs/speech_detection.md``): a step is taken as
  speech when it says so both ``lag_seconds`` and ``min_lag_seconds`` after it, and decisions trail
  the audio by ``lag_seconds``.

Either runs only while the audio is loud enough to be speech: a 10 ms step counts as loud when its
level is above ``floor_dbfs`` and ``above_noise_db`` above the noise floor (the quietest recent
level, rising slowly), and the detector keeps running for ``active_seconds`` after the last loud
step. Silence and steady noise therefore cost one level per 10 ms and nothing more. A frame is
speech when the detector's probability reaches ``threshold`` (the pre-filter only decides when the
detector runs: within speech in noise, many steps are no louder than the noise), and voiced when it
reaches ``hold_threshold`` (at most ``threshold``): a speech frame opens a segment, voiced frames
hold it open, count towards its ``confirm_seconds`` and mark where it began (hysteresis, as in
Silero's own iterator: a quiet onset, a soft ending or a short word stays one segment). Frames
from ``edge_threshold`` right after a segment's last voiced frame move its stop later, where a
voice fades, without holding the segment open (so they can neither join segments nor let
non-speech through). A frame takes the pre-filter's call of the step under its centre. The end
of a stream is judged as if silence followed it.
"""

from __future__ import annotations

import os
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from .errors import RtserError
from .features import FeatureConfig, extract
from .voice_network import VoiceNetwork, load_voice_network

DETECTOR_RATE = 16000
STEP = 160  # samples per detector step: 10 ms at 16 kHz
STEPS_PER_SECOND = DETECTOR_RATE // STEP
DETECTORS = ("voice_network", "micro_vad")
LOUD, SPEECH, VOICED, EDGE = 1, 2, 4, 8  # a frame's decision: bits (SPEECH implies VOICED, VOICED implies EDGE)


@dataclass(frozen=True)
class SpeechDetectorSpec:
    """The manifest's ``speech_detector``: the detector (for ``voice_network``, its file in the
    model's folder and that file's sha256), its thresholds (``hold_threshold`` None: the same as
    ``threshold``; ``edge_threshold`` None: the same as the hold threshold) and timing
    (``lag_seconds`` and ``min_lag_seconds`` are pymicro-vad's), the pre-filter, how long a pause
    ends a speech segment (the recognizer may override ``pause_seconds``), how much detected speech
    makes a segment worth reporting (``confirm_seconds``), and how far before the detector's first
    speech frame a segment may start, over the loud frames just before it (``backfill_seconds``)."""

    kind: str = "micro_vad"
    network: str = ""
    sha256: str = ""
    threshold: float = 0.6
    hold_threshold: float | None = None
    edge_threshold: float | None = None
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
        if self.kind == "voice_network" and (not self.network or os.path.basename(self.network) != self.network or not self.sha256):
            raise ValueError("speech_detector of kind voice_network needs 'network' (a file name in the model's folder) and its 'sha256'")
        if not 0 < self.threshold < 1:
            raise ValueError("speech_detector.threshold must be in (0, 1)")
        if self.hold_threshold is not None and not 0 < self.hold_threshold <= self.threshold:
            raise ValueError("speech_detector.hold_threshold must be more than 0 and at most the threshold")
        if self.edge_threshold is not None and not 0 < self.edge_threshold <= (self.hold_threshold or self.threshold):
            raise ValueError("speech_detector.edge_threshold must be more than 0 and at most hold_threshold (threshold when that is not set)")
        timings = (self.lag_seconds, self.min_lag_seconds, self.active_seconds, self.warmup_seconds, self.noise_rise_db_per_second, self.above_noise_db)
        if not all(np.isfinite(v) and 0 <= v <= 60 for v in (*timings, self.pause_seconds, self.confirm_seconds, self.backfill_seconds)) or self.pause_seconds <= 0:
            raise ValueError("speech_detector timings must be finite, between 0 and 60, and pause_seconds positive")
        if not -120 <= self.floor_dbfs <= 0:
            raise ValueError("speech_detector.floor_dbfs must be between -120 and 0")

    def to_dict(self) -> dict:
        """The manifest entry."""
        return asdict(self)

    def decisions(self, probabilities: np.ndarray) -> np.ndarray:
        """``SPEECH``, ``VOICED`` and ``EDGE`` bits of each of the detector's probabilities."""
        hold = self.threshold if self.hold_threshold is None else self.hold_threshold
        edge = hold if self.edge_threshold is None else self.edge_threshold
        return (SPEECH * (probabilities >= self.threshold) + VOICED * (probabilities >= hold) + EDGE * (probabilities >= edge)).astype(np.uint8)


def step_levels(samples: np.ndarray) -> np.ndarray:
    """Level in dBFS of each whole 10 ms step of float samples in [-1, 1] (its variance: a DC
    offset is no sound)."""
    steps = samples[: len(samples) // STEP * STEP].reshape(-1, STEP).astype(np.float64)
    return 10 * np.log10(np.var(steps, axis=1) + 1e-12)


def voice_detector(spec: SpeechDetectorSpec, features: FeatureConfig, folder: str) -> VoiceDetector:
    """The detector ``spec`` names, for the frames of ``features`` (a ``voice_network`` detector
    reads its network from ``folder``, the model's); RtserError if it cannot run."""
    if features.sample_rate != DETECTOR_RATE:
        raise RtserError(f"the speech detector runs at {DETECTOR_RATE} Hz; the model's features are at {features.sample_rate} Hz")
    if spec.kind == "micro_vad":
        return MicroVadDetector(spec, features)
    from .manifest import verified_file

    path = verified_file(os.path.join(folder, spec.network), spec.sha256, "speech detector network")
    network = load_voice_network(path)
    if network.features != features:
        raise RtserError(f"speech detector network {path} was trained on other feature frames than the model's")
    return NetworkVoiceDetector(spec, features, network)


class PreFilter:
    """The energy pre-filter over whole 10 ms steps: which are loud, and which the detector must
    hear (those up to ``active_seconds`` after a loud one)."""

    def __init__(self, spec: SpeechDetectorSpec):
        self.spec = spec
        self._rise = spec.noise_rise_db_per_second / STEPS_PER_SECOND
        self._active_steps = round(spec.active_seconds * STEPS_PER_SECOND)
        self.reset()

    def reset(self) -> None:
        """Start a new stream."""
        self._noise = np.inf  # the first step sets it
        self._active_until = -1
        self.steps = 0  # steps heard

    def hear(self, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Whether each step of these levels (dBFS) is loud, and whether the detector hears it."""
        loud, awake = np.zeros(len(levels), bool), np.zeros(len(levels), bool)
        for i, level in enumerate(levels):
            self._noise = min(float(level), self._noise + self._rise)
            loud[i] = level >= self.spec.floor_dbfs and level >= self._noise + self.spec.above_noise_db
            if loud[i]:
                self._active_until = self.steps + self._active_steps
            awake[i] = self.steps <= self._active_until
            self.steps += 1
        return loud, awake


class VoiceDetector:
    """Speech decisions for each feature frame of one contiguous stream of model-rate samples."""

    detector_steps: int  # 10 ms steps the detector itself ran on (its cost), warm-up included

    def reset(self) -> None:
        """Start a new stream."""
        raise NotImplementedError

    def push(self, samples: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Hear model-rate float samples and the feature frames they completed; return the
        decisions of the frames now decided, each ``LOUD`` (passed the pre-filter), ``SPEECH`` and
        ``VOICED`` (the detector's calls) or'd together."""
        raise NotImplementedError

    def finish(self) -> np.ndarray:
        """The decisions of the stream's last frames, judged as if silence followed it."""
        raise NotImplementedError

    def _whole_steps(self, samples: np.ndarray) -> np.ndarray:
        """The whole 10 ms steps heard so far and not yet returned; the rest waits in ``_carry``
        (which ``reset`` empties)."""
        audio = np.concatenate([self._carry, samples.astype(np.float32, copy=False)])
        whole = len(audio) // STEP * STEP
        self._carry = audio[whole:]
        return audio[:whole]


class NetworkVoiceDetector(VoiceDetector):
    """rtser's own detector: a :class:`VoiceNetwork` on the feature frames, behind the pre-filter."""

    def __init__(self, spec: SpeechDetectorSpec, features: FeatureConfig, network: VoiceNetwork):
        self.spec, self.network = spec, network
        self._prefilter = PreFilter(spec)
        self._hop, self._centre = features.hop_length, features.n_fft // 2
        self._silence = extract(np.zeros(features.n_fft, np.float32), features)
        self.detector_steps = 0
        self.reset()

    def reset(self) -> None:
        self._prefilter.reset()
        self._carry = np.zeros(0, np.float32)
        self._flags = np.zeros((0, 2), bool)  # (loud, awake) of each step from self._flags_from on
        self._flags_from = 0
        self._frames = np.repeat(self._silence, self.network.past, axis=0)  # the past context, then frames not decided
        self._next_frame = 0  # the first frame not decided
        self._received = 0  # frames heard

    def push(self, samples: np.ndarray, frames: np.ndarray) -> np.ndarray:
        levels = step_levels(self._whole_steps(samples))
        self._flags = np.concatenate([self._flags, np.stack(self._prefilter.hear(levels), axis=1)])
        self._frames = np.concatenate([self._frames, frames])
        self._received += len(frames)
        return self._decide(self._received - self.network.future - self._next_frame)

    def finish(self) -> np.ndarray:
        self._frames = np.concatenate([self._frames, np.repeat(self._silence, self.network.future, axis=0)])
        return self._decide(self._received - self._next_frame)

    def _decide(self, count: int) -> np.ndarray:
        if count <= 0:
            return np.zeros(0, np.uint8)
        net = self.network
        steps = (np.arange(self._next_frame, self._next_frame + count) * self._hop + self._centre) // STEP - self._flags_from
        loud, awake = self._flags[steps, 0], self._flags[steps, 1]
        detected = np.zeros(count, np.uint8)
        if awake.any():
            probs = net.probabilities(net.project(self._frames[: net.past + count + net.future]))
            detected = awake * self.spec.decisions(probs)
            self.detector_steps += count
        self._frames = self._frames[count:]
        self._next_frame += count
        kept = steps[-1] + 1
        self._flags, self._flags_from = self._flags[kept:], self._flags_from + kept
        return (LOUD * loud + detected).astype(np.uint8)


def _micro_vad():
    try:
        from pymicro_vad import MicroVad
    except ImportError:
        raise RtserError("the model's speech detector needs the package pymicro-vad (pip install pymicro-vad)") from None
    return MicroVad()


class MicroVadDetector(VoiceDetector):
    """pymicro-vad on 10 ms steps behind the pre-filter, judged after its typical and its shortest delay."""

    def __init__(self, spec: SpeechDetectorSpec, features: FeatureConfig):
        self.spec = spec
        self._detector = _micro_vad()
        self._prefilter = PreFilter(spec)
        self._lag = round(spec.lag_seconds * STEPS_PER_SECOND)
        self._min_lag = min(self._lag, round(spec.min_lag_seconds * STEPS_PER_SECOND))
        self._hop, self._centre = features.hop_length, features.n_fft // 2
        self.detector_steps = 0
        self.reset()

    def reset(self) -> None:
        self._detector.reset()
        self._prefilter.reset()
        self._carry = np.zeros(0, np.float32)
        self._warmup: deque[bytes] = deque(maxlen=round(self.spec.warmup_seconds * STEPS_PER_SECOND))
        self._running = False
        self._loud: deque[bool] = deque()  # the pre-filter of each step not decided yet
        self._outputs: deque[float] = deque()  # the detector's output at each step not decided yet
        self._next_frame = 0  # the first frame not decided yet
        self._decided: deque[int] = deque()  # LOUD | SPEECH of each step from self._decided_from on
        self._decided_from = 0

    def push(self, samples: np.ndarray, frames: np.ndarray) -> np.ndarray:
        self._hear(self._whole_steps(samples))
        return self._frames()

    def finish(self) -> np.ndarray:
        self._hear(np.zeros(self._lag * STEP + self._centre + self._hop, np.float32))
        return self._frames()

    def _hear(self, audio: np.ndarray) -> None:
        loud, awake = self._prefilter.hear(step_levels(audio))
        pcm = (np.clip(audio, -1.0, 1.0) * 32767).astype("<i2")
        for i in range(len(loud)):
            step = pcm[i * STEP : (i + 1) * STEP].tobytes()
            self._outputs.append(self._detect(step) if awake[i] else 0.0)
            self._running = bool(awake[i])
            self._warmup.append(step)
            self._loud.append(bool(loud[i]))
        while len(self._outputs) > self._lag:
            # the detector's judgement of the oldest pending step, after its typical and its shortest delay
            detected = self.spec.decisions(np.minimum(self._outputs[self._lag], self._outputs[self._min_lag]))
            self._outputs.popleft()
            self._decided.append(LOUD * self._loud.popleft() + int(detected))

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
