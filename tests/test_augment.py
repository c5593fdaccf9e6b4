"""Augmentation does what its config says, on real noise files (the MATLAB example's recipe included)."""

import os

import numpy as np
import pytest

from training.augment import AugmentConfig, Augmenter, synthetic_room
from training.config import load_config

from .conftest import DATA, ROOT

RATE = 16000
OFF = dict(gain_prob=0.0, speed_prob=0.0, reverb_prob=0.0, noise_prob=0.0)


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)


def peak_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * RATE / len(samples))


def augmenter(**settings) -> Augmenter:
    return Augmenter(AugmentConfig(**{**OFF, **settings}), os.path.join(DATA, "noise"), RATE, seed=1)


def test_pitch_shift_moves_the_pitch_by_the_semitones_and_keeps_the_length():
    shifted = augmenter(pitch_prob=1.0, pitch_semitones=(2.0, 2.0)).wave(tone(440))
    assert len(shifted) == RATE
    assert peak_hz(shifted) == pytest.approx(440 * 2 ** (2 / 12), rel=0.01)


def test_time_shift_rolls_the_audio_by_at_most_the_range():
    samples = tone(440)
    samples[:100] = 0.9  # a marker
    shifted = augmenter(shift_prob=1.0, shift_seconds=0.3).wave(samples)
    moved = int(np.argmax(shifted > 0.85))
    assert 0 < min(moved, RATE - moved) <= 0.3 * RATE + 100


@pytest.mark.parametrize("snr", [0.0, 40.0])
def test_noise_is_added_at_the_drawn_snr(snr):
    clean = tone(440, 0.5)
    noise = augmenter(noise_prob=1.0, snr_db=(snr, snr)).wave(clean) - clean
    assert 10 * np.log10(np.mean(clean**2) / np.mean(noise**2)) == pytest.approx(snr, abs=0.5)


def test_noise_at_minus_20_db_buries_the_speech_and_stays_in_range():
    clean = tone(440, 0.5)
    noisy = augmenter(noise_prob=1.0, snr_db=(-20.0, -20.0)).wave(clean)
    assert np.max(np.abs(noisy)) <= 1.0  # clipped to full scale
    assert np.mean((noisy - clean) ** 2) > 10 * np.mean(clean**2)


def test_matlab_recipe_overlay_switches_on_exactly_its_augmentations():
    config = load_config(os.path.join(ROOT, "training", "configs", "emodb_loso.yaml"),
                         [os.path.join(ROOT, "training", "configs", "augment", "matlab.yaml")])  # fmt: skip
    a = config.augment
    assert (a.pitch_prob, a.shift_prob, a.shift_seconds, a.noise_prob, a.snr_db) == (0.5, 1.0, 0.3, 1.0, (-20.0, 40.0))
    assert a.gain_prob == a.speed_prob == a.reverb_prob == 0 and a.time_masks == a.freq_masks == 0


def test_utterances_recorded_through_one_channel_share_its_room_and_gain():
    rooms = augmenter(reverb_prob=1.0, gain_prob=1.0, gain_db=(-12.0, 6.0))
    channel = rooms.channel()
    assert channel.rir is not None and channel.noise is None and 10 ** (-12 / 20) <= channel.gain <= 10 ** (6 / 20)
    speech = tone(300, 2.0) * np.linspace(0, 1, 2 * RATE, dtype=np.float32)
    assert np.array_equal(rooms.wave(speech, channel), rooms.wave(speech, channel))
    assert not np.allclose(rooms.wave(speech), rooms.wave(speech))  # each draws its own channel
    noisy = augmenter(noise_prob=1.0).channel()
    assert noisy.noise is not None and 5.0 <= noisy.snr_db <= 30.0 and noisy.rir is None and noisy.gain == 1.0


def test_speed_drawn_per_voice_moves_every_utterance_of_the_voice_alike():
    voices = augmenter(speed_prob=1.0, speed=(0.9, 1.1), speed_per_voice=True)
    channel = voices.channel()
    assert 0.9 <= channel.speed <= 1.1 and channel.speed != 1.0
    low, high = tone(200, 1.0), tone(400, 1.0)
    ratios = {round(peak_hz(voices.wave(t, channel)) / hz, 2) for t, hz in ((low, 200), (high, 400)) for _ in range(3)}
    assert ratios == {round(channel.speed, 2)}
    per_utterance = augmenter(speed_prob=1.0, speed=(0.9, 1.1))
    assert per_utterance.channel().speed == 1.0
    assert len({len(per_utterance.wave(low, per_utterance.channel())) for _ in range(5)}) > 1


