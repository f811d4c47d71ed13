"""The Kronecker-factored preconditioner of the matrix-free Gauss–Newton step: its blocks
against the dense Gram matrix (exact bias blocks, traces matched), its inverse against the
explicit one, the step it preconditions against the dense step, and its measured effect
on the CG iteration count next to Nyström's (float64)."""

from __future__ import annotations

import pytest
import torch

from mscalepde import problem_from_dict
from mscalepde.equations import Objective
from mscalepde.errors import MscaleError
from mscalepde.run.model import make_model
from mscalepde.training.gauss_newton import GaussNewton, GaussNewtonSettings
from mscalepde.training.kfac import Kfac
from mscalepde.training.krylov import Nystrom, pcg
from mscalepde.training.matrix_free import build_products

DOC = {
    "name": "k", "pde": "poisson", "source": "auto", "domain": {"box": [[0, 1], [0, 1]]},
    "exact": "sin(pi*x)*sin(3*pi*y)",
    "boundary": [{"faces": ["x-", "x+", "y-"], "type": "dirichlet", "value": "exact"},
                 {"faces": ["y+"], "type": "neumann", "value": "exact"}],
    "train": {"points": {"interior": 150, "boundary": 40}},
}


def _gn(model_section, **settings):
    p = problem_from_dict({**DOC, "model": model_section})
    torch.manual_seed(0)
    model = make_model(p, torch.float64)
    return GaussNewton(model, Objective.from_problem(p, dtype=torch.float64),
                       p.train["weights"], GaussNewtonSettings(**settings))


def _gram(gn):
    (blocks,) = gn._scaled_groups()
    prod = build_products(gn.model, blocks, gn.params, 64)
    eye = torch.eye(gn.params.count, dtype=torch.float64)
    return prod, torch.stack([prod.gram(e, False) for e in eye], 1)


def _dense_blocks(kfac):
    for o, n, parts in kfac.blocks:
        if len(parts) == 3:
            qa, qb, lam = parts
            q = torch.kron(qb, qa)
            yield o, n, q @ torch.diag(lam.reshape(-1)) @ q.T
        else:
            qg, lg = parts
            yield o, n, qg @ torch.diag(lg) @ qg.T


@pytest.mark.parametrize("model", [{"arch": "mlp", "width": 10, "depth": 2},
                                   {"arch": "mff", "width": 8, "depth": 2, "features": 4,
                                    "sigmas": [1.0, 3.0]}], ids=["mlp", "mff"])
def test_blocks_match_the_gram_matrix_where_they_should(model):
    gn = _gn(model)
    prod, gram = _gram(gn)
    kfac = Kfac([prod])
    kinds = set()
    for (o, n, approx), (_, _, parts) in zip(_dense_blocks(kfac), kfac.blocks, strict=True):
        true = gram[o : o + n, o : o + n]
        assert float(approx.trace()) == pytest.approx(float(true.trace()), rel=1e-12)
        error = float((approx - true).norm() / true.norm())
        if len(parts) == 2:
            assert error < 1e-12  # a bias block is exact
            kinds.add("bias")
        else:
            assert error < 1.0  # a Kronecker approximation of a weight block
            kinds.add("weight")
    assert kinds == {"bias", "weight"}


def test_the_inverse_is_that_of_the_damped_block_diagonal_matrix():
    gn = _gn({"arch": "mlp", "width": 10, "depth": 2})
    prod, _ = _gram(gn)
    kfac = Kfac([prod])
    p = gn.params.count
    explicit = torch.zeros(p, p, dtype=torch.float64)
    for o, n, block in _dense_blocks(kfac):
        explicit[o : o + n, o : o + n] = block
    covered = explicit.diagonal() != 0
    explicit[~covered, ~covered] = kfac.mean  # (none here: every tensor has a block)
    rho = 0.05
    x = torch.randn(p, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    want = torch.linalg.solve(explicit + rho * torch.eye(p, dtype=torch.float64), x)
    assert torch.allclose(kfac.inverse(rho)(x), want, rtol=1e-10, atol=1e-12)


def test_the_preconditioned_step_is_the_dense_step():
    steps = {}
    for solver, pre in (("dense", "nystrom"), ("cg", "kfac")):
        # λ = 1e-3 (relative) keeps the system's condition number moderate: CG preconditioned
        # by KFAC then converges in hundreds of iterations, not the 10⁴ of λ = 1e-6 (§18)
        gn = _gn({"arch": "mlp", "width": 10, "depth": 2}, solver=solver, preconditioner=pre,
                 cg_tol=1e-13, cg_max_iter=20000, forcing=0.0, damping=1e-3)
        theta = gn.params.vector()
        it = gn.iterate()
        assert it is not None
        steps[solver] = theta - gn.params.vector()
    assert float((steps["dense"] - steps["cg"]).norm()) <= 1e-8 * float(steps["dense"].norm())


def test_kfac_is_refused_with_the_dual_form():
    with pytest.raises(MscaleError, match="kfac approximates J\\^T J"):
        _gn({"arch": "mlp", "width": 10, "depth": 2}, preconditioner="kfac", form="dual")


def test_measured_cg_iterations_nystrom_against_kfac():
    """What benchmarks/README.md §18 reports: on these systems a block-diagonal
    preconditioner (KFAC, or even the exact diagonal blocks) does not lower the CG count,
    the rank-50 Nyström sketch does, by an order of magnitude."""
    gn = _gn({"arch": "mlp", "width": 16, "depth": 2})
    prod, gram = _gram(gn)
    b = prod.jtw(prod.residual)
    rho = 1e-6 * prod.trace() / prod.rows
    system = gram + rho * torch.eye(gn.params.count, dtype=torch.float64)
    counts = {}
    for name, pre in (("none", None), ("kfac", Kfac([prod]).inverse(rho)),
                      ("nystrom", Nystrom(lambda x: gram @ x, gn.params.count, 50, b)
                       .inverse(rho))):
        res = pcg(lambda x: system @ x, b, tol=1e-6, max_iter=5000, precond=pre)
        assert res.residual < 1e-5
        counts[name] = res.iterations
    assert counts["nystrom"] * 10 < counts["none"] <= counts["kfac"], counts
