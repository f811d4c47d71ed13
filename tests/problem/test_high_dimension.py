"""Problems in more than three space dimensions (issue 25): variables x1 … xd, d-dimensional
boxes and balls, ``source: auto``, training, errors at Sobol' points, and the one-line
refusals of everything that needs a grid of n^d points."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch

from mscalepde import problem_from_dict, solve
from mscalepde.cli import main
from mscalepde.diagnostics.evaluation import HIGH_DIM_POINTS, Evaluator
from mscalepde.equations import source_values
from mscalepde.errors import ProblemError, ReferenceSolveError
from mscalepde.geometry.box import MAX_DIM, axis_names, face_axis, face_names, opposite_face
from mscalepde.geometry.sampling import sample_boundary, sample_interior
from mscalepde.geometry.shapes import Ellipsoid, unit_ball_volume
from mscalepde.reference.baseline import classical_baseline
from mscalepde.reference.solve import compute_reference

SUM5 = " + ".join(f"sin(pi*x{i}/2)" for i in range(1, 6))
POISSON5D = {
    "name": "p5",
    "pde": "poisson",
    "domain": {"box": [[0, 1]] * 5},
    "exact": SUM5,
    "boundary": [{"type": "dirichlet", "faces": "all", "value": "exact"}],
    "model": {"arch": "mlp", "width": 16, "depth": 2},
    "train": {
        "points": {"interior": 400, "boundary": 200},
        "optimizer": [{"adam": {"steps": 100, "lr": 0.01}}, {"gauss-newton": {"steps": 8}}],
    },
}
R2 = "(x1**2 + x2**2 + x3**2 + x4**2 + x5**2)"
HEAT5D = {  # PINNacle's HeatND: u_t = Δu/5 + f on the unit 5-ball, ∂u/∂n = u* on the sphere
    "name": "h5",
    "pde": "heat",
    "domain": {"shape": {"ball": {"center": [0] * 5, "radius": 1}}, "time": [0, 1]},
    "diffusivity": 0.2,
    "exact": f"exp({R2}/2 + t)",
    "source": f"-{R2}/5*exp({R2}/2 + t)",
    "boundary": [{"type": "neumann", "value": "exact"}],
    "model": {"arch": "mlp", "width": 12, "depth": 2},
    "train": {"steps": 3, "points": {"interior": 64, "boundary": 32, "initial": 32}},
}


def _with(**changes):
    data = copy.deepcopy(POISSON5D)
    data.update(changes)
    return data


def test_axis_and_face_names():
    assert axis_names(2) == ("x", "y") and axis_names(3) == ("x", "y", "z")
    assert axis_names(5) == ("x1", "x2", "x3", "x4", "x5")
    assert face_names(4)[-2:] == ["x4-", "x4+"]
    assert face_axis("z+", 3) == 2 and face_axis("x4-", 5) == 3 and face_axis("x1+", 5) == 0
    assert opposite_face("x5-") == "x5+" and opposite_face("y+") == "y-"


def test_a_5d_box_problem_loads_with_named_faces_and_normals():
    p = problem_from_dict(copy.deepcopy(POISSON5D))
    dom = p.domain
    assert dom.variables == ("x1", "x2", "x3", "x4", "x5")
    assert len(dom.faces) == 10 and set(p.boundary) == set(dom.faces)
    np.testing.assert_array_equal(dom.face_normal("x4+"), [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(dom.face_normal("x1-"), [-1, 0, 0, 0, 0])
    # every boundary point of the face x4+ has x4 = 1 (the face axis, not axis 0)
    pts, normals = sample_boundary(dom, "x4+", 50, "sobol", 0)
    assert np.all(pts[:, 3] == 1.0) and np.all(normals[:, 3] == 1.0)
    assert p.config["domain"] == {"box": [[0.0, 1.0]] * 5}


def test_source_auto_in_5d_is_the_laplacian_of_exact():
    p = problem_from_dict(copy.deepcopy(POISSON5D))
    x = sample_interior(p.domain, 200, "uniform", 3)
    f = source_values(p, torch.tensor(x)).numpy()
    want = math.pi**2 / 4 * np.sin(math.pi * x / 2).sum(axis=1)
    np.testing.assert_allclose(f, want, rtol=1e-12, atol=1e-12)


def test_periodic_faces_pair_by_axis_in_5d():
    bc = [
        {"type": "dirichlet", "faces": "all", "value": "exact"},
        {"type": "periodic", "faces": ["x4-", "x4+"]},
    ]
    data = _with(exact="sin(2*pi*x4) + x1", boundary=bc)
    p = problem_from_dict(data)
    assert p.boundary["x4-"].type == p.boundary["x4+"].type == "periodic"
    with pytest.raises(ProblemError, match=r"x4- and x4\+"):
        problem_from_dict(_with(boundary=[bc[0], {"type": "periodic", "faces": ["x4-"]}]))


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        ({"exact": None, "source": "1", "boundary": [{"type": "dirichlet", "value": 0}]},
         "exact", "is required in 5D"),
        ({"reference": {"method": "fd"}}, "reference.method", "no grid reference"),
        ({"model": {"arch": "auto"}}, "model", "auto reads the spectrum"),
        ({"model": {"arch": "mff", "sigmas": [1], "adapt": {"every": 100}}}, "model.adapt",
         "grid"),
        ({"domain": {"box": [[0, 1]] * (MAX_DIM + 1)}}, "domain.box", f"1 to {MAX_DIM}"),
        ({"boundary": [{"type": "neumann", "faces": "all", "value": "exact"}]}, "boundary",
         "up to a constant"),
        ({"unknowns": {"k": {"initial": 1.0}}, "diffusivity": "k"}, "unknowns",
         "1 to 3 space dimensions"),
    ],
)
def test_what_needs_a_grid_is_refused_in_one_line(change, key, words):
    with pytest.raises(ProblemError) as info:
        problem_from_dict(_with(**change))
    assert info.value.key == key and words in str(info.value) and "\n" not in str(info.value)


def test_grid_solvers_refuse_5d():
    p = problem_from_dict(copy.deepcopy(POISSON5D))
    for call in (lambda: compute_reference(p), lambda: classical_baseline(p)):
        with pytest.raises(ReferenceSolveError, match="no classical .grid. solver runs in 5D"):
            call()


@pytest.mark.parametrize("d", [4, 5, 7])
def test_a_d_ball_has_its_volume_area_and_surface(d):
    ball = Ellipsoid((0.5,) * d, (0.7,) * d)
    assert ball.volume() == pytest.approx(unit_ball_volume(d) * 0.7**d, rel=1e-14)
    assert unit_ball_volume(4) == pytest.approx(math.pi**2 / 2, rel=1e-14)
    assert unit_ball_volume(5) == pytest.approx(8 * math.pi**2 / 15, rel=1e-14)
    area = d * unit_ball_volume(d) * 0.7 ** (d - 1)
    assert ball.surface_measure() == pytest.approx(area, rel=1e-14)
    x, n, w = ball.surface_quadrature(4096)
    assert w.sum() == pytest.approx(area, rel=1e-12)
    np.testing.assert_allclose(np.linalg.norm(x - 0.5, axis=1), 0.7, rtol=1e-12)
    np.testing.assert_allclose(n, (x - 0.5) / 0.7, atol=1e-12)
    # the nodes are spread evenly: the mean of x_1² over the sphere is r²/d
    assert np.mean((x[:, 0] - 0.5) ** 2) == pytest.approx(0.49 / d, rel=0.05)
    pts, normals = ball.sample_surface(np.random.default_rng(0), 500)
    np.testing.assert_allclose(np.linalg.norm(pts - 0.5, axis=1), 0.7, rtol=1e-12)


def test_the_5d_ball_problem_samples_inside_and_on_the_sphere():
    p = problem_from_dict(copy.deepcopy(HEAT5D))
    dom = p.domain
    assert dom.variables == ("x1", "x2", "x3", "x4", "x5", "t")
    assert dom.volume == pytest.approx(8 * math.pi**2 / 15, rel=1e-3)  # × the time span 1
    x = sample_interior(dom, 300, "sobol", 0)
    assert x.shape == (300, 6) and np.all(np.linalg.norm(x[:, :5], axis=1) <= 1)
    face = dom.faces[0]
    pts, normals = sample_boundary(dom, face, 100, "sobol", 1)
    np.testing.assert_allclose(np.linalg.norm(pts[:, :5], axis=1), 1.0, rtol=1e-9)
    np.testing.assert_allclose(normals, pts[:, :5], atol=1e-9)


@pytest.mark.parametrize("sampler", ["uniform", "sobol"])
def test_5d_sampling_is_uniform_in_the_box_and_the_ball(sampler):
    """Kolmogorov–Smirnov at the 0.1 % level: every coordinate of the box's points is
    uniform on its interval, and the ball's radii follow P(r ≤ s) = s^5 with isotropic
    directions (uniform in the ball's volume)."""
    from scipy import stats

    box = problem_from_dict(copy.deepcopy(POISSON5D)).domain
    x = sample_interior(box, 4096, sampler, 11)
    for i in range(5):
        assert stats.kstest(x[:, i], "uniform").pvalue > 1e-3
    ball = problem_from_dict(copy.deepcopy(HEAT5D)).domain
    y = sample_interior(ball, 4096, sampler, 12)[:, :5]
    r = np.linalg.norm(y, axis=1)
    assert stats.kstest(r**5, "uniform").pvalue > 1e-3
    u = y / r[:, None]  # directions: x1 = u_1 has density ∝ (1 − u²)^{(d−3)/2} = (1 − u²)
    assert stats.kstest(u[:, 0], lambda s: 0.25 * (3 * s - s**3) + 0.5).pvalue > 1e-3
    assert abs(y.mean(axis=0)).max() < 0.03


def test_the_error_is_measured_at_fixed_sobol_points():
    p = problem_from_dict(copy.deepcopy(POISSON5D))
    a = Evaluator(p, dtype=torch.float64, device="cpu")
    b = Evaluator(p, dtype=torch.float64, device="cpu")
    assert a.points.shape == (HIGH_DIM_POINTS, 5)
    np.testing.assert_array_equal(a.points, b.points)
    # the points fill the cube evenly: the mean of the exact solution is 5 · 2/π
    assert a.truth.mean() == pytest.approx(10 / math.pi, rel=1e-3)
    assert [len(ax) for ax in a.axes] == [201, 201, 1, 1, 1]  # the figures' plane


def test_training_in_5d_reduces_the_error_with_spectra_of_a_plane(tmp_path):
    run = solve(problem_from_dict(copy.deepcopy(POISSON5D)), out=tmp_path / "run")
    assert run.summary["rel_l2"] < 2e-2  # measured 5.1e-3 (16×2 tanh, 100 Adam + 8 GN)
    notes = run.summary["diagnostics"]["notes"]
    assert any("the plane (x1, x2) through x3 = 0.5, x4 = 0.5, x5 = 0.5" in n for n in notes)
    assert run.summary["diagnostics"]["settings"]["grid"] == 128  # 128² points, not 128^5
    assert run.summary["frequencies"]  # the resolved-frequency table of that plane
    assert "error" in run.summary["classical_baseline"]
    assert (tmp_path / "run" / "figures" / "solution.png").is_file()


def test_heat_on_the_5d_ball_trains_and_draws_its_slices(tmp_path):
    run = solve(problem_from_dict(copy.deepcopy(HEAT5D)), out=tmp_path / "run")
    assert math.isfinite(run.summary["rel_l2"])
    assert (tmp_path / "run" / "figures" / "snapshots.png").is_file()


def test_cli_refusals_in_5d(tmp_path, capsys):
    path = tmp_path / "p5.yaml"
    path.write_text(json.dumps(POISSON5D))  # JSON is YAML, without aliases
    assert main(["reference", str(path)]) == 2
    assert "no classical (grid) solver runs in 5D" in capsys.readouterr().err
    data = copy.deepcopy(POISSON5D)
    data["train"] = {"steps": 2, "points": {"interior": 16, "boundary": 16}}
    path.write_text(json.dumps(data))
    assert main(["solve", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert main(["export", str(tmp_path / "run")]) == 2
    assert "vtu holds 1 to 3 coordinates" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "run"), "--format", "csv"]) == 2
    assert "--points: is required in 5D" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path / "run"), "--grid", "32"]) == 0  # on the plane
