"""The matrix-free Gauss–Newton step: J v, Jᵀ w and tr(JᵀJ) from the recorded maps against
the dense Jacobian (every architecture, 1–3D, with time, periodic pairs, the gauge row, a
derived weight), the step against the dense step, the Nyström preconditioner's effect,
the memory check and a whole run (float64 throughout)."""

from __future__ import annotations

import copy

import pytest
import torch

from mscalepde import problem_from_dict, solve
from mscalepde.architectures import ARCHITECTURES
from mscalepde.equations import Objective, ResidualBlock
from mscalepde.errors import MscaleError
from mscalepde.run.model import make_model
from mscalepde.training.gauss_newton import GaussNewton, GaussNewtonSettings, Parameters, block_rows
from mscalepde.training.krylov import Nystrom, pcg
from mscalepde.training.matrix_free import build_products
from tests.helpers import DIMS, POISSON1D, SMALL, small_model
from tests.training.blocks import residual_blocks


def _gauge(space_dim: int, has_time: bool) -> ResidualBlock:
    torch.manual_seed(5)
    x = torch.rand(9, space_dim + has_time, dtype=torch.float64)
    w = torch.rand(9, dtype=torch.float64)
    return ResidualBlock("gauge", (x,), (1.0,), lambda d, aux=(): [d.u],
                         (torch.tensor([0.3], dtype=torch.float64),), reduce=w / w.sum())


def _dense(model, blocks, params, chunk=3):
    """R and J in the row order of the dense step (chunk by chunk, quantities within)."""
    rows, res = [], []
    for block, scale in blocks:
        if block.reduce is not None:
            (_,), (j,) = block_rows(model, block, slice(None), params)
            r = block.combine(block.quantities(model)[0].detach()) - block.data[0]
            res.append(r * scale)
            rows.append(j * scale)
            continue
        for start in range(0, block.size, chunk):
            rs, js = block_rows(model, block, slice(start, start + chunk), params)
            res += [r * scale for r in rs]
            rows += [j * scale for j in js]
    return torch.cat(res), torch.cat(rows)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("dims", DIMS, ids=lambda d: f"{d[0]}d{'t' if d[1] else ''}")
def test_products_equal_the_dense_jacobian(arch, dims):
    space_dim, has_time = dims
    if arch == "stmff" and not has_time:
        pytest.skip("stmff needs time")
    model = small_model(arch, space_dim, has_time)
    params = Parameters(model)
    blocks = [(b, 0.7) for b in residual_blocks(space_dim, has_time)]
    blocks.append((_gauge(space_dim, has_time), 1.3))
    r, jac = _dense(model, blocks, params)
    prod = build_products(model, blocks, params, chunk=3)  # several chunks per block
    assert torch.allclose(prod.residual, r, rtol=1e-12, atol=1e-13)
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(params.count, generator=gen, dtype=torch.float64)
    w = torch.randn(len(r), generator=gen, dtype=torch.float64)
    scale = float(jac.abs().max())
    assert float((prod.jv(v) - jac @ v).abs().max()) <= 1e-10 * scale * float(v.abs().sum())
    assert float((prod.jtw(w) - jac.T @ w).abs().max()) <= 1e-10 * scale * float(w.abs().sum())
    assert prod.trace() == pytest.approx(float(jac.pow(2).sum()), rel=1e-10)


def test_a_derived_weight_is_chained_and_its_trace_estimated():
    """Fourier features with a trainable B enter the jet as 2πB."""
    model = small_model("fourier", 2, False, trainable=True)
    params = Parameters(model)
    blocks = [(b, 1.0) for b in residual_blocks(2, False)[:3]]
    r, jac = _dense(model, blocks, params, chunk=4)
    prod = build_products(model, blocks, params, chunk=4)
    v = torch.randn(params.count, dtype=torch.float64)
    w = torch.randn(len(r), dtype=torch.float64)
    assert torch.allclose(prod.jv(v), jac @ v, rtol=1e-9, atol=1e-10)
    assert torch.allclose(prod.jtw(w), jac.T @ w, rtol=1e-9, atol=1e-10)
    assert prod.trace() == pytest.approx(float(jac.pow(2).sum()), rel=0.5)  # 16 probes


def _gn(form: str, solver: str, ritz: bool = False, **extra):
    cfg = copy.deepcopy(POISSON1D)
    if ritz:
        cfg["train"]["loss"] = "ritz"
        cfg["train"]["weights"] = {"boundary": 100.0}
    cfg["model"] = {"arch": "mlp", "width": 12, "depth": 2}
    cfg["train"]["points"] = {"interior": 60, "boundary": 2}
    p = problem_from_dict(cfg)
    torch.manual_seed(0)
    model = make_model(p, torch.float64)
    obj = Objective.from_problem(p, dtype=torch.float64)
    settings = GaussNewtonSettings(form=form, solver=solver, damping=1e-4, cg_tol=1e-14,
                                   cg_max_iter=5000, forcing=0.0, **extra)
    return GaussNewton(model, obj, p.train["weights"], settings)


