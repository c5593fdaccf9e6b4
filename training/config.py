"""The training configuration, read from YAML with every key checked."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from rtser.features import FeatureConfig
from rtser.manifest import SpeechGateSpec, WindowSpec, sha256_of
from rtser.speech import SpeechDetectorSpec
from rtser.schema import ConfigError, load, load_yaml
from rtser.voice_network import load_voice_network

from .augment import AugmentConfig

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class TrainSettings:
    """Optimisation and model selection."""

    epochs: int = 40
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 8
    loss: str = "cross_entropy"  # or "focal"
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1
    class_weights: bool = True
    balanced_sampling: bool = False  # draw each epoch's windows so classes, and corpora within a class, have equal shares (training/sampling.py)
    mixup_alpha: float = 0.0  # 0 switches mixup off
    networks: int = 1  # >1: that many networks from different seeds, their probabilities averaged in the exported graph
    average_last: int = 0  # >0: ship the weights averaged over the last N epochs (SWA), not the best-validation epoch
    statistics_classifier: bool = False  # average the network with a linear classifier on window statistics (models/statistics.py)
    statistics_l2: float | list[float] = 0.02  # that classifier's weight penalty; a list: the one chosen on the fit speakers (models/statistics.py choose_l2)
    statistics_with_validation: bool = False  # fit it on the validation speakers' windows too (their logged UA is then not held out)
    channel_copies: int = 4  # augmented copies of the features, computed once (training/feature_bank.py); epoch e trains on copy e % channel_copies
    teachers: list[str] = field(default_factory=list)  # run folders whose networks for the same fold teach this one (training/distillation.py)
    distillation_weight: float = 0.5  # the share of the loss that is the teachers' soft targets
    distillation_temperature: float = 2.0  # how much the teachers' probabilities are softened
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # where networks train: auto (a CUDA GPU when torch sees one), cpu or cuda


@dataclass
class SmokeSettings:
    """The reduced run for CI: a few files per speaker and label, one fold, few epochs."""

    files_per_speaker_label: int = 2
    folds: int = 1
    epochs: int = 1


@dataclass
class NormalizationSettings:
    """How much speech the training speakers' prior and the running voice statistics are worth
    (see ``rtser.normalization``)."""

    prior_seconds: float = 5.0
    memory_seconds: float = 60.0
    voice_temperature: float | None = None  # weight the training voices in the prior (None: their plain average)
    first_hearing_share: float = 0.0  # training windows standardised with nothing heard of the voice before (as rtser replay hears a file): at least this share


PROTOCOLS = ("speaker_groups", "leave_one_corpus_out")


@dataclass
class RunConfig:
    """One training recipe."""

    name: str
    corpora: list[str]
    labels: list[str]
    folds: dict[str, int] = field(default_factory=dict)  # test folds per corpus; a corpus of ``corpora`` not named here only trains
    # "speaker_groups" (the folds above) or "leave_one_corpus_out" (a fold per corpus, testing all of
    # its speakers, training on the other corpora; no ``folds``)
    protocol: str = "speaker_groups"
    validation_speakers_per_corpus: int = 2
    features: FeatureConfig = field(default_factory=FeatureConfig)
    window: WindowSpec = field(default_factory=lambda: WindowSpec(3.0, 0.5))
    speech_gate: SpeechGateSpec = field(default_factory=SpeechGateSpec)
    speech_detector: SpeechDetectorSpec = field(default_factory=SpeechDetectorSpec)
    # a speech detector network of rtser's own (python -m training detector; a path from the project
    # root or absolute): windows are made through it and the exported model carries it, with the
    # settings of speech_detector (whose kind, network and sha256 it sets). Empty: speech_detector as given.
    detector_network: str = ""
    normalization: NormalizationSettings = field(default_factory=NormalizationSettings)
    model: dict = field(default_factory=lambda: {"architecture": "lightsernet"})
    train: TrainSettings = field(default_factory=TrainSettings)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    smoke: SmokeSettings = field(default_factory=SmokeSettings)


def _merge(base: dict, overlay: dict) -> dict:
    """``base`` with ``overlay``'s keys: mappings merge key by key, except ``model`` (its options
    belong to one architecture) and ``folds`` (they belong to one protocol), which are replaced whole."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key not in ("model", "folds"):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _recipe_yaml(path: str, seen: tuple[str, ...] = ()) -> dict:
    """A recipe's YAML; one that names a ``base`` recipe (a path from its own folder) is that recipe
    with its own keys merged on top."""
    raw = load_yaml(path)
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base must be the path of another recipe")
    base_path, chain = os.path.join(os.path.dirname(path), base), (*seen, os.path.abspath(path))
    if os.path.abspath(base_path) in chain:
        raise ConfigError(f"{path}: base {base} leads back to itself")
    return _merge(_recipe_yaml(base_path, chain), raw)


