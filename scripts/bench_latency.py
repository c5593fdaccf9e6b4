"""Benchmark: delay from the last sample of a window to its event on an MQTT broker.

    python scripts/bench_latency.py [--clips 20] [--hop 0.5] [--batch-seconds 0.25]

Starts the same real parts as the tests (a PulseAudio virtual microphone and a mosquitto broker on
loopback), runs `rtser listen --mqtt-host ...` as a separate process, plays EMO-DB utterances into
the microphone and, in a subscriber, compares the arrival time of each emotion event with its
``timestamp``: when the window's last sample was captured (the delivery time of its capture block
minus the audio that follows it in the block). The delay thus includes waiting for the capture
block to fill, the recognizer and the broker. Prints JSON: median, p95 and max in milliseconds. Needs pulseaudio, paplay and mosquitto (scripts/test.sh
installs them).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from rtser.pipeline import BATCH_SECONDS  # noqa: E402
from tests.realparts import LiveRun, Mosquitto, PulseAudio, Subscriber, play_each  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20, help="EMO-DB utterances to play")
    parser.add_argument("--hop", type=float, default=0.5, help="seconds between windows")
    parser.add_argument("--batch-seconds", type=float, default=BATCH_SECONDS, help="audio the recognizer gathers before working on it")
    parser.add_argument("--data", default=os.environ.get("RTSER_DATA", os.path.join(ROOT, "..", "shared", "data")))
    args = parser.parse_args()
    files = sorted(glob.glob(os.path.join(args.data, "emodb", "wav", "*.wav")))[:: 5][: args.clips]
    if not files:
        print(f"no EMO-DB files under {args.data}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        pulse = PulseAudio(os.path.join(folder, "pulse"))
        pulse.start()
        broker = Mosquitto(folder)
        broker.start()
        received: dict[float, float] = {}
        try:
            watcher = Subscriber(broker.port, ["rtser/bench/emotion"])
            watcher.client.on_message = lambda c, u, m: received.setdefault(json.loads(m.payload)["timestamp"], time.time())
            block = 0.05
            board = os.path.join(folder, "board.yaml")
            with open(board, "w", encoding="utf-8") as handle:
                handle.write(f"recognizer: {{batch_seconds: {args.batch_seconds}}}\n")
            run = LiveRun(
                "--config", board, "--device", "emo_mic", "--hop", str(args.hop), "--status-seconds", "0.5",
                "--mqtt-host", "127.0.0.1", "--mqtt-port", str(broker.port), "--site-id", "bench", env=pulse.env,
            )  # fmt: skip
            run.wait_for_audio()
            play_each(pulse, run, files)
            time.sleep(1.0)
            code, stderr = run.stop()
            watcher.close()
        finally:
            broker.stop()
            pulse.kill()
    if code != 0:
        print(stderr, file=sys.stderr)
        return 1
    delays = np.array([(arrived - stamp) * 1000 for stamp, arrived in received.items()])
    result = {
        "what": "ms from the capture of a window's last sample to its event arriving at an MQTT subscriber",
        "events": int(len(delays)),
        "median_ms": round(float(np.median(delays)), 1),
        "p95_ms": round(float(np.percentile(delays, 95)), 1),
        "max_ms": round(float(delays.max()), 1),
        "capture_block_ms": block * 1000,
        "hop_seconds": args.hop,
        "batch_seconds": args.batch_seconds,
        "clips": len(files),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
