"""Data augmentation, each kind switchable in the training config.

Waveform: gain, speed perturbation, pitch shift, circular time shift, reverberation with real room
impulse responses, additive real noise at a random SNR, a microphone's colouring (band limits, tilt,
a resonance). Features: random crops of the utterance and SpecAugment masks.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import soxr

from .audio_cache import read_mono


@dataclass
class AugmentConfig:
    """Probabilities and ranges of each augmentation (probability 0 switches it off)."""

    gain_prob: float = 0.5
    gain_db: tuple[float, float] = (-12.0, 6.0)
    speed_prob: float = 0.3
    speed: tuple[float, float] = (0.9, 1.1)
    speed_per_voice: bool = False
    pitch_prob: float = 0.0
    pitch_semitones: tuple[float, float] = (-2.0, 2.0)
    pitch_per_voice: bool = False  # the pitch shift drawn with the channel (one per voice) instead of per utterance
    shift_prob: float = 0.0
    shift_seconds: float = 0.3
    reverb_prob: float = 0.3
    rooms: str = "recorded"  # "recorded": the impulse responses of noise/rir; "synthetic": drawn by synthetic_room
    room_rt60_seconds: tuple[float, float] = (0.2, 1.2)  # synthetic rooms: reverberation time drawn in this range
    room_drr_db: tuple[float, float] = (-3.0, 12.0)  # synthetic rooms: direct-to-reverberant energy ratio drawn in this range
    colour_prob: float = 0.0  # a microphone's colouring: band limits, a spectral tilt and a resonance (Channel.colour)
    colour_band_hz: tuple[float, float, float, float] = (50.0, 400.0, 3000.0, 8000.0)  # low cut drawn in the first two, high cut in the last two
    colour_tilt_db_per_octave: float = 3.0  # drawn within plus or minus this, around 1 kHz
    colour_peak_db: float = 6.0  # a resonance between 1 and 5 kHz, drawn within plus or minus this
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    crop_seconds: tuple[float, float] = (1.0, 3.0)
    time_masks: int = 2
    time_mask_frames: int = 20
    freq_masks: int = 2
    freq_mask_bins: int = 4
    noise_folders: list[str] = field(default_factory=lambda: ["background", "nonspeech"])
    channel_per_utterance: float = 0.0  # share of utterances heard through a channel of their own instead of their speaker's

    def __post_init__(self) -> None:
        if self.rooms not in ("recorded", "synthetic"):
            raise ValueError(f"rooms must be recorded or synthetic, got {self.rooms!r}")
        if not 0 <= self.channel_per_utterance <= 1:
            raise ValueError(f"channel_per_utterance must be between 0 and 1, got {self.channel_per_utterance}")


def reverberated(samples: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``samples`` heard through a room impulse response (FFT convolution, cut to their length)."""
    size = 1 << (len(samples) + len(rir) - 2).bit_length()
    return np.fft.irfft(np.fft.rfft(samples, size) * np.fft.rfft(rir, size), size)[: len(samples)]


def synthetic_room(rng: np.random.Generator, rate: int, rt60_seconds: float, drr_db: float) -> np.ndarray:
    """A room's impulse response, unit energy: the direct sound, then after 2 ms a diffuse tail of
    noise decaying by 60 dB in ``rt60_seconds`` (its high frequencies faster, as walls and air
    absorb them), ``drr_db`` below the direct sound in energy."""
    n = int(rate * rt60_seconds * 1.2)
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60_seconds)
    spectrum = np.fft.rfft(tail)
    hz = np.fft.rfftfreq(n, 1 / rate)
    spectrum *= 1 / np.sqrt(1 + (hz / 4000.0) ** 2)  # a gentle high cut: a tail duller than the direct sound
    tail = np.fft.irfft(spectrum, n)
    tail[: int(0.002 * rate)] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10) / (np.sum(tail**2) + 1e-12))
    tail[0] = 1.0
    return (tail / np.sqrt(np.sum(tail**2))).astype(np.float32)


@dataclass(frozen=True)
class Colour:
    """A microphone's frequency response: fourth-order band edges, a tilt around 1 kHz and one
    resonance (a peak or a dip an octave wide)."""

    low_hz: float
    high_hz: float
    tilt_db_per_octave: float
    peak_hz: float
    peak_db: float

    def gains(self, hz: np.ndarray) -> np.ndarray:
        """The response's amplitude at these frequencies."""
        hz = np.maximum(hz, 1.0)
        band = 1 / np.sqrt((1 + (self.low_hz / hz) ** 8) * (1 + (hz / self.high_hz) ** 8))
        octaves = np.log2(hz / 1000)
        shape_db = self.tilt_db_per_octave * octaves + self.peak_db * np.exp(-0.5 * (np.log2(hz / self.peak_hz) / 0.5) ** 2)
        return band * 10 ** (shape_db / 20)


