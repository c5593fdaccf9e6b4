"""Network architectures, selected by name in the training config (``model.architecture``)."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from .attention_fcn import AttentionFcn
from .base import FloatStem, PooledClassifier
from .chunked import Chunked
from .cnn_lstm import CnnLstm
from .lightsernet import LightSERNet
from .statistics_mlp import StatisticsMlp
from .timnet import TimNet

ARCHITECTURES = {
    "lightsernet": LightSERNet,
    "cnn_lstm": CnnLstm,
    "attention_fcn": AttentionFcn,
    "timnet": TimNet,
    "statistics_mlp": StatisticsMlp,
    "cktim": lambda n_classes, n_features, **options: TimNet(n_classes, n_features, kernel="continuous", **options),
}


def build_model(settings: dict, n_classes: int, n_features: int) -> nn.Module:
    """The network a recipe's ``model:`` section describes (``architecture`` and its options), for
    windows of ``n_features`` values per frame; ``chunk_frames`` runs it on each hop of the window
    on its own (:class:`Chunked`)."""
    options = dict(settings)
    name = options.pop("architecture")
    chunk_frames = options.pop("chunk_frames", None)
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    network = ARCHITECTURES[name](n_classes, n_features, **options)
    if chunk_frames is None:
        return network
    if not isinstance(network, PooledClassifier):
        raise ValueError(f"architecture {name!r} cannot be chunked (it does not pool its window into one embedding)")
    return Chunked(network, chunk_frames)


def deployable(model: nn.Module, restructured: bool = True) -> nn.Module:
    """A copy in eval mode in which every module that has a ``baked()`` form (a kernel generator,
    say) is replaced by it and, where ``restructured``, every classifier's ``stem`` is wrapped in
    :class:`FloatStem` and every average pool after a convolution is made the depthwise convolution
    that computes it (docs/export_speed.md): the network the exporters see. Its arithmetic is the
    model's."""
    model = copy.deepcopy(model).cpu().eval()
    for name, module in list(model.named_modules()):
        if hasattr(module, "baked"):
            _replace(model, name, module.baked())
    if restructured:
        for name, module in list(model.named_modules()):
            for stage in getattr(module, "stem", ()):
                qualified = f"{name}.{stage}" if name else stage
                _replace(model, qualified, FloatStem(model.get_submodule(qualified)))
        _pools_as_convolutions(model)
    return model


def _pools_as_convolutions(model: nn.Module) -> None:
    """Replace each average pool that follows a convolution by the fixed depthwise convolution that
    computes it. The TFLite converter moves quantization up through a pool (so a float stem's
    full-size map would be quantized and pooled in int8), not through a convolution; and both int8
    runtimes run a depthwise convolution faster than their int8 pooling."""
    channels = None
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Conv2d):
            channels = module.out_channels
        elif isinstance(module, nn.AvgPool2d) and channels and not module.ceil_mode and not module.padding:
            kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
            averaging = nn.Conv2d(channels, channels, kernel, stride=module.stride, groups=channels, bias=False)
            averaging.weight.data.fill_(1.0 / math.prod(kernel))
            averaging.weight.requires_grad_(False)
            _replace(model, name, averaging)


def _replace(model: nn.Module, name: str, replacement: nn.Module) -> None:
    """Put ``replacement`` where the submodule called ``name`` is."""
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, replacement)


def footprint(model: nn.Module, input_shape: tuple[int, ...]) -> dict:
    """Parameters and multiply-accumulates per window of the deployable network (convolutions and
    dense layers; elementwise gates and pooling are not counted)."""
    model = deployable(model, restructured=False)
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
