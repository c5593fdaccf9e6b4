"""The settings of ``rtser listen``: one YAML file per board and microphone (``firmware_configs/``).

Every section and key is optional; command-line options override the file. Secrets (MQTT user name
and password) come from the file or from the environment (``RTSER_MQTT_USERNAME``,
``RTSER_MQTT_PASSWORD``), never from the command line.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from .backends import BACKEND_CHOICES, check_threads
from .audio import MAX_CHANNELS, MAX_RATE, MIN_RATE
from .errors import RtserError
from .events import check_event_types
from .pipeline import BATCH_SECONDS, check_settings
from .schema import build, load, load_yaml
from .text import FORMATS


def _check_backoff(retry_seconds: tuple[float, float]) -> None:
    if not 0 < retry_seconds[0] <= retry_seconds[1] <= 3600:
        raise ValueError("retry_seconds must be [first, longest] with 0 < first <= longest <= 3600")


@dataclass
class AudioSettings:
    """Which microphone, and how to open it."""

    device: str | int | None = None  # index, "hw:1", "plughw:1,0" or a name substring; None: default input
    sample_rate: int | None = None  # capture rate; None: the model's rate if the device takes it, else its own
    channels: int | None = None  # channels to open; None: 1 if the device allows it, else all it has
    channel: int | None = None  # which opened channel to use; None: the mean of all (downmix)
    block_seconds: float = 0.05  # audio per capture callback
    buffer_seconds: float = 4.0  # ring buffer: how far the recognizer may fall behind before audio is dropped
    retry_seconds: tuple[float, float] = (0.5, 5.0)  # backoff from, to, when the device fails or disappears (the first retry is at once)
    stall_seconds: float = 3.0  # no audio for this long means the device is gone

    def __post_init__(self) -> None:
        if self.sample_rate is not None and not MIN_RATE <= self.sample_rate <= MAX_RATE:
            raise ValueError(f"sample_rate must be between {MIN_RATE} and {MAX_RATE} Hz, got {self.sample_rate}")
        if not 0.001 <= self.block_seconds <= 1 or not 4 * self.block_seconds <= self.buffer_seconds <= 600:
            raise ValueError("block_seconds must be between 0.001 and 1, and buffer_seconds at least 4 blocks and at most 600")
        _check_backoff(self.retry_seconds)
        if self.channels is not None and not 1 <= self.channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be between 1 and {MAX_CHANNELS}, got {self.channels}")
        if self.channel is not None and not 0 <= self.channel < (self.channels or MAX_CHANNELS):
            raise ValueError(f"channel {self.channel} is not one of the {self.channels or MAX_CHANNELS} channels that can be opened (counted from 0)")
        if not self.block_seconds < self.stall_seconds <= 3600:
            raise ValueError("stall_seconds must be longer than block_seconds and at most 3600")


@dataclass
class RecognizerSettings:
    """The model and how it is run."""

    model: str | None = None  # None: the shipped default model
    backend: str = "auto"  # auto | tflite | onnx
    hop_seconds: float | None = None  # None: the model's hop
    smoothing: float = 0.5
    switch_margin: float = 0.1
    pause_seconds: float | None = None  # None: the model's (a pause this long ends an utterance)
    min_confidence: float = 0.0  # an utterance less sure than this is labelled "uncertain"
    threads: int = 1
    batch_seconds: float = BATCH_SECONDS  # audio gathered before it is worked on: more costs less CPU, events come up to this much later

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_CHOICES:
            raise ValueError(f"backend must be {', '.join(BACKEND_CHOICES[:-1])} or {BACKEND_CHOICES[-1]}, got {self.backend!r}")
        try:  # the recognizer's own ranges
            check_threads(self.threads)
            check_settings(hop_seconds=self.hop_seconds, smoothing=self.smoothing, switch_margin=self.switch_margin, pause_seconds=self.pause_seconds,
                           min_confidence=self.min_confidence, batch_seconds=self.batch_seconds)  # fmt: skip
        except RtserError as err:
            raise ValueError(str(err)) from None


@dataclass
class TlsSettings:
    """TLS towards the broker; ``ca_certs`` None uses the system's certificate authorities."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False  # skip the host name check (self-signed test brokers only)

    def __post_init__(self) -> None:
        for name in ("ca_certs", "certfile", "keyfile"):
            path = getattr(self, name)
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"tls.{name}: no readable file at that path")


