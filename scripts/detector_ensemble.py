"""Run one of the speech detection scripts with the model's detector network replaced by several
networks whose probabilities are averaged (an ensemble; an experiment, not a shipped option:
docs/speech_detection.md, "Other seeds, an ensemble and its student").

    RTSER_DATA=~/rtser-data python scripts/detector_ensemble.py NETWORK,NETWORK[,...] SCRIPT [ARGS...]

e.g. ``python scripts/detector_ensemble.py rtser/models/default/voice_network.npz,runs/detector-seed1/voice_network.npz
scripts/boundary_settings.py --setting threshold=0.9,edge_threshold=0.5``. The networks must read the
model's feature frames and share its context (past, future, dilation).
"""

from __future__ import annotations

import os
import runpy
import sys

import rtser.speech
from rtser.schema import ConfigError
from rtser.voice_network import load_voice_network
from training.detector import AveragedNetworks


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    paths = sys.argv[1].split(",")
    rtser.speech.load_voice_network = lambda _model_network: AveragedNetworks([load_voice_network(p) for p in paths])
    script = sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    try:
        runpy.run_path(script, run_name="__main__")
    except ConfigError as err:
        raise SystemExit(f"detector_ensemble: {err}") from None


if __name__ == "__main__":
    main()
