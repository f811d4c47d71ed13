"""Finite elements on constructive domains: the reference solution where the box solvers
(:mod:`.fd`, :mod:`.flux`, :mod:`.collocation`) do not apply.

**Equation and weak form.** ``poisson``: −∇·(A∇u) + r(x, u) = f in Ω; ``heat``:
u_t − ∇·(A∇u) + r(x, t, u) = f in Ω × (t0, t1], u(·, t0) = u_0; A = a(x[, t]) I or
diag(a_1, …, a_d) (:class:`~mscalepde.calculus.operators.PDEOperator`). Find u_h ∈ V_h, u_h = g on
Γ_D (Dirichlet parts), such that for all v ∈ V_h with v = 0 on Γ_D

    ∫_Ω A∇u_h·∇v + r(x, u_h) v dx + Σ_Robin ∫ a α u_h v ds
        = ∫_Ω f v dx + Σ_{Neumann, Robin} ∫ a g v ds        (+ ∫ u_t v for heat).

The package's Neumann/Robin data is the plain normal derivative (n·∇u = g,
n·∇u + α u = g, as the PINN's strong form); the natural condition of the weak form is the
conormal flux n·(A∇u), so g and α are multiplied by a(x) on the boundary (isotropic A), or
by a_i on a face normal to axis i (anisotropic A; oblique Neumann/Robin parts are refused).
``value: exact`` data is derived from ``exact`` (u*, n·∇u*, n·∇u* + α u* with the mesh's
outward normal n), ``source: auto`` is f = L u* — both by the training derivative path
(:func:`mscalepde.calculus.derivatives.derivatives`, float64) at the quadrature points.

**Elements.** Lagrange P1 (``order=1``, straight simplices) or P2 (``order=2``,
isoparametric: the mesh is second order, mid-edge nodes on the curved boundary), on the
gmsh mesh of :func:`mscalepde.geometry.mesh.mesh_geometry` (graded towards re-entrant 2D
corners). Assembly by scikit-fem (Gustafsson & McBain, JOSS 5(52) 2369, 2020), Gauss
quadrature of order 2·order + 1; variable coefficients, data and the reaction are
evaluated at the quadrature points. Dirichlet data is imposed strongly by interpolation at
the boundary DOFs (the nodes of the curved P2 boundary). A semilinear reaction is solved by
Newton's method (relative tolerance 1e-12 on the update, at most 30 iterations); a pure
Neumann Poisson problem fixes its constant by the mean of ``exact`` (else zero mean) with
a Lagrange multiplier. Linear systems: sparse LU (SuperLU).

**Time stepping.** BDF2 on nt uniform steps of [t0, t1], the first step backward Euler
(one O(dt²) step keeps BDF2's global second order); time-dependent coefficients and data
are evaluated at each new time level; every level is stored and :class:`FemSolution`
interpolates linearly in time between them.

**Error estimate** (:func:`fem_reference`): solves at h0, h0/2, …; the relative L2 error of
the finer of two successive solutions is estimated by Richardson's rule
‖u_h − u_{h/2}‖ / ‖u_{h/2}‖ / (2^q − 1) at 4096 fixed Sobol points of Ω (× [t0, t1]), with
q = order + 1 for the first pair and, from the third solve on, the observed rate
log2 of the ratio of successive differences, clamped to [1, order + 1].

**Why gmsh.** Its OpenCASCADE kernel does the CSG booleans (fuse, intersect, cut) of the
shape tree exactly in 2D and 3D, and it produces second-order elements whose nodes lie on
the true curved boundary, which P2 needs to keep its O(h³) L2 rate on disks and balls
(Geuzaine & Remacle, IJNME 79(11) 1309–1331, 2009).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import splu

from mscalepde.errors import ReferenceSolveError
from mscalepde.problem.model import Problem
from mscalepde.reference.lowrank import pack, storage_tolerance

__all__ = ["FemSolution", "fem_reference", "solve_fem"]

NEWTON_TOL = 1e-12
NEWTON_MAX = 30
MAX_NT = 2000
EVAL_POINTS = 4096
_CHUNK = 1 << 16


# --------------------------------------------------------------------------- the solution


def _element(dim: int, order: int) -> Any:
    import skfem

    return {
        (2, 1): skfem.ElementTriP1,
        (2, 2): skfem.ElementTriP2,
        (3, 1): skfem.ElementTetP1,
        (3, 2): skfem.ElementTetP2,
    }[(dim, order)]()


def _mesh_class(dim: int, order: int) -> Any:
    import skfem

    return {
        (2, 1): skfem.MeshTri1,
        (2, 2): skfem.MeshTri2,
        (3, 1): skfem.MeshTet1,
        (3, 2): skfem.MeshTet2,
    }[(dim, order)]


def _mapping(mesh: Any) -> Any:
    """The mesh's reference map; for a curved (P2) mesh an isoparametric map whose inverse
    is a plain Newton iteration from the reference centroid (skfem's own starts at 0.5 and
    clips to the unit cube, which stalls on strongly curved coarse tetrahedra)."""
    if mesh.affine:
        return mesh._mapping()
    from skfem.mapping import MappingIsoparametric

    class _Isoparametric(MappingIsoparametric):  # type: ignore[misc]
        def invF(self, x: np.ndarray, tind: Any = None, newton_max_iters: int = 50,
                 newton_tol: float = 1e-12) -> np.ndarray:
            X = np.full(x.shape, 1.0 / (x.shape[0] + 1))
            for _ in range(newton_max_iters):
                dX = np.einsum("ijkl,jkl->ikl", self.invDF(X, tind), x - self.F(X, tind))
                X = np.clip(X + dX, -1.0, 2.0)
                if np.abs(dX).max(initial=0.0) < newton_tol:
                    break
            return X

    return _Isoparametric(mesh, mesh.elem(), mesh.bndelem)


class _Locator:
    """Point location on a (possibly curved) simplex mesh: the K elements with the nearest
    centroids are candidates; reference coordinates by Newton's method on the element map;
    the first candidate that contains the point wins, else the least-outside one (a point
    just outside a curved boundary is extrapolated from its nearest element)."""

    def __init__(self, mesh: Any, elem: Any) -> None:
        import skfem
        from scipy.spatial import cKDTree

        self.mesh, self.elem = mesh, elem
        self.mapping = _mapping(mesh)
        self.dim = mesh.p.shape[0]
        self.tree = cKDTree(mesh.p[:, mesh.t].mean(axis=1).T)
        self.k = min(12 if self.dim == 2 else 24, mesh.t.shape[1])
        self.affine = type(self.mapping).__name__ == "MappingAffine"
        self.element_dofs = skfem.Dofs(mesh, elem).element_dofs

    def _reference(self, x: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Reference coordinates (dim, n) of points x (dim, n) in elements ``cells``."""
        d, n = x.shape
        X = np.full((d, n, 1), 1.0 / (d + 1))
        target = x[:, :, None]
        for _ in range(1 if self.affine else 12):
            F = self.mapping.F(X, tind=cells)
            inv = self.mapping.invDF(X, tind=cells)
            dX = np.einsum("ijkl,jkl->ikl", inv, target - F)
            X = np.clip(X + dX, -2.0, 3.0)
            if not self.affine and np.abs(dX).max(initial=0.0) < 1e-14:
                break
        if self.affine:  # one more step removes the rounding of the first
            F = self.mapping.F(X, tind=cells)
            inv = self.mapping.invDF(X, tind=cells)
            X = X + np.einsum("ijkl,jkl->ikl", inv, target - F)
        return X[:, :, 0]

    def locate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cells (n,) and reference coordinates (dim, n) of points x (n, dim)."""
        n = len(x)
        _, cand = self.tree.query(x, self.k)
        cand = np.asarray(cand).reshape(n, self.k)
        best_cell = cand[:, 0].copy()
        best_ref = np.zeros((self.dim, n))
        best_out = np.full(n, np.inf)
        todo = np.arange(n)
        self._search(x, cand, todo, best_cell, best_ref, best_out)
        # on graded meshes the containing cell can rank beyond K by centroid distance
        # (measured: 3 of 77 000 points on the L-shape): widen the search for those
        todo = np.flatnonzero(best_out > 1e-9)
        wide = min(8 * self.k, self.mesh.t.shape[1])
        if len(todo) and wide > self.k:
            _, more = self.tree.query(x[todo], wide)
            full = np.zeros((n, wide), dtype=np.int64)
            full[todo] = np.asarray(more).reshape(len(todo), wide)
            self._search(x, full, todo, best_cell, best_ref, best_out, start=self.k)
        return best_cell, best_ref

    def _search(
        self,
        x: np.ndarray,
        cand: np.ndarray,
        todo: np.ndarray,
        best_cell: np.ndarray,
        best_ref: np.ndarray,
        best_out: np.ndarray,
        start: int = 0,
    ) -> None:
        """Try candidates ``cand[:, start:]`` in turn for the points ``todo`` (in place)."""
        for j in range(start, cand.shape[1]):
            if len(todo) == 0:
                break
            cells = cand[todo, j]
            ref = self._reference(x[todo].T, cells)
            bary = np.vstack([ref, 1.0 - ref.sum(axis=0)])
            out = np.maximum(-bary.min(axis=0), 0.0)
            better = out < best_out[todo]
            idx = todo[better]
            best_cell[idx] = cells[better]
            best_ref[:, idx] = ref[:, better]
            best_out[idx] = out[better]
            todo = todo[best_out[todo] > 1e-12]

    def weights(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Basis values (nbfun, n) and global DOFs (nbfun, n) at points x (n, dim)."""
        cells, ref = self.locate(x)
        X = ref[:, :, None]
        nbfun = self.element_dofs.shape[0]
        phi = np.array([self.elem.lbasis(X, i)[0][:, 0] for i in range(nbfun)])
        return phi, self.element_dofs[:, cells]


