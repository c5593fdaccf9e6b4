"""Speaker normalisation on real speech: the running statistics settle on the voice heard, take out
its level, are kept across utterances of a stream and forgotten on reset; training draws its
normalisation the way the runtime would have heard the voice."""

import dataclasses
import glob
import json
import os
import shutil

import numpy as np
import pytest
import soundfile

from rtser.features import extract
from rtser.manifest import load_manifest
from rtser.normalization import Moments, TrainingVoices
from rtser.pipeline import Recognizer
from rtser.windows import speech_mask
from training.windows import RecordingBackend

from .conftest import DATA, DEFAULT_MODEL


@pytest.fixture(scope="module")
def manifest():
    return load_manifest(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def speaker_03():
    """Every EMO-DB utterance of speaker 03 (about 90 s of speech), float32 at 16 kHz."""
    return [soundfile.read(path, dtype="float32")[0] for path in sorted(glob.glob(os.path.join(DATA, "emodb", "wav", "03*.wav")))]


def _speech(wave, manifest):
    features = extract(wave, manifest.features)
    return features[speech_mask(features, manifest.features, manifest.gate)]


def test_running_statistics_settle_on_the_voice_heard(manifest, speaker_03):
    speech = [_speech(wave, manifest) for wave in speaker_03]
    voice, fresh = manifest.voice_statistics(), manifest.voice_statistics()
    for frames in speech:
        voice.add(frames)
    everything = np.concatenate(speech)
    settled, unheard = voice.standardize(everything), fresh.standardize(everything)
    assert np.abs(settled.mean(axis=0)).max() < 0.3 < np.abs(unheard.mean(axis=0)).max()
    assert np.abs(settled.std(axis=0) - 1).max() < 0.25


def _windows(manifest, waves, gain=1.0):
    recorder = RecordingBackend(len(manifest.labels))
    recognizer = Recognizer(manifest, backend=recorder)
    per_utterance = []
    for wave in waves:
        recorder.windows = []
        recognizer.push(wave * gain)
        recognizer.flush()
        per_utterance.append(np.stack(recorder.windows))
    return per_utterance


def test_a_quieter_microphone_gives_the_same_input_once_its_level_has_been_heard(manifest, speaker_03):
    loud, quiet = _windows(manifest, speaker_03), _windows(manifest, speaker_03, gain=10 ** (-12 / 20))
    # the level of each utterance's last window (c0, the level itself, over the window: the speech
    # detector may find a window more or less at the other level, or start it a frame earlier)
    def level_gap(utterance: int, windows=slice(-1, None)) -> float:
        return abs(float(loud[utterance][windows][..., 0].mean() - quiet[utterance][windows][..., 0].mean()))

    first, last = level_gap(0), level_gap(-1)
    assert last < first / 4, (first, last)
    assert level_gap(-1, slice(None)) < 0.3  # over all the last utterance's windows


def test_flush_keeps_the_voice_and_reset_forgets_it(manifest, speaker_03):
    recorder = RecordingBackend(len(manifest.labels))
    recognizer = Recognizer(manifest, backend=recorder)

    def windows_of(wave):
        recorder.windows = []
        recognizer.push(wave)
        recognizer.flush()
        return np.stack(recorder.windows)

    first = windows_of(speaker_03[0])
    windows_of(speaker_03[1])
    after_another = windows_of(speaker_03[0])
    recognizer.reset()
    after_reset = windows_of(speaker_03[0])
    assert first.shape == after_another.shape and not np.allclose(first, after_another)
    assert np.array_equal(first, after_reset)


def test_training_draws_only_the_speaker_s_other_utterances_within_the_memory():
    from training.config import NormalizationSettings, load_config
    from training.dataset import prepare
    from training.windows import SpeechHistory

    config = load_config("training/configs/emodb_loso_long.yaml")
    data = prepare(config, smoke=True)
    speakers = np.array([u.speaker for u in data.utterances])
    features = [extract(wave, config.features) for wave in data.waves]
    history = SpeechHistory(features, list(speakers), config)
    short_memory = dataclasses.replace(config, normalization=NormalizationSettings(memory_seconds=1.0))
    short = SpeechHistory(features, list(speakers), short_memory)
    rng = np.random.default_rng(0)
    for i in range(0, len(speakers), 7):
        others = history.of(np.flatnonzero((speakers == speakers[i]) & (np.arange(len(speakers)) != i))).weight
        draws = [history.draw(i, rng).weight for _ in range(40)]
        assert min(draws) < others / 2 < max(draws) <= others + 1e-9
        assert max(short.draw(i, rng).weight for _ in range(40)) == pytest.approx(config.features.frames_per_second)
    first_hearing = dataclasses.replace(config, normalization=NormalizationSettings(first_hearing_share=0.5))
    cold = SpeechHistory(features, list(speakers), first_hearing)
    nothing_heard = [cold.draw(i, rng).weight == 0 for i in range(len(speakers)) for _ in range(4)]
    assert 0.4 < np.mean(nothing_heard) < 0.65  # half the windows as a first hearing, a few more by the draw of no utterances
    prior = history.prior()
    voices = [history.of(speakers == s) for s in sorted(set(speakers))]
    standardized_means = [prior.standardize(v.mean[None], Moments.empty(len(v.mean)), 100.0)[0] for v in voices]
    assert np.abs(np.mean(standardized_means, axis=0)).max() < 1e-4  # the prior sits among the speakers


def _heard(manifest, speaker, utterances):
    """The moments of some of an EMO-DB speaker's utterances' speech frames."""
    paths = sorted(glob.glob(os.path.join(DATA, "emodb", "wav", f"{speaker}*.wav")))[utterances]
    return Moments.of(np.concatenate([_speech(soundfile.read(path, dtype="float32")[0], manifest) for path in paths]))


def test_the_prior_leans_towards_the_training_voices_like_the_one_heard_before(manifest, speaker_03, tmp_path):
    speakers = ["03", "08", "09", "10", "11", "12", "13", "14", "15", "16"]
    profiles = [_heard(manifest, speaker, slice(0, 5)) for speaker in speakers]
    voices = TrainingVoices(np.array([p.mean for p in profiles]), np.sqrt([p.variance for p in profiles]), 1.0)
    for speaker in ("09", "11"):  # a woman and a man: five other utterances of theirs pick their own voice
        weights = voices.weights(_heard(manifest, speaker, slice(5, 10)))
        assert weights.sum() == pytest.approx(1.0) and speakers[int(weights.argmax())] == speaker
    weighted = dataclasses.replace(manifest.normalization, voices=voices)
    frames, fps = _speech(speaker_03[5], manifest), manifest.features.frames_per_second
    alone = Moments.of(frames)  # nothing heard before these frames: the plain average serves
    assert np.array_equal(weighted.standardize(frames, alone, fps), manifest.normalization.standardize(frames, alone, fps))
    after = _heard(manifest, "03", slice(0, 5)) + alone
    assert not np.allclose(weighted.standardize(frames, after, fps), manifest.normalization.standardize(frames, after, fps))
    folder = shutil.copytree(DEFAULT_MODEL, tmp_path / "model")
    with open(folder / "model.json", encoding="utf-8") as handle:
        raw = json.load(handle)
    raw["normalization"] = weighted.to_dict()
    with open(folder / "model.json", "w", encoding="utf-8") as handle:
        json.dump(raw, handle)
    loaded = load_manifest(str(folder)).normalization
    assert loaded.voices.temperature == 1.0 and np.allclose(loaded.voices.mean, voices.mean, atol=1e-6)
    assert np.allclose(loaded.standardize(frames, after, fps), weighted.standardize(frames, after, fps), atol=1e-4)


def test_a_training_voice_meets_the_prior_as_a_stranger_would(manifest, speaker_03):
    from training.windows import as_stranger, runtime_windows

    speakers = ["03", "08", "09", "10", "11"]
    profiles = [_heard(manifest, speaker, slice(0, 5)) for speaker in speakers]
    voices = TrainingVoices(np.array([p.mean for p in profiles]), np.sqrt([p.variance for p in profiles]), 1.0)
    prior = dataclasses.replace(manifest.normalization, voices=voices)
    stranger = as_stranger(prior, "09", ["11", "09", "03", "08", "10", "09"])  # the voices are the speakers' in sorted order
    others = np.delete(voices.mean, 2, axis=0)
    assert np.array_equal(stranger.voices.mean, others) and np.allclose(stranger.mean, others.mean(axis=0))
    assert not np.allclose(stranger.mean, prior.mean)
    assert as_stranger(prior, "12", speakers) is prior and as_stranger(manifest.normalization, "09", speakers) is manifest.normalization
    weighted = dataclasses.replace(manifest, normalization=prior)
    waves = speaker_03[:3]
    as_training = runtime_windows(waves, ["03"] * 3, weighted, training_speakers=speakers)
    as_test = runtime_windows(waves, ["03"] * 3, weighted)
    alone = runtime_windows(waves, ["03"] * 3, dataclasses.replace(manifest, normalization=as_stranger(prior, "03", speakers)))
    assert all(np.array_equal(a, b) for a, b in zip(as_training, alone))
    assert not any(np.allclose(a, b) for a, b in zip(as_training, as_test))
