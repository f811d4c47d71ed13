"""Multi-scale deep neural networks (MscaleDNN).

References: Z. Liu, W. Cai, Z.-Q. J. Xu, *Multi-scale deep neural network (MscaleDNN) for
solving Poisson-Boltzmann equation in complex domains*, Commun. Comput. Phys. 28 (2020),
arXiv:2007.11207; W. Cai, Z.-Q. J. Xu, *Multi-scale deep neural networks for solving high
dimensional PDEs* (2019), arXiv:1910.11710; public code ``xuzhiqin1990/mscalednn``.

Idea (Frequency Principle): a network learns low frequencies first. Feeding it a·x instead
of x turns a component of wavenumber k into one of wavenumber k/a, which it learns fast;
a set of scales a_1 < … < a_N therefore covers a whole band of frequencies at once.

Scales (option ``scales``): a list of positive numbers, or ``{kind: pow2, n: N}``
(a_i = 2^(i−1): 1, 2, 4, …) or ``{kind: linear, n: N}`` (a_i = i). Default: pow2 with
N = 6, i.e. (1, 2, 4, 8, 16, 32), the scales of the public MscaleDNN demo.

Variant 1 (MscaleDNN-1): one fully connected network of ``width`` neurons per layer whose
first-layer pre-activations are multiplied neuron-wise by
K = (a_1, …, a_1, a_2, …, a_2, …, a_N, …, a_N):

    h_1 = σ(K ⊙ (W_1 X̃ + b_1)),  h_l = σ(W_l h_{l−1} + b_l),  u = W_{L+1} h_L + b_{L+1}.

The ``width`` neurons are split into N groups of ⌊width/N⌋ consecutive neurons; the
width mod N remainder neurons join the last group (the last scale of the list);
``width < N`` (an empty group) is refused. The paper writes K ⊙ (W_1 X̃) + b_1; the two
forms are the same function class (b_paper = K ⊙ b_ours) and ours keeps a neuron's
position −b/w independent of its scale, so that compact-support activations of large
scale are spread over the whole domain rather than bunched at the origin.
The per-neuron factors are the buffer ``scale_vector`` (length ``width``); they act
through a :class:`ScaledActivation` σ_K(z) = σ(K ⊙ z), so every layer stays an
``nn.Linear`` followed by an activation module. With all scales 1 the network is exactly
an ``mlp`` with the same weights.

Variant 2 (MscaleDNN-2): the sum of N independent subnetworks, the i-th fed a_i·X̃:

    u(X) = Σ_i f_i(a_i X̃),  f_i a fully connected network of ``depth`` × ``width``.

Here ``width`` is the width of each subnetwork (the public demo's "6 subnetworks of
(30, 30, 30)" is ``width: 30, depth: 3`` with six scales; it is compared there with a
plain (180, 180, 180) network: a fair comparison with an ``mlp`` of width W uses
``width: W/N``). ``scale_vector`` (length N·width) lists the scale of every first-layer
neuron in subnetwork order, for inspection.

Initialisation, as in the public code: weights and biases drawn from N(0, 2/(fan_in +
fan_out)) (Xavier-normal variance, biases included: with compact-support activations a
zero bias would put every neuron's support at the origin).

Activation (default ``sin``, as in the public demo): the papers also propose the
compact-support sReLU(z) = ReLU(z)·ReLU(1 − z) and s2ReLU(z) = sin(2πz)·sReLU(z) (Li, Xu,
Zhang 2020), which localise each neuron in frequency and were used with the Ritz (energy)
loss. With our residual loss they train markedly slower: on the demo problem −u'' = f on
[−1, 1], u = sin 6πx (2000 Adam steps, lr 1e-3, 1000 Sobol points, boundary weight 100,
six scales 1…32) variant 2 reached rel. L2 1.3e-3 with ``sin`` but 3.5e-2 with ``s2relu``
(variant 1 with 180 neurons and ``s2relu``: 2.9e-2). sReLU is only C⁰ and its Laplacian is
a poor training signal. Note also that with a compact-support activation the first-layer
neurons of a variant-2 subnetwork fed a·X̃ are active on intervals starting at −b/(a w) of
length 1/(a|w|), i.e. bunched within O(1/a) of the origin at initialisation; variant 1's
σ(K ⊙ (W X̃ + b)) keeps them at −b/w.

Inputs: with ``normalize: true`` (default) each input axis is mapped to [−1, 1] before
scaling, as in the papers (whose domains are [−1, 1]^d), so a scale a multiplies a
variable of unit half-length: the physical wavenumber it targets is a·2/(hi − lo) times
that of the unit-scale subnetwork.

Options: ``scales``, ``variant`` (1 | 2, default 2), ``width`` (default 30; per
subnetwork in variant 2, total in variant 1), ``depth`` (default 3), ``activation``
(default ``sin``), ``residual`` (default false: h_l = h_{l−1} + σ(W_l h_{l−1} + b_l)
between layers of equal width), ``normalize``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mscalepde.architectures import options as opts
from mscalepde.architectures.growable import Growable
from mscalepde.architectures.mlp import Trunk
from mscalepde.calculus.activations import Activation, get_activation
from mscalepde.calculus.jet import Jet, JetSpec
from mscalepde.errors import SchemaError


def group_sizes(width: int, n: int) -> list[int]:
    """Neurons per scale in variant 1: ⌊width/n⌋ each, the remainder to the last group."""
    if width < n:
        raise SchemaError(
            "model.width",
            f"expected at least one neuron per scale (width >= {n} for {n} scales), got {width}",
        )
    base = width // n
    return [base] * (n - 1) + [width - base * (n - 1)]


class ScaledActivation(Activation):
    """σ_K(z) = σ(K ⊙ z): an activation with a fixed per-neuron (or scalar) input factor K.

    Derivatives: σ_K'(z) = K σ'(K z), σ_K''(z) = K² σ''(K z). K is a buffer (saved in the
    state dict, moved by ``.to``); it broadcasts against the last axis of z.
    """

    name = "scaled"

    def __init__(self, base: Activation, scale: Tensor | float) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.get_default_dtype()))

    def forward(self, z: Tensor) -> Tensor:
        return self.base(self.scale * z)

    def derivatives(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        k = self.scale
        s, d1, d2 = self.base.derivatives(k * z)
        return s, k * d1, k * k * d2

    def extra_repr(self) -> str:
        if self.scale.dim() == 0:
            return f"{self.base.name}, scale={float(self.scale):g}"
        return f"{self.base.name}, scale=per-neuron({self.scale.numel()})"


def mscale_init_(layer: nn.Linear) -> nn.Linear:
    """Weights and bias ~ N(0, 2/(fan_in + fan_out)) (public MscaleDNN code, varcoe 0.5)."""
    fan_out, fan_in = layer.weight.shape
    std = math.sqrt(2.0 / (fan_in + fan_out))
    with torch.no_grad():
        layer.weight.normal_(0.0, std)
        layer.bias.normal_(0.0, std)
    return layer


class MscaleDNN(Growable):
    """MscaleDNN, variants 1 and 2 (Liu, Cai, Xu 2020): see the module docstring."""

    name = "mscale"
    options = opts.MSCALE

    def __init__(
        self,
        *,
        scales: Sequence[float] | Mapping[str, Any] = (1, 2, 4, 8, 16, 32),
        variant: int = 2,
        width: int = 30,
        depth: int = 3,
        activation: str = "sin",
        residual: bool = False,
        normalize: bool = True,
        **common: Any,
    ) -> None:
        super().__init__(normalize=normalize, **common)  # space_dim, has_time, bounds, interface
        scale_list = opts.parse_scales(scales if isinstance(scales, Mapping) else list(scales))
        self.variant = opts.parse_variant(variant)
        self.register_buffer("scales", torch.tensor(scale_list, dtype=torch.get_default_dtype()))
        n = len(scale_list)
        if self.variant == 1:
            sizes = group_sizes(width, n)
            k = torch.cat([torch.full((m,), a) for m, a in zip(sizes, scale_list, strict=True)])
            self.first = mscale_init_(nn.Linear(self.feature_dim, width))
            self.first_activation = ScaledActivation(get_activation(activation), k)
            self.trunk = Trunk(width, width, depth - 1, activation, residual)
            for layer in self.trunk.linears:
                mscale_init_(layer)
            self.head = mscale_init_(nn.Linear(width, 1))
        else:
            self.subnets = nn.ModuleList()
            self.heads = nn.ModuleList()
            for _ in range(n):
                trunk = Trunk(self.feature_dim, width, depth, activation, residual)
                for layer in trunk.linears:
                    mscale_init_(layer)
                self.subnets.append(trunk)
                self.heads.append(mscale_init_(nn.Linear(width, 1)))
        self.group_sizes = group_sizes(width, n) if self.variant == 1 else [width] * n
        self._sub = (width, depth, activation, residual)

    def band_values(self) -> list[float]:
        return [float(a) for a in self.scales.tolist()]

    def _add_band(self, value: float, seed: int) -> None:
        """One more subnetwork (variant 2) fed ``value``·x̃, with a zero output layer, so u
        is unchanged."""
        if self.variant != 2:
            raise SchemaError("model.adapt", "MscaleDNN grows by subnetworks: needs variant 2")
        width, depth, activation, residual = self._sub
        like = self.heads[0].weight
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            trunk = Trunk(self.feature_dim, width, depth, activation, residual)
            for layer in trunk.linears:
                mscale_init_(layer)
            head = nn.Linear(width, 1)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.zero_()
        self.subnets.append(trunk.to(dtype=like.dtype, device=like.device))
        self.heads.append(head.to(dtype=like.dtype, device=like.device))
        self.scales = torch.cat([self.scales, self.scales.new_tensor([float(value)])])
        self.group_sizes = [*self.group_sizes, width]

    @property
    def scale_vector(self) -> Tensor:
        """Scale of every first-layer neuron (variant 2: subnetworks concatenated in order)."""
        if self.variant == 1:
            return self.first_activation.scale
        return torch.repeat_interleave(self.scales, self.group_sizes[0])

    def neuron_groups(self) -> list[tuple[float, slice]]:
        """(scale, slice of first-layer neurons) for every scale, in order."""
        out, start = [], 0
        for a, m in zip(self.scales.tolist(), self.group_sizes, strict=True):
            out.append((a, slice(start, start + m)))
            start += m
        return out

    def forward(self, x: Tensor) -> Tensor:
        xs = self.scale_inputs(x)
        if self.variant == 1:
            h = self.first_activation(self.first(xs))
            return self.head(self.trunk(h))
        out = None
        for a, trunk, head in zip(self.scales, self.subnets, self.heads, strict=True):
            y = head(trunk(a * xs))
            out = y if out is None else out + y
        return out

    def jet(self, x: Tensor, spec: JetSpec) -> Jet:
        """u, ∇u, Δu in one forward pass (see :mod:`mscalepde.calculus.jet`)."""
        xs = self.input_jet(x, spec)
        if self.variant == 1:
            h = xs.linear(self.first.weight, self.first.bias).activation(self.first_activation)
            return self.trunk.jet(h).linear(self.head.weight, self.head.bias)
        outs = [
            trunk.jet(xs.scale(a)).linear(head.weight, head.bias)
            for a, trunk, head in zip(self.scales, self.subnets, self.heads, strict=True)
        ]
        return Jet.sum(outs)