@dataclass
class FemSolution:
    """A finite-element solution; call it on points (N, D) (space, then t for heat)."""

    variables: tuple[str, ...]
    order: int
    h: float
    mesh: Any
    values: np.ndarray  # (levels, n_dofs): one row for Poisson, nt + 1 for heat
    times: np.ndarray | None = None
    seconds: float = 0.0
    newton_iterations: int = 0
    _locator: _Locator | None = field(default=None, repr=False, compare=False)

    @property
    def space_dim(self) -> int:
        return int(self.mesh.p.shape[0])

    @property
    def n_dofs(self) -> int:
        return int(self.values.shape[1])

    @property
    def n_elements(self) -> int:
        return int(self.mesh.t.shape[1])

    @property
    def nt(self) -> int:
        return 0 if self.times is None else len(self.times) - 1

    def __call__(self, points: np.ndarray) -> np.ndarray:
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        d = self.space_dim
        want = d + (0 if self.times is None else 1)
        if pts.shape[1] != want:
            raise ReferenceSolveError(
                f"expected points with {want} columns ({', '.join(self.variables)}), "
                f"got {pts.shape[1]}"
            )
        if self._locator is None:
            self._locator = _Locator(self.mesh, _element(d, self.order))
        out = np.empty(len(pts))
        for s in range(0, len(pts), _CHUNK):
            phi, dofs = self._locator.weights(np.ascontiguousarray(pts[s : s + _CHUNK, :d]))
            if self.times is None:
                u = self.values[0][dofs]
            else:
                t = np.clip(pts[s : s + _CHUNK, d], self.times[0], self.times[-1])
                j = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, self.nt - 1)
                w = (t - self.times[j]) / (self.times[j + 1] - self.times[j])
                u = (1.0 - w) * self.values[j, dofs] + w * self.values[j + 1, dofs]
            out[s : s + _CHUNK] = (phi * u).sum(axis=0)
        return out

    # ---------------------------------------------------------------- npz
    def to_arrays(self, estimated_error: float = float("nan")) -> dict[str, np.ndarray]:
        """Plain arrays (no pickled objects) for an npz cache; :meth:`from_arrays` inverts.
        A heat solution's levels are stored as a low-rank factorisation that changes no
        value by more than 1 % of ``estimated_error`` (:mod:`.lowrank`)."""
        values = np.asarray(self.values, dtype=np.float64)
        return {
            "fem_points": np.asarray(self.mesh.doflocs, dtype=np.float64),
            "fem_elements": np.asarray(self.mesh.t, dtype=np.int64),
            **pack("fem_values", values, storage_tolerance(values, estimated_error)),
            "fem_times": np.asarray([] if self.times is None else self.times, dtype=np.float64),
            "fem_order": np.array(self.order, dtype=np.int64),
            "fem_h": np.array(self.h, dtype=np.float64),
            "fem_seconds": np.array(self.seconds, dtype=np.float64),
            "fem_newton": np.array(self.newton_iterations, dtype=np.int64),
            "fem_variables": np.array(",".join(self.variables)),
        }

    @classmethod
    def from_arrays(cls, d: dict[str, np.ndarray], problem: Problem | None = None) -> FemSolution:
        variables = tuple(str(d["fem_variables"]).split(","))
        if problem is not None and tuple(problem.domain.variables) != variables:
            raise ReferenceSolveError(
                f"the stored FEM solution has variables {variables}, the problem "
                f"{tuple(problem.domain.variables)}"
            )
        p = np.array(d["fem_points"], dtype=np.float64)
        order = int(d["fem_order"])
        mesh = _mesh_class(p.shape[0], order)(p, np.array(d["fem_elements"], dtype=np.int64))
        times = np.array(d["fem_times"], dtype=np.float64)
        return cls(
            variables=variables,
            order=order,
            h=float(d["fem_h"]),
            mesh=mesh,
            values=_stored_values(d),
            times=times if times.size else None,
            seconds=float(d["fem_seconds"]),
            newton_iterations=int(d["fem_newton"]),
        )


