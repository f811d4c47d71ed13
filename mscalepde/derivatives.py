"""The single place where derivatives of a field are computed.

Given a field u: R^D → R (a network or a compiled expression) and points X (N, D) whose
first ``space_dim`` columns are space and whose last column is t when ``has_time``, the
functions here return, in one :class:`Derivatives` record, whichever of

- u(X) (always),
- ∇u = (∂u/∂x_1, …, ∂u/∂x_d) (spatial gradient; Neumann and periodic conditions),
- u_t = ∂u/∂t (heat),
- Δu = Σ_i ∂²u/∂x_i² (spatial Laplacian; Poisson and heat residuals)

are asked for. Two engines:

- ``forward`` (the default whenever the field supports it, i.e. has a ``jet(x)`` method as
  every registered architecture does): the forward Laplacian of :mod:`mscalepde.jet` — one
  forward pass carries u, ∇u, u_t and Δu; training then needs only a first-order backward.
- ``autograd``: reverse mode, one backward pass for the first derivatives (with
  ``create_graph``) and one more per spatial dimension for Δu — the classical PINN approach
  (Raissi et al. 2019; what DeepXDE does). It works for any callable (compiled expressions,
  user modules), and is the reference the forward engine is tested against.

Equations and boundary conditions call only :func:`derivatives`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

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
    """u (N,), and when requested: grad (N, d), ut (N,), lap (N,)."""

    u: Tensor
    grad: Tensor | None = None
    ut: Tensor | None = None
    lap: Tensor | None = None


def derivatives(
    field: Field,
    points: Tensor,
    *,
    space_dim: int,
    grad: bool = False,
    ut: bool = False,
    lap: bool = False,
    create_graph: bool = True,
    engine: str = "auto",
) -> Derivatives:
    """Evaluate ``field`` and the requested derivatives at ``points``.

    ``create_graph=True`` keeps the graph so that a loss built from the result can be
    differentiated with respect to the field's parameters (training); ``False`` returns
    detached values (targets, evaluation).
    """
    if not (grad or ut or lap):
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            value = field(points).reshape(-1)
        return Derivatives(value if create_graph else value.detach())
    if engine_for(field, engine) == "forward":
        with torch.set_grad_enabled(create_graph and torch.is_grad_enabled()):
            jet = field.jet(points)  # type: ignore[attr-defined]
        data = jet.data[..., 0]  # (K + 2, N): value, ∂_1..∂_K, Δ
        return Derivatives(
            data[0],
            data[1 : 1 + space_dim].transpose(0, 1) if grad else None,
            data[1 + space_dim] if ut else None,
            data[-1] if lap else None,
        )
    with torch.enable_grad():
        x = points.detach().requires_grad_(True)
        value = field(x).reshape(-1)
        (first,) = torch.autograd.grad(value.sum(), x, create_graph=create_graph or lap)
        spatial = first[:, :space_dim]
        laplacian = None
        if lap:
            laplacian = torch.zeros_like(value)
            for i in range(space_dim):
                (second,) = torch.autograd.grad(
                    spatial[:, i].sum(), x, create_graph=create_graph, retain_graph=True
                )
                laplacian = laplacian + second[:, i]
        out = Derivatives(
            value,
            spatial if grad else None,
            first[:, space_dim] if ut else None,
            laplacian,
        )
    if not create_graph:
        out = Derivatives(
            *(t.detach() if t is not None else None for t in (out.u, out.grad, out.ut, out.lap))
        )
    return out
