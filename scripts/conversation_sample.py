"""Build the shipped multi-utterance sample: six EMO-DB utterances, one per emotion of the default
model and each from another speaker, unchanged and joined by 1.2 s of silence (with 0.5 s before
the first and 1 s after the last), as 16 kHz 16-bit FLAC. With ``--speaker``, every utterance of
that EMO-DB speaker instead, back to back (``--pause`` 0: continuous speech, for ``rtser bench
--audio``).

    RTSER_DATA=~/rtser-data python scripts/conversation_sample.py [--out rtser/samples/emodb-six-emotions.flac]
    RTSER_DATA=~/rtser-data python scripts/conversation_sample.py --speaker 03 --pause 0 --out speaker03.flac
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import soundfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.environ.get("RTSER_DATA", os.path.join(ROOT, "..", "shared", "data"))
RATE = 16000
UTTERANCES = ["11a01Nd", "10a02Fa", "13a01Wb", "08a01Ab", "12a05Ta", "09a01Ea"]  # neutral, happiness, anger, fear, sadness, disgust
PAUSE_SECONDS, LEAD_SECONDS, TAIL_SECONDS = 1.2, 0.5, 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "rtser", "samples", "emodb-six-emotions.flac"))
    parser.add_argument("--speaker", help="every utterance of this EMO-DB speaker (e.g. 03) instead of the six")
    parser.add_argument("--pause", type=float, default=PAUSE_SECONDS, help="seconds of silence between utterances")
    args = parser.parse_args()
    folder = os.path.join(DATA, "emodb", "wav")
    names = sorted(f[:-4] for f in os.listdir(folder) if f.startswith(args.speaker) and f.endswith(".wav")) if args.speaker else UTTERANCES
    if not names:
        raise SystemExit(f"no EMO-DB utterances of speaker {args.speaker} in {folder}")
    pieces = [np.zeros(int(LEAD_SECONDS * RATE), np.int16)]
    for name in names:
        samples, rate = soundfile.read(os.path.join(folder, f"{name}.wav"), dtype="int16")
        if rate != RATE:
            raise SystemExit(f"{name}.wav: {rate} Hz, expected {RATE}")
        pieces += [samples, np.zeros(int(args.pause * RATE), np.int16)]
    pieces[-1] = np.zeros(int(TAIL_SECONDS * RATE), np.int16)
    soundfile.write(args.out, np.concatenate(pieces), RATE, subtype="PCM_16", format="FLAC")
    print(args.out, f"{sum(len(p) for p in pieces) / RATE:.1f} s")


if __name__ == "__main__":
    main()
