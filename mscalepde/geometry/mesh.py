"""Triangle (2D) and tetrahedral (3D) meshes of constructive shapes, for the finite-element
reference (:mod:`mscalepde.reference.fem`).

:func:`mesh_geometry` rebuilds the shape tree of a :class:`~.shapes.Geometry` in gmsh's
OpenCASCADE kernel (Geuzaine & Remacle 2009): ``Box`` → rectangle / box, ``Ellipsoid`` →
disk (``addDisk``, axes swapped when r_y > r_x) or a unit sphere dilated by the radii,
``Polygon`` → points, lines, a curve loop and a plane surface; ``Union`` / ``Intersection``
/ ``Difference`` → OCC ``fuse`` / ``intersect`` / ``cut``. gmsh meshes the result with
elements of size at most ``h`` and of geometric order ``order`` (order 2: the mid-edge
nodes lie on the true curved boundary, so P2 elements see a second-order geometry). The
mesh comes back as a scikit-fem mesh (``MeshTri1`` / ``MeshTri2``, ``MeshTet1`` /
``MeshTet2``) whose ``boundaries`` map every part name of ∂Ω to its boundary facets.

**Parts.** A boundary facet belongs to the leaf primitive whose surface is nearest to its
centre (tolerance ladder from 10 ε up to h; the first leaf in tree order on ties: the
same rule as :meth:`~.shapes.Geometry.boundary_filter`), and so to that leaf's part name.
A mesh that misses a part of ``geometry.parts`` is an error.

**Corners.** In 2D, a boundary vertex with interior angle ω > π (a re-entrant corner)
makes the solution singular like r^λ, λ = π/ω. With ``grade=True`` the mesh is graded
there: size h·(r/R)^(1−μ) within R = diam/4 of the corner, μ = 0.9 λ/order (the grading
of Apel, Sändig & Whiteman 1996 that restores the optimal rate of P_order elements).
3D edges are not graded.

gmsh is global state: calls are serialised by a lock, run without terminal output, and
gmsh is finalised afterwards (when it was already initialised by someone else, a private
model is used and removed, and the options changed here are restored).
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import MeshError
from mscalepde.geometry.shapes import (
    Box,
    Difference,
    Ellipsoid,
    Geometry,
    Intersection,
    Polygon,
    Shape,
    Union,
)

__all__ = ["MeshError", "facet_parts", "mesh_geometry"]

_LOCK = threading.Lock()
#: gmsh options set for a run (restored afterwards when gmsh was already initialised)
_OPTIONS: dict[str, float] = {
    "General.Terminal": 0,
    "General.Verbosity": 0,
    "General.NumThreads": 1,
    "Mesh.MeshSizeFromPoints": 0,
    "Mesh.MeshSizeFromCurvature": 0,
    "Mesh.MeshSizeExtendFromBoundary": 0,
    "Mesh.MeshSizeMin": 0.0,
    "Mesh.SecondOrderLinear": 0,
    "Mesh.HighOrderOptimize": 0,
}


@contextmanager
def _gmsh_session() -> Iterator[Any]:
    """gmsh, initialised quietly for one model; serialised, finalised (or restored)."""
    import gmsh

    with _LOCK:
        owner = not gmsh.isInitialized()
        if owner:
            gmsh.initialize([], readConfigFiles=False, interruptible=False)
        saved = {
            k: gmsh.option.getNumber(k)
            for k in (*_OPTIONS, "Mesh.MeshSizeMax", "Mesh.ElementOrder")
        }
        previous = gmsh.model.getCurrent() if not owner else ""
        gmsh.model.add(f"mscalepde-{threading.get_ident()}")
        try:
            for k, v in _OPTIONS.items():
                gmsh.option.setNumber(k, v)
            yield gmsh
        finally:
            if owner:
                gmsh.finalize()
            else:
                gmsh.model.remove()
                if previous:
                    gmsh.model.setCurrent(previous)
                for k, v in saved.items():
                    gmsh.option.setNumber(k, v)


def _build(occ: Any, shape: Shape, dim: int) -> list[tuple[int, int]]:
    """The OCC entities (dimTags) of a shape tree."""
    if isinstance(shape, Box):
        lo, hi = shape.lo, shape.hi
        if dim == 2:
            return [(2, occ.addRectangle(lo[0], lo[1], 0.0, hi[0] - lo[0], hi[1] - lo[1]))]
        return [(3, occ.addBox(*lo, *(hi - lo)))]
    if isinstance(shape, Ellipsoid):
        c, r = shape.c, shape.r
        if dim == 2:
            if r[0] >= r[1]:
                return [(2, occ.addDisk(c[0], c[1], 0.0, r[0], r[1]))]
            return [(2, occ.addDisk(c[0], c[1], 0.0, r[1], r[0], zAxis=[0, 0, 1], xAxis=[0, 1, 0]))]
        tag = occ.addSphere(c[0], c[1], c[2], 1.0)
        if np.all(r == r[0]):
            occ.remove([(3, tag)], recursive=True)
            tag = occ.addSphere(c[0], c[1], c[2], float(r[0]))
        else:
            occ.dilate([(3, tag)], c[0], c[1], c[2], r[0], r[1], r[2])
        return [(3, tag)]
    if isinstance(shape, Polygon):
        pts = [occ.addPoint(x, y, 0.0) for x, y in shape.vertices]
        lines = [occ.addLine(pts[i], pts[(i + 1) % len(pts)]) for i in range(len(pts))]
        return [(2, occ.addPlaneSurface([occ.addCurveLoop(lines)]))]
    parts = [_build(occ, p, dim) for p in shape.children()]
    if isinstance(shape, Union):
        out, _ = occ.fuse(parts[0], [t for p in parts[1:] for t in p])
        return list(out)
    if isinstance(shape, Intersection):
        out = parts[0]
        for p in parts[1:]:
            out, _ = occ.intersect(out, p)
        return list(out)
    if isinstance(shape, Difference):
        out, _ = occ.cut(parts[0], [t for p in parts[1:] for t in p])
        return list(out)
    raise MeshError(f"cannot mesh a {type(shape).__name__}")


def _reentrant_corners(gmsh: Any, geometry: Geometry) -> list[tuple[int, float]]:
    """2D: the boundary vertices (gmsh point tags) with interior angle ω > π, and their
    singular exponent λ = π/ω."""
    model = gmsh.model
    diam = float(np.linalg.norm(np.subtract(*zip(*geometry.bounds))))
    out = []
    for _, tag in model.getEntities(0):
        curves = model.getAdjacencies(0, tag)[0]
        if len(curves) != 2:
            continue
        p = np.array(model.getValue(0, tag, []))[:2]
        tangents = []
        scale = 1e-9 * diam
        for c in curves:
            lo, hi = model.getParametrizationBounds(1, int(c))
            at_lo = np.array(model.getValue(1, int(c), [lo[0]]))[:2]
            at_hi = np.array(model.getValue(1, int(c), [hi[0]]))[:2]
            if np.linalg.norm(at_lo - at_hi) <= scale:
                break  # a closed curve
            if np.linalg.norm(at_lo - p) <= scale:
                u, sign = lo[0], 1.0
            elif np.linalg.norm(at_hi - p) <= scale:
                u, sign = hi[0], -1.0
            else:
                break
            d = sign * np.array(model.getDerivative(1, int(c), [u]))[:2]
            tangents.append(d / np.linalg.norm(d))
        if len(tangents) != 2:
            continue
        theta = math.acos(float(np.clip(tangents[0] @ tangents[1], -1.0, 1.0)))
        if theta > math.pi - 1e-6:  # a smooth point
            continue
        bisector = tangents[0] + tangents[1]
        probe = p + 1e-6 * diam * bisector / np.linalg.norm(bisector)
        if geometry.shape.contains(probe[None])[0]:
            continue  # convex: the domain is the sector of angle θ < π
        out.append((int(tag), math.pi / (2 * math.pi - theta)))
    return out


def _grade(gmsh: Any, geometry: Geometry, h: float, order: int) -> int:
    """Grade the mesh towards re-entrant corners (module docstring); their number."""
    corners = _reentrant_corners(gmsh, geometry)
    if not corners:
        return 0
    field = gmsh.model.mesh.field
    diam = float(np.linalg.norm(np.subtract(*zip(*geometry.bounds))))
    radius = diam / 4
    fields = []
    for tag, lam in corners:
        dist = field.add("Distance")
        field.setNumbers(dist, "PointsList", [tag])
        gamma = 1.0 - 0.9 * lam / order
        f = field.add("MathEval")
        # h (r/R)^γ, floored at 1e-4 h, capped at h (the global MeshSizeMax)
        field.setString(f, "F", f"{h!r}*(({1e-4 ** (1 / gamma)!r}+F{dist}/{radius!r})^{gamma!r})")
        fields.append(f)
    top = field.add("Min")
    field.setNumbers(top, "FieldsList", fields)
    field.setAsBackgroundMesh(top)
    return len(corners)


def _to_skfem(gmsh: Any, dim: int, order: int) -> Any:
    import skfem

    types = {(2, 1): 2, (2, 2): 9, (3, 1): 4, (3, 2): 11}  # gmsh element type numbers
    etype = types[(dim, order)]
    tags, coords, _ = gmsh.model.mesh.getNodes()
    coords = coords.reshape(-1, 3)[:, :dim]
    index = np.full(int(tags.max()) + 1, -1, dtype=np.int64)
    index[tags.astype(np.int64)] = np.arange(len(tags))
    _, nodes = gmsh.model.mesh.getElementsByType(etype)
    npe = {2: 3, 9: 6, 4: 4, 11: 10}[etype]
    t = index[nodes.astype(np.int64).reshape(-1, npe)]
    if etype == 11:  # gmsh tet10 edges 01 12 20 30 32 31 → skfem's 01 12 02 03 13 23
        t = t[:, [0, 1, 2, 3, 4, 5, 6, 7, 9, 8]]
    used = np.unique(t)  # drop geometry-only nodes (e.g. points added for grading)
    remap = np.full(len(coords), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    p, t = coords[used].T.copy(), remap[t].T.copy()
    cls = {
        (2, 1): skfem.MeshTri1,
        (2, 2): skfem.MeshTri2,
        (3, 1): skfem.MeshTet1,
        (3, 2): skfem.MeshTet2,
    }[(dim, order)]
    return cls(p, t)


def facet_parts(mesh: Any, geometry: Geometry, h: float) -> dict[str, np.ndarray]:
    """The boundary facets of ``mesh`` by part name (module docstring)."""
    facets = mesh.boundary_facets()
    centre = mesh.p[:, mesh.facets[:, facets]].mean(axis=1).T  # (nf, dim)
    label = np.full(len(facets), -1)
    tol = 10 * geometry.eps
    while True:
        todo = label < 0
        if not todo.any():
            break
        for i, (prim, _) in enumerate(geometry.leaves):
            hit = todo & (label < 0)
            if not hit.any():
                break
            on = np.zeros(len(facets), dtype=bool)
            on[hit] = prim.on_surface(centre[hit], tol)
            label[on] = i
        if tol > 2 * h:
            break
        tol *= 2
    if (label < 0).any():
        raise MeshError(f"{int((label < 0).sum())} boundary facets lie on no primitive's surface")
    names = [n for _, n in geometry.leaves]
    out: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        out.setdefault(name, []).extend(facets[label == i].tolist())
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in out.items() if v}


def mesh_geometry(
    geometry: Geometry,
    h: float,
    order: int = 1,
    *,
    grade: bool = True,
    isolate: bool = True,
    timeout: float = 600.0,
) -> Any:
    """A scikit-fem mesh of Ω (module docstring): ``MeshTri1``/``MeshTri2`` in 2D,
    ``MeshTet1``/``MeshTet2`` in 3D, elements of size ≤ ``h`` and geometric order
    ``order`` (1 or 2), ``mesh.boundaries`` = {part name: boundary facet indices}.
    ``grade`` grades the mesh towards re-entrant corners (2D). Raises :class:`MeshError`.

    gmsh 4.15 can crash the whole process (a segmentation fault inside ``generate(3)``
    for some coarse h on a cube minus balls, measured), which no ``try`` catches. With
    ``isolate`` (the default) gmsh runs in a child process (``python -m
    mscalepde.geometry.mesh``) that sends back the mesh arrays; a crash (or ``timeout``
    seconds without an answer) becomes a :class:`MeshError`. The returned mesh has
    ``mesh_seconds``: the child's own meshing time (its start-up and imports excluded, so
    that the FEM baseline's timings stay honest)."""
    dim = geometry.dim
    if dim not in (2, 3):
        raise MeshError(f"meshes are 2D or 3D; this domain is {dim}D")
    if order not in (1, 2):
        raise MeshError(f"mesh order must be 1 or 2, got {order}")
    if not (h > 0 and math.isfinite(h)):
        raise MeshError(f"mesh size h must be a positive number, got {h}")
    if not isolate:
        start = time.perf_counter()
        mesh = _mesh_here(geometry, h, order, grade=grade)
        return _timed(mesh, time.perf_counter() - start)
    import json
    import subprocess
    import sys
    import tempfile

    from mscalepde.geometry.shapes_yaml import shape_to_yaml

    with tempfile.TemporaryDirectory(prefix="mscalepde-mesh-") as tmp:
        spec = Path(tmp) / "spec.json"
        out = Path(tmp) / "mesh.npz"
        spec.write_text(
            json.dumps(
                {"shape": shape_to_yaml(geometry.shape), "h": h, "order": order, "grade": grade}
            )
        )
        # the child imports this very copy of the package (not whatever the working
        # directory or site-packages would give), runs in the temporary folder and writes
        # no core file when gmsh crashes
        root = str(Path(__file__).resolve().parents[2])
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]),
        }
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "mscalepde.geometry.mesh", str(spec), str(out)],
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd=tmp,
                env=env,
                preexec_fn=_no_core_files if os.name == "posix" else None,
            )
        except subprocess.TimeoutExpired:
            raise MeshError(
                f"gmsh did not finish meshing with h = {h:g} in {timeout:g} s"
            ) from None
        except (OSError, subprocess.SubprocessError) as exc:
            raise MeshError(f"could not run the meshing process: {exc}") from None
        if proc.returncode < 0:
            raise MeshError(
                f"gmsh crashed (signal {-proc.returncode}) meshing with h = {h:g}; "
                "another mesh size (reference.h) usually avoids it"
            )
        if proc.returncode != 0 or not out.is_file():
            lines = proc.stderr.strip().splitlines() or ["no message"]
            raise MeshError(lines[-1].removeprefix("MeshError: ")[:300])
        with np.load(out, allow_pickle=False) as z:
            import skfem

            mesh = getattr(skfem, str(z["cls"]))(np.array(z["p"]), np.array(z["t"]))
            names = [str(n) for n in z["names"]]
            parts = {n: np.array(z[f"part_{i}"]) for i, n in enumerate(names)}
            seconds = float(z["seconds"])
    return _timed(_with_parts(mesh, parts), seconds)