@pytest.mark.parametrize("form", ["primal", "dual"])
@pytest.mark.parametrize("preconditioner", ["none", "nystrom"])
def test_the_matrix_free_step_equals_the_dense_step(form, preconditioner):
    steps = {}
    for solver in ("dense", "cg"):
        gn = _gn(form, solver, preconditioner=preconditioner, rank=20)
        theta0 = gn.params.vector()
        it = gn.iterate()
        assert it is not None and it.form == (f"cg-{form}" if solver == "cg" else form)
        steps[solver] = theta0 - gn.params.vector()
        if solver == "cg":
            assert it.cg_iterations > 0 and it.cg_residual < 1e-12
    d, q = steps["dense"], steps["cg"]
    assert float((d - q).norm()) <= 1e-8 * float(d.norm())


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_the_matrix_free_step_equals_the_dense_step_in_every_architecture(arch):
    """The step direction at λ = 1e-4 of a 2D problem with a Dirichlet and a Neumann face
    (stmff: 1D heat), dense against matrix-free with Nyström, to 1e-8, and the same
    predicted decrease."""
    space, has_time = (1, True) if arch == "stmff" else (2, False)
    doc = {
        "name": "p", "pde": "heat" if has_time else "poisson",
        "domain": {"box": [[0, 1]] * space, **({"time": [0, 1]} if has_time else {})},
        "exact": "sin(pi*x)*exp(-t)" if has_time else "sin(pi*x)*cos(pi*y/2)",
        "source": "auto",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}]
        + ([] if has_time else [{"faces": "y+", "type": "neumann", "value": "exact"}]),
        "model": {"arch": arch, **{k: v for k, v in SMALL.get(arch, {}).items()}},
        "train": {"points": {"interior": 40, "boundary": 12, "initial": 8}},
    }
    if has_time:
        doc["initial"] = "exact"
        doc["diffusivity"] = 1 / 3.141592653589793**2
    p = problem_from_dict(doc)
    torch.manual_seed(0)
    model = make_model(p, torch.float64)
    gn = GaussNewton(model, Objective.from_problem(p, dtype=torch.float64), p.train["weights"],
                     GaussNewtonSettings(cg_tol=1e-14, cg_max_iter=5000, forcing=0.0))
    groups = gn._scaled_groups()
    rows = sum(b.rows for b, _ in groups[0])
    form = gn.form(rows)
    loss_d, dense = gn._dense_system(groups, rows, form, gn.params.vector())
    loss_c, free = gn._matrix_free_system(groups, form)
    assert loss_c == pytest.approx(loss_d, rel=1e-12)
    (d, pred_d, _), (q, pred_c, _) = dense(1e-4), free(1e-4)
    assert float((d - q).norm()) <= 1e-8 * float(d.norm())
    assert pred_c == pytest.approx(pred_d, rel=1e-8)


def test_the_ritz_energy_step_is_the_same_matrix_free():
    """The energy's Gauss–Newton matrix from the curvature rows and ½∇E from autograd."""
    steps = {}
    for solver in ("dense", "cg"):
        gn = _gn("primal", solver, ritz=True)
        theta0 = gn.params.vector()
        assert gn.iterate() is not None
        steps[solver] = theta0 - gn.params.vector()
    d, q = steps["dense"], steps["cg"]
    assert float((d - q).norm()) <= 1e-8 * float(d.norm())


def test_the_nystrom_preconditioner_lowers_the_cg_iterations():
    gn = _gn("primal", "cg")
    (blocks,) = gn._scaled_groups()
    prod = build_products(gn.model, blocks, gn.params, 1024)
    b = prod.jtw(prod.residual)
    rho = 1e-9 * prod.trace() / prod.rows  # a small damping: an ill-conditioned system
    counts = {}
    for rank in (0, 10, 40):
        nys = Nystrom(lambda x: prod.gram(x, False), gn.params.count, rank, b) if rank else None
        res = pcg(lambda x: prod.gram(x, False) + rho * x, b, tol=1e-10, max_iter=20000,
                  precond=None if nys is None else nys.inverse(rho))
        assert res.residual < 1e-9
        counts[rank] = res.iterations
    assert counts[40] <= counts[10] < counts[0] and counts[40] * 5 < counts[0], counts


def test_auto_takes_the_matrix_free_step_when_the_dense_one_does_not_fit():
    gn = _gn("primal", "auto", max_memory_gb=5e-4)  # 193 parameters: JᵀJ needs ~0.9 MB
    rows = sum(b.rows for b, _ in gn._scaled_groups()[0])
    assert gn.solver(rows, 8) == "cg"
    gn.check_memory(rows, 8)  # the matrix-free step fits
    assert _gn("primal", "auto").solver(rows, 8) == "dense"


def test_a_matrix_free_step_that_cannot_fit_is_refused_naming_the_sizes():
    gn = _gn("primal", "cg", max_memory_gb=1e-7)
    rows = sum(b.rows for b, _ in gn._scaled_groups()[0])
    with pytest.raises(MscaleError, match=r"matrix-free primal Gauss-Newton step needs .* "
                       r"recorded network maps of 62 residuals"):
        gn.check_memory(rows, 8)


def test_a_run_with_the_matrix_free_solver_matches_the_dense_run():
    cfg = copy.deepcopy(POISSON1D)
    cfg["train"] = {**cfg["train"], "optimizer": [{"adam": {"steps": 200}},
                                                  {"gauss-newton": {"steps": 15}}]}
    dense = solve(problem_from_dict(copy.deepcopy(cfg)), write=False)
    cfg["train"]["optimizer"][1]["gauss-newton"]["solver"] = "cg"
    cg = solve(problem_from_dict(cfg), write=False)
    assert cg.rel_l2 < 1e-4 and cg.rel_l2 < 3 * dense.rel_l2
    assert "cg_iterations" in cg.history.columns and "cg_residual" in cg.history.columns