def _stored_values(d: dict[str, np.ndarray]) -> np.ndarray:
    """``fem_values`` as stored: the array, or its factors (:func:`.lowrank.pack`)."""
    if "fem_values" in d:
        return np.array(d["fem_values"], dtype=np.float64)
    shape = tuple(int(v) for v in d["fem_values_shape"])
    return (d["fem_values_q"] @ d["fem_values_b"]).reshape(shape)


# --------------------------------------------------------------------------- discretisation


class _Space:
    """The mesh, bases, matrices and data of one problem at one h (module docstring)."""

    def __init__(self, problem: Problem, h: float, order: int) -> None:
        import skfem

        from mscalepde.errors import MeshError
        from mscalepde.geometry.mesh import mesh_geometry

        geo = problem.domain.geometry
        if geo is None:
            raise ReferenceSolveError("the FEM reference needs a domain shape (domain.shape)")
        if geo.dim not in (2, 3):
            raise ReferenceSolveError(f"the FEM reference is 2D or 3D; this domain is {geo.dim}D")
        if order not in (1, 2):
            raise ReferenceSolveError(f"FEM order must be 1 or 2, got {order}")
        if problem.pde not in ("poisson", "heat") or problem.operator is None:
            raise ReferenceSolveError(
                f"the FEM reference solves poisson and heat, not {problem.pde}"
            )
        for name, bc in problem.boundary.items():
            if bc.type not in ("dirichlet", "neumann", "robin"):
                raise ReferenceSolveError(f"the FEM reference cannot impose a {bc.type} condition "
                                     f"(part {name})")
        self.p = problem
        self.op = problem.operator
        self.heat = problem.pde == "heat"
        self.dim = geo.dim
        started = time.perf_counter()
        try:
            self.mesh = mesh_geometry(geo, h, order)
        except MeshError as exc:
            raise ReferenceSolveError(str(exc)) from None
        # gmsh runs in a child process (a crash must not kill the run): its start-up is
        # not part of the solver's cost, only the child's own meshing time is
        self.overhead = time.perf_counter() - started - self.mesh.mesh_seconds
        self.elem = _element(self.dim, order)
        q = 2 * order + 1
        self.mapping = _mapping(self.mesh)
        self.basis = skfem.Basis(self.mesh, self.elem, mapping=self.mapping, intorder=q)
        self.xq = np.asarray(self.basis.global_coordinates())  # (dim, nel, nq)
        parts = self.mesh.boundaries
        self.facet_bases: dict[str, Any] = {}
        self.facet_x: dict[str, np.ndarray] = {}  # quadrature points (dim, nf, nq)
        self.facet_n: dict[str, np.ndarray] = {}  # the mesh's outward normals there
        dirichlet: list[np.ndarray] = []
        self.part_dofs: dict[str, np.ndarray] = {}  # Dirichlet parts' DOFs
        for name, bc in problem.boundary.items():
            if name not in parts:
                raise ReferenceSolveError(f"the boundary part '{name}' is not on the mesh")
            if bc.type == "dirichlet":
                dirichlet.append(parts[name])
                self.part_dofs[name] = np.asarray(
                    self.basis.get_dofs(facets=parts[name]).all(), dtype=np.int64
                )
            else:
                fb = skfem.FacetBasis(self.mesh, self.elem, mapping=self.mapping,
                                      facets=parts[name], intorder=q)
                self.facet_bases[name] = fb
                self.facet_x[name] = np.asarray(fb.global_coordinates())
                self.facet_n[name] = np.asarray(fb.normals)
                self._check_conormal(name)
        if dirichlet:
            facets = np.unique(np.concatenate(dirichlet))
            self.D = np.asarray(self.basis.get_dofs(facets=facets).all(), dtype=np.int64)
        else:
            self.D = np.zeros(0, dtype=np.int64)
        self.xD = self.basis.doflocs[:, self.D]
        self.I = np.setdiff1d(np.arange(self.basis.N), self.D)
        self.mass = skfem.BilinearForm(lambda u, v, w: u * v).assemble(self.basis)
        self._t_dep = self._time_dependence()
        self._cache: dict[str, Any] = {}

    # ---------------------------------------------------------------- helpers
    def _check_conormal(self, name: str) -> None:
        if not self.op.anisotropic:
            return
        n = np.abs(self.facet_n[name])  # (dim, nf, nq)
        if np.any(n.max(axis=0) < 1 - 1e-8):
            raise ReferenceSolveError(
                f"an anisotropic diffusivity with a {self.p.boundary[name].type} condition on "
                f"the oblique boundary part '{name}' is not supported by the FEM reference"
            )

    def _time_dependence(self) -> dict[str, bool]:
        def uses_t(expr: Any) -> bool:
            return expr is not None and "t" in expr.variables

        robin = any(
            uses_t(bc.alpha) for bc in self.p.boundary.values() if bc.type == "robin"
        )
        return {
            "a": self.heat and any(uses_t(e) for e in self.op.diffusivity),
            "r": self.heat and uses_t(self.op.reaction),
            "alpha": self.heat and robin,
        }

    def _points(self, x: np.ndarray, t: float | None) -> np.ndarray:
        """Rows (N, D) of the quadrature/DOF points x (dim, ...) plus the time column."""
        pts = x.reshape(self.dim, -1).T
        if self.heat:
            assert t is not None
            pts = np.hstack([pts, np.full((len(pts), 1), float(t))])
        return np.ascontiguousarray(pts, dtype=np.float64)

    def _eval(self, expr: Any, x: np.ndarray, t: float | None, what: str) -> np.ndarray:
        pts = self._points(x, t)
        env = {v: pts[:, i] for i, v in enumerate(self.p.domain.variables)}
        out = np.broadcast_to(np.asarray(expr.numpy(env), dtype=np.float64), (len(pts),))
        return self._finite(out.reshape(x.shape[1:]), what)

    def _finite(self, values: np.ndarray, what: str) -> np.ndarray:
        if not np.all(np.isfinite(values)):
            raise ReferenceSolveError(f"{self.p.origin}: {what} is not finite on the FEM mesh")
        return values

    def _torch(self, x: np.ndarray, t: float | None, what: str) -> np.ndarray:
        """L u* (what = 'source') or ∇u* (dim, ...) of ``exact`` at points x (dim, ...)."""
        from mscalepde.equations import exact_data

        assert self.p.exact is not None
        grad = what != "source"
        out = exact_data(
            self.op,
            self.p.exact,
            self.p.domain.variables,
            self._points(x, t),
            self.dim,
            gradient=grad,
            chunk=_CHUNK,
        )
        if grad:
            return self._finite(out.T.reshape(x.shape), what)
        return self._finite(out.reshape(x.shape[1:]), what)

    def _diffusivity(self, x: np.ndarray, t: float | None) -> np.ndarray:
        """(k, ...) diffusivity entries at points x (dim, ...)."""
        pts = self._points(x, t)
        a = self.op.diffusivity_values(pts)
        if np.any(a <= 0) or not np.all(np.isfinite(a)):
            raise ReferenceSolveError(
                f"{self.p.origin}: the diffusivity is not positive on the mesh"
            )
        return a.T.reshape((a.shape[1], *x.shape[1:]))

    def _conormal(self, name: str, t: float | None) -> np.ndarray:
        """The factor a (isotropic) or Σ a_i n_i² (axis-aligned anisotropic) on a part."""
        a = self._diffusivity(self.facet_x[name], t)
        if not self.op.anisotropic:
            return a[0]
        return (a * self.facet_n[name] ** 2).sum(axis=0)

    # ---------------------------------------------------------------- assembly
    def stiffness(self, t: float | None) -> sp.csr_matrix:
        """∫ A∇u·∇v + Σ_Robin ∫ a α u v (cached when independent of t)."""
        if "K" in self._cache and not (self._t_dep["a"] or self._t_dep["alpha"]):
            return self._cache["K"]
        import skfem

        a = self._diffusivity(self.xq, t)
        if self.op.anisotropic:
            K = skfem.BilinearForm(
                lambda u, v, w: sum(w[f"a{i}"] * u.grad[i] * v.grad[i] for i in range(self.dim))
            ).assemble(self.basis, **{f"a{i}": a[i] for i in range(self.dim)})
        else:
            K = skfem.BilinearForm(
                lambda u, v, w: w.a * sum(u.grad[i] * v.grad[i] for i in range(self.dim))
            ).assemble(self.basis, a=a[0])
        for name, fb in self.facet_bases.items():
            bc = self.p.boundary[name]
            if bc.type != "robin":
                continue
            assert bc.alpha is not None
            coef = self._conormal(name, t) * self._eval(
                bc.alpha, self.facet_x[name], t, f"boundary ({name}).alpha"
            )
            K = K + skfem.BilinearForm(lambda u, v, w: w.c * u * v).assemble(fb, c=coef)
        K = K.tocsr()
        self._cache["K"] = K
        return K

    def load(self, t: float | None) -> np.ndarray:
        """∫ f v + Σ_{Neumann, Robin} ∫ a g v."""
        import skfem

        if self.p.source is not None:
            f = self._eval(self.p.source, self.xq, t, "source")
        else:
            f = self._torch(self.xq, t, "source")
        lin = skfem.LinearForm(lambda v, w: w.f * v)
        b = lin.assemble(self.basis, f=f)
        for name, fb in self.facet_bases.items():
            bc = self.p.boundary[name]
            xb = self.facet_x[name]
            what = f"boundary ({name}).value"
            if bc.from_exact:
                assert self.p.exact is not None
                g = (self.facet_n[name] * self._torch(xb, t, what)).sum(axis=0)
                if bc.type == "robin":
                    assert bc.alpha is not None
                    alpha = self._eval(bc.alpha, xb, t, f"boundary ({name}).alpha")
                    g = g + alpha * self._eval(self.p.exact, xb, t, "exact")
            else:
                assert bc.value is not None
                g = self._eval(bc.value, xb, t, what)
            b = b + lin.assemble(fb, f=self._conormal(name, t) * g)
        return b

    def dirichlet(self, t: float | None) -> np.ndarray:
        vals = np.zeros(len(self.D))
        if not len(self.D):
            return vals
        # DOFs on several parts take the value of the last Dirichlet part listing them
        for name, dofs in self.part_dofs.items():
            bc = self.p.boundary[name]
            pos = np.searchsorted(self.D, dofs)
            assert bc.value is not None
            vals[pos] = self._eval(bc.value, self.basis.doflocs[:, dofs], t,
                                   f"boundary ({name}).value")
        return vals

    def reaction(self, u: np.ndarray, t: float | None) -> tuple[np.ndarray, sp.csr_matrix | None]:
        """∫ r(x, u_h) v and the Jacobian ∫ ∂r/∂u(x, u_h) φ_j v (None without a reaction)."""
        if self.op.reaction is None:
            return np.zeros(self.basis.N), None
        import skfem
        import torch

        uq = np.asarray(self.basis.interpolate(u))  # (nel, nq)
        pts = self._points(self.xq, t)
        r = np.empty(len(pts))
        dr = np.empty(len(pts))
        flat = uq.reshape(-1)
        for s in range(0, len(pts), _CHUNK):
            xt = torch.as_tensor(pts[s : s + _CHUNK], dtype=torch.float64)
            ut = torch.as_tensor(flat[s : s + _CHUNK], dtype=torch.float64).requires_grad_(True)
            with torch.enable_grad():
                val = self.op.reaction_values(xt, ut)
                if val.requires_grad:
                    (g,) = torch.autograd.grad(val.sum(), ut)
                else:
                    g = torch.zeros_like(ut)
            r[s : s + _CHUNK] = val.detach().numpy()
            dr[s : s + _CHUNK] = g.detach().numpy()
        r = self._finite(r.reshape(uq.shape), "reaction")
        dr = self._finite(dr.reshape(uq.shape), "reaction derivative")
        vec = skfem.LinearForm(lambda v, w: w.r * v).assemble(self.basis, r=r)
        jac = skfem.BilinearForm(lambda u_, v, w: w.c * u_ * v).assemble(self.basis, c=dr)
        return vec, jac.tocsr()


