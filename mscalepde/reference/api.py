"""Classical reference solvers: a truth for every problem, and the classical baseline.

:func:`compute_reference` solves a ``poisson`` (−∇·(a∇u) + r(x, u) = f) or ``heat``
(u_t − ∇·(a∇u) + r = f) problem on its box and returns a :class:`Reference`: u on a
tensor-product grid (1D coordinate arrays ``x``, ``y``, ``z``, ``t`` as the problem has
them, ``u`` with one axis per coordinate in that order), its estimated error (refinement
study) and the wall time.
:func:`get_reference` caches it as ``reference.npz`` keyed by ``problem.fingerprint()``
and the settings (under ``$MSCALEPDE_CACHE/reference`` or ``~/.cache/mscalepde/reference``);
:func:`reference_values` / :func:`reference_truth` evaluate it anywhere in the box, so a
problem without ``exact`` still has errors and spectral diagnostics.
:func:`classical_baseline` times the FD solver to the network's error (and its error in
the network's time). The full description is ``docs/reference.md``; in short:

- ``method: fd``: second-order finite differences, ghost-point Neumann, ``order: 4`` by
  Richardson extrapolation; ``solver``: ``direct`` (splu), ``cg`` (Jacobi-preconditioned
  CG on the symmetrised system), ``fast`` (fast diagonalisation of the Kronecker sum) or
  ``auto`` (direct in 1D and up to 20 000 unknowns in 2D / 8 000 in 3D, fast above).
- ``method: spectral``: Chebyshev–Gauss–Lobatto collocation (Fourier on periodic axes),
  fast diagonalisation with iterative refinement; the grid adapts per axis until the
  solution's last Chebyshev/Fourier coefficients are below ``tol``.
- ``method: auto``: spectral when no expression uses ``abs``, ``minimum``, ``maximum``,
  ``where`` or ``sqrt`` and the adaptive grid resolves the solution within 2049 (1D),
  129 (2D), 49 (3D) points per axis and 129 time nodes; else fd (n = 2049, 257, 65;
  heat 513, 129, 33).
- heat: ``time_method: cn`` (Crank–Nicolson, Rannacher start-up: the first two steps are
  four backward-Euler half steps), ``bdf`` (``solve_ivp`` BDF, sparse Jacobian),
  ``chebyshev`` (spectral in time; the default with spectral space) — ``cn`` is the
  default with fd.
- general operators (a variable or anisotropic diffusivity, a reaction, a Robin face):
  ``method: auto`` and ``fd`` use finite differences in flux form with harmonic-mean face
  diffusivities, Newton's method for a semilinear reaction and the method of lines for
  heat (:mod:`mscalepde.reference.flux`; ``Reference.method`` is ``fd-flux`` and
  ``settings['solver_note']`` names the solver and Newton's iterations); ``spectral``,
  ``order: 4``, ``solver: fast`` and ``time_method: chebyshev`` refuse such problems.
- all-Neumann/periodic Poisson: the constant is fixed by the mean of ``exact`` (grid
  quadrature), else zero mean.
- data: ``Expression.numpy``; ``source: auto`` (L u* of the problem's operator) and
  Neumann/Robin ``value: exact`` by the training derivative path
  (``equations.interior_derivatives`` + ``PDEOperator.apply``, ``derivatives``, float64).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import MscaleError
from mscalepde.geometry import grid_points
from mscalepde.problem import REFERENCE_OPTIONS, Problem
from mscalepde.reference.fd import (
    AXIS_NAMES,
    MAX_STORED_LEVELS,
    Axis1D,
    Forcing,
    LinearSolver,
    ReferenceError,
    SpaceProblem,
    fd_axis,
    heat_bdf,
    heat_chebyshev,
    heat_cn,
    mode_product,
    time_levels,
)
from mscalepde.reference.flux import METHOD_NAME as FLUX_METHOD
from mscalepde.reference.flux import FluxSpace
from mscalepde.reference.flux import describe as describe_flux
from mscalepde.reference.flux import solve_heat as flux_heat
from mscalepde.reference.flux import solve_poisson as flux_poisson
from mscalepde.reference.spectral import (
    as_tensor_grid,
    barycentric_matrix,
    chebyshev_axis,
    contract_points,
    fourier_axis,
    pad_periodic,
    tail_ratio,
    trig_matrix,
)
from mscalepde.schema import SchemaError, validate_section

REFERENCE_VERSION = 2  # 2: general operators (flux form), source: auto = L u*
FD_DEFAULT_N = {"poisson": {1: 2049, 2: 257, 3: 65}, "heat": {1: 513, 2: 129, 3: 33}}
SPECTRAL_CAP = {1: 2049, 2: 129, 3: 49}
FEM_METHOD = "fem"
TIME_CAP = 129
NONSMOOTH = re.compile(r"\b(abs|minimum|maximum|where|sqrt)\s*\(")

__all__ = [
    "Reference",
    "ReferenceError",
    "baseline_line",
    "cache_dir",
    "cache_path",
    "classical_baseline",
    "compute_reference",
    "describe_reference",
    "get_reference",
    "reference_settings",
    "reference_truth",
    "reference_values",
    "truth_info",
]


# --------------------------------------------------------------------------- settings


def reference_settings(problem: Problem, **overrides: Any) -> dict[str, Any]:
    """The problem's ``reference`` section (validated, defaults filled) with overrides
    (``None`` values are ignored)."""
    raw = dict(problem.config.get("reference") or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return validate_section(raw, REFERENCE_OPTIONS, "reference")
    except SchemaError as exc:
        raise ReferenceError(f"{problem.origin}: {exc}") from None


def _settings_key(settings: Mapping[str, Any]) -> str:
    text = json.dumps({**settings, "version": REFERENCE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- result


@dataclass
class Reference:
    """A reference solution on a tensor grid; call it on points (N, D) to interpolate."""

    variables: tuple[str, ...]
    axes: list[np.ndarray]
    kinds: list[str]  # per variable: uniform | periodic | chebyshev | fourier
    u: np.ndarray
    method: str
    n: list[int]
    nt: int = 0
    order: int = 2
    time_method: str = ""
    estimated_error: float = float("nan")
    seconds: float = 0.0
    fingerprint: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    exact_error: float | None = None
    _spline: Any = field(default=None, repr=False, compare=False)

    @property
    def grid(self) -> dict[str, np.ndarray]:
        return dict(zip(self.variables, self.axes))

    # ---------------------------------------------------------------- npz
    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = {v: np.asarray(a, dtype=np.float64) for v, a in zip(self.variables, self.axes)}
        out["u"] = np.asarray(self.u, dtype=np.float64)
        out["method"] = np.array(self.method)
        out["n"] = np.asarray(self.n, dtype=np.int64)
        out["nt"] = np.array(self.nt, dtype=np.int64)
        out["order"] = np.array(self.order, dtype=np.int64)
        out["time_method"] = np.array(self.time_method)
        out["estimated_error"] = np.array(self.estimated_error, dtype=np.float64)
        out["exact_error"] = np.array(
            np.nan if self.exact_error is None else self.exact_error, dtype=np.float64
        )
        out["seconds"] = np.array(self.seconds, dtype=np.float64)
        out["kinds"] = np.array(",".join(self.kinds))
        out["variables"] = np.array(",".join(self.variables))
        out["fingerprint"] = np.array(self.fingerprint)
        out["settings_json"] = np.array(json.dumps(self.settings, sort_keys=True))
        out["version"] = np.array(REFERENCE_VERSION, dtype=np.int64)
        return out

    def save(self, path: str | Path) -> Path:
        """Write ``reference.npz`` atomically (no pickled objects)."""
        from mscalepde.runfolder import atomic_write_with

        path = Path(path)
        data = self.to_npz_dict()
        atomic_write_with(path, lambda buf: np.savez(buf, **data))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Reference:
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["method"]) == FEM_METHOD:
                    return FemReference.from_npz(z)
                meta = _npz_meta(z)
                return cls(
                    **meta,
                    axes=[np.array(z[v]) for v in meta["variables"]],
                    kinds=str(z["kinds"]).split(","),
                    u=np.array(z["u"]),
                )
        except FileNotFoundError:
            raise ReferenceError(f"{path}: no such file") from None
        except (KeyError, ValueError, OSError) as exc:
            raise ReferenceError(f"{path}: not a reference file ({exc})") from None

    # ---------------------------------------------------------------- interpolation
    def __call__(self, points: np.ndarray) -> np.ndarray:
        """u at ``points`` (N, D), columns = variables; points are clipped to the box."""
        pts = np.atleast_2d(np.asarray(points, dtype=np.float64))
        if pts.shape[1] != len(self.variables):
            raise ReferenceError(
                f"expected points with {len(self.variables)} columns "
                f"({', '.join(self.variables)}), got {pts.shape[1]}"
            )
        lo = np.array([a[0] for a in self.axes])
        hi = np.array([a[-1] for a in self.axes])
        pts = np.clip(pts, lo, hi)
        if all(k in ("uniform", "periodic") for k in self.kinds):
            return self._bspline()(pts)
        grid = as_tensor_grid(pts)
        if grid is not None:
            return self.on_grid(grid).reshape(-1)
        mats = [self._matrix(i, pts[:, i]) for i in range(len(self.axes))]
        return contract_points(self.u, mats)

    def on_grid(self, axes: list[np.ndarray]) -> np.ndarray:
        """u on the tensor grid of 1D coordinate arrays ``axes`` (shape len(a_i)...)."""
        out = self.u
        for i, a in enumerate(axes):
            a = np.clip(np.asarray(a, dtype=float), self.axes[i][0], self.axes[i][-1])
            out = mode_product(self._matrix(i, a), out, i)
        return out

    def _matrix(self, i: int, xq: np.ndarray) -> np.ndarray:
        kind, nodes = self.kinds[i], self.axes[i]
        if kind == "chebyshev":
            return barycentric_matrix(nodes, xq)
        if kind == "fourier":
            return trig_matrix(nodes, xq)
        from scipy.interpolate import make_interp_spline

        eye = np.eye(len(nodes))
        if kind == "periodic":  # the last node repeats the first: one cardinal function
            eye[-1] = eye[0]
        x, y = pad_periodic(nodes, eye, 0, kind == "periodic")
        return make_interp_spline(x, y, k=min(3, len(x) - 1))(xq)

    def _bspline(self) -> Any:
        if self._spline is None:
            from scipy.interpolate import NdBSpline, make_interp_spline

            c = self.u
            knots = []
            for i, (kind, nodes) in enumerate(zip(self.kinds, self.axes)):
                x, c = pad_periodic(nodes, c, i, kind == "periodic")
                s = make_interp_spline(x, c, k=3, axis=i)
                c = np.moveaxis(s.c, 0, i)
                knots.append(s.t)
            self._spline = NdBSpline(tuple(knots), c, 3)
        return self._spline


def _npz_meta(z: Any) -> dict[str, Any]:
    """The fields every stored reference has (all but its grid or mesh)."""
    exact_error = float(z["exact_error"])
    return {
        "variables": tuple(str(z["variables"]).split(",")),
        "method": str(z["method"]),
        "n": [int(v) for v in np.atleast_1d(z["n"])],
        "nt": int(z["nt"]),
        "order": int(z["order"]),
        "time_method": str(z["time_method"]),
        "estimated_error": float(z["estimated_error"]),
        "seconds": float(z["seconds"]),
        "fingerprint": str(z["fingerprint"]),
        "settings": json.loads(str(z["settings_json"])),
        "exact_error": None if math.isnan(exact_error) else exact_error,
    }


@dataclass
class FemReference(Reference):
    """A finite-element reference on a domain that is not a box (:mod:`.fem`): ``n`` is
    [number of DOFs], ``order`` the element order, ``solution`` the
    :class:`~.fem.FemSolution` that :meth:`__call__` evaluates."""

    solution: Any = None
    h: float = float("nan")

    def to_npz_dict(self) -> dict[str, np.ndarray]:
        out = super().to_npz_dict()
        out.update(self.solution.to_arrays())
        return out

    @classmethod
    def from_npz(cls, z: Any) -> FemReference:
        from mscalepde.reference.fem import FemSolution

        sol = FemSolution.from_arrays({k: z[k] for k in z.files if k.startswith("fem_")})
        return cls(**_npz_meta(z), axes=[], kinds=[], u=np.zeros(0), solution=sol, h=sol.h)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return self.solution(points)

    def on_grid(self, axes: list[np.ndarray]) -> np.ndarray:
        return self.solution(grid_points(axes)).reshape(tuple(len(a) for a in axes))


def _fem_reference(problem: Problem, settings: Mapping[str, Any], estimate: bool) -> Reference:
    """The finite-element reference of a shape (:func:`.fem.fem_reference`)."""
    from mscalepde.reference.fem import default_h, fem_reference, solve_fem_retrying

    started = time.perf_counter()
    order = settings["element"]
    if estimate:
        sol, err, runs = fem_reference(
            problem,
            order=order,
            h0=settings["h"],
            tol=settings["fem_tol"],
            max_seconds=settings["fem_seconds"],
        )
    else:  # one solve at the first mesh size (auto's coarse look, tests)
        sol = solve_fem_retrying(problem, settings["h"] or default_h(problem), order)
        err, runs = float("nan"), [(sol.h, sol.n_dofs, sol.seconds, float("nan"))]
    ref = FemReference(
        variables=problem.variables,
        axes=[],
        kinds=[],
        u=np.zeros(0),
        method=FEM_METHOD,
        n=[sol.n_dofs],
        nt=sol.nt,
        order=order,
        time_method="bdf2" if problem.pde == "heat" else "",
        estimated_error=err,
        seconds=time.perf_counter() - started,
        fingerprint=problem.fingerprint(),
        settings={**settings, "fem_runs": [list(r) for r in runs]},
        solution=sol,
        h=sol.h,
    )
    if problem.exact is not None:
        from mscalepde.geometry.sampling import sample_interior

        pts = sample_interior(problem.domain, 4096, "sobol", 1)
        env = {v: pts[:, i] for i, v in enumerate(problem.variables)}
        ex = np.broadcast_to(problem.exact.numpy(env), (len(pts),)).astype(float)
        ref.exact_error = _relative(ref(pts), ex)
    return ref


# --------------------------------------------------------------------------- data


class _Data:
    """Source, boundary and initial data of a problem on tensor grids."""

    def __init__(self, problem: Problem) -> None:
        self.p = problem
        self.variables = problem.variables
        self.space_dim = problem.domain.space_dim
        self.heat = problem.pde == "heat"

    def _env(self, grids: list[np.ndarray]) -> dict[str, np.ndarray]:
        d = len(grids)
        env = {}
        for i, (v, g) in enumerate(zip(self.variables, grids)):
            shape = [1] * d
            shape[i] = len(g)
            env[v] = np.asarray(g, dtype=np.float64).reshape(shape)
        return env

    def _numpy(self, expr: Any, grids: list[np.ndarray], what: str) -> np.ndarray:
        shape = tuple(len(g) for g in grids)
        out = np.broadcast_to(expr.numpy(self._env(grids)), shape).astype(np.float64)
        return self._finite(out, what)

    def _finite(self, values: np.ndarray, what: str) -> np.ndarray:
        if not np.all(np.isfinite(values)):
            raise ReferenceError(
                f"{self.p.origin}: {what} evaluates to a non-finite value on the reference grid"
            )
        return values

    def _torch(self, grids: list[np.ndarray], what: str, axis: int = -1) -> np.ndarray:
        """``source: auto`` (axis < 0: L u* for the problem's operator, by the training
        derivative path, as ``Objective._source``) or ∂exact/∂x_axis, in float64."""
        from mscalepde.equations import exact_data

        assert self.p.exact is not None
        shape = tuple(len(g) for g in grids)
        out = exact_data(
            self.p.operator,
            self.p.exact,
            self.variables,
            grid_points(grids),
            self.space_dim,
            gradient=axis >= 0,
        )
        return self._finite((out[:, axis] if axis >= 0 else out).reshape(shape), what)

    def source(self, grids: list[np.ndarray]) -> np.ndarray:
        if self.p.source is not None:
            return self._numpy(self.p.source, grids, "source")
        return self._torch(grids, "source (auto, from exact)")

    def initial(self, grids: list[np.ndarray]) -> np.ndarray:
        assert self.p.initial is not None
        return self._numpy(self.p.initial, grids, "initial")

    def exact(self, grids: list[np.ndarray]) -> np.ndarray:
        assert self.p.exact is not None
        return self._numpy(self.p.exact, grids, "exact")

    def face(self, face: str, grids: list[np.ndarray]) -> np.ndarray:
        """Face data g on a grid whose face axis is the single coordinate of the face: the
        Dirichlet value, the outward normal derivative (Neumann) or ∂u/∂n + α u (Robin);
        ``value: exact`` derives it from ``exact`` (u*, n·∇u*, n·∇u* + α u*)."""
        bc = self.p.boundary[face]
        what = f"boundary (face {face}).value"
        if bc.type in ("neumann", "robin") and bc.from_exact:
            axis = "xyz".index(face[0])
            sign = -1.0 if face.endswith("-") else 1.0
            g = sign * self._torch(grids, what, axis)
            if bc.type == "robin":
                g = g + self.alpha(face, grids) * self.exact(grids)
            return g
        return self._numpy(bc.value, grids, what)

    def alpha(self, face: str, grids: list[np.ndarray]) -> np.ndarray:
        """Robin's α on a face grid (as :meth:`face`)."""
        bc = self.p.boundary[face]
        assert bc.alpha is not None
        return self._numpy(bc.alpha, grids, f"boundary (face {face}).alpha")

    @property
    def time_dependent_source(self) -> bool:
        if self.p.source is None:
            return True
        return "t" in self.p.source.variables


