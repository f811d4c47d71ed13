"""Where an export evaluates the fields: :class:`Sites`, built by :func:`sites_for`.

- a box: the uniform tensor grid with ``n`` points per axis (endpoints included), with
  line (1D), quadrilateral (2D) or hexahedral (3D) cells, so that ParaView interpolates
  between points as the grid does;
- a shape (``domain.shape``): the run's finite-element reference mesh when it has one and
  no ``n`` is given (the mesh its truth was computed on), else a first-order triangle (2D)
  or tetrahedral (3D) mesh of Ω from gmsh (:func:`mscalepde.geometry.mesh.mesh_geometry`)
  with element size h = diam(bounding box)/``n``: the fields live in Ω only, and the holes
  stay holes;
- the user's points (``--points FILE``, columns named like the problem's variables,
  checked like a truth file): vertex cells, no interpolation. Points outside Ω are refused.

A heat problem's fields are evaluated at the spatial sites at each of ``times`` (default:
11 equally spaced times of the window, both ends included), unless the user's points
carry a ``t`` column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import ProblemError, SchemaError
from mscalepde.geometry import grid_points, tensor_grid
from mscalepde.geometry.mesh import mesh_geometry
from mscalepde.geometry.sampling import inside_mask
from mscalepde.problem.datafile import read_points
from mscalepde.problem.model import Problem

GRID = {1: 1001, 2: 201, 3: 41}  # default points per axis of a box
MESH_DIVISIONS = {2: 100, 3: 24}  # default diam/h of a shape's mesh
TIMES = 11
MAX_SITES = 4_000_000  # spatial sites × times evaluated at most

_CELLS = {1: "line", 2: "quad", 3: "hexahedron"}


@dataclass
class Sites:
    """Points (N, d) (or (N, d + 1) when the user's points carry t), meshio cells over
    them, and the times (None: steady, or the points carry t as their last column)."""

    points: np.ndarray
    cells: list[tuple[str, np.ndarray]]
    kind: str  # grid | mesh | points
    space_dim: int
    times: np.ndarray | None = None
    shape: tuple[int, ...] = ()  # the grid's points per axis

    @property
    def xyz(self) -> np.ndarray:
        """The points padded with zero columns to three coordinates (VTK's convention)."""
        space = self.points[:, : self.space_dim]
        return np.hstack([space, np.zeros((len(space), 3 - self.space_dim))])

    def inputs(self, time: float | None) -> np.ndarray:
        """The network's input rows (N, D) at ``time`` (space, then t)."""
        if time is None:
            return self.points
        return np.hstack([self.points, np.full((len(self.points), 1), float(time))])


def grid_cells(shape: tuple[int, ...]) -> list[tuple[str, np.ndarray]]:
    """Cells of a tensor grid whose points are in 'ij' order (:func:`grid_points`):
    segments, counter-clockwise quadrilaterals or VTK-ordered hexahedra."""
    index = np.arange(int(np.prod(shape))).reshape(shape)
    if len(shape) == 1:
        return [("line", np.stack([index[:-1], index[1:]], axis=1))]
    if len(shape) == 2:
        a, b = index[:-1, :-1], index[1:, :-1]
        c, d = index[1:, 1:], index[:-1, 1:]
        return [("quad", np.stack([x.ravel() for x in (a, b, c, d)], axis=1))]
    corners = []
    for dz in (0, 1):
        for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1)):
            corners.append(index[dx : shape[0] - 1 + dx, dy : shape[1] - 1 + dy,
                                 dz : shape[2] - 1 + dz].ravel())
    return [(_CELLS[3], np.stack(corners, axis=1))]


def default_times(problem: Problem, times: list[float] | None) -> np.ndarray | None:
    """The export's times: None for a steady problem; ``times`` checked to lie in the time
    window; by default :data:`TIMES` equally spaced times."""
    if problem.domain.time is None:
        if times:
            raise ProblemError("--times", "", "the problem has no time (not a heat problem)")
        return None
    t0, t1 = problem.domain.time
    if not times:
        return np.linspace(t0, t1, TIMES)
    arr = np.asarray(times, dtype=np.float64)
    bad = arr[~((arr >= t0) & (arr <= t1))]
    if bad.size:
        raise ProblemError(
            "--times", "", f"{bad[0]:g} lies outside the time window [{t0:g}, {t1:g}]"
        )
    return np.unique(arr)


