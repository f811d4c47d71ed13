"""SIREN: sinusoidal representation network.

Reference: V. Sitzmann, J. N. P. Martel, A. W. Bergman, D. B. Lindell, G. Wetzstein,
*Implicit neural representations with periodic activation functions*, NeurIPS 2020
(public code ``vsitzmann/siren``, ``SineLayer`` / ``Siren``).

    h_1 = sin(ω₀ (W_1 X̃ + b_1)),  h_l = sin(ω_h (W_l h_{l−1} + b_l)),  u = W_out h_L + b_out,

with ``depth`` = L sine layers of ``width`` neurons. ω₀ = ``omega0`` (default 30) in the
first layer and ω_h = ``omega0_hidden`` (default 30, as ``hidden_omega_0`` in the authors'
code) in the others. The factor ω stays outside the weights (it is a
:class:`~mscalepde.architectures.mscale.ScaledActivation` sin(ω z)), which is what the
paper's initialisation is designed for:

- first layer: W ~ U(−1/n, 1/n), n = fan-in, so ω₀ W X̃ spans ω₀ radians per unit input;
- other layers and the output layer: W ~ U(−√(6/n)/ω_h, √(6/n)/ω_h), which keeps the
  pre-activations ω_h (W h + b) of unit-variance arcsine-distributed inputs standard;
- biases: PyTorch's default U(−1/√n, 1/√n), untouched by the authors' code.

Inputs: ``normalize: true`` (default) maps every axis to [−1, 1] — the paper's initialisation
assumes inputs there: the first layer then covers frequencies up to about ω₀/(2π) ≈ 4.8
cycles per unit of X̃ (per half-length of the box).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from mscalepde.architectures import options as opts
from mscalepde.architectures.base import Architecture
from mscalepde.architectures.mscale import ScaledActivation
from mscalepde.calculus.activations import get_activation
from mscalepde.calculus.jet import Jet, JetSpec


def siren_linear(fan_in: int, fan_out: int, first: bool, omega: float) -> nn.Linear:
    """nn.Linear with SIREN's weight initialisation (bias left at PyTorch's default)."""
    layer = nn.Linear(fan_in, fan_out)
    bound = 1.0 / fan_in if first else math.sqrt(6.0 / fan_in) / omega
    with torch.no_grad():
        layer.weight.uniform_(-bound, bound)
    return layer


class Siren(Architecture):
    """SIREN (Sitzmann et al. 2020): see the module docstring."""

    name = "siren"
    options = opts.SIREN

    def __init__(
        self,
        *,
        omega0: float = 30.0,
        omega0_hidden: float = 30.0,
        width: int = 100,
        depth: int = 3,
        normalize: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(normalize=normalize, **common)  # space_dim, has_time, bounds, interface
        self.linears = nn.ModuleList(
            siren_linear(
                self.feature_dim if i == 0 else width,
                width,
                i == 0,
                omega0 if i == 0 else omega0_hidden,
            )
            for i in range(depth)
        )
        self.activations = nn.ModuleList(
            ScaledActivation(get_activation("sin"), omega0 if i == 0 else omega0_hidden)
            for i in range(depth)
        )
        self.head = siren_linear(width, 1, False, omega0_hidden)

    def forward(self, x: Tensor) -> Tensor:
        h = self.scale_inputs(x)
        for layer, act in zip(self.linears, self.activations, strict=True):
            h = act(layer(h))
        return self.head(h)

    def jet(self, x: Tensor, spec: JetSpec) -> Jet:
        """u, ∇u, Δu in one forward pass (see :mod:`mscalepde.calculus.jet`)."""
        h = self.input_jet(x, spec)
        for layer, act in zip(self.linears, self.activations, strict=True):
            h = h.linear(layer.weight, layer.bias).activation(act)
        return h.linear(self.head.weight, self.head.bias)