# --------------------------------------------------------------------------- operators


# --------------------------------------------------------------------------- discretisation


def _build_axes(problem: Problem, method: str, sizes: list[int]) -> list[Axis1D]:
    axes = []
    for i, (a, b) in enumerate(problem.domain.box):
        name = AXIS_NAMES[i]
        lo = problem.boundary[f"{name}-"].type
        hi = problem.boundary[f"{name}+"].type
        if method == "fd":
            axes.append(fd_axis(name, sizes[i], a, b, lo, hi))
        elif lo == "periodic":
            axes.append(fourier_axis(name, sizes[i], a, b))
        else:
            axes.append(chebyshev_axis(name, sizes[i], a, b, lo, hi))
    return axes


@dataclass
class _Solution:
    axes: list[np.ndarray]  # output coordinates per variable
    kinds: list[str]
    u: np.ndarray
    iterations: int = 0
    note: str = ""  # the solver line of a flux-form solution


def _fix_constant(problem: Problem, data: _Data, space: SpaceProblem, u: np.ndarray) -> np.ndarray:
    q = np.ones(())
    for i, ax in enumerate(space.axes):
        shape = [1] * len(space.axes)
        shape[i] = ax.n
        q = q * ax.quad.reshape(shape)
    target = 0.0
    if problem.exact is not None:
        target = float(np.sum(q * data.exact([ax.nodes for ax in space.axes])) / np.sum(q))
    return u + (target - float(np.sum(q * u) / np.sum(q)))


