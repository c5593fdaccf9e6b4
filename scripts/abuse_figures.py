"""The robustness figures (docs/robustness.md): rtser's command line run on abusive inputs, each case
in a fresh process, counting how each ended (events, a one-line error, a traceback, an internal
error, a crash, a hang) with the slowest case and the largest peak memory.

Cases, drawn with a fixed seed: the sample WAV with random header bytes changed, cut short at random
or with random bytes after a valid header; random bytes; the shipped model's manifest with a random
value put at a random place; board files of random structure and hostile ones (deep nesting, YAML
anchors, huge, not UTF-8).

    python scripts/abuse_figures.py [--cases 40] [--timeout 60] [--out docs/results/abuse]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "rtser", "samples", "emodb-03a01Wa-anger.wav")
MODEL = os.path.join(ROOT, "rtser", "models", "default")
SETTING_KEYS = ["audio", "recognizer", "mqtt", "output", "device", "sample_rate", "channels", "port", "site_id", "smoothing",
                "hop_seconds", "password", "tls", "ca_certs", "events", "format", "status_seconds", "retry_seconds"]  # fmt: skip
ODD_VALUES = [None, True, -1, 0, 2**63, 1e308, -1e-308, float("nan"), "", "#", "a/+/b", "\x00", "x" * 300, [], {}, [1, 2, 3]]


def run(command: list[str], timeout: float) -> dict:
    """Run one case; how it ended, its wall time and its peak memory (MB)."""
    started = time.monotonic()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL, cwd=ROOT)
        deadline, status, usage = started + timeout, None, None
        while status is None:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid == 0:
                status = None
                if time.monotonic() > deadline:
                    process.kill()
                    os.wait4(process.pid, 0)
                    return {"outcome": "hang", "seconds": timeout, "peak_mb": None, "said": ""}
                time.sleep(0.01)
        process.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    code = process.returncode
    if "Traceback" in stderr:
        outcome = "traceback"
    elif "internal error" in stderr:
        outcome = "internal error"
    elif code == 0:
        outcome = "ran"
    elif code == 2 and stderr.count("rtser: error: ") == 1:
        outcome = "one-line error"
    else:
        outcome = f"exit {code}"
    return {"outcome": outcome, "seconds": round(time.monotonic() - started, 2), "peak_mb": round(usage.ru_maxrss / 1024, 1),
            "said": stderr.strip().splitlines()[-1][:300] if stderr.strip() else ""}  # fmt: skip


def wav_cases(rng: random.Random, folder: str, count: int) -> list[tuple[str, list[str]]]:
    """The sample WAV damaged: header bytes changed, cut short, garbage after the header; random bytes."""
    clean = open(SAMPLE, "rb").read()
    cases = []
    for i in range(count):
        data = bytearray(clean)
        kind = i % 4
        what = ["header bytes changed", "a header field set at random", "cut short or garbage after the header", "random bytes"][kind]
        if kind == 0:  # header bytes changed (sizes, format, rate, channels, bits)
            for _ in range(rng.randint(1, 6)):
                data[rng.randrange(44)] = rng.randrange(256)
        elif kind == 1:  # the fields a header lies with: rate, channels, byte rate, data size
            offset, size = rng.choice([(24, 4), (22, 2), (28, 4), (40, 4), (34, 2)])
            data[offset : offset + size] = struct.pack("<I" if size == 4 else "<H", rng.randrange(2 ** (8 * size)))
        elif kind == 2:  # cut short anywhere, or garbage after the header
            data = data[: rng.randrange(len(data))] if rng.random() < 0.5 else data[:44] + bytearray(rng.randbytes(rng.randrange(1, 50000)))
        else:  # not audio at all
            data = bytearray(rng.randbytes(rng.randrange(0, 100000)))
        path = os.path.join(folder, f"case{i}.wav")
        open(path, "wb").write(bytes(data))
        cases.append((what, [sys.executable, "-m", "rtser", "replay", path, "--json"]))
    return cases


def manifest_cases(rng: random.Random, folder: str, count: int) -> list[tuple[str, list[str]]]:
    """The shipped model with one value of its manifest replaced by an odd one, at any depth."""
    clean = json.load(open(os.path.join(MODEL, "model.json"), encoding="utf-8"))
    cases = []
    for i in range(count):
        model = os.path.join(folder, f"model{i}")
        shutil.copytree(MODEL, model)
        manifest = json.loads(json.dumps(clean))
        target, where = manifest, []
        while rng.random() < 0.6:
            inner = [key for key, value in target.items() if isinstance(value, dict) and value]
            if not inner:
                break
            where.append(rng.choice(inner))
            target = target[where[-1]]
        where.append(rng.choice(list(target)))
        target[where[-1]] = value = rng.choice(ODD_VALUES)
        with open(os.path.join(model, "model.json"), "w", encoding="utf-8") as handle:
            handle.write(json.dumps(manifest))  # NaN written as NaN: a manifest must refuse it
        cases.append((f"{'.'.join(where)} = {json.dumps(value)[:20]}", [sys.executable, "-m", "rtser", "replay", SAMPLE, "--model", model, "--json"]))
    return cases


def random_yaml_value(rng: random.Random, depth: int = 0):
    """A random YAML value: settings' keys, odd values, lists and mappings."""
    if depth > 3 or rng.random() < 0.4:
        return rng.choice(ODD_VALUES[:7] + ["16k", "hw:1", 1.5, 3])
    if rng.random() < 0.3:
        return [random_yaml_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(SETTING_KEYS): random_yaml_value(rng, depth + 1) for _ in range(rng.randint(1, 4))}


