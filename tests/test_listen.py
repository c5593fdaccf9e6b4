"""`rtser listen` through a real PortAudio capture path: a PulseAudio virtual microphone fed with
real EMO-DB speech. Events must match `rtser replay` of the same files."""

from __future__ import annotations

import collections
import contextlib
import os
import threading
import time

import numpy as np
import pytest
import soundfile
import soxr

from rtser.config import load_listen_config
from rtser.listen import Listener
from rtser.pipeline import Recognizer
from rtser.sinks import LineSink, QueuedSink

from .conftest import DATA
from .realparts import LiveRun, play_each, segments, wait_for


def test_live_events_match_replay_of_the_same_speech(pulse, clips):
    run = LiveRun("--device", "emo_mic", "--status-seconds", "0.2", env=pulse.env)
    run.wait_for_audio()
    play_each(pulse, run, [path for path, _ in clips])
    code, stderr = run.stop()
    assert code == 0 and stderr == ""
    heard = segments(run.events)
    assert len(heard) == len(clips)
    for labels, (path, label) in zip(heard, clips):
        assert labels and collections.Counter(labels).most_common(1)[0][0] == label, (path, labels)
    emotions = [e for e in run.events if e["type"] == "emotion"]
    assert all(e["end"] > e["start"] and abs(sum(e["probs"].values()) - 1) < 0.01 for e in emotions)
    assert all(e["timestamp"] > 1.6e9 for e in emotions)
    final = run.events[-1]
    assert final["type"] == "status" and final["state"] == "stopped" and final["dropped_seconds"] == 0
    assert final["sample_rate"] == 16000 and final["channels"] == 1


def test_48k_stereo_microphone_is_resampled_and_mixed_down(pulse, clips, tmp_path):
    path, label = clips[0]
    samples, rate = soundfile.read(path, dtype="float32")
    wide = soxr.resample(samples, rate, 48000)
    stereo = tmp_path / "stereo48k.wav"
    soundfile.write(stereo, np.stack([wide, 0.5 * wide], axis=1), 48000, subtype="PCM_16")
    run = LiveRun("--device", "emo_mic48", "--rate", "48000", "--channels", "2", "--status-seconds", "0.2", env=pulse.env)
    run.wait_for_audio()
    play_each(pulse, run, [str(stereo)], mic="emo_mic48")
    code, stderr = run.stop()
    assert code == 0, stderr
    status = [e for e in run.events if e["type"] == "status"]
    assert status[-1]["sample_rate"] == 48000 and status[-1]["channels"] == 2
    (labels,) = segments(run.events)
    assert collections.Counter(labels).most_common(1)[0][0] == label, labels


def test_a_microphone_opened_at_8k_gives_one_warning_line(pulse):
    run = LiveRun("--device", "emo_mic", "--rate", "8000", "--status-seconds", "0.2", env=pulse.env)
    run.wait_for_audio()
    code, stderr = run.stop()
    assert code == 0 and stderr.splitlines() == ["rtser: warning: audio at 8000 Hz holds nothing above 4000 Hz but the model reads "
                                                  "up to 8000 Hz: expect missed speech and lower accuracy (record at 16000 Hz or more)"], stderr  # fmt: skip


def test_a_vanished_sound_device_is_reopened_as_soon_as_its_server_is_back(pulse, clips, tmp_path):
    config = tmp_path / "board.yaml"
    config.write_text("audio: {device: emo_mic, retry_seconds: [0.5, 8.0], stall_seconds: 2.0}\noutput: {status_seconds: 0.2}\n")
    run = LiveRun("--config", str(config), env=pulse.env)
    try:
        run.wait_for_audio()
        killed = len(run.events)  # a slow start may have reopened the device already: look only later
        pulse.kill()
        lost = run.wait_for(lambda e: e["type"] == "status" and e["state"] == "device_lost", 15, "device_lost", after=killed)
        # the backoff grows while the server is down (0.5, 1, 2, 4 s ...)
        waiting = run.wait_for(lambda e: e.get("next_retry_seconds", 0) >= 4, 30, "a 4 s backoff", after=killed)
    finally:
        pulse.start()
    back = run.wait_for(lambda e: e["type"] == "status" and e["state"] == "listening" and e["device_restarts"] > lost["device_restarts"], 30, "device back", after=killed)
    # reopened because the server's socket came back, not when the backoff allowed
    assert back["timestamp"] - waiting["timestamp"] < waiting["next_retry_seconds"]
    assert back["time"] >= lost["time"] and back["device"] == lost["device"] == "emo_mic"
    run.wait_for_audio(after=run.events.index(back))
    play_each(pulse, run, [clips[0][0]])
    code, stderr = run.stop()
    assert code == 0
    assert [labels for labels in segments(run.events)][-1], "no emotion after the device came back"
    # PortAudio's own lines about the lost stream come as rtser warnings
    assert all(line.startswith("rtser: ") for line in stderr.splitlines()), stderr


class SlowSink:
    """A sink that stalls the recognizer's loop once, as a blocked pipe or a slow disk would."""

    def __init__(self, stall_seconds: float):
        self.stall_seconds = stall_seconds
        self.events: list[dict] = []

    def deliver(self, event: dict) -> None:
        self.events.append(event)
        if event["type"] == "emotion" and self.stall_seconds:
            stall, self.stall_seconds = self.stall_seconds, 0
            threading.Event().wait(stall)

    def stats(self) -> dict:
        return {}

    def close(self) -> int:
        return 0


