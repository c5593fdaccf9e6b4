"""The recognizer on real speech with the shipped int8 model: replay, library API, gate, resampling."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import soxr

from rtser import Recognizer, RtserError

from .conftest import ROOT, SAMPLE, run_rtser

EMOTION_KEYS = {"type", "start", "end", "label", "confidence", "probs", "window_probs"}


def _emotions(events):
    return [e for e in events if e["type"] == "emotion"]


def _replay(path, *args):
    done = run_rtser("replay", path, *args)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_replay_prints_contract_events(emodb_files):
    path = emodb_files[10]
    duration = soundfile.info(path).duration
    events = _replay(path)
    emotions = _emotions(events)
    assert emotions, "speech must produce at least one emotion event"
    recognizer = Recognizer()
    for event in emotions:
        assert EMOTION_KEYS <= set(event)
        assert set(event["probs"]) == set(recognizer.labels)
        assert abs(sum(event["probs"].values()) - 1) < 0.02
        assert event["label"] in recognizer.labels and event["confidence"] == event["probs"][event["label"]]
        assert 0 <= event["start"] < event["end"] <= duration + 0.05
    assert events[0] == {"type": "speech", "state": "start", "time": events[0]["time"]}
    stop, utterance = events[-2:]
    assert stop["type"] == "speech" and stop["state"] == "stop"
    assert utterance["type"] == "utterance" and (utterance["start"], utterance["end"]) == (events[0]["time"], stop["time"])
    assert utterance["label"] in recognizer.labels and utterance["confidence"] == max(utterance["probs"].values())
    assert utterance["windows"] == len(emotions)


@pytest.mark.parametrize("batch_seconds", [0.01, 1.0])
def test_library_api_in_random_chunks_gives_the_replay_events(emodb_files, batch_seconds):
    # whatever the pushes and the batches they are worked on in, the events are those of replay
    path = emodb_files[200]
    expected = _replay(path)
    samples, rate = soundfile.read(path, dtype="int16")
    rng = np.random.default_rng(3)
    received = []
    recognizer = Recognizer(on_event=received.append, batch_seconds=batch_seconds)
    returned, i = [], 0
    while i < len(samples):
        n = int(rng.integers(1, 4000))
        returned += recognizer.push(samples[i : i + n], rate)
        i += n
    returned += recognizer.flush()
    assert returned == received
    assert [e["type"] for e in returned] == [e["type"] for e in expected]
    for ours, theirs in zip(_emotions(returned), _emotions(expected)):
        assert (ours["start"], ours["end"], ours["label"]) == (theirs["start"], theirs["end"], theirs["label"])
        assert max(abs(ours["probs"][k] - theirs["probs"][k]) for k in ours["probs"]) < 1e-3


def test_iterator_api_matches_push(speech):
    recognizer = Recognizer()
    chunks = [speech[i : i + 1600] for i in range(0, len(speech), 1600)]
    streamed = list(recognizer.stream(chunks, 16000))
    recognizer.reset()
    assert streamed == recognizer.push(speech) + recognizer.flush()


def test_a_caller_refilling_one_buffer_gets_the_same_events(speech):
    """Pushes are worked on in batches: the recognizer keeps what it was given, never the caller's
    buffer, which a capture loop fills again for the next push."""
    recognizer = Recognizer()
    expected = recognizer.push(speech) + recognizer.flush()
    recognizer.reset()
    buffer = np.empty(1600, np.float32)
    received = []
    for i in range(0, len(speech) - len(buffer) + 1, len(buffer)):
        buffer[:] = speech[i : i + len(buffer)]
        received += recognizer.push(buffer)
    received += recognizer.push(speech[len(speech) // len(buffer) * len(buffer) :]) + recognizer.flush()
    assert received == expected and any(e["type"] == "utterance" for e in received)


def test_48k_stereo_input_is_resampled_and_downmixed(tmp_path, emodb_files):
    path = emodb_files[300]
    samples, rate = soundfile.read(path, dtype="float32")
    wide = soxr.resample(samples, rate, 48000, quality="VHQ")
    stereo = tmp_path / "stereo48k.wav"
    soundfile.write(stereo, np.stack([wide, wide * 0.5], axis=1), 48000, subtype="PCM_16")
    native, converted = _emotions(_replay(path)), _emotions(_replay(str(stereo)))
    assert len(native) == len(converted) > 0
    for a, b in zip(native, converted):
        assert abs(a["end"] - b["end"]) < 0.02
        assert max(abs(a["window_probs"][k] - b["window_probs"][k]) for k in a["probs"]) < 0.15


@pytest.mark.parametrize("kind", ["silence", "pink_noise", "white_noise", "running_tap"])
def test_no_speech_gives_no_emotion_event(tmp_path, kind):
    from .conftest import DATA

    if kind == "silence":
        samples, rate = np.zeros(16000 * 6, np.float32), 16000
    else:
        samples, rate = soundfile.read(f"{DATA}/noise/background/{kind}.flac", dtype="float32")
        samples = samples[: 16000 * 20]
    recognizer = Recognizer()
    events = recognizer.push(samples, rate) + recognizer.flush()
    assert _emotions(events) == []


def test_short_utterance_still_gets_an_event(emodb_files):
    shortest = min(emodb_files, key=lambda p: soundfile.info(p).duration)
    assert soundfile.info(shortest).duration < 1.6
    assert _emotions(_replay(shortest))


def test_speech_after_silence_is_timed_from_the_stream_start(speech):
    recognizer = Recognizer()
    silence = np.zeros(16000 * 4, np.float32)
    events = recognizer.push(np.concatenate([silence, speech])) + recognizer.flush()
    start = next(e for e in events if e["type"] == "speech")
    assert start["state"] == "start" and 4.0 <= start["time"] < 4.0 + len(speech) / 16000
    assert all(e["end"] > 4.0 for e in _emotions(events))


def test_both_int8_backends_agree(speech):
    results = {}
    for kind in ("tflite", "onnx"):
        recognizer = Recognizer(backend=kind)
        results[kind] = _emotions(recognizer.push(speech) + recognizer.flush())
    assert len(results["tflite"]) == len(results["onnx"]) > 0
    for a, b in zip(results["tflite"], results["onnx"]):
        assert max(abs(a["window_probs"][k] - b["window_probs"][k]) for k in a["probs"]) < 0.2


def _window_spacing(events):
    """Seconds between the ends of consecutive windows within each utterance, its closing window
    (the one at the utterance's last speech frame) aside."""
    spacing, ends = [], []
    for event in events:
        if event["type"] == "emotion":
            ends.append(event["end"])
        elif event["type"] == "utterance":
            spacing += list(np.diff(ends[:-1]))
            ends = []
    return np.array(spacing)


def test_hop_sets_how_often_windows_come(emodb_files):
    path = max(emodb_files, key=lambda p: soundfile.info(p).duration)
    # a long pause setting keeps the file's phrases one utterance, so each has many windows
    half, quarter = _window_spacing(_replay(path, "--pause", "2")), _window_spacing(_replay(path, "--pause", "2", "--hop", "0.25"))
    assert len(half) >= 2 and len(quarter) >= 1.5 * len(half)
    # a window is due every hop of speech: none comes sooner, except one that ends at the last
    # speech frame before a pause, and none while nobody speaks within the utterance
    for spacing, hop in ((half, 0.5), (quarter, 0.25)):
        values, counts = np.unique(np.round(spacing, 2), return_counts=True)
        assert abs(np.median(spacing) - hop) < 0.002 and values[np.argmax(counts)] == hop, spacing


def test_sample_rate_change_mid_stream_is_refused(speech):
    recognizer = Recognizer()
    recognizer.push(speech[:1000], 16000)
    with pytest.raises(RtserError, match="sample rate changed"):
        recognizer.push(speech[:1000], 8000)


def test_nan_and_inf_are_read_as_silence_and_reported(tmp_path, speech):
    broken = speech.copy()
    broken[100:200] = np.nan
    broken[300] = np.inf
    path = tmp_path / "nan.wav"
    soundfile.write(path, broken, 16000, subtype="FLOAT")
    done = run_rtser("replay", str(path))
    assert done.returncode == 0
    assert "101 NaN/inf samples" in done.stderr
    assert _emotions([json.loads(line) for line in done.stdout.splitlines()])


def test_realtime_flag_paces_the_file():
    import time

    started = time.monotonic()
    events = _replay(SAMPLE, "--realtime")
    assert time.monotonic() - started >= soundfile.info(SAMPLE).duration * 0.9
    assert _emotions(events)


@pytest.mark.parametrize("fmt,subtype", [("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("WAV", "PCM_U8"), ("WAV", "PCM_32")])
def test_replay_reads_common_formats(tmp_path, emodb_files, fmt, subtype):
    samples, rate = soundfile.read(emodb_files[42], dtype="float32")
    path = tmp_path / f"clip.{fmt.lower()}"
    soundfile.write(path, soxr.resample(samples, rate, 22050), 22050, format=fmt, subtype=subtype)
    assert _emotions(_replay(str(path)))


def test_runtime_imports_no_training_libraries():
    import subprocess
    import sys

    from .conftest import ROOT

    code = (
        "import sys; from rtser.cli import main; main(['replay', sys.argv[1]]); "
        "heavy = [m for m in ('torch', 'librosa', 'scipy', 'tensorflow') if m in sys.modules]; "
        "sys.exit(f'imported {heavy}' if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code, SAMPLE], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


def test_text_format_is_one_readable_line_per_utterance_and_speech_change():
    as_json = [json.loads(line) for line in run_rtser("replay", SAMPLE).stdout.splitlines()]  # a pipe: JSON by default
    utterance = next(e for e in as_json if e["type"] == "utterance")
    done = run_rtser("replay", SAMPLE, "--format", "text")
    assert done.returncode == 0 and "\x1b[" not in done.stdout  # no colour off a terminal
    lines = done.stdout.splitlines()
    assert len(lines) == sum(e["type"] in ("utterance", "speech") for e in as_json)
    assert lines[0].endswith("speech starts") and lines[1].endswith("speech stops")
    assert f"{utterance['label']}" in lines[2] and f"{round(100 * utterance['confidence'])}%" in lines[2] and "█" in lines[2]
    windows = run_rtser("replay", SAMPLE, "--format", "text", "--events", "emotion").stdout.splitlines()
    assert len(windows) == sum(e["type"] == "emotion" for e in as_json) and all(" window " in line for line in windows)


def test_a_terminal_gets_text_in_colour_unless_no_color_is_set():
    import pty

    def on_terminal(*args, **env):
        leader, follower = pty.openpty()
        process = subprocess.Popen([sys.executable, "-m", "rtser", *args], cwd=ROOT, stdout=follower, stderr=subprocess.PIPE,
                                   env={**os.environ, **env})  # fmt: skip
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(60) == 0
        os.close(leader)
        return b"".join(chunks).decode()

    coloured = on_terminal("replay", SAMPLE)
    plain = on_terminal("replay", SAMPLE, NO_COLOR="1")
    assert "speech starts" in plain and "\x1b[" not in plain
    label = plain.splitlines()[-1].split()[5]  # "0.12 s - 1.75 s  LABEL ..."
    assert "speech starts" in coloured and re.search(r"\x1b\[1;3\dm" + label, coloured) and "{" not in coloured
    assert on_terminal("info").startswith("model ") and json.loads(on_terminal("info", "--json"))["manifest"]["labels"]
