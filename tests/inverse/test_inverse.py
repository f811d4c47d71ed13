"""Inverse problems (issue 28): the problem language, joint training, the covariance."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mscalepde import problem_from_dict, solve
from mscalepde.cli import main
from mscalepde.errors import ProblemError, Stopped
from mscalepde.inverse.covariance import uncertainty
from mscalepde.run.model import make_model, make_objective
from mscalepde.training.signals import StopRequest
from tests.helpers import StopAt

# -κ u'' = κ π² sin(πx) on (0, 1), u = 0 at both ends: u = sin(πx) whatever κ, so the
# source carries κ = 0.7 and the observations of u (and the source) determine it
KAPPA = {
    "name": "kappa1d",
    "pde": "poisson",
    "domain": {"box": [[0, 1]]},
    "diffusivity": "kappa",
    "source": "0.7*pi**2*sin(pi*x)",
    "exact": "sin(pi*x)",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
    "unknowns": {"kappa": {"initial": 2.0, "lower": 0.01, "upper": 10, "exact": 0.7}},
    "observations": {"points": 20, "from": "exact", "noise": 0.0, "seed": 1},
    "model": {"arch": "mlp", "width": 12, "depth": 2},
    "train": {
        "dtype": "float64", "compile": "off", "device": "cpu", "log_every": 10,
        "points": {"interior": 400, "boundary": 2},
        "optimizer": [{"adam": {"steps": 200, "lr": 0.01}}, {"gauss-newton": {"steps": 60}}],
    },
    "diagnostics": {"enabled": False},
}


def _problem(**changes):
    cfg = copy.deepcopy(KAPPA)
    for k, v in changes.items():
        cfg[k] = v
    return problem_from_dict(cfg)


def _refused(cfg, key, *words):
    with pytest.raises(ProblemError) as info:
        problem_from_dict(cfg)
    msg = str(info.value)
    assert "\n" not in msg and key in msg, msg
    for w in words:
        assert w in msg, msg


@pytest.fixture(scope="module")
def recovered():
    return solve(_problem(), write=False, baseline=False)


@pytest.mark.slow
def test_a_scalar_is_recovered_without_noise(recovered):
    kappa = recovered.summary["inverse"]["scalars"]["kappa"]
    assert abs(kappa["value"] - 0.7) < 1e-6, kappa
    # the history records the unknown at every logged step, starting from its initial value
    column = recovered.history.column("unknown_kappa")
    assert abs(column[0] - 2.0) < 0.1 and abs(column[-1] - kappa["value"]) < 1e-12


@pytest.mark.slow
def test_the_uncertainty_is_reported_and_covers(recovered):
    k = recovered.summary["inverse"]["scalars"]["kappa"]
    assert k["std"] > 0 and k["lower95"] < k["value"] < k["upper95"]
    assert recovered.summary["inverse"]["uncertainty"]["sigma_source"] == "estimated"


@pytest.mark.slow
def test_the_covariance_equals_the_inverse_finite_difference_hessian():
    """The Laplace form σ² [(J̃ᵀJ̃ + δI)⁻¹]_ss against σ² [(H + δI)⁻¹]_ss, H the
    finite-difference Hessian of ½‖R̃‖² at a minimum with (almost) zero residual, where the
    two must agree."""
    problem = _problem(observations={"points": 20, "from": "exact", "noise": 0.0, "seed": 1,
                                     "sigma": 0.01})
    run = solve(problem, write=False, baseline=False)
    model = run.model
    objective = make_objective(problem, model, dtype=torch.float64, device=torch.device("cpu"))
    weights = problem.train["weights"]
    unc = uncertainty(model, objective, dict(weights), 0.01)
    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    n_data = len(problem.inverse.observations.values)

    def loss(theta):  # ½‖R̃‖², R̃ scaled as the covariance scales it (data rows unscaled)
        offset = 0
        with torch.no_grad():
            for p in params:
                p.copy_(theta[offset: offset + p.numel()].view_as(p))
                offset += p.numel()
        terms = objective.terms(model)
        scale = n_data / weights["data"]
        return 0.5 * sum(weights.get(k, 1.0) * v * scale for k, v in terms.items())

    def grad(theta):
        loss(theta).backward()
        g = torch.cat([p.grad.reshape(-1) for p in params])
        for p in params:
            p.grad = None
        return g

    h = 1e-5
    P = len(flat)
    hess = torch.zeros(P, P, dtype=torch.float64)
    for i in range(P):
        e = torch.zeros(P, dtype=torch.float64)
        e[i] = h
        hess[:, i] = (grad(flat + e) - grad(flat - e)) / (2 * h)
    hess = 0.5 * (hess + hess.T)
    loss(flat)
    delta = 1e-10 * float(hess.diagonal().mean())
    cov = torch.linalg.inv(hess + delta * torch.eye(P, dtype=torch.float64)) * 0.01**2
    s = model.unknowns.raw["kappa"]
    col = [i for i, p in enumerate(params) if p is s]
    offset = sum(p.numel() for p in params[: col[0]])
    from mscalepde.inverse.unknowns import scalar_slope

    sd_fd = math.sqrt(float(cov[offset, offset])) * abs(
        scalar_slope(problem.inverse.scalars["kappa"], float(s.detach()))
    )
    sd_gn = unc.scalars["kappa"]["std_laplace"]
    assert sd_gn == pytest.approx(sd_fd, rel=0.05), (sd_gn, sd_fd)
    # the sandwich (the estimator's own spread, the reported std) never exceeds Laplace
    assert 0 < unc.scalars["kappa"]["std"] <= sd_gn * (1 + 1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [150, 210])
def test_resume_with_unknowns_equals_an_uninterrupted_run(tmp_path, recovered, stop_at):
    run = tmp_path / "run"
    request = StopRequest()
    with pytest.raises(Stopped):
        solve(_problem(), out=run, callbacks=[StopAt(stop_at, request)], stop=request,
              baseline=False)
    resumed = solve(_problem(), resume=run, baseline=False)
    a, b = resumed.model.state_dict(), recovered.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.summary["inverse"]["scalars"]["kappa"]["value"] == (
        recovered.summary["inverse"]["scalars"]["kappa"]["value"]
    )


def test_the_model_holds_u_and_the_unknowns():
    problem = _problem()
    model = make_model(problem, torch.float64)
    names = [n for n, _ in model.named_parameters()]
    assert "unknowns.raw.kappa" in names and any(n.startswith("u.") for n in names)
    assert float(model.unknowns.scalar("kappa").detach()) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "change, key, words",
    [
        ({"unknowns": {"kappa": {"initial": 1.0, "exact": 0.7}, "beta": {"initial": 1.0}}},
         "unknowns.beta", ("appears in no expression",)),
        ({"unknowns": {"x": {"initial": 1.0}}}, "unknowns.x", ("variable",)),
        ({"params": {"kappa": 1.0}}, "unknowns.kappa", ("parameter",)),
        ({"unknowns": {"kappa": {"initial": 20.0, "lower": 0.01, "upper": 10}}},
         "unknowns.kappa.initial", ("outside",)),
        ({"unknowns": {"kappa": {"initial": 1.0, "lower": 2, "upper": 1}}},
         "unknowns.kappa.upper", ()),
        ({"observations": {"points": [[1.5]], "from": "exact"}}, "observations", ("outside",)),
        ({"observations": {"points": 10, "from": "exact", "sigma": -0.1}},
         "observations.sigma", ("positive",)),
        ({"observations": {"points": 10, "from": "exact", "noise": -1}},
         "observations.noise", ()),
        ({"unknowns": {"sin": {"initial": 1.0}}}, "unknowns.sin", ()),
        ({"unknowns": {"kappa": {"initial": 1.0}}, "source": "auto"}, "source", ("exact",)),
        ({"model": {"arch": "auto"}}, "model", ("true unknowns",)),
    ],
)
def test_bad_input_is_refused_in_one_line(change, key, words):
    cfg = copy.deepcopy(KAPPA)
    cfg.update(change)
    _refused(cfg, key, *words)


def test_the_cli_refuses_bad_input_with_exit_2(tmp_path, capsys):
    import yaml

    cfg = copy.deepcopy(KAPPA)
    cfg["observations"] = {"points": [[2.0]], "from": "exact"}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    err = (captured.out + captured.err).strip()
    assert len(err.splitlines()) == 1 and "observations" in err and "Traceback" not in err


@pytest.mark.slow
def test_a_field_is_recovered_with_its_boundary_values():
    """−(a u')' = f on (0, 1) with a = 1 + x/2 unknown (known at the ends), u = sin(πx)
    observed at 40 points: the field network recovers a to rel L2 < 5e-3."""
    cfg = {
        "name": "field1d", "pde": "poisson", "domain": {"box": [[0, 1]]},
        "diffusivity": "a",
        "source": "(1 + x/2)*pi**2*sin(pi*x) - 0.5*pi*cos(pi*x)",
        "exact": "sin(pi*x)",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
        "unknowns": {"a": {"field": {"arch": "mlp", "width": 8, "depth": 1},
                           "boundary": "exact", "exact": "1 + x/2"}},
        "observations": {"points": 40, "from": "exact", "noise": 0.0, "seed": 2},
        "model": {"arch": "mlp", "width": 16, "depth": 2},
        "train": {"dtype": "float64", "compile": "off", "device": "cpu",
                  "points": {"interior": 200, "boundary": 2},
                  "optimizer": [{"adam": {"steps": 300, "lr": 0.01}},
                                {"gauss-newton": {"steps": 30}}]},
        "diagnostics": {"enabled": False},
    }
    run = solve(problem_from_dict(cfg), write=False, baseline=False)
    field = run.summary["inverse"]["fields"]["a"]
    assert field["rel_l2"] < 5e-3, field  # measured 2.5e-3
    assert run.history.column("rel_l2_a")[-1] == pytest.approx(field["rel_l2"], rel=1e-6)
    # the spectral diagnostics of the field: the mean (k = 0) mode is resolved first
    rows = field["spectrum"]
    assert rows[0]["norm"] == 0.0 and rows[0]["resolved"] and rows[0]["delta_f"] < 5e-3
    # the band (noise-free data: σ̂ is the model error, tiny) exists on the grid
    assert run.summary["inverse"]["field_bands"]["a"]["band95_mean"] >= 0


def _rich_problem():
    """2D: an unknown scalar in the diffusivity with a field, a Robin α unknown, a
    reaction using an unknown, observations: every live path of the objective."""
    return problem_from_dict({
        "name": "rich", "pde": "poisson", "domain": {"box": [[0, 1], [0, 1]]},
        "diffusivity": "kappa*a", "reaction": "c*u", "exact": "sin(x + 2*y)",
        "source": "auto",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"},
                     {"faces": "x+", "type": "robin", "alpha": "alpha", "value": "exact"},
                     {"faces": "y-", "type": "neumann", "value": "exact"}],
        "unknowns": {"kappa": {"initial": 1.3, "lower": 0, "exact": 1.0},
                     "c": {"initial": 0.2, "exact": 0.5},
                     "alpha": {"initial": 1.0, "lower": 0.1, "upper": 5, "exact": 2.0},
                     "a": {"field": {"arch": "mlp", "width": 5, "depth": 1},
                           "exact": "1 + x*y", "boundary": "exact"}},
        "observations": {"points": 7, "from": "exact", "noise": 0.01},
        "model": {"arch": "mlp", "width": 6, "depth": 1},
        "train": {"dtype": "float64", "points": {"interior": 9, "boundary": 12}},
    })


def test_the_gauss_newton_jacobian_of_every_live_row_equals_autograd():
    """Rows through recorded scalars (z = 1·θ), a field's jet, live boundary data and the
    total derivative of the diffusivity: the per-point Jacobian equals autograd's."""
    from mscalepde.training.gauss_newton import Parameters, block_rows

    problem = _rich_problem()
    torch.manual_seed(0)
    model = make_model(problem, torch.float64)
    objective = make_objective(problem, model, dtype=torch.float64, device=torch.device("cpu"))
    params = Parameters(model)
    terms = set()
    for block in objective.blocks():
        terms.add(block.term)
        rows = slice(0, min(5, block.size))
        (r,), (jac,) = block_rows(model, block, rows, params)
        ref = block.residuals(model, rows)[0]
        auto = torch.stack([
            torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(
                torch.autograd.grad(ref[i], params.params, retain_graph=True, allow_unused=True),
                params.params, strict=True)])
            for i in range(len(ref))
        ])
        assert torch.allclose(r, ref.detach(), atol=1e-13)
        assert torch.allclose(jac, auto, rtol=1e-10, atol=1e-12), block.term
    assert terms == {"pde", "boundary", "data"}


