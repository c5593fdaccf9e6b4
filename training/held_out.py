"""A finished model scored on whole corpora it never heard, as rtser runs it: each file alone (a
recognizer of its own, as ``rtser replay`` hears one file) and each speaker's files streamed through
one recognizer, by both int8 files."""

from __future__ import annotations

import json
import os

import numpy as np

from rtser.manifest import load_manifest

from .audio_cache import load_waves
from .augment import CHANNELS, Augmenter
from .corpora import data_root, load_corpora
from .evaluate import KINDS, breakdown, held_out_summary, utterance_predictions
from .report import held_out_table, score_table
from .train import backend_windows
from .windows import heard_alone, runtime_windows, stream_positions


def score_held_out(model_folder: str, corpora: list[str], channels: str = "recorded", channel_per_voice: bool = False) -> dict:
    """Scores of the model in ``model_folder`` on ``corpora`` (on the labels they share with it): per
    artifact (``tflite``, ``onnx``, each also ``alone``) pooled, per corpus and over the four shared
    classes, and the corpora's mean and lowest (as leave-one-corpus-out reports them). With
    ``channels`` other than ``recorded`` each utterance is first heard through a channel of its own
    drawn from :data:`CHANNELS` (seeded), so a stream's voice statistics carry from one channel to the next;
    with ``channel_per_voice`` one drawn for each speaker instead, heard in all of their utterances."""
    manifest = load_manifest(model_folder)
    labels = list(manifest.labels)
    utterances = load_corpora(corpora, labels)
    waves = load_waves(utterances, manifest.features.sample_rate)
    if CHANNELS[channels] is not None:
        augmenter = Augmenter(CHANNELS[channels], os.path.join(data_root(), "noise"), manifest.features.sample_rate)
        waves = list(augmenter.heard(waves, [u.speaker for u in utterances] if channel_per_voice else None))
    truth = np.array([labels.index(u.label) for u in utterances])
    speakers = [u.speaker for u in utterances]
    everyone = list(range(len(utterances)))
    metrics = {}
    for alone in (False, True):
        windows = runtime_windows(waves, heard_alone(speakers, everyone) if alone else speakers, manifest)
        positions = None if alone else stream_positions(speakers)
        for kind in KINDS[1:]:
            predictions = utterance_predictions(backend_windows(model_folder, kind, windows))
            metrics[f"{kind} alone" if alone else kind] = breakdown(utterances, everyone, truth, predictions, labels, positions)
    metrics["held_out_corpora"] = held_out_summary(metrics, sorted(set(corpora)))
    metrics["model"] = {"name": manifest.name, "labels": labels}
    metrics["channels"] = f"{channels}, one per voice" if channel_per_voice and CHANNELS[channels] else channels
    return metrics


def write_held_out(folder: str, metrics: dict, command: str) -> None:
    """``held_out.json`` and a readable ``held_out.md`` in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "held_out.json"), "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=1)
    lines = [f"# {metrics['model']['name']} on corpora it never heard", "", f"Reproduce: `{command}`", "",
             f"Channels: {metrics['channels']} ({_channels_in_words(metrics['channels'])}).", ""]  # fmt: skip
    lines += score_table(metrics, "utterances") + [""] + held_out_table(metrics["held_out_corpora"])
    with open(os.path.join(folder, "held_out.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _channels_in_words(channels: str) -> str:
    if channels == "recorded":
        return "as recorded"
    return "drawn for each voice, heard in all of its utterances" if channels.endswith("one per voice") else "drawn anew for each utterance"
