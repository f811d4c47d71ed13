"""The differential operator of a problem: diffusion with a variable or anisotropic
coefficient, and a (possibly semilinear) reaction term.

- ``poisson``: L u = −∇·(a ∇u) + r(x, u) = f in Ω;
- ``heat``: L u = u_t − ∇·(a ∇u) + r(x, t, u) = f in Ω × (t0, t1].

The diffusivity a is either one coefficient (isotropic: ∇·(a∇u) = a Δu + ∇a·∇u) or one
per spatial axis (diagonal, anisotropic: ∇·(A∇u) = Σ_i a_i ∂²u/∂x_i² + ∂_i a_i ∂u/∂x_i,
A = diag(a_1, …, a_d)). Each coefficient is a number or an expression of x (and t for
heat); it must be positive. The reaction r is an expression that may use u (linear, k²u as
in the Poisson–Boltzmann equation, or semilinear: sinh u, u³; Liu, Cai, Xu 2020).

How the derivative engine evaluates L u_θ (:meth:`PDEOperator.plan`):

- a constant (isotropic or per axis): one forward-Laplacian stream, the constant-coefficient
  operator [∂_t] − Σ_i a_i ∂_ii — the same stream count as the plain −Δ / ∂_t − κΔ;
- a variable, isotropic: the gradient streams ∇u, one Δu stream (and u_t);
- a variable, per axis: ∇u and one ∂_ii u stream per axis (and u_t).

The coefficient data a_k(X) and ∇a_k(X) are computed once per draw of points, by autograd
of the expression in float64 (:meth:`PDEOperator.coefficients`); the reaction is evaluated
on the fly from u, so it is differentiable in u (what training and the Gauss–Newton
Jacobian need).

The Ritz energy (E & Yu 2018) of the Poisson operator is
E(u) = ∫_Ω ½ Σ_i a_i (∂_i u)² + R(x, u) − f u dx (+ boundary terms, see
:mod:`mscalepde.equations`), with R(x, u) = ∫_0^u r(x, s) ds, computed here by 8-point
Gauss–Legendre quadrature in s (exact for r polynomial in u up to degree 15, e.g. k²u and
u³; for sinh u with |u| ≤ 5 the error is below 1e-12 relative).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from mscalepde.expressions.expression import Expression

if TYPE_CHECKING:  # torch is imported where it is used: loading a problem needs no torch
    from torch import Tensor

    from mscalepde.calculus.jet import Operator

_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(8)
#: Gauss–Legendre nodes and weights on [0, 1] (for the antiderivative R of r in u).
GL_NODES = tuple(float(s) for s in (_GL_NODES + 1.0) / 2.0)
GL_WEIGHTS = tuple(float(w) for w in _GL_WEIGHTS / 2.0)


class Plan(NamedTuple):
    """What the derivative engine must carry for L u: the spatial gradient, u_t, Δu, the
    per-axis second derivatives ∂_ii u, and a constant-coefficient operator stream."""

    grad: bool
    ut: bool
    lap: bool
    second: bool
    operator: Operator | None


@dataclass(frozen=True)
class PDEOperator:
    """L u = [u_t] − ∇·(A ∇u) + r(X, u), A = a I or diag(a_1, …, a_d) (module docstring).

    ``variables`` are the names of the input columns (space, then t); ``diffusivity`` holds
    one expression (isotropic) or ``space_dim`` of them; ``reaction`` may use ``u``.
    """

    time: bool
    variables: tuple[str, ...]
    diffusivity: tuple[Expression, ...]
    reaction: Expression | None = None

    @property
    def space_dim(self) -> int:
        return len(self.variables) - (1 if self.time else 0)

    @property
    def anisotropic(self) -> bool:
        return len(self.diffusivity) > 1

    @property
    def constant(self) -> bool:
        """True when every diffusivity entry is a number."""
        return all(e.is_constant for e in self.diffusivity)

    def constants(self) -> tuple[float, ...]:
        """The per-axis values a_1, …, a_d of a constant diffusivity."""
        if not self.constant:
            raise ValueError("the diffusivity is not constant")
        values = tuple(float(e.constant_value) for e in self.diffusivity)  # type: ignore[arg-type]
        return values if self.anisotropic else values * self.space_dim

    @property
    def isotropic_constant(self) -> float | None:
        """a when the diffusivity is one number, else None."""
        if self.anisotropic or not self.constant:
            return None
        return float(self.diffusivity[0].constant_value)  # type: ignore[arg-type]

    @property
    def plain(self) -> bool:
        """The classical case: a constant isotropic diffusivity and no reaction."""
        return self.isotropic_constant is not None and self.reaction is None

    @property
    def shift_invariant(self) -> bool:
        """L(u + c) = L u for every constant c: no reaction, or one that does not use u.
        With only Neumann and periodic faces such a problem is solvable up to a constant
        (:mod:`mscalepde.problem.solvability`)."""
        return self.reaction is None or "u" not in self.reaction.variables

    @property
    def linear(self) -> bool:
        """True when L is linear in u (no reaction, or a reaction affine in u)."""
        if self.reaction is None or "u" not in self.reaction.variables:
            return True
        # r(x, 2u) − 2 r(x, u) + r(x, 0) = 0 for an affine r; tested at a few values
        rng = np.random.default_rng(0)
        env = {v: rng.uniform(-1, 1, 16) for v in self.variables}
        u = rng.uniform(-2, 2, 16)
        r = self.reaction.numpy
        lhs = r({**env, "u": 2 * u}) - 2 * r({**env, "u": u}) + r({**env, "u": 0 * u})
        return bool(np.all(np.abs(lhs) <= 1e-9 * (1 + np.abs(r({**env, "u": u})))))

    # ------------------------------------------------------------ derivative plan
    def stream_operator(self) -> Operator | None:
        """The single constant-coefficient stream [∂_t] − Σ_i a_i ∂_ii when a is constant."""
        from mscalepde.calculus.jet import Operator

        if not self.constant:
            return None
        in_dim = len(self.variables)
        first = [0.0] * in_dim
        if self.time:
            first[self.space_dim] = 1.0
        if self.anisotropic:
            return Operator(tuple(first), 0.0, tuple(-a for a in self.constants()))
        return Operator(tuple(first), -float(self.isotropic_constant))  # type: ignore[arg-type]

    def plan(self) -> Plan:
        """The derivatives of u that L u needs (module docstring)."""
        op = self.stream_operator()
        if op is not None:
            return Plan(False, False, False, False, op)
        if self.anisotropic:
            return Plan(True, self.time, False, True, None)
        return Plan(True, self.time, True, False, None)

    # ------------------------------------------------------------ point data
    def coefficients(self, x: Tensor) -> Tensor:
        """(N, k, 1 + d): a_k(X) and ∇a_k(X) = (∂a_k/∂x_1, …, ∂a_k/∂x_d) for each of the k
        diffusivity entries, by autograd in float64, detached, in ``x``'s dtype. Empty
        (N, 0, 1 + d) for a constant diffusivity (the stream operator carries it)."""
        import torch

        d = self.space_dim
        if self.constant:
            return x.new_zeros(len(x), 0, 1 + d)
        out = []
        with torch.enable_grad():
            x64 = x.detach().to(torch.float64).requires_grad_(True)
            env = {v: x64[:, i] for i, v in enumerate(self.variables)}
            for expr in self.diffusivity:
                a = expr.torch(env).reshape(-1).expand(len(x))
                if a.requires_grad:
                    (g,) = torch.autograd.grad(a.sum(), x64)
                    g = g[:, :d]
                else:
                    g = torch.zeros(len(x), d, dtype=torch.float64, device=x.device)
                out.append(torch.cat([a.detach()[:, None], g.detach()], 1))
        return torch.stack(out, 1).to(x.dtype)

    def diffusivity_values(self, x: np.ndarray) -> np.ndarray:
        """(N, k) values of the diffusivity entries at points (numpy, float64)."""
        env = {v: x[:, i] for i, v in enumerate(self.variables)}
        cols = [
            np.broadcast_to(np.asarray(e.numpy(env), float), (len(x),)) for e in self.diffusivity
        ]
        return np.stack(cols, 1)

    def reaction_values(self, x: Tensor, u: Tensor) -> Tensor:
        """r(X, u) (torch, differentiable in u)."""
        assert self.reaction is not None
        env = {v: x[:, i] for i, v in enumerate(self.variables)}
        env["u"] = u
        return self.reaction.torch(env).reshape(-1).expand(len(u))

    def antiderivative(self, x: Tensor, u: Tensor) -> Tensor:
        """R(X, u) = ∫_0^u r(X, s) ds by 8-point Gauss–Legendre in s (module docstring)."""
        import torch

        out = torch.zeros_like(u)
        for s, w in zip(GL_NODES, GL_WEIGHTS, strict=True):
            out = out + w * self.reaction_values(x, s * u)
        return out * u

    # ------------------------------------------------------------ the residual
    def apply(self, d: object, x: Tensor, coefficients: Tensor) -> Tensor:
        """L u at the points ``x`` from the derivatives ``d`` (a
        :class:`~mscalepde.calculus.derivatives.Derivatives` computed with :meth:`plan`) and the
        :meth:`coefficients` of those points."""
        out = self._diffusion(d, coefficients)
        if self.reaction is not None:
            out = out + self.reaction_values(x, d.u)  # type: ignore[attr-defined]
        return out

    def _diffusion(self, d: object, c: Tensor) -> Tensor:
        if self.constant:
            return d.op  # type: ignore[attr-defined]
        grad = d.grad  # type: ignore[attr-defined]
        if self.anisotropic:  # Σ_i a_i ∂_ii u + ∂_i a_i ∂_i u
            second = d.second  # type: ignore[attr-defined]
            flux = c[:, 0, 0] * second[:, 0] + c[:, 0, 1] * grad[:, 0]
            for i in range(1, self.space_dim):
                flux = flux + c[:, i, 0] * second[:, i] + c[:, i, 1 + i] * grad[:, i]
        else:  # a Δu + ∇a·∇u
            flux = c[:, 0, 0] * d.lap + (c[:, 0, 1:] * grad).sum(1)  # type: ignore[attr-defined]
        return d.ut - flux if self.time else -flux  # type: ignore[attr-defined]

    def energy_density(self, d: object, x: Tensor, coefficients: Tensor) -> Tensor:
        """½ Σ_i a_i (∂_i u)² + R(X, u) at the points (the Ritz energy's integrand without
        the source term); ``d`` carries u and ∇u."""
        import torch

        grad = d.grad  # type: ignore[attr-defined]
        if self.constant:
            a = torch.tensor(self.constants(), dtype=grad.dtype, device=grad.device)
            out = 0.5 * (grad.square() * a).sum(1)
        elif self.anisotropic:
            out = 0.5 * (grad.square() * coefficients[:, :, 0]).sum(1)
        else:
            out = 0.5 * coefficients[:, 0, 0] * grad.square().sum(1)
        if self.reaction is not None:
            out = out + self.antiderivative(x, d.u)  # type: ignore[attr-defined]
        return out

    def conormal_factor(self, x: Tensor, coefficients: Tensor, axis: int) -> Tensor:
        """The factor a_axis(X) of the conormal flux n·(A∇u) = a_axis ∂u/∂n on a face normal
        to ``axis`` (what the natural boundary terms of the Ritz energy carry)."""
        import torch

        if self.constant:
            return torch.full((len(x),), self.constants()[axis], dtype=x.dtype, device=x.device)
        return coefficients[:, axis if self.anisotropic else 0, 0]
