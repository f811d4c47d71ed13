"""Finite differences, and the tensor-grid machinery shared by both reference methods.

This module holds the one-dimensional finite-difference axes, the per-axis record
(:class:`Axis1D`) that the spectral axes of :mod:`mscalepde.reference.collocation` fill in
too, the Kronecker-sum operator on a tensor grid (:class:`SpaceProblem`), its linear
solvers (:class:`LinearSolver`: sparse LU, Jacobi-preconditioned CG, or fast
diagonalisation :class:`Diagonalised`) and the time integrators of the heat equation
(:func:`heat_cn`, :func:`heat_bdf`, :func:`heat_chebyshev`). The user-facing API is
:mod:`mscalepde.reference`.

Every axis of a box is discretised on its own; :mod:`mscalepde.reference` combines the
axes into the Kronecker sum L = Σ_i I ⊗ … ⊗ A_i ⊗ … ⊗ I, which discretises −Δ on the
unknown nodes of the tensor grid. An axis is an :class:`Axis1D`:

- ``nodes``: the output nodes (both endpoints, also on periodic axes);
- ``unknown``: indices (into ``nodes``) of the unknowns;
- ``A``: −d²/dx² on the unknowns, with the boundary conditions built in;
- ``C``: the lift of the boundary data: the equations read A u = f + C[:, 0] g_lo + C[:, 1] g_hi;
- ``P``, ``R``: recovery of all nodes, u_nodes = P u + R [g_lo, g_hi];
- ``w``: weights that make diag(w) A symmetric (FD with Neumann ends), else ones.

Finite differences (second order, uniform grid of n points, h = L/(n − 1)):

- interior: (−u_{j−1} + 2u_j − u_{j+1}) / h²;
- Dirichlet u = g: the boundary node is not an unknown; its value g enters the neighbour's
  equation (C = 1/h²);
- Neumann n·u' = g (outward normal): **ghost point** of a centred difference,
  u_{−1} = u_1 + 2h g at x = a and u_{n} = u_{n−2} + 2h g at x = b, so the equation at the
  boundary node is (2u_0 − 2u_1)/h² = f_0 + 2g/h (second order; the row is symmetrised
  by the weight 1/2, the "half cell");
- periodic: n − 1 unknowns (x = b repeats x = a), circulant stencil.

Symmetry: with W = ⊗ diag(w_i), W·L is symmetric (positive definite unless every axis is
Neumann–Neumann or periodic, where its null space is the constants), which is what CG
and the generalised symmetric eigenproblems of the fast diagonalisation use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from mscalepde.errors import ReferenceSolveError
from mscalepde.reference.nodes import cheb_d1, cheb_nodes

AXIS_NAMES = ("x", "y", "z")
DIRECT_LIMIT = {1: 10_000_000, 2: 20_000, 3: 8_000}
MAX_STORED_LEVELS = 129


@dataclass
class Axis1D:
    """One discretised axis (see the module docstring)."""

    name: str
    kind: str  # uniform | periodic (FD) | chebyshev | fourier (spectral)
    nodes: np.ndarray
    unknown: np.ndarray
    A: np.ndarray | sp.spmatrix
    C: np.ndarray
    P: np.ndarray | sp.spmatrix
    R: np.ndarray
    bc: tuple[str, str]
    quad: np.ndarray  # quadrature weights on ``nodes`` (zero mean, constant fixing)
    singular: bool = False  # A has the constants as null space
    symmetric: bool = False  # diag(w) A is symmetric
    w: np.ndarray = field(default_factory=lambda: np.ones(0))

    def __post_init__(self) -> None:
        if self.w.size == 0:
            self.w = np.ones(len(self.unknown))

    @property
    def n(self) -> int:
        return len(self.nodes)

    @property
    def m(self) -> int:
        return len(self.unknown)

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.A)

    def dense_A(self) -> np.ndarray:
        return self.A.toarray() if sp.issparse(self.A) else np.asarray(self.A)


def fd_axis(name: str, n: int, a: float, b: float, lo: str, hi: str) -> Axis1D:
    """A second-order FD axis of n points; ``lo``/``hi`` in dirichlet|neumann|periodic."""
    if lo == "periodic" or hi == "periodic":
        return _periodic_axis(name, n, a, b)
    if n < 3:
        raise ValueError("a finite-difference axis needs at least 3 points")
    x = np.linspace(a, b, n)
    h = (b - a) / (n - 1)
    first = 1 if lo == "dirichlet" else 0
    last = n - 2 if hi == "dirichlet" else n - 1
    unknown = np.arange(first, last + 1)
    m = len(unknown)
    main = np.full(m, 2.0)
    upper = np.full(m - 1, -1.0)
    lower = np.full(m - 1, -1.0)
    C = np.zeros((m, 2))
    w = np.ones(m)
    if lo == "dirichlet":
        C[0, 0] = 1.0 / h**2
    else:  # ghost point: row 0 is (2u_0 - 2u_1)/h^2
        upper[0] = -2.0
        C[0, 0] = 2.0 / h
        w[0] = 0.5
    if hi == "dirichlet":
        C[-1, 1] = 1.0 / h**2
    else:
        lower[-1] = -2.0
        C[-1, 1] = 2.0 / h
        w[-1] = 0.5
    A = sp.diags([lower, main, upper], [-1, 0, 1], format="csr") / h**2
    P = sp.csr_matrix((np.ones(m), (unknown, np.arange(m))), shape=(n, m))
    R = np.zeros((n, 2))
    if lo == "dirichlet":
        R[0, 0] = 1.0
    if hi == "dirichlet":
        R[-1, 1] = 1.0
    quad = np.full(n, h)
    quad[0] = quad[-1] = h / 2
    return Axis1D(
        name=name,
        kind="uniform",
        nodes=x,
        unknown=unknown,
        A=A,
        C=C,
        P=P,
        R=R,
        bc=(lo, hi),
        quad=quad,
        singular=(lo == "neumann" and hi == "neumann"),
        symmetric=True,
        w=w,
    )


def _periodic_axis(name: str, n: int, a: float, b: float) -> Axis1D:
    m = n - 1
    if m < 3:
        raise ValueError("a periodic finite-difference axis needs at least 4 points")
    x = np.linspace(a, b, n)
    h = (b - a) / m
    A = (
        sp.diags(
            [np.full(m, 2.0), np.full(m - 1, -1.0), np.full(m - 1, -1.0), [-1.0], [-1.0]],
            [0, 1, -1, m - 1, -(m - 1)],
            format="csr",
        )
        / h**2
    )
    rows = np.append(np.arange(m), m)
    cols = np.append(np.arange(m), 0)
    P = sp.csr_matrix((np.ones(n), (rows, cols)), shape=(n, m))
    quad = np.full(n, h)
    quad[-1] = 0.0
    return Axis1D(
        name=name,
        kind="periodic",
        nodes=x,
        unknown=np.arange(m),
        A=A,
        C=np.zeros((m, 2)),
        P=P,
        R=np.zeros((n, 2)),
        bc=("periodic", "periodic"),
        quad=quad,
        singular=True,
        symmetric=True,
    )


# --------------------------------------------------------------------------- assembly


def kron_sum(axes: list[Axis1D], scale: float = 1.0, shift: float = 0.0) -> sp.csr_matrix:
    """W (shift I + scale Σ_i A_i), sparse and symmetric, with W = ⊗ diag(w_i)."""
    mats = [sp.csr_matrix(ax.A) for ax in axes]
    eyes = [sp.identity(ax.m, format="csr") for ax in axes]
    total = None
    for i in range(len(axes)):
        term = None
        for j in range(len(axes)):
            f = mats[j] if i == j else eyes[j]
            term = f if term is None else sp.kron(term, f, format="csr")
        total = term if total is None else total + term
    assert total is not None
    L = scale * total
    if shift:
        L = L + shift * sp.identity(L.shape[0], format="csr")
    return (sp.diags(weights(axes)) @ L).tocsr()


def weights(axes: list[Axis1D]) -> np.ndarray:
    """The diagonal of W = ⊗ diag(w_i) (C order)."""
    w = np.ones(1)
    for ax in axes:
        w = np.kron(w, ax.w)
    return w


# --------------------------------------------------------------------------- operators


def mode_product(M: Any, U: np.ndarray, axis: int) -> np.ndarray:
    """The mode-``axis`` product M ×_axis U."""
    V = np.moveaxis(U, axis, 0)
    shape = V.shape
    out = M @ V.reshape(shape[0], -1)
    out = np.asarray(out).reshape((M.shape[0],) + shape[1:])
    return np.moveaxis(out, 0, axis)


def mode_products(mats: list[Any], U: np.ndarray) -> np.ndarray:
    for i, M in enumerate(mats):
        U = mode_product(M, U, i)
    return U


class Diagonalised:
    """Fast diagonalisation of shift·I + scale·Σ_i A_i (Kronecker sum)."""

    def __init__(self, axes: list[Axis1D]) -> None:
        self.V: list[np.ndarray] = []
        self.Vinv: list[np.ndarray] = []
        lams = []
        for ax in axes:
            A = ax.dense_A()
            if ax.symmetric:
                Aw = ax.w[:, None] * A
                lam, V = scipy.linalg.eigh(0.5 * (Aw + Aw.T), np.diag(ax.w))
                Vinv = V.T * ax.w[None, :]
            else:
                lam, V = scipy.linalg.eig(A)
                if np.max(np.abs(lam.imag)) <= 1e-9 * np.max(np.abs(lam)):
                    lam, V = lam.real, V.real
                Vinv = np.linalg.inv(V)
            if ax.singular:
                lam = lam.copy()
                lam[np.argmin(np.abs(lam))] = 0.0
            self.V.append(V)
            self.Vinv.append(Vinv)
            lams.append(lam)
        total = np.zeros(())
        for i, lam in enumerate(lams):
            shape = [1] * len(lams)
            shape[i] = len(lam)
            total = total + lam.reshape(shape)
        self.lam = total
        self.complex = np.iscomplexobj(total)

    def forward(self, U: np.ndarray) -> np.ndarray:
        return mode_products(self.Vinv, U)

    def backward(self, W: np.ndarray) -> np.ndarray:
        out = mode_products(self.V, W)
        return out.real if np.iscomplexobj(out) else out

    def solve(self, rhs: np.ndarray, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
        den = shift + scale * self.lam
        W = self.forward(rhs)
        zero = den == 0
        W = np.where(zero, 0.0, W / np.where(zero, 1.0, den))
        return self.backward(W)


class LinearSolver:
    """Solves (shift·I + scale·L) U = rhs on the unknowns of ``space``."""

    def __init__(
        self,
        space: SpaceProblem,
        solver: str,
        scale: float = 1.0,
        shift: float = 0.0,
        tol: float = 1e-10,
    ) -> None:
        self.space, self.scale, self.shift, self.tol = space, scale, shift, tol
        n_unknowns = int(np.prod(space.shape))
        dim = len(space.axes)
        spectral = any(ax.kind in ("chebyshev", "fourier") for ax in space.axes)
        if solver == "auto":
            solver = "fast" if spectral or n_unknowns > DIRECT_LIMIT[dim] else "direct"
        if spectral and solver != "fast":
            solver = "fast"  # dense spectral operators: diagonalisation only
        self.kind = solver
        self.singular = shift == 0.0 and space.singular
        self.iterations = 0
        if solver == "fast":
            self.diag = Diagonalised(space.axes)
            return
        S = kron_sum(space.axes, scale, shift)
        self.w = weights(space.axes)
        if solver == "direct":
            if self.singular:  # bordered system [S e; e^T 0]
                e = np.ones((S.shape[0], 1))
                S = sp.bmat([[S, sp.csr_matrix(e)], [sp.csr_matrix(e.T), None]])
            self.lu = spla.splu(S.tocsc())
        elif solver == "cg":
            self.S = S
            d = S.diagonal()
            self.M = sp.diags(1.0 / d)
        else:
            raise ReferenceSolveError(f"unknown solver '{solver}'")

    def solve(self, rhs: np.ndarray, x0: np.ndarray | None = None) -> np.ndarray:
        shape = rhs.shape
        if self.kind == "fast":
            U = self.diag.solve(rhs, self.scale, self.shift)
            for _ in range(2):  # iterative refinement (eigenvector conditioning)
                res = rhs - (self.shift * U + self.scale * self.space.apply(U))
                U = U + self.diag.solve(res, self.scale, self.shift)
            return U
        b = self.w * rhs.ravel()
        if self.kind == "direct":
            if self.singular:
                return self.lu.solve(np.append(b, 0.0))[:-1].reshape(shape)
            return self.lu.solve(b).reshape(shape)
        if self.singular:
            b = b - b.mean()
        count = [0]

        def cb(_: np.ndarray) -> None:
            count[0] += 1

        x, info = spla.cg(
            self.S,
            b,
            x0=None if x0 is None else x0.ravel(),
            rtol=self.tol,
            M=self.M,
            maxiter=max(1000, 200 * max(shape)),
            callback=cb,
        )
        self.iterations += count[0]
        if info > 0:
            raise ReferenceSolveError(f"cg did not converge in {info} iterations")
        return x.reshape(shape)


class SpaceProblem:
    """The spatial problem on the unknowns of a tensor grid of axes."""

    def __init__(self, axes: list[Axis1D], data: Any, box: tuple[tuple[float, float], ...]):
        self.axes = axes
        self.data = data
        self.box = box
        self.shape = tuple(ax.m for ax in axes)
        self.full_shape = tuple(ax.n for ax in axes)
        self.coords = [ax.nodes[ax.unknown] for ax in axes]
        self.heat = data.heat

    def apply(self, U: np.ndarray) -> np.ndarray:
        out = np.zeros_like(U)
        for i, ax in enumerate(self.axes):
            out += mode_product(ax.A, U, i)
        return out

    def _face(
        self, i: int, side: int, coords: list[np.ndarray], ts: np.ndarray | None
    ) -> np.ndarray:
        """Face data on ``coords`` (axis i: length 1) [× times ``ts``, last axis]."""
        face = f"{AXIS_NAMES[i]}{'-+'[side]}"
        grids = list(coords)
        grids[i] = np.array([self.box[i][side]])
        if self.heat:
            grids.append(np.asarray(ts, dtype=float))
        return self.data.face(face, grids)

    def lift(self, ts: np.ndarray | None = None) -> np.ndarray:
        """Σ_i C_i g_i on the unknowns [× times ``ts``, last axis]."""
        extra = (len(ts),) if self.heat else ()
        out = np.zeros(self.shape + extra)
        for i, ax in enumerate(self.axes):
            for side, c in _boundary_columns(ax, ax.C):
                g = self._face(i, side, self.coords, ts)  # axis i has length 1
                shape = [1] * (len(self.axes) + len(extra))
                shape[i] = ax.m
                out += c.reshape(shape) * g
        return out

    def source(self, ts: np.ndarray | None = None) -> np.ndarray:
        grids = list(self.coords) + ([np.asarray(ts, dtype=float)] if self.heat else [])
        return self.data.source(grids)

    def recover(self, U: np.ndarray, t: float | None = None) -> np.ndarray:
        """All nodes from the unknowns (axis by axis; data of later axes win at corners)."""
        coords = list(self.coords)
        for i, ax in enumerate(self.axes):
            U = mode_product(ax.P, U, i)
            coords[i] = ax.nodes
            for side, r in _boundary_columns(ax, ax.R):
                g = self._face(i, side, coords, None if t is None else np.array([t]))
                if self.heat:
                    g = g[..., 0]
                shape = [1] * len(self.axes)
                shape[i] = ax.n
                U = U + r.reshape(shape) * g
        return U

    @property
    def singular(self) -> bool:
        return all(ax.singular for ax in self.axes)


def _boundary_columns(ax: Axis1D, matrix: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(side, column) of ``matrix`` (C: lifting, R: recovery) for each face of a
    non-periodic axis whose column is not zero (a face with boundary data to apply)."""
    if ax.bc[0] == "periodic":
        return []
    return [(side, matrix[:, side]) for side in (0, 1) if np.any(matrix[:, side])]