def sites_for(
    problem: Problem,
    *,
    n: int | None = None,
    points: str | Path | None = None,
    times: list[float] | None = None,
    fem_mesh: Any = None,
) -> Sites:
    """The sites of an export (module docstring): the user's ``points``, else the mesh of a
    shape or the grid of a box with resolution ``n``. ``fem_mesh``: the run's finite-element
    reference mesh (scikit-fem), used for a shape when no ``n`` is given, so that the
    export lies on the mesh its truth was computed on (its corner vertices and triangles or
    tetrahedra; a P2 mesh's edge nodes are left out)."""
    domain = problem.domain
    if n is not None and n < 2:
        raise ProblemError("--grid", "", f"expected an integer >= 2, got {n}")
    if points is not None:
        if n is not None:
            raise ProblemError("--points", "", "not with --grid (the points are the sites)")
        return _user_points(problem, Path(points), times)
    t = default_times(problem, times)
    d = domain.space_dim
    if domain.geometry is None:
        shape = tuple([n or GRID[d]] * d)
        pts = grid_points(tensor_grid(list(domain.box), list(shape)))
        sites = Sites(pts, grid_cells(shape), "grid", d, t, shape)
    elif fem_mesh is not None and n is None:
        corners = np.asarray(fem_mesh.t, dtype=np.int64)[: d + 1]
        used, inverse = np.unique(corners, return_inverse=True)
        cells = [("triangle" if d == 2 else "tetra", inverse.reshape(corners.shape).T.copy())]
        pts = np.asarray(fem_mesh.p, dtype=np.float64)[:, used].T
        sites = Sites(pts, cells, "fem mesh", d, t)
    else:
        lo, hi = (np.array(b) for b in zip(*domain.box))
        h = float(np.linalg.norm(hi - lo)) / (n or MESH_DIVISIONS[d])
        mesh = mesh_geometry(domain.geometry, h, order=1)
        cells = [("triangle" if d == 2 else "tetra", np.asarray(mesh.t.T, dtype=np.int64))]
        sites = Sites(np.asarray(mesh.p.T, dtype=np.float64), cells, "mesh", d, t)
    total = len(sites.points) * (1 if t is None else len(t))
    if total > MAX_SITES:
        raise ProblemError(
            "--grid", "", f"{total} evaluation points (sites x times); at most {MAX_SITES}: "
            "give a smaller --grid or fewer --times"
        )
    return sites


def _user_points(problem: Problem, path: Path, times: list[float] | None) -> Sites:
    variables = list(problem.variables)
    try:
        try:
            pts = read_points(path, variables)
        except SchemaError:
            if problem.domain.time is None:
                raise
            # a heat problem's points may be spatial only: evaluated at --times
            variables = variables[:-1]
            pts = read_points(path, variables)
    except SchemaError as exc:
        raise ProblemError(exc.key, "", exc.message) from None
    t = default_times(problem, times)
    if problem.domain.time is not None and len(variables) == len(problem.variables):
        if times:
            raise ProblemError("--times", "", f"{path} gives t for each point")
        t = None
    if len(pts) > MAX_SITES:
        raise ProblemError("--points", "", f"{path}: {len(pts)} points; at most {MAX_SITES}")
    space = pts[:, : problem.domain.space_dim]
    inside = inside_mask(problem.domain, space) & _in_box(problem, pts)
    if not inside.all():
        i = int(np.argmin(inside))
        where = ", ".join(f"{v}={c:.6g}" for v, c in zip(variables, pts[i]))
        raise ProblemError(
            "--points", "", f"{path}: {int((~inside).sum())} of {len(pts)} points lie outside "
            f"the domain (first: {where})"
        )
    cells = [("vertex", np.arange(len(pts), dtype=np.int64)[:, None])]
    return Sites(pts, cells, "points", problem.domain.space_dim, t)


def _in_box(problem: Problem, pts: np.ndarray) -> np.ndarray:
    ok = np.ones(len(pts), dtype=bool)
    for k, (lo, hi) in enumerate(problem.domain.bounds[: pts.shape[1]]):
        tol = 1e-12 * max(1.0, abs(lo), abs(hi))
        ok &= (pts[:, k] >= lo - tol) & (pts[:, k] <= hi + tol)
    return ok
