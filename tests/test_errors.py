"""Bad files and broken models: one clear line on stderr, a non-zero exit, never a traceback."""

import json
import os
import shutil
import subprocess
import sys
import threading
import wave

import numpy as np
import pytest
import soundfile
from hypothesis import given, settings
from hypothesis import strategies as st

from .conftest import DEFAULT_MODEL, ROOT, SAMPLE, run_rtser


def _assert_one_line_error(done, *fragments):
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("rtser: error:")
    for fragment in fragments:
        assert fragment in lines[0]


def _write_bad_audio(folder, kind):
    path = os.path.join(folder, f"{kind}.wav")
    if kind == "empty":
        open(path, "wb").close()
    elif kind == "text":
        with open(path, "w") as handle:
            handle.write("this is not audio\n" * 20)
    elif kind == "header_only":
        with wave.open(path, "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    elif kind == "truncated_header":
        with open(SAMPLE, "rb") as handle:
            data = handle.read(20)
        with open(path, "wb") as handle:
            handle.write(data)
    return path


@pytest.mark.parametrize(
    "kind,fragment",
    [("empty", "cannot decode"), ("text", "cannot decode"), ("header_only", "no audio"), ("truncated_header", "cannot decode")],
)
def test_unreadable_audio_is_one_clear_line(tmp_path, kind, fragment):
    _assert_one_line_error(run_rtser("replay", _write_bad_audio(tmp_path, kind)), fragment)


def test_missing_file_and_directory(tmp_path):
    _assert_one_line_error(run_rtser("replay", str(tmp_path / "nope.wav")), "no such file")
    _assert_one_line_error(run_rtser("replay", str(tmp_path)), "directory")


def test_truncated_data_gives_events_for_what_is_there(tmp_path):
    with open(SAMPLE, "rb") as handle:
        data = handle.read()
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: len(data) * 2 // 3])  # header still claims the full length
    done = run_rtser("replay", str(path))
    assert done.returncode == 0 and "Traceback" not in done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    duration = soundfile.info(SAMPLE).duration
    assert events and all(e.get("end", 0) <= duration * 2 / 3 + 0.05 for e in events)



def test_a_file_cut_short_while_it_is_read_is_reported(tmp_path):
    path = tmp_path / "shrinking.wav"
    samples, rate = soundfile.read(SAMPLE, dtype="int16")
    soundfile.write(path, np.tile(samples, 2), rate, subtype="PCM_16")
    replay = subprocess.Popen([sys.executable, "-m", "rtser", "replay", str(path), "--realtime"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert json.loads(replay.stdout.readline())["type"] == "speech"  # it is reading
    with open(path, "r+b") as handle:
        handle.truncate(handle.seek(0, 2) // 3)
    out, err = replay.communicate(timeout=60)
    assert replay.returncode == 0 and err.startswith("rtser: warning: ") and "its header announces (cut short?)" in err, err


@pytest.fixture
def model_copy(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(DEFAULT_MODEL, folder)
    return folder


def _edit_manifest(folder, change):
    path = folder / "model.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _refresh_hash(folder, kind):
    from rtser.manifest import sha256_of

    _edit_manifest(folder, lambda m: m["networks"][kind].update(sha256=sha256_of(str(folder / m["networks"][kind]["path"]))))


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_truncated_network_is_refused_by_hash(model_copy, kind):
    network = model_copy / f"model.{kind}"
    network.write_bytes(network.read_bytes()[:5000])
    _assert_one_line_error(run_rtser("replay", SAMPLE, "--model", str(model_copy), "--backend", kind), "sha256")


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_truncated_network_with_matching_hash_is_refused_on_load(model_copy, kind):
    network = model_copy / f"model.{kind}"
    network.write_bytes(network.read_bytes()[:5000])
    _refresh_hash(model_copy, kind)
    _assert_one_line_error(run_rtser("replay", SAMPLE, "--model", str(model_copy), "--backend", kind), "cannot load")


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_label_count_that_does_not_match_the_output(model_copy, kind):
    _edit_manifest(model_copy, lambda m: m["labels"].append("surprise"))
    _assert_one_line_error(run_rtser("info", "--model", str(model_copy), "--backend", kind), "outputs", "labels")


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_feature_shape_that_does_not_match_the_input(model_copy, kind):
    def fewer_mfcc(m):  # a consistent manifest for 20 MFCCs (and the pitch channels, if any, after them)
        kept = list(range(20)) + list(range(m["features"]["n_mfcc"], len(m["normalization"]["mean"])))
        m["features"]["n_mfcc"] = 20
        for key in ("mean", "std"):
            m["normalization"][key] = [m["normalization"][key][i] for i in kept]

    _edit_manifest(model_copy, fewer_mfcc)
    _assert_one_line_error(run_rtser("info", "--model", str(model_copy), "--backend", kind), "takes input")


@pytest.mark.parametrize(
    "change,fragment",
    [
        (lambda m: m.pop("labels"), "missing key 'labels'"),
        (lambda m: m.update(format="other"), "format"),
        (lambda m: m["features"].update(colour=1), "features.colour: unknown key"),
        (lambda m: m["normalization"].update(mean=[1.0]), "normalization has 1 means"),
        (lambda m: m["normalization"].update(method="window_cmn"), "normalization method must be 'speaker_running'"),
        (lambda m: m["normalization"]["std"].__setitem__(3, 0.0), "positive deviations"),
        (lambda m: m["normalization"].update(memory_seconds=float("nan")), "NaN is not a number a manifest may hold"),
        (lambda m: m.update(labels="anger"), "labels must be a list of names"),
        (lambda m: m["window"].update(seconds="NaN"), "window.seconds: expected a finite number, got str"),
        (lambda m: m["speech_gate"].update(frame_range_db=[]), "speech_gate.frame_range_db: expected a finite number, got list"),
        (lambda m: m["features"].update(n_fft=1 << 30), "n_fft 16-16384"),
        (lambda m: m["normalization"].update(voices={"temperature": 30, "mean": [[0.0]], "std": [[1.0]]}), "voices need mean and std of [voices, "),
        (lambda m: m["normalization"].update(voices={"temperature": 0, "mean": [m["normalization"]["mean"]], "std": [m["normalization"]["std"]]}), "positive temperature"),
        (lambda m: m.update(networks={}), "networks"),
        (lambda m: m.update(networks=[1, 2]), "networks: expected a mapping, got list"),
        (lambda m: m["networks"]["tflite"].update(input=[1, 2, 3]), "networks.tflite.input: expected a mapping, got list"),
        (lambda m: m["networks"]["tflite"].update(path=5), "network 'tflite' needs 'path' and 'sha256' as strings"),
        (lambda m: m.update(normalization=0.5), "normalization: expected a mapping, got float"),
        (lambda m: m["normalization"].update(prior_seconds="5"), "normalization.prior_seconds: expected a finite number, got str"),
        (lambda m: m.update(calibration={"temperature": "warm"}), "calibration.temperature: expected a finite number, got str"),
        (lambda m: m.update(calibration=3), "calibration: expected a mapping, got int"),
    ],
)
def test_inconsistent_manifest_is_refused(model_copy, change, fragment):
    _edit_manifest(model_copy, change)
    _assert_one_line_error(run_rtser("info", "--model", str(model_copy)), fragment)


def test_missing_manifest_and_missing_model(model_copy, tmp_path):
    (model_copy / "model.json").unlink()
    _assert_one_line_error(run_rtser("info", "--model", str(model_copy)), "model.json missing")
    _assert_one_line_error(run_rtser("info", "--model", str(tmp_path / "none")), "no such model")


def test_unsupported_sample_type_in_library_api():
    from rtser import Recognizer, RtserError

    with pytest.raises(RtserError, match="unsupported sample type"):
        Recognizer().push(np.zeros(100, dtype=np.complex64))


def test_version_is_the_installed_one():
    from importlib.metadata import version

    done = run_rtser("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"rtser {version('rtser')}"


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_before_or_after_the_subcommand(where):
    args = ["replay", "/nonexistent.wav"]
    done = run_rtser(*(["--debug", *args] if where == "before" else [*args, "--debug"]))
    assert done.returncode != 0 and "Traceback" in done.stderr and "RtserError: no such file" in done.stderr
    plain = run_rtser(*args)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr


@pytest.mark.parametrize(
    "setting, error",
    [({"smoothing": 2.5}, "smoothing must be in"), ({"switch_margin": 1.5}, "switch_margin must be in"), ({"smoothing": float("nan")}, "smoothing"),
     ({"threads": 100000}, "threads must be a whole number"), ({"threads": 0}, "threads"), ({"min_confidence": 1.5}, "min_confidence"), ({"pause_seconds": 0}, "pause_seconds"),
     ({"batch_seconds": 0}, "batch_seconds")],
)
def test_library_settings_out_of_range_are_one_rtser_error_naming_them(setting, error):
    from rtser import Recognizer, RtserError

    with pytest.raises(RtserError, match=error):
        Recognizer(**setting)



def _detector_network(folder):
    return folder / json.loads((folder / "model.json").read_text())["speech_detector"]["network"]


def _truncated_detector(folder, refresh_hash):
    network = _detector_network(folder)
    network.write_bytes(network.read_bytes()[:3000])
    if refresh_hash:
        from rtser.manifest import sha256_of

        _edit_manifest(folder, lambda m: m["speech_detector"].update(sha256=sha256_of(str(network))))


@pytest.mark.parametrize(
    "change,fragments",
    [
        (lambda folder: _truncated_detector(folder, False), ("speech detector network", "does not match the sha256")),
        (lambda folder: _truncated_detector(folder, True), ("unreadable speech detector network",)),
        (lambda folder: _detector_network(folder).unlink(), ("speech detector network missing",)),
        (lambda folder: _edit_manifest(folder, lambda m: m["speech_detector"].update(network="../voice_network.npz")), ("a file name in the model's folder",)),
        (lambda folder: _edit_manifest(folder, lambda m: m["speech_detector"].update(kind="silero")), ("speech_detector.kind must be one of",)),
    ],
)
def test_a_broken_speech_detector_is_one_clear_error(model_copy, change, fragments):
    change(model_copy)
    _assert_one_line_error(run_rtser("replay", SAMPLE, "--model", str(model_copy)), *fragments)


def test_output_that_cannot_be_written_and_a_closed_stderr_are_clean_errors(tmp_path):
    for redirect, fragment in ((">/dev/full", "cannot write to standard output: No space left on device"), (">&-", "standard output is closed")):
        done = subprocess.run(f"{sys.executable} -m rtser replay {SAMPLE} {redirect}", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
        _assert_one_line_error(done, fragment)
    # with standard error closed the error goes nowhere, never into the events on standard output
    done = subprocess.run(f"{sys.executable} -m rtser replay {tmp_path / 'none.wav'} 2>&-", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    # a reader that goes away early is no error
    done = subprocess.run(f"{sys.executable} -m rtser replay {SAMPLE} | head -1", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.stderr == "" and json.loads(done.stdout)["type"] == "speech"


def test_a_fifo_is_refused_at_once_and_bench_needs_audio(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    _assert_one_line_error(run_rtser("replay", str(fifo), timeout=20), "not a regular file")
    _assert_one_line_error(run_rtser("bench", "--seconds", "0"), "--seconds must be between 1 and 36000")


@pytest.mark.parametrize("rate", [True, 1, 2**50, float("nan"), -16000, 16000.5])
def test_a_sample_rate_rtser_cannot_take_is_one_error(rate):
    from rtser import Recognizer, RtserError

    with pytest.raises(RtserError, match="sample rate must be a whole number of Hz between 4000 and 768000"):
        Recognizer().push(np.zeros(1600, np.float32), rate)


def test_audio_in_a_shape_or_scale_that_gives_no_events_is_an_error_or_a_warning(speech):
    from rtser import AudioWarning, Recognizer, RtserError

    recognizer = Recognizer()
    with pytest.raises(RtserError, match=r"more than 64 channels: pass \[samples, channels\]"):
        recognizer.push(np.stack([speech, speech]), 16000)
    for gap in (float("inf"), -1.0, "3"):
        with pytest.raises(RtserError, match="a gap must be a finite number of seconds"):
            recognizer.gap(gap)
    int16 = np.round(speech * 32767)
    for samples, warning in ((int16.astype(np.float32), "float samples reach"), (int16.astype(np.int32), "int32 samples stay within the 16-bit range")):
        recognizer.reset()
        with pytest.warns(AudioWarning, match=warning) as caught:
            recognizer.push(samples, 16000)
            recognizer.push(samples, 16000)
        assert len(caught) == 1  # once per stream


def test_audio_narrower_than_the_models_band_is_a_warning_once_per_stream(speech):
    import warnings

    from rtser import AudioWarning, Recognizer

    recognizer = Recognizer()
    telephone = speech[::2]  # 8 kHz: nothing above 4 kHz of the 8 kHz the model's features read
    with pytest.warns(AudioWarning, match="audio at 8000 Hz holds nothing above 4000 Hz but the model reads up to 8000 Hz") as caught:
        recognizer.push(telephone, 8000)
        recognizer.push(telephone, 8000)
    assert len(caught) == 1
    for samples, rate in ((speech, 16000), (np.repeat(speech, 3), 48000)):
        recognizer.reset()
        with warnings.catch_warnings():
            warnings.simplefilter("error", AudioWarning)
            recognizer.push(samples, rate)


@pytest.mark.parametrize("kind,warning", [("float beyond full scale", "float samples reach"), ("8 kHz", "audio at 8000 Hz holds nothing above 4000 Hz")])
def test_the_command_line_says_an_audio_warning_in_one_line_once(tmp_path, kind, warning):
    samples, rate = soundfile.read(SAMPLE, dtype="float32")
    path = str(tmp_path / "odd.wav")
    if kind == "8 kHz":
        soundfile.write(path, samples[::2], 8000)
    else:  # read in blocks of 1 s whose peaks differ: still one warning
        soundfile.write(path, samples * 30, rate, subtype="FLOAT")
    done = run_rtser("replay", path, "--format", "json")
    assert done.returncode == 0 and any(json.loads(line)["type"] == "utterance" for line in done.stdout.splitlines())
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rtser: warning: {warning}"), done.stderr


def test_a_long_push_is_worked_on_in_bounded_memory():
    program = (
        "import resource, numpy as np, soundfile; from rtser import Recognizer\n"
        f"x, rate = soundfile.read({SAMPLE!r}, dtype='int16')\n"
        "recognizer = Recognizer(); recognizer.push(x[:1600], rate)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "events = recognizer.push(np.tile(x, 300 * rate // len(x)), rate) + recognizer.flush()\n"
        "print(len(events), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)\n"
    )
    done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=300)
    events, grown_mb = done.stdout.split()
    assert int(events) > 100 and float(grown_mb) < 100, done.stdout  # five minutes in one push (before: about 1.1 GB)


def test_pushes_from_several_threads_are_taken_one_at_a_time(speech):
    from rtser import Recognizer

    recognizer, failures, events = Recognizer(), [], []

    def pusher():
        try:
            for start in range(0, len(speech), 800):
                events.extend(recognizer.push(speech[start : start + 800], 16000))
        except Exception as err:  # noqa: BLE001 - any failure is the finding
            failures.append(repr(err))

    threads = [threading.Thread(target=pusher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events += recognizer.flush()
    assert failures == [] and any(e["type"] == "utterance" for e in events)


@settings(max_examples=120, deadline=None)
@given(path=st.lists(st.sampled_from(["features", "window", "speech_gate", "speech_detector", "normalization", "calibration", "labels", "networks", "n_fft",
                                      "seconds", "hop_seconds", "threshold", "mean", "temperature", "frame_range_db", "kind", "pitch", "0"]), min_size=1, max_size=3),
       value=st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=5) | st.lists(st.integers(), max_size=3) | st.just({}))
def test_any_damaged_manifest_is_run_or_refused_with_an_rtser_error(tmp_path_factory, path, value):
    from rtser import Recognizer, RtserError

    folder = tmp_path_factory.mktemp("model")
    for name in os.listdir(DEFAULT_MODEL):
        shutil.copy(os.path.join(DEFAULT_MODEL, name), folder / name)
    manifest = json.loads((folder / "model.json").read_text())
    target = manifest
    for key in path[:-1]:
        target = target.get(key) if isinstance(target, dict) else None
    if isinstance(target, dict):
        target[path[-1]] = value
    (folder / "model.json").write_text(json.dumps(manifest))
    try:
        recognizer = Recognizer(str(folder))
    except RtserError as err:
        assert "\n" not in str(err)
        return
    recognizer.push(np.zeros(4000, np.float32))
    recognizer.flush()


_NATIVE_WRITER = """
import os, sys, time
from rtser.errors import warn
from rtser.native import NativeLinesAsWarnings
with NativeLinesAsWarnings(debug=sys.argv[1] == "debug", every_seconds=60):
    warn("rtser's own line")
    for burst in range(2):  # what PortAudio writes to file descriptor 2 when a device goes away
        os.write(2, b"Expression 'alsa_snd_pcm_poll_descriptors_revents(...)' failed in 'src/hostapi/alsa/pa_linux_alsa.c'\\n"
                    b"Expression 'PaAlsaStream_WaitForFrames(...)' failed\\n")
        time.sleep(0.6)
"""


@pytest.mark.parametrize("mode", ["plain", "debug"])
def test_native_libraries_lines_become_rtser_warnings(mode):
    done = subprocess.run([sys.executable, "-c", _NATIVE_WRITER, mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == ""
    lines = done.stderr.splitlines()
    if mode == "debug":  # every native line as it was written
        assert lines[0] == "rtser: warning: rtser's own line" and len(lines) == 5 and "PaAlsaStream_WaitForFrames" in lines[2]
        return
    assert lines == [
        "rtser: warning: rtser's own line",
        "rtser: warning: a native library wrote: Expression 'alsa_snd_pcm_poll_descriptors_revents(...)' failed in "
        "'src/hostapi/alsa/pa_linux_alsa.c' (and 1 more line; --debug shows them)",
        "rtser: warning: 2 more lines from native libraries since the last warning (--debug shows them)",
    ]
