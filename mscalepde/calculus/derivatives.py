"""The single place where derivatives of a field are computed.

Given a field u: R^D → R (a network or a compiled expression) and points X (N, D) whose
first ``space_dim`` columns are space and whose last column is t when ``has_time``, the
functions here return, in one :class:`Derivatives` record, whichever of

- u(X) (always),
- ∇u = (∂u/∂x_1, …, ∂u/∂x_d) (spatial gradient; Neumann and periodic conditions),
- u_t = ∂u/∂t,
- Δu = Σ_i ∂²u/∂x_i² (spatial Laplacian),
- the second derivatives ∂²u/∂x_i², one per spatial axis (anisotropic variable
  coefficients, :mod:`mscalepde.calculus.operators`),
- L u = Σ_j a_j ∂u/∂X_j + Σ_i c_i ∂²u/∂x_i², a constant-coefficient operator
  (:class:`Operator`; the residual operators −Δ of Poisson, ∂_t − κΔ of heat, and their
  anisotropic forms)

are asked for. Two engines:

- ``forward`` (the default whenever the field supports it, i.e. has a ``jet(x, spec)``
  method as every registered architecture does): the forward Laplacian of
  :mod:`mscalepde.calculus.jet` — one forward pass carries u, ∇u and the operator streams (u_t, Δu,
  L u); training then needs only a first-order backward.
- ``autograd``: reverse mode, one backward pass for the first derivatives (with
  ``create_graph``) and one more per spatial dimension for Δu — the classical PINN approach
  (Raissi et al. 2019; what DeepXDE does). It works for any callable (compiled expressions,
  user modules), and is the reference the forward engine is tested against.

Equations and boundary conditions call only :func:`derivatives`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from mscalepde.calculus.jet import JetSpec, LinearTape, Operator

Field = Callable[[Tensor], Tensor]
ENGINES = ("auto", "forward", "autograd")


def engine_for(field: Field, engine: str = "auto") -> str:
    """The engine :func:`derivatives` will use for ``field``: ``forward`` when asked for (or
    ``auto``) and the field has a ``jet`` method, else ``autograd``."""
    if engine not in ENGINES:
        raise ValueError(f"unknown derivative engine '{engine}' (choose from {ENGINES})")
    has_jet = callable(getattr(field, "jet", None))
    if engine == "forward" and not has_jet:
        raise ValueError(f"{type(field).__name__} has no forward-Laplacian jet")
    return "forward" if has_jet and engine != "autograd" else "autograd"


@dataclass
class Derivatives:
    """u (N,), and when requested: grad (N, d), ut (N,), lap (N,), op (N,) = L u,
    second (N, d) = the ∂²u/∂x_i²."""

    u: Tensor
    grad: Tensor | None = None
    ut: Tensor | None = None
    lap: Tensor | None = None
    op: Tensor | None = None
    second: Tensor | None = None

    def detached(self) -> Derivatives:
        """The same record with every tensor detached from the graph."""
        fields = (self.u, self.grad, self.ut, self.lap, self.op, self.second)
        return Derivatives(*(None if t is None else t.detach() for t in fields))


def derivatives(
    field: Field,
    points: Tensor,
    *,
    space_dim: int,
    grad: bool = False,
    ut: bool = False,
    lap: bool = False,
    second: bool = False,
    operator: Operator | None = None,
    create_graph: bool = True,
    engine: str = "auto",
    tape: LinearTape | None = None,
) -> Derivatives:
    """Evaluate ``field`` and the requested derivatives at ``points``.

    ``operator`` asks for L u = Σ_j a_j ∂u/∂X_j + c Δu (e.g. the heat operator ∂_t − κΔ),
    returned as ``op``: the forward engine carries it as one stream (cheaper than u_t and Δu
    apart). ``create_graph=True`` keeps the graph so that a loss built from the result can be
    differentiated with respect to the field's parameters (training); ``False`` returns
    detached values (targets, evaluation). ``tape`` forces the forward engine (even for the
    value alone) and records its linear maps, for the per-point Jacobians of
    :mod:`mscalepde.training.gauss_newton`.
    """
    in_dim = points.shape[1]
    if ut and in_dim <= space_dim:
        raise ValueError("u_t asked for, but the points have no time column")
    if operator is not None and len(operator.first) != in_dim:
        raise ValueError(f"operator has {len(operator.first)} coefficients for {in_dim} columns")
    if operator is not None and operator.second and len(operator.second) != space_dim:
        raise ValueError(
            f"operator has {len(operator.second)} second-order weights for {space_dim} axes"
        )
    if tape is None and not (grad or ut or lap or second or operator is not None):
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            value = field(points).reshape(-1)
        return Derivatives(value if create_graph else value.detach())
    req = _Request(space_dim, grad, ut, lap, operator, second)
    if tape is not None:
        if engine_for(field) != "forward":  # the tape needs the jet, whatever ``engine``
            raise ValueError(f"{type(field).__name__} has no forward-Laplacian jet to record")
        return _forward(field, points, req, create_graph, tape)
    if engine_for(field, engine) == "forward":
        return _forward(field, points, req, create_graph)
    return _autograd(field, points, req, create_graph)


class _Request(NamedTuple):
    """What :func:`derivatives` was asked for."""

    space_dim: int
    grad: bool
    ut: bool
    lap: bool
    operator: Operator | None
    second: bool = False


def _forward(
    field: Field,
    points: Tensor,
    req: _Request,
    create_graph: bool,
    tape: LinearTape | None = None,
) -> Derivatives:
    """The forward-Laplacian engine: one pass of ``field.jet`` (recorded on ``tape``)."""
    space_dim, grad, ut, lap, operator, second = req
    in_dim = points.shape[1]
    ops: list[Operator] = []
    if ut:
        ops.append(Operator.partial(in_dim, space_dim))
    if lap:
        ops.append(Operator.laplace(in_dim))
    if operator is not None:
        ops.append(operator)
    if second:
        ops.extend(Operator.second_derivative(in_dim, space_dim, i) for i in range(space_dim))
    spec = JetSpec(space_dim, grad, tuple(ops), tape)
    with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
        jet = field.jet(points, spec)  # type: ignore[attr-defined]
        streams = [jet.operator(m)[:, 0] for m in range(len(ops))]
        out = Derivatives(
            jet.value[:, 0],
            jet.gradient()[..., 0] if grad else None,
            streams.pop(0) if ut else None,
            streams.pop(0) if lap else None,
            streams.pop(0) if operator is not None else None,
            torch.stack(streams, 1) if second else None,
        )
    return out if create_graph else out.detached()


def _grad_or_zero(
    y: Tensor, x: Tensor, create_graph: bool, retain_graph: bool | None = None
) -> Tensor:
    """∂(Σ y)/∂x, or zeros when y does not depend on x (no graph, or not through x)."""
    if not y.requires_grad:
        return torch.zeros_like(x)
    (g,) = torch.autograd.grad(
        y.sum(), x, create_graph=create_graph, retain_graph=retain_graph, allow_unused=True
    )
    return torch.zeros_like(x) if g is None else g


def _autograd(field: Field, points: Tensor, req: _Request, create_graph: bool) -> Derivatives:
    """Reverse mode: ∇_X u with ``create_graph``, then one more backward per spatial
    dimension for the second derivatives ∂²u/∂x_i² (when any is needed)."""
    space_dim, grad, ut, lap, operator, second = req
    need_second = lap or second or (operator is not None and operator.has_second_order)
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        value = field(x).reshape(-1)
        # a field constant in x (an expression such as ``1``) has no graph: ∇u = 0; a
        # linear one (``1 + x``) has a constant gradient without a graph: ∂²u = 0
        first = _grad_or_zero(value, x, create_graph or need_second)
        spatial = first[:, :space_dim]
        diag: list[Tensor] = []
        if need_second:
            for i in range(space_dim):
                hess = _grad_or_zero(spatial[:, i], x, create_graph, retain_graph=True)
                diag.append(hess[:, i])
        op = None
        if operator is not None:
            op = torch.zeros_like(value)
            for j, a in enumerate(operator.first):
                if a != 0.0:
                    op = op + a * first[:, j]
            if operator.has_second_order:
                for c, dii in zip(operator.weights(space_dim), diag, strict=True):
                    if c != 0.0:
                        op = op + c * dii
        out = Derivatives(
            value,
            spatial if grad else None,
            first[:, space_dim] if ut else None,
            torch.stack(diag, 1).sum(1) if lap else None,
            op,
            torch.stack(diag, 1) if second else None,
        )
    return out if create_graph else out.detached()
