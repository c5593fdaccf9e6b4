"""Honest confidence: temperature scaling of the utterance probabilities, fitted on held-out speakers.

An utterance's probabilities (the mean of its windows', as rtser's utterance event gives them) are
recalibrated as ``p ** (1 / T)`` renormalised, which keeps the label and makes ``confidence`` a
probability of being right. ``T`` is fitted on the cross-validation's test decisions (every speaker
held out by the model that judged it); the calibration error after scaling is measured with ``T``
fitted on the other folds only, so the figure is not scored on what chose it.
"""

from __future__ import annotations

import numpy as np

from rtser.calibration import temperature_scaled

BINS = 10


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, bins: int = BINS) -> float:
    """Mean gap between confidence and accuracy over equal-width confidence bins, weighted by the
    share of utterances in each."""
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == targets
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gaps = [abs(confidence[which == b].mean() - correct[which == b].mean()) * np.mean(which == b) for b in range(bins) if np.any(which == b)]
    return float(sum(gaps))


def fit_temperature(probs: np.ndarray, targets: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood of the targets (a grid on log T,
    then a finer one around the best)."""

    def nll(temperature: float) -> float:
        scaled = temperature_scaled(probs, temperature)
        return float(-np.mean(np.log(np.maximum(scaled[np.arange(len(targets)), targets], 1e-12))))

    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 121))
    best = grid[int(np.argmin([nll(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.06, 0.06, 61))
    return round(float(fine[int(np.argmin([nll(t) for t in fine]))]), 4)


def calibration_report(probs: np.ndarray, targets: np.ndarray, folds: np.ndarray) -> dict:
    """The temperature fitted on all held-out decisions, and the calibration error before and after
    scaling (after: each fold scaled by the temperature fitted on the other folds; None with a
    single fold, as there are no others to fit it on)."""
    after = None
    if len(np.unique(folds)) > 1:
        after = np.zeros_like(probs)
        for fold in np.unique(folds):
            held = folds == fold
            after[held] = temperature_scaled(probs[held], fit_temperature(probs[~held], targets[~held]))
    return {
        "temperature": fit_temperature(probs, targets),
        "ece_before": round(expected_calibration_error(probs, targets), 4),
        "ece_after": None if after is None else round(expected_calibration_error(after, targets), 4),
        "utterances": int(len(targets)),
        "bins": BINS,
    }