def _solve_poisson(
    problem: Problem, method: str, sizes: list[int], settings: Mapping[str, Any]
) -> _Solution:
    data = _Data(problem)
    space = SpaceProblem(_build_axes(problem, method, sizes), data, problem.domain.box)
    rhs = space.source() + space.lift()
    solver = LinearSolver(space, settings["solver"], tol=min(settings["tol"], 1e-8))
    U = solver.solve(rhs)
    u = space.recover(U)
    if space.singular:
        u = _fix_constant(problem, data, space, u)
    return _Solution(
        [ax.nodes for ax in space.axes], [ax.kind for ax in space.axes], u, solver.iterations
    )


def _solve_heat(
    problem: Problem,
    method: str,
    sizes: list[int],
    nt: int,
    time_method: str,
    settings: Mapping[str, Any],
    nstore: int | None = None,
) -> _Solution:
    data = _Data(problem)
    space = SpaceProblem(_build_axes(problem, method, sizes), data, problem.domain.box)
    t0, t1 = problem.domain.time  # type: ignore[misc]
    kappa = problem.diffusivity
    u0_full = data.initial([ax.nodes for ax in space.axes] + [np.array([t0])])[..., 0]
    U0 = data.initial(list(space.coords) + [np.array([t0])])[..., 0]
    forcing = Forcing(space, kappa, t0)

    kinds = [ax.kind for ax in space.axes]
    coords = [ax.nodes for ax in space.axes]
    if time_method == "chebyshev":
        times, levels = heat_chebyshev(space, kappa, U0, forcing, nt, (t0, t1))
        kinds.append("chebyshev")
    elif time_method == "bdf":
        nt_eff, _ = time_levels(nt, nstore)
        times = np.linspace(t0, t1, (nstore or min(nt, MAX_STORED_LEVELS - 1)) + 1)
        levels = heat_bdf(space, kappa, U0, forcing, times, settings["tol"])
        kinds.append("uniform")
    else:
        times, levels, iters = heat_cn(space, kappa, U0, forcing, nt, (t0, t1), settings, nstore)
        kinds.append("uniform")
    out = np.empty(space.full_shape + (len(times),))
    out[..., 0] = u0_full
    for j in range(1, len(times)):
        out[..., j] = space.recover(levels[j], times[j])
    return _Solution(coords + [np.asarray(times)], kinds, out)


