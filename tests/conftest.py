"""Shared fixtures: the real data folder, real audio, and models built by the project's own code."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from rtser.devices import input_devices
from rtser.pipeline import Recognizer

from .realparts import PulseAudio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.abspath(os.environ.get("RTSER_DATA", os.path.join(ROOT, "..", "shared", "data")))
DEFAULT_MODEL = os.path.join(ROOT, "rtser", "models", "default")
SAMPLE = os.path.join(ROOT, "rtser", "samples", "emodb-03a01Wa-anger.wav")


def pytest_configure(config):
    if not os.path.isdir(os.path.join(DATA, "emodb", "wav")):
        raise pytest.UsageError(f"test data not found at {DATA}: set RTSER_DATA to the shared data folder")


@pytest.fixture(scope="session")
def emodb_files() -> list[str]:
    """All EMO-DB wav files."""
    return sorted(glob.glob(os.path.join(DATA, "emodb", "wav", "*.wav")))


@pytest.fixture(scope="session")
def speech(emodb_files) -> np.ndarray:
    """One real EMO-DB utterance, float32 at 16 kHz."""
    samples, rate = soundfile.read(emodb_files[0], dtype="float32")
    assert rate == 16000
    return samples


def run_rtser(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real command line in a fresh process."""
    return subprocess.run([sys.executable, "-m", "rtser", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


@pytest.fixture(scope="session")
def pulse(tmp_path_factory):
    server = PulseAudio(str(tmp_path_factory.mktemp("pulse")))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def pulse_here(pulse, monkeypatch):
    """The private sound server, made the one this test process's PortAudio captures from."""
    for key, value in pulse.env.items():
        monkeypatch.setenv(key, value)
    input_devices(refresh=True)
    return pulse


def replay_labels(samples: np.ndarray, rate: int) -> list[str]:
    """The labels of the emotion events `rtser replay` gives for these samples (the same Recognizer)."""
    recognizer = Recognizer()
    return [e["label"] for e in recognizer.push(samples, rate) + recognizer.flush() if e["type"] == "emotion"]


def stable_label(path: str) -> str | None:
    """The one label replay gives for every window of a file, also with silence around it (live
    windows fall anywhere in the speech); None when the windows disagree."""
    samples, rate = soundfile.read(path, dtype="float32")
    found = set()
    for before in (0.0, 0.37, 1.21):
        padded = np.concatenate([np.zeros(round(before * rate), np.float32), samples, np.zeros(3 * rate, np.float32)])
        found |= set(replay_labels(samples if before == 0 else padded, rate))
    return found.pop() if len(found) == 1 else None


@pytest.fixture(scope="session")
def clips() -> list[tuple[str, str]]:
    """Two EMO-DB utterances of different labels whose replay gives one label throughout."""
    chosen: dict[str, str] = {}
    for name in ("03a02Wc", "14a02Tb", "08a02Ac", "13a01Ec", "12a04Wc", "14a04Tc", "15a04Ab", "09a07Na"):
        path = os.path.join(DATA, "emodb", "wav", f"{name}.wav")
        label = stable_label(path)
        if label is not None and label not in chosen.values():
            chosen[path] = label
        if len(chosen) == 2:
            return list(chosen.items())
    raise AssertionError(f"fewer than two clips with a stable label among the candidates: {chosen}")
