"""The model manifest (``model.json``): what a network needs to be run correctly, checked on load."""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .errors import RtserError
from .schema import ConfigError, build, convert
from .features import FeatureConfig, count_frames
from .speech import SpeechDetectorSpec
from .normalization import METHOD, NormalizationSpec, TrainingVoices, VoiceStatistics

MANIFEST_NAME = "model.json"
FORMAT = "rtser-model/1"
NETWORK_KINDS = ("tflite", "onnx")


@dataclass(frozen=True)
class WindowSpec:
    """Window length and hop, in seconds, and what they are in feature frames."""

    seconds: float
    hop_seconds: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.seconds) and math.isfinite(self.hop_seconds) and 0 < self.hop_seconds <= self.seconds <= 60):
            raise ValueError("window must be at most 60 s, with a hop of more than 0 s and at most the window")

    def frames(self, features: FeatureConfig) -> int:
        """Feature frames in one window."""
        return count_frames(round(self.seconds * features.sample_rate), features)

    def hop_frames(self, features: FeatureConfig) -> int:
        """Feature frames between two window ends."""
        return max(1, round(self.hop_seconds * features.sample_rate / features.hop_length))


@dataclass(frozen=True)
class SpeechGateSpec:
    """Which frames of a speech segment a window holds, and how many it needs (levels in feature dB)."""

    floor_db: float = -65.0
    frame_range_db: float = 30.0
    min_speech_seconds: float = 0.5

    def __post_init__(self) -> None:
        if not (-200 <= self.floor_db <= 0 and 0 < self.frame_range_db <= 200 and 0 <= self.min_speech_seconds <= 60):
            raise ValueError("speech_gate needs floor_db in [-200, 0], frame_range_db in (0, 200] and min_speech_seconds in [0, 60]")


@dataclass(frozen=True)
class Manifest:
    """A loaded, validated manifest; ``folder`` is where its network files lie."""

    folder: str
    name: str
    labels: tuple[str, ...]
    features: FeatureConfig
    window: WindowSpec
    gate: SpeechGateSpec
    speech_detector: SpeechDetectorSpec
    normalization: NormalizationSpec
    temperature: float  # utterance probabilities are scaled by it (``calibration``; 1: as the network gives them)
    networks: dict  # kind -> {"path", "sha256", "input": {...}}
    raw: dict = field(repr=False)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The network's input: one window as ``[1, 1, frames, n_features]``."""
        return (1, 1, self.window.frames(self.features), self.features.n_features)

    def voice_statistics(self) -> VoiceStatistics:
        """Fresh running statistics of a stream's voice, as the network expects its input normalised."""
        return VoiceStatistics(self.normalization, self.features.frames_per_second)

    def network_path(self, kind: str) -> str:
        """Absolute path of the network file of this kind."""
        return os.path.join(self.folder, self.networks[kind]["path"])


def find_manifest(path: str) -> str:
    """Accept a model folder, its ``model.json``, or a network file with ``model.json`` beside it."""
    if os.path.isdir(path):
        candidate = os.path.join(path, MANIFEST_NAME)
    elif path.endswith(".json"):
        candidate = path
    else:
        candidate = os.path.join(os.path.dirname(os.path.abspath(path)), MANIFEST_NAME)
    if not os.path.exists(path):
        raise RtserError(f"no such model: {path}")
    if not os.path.isfile(candidate):
        raise RtserError(f"model {path} has no manifest ({MANIFEST_NAME} missing)")
    return candidate


def sha256_of(path: str) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number a manifest may hold")


