"""Odd and broken audio through `rtser replay` (the real command line): every kind gives valid events
or one clear error line with a non-zero exit, never a traceback. The files are made here, from a
real EMO-DB utterance."""

from __future__ import annotations

import collections
import json
import threading
import time

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import SAMPLE, run_rtser

RATE = 16000
SPEECH, _ = soundfile.read(SAMPLE, dtype="float64")


def _write(path, samples, rate=RATE, **kwargs):
    soundfile.write(path, samples, rate, **kwargs)
    return path


def _resampled(rate):
    import soxr

    return soxr.resample(SPEECH, RATE, rate)


def _with_non_finite(dtype):
    samples = SPEECH.astype(dtype)
    samples[100:110] = np.nan
    samples[5000] = np.inf
    samples[5001] = -np.inf
    return samples


# kind: (file name, how to make it, expected: "same" labels as the clean clip, "events" (valid
# events, labels free), "quiet" (exit 0, no emotion event) or an error fragment)
KINDS = {
    "pcm16": ("a.wav", lambda p: _write(p, SPEECH, subtype="PCM_16"), "same"),
    "pcm24": ("a.wav", lambda p: _write(p, SPEECH, subtype="PCM_24"), "same"),
    "pcm32": ("a.wav", lambda p: _write(p, SPEECH, subtype="PCM_32"), "same"),
    "unsigned8": ("a.wav", lambda p: _write(p, SPEECH, subtype="PCM_U8"), "events"),
    "float32_nan_inf": ("a.wav", lambda p: _write(p, _with_non_finite(np.float32), subtype="FLOAT"), "events"),
    "float64_nan_inf": ("a.wav", lambda p: _write(p, _with_non_finite(np.float64), subtype="DOUBLE"), "events"),
    "ima_adpcm": ("a.wav", lambda p: _write(p, SPEECH, subtype="IMA_ADPCM"), "events"),
    "ms_adpcm": ("a.wav", lambda p: _write(p, SPEECH, subtype="MS_ADPCM"), "events"),
    "mu_law": ("a.wav", lambda p: _write(p, SPEECH, subtype="ULAW"), "events"),
    "a_law": ("a.wav", lambda p: _write(p, SPEECH, subtype="ALAW"), "events"),
    "gsm610": ("a.wav", lambda p: _write(p, SPEECH, subtype="GSM610"), "events"),
    "flac": ("a.flac", lambda p: _write(p, SPEECH), "same"),
    "ogg_vorbis": ("a.ogg", lambda p: _write(p, SPEECH), "events"),
    "aiff": ("a.aiff", lambda p: _write(p, SPEECH), "same"),
    "flac_named_wav": ("a.wav", lambda p: _write(p, SPEECH, format="FLAC"), "same"),
    "wav_named_mp3": ("a.mp3", lambda p: _write(p, SPEECH, format="WAV", subtype="PCM_16"), "same"),
    "8khz": ("a.wav", lambda p: _write(p, _resampled(8000), 8000), "events"),
    "96khz": ("a.wav", lambda p: _write(p, _resampled(96000), 96000, subtype="PCM_24"), "events"),
    "6_channels": ("a.wav", lambda p: _write(p, np.stack([SPEECH] * 6, axis=1)), "same"),
    "stereo_one_side_silent": ("a.wav", lambda p: _write(p, np.stack([SPEECH, 0 * SPEECH], axis=1)), "events"),
    "dc_offset": ("a.wav", lambda p: _write(p, 0.3 + 0.5 * SPEECH), "events"),
    "clipped": ("a.wav", lambda p: _write(p, np.clip(SPEECH * 20, -1, 1)), "events"),
    "digital_silence": ("a.wav", lambda p: _write(p, np.zeros(3 * RATE)), "quiet"),
    "white_noise": ("a.wav", lambda p: _write(p, np.random.default_rng(0).normal(0, 0.1, 3 * RATE)), "quiet"),
    "all_nan": ("a.wav", lambda p: _write(p, np.full(RATE, np.nan), subtype="FLOAT"), "quiet"),
    "tenth_of_a_second": ("a.wav", lambda p: _write(p, SPEECH[: RATE // 10]), "quiet"),
    "one_sample": ("a.wav", lambda p: _write(p, SPEECH[:1]), "quiet"),
    "empty": ("a.wav", lambda p: open(p, "wb").close(), "cannot decode"),
    "text": ("a.wav", lambda p: open(p, "w").write("RIFF? no, just text\n" * 50), "cannot decode"),
    "random_bytes": ("a.wav", lambda p: open(p, "wb").write(np.random.default_rng(1).bytes(4096)), "cannot decode"),
    "header_only": ("a.wav", lambda p: _write(p, SPEECH[:0]), "no audio"),
    "truncated_header": ("a.wav", lambda p: open(p, "wb").write(open(SAMPLE, "rb").read(30)), "cannot decode"),
}


def _emotions(stdout: str) -> list[dict]:
    events = [json.loads(line) for line in stdout.splitlines()]
    for event in events:
        assert event["type"] in ("speech", "emotion", "utterance")
        if event["type"] == "emotion":
            assert 0 <= event["start"] < event["end"] and 0 <= event["confidence"] <= 1
            assert all(np.isfinite(list(event["probs"].values())))
    return [e for e in events if e["type"] == "emotion"]


@pytest.fixture(scope="module")
def reference_labels(tmp_path_factory) -> list[str]:
    done = run_rtser("replay", SAMPLE)
    assert done.returncode == 0
    return [e["label"] for e in _emotions(done.stdout)]


def test_at_least_25_kinds():
    assert len(KINDS) >= 25


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_odd_audio(tmp_path, kind, reference_labels):
    name, make, expected = KINDS[kind]
    path = str(tmp_path / name)
    make(path)
    done = run_rtser("replay", path)
    assert "Traceback" not in done.stderr
    if expected in ("same", "events", "quiet"):
        assert done.returncode == 0, done.stderr
        labels = [e["label"] for e in _emotions(done.stdout)]
        if expected == "same":
            assert labels == reference_labels
        elif expected == "events":
            assert labels
        else:
            assert labels == []
        warnings = [line for line in done.stderr.splitlines() if line]
        assert all(line.startswith("rtser: warning:") for line in warnings) and len(warnings) <= 1
    else:
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.startswith("rtser: error: ") and expected in done.stderr and done.stderr.count("\n") == 1


def test_an_hour_long_file_streams_in_bounded_memory(tmp_path):
    """One hour of speech and silence: events all through it, read block by block. The stream hears
    one utterance again and again, so its voice statistics become that utterance's and its labels
    may move away from a replay of the utterance alone; they must settle, not drift."""
    path = tmp_path / "hour.wav"
    pause = np.zeros(7 * RATE)
    period = np.concatenate([SPEECH, pause])
    periods = int(3600 * RATE // len(period)) + 1
    with soundfile.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as out:
        for _ in range(periods):
            out.write(period)
    done = run_rtser("replay", str(path), timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    starts = [e for e in events if e["type"] == "speech" and e["state"] == "start"]
    assert len(starts) == periods  # one speech segment per utterance, none lost or merged
    assert starts[-1]["time"] == pytest.approx((periods - 1) * len(period) / RATE, abs=0.5)  # no drift
    segments = []  # the labels of each utterance
    for event in events:
        if event["type"] == "speech" and event["state"] == "start":
            segments.append([])
        elif event["type"] == "emotion":
            segments[-1].append(event["label"])
    assert all(segments)
    # once the voice's statistics have settled (40 utterances) every block of 40 has the same leading label
    blocks = [sum(segments[i : i + 40], []) for i in range(40, len(segments) - 39, 40)]
    leading = {collections.Counter(block).most_common(1)[0][0] for block in blocks}
    assert len(blocks) >= 6 and len(leading) == 1


def test_a_file_still_being_written_gives_the_events_of_what_it_holds(tmp_path):
    path = tmp_path / "growing.wav"
    written = threading.Event()

    def writer():
        with soundfile.SoundFile(path, "w", RATE, 1, subtype="PCM_16") as out:
            for start in range(0, len(SPEECH), RATE // 10):
                out.write(SPEECH[start : start + RATE // 10])
                out.flush()
                if start > len(SPEECH) // 2:
                    written.set()
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    assert written.wait(10)
    done = run_rtser("replay", str(path))
    thread.join()
    assert done.returncode == 0 and done.stderr == ""
    emotions = _emotions(done.stdout)
    assert emotions and emotions[-1]["end"] < len(SPEECH) / RATE  # what was there when it was read


@settings(max_examples=60, deadline=None)
@given(
    frames=st.integers(0, 5000),
    channels=st.integers(1, 6),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000]),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "PCM_32", "FLOAT"]),
    block_seconds=st.floats(0.001, 1.0),
    seed=st.integers(0, 2**31),
)
def test_wav_reader_returns_every_sample_in_order(tmp_path_factory, frames, channels, rate, subtype, block_seconds, seed):
    from rtser.audio import read_blocks

    # 16-bit values: exact in every subtype tried, so the reader must give them back exactly
    data = np.random.default_rng(seed).integers(-32768, 32767, (frames, channels)).astype(np.float32) / 32768
    path = tmp_path_factory.mktemp("wav") / "x.wav"
    soundfile.write(path, data, rate, subtype=subtype)
    got_rate, blocks = read_blocks(str(path), block_seconds)
    got = list(blocks)
    assert got_rate == rate
    assert all(b.shape[1] == channels and b.dtype == np.float32 for b in got)
    joined = np.concatenate(got) if got else np.zeros((0, channels), np.float32)
    np.testing.assert_array_equal(joined, data)
