"""Readable output for people at a terminal (``--format text``): one line per utterance and per
change of speech or status, with a short bar of the top classes; colour on a terminal only.

JSON lines stay the output for programs: ``--format auto`` (the default) is text on a terminal and
JSON otherwise. Emotion events (every hop) are shown only when asked for with ``--events``.
"""

from __future__ import annotations

import os
from typing import TextIO

FORMATS = ("auto", "json", "text")
_COLOURS = {"anger": 31, "happiness": 33, "sadness": 34, "fear": 35, "disgust": 32, "surprise": 36}  # ANSI
_BAR = 10  # characters for a probability of 1
_TIME_COLUMN = 17  # width of the time column: a span of two-digit times, "12.34 s - 15.67 s"


def use_text(format_name: str, stream: TextIO | None) -> bool:
    """Whether ``format_name`` means text on ``stream`` (auto: text on a terminal)."""
    if format_name not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format_name!r}")
    return format_name == "text" or (format_name == "auto" and _is_terminal(stream))


def _is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):
        return False


class TextFormatter:
    """Turns events into readable lines (None for an event not worth a line); ``colour`` adds ANSI
    colours (by default on a terminal when ``NO_COLOR`` is not set)."""

    def __init__(self, colour: bool = False, emotions: bool = False):
        self.colour = colour
        self.emotions = emotions  # emotion events too, not only utterances
        self._status: tuple | None = None

    @classmethod
    def for_stream(cls, stream: TextIO | None, emotions: bool = False) -> TextFormatter:
        """A formatter with colour when ``stream`` is a terminal and ``NO_COLOR`` is not set."""
        return cls(colour=_is_terminal(stream) and "NO_COLOR" not in os.environ, emotions=emotions)

    def line(self, event: dict) -> str | None:
        """The event's line, newline included, or None."""
        kind = event.get("type")
        if kind == "utterance":
            text = f"{_span(event)}  {self._label(event['label'], 10)} {_percent(event['confidence'])}  {self._bars(event['probs'])}"
        elif kind == "emotion" and self.emotions:
            text = f"{_span(event)}  {self._dim('window')}  {self._label(event['label'], 10)} {_percent(event['confidence'])}  {self._bars(event['probs'])}"
        elif kind == "speech":
            text = f"{_time(event['time']):>{_TIME_COLUMN}}  {self._dim('speech ' + ('starts' if event['state'] == 'start' else 'stops'))}"
        elif kind == "status":
            text = self._status_line(event)
        else:
            return None
        return None if text is None else text + "\n"

    def _status_line(self, event: dict) -> str | None:
        mqtt = event.get("mqtt", {}).get("connected")
        key = (event.get("state"), event.get("device"), mqtt)
        if key == self._status and "event" not in event and "error" not in event:
            return None  # a periodic status with nothing new
        self._status = key
        parts = [event.get("state", "")]
        if event.get("device"):
            parts.append(f"{event['device']} ({event.get('sample_rate')} Hz, {event.get('channels')} ch)")
        if mqtt is not None:
            parts.append("MQTT connected" if mqtt else f"MQTT not connected ({event['mqtt'].get('queued', 0)} queued)")
        for name in ("event", "error", "lost_seconds", "next_retry_seconds"):
            if name in event:
                parts.append(f"{name.replace('_', ' ')}: {event[name]}")
        return f"{_time(event.get('time', 0.0)):>{_TIME_COLUMN}}  {self._dim('status')} " + ", ".join(str(p) for p in parts)

    def _bars(self, probs: dict, top: int = 3) -> str:
        best = sorted(probs.items(), key=lambda item: -item[1])[:top]
        return "  ".join(f"{name} {'█' * max(1, round(p * _BAR)) if p >= 0.05 else '·'} {round(100 * p)}" for name, p in best)

    def _label(self, label: str, width: int) -> str:
        padded = f"{label:<{width}}"
        code = _COLOURS.get(label)
        return f"\x1b[1;{code}m{padded}\x1b[0m" if self.colour and code else (f"\x1b[1m{padded}\x1b[0m" if self.colour else padded)

    def _dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.colour else text


