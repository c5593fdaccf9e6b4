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

import numpy as np

import rtser.speech
from rtser.voice_network import VoiceNetwork, load_voice_network


class AveragedNetworks:
    """Several :class:`VoiceNetwork` of the same context, read as one: each frame's probability is
    the mean of theirs (``project`` passes the frames on, as each network projects its own)."""

    def __init__(self, networks: list[VoiceNetwork]):
        first = networks[0]
        if any((n.features, n.past, n.future, n.dilation) != (first.features, first.past, first.future, first.dilation) for n in networks):
            raise SystemExit("the networks must read the same frames with the same context")
        self.networks = networks
        self.features, self.past, self.future, self.dilation = first.features, first.past, first.future, first.dilation

    def project(self, frames: np.ndarray) -> np.ndarray:
        """The frames themselves: each network projects them in :meth:`probabilities`."""
        return frames

    def probabilities(self, frames: np.ndarray) -> np.ndarray:
        """The networks' mean speech probability of each frame whose whole context ``frames`` holds."""
        return np.mean([n.probabilities(n.project(frames)) for n in self.networks], axis=0).astype(np.float32)


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    paths = sys.argv[1].split(",")
    rtser.speech.load_voice_network = lambda _model_network: AveragedNetworks([load_voice_network(p) for p in paths])
    script = sys.argv[2]
    sys.argv = sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
