"""Residual blocks of every kind for the Gauss–Newton tests: an interior operator block, a
Neumann-type block, a periodic-type pair and variable-coefficient blocks with a reaction."""

from __future__ import annotations

import torch

from mscalepde.calculus.derivatives import Derivatives
from mscalepde.calculus.jet import Operator
from mscalepde.calculus.operators import PDEOperator
from mscalepde.equations import ResidualBlock
from mscalepde.expressions.expression import parse_expression


def residual_blocks(space_dim: int, has_time: bool) -> list[ResidualBlock]:
    """An interior block (−Δ, or the heat operator with time), a Neumann-type block (a
    gradient component) and a periodic-type pair block (two point sets, signs ±1)."""
    torch.manual_seed(3)
    d = space_dim + has_time
    x = torch.rand(7, d, dtype=torch.float64)
    y = torch.rand(7, d, dtype=torch.float64)
    f = torch.randn(7, dtype=torch.float64)
    if has_time:
        t = Operator.partial(d, space_dim)
        op = Operator(t.first, -0.3)
    else:
        op = Operator.laplace(d, -1.0)

    def operator(dv: Derivatives, aux=()) -> list[torch.Tensor]:
        return [dv.op]

    def slope(dv: Derivatives, aux=()) -> list[torch.Tensor]:
        return [dv.grad[:, space_dim - 1]]

    def value_and_slope(dv: Derivatives, aux=()) -> list[torch.Tensor]:
        return [dv.u, dv.grad[:, 0]]

    # variable coefficients with a semilinear reaction: per-axis a_i(X) (∂_ii streams) and
    # an isotropic a(X) (a Δ stream), both with ∇a·∇u and sinh(u)
    names = ("x", "y", "z")[:space_dim] + (("t",) if has_time else ())
    variable = []
    for entries in (
        [f"1 + 0.5*sin({i + 1}*x)" for i in range(space_dim)],
        ["2 + cos(x)"],
    ):
        pde = PDEOperator(
            time=has_time,
            variables=names,
            diffusivity=tuple(parse_expression(e, variables=names) for e in entries),
            reaction=parse_expression("sinh(u) + x*u", variables=(*names, "u")),
        )
        plan = pde.plan()

        def apply(dv: Derivatives, aux, pde=pde) -> list[torch.Tensor]:
            return [pde.apply(dv, aux[0], aux[1])]

        variable.append(
            ResidualBlock(
                "pde",
                (x,),
                (1.0,),
                apply,
                (f,),
                grad=plan.grad,
                ut=plan.ut,
                lap=plan.lap,
                second=plan.second,
                space_dim=space_dim,
                aux=(x, pde.coefficients(x)),
            )
        )

    zero = torch.zeros(7, dtype=torch.float64)
    return [
        ResidualBlock("pde", (x,), (1.0,), operator, (f,), operator=op, space_dim=space_dim),
        ResidualBlock("boundary", (y,), (1.0,), slope, (f,), grad=True, space_dim=space_dim),
        ResidualBlock(
            "boundary",
            (x, y),
            (1.0, -1.0),
            value_and_slope,
            (zero, zero),
            grad=True,
            space_dim=space_dim,
        ),
        *variable,
    ]


