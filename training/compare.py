"""``python -m training compare``: architectures side by side under one speaker-independent protocol.

Each (protocol, architecture) pair is cross-validated exactly as ``python -m training train`` does
(the float network and the int8 files as rtser runs them, on the runtime's own windows), then the
first fold's exported files are measured: size, and latency per window in rtser on one thread.
Results accumulate in ``comparison.json`` (a pair already there is not run again, so runs of
different protocols can be made apart and their rows joined), and ``comparison.md`` and
``comparison.png`` are rewritten after each pair and at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np

from rtser.backends import load_backend
from rtser.manifest import load_manifest

from .config import file_stem, load_config
from .dataset import prepare
from .evaluate import KINDS
from .models import build_model, footprint
from .train import cross_validate
from .windows import runtime_windows

def latency_ms(folder: str, kind: str, windows: np.ndarray, repeats: int = 100) -> float:
    """Median milliseconds per window of an exported file in rtser's backend on one thread."""
    backend = load_backend(load_manifest(folder), kind, threads=1)
    for window in windows[:5]:
        backend.predict(window)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        backend.predict(windows[i % len(windows)])
        times.append(time.perf_counter() - started)
    return round(1000 * float(np.median(times)), 2)


def _stem(*paths: str) -> str:
    return "+".join(file_stem(p) for p in paths)


def run_pair(protocol: str, architecture: str, overlays: list[str], out: str, smoke: bool,
             max_folds: int | None, epochs: int | None, threads: int | None) -> dict:  # fmt: skip
    """Cross-validate one architecture under one protocol and measure its exported files."""
    config = load_config(protocol, [architecture, *overlays])
    if threads:
        config = dataclasses.replace(config, train=dataclasses.replace(config.train, threads=threads))
    data = prepare(config, smoke, max_folds, epochs)
    run_dir = os.path.join(out, config.name)
    started = time.time()
    metrics = cross_validate(config, data, run_dir)
    minutes_per_fold = (time.time() - started) / 60 / len(data.folds)
    folder = os.path.join(run_dir, data.folds[0].name, "model")
    manifest = load_manifest(folder)
    windows = np.concatenate(runtime_windows(data.waves[:30], [u.speaker for u in data.utterances[:30]], manifest))
    network = build_model(config.model, len(config.labels), config.features.n_features)
    return {
        "architecture": _stem(architecture, *overlays),
        "protocol": _stem(protocol),
        "run": config.name,
        **footprint(network, manifest.input_shape),
        "kb": {kind: round(os.path.getsize(os.path.join(folder, f"model.{kind}")) / 1024, 1) for kind in KINDS[1:]},
        "latency_ms": {kind: latency_ms(folder, kind, windows) for kind in KINDS[1:]},
        "ua": {kind: round(metrics[kind]["all"]["ua"], 4) for kind in KINDS},
        "folds": [fold.name for fold in data.folds],
        "epochs": data.epochs,
        "minutes_per_fold": round(minutes_per_fold, 2),
    }


def compare(protocols: list[str], architectures: list[str], overlays: list[str], out: str, smoke: bool = False,
            max_folds: int | None = None, epochs: int | None = None, threads: int | None = None) -> list[dict]:  # fmt: skip
    """Run every pair not yet in ``out/comparison.json``; write the table and plot after each."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "comparison.json")
    rows = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            rows = json.load(handle)
    for architecture in architectures:
        for protocol in protocols:
            if (_stem(protocol), _stem(architecture, *overlays)) in {(r["protocol"], r["architecture"]) for r in rows}:
                continue
            rows.append(run_pair(protocol, architecture, overlays, out, smoke, max_folds, epochs, threads))
            with open(path, "w", encoding="utf-8") as handle:
                json.dump(rows, handle, indent=1)
            write_outputs(rows, out)
    write_outputs(rows, out)
    return rows


def write_outputs(rows: list[dict], out: str) -> None:
    """``comparison.md`` and ``comparison.png`` from the rows so far."""
    if rows:
        write_table(rows, os.path.join(out, "comparison.md"))
        plot(rows, os.path.join(out, "comparison.png"))


def _ua(row: dict | None) -> str:
    return " / ".join(f"{row['ua'][k]:.3f}" for k in KINDS) if row else "–"


def write_table(rows: list[dict], path: str) -> None:
    """One row per architecture: size, cost, speed, UA per protocol (float / int8 TFLite / int8 ONNX)."""
    protocols = sorted({r["protocol"] for r in rows})
    by_key = {(r["architecture"], r["protocol"]): r for r in rows}
    lines = [
        "| architecture | parameters | MMACs / window | TFLite KB | ONNX KB | ms / window TFLite, ONNX | "
        + " | ".join(f"{p} UA float / TFLite / ONNX" for p in protocols) + " | min / fold (" + ", ".join(protocols) + ") |",
        "|---" * (7 + len(protocols)) + "|",
    ]  # fmt: skip
    for architecture in dict.fromkeys(r["architecture"] for r in rows):
        first = next(r for r in rows if r["architecture"] == architecture)
        per_protocol = [by_key.get((architecture, p)) for p in protocols]
        lines.append(
            f"| {architecture} | {first['parameters']:,} | {first['macs_per_window'] / 1e6:.1f} | {first['kb']['tflite']} | "
            f"{first['kb']['onnx']} | {first['latency_ms']['tflite']}, {first['latency_ms']['onnx']} | "
            + " | ".join(_ua(r) for r in per_protocol)
            + " | " + ", ".join(f"{r['minutes_per_fold']:.1f}" if r else "–" for r in per_protocol) + " |"
        )  # fmt: skip
    lines += ["", "Folds and epochs per run: " + "; ".join(f"{r['run']}: {len(r['folds'])} folds, {r['epochs']} epochs" for r in rows)]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def plot(rows: list[dict], path: str) -> None:
    """int8 TFLite UA against latency per window, one marker per architecture and protocol; each
    point carries its architecture's number, and the key under the plot names them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = {name: i + 1 for i, name in enumerate(dict.fromkeys(r["architecture"] for r in rows))}
    fig, ax = plt.subplots(figsize=(7, 4.5 + 0.2 * len(numbers)))
    for protocol, marker in zip(sorted({r["protocol"] for r in rows}), "os^Dv<>p"):
        chosen = [r for r in rows if r["protocol"] == protocol]
        ax.scatter([r["latency_ms"]["tflite"] for r in chosen], [r["ua"]["tflite"] for r in chosen], marker=marker, label=protocol)
        for r in chosen:
            ax.annotate(str(numbers[r["architecture"]]), (r["latency_ms"]["tflite"], r["ua"]["tflite"]), fontsize=8,
                        xytext=(4, 2), textcoords="offset points")  # fmt: skip
    ax.set_xlabel("ms per window (int8 TFLite, one thread)")
    ax.set_ylabel("UA (int8 TFLite, speaker-independent)")
    ax.legend(fontsize=8)
    key = "\n".join(f"{number}  {name}" for name, number in numbers.items())
    fig.text(0.02, 0.01, key, fontsize=7, va="bottom", family="monospace")
    fig.tight_layout(rect=(0, 0.04 + 0.035 * len(numbers), 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
