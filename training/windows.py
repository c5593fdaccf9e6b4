"""Network inputs for training (augmented random crops) and for evaluation (the runtime's windows)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from rtser.backends import Backend
from rtser.manifest import Manifest
from rtser.pipeline import Recognizer
from rtser.normalization import Moments, NormalizationSpec, TrainingVoices
from rtser.windows import fill_window, speech_mask

from .augment import Augmenter
from .config import RunConfig


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


def stream_positions(speakers: list[str], seed: int = 0) -> np.ndarray:
    """Where each utterance comes in its speaker's stream as ``runtime_windows`` plays them with this
    seed (0 for the first the recognizer hears of that voice)."""
    heard: dict[str, int] = {}
    positions = np.zeros(len(speakers), dtype=int)
    for i in np.random.default_rng(seed).permutation(len(speakers)):
        positions[i] = heard.get(speakers[i], 0)
        heard[speakers[i]] = positions[i] + 1
    return positions


def heard_alone(speakers: Sequence[str], idx: Sequence[int]) -> list[str]:
    """Speaker ids that make ``runtime_windows`` give each utterance a recognizer of its own, as
    ``rtser replay`` hears one file (``idx``: the utterances' positions, unique)."""
    return [f"{speaker} utterance {i}" for speaker, i in zip(speakers, idx)]


def as_stranger(normalization: NormalizationSpec, speaker: str, training_speakers: Sequence[str]) -> NormalizationSpec:
    """The normalisation as a training speaker would meet it if its voice were not among the training
    voices, as a test voice's never is: its profile taken out of the voices the prior is weighted
    from and out of their plain average (the prior's voices are the training speakers' in sorted
    order). Unchanged for other speakers and for a prior without voices."""
    voices = sorted(set(training_speakers))
    if normalization.voices is None or speaker not in voices:
        return normalization
    own = voices.index(speaker)
    rest = dataclasses.replace(normalization.voices, mean=np.delete(normalization.voices.mean, own, axis=0), std=np.delete(normalization.voices.std, own, axis=0))
    mean, std = rest.mean.mean(axis=0), np.sqrt(np.square(rest.std).mean(axis=0))
    return dataclasses.replace(normalization, mean=tuple(mean.tolist()), std=tuple(std.tolist()), voices=rest)


def runtime_windows(
    waves: list[np.ndarray], speakers: list[str], manifest: Manifest, seed: int = 0, training_speakers: Sequence[str] = ()
) -> list[np.ndarray]:
    """For each waveform (at the model rate), the stack of windows ``rtser replay`` would feed the
    network, ``[n_windows, frames, n_features]`` (n_windows may be 0 when no speech is found).

    Each speaker's utterances go through one recognizer, one after another in a seeded random order
    (a corpus's file order may group them by emotion, which no conversation does), so each window is
    normalised by what the runtime would have heard of that voice by then, each of the
    ``training_speakers`` as a stranger (:func:`as_stranger`)."""
    recorder = RecordingBackend(len(manifest.labels))
    out: list[np.ndarray] = [np.zeros((0, *manifest.input_shape[2:]), np.float32)] * len(waves)
    positions = stream_positions(speakers, seed)
    for i in sorted(range(len(waves)), key=lambda i: (speakers[i], positions[i])):
        if positions[i] == 0:
            normalization = as_stranger(manifest.normalization, speakers[i], training_speakers)
            recognizer = Recognizer(dataclasses.replace(manifest, normalization=normalization), backend=recorder)
        recorder.windows = []
        recognizer.push(waves[i])
        recognizer.flush()
        if recorder.windows:
            out[i] = np.stack(recorder.windows)
    return out


class SpeechHistory:
    """The speech of each utterance, as moments of its speech frames, from which to draw what a
    runtime could have heard of the voice before one of its utterances: any number of the same
    speaker's other utterances, forgotten down to the memory's weight."""

    def __init__(self, features: list[np.ndarray], speakers: list[str], recipe: RunConfig):
        n, n_features = len(features), recipe.features.n_features
        self.weight, self.total, self.squares = np.zeros(n), np.zeros((n, n_features)), np.zeros((n, n_features))
        for i, frames in enumerate(features):
            mask = speech_mask(frames, recipe.features, recipe.speech_gate)
            if mask is not None:
                moments = Moments.of(frames[mask])
                self.weight[i], self.total[i], self.squares[i] = moments.weight, moments.total, moments.squares
        self.speakers = np.asarray(speakers)
        self._settings = recipe.normalization
        self._memory = recipe.normalization.memory_seconds * recipe.features.frames_per_second

    def of(self, chosen: np.ndarray) -> Moments:
        """The moments of the chosen utterances together."""
        return Moments(float(self.weight[chosen].sum()), self.total[chosen].sum(axis=0), self.squares[chosen].sum(axis=0))

    def prior(self) -> NormalizationSpec:
        """The speakers' average mean and within-speaker deviation, as the normalisation prior, with
        each speaker's own (in sorted speaker order) when the recipe weights the training voices
        (``voice_temperature``)."""
        voices = [self.of(self.speakers == speaker) for speaker in np.unique(self.speakers)]
        means, variances = np.array([v.mean for v in voices]), np.array([v.variance for v in voices])
        mean, std = means.mean(axis=0), np.sqrt(variances.mean(axis=0))
        settings = self._settings
        temperature = settings.voice_temperature
        weighted = TrainingVoices(means, np.sqrt(np.maximum(variances, 1e-6)), temperature) if temperature else None
        return NormalizationSpec(tuple(mean.tolist()), tuple(std.tolist()), settings.prior_seconds, settings.memory_seconds, weighted)

    def draw(self, utterance: int, rng: np.random.Generator) -> Moments:
        """What the runtime might have heard of this utterance's voice before it (a random draw):
        nothing at least ``first_hearing_share`` of the time, else any number of the voice's other
        utterances."""
        share = self._settings.first_hearing_share
        if share and rng.random() < share:
            return Moments.empty(self.total.shape[1])
        others = np.flatnonzero((self.speakers == self.speakers[utterance]) & (np.arange(len(self.speakers)) != utterance))
        heard = self.of(rng.choice(others, size=rng.integers(0, len(others) + 1), replace=False))
        return heard.scaled(self._memory / heard.weight) if heard.weight > self._memory else heard


def training_windows(
    features: list[np.ndarray], labels: np.ndarray, speakers: list[str], recipe: RunConfig, spec: Manifest, augmenter: Augmenter
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One augmented window per utterance (the windows, their labels, and the positions of the
    utterances they come from: one without speech gives none) from the feature frames of each
    utterance as recorded through its speaker's channel for this epoch (one per speaker, as a stream
    has one: :mod:`training.feature_bank`): a random crop, its speech frames standardised by a draw
    of what the runtime might have heard of the voice before (through the same channel) and the crop
    itself, each speaker as a stranger (:func:`as_stranger`)."""
    config = recipe.features
    normalization = {speaker: as_stranger(spec.normalization, speaker, speakers) for speaker in sorted(set(speakers))}
    history = SpeechHistory(features, speakers, recipe)
    n_frames = spec.input_shape[2]
    xs, ys, kept = [], [], []
    for i, (frames, label) in enumerate(zip(features, labels)):
        if len(frames) == 0:
            continue
        crop = frames[augmenter.crop(len(frames), config.frames_per_second)]
        mask = speech_mask(crop, config, recipe.speech_gate)
        if mask is None:
            continue
        speech = crop[mask]
        heard = history.draw(i, augmenter.rng) + Moments.of(speech)
        standardized = normalization[speakers[i]].standardize(speech, heard, config.frames_per_second)
        xs.append(augmenter.spec(fill_window(standardized, n_frames)))
        ys.append(label)
        kept.append(i)
    return np.stack(xs), np.asarray(ys), np.asarray(kept)
