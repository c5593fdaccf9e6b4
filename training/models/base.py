"""What every architecture shares: logits for training, probabilities for export."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A network on ``[batch, 1, time, features]`` windows whose ``forward`` gives class
    probabilities (softmax included, so exported files give probabilities) and whose ``logits``
    gives the unnormalised scores the losses need."""

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


class KeptInFloat(nn.Module):
    """A module the int8 exports leave in float: arithmetic on probabilities, whose int8 range the
    calibration windows would set too narrow (clipping the surest windows' probabilities)."""


def scaled(width: float):
    """Filter counts scaled by ``width`` (1.0 is the paper's), never below 4."""
    return lambda n: max(4, int(round(n * width)))
