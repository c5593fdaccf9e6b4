"""``python -m training train CONFIG``: cross-validate a recipe, then train and export its model."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import yaml


def _smoke_subset(utterances, per_speaker_label: int):
    seen: dict = {}
    keep = []
    for u in utterances:
        key = (u.speaker, u.label)
        if seen.get(key, 0) < per_speaker_label:
            seen[key] = seen.get(key, 0) + 1
            keep.append(u)
    return keep


def main(argv: list[str] | None = None) -> int:
    """Entry point; see ``--help``."""
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="cross-validate, then train and export the model of a recipe")
    train.add_argument("config", help="YAML recipe, e.g. training/configs/default.yaml")
    train.add_argument("--out", help="run folder (default runs/<name>[-smoke])")
    train.add_argument("--smoke", action="store_true", help="tiny run for CI: few files, one fold, one epoch")
    train.add_argument("--no-cv", action="store_true", help="skip cross-validation")
    train.add_argument("--no-final", action="store_true", help="skip the final model")
    train.add_argument("--install", help="copy the exported model into this folder (e.g. rtser/models/default)")
    args = parser.parse_args(argv)

    from rtser.errors import RtserError

    from .audio_cache import load_waves
    from .config import config_dict, load_config
    from .corpora import DataMissing, load_corpora
    from .folds import make_folds
    from .report import write_report
    from .train import cross_validate, train_final

    try:
        config = load_config(args.config)
        utterances = load_corpora(config.corpora, config.labels)
    except (RtserError, OSError, DataMissing) as err:
        print(f"training: error: {err}", file=sys.stderr)
        return 2
    epochs = config.train.epochs
    folds = make_folds(utterances, config.folds, config.validation_speakers_per_corpus, config.train.seed)
    if args.smoke:
        utterances = _smoke_subset(utterances, config.smoke.files_per_speaker_label)
        folds = make_folds(utterances, config.folds, config.validation_speakers_per_corpus, config.train.seed)[: config.smoke.folds]
        epochs = config.smoke.epochs
    out = args.out or os.path.join("runs", config.name + ("-smoke" if args.smoke else ""))
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(json.loads(json.dumps(config_dict(config))), handle, sort_keys=False)
    started = time.time()
    waves = load_waves(utterances, config.features.sample_rate)
    targets = np.array([config.labels.index(u.label) for u in utterances])
    print(f"{len(utterances)} utterances, {len({u.speaker for u in utterances})} speakers, labels {config.labels}")
    metrics = {} if args.no_cv else cross_validate(config, utterances, waves, targets, folds, epochs, out)
    if metrics:
        with open(os.path.join(out, "metrics.json"), "w", encoding="utf-8") as handle:
            json.dump(metrics, handle, indent=1)
    manifest = None if args.no_final else train_final(config, utterances, waves, targets, epochs, out, metrics)
    command = "python -m training " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report(os.path.join(out, "report.md"), config.name, command, metrics, manifest, time.time() - started)
    if args.install and manifest:
        os.makedirs(args.install, exist_ok=True)
        for name in ("model.json", "model.tflite", "model.onnx"):
            shutil.copy2(os.path.join(out, "model", name), os.path.join(args.install, name))
        shutil.copy2(os.path.join(out, "report.md"), os.path.join(args.install, "report.md"))
        if metrics:
            shutil.copy2(os.path.join(out, "metrics.json"), os.path.join(args.install, "metrics.json"))
    print(f"run folder: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
