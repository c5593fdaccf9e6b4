"""From feature frames to the network's input: speech gate, speaker normalisation, padding by repetition.

Training and the runtime make windows the same way: only the frames that carry speech, standardised
by the statistics of the voice heard so far (:mod:`rtser.normalization`), repeated to fill the window
when there is less speech than the window holds (so short utterances are not drowned in padding).
"""

from __future__ import annotations

import numpy as np

from .features import FeatureConfig
from .manifest import SpeechGateSpec
from .normalization import VoiceStatistics


def frame_levels(features: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Mean log-mel level of each frame in dB (from c0 for orthonormal MFCCs)."""
    if config.n_mfcc:
        return features[:, 0] / np.sqrt(config.n_mels)
    return features[:, : config.n_mels].mean(axis=1)


def speech_mask(features: np.ndarray, config: FeatureConfig, gate: SpeechGateSpec) -> np.ndarray | None:
    """Boolean mask of the frames of a stretch of speech that the network sees (those above the
    floor and within ``frame_range_db`` of the loudest), or None when they make less than
    ``min_speech_seconds``. Which stretches are speech is the speech detector's call
    (:mod:`rtser.speech`); this only leaves out the pauses and the quietest frames within one."""
    if len(features) == 0:
        return None
    levels = frame_levels(features, config)
    mask = levels >= max(gate.floor_db, float(levels.max()) - gate.frame_range_db)
    min_frames = gate.min_speech_seconds * config.sample_rate / config.hop_length
    return mask if mask.sum() >= min_frames else None


def fill_window(speech: np.ndarray, n_frames: int) -> np.ndarray:
    """Normalised speech frames repeated (or cut) to ``n_frames``."""
    return speech[np.arange(n_frames) % len(speech)]


def prepare_window(
    features: np.ndarray, config: FeatureConfig, gate: SpeechGateSpec, voice: VoiceStatistics, n_frames: int
) -> np.ndarray | None:
    """The network input for a window of features heard for the first time (its speech frames are
    added to ``voice`` first), or None when it holds no speech."""
    mask = speech_mask(features, config, gate)
    if mask is None:
        return None
    voice.add(features[mask])
    return fill_window(voice.standardize(features[mask]), n_frames)


class FrameHistory:
    """The most recent ``capacity`` feature frames, in a preallocated array."""

    def __init__(self, capacity: int, n_features: int):
        self._data = np.zeros((2 * capacity, n_features), dtype=np.float32)
        self.capacity = capacity
        self._end = 0

    def extend(self, frames: np.ndarray) -> None:
        """Append frames (at most ``capacity`` at a time)."""
        n = len(frames)
        if self._end + n > len(self._data):
            keep = min(self._end, self.capacity)
            self._data[:keep] = self._data[self._end - keep : self._end]
            self._end = keep
        self._data[self._end : self._end + n] = frames
        self._end += n

    def latest(self, n: int) -> np.ndarray:
        """The last ``min(n, stored)`` frames, oldest first (a view)."""
        n = min(n, self.capacity, self._end)
        return self._data[self._end - n : self._end]

    def clear(self) -> None:
        """Forget all frames."""
        self._end = 0


class FrameQueue:
    """Feature frames waiting, oldest first, for the speech detector to judge them."""

    def __init__(self, n_features: int):
        self._frames = np.zeros((0, n_features), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._frames)

    def append(self, frames: np.ndarray) -> None:
        """Queue frames behind the others."""
        if len(frames):
            self._frames = np.concatenate([self._frames, frames])  # a copy: the extractor reuses its buffers

    def take(self, n: int) -> np.ndarray:
        """The ``n`` oldest frames, removed from the queue."""
        taken, self._frames = self._frames[:n], self._frames[n:]
        return taken
