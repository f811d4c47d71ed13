"""Common base of every architecture: input layout, input normalisation, option schema.

A network maps inputs X of shape (N, D) to u of shape (N, 1). The columns of X are the
spatial coordinates in the order x, y, z (as many as the problem has), followed by t for
time-dependent problems: D = space_dim + has_time.

Input normalisation (option ``normalize``): when on, each input column is mapped affinely
from its interval [lo, hi] to [−1, 1], X̃ = 2 (X − lo)/(hi − lo) − 1, before the first
layer. The map is linear, so it changes frequencies by the factor 2/(hi − lo): a Fourier
feature cos(2π b X̃) of a normalised input oscillates with angular wavenumber
2π b · 2/(hi − lo) in the physical variable.

Interface features (option ``interface``, every architecture): level-set functions
φ_1, …, φ_m of the spatial coordinates whose zero sets are material interfaces. The
network's input becomes [X̃, |φ_1(x)|, …, |φ_m(x)|], so the first layer sees
D + m columns. This is the cusp-capturing PINN of Tseng, Lin, Hu, Lai 2023 ("A
cusp-capturing PINN for solving elliptic interface problems", J. Comput. Phys. 491,
112359): a solution of −∇·(a∇u) = f with a discontinuous across {φ = 0} is continuous
with a kink there (its normal derivative jumps by the ratio of the a's), and a smooth
network of (x, |φ(x)|) represents such a kink exactly, where a smooth network of x alone
must smear it, at a cost in the energy norm that the Ritz loss pays everywhere (measured on
``problems/layered2d_ritz.yaml``: ``benchmarks/README.md`` §8.3). The derivative engines
see |φ| as any other feature: ∇|φ| = sign(φ) ∇φ, L|φ| = sign(φ) Lφ (the Dirac mass of
|φ|'' on the interface, a set of measure zero, is dropped). ∇φ and the second derivatives
of φ are taken by autograd on the compiled expression; they do not depend on the
parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mscalepde.calculus.jet import Jet, JetSpec
from mscalepde.expressions.expression import Expression
from mscalepde.geometry.box import axis_names
from mscalepde.schema import Option


class Architecture(nn.Module):
    """Base class: subclasses set ``name`` and ``options`` and implement ``forward``."""

    name: ClassVar[str] = ""
    options: ClassVar[dict[str, Option]] = {}

    def __init__(
        self,
        *,
        space_dim: int,
        has_time: bool,
        bounds: Sequence[tuple[float, float]],
        normalize: bool = True,
        interface: Sequence[Expression] = (),
    ) -> None:
        super().__init__()
        self.space_dim = int(space_dim)
        self.has_time = bool(has_time)
        self.in_dim = self.space_dim + int(self.has_time)
        self.interface = tuple(interface)
        # columns the first layer sees: the inputs, then one |φ_j| per interface
        self.feature_dim = self.in_dim + len(self.interface)
        if len(bounds) != self.in_dim:
            raise ValueError(f"expected {self.in_dim} input intervals, got {len(bounds)}")
        lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64)  # cast below
        hi = torch.tensor([b[1] for b in bounds], dtype=torch.float64)
        self.normalize = bool(normalize)
        if self.normalize:
            scale = 2.0 / (hi - lo)
            shift = -1.0 - lo * scale
        else:
            scale = torch.ones_like(lo)
            shift = torch.zeros_like(lo)
        # Buffers: saved with the model and moved with .to(dtype/device).
        dtype = torch.get_default_dtype()  # like the parameters; .to(dtype) moves both
        self.register_buffer("input_scale", scale.to(dtype))
        self.register_buffer("input_shift", shift.to(dtype))

    def scale_inputs(self, x: Tensor) -> Tensor:
        """X̃ = X·scale + shift (identity when ``normalize`` is off), then the interface
        features |φ_j(x)| (module docstring)."""
        xs = x * self.input_scale + self.input_shift if self.normalize else x
        if not self.interface:
            return xs
        env = self._env(x)
        return torch.cat([xs, *(phi.torch(env).abs().unsqueeze(-1) for phi in self.interface)], -1)

    def input_jet(self, x: Tensor, spec: JetSpec) -> Jet:
        """The forward-Laplacian jet (streams chosen by ``spec``) of the normalised inputs
        and the interface features."""
        if not self.normalize:
            jet = Jet.input(x, spec)
        else:
            jet = Jet.input(x, spec, self.input_scale, self.input_shift)
        if not self.interface:
            return jet
        return Jet.cat([jet, *(self._interface_jet(phi, x, spec) for phi in self.interface)])

    def _env(self, x: Tensor) -> dict[str, Tensor]:
        return {name: x[:, i] for i, name in enumerate(axis_names(self.space_dim))}

    def _interface_jet(self, phi: Expression, x: Tensor, spec: JetSpec) -> Jet:
        """The jet of |φ(x)|: value, sign(φ) ∇φ and sign(φ) Lφ for every operator."""
        sd = self.space_dim
        second = any(op.has_second_order for op in spec.operators)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            value = phi.torch(self._env(xg))
            (grad,) = torch.autograd.grad(value.sum(), xg, create_graph=second)
            hess = []
            if second:  # ∂²φ/∂x_i², one backward pass per spatial axis
                for i in range(sd):
                    row = None
                    if grad.requires_grad:  # φ affine: no graph, zero second derivatives
                        (row,) = torch.autograd.grad(
                            grad[:, i].sum(), xg, retain_graph=True, allow_unused=True
                        )
                    hess.append(torch.zeros_like(grad[:, i]) if row is None else row[:, i])
        value, grad = value.detach().unsqueeze(-1), grad.detach()
        hess = [h.detach() for h in hess]
        grads = tuple(grad[:, i : i + 1] for i in range(sd)) if spec.needs_grads else ()
        ops = []
        for op in spec.operators:
            out = sum(c * grad[:, j] for j, c in enumerate(op.first) if c != 0.0)
            for i, c in enumerate(op.weights(sd) if op.has_second_order else ()):
                if c != 0.0:
                    out = out + c * hess[i]
            ops.append(torch.zeros_like(value) if isinstance(out, int) else out.unsqueeze(-1))
        jet = Jet(value, grads, tuple(ops), spec)
        return jet.elementwise(value.abs(), torch.sign(value), torch.zeros_like(value))

    def parameter_count(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class Composite(nn.Module, ABC):
    """A module made of networks that answers as its primary one (u's network): attributes
    it lacks (``space_dim``, ``in_dim``, an architecture's options) are the primary's, and
    ``parameter_count`` counts what is trainable now. An abstract base: a subclass without
    ``primary`` cannot be instantiated (a TypeError, not a stub)."""

    @abstractmethod
    def primary(self) -> nn.Module:
        """The network whose attributes the composite answers with."""

    def parameter_count(self) -> int:
        """Trainable parameters (``requires_grad``) of all the networks together."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "primary" or name.startswith("__"):
                raise
            return getattr(self.primary(), name)
