"""The trainable unknowns of an inverse problem and their values at points.

A scalar θ = map(s) is kept as its raw parameter s (:mod:`mscalepde.problem.inverse` gives
the maps). A field a(x) is a network N(x) of a registered architecture, with
a = softplus(N) (> 0) when it must be positive.

**Per-point values on the Gauss–Newton tape.** Every residual row must depend on its own
point only and every parameter must reach it through a recorded linear map
(:class:`~mscalepde.calculus.jet.LinearTape`), so that one backward pass gives all rows of
the Jacobian. A scalar is therefore broadcast to the points as the linear map
z = 1·θ (weight θ, input stream 1): its column of J is ∂r_n/∂z_n chained through
θ = map(s) by the tape's rule for weights computed from parameters. A field's network runs
its forward-Laplacian jet on the same tape (value and spatial gradient streams).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from mscalepde.calculus.derivatives import derivatives
from mscalepde.calculus.jet import LinearTape
from mscalepde.problem.inverse import InverseSpec, ScalarUnknown

#: (value (N,), spatial gradient (N, d) or None) of an unknown at points
Value = tuple[Tensor, "Tensor | None"]


def scalar_map(u: ScalarUnknown, s: Tensor) -> Tensor:
    """θ = map(s) for the unknown's transform (:mod:`mscalepde.problem.inverse`)."""
    lo = 0.0 if u.lower is None else u.lower
    if u.transform == "none":
        return s
    if u.transform == "log":
        return lo + torch.exp(s)
    if u.transform == "log-upper":
        assert u.upper is not None
        return u.upper - torch.exp(s)
    if u.transform == "softplus":
        return lo + F.softplus(s)
    assert u.lower is not None and u.upper is not None
    return u.lower + (u.upper - u.lower) * torch.sigmoid(s)


def scalar_slope(u: ScalarUnknown, s: float) -> float:
    """dθ/ds at s (the delta method's factor from s to θ)."""
    if u.transform == "none":
        return 1.0
    if u.transform in ("log", "log-upper"):
        return math.exp(s) * (1.0 if u.transform == "log" else -1.0)
    if u.transform == "softplus":
        return 1.0 / (1.0 + math.exp(-s))
    assert u.lower is not None and u.upper is not None
    p = 1.0 / (1.0 + math.exp(-s))
    return (u.upper - u.lower) * p * (1.0 - p)


class Unknowns(nn.Module):
    """The scalars (raw parameters ``raw[name]``) and fields (``fields[name]``)."""

    def __init__(self, spec: InverseSpec, fields: dict[str, nn.Module], space_dim: int) -> None:
        super().__init__()
        self.spec = spec
        self.space_dim = space_dim
        dtype = torch.get_default_dtype()
        self.raw = nn.ParameterDict(
            {
                n: nn.Parameter(torch.tensor(u.raw_initial(), dtype=dtype))
                for n, u in spec.scalars.items()
            }
        )
        self.fields = nn.ModuleDict(fields)

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.raw.keys(), *self.fields.keys())

    def scalar(self, name: str) -> Tensor:
        """θ of a scalar unknown (a 0-d tensor with its graph to s)."""
        return scalar_map(self.spec.scalars[name], self.raw[name])

    def scalars(self) -> dict[str, float]:
        """Every scalar's current value θ."""
        with torch.no_grad():
            return {n: float(self.scalar(n)) for n in self.raw}

    def field_inputs(self, name: str, x: Tensor) -> Tensor:
        """The columns a field reads: space, and time when it has ``time``."""
        return x if self.spec.fields[name].time else x[:, : self.space_dim]

    def field(self, name: str, x: Tensor, grad: bool, tape: LinearTape | None) -> Value:
        """a(x) and (with ``grad``) ∇_space a(x) of a field, recorded on ``tape``."""
        net = self.fields[name]
        xi = self.field_inputs(name, x)
        if tape is None and not grad:
            value, g = net(xi).reshape(-1), None
        else:
            d = derivatives(net, xi, space_dim=self.space_dim, grad=grad, tape=tape)
            value, g = d.u, d.grad
        if self.spec.fields[name].positive:  # a = softplus(N), ∇a = σ(N) ∇N
            if g is not None:
                g = torch.sigmoid(value).unsqueeze(1) * g
            value = F.softplus(value)
        return value, g

    def values(
        self, x: Tensor, tape: LinearTape | None, grad: bool = False, names: tuple[str, ...] = ()
    ) -> dict[str, Value]:
        """Every unknown (or those in ``names``) at the points x: a scalar as the recorded
        map z = 1·θ (module docstring), a field from its network."""
        out: dict[str, Value] = {}
        wanted = names or self.names
        ones = x.new_ones(len(x), 1)
        for name in self.raw:
            if name not in wanted:
                continue
            theta = self.scalar(name).reshape(1, 1)
            z = ones @ theta.T
            if tape is not None:
                tape.record(theta, None, [ones], [z])
            out[name] = (z[:, 0], None)
        for name in self.fields:
            if name in wanted:
                out[name] = self.field(name, x, grad, tape)
        return out
