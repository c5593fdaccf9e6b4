"""Speech kept on the five corpora and non-speech judged, through the real Recognizer with the
shipped model, for a few speech detector settings (docs/experiments.md, "Five corpora"). Needs the
five-corpus data folder (scripts/five_corpora.sh) in RTSER_DATA.

    RTSER_DATA=~/rtser-data python scripts/detector_settings.py [--model DIR] [--setting KEY=VALUE,... ...]

A setting names keys of the manifest's ``speech_detector`` and ``min_speech_seconds`` of its
``speech_gate``: ``--setting threshold=0.9,confirm_seconds=0.3,min_speech_seconds=0.3``.
"""

from __future__ import annotations

import csv
import glob
import os
import random

import numpy as np

from rtser.manifest import load_manifest
from rtser.pipeline import Recognizer
from speech_detection import DATA, judged, made_sounds, read, run, settings_arguments, with_setting

# the shipped model's settings, then shorter confirmation, a lower threshold and hysteresis (docs/speech_detection.md)
SETTINGS = [{"threshold": 0.95}, {"threshold": 0.95, "confirm_seconds": 0.25, "min_speech_seconds": 0.25},
            {"threshold": 0.95, "confirm_seconds": 0.2, "min_speech_seconds": 0.2},
            {"threshold": 0.9, "confirm_seconds": 0.2, "min_speech_seconds": 0.2}, {"threshold": 0.95, "hold_threshold": 0.8}]


def listed(corpus: str, count: int, rng: random.Random) -> list[np.ndarray]:
    rows = list(csv.DictReader(open(os.path.join(DATA, corpus, "files.csv"), encoding="utf-8")))
    rng.shuffle(rows)
    return [read(os.path.join(DATA, corpus, row["file"])) for row in rows[:count]]


def main() -> None:
    args = settings_arguments(__doc__)
    rng = random.Random(0)
    speech = {"ased": listed("ased", 150, rng), "turev": listed("turev", 150, rng), "nemo": listed("nemo", 100, rng),
              "emodb": [read(p) for p in sorted(glob.glob(os.path.join(DATA, "emodb", "wav", "*.wav")))[::5]],
              "ravdess": [read(p) for p in sorted(glob.glob(os.path.join(DATA, "ravdess", "*", "*.flac")))[::8]]}  # fmt: skip
    noise = {name: [read(p) for p in sorted(glob.glob(os.path.join(DATA, "noise", name, "*.flac")))] for name in ("nonspeech", "background")}
    noise["made"] = list(made_sounds(np.random.default_rng(0)).values())
    manifest = load_manifest(args.model)
    for values in args.settings or SETTINGS:
        recognizer = Recognizer(with_setting(manifest, values))
        kept = {name: np.mean([any(e["type"] == "utterance" for e in run(recognizer, a)) for a in clips]) for name, clips in speech.items()}
        false = {name: f"{sum(judged(run(recognizer, a)) for a in clips)}/{len(clips)}" for name, clips in noise.items()}
        print(f"{values}: utterance found in", {k: f"{v:.0%}" for k, v in kept.items()}, "non-speech judged", false, flush=True)


if __name__ == "__main__":
    main()
