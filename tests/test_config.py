"""Board files, the typed config schema, and finding the device a user names."""

from __future__ import annotations

import dataclasses
import glob
import os
import re

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rtser.config import AudioSettings, ListenConfig, MqttSettings, OutputSettings, RecognizerSettings, TlsSettings, load_listen_config
from rtser.devices import InputDevice, resolve_device, same_device
from rtser.errors import RtserError
from rtser.schema import ConfigError

from .conftest import ROOT, run_rtser

BOARD_FILES = sorted(glob.glob(os.path.join(ROOT, "firmware_configs", "*.yaml")))
# every section and setting name of a board file, for the fuzzing test to draw from
KEYS = sorted({f.name for cls in (ListenConfig, AudioSettings, RecognizerSettings, MqttSettings, OutputSettings, TlsSettings) for f in dataclasses.fields(cls)})

# What PortAudio lists on a Raspberry Pi 5 with a USB microphone and a ReSpeaker HAT, and on a
# machine with ten cards (so that hw:1 and hw:10 both exist).
PI_DEVICES = [
    InputDevice(0, "vc4-hdmi-0: MAI PCM i2s-hifi-0 (hw:0,0)", 0, 48000.0),
    InputDevice(2, "USB PnP Sound Device: Audio (hw:2,0)", 1, 44100.0),
    InputDevice(3, "seeed-2mic-voicecard: bcm2835-i2s-wm8960-hifi wm8960-hifi-0 (hw:1,0)", 2, 16000.0),
    InputDevice(4, "pulse", 32, 44100.0),
    InputDevice(5, "default", 32, 44100.0),
]
MANY_CARDS = [InputDevice(i, f"Card {n}: USB Audio (hw:{n},0)", 1, 48000.0) for i, n in enumerate((1, 10, 11))]


def test_every_board_file_loads():
    names = {os.path.basename(p) for p in BOARD_FILES}
    assert {"raspberry-pi-5.yaml", "raspberry-pi-4.yaml", "raspberry-pi-zero-2w.yaml", "usb-microphone.yaml", "respeaker-2mic-hat.yaml"} <= names
    for path in BOARD_FILES:
        config = load_listen_config(path)
        assert isinstance(config, ListenConfig) and config.board and config.description


def test_board_devices_resolve_on_the_boards_they_describe():
    assert resolve_device(load_listen_config(os.path.join(ROOT, "firmware_configs", "raspberry-pi-5.yaml")).audio.device, PI_DEVICES).index == 2
    respeaker = load_listen_config(os.path.join(ROOT, "firmware_configs", "respeaker-2mic-hat.yaml"))
    assert resolve_device(respeaker.audio.device, PI_DEVICES).index == 3
    assert resolve_device(load_listen_config(os.path.join(ROOT, "firmware_configs", "usb-microphone.yaml")).audio.device, PI_DEVICES).index == 2


def test_a_lost_device_is_found_again_by_name_even_on_another_card_number():
    usb = resolve_device("hw:2", PI_DEVICES)
    plugged_back = [d for d in PI_DEVICES if d != usb] + [InputDevice(6, "USB PnP Sound Device: Audio (hw:3,0)", 1, 44100.0)]
    assert same_device(usb, plugged_back).index == 6  # `hw:2` itself would now find nothing
    assert same_device(usb, PI_DEVICES) == usb
    assert same_device(usb, [d for d in PI_DEVICES if d != usb]) is None  # still away: the setting decides
    assert same_device(usb, plugged_back + [usb]) is None  # two of that name: the setting decides


