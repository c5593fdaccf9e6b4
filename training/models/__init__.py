"""Network architectures, selected by name in the training config (``model.architecture``)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .attention_fcn import AttentionFcn
from .cnn_lstm import CnnLstm
from .lightsernet import LightSERNet
from .timnet import TimNet

ARCHITECTURES = {
    "lightsernet": LightSERNet,
    "cnn_lstm": CnnLstm,
    "attention_fcn": AttentionFcn,
    "timnet": TimNet,
    "cktim": lambda n_classes, n_features, **options: TimNet(n_classes, n_features, kernel="continuous", **options),
}


def build_model(settings: dict, n_classes: int, n_features: int) -> nn.Module:
    """The network a recipe's ``model:`` section describes (``architecture`` and its options), for
    windows of ``n_features`` values per frame."""
    options = dict(settings)
    name = options.pop("architecture")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[name](n_classes, n_features, **options)


def deployable(model: nn.Module) -> nn.Module:
    """A copy in eval mode in which every module that has a ``baked()`` form (a kernel generator,
    say) is replaced by it: the network the exporters and the MAC count see."""
    model = copy.deepcopy(model).cpu().eval()
    for name, module in list(model.named_modules()):
        if hasattr(module, "baked"):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, module.baked())
    return model


def footprint(model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    """Parameters and multiply-accumulates per window of the deployable network (convolutions and
    dense layers; elementwise gates and pooling are not counted)."""
    model = deployable(model)
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            total += output.numel() * math.prod(module.kernel_size) * module.in_channels // module.groups
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            module.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(input_shape))
    return {"parameters": int(sum(p.numel() for p in model.parameters())), "macs_per_window": int(total)}
