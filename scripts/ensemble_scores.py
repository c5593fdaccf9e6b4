"""Scores of several runs' fold models averaged: what an ensemble of them (or a teacher made of
them, ``train.teachers``) does on the folds' test speakers.

    python scripts/ensemble_scores.py runs/loco-nostats runs/loco-timnet2 runs/loco-afcn

For every fold the runs share (same folder name, same test files), each utterance's probabilities
(the mean of its windows', each speaker's files streamed through one recognizer, as stored in
``fold.json``) are averaged over the runs, and scored as the runs' own reports score them: every
fold pooled, per corpus on its own classes and on the four shared ones, an utterance with no
window an error. Prints one line per artifact (float, int8 TFLite, int8 ONNX) and writes nothing.
Needs the runs' corpora (for the labels).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from training.corpora import load_corpora
from training.evaluate import KINDS, NO_DECISION, SHARED_LABELS, breakdown, held_out_summary


def _folds(run: str) -> dict[str, dict]:
    """The run's finished folds by folder name."""
    found = {}
    for name in sorted(os.listdir(run)):
        path = os.path.join(run, name, "fold.json")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                found[name] = json.load(handle)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders (python -m training train ... --out RUN)")
    args = parser.parse_args()
    with open(os.path.join(args.runs[0], "cross_validation.json"), encoding="utf-8") as handle:
        recipe = json.load(handle)["recipe"]
    labels = recipe["labels"]
    utterances = load_corpora(recipe["corpora"], labels)
    index = {u.path: i for i, u in enumerate(utterances)}
    runs = [_folds(run) for run in args.runs]
    shared = sorted(set.intersection(*(set(folds) for folds in runs)))
    shared = [name for name in shared if all(folds[name]["test"] == runs[0][name]["test"] for folds in runs)]
    if not shared:
        raise SystemExit("ensemble_scores: the runs share no finished fold with the same test files")
    idx = [index[path] for name in shared for path in runs[0][name]["test"]]
    truth = np.array([labels.index(utterances[i].label) for i in idx])
    print(f"{len(shared)} folds ({', '.join(shared)}), {len(idx)} utterances, each speaker's files streamed")
    for kind in KINDS:
        predicted = []
        for name in shared:
            for parts in zip(*(folds[name]["probabilities"][kind] for folds in runs)):
                predicted.append(NO_DECISION if any(p is None for p in parts) else int(np.argmax(np.mean(parts, axis=0))))
        metrics = breakdown(utterances, idx, truth, np.array(predicted), labels, None)
        corpora = sorted({utterances[i].corpus for i in idx})
        four = f"{len(SHARED_LABELS)} shared classes"
        per_corpus = ", ".join(f"{c} {100 * metrics[f'{c}, {four}']['ua']:.1f}" for c in corpora if f"{c}, {four}" in metrics)
        mean = held_out_summary({kind: metrics}, corpora)[kind]["shared_classes_mean_ua"]
        print(f"{kind}: UA all {100 * metrics['all']['ua']:.1f}; {four}: {per_corpus}; mean of corpora {100 * mean:.1f}")


if __name__ == "__main__":
    main()
