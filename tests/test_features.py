"""Features: streaming equals offline on real speech, and the offline numbers match librosa."""

import librosa
import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from rtser.features import FeatureConfig, StreamingExtractor, count_frames, extract

CONFIGS = [FeatureConfig(), FeatureConfig(n_mfcc=0, n_mels=64, n_fft=1024, win_length=1024, hop_length=256, fmin=0.0)]


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
    config = FeatureConfig()
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
        ours = extract(samples, config)
        if config.n_mfcc:
            reference = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc, dct_type=2, norm="ortho").T
        else:
            reference = log_mel.T
        # librosa works in float32: a few float32 steps on values of magnitude up to ~500
        assert np.max(np.abs(ours - reference)) < 1e-3


def test_short_input_gives_no_frames():
    assert extract(np.zeros(100, np.float32), FeatureConfig()).shape == (0, 40)


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="fmax"):
        FeatureConfig(fmax=9000.0)
    with pytest.raises(ValueError, match="unknown feature settings: colour"):
        FeatureConfig.from_dict({"colour": 1})