def check_topic_level(name: str, value: str, separators: bool) -> None:
    """An MQTT topic part: non-empty UTF-8 of at most 200 bytes, without wildcards (``+``, ``#``),
    NUL or other control characters, and without ``/`` unless ``separators``."""
    bad = "+#" if separators else "+#/"
    if (not value or len(value.encode("utf-8", "replace")) > 200 or any(c in bad or ord(c) < 32 or ord(c) == 127 for c in value)
            or (separators and "" in value.split("/"))):  # fmt: skip
        allowed = "levels separated by '/'" if separators else "one level"
        raise ValueError(f"{name} must be {allowed} of 1 to 200 bytes without '+', '#' or control characters")


@dataclass
class MqttSettings:
    """Where events go over MQTT; no ``host`` means no MQTT."""

    host: str | None = None
    port: int | None = None  # None: 1883, or 8883 with TLS
    site_id: str = field(default_factory=lambda: socket.gethostname().split(".")[0] or "rtser")
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    qos: int = 1
    keepalive: int = 30
    queue_size: int = 10000  # events kept while the broker is away; beyond it the oldest are dropped
    retry_seconds: tuple[float, float] = (1.0, 60.0)
    connect_timeout: float = 5.0  # how long start-up waits for the first connection
    discovery: bool = False  # publish Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        if self.qos not in (0, 1, 2):
            raise ValueError("qos must be 0, 1 or 2")
        if self.port is not None and not 1 <= self.port <= 65535:
            raise ValueError(f"port must be between 1 and 65535, got {self.port}")
        if not 1 <= self.queue_size <= 10_000_000 or not 5 <= self.keepalive <= 65535:
            raise ValueError("queue_size must be between 1 and 10000000 and keepalive between 5 and 65535 seconds")
        if not 0 < self.connect_timeout <= 300:
            raise ValueError("connect_timeout must be more than 0 and at most 300 seconds")
        if self.host is not None and (not self.host or len(self.host) > 253 or any(ord(c) <= 32 for c in self.host)):
            raise ValueError("host must be a host name or address")
        check_topic_level("site_id", self.site_id, separators=False)
        check_topic_level("discovery_prefix", self.discovery_prefix, separators=True)
        _check_backoff(self.retry_seconds)

    @property
    def broker_port(self) -> int:
        """The port to connect to."""
        return self.port or (8883 if self.tls else 1883)


@dataclass
class OutputSettings:
    """Local outputs."""

    stdout: bool = True  # events as JSON lines on standard output
    status_seconds: float = 30.0  # how often a status event reports counters (0: only on changes)
    events: list[str] | None = None  # event types printed and published; None: all
    format: str = "auto"  # standard output as json lines, or text for people; auto: text on a terminal

    def __post_init__(self) -> None:
        check_event_types(self.events)
        if self.format not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not 0 <= self.status_seconds <= 86400:
            raise ValueError(f"status_seconds must be between 0 (only on changes) and 86400, got {self.status_seconds}")


@dataclass
class ListenConfig:
    """Everything ``rtser listen`` needs; see ``firmware_configs/README.md``."""

    board: str = "generic"
    description: str = ""
    audio: AudioSettings = field(default_factory=AudioSettings)
    recognizer: RecognizerSettings = field(default_factory=RecognizerSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    output: OutputSettings = field(default_factory=OutputSettings)


def load_listen_config(path: str | None, overrides: dict | None = None) -> ListenConfig:
    """The config of ``path`` (or the defaults), with ``overrides`` (``{"audio": {"device": ...}}``)
    applied and MQTT secrets taken from the environment when the file has none."""
    raw = load_yaml(path) if path else {}
    for section, values in (overrides or {}).items():
        current = raw.get(section) or {}
        if isinstance(current, dict):  # anything else is reported by the schema, naming the section
            raw[section] = {**current, **{k: v for k, v in values.items() if v is not None}}
    mqtt = raw.get("mqtt") or {}
    if isinstance(mqtt, dict):
        secrets = {key: os.environ.get(f"RTSER_MQTT_{key.upper()}") for key in ("username", "password")}
        raw["mqtt"] = {**{k: v for k, v in secrets.items() if v}, **{k: v for k, v in mqtt.items() if v is not None}}
    return load(ListenConfig, path, raw) if path else build(ListenConfig, raw)