def load_manifest(path: str) -> Manifest:
    """Read and check a manifest; raise RtserError naming the first problem found."""
    manifest_path = find_manifest(path)
    try:
        with open(manifest_path, encoding="utf-8") as handle:
            raw = json.load(handle, parse_constant=_no_constant)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RtserError(f"unreadable manifest {manifest_path}: {err}") from None
    except ValueError as err:
        raise RtserError(f"invalid manifest {manifest_path}: {err}") from None
    problem = f"invalid manifest {manifest_path}"
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise RtserError(f"{problem}: 'format' must be {FORMAT!r}")
    try:
        features = build(FeatureConfig, raw["features"], "features")
        window = build(WindowSpec, {key: convert(dict, raw["window"], "window")[key] for key in ("seconds", "hop_seconds")}, "window")
        gate = build(SpeechGateSpec, raw.get("speech_gate", {}), "speech_gate")
        detector = build(SpeechDetectorSpec, raw.get("speech_detector", {}), "speech_detector")
        if not isinstance(raw["labels"], list) or not all(isinstance(label, str) and label for label in raw["labels"]):
            raise ValueError("labels must be a list of names")
        labels = tuple(raw["labels"])
        normalization = _normalization(convert(dict, raw["normalization"], "normalization"), features)
        networks = {kind: _network(kind, entry) for kind, entry in convert(dict, raw["networks"], "networks").items()}
        temperature = convert(float, convert(dict, raw.get("calibration", {}), "calibration").get("temperature", 1.0), "calibration.temperature")
    except KeyError as err:
        raise RtserError(f"{problem}: missing key {err}") from None
    except (ConfigError, ValueError) as err:
        raise RtserError(f"{problem}: {err}") from None
    if len(labels) < 2 or len(set(labels)) != len(labels):
        raise RtserError(f"{problem}: labels must be at least two distinct names")
    if window.frames(features) < 1 or window.hop_seconds <= 0:
        raise RtserError(f"{problem}: window shorter than one frame or hop not positive")
    if not 0.01 <= temperature <= 100:
        raise RtserError(f"{problem}: calibration temperature must be between 0.01 and 100")
    unknown = sorted(set(networks) - set(NETWORK_KINDS))
    if unknown or not networks:
        raise RtserError(f"{problem}: networks must name one or more of {', '.join(NETWORK_KINDS)}")
    folder = os.path.dirname(os.path.abspath(manifest_path))
    return Manifest(folder, str(raw.get("name", "")), labels, features, window, gate, detector, normalization, temperature, networks, raw)


def _network(kind: str, entry) -> dict:
    """A ``networks`` entry: the file's name and sha256 as strings, and ``input`` a mapping if given."""
    if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) and entry[key] for key in ("path", "sha256")):
        raise ValueError(f"network {kind!r} needs 'path' and 'sha256' as strings")
    convert(dict, entry.get("input", {}), f"networks.{kind}.input")
    return entry


def _normalization(entry: dict, features: FeatureConfig) -> NormalizationSpec:
    """The manifest's ``normalization`` entry, checked (ValueError names the problem)."""
    if entry.get("method") != METHOD:
        raise ValueError(f"normalization method must be {METHOD!r}, got {entry.get('method')!r}")
    spec = NormalizationSpec(
        *(convert(tuple[float, ...], entry[key], f"normalization.{key}") for key in ("mean", "std")),
        *(convert(float, entry[key], f"normalization.{key}") for key in ("prior_seconds", "memory_seconds")),
        _voices(entry.get("voices"), features),
    )  # fmt: skip
    if not len(spec.mean) == len(spec.std) == features.n_features:
        raise ValueError(f"normalization has {len(spec.mean)} means and {len(spec.std)} deviations for {features.n_features} features")
    if min(spec.std) <= 0 or spec.prior_seconds <= 0 or spec.memory_seconds <= 0:  # finite: convert
        raise ValueError("normalization needs finite values, positive deviations, prior_seconds and memory_seconds")
    return spec


def _voices(entry: dict | None, features: FeatureConfig) -> TrainingVoices | None:
    """The manifest's ``normalization.voices`` entry (optional), checked."""
    if entry is None:
        return None
    entry = convert(dict, entry, "normalization.voices")
    rows = {key: convert(list[list[float]], entry[key], f"normalization.voices.{key}") for key in ("mean", "std")}
    if not rows["mean"] or len(rows["mean"]) != len(rows["std"]) or any(len(row) != features.n_features for values in rows.values() for row in values):
        raise ValueError(f"normalization voices need mean and std of [voices, {features.n_features}] values")
    mean, std = (np.array(rows[key], np.float64) for key in ("mean", "std"))
    temperature = convert(float, entry["temperature"], "normalization.voices.temperature")
    if not ((std > 0).all() and temperature > 0):  # finite: convert
        raise ValueError("normalization voices need finite means, positive deviations and a positive temperature")
    return TrainingVoices(mean, std, temperature)


def verified_file(path: str, sha256: str, name: str = "model file") -> str:
    """``path`` after checking it exists and matches the ``sha256`` its manifest gives it."""
    if not os.path.isfile(path):
        raise RtserError(f"{name} missing: {path}")
    if sha256_of(path) != sha256:
        raise RtserError(f"{name} {path} does not match the sha256 in its manifest")
    return path


def verify_network(manifest: Manifest, kind: str) -> str:
    """Path of the network file of ``kind`` after checking it exists and its sha256 matches."""
    return verified_file(manifest.network_path(kind), manifest.networks[kind]["sha256"])
