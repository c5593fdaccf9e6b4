"""Events over MQTT to a real mosquitto broker: topics, availability, discovery, outages, the queue
bound, authentication and TLS."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from rtser.config import MqttSettings, TlsSettings
from rtser.errors import RtserError
from rtser.mqtt import MqttSink

from .conftest import ROOT, run_rtser
from .realparts import LiveRun, Mosquitto, Subscriber, accepts, free_port, need, play_each, wait_for


@pytest.fixture
def broker(tmp_path):
    server = Mosquitto(str(tmp_path))
    server.start()
    yield server
    server.stop()


def board_file(tmp_path, broker: Mosquitto, site: str, **mqtt) -> str:
    settings = {"host": "127.0.0.1", "port": broker.port, "site_id": site, **mqtt}
    path = tmp_path / "board.yaml"
    path.write_text(json.dumps({"audio": {"device": "emo_mic"}, "mqtt": settings}))
    return str(path)


def event(n: int) -> dict:
    return {"type": "emotion", "start": float(n), "end": n + 3.0, "label": "anger", "confidence": 0.9, "probs": {"anger": 0.9}}


def test_listen_publishes_every_event_with_availability_and_discovery(pulse, broker, clips, tmp_path):
    watcher = Subscriber(broker.port, ["rtser/kitchen/#", "homeassistant/#"])
    run = LiveRun("--config", board_file(tmp_path, broker, "kitchen", discovery=True), "--status-seconds", "0.5", env=pulse.env)
    run.wait_for_audio()
    play_each(pulse, run, [clips[0][0]])
    code, stderr = run.stop()
    assert code == 0 and stderr == ""
    wait_for(lambda: (("rtser/kitchen/status", b"offline", False) in watcher.messages), 10, "offline")
    watcher.close()
    availability = [payload for topic, payload, _ in watcher.messages if topic == "rtser/kitchen/status"]
    assert availability[0] == b"online" and availability[-1] == b"offline"
    published = {
        "utterance": watcher.events("rtser/kitchen/utterance"),
        "emotion": watcher.events("rtser/kitchen/emotion"),
        "speech": watcher.events("rtser/kitchen/speech"),
        "status": watcher.events("rtser/kitchen/health"),
    }
    for kind, received in published.items():
        printed = [e for e in run.events if e["type"] == kind]
        assert printed and received == printed, kind
    configs = {topic: json.loads(payload) for topic, payload, _ in watcher.messages if topic.startswith("homeassistant/")}
    assert set(configs) == {
        "homeassistant/sensor/rtser_kitchen/utterance/config",
        "homeassistant/sensor/rtser_kitchen/emotion/config",
        "homeassistant/sensor/rtser_kitchen/confidence/config",
        "homeassistant/binary_sensor/rtser_kitchen/speech/config",
    }
    assert configs["homeassistant/sensor/rtser_kitchen/emotion/config"]["state_topic"] == "rtser/kitchen/emotion"
    assert configs["homeassistant/sensor/rtser_kitchen/utterance/config"]["state_topic"] == "rtser/kitchen/utterance"
    assert all(c["availability_topic"] == "rtser/kitchen/status" for c in configs.values())
    # retained: a client that comes later sees the last availability and the discovery configs
    late = Subscriber(broker.port, ["rtser/kitchen/status", "homeassistant/#"])
    wait_for(lambda: len(late.messages) == 5, 5, "retained messages")
    late.close()
    assert ("rtser/kitchen/status", b"offline", True) in late.messages


def test_a_30_second_broker_outage_loses_no_event(pulse, broker, clips, tmp_path):
    watcher = Subscriber(broker.port, ["rtser/hall/#"])
    run = LiveRun("--config", board_file(tmp_path, broker, "hall"), "--status-seconds", "1", env=pulse.env)
    run.wait_for_audio()
    play_each(pulse, run, [clips[0][0]])
    broker.stop()
    down = time.monotonic()
    noticed = run.wait_for(lambda e: e["type"] == "status" and not e["mqtt"]["connected"], 10, "rtser to notice the outage")
    assert noticed.get("event") == "mqtt_disconnected"  # reported when it happens, not at the next periodic status
    play_each(pulse, run, [clips[1][0]])  # speech while the broker is away
    time.sleep(max(0.0, 30 - (time.monotonic() - down)))
    queued = run.wait_for(lambda e: e["type"] == "status" and e["mqtt"]["queued"] >= 20, 10, "queued events")
    broker.start()
    back = run.wait_for(lambda e: e["type"] == "status" and e["mqtt"]["connected"], 30, "reconnection", after=run.events.index(queued))
    assert back.get("event") == "mqtt_connected"
    play_each(pulse, run, [clips[0][0]])
    code, stderr = run.stop()
    assert code == 0 and "Traceback" not in stderr
    wait_for(lambda: len(watcher.events("rtser/hall/")) >= len(run.events) - 1, 15, "the queued events")
    watcher.close()
    received = watcher.events("rtser/hall/")
    # Every event printed while listening reached the broker, in order; only the final "stopped"
    # status may be missing (it is published last, after the sink has been told to close).
    printed = [e for e in run.events if not (e["type"] == "status" and e["state"] == "stopped")]
    assert [e for e in received if e in printed] == printed
    assert queued["mqtt"]["dropped"] == 0 and all(e.get("mqtt", {}).get("dropped", 0) == 0 for e in run.events)
    assert sum(1 for e in printed if e["type"] == "emotion" and e["timestamp"] > down) > 0


def test_a_60_second_outage_within_the_queue_bound_loses_nothing(broker):
    watcher = Subscriber(broker.port, ["rtser/attic/#"])
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=broker.port, site_id="attic", queue_size=500, retry_seconds=(1, 4)))
    assert sink.start() is None
    sink.deliver(event(0))
    wait_for(lambda: sink.stats()["mqtt"]["queued"] == 0, 10, "the first event to be acknowledged")
    broker.stop()
    wait_for(lambda: not sink.stats()["mqtt"]["connected"], 10, "the sink to notice")
    started = time.monotonic()
    n = 1
    while time.monotonic() - started < 60:  # two events a second, as a talking room gives
        sink.deliver(event(n))
        n += 1
        time.sleep(0.5)
    assert sink.stats()["mqtt"] == {"connected": False, "queued": n - 1, "dropped": 0}
    broker.start()
    wait_for(lambda: len(watcher.events("emotion")) == n, 30, "all events")
    assert sink.close() == 0
    watcher.close()
    assert [e["start"] for e in watcher.events("emotion")] == [float(i) for i in range(n)]


def test_beyond_the_queue_bound_the_oldest_are_dropped_and_counted(broker):
    watcher = Subscriber(broker.port, ["rtser/cellar/#"])
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=broker.port, site_id="cellar", queue_size=5, retry_seconds=(1, 2)))
    sink.start()
    broker.stop()
    wait_for(lambda: not sink.stats()["mqtt"]["connected"], 10, "the sink to notice")
    for n in range(12):
        sink.deliver(event(n))
    assert sink.stats()["mqtt"] == {"connected": False, "queued": 5, "dropped": 7}
    broker.start()
    wait_for(lambda: len(watcher.events("emotion")) == 5, 30, "the kept events")
    assert sink.close() == 0
    watcher.close()
    assert [e["start"] for e in watcher.events("emotion")] == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_broker_down_at_start_is_a_warning_and_events_wait(tmp_path):
    down = Mosquitto(str(tmp_path))  # configured, not started yet
    sink = MqttSink(MqttSettings(host="127.0.0.1", port=down.port, site_id="porch", retry_seconds=(1, 1)))
    warning = sink.start()
    assert warning and "not reachable" in warning and "queued" in warning
    sink.deliver(event(1))
    down.start()
    try:
        watcher = Subscriber(down.port, ["rtser/porch/#"])
        sink.deliver(event(2))
        wait_for(lambda: len(watcher.events("emotion")) >= 1, 20, "events after the broker came up")
        assert sink.close() == 0
        watcher.close()
        assert event(2) in watcher.events("emotion")
    finally:
        down.stop()


@pytest.fixture
def secure_broker(tmp_path):
    """mosquitto with a password file on a plain listener and on a TLS listener (self-signed CA)."""
    folder = tmp_path
    openssl = need("openssl")
    subprocess.run([need("mosquitto_passwd"), "-b", "-c", str(folder / "passwords"), "robot", "right-password"], check=True)
    run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True, cwd=folder)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=rtser test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt",
        "-days", "2", "-extfile", "san.ext")  # fmt: skip
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "other.key", "-out", "other-ca.crt", "-days", "2", "-subj", "/CN=other CA")
    tls_port = free_port()
    server = Mosquitto(
        str(folder),
        [
            "allow_anonymous false",
            f"password_file {folder}/passwords",
            f"listener {tls_port} 127.0.0.1",
            f"cafile {folder}/ca.crt",
            f"certfile {folder}/server.crt",
            f"keyfile {folder}/server.key",
        ],
    )
    server.start()
    wait_for(lambda: accepts(tls_port), 10, "the TLS listener")
    yield server, tls_port, folder
    server.stop()


def test_wrong_password_is_one_clear_error(pulse, secure_broker, tmp_path):
    server, _, _ = secure_broker
    path = tmp_path / "board.yaml"
    path.write_text(f"audio: {{device: emo_mic}}\nmqtt: {{host: 127.0.0.1, port: {server.port}, username: robot}}\n")
    done = run_rtser("listen", "--config", str(path), env={**pulse.env, "RTSER_MQTT_PASSWORD": "wrong-password"})
    assert done.returncode == 2
    assert done.stderr.startswith(f"rtser: error: MQTT broker 127.0.0.1:{server.port} refused the connection: ")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "wrong-password" not in done.stderr + done.stdout


def test_right_password_and_tls_deliver(secure_broker):
    server, tls_port, folder = secure_broker
    watcher = Subscriber(tls_port, ["rtser/vault/#"], username="robot", password="right-password", ca_certs=str(folder / "ca.crt"))
    for port, tls in ((server.port, None), (tls_port, TlsSettings(ca_certs=str(folder / "ca.crt")))):
        settings = MqttSettings(host="127.0.0.1", port=port, site_id="vault", username="robot", password="right-password", tls=tls)
        sink = MqttSink(settings)
        assert sink.start() is None
        sink.deliver(event(port))
        assert sink.close() == 0
    wait_for(lambda: len(watcher.events("emotion")) == 2, 10, "events over plain and TLS connections")
    watcher.close()


def test_tls_with_an_unknown_certificate_authority_is_refused(secure_broker):
    _, tls_port, folder = secure_broker
    settings = MqttSettings(
        host="127.0.0.1", port=tls_port, site_id="vault", username="robot", password="right-password",
        tls=TlsSettings(ca_certs=str(folder / "other-ca.crt")),
    )  # fmt: skip
    with pytest.raises(RtserError, match=f"TLS with MQTT broker 127.0.0.1:{tls_port} failed: CERTIFICATE_VERIFY_FAILED"):
        MqttSink(settings).start()


def _stalled_listen(pulse, broker, tmp_path, site: str) -> subprocess.Popen:
    """``rtser listen`` whose standard output is a pipe nobody reads, publishing to the broker."""
    command = [sys.executable, "-m", "rtser", "listen", "--config", board_file(tmp_path, broker, site), "--status-seconds", "0.05"]
    return subprocess.Popen(command, cwd=ROOT, env=pulse.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop_within(process: subprocess.Popen, seconds: float) -> float:
    """SIGTERM; how long the process took to end (waiting at most ``seconds``)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=seconds)
    return time.monotonic() - started


