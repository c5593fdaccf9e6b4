"""rtser's own speech detector network, run in numpy on the model's feature frames.

A frame's speech probability comes from the frames around it: ``past`` frames before it and
``future`` after it, every ``dilation``-th one, so its decision trails the audio by ``future``
frames. Layers: each frame standardised and projected (``w_in``), a convolution over the context
(``w_context``), a hidden layer (``w_mix``) and the output (``w_out``), with ReLU between them.
It is trained by ``python -m training detector`` and saved as an ``.npz`` file (no pickled objects).
"""

from __future__ import annotations

import functools
import json
import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import RtserError
from .features import FeatureConfig
from .schema import ConfigError, build

FORMAT = "rtser-voice-network/1"
ARRAYS = ("mean", "std", "w_in", "b_in", "w_context", "b_context", "w_mix", "b_mix", "w_out", "b_out")


@dataclass(frozen=True)
class VoiceNetwork:
    """Weights and shape of one trained network, and the features it was trained on."""

    features: FeatureConfig
    past: int
    future: int
    dilation: int
    arrays: dict[str, np.ndarray]

    @property
    def taps(self) -> int:
        """How many frames of the context the convolution reads."""
        return (self.past + self.future) // self.dilation + 1

    def project(self, frames: np.ndarray) -> np.ndarray:
        """The first layer of each feature frame, ``[n, hidden]``."""
        w_in, b_in = self._standardising_input
        return np.maximum(frames @ w_in + b_in, 0)

    @functools.cached_property
    def _standardising_input(self) -> tuple[np.ndarray, np.ndarray]:
        """The first layer's weights and bias with the frames' standardisation folded in."""
        a = self.arrays
        return a["w_in"] / a["std"][:, None], a["b_in"] - (a["mean"] / a["std"]) @ a["w_in"]

    def probabilities(self, projected: np.ndarray) -> np.ndarray:
        """The speech probability of each frame whose whole context ``projected`` holds: frames
        ``past`` to ``len(projected) - future - 1``."""
        a = self.arrays
        n = len(projected) - self.past - self.future
        if n <= 0:
            return np.zeros(0, np.float32)
        projected = np.ascontiguousarray(projected)
        row = projected.strides[0]
        context = np.lib.stride_tricks.as_strided(projected, (n, self.taps, projected.shape[1]), (row, self.dilation * row, projected.strides[1]), writeable=False)
        hidden = np.maximum(context.reshape(n, -1) @ a["w_context"] + a["b_context"], 0)
        hidden = np.maximum(hidden @ a["w_mix"] + a["b_mix"], 0)
        logits = hidden @ a["w_out"] + a["b_out"]
        return (1 / (1 + np.exp(-np.clip(logits[:, 0], -30, 30)))).astype(np.float32)

    def save(self, path: str) -> None:
        """Write the network as ``.npz``."""
        meta = {"format": FORMAT, "features": self.features.to_dict(), "past": self.past, "future": self.future, "dilation": self.dilation}
        with open(path, "wb") as handle:
            np.savez(handle, meta=np.array(json.dumps(meta)), **{name: self.arrays[name].astype(np.float32) for name in ARRAYS})


def load_voice_network(path: str) -> VoiceNetwork:
    """Read a network saved by :meth:`VoiceNetwork.save`; RtserError naming the problem if it is
    missing, unreadable or inconsistent."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {name: np.asarray(data[name], dtype=np.float32) for name in ARRAYS}
    except FileNotFoundError:
        raise RtserError(f"speech detector network {path} not found") from None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise RtserError(f"unreadable speech detector network {path}: {err}") from None
    problem = f"invalid speech detector network {path}"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RtserError(f"{problem}: format must be {FORMAT!r}")
    try:
        network = VoiceNetwork(build(FeatureConfig, meta["features"], "features"), int(meta["past"]), int(meta["future"]), int(meta["dilation"]), arrays)
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        raise RtserError(f"{problem}: {err}") from None
    n, hidden = network.features.n_features, arrays["w_in"].shape[-1]
    shapes = {"mean": (n,), "std": (n,), "w_in": (n, hidden), "b_in": (hidden,), "w_context": (network.taps * hidden, arrays["w_context"].shape[-1])}
    if (network.past < 0 or network.future < 0 or network.dilation < 1 or (network.past + network.future) % network.dilation
            or any(arrays[name].shape != shape for name, shape in shapes.items()) or arrays["w_out"].shape[-1] != 1
            or not all(np.all(np.isfinite(value)) for value in arrays.values()) or np.any(arrays["std"] <= 0)):  # fmt: skip
        raise RtserError(f"{problem}: its arrays do not fit together")
    try:
        network.probabilities(np.zeros((network.past + network.future + 1, hidden), np.float32))
    except ValueError as err:
        raise RtserError(f"{problem}: {err}") from None
    return network