# --------------------------------------------------------------------------- solvers


def _factor(A: sp.spmatrix) -> Callable[[np.ndarray], np.ndarray]:
    lu = splu(sp.csc_matrix(A))
    return lu.solve


class _Stepper:
    """Solves c_m M (u − w) + γ [K(t) u + R(t, u) − b(t)] = 0 with u = g(t) on Γ_D
    (c_m = 0, γ = 1: the steady problem), by Newton's method when R is nonlinear."""

    def __init__(self, space: _Space) -> None:
        self.s = space
        self.linear = space.op.linear
        self.constant = not any(space._t_dep.values())
        self._lu: dict[tuple[float, float], Callable[[np.ndarray], np.ndarray]] = {}
        self.iterations = 0

    def solve(self, u0: np.ndarray, t: float | None, c_m: float, gamma: float,
              w: np.ndarray | None) -> np.ndarray:
        s = self.s
        I, D = s.I, s.D
        u = u0.copy()
        u[D] = s.dirichlet(t)
        K = s.stiffness(t)
        b = s.load(t)
        Mw = s.mass @ w if (c_m and w is not None) else 0.0
        cache = self.linear and self.constant
        for it in range(1, NEWTON_MAX + 1):
            R, J = s.reaction(u, t)
            F = gamma * (K @ u + R - b)
            if c_m:
                F = F + c_m * (s.mass @ u - Mw)
            key = (c_m, gamma)
            if cache and key in self._lu:
                solve = self._lu[key]
            else:
                A = gamma * (K if J is None else K + J)
                if c_m:
                    A = A + c_m * s.mass
                A = sp.csr_matrix(A)
                solve = _factor(A[I][:, I])
                if cache:
                    self._lu[key] = solve
            du = solve(-F[I])
            u[I] += du
            self.iterations = max(self.iterations, it)
            if self.linear:
                return u
            if np.linalg.norm(du) <= NEWTON_TOL * max(np.linalg.norm(u), 1e-300):
                return u
        raise ReferenceSolveError(
            f"{s.p.origin}: Newton's method for the reaction did not converge in "
            f"{NEWTON_MAX} iterations (last relative update "
            f"{np.linalg.norm(du) / max(np.linalg.norm(u), 1e-300):.1e})"
        )


