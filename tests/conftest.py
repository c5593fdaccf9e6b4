"""Shared fixtures: the real data folder, real audio, and models built by the project's own code."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

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


def run_rtser(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real command line in a fresh process."""
    return subprocess.run([sys.executable, "-m", "rtser", *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
