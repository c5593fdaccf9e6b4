"""What a run trains and tests on: its utterances, their audio, targets and speaker-independent folds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audio_cache import load_waves
from .config import RunConfig
from .corpora import Utterance, load_corpora
from .folds import Fold, corpus_folds, make_folds


@dataclass
class RunData:
    """The corpora of a recipe, ready to train on."""

    utterances: list[Utterance]
    waves: list[np.ndarray]
    targets: np.ndarray
    folds: list[Fold]
    epochs: int


def smoke_subset(utterances: list[Utterance], per_speaker_label: int) -> list[Utterance]:
    """The first few utterances of each speaker and label."""
    seen: dict = {}
    keep = []
    for u in utterances:
        key = (u.speaker, u.label)
        if seen.get(key, 0) < per_speaker_label:
            seen[key] = seen.get(key, 0) + 1
            keep.append(u)
    return keep


def prepare(config: RunConfig, smoke: bool = False, max_folds: int | None = None, epochs: int | None = None) -> RunData:
    """Load the recipe's corpora (raises DataMissing without them); ``smoke`` keeps a few files, one
    fold and the smoke epochs; ``max_folds`` keeps the first folds only; ``epochs`` overrides the
    recipe's."""
    utterances = load_corpora(config.corpora, config.labels)
    if smoke:
        utterances = smoke_subset(utterances, config.smoke.files_per_speaker_label)
        max_folds, epochs = config.smoke.folds, config.smoke.epochs
    if config.protocol == "leave_one_corpus_out":
        folds = corpus_folds(utterances, config.validation_speakers_per_corpus, config.train.seed)[:max_folds]
    else:
        folds = make_folds(utterances, config.folds, config.validation_speakers_per_corpus, config.train.seed)[:max_folds]
    waves = load_waves(utterances, config.features.sample_rate)
    targets = np.array([config.labels.index(u.label) for u in utterances])
    print(f"{len(utterances)} utterances, {len({u.speaker for u in utterances})} speakers, labels {config.labels}")
    return RunData(utterances, waves, targets, folds, epochs or config.train.epochs)