def test_a_stalled_consumer_drops_reports_and_recovers_within_one_window(pulse_here, tmp_path):
    names = ("03a05Wa.wav", "03a02Ta.wav", "08a01Na.wav", "09b03Wb.wav")
    speech = np.concatenate([soundfile.read(os.path.join(DATA, "emodb", "wav", name), dtype="float32")[0] for name in names])
    long_clip = tmp_path / "speech.wav"
    soundfile.write(long_clip, speech, 16000)
    config = load_listen_config(None, {"audio": {"device": "emo_mic", "buffer_seconds": 1.0}, "output": {"status_seconds": 0.0}})
    recognizer = Recognizer()
    sink = SlowSink(stall_seconds=2.0)
    listener = Listener(config, recognizer, [sink])
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: listener.microphone.rate and listener.position > 0, 20, "audio")
        assert pulse_here.play(str(long_clip)).wait(timeout=60) == 0
    finally:
        stop.set()
        thread.join(timeout=30)
    overflow = [e for e in sink.events if e.get("event") == "overflow"]
    assert len(overflow) == 1 and overflow[0]["lost_seconds"] >= 0.9
    assert listener.dropped_seconds == pytest.approx(overflow[0]["lost_seconds"])
    gap_end = overflow[0]["time"] + overflow[0]["lost_seconds"]
    after = [e for e in sink.events if e["type"] == "emotion" and e["start"] >= gap_end - 1e-3]
    assert after, "no emotion events after the stall"
    window = recognizer.manifest.window.seconds
    assert after[0]["end"] - gap_end <= window  # recovered within one window
    assert all(not (e["start"] < gap_end - 1e-3 < e["end"]) for e in sink.events if e["type"] == "emotion")


def test_a_sink_that_blocks_or_fails_never_blocks_the_caller_and_counts_what_it_lost():
    reader, writer = os.pipe()  # a real pipe nobody reads: its writer blocks once it holds 64 KB
    blocked = QueuedSink(LineSink(os.fdopen(writer, "w")), queue_size=100)
    started = time.monotonic()
    for n in range(1000):
        blocked.deliver({"type": "status", "n": n, "padding": "x" * 3000})
    assert time.monotonic() - started < 1.0
    stats = blocked.stats()["stdout"]
    assert stats["queued"] <= 101 and stats["dropped"] >= 1000 - 101 - 64 * 1024 // 3000
    fitted = 64 * 1024 // 3000 + 1  # what the pipe can hold
    assert 1000 - fitted <= blocked.close(timeout=0.2) <= 1000
    os.close(reader)

    disk_full = open("/dev/full", "w")
    full = QueuedSink(LineSink(disk_full))
    for n in range(10):
        full.deliver({"type": "status", "n": n})
    wait_for(lambda: full.failed is not None, 5, "the write to fail")
    assert "No space left on device" in full.failed and full.close() == 10
    with contextlib.suppress(OSError):  # what it could not write is still in its buffer
        disk_full.close()


def test_status_events_go_on_when_the_wall_clock_is_set_back(pulse_here, monkeypatch):
    config = load_listen_config(None, {"audio": {"device": "emo_mic"}, "output": {"status_seconds": 0.1}})
    statuses = []

    class Collect:
        name = "collect"

        def deliver(self, event):
            if event["type"] == "status":
                statuses.append(event)

        def stats(self):
            return {}

    listener = Listener(config, Recognizer(), [Collect()])
    stop = threading.Event()
    thread = threading.Thread(target=listener.run, args=(stop,))
    thread.start()
    wait_for(lambda: len(statuses) >= 3, 20, "status events")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # NTP sets the clock an hour back
    before = len(statuses)
    wait_for(lambda: len(statuses) >= before + 5, 10, "status events after the clock went back")
    stop.set()
    thread.join(10)
    listener.close_device()
    assert statuses[-1]["state"] == "stopped"


def test_a_silent_microphone_is_reported_and_the_meter_shows_the_level(pulse):
    run = LiveRun("--device", "emo_mic", "--status-seconds", "0.5", "--meter", env=pulse.env)  # nothing plays: digital silence
    quiet = run.wait_for(lambda e: e.get("event") == "input_too_quiet", 30, "the quiet input to be reported")
    assert quiet["level_dbfs"] < -70 and quiet["time"] >= 9.9  # the stream time before the block that made the 10 s
    code, stderr = run.stop()
    assert code == 0
    assert stderr.count("rtser: warning: the input has stayed below -70 dBFS for 10 s") == 1  # once, not every block
    meter = [line for line in stderr.splitlines() if "dBFS" in line and "warning" not in line]
    assert meter and all(line.split()[0] == "-120.0" or float(line.split()[0]) < -70 for line in meter) and "too quiet" in meter[-1]


def test_the_sound_servers_default_device_is_named_by_the_source_behind_it(pulse):
    run = LiveRun("--status-seconds", "0.2", env=pulse.env)  # no --device: PortAudio's default, the sound server
    listening = run.wait_for(lambda e: e["type"] == "status" and e["state"] == "listening", 20, "listening")
    code, stderr = run.stop()
    assert code == 0 and stderr == ""
    assert listening["device"] == "default (emo_mic_src)"  # the server's default source, not just "default"