def _pure_neumann(space: _Space) -> bool:
    p = space.p
    return (
        not space.heat
        and len(space.D) == 0
        and p.operator is not None
        and p.operator.shift_invariant  # no reaction in u (r(x) is a source)
        and all(bc.type == "neumann" for bc in p.boundary.values())
    )


def _solve_pure_neumann(space: _Space) -> np.ndarray:
    """K u = b with ∫ u = ∫ u* (or 0), by a Lagrange multiplier."""
    import skfem

    K = space.stiffness(None)
    b = space.load(None)
    if space.p.operator is not None and space.p.operator.reaction is not None:
        b = b - space.reaction(np.zeros(space.basis.N), None)[0]  # ∫ r(x) v
    m = skfem.LinearForm(lambda v, w: v).assemble(space.basis)
    target = 0.0
    if space.p.exact is not None:
        ue = space._eval(space.p.exact, space.xq, None, "exact")
        target = float(skfem.Functional(lambda w: w.u).assemble(space.basis, u=ue))
    A = sp.bmat([[K, sp.csr_matrix(m[:, None])], [sp.csr_matrix(m[None, :]), None]])
    x = _factor(A)(np.concatenate([b, [target]]))
    return x[:-1]


def default_nt(problem: Problem, h: float, order: int) -> int:
    """Steps for heat: BDF2's error C·dt² matches the spatial C·h^(order+1) when
    dt = h^((order+1)/2), so nt = ⌈(t1 − t0) / h^((order+1)/2)⌉ (at least 4, at most
    2000): halving h then shrinks both errors by 2^(order+1), which the Richardson estimate
    of :func:`fem_reference` assumes."""
    assert problem.domain.time is not None
    t0, t1 = problem.domain.time
    return int(min(MAX_NT, max(4, math.ceil((t1 - t0) / h ** ((order + 1) / 2)))))