def _no_core_files() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _timed(mesh: Any, seconds: float) -> Any:
    object.__setattr__(mesh, "mesh_seconds", seconds)
    return mesh


def _child(spec_path: str, out_path: str) -> int:
    """The meshing process: read the spec, mesh, write the arrays (exit 3 on MeshError)."""
    import json

    from mscalepde.geometry.shapes_yaml import parse_shape

    spec = json.loads(Path(spec_path).read_text())
    geometry = Geometry(parse_shape(spec["shape"]))
    # the child's cold start is not meshing time: import what meshing and the facet
    # classification use, and estimate the parts, before the clock starts
    import gmsh  # noqa: F401
    import skfem  # noqa: F401
    from scipy.stats import qmc  # noqa: F401

    _ = geometry.parts
    start = time.perf_counter()
    try:
        mesh = _mesh_here(geometry, float(spec["h"]), int(spec["order"]), grade=spec["grade"])
    except MeshError as exc:
        print(f"MeshError: {exc}", file=sys.stderr)
        return 3
    seconds = time.perf_counter() - start
    names = list(mesh.boundaries or {})
    arrays = {
        "cls": np.array(type(mesh).__name__),
        "p": np.asarray(mesh.doflocs, dtype=np.float64),
        "t": np.asarray(mesh.t, dtype=np.int64),
        "names": np.array(names),
        "seconds": np.array(seconds),
        **{f"part_{i}": np.asarray(mesh.boundaries[n]) for i, n in enumerate(names)},
    }
    np.savez(out_path, **arrays)
    return 0


