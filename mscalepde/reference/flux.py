"""Finite differences in flux (conservative) form: the reference solver of the general
operator L u = [u_t] − ∇·(A ∇u) + r(X, u), A = a I or diag(a_1, …, a_d).

Grid (cell-centred, LeVeque 2007 §2.15; Patankar 1980 §4.2): each non-periodic axis
[a, b] is cut into m = n − 1 cells of width h = (b − a)/m, the unknowns sit at the cell
centres a + (j + ½)h and the cell faces are the grid planes a + jh. A periodic axis has its
m = n − 1 unknowns at a + jh (the faces half-way between). The equation integrated over a
cell C (volume V = Π h_i) is the flux balance

    Σ_faces F_face · |face| + V r(x_C, u_C) = V f(x_C),   F = −a_i ∂u/∂x_i · n_face,

and the flux through the face between centres p and q (along axis i) is the two-point flux
F = −a_face (u_q − u_p)/h_i with the **harmonic mean** a_face = 2 a_p a_q / (a_p + a_q)
of the axis-i diffusivity at the two centres. Why harmonic: a face flux is continuous,
so the two half-cells conduct in series, and the conductance of two resistors h/2a_p and
h/2a_q in series is exactly the harmonic mean (Patankar 1980 §4.2-3). For a smooth a it is
a(x_face) + O(h²), so the scheme is second order (LeVeque 2007 §2.15); for a
piecewise-constant a whose jumps lie on grid planes (cell faces, e.g. x = ½ when m is even)
it is the exact conductance of the face, and the scheme stays second order at the
interface, whereas the arithmetic mean degrades to first order.

Boundary faces (outward normal n, the face point x_b, a_b = a_i(x_b), the half-cell
conductance c = 2 a_half / h_i with a_half the harmonic mean of a_b and the adjacent
centre's a_i):

- Dirichlet u = g: F = −c (g − u_0) (the centre is h/2 from the face);
- Neumann ∂u/∂n = g: F = −a_b g (the flux is given);
- Robin ∂u/∂n + α u = g: the face value u_b is eliminated from the series balance
  c (u_b − u_0) = a_b (g − α u_b), which gives F = K (α u_0 − g), K = c a_b/(c + a_b α)
  (α = 0 is the Neumann row, α → ∞ with g = α g_D the Dirichlet row);
- periodic: the last and first cells are neighbours.

Every row is symmetric, so the matrix is symmetric positive (semi)definite; the system is
solved in the form (K/V) U + r(U) = f + β, β the boundary data term. The output grid of a
non-periodic axis is [a, centres, b] (n + 1 points); the face values are recovered from
the same series balance, u_b = (c u_0 + a_b g)/(c + a_b α) (Dirichlet: g), which is
second-order accurate; edges and corners take the face data of the later axis.

Reaction (semilinear r(x, u)): **Newton's method** on F(U) = A U + r(X, U) − f − β with
the Jacobian A + diag(∂r/∂u), ∂r/∂u by torch autograd of the reaction expression (float64;
the reaction is pointwise, so the gradient of Σ r is the diagonal), and a backtracking
line search (Armijo on ‖F‖₂, halving the step). Converged when the **relative residual**
‖F(U)‖_∞ / ‖f + β‖_∞ ≤ ``tol`` (1e-10 by default), or, when the line search can no longer
reduce ‖F‖, when it is at the rounding floor 64 ε (‖A‖_∞‖U‖_∞ + ‖f + β‖_∞).

Heat (method of lines): U' = −(A(t) U + r(X, t, U)) + f(t) + β(t), with A(t) assembled
at each time when a or α depends on t, integrated by Crank–Nicolson with Rannacher
start-up (four backward-Euler half steps) and a Newton iteration per step for a
semilinear r (one linear solve per step otherwise; factorisations are reused while the
Jacobian does not change), or by ``solve_ivp`` BDF with the sparse Jacobian.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mscalepde.errors import ReferenceSolveError
from mscalepde.reference.fd import AXIS_NAMES, time_levels

#: Largest number of unknowns solved by sparse LU (per space dimension); CG above.
FLUX_DIRECT_LIMIT = {1: 10_000_000, 2: 300_000, 3: 30_000}
METHOD_NAME = "fd-flux"
DESCRIPTION = "finite differences, flux form (harmonic means)"


@dataclass
class FluxAxis:
    """One axis: ``centres`` (the unknowns), ``nodes`` (the output coordinates)."""

    name: str
    lo: str
    hi: str
    a: float
    b: float
    h: float
    centres: np.ndarray
    nodes: np.ndarray

    @property
    def periodic(self) -> bool:
        return self.lo == "periodic"

    @property
    def m(self) -> int:
        return len(self.centres)

    @property
    def kind(self) -> str:
        return "periodic" if self.periodic else "uniform"


def flux_axis(name: str, n: int, a: float, b: float, lo: str, hi: str) -> FluxAxis:
    """The axis of n − 1 cells on [a, b] (module docstring)."""
    m = n - 1
    if m < 2:
        raise ReferenceSolveError(f"axis {name}: the flux-form solver needs at least 3 points")
    h = (b - a) / m
    if lo == "periodic":
        nodes = np.linspace(a, b, n)
        return FluxAxis(name, lo, hi, a, b, h, nodes[:-1].copy(), nodes)
    centres = a + (np.arange(m) + 0.5) * h
    nodes = np.concatenate([[a], centres, [b]])
    return FluxAxis(name, lo, hi, a, b, h, centres, nodes)


def _harmonic(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return 2.0 * p * q / (p + q)


def _slab(ndim: int, axis: int, index: Any) -> tuple[Any, ...]:
    out: list[Any] = [slice(None)] * ndim
    out[axis] = index
    return tuple(out)


@dataclass
class NewtonInfo:
    """Newton's iterations (summed over time steps for heat) and the worst final relative
    residual; ``floor``: some solve stopped at the rounding floor above ``tol``."""

    iterations: int = 0
    residual: float = 0.0
    solves: int = 0
    floor: bool = False
    steps: int = 0
    bdf: bool = False  # solve_ivp BDF: its own Newton iteration; ``solves`` = LU count

    def add(self, iterations: int, residual: float, floor: bool) -> None:
        self.iterations += iterations
        self.residual = max(self.residual, residual)
        self.floor = self.floor or floor
        self.steps += 1


@dataclass
class FluxSpace:
    """The flux-form discretisation of a problem's spatial operator on a tensor grid.

    ``data`` provides ``source(grids)``, ``face(face, grids)``, ``alpha(face, grids)``,
    ``initial(grids)``, ``exact(grids)`` and ``time_dependent_source`` (grids: the 1D
    coordinate arrays, plus the times last for heat), as :class:`mscalepde.reference.data._Data`.
    """

    problem: Any
    data: Any
    sizes: list[int]
    axes: list[FluxAxis] = field(init=False)

    def __post_init__(self) -> None:
        p = self.problem
        self.op = p.operator
        self.heat = p.pde == "heat"
        self.axes = []
        for i, (a, b) in enumerate(p.domain.box):
            name = AXIS_NAMES[i]
            lo, hi = p.boundary[f"{name}-"].type, p.boundary[f"{name}+"].type
            self.axes.append(flux_axis(name, self.sizes[i], a, b, lo, hi))
        self.dim = len(self.axes)
        self.shape = tuple(ax.m for ax in self.axes)
        self.full_shape = tuple(len(ax.nodes) for ax in self.axes)
        self.size = int(np.prod(self.shape))
        self.coords = [ax.centres for ax in self.axes]
        uses_t = {"t"} & set().union(*(e.variables for e in self.op.diffusivity))
        for bc in p.boundary.values():
            if bc.alpha is not None:
                uses_t |= {"t"} & set(bc.alpha.variables)
        self.time_dependent = self.heat and bool(uses_t)
        self._matrix: tuple[float | None, sp.csr_matrix] | None = None
        self._points: dict[float | None, Any] = {}

    # ------------------------------------------------------------ coefficients
    def _grids(self, coords: list[np.ndarray], t: float | None) -> list[np.ndarray]:
        return list(coords) + ([np.array([t], dtype=float)] if self.heat else [])

    def _squeeze(self, values: np.ndarray) -> np.ndarray:
        return values[..., 0] if self.heat else values

    def diffusivity(self, axis: int, coords: list[np.ndarray], t: float | None) -> np.ndarray:
        """a_axis on the tensor grid ``coords`` at time t, refused unless positive and finite."""
        k = axis if self.op.anisotropic else 0
        expr = self.op.diffusivity[k]
        grids = self._grids(coords, t)
        shape = tuple(len(g) for g in grids)
        env = {}
        for i, (v, g) in enumerate(zip(self.problem.variables, grids)):
            s = [1] * len(grids)
            s[i] = len(g)
            env[v] = np.asarray(g, dtype=float).reshape(s)
        values = np.broadcast_to(np.asarray(expr.numpy(env), dtype=float), shape)
        bad = ~(values > 0) | ~np.isfinite(values)
        if np.any(bad):
            idx = np.unravel_index(int(np.argmax(bad)), shape)
            where = ", ".join(
                f"{v}={grids[i][j]:.6g}"
                for i, (v, j) in enumerate(zip(self.problem.variables, idx))
            )
            key = f"diffusivity[{k}]" if self.op.anisotropic else "diffusivity"
            raise ReferenceSolveError(
                f"{self.problem.origin}: {key} must be positive and finite, but a = "
                f"{values[idx]:.6g} at {where}"
            )
        return self._squeeze(np.array(values))

    def _face_coords(self, axis: int, side: int, coords: list[np.ndarray]) -> list[np.ndarray]:
        out = list(coords)
        ax = self.axes[axis]
        out[axis] = np.array([ax.b if side else ax.a])
        return out

    def _face_terms(
        self, axis: int, side: int, coords: list[np.ndarray], a_in: np.ndarray, t: float | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
        """(c, a_b, α, type) of a boundary face on ``coords`` (axis ``axis`` of length 1):
        the half-cell conductance, the face diffusivity and Robin's α (0 for Neumann)."""
        ax = self.axes[axis]
        bc = self.problem.boundary[f"{ax.name}{'-+'[side]}"]
        fc = self._face_coords(axis, side, coords)
        a_b = self.diffusivity(axis, fc, t)
        c = 2.0 * _harmonic(a_b, a_in) / ax.h
        if bc.type == "robin":
            alpha = self._squeeze(self.data.alpha(bc.face, self._grids(fc, t)))
        else:
            alpha = np.zeros_like(a_b)
        return c, a_b, alpha, bc.type

    def _g(self, axis: int, side: int, coords: list[np.ndarray], t: float | None) -> np.ndarray:
        ax = self.axes[axis]
        face = f"{ax.name}{'-+'[side]}"
        grids = self._grids(self._face_coords(axis, side, coords), t)
        return self._squeeze(self.data.face(face, grids))

    # ------------------------------------------------------------ assembly
    def matrix(self, t: float | None = None) -> sp.csr_matrix:
        """A = K/V at time t: the symmetric flux-balance matrix (module docstring)."""
        key = t if self.time_dependent else None
        if self._matrix is not None and self._matrix[0] == key:
            return self._matrix[1]
        idx = np.arange(self.size).reshape(self.shape)
        rows, cols, vals = [], [], []
        diag = np.zeros(self.shape)
        d = self.dim
        for i, ax in enumerate(self.axes):
            a_c = self.diffusivity(i, self.coords, t)
            pairs = [(_slab(d, i, slice(None, -1)), _slab(d, i, slice(1, None)))]
            if ax.periodic:
                pairs.append((_slab(d, i, slice(-1, None)), _slab(d, i, slice(0, 1))))
            for sp_, sq in pairs:
                T = _harmonic(a_c[sp_], a_c[sq]) / ax.h**2
                p, q = idx[sp_].ravel(), idx[sq].ravel()
                diag[sp_] += T
                diag[sq] += T
                rows += [p, q]
                cols += [q, p]
                vals += [-T.ravel(), -T.ravel()]
            if ax.periodic:
                continue
            for side in (0, 1):
                s = _slab(d, i, slice(-1, None) if side else slice(0, 1))
                c, a_b, alpha, kind = self._face_terms(i, side, self.coords, a_c[s], t)
                if kind == "dirichlet":
                    diag[s] += c / ax.h
                elif kind == "robin":
                    diag[s] += c * a_b / (c + a_b * alpha) * alpha / ax.h
        rows.append(idx.ravel())
        cols.append(idx.ravel())
        vals.append(diag.ravel())
        A = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.size, self.size),
        )
        self._matrix = (key, A)
        return A

    def boundary_rhs(self, t: float | None = None) -> np.ndarray:
        """β(t): the boundary data's term of the right-hand side (flattened)."""
        out = np.zeros(self.shape)
        d = self.dim
        for i, ax in enumerate(self.axes):
            if ax.periodic:
                continue
            for side in (0, 1):
                s = _slab(d, i, slice(-1, None) if side else slice(0, 1))
                coords = list(self.coords)
                coords[i] = coords[i][s[i]]
                a_in = self.diffusivity(i, coords, t)
                c, a_b, alpha, kind = self._face_terms(i, side, coords, a_in, t)
                g = self._g(i, side, coords, t)
                if kind == "dirichlet":
                    out[s] += c * g / ax.h
                else:
                    out[s] += c * a_b / (c + a_b * alpha) * g / ax.h
        return out.ravel()

    def source(self, ts: np.ndarray | None = None) -> np.ndarray:
        """f at the centres, (size,) or (size, len(ts)) for heat."""
        grids = list(self.coords) + ([np.asarray(ts, dtype=float)] if self.heat else [])
        f = self.data.source(grids)
        return f.reshape(self.size, -1) if self.heat else f.ravel()

    # ------------------------------------------------------------ reaction
    def reaction(self, U: np.ndarray, t: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """r(X, U) and ∂r/∂u at the centres (torch autograd, float64)."""
        import torch

        if t not in self._points:
            from mscalepde.geometry import grid_points

            pts = grid_points(self._grids(self.coords, t))
            if len(self._points) > 4:
                self._points.clear()
            self._points[t] = torch.as_tensor(pts, dtype=torch.float64)
        x = self._points[t]
        with torch.enable_grad():
            u = torch.as_tensor(U, dtype=torch.float64).clone().requires_grad_(True)
            r = self.op.reaction_values(x, u)
            if r.requires_grad:
                (dr,) = torch.autograd.grad(r.sum(), u)
            else:
                dr = torch.zeros_like(u)
        r_np, dr_np = r.detach().numpy().copy(), dr.numpy().copy()
        if not (np.all(np.isfinite(r_np)) and np.all(np.isfinite(dr_np))):
            raise ReferenceSolveError(
                f"{self.problem.origin}: reaction evaluates to a non-finite value "
                "on the reference grid (Newton diverged?)"
            )
        return r_np, dr_np

    @property
    def has_reaction(self) -> bool:
        return self.op.reaction is not None

    @property
    def singular(self) -> bool:
        """Poisson with only Neumann/periodic faces and no reaction in u: u up to a constant
        (:mod:`mscalepde.problem.solvability`; a reaction r(x) is a source)."""
        return (
            not self.heat
            and self.op.shift_invariant
            and all(
                ax.lo in ("neumann", "periodic") and ax.hi in ("neumann", "periodic")
                for ax in self.axes
            )
        )

    # ------------------------------------------------------------ output grid
    def recover(self, U: np.ndarray, t: float | None = None) -> np.ndarray:
        """u on the output grid (face values from the boundary conditions, axis by axis)."""
        U = U.reshape(self.shape)
        coords = list(self.coords)
        for i, ax in enumerate(self.axes):
            if ax.periodic:
                U = np.concatenate([U, U[_slab(self.dim, i, slice(0, 1))]], axis=i)
            else:
                parts = []
                for side in (0, 1):
                    s = _slab(self.dim, i, slice(-1, None) if side else slice(0, 1))
                    inner = list(coords)
                    inner[i] = inner[i][s[i]]
                    a_in = self.diffusivity(i, inner, t)
                    c, a_b, alpha, kind = self._face_terms(i, side, inner, a_in, t)
                    g = self._g(i, side, inner, t)
                    if kind == "dirichlet":
                        parts.append(np.broadcast_to(g, U[s].shape))
                    else:
                        parts.append((c * U[s] + a_b * g) / (c + a_b * alpha))
                U = np.concatenate([parts[0], U, parts[1]], axis=i)
            coords[i] = ax.nodes
        return U

    def fix_constant(self, U: np.ndarray) -> np.ndarray:
        """The singular case: shift U so that its mean over the centres (midpoint rule)
        equals the mean of ``exact`` there, else zero."""
        target = 0.0
        if self.problem.exact is not None:
            target = float(np.mean(self.data.exact(list(self.coords))))
        return U + (target - float(np.mean(U)))


# --------------------------------------------------------------------------- linear systems


class _Linear:
    """Solves J x = b: sparse LU (``direct``) or Jacobi-preconditioned CG (BiCGSTAB when J
    is not known to be positive definite); ``bordered`` adds the zero-mean constraint."""

    def __init__(
        self, J: sp.csr_matrix, kind: str, tol: float, spd: bool = True, bordered: bool = False
    ) -> None:
        self.kind, self.tol, self.spd, self.bordered = kind, tol, spd, bordered
        self.n = J.shape[0]
        if kind == "direct":
            if bordered:
                e = sp.csr_matrix(np.ones((self.n, 1)))
                J = sp.bmat([[J, e], [e.T, None]], format="csc")
            try:
                self.lu = spla.splu(sp.csc_matrix(J))
            except RuntimeError as exc:
                raise ReferenceSolveError(f"flux-form solver: singular matrix ({exc})") from None
        else:
            self.J = J
            d = J.diagonal()
            self.M = sp.diags(1.0 / np.where(d != 0, d, 1.0))
        self.iterations = 0

    def solve(self, b: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        if self.kind == "direct":
            if self.bordered:
                return self.lu.solve(np.append(b, 0.0))[:-1]
            return self.lu.solve(b)
        if self.bordered:
            b = b - b.mean()
        count = [0]

        def cb(_: Any) -> None:
            count[0] += 1

        method = spla.cg if self.spd else spla.bicgstab
        x, info = method(
            self.J, b, x0=x0, rtol=self.tol, atol=0.0, M=self.M, maxiter=20 * self.n, callback=cb
        )
        self.iterations += count[0]
        if info != 0:
            raise ReferenceSolveError(f"flux-form solver: iterative solve failed (info {info})")
        return x - x.mean() if self.bordered else x


def _solver_kind(space: FluxSpace, solver: str) -> str:
    if solver == "fast":
        raise ReferenceSolveError(
            "solver fast needs a constant-coefficient Laplacian; the flux-form solver "
            "uses direct or cg"
        )
    if solver == "auto":
        return "direct" if space.size <= FLUX_DIRECT_LIMIT[space.dim] else "cg"
    return solver


def newton(
    residual: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    jacobian: Callable[[np.ndarray], sp.csr_matrix],
    linear: Callable[[sp.csr_matrix, np.ndarray], _Linear],
    U0: np.ndarray,
    scale: float,
    norm_a: float,
    tol: float,
    max_iter: int = 50,
) -> tuple[np.ndarray, int, float, bool]:
    """Damped Newton for F(U) = 0 (module docstring).

    ``residual(U)`` returns (F(U), ∂r/∂u(U)); ``jacobian(dr)`` the sparse Jacobian;
    ``linear(J, dr)`` a solver (reused while dr does not change). Returns (U, iterations,
    relative residual ‖F‖_∞/scale, stopped at the rounding floor)."""
    U = U0
    F, dr = residual(U)
    scale = scale if scale > 0 else 1.0
    solver: _Linear | None = None
    last_dr: np.ndarray | None = None
    for it in range(max_iter + 1):
        res = float(np.max(np.abs(F))) / scale if F.size else 0.0
        if res <= tol:
            return U, it, res, False
        if it == max_iter:
            break
        if solver is None or last_dr is None or not np.array_equal(dr, last_dr):
            solver = linear(jacobian(dr), dr)
            last_dr = dr
        step = solver.solve(-F)
        norm = float(np.linalg.norm(F))
        lam = 1.0
        while True:
            U_try = U + lam * step
            F_try, dr_try = residual(U_try)
            if np.linalg.norm(F_try) <= (1.0 - 1e-4 * lam) * norm:
                break
            lam *= 0.5
            if lam < 2.0**-30:
                floor = 64 * np.finfo(float).eps * (norm_a * np.max(np.abs(U)) + scale)
                if np.max(np.abs(F)) <= floor:
                    return U, it, res, True
                raise ReferenceSolveError(
                    f"Newton: the line search failed at iteration {it + 1} "
                    f"(relative residual {res:.2e})"
                )
        U, F, dr = U_try, F_try, dr_try
    raise ReferenceSolveError(
        f"Newton did not converge in {max_iter} iterations (residual {res:.2e})"
    )


# --------------------------------------------------------------------------- Poisson


def solve_poisson(space: FluxSpace, settings: Mapping[str, Any]) -> tuple[np.ndarray, NewtonInfo]:
    """u on the output grid of −∇·(A∇u) + r(x, u) = f, and Newton's record."""
    A = space.matrix()
    b = space.source() + space.boundary_rhs()
    kind = _solver_kind(space, settings["solver"])
    tol = settings["tol"]
    info = NewtonInfo()
    if not space.has_reaction or space.singular:
        if space.has_reaction:  # r(x) without u (singular: no reaction in u): a source
            b = b - space.reaction(np.zeros(space.size))[0]
        lin = _Linear(A, kind, min(tol, 1e-12), bordered=space.singular)
        U = lin.solve(b)
        if space.singular:
            U = space.fix_constant(U)
        scale = float(np.max(np.abs(b))) or 1.0
        info.add(1, float(np.max(np.abs(A @ U - b))) / scale if not space.singular else 0.0, False)
        info.solves = 1
        return space.recover(U), info

    def residual(U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r, dr = space.reaction(U)
        return A @ U + r - b, dr

    def linear(J: sp.csr_matrix, dr: np.ndarray) -> _Linear:
        info.solves += 1
        return _Linear(J, kind, min(tol, 1e-12) * 1e-2, spd=bool(np.all(dr >= 0)))

    U, its, res, floor = newton(
        residual,
        lambda dr: (A + sp.diags(dr)).tocsr(),
        linear,
        np.zeros(space.size),
        float(np.max(np.abs(b))),
        float(abs(A).sum(axis=1).max()),
        tol,
    )
    info.add(its, res, floor)
    return space.recover(U), info


# --------------------------------------------------------------------------- heat


def _forcing(space: FluxSpace, ts: list[float], block: int) -> Iterator[np.ndarray]:
    """f(t) at the centres for each t of ``ts`` in order (evaluated block by block)."""
    static = None if space.data.time_dependent_source else space.source(np.array(ts[:1]))[:, 0]
    for s in range(0, len(ts), block):
        chunk = ts[s : s + block]
        if static is not None:
            for _ in chunk:
                yield static
        else:
            f = space.source(np.array(chunk))
            for j in range(len(chunk)):
                yield f[:, j]


def solve_heat(
    space: FluxSpace,
    nt: int,
    time_method: str,
    settings: Mapping[str, Any],
    nstore: int | None = None,
) -> tuple[np.ndarray, np.ndarray, NewtonInfo]:
    """(times, u on the output grid × stored times, Newton's record) of
    u_t − ∇·(A∇u) + r = f by the method of lines (module docstring)."""
    p = space.problem
    t0, t1 = p.domain.time
    U0 = space.data.initial(space._grids(space.coords, t0))[..., 0].ravel()
    u0_full = space.data.initial(space._grids([ax.nodes for ax in space.axes], t0))[..., 0]
    if time_method == "bdf":
        times = np.linspace(t0, t1, (nstore or min(nt, 128)) + 1)
        levels, info = _heat_bdf(space, U0, times, settings["tol"])
    elif time_method == "cn":
        times, levels, info = _heat_cn(space, U0, nt, settings, nstore)
    else:
        raise ReferenceSolveError(
            f"time_method {time_method} needs a constant-coefficient operator; "
            "the flux-form solver uses cn or bdf"
        )
    out = np.empty(space.full_shape + (len(times),))
    out[..., 0] = u0_full
    for j in range(1, len(times)):
        out[..., j] = space.recover(levels[j], float(times[j]))
    return np.asarray(times), out, info


def _heat_cn(
    space: FluxSpace,
    U0: np.ndarray,
    nt: int,
    settings: Mapping[str, Any],
    nstore: int | None,
) -> tuple[np.ndarray, list[np.ndarray], NewtonInfo]:
    """Crank–Nicolson (θ = ½) with Rannacher start-up (backward-Euler half steps, θ = 1)."""
    t0, t1 = space.problem.domain.time
    nt, stride = time_levels(nt, nstore)
    dt = (t1 - t0) / nt
    tol = settings["tol"]
    kind = _solver_kind(space, settings["solver"])
    startup = min(int(settings.get("_startup", 2)), nt)
    linear = not space.has_reaction or space.op.linear
    info = NewtonInfo()
    cache: dict[str, Any] = {}

    def operator(U: np.ndarray, t: float, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A(t)U + r(t, U) − f − β(t) and ∂r/∂u."""
        out = space.matrix(t) @ U - f - space.boundary_rhs(t)
        if not space.has_reaction:
            return out, np.zeros(0)
        r, dr = space.reaction(U, t)
        return out + r, dr

    def solver(t: float, k: float, dr: np.ndarray) -> _Linear:
        key = (t if space.time_dependent else None, k)
        if cache.get("key") == key and np.array_equal(cache.get("dr"), dr):
            return cache["solver"]
        J = sp.identity(space.size, format="csr") + k * space.matrix(t)
        if dr.size:
            J = J + k * sp.diags(dr)
        s = _Linear(J.tocsr(), kind, min(tol, 1e-12), spd=bool(np.all(dr >= 0)))
        info.solves += 1
        cache.update(key=key, dr=dr, solver=s)
        return s

    def step(U: np.ndarray, E: np.ndarray, t: float, h: float, theta: float, f: np.ndarray):
        """U_new with (U_new − U)/h + θ G(U_new, t) + (1 − θ) E = 0, G = A U + r − f − β."""
        k = theta * h
        explicit = U - (1.0 - theta) * h * E if theta < 1.0 else U

        def residual(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            G, dr = operator(V, t, f)
            return V + k * G - explicit, dr

        def jac(dr: np.ndarray) -> sp.csr_matrix:
            J = sp.identity(space.size, format="csr") + k * space.matrix(t)
            return (J + k * sp.diags(dr)).tocsr() if dr.size else J.tocsr()

        if linear:
            dr = space.reaction(U, t)[1] if space.has_reaction else np.zeros(0)
            V = solver(t, k, dr).solve(explicit - k * (operator(np.zeros_like(U), t, f)[0]), U)
            info.add(1, 0.0, False)
        else:
            scale = float(np.max(np.abs(explicit)) + k * np.max(np.abs(f)))
            norm_a = 1.0 + k * float(abs(space.matrix(t)).sum(axis=1).max())
            V, its, res, floor = newton(
                residual,
                jac,
                lambda J, dr: solver(t, k, dr),
                U,
                scale,
                norm_a,
                tol,
            )
            info.add(its, res, floor)
        return V, operator(V, t, f)[0]

    needed = [t0 + j * dt / 2 for j in range(1, 2 * startup + 1)]
    needed += [t0 + k * dt for k in range(startup, nt + 1)]
    block = max(1, int(4e6 // max(1, space.size)))
    forcing = _forcing(space, needed, block)
    times, levels = [t0], [U0]
    U = U0
    for s in range(startup):  # Rannacher: backward-Euler half steps
        for half in (1, 2):
            t = t0 + (2 * s + half) * dt / 2
            U, _ = step(U, U, t, dt / 2, 1.0, next(forcing))
        if (s + 1) % stride == 0:
            times.append(t0 + (s + 1) * dt)
            levels.append(U)
    E = operator(U, t0 + startup * dt, next(forcing))[0]
    for s in range(startup, nt):
        t = t0 + (s + 1) * dt
        U, E = step(U, E, t, dt, 0.5, next(forcing))
        if (s + 1) % stride == 0:
            times.append(t)
            levels.append(U)
    times[-1] = t1
    return np.array(times), levels, info


def _heat_bdf(
    space: FluxSpace, U0: np.ndarray, times: np.ndarray, tol: float
) -> tuple[list[np.ndarray], NewtonInfo]:
    """``solve_ivp`` BDF with the sparse Jacobian −(A(t) + diag ∂r/∂u)."""
    from scipy.integrate import solve_ivp

    info = NewtonInfo()

    def fun(t: float, y: np.ndarray) -> np.ndarray:
        f = space.source(np.array([t]))[:, 0]
        out = f + space.boundary_rhs(t) - space.matrix(t) @ y
        if space.has_reaction:
            out = out - space.reaction(y, t)[0]
        return out

    def jac(t: float, y: np.ndarray) -> sp.csc_matrix:
        J = -space.matrix(t)
        if space.has_reaction:
            J = J - sp.diags(space.reaction(y, t)[1])
        return sp.csc_matrix(J)

    scale = max(float(np.max(np.abs(U0))), 1.0)
    sol = solve_ivp(
        fun,
        (times[0], times[-1]),
        U0,
        method="BDF",
        t_eval=times,
        jac=jac,
        rtol=max(tol, 1e-13),
        atol=max(tol, 1e-13) * scale,
    )
    if not sol.success:
        raise ReferenceSolveError(f"solve_ivp (BDF) failed: {sol.message}")
    info.bdf = True
    info.solves = int(sol.nlu)
    return [sol.y[:, j] for j in range(len(times))], info


def describe(info: NewtonInfo, reaction: bool, heat: bool) -> str:
    """The solver line of a flux-form reference."""
    text = DESCRIPTION
    if heat:
        text += ", method of lines"
    if info.bdf:
        return text + f", solve_ivp BDF ({info.solves} LU factorisations)"
    if reaction:
        per = f" over {info.steps} implicit steps" if heat else ""
        its = f"{info.iterations} iteration" + ("" if info.iterations == 1 else "s")
        text += f", Newton {its}{per} (residual {info.residual:.1e}"
        text += ", rounding floor)" if info.floor else ")"
    return text
