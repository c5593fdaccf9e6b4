"""Probe: how much each way of normalising features keeps of the emotion in voices never heard.

    python scripts/normalisation_probe.py [training/configs/emodb_loso_long.yaml] [--with OVERLAY] [--pitch]

A quick, model-free check that needs no network training: each utterance becomes a vector of
statistics of its speech frames (the mean, standard deviation, mean absolute frame-to-frame change
and 10-90 percentile range of each feature, computed by ``rtser.features``), and a class-weighted
logistic regression is scored leave-one-speaker-out (UA) on the recipe's corpora, with the vectors
normalised four ways:

- ``global``: one mean and scale from the training speakers (keeps the level, and the microphone's);
- ``utterance mean removed``: what rtser's per-window mean removal did before speaker normalisation
  (drops the level and the spectral shape of the whole utterance together with the channel's);
- ``speaker, offline``: each speaker's own mean and scale over all their utterances;
- ``speaker, streaming``: each test utterance normalised by the statistics of the speaker's earlier
  utterances only, starting from the training speakers' average as a prior worth ``--prior``
  utterances: what rtser's running statistics of the voice it hears (``rtser.normalization``)
  do. The speaker's utterances come in a seeded random order (RAVDESS's file order groups them
  by emotion, which no conversation does).

``--pitch`` appends statistics of the voice's pitch (librosa's pYIN, which rtser's features do not
compute): the mean, standard deviation, 10th and 90th percentiles and 10-90 range of log F0 over the
voiced frames, its mean absolute frame-to-frame change, the voiced share of frames and the mean
voicing probability. It asks whether pitch holds emotion the features miss (pYIN takes about 7
minutes for EMO-DB on one core). The pitch statistics are normalised like the others, except in
``utterance mean removed``, which drops the features' means only.

``--held-out-corpora`` asks instead what a file heard alone gets on a corpus never heard (the
cold start of leave-one-corpus-out, e.g. with ``training/configs/five_corpora_loco.yaml``): each
corpus is held out whole in turn, and every utterance, of the training corpora and the held-out one
alike, is standardised frame by frame as rtser standardises a file heard alone: by its own speech
frames blended with the training speakers' average worth ``P`` seconds of speech (``--priors``;
``inf``: the average alone, 0: the utterance alone). Scored over the four classes every corpus has.

Prints JSON: UA and the per-speaker UA range of each. Needs the train extra (torch, librosa).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import torch
from tqdm import tqdm

from rtser.features import FeaturePlan, extract
from rtser.windows import speech_mask
from training.config import load_config
from training.dataset import prepare
from training.evaluate import SHARED_LABELS, scores
from training.windows import stream_positions


def utterance_statistics(wave: np.ndarray, config) -> np.ndarray:
    """Mean, std, mean absolute change and 10-90 percentile range of the speech frames' features."""
    features = extract(wave, config.features, FeaturePlan(config.features))
    mask = speech_mask(features, config.features, config.speech_gate)
    speech = features[mask] if mask is not None else features
    spread = np.percentile(speech, 90, axis=0) - np.percentile(speech, 10, axis=0)
    return np.concatenate([speech.mean(0), speech.std(0), np.abs(np.diff(speech, axis=0)).mean(0), spread])


def frame_moments(wave: np.ndarray, config) -> np.ndarray:
    """Count, mean, variance, mean absolute change and 10-90 percentile range of the speech frames'
    features (what a per-feature affine standardisation of the frames turns into the statistics of
    :func:`utterance_statistics`), as one row: ``[1 + 4 * features]``."""
    features = extract(wave, config.features, FeaturePlan(config.features))
    mask = speech_mask(features, config.features, config.speech_gate)
    speech = features[mask] if mask is not None else features
    spread = np.percentile(speech, 90, axis=0) - np.percentile(speech, 10, axis=0)
    return np.concatenate([[len(speech)], speech.mean(0), speech.var(0), np.abs(np.diff(speech, axis=0)).mean(0), spread])


def alone_statistics(moments: np.ndarray, prior_mean: np.ndarray, prior_var: np.ndarray, prior_frames: float) -> np.ndarray:
    """Each utterance's statistics once its frames are standardised as a file heard alone: by its
    own frames blended with a prior worth ``prior_frames`` frames (inf: the prior alone)."""
    count, mean, var, change, spread = moments[:, :1], *np.split(moments[:, 1:], 4, axis=1)
    if np.isinf(prior_frames):
        centre, scale = prior_mean, np.sqrt(prior_var)
    else:
        total = prior_frames + count
        centre = (prior_frames * prior_mean + count * mean) / total
        scale = np.sqrt(np.maximum((prior_frames * (prior_var + prior_mean**2) + count * (var + mean**2)) / total - centre**2, 1e-6))
    return np.concatenate([(mean - centre) / scale, np.sqrt(var) / scale, change / scale, spread / scale], axis=1)


