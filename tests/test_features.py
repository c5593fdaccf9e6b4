"""Features: streaming equals offline on real speech, the offline numbers match librosa, and the
pitch channels follow librosa's pYIN."""

import dataclasses
import os
import subprocess
import sys

import librosa
import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from rtser.features import FeatureConfig, StreamingExtractor, count_frames, extract
from rtser.pitch import REFERENCE_HZ, THRESHOLD
from rtser.schema import ConfigError, build

from .conftest import ROOT

CONFIGS = [
    FeatureConfig(),
    FeatureConfig(n_mfcc=0, n_mels=64, n_fft=1024, win_length=1024, hop_length=256, fmin=0.0),
    FeatureConfig(pitch=True),
    FeatureConfig(pitch=True, pitch_stride=2),
]


def _stream(samples, config, sizes):
    extractor = StreamingExtractor(config)
    out, i = [], 0
    for size in sizes:
        out.append(extractor.push(samples[i : i + size]))
        i += size
    out.append(extractor.push(samples[i:]))
    return np.concatenate(out)


@pytest.mark.parametrize("config", CONFIGS)
def test_streaming_equals_offline_on_real_speech_in_random_chunks(emodb_files, config):
    rng = np.random.default_rng(1)
    for path in emodb_files[::60]:
        samples, _ = soundfile.read(path, dtype="float32")
        sizes = []
        while sum(sizes) < len(samples):
            sizes.append(int(rng.integers(1, 8001)))
        streamed = _stream(samples, config, sizes)
        offline = extract(samples, config)
        assert streamed.shape == offline.shape == (count_frames(len(samples), config), config.n_features)
        assert np.max(np.abs(streamed - offline)) <= 1e-5


@given(st.lists(st.integers(min_value=0, max_value=3000), min_size=1, max_size=40))
@settings(max_examples=40, deadline=None)
def test_any_chunking_gives_the_offline_result(speech_chunks):
    samples = np.sin(np.arange(20000) * 0.05).astype(np.float32) * np.linspace(0, 1, 20000, dtype=np.float32)
    samples[8000:12000] = 0  # a pause: the pitch held over it must carry across chunks
    config = FeatureConfig(pitch=True)
    assert np.max(np.abs(_stream(samples, config, speech_chunks) - extract(samples, config))) <= 1e-5


@pytest.mark.parametrize("config", CONFIGS)
def test_offline_matches_librosa(emodb_files, config):
    for path in emodb_files[::90]:
        samples, rate = soundfile.read(path, dtype="float32")
        mel = librosa.feature.melspectrogram(
            y=samples, sr=rate, n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length,
            window="hann", center=False, power=2.0, n_mels=config.n_mels, fmin=config.fmin, fmax=config.fmax,
        )  # fmt: skip
        log_mel = librosa.power_to_db(mel, ref=1.0, amin=config.log_floor, top_db=None)
        ours = extract(samples, dataclasses.replace(config, dc_seconds=0.0))[:, : config.n_spectral]  # librosa keeps DC
        if config.n_mfcc:
            reference = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho").T
        else:
            reference = log_mel.T
        # librosa works in float32: a few float32 steps on values of magnitude up to ~500
        assert np.max(np.abs(ours - reference)) < 1e-3


@pytest.mark.parametrize("offset", [0.3, -0.05])
def test_a_dc_offset_changes_no_feature(emodb_files, offset):
    """A microphone's constant offset is removed before the spectrum, from the first frame on."""
    config = FeatureConfig(pitch=True)
    samples = soundfile.read(emodb_files[3], dtype="float64")[0] * 0.5
    plain, shifted = extract(samples.astype(np.float32), config), extract((samples + offset).astype(np.float32), config)
    assert np.max(np.abs(shifted - plain)) < 1e-3
    without = extract((samples + offset).astype(np.float32), dataclasses.replace(config, dc_seconds=0.0))
    assert np.median(np.abs(without - plain)) > 1, "the offset should matter when it is not removed"


def test_a_non_finite_sample_spoils_only_the_frames_that_hold_it(emodb_files):
    config = FeatureConfig(pitch=True)
    samples = soundfile.read(emodb_files[5], dtype="float32")[0]
    spoilt = samples.copy()
    spoilt[8000] = np.nan
    plain, features = extract(samples, config), extract(spoilt, config)
    holding = np.arange(len(plain)) * config.hop_length
    holding = (holding <= 8000) & (8000 < holding + config.n_fft)
    assert not np.isfinite(features[holding]).all() and np.isfinite(features[~holding]).all()
    # the other frames' DC estimate misses those frames' means: quiet frames move a little
    difference = np.abs(features[~holding] - plain[~holding])
    assert np.median(difference) < 1e-3 and np.max(difference) < 0.5


def _pitch_and_voicing(samples, config):
    pitch = extract(samples, config)[:, config.n_spectral :]
    voiced = pitch[:, 1] > 1 - THRESHOLD
    return REFERENCE_HZ * 2 ** (pitch[:, 0] / 12), voiced


