"""Finding the input device a user means: an index, an ALSA name like ``hw:1`` or ``plughw:1,0``,
or a part of the device's name."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from .errors import RtserError

_ALSA_SPEC = re.compile(r"^(?:plug)?hw:(?:CARD=)?([^,]+)(?:,(?:DEV=)?(\d+))?$", re.IGNORECASE)
_ALSA_IN_NAME = re.compile(r"\(hw:(\d+),(\d+)\)")
SOUND_SERVER_DEVICES = {"default", "sysdefault", "pulse", "pipewire"}  # ALSA devices that lead to the sound server
NO_DEVICES = ("no audio input devices found: is a microphone plugged in, and the sound server (PulseAudio, PipeWire) "
              "running for this user, or the user in group 'audio'? `arecord -l` lists the ALSA cards")


@dataclass(frozen=True)
class InputDevice:
    """An audio input as PortAudio lists it."""

    index: int
    name: str
    channels: int
    default_rate: float

    def describe(self) -> str:
        """``index: name`` for messages."""
        return f"{self.index}: {self.name}"


def shown_name(device: InputDevice) -> str:
    """The device's name for status events; for the ALSA devices that lead to the sound server
    (``default``, ``pulse``, ``pipewire``) with the server's default source, the microphone the audio
    comes from: ``default (alsa_input.usb-C-Media_USB_Audio-00.mono-fallback)``."""
    if device.name.lower() not in SOUND_SERVER_DEVICES:
        return device.name
    source = sound_server_source()
    return f"{device.name} ({source})" if source else device.name


def sound_server_source() -> str | None:
    """The default source of the PulseAudio or PipeWire server (``pactl info``), None when there is
    no ``pactl`` or no server answers within a second."""
    pactl = shutil.which("pactl")
    if pactl is None:
        return None
    try:
        done = subprocess.run([pactl, "info"], capture_output=True, text=True, timeout=1.0, env=dict(os.environ, LC_ALL="C"))
    except (OSError, subprocess.SubprocessError):
        return None
    for line in done.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Default Source" and value.strip():
            return value.strip()
    return None


def portaudio():
    """The sounddevice module, or a clear error when PortAudio is missing."""
    try:
        import sounddevice
    except OSError as err:  # the PortAudio library is missing
        raise RtserError(f"audio capture unavailable: {err} (install libportaudio2)") from None
    return sounddevice


def input_devices(refresh: bool = False) -> list[InputDevice]:
    """The input devices PortAudio sees; ``refresh`` rescans (PortAudio lists devices once, when it
    starts, so a microphone plugged in later is only seen after a rescan)."""
    sounddevice = portaudio()
    if refresh:
        # sounddevice has no public rescan; restarting PortAudio is the known way to get a fresh list.
        sounddevice._terminate()
        sounddevice._initialize()
    return [
        InputDevice(index, info["name"], int(info["max_input_channels"]), float(info["default_samplerate"]))
        for index, info in enumerate(sounddevice.query_devices())
        if info["max_input_channels"] > 0
    ]


def default_input_index() -> int | None:
    """PortAudio's default input device, or None when there is none."""
    index = portaudio().default.device[0]
    return None if index is None or index < 0 else int(index)


def resolve_device(spec: str | int | None, devices: list[InputDevice], default: int | None = None) -> InputDevice:
    """The device ``spec`` names among ``devices``.

    An integer (or digits) is an index. ``hw:N[,D]`` / ``plughw:N[,D]`` match the ALSA card number
    exactly (``hw:1`` never picks ``hw:10``), or a card name (``hw:CARD=Device``). Anything else
    matches a whole name first, then a unique part of a name (case-insensitive)."""
    if not devices:
        raise RtserError(NO_DEVICES)
    if spec is None or spec == "":
        chosen = [d for d in devices if d.index == default] or devices[:1]
        return chosen[0]
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        for device in devices:
            if device.index == int(text):
                return device
        raise RtserError(f"no input device with index {text} (see `rtser devices`)")
    alsa = _ALSA_SPEC.match(text)
    if alsa:
        matches = _alsa_matches(alsa.group(1), alsa.group(2), devices)
    else:
        matches = [d for d in devices if d.name.lower() == text.lower()]
        matches = matches or [d for d in devices if text.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RtserError(f"no input device matches {text!r} (see `rtser devices`)")
    names = "; ".join(d.describe() for d in matches)
    raise RtserError(f"input device {text!r} is ambiguous: {names}; give its index or more of its name")


def same_device(lost: InputDevice, devices: list[InputDevice]) -> InputDevice | None:
    """``lost`` among ``devices`` again: the one device of its name, the ALSA card number aside (a
    USB microphone plugged back may come back on another card); None when not exactly one has it."""
    name = _without_address(lost.name)
    found = [d for d in devices if _without_address(d.name) == name]
    return found[0] if len(found) == 1 else None


def _without_address(name: str) -> str:
    return _ALSA_IN_NAME.sub("", name).strip()


def _letters(text: str) -> str:
    # ALSA card ids drop the punctuation of card names ("seeed2micvoicec" for "seeed-2mic-voicecard").
    return "".join(c for c in text.lower() if c.isalnum())


def _alsa_matches(card: str, subdevice: str | None, devices: list[InputDevice]) -> list[InputDevice]:
    found = []
    for device in devices:
        located = _ALSA_IN_NAME.search(device.name)
        if card.isdigit():
            if located and located.group(1) == card and (subdevice is None or located.group(2) == subdevice):
                found.append(device)
        elif located and _letters(card) in _letters(device.name[: located.start()]):
            if subdevice is None or located.group(2) == subdevice:
                found.append(device)
    return found