def _time(seconds: float) -> str:
    minutes, rest = divmod(float(seconds), 60)
    return f"{int(minutes)}:{rest:05.2f}" if minutes else f"{rest:.2f} s"


def _span(event: dict) -> str:
    return f"{_time(event['start'])} - {_time(event['end'])}".rjust(_TIME_COLUMN)


def _percent(value: float) -> str:
    return f"{round(100 * value):>3}%"


def info_text(info: dict) -> str:
    """``rtser info`` for people: what the model is, how it hears, and how well it did."""
    manifest = info["manifest"]
    window, detector = manifest["window"], manifest.get("speech_detector", {})
    training = manifest.get("training", {})
    lines = [
        f"model      {manifest.get('name', '')}  ({info['model']})",
        f"runs on    {info['backend']}",
        f"labels     {', '.join(manifest['labels'])}",
        f"windows    {window['seconds']:g} s every {window['hop_seconds']:g} s, {manifest['features'].get('n_mfcc') or manifest['features'].get('n_mels')} "
        f"coefficients{' + pitch' if manifest['features'].get('pitch') else ''} per 10 ms at {manifest['sample_rate']} Hz",
        f"speech     {detector.get('kind', '')} detector, threshold {detector.get('threshold')}, a pause of {detector.get('pause_seconds')} s ends an utterance",
    ]
    if training:
        corpora = training.get("recipe", {}).get("corpora", [])
        lines.append(f"trained on {', '.join(corpora)}: {len(training.get('speakers', {}).get('train', []))} voices, "
                     f"{training.get('parameters', '?')} parameters")  # fmt: skip
    for name, entry in manifest.get("networks", {}).items():
        lines.append(f"network    {name}: {entry['path']}, {entry.get('quantization', '')}")
    lines.append("all of it:  rtser info --json")
    return "\n".join(lines) + "\n"


def bench_text(figures: dict) -> str:
    """``rtser bench`` for people: the headline figures, each with its unit."""
    model, stages = figures["model"], figures["stages_ms_per_audio_second"]
    measured = figures["measured"]
    lines = [
        f"audio       {measured['audio_seconds']} s of {measured['audio']}, pushed {measured['push_seconds']} s at a time, worked on {measured['batch_seconds']} s at a time, one thread",
        f"cpu         {measured['cpu'] or 'unknown'}",
        f"pipeline    {figures['pipeline_x_realtime']}x real time ({figures['pipeline_cpu_ms_per_audio_second']} ms of CPU per second of audio)",
        f"model       {model['cpu_ms_per_window']['median']} ms per window (p95 {model['cpu_ms_per_window']['p95']}), {model['file_kb']} KB, {model['backend']}; "
        f"{measured['windows_judged_per_audio_second']} windows judged per second of audio",
        "stages      " + ", ".join(f"{name} {ms} ms/s" for name, ms in stages.items()) + " (inside the pipeline)",
        "alone       " + ", ".join(f"{name} {ms} ms/s" for name, ms in figures["stages_alone_ms_per_audio_second"].items()) + " (each timed on its own)",
        f"detector    {figures['speech_detector_ms_per_audio_second']} ms/s on this audio, {figures['speech_detector_ms_per_audio_second_on_silence']} on silence",
        f"replay      a 3 s file: {figures['replay_3s_file'].get('seconds')} s start to finish, {figures['replay_3s_file'].get('peak_rss_mb')} MB peak",
    ]
    if "compared_model" in figures:
        other = figures["compared_model"]
        lines.append(f"compared    {other['folder']}: {other['cpu_ms_per_window']['median']} ms per window, {other['times_slower_per_window']}x this model's")
    lines.append("all of it:  rtser bench --json")
    return "\n".join(lines) + "\n"


def devices_text(devices: list[dict]) -> str:
    """``rtser devices`` for people: a table."""
    rows = [f"{d['index']:>5}  {d['channels']:>8}  {d['default_rate']:>12g}  {d['name']}" for d in devices]
    return "\n".join([f"{'index':>5}  {'channels':>8}  {'default rate':>12}  name", *rows]) + "\n"