def time_levels(nt: int, nstore: int | None) -> tuple[int, int]:
    nstore = min(nt, MAX_STORED_LEVELS - 1) if nstore is None else nstore
    stride = math.ceil(nt / nstore)
    return stride * nstore, stride


class Forcing:
    """r(t) = f(t) + κ Σ_i C_i g_i(t) on the unknowns, evaluated for many times at once
    (one batched call of the expression or autograd path per block of times)."""

    def __init__(self, space: SpaceProblem, kappa: float, t0: float) -> None:
        self.space, self.kappa = space, kappa
        self.static_f = None
        if not space.data.time_dependent_source:
            self.static_f = space.source(np.array([t0]))
        self.block = max(1, int(4e6 // max(1, int(np.prod(space.shape)))))

    def many(self, ts: np.ndarray) -> np.ndarray:
        ts = np.asarray(ts, dtype=float)
        f = self.static_f if self.static_f is not None else self.space.source(ts)
        return f + self.kappa * self.space.lift(ts)

    def __call__(self, t: float) -> np.ndarray:
        return self.many(np.array([t]))[..., 0]

    def stream(self, ts: list[float]):
        """r(t) for each t of ``ts`` in order, computed block by block."""
        for s in range(0, len(ts), self.block):
            chunk = self.many(np.array(ts[s : s + self.block]))
            for j in range(chunk.shape[-1]):
                yield chunk[..., j]


def heat_cn(
    space: SpaceProblem,
    kappa: float,
    U0: np.ndarray,
    forcing: Forcing,
    nt: int,
    span: tuple[float, float],
    settings: Mapping[str, Any],
    nstore: int | None,
):
    nt, stride = time_levels(nt, nstore)
    t0, t1 = span
    dt = (t1 - t0) / nt
    a = 0.5 * kappa * dt
    solver = LinearSolver(
        space, settings["solver"], scale=a, shift=1.0, tol=min(settings["tol"], 1e-10)
    )
    times = [t0]
    levels = [U0]
    U = U0
    startup = min(int(settings.get("_startup", 2)), nt)
    needed = [t0 + j * dt / 2 for j in range(1, 2 * startup + 1)]
    needed += [t0 + k * dt for k in range(startup, nt + 1)]
    stream = forcing.stream(needed)
    for step in range(startup):  # Rannacher: backward-Euler half steps
        for _ in range(2):
            U = solver.solve(U + dt / 2 * next(stream), U)
        if (step + 1) % stride == 0:
            times.append(t0 + (step + 1) * dt)
            levels.append(U)
    r_prev = next(stream)
    for step in range(startup, nt):
        r_next = next(stream)
        rhs = U - a * space.apply(U) + dt / 2 * (r_prev + r_next)
        U = solver.solve(rhs, U)
        r_prev = r_next
        if (step + 1) % stride == 0:
            times.append(t0 + (step + 1) * dt)
            levels.append(U)
    times[-1] = t1
    return np.array(times), levels, solver.iterations


def heat_bdf(
    space: SpaceProblem,
    kappa: float,
    U0: np.ndarray,
    forcing: Forcing,
    times: np.ndarray,
    tol: float,
) -> list[np.ndarray]:
    from scipy.integrate import solve_ivp

    L = sp.diags(1.0 / weights(space.axes)) @ kron_sum(space.axes)
    jac = (-kappa * L).tocsc()
    shape = space.shape

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        return jac @ y + forcing(t).ravel()

    scale = max(float(np.max(np.abs(U0))), 1e-300)
    sol = solve_ivp(
        rhs,
        (times[0], times[-1]),
        U0.ravel(),
        method="BDF",
        t_eval=times,
        jac=jac,
        rtol=max(tol, 1e-13),
        atol=max(tol, 1e-13) * scale,
    )
    if not sol.success:
        raise ReferenceSolveError(f"solve_ivp (BDF) failed: {sol.message}")
    return [sol.y[:, j].reshape(shape) for j in range(len(times))]


def heat_chebyshev(
    space: SpaceProblem,
    kappa: float,
    U0: np.ndarray,
    forcing: Forcing,
    nt: int,
    span: tuple[float, float],
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Collocation at nt + 1 Chebyshev–Lobatto times; one dense solve per spatial mode."""
    t0, t1 = span
    times = cheb_nodes(nt + 1, t0, t1)
    D = cheb_d1(nt + 1, t0, t1)
    Dtt = D[1:, 1:]
    diag = Diagonalised(space.axes)
    R = forcing.many(times[1:])  # (*shape, nt)
    R = R - U0[..., None] * D[1:, 0]

    def inverse(rhs: np.ndarray) -> np.ndarray:
        W = diag.forward(rhs)  # spatial modes along the first axes, time last
        lam = np.asarray(diag.lam).reshape(-1)
        Wf = W.reshape(-1, nt)
        out = np.empty_like(Wf)
        chunk = max(1, int(4e6 // (nt * nt)))
        eye = np.eye(nt)
        for s in range(0, len(lam), chunk):
            M = Dtt[None] + kappa * lam[s : s + chunk, None, None] * eye
            out[s : s + chunk] = np.linalg.solve(M, Wf[s : s + chunk, :, None])[..., 0]
        return diag.backward(out.reshape(W.shape))

    def operator(U: np.ndarray) -> np.ndarray:
        res = mode_product(Dtt, U, U.ndim - 1)
        for j in range(nt):
            res[..., j] += kappa * space.apply(U[..., j])
        return res

    U = inverse(R)
    for _ in range(2):
        U = U + inverse(R - operator(U))
    return times, [U0] + [U[..., j] for j in range(nt)]