def solve_fem(problem: Problem, *, h: float, order: int = 2, nt: int | None = None) -> FemSolution:
    """The P1/P2 finite-element solution at mesh size h (module docstring); ``nt`` time
    steps for heat (default :func:`default_nt`). Raises :class:`ReferenceSolveError`."""
    start = time.perf_counter()
    space = _Space(problem, h, order)
    stepper = _Stepper(space)
    times = None
    if not space.heat:
        if _pure_neumann(space):
            u = _solve_pure_neumann(space)
            stepper.iterations = 1
        else:
            u = stepper.solve(np.zeros(space.basis.N), None, 0.0, 1.0, None)
        values = u[None, :]
    else:
        assert problem.domain.time is not None
        t0, t1 = problem.domain.time
        nt = default_nt(problem, h, order) if nt is None else int(nt)
        if nt < 1:
            raise ReferenceSolveError(f"nt must be at least 1, got {nt}")
        times = t0 + (t1 - t0) * np.arange(nt + 1) / nt
        dt = (t1 - t0) / nt
        init = problem.initial if problem.initial is not None else problem.exact
        if init is None:
            raise ReferenceSolveError(f"{problem.origin}: heat needs an initial condition")
        values = np.empty((nt + 1, space.basis.N))
        values[0] = space._eval(init, space.basis.doflocs, t0, "initial")
        for n in range(1, nt + 1):
            if n == 1:  # backward Euler
                values[n] = stepper.solve(values[0], times[n], 1.0, dt, values[0])
            else:  # BDF2: (3u^{n} − 4u^{n−1} + u^{n−2}) / (2 dt) + L u^{n} = f^{n}
                w = (4.0 * values[n - 1] - values[n - 2]) / 3.0
                values[n] = stepper.solve(values[n - 1], times[n], 1.0, 2.0 * dt / 3.0, w)
    return FemSolution(
        variables=tuple(problem.domain.variables),
        order=order,
        h=float(h),
        mesh=space.mesh,
        values=values,
        times=times,
        seconds=time.perf_counter() - start - space.overhead,
        newton_iterations=stepper.iterations,
    )


