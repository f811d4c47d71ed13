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

The residuals are kept as :class:`ResidualBlock` s (one per kind of condition), so that the
Gauss–Newton phase (:mod:`mscalepde.gauss_newton`) sees the same residual vector, row by
row, as the mean-square terms are built from.

Data derived from ``exact`` is computed by the same derivative engine as the network's:
``source: auto`` is f = −Δu* (Poisson) or ∂_t u* − κ Δu* (heat), a Neumann ``value: exact``
is n·∇u*.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .derivatives import Derivatives, Field, derivatives
from .errors import ProblemError
from .expressions import Expression
from .geometry import Domain, sample_face, sample_initial, sample_interior, split_boundary_points
from .jet import LinearTape, Operator
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


@dataclass
class ResidualBlock:
    """Residual rows of one kind of condition, belonging to the loss term ``term``.

    Row i of residual k is r_{k,i} = Σ_j sign_j q_k(X_{j,i}) − data_k[i], where the X_j are
    the point sets in ``points`` (all of the same length n: one set for most conditions;
    the lower and upper faces, signs +1 and −1, for a periodic pair) and q_k is the k-th
    quantity ``select`` takes from the derivatives of u_θ at a point (u, n·∇u, L u, …).
    Every q_k(X_{j,i}) depends on its own point only, which is what lets the Gauss–Newton
    phase build per-row Jacobians from one backward pass (:class:`~mscalepde.jet.LinearTape`).
    """

    term: str
    points: tuple[Tensor, ...]
    signs: tuple[float, ...]
    select: Callable[[Derivatives], list[Tensor]]
    data: tuple[Tensor, ...]
    grad: bool = False
    operator: Operator | None = None
    space_dim: int = 1

    @property
    def size(self) -> int:
        """Points per set, n."""
        return len(self.points[0])

    @property
    def rows(self) -> int:
        """Residual rows, (number of quantities) × n."""
        return len(self.data) * self.size

    def quantities(
        self,
        model: Callable[[Tensor], Tensor],
        rows: slice = slice(None),
        *,
        engine: str = "auto",
        tape: LinearTape | None = None,
    ) -> list[Tensor]:
        """q_k at every point set stacked: a list (one per quantity) of tensors of length
        (number of sets) × (points in ``rows``), set after set. One derivative pass."""
        x = self.points[0][rows]
        if len(self.points) > 1:
            x = torch.cat([p[rows] for p in self.points])
        d = derivatives(
            model,
            x,
            space_dim=self.space_dim,
            grad=self.grad,
            operator=self.operator,
            engine=engine,
            tape=tape,
        )
        return self.select(d)

    def combine(self, stacked: Tensor, rows: slice = slice(None)) -> Tensor:
        """Σ_j sign_j of the per-set rows of ``stacked`` (leading axis = sets × points)."""
        n = len(stacked) // len(self.signs)
        out = stacked[:n] if self.signs[0] == 1.0 else self.signs[0] * stacked[:n]
        for j in range(1, len(self.signs)):
            out = out + self.signs[j] * stacked[j * n : (j + 1) * n]
        return out

    def residuals(
        self, model: Callable[[Tensor], Tensor], rows: slice = slice(None), *, engine: str = "auto"
    ) -> list[Tensor]:
        """The residual vectors r_k on ``rows`` (one per quantity)."""
        qs = self.quantities(model, rows, engine=engine)
        return [self.combine(q) - g[rows] for q, g in zip(qs, self.data, strict=True)]


def _value(d: Derivatives) -> list[Tensor]:
    return [d.u]


def _operator(d: Derivatives) -> list[Tensor]:
    assert d.op is not None
    return [d.op]


class Objective:
    """Collocation points, their data, and the loss terms of a problem.

    ``terms(model)`` returns ``{'pde': L_pde, 'boundary': L_b, 'initial': L_0}`` (only the
    terms the problem has), each the mean square of its :meth:`blocks`' residual rows.
    ``resample(seed)`` draws new points (same counts); ``set_dtype`` recomputes the points
    and data of the last draw in another precision (the Gauss–Newton phase's float64).
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
        self.seed = seed
        self.resample(seed)

    def set_dtype(self, dtype: torch.dtype) -> None:
        """Draw the last points again (same seed) with their data in ``dtype``."""
        if dtype != self.dtype:
            self.dtype = dtype
            self.resample(self.seed)

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
        self.seed = seed
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
        self._blocks = self._build_blocks()

    # ---------------------------------------------------------------- loss
    def blocks(self) -> list[ResidualBlock]:
        """The residual rows of every condition on the current points, term by term: the
        interior (``pde``), Dirichlet, Neumann, periodic value and periodic derivative rows
        (``boundary``), the initial rows (``initial``). Built once per draw of points."""
        return self._blocks

    def _build_blocks(self) -> list[ResidualBlock]:
        p = self.problem
        sd = self.domain.space_dim
        if p.pde == "fit":
            return [ResidualBlock("pde", (self.x_interior,), (1.0,), _value, (self.f_interior,))]
        out = [
            ResidualBlock(
                "pde",
                (self.x_interior,),
                (1.0,),
                _operator,
                (self.f_interior,),
                operator=self.operator,
                space_dim=sd,
            )
        ]
        for x, g in self.dirichlet:
            out.append(ResidualBlock("boundary", (x,), (1.0,), _value, (g,), space_dim=sd))
        for x, normal, g in self.neumann:

            def normal_derivative(d: Derivatives, normal: Tensor = normal) -> list[Tensor]:
                assert d.grad is not None
                return [(d.grad * normal).sum(1)]

            out.append(
                ResidualBlock(
                    "boundary", (x,), (1.0,), normal_derivative, (g,), grad=True, space_dim=sd
                )
            )
        for x_lo, x_hi, axis in self.periodic:
            # u and ∂_axis u must match on the two faces: both in one pass of both faces

            def value_and_slope(d: Derivatives, axis: int = axis) -> list[Tensor]:
                assert d.grad is not None
                return [d.u, d.grad[:, axis]]

            zero = torch.zeros(len(x_lo), dtype=x_lo.dtype, device=x_lo.device)
            out.append(
                ResidualBlock(
                    "boundary",
                    (x_lo, x_hi),
                    (1.0, -1.0),
                    value_and_slope,
                    (zero, zero),
                    grad=True,
                    space_dim=sd,
                )
            )
        if self.x_initial is not None:
            out.append(
                ResidualBlock(
                    "initial", (self.x_initial,), (1.0,), _value, (self.u_initial,), space_dim=sd
                )
            )
        return out

    def residuals(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """Every term's residual vector (rows of its blocks, concatenated)."""
        parts: dict[str, list[Tensor]] = {}
        for block in self.blocks():
            parts.setdefault(block.term, []).extend(block.residuals(model, engine=self.engine))
        return {k: v[0] if len(v) == 1 else torch.cat(v) for k, v in parts.items()}

    def terms(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """The mean-square loss terms of ``model`` on the current points."""
        return {k: r.square().mean() for k, r in self.residuals(model).items()}