def board_cases(rng: random.Random, folder: str, count: int) -> list[tuple[str, list[str]]]:
    """Board files: random structures of settings' keys, and hostile ones."""
    import yaml

    hostile = [
        "a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n",
        "audio: " + "[" * 5000 + "]" * 5000 + "\n",
        "audio: {device: '" + "x" * (2 << 20) + "'}\n",
        "mqtt: {password: 98765432, port: [1883]}\n",
        "recognizer: !!python/object/apply:os.system ['true']\n",
    ]
    cases = []
    for i in range(count):
        path = os.path.join(folder, f"board{i}.yaml")
        if i < len(hostile):
            what = "hostile"
            open(path, "w").write(hostile[i])
        elif i == len(hostile):
            what = "not UTF-8"
            open(path, "wb").write(b"audio: {device: \xff\xfe}\n")
        else:  # mostly the real sections, holding anything
            what = "random"
            sections = {rng.choice(SETTING_KEYS[:4]): random_yaml_value(rng, 1) for _ in range(rng.randint(1, 3))}
            open(path, "w").write(yaml.safe_dump(sections if rng.random() < 0.8 else random_yaml_value(rng)))
        # a device that cannot exist: a board file that is taken ends at the device, not in a live loop
        cases.append((what, [sys.executable, "-m", "rtser", "listen", "--config", path, "--device", "no-such-device-anywhere", "--json"]))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=40, help="cases of each kind (default 40)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds after which a case counts as a hang")
    parser.add_argument("--out", help="folder for abuse.json (the figures and every case's outcome)")
    args = parser.parse_args()
    rng = random.Random(0)
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for kind, make in (("audio files", wav_cases), ("manifests", manifest_cases), ("board files", board_cases)):
            outcomes = [{"case": what, **run(command, args.timeout)} for what, command in make(rng, folder, args.cases)]
            counts = {name: sum(o["outcome"] == name for o in outcomes) for name in sorted({o["outcome"] for o in outcomes})}
            peak = max((o["peak_mb"] for o in outcomes if o["peak_mb"] is not None), default=None)
            results[kind] = {"cases": len(outcomes), "outcomes": counts, "slowest_seconds": max(o["seconds"] for o in outcomes),
                             "peak_mb": peak, "each": outcomes}  # fmt: skip
            print(f"{kind}: {len(outcomes)} cases, {counts}, slowest {results[kind]['slowest_seconds']} s, peak memory {peak} MB", flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "abuse.json"), "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
