"""Temperature scaling of class probabilities (the manifest's ``calibration``; fitted by training)."""

from __future__ import annotations

import numpy as np


def temperature_scaled(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``probs ** (1 / temperature)`` renormalised along the last axis (the label is unchanged)."""
    logits = np.log(np.maximum(np.asarray(probs, np.float64), 1e-12)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return scaled / scaled.sum(axis=-1, keepdims=True)