def _merged_yaml(path: str, overlays: list[str]) -> dict:
    """The recipe's YAML (with its base) and each overlay merged on top."""
    raw = _recipe_yaml(path)
    for overlay in overlays:
        extra = load_yaml(overlay)
        if "name" in extra:
            raise ConfigError(f"{overlay}: an overlay cannot set name")
        raw = _merge(raw, extra)
    return raw


def recipe_features(path: str, overlays: list[str] = ()) -> FeatureConfig:
    """The feature frames a recipe (with its overlays) trains on, read without checking the rest of it:
    what a speech detector for that recipe must be taught on."""
    return load(FeatureConfig, " + ".join([path, *overlays]) + ": features", _merged_yaml(path, overlays).get("features", {}))


def load_config(path: str, overlays: list[str] = ()) -> RunConfig:
    """Read a YAML training recipe, then each overlay file on top of it (an architecture file brings
    ``model``, ``features`` and, where the architecture has its own, its ``train`` schedule; see
    :func:`_merge`); overlay names join the run's name. Unknown keys
    and wrong types raise ConfigError naming the files and the key."""
    where = " + ".join([path, *overlays])
    config = load(RunConfig, where, _merged_yaml(path, overlays))
    if config.train.average_last and config.train.patience < config.train.epochs:
        raise ConfigError(f"{where}: train.average_last needs every epoch trained: set train.patience to train.epochs")
    if config.protocol not in PROTOCOLS:
        raise ConfigError(f"{where}: unknown protocol {config.protocol!r} (known: {', '.join(PROTOCOLS)})")
    if config.protocol == "leave_one_corpus_out" and (config.folds or len(config.corpora) < 2):
        raise ConfigError(f"{where}: leave_one_corpus_out needs two or more corpora and no folds (each corpus is a fold)")
    if config.protocol == "speaker_groups" and (not config.folds or set(config.folds) - set(config.corpora)):
        raise ConfigError(f"{where}: folds must name one or more of the corpora ({', '.join(config.corpora)}) and no other")
    if not config.validation_speakers_per_corpus and not config.train.average_last:
        raise ConfigError(f"{where}: without validation speakers nothing chooses the epoch: set train.average_last")
    if config.train.balanced_sampling and config.train.class_weights:
        raise ConfigError(f"{where}: train.balanced_sampling balances the classes already: set train.class_weights false")
    if config.train.device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{where}: train.device must be auto, cpu or cuda")
    if not 0 <= config.train.distillation_weight <= 1 or config.train.distillation_temperature <= 0:
        raise ConfigError(f"{where}: train.distillation_weight must be in [0, 1] and train.distillation_temperature positive")
    if config.train.networks < 1 or config.train.channel_copies < 1:
        raise ConfigError(f"{where}: train.networks and train.channel_copies must be 1 or more")
    if config.detector_network:
        path = detector_network_path(config)
        if not os.path.isfile(path):
            raise ConfigError(f"{where}: detector_network {config.detector_network} not found")
        if load_voice_network(path).features != config.features:
            raise ConfigError(f"{where}: detector_network {config.detector_network} reads other feature frames than the recipe's "
                              "(an architecture overlay that changes the features needs a detector trained on them, or detector_network: \"\" for pymicro-vad)")  # fmt: skip
        detector = dataclasses.replace(config.speech_detector, kind="voice_network", network=os.path.basename(path), sha256=sha256_of(path))
        config = dataclasses.replace(config, speech_detector=detector)
    settings = config.normalization
    if min(settings.prior_seconds, settings.memory_seconds) <= 0 or (settings.voice_temperature is not None and settings.voice_temperature <= 0):
        raise ConfigError(f"{where}: normalization.prior_seconds, memory_seconds and voice_temperature must be positive")
    if not 0 <= settings.first_hearing_share <= 1:
        raise ConfigError(f"{where}: normalization.first_hearing_share must be between 0 and 1")
    return dataclasses.replace(config, name="-".join([config.name, *map(file_stem, overlays)]))


def project_path(path: str) -> str:
    """A path a recipe names (a detector network, a teacher run) as a path from here: relative ones
    are from the project root."""
    return os.path.join(PROJECT_ROOT, path)


def detector_network_path(config: RunConfig) -> str:
    """The recipe's speech detector network as a path."""
    return project_path(config.detector_network)


def file_stem(path: str) -> str:
    """A config file's name without folder and extension (``architectures/timnet.yaml`` -> ``timnet``)."""
    return os.path.splitext(os.path.basename(path))[0]


def config_dict(config: RunConfig) -> dict:
    """The config as plain data, for run folders and manifests."""
    return dataclasses.asdict(config)
