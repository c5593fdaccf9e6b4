"""Smoothing of window probabilities: exponential moving average, and hysteresis on the label."""

from __future__ import annotations

import numpy as np


class Smoother:
    """EMA of probabilities; the reported label changes only when another label leads by ``margin``."""

    def __init__(self, alpha: float = 0.5, margin: float = 0.1):
        if not 0 < alpha <= 1 or not 0 <= margin < 1:
            raise ValueError("need 0 < alpha <= 1 and 0 <= margin < 1")
        self.alpha, self.margin = alpha, margin
        self._probs: np.ndarray | None = None
        self._label: int | None = None

    def update(self, probs: np.ndarray) -> tuple[np.ndarray, int]:
        """Add one window's probabilities; return the smoothed probabilities and the label index."""
        if self._probs is None:
            self._probs = probs.astype(np.float64)
        else:
            self._probs = self.alpha * probs + (1 - self.alpha) * self._probs
        best = int(np.argmax(self._probs))
        if self._label is None or self._probs[best] - self._probs[self._label] >= self.margin:
            self._label = best
        return self._probs, self._label

    def reset(self) -> None:
        """Start afresh (after a pause in speech)."""
        self._probs, self._label = None, None
