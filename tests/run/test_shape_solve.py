"""Solving on a shape end to end: training points on the parts, the FEM reference as the
truth (cached, round trip), the FEM classical baseline, masked evaluation, diagnostics and
figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mscalepde.cli import main
from mscalepde.diagnostics.grid import DiagnosticGrid
from mscalepde.diagnostics.settings import DiagnosticSettings
from mscalepde.equations import Objective
from mscalepde.problem.validate import problem_from_dict
from mscalepde.reference.baseline import describe_reference
from mscalepde.reference.cache import get_reference
from mscalepde.reference.lowrank import storage_tolerance
from mscalepde.reference.result import FemReference, Reference
from mscalepde.reference.truth import truth_info
from mscalepde.run.pipeline import solve

ANNULUS = {
    "difference": [
        {"ball": {"center": [0, 0], "radius": 1}, "name": "outer"},
        {"ball": {"center": [0, 0], "radius": 0.5}, "name": "inner"},
    ]
}


def annulus(**extra) -> dict:
    return {
        "name": "ann",
        "pde": "poisson",
        "domain": {"shape": ANNULUS},
        "source": "1",
        "boundary": [
            {"faces": "outer", "type": "dirichlet", "value": 0},
            {"faces": "inner", "type": "robin", "alpha": 1, "value": "x"},
        ],
        "model": {"arch": "mlp", "width": 16, "depth": 2},
        "train": {"steps": 20, "points": {"interior": 300, "boundary": 100}},
        "reference": {"h": 0.25, "fem_tol": 1e-4, "fem_seconds": 20},
        **extra,
    }


def test_objective_uses_the_parts_points_and_normals():
    p = problem_from_dict(
        annulus(
            exact="x*y + 1",
            source="auto",
            boundary=[
                {"faces": "outer", "type": "dirichlet", "value": "exact"},
                {"faces": "inner", "type": "neumann", "value": "exact"},
            ],
        )
    )
    obj = Objective(
        p,
        dtype=torch.float64,
        device="cpu",
        interior=300,
        boundary=100,
        initial=0,
        sampler="sobol",
        seed=0,
    )
    (nb,) = obj.neumann
    x, n, g = nb.x, nb.normal, nb.g
    r = x.norm(dim=1)
    assert torch.allclose(r, torch.full_like(r, 0.5), atol=1e-12)
    assert torch.allclose(n, -x / 0.5, atol=1e-12)  # into the hole
    # g = n·∇(xy + 1) = n_x y + n_y x
    assert torch.allclose(g, n[:, 0] * x[:, 1] + n[:, 1] * x[:, 0], atol=1e-10)
    # quadrature weights: the part's length over the number of points
    assert float(nb.weight.sum()) == pytest.approx(np.pi, rel=1e-6)
    xi = obj.x_interior
    assert bool(((xi.norm(dim=1) >= 0.5) & (xi.norm(dim=1) <= 1)).all())


@pytest.mark.slow
def test_fem_reference_is_the_truth_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path / "cache"))
    p = problem_from_dict(annulus())
    ref = get_reference(p, directory=tmp_path / "cache")
    assert isinstance(ref, FemReference) and ref.method == "fem"
    assert ref.estimated_error < 1e-4
    pts = np.array([[0.75, 0.0], [0.0, -0.6], [-0.9, 0.1]])
    path = ref.save(tmp_path / "r.npz")
    back = Reference.load(path)
    assert isinstance(back, FemReference)
    assert np.array_equal(back(pts), ref(pts))
    lines = describe_reference(back)
    assert lines[0].startswith("method          fem, P2")
    info = truth_info(p)
    assert info["truth"] == "reference" and info["reference"]["method"] == "fem"


@pytest.mark.slow
def test_solve_on_a_shape_writes_masked_figures_and_baseline(tmp_path, monkeypatch):
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "ann.yaml"
    import yaml

    path.write_text(yaml.safe_dump(annulus(diagnostics={"every": 10, "grid": 32})))
    code = main(["solve", str(path), "--quiet", "--out", str(tmp_path / "run")])
    assert code == 0
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s["truth"] == "reference"
    assert s["classical_baseline"]["method"] == "fem"
    assert s["classical_baseline"]["runs"][0]["n"] > 0
    assert (tmp_path / "run" / "figures" / "solution.png").is_file()
    assert (tmp_path / "run" / "reference.npz").is_file()


@pytest.mark.slow
def test_masked_evaluation_grid_and_diagnostics():
    p = problem_from_dict(
        annulus(
            exact="x + 2",
            source="auto",
            boundary=[{"faces": "all", "type": "dirichlet", "value": "exact"}],
        )
    )
    result = solve(p, write=False, overrides=["diagnostics.enabled=false"])
    ev = result.evaluator
    r = np.linalg.norm(ev.points, axis=1)
    assert r.min() >= 0.5 - 1e-12 and r.max() <= 1 + 1e-12
    pred, truth = ev.figure_fields(result.model)
    grid_r = np.linalg.norm(np.stack(np.meshgrid(*ev.axes, indexing="ij"), axis=-1), axis=-1)
    assert np.all(np.isnan(truth[(grid_r < 0.49) | (grid_r > 1.01)]))
    assert np.all(np.isfinite(truth[(grid_r > 0.51) & (grid_r < 0.99)]))
    # diagnostics: both fields vanish outside the domain; the filter uses inside points
    settings = DiagnosticSettings.from_problem(p)
    grid = DiagnosticGrid(p.domain.box, settings, inside=p.domain.geometry.shape.contains)
    u = grid.truth(p)[0]
    h = grid.evaluate(result.model, dtype=torch.float32, device="cpu")[0]
    outside = ~grid.mask.reshape(grid.shape)
    assert np.all(u[outside] == 0) and np.all(h[outside] == 0)
    assert grid.mask[grid.filter_index].all()


@pytest.mark.slow
def test_heat_fem_reference_without_exact(tmp_path):
    """Heat on a shape with no exact solution: the reference is BDF2 FEM, it is cached
    with its time levels and evaluates identically after a reload."""
    p = problem_from_dict(
        {
            "name": "heat_ann",
            "pde": "heat",
            "diffusivity": 0.2,
            "domain": {"shape": ANNULUS, "time": [0, 0.5]},
            "source": "1",
            # compatible with both conditions: 0 on r = 1, u = ∂u/∂r = 0 on r = 0.5
            "initial": "4*(1 - x**2 - y**2)*(x**2 + y**2 - 0.25)**2",
            "boundary": [
                {"faces": "outer", "type": "dirichlet", "value": 0},
                {"faces": "inner", "type": "robin", "alpha": 2, "value": 0},
            ],
            "reference": {"h": 0.3, "fem_tol": 1e-3, "fem_seconds": 20},
        }
    )
    ref = get_reference(p, directory=tmp_path)
    assert isinstance(ref, FemReference) and ref.nt > 0 and ref.time_method == "bdf2"
    assert ref.estimated_error < 1e-3
    pts = np.array([[0.75, 0.0, 0.0], [0.0, -0.6, 0.25], [-0.9, 0.1, 0.5]])
    # t = 0 gives the initial condition (up to the interpolation error of the P2 space)
    r2 = 0.75**2
    assert ref(pts[:1])[0] == pytest.approx(4 * (1 - r2) * (r2 - 0.25) ** 2, abs=1e-3)
    back = Reference.load(ref.save(tmp_path / "h.npz"))
    # the levels are stored low-rank: no value moves by more than the storage bound
    bound = storage_tolerance(ref.solution.values, ref.estimated_error)
    assert np.abs(back.solution.values - ref.solution.values).max() <= bound
    assert np.allclose(back(pts), ref(pts), rtol=0, atol=bound)


@pytest.mark.slow
def test_meshing_in_a_child_process_round_trips():
    """gmsh runs in a child process (a crash must not kill the run): the mesh that comes
    back is the one an in-process call makes, with its parts."""
    from mscalepde.geometry.mesh import mesh_geometry

    geo = problem_from_dict(annulus()).domain.geometry
    for order in (1, 2):
        a = mesh_geometry(geo, 0.3, order)
        b = mesh_geometry(geo, 0.3, order, isolate=False)
        assert type(a) is type(b)
        assert np.array_equal(a.doflocs, b.doflocs) and np.array_equal(a.t, b.t)
        assert {k: v.tolist() for k, v in a.boundaries.items()} == {
            k: v.tolist() for k, v in b.boundaries.items()
        }
        assert 0 < a.mesh_seconds < 5
