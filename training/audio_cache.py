"""Decoded corpus audio cached on disk, so repeated runs skip decoding and resampling."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import soundfile
import soxr
from tqdm import tqdm

from .corpora import Utterance


def cache_dir() -> str:
    """``$RTSER_CACHE`` or ``.cache/`` in the checkout."""
    folder = os.environ.get("RTSER_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache"))
    os.makedirs(folder, exist_ok=True)
    return folder


def read_mono(path: str, rate: int) -> np.ndarray:
    """One file as float32 mono at ``rate``."""
    samples, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if file_rate != rate:
        samples = soxr.resample(samples, file_rate, rate, quality="VHQ")
    return samples.astype(np.float32)


def load_waves(utterances: list[Utterance], rate: int) -> list[np.ndarray]:
    """The audio of each utterance at ``rate``, from the cache when it holds this exact list."""
    key = hashlib.sha256(("\n".join(u.path for u in utterances) + f"@{rate}").encode()).hexdigest()[:16]
    path = os.path.join(cache_dir(), f"waves-{key}.npz")
    if os.path.exists(path):
        with np.load(path) as data:
            samples, offsets = data["samples"], data["offsets"]
    else:
        waves = [read_mono(u.path, rate) for u in tqdm(utterances, desc="decoding audio", unit="file")]
        offsets = np.cumsum([0] + [len(w) for w in waves])
        samples = np.concatenate(waves)
        partial = f"{path}.{os.getpid()}.tmp.npz"  # each process its own: runs started together may both decode
        np.savez(partial, samples=samples, offsets=offsets)
        os.replace(partial, path)
    return [samples[offsets[i] : offsets[i + 1]] for i in range(len(utterances))]
