"""Command line: ``rtser replay | info | bench | devices``. Errors are one line on stderr."""

from __future__ import annotations

import os

# One thread for numpy's BLAS: the matrices are small and a board has few cores to spare.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import functools  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

from .errors import RtserError, say, warn  # noqa: E402
from .text import FORMATS  # noqa: E402


def _write(obj, line=None) -> None:
    """``obj`` on standard output as ``line(obj)`` makes it (a JSON line by default); RtserError when it
    cannot be written (closed, a full disk)."""
    from .sinks import LineSink, json_line

    try:
        LineSink(line=line or json_line).deliver(obj)
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as err:
        raise RtserError(f"cannot write to standard output: {getattr(err, 'strerror', None) or err}") from None


def _show(obj, args, text) -> None:
    """A command's result: ``text(obj)`` for people (``--format text``, or auto on a terminal), else JSON."""
    from .text import use_text

    _write(obj, (lambda o: text(o)) if use_text(args.format, sys.stdout) else None)


def _event_line(args, emotions: bool):
    """How replay writes each event: JSON, or text for people (see :mod:`rtser.text`)."""
    from .sinks import json_line
    from .text import TextFormatter, use_text

    return TextFormatter.for_stream(sys.stdout, emotions).line if use_text(args.format, sys.stdout) else json_line


def _add_model_options(parser: argparse.ArgumentParser, backend_default: str | None = "auto") -> None:
    parser.add_argument("--model", help="model folder, its model.json, or a network file (default: shipped model)")
    parser.add_argument("--backend", default=backend_default, choices=("auto", "tflite", "onnx"), help="inference runtime (default: auto)")


def cmd_replay(args) -> int:
    """Run the pipeline over a file and print its events as JSON lines."""
    from .audio import read_blocks
    from .events import selected
    from .pipeline import Recognizer

    line = _event_line(args, emotions=bool(args.events and "emotion" in args.events))

    def print_selected(events) -> None:
        for event in events:
            if selected(event, args.events):
                _write(event, line)

    rate, blocks = read_blocks(args.file, block_seconds=0.1 if args.realtime else 1.0)
    recognizer = Recognizer(args.model, backend=args.backend, hop_seconds=args.hop, pause_seconds=args.pause, min_confidence=args.min_confidence or 0.0)
    started, fed = time.monotonic(), 0
    for block in blocks:
        if args.realtime:
            time.sleep(max(0.0, started + fed / rate - time.monotonic()))
        fed += len(block)
        print_selected(recognizer.push(block, rate))
    if fed == 0:
        raise RtserError(f"no audio in {args.file}")
    print_selected(recognizer.flush())
    if recognizer.non_finite_samples:
        warn(f"{recognizer.non_finite_samples} NaN/inf samples in {args.file} were read as 0")
    return 0


def cmd_info(args) -> int:
    """Print the manifest and the backend that will run the model."""
    from .pipeline import load_model

    from .text import info_text

    manifest, backend = load_model(args.model, args.backend)
    _show({"model": manifest.folder, "backend": backend.name, "manifest": manifest.raw}, args, info_text)
    return 0


def cmd_devices(args) -> int:
    """List audio input devices."""
    from .devices import NO_DEVICES, input_devices

    from .text import devices_text, use_text

    devices = [{"index": d.index, "name": d.name, "channels": d.channels, "default_rate": d.default_rate} for d in input_devices()]
    if not devices:
        raise RtserError(NO_DEVICES)
    if use_text(args.format, sys.stdout):
        _write(devices, devices_text)
    else:
        for device in devices:
            _write(device)
    return 0


def cmd_listen(args) -> int:
    """Recognize emotions from a microphone until Ctrl-C or SIGTERM."""
    from .native import NativeLinesAsWarnings
    from .shutdown import Watchdog

    watchdog = Watchdog()  # first, before any thread starts
    with NativeLinesAsWarnings(debug=args.debug):  # PortAudio's own lines as rtser warnings
        return _listen(args, watchdog)


