"""A finished model scored on whole corpora it never heard, as rtser runs it: each file alone (a
recognizer of its own, as ``rtser replay`` hears one file) and each speaker's files streamed through
one recognizer, by both int8 files."""

from __future__ import annotations

import json
import os

import numpy as np

from rtser.manifest import load_manifest

from .audio_cache import load_waves
from .corpora import load_corpora
from .evaluate import KINDS, breakdown, held_out_summary, utterance_predictions
from .report import held_out_table, score_table
from .train import backend_windows
from .windows import heard_alone, runtime_windows, stream_positions


def score_held_out(model_folder: str, corpora: list[str]) -> dict:
    """Scores of the model in ``model_folder`` on ``corpora`` (on the labels they share with it): per
    artifact (``tflite``, ``onnx``, each also ``alone``) pooled, per corpus and over the four shared
    classes, and the corpora's mean and lowest (as leave-one-corpus-out reports them)."""
    manifest = load_manifest(model_folder)
    labels = list(manifest.labels)
    utterances = load_corpora(corpora, labels)
    waves = load_waves(utterances, manifest.features.sample_rate)
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
    return metrics


def write_held_out(folder: str, metrics: dict, command: str) -> None:
    """``held_out.json`` and a readable ``held_out.md`` in ``folder``."""
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "held_out.json"), "w", encoding="utf-8") as handle:
        json.dump(metrics, handle, indent=1)
    lines = [f"# {metrics['model']['name']} on corpora it never heard", "", f"Reproduce: `{command}`", ""]
    lines += score_table(metrics, "utterances") + [""] + held_out_table(metrics["held_out_corpora"])
    with open(os.path.join(folder, "held_out.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
