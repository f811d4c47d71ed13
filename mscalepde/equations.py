"""Residuals, the collocation loss and the Ritz energy of a problem (physics-informed
training).

For a network u_θ and collocation points sampled by :mod:`mscalepde.geometry`, with the
problem's operator L u = [u_t] − ∇·(a∇u) + r(x, [t,] u) (:mod:`mscalepde.calculus.operators`):

- interior residual r = L u_θ − f (``poisson``, ``heat``), r = u_θ − u* (``fit``, the
  target u* = ``exact``);
- boundary residuals: Dirichlet u_θ − g, Neumann n·∇u_θ − g, Robin n·∇u_θ + α u_θ − g
  (outward normal n), periodic [u_θ(p) − u_θ(p + L_i e_i), ∂_i u_θ(p) − ∂_i u_θ(p + L_i e_i)]
  on the pair of faces of axis i (value and normal derivative must match);
- initial residual u_θ(x, t0) − u_0(x) (``heat``).

The loss terms are mean squares, L_pde = mean(r²), L_boundary = mean over all boundary
residuals, L_initial = mean(r_0²) (Raissi, Perdikaris, Karniadakis 2019); the trainer
forms L = w_pde L_pde + w_boundary L_boundary + w_initial L_initial.

**Gauge.** A problem known only up to a constant (``problem.gauge``: only Neumann and
periodic faces, no reaction in u; :mod:`mscalepde.problem.solvability`) adds the term
L_gauge = (Σ_i w_i u_θ(x_i) − ū)², weight 1, on fixed quadrature points of Ω
(:func:`~mscalepde.problem.solvability.gauge_rule`, weights summing to one): ū = 0, or
ū = Σ_i w_i u*(x_i) with ``exact``, so that ∫(u_θ − u*) vanishes up to the quadrature
error of the difference. The other terms do not see the constant (they hold derivatives of
u only), so the gauge fixes it without competing with them; it is one more residual row
for the Gauss–Newton phase, and one more curvature row for the Ritz energy's.

``train.loss: ritz`` replaces them by the Deep Ritz energy (E & Yu 2018; the loss of the
MscaleDNN papers, Liu, Cai, Xu 2020), for ``poisson`` only:

  L_pde = ∫_Ω ½ Σ_i a_i (∂_i u)² + R(x, u) − f u dx
          − Σ_Neumann ∫ a_n g u ds + Σ_Robin ∫ a_n (α u²/2 − g u) ds,
  L_boundary = Σ_Dirichlet ∫ (u − g)² ds   (the penalty; its weight w_boundary is β),

R(x, u) = ∫_0^u r(x, s) ds and a_n the diffusivity entry of the face's normal axis (the
conormal flux n·(A∇u) = a_n ∂u/∂n: the weak form of −∇·(A∇u) with ∂u/∂n = g gives the
boundary term −∫ a_n g v). Integrals are Monte Carlo / quasi-Monte Carlo quadratures on
the sampled points: |Ω| mean over the interior points, |face| mean over each face's points.
The minimiser of the energy over H¹ (with u = g imposed exactly) is the weak solution; the
penalty makes the Dirichlet condition hold approximately (error O(1/β)). The energy weighs
an error mode of wavenumber k by k², the residual by k⁴.

The residuals are kept as :class:`ResidualBlock` s (one per kind of condition), so that the
Gauss–Newton phase (:mod:`mscalepde.training.gauss_newton`) sees the same residual vector, row by
row, as the mean-square terms are built from.

Data derived from ``exact`` is computed by the same derivative code as the network's:
``source: auto`` is f = L u* for every operator, a Neumann ``value: exact`` is n·∇u*, a
Robin one n·∇u* + α u*. The diffusivity is checked positive on every sampled point.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from mscalepde.calculus.derivatives import Derivatives, Field, derivatives
from mscalepde.calculus.jet import LinearTape, Operator
from mscalepde.calculus.operators import PDEOperator
from mscalepde.errors import ProblemError
from mscalepde.expressions.expression import Expression
from mscalepde.geometry import Domain, sample_face, split_boundary_points
from mscalepde.geometry.box import opposite_face
from mscalepde.geometry.sampling import sample_boundary, sample_initial, sample_interior
from mscalepde.problem.model import Problem
from mscalepde.problem.solvability import GAUGE_POINTS, gauge_rule


def expression_field(expr: Expression, variables: Sequence[str]) -> Field:
    """The expression as a torch field of the input rows X (columns = ``variables``)."""
    names = list(variables)

    def field(x: Tensor) -> Tensor:
        return expr.torch({v: x[:, i] for i, v in enumerate(names)})

    return field


def residual_operator(problem: Problem) -> Operator | None:
    """The constant-coefficient stream operator of the interior residual of a problem whose
    diffusivity is constant: −Δ (Poisson), ∂_t − κΔ (heat), −Σ_i a_i ∂_ii (anisotropic);
    None for ``fit`` (r = u − u*) and for a variable diffusivity."""
    return None if problem.operator is None else problem.operator.stream_operator()


def pde_residual(problem: Problem, d: Derivatives, f: Tensor) -> Tensor:
    """Interior residual r = L u − f of a problem with a constant diffusivity and no
    reaction, from the network's derivatives ``d`` (computed with
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
    phase build per-row Jacobians from one backward pass
    (:class:`~mscalepde.calculus.jet.LinearTape`).

    With ``reduce`` (weights w over the points of the one set) the block is a single row
    per quantity, r_k = Σ_i w_i q_k(X_i) − data_k[0]: the gauge Σ w_i u_θ(x_i) − ū of a
    problem known up to a constant (:meth:`Objective.gauge_block`). The Gauss–Newton phase
    sums that row's Jacobian chunk by chunk of points
    (:func:`~mscalepde.training.gauss_newton.reduced_rows`).
    """

    term: str
    points: tuple[Tensor, ...]
    signs: tuple[float, ...]
    select: Callable[[Derivatives, tuple[Tensor, ...]], list[Tensor]]
    data: tuple[Tensor, ...]
    grad: bool = False
    operator: Operator | None = None
    space_dim: int = 1
    aux: tuple[Tensor, ...] = ()  # per-point data ``select`` reads (one point set only)
    ut: bool = False
    lap: bool = False
    second: bool = False
    reduce: Tensor | None = None  # weights of a one-row block (the gauge)
    #: per-point data computed on every pass from the points of ``rows`` (an inverse
    #: problem's coefficients, which depend on trainable unknowns), appended to ``aux``;
    #: what it computes from parameters must be recorded on the tape it is given
    live: Callable[[Tensor, tuple[Tensor, ...], LinearTape | None], tuple[Tensor, ...]] | None = (
        None  # called as live(points of ``rows``, aux of ``rows``, tape)
    )

    @property
    def size(self) -> int:
        """Points per set, n."""
        return len(self.points[0])

    @property
    def rows(self) -> int:
        """Residual rows, (number of quantities) × n (one per quantity with ``reduce``)."""
        return len(self.data) * (1 if self.reduce is not None else self.size)

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
            ut=self.ut,
            lap=self.lap,
            second=self.second,
            operator=self.operator,
            engine=engine,
            tape=tape,
        )
        aux = tuple(a[rows] for a in self.aux)
        if self.live is not None:
            aux = aux + self.live(x, aux, tape)
        return self.select(d, aux)

    def combine(self, stacked: Tensor, rows: slice = slice(None)) -> Tensor:
        """Σ_j sign_j of the per-set rows of ``stacked`` (leading axis = sets × points);
        with ``reduce``, the one row Σ_i w_i stacked_i (``rows``: the points summed)."""
        if self.reduce is not None:
            w = self.reduce[rows].to(stacked.dtype)
            return torch.tensordot(w, stacked, dims=1).unsqueeze(0)
        n = len(stacked) // len(self.signs)
        out = stacked[:n] if self.signs[0] == 1.0 else self.signs[0] * stacked[:n]
        for j in range(1, len(self.signs)):
            out = out + self.signs[j] * stacked[j * n : (j + 1) * n]
        return out

    def residuals(
        self, model: Callable[[Tensor], Tensor], rows: slice = slice(None), *, engine: str = "auto"
    ) -> list[Tensor]:
        """The residual vectors r_k on ``rows`` (one per quantity)."""
        if self.reduce is not None:  # one row: every point (``rows`` is ignored)
            qs = self.quantities(model, engine=engine)
            return [self.combine(q) - g for q, g in zip(qs, self.data, strict=True)]
        qs = self.quantities(model, rows, engine=engine)
        return [self.combine(q) - g[rows] for q, g in zip(qs, self.data, strict=True)]


class BoundaryData(NamedTuple):
    """The sampled points of one kind of boundary condition (all faces of that kind): the
    points, outward normals, quadrature weights |face| / n_face, the data g, the conormal
    factor a_n (diffusivity of the face's normal axis) and Robin's α (None otherwise)."""

    x: Tensor
    normal: Tensor
    weight: Tensor
    g: Tensor
    conormal: Tensor
    alpha: Tensor | None = None


def _join(sets: list[BoundaryData]) -> list[BoundaryData]:
    """One set per kind (fewer, larger forward passes)."""
    if len(sets) <= 1:
        return sets
    cols = list(zip(*sets))
    return [BoundaryData(*(None if c[0] is None else torch.cat(list(c)) for c in cols))]


def _value(d: Derivatives, aux: tuple[Tensor, ...] = ()) -> list[Tensor]:
    return [d.u]


def _operator(d: Derivatives, aux: tuple[Tensor, ...] = ()) -> list[Tensor]:
    assert d.op is not None
    return [d.op]


def _normal_derivative(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
    """n·∇u (aux = (normals,))."""
    assert d.grad is not None
    return [(d.grad * aux[0]).sum(1)]


def _robin(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
    """n·∇u + α u (aux = (normals, α))."""
    assert d.grad is not None
    return [(d.grad * aux[0]).sum(1) + aux[1] * d.u]


def _scaled_value(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
    """c u (aux = (c,))."""
    return [d.u * aux[0]]


def _reaction_slope(op: PDEOperator, x: Tensor, u: Tensor) -> Tensor:
    """max(∂r/∂u, 0) at the points (detached; by autograd of the expression)."""
    with torch.enable_grad():
        u0 = u.detach().requires_grad_(True)
        (slope,) = torch.autograd.grad(op.reaction_values(x, u0).sum(), u0, allow_unused=True)
    return torch.zeros_like(u0) if slope is None else slope.detach().clamp_min(0.0)


def _value_and_slope(axis: int) -> Callable[[Derivatives, tuple[Tensor, ...]], list[Tensor]]:
    """u and ∂_axis u (the two quantities a periodic pair must match)."""

    def select(d: Derivatives, aux: tuple[Tensor, ...] = ()) -> list[Tensor]:
        assert d.grad is not None
        return [d.u, d.grad[:, axis]]

    return select


def _apply_operator(op: PDEOperator) -> Callable[[Derivatives, tuple[Tensor, ...]], list[Tensor]]:
    """L u from the derivatives (aux = (points, coefficients))."""

    def select(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
        return [op.apply(d, aux[0], aux[1])]

    return select


def interior_derivatives(
    op: PDEOperator,
    field: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    engine: str = "auto",
    create_graph: bool = True,
) -> Derivatives:
    """The derivatives of ``field`` that L u needs, at ``x`` (:meth:`PDEOperator.plan`)."""
    plan = op.plan()
    return derivatives(
        field,
        x,
        space_dim=op.space_dim,
        grad=plan.grad,
        ut=plan.ut,
        lap=plan.lap,
        second=plan.second,
        operator=plan.operator,
        engine=engine,
        create_graph=create_graph,
    )


def exact_source(op: PDEOperator, field: Field, x64: Tensor) -> Tensor:
    """``source: auto``: f = L u* of the exact solution (as a ``field``,
    :func:`expression_field`) at float64 points, detached, by the training derivative
    path."""
    d = interior_derivatives(op, field, x64, create_graph=False)
    return op.apply(d, x64, op.coefficients(x64)).detach()


def source_values(problem: Problem, x: Tensor) -> Tensor:
    """The data f of the interior equation L u = f at points ``x`` (N, D), in float64,
    detached: the ``source`` expression, or f = L u* with ``source: auto``; for ``fit``
    the target u* itself."""
    x64 = x.detach().to(torch.float64)
    if problem.pde == "fit" or problem.source is None:
        assert problem.exact is not None
        field = expression_field(problem.exact, problem.variables)
        if problem.pde == "fit":
            return field(x64).reshape(-1)
        assert problem.operator is not None
        return exact_source(problem.operator, field, x64).reshape(-1)
    return expression_field(problem.source, problem.variables)(x64).reshape(-1)


def residual_at(problem: Problem, model: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """The pointwise PDE residual r(X) = L u_θ(X) − f(X) (N,) at any points ``x``, in the
    model's precision, detached; for ``fit`` r = u_θ − u*. This is the interior residual
    the loss squares (docs/design.md §6), evaluated where the user asks (export, figures)."""
    if problem.pde == "fit":
        u = model(x).reshape(-1)
        return (u - source_values(problem, x).to(u.dtype)).detach()
    op = problem.operator
    assert op is not None
    d = interior_derivatives(op, model, x, create_graph=False)
    lu = op.apply(d, x, op.coefficients(x)).reshape(-1)
    return (lu - source_values(problem, x).to(lu.dtype)).detach()


def exact_data(
    op: PDEOperator | None,
    exact: Expression,
    variables: Sequence[str],
    points: np.ndarray,
    space_dim: int,
    *,
    gradient: bool,
    chunk: int = 1 << 17,
) -> np.ndarray:
    """L u* (N,) or the spatial gradient ∇u* (N, space_dim) of ``exact`` at numpy points,
    float64, in chunks: the data the reference solvers derive from ``exact``."""
    field = expression_field(exact, variables)
    out = np.empty((len(points), space_dim) if gradient else len(points))
    for s in range(0, len(points), chunk):
        x = torch.as_tensor(points[s : s + chunk], dtype=torch.float64)
        if gradient:
            d = derivatives(field, x, space_dim=space_dim, grad=True, create_graph=False)
            assert d.grad is not None
            out[s : s + chunk] = d.grad.detach().numpy()
        else:
            assert op is not None
            out[s : s + chunk] = exact_source(op, field, x).numpy()
    return out


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
        self.operator = residual_operator(problem)  # the constant-coefficient stream, if any
        self.pde: PDEOperator | None = problem.operator
        self.ritz = problem.train.get("loss") == "ritz"
        self.seed = seed
        self._gauge_rule: tuple[np.ndarray, np.ndarray] | None = None
        if problem.gauge is not None:  # fixed quadrature points (module docstring)
            self._gauge_rule = gauge_rule(self.domain, min(interior, GAUGE_POINTS))
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
        return source_values(self.problem, x).to(self.dtype)

    def _coefficients(self, x: Tensor) -> Tensor:
        """The diffusivity data at points (:meth:`PDEOperator.coefficients`), refused where
        a is not positive or not finite."""
        assert self.pde is not None
        c = self.pde.coefficients(x)
        for k in range(c.shape[1]):
            key = "diffusivity" if c.shape[1] == 1 else f"diffusivity[{k}]"
            a = self._finite(c[:, k, 0], x, key)
            bad = ~(a > 0)
            if bool(bad.any()):
                i = int(bad.nonzero()[0, 0])
                where = ", ".join(f"{v}={c:.6g}" for v, c in zip(self.variables, x[i].tolist()))
                raise ProblemError(
                    self.problem.origin,
                    key,
                    f"must be positive, but a = {float(a[i]):.6g} at {where} "
                    f"({int(bad.sum())} of {len(a)} sampled points)",
                )
        return c

    def drawn(self, seed: int) -> Objective:
        """A copy on the points of ``seed`` (this one keeps its own: ``resample`` assigns new
        tensors, it never writes into the old ones)."""
        other = copy.copy(self)
        other.resample(seed)
        return other

    def resample(self, seed: int) -> None:
        """Draw collocation points and evaluate the data on them."""
        self.seed = seed
        p, dom = self.problem, self.domain
        s = self.sampler
        self.x_interior = self._tensor(sample_interior(dom, self.counts["interior"], s, seed))
        key = "exact" if p.pde == "fit" or p.source is None else "source"
        self.f_interior = self._finite(self._source(self.x_interior), self.x_interior, key)
        self.c_interior = self._coefficients(self.x_interior) if self.pde is not None else None

        # per kind: points, normals, quadrature weights |face| / n, data, α
        self.dirichlet: list[BoundaryData] = []
        self.neumann: list[BoundaryData] = []
        self.robin: list[BoundaryData] = []
        self.periodic: list[tuple[Tensor, Tensor, int]] = []
        self.face_rows: dict[str, list[tuple[str, int]]] = {}  # per kind: (face, rows), in order
        faces = list(p.boundary)
        split = split_boundary_points(dom, faces, self.counts["boundary"]) if faces else {}
        for j, face in enumerate(faces):
            bc = p.boundary[face]
            if bc.type == "periodic":
                if not face.endswith("-"):
                    continue
                axis = dom.face_axis(face)
                n = split[face] + split[opposite_face(face)]
                x_lo = sample_face(dom, face, n, s, seed + 7919 * (j + 1))
                x_hi = x_lo.copy()
                x_hi[:, axis] = dom.box[axis][1]
                self.periodic.append((self._tensor(x_lo), self._tensor(x_hi), axis))
                continue
            xs, ns = sample_boundary(dom, face, split[face], s, seed + 7919 * (j + 1))
            x, normal = self._tensor(xs), self._tensor(ns)
            self.face_rows.setdefault(bc.type, []).append((face, len(x)))
            assert bc.value is not None
            key = f"boundary (face {face}).value"
            weight = torch.full_like(x[:, 0], dom.face_measure(face) / len(x))
            # a shape's parts are oblique: only an isotropic a enters (validation refuses
            # ritz with an anisotropic a on a shape), and its conormal factor is axis 0's
            axis = dom.face_axis(face) if dom.is_box else 0
            # the conormal factor a_n of the face (Ritz's natural boundary terms)
            assert self.pde is not None
            a_n = self.pde.conormal_factor(x, self._coefficients(x), axis)
            if bc.type == "dirichlet":
                g = self._finite(self._data(bc.value, x), x, key)
                self.dirichlet.append(BoundaryData(x, normal, weight, g, a_n))
                continue
            g = self._data(bc.value, x, normal) if bc.from_exact else self._data(bc.value, x)
            if bc.type == "neumann":
                self.neumann.append(BoundaryData(x, normal, weight, self._finite(g, x, key), a_n))
                continue
            assert bc.alpha is not None
            alpha = self._finite(self._data(bc.alpha, x), x, f"boundary (face {face}).alpha")
            if bc.from_exact:  # g = n·∇u* + α u*
                g = g + alpha * self._data(bc.value, x)
            self.robin.append(BoundaryData(x, normal, weight, self._finite(g, x, key), a_n, alpha))
        self.dirichlet, self.neumann = _join(self.dirichlet), _join(self.neumann)
        self.robin = _join(self.robin)

        self.x_initial = None
        if p.pde == "heat":
            self.x_initial = self._tensor(sample_initial(dom, self.counts["initial"], s, seed + 1))
            assert p.initial is not None
            self.u_initial = self._finite(
                self._data(p.initial, self.x_initial), self.x_initial, "initial"
            )
        self.gauge = self._gauge_block()
        self._blocks = self._build_blocks()

    def _gauge_block(self, curvature: bool = False) -> ResidualBlock | None:
        """The gauge row Σ w_i u_θ(x_i) − ū of a problem known up to a constant (module
        docstring), None for the others; with ``curvature`` its data are zero (the Ritz
        energy's curvature row)."""
        if self._gauge_rule is None:
            return None
        pts, w = self._gauge_rule
        x = self._tensor(pts)
        target = torch.zeros(1, dtype=self.dtype, device=self.device)
        if self.problem.exact is not None and not curvature:
            u = expression_field(self.problem.exact, self.variables)(x.to(torch.float64))
            u = self._finite(u.reshape(-1).expand(len(x)), x, "exact")
            target = (torch.as_tensor(w, dtype=torch.float64, device=self.device) * u).sum()
            target = target.reshape(1).to(self.dtype)
        weights = torch.as_tensor(w, dtype=self.dtype, device=self.device)
        return ResidualBlock(
            "gauge", (x,), (1.0,), _value, (target,), space_dim=self.domain.space_dim,
            reduce=weights,
        )

    # ---------------------------------------------------------------- loss
    def blocks(self) -> list[ResidualBlock]:
        """The residual rows of every condition on the current points, term by term: the
        interior (``pde``), Dirichlet, Neumann, Robin, periodic value and periodic
        derivative rows (``boundary``), the initial rows (``initial``). Built once per draw
        of points."""
        return self._blocks

    def _interior_block(self) -> ResidualBlock:
        sd = self.domain.space_dim
        assert self.pde is not None and self.c_interior is not None
        if self.pde.plain:  # the classical case: one stream, nothing else per point
            return ResidualBlock(
                "pde",
                (self.x_interior,),
                (1.0,),
                _operator,
                (self.f_interior,),
                operator=self.operator,
                space_dim=sd,
            )
        plan = self.pde.plan()
        return ResidualBlock(
            "pde",
            (self.x_interior,),
            (1.0,),
            _apply_operator(self.pde),
            (self.f_interior,),
            grad=plan.grad,
            operator=plan.operator,
            space_dim=sd,
            aux=(self.x_interior, self.c_interior),
            ut=plan.ut,
            lap=plan.lap,
            second=plan.second,
        )

    def _build_blocks(self) -> list[ResidualBlock]:
        p = self.problem
        sd = self.domain.space_dim
        if p.pde == "fit":
            return [ResidualBlock("pde", (self.x_interior,), (1.0,), _value, (self.f_interior,))]
        out = [self._interior_block()]
        for b in self.dirichlet:
            out.append(ResidualBlock("boundary", (b.x,), (1.0,), _value, (b.g,), space_dim=sd))
        for b in self.neumann:
            out.append(
                ResidualBlock(
                    "boundary",
                    (b.x,),
                    (1.0,),
                    _normal_derivative,
                    (b.g,),
                    grad=True,
                    space_dim=sd,
                    aux=(b.normal,),
                )
            )
        for b in self.robin:
            assert b.alpha is not None
            out.append(
                ResidualBlock(
                    "boundary",
                    (b.x,),
                    (1.0,),
                    _robin,
                    (b.g,),
                    grad=True,
                    space_dim=sd,
                    aux=(b.normal, b.alpha),
                )
            )
        for x_lo, x_hi, axis in self.periodic:
            # u and ∂_axis u must match on the two faces: both in one pass of both faces
            zero = torch.zeros(len(x_lo), dtype=x_lo.dtype, device=x_lo.device)
            out.append(
                ResidualBlock(
                    "boundary",
                    (x_lo, x_hi),
                    (1.0, -1.0),
                    _value_and_slope(axis),
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
        if self.gauge is not None:
            out.append(self.gauge)
        return out

    def curvature_blocks(self) -> list[ResidualBlock]:
        """Rows whose Gram matrix Σ_k w_k J_kᵀJ_k is half the Gauss–Newton Hessian of the
        weighted Ritz energy (the Gauss–Newton phase's matrix for ``loss: ritz``):

        - interior: √(|Ω| a_i / 2N) ∂_i u per axis, and √(|Ω| max(r′(u), 0) / 2N) u with a
          reaction (∂²/∂u² of R is r′; a decreasing r contributes no curvature);
        - Dirichlet penalty Σ w_b (u − g)²: √w_b u;
        - Robin Σ w_b a_n (α u²/2 − g u): √(w_b a_n max(α, 0) / 2) u;
        - the gauge (Σ w_i u(x_i) − ū)²: the row Σ w_i u(x_i) (module docstring).

        The energy is quadratic in (∇u, u) without a reaction, so these rows give its exact
        Hessian in function space restricted to the network's tangent space: the step is
        energy natural gradient descent for the Ritz energy (Müller & Zeinhofer 2023)."""
        assert self.ritz and self.pde is not None and self.c_interior is not None
        pde, sd = self.pde, self.domain.space_dim
        n = len(self.x_interior)
        q = self.domain.volume / (2.0 * n)
        if pde.constant:
            a = torch.tensor(pde.constants(), dtype=self.dtype, device=self.device)
            a = a.expand(n, sd)
        elif pde.anisotropic:
            a = self.c_interior[:, :, 0]
        else:
            a = self.c_interior[:, :1, 0].expand(n, sd)
        root = (q * a).sqrt()
        zero = torch.zeros(n, dtype=self.dtype, device=self.device)
        quantities = sd + (1 if pde.reaction is not None else 0)

        def interior(d: Derivatives, aux: tuple[Tensor, ...]) -> list[Tensor]:
            assert d.grad is not None
            out = [d.grad[:, i] * aux[1][:, i] for i in range(sd)]
            if pde.reaction is not None:
                out.append(d.u * (q * _reaction_slope(pde, aux[0], d.u)).sqrt())
            return out

        blocks = [
            ResidualBlock(
                "pde", (self.x_interior,), (1.0,), interior, (zero,) * quantities, grad=True,
                space_dim=sd, aux=(self.x_interior, root),
            )
        ]
        for b in self.dirichlet:
            blocks.append(
                ResidualBlock(
                    "boundary", (b.x,), (1.0,), _scaled_value, (torch.zeros_like(b.g),),
                    space_dim=sd, aux=(b.weight.sqrt(),),
                )
            )
        for b in self.robin:
            assert b.alpha is not None
            scale = (0.5 * b.weight * b.conormal * b.alpha.clamp_min(0.0)).sqrt()
            blocks.append(
                ResidualBlock(
                    "pde", (b.x,), (1.0,), _scaled_value, (torch.zeros_like(b.g),),
                    space_dim=sd, aux=(scale,),
                )
            )
        gauge = self._gauge_block(curvature=True)
        if gauge is not None:
            blocks.append(gauge)
        return blocks

    def residuals(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """Every term's residual vector (rows of its blocks, concatenated)."""
        parts: dict[str, list[Tensor]] = {}
        for block in self.blocks():
            parts.setdefault(block.term, []).extend(block.residuals(model, engine=self.engine))
        return {k: v[0] if len(v) == 1 else torch.cat(v) for k, v in parts.items()}

    def terms(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """The loss terms of ``model`` on the current points: mean squares of the residuals,
        or the Ritz energy and the Dirichlet penalty (``train.loss: ritz``)."""
        if self.ritz:
            return self.ritz_terms(model)
        return {k: r.square().mean() for k, r in self.residuals(model).items()}

    def ritz_terms(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """``{'pde': energy, 'boundary': Dirichlet penalty}`` (module docstring)."""
        assert self.pde is not None and self.c_interior is not None
        sd = self.domain.space_dim
        x = self.x_interior
        d = derivatives(model, x, space_dim=sd, grad=True, engine=self.engine)
        density = self.pde.energy_density(d, x, self.c_interior) - self.f_interior * d.u
        energy = density.mean() * self.domain.volume
        for b in self.neumann:
            u = derivatives(model, b.x, space_dim=sd, engine=self.engine).u
            energy = energy - (b.weight * b.conormal * b.g * u).sum()
        for b in self.robin:
            u = derivatives(model, b.x, space_dim=sd, engine=self.engine).u
            energy = energy + (b.weight * b.conormal * (0.5 * b.alpha * u.square() - b.g * u)).sum()
        out = {"pde": energy}
        for b in self.dirichlet:
            u = derivatives(model, b.x, space_dim=sd, engine=self.engine).u
            out["boundary"] = (b.weight * (u - b.g).square()).sum()
        if self.gauge is not None:
            out["gauge"] = self.gauge.residuals(model, engine=self.engine)[0].square().sum()
        return out
