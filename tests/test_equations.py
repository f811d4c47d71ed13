"""Derivatives, data derived from `exact`, and residuals on manufactured solutions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mscalepde import parse_expression, problem_from_dict
from mscalepde.calculus.derivatives import derivatives
from mscalepde.equations import Objective, expression_field


def test_derivatives_match_analytic_values():
    e = parse_expression("sin(2*x)*exp(y)*t**2", variables=["x", "y", "t"])
    f = expression_field(e, ["x", "y", "t"])
    x = torch.rand(50, 3, dtype=torch.float64)
    d = derivatives(f, x, space_dim=2, grad=True, ut=True, lap=True, create_graph=False)
    X, Y, T = x[:, 0], x[:, 1], x[:, 2]
    u = torch.sin(2 * X) * torch.exp(Y) * T**2
    torch.testing.assert_close(d.u, u, rtol=1e-13, atol=1e-14)
    torch.testing.assert_close(d.grad[:, 0], 2 * torch.cos(2 * X) * torch.exp(Y) * T**2)
    torch.testing.assert_close(d.grad[:, 1], u)
    torch.testing.assert_close(d.ut, 2 * torch.sin(2 * X) * torch.exp(Y) * T)
    torch.testing.assert_close(d.lap, -4 * u + u)
    assert not d.lap.requires_grad


def test_derivatives_of_a_network_keep_the_graph_for_training():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    net = net.double()
    x = torch.rand(10, 2, dtype=torch.float64)
    d = derivatives(net, x, space_dim=2, lap=True)
    d.lap.square().mean().backward()
    # every parameter that Δu depends on gets a gradient (the output bias does not)
    for p in (net[0].weight, net[0].bias, net[2].weight):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    # the Laplacian matches a finite-difference estimate
    h = 1e-4
    with torch.no_grad():
        fd = sum(
            (net(x + h * e) - 2 * net(x) + net(x - h * e)).reshape(-1) / h**2
            for e in torch.eye(2, dtype=torch.float64)
        )
    torch.testing.assert_close(d.lap.detach(), fd, rtol=1e-5, atol=1e-5)


def _objective(data, **kw):
    p = problem_from_dict(data)
    args = dict(
        interior=200, boundary=100, initial=50, sampler="sobol", seed=0, dtype=torch.float64
    )
    args.update(kw)
    return p, Objective(p, **args)


def _perturbed(p, amount=1e-2):
    base = expression_field(p.exact, p.variables)
    return lambda x: base(x) + amount * torch.sin(3.0 * x[:, 0]) * torch.cos(x[:, -1])


POISSON2D = {
    "pde": "poisson",
    "domain": {"box": [[0, 1], [0, 2]]},
    "exact": "sin(pi*x)*cos(y) + x*y**2",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
}


def test_auto_source_equals_analytic_laplacian():
    p, obj = _objective(POISSON2D)
    x = obj.x_interior
    X, Y = x[:, 0], x[:, 1]
    analytic = (math.pi**2 + 1) * torch.sin(math.pi * X) * torch.cos(Y) - 2 * X
    torch.testing.assert_close(obj.f_interior, analytic, rtol=1e-12, atol=1e-12)


def test_explicit_source_and_auto_source_agree():
    data = dict(POISSON2D, source="(pi**2 + 1)*sin(pi*x)*cos(y) - 2*x")
    _, obj_explicit = _objective(data)
    _, obj_auto = _objective(POISSON2D)
    torch.testing.assert_close(obj_explicit.f_interior, obj_auto.f_interior)


CASES = {
    "poisson_dirichlet_2d": POISSON2D,
    "poisson_neumann_3d": {
        "pde": "poisson",
        "domain": {"box": [[0, 1], [0, 1], [0, 1]]},
        "exact": "sin(pi*x)*sin(pi*y)*cos(pi*z/2)",
        "boundary": [
            {"faces": "all", "type": "dirichlet", "value": "exact"},
            {"faces": ["z+", "x-"], "type": "neumann", "value": "exact"},
        ],
    },
    "poisson_neumann_explicit": {
        "pde": "poisson",
        "domain": {"box": [[0, 2]]},
        "exact": "cos(x)",
        "boundary": [
            {"faces": "x-", "type": "dirichlet", "value": 1},
            {"faces": "x+", "type": "neumann", "value": "-sin(2)"},
        ],
    },
    "poisson_periodic": {
        "pde": "poisson",
        "domain": {"box": [[0, 1], [0, 1]]},
        "exact": "cos(2*pi*x)*sin(pi*y)",
        "boundary": [
            {"faces": ["y-", "y+"], "type": "dirichlet", "value": "exact"},
            {"faces": ["x-", "x+"], "type": "periodic"},
        ],
    },
    "heat_1d": {
        "pde": "heat",
        "diffusivity": 0.3,
        "domain": {"box": [[0, 1]], "time": [0, 2]},
        "exact": "exp(-t)*sin(pi*x) + x*t",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    },
    "heat_2d_neumann": {
        "pde": "heat",
        "domain": {"box": [[0, 1], [0, 1]], "time": [0, 1]},
        "exact": "exp(-t)*cos(pi*x)*cos(pi*y)",
        "boundary": [{"faces": "all", "type": "neumann", "value": 0}],
    },
    "fit_1d": {"pde": "fit", "domain": {"box": [[-3, 3]]}, "exact": "tanh(2*x)"},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_exact_solution_has_zero_residual_and_perturbation_does_not(name):
    p, obj = _objective(CASES[name])
    exact = expression_field(p.exact, p.variables)
    terms = obj.terms(exact)
    for key, value in terms.items():
        assert float(value.detach()) < 1e-24, (name, key, float(value.detach()))
    bumped = obj.terms(_perturbed(p))
    total = sum(float(v.detach()) for v in bumped.values())
    assert total > 1e-6, (name, {k: float(v) for k, v in bumped.items()})
    assert set(terms) == (
        {"pde"}
        if p.pde == "fit"
        else {"pde", "boundary"} | ({"initial"} if p.pde == "heat" else set())
    )


def test_heat_residual_is_ut_minus_kappa_laplacian_minus_f():
    p, obj = _objective(CASES["heat_1d"])
    x = obj.x_interior
    X, T = x[:, 0], x[:, 1]
    # u = e^{-t} sin(pi x) + x t: u_t = -e^{-t} sin(pi x) + x, u_xx = -pi^2 e^{-t} sin(pi x)
    f = (
        -torch.exp(-T) * torch.sin(math.pi * X)
        + X
        + 0.3 * math.pi**2 * torch.exp(-T) * torch.sin(math.pi * X)
    )
    torch.testing.assert_close(obj.f_interior, f, rtol=1e-12, atol=1e-12)


def test_neumann_data_is_the_outward_normal_derivative():
    p, obj = _objective(CASES["poisson_neumann_3d"])
    (b,) = obj.neumann
    x, normal, g = b.x, b.normal, b.g
    on_zplus = normal[:, 2] == 1
    on_xminus = normal[:, 0] == -1
    assert on_zplus.any() and on_xminus.any()
    X, Y, Z = x[:, 0], x[:, 1], x[:, 2]
    dz = (
        -(math.pi / 2)
        * torch.sin(math.pi * X)
        * torch.sin(math.pi * Y)
        * torch.sin(math.pi * Z / 2)
    )
    dx = math.pi * torch.cos(math.pi * X) * torch.sin(math.pi * Y) * torch.cos(math.pi * Z / 2)
    torch.testing.assert_close(g[on_zplus], dz[on_zplus])
    torch.testing.assert_close(g[on_xminus], -dx[on_xminus])


def test_periodic_condition_detects_a_non_periodic_function():
    p, obj = _objective(CASES["poisson_periodic"])
    not_periodic = lambda x: torch.sin(math.pi * x[:, 1]) * x[:, 0]  # noqa: E731
    assert float(obj.terms(not_periodic)["boundary"].detach()) > 1e-3
    # derivative mismatch alone is caught too: u = sin(pi y)(x - 1/2)^2 has equal values
    # on x = 0 and x = 1 but opposite normal derivatives
    even = lambda x: torch.sin(math.pi * x[:, 1]) * (x[:, 0] - 0.5) ** 2  # noqa: E731
    lo, hi, axis = obj.periodic[0]
    assert torch.allclose(even(lo), even(hi))
    assert float(obj.terms(even)["boundary"].detach()) > 1e-3


def test_resampling_changes_points_but_keeps_data_consistent():
    p, obj = _objective(POISSON2D)
    first = obj.x_interior.clone()
    obj.resample(123)
    assert not torch.equal(first, obj.x_interior)
    exact = expression_field(p.exact, p.variables)
    assert float(obj.terms(exact)["pde"].detach()) < 1e-24


def test_float32_objective_has_float32_data():
    _, obj = _objective(POISSON2D, dtype=torch.float32)
    assert obj.x_interior.dtype == torch.float32 and obj.f_interior.dtype == torch.float32
    assert np.isfinite(obj.f_interior.numpy()).all()


def test_ritz_energy_of_the_exact_solution_and_robin_data():
    """E(u*) = −½∫ f u* (u* = 0 on ∂Ω) for the layered problem (exact value −11.535 with
    f = 17π² sin 4πx sin πy, a = 1|10|1|10): Sobol quadrature agrees to 0.1 %; a Robin
    'value: exact' datum is n·∇u* + α u*."""
    import math

    from mscalepde import load_problem, problem_from_dict
    from mscalepde.equations import Objective, expression_field

    p = load_problem(
        "problems/layered2d_ritz.yaml", ["train.points={interior: 4096, boundary: 512}"]
    )
    obj = Objective.from_problem(p, dtype=torch.float64)
    energy = float(obj.terms(expression_field(p.exact, p.variables))["pde"].detach())
    exact = -0.5 * 17 * math.pi**2 * 0.5 * (0.25 * (1 + 0.1)) * 1.0
    assert abs(energy - exact) < 1e-3 * abs(exact)
    q = problem_from_dict(
        {
            "pde": "poisson",
            "domain": {"box": [[0, 1]]},
            "exact": "sin(x)",
            "boundary": [{"faces": "all", "type": "robin", "alpha": 3, "value": "exact"}],
        }
    )
    (b,) = Objective.from_problem(q, dtype=torch.float64).robin
    x = b.x[:, 0]
    expected = b.normal[:, 0] * torch.cos(x) + 3 * torch.sin(x)
    torch.testing.assert_close(b.g, expected)
