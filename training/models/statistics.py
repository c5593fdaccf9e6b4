"""A linear classifier on each window's feature statistics, fitted after the network and averaged with it.

The convolutions see the speaker-normalised frames one patch at a time; how far the whole window
departs from the voice's habits (each feature's mean, standard deviation and frame-to-frame change
over the window) is what a linear model reads best. Fitted by itself on the training speakers'
runtime windows (not trained together with the network, which lets it overfit: a statistics branch
inside Light-SERNet did worse), its class probabilities are averaged with the network's in one
exported graph (``base.Averaged``), so the runtime runs it as part of the model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rtser.schema import ConfigError

from .base import Classifier


def time_statistics(frames: torch.Tensor) -> torch.Tensor:
    """Each feature's mean, standard deviation and mean absolute change over time, ``[batch, 3 * features]``
    from ``[batch, time, features]``."""
    mean = frames.mean(dim=1)
    spread = torch.sqrt(torch.relu((frames * frames).mean(dim=1) - mean * mean) + 1e-6)
    change = (frames[:, 1:] - frames[:, :-1]).abs().mean(dim=1)
    return torch.cat([mean, spread, change], dim=1)


class StatisticsClassifier(Classifier):
    """Class scores from a window's time statistics, standardised by the training windows' own."""

    def __init__(self, n_classes: int, n_features: int):
        super().__init__()
        self.register_buffer("centre", torch.zeros(3 * n_features))
        self.register_buffer("scale", torch.ones(3 * n_features))
        self.linear = nn.Linear(3 * n_features, n_classes)

    def standardised(self, x: torch.Tensor) -> torch.Tensor:
        """The standardised statistics of ``[batch, 1, time, features]`` windows."""
        return (time_statistics(x[:, 0]) - self.centre) / self.scale

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardised(x))

    def fit(self, windows: np.ndarray, targets: np.ndarray, l2: float) -> StatisticsClassifier:
        """Class-weighted cross-entropy plus ``l2`` times the squared weights, minimised by L-BFGS, on
        ``[n, 1, time, features]`` windows and their class indices."""
        x = torch.from_numpy(windows)
        with torch.no_grad():
            stats = time_statistics(x[:, 0])
            self.centre.copy_(stats.mean(dim=0))
            self.scale.copy_(stats.std(dim=0).clamp_min(1e-6))
            inputs = self.standardised(x)
        target = torch.from_numpy(targets)
        n_classes = self.linear.out_features
        counts = np.bincount(targets, minlength=n_classes)
        weight = torch.tensor(len(targets) / np.maximum(counts, 1) / n_classes, dtype=torch.float32)
        optimizer = torch.optim.LBFGS(self.linear.parameters(), max_iter=200)

        def objective():
            optimizer.zero_grad()
            value = nn.functional.cross_entropy(self.linear(inputs), target, weight=weight) + l2 * self.linear.weight.square().sum()
            value.backward()
            return value

        optimizer.step(objective)
        return self.eval()


def choose_l2(windows: np.ndarray, targets: np.ndarray, speakers: np.ndarray, grid: list[float], n_classes: int, groups: int = 5) -> float:
    """The weight penalty from ``grid`` whose classifier predicts unheard speakers best: the fit
    speakers are dealt into ``groups`` groups, each held out in turn, and the penalty with the lowest
    class-balanced cross-entropy on the held-out windows wins (the test speakers take no part)."""
    voices = sorted(set(speakers.tolist()))
    if len(voices) < 2:
        raise ConfigError("statistics_l2: choosing the weight penalty from a list needs two or more speakers to fit on")
    group_of = {voice: i % min(groups, len(voices)) for i, voice in enumerate(voices)}
    held = np.array([group_of[s] for s in speakers])
    losses = []
    for l2 in grid:
        loss = 0.0
        for g in np.unique(held):
            fitted = StatisticsClassifier(n_classes, windows.shape[-1]).fit(windows[held != g], targets[held != g], l2)
            with torch.no_grad():
                log_probs = torch.log_softmax(fitted.logits(torch.from_numpy(windows[held == g])), -1).numpy()
            truth = targets[held == g]
            picked = log_probs[np.arange(len(truth)), truth]
            loss -= np.mean([picked[truth == c].mean() for c in np.unique(truth)])
        losses.append(loss)
    return float(grid[int(np.argmin(losses))])
