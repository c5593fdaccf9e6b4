"""The voice's pitch for the features' optional pitch channels: YIN per frame, held over unvoiced frames.

Each feature frame (``n_fft`` samples) gets the YIN estimate of its fundamental frequency (de
Cheveigné and Kawahara 2002): the difference function of the frame's first ``n_fft - max_lag``
samples against the frame shifted by each lag, cumulative-mean normalised, and the first dip below
``THRESHOLD`` refined to a sub-sample lag by a parabola. Two channels come out per frame: the pitch
in semitones relative to ``REFERENCE_HZ``, held at the last voiced frame's value over unvoiced
frames (so statistics over speech frames are statistics of the voice's pitch), and the periodicity,
one minus the normalised difference at the best lag (near 1 for a clear voice, near 0 for noise).
With a ``stride`` of 2, YIN reads every second sample: its sums hold half the terms and its lags
are two samples apart (the parabola refines them), for about half the cost.
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
    n, n_fft = frames.shape
    shortest, longest = lag_range(sample_rate, fmin, fmax)
    width = n_fft - longest
    # correlation of the first `width` samples with the frame at each lag; no lag wraps around the
    # n_fft-point circular correlation because width + longest = n_fft (both spectra in one call)
    signals = np.zeros((2 * n, n_fft))
    signals[:n, :width] = frames[:, :width]
    signals[n:] = frames
    spectra = np.fft.rfft(signals, axis=1)
    correlation = np.fft.irfft(spectra[:n].conj() * spectra[n:], n_fft, axis=1)[:, : longest + 1]
    # the difference at each lag: the head's energy, plus that of frame[lag : lag + width] (the
    # head's, changed by what enters and leaves), less twice their correlation
    squares = signals[n:] ** 2
    head = squares[:, :width].sum(axis=1, keepdims=True)
    difference = np.zeros((n, longest + 1))
    np.cumsum(squares[:, width:] - squares[:, :longest], axis=1, out=difference[:, 1:])
    difference += 2 * head
    difference -= 2 * correlation
    np.maximum(difference, 0.0, out=difference)
    # the cumulative-mean normalised difference over the lags searched
    running = np.cumsum(difference[:, 1:], axis=1)[:, shortest - 1 :]
    search = difference[:, shortest:] * np.arange(shortest, longest + 1)
    positive = running > 0
    np.divide(search, running, out=search, where=positive)
    search[~positive] = 1.0  # (and where a frame is not finite)
    inner = np.ones_like(search, dtype=bool)
    inner[:, 1:-1] = (search[:, 1:-1] <= search[:, :-2]) & (search[:, 1:-1] <= search[:, 2:])
    dips = inner & (search < THRESHOLD)
    voiced = dips.any(axis=1)
    best = np.where(voiced, dips.argmax(axis=1), search.argmin(axis=1))
    # the parabola through the best lag and its neighbours (the lag itself at either end)
    at = np.clip(best, 1, search.shape[1] - 2)
    left, mid, right = np.take_along_axis(search, at[:, None] + np.array([-1, 0, 1]), axis=1).T
    curvature = np.maximum(left - 2 * mid + right, 1e-12)
    offset = np.clip(0.5 * (left - right) / curvature, -0.5, 0.5) * (best == at) * (curvature > 1e-12)
    lag = shortest + best + offset
    periodicity = 1.0 - np.clip(np.take_along_axis(search, best[:, None], axis=1)[:, 0], 0.0, 1.0)
    return sample_rate / lag, voiced, periodicity


class PitchTrack:
    """Pitch channels of consecutive frames; keeps the last voiced pitch from one call to the next."""

    def __init__(self, sample_rate: int, fmin: float, fmax: float, stride: int = 1):
        self._sample_rate, self._fmin, self._fmax, self._stride = sample_rate // stride, fmin, fmax, stride
        self.held = 0.0

    def channels(self, frames: np.ndarray) -> np.ndarray:
        """``[n, n_fft]`` frames, in order, to ``[n, 2]``: held pitch (semitones) and periodicity."""
        f0, voiced, periodicity = yin(frames[:, :: self._stride], self._sample_rate, self._fmin, self._fmax)
        semitones = 12.0 * np.log2(f0 / REFERENCE_HZ)
        last_voiced = np.maximum.accumulate(np.where(voiced, np.arange(len(frames)), -1))
        held = np.where(last_voiced >= 0, semitones[np.maximum(last_voiced, 0)], self.held)
        if len(held):
            self.held = float(held[-1])
        return np.stack([held, periodicity], axis=1)
