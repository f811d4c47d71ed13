"""Random Fourier feature networks: ``fourier``, ``mff`` and ``stmff``.

References: M. Tancik et al., *Fourier features let networks learn high frequency
functions in low dimensional domains*, NeurIPS 2020; S. Wang, H. Wang, P. Perdikaris,
*On the eigenvector bias of Fourier feature networks: from regression to solving
multi-scale PDEs with physics-informed neural networks*, CMAME 384 (2021) 113938, public
code ``PredictiveIntelligenceLab/MultiscalePINNs``.

Embedding (Tancik et al.'s convention, with 2π):

    γ(X) = [cos(2π B X̃), sin(2π B X̃)] ∈ R^{2m},  B ∈ R^{m×D},  B_ij ~ N(0, σ²),

m = ``features``. A row b of B is a plane wave of wave vector 2πb: its angular wavenumber
is 2π|b| and σ is measured in *cycles per unit length* of the network input. With the
default ``normalize: false`` the input is the physical variable, so a mode sin(kπx) (k/2
cycles per unit) needs rows with |b| ≈ k/2: the 50π mode of the multiscale Poisson
problem sits at |b| ≈ 25, i.e. 5σ for the default σ = 5 (the trunk's nonlinearity builds
such sums and harmonics of the sampled frequencies). With ``normalize: true`` the input is
mapped to [−1, 1] first and σ counts cycles per half-length of the box: physical
frequency = σ·2/(hi − lo).

Conversion from Wang, Wang & Perdikaris 2021 (their code): they write
γ(x) = [sin(W x̂), cos(W x̂)] with W ~ N(0, σ_W²), *without* 2π, and standardise the inputs,
x̂ = (x − mean)/std over the domain (std = (hi − lo)/√12 for a uniform axis). Their σ_W
is therefore an angular wavenumber per standard deviation of the input:

    σ_ours (normalize: false) = σ_W / (2π · std) = σ_W · √12 / (2π (hi − lo)),

and σ_ours = σ_W / (2π) for inputs that are not standardised. On [0, 1] their σ_W = 10
(Poisson 1D) is σ_ours ≈ 5.5, their σ_W = 1 is ≈ 0.55, and the heat problem's σ_W = 500
is ≈ 276. (The order of cos and sin within γ does not matter: the next layer is dense.)

B is frozen by default (``trainable: false``): it is a buffer, saved in the state dict so
that a reloaded model reproduces its outputs exactly. ``trainable: true`` makes B a
parameter trained with the rest.

- ``fourier``: u = W_out T(γ(X̃)) + b, T the hidden ``Trunk`` (``depth`` × ``width``).
- ``mff`` (multi-scale Fourier features): one embedding γ_i per σ_i in ``sigmas`` (any
  number of them), each of ``features`` frequencies; every embedding goes through the
  *same* trunk T; u = W_out [T(γ_1(X̃)), …, T(γ_M(X̃))] + b.
- ``stmff`` (spatio-temporal MFF, for heat): embeddings γ_x^(i) of the spatial axes
  (σ_x^(i) in ``sigmas_x``, B of shape m × d) and γ_t^(j) of t (``sigmas_t``); the same
  trunk on each; every pair merged by the elementwise product
  H_ij = T(γ_x^(i)(x)) ⊙ T(γ_t^(j)(t)); u = W_out [H_11, H_12, …, H_{Mx Mt}] + b (the public
  heat1D code's ``tf.multiply(H_t, H_x)``, generalised to several σ as in the paper).
  Needs a time-dependent problem.

Defaults (chosen on −u'' = f, u = sin 2πx + 0.1 sin 50πx on [0, 1], the docs/design.md §4 problem,
residual loss with boundary weight 1e5, 512 Sobol points, 200 Adam steps then 1500 L-BFGS
iterations, float32): ``fourier`` σ = 5, 64 features, 2 × 100 tanh (rel. L2 0.9e-3 to
3.1e-3 over three seeds, ≈ 28 s on one CPU thread); ``mff`` σ ∈ {1, 5}, 32 features per
embedding, 2 × 64 tanh (1.4e-4 to 9.4e-4, ≈ 30 s). σ = 5 is σ_W ≈ 9 in the paper's
units (their σ_W = 10 for this problem). Larger σ (10, 20) leaves a random initial field
with a Laplacian of order (2πσ)², which the residual loss spends most of its budget
removing; ``stmff`` uses the same trunk defaults with σ_x ∈ {1, 5}, σ_t = 1 (to be
raised for fast spatial oscillations: the heat benchmark needs σ_x ≈ 276).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from mscalepde.architectures import options as opts
from mscalepde.architectures.base import Architecture
from mscalepde.architectures.growable import Growable
from mscalepde.architectures.mlp import Trunk, glorot_linear
from mscalepde.calculus.jet import Jet, JetSpec
from mscalepde.errors import SchemaError

TWO_PI = 2.0 * math.pi


class FourierFeatures(nn.Module):
    """γ(X) = [cos(2π X Bᵀ), sin(2π X Bᵀ)], B (features × in_dim) with entries N(0, σ²).

    The map X ↦ 2π X Bᵀ is linear (no bias); cos/sin act elementwise. B is a buffer when
    frozen, a parameter when ``trainable``; either way it is in the state dict as ``B``.
    """

    def __init__(
        self,
        in_dim: int,
        features: int,
        sigma: float | Sequence[float],
        trainable: bool = False,
        key: str = "model.sigmas",
    ):
        super().__init__()
        b = torch.randn(features, in_dim)
        if isinstance(sigma, (list, tuple)):  # one σ per input axis: B_ij ~ N(0, σ_j²)
            if len(sigma) != in_dim:
                raise SchemaError(
                    key,
                    f"a per-axis sigma needs {in_dim} entries (one per input column), "
                    f"got {len(sigma)}",
                )
            b = b * torch.tensor([float(v) for v in sigma])
            self.sigma: float | list[float] = [float(v) for v in sigma]
        else:
            b = b * float(sigma)
            self.sigma = float(sigma)
        self.trainable = bool(trainable)
        if self.trainable:
            self.B = nn.Parameter(b)
        else:
            self.register_buffer("B", b)
        self.out_dim = 2 * features

    def phases(self, x: Tensor) -> Tensor:
        """2π X Bᵀ, shape (N, features)."""
        return TWO_PI * (x @ self.B.t())

    def forward(self, x: Tensor) -> Tensor:
        z = self.phases(x)
        return torch.cat([torch.cos(z), torch.sin(z)], dim=-1)

    def jet(self, h: Jet) -> Jet:
        """γ on a forward-Laplacian jet: a linear map (2πB) then cos and sin."""
        z = h.linear(TWO_PI * self.B)
        return Jet.cat([z.cos(), z.sin()])

    def extra_repr(self) -> str:
        m, d = self.B.shape
        sig = (
            f"{self.sigma:g}" if isinstance(self.sigma, float)
            else "[" + ", ".join(f"{v:g}" for v in self.sigma) + "]"
        )
        return f"in_dim={d}, features={m}, sigma={sig}, trainable={self.trainable}"


def _seeded(seed: int, build: Callable[[], nn.Module], like: Tensor) -> nn.Module:
    """``build()`` with torch's generator seeded by ``seed`` (and restored after), moved
    to ``like``'s dtype and device."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        module = build()
    return module.to(dtype=like.dtype, device=like.device)