@dataclass(frozen=True)
class Channel:
    """Recording conditions: a room impulse response and a background noise recording at an SNR
    (None for none), a gain factor, a speed factor for the voice (1 for none), the microphone's
    colouring (None for none) and a pitch shift of the voice in semitones (0 for none)."""

    rir: np.ndarray | None
    noise: np.ndarray | None
    snr_db: float
    gain: float
    speed: float = 1.0
    colour: Colour | None = None
    semitones: float = 0.0


class Augmenter:
    """Applies an :class:`AugmentConfig` with its own random generator."""

    def __init__(self, config: AugmentConfig, noise_root: str, rate: int, seed: int = 0):
        self.config = config
        self.rate = rate
        self.rng = np.random.default_rng(seed)
        self.noises = [
            read_mono(p, rate) for sub in config.noise_folders for p in sorted(glob.glob(os.path.join(noise_root, sub, "*.flac")))
        ]
        rirs = [read_mono(p, rate) for p in sorted(glob.glob(os.path.join(noise_root, "rir", "*.flac")))]
        self.rirs = [r / (np.sqrt(np.sum(r**2)) + 1e-9) for r in rirs]
        if config.noise_prob > 0 and not self.noises:
            raise FileNotFoundError(f"noise augmentation is on but no noise files were found under {noise_root}")
        if config.reverb_prob > 0 and config.rooms == "recorded" and not self.rirs:
            raise FileNotFoundError(f"reverb augmentation is on but no impulse responses were found under {noise_root}/rir")

    def _happens(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def channel(self) -> Channel:
        """Draw recording conditions (room, background noise and its level, gain, and with
        ``speed_per_voice`` the speed, with ``pitch_per_voice`` the pitch shift), which the trainer shares among the utterances of one speaker,
        as the runtime hears a stream."""
        c = self.config
        rir = self._room() if self._happens(c.reverb_prob) else None
        noise = self.noises[self.rng.integers(len(self.noises))] if self._happens(c.noise_prob) else None
        snr = float(self.rng.uniform(*c.snr_db))
        gain = float(10 ** (self.rng.uniform(*c.gain_db) / 20)) if self._happens(c.gain_prob) else 1.0
        speed = float(self.rng.uniform(*c.speed)) if c.speed_per_voice and self._happens(c.speed_prob) else 1.0
        colour = None
        if self._happens(c.colour_prob):
            low, high = self.rng.uniform(*c.colour_band_hz[:2]), self.rng.uniform(*c.colour_band_hz[2:])
            tilt, peak_db = (float(self.rng.uniform(-v, v)) for v in (c.colour_tilt_db_per_octave, c.colour_peak_db))
            colour = Colour(float(low), float(high), tilt, float(2 ** self.rng.uniform(0, np.log2(5)) * 1000), peak_db)
        semitones = float(self.rng.uniform(*c.pitch_semitones)) if c.pitch_per_voice and self._happens(c.pitch_prob) else 0.0
        return Channel(rir, noise, snr, gain, speed, colour, semitones)

    def heard(self, waves: Sequence[np.ndarray], speakers: Sequence[str] | None = None) -> Iterator[np.ndarray]:
        """Each wave augmented as :meth:`wave` does, through its speaker's channel (one drawn for
        each speaker first, in sorted order, as a stream has one microphone and room), or through
        one of its own when ``speakers`` is None."""
        channels = {speaker: self.channel() for speaker in sorted(set(speakers))} if speakers is not None else {}
        return (self.wave(wave, channels.get(speaker)) for wave, speaker in zip(waves, speakers or [None] * len(waves)))

    def _room(self) -> np.ndarray:
        c = self.config
        if c.rooms == "synthetic":
            return synthetic_room(self.rng, self.rate, float(self.rng.uniform(*c.room_rt60_seconds)), float(self.rng.uniform(*c.room_drr_db)))
        return self.rirs[self.rng.integers(len(self.rirs))]

    def wave(self, samples: np.ndarray, channel: Channel | None = None) -> np.ndarray:
        """Augment one utterance's waveform: speed and pitch (unless drawn per voice) and time shift
        drawn for it, recorded through ``channel`` (drawn for it when None, or in a share
        ``channel_per_utterance`` of the utterances whatever ``channel`` is)."""
        c = self.config
        if channel is None or (c.channel_per_utterance and self.rng.random() < c.channel_per_utterance):
            channel = self.channel()
        out = samples
        factor = channel.speed
        if not c.speed_per_voice and self._happens(c.speed_prob):
            factor = self.rng.uniform(*c.speed)
        if factor != 1.0:
            out = soxr.resample(out, self.rate * factor, self.rate, quality="HQ").astype(np.float32)
        semitones = channel.semitones
        if not c.pitch_per_voice and self._happens(c.pitch_prob):
            semitones = self.rng.uniform(*c.pitch_semitones)
        if semitones:
            out = self._pitch_shift(out, semitones)
        if self._happens(c.shift_prob):
            out = np.roll(out, int(self.rng.uniform(-c.shift_seconds, c.shift_seconds) * self.rate))
        if channel.rir is not None:
            wet = reverberated(out, channel.rir)
            out = (wet * np.sqrt(np.mean(out**2) / (np.mean(wet**2) + 1e-12))).astype(np.float32)
        if channel.noise is not None:
            out = self._add_noise(out, channel.noise, channel.snr_db)
        if channel.colour is not None:
            out = np.fft.irfft(np.fft.rfft(out) * channel.colour.gains(np.fft.rfftfreq(len(out), 1 / self.rate)), len(out)).astype(np.float32)
        return np.clip(out * np.float32(channel.gain), -1, 1).astype(np.float32)

    def _pitch_shift(self, samples: np.ndarray, semitones: float) -> np.ndarray:
        import librosa

        return librosa.effects.pitch_shift(samples, sr=self.rate, n_steps=semitones, res_type="soxr_hq").astype(np.float32)

    def _add_noise(self, samples: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
        if len(noise) < len(samples):
            noise = np.tile(noise, len(samples) // len(noise) + 1)
        start = self.rng.integers(len(noise) - len(samples) + 1)
        noise = noise[start : start + len(samples)]
        speech_power = np.mean(samples**2) + 1e-12
        noise_power = np.mean(noise**2) + 1e-12
        return samples + noise * np.float32(np.sqrt(speech_power / noise_power / 10 ** (snr_db / 10)))

    def crop(self, n_frames: int, frames_per_second: float) -> slice:
        """A random crop of ``crop_seconds`` (as frames) within ``n_frames``."""
        low, high = (int(s * frames_per_second) for s in self.config.crop_seconds)
        length = min(n_frames, int(self.rng.integers(low, high + 1)))
        start = int(self.rng.integers(0, n_frames - length + 1))
        return slice(start, start + length)

    def spec(self, window: np.ndarray) -> np.ndarray:
        """SpecAugment: zero random time and feature bands of a normalised window."""
        c = self.config
        out = window.copy()
        for _ in range(c.time_masks):
            width = int(self.rng.integers(0, c.time_mask_frames + 1))
            start = int(self.rng.integers(0, max(1, len(out) - width)))
            out[start : start + width] = 0
        for _ in range(c.freq_masks):
            width = int(self.rng.integers(0, c.freq_mask_bins + 1))
            start = int(self.rng.integers(1, max(2, out.shape[1] - width)))  # keep c0
            out[:, start : start + width] = 0
        return out


_UNCHANGED = AugmentConfig(gain_prob=0.0, speed_prob=0.0, reverb_prob=0.0, noise_prob=0.0, snr_db=(10.0, 30.0), noise_folders=["background"])
# What each utterance may be heard through anew, as phone calls and TV audio come ("all": another
# microphone's colouring and level, and half the time another room and a background under it; the
# others one of those alone, to tell which one costs what), or spoken by a higher voice than the
# corpus holds ("higher_voice": pitch and formants raised 4 to 7 semitones, tempo kept, as a child's
# voice is higher than an adult's in both).
CHANNELS = {
    "recorded": None,
    "all": dataclasses.replace(_UNCHANGED, gain_prob=1.0, colour_prob=1.0, reverb_prob=0.5, noise_prob=0.5),
    "level": dataclasses.replace(_UNCHANGED, gain_prob=1.0),
    "microphone": dataclasses.replace(_UNCHANGED, colour_prob=1.0),
    "room": dataclasses.replace(_UNCHANGED, reverb_prob=1.0),
    "noise": dataclasses.replace(_UNCHANGED, noise_prob=1.0),
    "higher_voice": dataclasses.replace(_UNCHANGED, pitch_prob=1.0, pitch_semitones=(4.0, 7.0), pitch_per_voice=True),
}
