"""``python -m training train RECIPE``, ``compare``, ``score MODEL`` and ``detector``: see ``--help``."""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import os
import shutil
import sys
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PROTOCOLS = [os.path.join(HERE, "configs", name) for name in ("emodb_loso.yaml", "ravdess_actors.yaml")]


def _train(args) -> int:
    from rtser.schema import ConfigError

    from .config import config_dict, load_config
    from .dataset import prepare
    from .report import write_report
    from .train import cross_validate, train_final

    config = load_config(args.config, args.overlays)
    if args.smoke:  # a smoke model is never mistaken for the recipe's own
        config = dataclasses.replace(config, name=f"{config.name}-smoke")
    if args.install and os.path.exists(os.path.join(args.install, "model.json")) and not args.replace:
        raise ConfigError(f"{args.install} holds a model already: add --replace to overwrite it (its files, report and figures)")
    data = prepare(config, args.smoke)
    out = args.out or os.path.join("runs", config.name)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(json.loads(json.dumps(config_dict(config))), handle, sort_keys=False)
    started = time.time()
    metrics = _earlier_metrics(out) if args.no_cv else cross_validate(config, data, out, args.run_folds)
    manifest = None if args.no_final else train_final(config, data, out, metrics)
    command = "python -m training " + " ".join(_without_run_folds(args.argv))
    write_report(os.path.join(out, "report.md"), config.name, command, metrics, manifest, time.time() - started)
    if args.install and manifest:
        os.makedirs(args.install, exist_ok=True)
        for name in os.listdir(os.path.join(out, "model")):  # the manifest, its networks and speech detector
            shutil.copy2(os.path.join(out, "model", name), os.path.join(args.install, name))
        shutil.copy2(os.path.join(out, "report.md"), os.path.join(args.install, "report.md"))
        if metrics:
            shutil.copy2(os.path.join(out, "metrics.json"), os.path.join(args.install, "metrics.json"))
    print(f"run folder: {out}")
    return 0


def _earlier_metrics(out: str) -> dict:
    """The cross-validation figures an earlier run left in the run folder (``metrics.json``), or none."""
    path = os.path.join(out, "metrics.json")
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _without_run_folds(argv: list[str]) -> list[str]:
    """The arguments without ``--run-folds``: which process trained which fold does not change the
    pooled figures, so a report's reproduce command names every fold."""
    kept, skip = [], False
    for arg in argv:
        if skip or arg.startswith("--run-folds"):
            skip = arg == "--run-folds"
            continue
        kept.append(arg)
    return kept


def _compare(args) -> int:
    from .compare import compare

    architectures = args.architectures or sorted(glob.glob(os.path.join(HERE, "configs", "architectures", "*.yaml")))
    out = args.out or os.path.join("runs", "compare" + ("-smoke" if args.smoke else ""))
    compare(args.protocols or PROTOCOLS, architectures, args.overlays, out, args.smoke, args.folds, args.epochs, args.threads)
    print(f"table: {os.path.join(out, 'comparison.md')}")
    return 0


def _score(args) -> int:
    from .held_out import score_held_out, write_held_out

    metrics = score_held_out(args.model, args.corpora, args.channels, args.channel_per_voice)
    write_held_out(args.out, metrics, "python -m training " + " ".join(args.argv))
    for name, values in metrics["held_out_corpora"].items():
        print(f"{name}: 4 shared classes mean UA {values['shared_classes_mean_ua']:.3f}, lowest {values['shared_classes_lowest_ua']:.3f}")
    print(f"report: {os.path.join(args.out, 'held_out.md')}")
    return 0


def _detector(args) -> int:
    import tempfile

    from rtser.manifest import load_manifest
    from rtser.pipeline import DEFAULT_MODEL

    from .config import recipe_features
    from .detector import NETWORK_NAME, install_detector, reading_frames, train_detector

    frames_of = args.features_of or args.install or DEFAULT_MODEL
    if os.path.isdir(frames_of):
        features = load_manifest(frames_of).features
    else:
        features = recipe_features(frames_of, args.overlays)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.out or scratch
        network = os.path.join(folder, NETWORK_NAME)
        if args.network is None:
            figures = train_detector(folder, features, args.corpora, args.files_per_corpus, args.epochs, future=args.future,
                                     network_seed=args.network_seed, teachers=args.teachers)
            for threshold, values in figures["validation"]["frames"].items():
                print(f"threshold {threshold}: validation speech frames called speech {values['speech_frames_called_speech']:.3f}, "
                      f"other frames {values['other_frames_called_speech']:.3f}")  # fmt: skip
        else:
            os.makedirs(folder, exist_ok=True)
            reading_frames(args.network, features).save(network)
        print(f"network: {network}")
        if args.install:
            settings = {"threshold": args.threshold, "edge_threshold": args.edge_threshold, "confirm_seconds": args.confirm_seconds,
                        "backfill_seconds": args.backfill_seconds}  # fmt: skip
            entry = install_detector(network, args.install, {k: v for k, v in settings.items() if v is not None}, args.min_speech_seconds)
            print(f"{args.install}: speech_detector {json.dumps(entry)}")
    return 0


def fold_set(text: str) -> set[int]:
    """``0-4,7`` -> {0, 1, 2, 3, 4, 7}."""
    folds: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            folds.update(range(int(low), int(high or low) + 1))
    except ValueError:
        folds = set()
    if not folds:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fold list like 0-4 or 5,7")
    return folds