def _listen(args, watchdog) -> int:
    from .config import load_listen_config
    from .listen import Listener
    from .pipeline import Recognizer
    from .sinks import LineSink, QueuedSink, json_line
    from .text import TextFormatter, use_text

    config = load_listen_config(
        args.config,
        {
            "audio": {"device": args.device, "sample_rate": args.rate, "channels": args.channels, "channel": args.channel},
            "recognizer": {"model": args.model, "backend": args.backend, "hop_seconds": args.hop, "pause_seconds": args.pause, "min_confidence": args.min_confidence},
            "mqtt": {"host": args.mqtt_host, "port": args.mqtt_port, "site_id": args.site_id},
            "output": {"status_seconds": args.status_seconds, "stdout": False if args.quiet else None, "events": args.events, "format": args.format},
        },
    )
    settings = config.recognizer
    recognizer = Recognizer(
        settings.model,
        backend=settings.backend,
        hop_seconds=settings.hop_seconds,
        smoothing=settings.smoothing,
        switch_margin=settings.switch_margin,
        pause_seconds=settings.pause_seconds,
        min_confidence=settings.min_confidence,
        threads=settings.threads,
        batch_seconds=settings.batch_seconds,
    )
    stdout = config.output.stdout and sys.stdout is not None
    if config.output.stdout and not stdout:
        warn("standard output is closed: no events there")
    if not stdout and not config.mqtt.host:
        raise RtserError("no output for the events: standard output is off or closed and no MQTT host is set (--mqtt-host or mqtt.host)")
    listener = Listener(config, recognizer)
    listener.meter = sys.stderr if args.meter else None
    listener.open()  # the device first: a missing microphone is reported before the broker is tried
    sinks = listener.sinks
    if stdout:
        emotions = bool(config.output.events and "emotion" in config.output.events)
        text = use_text(config.output.format, sys.stdout)
        sinks.append(QueuedSink(LineSink(line=TextFormatter.for_stream(sys.stdout, emotions).line if text else json_line)))
    if config.mqtt.host:
        from .mqtt import MqttSink

        mqtt = MqttSink(config.mqtt, recognizer.manifest.name)
        warning = mqtt.start()
        if warning:
            warn(warning)
        sinks.append(mqtt)

    def close_sinks() -> None:  # within about 1.5 s, so that a stop signal ends the process within 2 s
        for sink in sinks:
            undelivered = sink.close(timeout=1.0 if sink.name == "mqtt" else 0.5)
            if undelivered:
                warn(f"{undelivered} events could not be delivered to {sink.name}")
        if sys.stdout is not None:
            with contextlib.suppress(OSError, ValueError):
                sys.stdout.flush()

    def stop_stuck_process() -> None:
        warn(f"still running {watchdog.grace_seconds:g} s after the stop signal (a blocked device call?): ending")
        listener.report_stopped()
        close_sinks()

    watchdog.on_stuck(stop_stuck_process)
    try:
        listener.run(watchdog.stop)
    finally:
        close_sinks()
        listener.close_device()
    return 0


def cmd_bench(args) -> int:
    """Print speed and memory figures as JSON."""
    from .bench import run_bench
    from .text import bench_text

    _show(run_bench(args.model, args.backend, args.seconds, args.audio, args.compare, args.batch_seconds), args, bench_text)
    return 0


