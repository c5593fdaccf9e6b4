"""Speech kept on the five corpora and non-speech judged, through the real Recognizer with the
shipped model, for a few speech detector thresholds and ``confirm_seconds`` (docs/experiments.md,
"Five corpora"). Needs the five-corpus data folder (scripts/five_corpora.sh) in RTSER_DATA.

    RTSER_DATA=~/rtser-data python scripts/detector_settings.py [--model DIR] [--setting THRESHOLD,CONFIRM[,MIN_SPEECH] ...]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import os
import random

import numpy as np

from rtser.manifest import load_manifest
from rtser.pipeline import DEFAULT_MODEL, Recognizer
from speech_detection import DATA, judged, made_sounds, read, run

SETTINGS = [(0.6, 0.5), (0.5, 0.5), (0.4, 0.5), (0.3, 0.5), (0.6, 0.3), (0.4, 0.3)]  # (threshold, confirm_seconds)


def listed(corpus: str, count: int, rng: random.Random) -> list[np.ndarray]:
    rows = list(csv.DictReader(open(os.path.join(DATA, corpus, "files.csv"), encoding="utf-8")))
    rng.shuffle(rows)
    return [read(os.path.join(DATA, corpus, row["file"])) for row in rows[:count]]


def setting(text: str) -> tuple[float, ...]:
    """THRESHOLD,CONFIRM[,MIN_SPEECH]: the detector's threshold and confirm_seconds, and the speech
    a window needs (speech_gate.min_speech_seconds; the model's when not given)."""
    values = tuple(float(v) for v in text.split(","))
    if len(values) not in (2, 3):
        raise argparse.ArgumentTypeError(f"{text!r} is not THRESHOLD,CONFIRM[,MIN_SPEECH]")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model folder (default: the shipped model)")
    parser.add_argument("--setting", dest="settings", type=setting, action="append", metavar="THRESHOLD,CONFIRM[,MIN_SPEECH]",
                        help="a threshold and confirm_seconds to try; repeatable (default: six of them)")  # fmt: skip
    args = parser.parse_args()
    rng = random.Random(0)
    speech = {"ased": listed("ased", 150, rng), "turev": listed("turev", 150, rng), "nemo": listed("nemo", 100, rng),
              "emodb": [read(p) for p in sorted(glob.glob(os.path.join(DATA, "emodb", "wav", "*.wav")))[::5]]}  # fmt: skip
    noise = {name: [read(p) for p in sorted(glob.glob(os.path.join(DATA, "noise", name, "*.flac")))] for name in ("nonspeech", "background")}
    noise["made"] = list(made_sounds(np.random.default_rng(0)).values())
    manifest = load_manifest(args.model)
    for threshold, confirm, *min_speech in args.settings or SETTINGS:
        spec = dataclasses.replace(manifest.speech_detector, threshold=threshold, confirm_seconds=confirm)
        gate = dataclasses.replace(manifest.gate, min_speech_seconds=min_speech[0]) if min_speech else manifest.gate
        recognizer = Recognizer(dataclasses.replace(manifest, speech_detector=spec, gate=gate))
        kept = {name: np.mean([any(e["type"] == "utterance" for e in run(recognizer, a)) for a in clips]) for name, clips in speech.items()}
        false = {name: f"{sum(judged(run(recognizer, a)) for a in clips)}/{len(clips)}" for name, clips in noise.items()}
        print(f"threshold {threshold}, confirm {confirm}, window minimum {gate.min_speech_seconds}: utterance found in", {k: f"{v:.0%}" for k, v in kept.items()}, "non-speech judged", false, flush=True)


if __name__ == "__main__":
    main()
