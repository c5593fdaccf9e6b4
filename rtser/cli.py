"""Command line: ``rtser replay | info | bench | devices``. Errors are one line on stderr."""

from __future__ import annotations

import os

# One thread for numpy's BLAS: the matrices are small and a board has few cores to spare.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from .errors import RtserError  # noqa: E402


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, separators=(", ", ": ")) + "\n")
    sys.stdout.flush()


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="model folder, its model.json, or a network file (default: shipped model)")
    parser.add_argument("--backend", default="auto", choices=("auto", "tflite", "onnx"), help="inference runtime")


def cmd_replay(args) -> int:
    """Run the pipeline over a file and print its events as JSON lines."""
    from .audio import read_blocks
    from .pipeline import Recognizer

    rate, blocks = read_blocks(args.file, block_seconds=0.1 if args.realtime else 1.0)
    recognizer = Recognizer(args.model, backend=args.backend, hop_seconds=args.hop)
    started, fed = time.monotonic(), 0
    for block in blocks:
        if args.realtime:
            time.sleep(max(0.0, started + fed / rate - time.monotonic()))
        fed += len(block)
        for event in recognizer.push(block, rate):
            _print_json(event)
    if fed == 0:
        raise RtserError(f"no audio in {args.file}")
    for event in recognizer.flush():
        _print_json(event)
    if recognizer.non_finite_samples:
        print(f"rtser: warning: {recognizer.non_finite_samples} NaN/inf samples in {args.file} were read as 0", file=sys.stderr)
    return 0


def cmd_info(args) -> int:
    """Print the manifest and the backend that will run the model."""
    from .pipeline import load_model

    manifest, backend = load_model(args.model, args.backend)
    _print_json({"model": manifest.folder, "backend": backend.name, "manifest": manifest.raw})
    return 0


def cmd_devices(args) -> int:
    """List audio input devices."""
    try:
        import sounddevice
    except OSError as err:  # PortAudio library missing
        raise RtserError(f"audio capture unavailable: {err}") from None
    for index, device in enumerate(sounddevice.query_devices()):
        if device["max_input_channels"] > 0:
            _print_json(
                {
                    "index": index,
                    "name": device["name"],
                    "channels": device["max_input_channels"],
                    "default_rate": device["default_samplerate"],
                }
            )
    return 0


def cmd_bench(args) -> int:
    """Print speed and memory figures as JSON."""
    from .bench import run_bench

    _print_json(run_bench(args.model, args.backend, args.seconds, args.audio))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all subcommands."""
    parser = argparse.ArgumentParser(prog="rtser", description="Real-time speech emotion recognition.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    replay = sub.add_parser("replay", help="recognize emotions in an audio file")
    replay.add_argument("file")
    _add_model_options(replay)
    replay.add_argument("--hop", type=float, help="seconds between windows (default: the model's)")
    replay.add_argument("--realtime", action="store_true", help="feed the file at its real pace")
    replay.set_defaults(run=cmd_replay)

    info = sub.add_parser("info", help="show the model's manifest and backend")
    _add_model_options(info)
    info.set_defaults(run=cmd_info)

    devices = sub.add_parser("devices", help="list audio input devices")
    devices.set_defaults(run=cmd_devices)

    bench = sub.add_parser("bench", help="measure speed and memory")
    _add_model_options(bench)
    bench.add_argument("--seconds", type=float, default=60.0, help="seconds of audio to process")
    bench.add_argument("--audio", help="audio file to repeat for the benchmark (default: the shipped sample)")
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rtser`` command."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except RtserError as err:
        if args.debug:
            raise
        print(f"rtser: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 0
    except Exception as err:  # a bug: still one line unless --debug
        if args.debug:
            raise
        print(f"rtser: internal error: {type(err).__name__}: {err} (run with --debug for details)", file=sys.stderr)
        return 1
