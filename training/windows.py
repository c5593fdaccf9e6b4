"""Network inputs for training (augmented random crops) and for evaluation (the runtime's windows)."""

from __future__ import annotations

import numpy as np

from rtser.backends import Backend
from rtser.features import FeaturePlan, extract
from rtser.manifest import Manifest
from rtser.pipeline import Recognizer
from rtser.windows import normalize_window, speech_frames

from .augment import Augmenter


class RecordingBackend(Backend):
    """Stands in for a network while the runtime's own Recognizer produces windows: it keeps each
    window it is given and answers with uniform probabilities."""

    name = "recording"

    def __init__(self, n_labels: int):
        self.windows: list[np.ndarray] = []
        self._uniform = np.full(n_labels, 1.0 / n_labels, dtype=np.float32)

    def predict(self, window: np.ndarray) -> np.ndarray:
        self.windows.append(window.copy())
        return self._uniform


def runtime_windows(waves: list[np.ndarray], manifest: Manifest) -> list[np.ndarray]:
    """For each waveform (at the model rate), the stack of windows ``rtser replay`` would feed the
    network, ``[n_windows, frames, n_features]`` (n_windows may be 0 when no speech is found)."""
    recorder = RecordingBackend(len(manifest.labels))
    recognizer = Recognizer(manifest, backend=recorder)
    out = []
    for wave in waves:
        recognizer.reset()
        recorder.windows = []
        recognizer.push(wave)
        recognizer.flush()
        shape = (0, *manifest.input_shape[2:])
        out.append(np.stack(recorder.windows) if recorder.windows else np.zeros(shape, np.float32))
    return out


def normalization_scale(waves: list[np.ndarray], manifest: Manifest) -> np.ndarray:
    """Per-feature standard deviation of the mean-removed speech frames of clean training audio."""
    plan = FeaturePlan(manifest.features)
    pooled = []
    for wave in waves:
        features = extract(wave, manifest.features, plan)
        mask = speech_frames(features, manifest.features, manifest.gate)
        if mask is not None:
            pooled.append(features[mask] - features[mask].mean(axis=0))
    return np.concatenate(pooled).std(axis=0).astype(np.float32) + 1e-3


def training_windows(
    waves: list[np.ndarray], labels: np.ndarray, manifest: Manifest, augmenter: Augmenter
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented window per utterance (a random crop, prepared exactly as the runtime does)."""
    config, plan = manifest.features, FeaturePlan(manifest.features)
    n_frames = manifest.input_shape[2]
    frames_per_second = config.sample_rate / config.hop_length
    xs, ys = [], []
    for wave, label in zip(waves, labels):
        features = extract(augmenter.wave(wave), config, plan)
        if len(features) == 0:
            continue
        crop = features[augmenter.crop(len(features), frames_per_second)]
        mask = speech_frames(crop, config, manifest.gate)
        if mask is None:
            continue
        xs.append(augmenter.spec(normalize_window(crop[mask], manifest.scale, n_frames)))
        ys.append(label)
    return np.stack(xs), np.asarray(ys)
