"""The classical baseline printed after a solve: the time a classical solver needs to reach
the network's error, and the one-line description of a reference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from mscalepde.errors import ReferenceSolveError
from mscalepde.geometry import grid_points
from mscalepde.problem.dimension import is_high_dimensional, no_grid_solver
from mscalepde.problem.model import Problem
from mscalepde.reference.cache import get_reference
from mscalepde.reference.flux import METHOD_NAME as FLUX_METHOD
from mscalepde.reference.options import FEM_METHOD
from mscalepde.reference.result import FemReference, Reference
from mscalepde.reference.solve import (
    FD_DEFAULT_N,
    SPECTRAL_CAP,
    _as_reference,
    _check_grid,
    _relative,
    _solve,
    reference_settings,
)


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
        raise ReferenceSolveError("pde: fit has no classical solver baseline")
    if is_high_dimensional(problem.domain):
        raise ReferenceSolveError(no_grid_solver(problem.domain.space_dim))
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