def test_pitch_drawn_per_voice_shifts_every_utterance_of_the_voice_alike():
    voices = augmenter(pitch_prob=1.0, pitch_semitones=(2.0, 6.0), pitch_per_voice=True)
    channel = voices.channel()
    assert 2.0 <= channel.semitones <= 6.0
    ratios = {round(peak_hz(voices.wave(tone(hz), channel)) / hz, 2) for hz in (200, 400) for _ in range(3)}
    assert ratios == {round(2 ** (channel.semitones / 12), 2)}
    per_utterance = augmenter(pitch_prob=1.0, pitch_semitones=(2.0, 6.0))
    assert per_utterance.channel().semitones == 0.0
    assert len({round(peak_hz(per_utterance.wave(tone(200), per_utterance.channel())), 1) for _ in range(5)}) > 1


def test_a_microphone_colouring_cuts_outside_its_band_and_colours_every_utterance_of_the_voice_alike():
    microphones = augmenter(colour_prob=1.0, colour_band_hz=(300.0, 300.0, 2000.0, 2000.0))
    channel = microphones.channel()
    colour = channel.colour
    assert (colour.low_hz, colour.high_hz) == (300.0, 2000.0) and abs(colour.tilt_db_per_octave) <= 3 and 1000 <= colour.peak_hz <= 5000
    noise = np.random.default_rng(0).normal(0, 0.05, 2 * RATE).astype(np.float32)
    heard = microphones.wave(noise, channel)
    assert np.array_equal(heard, microphones.wave(noise, channel))

    def band_power(samples, low, high):
        spectrum = np.abs(np.fft.rfft(samples)) ** 2
        hz = np.fft.rfftfreq(len(samples), 1 / RATE)
        return spectrum[(hz >= low) & (hz < high)].mean()

    for low, high in ((20, 75), (6000, 8000)):  # 1.5 octaves and more outside the band: cut by more than 20 dB
        assert band_power(heard, low, high) < band_power(noise, low, high) * 1e-2
    inside = band_power(heard, 800, 1200) / band_power(noise, 800, 1200)
    assert 10 ** (-12 / 10) < inside < 10 ** (12 / 10)  # tilt and resonance move the middle by a few dB only
    assert augmenter(colour_prob=0.0).channel().colour is None


def test_synthetic_rooms_decay_in_their_reverberation_time_at_their_direct_to_reverberant_ratio(tmp_path):
    rng = np.random.default_rng(0)
    for rt60, drr_db in ((0.3, 10.0), (1.0, 0.0)):
        room = synthetic_room(rng, RATE, rt60, drr_db)
        assert abs(float(np.sum(room**2)) - 1) < 1e-4
        assert abs(10 * np.log10(room[0] ** 2 / np.sum(room[1:] ** 2)) - drr_db) < 0.01
        # Schroeder decay of the tail alone: -5 to -25 dB spans a third of the reverberation time
        tail = room[int(0.002 * RATE) :] ** 2
        decay = 10 * np.log10(np.cumsum(tail[::-1])[::-1] / np.sum(tail))
        spanned = (np.argmax(decay < -25) - np.argmax(decay < -5)) / RATE
        assert abs(3 * spanned - rt60) < 0.15 * rt60
    # a recipe with synthetic rooms needs no impulse response files; each voice gets a room of its own
    rooms = Augmenter(AugmentConfig(**{**OFF, "reverb_prob": 1.0, "rooms": "synthetic"}), str(tmp_path), RATE, seed=1)
    first, second = rooms.channel().rir, rooms.channel().rir
    assert first is not None and second is not None and (len(first) != len(second) or not np.allclose(first, second))
    with pytest.raises(ValueError, match="rooms must be recorded or synthetic"):
        AugmentConfig(rooms="cathedral")


def test_a_share_of_utterances_gets_a_channel_of_its_own_instead_of_the_voices():
    voice = tone(220.0)
    shared = augmenter(gain_prob=1.0, channel_per_utterance=0.5)
    channel = shared.channel()
    levels = {round(float(np.abs(shared.wave(voice, channel)).max()), 4) for _ in range(40)}
    assert round(0.3 * channel.gain, 4) in levels and len(levels) > 10  # the voice's level, and others drawn anew
    alike = augmenter(gain_prob=1.0)
    channel = alike.channel()
    assert len({round(float(np.abs(alike.wave(voice, channel)).max()), 4) for _ in range(10)}) == 1
    with pytest.raises(ValueError, match="channel_per_utterance must be between 0 and 1"):
        AugmentConfig(channel_per_utterance=1.5)