def needs_flux(problem: Problem) -> bool:
    """True when the constant-coefficient solvers cannot handle the problem: a variable or
    anisotropic diffusivity, a reaction, or a Robin face (the flux-form solver's case)."""
    robin = any(bc.type == "robin" for bc in problem.boundary.values())
    return robin or not problem.plain


def _flux_reason(problem: Problem) -> str:
    op = problem.operator
    assert op is not None
    if op.anisotropic:
        return "an anisotropic diffusivity"
    if not op.constant:
        return "a variable diffusivity"
    if op.reaction is not None:
        return "a reaction term"
    return "a Robin boundary condition"


def _solve_flux(
    problem: Problem,
    sizes: list[int],
    nt: int,
    time_method: str,
    settings: Mapping[str, Any],
    nstore: int | None = None,
) -> _Solution:
    space = FluxSpace(problem, _Data(problem), sizes)
    kinds = [ax.kind for ax in space.axes]
    coords = [ax.nodes for ax in space.axes]
    if problem.pde == "heat":
        times, u, info = flux_heat(space, nt, time_method, settings, nstore)
        coords.append(times)
        kinds.append("uniform")
    else:
        u, info = flux_poisson(space, settings)
    note = describe_flux(info, space.has_reaction, problem.pde == "heat")
    return _Solution(coords, kinds, u, info.iterations, note)


