"""Speech boundaries for a few speech detector settings, on streams of nEMO and ASED utterances:
the corpora the settings are chosen on, so that the EMO-DB and RAVDESS streams of
``scripts/speech_detection.py`` stay untouched by the choice (docs/speech_detection.md). The same
conditions, reference and figures as there. Needs the five-corpus data folder
(scripts/five_corpora.sh) in RTSER_DATA.

    RTSER_DATA=~/rtser-data python scripts/boundary_settings.py [--model DIR] [--setting KEY=VALUE,... ...]
"""

from __future__ import annotations

import csv
import os

import numpy as np

from rtser.manifest import load_manifest
from rtser.pipeline import Recognizer
from speech_detection import DATA, boundary_figures, boundary_stream, conditions, read, recognizer_segments, settings_arguments, with_setting

# without edge frames, then edge frames from 0.8 down to 0.1 (the shipped model: 0.5)
SETTINGS = [{"edge_threshold": None}] + [{"edge_threshold": edge} for edge in (0.8, 0.5, 0.3, 0.1)]
UTTERANCES_PER_CORPUS = 100


def main() -> None:
    args = settings_arguments(__doc__)
    manifest = load_manifest(args.model)
    rng = np.random.default_rng(7)
    files = []
    for corpus in ("nemo", "ased"):
        with open(os.path.join(DATA, corpus, "files.csv"), encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        files += [os.path.join(DATA, corpus, rows[i]["file"]) for i in rng.choice(len(rows), UTTERANCES_PER_CORPUS, replace=False)]
    streams = []
    for condition, noise_file, snr in conditions():
        noise = read(os.path.join(DATA, "noise", "background", noise_file)) if noise_file else None
        stream, references, inside = boundary_stream(files, noise, rng, snr, manifest.speech_detector.pause_seconds)
        streams.append((condition, stream, references["voice"], inside))
    for values in args.settings or SETTINGS:
        recognizer = Recognizer(with_setting(manifest, values))
        for condition, stream, truth, inside in streams:
            figures = boundary_figures(recognizer_segments(recognizer, stream), truth)
            print(f"{values} {condition} ({inside} pauses inside the utterances):", figures, flush=True)


if __name__ == "__main__":
    main()
