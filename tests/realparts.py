"""Real parts for tests, started on loopback by the tests themselves (see ../shared/recipes):
a PulseAudio daemon whose virtual microphones play back what is played into null sinks, and a
mosquitto broker (plain, with a password file, or with TLS)."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

# name: (rate, channels) of each virtual microphone; PortAudio sees each as an ALSA device of that name.
VIRTUAL_MICS = {"emo_mic": (16000, 1), "emo_mic48": (48000, 2)}


def need(program: str) -> str:
    """The path of a system program the test needs; a missing one fails the test (never skips it)."""
    path = shutil.which(program)
    if path is None:
        pytest.fail(f"{program} is not installed; scripts/test.sh installs it (apt-get)")
    return path


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns something true; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class PulseAudio:
    """A private PulseAudio daemon with a null sink and a virtual source per virtual microphone."""

    def __init__(self, folder: str):
        self.folder = folder
        run, home = os.path.join(folder, "run"), os.path.join(folder, "home")
        for path in (run, home):
            os.makedirs(path, mode=0o700, exist_ok=True)
        self.socket = os.path.join(folder, "native")
        self.env = dict(os.environ, XDG_RUNTIME_DIR=run, HOME=home, PULSE_SERVER=f"unix:{self.socket}")
        lines = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}"]
        alsa = []
        for mic, (rate, channels) in VIRTUAL_MICS.items():
            sink = f"{mic}_spk"
            lines.append(f"load-module module-null-sink sink_name={sink} rate={rate} channels={channels} format=s16le")
            lines.append(f"load-module module-virtual-source source_name={mic}_src master={sink}.monitor")
            alsa.append(f'pcm.{mic} {{ type pulse; device "{mic}_src" }}')
        lines.append("set-default-source emo_mic_src")
        self.config = os.path.join(folder, "pa.conf")
        with open(self.config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        with open(os.path.join(home, ".asoundrc"), "w") as handle:
            handle.write("\n".join(alsa) + "\n")

    def start(self) -> None:
        """Start the daemon and wait until it answers."""
        subprocess.run(
            [need("pulseaudio"), "-n", "-F", self.config, "--exit-idle-time=-1", "--daemonize=yes",
             "--use-pid-file=yes", f"--log-target=file:{self.folder}/pa.log"],
            env=self.env, check=True, timeout=30,
        )  # fmt: skip
        wait_for(lambda: subprocess.run([need("pactl"), "info"], env=self.env, capture_output=True).returncode == 0, 15, "pulseaudio")

    def pid(self) -> int | None:
        """The daemon's process id, None when it is not running."""
        try:
            return int(open(os.path.join(self.env["XDG_RUNTIME_DIR"], "pulse", "pid")).read().strip())
        except (OSError, ValueError):
            return None

    def freeze(self, frozen: bool) -> None:
        """Stop the daemon's process where it is (SIGSTOP), as a hung sound server, or let it go on."""
        os.kill(self.pid(), signal.SIGSTOP if frozen else signal.SIGCONT)

    def kill(self) -> None:
        """Stop the daemon abruptly, as a sound server crash or an unplugged card would."""
        pid_file = os.path.join(self.env["XDG_RUNTIME_DIR"], "pulse", "pid")
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 10, "pulseaudio to exit")
        for leftover in (pid_file, self.socket):
            if os.path.exists(leftover):
                os.unlink(leftover)

    def suspend(self, mic: str, suspended: bool) -> None:
        """Stop (or restart) a virtual microphone's audio while its streams stay open, as a stalled device would."""
        subprocess.run([need("pactl"), "suspend-source", f"{mic}_src", "1" if suspended else "0"], env=self.env, check=True, timeout=10)

    def play(self, path: str, mic: str = "emo_mic") -> subprocess.Popen:
        """Start playing an audio file into a virtual microphone (paced in real time)."""
        return subprocess.Popen([need("paplay"), f"--device={mic}_spk", path], env=self.env)


def segments(events: list[dict]) -> list[list[str]]:
    """The emotion labels of each speech segment (from speech start to speech stop)."""
    found, current = [], None
    for event in events:
        if event["type"] == "speech" and event["state"] == "start":
            current = []
        elif event["type"] == "speech" and event["state"] == "stop" and current is not None:
            found.append(current)
            current = None
        elif event["type"] == "emotion" and current is not None:
            current.append(event["label"])
    return found


def play_each(pulse: PulseAudio, run: LiveRun, paths: list[str], mic: str = "emo_mic") -> None:
    for count, path in enumerate(paths, start=1):
        assert pulse.play(path, mic).wait(timeout=30) == 0
        run.wait_for(lambda e, n=count: e["type"] == "speech" and e["state"] == "stop" and n <= _stops(run), 15, f"end of speech {count}")


