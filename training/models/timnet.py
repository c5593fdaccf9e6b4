"""TIM-Net (Ye et al., ICASSP 2023) and CkTIM, its continuous-kernel variant, on MFCC windows."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Classifier


class SineKernel(nn.Module):
    """A convolution kernel generated from relative positions by a small MLP with sine activations
    (SIREN, ω₀ = ``omega``), as in continuous-kernel convolutions (CKConv, Romero et al. 2022).

    ``taps`` positions spread over ``span`` steps (the dilation is ``span / (taps - 1)``). The
    generator only exists for training: :meth:`baked` returns the fixed ``nn.Conv1d`` it amounts to.
    """

    def __init__(self, c_in: int, c_out: int, span: int, taps: int, hidden: int = 32, omega: float = 25.0):
        super().__init__()
        self.taps = max(2, min(taps, span + 1))
        self.kernel_size = (self.taps,)  # named like nn.Conv1d's, so CausalConv pads both alike
        self.dilation = (math.ceil(span / (self.taps - 1)),)
        self.shape = (c_out, c_in)
        self.omega = omega
        self.register_buffer("positions", torch.linspace(-1.0, 0.0, self.taps)[:, None])
        self.layers = nn.ModuleList([nn.Linear(1, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, c_out * c_in)])
        self.bias = nn.Parameter(torch.zeros(c_out))
        with torch.no_grad():  # SIREN initialisation, output scaled like a default convolution's
            self.layers[0].weight.uniform_(-1.0, 1.0)
            bound = math.sqrt(6 / hidden) / omega
            for layer in self.layers[1:]:
                layer.weight.uniform_(-bound, bound)
            self.layers[2].weight.mul_(omega / math.sqrt(c_in * self.taps))

    def kernel(self) -> torch.Tensor:
        """The weights ``[c_out, c_in, taps]``."""
        x = torch.sin(self.omega * self.layers[0](self.positions))
        x = torch.sin(self.omega * self.layers[1](x))
        return self.layers[2](x).T.reshape(*self.shape, self.taps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv1d(x, self.kernel(), self.bias, dilation=self.dilation[0])

    def baked(self) -> nn.Conv1d:
        """The plain convolution with the generated kernel, for export."""
        conv = nn.Conv1d(self.shape[1], self.shape[0], self.taps, dilation=self.dilation)
        with torch.no_grad():
            conv.weight.copy_(self.kernel())
            conv.bias.copy_(self.bias)
        return conv


class CausalConv(nn.Module):
    """Left padding so that each output step sees only its own and earlier steps."""

    def __init__(self, conv: nn.Module):
        super().__init__()
        self.conv = conv
        self.padding = (conv.kernel_size[0] - 1) * conv.dilation[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(nn.functional.pad(x, (self.padding, 0)))


class TemporalAwareBlock(nn.Module):
    """Two causal convolutions (batch norm, ReLU, spatial dropout), whose sigmoid gates the input."""

    def __init__(self, channels: int, dilation: int, kernel: str, taps: int, omega: float, dropout: float):
        super().__init__()

        def conv() -> CausalConv:
            if kernel == "continuous":
                return CausalConv(SineKernel(channels, channels, dilation, taps, omega=omega))
            return CausalConv(nn.Conv1d(channels, channels, 2, dilation=dilation))

        self.body = nn.Sequential(
            conv(), nn.BatchNorm1d(channels), nn.ReLU(), nn.Dropout1d(dropout),
            conv(), nn.BatchNorm1d(channels), nn.ReLU(), nn.Dropout1d(dropout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.body(x))


class TimNet(Classifier):
    """Temporal-aware blocks at dilations 1, 2, 4, ... on the sequence and on its time reversal; at
    each scale the two paths are added and averaged over time; a learned weighting fuses the scales
    (dynamic fusion); one dense layer. ``kernel: continuous`` makes it CkTIM: every dilated
    convolution becomes a :class:`SineKernel` convolution of ``taps`` positions over the same span.
    """

    def __init__(self, n_classes: int, n_features: int, filters: int = 39, scales: int = 8,
                 kernel: str = "dilated", taps: int = 9, omega: float = 25.0, dropout: float = 0.1):  # fmt: skip
        super().__init__()
        if kernel not in ("dilated", "continuous"):
            raise ValueError(f"unknown kernel {kernel!r} (known: dilated, continuous)")
        self.entry = nn.ModuleList([nn.Conv1d(n_features, filters, 1) for _ in range(2)])
        self.paths = nn.ModuleList(
            nn.ModuleList(TemporalAwareBlock(filters, 2**i, kernel, taps, omega, dropout) for i in range(scales))
            for _ in range(2)
        )
        self.fusion = nn.Linear(scales, 1)
        self.head = nn.Linear(filters, n_classes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, 0].transpose(1, 2)  # [batch, features, time]
        paths = [entry(seq) for entry, seq in zip(self.entry, (x, torch.flip(x, dims=[2])))]
        per_scale = []
        for forward_block, backward_block in zip(*self.paths):
            paths = [forward_block(paths[0]), backward_block(paths[1])]
            per_scale.append((paths[0] + paths[1]).mean(dim=2))
        fused = self.fusion(torch.stack(per_scale, dim=2))[..., 0]  # [batch, filters]
        return self.head(fused)