def zero_head(width: int, like: Tensor) -> nn.Linear:
    """A bias-free output layer with zero weights: adds nothing until trained."""
    with torch.random.fork_rng(devices=[]):  # its random init is overwritten
        head = nn.Linear(width, 1, bias=False).to(dtype=like.dtype, device=like.device)
    with torch.no_grad():
        head.weight.zero_()
    return head


def _with_extra_heads(out: Tensor, hidden: Sequence[Tensor], heads: nn.ModuleList) -> Tensor:
    """u = W_out h_0 + b + Σ_j W_j h_j for the blocks added by ``grow``."""
    for h, head in zip(hidden, heads, strict=True):
        out = out + head(h)
    return out


class FourierNet(Architecture):
    """Random Fourier feature network (Tancik et al. 2020): see the module docstring."""

    name = "fourier"
    options = opts.FOURIER

    def __init__(
        self,
        *,
        sigma: float | Sequence[float] = 5.0,
        features: int = 64,
        trainable: bool = False,
        width: int = 100,
        depth: int = 2,
        activation: str = "tanh",
        normalize: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(normalize=normalize, **common)  # space_dim, has_time, bounds, interface
        self.embedding = FourierFeatures(
            self.feature_dim, features, sigma, trainable, key="model.sigma"
        )
        self.trunk = Trunk(self.embedding.out_dim, width, depth, activation)
        self.head = glorot_linear(width, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.trunk(self.embedding(self.scale_inputs(x))))

    def jet(self, x: Tensor, spec: JetSpec) -> Jet:
        h = self.trunk.jet(self.embedding.jet(self.input_jet(x, spec)))
        return h.linear(self.head.weight, self.head.bias)


class MultiscaleFourier(Growable):
    """Multi-scale Fourier feature network (Wang, Wang, Perdikaris 2021): see the module doc."""

    name = "mff"
    options = opts.MFF

    def __init__(
        self,
        *,
        sigmas: Sequence[float | Sequence[float]] = (1.0, 5.0),
        features: int = 32,
        trainable: bool = False,
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        normalize: bool = False,
        **common: Any,
    ) -> None:
        super().__init__(normalize=normalize, **common)  # space_dim, has_time, bounds, interface
        sigmas = opts.parse_sigmas(sigmas, "model.sigmas")
        self.features, self.trainable, self.width = features, trainable, width
        self.embeddings = nn.ModuleList(
            FourierFeatures(self.feature_dim, features, s, trainable) for s in sigmas
        )
        self.trunk = Trunk(2 * features, width, depth, activation)
        self.head = glorot_linear(len(sigmas) * width, 1)
        self.grown_heads = nn.ModuleList()  # one per embedding added by grow()

    def band_values(self) -> list[float | list[float]]:
        return [e.sigma for e in self.embeddings]

    def _add_band(self, value: float | Sequence[float], seed: int) -> None:
        """One more embedding (σ = ``value``) through the shared trunk, with a zero
        output layer of its own."""
        like = self.head.weight
        self.embeddings.append(_seeded(
            seed, lambda: FourierFeatures(self.feature_dim, self.features, value, self.trainable),
            like,
        ))
        self.grown_heads.append(zero_head(self.width, like))

    def forward(self, x: Tensor) -> Tensor:
        xs = self.scale_inputs(x)
        hidden = [self.trunk(emb(xs)) for emb in self.embeddings]
        m = len(hidden) - len(self.grown_heads)
        out = self.head(torch.cat(hidden[:m], dim=-1))
        return _with_extra_heads(out, hidden[m:], self.grown_heads)

    def jet(self, x: Tensor, spec: JetSpec) -> Jet:
        xs = self.input_jet(x, spec)
        hidden = [self.trunk.jet(emb.jet(xs)) for emb in self.embeddings]
        m = len(hidden) - len(self.grown_heads)
        out = Jet.cat(hidden[:m]).linear(self.head.weight, self.head.bias)
        extra = [h.linear(head.weight) for h, head in zip(hidden[m:], self.grown_heads)]
        return Jet.sum([out, *extra])


class SpatioTemporalFourier(Growable):
    """Spatio-temporal multi-scale Fourier features (Wang, Wang, Perdikaris 2021, heat)."""

    name = "stmff"
    options = opts.STMFF

    def __init__(
        self,
        *,
        sigmas_x: Sequence[float | Sequence[float]] = (1.0, 5.0),
        sigmas_t: Sequence[float | Sequence[float]] = (1.0,),
        features: int = 32,
        trainable: bool = False,
        width: int = 64,
        depth: int = 2,
        activation: str = "tanh",
        normalize: bool = False,
        **common: Any,
    ) -> None:
        if not common.get("has_time"):
            raise SchemaError(
                "model.arch",
                "stmff embeds space and time separately and needs a time-dependent problem "
                "(pde: heat); use mff for problems without time",
            )
        super().__init__(normalize=normalize, **common)  # space_dim, has_time, bounds, interface
        sigmas_x = opts.parse_sigmas(sigmas_x, "model.sigmas_x")
        sigmas_t = opts.parse_sigmas(sigmas_t, "model.sigmas_t")
        self.features, self.trainable, self.width = features, trainable, width
        self.space_embeddings = nn.ModuleList(
            FourierFeatures(self.feature_dim - 1, features, s, trainable, key="model.sigmas_x")
            for s in sigmas_x
        )
        self.time_embeddings = nn.ModuleList(
            FourierFeatures(1, features, s, trainable, key="model.sigmas_t") for s in sigmas_t
        )
        self.trunk = Trunk(2 * features, width, depth, activation)
        self.head = glorot_linear(len(sigmas_x) * len(sigmas_t) * width, 1)
        self.grown_heads = nn.ModuleList()  # one per spatial embedding added by grow()

    def band_values(self) -> list[float | list[float]]:
        return [e.sigma for e in self.space_embeddings]

    def _add_band(self, value: float | Sequence[float], seed: int) -> None:
        """One more spatial embedding (σ_x = ``value``); its products with every temporal
        embedding go through a zero output layer of their own."""
        like = self.head.weight
        self.space_embeddings.append(_seeded(
            seed,
            lambda: FourierFeatures(self.feature_dim - 1, self.features, value, self.trainable),
            like,
        ))
        self.grown_heads.append(zero_head(self.width * len(self.time_embeddings), like))

    def _split(self, merged: list) -> tuple[list, list]:
        """The products of the original spatial embeddings, and one group per grown one."""
        nt = len(self.time_embeddings)
        m = (len(self.space_embeddings) - len(self.grown_heads)) * nt
        return merged[:m], [merged[m + i * nt : m + (i + 1) * nt]
                            for i in range(len(self.grown_heads))]

    def forward(self, x: Tensor) -> Tensor:
        xs = self.scale_inputs(x)
        sd, t = self.space_dim, self.in_dim - 1  # columns: space, t, then |φ_j| (space)
        space, time = torch.cat([xs[:, :sd], xs[:, t + 1 :]], -1), xs[:, t : t + 1]
        hx = [self.trunk(emb(space)) for emb in self.space_embeddings]
        ht = [self.trunk(emb(time)) for emb in self.time_embeddings]
        merged = [a * b for a in hx for b in ht]
        base, grown = self._split(merged)
        out = self.head(torch.cat(base, dim=-1))
        return _with_extra_heads(out, [torch.cat(g, dim=-1) for g in grown], self.grown_heads)

    def jet(self, x: Tensor, spec: JetSpec) -> Jet:
        xs = self.input_jet(x, spec)
        sd, t = self.space_dim, self.in_dim - 1
        space, time = xs.select(slice(0, sd)), xs.select(slice(t, t + 1))
        if self.interface:
            space = Jet.cat([space, xs.select(slice(t + 1, None))])
        hx = [self.trunk.jet(emb.jet(space)) for emb in self.space_embeddings]
        ht = [self.trunk.jet(emb.jet(time)) for emb in self.time_embeddings]
        base, grown = self._split([a * b for a in hx for b in ht])
        out = Jet.cat(base).linear(self.head.weight, self.head.bias)
        extra = [Jet.cat(g).linear(head.weight) for g, head in zip(grown, self.grown_heads)]
        return Jet.sum([out, *extra])
