"""Speaker normalisation: each feature is standardised by the running statistics of the voice heard.

Emotion shows in how a voice departs from its own habits, and the habits (the speaker's pitch and
timbre, the microphone's colouring, the level) vary more between voices and rooms than emotions do.
So the network sees each speech frame standardised by the mean and standard deviation of the speech
frames heard so far on the stream, which forget old speech with a memory of ``memory_seconds`` of
speech (a new speaker or room takes over within about that much speech), blended with the training
speakers' average statistics, worth ``prior_seconds`` of speech (so the first words are standardised
sensibly too). Training builds its windows with the same statistics (see ``training.windows``).

A model may also carry each training voice's statistics (``voices``): the prior is then the average
of the training voices weighted by how well each explains the speech heard before the frames being
standardised (a softmax of their mean log-likelihood per frame over ``temperature``), so a low, dark
voice starts from the low, dark training voices rather than from the average of all of them. The
frames being standardised are left out of the weighting, or a raised voice would pick the raised
training voices and be judged against them; before a second of earlier speech the plain average
serves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHOD = "speaker_running"


@dataclass(frozen=True)
class Moments:
    """Weight, per-feature sum and sum of squares of some feature frames (the weight is a frame
    count, fractional once old frames have been partly forgotten)."""

    weight: float
    total: np.ndarray
    squares: np.ndarray

    @classmethod
    def of(cls, frames: np.ndarray) -> Moments:
        """The moments of ``[n, features]`` frames."""
        wide = frames.astype(np.float64)
        return cls(float(len(frames)), wide.sum(axis=0), np.square(wide).sum(axis=0))

    @classmethod
    def empty(cls, n_features: int) -> Moments:
        """No frames."""
        return cls(0.0, np.zeros(n_features), np.zeros(n_features))

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.weight + other.weight, self.total + other.total, self.squares + other.squares)

    def __sub__(self, other: Moments) -> Moments:
        return Moments(self.weight - other.weight, self.total - other.total, self.squares - other.squares)

    def scaled(self, factor: float) -> Moments:
        """The same statistics with ``factor`` times the weight."""
        return Moments(self.weight * factor, self.total * factor, self.squares * factor)

    @property
    def mean(self) -> np.ndarray:
        return self.total / max(self.weight, 1e-12)

    @property
    def variance(self) -> np.ndarray:
        return np.maximum(self.squares / max(self.weight, 1e-12) - self.mean**2, 0.0)


@dataclass(frozen=True, eq=False)
class TrainingVoices:
    """Each training voice's mean and standard deviation of every feature (``[voices, features]``),
    and the temperature of the softmax that weights them (arrays: compared by identity)."""

    mean: np.ndarray
    std: np.ndarray
    temperature: float

    def to_dict(self) -> dict:
        """The manifest's ``normalization.voices`` entry."""
        return {"temperature": self.temperature, "mean": np.round(self.mean, 6).tolist(), "std": np.round(self.std, 6).tolist()}

    def weights(self, heard: Moments) -> np.ndarray:
        """How much each voice counts in the prior given the speech heard: a softmax of the voices'
        mean log-likelihood per heard frame (diagonal Gaussians) over the temperature."""
        variance = self.std**2
        misfit = ((heard.variance + (heard.mean - self.mean) ** 2) / variance + np.log(variance)).sum(axis=1) / 2
        scores = -(misfit - misfit.min()) / self.temperature
        weights = np.exp(scores)
        return weights / weights.sum()


@dataclass(frozen=True)
class NormalizationSpec:
    """The prior (training speakers' average mean and within-speaker standard deviation of each
    feature, or each training voice's to be weighted by the speech heard) and how much speech the
    prior and the running statistics are worth."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    prior_seconds: float = 5.0
    memory_seconds: float = 60.0
    voices: TrainingVoices | None = None

    def to_dict(self) -> dict:
        """The manifest's ``normalization`` entry."""
        entry = {"method": METHOD, "prior_seconds": self.prior_seconds, "memory_seconds": self.memory_seconds,
                 "mean": [round(float(v), 6) for v in self.mean], "std": [round(float(v), 6) for v in self.std]}  # fmt: skip
        return entry | ({"voices": self.voices.to_dict()} if self.voices else {})

    def prior(self, frames_per_second: float, earlier: Moments) -> Moments:
        """The prior as moments worth ``prior_seconds`` of frames: the training speakers' average,
        or their voices weighted by how well each explains the ``earlier`` speech (once it is worth a
        second)."""
        if self.voices is None or earlier.weight < frames_per_second:
            mean, variance = np.asarray(self.mean, np.float64), np.square(np.asarray(self.std, np.float64))
        else:
            weights = self.voices.weights(earlier)
            mean, variance = weights @ self.voices.mean, weights @ self.voices.std**2
        weight = self.prior_seconds * frames_per_second
        return Moments(weight, weight * mean, weight * (variance + mean**2))

    def standardize(self, frames: np.ndarray, heard: Moments, frames_per_second: float) -> np.ndarray:
        """``frames`` standardised by the statistics of the speech ``heard`` (which includes them)
        blended with the prior (weighted by what was heard before them; with forgetting, ``heard``
        holds them slightly faded, so a little of the earlier speech goes with them)."""
        earlier = heard - Moments.of(frames) if self.voices is not None else heard  # only the voices' weights use it
        blended = self.prior(frames_per_second, earlier) + heard
        std = np.sqrt(np.maximum(blended.variance, 1e-6))
        return ((frames - blended.mean) / std).astype(np.float32)


class VoiceStatistics:
    """The running statistics of the speech frames of one stream, with exponential forgetting."""

    def __init__(self, spec: NormalizationSpec, frames_per_second: float):
        self.spec = spec
        self._frames_per_second = frames_per_second
        self._keep_per_frame = float(np.exp(-1.0 / (spec.memory_seconds * frames_per_second)))
        self._n_features = len(spec.mean)
        self.reset()

    def reset(self) -> None:
        """Forget every frame heard (a new speaker or room)."""
        self.heard = Moments.empty(self._n_features)

    def add(self, frames: np.ndarray) -> None:
        """Count newly heard speech frames, forgetting older ones a little."""
        self.heard = self.heard.scaled(self._keep_per_frame ** len(frames)) + Moments.of(frames)

    def standardize(self, frames: np.ndarray) -> np.ndarray:
        """``frames`` standardised by the statistics so far."""
        return self.spec.standardize(frames, self.heard, self._frames_per_second)
