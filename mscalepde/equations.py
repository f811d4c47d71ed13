"""Residuals and the collocation loss of a problem (physics-informed training).

For a network u_θ and collocation points sampled by :mod:`mscalepde.geometry`:

- interior residual r = −Δu_θ − f (``poisson``), r = ∂_t u_θ − κ Δu_θ − f (``heat``),
  r = u_θ − u* (``fit``, the target u* = ``exact``);
- boundary residuals: Dirichlet u_θ − g, Neumann n·∇u_θ − g (outward normal n),
  periodic [u_θ(p) − u_θ(p + L_i e_i), ∂_i u_θ(p) − ∂_i u_θ(p + L_i e_i)] on the pair of
  faces of axis i (value and normal derivative must match);
- initial residual u_θ(x, t0) − u_0(x) (``heat``).

The loss terms are mean squares, L_pde = mean(r²), L_boundary = mean over all boundary
residuals, L_initial = mean(r_0²) (Raissi, Perdikaris, Karniadakis 2019); the trainer
forms L = w_pde L_pde + w_boundary L_boundary + w_initial L_initial.

Data derived from ``exact`` is computed by the same derivative engine as the network's:
``source: auto`` is f = −Δu* (Poisson) or ∂_t u* − κ Δu* (heat), a Neumann ``value: exact``
is n·∇u*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from .derivatives import Derivatives, Field, derivatives
from .errors import ProblemError
from .expressions import Expression
from .geometry import Domain, sample_face, sample_initial, sample_interior, split_boundary_points
from .jet import Operator
from .problem import Problem


def expression_field(expr: Expression, variables: Sequence[str]) -> Field:
    """The expression as a torch field of the input rows X (columns = ``variables``)."""
    names = list(variables)

    def field(x: Tensor) -> Tensor:
        return expr.torch({v: x[:, i] for i, v in enumerate(names)})

    return field


def residual_operator(problem: Problem) -> Operator | None:
    """The linear operator L of the interior residual r = L u − f: −Δ (Poisson), ∂_t − κΔ
    (heat); None for ``fit`` (r = u − u*)."""
    in_dim = len(problem.variables)
    if problem.pde == "poisson":
        return Operator.laplace(in_dim, -1.0)
    if problem.pde == "heat":
        t = Operator.partial(in_dim, problem.domain.space_dim)
        return Operator(t.first, -float(problem.diffusivity))
    return None


def pde_residual(problem: Problem, d: Derivatives, f: Tensor) -> Tensor:
    """Interior residual r = L u − f from the network's derivatives ``d`` (computed with
    ``operator=residual_operator(problem)``) and the data ``f``."""
    if problem.pde == "fit":
        return d.u - f  # f is the target
    assert d.op is not None
    return d.op - f


class Objective:
    """Collocation points, their data, and the loss terms of a problem.

    ``terms(model)`` returns ``{'pde': L_pde, 'boundary': L_b, 'initial': L_0}`` (only the
    terms the problem has). ``resample(seed)`` draws new points (same counts).
    """

    def __init__(
        self,
        problem: Problem,
        *,
        interior: int,
        boundary: int,
        initial: int,
        sampler: str,
        seed: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        engine: str = "auto",
    ) -> None:
        self.problem = problem
        self.domain: Domain = problem.domain
        self.counts = {"interior": interior, "boundary": boundary, "initial": initial}
        self.sampler = sampler
        self.dtype = dtype
        self.device = torch.device(device)
        self.variables = problem.variables
        self.engine = engine
        self.operator = residual_operator(problem)  # L of r = L u − f, fixed per problem
        self.resample(seed)

    @classmethod
    def from_problem(
        cls,
        problem: Problem,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        **changes: object,
    ) -> Objective:
        """The objective with the point counts, sampler, seed and engine of the problem's
        ``train`` section (``changes`` override them, e.g. ``interior=4096``)."""
        tr = problem.train
        args: dict[str, object] = {
            **tr["points"],
            "sampler": tr["sampler"],
            "seed": tr["seed"],
            "engine": tr["engine"],
        }
        args.update(changes)
        return cls(problem, dtype=dtype, device=device, **args)  # type: ignore[arg-type]

    # ---------------------------------------------------------------- data
    def _tensor(self, a: np.ndarray) -> Tensor:
        return torch.as_tensor(a, dtype=self.dtype, device=self.device)

    def _data(self, expr: Expression, x: Tensor, normal: Tensor | None = None) -> Tensor:
        """Values of an expression (or, given ``normal``, its normal derivative n·∇) at
        points, detached."""
        field = expression_field(expr, self.variables)
        # data are computed in float64 for accuracy, then cast to the training dtype
        x64 = x.to(torch.float64)
        if normal is None:
            d = derivatives(field, x64, space_dim=self.domain.space_dim, create_graph=False)
            return d.u.to(self.dtype)
        d = derivatives(field, x64, space_dim=self.domain.space_dim, grad=True, create_graph=False)
        assert d.grad is not None
        return (d.grad * normal.to(torch.float64)).sum(1).to(self.dtype)

    def _finite(self, values: Tensor, x: Tensor, key: str) -> Tensor:
        """Refuse data that are NaN or infinite at some collocation point."""
        bad = ~torch.isfinite(values)
        if bool(bad.any()):
            first = x[bad.nonzero()[0, 0]].tolist()
            where = ", ".join(f"{v}={c:.6g}" for v, c in zip(self.variables, first))
            raise ProblemError(
                self.problem.origin,
                key,
                f"evaluates to a non-finite value at {int(bad.sum())} of {len(values)} "
                f"points (first at {where})",
            )
        return values

    def _source(self, x: Tensor) -> Tensor:
        p = self.problem
        if p.pde == "fit":
            assert p.exact is not None
            return self._data(p.exact, x)
        if p.source is not None:
            return self._data(p.source, x)
        assert p.exact is not None
        field = expression_field(p.exact, self.variables)
        d = derivatives(
            field,
            x.to(torch.float64),
            space_dim=self.domain.space_dim,
            create_graph=False,
            operator=self.operator,
        )
        return pde_residual(p, d, torch.zeros_like(d.u)).to(self.dtype)

    def resample(self, seed: int) -> None:
        """Draw collocation points and evaluate the data on them."""
        p, dom = self.problem, self.domain
        s = self.sampler
        self.x_interior = self._tensor(sample_interior(dom, self.counts["interior"], s, seed))
        key = "exact" if p.pde == "fit" or p.source is None else "source"
        self.f_interior = self._finite(self._source(self.x_interior), self.x_interior, key)

        self.dirichlet: list[tuple[Tensor, Tensor]] = []
        self.neumann: list[tuple[Tensor, Tensor, Tensor]] = []
        self.periodic: list[tuple[Tensor, Tensor, int]] = []
        faces = list(p.boundary)
        split = split_boundary_points(dom, faces, self.counts["boundary"]) if faces else {}
        for j, face in enumerate(faces):
            bc = p.boundary[face]
            if bc.type == "periodic":
                if not face.endswith("-"):
                    continue
                axis = dom.face_axis(face)
                n = split[face] + split[face[0] + "+"]
                x_lo = sample_face(dom, face, n, s, seed + 7919 * (j + 1))
                x_hi = x_lo.copy()
                x_hi[:, axis] = dom.box[axis][1]
                self.periodic.append((self._tensor(x_lo), self._tensor(x_hi), axis))
                continue
            x = self._tensor(sample_face(dom, face, split[face], s, seed + 7919 * (j + 1)))
            assert bc.value is not None
            key = f"boundary (face {face}).value"
            if bc.type == "dirichlet":
                self.dirichlet.append((x, self._finite(self._data(bc.value, x), x, key)))
            else:
                normal = self._tensor(np.tile(dom.face_normal(face), (len(x), 1)))
                g = self._data(bc.value, x, normal) if bc.from_exact else self._data(bc.value, x)
                self.neumann.append((x, normal, self._finite(g, x, key)))
        # Concatenate per type: fewer, larger forward passes.
        if self.dirichlet:
            self.dirichlet = [
                (
                    torch.cat([a for a, _ in self.dirichlet]),
                    torch.cat([b for _, b in self.dirichlet]),
                )
            ]
        if self.neumann:
            self.neumann = [tuple(torch.cat(list(z)) for z in zip(*self.neumann))]  # type: ignore[list-item]

        self.x_initial = None
        if p.pde == "heat":
            self.x_initial = self._tensor(sample_initial(dom, self.counts["initial"], s, seed + 1))
            assert p.initial is not None
            self.u_initial = self._finite(
                self._data(p.initial, self.x_initial), self.x_initial, "initial"
            )

    # ---------------------------------------------------------------- loss
    def terms(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """The mean-square loss terms of ``model`` on the current points."""
        p = self.problem
        sd = self.domain.space_dim
        d = derivatives(
            model, self.x_interior, space_dim=sd, engine=self.engine, operator=self.operator
        )
        out = {"pde": pde_residual(p, d, self.f_interior).square().mean()}
        if p.pde == "fit":
            return out
        residuals: list[Tensor] = []
        for x, g in self.dirichlet:
            residuals.append(derivatives(model, x, space_dim=sd).u - g)
        for x, normal, g in self.neumann:
            dn = derivatives(model, x, space_dim=sd, grad=True, engine=self.engine)
            assert dn.grad is not None
            residuals.append((dn.grad * normal).sum(1) - g)
        for x_lo, x_hi, axis in self.periodic:
            # both faces in one pass: rows [:m] on the lower face, [m:] on the upper
            m = len(x_lo)
            both = derivatives(
                model, torch.cat([x_lo, x_hi]), space_dim=sd, grad=True, engine=self.engine
            )
            assert both.grad is not None
            residuals.append(both.u[:m] - both.u[m:])
            residuals.append(both.grad[:m, axis] - both.grad[m:, axis])
        out["boundary"] = torch.cat(residuals).square().mean()
        if self.x_initial is not None:
            u0 = derivatives(model, self.x_initial, space_dim=sd).u
            out["initial"] = (u0 - self.u_initial).square().mean()
        return out