def _event_types(text: str) -> list[str]:
    from .events import parse_event_types

    try:
        return parse_event_types(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add_speech_options(parser: argparse.ArgumentParser) -> None:
    from .events import EVENT_TYPES

    parser.add_argument("--hop", type=float, help="seconds between windows (default: the model's)")
    parser.add_argument("--pause", type=float, help="seconds of pause that end an utterance (default: the model's, 0.5)")
    parser.add_argument("--min-confidence", type=float, help="below this an utterance is labelled 'uncertain' (default 0: never)")
    parser.add_argument("--events", type=_event_types, help=f"event types to output, comma-separated: {','.join(EVENT_TYPES)} (default: all)")


class _ShowVersion(argparse.Action):
    """``--version``: the version is looked up only when asked for (importlib.metadata is slow to load)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help="show rtser's version and exit"):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"rtser {_version()}")
        parser.exit()


def _version() -> str:
    """The installed rtser's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rtser")
    except PackageNotFoundError:
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    parser = argparse.ArgumentParser(prog="rtser", description="Real-time speech emotion recognition.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--version", action=_ShowVersion)
    # --debug after the subcommand too; SUPPRESS keeps a subcommand without it from resetting it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    common.add_argument("--format", choices=FORMATS, default=None,
                        help="json lines for programs, or text for people (default: text on a terminal, else json)")  # fmt: skip
    common.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")
    sub = parser.add_subparsers(dest="command", required=True)
    add_command = functools.partial(sub.add_parser, parents=[common])

    replay = add_command("replay", help="recognize emotions in an audio file")
    replay.add_argument("file")
    _add_model_options(replay)
    _add_speech_options(replay)
    replay.add_argument("--realtime", action="store_true", help="feed the file at its real pace")
    replay.set_defaults(run=cmd_replay)

    info = add_command("info", help="show the model's manifest and backend")
    _add_model_options(info)
    info.set_defaults(run=cmd_info)

    listen = add_command("listen", help="recognize emotions from a microphone")
    listen.add_argument("--config", help="board file (YAML), e.g. firmware_configs/raspberry-pi-5.yaml")
    listen.add_argument("--device", help="input device: index, hw:N[,D], plughw:N,D or part of its name")
    listen.add_argument("--rate", type=int, help="capture rate in Hz (default: the model's rate if the device takes it)")
    listen.add_argument("--channels", type=int, help="channels to open (default: 1 if possible)")
    listen.add_argument("--channel", type=int, help="use this channel (from 0) instead of the mean of all")
    _add_model_options(listen, backend_default=None)
    _add_speech_options(listen)
    listen.add_argument("--mqtt-host", help="publish events to this MQTT broker (other settings: --config)")
    listen.add_argument("--mqtt-port", type=int, help="broker port (default 1883, 8883 with TLS)")
    listen.add_argument("--site-id", help="topic prefix rtser/<site-id>/ (default: the host name)")
    listen.add_argument("--status-seconds", type=float, help="seconds between status events (default 30)")
    listen.add_argument("--quiet", action="store_true", help="no events on stdout (MQTT only)")
    listen.add_argument("--meter", action="store_true", help="show the input level and whether speech is heard, on stderr")
    listen.set_defaults(run=cmd_listen)

    devices = add_command("devices", help="list audio input devices")
    devices.set_defaults(run=cmd_devices)

    bench = add_command("bench", help="measure speed and memory")
    _add_model_options(bench)
    bench.add_argument("--seconds", type=float, default=60.0, help="seconds of audio to process")
    bench.add_argument("--audio", help="audio file for the benchmark, repeated up to --seconds (default: the shipped six-utterance sample)")
    bench.add_argument("--compare", metavar="MODEL", help="another model folder whose network is timed on the same windows")
    bench.add_argument("--batch-seconds", type=float, help="audio the recognizer gathers before working on it (default: as listen, 0.25)")
    bench.set_defaults(run=cmd_bench)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A Python warning (an :class:`~rtser.pipeline.AudioWarning` above all) as one ``rtser: warning:``
    line, without the source line Python shows (``--debug`` keeps Python's own form)."""
    warn(str(message))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rtser`` command."""
    args = build_parser().parse_args(argv)
    if args.format is None and args.command != "listen":  # listen: the board file's output.format, else auto
        args.format = "auto"
    try:
        with warnings.catch_warnings():
            if not args.debug:
                warnings.showwarning = _warning_line
            return args.run(args)
    except RtserError as err:
        if args.debug:
            raise
        say("error", str(err))
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (rtser replay f.wav | head): not an error
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second failure when Python flushes at exit
        return 0
    except Exception as err:  # a bug: still one line unless --debug
        if args.debug:
            raise
        say("internal error", f"{type(err).__name__}: {err} (run with --debug for details)")
        return 1
