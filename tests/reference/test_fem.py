"""The finite-element reference (gmsh meshes of CSG shapes, scikit-fem P1/P2)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest

pytest.importorskip("skfem")
pytest.importorskip("gmsh")

from mscalepde.errors import ReferenceSolveError
from mscalepde.geometry.mesh import mesh_geometry
from mscalepde.geometry.sampling import sample_interior
from mscalepde.problem.model import Problem
from mscalepde.problem.validate import problem_from_dict
from mscalepde.reference.fem import FemSolution, fem_reference, solve_fem

ANNULUS = {"difference": [
    {"ball": {"center": [0, 0], "radius": 1}, "name": "outer"},
    {"ball": {"center": [0, 0], "radius": 0.5}, "name": "inner"},
]}
SQUARE_HOLE = {"difference": [
    {"box": [[-1, 1], [-1, 1]], "name": "outer"},
    {"ball": {"center": [0, 0], "radius": 0.4}, "name": "hole"},
]}
L_SHAPE = {"polygon": [[0, 0], [1, 0], [1, 1], [-1, 1], [-1, -1], [0, -1]]}
# θ ∈ (0, 2π] from the edge y = 0, x > 0 counter-clockwise: u = 0 on both edges at 0
L_EXACT = "(x**2 + y**2)**(1/3) * sin(2/3 * (atan2(-y, -x) + pi))"


def _problem(shape: dict, exact: str, boundary: list[dict], **extra: Any) -> Problem:
    return problem_from_dict({"pde": "poisson", "domain": {"shape": shape}, "exact": exact,
                              "boundary": boundary, **extra})


def _dirichlet(face: str) -> dict:
    return {"faces": face, "type": "dirichlet", "value": "exact"}


def _error(problem: Problem, sol: Any, n: int = 4096) -> float:
    """Relative L2 error against ``exact`` at Sobol points of Ω (× time)."""
    pts = sample_interior(problem.domain, n, "sobol", 7)
    env = {v: pts[:, i] for i, v in enumerate(problem.domain.variables)}
    assert problem.exact is not None
    ue = np.broadcast_to(problem.exact.numpy(env), (len(pts),))
    return float(np.linalg.norm(sol(pts) - ue) / np.linalg.norm(ue))


@pytest.fixture(scope="module")
def annulus() -> Problem:
    return _problem(ANNULUS, "sin(2*pi*x)*cos(pi*y)",
                    [_dirichlet("outer"), {"faces": "inner", "type": "neumann", "value": "exact"}])


# --------------------------------------------------------------------------- meshes


@pytest.mark.slow
def test_mesh_parts_curved_nodes_and_no_gmsh_state(annulus: Problem) -> None:
    import gmsh

    geo = annulus.domain.geometry
    m1 = mesh_geometry(geo, 0.2, 1)
    m2 = mesh_geometry(geo, 0.2, 2)
    assert type(m1).__name__ == "MeshTri1" and type(m2).__name__ == "MeshTri2"
    assert set(m2.boundaries) == {"outer", "inner"}
    assert sum(len(v) for v in m2.boundaries.values()) == len(m2.boundary_facets())
    for name, radius in (("outer", 1.0), ("inner", 0.5)):
        facets = m2.boundaries[name]
        mid = m2.doflocs[:, m2.nvertices + facets]  # P2 mid-edge nodes on the true circle
        np.testing.assert_allclose(np.linalg.norm(mid, axis=0), radius, atol=1e-12)
        ends = m2.p[:, m2.facets[:, facets]]
        np.testing.assert_allclose(np.linalg.norm(ends, axis=0), radius, atol=1e-12)
    assert not gmsh.isInitialized()


@pytest.mark.slow
def test_mesh_3d_and_parts_of_coincident_faces() -> None:
    geo = _problem({"difference": [{"box": [[0, 2], [0, 1], [0, 1]], "name": "a"},
                                   {"box": [[1, 2], [0, 1], [0, 1]], "name": "b"}]},
                   "x", [_dirichlet("all")]).domain.geometry
    m = mesh_geometry(geo, 0.5, 1)
    assert type(m).__name__ == "MeshTet1"
    # the face x = 1 is b's surface only: it belongs to the part b
    x = m.p[0, m.facets[:, m.boundaries["b"]]]
    np.testing.assert_allclose(x, 1.0)
    assert set(m.boundaries) == {"a", "b"}


def test_mesh_refuses_1d() -> None:
    p = _problem({"ball": {"center": [0], "radius": 1}}, "x", [_dirichlet("all")])
    with pytest.raises(ReferenceSolveError, match="2D or 3D"):
        solve_fem(p, h=0.1)


# --------------------------------------------------------------------------- accuracy


@pytest.mark.slow
@pytest.mark.parametrize("order, lo, hi", [(1, 1.7, 2.4), (2, 2.6, 3.6)])
def test_convergence_orders_annulus(annulus: Problem, order: int, lo: float, hi: float) -> None:
    # measured: P1 1.35e-1, 3.14e-2, 8.02e-3 (orders 2.10, 1.97);
    #           P2 1.13e-2, 1.26e-3, 1.69e-4 (orders 3.16, 2.90)
    errors = [_error(annulus, solve_fem(annulus, h=h, order=order)) for h in (0.2, 0.1, 0.05)]
    rates = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all((lo <= rates) & (rates <= hi)), (errors, rates)


@pytest.mark.slow
def test_l_shape_graded_reference() -> None:
    p = _problem(L_SHAPE, L_EXACT, [_dirichlet("all")], source="0")
    sol, estimate, runs = fem_reference(p, tol=1e-5, max_seconds=30)
    error = _error(p, sol)
    # measured: 2 runs (h = 0.177, 0.088; 3913 DOFs), estimate 4.4e-6, error 4.1e-6
    assert error <= 1e-3
    assert len(runs) >= 2 and estimate < 1e-5
    assert estimate / 3 <= error <= 3 * estimate
    assert np.isnan(runs[0][3]) and runs[-1][3] == estimate


@pytest.mark.slow
def test_robin_variable_coefficient() -> None:
    p = _problem(SQUARE_HOLE, "exp(x)*sin(y) + x*y",
                 [_dirichlet("outer"),
                  {"faces": "hole", "type": "robin", "value": "exact", "alpha": 2}],
                 diffusivity="1 + x**2/2")
    error = _error(p, solve_fem(p, h=0.1, order=2))
    assert error < 1e-4  # measured 1.1e-5 (P1: 1.1e-3)


@pytest.mark.slow
def test_anisotropic_neumann_on_axis_faces_and_refused_on_oblique() -> None:
    exact = "exp(x)*sin(y) + x*y"
    ok = _problem(SQUARE_HOLE, exact,
                  [{"faces": "outer", "type": "neumann", "value": "exact"}, _dirichlet("hole")],
                  diffusivity=[1, "2 + y"])
    assert _error(ok, solve_fem(ok, h=0.15)) < 1e-4  # measured 1.2e-5 at h = 0.1
    bad = _problem(SQUARE_HOLE, exact,
                   [_dirichlet("outer"), {"faces": "hole", "type": "neumann", "value": "exact"}],
                   diffusivity=[1, 2])
    with pytest.raises(ReferenceSolveError, match="oblique boundary part 'hole'"):
        solve_fem(bad, h=0.2)


@pytest.mark.slow
def test_pure_neumann_fixes_the_constant_by_exact() -> None:
    p = _problem(SQUARE_HOLE, "cos(x)*cos(y) + 3",
                 [{"faces": "all", "type": "neumann", "value": "exact"}])
    assert _error(p, solve_fem(p, h=0.15)) < 1e-5  # measured 1.3e-6 at h = 0.1


@pytest.mark.slow
def test_heat_disk_with_hole() -> None:
    p = problem_from_dict({
        "pde": "heat",
        "domain": {"shape": {"difference": [
            {"ball": {"center": [0, 0], "radius": 1}, "name": "outer"},
            {"ball": {"center": [0.2, 0], "radius": 0.3}, "name": "hole"}]}, "time": [0, 1]},
        "exact": "exp(-t)*sin(pi*x)*sin(pi*y)",
        "boundary": [_dirichlet("outer"), {"faces": "hole", "type": "neumann", "value": "exact"}],
    })
    sol = solve_fem(p, h=0.1, order=2)
    assert sol.nt == 32 and sol.values.shape == (33, sol.n_dofs)  # nt = ⌈1 / 0.1^1.5⌉
    error = _error(p, sol)
    assert error <= 1e-3  # measured 3.0e-4 (h = 0.2: 1.9e-3)


@pytest.mark.slow
def test_box_minus_ball_3d() -> None:
    p = problem_from_dict({
        "pde": "poisson",
        "domain": {"shape": {"difference": [
            {"box": [[0, 1], [0, 1], [0, 1]], "name": "box"},
            {"ball": {"center": [0.5, 0.5, 0.5], "radius": 0.25}, "name": "ball"}]}},
        "exact": "sin(pi*x)*cos(y)*exp(z)",
        "boundary": [_dirichlet("box"), {"faces": "ball", "type": "neumann", "value": "exact"}],
    })
    sol = solve_fem(p, h=0.25, order=2)
    assert type(sol.mesh).__name__ == "MeshTet2"
    # measured: P2 4.6e-3 (882 DOFs; h = 0.125: 5.9e-4), P1 4.9e-2
    assert _error(p, sol) < 1e-2


@pytest.mark.slow
def test_nonlinear_reaction_newton() -> None:
    p = _problem(SQUARE_HOLE, "1 + x*y + sin(x)",
                 [_dirichlet("outer"), {"faces": "hole", "type": "neumann", "value": "exact"}],
                 reaction="sinh(u)")
    sol = solve_fem(p, h=0.15, order=2)
    assert 2 <= sol.newton_iterations <= 10  # measured 5
    assert _error(p, sol) < 1e-4  # measured 3.6e-6 at h = 0.1


@pytest.mark.slow
def test_heat_nonlinear_time_dependent_coefficients() -> None:
    p = problem_from_dict({
        "pde": "heat", "diffusivity": "1 + t*x**2", "reaction": "u**3",
        "domain": {"shape": SQUARE_HOLE, "time": [0, 0.5]},
        "exact": "exp(-t)*sin(x)*cos(y)",
        "boundary": [_dirichlet("outer"),
                     {"faces": "hole", "type": "robin", "value": "exact", "alpha": "1 + t"}],
    })
    assert _error(p, solve_fem(p, h=0.2)) < 3e-3  # measured 1.2e-3 (h = 0.1: 2.1e-4)


# --------------------------------------------------------------------------- the object


@pytest.mark.slow
@pytest.mark.parametrize("pde", ["poisson", "heat"])
def test_arrays_round_trip_is_bit_identical(pde: str) -> None:
    raw: dict[str, Any] = {
        "pde": pde, "domain": {"shape": ANNULUS}, "exact": "sin(x)*exp(y)",
        "boundary": [_dirichlet("all")],
    }
    if pde == "heat":
        raw["domain"]["time"] = [0, 1]
        raw["exact"] = "exp(-t)*sin(x)*exp(y)"
    p = problem_from_dict(raw)
    sol = solve_fem(p, h=0.25, nt=5 if pde == "heat" else None)
    buf = io.BytesIO()
    np.savez(buf, **sol.to_arrays())
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as z:
        back = FemSolution.from_arrays(dict(z), p)
    pts = sample_interior(p.domain, 3000, "sobol", 3)
    assert np.array_equal(sol(pts), back(pts))
    assert (back.order, back.h, back.n_dofs, back.n_elements, back.nt) == (
        sol.order, sol.h, sol.n_dofs, sol.n_elements, sol.nt)


@pytest.mark.slow
def test_points_outside_or_on_the_curved_boundary_are_finite(annulus: Problem) -> None:
    sol = solve_fem(annulus, h=0.2)
    th = np.linspace(0, 2 * np.pi, 400)
    ring = np.concatenate([np.stack([r * np.cos(th), r * np.sin(th)], 1)
                           for r in (0.5, 0.5 + 1e-12, 1 - 1e-12, 1.0, 1.05)])
    vals = sol(ring)
    assert np.all(np.isfinite(vals))
    assert np.abs(vals[:1600] - np.sin(2 * np.pi * ring[:1600, 0])
                  * np.cos(np.pi * ring[:1600, 1])).max() < 0.05
    with pytest.raises(ReferenceSolveError, match="columns"):
        sol(np.zeros((2, 3)))