def main(argv: list[str] | None = None) -> int:
    """Entry point; see ``--help``."""
    from .augment import CHANNELS
    from .corpora import LOADERS

    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="cross-validate, then train and export the model of a recipe")
    train.add_argument("config", help="YAML recipe, e.g. training/configs/default.yaml")
    train.add_argument("--with", dest="overlays", action="append", default=[], metavar="YAML",
                       help="overlay merged into the recipe (e.g. an architecture file); repeatable")  # fmt: skip
    train.add_argument("--out", help="run folder (default runs/<name>[-smoke])")
    train.add_argument("--smoke", action="store_true", help="tiny run for CI: few files, one fold, one epoch")
    train.add_argument("--run-folds", type=fold_set, metavar="A-B",
                       help="train only these folds (e.g. 0-4 or 5,7); folds already in the run folder are "
                            "kept, so processes can share a run's folds and a stopped run resumes")  # fmt: skip
    train.add_argument("--no-cv", action="store_true", help="skip cross-validation (the figures of an earlier run in the run folder, its metrics.json, are reported)")
    train.add_argument("--no-final", action="store_true", help="skip the final model")
    train.add_argument("--install", help="copy the exported model into this folder (e.g. rtser/models/default)")
    train.add_argument("--replace", action="store_true", help="with --install: overwrite the model already in that folder")
    compare = sub.add_parser("compare", help="cross-validate several architectures under the same protocols")
    compare.add_argument("--protocol", dest="protocols", action="append", metavar="YAML",
                         help="recipe giving corpora, labels and folds (default: emodb_loso and ravdess_actors)")  # fmt: skip
    compare.add_argument("--architecture", dest="architectures", action="append", metavar="YAML",
                         help="architecture overlay (default: every file in training/configs/architectures)")  # fmt: skip
    compare.add_argument("--with", dest="overlays", action="append", default=[], metavar="YAML",
                         help="further overlay for every run (e.g. training/configs/augment/matlab.yaml)")  # fmt: skip
    compare.add_argument("--folds", type=int, help="only the first N folds of each protocol")
    compare.add_argument("--epochs", type=int, help="epochs instead of the recipe's")
    compare.add_argument("--threads", type=int, help="CPU threads for training instead of the recipe's")
    compare.add_argument("--out", help="folder of the runs and the table (default runs/compare[-smoke])")
    compare.add_argument("--smoke", action="store_true", help="tiny runs for CI: few files, one fold, one epoch")
    score = sub.add_parser("score", help="score a finished model on whole corpora it never heard")
    score.add_argument("model", help="model folder (its model.json), e.g. rtser/models/default")
    score.add_argument("--corpus", dest="corpora", action="append", required=True, choices=sorted(LOADERS),
                       help="corpus to score on, all of its speakers; repeatable")  # fmt: skip
    score.add_argument("--out", required=True, help="folder for held_out.json and held_out.md")
    score.add_argument("--channels", choices=CHANNELS, default="recorded",
                       help="hear each utterance as recorded, or through a channel of its own: all (microphone, level, "
                            "room, background) or one of them, or spoken higher (higher_voice: pitch and formants up 4-7 semitones)")  # fmt: skip
    score.add_argument("--channel-per-voice", action="store_true", help="with --channels: one channel for each speaker instead of each utterance")
    detector = sub.add_parser("detector", help="train rtser's own speech detector, taught by Silero VAD")
    detector.add_argument("--out", help="folder for voice_network.npz (and, when trained, detector.json)")
    detector.add_argument("--network", help="a network trained before, instead of training one: set to read the frames of "
                          "--features-of, which may differ from those it was trained on in pitch_stride alone")
    detector.add_argument("--install", metavar="MODEL", help="make the network the speech detector of this model folder")
    detector.add_argument("--threshold", type=float, help="with --install: the speech probability a frame needs")
    detector.add_argument("--edge-threshold", type=float, help="with --install: the probability from which frames right after a segment's "
                          "last speech frame move its stop later (they do not hold it open)")
    detector.add_argument("--confirm-seconds", type=float, help="with --install: speech a segment needs to be reported")
    detector.add_argument("--backfill-seconds", type=float, help="with --install: how far a segment may start before the first speech frame")
    detector.add_argument("--min-speech-seconds", type=float, help="with --install: speech a window needs to be judged (the model's speech_gate)")
    detector.add_argument("--features-of", metavar="MODEL_OR_RECIPE",
                          help="the model folder or training recipe whose feature frames the detector reads (default: the --install model, else the shipped one)")  # fmt: skip
    detector.add_argument("--with", dest="overlays", action="append", default=[], metavar="YAML",
                          help="with a recipe as --features-of: an overlay on it (an architecture file); repeatable")  # fmt: skip
    detector.add_argument("--corpus", dest="corpora", action="append", choices=sorted(LOADERS),
                          help="corpus to take voices from; repeatable (default: every corpus found)")  # fmt: skip
    detector.add_argument("--files-per-corpus", type=int, default=1200, help="utterances of each corpus that teach (default 1200)")
    detector.add_argument("--epochs", type=int, default=40)
    detector.add_argument("--network-seed", type=int, help="seed of the network's first weights and batch order alone (default: the "
                          "examples' seed, 0); the voices and examples stay the same, so cached ones serve")
    detector.add_argument("--teacher", dest="teachers", action="append", default=[], metavar="NETWORK",
                          help="a network trained before on the same frames; repeatable: the new network learns their averaged "
                          "probabilities instead of Silero's calls")
    detector.add_argument("--future", type=int, default=10, help="frames after a frame that its decision waits for (default 10: 0.1 s)")
    args = parser.parse_args(argv)
    if args.command == "detector" and not (args.out or args.network):
        detector.error("give --out (to train a network) or --network (to install one trained before)")
    args.argv = argv if argv is not None else sys.argv[1:]

    from rtser.errors import RtserError

    from .corpora import DataMissing

    try:
        return {"train": _train, "compare": _compare, "score": _score, "detector": _detector}[args.command](args)
    except (RtserError, OSError, DataMissing) as err:
        print(f"training: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
