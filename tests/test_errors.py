"""Bad files and broken models: one clear line on stderr, a non-zero exit, never a traceback."""

import json
import os
import shutil
import wave

import numpy as np
import pytest
import soundfile

from .conftest import DEFAULT_MODEL, SAMPLE, run_rtser


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
        (lambda m: m["features"].update(colour=1), "unknown feature settings: colour"),
        (lambda m: m["normalization"].update(mean=[1.0]), "normalization has 1 means"),
        (lambda m: m["normalization"].update(method="window_cmn"), "normalization method must be 'speaker_running'"),
        (lambda m: m["normalization"]["std"].__setitem__(3, 0.0), "positive deviations"),
        (lambda m: m["normalization"].update(memory_seconds=float("nan")), "finite values"),
        (lambda m: m["normalization"].update(voices={"temperature": 30, "mean": [[0.0]], "std": [[1.0]]}), "voices need mean and std of [voices, "),
        (lambda m: m["normalization"].update(voices={"temperature": 0, "mean": [m["normalization"]["mean"]], "std": [m["normalization"]["std"]]}), "positive temperature"),
        (lambda m: m.update(networks={}), "networks"),
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
     ({"threads": 100000}, "threads must be a whole number"), ({"threads": 0}, "threads"), ({"min_confidence": 1.5}, "min_confidence"), ({"pause_seconds": 0}, "pause_seconds")],
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