def speakers_average(moments: np.ndarray, speakers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The speakers' average mean and within-speaker variance of every feature (rtser's prior)."""
    means, variances = [], []
    for speaker in np.unique(speakers):
        own = moments[speakers == speaker]
        count, mean, var = own[:, :1], *np.split(own[:, 1:], 4, axis=1)[:2]
        total = count.sum()
        centre = (count * mean).sum(0) / total
        means.append(centre)
        variances.append((count * (var + mean**2)).sum(0) / total - centre**2)
    return np.mean(means, axis=0), np.mean(variances, axis=0)


def held_out_corpora(config, data, priors: list[float]) -> dict:
    """UA over the four shared classes of each corpus held out whole, its files heard alone, for
    each prior weight (seconds of speech)."""
    shared = [config.labels.index(name) for name in SHARED_LABELS]
    keep = np.flatnonzero(np.isin(data.targets, shared))
    y = np.searchsorted(shared, data.targets[keep])
    corpora = np.array([data.utterances[i].corpus for i in keep])
    speakers = np.array([data.utterances[i].speaker for i in keep])
    moments = np.stack([frame_moments(data.waves[i], config) for i in tqdm(keep, desc="features", unit="file")])
    fps = config.features.frames_per_second

    def heard_alone(prior: float):
        return lambda train: alone_statistics(moments, *speakers_average(moments[train], speakers[train]), prior * fps)

    results = {f"prior {prior:g} s": each_corpus_held_out(heard_alone(prior), y, corpora, len(shared)) for prior in priors}
    known = voice_known_statistics(moments, speakers)
    results["each voice's own statistics"] = each_corpus_held_out(lambda train: known, y, corpora, len(shared))
    return results


def each_corpus_held_out(statistics, y: np.ndarray, corpora: np.ndarray, n_classes: int) -> dict:
    """UA over the shared classes of each corpus held out in turn (the mean, the lowest and each),
    the classifier fitted on the other corpora; ``statistics(train)`` gives every utterance's vector
    once the training utterances (a mask) are known."""
    per_corpus = {}
    for corpus in sorted(set(corpora)):
        train, test = corpora != corpus, corpora == corpus
        x = statistics(train)
        per_corpus[corpus] = round(scores(y[test], fit_predict(x[train], y[train], x[test], n_classes), list(SHARED_LABELS))["ua"], 3)
    ua = list(per_corpus.values())
    return {"mean_ua": round(float(np.mean(ua)), 3), "lowest_ua": min(ua), "corpora": per_corpus}


def voice_known_statistics(moments: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Each utterance's statistics once its frames are standardised by its speaker's own mean and
    deviation over all their utterances: what a recognizer that knows the voice well can do."""
    x = np.empty((len(moments), moments.shape[1] - 1))
    for speaker in np.unique(speakers):
        own = speakers == speaker
        x[own] = alone_statistics(moments[own], *speakers_average(moments[own], speakers[own]), np.inf)
    return x


