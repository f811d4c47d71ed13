"""Fully connected network (the vanilla PINN of Raissi, Perdikaris, Karniadakis 2019).

u(X) = W_{L+1} σ(W_L ⋯ σ(W_1 X̃ + b_1) ⋯ + b_L) + b_{L+1}, with ``depth`` = L hidden layers
of ``width`` neurons, σ the ``activation``, X̃ the (optionally normalised) input, weights
initialised with Xavier/Glorot normal (Glorot, Bengio 2010) and zero biases.

This is the network the Frequency Principle is about (Xu et al. 2019): trained by
gradient descent it fits the low frequencies of the target first and the high ones late
or never.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from mscalepde.architectures import options as opts
from mscalepde.architectures.base import Architecture
from mscalepde.calculus.activations import Activation, get_activation
from mscalepde.calculus.jet import Jet, JetSpec


def glorot_linear(fan_in: int, fan_out: int) -> nn.Linear:
    """A linear layer with Xavier-normal weights and zero bias."""
    layer = nn.Linear(fan_in, fan_out)
    nn.init.xavier_normal_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class Trunk(nn.Module):
    """Hidden layers σ(W_l h + b_l), l = 1..depth (no output layer).

    ``residual=True`` adds h to the output of every layer whose input and output widths
    are equal (h_{l} = h_{l-1} + σ(W_l h_{l-1} + b_l)).
    """

    def __init__(
        self, in_dim: int, width: int, depth: int, activation: str, residual: bool = False
    ) -> None:
        super().__init__()
        self.linears = nn.ModuleList(
            glorot_linear(in_dim if i == 0 else width, width) for i in range(depth)
        )
        self.activation: Activation = get_activation(activation)
        self.residual = residual
        self.out_dim = width

    def forward(self, h: Tensor) -> Tensor:
        for layer in self.linears:
            z = self.activation(layer(h))
            h = h + z if self.residual and z.shape == h.shape else z
        return h

    def jet(self, h: Jet) -> Jet:
        """The same map on a forward-Laplacian jet (see :mod:`mscalepde.calculus.jet`)."""
        for layer in self.linears:
            z = h.linear(layer.weight, layer.bias).activation(self.activation)
            h = h + z if self.residual and z.width == h.width else z
        return h


class MLP(Architecture):
    """Vanilla fully connected network: see the module docstring."""

    name = "mlp"
    options = opts.MLP

    def __init__(
        self,
        *,
        width: int = 100,
        depth: int = 4,
        activation: str = "tanh",
        normalize: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(normalize=normalize, **common)  # space_dim, has_time, bounds, interface
        self.trunk = Trunk(self.feature_dim, width, depth, activation)
        self.head = glorot_linear(width, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(self.scale_inputs(x)))

    def jet(self, x: Tensor, spec: JetSpec) -> Jet:
        """u, its first derivatives and its Laplacian in one forward pass."""
        h = self.trunk.jet(self.input_jet(x, spec))
        return h.linear(self.head.weight, self.head.bias)
