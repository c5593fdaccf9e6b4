"""The order in which an epoch visits its training windows: shuffled, or drawn balanced over
classes and corpora."""

from __future__ import annotations

import numpy as np


def balanced_weights(corpora: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """A drawing weight per utterance giving every class the same share of the draws, and within a
    class every corpus that has it the same share (so a big corpus does not drown a small one, nor a
    class that few corpora have); the weights sum to 1."""
    weights = np.zeros(len(targets))
    classes = np.unique(targets)
    for label in classes:
        in_class = targets == label
        holders = np.unique(corpora[in_class])
        for corpus in holders:
            group = in_class & (corpora == corpus)
            weights[group] = 1.0 / (len(classes) * len(holders) * group.sum())
    return weights


def epoch_order(count: int, weights: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
    """``count`` window positions for one epoch: a permutation, or with ``weights`` (one per window)
    as many positions drawn with replacement in proportion to them."""
    if weights is None:
        return rng.permutation(count)
    return rng.choice(count, size=count, p=weights / weights.sum())
