"""Where each architecture's time goes in its exported files, and what restructuring them buys.

For each recipe, its network (weights as initialised: the time of a file does not depend on its
weights) is exported five ways: float TFLite; int8 TFLite and int8 ONNX of the network as it is
("plain": everything quantized, average pools as pools); and int8 TFLite and ONNX as rtser exports
them (:func:`training.models.deployable`: the stem on the one-channel input kept in float, average
pools made depthwise convolutions). Each file is sized and timed per window in rtser's own
backends on one thread (median of ``--repeats``), and onnxruntime's profiler gives each int8 ONNX
file's time per operator type.

With ``--trained`` (a ``trained.pt`` of a run folder) the trained network is exported the same
ways and run on real runtime windows (``--files`` utterances of the recipe's corpora, as
``rtser replay`` makes them): the share of window labels each int8 file keeps from the float
network.

    python scripts/export_speed.py                       # every architecture, into docs/export_speed.json
    python scripts/export_speed.py --trained runs/default-final/final/trained.pt --recipe training/configs/default.yaml
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from rtser.backends import load_backend  # noqa: E402
from rtser.bench import cpu_name  # noqa: E402
from rtser.manifest import load_manifest  # noqa: E402
from rtser.normalization import NormalizationSpec  # noqa: E402
from training.compare import latency_ms  # noqa: E402
from training.config import load_config  # noqa: E402
from training.export import export_onnx_int8, export_tflite_float, export_tflite_int8, manifest_dict  # noqa: E402
from training.models import build_model, deployable, footprint  # noqa: E402
from training.models.base import Averaged  # noqa: E402
from training.models.statistics import StatisticsClassifier  # noqa: E402
from training.train import model_spec  # noqa: E402

CONFIGS = os.path.join(HERE, "..", "training", "configs")
# (recipe, overlays): the shipped recipe, the paper's Light-SERNet, and each architecture of the comparison
RECIPES = [(os.path.join(CONFIGS, name), []) for name in ("default.yaml", "lightsernet_paper.yaml")]
RECIPES += [(os.path.join(CONFIGS, "emodb_loso.yaml"), [path]) for path in sorted(glob.glob(os.path.join(CONFIGS, "architectures", "*.yaml")))]
# file name -> (exporter, whether the network is restructured for speed as rtser's exports are)
FORMS = {
    "float.tflite": (export_tflite_float, True),
    "int8-plain.tflite": (export_tflite_int8, False),
    "int8.tflite": (export_tflite_int8, True),
    "int8-plain.onnx": (export_onnx_int8, False),
    "int8.onnx": (export_onnx_int8, True),
}


def recipe_model(config) -> torch.nn.Module:
    """The network a recipe ships (with its statistics classifier where it has one), as initialised."""
    torch.manual_seed(0)
    n_labels, n_features = len(config.labels), config.features.n_features
    network = build_model(config.model, n_labels, n_features).eval()
    if config.train.statistics_classifier:
        return Averaged([network, StatisticsClassifier(n_labels, n_features)]).eval()
    return network


def export_forms(model, spec, calibration: np.ndarray, folder: str) -> dict[str, str]:
    """Each form of ``FORMS`` in its own folder with a manifest rtser loads; name -> folder."""
    folders = {}
    for name, (exporter, restructured) in FORMS.items():
        target = os.path.join(folder, name)
        os.makedirs(target, exist_ok=True)
        kind = name.rpartition(".")[2]
        path = os.path.join(target, f"model.{kind}")
        network = exporter(deployable(model, restructured), calibration, path)
        with open(os.path.join(target, "model.json"), "w", encoding="utf-8") as handle:
            json.dump(manifest_dict(spec, {kind: network}, {}, {}), handle)
        folders[name] = target
    return folders


def onnx_profile(folder: str, windows: np.ndarray, runs: int = 50) -> dict:
    """Milliseconds per window in the int8 ONNX file's operators and their shares by operator type
    (onnxruntime's profiler, one thread)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.enable_profiling, options.log_severity_level = True, 3
    options.profile_file_prefix = os.path.join(folder, "profile")
    session = onnxruntime.InferenceSession(os.path.join(folder, "model.onnx"), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for i in range(runs):
        session.run(None, {name: windows[i % len(windows)][None, None].astype(np.float32)})
    with open(session.end_profiling(), encoding="utf-8") as handle:
        events = [e for e in json.load(handle) if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    by_operator = collections.Counter()
    for event in events:
        by_operator[event["args"]["op_name"]] += event["dur"]
    total = sum(by_operator.values()) or 1
    return {"ms_in_operators": round(total / runs / 1000, 3),
            "by_operator": {op: round(t / total, 3) for op, t in by_operator.most_common(8)}}  # fmt: skip


def time_recipe(recipe: str, overlays: list[str], repeats: int) -> dict:
    """Every form of one recipe's network, timed and profiled."""
    config = load_config(recipe, overlays)
    n = config.features.n_features
    spec = model_spec(config, NormalizationSpec((0.0,) * n, (1.0,) * n))  # the backends never normalise
    model, shape = recipe_model(config), (1, *spec.input_shape[1:])
    windows = np.random.default_rng(0).standard_normal((64, *shape[2:])).astype(np.float32)
    row = {"recipe": " + ".join(os.path.relpath(p) for p in (recipe, *overlays)), "architecture": config.model, **footprint(model, shape), "ms_per_window": {}, "kb": {}, "onnx_profile": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name, target in export_forms(model, spec, windows, folder).items():
            kind = name.rpartition(".")[2]
            row["ms_per_window"][name] = latency_ms(target, kind, windows, repeats)
            row["kb"][name] = round(os.path.getsize(os.path.join(target, f"model.{kind}")) / 1024, 1)
            if kind == "onnx":
                row["onnx_profile"][name] = onnx_profile(target, windows)
    print(json.dumps({k: row[k] for k in ("recipe", "parameters", "macs_per_window", "ms_per_window", "kb")}), flush=True)
    return row


def agreement(recipe: str, trained: str, files: int, repeats: int) -> dict:
    """Share of window labels each int8 form of a trained network keeps from the float network, on
    real runtime windows of the recipe's corpora; and each form's time."""
    from training.audio_cache import load_waves
    from training.corpora import load_corpora
    from training.windows import runtime_windows

    config = load_config(recipe)
    saved = torch.load(trained, weights_only=False)
    model, spec = saved["model"].eval(), model_spec(config, saved["spec"].normalization)
    utterances = load_corpora(config.corpora, config.labels)
    chosen = sorted(np.random.default_rng(1).choice(len(utterances), size=min(files, len(utterances)), replace=False))
    picked = [utterances[i] for i in chosen]
    waves = load_waves(picked, config.features.sample_rate)
    windows = np.concatenate([w for w in runtime_windows(waves, [u.speaker for u in picked], spec) if len(w)])
    calibration = windows[np.random.default_rng(2).choice(len(windows), size=min(200, len(windows)), replace=False)]
    with torch.no_grad():
        reference = model(torch.from_numpy(windows[:, None])).numpy()
    result = {"recipe": os.path.relpath(recipe), "trained": trained, "windows": len(windows), "forms": {}}
    with tempfile.TemporaryDirectory() as folder:
        for name, target in export_forms(model, spec, calibration, folder).items():
            kind = name.rpartition(".")[2]
            backend = load_backend(load_manifest(target), kind, threads=1)
            probs = np.stack([backend.predict(w) for w in windows])
            result["forms"][name] = {
                "labels_kept": round(float(np.mean(probs.argmax(1) == reference.argmax(1))), 4),
                "mean_abs_prob_error": round(float(np.abs(probs - reference).mean()), 4),
                "ms_per_window": latency_ms(target, kind, windows, repeats),
                "kb": round(os.path.getsize(os.path.join(target, f"model.{kind}")) / 1024, 1),
            }
            print(name, result["forms"][name], flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", action="append", help="recipe YAML (repeatable; default: the shipped, the paper's and every architecture)")
    parser.add_argument("--with", dest="overlays", action="append", default=[], metavar="YAML", help="overlay merged into each --recipe (repeatable)")
    parser.add_argument("--trained", help="trained.pt of a run of the (one) --recipe: label agreement on real windows")
    parser.add_argument("--files", type=int, default=300, help="utterances for the agreement (default 300)")
    parser.add_argument("--repeats", type=int, default=300, help="timed windows per file (default 300)")
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "export_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.trained:
        if not args.recipe or len(args.recipe) != 1:
            parser.error("--trained needs the one --recipe it was trained by")
    previous = json.load(open(args.out, encoding="utf-8")) if os.path.exists(args.out) else {}
    if args.trained:
        result = {"agreement": agreement(args.recipe[0], args.trained, args.files, args.repeats)}
    else:
        recipes = [(path, args.overlays) for path in args.recipe] if args.recipe else RECIPES
        rows = {row["recipe"]: row for row in previous.get("architectures", [])}  # rows of other recipes are kept
        rows.update((row["recipe"], row) for row in (time_recipe(path, overlays, args.repeats) for path, overlays in recipes))
        result = {"architectures": list(rows.values())}
    with open(args.out, "w", encoding="utf-8") as handle:
        json.dump({**previous, **result, "cpu": cpu_name()}, handle, indent=1)
    print(f"written: {os.path.relpath(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
