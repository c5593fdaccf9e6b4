"""Network architectures, selected by name in the training config."""

from __future__ import annotations

import torch
from torch import nn


def _block(c_in: int, c_out: int, kernel, pool) -> nn.Sequential:
    """Local feature learning block: convolution, batch norm, ReLU, average pooling."""
    padding = tuple(k // 2 for k in kernel)
    layers = [nn.Conv2d(c_in, c_out, kernel, padding=padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool is not None:
        layers.append(nn.AvgPool2d(pool))
    return nn.Sequential(*layers)


class LightSERNet(nn.Module):
    """Light-SERNet (Aftab et al., ICASSP 2022) on ``[batch, 1, time, mfcc]`` windows.

    Three parallel paths (11x1 along time, 1x9 along frequency, 3x3) of 32 filters each, then local
    feature learning blocks of 64, 96, 128 and 160 filters and a 1x1 block of 320, global average
    pooling, dropout and one dense layer. ``width`` scales every filter count (1.0 is the paper's).
    The output is class probabilities (softmax included, so exported files give probabilities).
    """

    def __init__(self, n_classes: int, width: float = 1.0, dropout: float = 0.3):
        super().__init__()
        w = lambda n: max(4, int(round(n * width)))  # noqa: E731
        self.paths = nn.ModuleList(
            [_block(1, w(32), k, (2, 2)) for k in ((11, 1), (1, 9), (3, 3))]
        )
        self.body = nn.Sequential(
            _block(3 * w(32), w(64), (3, 3), (2, 2)),
            _block(w(64), w(96), (3, 3), (2, 2)),
            _block(w(96), w(128), (3, 3), (2, 1)),
            _block(w(128), w(160), (3, 3), (2, 1)),
            _block(w(160), w(320), (1, 1), None),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(w(320), n_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores."""
        x = torch.cat([path(x) for path in self.paths], dim=1)
        x = self.body(x).mean(dim=(2, 3))
        return self.head(self.dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(x), dim=-1)


ARCHITECTURES = {"lightsernet": LightSERNet}


def build_model(name: str, n_classes: int, **options) -> nn.Module:
    """The architecture called ``name`` with its options from the config."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r} (known: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[name](n_classes, **options)


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass (convolutions and dense layers)."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += output.numel() * kernel
        elif isinstance(module, nn.Linear):
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(input_shape))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total