# --------------------------------------------------------------------------- drivers


def _solve(
    problem: Problem,
    method: str,
    sizes: list[int],
    nt: int,
    time_method: str,
    settings: Mapping[str, Any],
    nstore: int | None = None,
) -> _Solution:
    if needs_flux(problem):
        if method != "fd":
            raise ReferenceError(
                f"{problem.origin}: method {method} cannot solve a problem with "
                f"{_flux_reason(problem)} (use fd or auto: flux-form finite differences)"
            )
        return _solve_flux(problem, sizes, nt, time_method, settings, nstore)
    if problem.pde == "heat":
        return _solve_heat(problem, method, sizes, nt, time_method, settings, nstore)
    return _solve_poisson(problem, method, sizes, settings)


def _fd_solution(
    problem: Problem,
    sizes: list[int],
    nt: int,
    time_method: str,
    order: int,
    settings: Mapping[str, Any],
) -> _Solution:
    if order == 2:
        return _solve(problem, "fd", sizes, nt, time_method, settings)
    # Richardson extrapolation: (4 u_{h/2} - u_h) / 3 on the coarse grid
    nstore = None
    if problem.pde == "heat":
        # plain CN (no backward-Euler start-up), whose error expands in h^2, dt^2, h^4, ...
        settings = {**settings, "_startup": 0}
        nt, stride = time_levels(nt, None)
        nstore = nt // stride
    coarse = _solve(problem, "fd", sizes, nt, time_method, settings, nstore)
    fine = _solve(problem, "fd", [2 * s - 1 for s in sizes], 2 * nt, time_method, settings, nstore)
    sl = tuple([slice(None, None, 2)] * len(sizes)) + ((slice(None),) if nstore else ())
    coarse.u = (4.0 * fine.u[sl] - coarse.u) / 3.0
    return coarse


def _check_grid(problem: Problem) -> list[np.ndarray]:
    bounds = problem.domain.bounds
    q = min(257, int((2e5) ** (1.0 / len(bounds))))
    return [np.linspace(lo, hi, q) for lo, hi in bounds]


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    den = float(np.linalg.norm(b))
    num = float(np.linalg.norm(a - b))
    return num / den if den > 0 else num


def _as_reference(problem: Problem, sol: _Solution, **meta: Any) -> Reference:
    return Reference(
        variables=problem.variables,
        axes=sol.axes,
        kinds=sol.kinds,
        u=sol.u,
        fingerprint=problem.fingerprint(),
        **meta,
    )


def _smooth(problem: Problem) -> bool:
    texts = [problem.config.get(k) for k in ("exact", "source", "initial")]
    texts += [bc.value.text for bc in problem.boundary.values() if bc.value is not None]
    return not any(isinstance(t, str) and NONSMOOTH.search(t) for t in texts)


class _Unresolved(Exception):
    pass


def _grow(n: int, tail: float) -> int:
    return int(math.ceil(n * (2.0 if tail > 1e-4 else 1.4))) | 1


def _spectral_adaptive(
    problem: Problem,
    sizes: list[int | None],
    nt: int | None,
    time_method: str,
    settings: Mapping[str, Any],
) -> tuple[_Solution, list[int], int]:
    """Grow each unresolved axis (Chebyshev/Fourier tail of the solution > tol)."""
    dim = problem.domain.space_dim
    tol = settings["tol"]
    fixed = [s is not None for s in sizes]
    cur = [s if s is not None else 17 for s in sizes]
    heat = problem.pde == "heat"
    cheb_time = heat and time_method == "chebyshev"
    fixed_t = nt is not None or not cheb_time
    cur_t = nt if nt is not None else (16 if cheb_time else _default_nt(problem, cur))
    for _ in range(40):
        sol = _solve(problem, "spectral", cur, cur_t, time_method, settings)
        grown = False
        for i in range(dim):
            if fixed[i]:
                continue
            tail = tail_ratio(sol.u, i, sol.kinds[i])
            if tail > tol:
                cur[i] = _grow(cur[i], tail)
                grown = True
                if cur[i] > SPECTRAL_CAP[dim]:
                    raise _Unresolved(
                        f"axis {AXIS_NAMES[i]} needs more than {SPECTRAL_CAP[dim]} points"
                    )
        if not fixed_t:
            tail = tail_ratio(sol.u, dim, "chebyshev")
            if tail > tol:
                cur_t = _grow(cur_t, tail) - 1
                grown = True
                if cur_t > TIME_CAP:
                    raise _Unresolved(f"time needs more than {TIME_CAP} nodes")
        if not grown:
            return sol, cur, cur_t
    raise _Unresolved("no convergence")


def _default_nt(problem: Problem, sizes: list[int]) -> int:
    return max(8, max(sizes) - 1)