def _stops(run: LiveRun) -> int:
    return sum(1 for e in list(run.events) if e["type"] == "speech" and e["state"] == "stop")


class Mosquitto:
    """A mosquitto broker on a free loopback port; ``extra`` lines go into its config."""

    def __init__(self, folder: str, extra: list[str] | None = None, port: int | None = None):
        self.folder = folder
        self.port = port or free_port()
        self.config = os.path.join(folder, f"mosquitto-{self.port}.conf")
        lines = [
            f"listener {self.port} 127.0.0.1",
            "set_tcp_nodelay true",
            "persistence true",
            f"persistence_location {folder}/",
            f"user {getpass.getuser()}",  # as root, stay root: the test's files are private to it
            *(extra or ["allow_anonymous true"]),
        ]
        with open(self.config, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        self.process = subprocess.Popen([need("mosquitto"), "-c", self.config], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: accepts(self.port) or self.process.poll() is not None, 15, "mosquitto")
        if self.process.poll() is not None:
            raise AssertionError(f"mosquitto failed: {self.process.stderr.read().decode(errors='replace')}")

    def stop(self) -> None:
        """Stop the broker (it saves its persistent sessions)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def accepts(port: int) -> bool:
    """Whether something listens on this loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def rtser_process(*args: str, env: dict | None = None, prefix: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start the real ``rtser`` command line in the background (under ``prefix``, a tracer say),
    reading its stdout and stderr."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "rtser", *args], cwd=root, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


class LiveRun:
    """A running ``rtser listen`` whose JSON lines are collected as they come."""

    def __init__(self, *args: str, env: dict | None = None, prefix: tuple[str, ...] = ()):
        self.process = rtser_process("listen", *args, env=env, prefix=prefix)
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.events.append(json.loads(line))

    def wait_for(self, predicate, timeout: float, what: str, after: int = 0) -> dict:
        """The first event from index ``after`` on that satisfies ``predicate``, waiting for it if need be."""
        return self._wait(lambda events: next((e for e in events[after:] if predicate(e)), None), timeout, what)

    def wait_for_audio(self, timeout: float = 20, after: int = 0) -> None:
        """Wait until the microphone delivers audio: the stream time rising between two status events
        (from index ``after`` on) of one opening of the device. A reopening moves the time on by the
        audio missed, which is no proof that audio comes."""

        def rising(events):
            status = [e for e in events[after:] if e["type"] == "status" and e["state"] == "listening"]
            return any(b["time"] > a["time"] and b["device_restarts"] == a["device_restarts"] for a, b in zip(status, status[1:]))

        self._wait(rising, timeout, "audio from the microphone")

    def _wait(self, check, timeout: float, what: str):
        def found():
            if self.process.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"rtser listen exited ({self.process.returncode}): {self.process.stderr.read()}")
            return check(list(self.events))

        try:
            return wait_for(found, timeout, what)
        except AssertionError as failure:
            recent = "\n".join(json.dumps(e) for e in list(self.events)[-40:])
            raise AssertionError(f"{failure}; the last events:\n{recent}") from None

    def stop(self) -> tuple[int, str]:
        """SIGTERM, as systemd sends it; returns the exit code and stderr."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        return code, self.process.stderr.read()


class Subscriber:
    """A real MQTT client that records what it receives, with a session the broker keeps (QoS 1)
    across its own reconnects and the broker's restarts."""

    def __init__(self, port: int, topics: list[str], **connect):
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, bytes, bool]] = []
        self.connected = threading.Event()
        name = f"test-subscriber-{port}-{len(topics)}-{time.monotonic_ns()}"
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name, clean_session=False)
        self.client.reconnect_delay_set(1, 1)
        if "username" in connect:
            self.client.username_pw_set(connect["username"], connect.get("password"))
        if "ca_certs" in connect:
            self.client.tls_set(ca_certs=connect["ca_certs"])
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe([(t, 1) for t in topics]), self.connected.set())
        self.client.on_disconnect = lambda *args: self.connected.clear()
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload, bool(m.retain)))
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_for(self.connected.is_set, 10, "the subscriber to connect")
        time.sleep(0.2)  # the SUBACK

    def events(self, topic_part: str = "") -> list[dict]:
        """The JSON payloads received on topics containing ``topic_part``, without duplicates."""
        found, seen = [], set()
        for topic, payload, _ in list(self.messages):
            if topic_part in topic and payload.startswith(b"{") and payload not in seen:
                seen.add(payload)
                found.append(json.loads(payload))
        return found

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
