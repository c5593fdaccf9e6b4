"""Knowledge distillation (Hinton et al. 2015): a network learns from the class probabilities of
stronger networks trained on the same speakers (its teachers) as well as from the labels.

A recipe names the run folders of its teachers (``train.teachers``); a fold's network learns from
the networks those runs trained for the same fold (``<run>/<fold>/trained.pt``), the final model from
their final ones, so a teacher never heard the speakers its student is tested on. The teachers'
probabilities are averaged (an ensemble), softened by ``train.distillation_temperature``, and the
student's loss is ``distillation_weight`` times the divergence from them plus the rest times the
loss on the labels.
"""

from __future__ import annotations

import json
import os

import torch
from torch import nn

from rtser.features import FeatureConfig
from rtser.schema import ConfigError, build

from .config import RunConfig, project_path


def check_teachers(config: RunConfig, test_speakers: list[list[str]]) -> None:
    """Raise ConfigError unless every teacher run was cross-validated on these folds' test
    speakers with the recipe's labels and feature frames (a teacher that heard a fold's test
    speakers would leak them into its student's figures)."""
    for run in config.train.teachers:
        path = os.path.join(project_path(run), "cross_validation.json")
        if not os.path.isfile(path):
            raise ConfigError(f"teacher {run}: no cross_validation.json (train it first: python -m training train ... --out {run})")
        with open(path, encoding="utf-8") as handle:
            claim = json.load(handle)
        recipe = claim["recipe"]
        if claim["folds"] != test_speakers:
            raise ConfigError(f"teacher {run} was trained on other folds than this recipe's: its networks may have heard the test speakers")
        # settings added since the teacher's folder was written are read as their defaults
        if recipe["labels"] != config.labels or build(FeatureConfig, recipe["features"]) != config.features:
            raise ConfigError(f"teacher {run} has other labels or feature frames than this recipe")


def load_teachers(config: RunConfig, fold: str, device: torch.device) -> list[nn.Module]:
    """The teachers' networks for ``fold`` (a fold folder's name, or ``final``), in eval mode."""
    teachers = []
    for run in config.train.teachers:
        path = os.path.join(project_path(run), fold, "trained.pt")
        if not os.path.isfile(path):
            raise ConfigError(f"teacher {run} has no trained network for {fold} ({path}): finish that run first")
        teachers.append(torch.load(path, weights_only=False)["model"].to(device).eval())
    return teachers


def soft_targets(teachers: list[nn.Module], inputs: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teachers' averaged class probabilities for ``inputs``, softened by ``temperature``."""
    with torch.no_grad():
        mean = torch.stack([teacher(inputs) for teacher in teachers]).mean(dim=0)
        return torch.softmax(torch.log(mean.clamp_min(1e-8)) / temperature, dim=-1)


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL divergence of the student's softened probabilities from the soft targets, times the
    temperature squared (so its gradients keep their scale whatever the temperature)."""
    student = torch.log_softmax(logits / temperature, dim=-1)
    return nn.functional.kl_div(student, targets, reduction="batchmean") * temperature**2
