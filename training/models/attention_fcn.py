"""Attention-based fully convolutional network (Zhang et al., 2019) on log-mel windows."""

from __future__ import annotations

import torch
from torch import nn

from .base import PooledClassifier, scaled


def _block(c_in: int, c_out: int, pool=2, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(pool, ceil_mode=True))  # fmt: skip


class AttentionPooling(nn.Module):
    """e_i = uᵀ tanh(W a_i + b), α = softmax(λ e), c = Σ α_i a_i over all time-frequency positions."""

    def __init__(self, channels: int, size: int, sharpness: float):
        super().__init__()
        self.project = nn.Linear(channels, size)
        self.score = nn.Linear(size, 1, bias=False)
        self.sharpness = sharpness

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """``[batch, channels, time, freq]`` -> ``[batch, channels]``."""
        a = a.flatten(2).transpose(1, 2)  # [batch, positions, channels]
        e = self.score(torch.tanh(self.project(a)))  # [batch, positions, 1]
        alpha = torch.softmax(self.sharpness * e, dim=1)
        return (alpha * a).sum(dim=1)


class AttentionFcn(PooledClassifier):
    """Four convolution blocks (32, 64, 96, 128 filters at width 1) keep a time-frequency map; the
    attention pooling weighs its positions (λ = ``sharpness``), so any ``n_features`` fits; dropout;
    one dense layer. Each block ends in a 2 x 2 max pool; ``first_pool`` (time, frequency) sets the
    first block's, ``stem_stride`` the stride of its convolution (``2`` with ``first_pool: [2, 1]``:
    the three blocks after it see a quarter of the frames at half the frequency resolution, and no
    full-size map is made)."""

    stem = ("blocks.0",)

    def __init__(self, n_classes: int, n_features: int, width: float = 1.0, attention: int = 64, sharpness: float = 0.5,
                 dropout: float = 0.3, first_pool: tuple[int, int] = (2, 2), stem_stride: int = 1):  # fmt: skip
        super().__init__()
        w = scaled(width)
        widths = (w(32), w(64), w(96), w(128))
        pools, strides = (tuple(first_pool), 2, 2, 2), (stem_stride, 1, 1, 1)
        self.blocks = nn.Sequential(
            *[_block(c_in, c_out, pool, stride) for c_in, c_out, pool, stride in zip((1, *widths[:-1]), widths, pools, strides)]
        )
        self.pool = AttentionPooling(widths[-1], attention, sharpness)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(widths[-1], n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The attention-pooled map, ``[batch, 128 * width]``."""
        return self.pool(self.blocks(x))
