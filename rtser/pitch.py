"""The voice's pitch for the features' optional pitch channels: YIN per frame, held over unvoiced frames.

Each feature frame (``n_fft`` samples) gets the YIN estimate of its fundamental frequency (de
Cheveigné and Kawahara 2002): the difference function of the frame's first ``n_fft - max_lag``
samples against the frame shifted by each lag, cumulative-mean normalised, and the first dip below
``THRESHOLD`` refined to a sub-sample lag by a parabola. Two channels come out per frame: the pitch
in semitones relative to ``REFERENCE_HZ``, held at the last voiced frame's value over unvoiced
frames (so statistics over speech frames are statistics of the voice's pitch), and the periodicity,
one minus the normalised difference at the best lag (near 1 for a clear voice, near 0 for noise).
"""

from __future__ import annotations

import numpy as np

THRESHOLD = 0.2
REFERENCE_HZ = 150.0


def lag_range(sample_rate: int, fmin: float, fmax: float) -> tuple[int, int]:
    """The shortest and longest lag searched, in samples."""
    return max(2, int(sample_rate // fmax)), int(np.ceil(sample_rate / fmin))


def yin(frames: np.ndarray, sample_rate: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fundamental frequency (Hz), voicing and periodicity of each of ``[n, n_fft]`` frames."""
    frames = frames.astype(np.float64)
    n_fft = frames.shape[1]
    shortest, longest = lag_range(sample_rate, fmin, fmax)
    width = n_fft - longest
    # correlation of the first `width` samples with the frame at each lag; no lag wraps around the
    # n_fft-point circular correlation because width + longest = n_fft
    head = np.fft.rfft(frames[:, :width], n_fft, axis=1)
    correlation = np.fft.irfft(np.conj(head) * np.fft.rfft(frames, axis=1), n_fft, axis=1)[:, : longest + 1]
    energy = np.concatenate([np.zeros((len(frames), 1)), np.cumsum(frames**2, axis=1)], axis=1)
    shifted = energy[:, width : width + longest + 1] - energy[:, : longest + 1]
    difference = np.maximum(shifted[:, :1] + shifted - 2 * correlation, 0.0)
    lags = np.arange(longest + 1)
    running = np.cumsum(difference[:, 1:], axis=1)
    normalised = np.ones_like(difference)
    normalised[:, 1:] = np.where(running > 0, difference[:, 1:] * lags[1:] / np.maximum(running, 1e-300), 1.0)
    search = normalised[:, shortest : longest + 1]
    inner = np.ones_like(search, dtype=bool)
    inner[:, 1:-1] = (search[:, 1:-1] <= search[:, :-2]) & (search[:, 1:-1] <= search[:, 2:])
    dips = inner & (search < THRESHOLD)
    voiced = dips.any(axis=1)
    best = np.where(voiced, dips.argmax(axis=1), search.argmin(axis=1))
    rows = np.arange(len(frames))
    at = np.clip(best, 1, search.shape[1] - 2)
    left, mid, right = search[rows, at - 1], search[rows, at], search[rows, at + 1]
    curvature = left - 2 * mid + right
    offset = np.where(curvature > 1e-12, np.clip(0.5 * (left - right) / np.maximum(curvature, 1e-12), -0.5, 0.5), 0.0)
    lag = shortest + np.where(best == at, at + offset, best)
    periodicity = 1.0 - np.clip(search[rows, best], 0.0, 1.0)
    return sample_rate / lag, voiced, periodicity


class PitchTrack:
    """Pitch channels of consecutive frames; keeps the last voiced pitch from one call to the next."""

    def __init__(self, sample_rate: int, fmin: float, fmax: float):
        self._sample_rate, self._fmin, self._fmax = sample_rate, fmin, fmax
        self.held = 0.0

    def channels(self, frames: np.ndarray) -> np.ndarray:
        """``[n, n_fft]`` frames, in order, to ``[n, 2]``: held pitch (semitones) and periodicity."""
        f0, voiced, periodicity = yin(frames, self._sample_rate, self._fmin, self._fmax)
        semitones = 12.0 * np.log2(f0 / REFERENCE_HZ)
        last_voiced = np.maximum.accumulate(np.where(voiced, np.arange(len(frames)), -1))
        held = np.where(last_voiced >= 0, semitones[np.maximum(last_voiced, 0)], self.held)
        if len(held):
            self.held = float(held[-1])
        return np.stack([held, periodicity], axis=1)
