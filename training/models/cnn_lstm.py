"""2D CNN-LSTM (Zhao, Mao & Chen, Biomedical Signal Processing and Control 2019) on log-mel windows."""

from __future__ import annotations

import torch
from torch import nn

from .base import Classifier, scaled

# Pooling (time, frequency) after each of the four blocks.
POOLING = {
    # The paper's 2x2 then 4x4 pools: a 3 s window leaves 3 time steps for the LSTM (1 for shorter
    # inputs), so the "sequence" model is close to a plain CNN.
    "paper": ((2, 2), (4, 4), (4, 4), (4, 4)),
    # Pool time three times by 2 only: 38 time steps of 80 ms reach the LSTM.
    "sequence": ((2, 2), (2, 2), (2, 2), (1, 4)),
}


def _lflb(c_in: int, c_out: int, pool) -> nn.Sequential:
    """Local feature learning block: 3x3 convolution, batch norm, ELU, max pooling."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ELU(),
        nn.MaxPool2d(pool, ceil_mode=True),
    )  # fmt: skip


class LinearLSTM(nn.Module):
    """One LSTM layer written with dense layers and elementwise gates, unrolled over a fixed number
    of steps, so int8 exporters quantize it like any dense layer (TFLite has no int8 LSTM kernel that
    the PyTorch exporters reach, and onnxruntime leaves the ONNX ``LSTM`` operator in float)."""

    def __init__(self, n_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.input = nn.Linear(n_in, 4 * hidden)
        self.recurrent = nn.Linear(hidden, 4 * hidden, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, steps, n_in]`` -> the last hidden state ``[batch, hidden]``."""
        projected = self.input(x)
        h = torch.zeros(x.shape[0], self.hidden, dtype=x.dtype)
        c = torch.zeros_like(h)
        for step in range(x.shape[1]):
            i, f, g, o = (projected[:, step] + self.recurrent(h)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h


class CnnLstm(Classifier):
    """Four local feature learning blocks (64, 64, 128, 128 filters in the paper), then an LSTM over
    the remaining time steps (frequency folded into the features), then one dense layer."""

    stem = ("blocks.0",)

    def __init__(self, n_classes: int, n_features: int, width: float = 1.0, hidden: int = 256,
                 pooling: str = "sequence", dropout: float = 0.3):  # fmt: skip
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"unknown pooling {pooling!r} (known: {', '.join(POOLING)})")
        w = scaled(width)
        widths = (w(64), w(64), w(128), w(128))
        self.blocks = nn.Sequential(*[_lflb(c_in, c_out, pool) for c_in, c_out, pool in
                                      zip((1, *widths[:-1]), widths, POOLING[pooling])])  # fmt: skip
        bins = n_features
        for _, pool in POOLING[pooling]:
            bins = -(-bins // pool)
        self.lstm = LinearLSTM(widths[-1] * bins, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(x)  # [batch, channels, steps, bins]
        x = x.permute(0, 2, 1, 3).flatten(2)
        return self.head(self.dropout(self.lstm(x)))