# --------------------------------------------------------------------------- refinement


def default_h(problem: Problem, divisions: int = 16) -> float:
    """The first mesh size of a refinement: the bounding box's diameter / ``divisions``."""
    lo, hi = (np.array(b) for b in zip(*problem.domain.box))
    return float(np.linalg.norm(hi - lo)) / divisions


def solve_fem_retrying(
    problem: Problem, h: float, order: int = 2, attempts: int = 4
) -> FemSolution:
    """:func:`solve_fem`, retried at a 7 % smaller h when gmsh crashes or fails at this size
    (gmsh 4.15 crashes, or reports overlapping facets, at some coarse 3D sizes: measured on
    the cube minus two balls at h = 0.37–0.6); the solution's ``h`` is the size used."""
    for attempt in range(attempts):
        try:
            return solve_fem(problem, h=h, order=order)
        except ReferenceSolveError as exc:
            text = str(exc)
            if attempt == attempts - 1 or not ("gmsh crashed" in text or "gmsh failed" in text):
                raise
            h *= 0.93
    raise AssertionError("unreachable")


def fem_reference(
    problem: Problem,
    *,
    order: int = 2,
    h0: float | None = None,
    tol: float = 1e-6,
    max_seconds: float = 120.0,
) -> tuple[FemSolution, float, list[tuple[float, int, float, float]]]:
    """Refinement study (module docstring): solve at h0 (default: the bounding box's
    diameter / 16), h0/2, … until the estimated relative L2 error of the finest solution is
    below ``tol`` or the next solve would not fit in ``max_seconds`` (total; cost × 2^d per
    halving, × the growth of nt for heat). Returns the finest solution, its estimated error
    and the runs (h, n_dofs, seconds, estimated error; NaN for the first)."""
    from mscalepde.geometry.sampling import sample_interior

    geo = problem.domain.geometry
    if geo is None:
        raise ReferenceSolveError("the FEM reference needs a domain shape (domain.shape)")
    h = default_h(problem) if h0 is None else float(h0)
    pts = sample_interior(problem.domain, EVAL_POINTS, "sobol", 0)
    start = time.perf_counter()
    runs: list[tuple[float, int, float, float]] = []
    prev: np.ndarray | None = None
    best: FemSolution | None = None
    estimate = float("nan")
    growth = 2.0**geo.dim
    last_diff: float | None = None
    if problem.pde == "heat":
        growth *= 2.0 ** ((order + 1) / 2)
    while True:
        sol = solve_fem_retrying(problem, h, order)
        h = sol.h  # a retry may have made it a little smaller
        vals = sol(pts)
        if prev is not None:
            norm = float(np.linalg.norm(vals))
            diff = float(np.linalg.norm(vals - prev))
            # Richardson with the observed rate once three solves exist (clamped to
            # [1, order + 1]): heat, incompatible data or a singularity converge below
            # the asymptotic order, and assuming it would understate the error
            rate = float(order + 1)
            if last_diff is not None and diff > 0 and last_diff > 0:
                rate = min(max(math.log2(last_diff / diff), 1.0), float(order + 1))
            estimate = diff / max(norm, 1e-300) / (2.0**rate - 1.0)
            last_diff = diff
        runs.append((h, sol.n_dofs, sol.seconds, estimate))
        best, prev = sol, vals
        elapsed = time.perf_counter() - start
        if prev is not None and len(runs) >= 2 and estimate < tol:
            break
        if len(runs) >= 2 and elapsed + sol.seconds * growth > max_seconds:
            break
        h /= 2
    assert best is not None
    return best, estimate, runs
