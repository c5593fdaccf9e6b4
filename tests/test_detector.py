"""rtser's own speech detector: taught by the real Silero VAD on real corpora, run by the runtime
in numpy exactly as its torch twin computes it, installed into a model folder that rtser runs."""

import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch

from rtser import Recognizer
from rtser.features import FeaturePlan
from rtser.manifest import load_manifest, sha256_of
from rtser.pipeline import DEFAULT_MODEL
from rtser.schema import ConfigError
from rtser.voice_network import load_voice_network
from training.audio_cache import cache_dir
from training.detector import FrameDetectorNet, install_detector, loud_voiced_frames, reading_frames, shifted_calls, train_detector

from .conftest import ROOT, SAMPLE, run_rtser


def test_loud_voiced_frames_are_the_voice_not_silence_or_noise():
    features = load_manifest(DEFAULT_MODEL).features
    voice = soundfile.read(SAMPLE, dtype="float32")[0]  # speech from 0.13 s to 1.75 s
    second = np.zeros(16000, np.float32)
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    voiced = loud_voiced_frames(np.concatenate([second, voice, noise]), features, FeaturePlan(features))
    seconds = np.flatnonzero(voiced) / features.frames_per_second
    assert voiced.sum() / features.frames_per_second >= 0.8
    assert seconds.min() >= 1.1 and seconds.max() <= 2.8, (seconds.min(), seconds.max())
    lead = 16000 + 160 * 7  # the same utterance 1 s later and 7 frames on in a stream
    moved = shifted_calls(voiced, lead, len(voiced) + 120, features)
    assert np.array_equal(np.flatnonzero(moved), np.flatnonzero(voiced) + 107)