def test_the_matrix_free_products_equal_the_dense_jacobian_with_unknowns():
    from mscalepde.training.gauss_newton import Parameters, block_rows
    from mscalepde.training.matrix_free import build_products

    problem = _rich_problem()
    torch.manual_seed(0)
    model = make_model(problem, torch.float64)
    objective = make_objective(problem, model, dtype=torch.float64, device=torch.device("cpu"))
    params = Parameters(model)
    blocks = [(b, 0.9) for b in objective.blocks()]
    rows, res = [], []
    for block, scale in blocks:
        for start in range(0, block.size, 4):
            rs, js = block_rows(model, block, slice(start, start + 4), params)
            res += [r * scale for r in rs]
            rows += [j * scale for j in js]
    r, jac = torch.cat(res), torch.cat(rows)
    prod = build_products(model, blocks, params, chunk=4)
    assert torch.allclose(prod.residual, r, rtol=1e-12, atol=1e-13)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(params.count, generator=gen, dtype=torch.float64)
    w = torch.randn(len(r), generator=gen, dtype=torch.float64)
    assert torch.allclose(prod.jv(v), jac @ v, rtol=1e-9, atol=1e-10)
    assert torch.allclose(prod.jtw(w), jac.T @ w, rtol=1e-9, atol=1e-10)
