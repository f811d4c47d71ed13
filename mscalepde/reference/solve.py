"""Classical reference solvers: a truth for every problem, and the classical baseline.

:func:`compute_reference` solves a ``poisson`` (−∇·(a∇u) + r(x, u) = f) or ``heat``
(u_t − ∇·(a∇u) + r = f) problem on its box and returns a :class:`Reference`: u on a
tensor-product grid (1D coordinate arrays ``x``, ``y``, ``z``, ``t`` as the problem has
them, ``u`` with one axis per coordinate in that order), its estimated error (refinement
study) and the wall time.
:func:`get_reference` caches it as ``reference.npz`` keyed by ``problem.fingerprint()``
and the settings (under ``$MSCALEPDE_CACHE/reference`` or ``~/.cache/mscalepde/reference``);
:func:`~mscalepde.reference.cache.reference_values` evaluates it anywhere in the box, so a
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
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mscalepde.errors import ReferenceSolveError, SchemaError
from mscalepde.geometry import grid_points
from mscalepde.problem.dimension import is_high_dimensional, no_grid_solver
from mscalepde.problem.model import Problem
from mscalepde.reference.collocation import chebyshev_axis, fourier_axis, tail_ratio
from mscalepde.reference.data import _Data
from mscalepde.reference.fd import (
    AXIS_NAMES,
    MAX_STORED_LEVELS,
    Axis1D,
    Forcing,
    LinearSolver,
    SpaceProblem,
    fd_axis,
    heat_bdf,
    heat_chebyshev,
    heat_cn,
    time_levels,
)
from mscalepde.reference.flux import METHOD_NAME as FLUX_METHOD
from mscalepde.reference.flux import FluxSpace
from mscalepde.reference.flux import describe as describe_flux
from mscalepde.reference.flux import solve_heat as flux_heat
from mscalepde.reference.flux import solve_poisson as flux_poisson
from mscalepde.reference.options import FEM_METHOD, REFERENCE_OPTIONS
from mscalepde.reference.result import REFERENCE_VERSION, FemReference, Reference
from mscalepde.schema import validate_section

FD_DEFAULT_N = {"poisson": {1: 2049, 2: 257, 3: 65}, "heat": {1: 513, 2: 129, 3: 33}}


SPECTRAL_CAP = {1: 2049, 2: 129, 3: 49}




TIME_CAP = 129


NONSMOOTH = re.compile(r"\b(abs|minimum|maximum|where|sqrt)\s*\(")


def reference_settings(problem: Problem, **overrides: Any) -> dict[str, Any]:
    """The problem's ``reference`` section (validated, defaults filled) with overrides
    (``None`` values are ignored)."""
    raw = dict(problem.config.get("reference") or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return validate_section(raw, REFERENCE_OPTIONS, "reference")
    except SchemaError as exc:
        raise ReferenceSolveError(f"{problem.origin}: {exc}") from None


def _settings_key(settings: Mapping[str, Any]) -> str:
    text = json.dumps({**settings, "version": REFERENCE_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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
            raise ReferenceSolveError(
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
        raise ReferenceSolveError(
            f"{problem.origin}: pde: fit has no equation to solve (its target is 'exact')"
        )
    if is_high_dimensional(problem.domain):
        raise ReferenceSolveError(f"{problem.origin}: {no_grid_solver(problem.domain.space_dim)}")
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
            raise ReferenceSolveError(
                f"{problem.origin}: method spectral cannot solve a problem with {reason} "
                "(use fd or auto: flux-form finite differences)"
            )
        if order != 2:
            raise ReferenceSolveError(
                f"{problem.origin}: order {order} (Richardson) is not available with the "
                f"flux-form solver ({reason}); use order 2"
            )
        if heat and tm == "chebyshev":
            raise ReferenceSolveError(
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
                    raise ReferenceSolveError(f"{problem.origin}: spectral: {exc}") from None
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