def test_the_runtime_network_computes_what_its_torch_twin_does():
    features = load_manifest(DEFAULT_MODEL).features
    torch.manual_seed(3)
    net = FrameDetectorNet(features.n_features, past=6, future=4, dilation=2).eval()
    frames = np.random.default_rng(0).normal(0, 1, (1, 60, features.n_features)).astype(np.float32)
    with torch.no_grad():
        expected = torch.sigmoid(net(torch.from_numpy(frames)))[0].numpy()
    network = net.to_voice_network(features, np.zeros(features.n_features, np.float32), np.ones(features.n_features, np.float32))
    got = network.probabilities(network.project(frames[0]))
    assert got.shape == expected.shape == (50,)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_network_is_set_to_read_pitch_from_fewer_samples_and_to_nothing_else(tmp_path):
    shipped = os.path.join(DEFAULT_MODEL, "voice_network.npz")
    trained = load_voice_network(shipped)
    halved = dataclasses.replace(trained.features, pitch_stride=2)
    overlay = tmp_path / "pitch_stride2.yaml"
    overlay.write_text("features: {pitch: true, pitch_stride: 2}\n")
    done = subprocess.run([sys.executable, "-m", "training", "detector", "--network", shipped, "--out", str(tmp_path),
                           "--features-of", os.path.join(ROOT, "training", "configs", "default.yaml"), "--with", str(overlay)],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    relabelled = load_voice_network(str(tmp_path / "voice_network.npz"))
    assert relabelled.features == halved
    assert all(np.array_equal(relabelled.arrays[name], trained.arrays[name]) for name in trained.arrays)
    assert reading_frames(shipped, trained.features).features == trained.features
    model = tmp_path / "model"  # a model reading those frames: the network installed into it is set to read them too
    shutil.copytree(DEFAULT_MODEL, model)
    manifest = json.loads((model / "model.json").read_text())
    manifest["features"]["pitch_stride"] = 2
    (model / "model.json").write_text(json.dumps(manifest))
    done = subprocess.run([sys.executable, "-m", "training", "detector", "--network", shipped, "--install", str(model), "--edge-threshold", "0.4"],
                          capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_voice_network(str(model / "voice_network.npz")).features == halved
    assert load_manifest(str(model)).speech_detector.edge_threshold == 0.4
    assert run_rtser("replay", SAMPLE, "--model", str(model)).returncode == 0
    with pytest.raises(ConfigError, match="other feature frames"):
        reading_frames(shipped, dataclasses.replace(trained.features, n_mels=64))


@pytest.fixture(scope="module")
def taught(tmp_path_factory):
    out = tmp_path_factory.mktemp("detector")
    figures = train_detector(str(out), load_manifest(DEFAULT_MODEL).features, ["emodb", "ravdess"], files_per_corpus=40, epochs=20, processes=2)
    return out, figures


def test_a_detector_taught_by_silero_calls_unheard_voices_speech_and_unheard_sounds_not(taught):
    out, figures = taught
    at_half = figures["validation"]["frames"]["0.5"]
    assert 0 < figures["teaching"]["speakers"] <= 17 and 0 < figures["validation"]["speakers"] <= 17  # every other voice teaches
    assert at_half["speech_frames_called_speech"] > at_half["other_frames_called_speech"] + 0.3, figures["validation"]
    assert load_voice_network(str(out / "voice_network.npz")).features == load_manifest(DEFAULT_MODEL).features


def test_another_network_seed_trains_another_network_from_the_same_cached_examples(taught, tmp_path):
    out, figures = taught
    cached = sorted(glob.glob(os.path.join(cache_dir(), "detector-*.npz")))
    other = train_detector(str(tmp_path), load_manifest(DEFAULT_MODEL).features, ["emodb", "ravdess"], files_per_corpus=40, epochs=20,
                           processes=2, network_seed=1)  # fmt: skip
    assert sorted(glob.glob(os.path.join(cache_dir(), "detector-*.npz"))) == cached  # no examples built again
    assert (figures["seeds"], other["seeds"]) == ({"examples": 0, "network": 0}, {"examples": 0, "network": 1})
    assert other["teaching"] == figures["teaching"] and other["validation"]["utterances"] == figures["validation"]["utterances"]
    first, second = (load_voice_network(os.path.join(folder, "voice_network.npz")).arrays["w_context"] for folder in (str(out), str(tmp_path)))
    assert np.abs(first - second).max() > 0.01


def test_a_network_taught_by_teacher_networks_learns_their_calls_not_silero_s(taught, tmp_path):
    out, figures = taught
    teacher = load_voice_network(str(out / "voice_network.npz"))
    always = dataclasses.replace(teacher, arrays={**teacher.arrays, "b_out": np.full(1, 30.0, np.float32)})  # calls every frame speech
    always.save(str(tmp_path / "always.npz"))
    student = train_detector(str(tmp_path / "student"), load_manifest(DEFAULT_MODEL).features, ["emodb", "ravdess"], files_per_corpus=40,
                             epochs=20, processes=2, teachers=[str(tmp_path / "always.npz")])  # fmt: skip
    assert student["teachers"] == [str(tmp_path / "always.npz")]
    assert figures["validation"]["frames"]["0.5"]["other_frames_called_speech"] < 0.2
    assert student["validation"]["frames"]["0.5"]["other_frames_called_speech"] > 0.9


def test_the_ensemble_script_runs_a_script_with_the_networks_averaged(tmp_path):
    shipped = os.path.join(DEFAULT_MODEL, "voice_network.npz")
    network = load_voice_network(shipped)
    dataclasses.replace(network, arrays={**network.arrays, "b_out": np.full(1, -30.0, np.float32)}).save(str(tmp_path / "never.npz"))
    script = tmp_path / "events.py"
    script.write_text(f"import soundfile\nfrom rtser import Recognizer\naudio, rate = soundfile.read({SAMPLE!r}, dtype='float32')\n"
                      "print([e['type'] for e in Recognizer().stream([audio], rate)])\n")  # fmt: skip

    def events(*wrapper: str) -> str:
        done = subprocess.run([sys.executable, *wrapper, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    plain = events()
    assert "'utterance'" in plain
    assert events("scripts/detector_ensemble.py", f"{shipped},{shipped}") == plain  # a network averaged with itself is itself
    assert events("scripts/detector_ensemble.py", f"{shipped},{tmp_path / 'never.npz'}") == "[]\n"  # halved: never 0.95


def test_an_installed_detector_is_what_the_model_runs(taught, tmp_path):
    out, _ = taught
    model = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, model)
    entry = install_detector(str(out / "voice_network.npz"), str(model), {"threshold": 0.55}, min_speech_seconds=0.3)
    manifest = json.loads((model / "model.json").read_text())
    assert manifest["speech_detector"] == entry and entry["kind"] == "voice_network" and entry["threshold"] == 0.55
    assert entry["sha256"] == sha256_of(str(model / "voice_network.npz")) == sha256_of(str(out / "voice_network.npz"))
    assert manifest["speech_gate"]["min_speech_seconds"] == 0.3
    assert Recognizer(str(model)).manifest.speech_detector.threshold == 0.55
    done = run_rtser("replay", SAMPLE, "--model", str(model))
    assert done.returncode == 0, done.stderr