@pytest.mark.parametrize(
    "text, error",
    [
        ("audio:\n  sample_rate: 16k\n", "audio.sample_rate: expected an integer, got str '16k'"),
        ("audio:\n  devcie: 1\n", "audio.devcie: unknown key"),
        ("mqtt:\n  port: [1883]\n", "mqtt.port: expected an integer"),
        ("mqtt:\n  tls: {ca_cert: x}\n", "mqtt.tls.ca_cert: unknown key"),
        ("mqtt:\n  discovery: yes please\n", "mqtt.discovery: expected true or false"),
        ("recognizer: {backend: tensorflow}\n", "recognizer: backend must be auto, tflite or onnx"),
        ("recognizer: {smoothing: 2.5}\n", "recognizer: smoothing must be in"),
        ("recognizer: {switch_margin: 1.5}\n", "recognizer: switch_margin must be in"),
        ("recognizer: {pause_seconds: .nan}\n", "recognizer.pause_seconds: expected a finite number, got float nan"),
        ("recognizer: {pause_seconds: 600}\n", "recognizer: pause_seconds must be between 0.05 and 60, got 600"),
        ("recognizer: {batch_seconds: 2}\n", "recognizer: batch_seconds must be between 0.01 and 1, got 2"),
        ("audio: {stall_seconds: .inf}\n", "audio.stall_seconds: expected a finite number, got float inf"),
        ("audio: {sample_rate: 1}\n", "audio: sample_rate must be between 4000 and 768000 Hz, got 1"),
        ("audio: {buffer_seconds: 1.0e+9}\n", "buffer_seconds at least 4 blocks and at most 600"),
        ("output: {status_seconds: -1}\n", "output: status_seconds must be between 0 (only on changes) and 86400"),
        ("mqtt: {host: b, discovery: true, discovery_prefix: '#'}\n", "mqtt: discovery_prefix must be levels separated by '/'"),
        ("mqtt: {discovery_prefix: 'home/+/assistant'}\n", "mqtt: discovery_prefix must be levels separated by '/'"),
        ('mqtt: {site_id: "kitchen\\0"}\n', "mqtt: site_id must be one level of 1 to 200 bytes"),
        ("mqtt: {site_id: a/b}\n", "mqtt: site_id must be one level"),
        ("mqtt: {port: -1}\n", "mqtt: port must be between 1 and 65535, got -1"),
        ("mqtt: {keepalive: 70000}\n", "keepalive between 5 and 65535 seconds"),
        ("mqtt: {tls: {ca_certs: /nonexistent/ca.pem}}\n", "mqtt.tls: tls.ca_certs: no readable file at that path"),
        ("a: &x [1]\nb: *x\n", "line 1: anchors and aliases are not allowed"),
        ("board: " + "[" * 17 + "]" * 17 + "\n", "nested more than 16 levels deep"),
        ("recognizer: {threads: 100000}\n", "recognizer: threads must be a whole number from 1 to 64"),
        ("audio: {retry_seconds: [1, 2, 3]}\n", "audio.retry_seconds: expected 2 values, got 3"),
        ("output: 5\n", "output: expected a mapping, got int 5"),
        ("[1, 2]\n", "expected a mapping of settings at the top level"),
        ("audio: {channels: 2\n", "not valid YAML at line"),
    ],
)
def test_bad_board_files_are_refused_naming_the_key(tmp_path, text, error):
    path = tmp_path / "board.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: .*" + re.escape(error)):
        load_listen_config(str(path))
    done = run_rtser("listen", "--config", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("rtser: error: ") and error in done.stderr and done.stderr.count("\n") == 1


def test_command_line_overrides_the_file_and_secrets_come_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "board.yaml"
    path.write_text("audio: {device: 'hw:1'}\nmqtt: {host: broker, username: alice}\n")
    monkeypatch.setenv("RTSER_MQTT_USERNAME", "bob")
    monkeypatch.setenv("RTSER_MQTT_PASSWORD", "s3cret")
    config = load_listen_config(str(path), {"audio": {"device": "USB", "channel": None}, "mqtt": {"port": 1884}})
    assert config.audio.device == "USB" and config.audio.channel is None
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.username, config.mqtt.password) == ("broker", 1884, "alice", "s3cret")
    assert config.mqtt.broker_port == 1884 and load_listen_config(None).mqtt.host is None


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text("board: !!python/object/apply:os.system ['echo owned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_listen_config(str(path))


@pytest.mark.parametrize(
    "spec, index",
    [("hw:1", 0), ("hw:10", 1), ("plughw:10,0", 1), ("hw:11,0", 2), (1, 1), ("2", 2), ("card 10", 1)],
)
def test_alsa_names_match_the_card_exactly(spec, index):
    assert resolve_device(spec, MANY_CARDS).index == index


def test_device_names_indexes_and_defaults():
    assert resolve_device("usb pnp", PI_DEVICES).index == 2
    assert resolve_device("default", PI_DEVICES).index == 5  # a whole name beats a part of a longer one
    assert resolve_device("hw:CARD=seeed2micvoicec", PI_DEVICES).index == 3
    assert resolve_device(None, PI_DEVICES, default=4).index == 4
    assert resolve_device(None, PI_DEVICES, default=None).index == 0


@pytest.mark.parametrize(
    "spec, message",
    [
        ("hw:7", "no input device matches 'hw:7'"),
        ("17", "no input device with index 17"),
        ("Audio", "is ambiguous: 0: Card 1: USB Audio"),
        ("webcam", "no input device matches 'webcam'"),
    ],
)
def test_unknown_or_ambiguous_devices_are_refused(spec, message):
    with pytest.raises(RtserError, match=message):
        resolve_device(spec, MANY_CARDS)


def test_no_devices_at_all():
    with pytest.raises(RtserError, match="no audio input devices"):
        resolve_device("hw:1", [])


def test_errors_never_show_a_secret_or_the_lines_of_a_file_that_is_not_a_board_file(tmp_path):
    board = tmp_path / "board.yaml"
    board.write_text("mqtt:\n  host: broker\n  password: 98765432\n")
    shadow = tmp_path / "shadow"
    shadow.write_text("root:$6$rounds=5000$Zs4ltSecretHash:20228:0:99999:7:::\n")
    for path, key in ((board, "mqtt.password: expected a string, got int"), (shadow, "top level: an entry that is not a setting's name")):
        done = run_rtser("listen", "--config", str(path))
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and key in done.stderr, done.stderr
        assert "98765432" not in done.stderr and "Zs4lt" not in done.stderr


@pytest.mark.parametrize(
    "content, error",
    [
        (b"board: x\n" + b"# padding\n" * 200_000, "larger than 1 MB: not a configuration file"),
        (b"board: \xff\xfe\n", "not UTF-8 text: not a configuration file"),
        # a billion laughs: 401 bytes that expand to 10^9 strings if aliases are followed
        (b"a: &a [x,x,x,x,x,x,x,x,x,x]\n" + b"".join(b"%c: &%c [%s]\n" % (98 + i, 98 + i, b",".join([b"*%c" % (97 + i)] * 10)) for i in range(8)) + b"board: *i\n",
         "anchors and aliases are not allowed"),
    ],
)
def test_hostile_board_files_are_refused_quickly_in_one_short_line(tmp_path, content, error):
    path = tmp_path / "board.yaml"
    path.write_bytes(content)
    done = run_rtser("listen", "--config", str(path), timeout=20)
    assert done.returncode == 2 and done.stderr.startswith("rtser: error: ") and error in done.stderr and len(done.stderr) < 300, done.stderr[:300]


@settings(max_examples=150, deadline=None)
@given(board=st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=30,
))
def test_any_board_file_is_either_taken_or_refused_with_a_config_error(tmp_path_factory, board):
    path = tmp_path_factory.mktemp("board") / "board.yaml"
    path.write_text(yaml.safe_dump(board))
    try:
        load_listen_config(str(path))
    except ConfigError as err:
        assert "\n" not in str(err) and len(str(err)) < 400


SECTIONS = {"audio": AudioSettings, "recognizer": RecognizerSettings, "mqtt": MqttSettings, "output": OutputSettings}


def _bad_values(field: dataclasses.Field) -> list:
    """Values no setting of this field's type may take: another type, and numbers far out of range."""
    kind = str(field.type)
    bad: list = [{"not": "a value"}]
    if "tuple" in kind:
        bad += [[-1.0, -1.0], [1e12, 1e12]]
    elif "int" in kind and "str" not in kind:
        bad += [-(10**12), 10**12]
    elif "float" in kind:
        bad += [-1e12, 1e12]
    return bad


@pytest.mark.parametrize(
    "section, field, value",
    [(name, f.name, value) for name, cls in SECTIONS.items() for f in dataclasses.fields(cls) if f.name != "tls" for value in _bad_values(f)],
)
def test_every_setting_with_a_bad_value_is_refused_naming_it(tmp_path, section, field, value):
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump({section: {field: value}}))
    with pytest.raises(ConfigError) as refused:
        load_listen_config(str(path))
    assert field in str(refused.value) and "\n" not in str(refused.value)