def test_a_stalled_stdout_reader_costs_only_stdout_events_and_sigterm_still_ends_rtser(pulse, broker, tmp_path):
    watcher = Subscriber(broker.port, ["rtser/stalled/#"])
    process = _stalled_listen(pulse, broker, tmp_path, "stalled")
    try:
        # status events (about 300 bytes) 20 times a second fill the 64 KB pipe within seconds; MQTT must go on
        wait_for(lambda: len(watcher.events("rtser/stalled/health")) > 400, 60, "status events past a full pipe")
        later = len(watcher.events("rtser/stalled/health"))
        wait_for(lambda: len(watcher.events("rtser/stalled/health")) > later + 20, 10, "status events still coming")
        assert watcher.events("rtser/stalled/health")[-1]["stdout"]["queued"] > 100  # waiting for the reader, counted in status
        assert _stop_within(process, 30) < 3 and process.returncode == 0
    finally:
        process.kill()
    wait_for(lambda: any(e["state"] == "stopped" for e in watcher.events("rtser/stalled/health")), 10, "the final status")
    watcher.close()


def test_sigterm_ends_rtser_within_two_seconds_when_the_sound_server_hangs(pulse, broker, tmp_path):
    watcher = Subscriber(broker.port, ["rtser/frozen/#"])
    run = LiveRun("--config", board_file(tmp_path, broker, "frozen"), "--status-seconds", "0.2", env=pulse.env)
    run.wait_for_audio()
    pulse.freeze(True)
    try:
        run.wait_for(lambda e: e["type"] == "status" and e["state"] == "device_lost", 20, "the device lost")
        time.sleep(1.0)  # rtser is now stuck in PortAudio, reopening the device on a server that does not answer
        started = time.monotonic()
        code, _ = run.stop()
        took = time.monotonic() - started
    finally:
        pulse.freeze(False)
    assert code == 0 and took < 3.0, took
    final = run.events[-1]
    assert final["type"] == "status" and final["state"] == "stopped"
    wait_for(lambda: any(e["state"] == "stopped" for e in watcher.events("rtser/frozen/health")), 10, "the final status on MQTT")
    watcher.close()


def test_a_missing_microphone_is_reported_before_the_broker_is_tried(pulse, tmp_path):
    path = tmp_path / "board.yaml"
    path.write_text(f"audio: {{device: no-such-microphone}}\nmqtt: {{host: 127.0.0.1, port: {free_port()}}}\n")
    done = run_rtser("listen", "--config", str(path), env=pulse.env)
    assert done.returncode == 2 and done.stderr == "rtser: error: no input device matches 'no-such-microphone' (see `rtser devices`)\n"
