"""Metrics (UA, WA, macro F1, confusion matrix) and utterance decisions from window probabilities."""

from __future__ import annotations

import numpy as np

NO_DECISION = -1
WARM_UP_UTTERANCES = 10  # a voice's first utterances are scored apart: see breakdown
SHARED_LABELS = ("anger", "happiness", "neutral", "sadness")  # the classes every corpus has

KINDS = ("float", "tflite", "onnx")  # the float network and the two int8 files as rtser runs them


def artifact_names(metrics: dict) -> list[str]:
    """The artifacts pooled metrics score: float, tflite, onnx, and each heard alone where scored."""
    return [name for name in metrics if name.partition(" ")[0] in KINDS]


def utterance_probabilities(window_probs: list[np.ndarray]) -> list[list[float] | None]:
    """Mean of each utterance's window probabilities (as rtser's utterance event gives it), None
    where it had no window."""
    return [np.round(p.mean(axis=0), 6).tolist() if len(p) else None for p in window_probs]


def utterance_predictions(window_probs: list[np.ndarray]) -> np.ndarray:
    """Mean of each utterance's window probabilities, argmax; NO_DECISION where it had no window."""
    return np.array([int(np.argmax(p.mean(axis=0))) if len(p) else NO_DECISION for p in window_probs])


def confusion(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]``; utterances without a decision are left out here (but count as
    errors in every score)."""
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    for t, p in zip(truth, predicted):
        if p != NO_DECISION:
            matrix[t, p] += 1
    return matrix


def scores(truth: np.ndarray, predicted: np.ndarray, labels: list[str]) -> dict:
    """UA (mean per-class recall, the headline), WA (accuracy), macro F1, confusion matrix."""
    n = len(labels)
    matrix = confusion(truth, predicted, n)
    support = np.bincount(truth, minlength=n)
    hits = np.diag(matrix)
    recall = np.divide(hits, support, out=np.zeros(n), where=support > 0)
    predicted_counts = matrix.sum(axis=0)
    precision = np.divide(hits, predicted_counts, out=np.zeros(n), where=predicted_counts > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    present = support > 0
    return {
        "ua": float(recall[present].mean()),
        "wa": float(hits.sum() / max(1, len(truth))),
        "macro_f1": float(f1[present].mean()),
        "n": int(len(truth)),
        "no_decision": int(np.sum(predicted == NO_DECISION)),
        "recall": {label: round(float(r), 4) for label, r in zip(labels, recall)},
        "confusion": matrix.tolist(),
    }


def plot_confusion(matrix: np.ndarray, labels: list[str], title: str, path: str) -> None:
    """Save a row-normalised confusion matrix as a PNG."""
    import matplotlib

    matrix = np.asarray(matrix, dtype=float)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix / np.maximum(1, matrix.sum(axis=1, keepdims=True))
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.7 * len(labels)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{rows[i, j]:.2f}", ha="center", va="center", color="white" if rows[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def breakdown(utterances, idx, truth, predictions, labels, positions: np.ndarray | None) -> dict:
    """Pooled scores, per corpus (over its own classes, and over the four every corpus has), and,
    for utterances streamed per voice (``positions``), the first utterances of each voice (the
    recognizer still learning the voice's statistics) apart from the later ones."""
    corpora = np.array([utterances[i].corpus for i in idx])
    shared = np.isin(truth, [labels.index(name) for name in SHARED_LABELS if name in labels])
    parts = {}
    for corpus in sorted(set(corpora)):
        parts[corpus] = corpora == corpus
        if set(SHARED_LABELS) <= set(labels):
            parts[f"{corpus}, {len(SHARED_LABELS)} shared classes"] = (corpora == corpus) & shared
    if positions is not None:
        parts[f"first {WARM_UP_UTTERANCES} of each voice"] = positions < WARM_UP_UTTERANCES
        parts["the rest"] = positions >= WARM_UP_UTTERANCES
    out = {"all": scores(truth, predictions, labels)}
    out.update({part: scores(truth[keep], predictions[keep], labels) for part, keep in parts.items() if keep.any()})
    return out


def held_out_summary(metrics: dict, corpora: list[str]) -> dict:
    """Leave one corpus out: per artifact, the mean and the lowest UA over the held-out ``corpora``,
    on the four shared classes and on each corpus's own."""
    summary = {}
    for name, parts in metrics.items():
        shared = [f"{c}, {len(SHARED_LABELS)} shared classes" for c in corpora]
        four = [parts[part]["ua"] for part in shared if part in parts]
        own = [parts[c]["ua"] for c in corpora]
        summary[name] = {"shared_classes_mean_ua": round(float(np.mean(four)), 4) if four else None,
                         "shared_classes_lowest_ua": round(float(np.min(four)), 4) if four else None,
                         "own_classes_mean_ua": round(float(np.mean(own)), 4)}  # fmt: skip
    return summary
