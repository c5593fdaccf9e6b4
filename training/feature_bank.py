"""Feature frames of every utterance of a run, clean and as heard through drawn recording channels,
computed once and shared by every fold, network and epoch (and by the processes sharing a run).

Copy ``k`` holds each utterance recorded through its speaker's channel of that copy (room,
background noise, gain: :meth:`training.augment.Augmenter.channel`, one per speaker, as a stream
has one microphone) with its own speed perturbation, as :meth:`training.augment.Augmenter.wave`
makes it. Epoch ``e`` trains on copy ``e % copies``; crops, SpecAugment and the voice history
drawn for each window still change every epoch. With as many copies as epochs, every epoch hears
fresh channels, as when the features were recomputed each epoch; fewer copies spend less time on
features (about a third of an epoch's time on two corpora, more on five) and more on the network.

The copies are stored in the cache folder (``$RTSER_CACHE``), keyed by everything they depend on,
and read memory-mapped, so processes training folds of the same run share one copy on disk and in
memory; a process that finds another building a copy waits for it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from rtser.features import FeaturePlan, extract

from .audio_cache import cache_dir
from .augment import Augmenter
from .config import RunConfig
from .corpora import Utterance, data_root

COPY_SEED_STRIDE = 7919  # copy k's channels are drawn with the recipe's seed plus k times this


class FeatureBank:
    """The clean and augmented feature frames of a run's utterances."""

    def __init__(self, config: RunConfig, utterances: Sequence[Utterance], waves: Sequence[np.ndarray]):
        self.config, self.waves = config, waves
        self.speakers = [u.speaker for u in utterances]
        self._key = {"files": [u.path for u in utterances], "features": config.features.to_dict(),
                     "augment": dataclasses.asdict(config.augment), "seed": config.train.seed, "v": 1}  # fmt: skip
        self._loaded: dict[int | None, tuple[np.ndarray, np.ndarray]] = {}

    def clean(self, idx: Sequence[int]) -> list[np.ndarray]:
        """The frames of these utterances as recorded."""
        return self._frames(None, idx)

    def heard(self, copy: int, idx: Sequence[int]) -> list[np.ndarray]:
        """The frames of these utterances in augmented copy ``copy``."""
        return self._frames(copy, idx)

    def _frames(self, copy: int | None, idx: Sequence[int]) -> list[np.ndarray]:
        if copy not in self._loaded:
            self._loaded[copy] = self._stored(copy)
        frames, offsets = self._loaded[copy]
        return [frames[offsets[i] : offsets[i + 1]] for i in idx]

    def _stored(self, copy: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The copy from the cache, built there first if no process has built it."""
        digest = hashlib.sha256(json.dumps({**self._key, "copy": copy}, sort_keys=True).encode()).hexdigest()[:16]
        path = os.path.join(cache_dir(), f"features-{'clean' if copy is None else f'copy{copy}'}-{digest}")
        with open(f"{path}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not os.path.exists(f"{path}.offsets.npy"):
                self._build(copy, path)
        return np.load(f"{path}.frames.npy", mmap_mode="r"), np.load(f"{path}.offsets.npy")

    def _build(self, copy: int | None, path: str) -> None:
        config = self.config
        plan = FeaturePlan(config.features)
        if copy is None:
            heard = list(self.waves)
        else:
            rate = config.features.sample_rate
            augmenter = Augmenter(config.augment, os.path.join(data_root(), "noise"), rate, config.train.seed + COPY_SEED_STRIDE * copy)
            heard = augmenter.heard(self.waves, self.speakers)
        what = "clean features" if copy is None else f"features, channel copy {copy + 1}"
        frames = [extract(wave, config.features, plan) for wave in tqdm(heard, desc=what, total=len(self.waves), unit="file")]
        offsets = np.cumsum([0] + [len(f) for f in frames])
        np.save(f"{path}.frames.{os.getpid()}.npy", np.concatenate(frames).astype(np.float32))
        os.replace(f"{path}.frames.{os.getpid()}.npy", f"{path}.frames.npy")
        np.save(f"{path}.offsets.{os.getpid()}.npy", offsets)
        os.replace(f"{path}.offsets.{os.getpid()}.npy", f"{path}.offsets.npy")  # last: it marks the copy complete
