"""Log-mel and MFCC features in numpy: one implementation for training, offline use and streaming.

A frame is ``n_fft`` samples taken every ``hop_length`` samples (no centre padding, so the
stream needs no future samples); the Hann window of ``win_length`` samples sits in the middle of
the frame, as in librosa. The mel filters use the Slaney scale and area normalisation (librosa's
defaults), the log is ``10 * log10(max(power, log_floor))`` and the MFCC is the orthonormal DCT-II
of the log-mel bands. With ``pitch`` on, two channels follow the spectral ones: the voice's pitch
and its periodicity (:mod:`rtser.pitch`), from every ``pitch_stride``-th sample of each frame.

Before its spectrum, each frame has the signal's DC offset removed (a cheap microphone's constant
or drifting offset would otherwise fill the lowest mel band and shift every MFCC): the running,
bias-corrected average of the frames' means with a time constant of ``dc_seconds`` (0: off), so a
constant offset is gone from the first frame on while speech, whose frame means average out within
a tenth of a second, is left as it is.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .blas import one_blas_thread
from .pitch import PitchTrack, lag_range


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the numbers a feature frame holds."""

    sample_rate: int = 16000
    n_fft: int = 512
    win_length: int = 400
    hop_length: int = 160
    window: str = "hann"
    n_mels: int = 40
    fmin: float = 20.0
    fmax: float = 8000.0
    log_floor: float = 1e-10
    n_mfcc: int = 40  # 0 gives log-mel bands instead of MFCCs
    pitch: bool = False  # append pitch (semitones) and periodicity channels
    pitch_fmin: float = 75.0
    pitch_fmax: float = 600.0
    pitch_stride: int = 1  # the pitch tracker reads every pitch_stride-th sample of each frame
    dc_seconds: float = 1.0  # time constant of the DC offset estimate removed from each frame; 0: none

    def __post_init__(self) -> None:
        if not (4000 <= self.sample_rate <= 192000 and 16 <= self.n_fft <= 16384 and self.n_mels <= 512):
            raise ValueError("need sample_rate 4000-192000 Hz, n_fft 16-16384 and at most 512 mel bands")
        if self.window != "hann":
            raise ValueError(f"unsupported window {self.window!r} (only 'hann')")
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError("win_length must be in 1..n_fft")
        if self.hop_length <= 0 or self.n_mels <= 0 or not 0 <= self.n_mfcc <= self.n_mels:
            raise ValueError("hop_length and n_mels must be positive, n_mfcc in 0..n_mels")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError("need 0 <= fmin < fmax <= sample_rate / 2")
        if not 0 <= self.dc_seconds <= 60:
            raise ValueError("dc_seconds must be between 0 and 60")
        if self.pitch:
            if not 0 < self.pitch_fmin < self.pitch_fmax:
                raise ValueError("need 0 < pitch_fmin < pitch_fmax")
            if self.pitch_stride not in (1, 2, 4) or self.sample_rate % self.pitch_stride or self.n_fft % self.pitch_stride:
                raise ValueError("pitch_stride must be 1, 2 or 4, and divide sample_rate and n_fft")
            shortest, longest = lag_range(self.sample_rate // self.pitch_stride, self.pitch_fmin, self.pitch_fmax)
            if shortest >= longest or 2 * longest > self.n_fft // self.pitch_stride:
                raise ValueError("need pitch_fmin < pitch_fmax, with two periods of pitch_fmin in n_fft samples")

    @property
    def n_features(self) -> int:
        """Values per frame."""
        return self.n_spectral + 2 * self.pitch

    @property
    def n_spectral(self) -> int:
        """MFCCs or log-mel bands per frame (the first values of a frame)."""
        return self.n_mfcc or self.n_mels

    @property
    def frames_per_second(self) -> float:
        """Feature frames per second of audio."""
        return self.sample_rate / self.hop_length

    def to_dict(self) -> dict:
        """Plain dict for a manifest."""
        return dataclasses.asdict(self)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above."""
    hz = np.asanyarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    mel = hz / f_sp
    above = hz >= min_log_hz
    return np.where(above, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, mel)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_hz_to_mel`."""
    mel = np.asanyarray(mel, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mel >= min_log_mel, min_log_hz * np.exp(logstep * (mel - min_log_mel)), f_sp * mel)


def mel_filterbank(config: FeatureConfig) -> np.ndarray:
    """Triangular, area-normalised mel filters, shape ``[n_fft // 2 + 1, n_mels]``."""
    fft_hz = np.linspace(0, config.sample_rate / 2, config.n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(config.fmin), _hz_to_mel(config.fmax), config.n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.T


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II as a matrix, shape ``[n_in, n_out]``."""
    k = np.arange(n_out)[None, :]
    n = np.arange(n_in)[:, None]
    basis = np.cos(np.pi / n_in * (n + 0.5) * k) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis


def frame_window(config: FeatureConfig) -> np.ndarray:
    """Periodic Hann of ``win_length`` zero-padded to ``n_fft``, centred as librosa does."""
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(config.win_length) / config.win_length)
    left = (config.n_fft - config.win_length) // 2
    window = np.zeros(config.n_fft)
    window[left : left + config.win_length] = hann
    return window


class FeaturePlan:
    """The precomputed window and matrices for one configuration; turns frames into features."""

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.window = frame_window(config)
        self._mel = mel_filterbank(config)
        self._dct = dct_matrix(config.n_mels, config.n_mfcc) if config.n_mfcc else None

    def frames_to_features(self, frames: np.ndarray, track: SignalTrack | None = None) -> np.ndarray:
        """Consecutive ``[n, n_fft]`` sample frames to ``[n, n_features]`` float32 features (float64
        inside, so the result does not depend on how many frames are computed together); ``track``
        carries the signal's state from earlier frames (None: these are its first)."""
        track = SignalTrack(self.config) if track is None else track
        spectrum = np.fft.rfft(track.without_dc(frames) * self.window, axis=1)
        power = spectrum.real**2 + spectrum.imag**2
        spectral = 10.0 * np.log10(np.maximum(power @ self._mel, self.config.log_floor))
        if self._dct is not None:
            spectral = spectral @ self._dct
        if self.config.pitch:
            spectral = np.concatenate([spectral, track.pitch.channels(frames)], axis=1)
        return spectral.astype(np.float32)


class SignalTrack:
    """What one signal or stream carries from frame to frame: its DC offset estimate and, when the
    features have pitch, its pitch track."""

    def __init__(self, config: FeatureConfig):
        self.pitch = PitchTrack(config.sample_rate, config.pitch_fmin, config.pitch_fmax, config.pitch_stride) if config.pitch else None
        self._keep = float(np.exp(-config.hop_length / (config.dc_seconds * config.sample_rate))) if config.dc_seconds else 0.0
        self._weighted_sum = self._weight = 0.0

    def without_dc(self, frames: np.ndarray) -> np.ndarray:
        """The frames, in order, less the DC offset estimated up to each of them (a frame that is
        not finite is left out of the estimate, so that it spoils only its own features)."""
        if not self._keep:
            return frames
        offsets = np.empty(len(frames))
        total, weight, keep = self._weighted_sum, self._weight, self._keep
        for i, mean in enumerate(frames.mean(axis=1).tolist()):
            if math.isfinite(mean):
                total, weight = keep * total + mean, keep * weight + 1.0
            offsets[i] = total / weight if weight else 0.0
        self._weighted_sum, self._weight = total, weight
        return frames - offsets[:, None]


def count_frames(n_samples: int, config: FeatureConfig) -> int:
    """How many complete frames ``n_samples`` samples hold."""
    if n_samples < config.n_fft:
        return 0
    return 1 + (n_samples - config.n_fft) // config.hop_length


def _as_frames(samples: np.ndarray, n_frames: int, config: FeatureConfig) -> np.ndarray:
    view = np.lib.stride_tricks.sliding_window_view(samples, config.n_fft)
    return view[: (n_frames - 1) * config.hop_length + 1 : config.hop_length]


def _as_float_vector(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples of shape [n], got {samples.shape}")
    return samples.astype(np.float32, copy=False)


def extract(samples: np.ndarray, config: FeatureConfig, plan: FeaturePlan | None = None) -> np.ndarray:
    """Offline features of a whole signal: ``[frames, n_features]`` (float32 samples in [-1, 1])."""
    samples = _as_float_vector(samples)
    plan = plan or FeaturePlan(config)
    n_frames = count_frames(len(samples), config)
    if n_frames == 0:
        return np.zeros((0, config.n_features), dtype=np.float32)
    with one_blas_thread():
        return plan.frames_to_features(_as_frames(samples, n_frames, config))


class StreamingExtractor:
    """Computes each frame once as samples arrive; output equals :func:`extract` on the same samples.
    Its matrix products are small: a program with threaded BLAS holds it to one thread around
    :meth:`push` (:func:`rtser.blas.one_blas_thread`), as the recognizer does."""

    def __init__(self, config: FeatureConfig):
        self.config = config
        self.plan = FeaturePlan(config)
        self._track = SignalTrack(config)
        self._pending = np.zeros(0, dtype=np.float32)

    def push(self, chunk: np.ndarray) -> np.ndarray:
        """Add samples; return the features of the frames they complete, ``[new_frames, n_features]``."""
        samples = np.concatenate([self._pending, _as_float_vector(chunk)])
        n_frames = count_frames(len(samples), self.config)
        if n_frames == 0:
            self._pending = samples
            return np.zeros((0, self.config.n_features), dtype=np.float32)
        features = self.plan.frames_to_features(_as_frames(samples, n_frames, self.config), self._track)
        self._pending = samples[n_frames * self.config.hop_length :].copy()
        return features
