"""Events over MQTT (paho-mqtt 2.x): QoS 1, a retained availability topic with a last will,
reconnection with backoff, and a bounded queue while the broker is away.

Topics, under ``rtser/<site_id>/``: ``emotion`` and ``speech`` events, ``health`` (status events),
and ``status``: ``online`` / ``offline``, retained, ``offline`` also as the last will. With
``discovery`` on, Home Assistant discovery configs make an emotion sensor, a confidence sensor and
a speech binary sensor appear by themselves.

Delivery is at least once: events handed to the broker connection are kept by paho until the broker
acknowledges them and resent after a reconnect; events made while the broker is away wait in a
queue of ``queue_size`` (when it is full the oldest is dropped and counted).
"""

from __future__ import annotations

import json
import os
import ssl
import threading
from collections import deque

from .config import MqttSettings
from .errors import RtserError, warn

_EVENT_TOPICS = {"utterance": "utterance", "emotion": "emotion", "speech": "speech", "status": "health"}
_MAX_UNACKNOWLEDGED = 100  # handed to paho but not yet acknowledged by the broker


class MqttSink:
    """Publishes events to an MQTT broker from a sender thread of its own."""

    name = "mqtt"

    def __init__(self, settings: MqttSettings, model_name: str = "rtser"):
        import paho.mqtt.client as mqtt

        self.settings = settings
        self.base = f"rtser/{settings.site_id}"
        self.availability_topic = f"{self.base}/status"
        self._model_name = model_name
        self._pending: deque[tuple[str, str, bool]] = deque()
        self._wake = threading.Condition()
        self._connected = False
        self._closing = False
        self._handed = 0
        self._acknowledged = 0
        self.dropped = 0
        self.refused: str | None = None  # the broker's reason when it refused the last connection
        self._first_answer = threading.Event()

        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"rtser-{settings.site_id}-{os.getpid()}", protocol=mqtt.MQTTv311
        )
        client.will_set(self.availability_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(*(max(1, round(s)) for s in settings.retry_seconds))
        if settings.username is not None:
            client.username_pw_set(settings.username, settings.password)
        if settings.tls is not None:
            tls = settings.tls
            try:
                client.tls_set(ca_certs=tls.ca_certs, certfile=tls.certfile, keyfile=tls.keyfile)
            except (ssl.SSLError, OSError, ValueError) as err:
                reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or type(err).__name__
                raise RtserError(f"MQTT TLS files (mqtt.tls) cannot be used: {reason}") from None
            client.tls_insecure_set(tls.insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        self._sender = threading.Thread(target=self._send_loop, name="rtser-mqtt-sender", daemon=True)

    @property
    def address(self) -> str:
        """``host:port`` of the broker."""
        return f"{self.settings.host}:{self.settings.broker_port}"

    def start(self) -> str | None:
        """Connect and start the network and sender threads. Raises RtserError when the broker
        refuses us (credentials) or TLS fails; returns a warning when the broker cannot be reached
        yet (events are then queued until it can)."""
        warning = None
        try:
            self._client.connect(self.settings.host, self.settings.broker_port, self.settings.keepalive)
        except ssl.SSLError as err:
            raise RtserError(f"TLS with MQTT broker {self.address} failed: {err.reason or err}") from None
        except (OSError, ValueError) as err:
            # Unreachable for now: paho keeps retrying with backoff from its network thread.
            reason = getattr(err, "strerror", None) or err
            warning = f"MQTT broker {self.address} not reachable ({reason}); retrying, events are queued"
        self._client.loop_start()
        self._sender.start()
        if warning is None:
            self._first_answer.wait(self.settings.connect_timeout)
            if self.refused is not None:
                self._shutdown_threads()
                raise RtserError(f"MQTT broker {self.address} refused the connection: {self.refused}")
            if not self._connected:
                warning = f"MQTT broker {self.address} did not answer in {self.settings.connect_timeout:g} s; retrying"
        return warning

    def deliver(self, event: dict) -> None:
        """Queue one event for publishing (never blocks)."""
        topic = f"{self.base}/{_EVENT_TOPICS.get(event.get('type'), 'event')}"
        with self._wake:
            if len(self._pending) >= self.settings.queue_size:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append((topic, json.dumps(event, separators=(",", ":")), False))
            self._wake.notify()

    def stats(self) -> dict:
        """Counters for status events."""
        with self._wake:
            waiting = len(self._pending) + self._handed - self._acknowledged
            return {"mqtt": {"connected": self._connected, "queued": waiting, "dropped": self.dropped}}

    def close(self, timeout: float = 5.0) -> int:
        """Publish ``offline``, wait up to ``timeout`` for queued events to be acknowledged, then
        disconnect. Returns how many events were not acknowledged by the broker."""
        with self._wake:
            if self._connected:
                self._pending.append((self.availability_topic, "offline", True))
                self._wake.notify()
            self._wake.wait_for(lambda: not self._connected or self._all_acknowledged(), timeout)
            waiting_events = sum(1 for _, _, retained in self._pending if not retained)
            undelivered = waiting_events + self._handed - self._acknowledged
            self._closing = True
            self._wake.notify_all()
        self._client.disconnect()
        self._shutdown_threads()
        return undelivered

    def _all_acknowledged(self) -> bool:
        return not self._pending and self._handed == self._acknowledged

    def _shutdown_threads(self) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        self._client.loop_stop()
        if self._sender.is_alive():
            self._sender.join(timeout=2)

    # paho's network thread -------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.refused = str(reason_code)
            self._first_answer.set()
            return
        with self._wake:
            self.refused = None
            self._connected = True
            # Announce first: availability, then discovery, ahead of queued events.
            for message in reversed([(self.availability_topic, "online", True), *self._discovery_messages()]):
                self._pending.appendleft(message)
            self._wake.notify()
        self._first_answer.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._wake:
            self._connected = False
            self._wake.notify_all()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._wake:
            self._acknowledged += 1
            self._wake.notify_all()

    # the sender thread -----------------------------------------------------------------------

    def _send_loop(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(self._can_send)
                if self._closing and not (self._connected and self._pending):
                    return
                topic, payload, retain = self._pending.popleft()
                self._handed += 1
            try:
                info = self._client.publish(topic, payload, qos=self.settings.qos, retain=retain)
            except Exception as err:  # the sender must outlive any one message; settings are checked, so this is a bug
                with self._wake:
                    self._acknowledged += 1  # never to be acknowledged: counted as dropped instead
                    self.dropped += 1
                warn(f"MQTT publish to {topic} failed: {type(err).__name__}: {err}")
                continue
            if info.rc not in (0, 4):  # 4: not connected; paho keeps the message and sends it on reconnect
                warn(f"MQTT publish to {topic} failed ({info.rc})")

    def _can_send(self) -> bool:
        room = self._handed - self._acknowledged < _MAX_UNACKNOWLEDGED
        return self._closing or (self._connected and bool(self._pending) and room)

    def _discovery_messages(self) -> list[tuple[str, str, bool]]:
        if not self.settings.discovery:
            return []
        site = self.settings.site_id
        device = {
            "identifiers": [f"rtser_{site}"],
            "name": f"rtser {site}",
            "manufacturer": "rtser",
            "model": self._model_name,
        }
        common = {"availability_topic": self.availability_topic, "device": device}
        entities = {
            ("sensor", "utterance"): {
                "name": "Utterance emotion",
                "state_topic": f"{self.base}/utterance",
                "value_template": "{{ value_json.label }}",
                "json_attributes_topic": f"{self.base}/utterance",
                "json_attributes_template": "{{ value_json.probs | tojson }}",
                "icon": "mdi:account-voice",
            },
            ("sensor", "emotion"): {
                "name": "Emotion",
                "state_topic": f"{self.base}/emotion",
                "value_template": "{{ value_json.label }}",
                "json_attributes_topic": f"{self.base}/emotion",
                "json_attributes_template": "{{ value_json.probs | tojson }}",
                "icon": "mdi:emoticon-outline",
            },
            ("sensor", "confidence"): {
                "name": "Emotion confidence",
                "state_topic": f"{self.base}/emotion",
                "value_template": "{{ (value_json.confidence * 100) | round(0) }}",
                "unit_of_measurement": "%",
                "state_class": "measurement",
            },
            ("binary_sensor", "speech"): {
                "name": "Speech",
                "state_topic": f"{self.base}/speech",
                "value_template": "{{ 'ON' if value_json.state == 'start' else 'OFF' }}",
                "device_class": "sound",
            },
        }
        prefix = self.settings.discovery_prefix
        return [
            (
                f"{prefix}/{component}/rtser_{site}/{key}/config",
                json.dumps({**common, **config, "unique_id": f"rtser_{site}_{key}"}),
                True,
            )
            for (component, key), config in entities.items()
        ]
