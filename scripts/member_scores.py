"""Scores of each part of a run's fold models on the folds' test speakers, float.

    python scripts/member_scores.py runs/emodb-psv [--folds 0,1,5,6] [--smoke]

A model with the statistics classifier averages it with the network (or with the networks' own
average) in one graph; this prints the pooled UA of the network part alone, of the statistics
classifier alone and of the two averaged (the model as exported: the run's float UA on the same
folds), over the run folder's folds that kept their trained model (``trained.pt``; ``--folds``:
those of them named), each on its test speakers' runtime windows. It tells which part a change of
recipe moved. ``--smoke`` for a run trained with ``--smoke``. Needs the train extra and the run's
corpora.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import torch

from training.__main__ import fold_set
from training.config import load_config
from training.dataset import prepare
from training.evaluate import scores, utterance_predictions
from training.models.base import Averaged
from training.models.statistics import StatisticsClassifier
from training.train import Trainer, predict_windows, speaker_indices


def parts(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The model and, where it averages a statistics classifier with a network part, each of them."""
    named = {"model": model}
    if isinstance(model, Averaged) and isinstance(model.members[-1], StatisticsClassifier):
        named = {"network part": model.members[0], "statistics classifier": model.members[-1], **named}
    return named


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="run folder of python -m training train (its config.yaml and foldNN/trained.pt)")
    parser.add_argument("--folds", type=fold_set, help="only these folds, e.g. 0,1,5,6 or 0-4")
    parser.add_argument("--smoke", action="store_true", help="the run was trained with --smoke (its few files)")
    args = parser.parse_args(argv)
    config = load_config(os.path.join(args.run, "config.yaml"))
    data = prepare(config, args.smoke)
    trainer = Trainer(config, data)
    truth, predictions = [], {}
    for k, fold in enumerate(data.folds):
        checkpoint = os.path.join(args.run, fold.name, "trained.pt")
        if not os.path.exists(checkpoint) or (args.folds is not None and k not in args.folds):
            continue
        saved = torch.load(checkpoint, weights_only=False)
        test_idx = speaker_indices(data.utterances, fold.test)
        windows = trainer.windows(test_idx, saved["spec"])
        truth.append(data.targets[test_idx])
        for name, part in parts(saved["model"]).items():
            predictions.setdefault(name, []).append(utterance_predictions(predict_windows(part, windows)))
    if not truth:
        raise SystemExit(f"member_scores: no fold of {args.run} kept its trained model (foldNN/trained.pt)")
    pooled = np.concatenate(truth)
    result = {name: round(scores(pooled, np.concatenate(p), config.labels)["ua"], 4) for name, p in predictions.items()}
    print(json.dumps({"run": args.run, "folds": len(truth), "utterances": len(pooled), "ua_float": result}, indent=1))


if __name__ == "__main__":
    main()
