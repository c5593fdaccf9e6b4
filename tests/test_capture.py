"""The microphone's stall detection through a real PortAudio capture path: a PulseAudio virtual
microphone whose source is suspended (open streams get no audio) and resumed."""

from __future__ import annotations

import time

import pytest

from rtser.capture import FIRST_BLOCK_SECONDS, DeviceLost, Microphone
from rtser.config import AudioSettings

from .realparts import wait_for

STALL_SECONDS = 0.2


def read_until_lost(microphone: Microphone, timeout: float) -> tuple[float, str]:
    """Read as the recognizer does until the microphone reports itself lost: seconds taken, and why."""
    started = time.time()
    while time.time() - started < timeout:
        try:
            microphone.read()
        except DeviceLost as lost:
            return time.time() - started, str(lost)
        time.sleep(0.02)
    raise AssertionError(f"no DeviceLost within {timeout} s")


@pytest.fixture
def microphone(pulse_here):
    microphone = Microphone(AudioSettings(device="emo_mic", stall_seconds=STALL_SECONDS), 16000)
    yield microphone
    microphone.close()
    pulse_here.suspend("emo_mic", False)


def test_a_device_slow_to_start_is_waited_for_but_a_stall_after_its_first_block_is_a_loss(pulse, microphone):
    pulse.suspend("emo_mic", True)
    microphone.open()
    opened = time.time()
    while time.time() - opened < 5 * STALL_SECONDS:  # no audio yet, for longer than stall_seconds: still starting
        assert len(microphone.read().samples) == 0
        time.sleep(0.02)
    pulse.suspend("emo_mic", False)
    wait_for(lambda: len(microphone.read().samples) > 0, FIRST_BLOCK_SECONDS, "the first block")
    pulse.suspend("emo_mic", True)
    seconds, why = read_until_lost(microphone, 10)
    assert seconds < FIRST_BLOCK_SECONDS and why == f"no audio from {microphone.device.describe()} for {STALL_SECONDS:g} s"


def test_a_device_that_never_delivers_is_lost_after_the_first_block_allowance(pulse, microphone):
    pulse.suspend("emo_mic", True)
    microphone.open()
    seconds, why = read_until_lost(microphone, 3 * FIRST_BLOCK_SECONDS)
    assert seconds >= FIRST_BLOCK_SECONDS - 0.1 and why.endswith(f"for {FIRST_BLOCK_SECONDS:g} s")
