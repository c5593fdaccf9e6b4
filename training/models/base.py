"""What every architecture shares: logits for training, probabilities for export."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A network on ``[batch, 1, time, features]`` windows whose ``forward`` gives class
    probabilities (softmax included, so exported files give probabilities) and whose ``logits``
    gives the unnormalised scores the losses need. ``stem`` names the submodules that take the
    one-channel input window (the int8 exports keep them in float: see :class:`FloatStem`)."""

    stem: tuple[str, ...] = ()

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


class PooledClassifier(Classifier):
    """A classifier that pools its input window into one embedding (``embed``) and classifies that
    through dropout and one dense layer (``self.dropout``, ``self.head``): the form
    :class:`~training.models.chunked.Chunked` can run on each chunk of a window."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores of an embedding (or of the mean of several)."""
        return self.head(self.dropout(embedding))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.embed(x))


class KeptInFloat(nn.Module):
    """A module the int8 exports leave in float."""


class FloatStem(KeptInFloat):
    """A classifier's first stage on the one-channel input, kept in float by the int8 exports: they
    run a convolution with one input channel as a depthwise convolution with a channel multiplier,
    slowly in int8, and the quantization of the raw input is costly (docs/export_speed.md)."""

    def __init__(self, stage: nn.Module):
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage(x)


class ProbabilityAverage(KeptInFloat):
    """The mean of probability vectors, kept in float: the calibration windows would set its int8
    range too narrow (clipping the surest windows' probabilities)."""

    def forward(self, *probabilities: torch.Tensor) -> torch.Tensor:
        total = probabilities[0]
        for p in probabilities[1:]:
            total = total + p
        return total * (1.0 / len(probabilities))


class Averaged(Classifier):
    """Classifiers whose class probabilities are averaged, in one graph (one exported file)."""

    def __init__(self, members: list[Classifier]):
        super().__init__()
        self.members, self.average = nn.ModuleList(members), ProbabilityAverage()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.average(*(member(x) for member in self.members))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Log of the averaged probabilities (a softmax of them gives them back)."""
        return torch.log(self.forward(x))


def scaled(width: float):
    """Filter counts scaled by ``width`` (1.0 is the paper's), never below 4."""
    return lambda n: max(4, int(round(n * width)))