def _mesh_here(geometry: Geometry, h: float, order: int = 1, *, grade: bool = True) -> Any:
    """:func:`mesh_geometry` in this process (gmsh may crash it: see there)."""
    dim = geometry.dim
    try:
        with _gmsh_session() as gmsh:
            ents = _build(gmsh.model.occ, geometry.shape, dim)
            gmsh.model.occ.synchronize()
            if not ents:
                raise MeshError("gmsh built an empty domain")
            gmsh.option.setNumber("Mesh.MeshSizeMax", float(h))
            gmsh.option.setNumber("Mesh.ElementOrder", order)
            if grade and dim == 2:
                _grade(gmsh, geometry, float(h), order)
            gmsh.model.mesh.generate(dim)
            if order == 2:
                gmsh.model.mesh.setOrder(2)
            mesh = _to_skfem(gmsh, dim, order)
    except MeshError:
        raise
    except Exception as exc:  # gmsh raises plain Exception with its last error
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise MeshError(f"gmsh failed to mesh the domain: {lines[0][:200]}") from None
    parts = facet_parts(mesh, geometry, h)
    missing = [n for n in geometry.parts if n not in parts]
    if missing:
        raise MeshError(
            f"the mesh (h = {h:g}) carries no facet of the boundary part(s) "
            f"{', '.join(missing)}; try a smaller h"
        )
    return _with_parts(mesh, parts)


def _with_parts(mesh: Any, parts: dict[str, np.ndarray]) -> Any:
    from dataclasses import replace

    return replace(mesh, _boundaries={k: v.astype(np.int32) for k, v in parts.items()})


def parts_of(mesh: Any) -> Sequence[str]:
    """The part names a mesh from :func:`mesh_geometry` carries."""
    return tuple(mesh.boundaries or ())


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], sys.argv[2]))