@pytest.mark.parametrize("stride", [1, 2])
def test_pitch_agrees_with_pyin_on_real_speech(emodb_files, stride):
    config = FeatureConfig(pitch=True, pitch_stride=stride)
    errors, voiced_when_pyin_voiced, voiced_when_pyin_not = [], [], []
    for path in emodb_files[::40]:
        samples, rate = soundfile.read(path, dtype="float32")
        ours, voiced = _pitch_and_voicing(samples, config)
        reference, pyin_voiced, _ = librosa.pyin(samples, fmin=config.pitch_fmin, fmax=config.pitch_fmax, sr=rate,
                                                 frame_length=config.n_fft, hop_length=config.hop_length, center=False)  # fmt: skip
        n = min(len(ours), len(reference))
        ours, voiced, reference, pyin_voiced = ours[:n], voiced[:n], reference[:n], pyin_voiced[:n]
        both = voiced & pyin_voiced
        errors.append(12 * np.abs(np.log2(ours[both] / reference[both])))
        voiced_when_pyin_voiced.append(voiced[pyin_voiced])
        voiced_when_pyin_not.append(voiced[~pyin_voiced])
    errors = np.concatenate(errors)
    assert len(errors) > 1000
    assert np.median(errors) < 0.2 and np.mean(errors > 1.0) < 0.05  # semitones
    assert np.mean(np.concatenate(voiced_when_pyin_voiced)) > 0.7
    assert np.mean(np.concatenate(voiced_when_pyin_not)) < 0.1


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("hz", [80.0, 150.0, 310.0, 550.0])
def test_pitch_of_a_harmonic_tone_is_exact_and_held_over_a_pause(hz, stride):
    config = FeatureConfig(pitch=True, pitch_stride=stride)
    t = np.arange(16000) / config.sample_rate
    tone = sum(np.sin(2 * np.pi * hz * k * t) / k for k in range(1, 6)).astype(np.float32) * 0.3
    samples = np.concatenate([tone, np.zeros(8000, np.float32)])
    f0, voiced = _pitch_and_voicing(samples, config)
    tone_frames = count_frames(len(tone), config)
    assert voiced[:tone_frames].all() and not voiced[tone_frames + 5 :].any()
    assert np.max(np.abs(12 * np.log2(f0 / hz))) < 0.05  # the pause keeps the tone's pitch


def test_short_input_gives_no_frames():
    assert extract(np.zeros(100, np.float32), FeatureConfig()).shape == (0, 40)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="fmax"):
        FeatureConfig(fmax=9000.0)
    with pytest.raises(ValueError, match="two periods of pitch_fmin"):
        FeatureConfig(pitch=True, pitch_fmin=40.0)
    with pytest.raises(ValueError, match="need 0 < pitch_fmin < pitch_fmax"):
        FeatureConfig(pitch=True, pitch_fmin=0.0)
    with pytest.raises(ValueError, match="pitch_stride must be 1, 2 or 4"):
        FeatureConfig(pitch=True, pitch_stride=3)
    with pytest.raises(ValueError, match="two periods of pitch_fmin"):
        FeatureConfig(pitch=True, pitch_stride=4, pitch_fmin=60.0)
    with pytest.raises(ConfigError, match="features.colour: unknown key"):
        build(FeatureConfig, {"colour": 1}, "features")


def test_recognizer_and_extract_hold_blas_to_one_thread_in_a_program_that_loaded_numpy_first():
    # a fresh process whose BLAS has two threads (numpy loaded before rtser, no environment set): the
    # features' and the speech detector's products run on one thread, and the program's setting is
    # given back after each push
    probe = (
        "import numpy as np, soundfile; from threadpoolctl import threadpool_info\n"
        "import rtser, rtser.features as f, rtser.voice_network as v\n"
        "threads = lambda: max(i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas')\n"
        "seen = {'features': set(), 'detector': set()}\n"
        "def watched(name, method):\n"
        "    def call(*args, **kwargs):\n"
        "        seen[name].add(threads())\n"
        "        return method(*args, **kwargs)\n"
        "    return call\n"
        "f.FeaturePlan.frames_to_features = watched('features', f.FeaturePlan.frames_to_features)\n"
        "v.VoiceNetwork.probabilities = watched('detector', v.VoiceNetwork.probabilities)\n"
        f"audio, rate = soundfile.read({os.path.join(ROOT, 'rtser', 'samples', 'emodb-six-emotions.flac')!r}, dtype='float32', frames=16000 * 8)\n"
        "recognizer = rtser.Recognizer()\n"
        "seen['detector'].clear()  # loading checked the network once, outside any push\n"
        "events = [e for i in range(0, len(audio), 4000) for e in recognizer.push(audio[i : i + 4000], rate)]\n"
        "f.extract(audio[:16000], f.FeatureConfig())\n"
        "print(sorted(seen['features']), sorted(seen['detector']), threads(), any(e['type'] == 'emotion' for e in events))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")} | {"OPENBLAS_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[1]", "[1]", "2", "True"]