def pitch_statistics(wave: np.ndarray, rate: int) -> np.ndarray:
    """Statistics of log F0 over the voiced frames (pYIN, 60-500 Hz, 10 ms hop; a flat 150 Hz where
    fewer than 3 frames are voiced), the voiced share of frames and the mean voicing probability."""
    import librosa

    f0, voiced, probability = librosa.pyin(wave, fmin=60, fmax=500, sr=rate, frame_length=1024, hop_length=rate // 100)
    log_f0 = np.log(f0[voiced]) if voiced.sum() > 2 else np.log(np.full(3, 150.0))
    p10, p90 = np.percentile(log_f0, [10, 90])
    change = np.abs(np.diff(log_f0)).mean()
    return np.array([log_f0.mean(), log_f0.std(), p10, p90, p90 - p10, change, voiced.mean(), np.nanmean(probability)])


def standardise(x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return (x - mean) / np.sqrt(np.maximum(var, 1e-12))


def per_speaker(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Each speaker's vectors standardised by that speaker's own statistics."""
    out = np.empty_like(x)
    for speaker in np.unique(speakers):
        own = speakers == speaker
        out[own] = standardise(x[own], x[own].mean(0), x[own].var(0))
    return out


def streaming(x: np.ndarray, prior_mean: np.ndarray, prior_var: np.ndarray, prior: float) -> np.ndarray:
    """Each row standardised by the running statistics of the rows before it, blended with a prior."""
    out, count, total, squares = np.empty_like(x), 0, np.zeros(x.shape[1]), np.zeros(x.shape[1])
    for i, row in enumerate(x):
        mean = (prior * prior_mean + total) / (prior + count)
        var = (prior * (prior_var + prior_mean**2) + squares) / (prior + count) - mean**2
        out[i] = standardise(row, mean, var)
        count, total, squares = count + 1, total + row, squares + row * row
    return out


def fit_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class-weighted, L2-regularised logistic regression (L-BFGS) on standardised inputs."""
    mean, var = train_x.mean(0), train_x.var(0)
    xs = torch.tensor(standardise(train_x, mean, var), dtype=torch.float32)
    target = torch.tensor(train_y)
    weight = torch.tensor(len(train_y) / np.maximum(np.bincount(train_y, minlength=n_classes), 1) / n_classes, dtype=torch.float32)
    layer = torch.nn.Linear(xs.shape[1], n_classes)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=200)

    def loss():
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(layer(xs), target, weight=weight) + 1e-2 * layer.weight.square().sum()
        value.backward()
        return value

    optimizer.step(loss)
    with torch.no_grad():
        return layer(torch.tensor(standardise(test_x, mean, var), dtype=torch.float32)).argmax(1).numpy()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe", nargs="?", default="training/configs/emodb_loso_long.yaml")
    parser.add_argument("--with", dest="overlays", action="append", default=[], metavar="YAML",
                        help="overlay on the recipe, e.g. training/configs/experiments/pitch.yaml")  # fmt: skip
    parser.add_argument("--prior", type=float, default=5.0, help="weight of the prior in utterances (streaming)")
    parser.add_argument("--pitch", action="store_true", help="append statistics of the voice's pitch (pYIN)")
    parser.add_argument("--held-out-corpora", action="store_true", help="hold each corpus out whole, its files heard alone")
    parser.add_argument("--priors", type=float, nargs="+", default=[0, 0.5, 1, 2, 5, 10, float("inf")],
                        help="with --held-out-corpora: the prior's weights, in seconds of speech")  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = load_config(args.recipe, args.overlays)
    data = prepare(config)
    if args.held_out_corpora:
        results = held_out_corpora(config, data, args.priors)
        json.dump({"recipe": config.name, "utterances": len(data.targets), "held_out_corpora_alone": results}, sys.stdout, indent=1)
        print()
        return
    x = np.stack([utterance_statistics(w, config) for w in data.waves])
    if args.pitch:
        rate = config.features.sample_rate
        x = np.concatenate([x, np.stack([pitch_statistics(w, rate) for w in tqdm(data.waves, desc="pitch", unit="file")])], axis=1)
    y, speakers = data.targets, np.array([u.speaker for u in data.utterances])
    positions = stream_positions(speakers.tolist())
    n_features = config.features.n_features
    results = {}
    for name in ("global", "utterance mean removed", "speaker, offline", "speaker, streaming"):
        predicted = np.empty_like(y)
        for speaker in np.unique(speakers):
            own = np.flatnonzero(speakers == speaker)
            test = own[np.argsort(positions[own])]  # the order runtime_windows plays them in
            train = speakers != speaker
            train_x, test_x = x[train], x[test]
            if name == "utterance mean removed":
                train_x, test_x = train_x[:, n_features:], test_x[:, n_features:]
            elif name.startswith("speaker"):
                train_x = per_speaker(train_x, speakers[train])
                if name == "speaker, offline":
                    test_x = per_speaker(test_x, speakers[test])
                else:
                    others = [x[speakers == s] for s in np.unique(speakers[train])]
                    prior_mean, prior_var = np.mean([o.mean(0) for o in others], 0), np.mean([o.var(0) for o in others], 0)
                    test_x = streaming(test_x, prior_mean, prior_var, args.prior)
            predicted[test] = fit_predict(train_x, y[train], test_x, len(config.labels))
        per = [scores(y[speakers == s], predicted[speakers == s], config.labels)["ua"] for s in np.unique(speakers)]
        results[name] = {"ua": round(scores(y, predicted, config.labels)["ua"], 3), "speaker_ua": [round(min(per), 3), round(max(per), 3)]}
    json.dump({"recipe": config.name, "pitch": args.pitch, "utterances": len(y), "speakers": len(set(speakers)), "ua": results}, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