def compute_reference(
    problem: Problem,
    settings: Mapping[str, Any] | None = None,
    *,
    estimate: bool = True,
    **overrides: Any,
) -> Reference:
    """Solve ``problem`` classically (see the module docstring); not cached."""
    if problem.pde == "fit":
        raise ReferenceError(
            f"{problem.origin}: pde: fit has no equation to solve (its target is 'exact')"
        )
    if settings is None:
        settings = reference_settings(problem, **overrides)
    else:
        settings = {**settings, **{k: v for k, v in overrides.items() if v is not None}}
    if not problem.domain.is_box:
        return _fem_reference(problem, settings, estimate)
    started = time.perf_counter()
    dim = problem.domain.space_dim
    heat = problem.pde == "heat"
    method = settings["method"]
    n_given = settings["n"]
    order = settings["order"]
    tm = settings["time_method"]
    spectral_sol = None
    note = ""
    flux = needs_flux(problem)
    if flux:
        reason = _flux_reason(problem)
        if method == "spectral":
            raise ReferenceError(
                f"{problem.origin}: method spectral cannot solve a problem with {reason} "
                "(use fd or auto: flux-form finite differences)"
            )
        if order != 2:
            raise ReferenceError(
                f"{problem.origin}: order {order} (Richardson) is not available with the "
                f"flux-form solver ({reason}); use order 2"
            )
        if heat and tm == "chebyshev":
            raise ReferenceError(
                f"{problem.origin}: time_method chebyshev cannot solve a problem with "
                f"{reason}; use cn or bdf"
            )
        if method == "auto":
            note = f"{reason} (flux form)"
    elif method in ("auto", "spectral"):
        time_method = ("chebyshev" if tm == "auto" else tm) if heat else ""
        if method == "auto" and not _smooth(problem):
            note = "non-smooth data"
        else:
            try:
                spectral_sol, sizes, nt = _spectral_adaptive(
                    problem, [n_given] * dim, settings["nt"], time_method, settings
                )
            except _Unresolved as exc:
                if method == "spectral":
                    raise ReferenceError(f"{problem.origin}: spectral: {exc}") from None
                note = str(exc)
    if spectral_sol is not None:
        method = "spectral"
        divisor = 1.0
        # refinement study: n + k per adaptive axis (and time), compare, return the finer
        k_sizes = [s + max(4, s // 8) if n_given is None else s for s in sizes]
        k_nt = (
            nt + max(4, nt // 8)
            if (heat and settings["nt"] is None and time_method == "chebyshev")
            else nt
        )
        coarse = spectral_sol
        if estimate and heat and time_method == "cn":  # time error dominates: halve dt
            sol = _solve(problem, "spectral", k_sizes, 2 * nt, time_method, settings)
            sizes, nt = k_sizes, 2 * nt
            divisor = 3.0
        elif estimate and (k_sizes != sizes or k_nt != nt):
            sol = _solve(problem, "spectral", k_sizes, k_nt, time_method, settings)
            sizes, nt = k_sizes, k_nt
        elif estimate:  # fixed sizes: compare with a slightly coarser grid
            sol = coarse
            csz = [s - max(2, s // 8) for s in sizes]
            cnt = nt - max(2, nt // 8) if time_method == "chebyshev" else nt
            coarse = _solve(problem, "spectral", csz, cnt, time_method, settings)
        else:
            sol = coarse
    else:
        method = FLUX_METHOD if flux else "fd"
        time_method = ("cn" if tm in ("auto", "chebyshev") else tm) if heat else ""
        sizes = [n_given or FD_DEFAULT_N[problem.pde][dim]] * dim
        nt = settings["nt"] or (sizes[0] - 1 if heat else 0)
        if heat and time_method == "cn":
            nt = time_levels(nt, None)[0]  # a multiple of the stored-level stride
        sol = _fd_solution(problem, sizes, nt, time_method, order, settings)
        coarse = None
        if estimate:
            csz = [(s + 1) // 2 for s in sizes]
            coarse = _fd_solution(problem, csz, max(1, nt // 2), time_method, order, settings)
        divisor = 2.0**order - 1.0
    est = float("nan")
    ref = _as_reference(
        problem,
        sol,
        method=method,
        n=sizes,
        nt=nt if heat else 0,
        order=order if method in ("fd", FLUX_METHOD) else 0,
        time_method=time_method,
        settings=dict(settings),
    )
    check = _check_grid(problem)
    fine_vals = ref.on_grid(check) if method == "spectral" else ref(grid_points(check))
    if coarse is not None:
        cref = _as_reference(problem, coarse, method=method, n=sizes)
        cvals = cref.on_grid(check) if method == "spectral" else cref(grid_points(check))
        est = _relative(np.reshape(cvals, -1), np.reshape(fine_vals, -1)) / divisor
    ref.estimated_error = est
    if problem.exact is not None:
        exact = _Data(problem).exact(check)
        ref.exact_error = _relative(np.reshape(fine_vals, -1), exact.reshape(-1))
    ref.seconds = time.perf_counter() - started
    if note:
        ref.settings["auto_note"] = note
    if sol.note:
        ref.settings["solver_note"] = sol.note
    return ref


# --------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """``$MSCALEPDE_CACHE/reference`` if set, else ``~/.cache/mscalepde/reference``."""
    base = os.environ.get("MSCALEPDE_CACHE")
    root = Path(base) if base else Path.home() / ".cache" / "mscalepde"
    return root / "reference"


def cache_path(
    problem: Problem, settings: Mapping[str, Any], directory: Path | None = None
) -> Path:
    d = Path(directory) if directory is not None else cache_dir()
    return d / f"{problem.fingerprint()}-{_settings_key(settings)}.npz"


_MEMO: dict[str, Reference] = {}


def get_reference(
    problem: Problem,
    *,
    cache: bool = True,
    refresh: bool = False,
    directory: str | Path | None = None,
    **overrides: Any,
) -> Reference:
    """The cached reference of ``problem`` (computed and stored when missing).

    The cache key is ``problem.fingerprint()`` (equation, domain and data) plus the
    settings (``reference`` section and ``overrides``) and the solver version."""
    settings = reference_settings(problem, **overrides)
    path = cache_path(problem, settings, Path(directory) if directory is not None else None)
    key = str(path)
    if cache and not refresh:
        if key in _MEMO:
            return _MEMO[key]
        if path.is_file():
            try:
                ref = Reference.load(path)
                if ref.fingerprint == problem.fingerprint():
                    _MEMO[key] = ref
                    return ref
            except ReferenceError:
                pass  # a corrupt cache entry is recomputed
    ref = compute_reference(problem, settings)
    if cache:
        try:
            ref.save(path)
        except MscaleError:
            pass  # an unwritable cache is not an error
        _MEMO[key] = ref
    return ref


def reference_values(problem: Problem, points: np.ndarray) -> np.ndarray:
    """The (cached) reference solution at ``points`` (N, D): the truth of a problem
    without ``exact``."""
    return get_reference(problem)(points)


# --------------------------------------------------------------------------- baseline


def classical_baseline(
    problem: Problem,
    target: float | None = None,
    *,
    seconds: float | None = None,
    points: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    method: str = "fd",
    max_seconds: float = 60.0,
) -> dict[str, Any]:
    """The classical solver's cost of the network's accuracy, and its accuracy at the
    network's cost.

    Solves with ``method`` (fd: second order, n = 5, 9, 17, ... points per axis and for
    heat nt = n − 1 CN steps; spectral: n = 8, 12, 16, 24, ...) until the relative L2
    error on ``points`` (default: the check grid) against ``truth`` (default: ``exact``,
    else the cached reference) is at most ``target`` and, when ``seconds`` is given,
    until one solve takes (or the next would take, at 2^(d+1) times the cost) longer
    than ``seconds``; it stops early (``capped``) when the next solve would push the total
    past ``max_seconds``. Each solve is timed (data + solve + recovery, not the
    interpolation to ``points``).

    Returns ``{'method', 'target', 'reached', 'n', 'nt', 'seconds', 'rel_l2', 'capped',
    'runs', 'equal_time': {'seconds', 'n', 'rel_l2', 'budget'} or None}``; ``runs`` lists
    every solve. With a reference (not ``exact``) as truth, errors below the reference's
    own estimated error are not meaningful.
    """
    if problem.pde == "fit":
        raise ReferenceError("pde: fit has no classical solver baseline")
    if target is not None and not math.isfinite(target):
        target = None  # a diverged network: report the equal-time error only
    if points is None:
        points = grid_points(_check_grid(problem))
    if truth is None:
        if problem.exact is not None:
            env = {v: points[:, i] for i, v in enumerate(problem.variables)}
            truth = np.asarray(problem.exact.numpy(env), dtype=float).reshape(-1)
        else:
            truth = get_reference(problem)(points)
    if not problem.domain.is_box:
        return _fem_baseline(problem, target, seconds, points, truth, max_seconds)
    settings = reference_settings(
        problem, method=method, order=2, time_method="cn" if problem.pde == "heat" else None
    )
    dim = problem.domain.space_dim
    heat = problem.pde == "heat"
    cap = FD_DEFAULT_N if method == "fd" else {"poisson": SPECTRAL_CAP, "heat": SPECTRAL_CAP}
    limit = 4 * cap[problem.pde][dim] if method == "fd" else cap[problem.pde][dim]
    n0 = 5 if method == "fd" else 8
    tm = "cn" if method == "fd" else "chebyshev"
    _solve(problem, method, [n0] * dim, 4 if heat else 0, tm, settings)  # warm-up (imports)

    def fd_runs() -> Iterator[dict[str, Any]]:
        n = n0
        while n <= limit:
            nt = (n - 1) if heat else 0
            start = time.perf_counter()
            sol = _solve(problem, method, [n] * dim, max(nt, 4) if heat else 0, tm, settings)
            elapsed = time.perf_counter() - start
            ref = _as_reference(problem, sol, method=method, n=[n] * dim)
            yield {"n": n, "nt": nt, "seconds": elapsed, "rel_l2": _relative(ref(points), truth)}
            n = 2 * n - 1 if method == "fd" else int(n * 1.5)

    # the next solve costs about growth x this one (n and nt doubled; dense n^3)
    growth = 2.0 ** (dim + heat) if method == "fd" else 1.5**3
    return _ladder(method, fd_runs(), growth, target, seconds, max_seconds)


def _ladder(
    method: str,
    runs_in: Iterator[dict[str, Any]],
    growth: float,
    target: float | None,
    seconds: float | None,
    max_seconds: float,
) -> dict[str, Any]:
    """Take solves of growing resolution from ``runs_in`` (each ``{'n', 'nt', 'seconds',
    'rel_l2'[, 'h']}``) until the target is reached and one solve outlasts ``seconds`` (the
    next would cost ``growth`` × the last), or the total would pass ``max_seconds``."""
    runs: list[dict[str, Any]] = []
    hit = equal = None
    total, capped = 0.0, False
    for run in runs_in:
        runs.append(run)
        elapsed = run["seconds"]
        total += elapsed
        if seconds is not None and elapsed <= seconds:
            equal = run
        if target is not None and hit is None and run["rel_l2"] <= target:
            hit = run
        predicted = max(elapsed, 1e-3) * growth
        done_target = target is None or hit is not None
        done_time = seconds is None or elapsed > seconds or predicted > 2.0 * seconds
        if done_target and done_time:
            break
        if total + predicted > max_seconds:
            capped = True
            break
    best = hit or (runs[-1] if runs else {})
    out = {
        "method": method,
        "target": target,
        "reached": hit is not None,
        "n": best.get("n"),
        "nt": best.get("nt"),
        "seconds": best.get("seconds"),
        "rel_l2": best.get("rel_l2"),
        "equal_time": None if equal is None else {**equal, "budget": seconds},
        "capped": capped,
        "runs": runs,
    }
    if "h" in best:
        out["h"] = best["h"]
    return out


def _fem_baseline(
    problem: Problem,
    target: float | None,
    seconds: float | None,
    points: np.ndarray,
    truth: np.ndarray,
    max_seconds: float,
) -> dict[str, Any]:
    """:func:`classical_baseline` on a shape: P2 finite elements (meshing included in the
    time) at h = diam/8, diam/16, … (``n`` is the number of DOFs)."""
    from mscalepde.reference.fem import default_h, solve_fem_retrying

    heat = problem.pde == "heat"

    def fem_runs() -> Iterator[dict[str, Any]]:
        h = default_h(problem, 8)
        solve_fem_retrying(problem, h)  # warm-up (imports, the first assembly)
        for _ in range(12):
            sol = solve_fem_retrying(problem, h)
            h = sol.h
            yield {
                "n": sol.n_dofs,
                "nt": sol.nt,
                "h": h,
                "seconds": sol.seconds,  # meshing + assembly + solve (not the child's start)
                "rel_l2": _relative(sol(points), truth),
            }
            h /= 2

    growth = 2.0 ** (problem.domain.space_dim + 1.5 * heat)
    return _ladder(FEM_METHOD, fem_runs(), growth, target, seconds, max_seconds)


# --------------------------------------------------------------------------- integration


def reference_truth(problem: Problem) -> Callable[[np.ndarray], np.ndarray]:
    """The truth of ``problem`` as a function of points (N, D): ``exact`` when given,
    else the cached reference (computed on first use)."""
    if problem.exact is not None:
        exact = problem.exact
        variables = problem.variables

        def fn(points: np.ndarray) -> np.ndarray:
            env = {v: points[:, i] for i, v in enumerate(variables)}
            return np.asarray(exact.numpy(env), dtype=np.float64).reshape(-1)

        return fn
    return get_reference(problem)


def truth_info(problem: Problem) -> dict[str, Any]:
    """What the errors of a run are measured against (for ``summary.json``)."""
    if problem.truth is not None:
        return {
            "truth": "file",
            "file": str(problem.truth.path),
            "sha256": problem.truth.sha256,
            "points": len(problem.truth.values),
        }
    if problem.exact is not None:
        return {"truth": "exact"}
    ref = get_reference(problem)
    return {
        "truth": "reference",
        "reference": {
            "method": ref.method,
            "n": ref.n,
            "nt": ref.nt,
            "estimated_error": ref.estimated_error,
            "seconds": ref.seconds,
            "file": str(cache_path(problem, reference_settings(problem))),
        },
    }


def describe_reference(ref: Reference) -> list[str]:
    """Lines for ``mscalepde reference``."""
    if isinstance(ref, FemReference):
        sol = ref.solution
        text = f"fem, P{ref.order} (h {ref.h:.3g}, {ref.n[0]} DOFs, {sol.n_elements} elements"
        text += f", BDF2 in time (nt {ref.nt}))" if ref.nt else ")"
        lines = [
            f"method          {text}",
            f"estimated error {ref.estimated_error:.3e} (relative L2, refinement study)",
        ]
        if ref.exact_error is not None:
            lines.append(f"error vs exact  {ref.exact_error:.3e}")
        lines.append(f"wall time       {ref.seconds:.3f} s")
        return lines
    grid = " x ".join(str(v) for v in ref.n)
    if ref.nt:
        grid += f", {ref.time_method} in time (nt {ref.nt})"
    order = f", order {ref.order}" if ref.method in ("fd", FLUX_METHOD) else ""
    lines = [
        f"method          {ref.method}{order} ({grid})",
        f"estimated error {ref.estimated_error:.3e} (relative L2, refinement study)",
    ]
    if ref.exact_error is not None:
        lines.append(f"error vs exact  {ref.exact_error:.3e}")
    lines.append(f"wall time       {ref.seconds:.3f} s")
    solver = ref.settings.get("solver_note")
    if solver:
        lines.insert(1, f"solver          {solver}")
    note = ref.settings.get("auto_note")
    if note:
        lines.append(f"auto            fd chosen: {note}")
    return lines


def baseline_line(summary: Mapping[str, Any]) -> str | None:
    """The "classical baseline" line of a solve summary (``summary['classical_baseline']``
    as returned by :func:`classical_baseline`), or None."""
    b = summary.get("classical_baseline")
    if not b or b.get("n") is None:
        return None
    name = {"fd": "FD", FEM_METHOD: "FEM P2"}.get(b["method"], "spectral")
    grid = f"n={b['n']}" + (f", nt={b['nt']}" if b.get("nt") else "")
    if b["method"] == FEM_METHOD:
        grid = f"h={b['h']:.3g}, {b['n']} DOFs" + (f", nt={b['nt']}" if b.get("nt") else "")
    if b["reached"]:
        text = f"{name} ({grid}) reaches {b['rel_l2']:.1e} in {b['seconds']:.3g} s"
    else:
        text = (
            f"{name} did not reach {b['target']:.1e} "
            f"(best {b['rel_l2']:.1e} at {grid}, {b['seconds']:.3g} s)"
        )
    eq = b.get("equal_time")
    if eq:
        err = f"{eq['rel_l2']:.1e}"
        ref_err = (summary.get("reference") or {}).get("estimated_error")
        if ref_err is not None and eq["rel_l2"] < 2.0 * ref_err:
            err = f"{err}, at the reference's own accuracy {ref_err:.1e}"
        where = f"{eq['n']} DOFs" if b["method"] == FEM_METHOD else f"n={eq['n']}"
        text += f"; in the network's {eq['budget']:.3g} s: {err} ({where})"
    if b.get("capped"):
        text += " (sweep capped)"
    return f"classical baseline {text}"
