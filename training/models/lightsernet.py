"""Light-SERNet (Aftab et al., ICASSP 2022)."""

from __future__ import annotations

import torch
from torch import nn

from .base import PooledClassifier, scaled


def _block(c_in: int, c_out: int, kernel, pool, stride: int = 1) -> nn.Sequential:
    """Local feature learning block: convolution, batch norm, ReLU, average pooling."""
    padding = tuple(k // 2 for k in kernel)
    layers = [nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool is not None:
        layers.append(nn.AvgPool2d(pool))
    return nn.Sequential(*layers)


class LightSERNet(PooledClassifier):
    """Light-SERNet (Aftab et al., ICASSP 2022) on ``[batch, 1, time, mfcc]`` windows.

    Three parallel paths (11x1 along time, 1x9 along frequency, 3x3) of 32 filters each, then local
    feature learning blocks of 64, 96, 128 and 160 filters and a 1x1 block of 320, global average
    pooling, dropout and one dense layer. ``width`` scales every filter count (1.0 is the paper's);
    global pooling makes it independent of ``n_features``. ``stem_stride: 2`` makes the three paths
    convolutions at stride 2 with no pooling after them (a quarter of their work: see
    docs/export_speed.md).
    """

    stem = ("paths.0", "paths.1", "paths.2")

    def __init__(self, n_classes: int, n_features: int, width: float = 1.0, dropout: float = 0.3, stem_stride: int = 1):
        super().__init__()
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride must be 1 or 2, not {stem_stride!r}")
        w = scaled(width)
        pool = (2, 2) if stem_stride == 1 else None
        self.paths = nn.ModuleList(
            [_block(1, w(32), k, pool, stem_stride) for k in ((11, 1), (1, 9), (3, 3))]
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

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The globally pooled features, ``[batch, 320 * width]``."""
        return self.body(torch.cat([path(x) for path in self.paths], dim=1)).mean(dim=(2, 3))

