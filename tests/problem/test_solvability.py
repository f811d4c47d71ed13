"""Solvability of pure Neumann and periodic problems (issue 27): the compatibility check at
load time (one line, exit 2), the gauge that fixes the constant, and the agreement of the
reference and the network on it."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from mscalepde.cli import main
from mscalepde.errors import ProblemError
from mscalepde.problem.solvability import (
    GAUGE_MEAN_EXACT,
    GAUGE_MEAN_ZERO,
    box_rule,
    flux_balance,
    gauge_rule,
)
from mscalepde.problem.validate import problem_from_dict

ZERO_FLUX = [{"faces": "all", "type": "neumann", "value": 0}]
PERIODIC = [{"faces": "all", "type": "periodic"}]
DISK = {"shape": {"ball": {"center": [0, 0], "radius": 1}}}


def _doc(box: Any = ((0, 1),), boundary: Any = ZERO_FLUX, **extra: Any) -> dict[str, Any]:
    domain = {"box": [list(b) for b in box]} if not isinstance(box, dict) else box
    return {"pde": "poisson", "domain": domain, "boundary": copy.deepcopy(boundary), **extra}


def _refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict, key: str) -> str:
    """`check` on the file: exit 2 and one FAIL line naming the file and the key."""
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["check", str(path)]) == 2
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1, out
    assert out[0].startswith(f"FAIL {path}: {key}: has no solution"), out[0]
    return out[0]


# ------------------------------------------------------------------ refusals (exit 2)


def test_the_report_minus_u_xx_1_with_zero_flux_is_refused(tmp_path, capsys) -> None:
    """−u″ = 1 with zero flux at both ends: ∫f = 1, ∮g = 0, no solution."""
    line = _refused(tmp_path, capsys, _doc(source=1), "source")
    assert "∫_Ω f dx = 1 and ∮ a g ds = 0" in line
    # `reference` (which ran 33 s on it) refuses it at once too: one line on stderr
    assert main(["reference", str(tmp_path / "p.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {tmp_path / 'p.yaml'}: source:")


def test_a_periodic_2d_source_with_nonzero_mean_is_refused(tmp_path, capsys) -> None:
    doc = _doc(((0, 1), (0, 2)), PERIODIC, source="1 + sin(2*pi*x)*cos(pi*y)")
    line = _refused(tmp_path, capsys, doc, "source")
    assert "∫_Ω f dx = 2 and ∮ a g ds = 0" in line


def test_variable_diffusivity_enters_the_flux(tmp_path, capsys) -> None:
    """−∇·(a∇u) = 1 on the unit square, a = 1 + x, flux g on x+ only: the condition is
    ∫f + ∮ a g = 1 + a(1)·g = 0, so g = −1/2 balances and g = −1 (which balances a = 1)
    does not."""
    good = [*ZERO_FLUX, {"faces": "x+", "type": "neumann", "value": -0.5}]
    bad = [*ZERO_FLUX, {"faces": "x+", "type": "neumann", "value": -1}]
    ok = problem_from_dict(_doc(((0, 1), (0, 1)), good, source=1, diffusivity="1 + x"))
    assert ok.gauge == GAUGE_MEAN_ZERO
    line = _refused(
        tmp_path, capsys, _doc(((0, 1), (0, 1)), bad, source=1, diffusivity="1 + x"), "source"
    )
    assert "∫_Ω f dx = 1 and ∮ a g ds = -2" in line


def test_an_anisotropic_diffusivity_takes_the_normal_axis_entry(tmp_path, capsys) -> None:
    bc = [*ZERO_FLUX, {"faces": "y+", "type": "neumann", "value": -0.25}]
    assert problem_from_dict(_doc(((0, 1), (0, 1)), bc, source=1, diffusivity=[1, 4])).gauge
    _refused(tmp_path, capsys, _doc(((0, 1), (0, 1)), bc, source=1, diffusivity=[4, 1]),
             "source")


def test_a_disk_with_zero_flux_and_a_constant_source_is_refused(tmp_path, capsys) -> None:
    line = _refused(tmp_path, capsys, _doc(DISK, source=1), "source")
    assert "∫_Ω f dx = 3.14" in line and "∮ a g ds = 0" in line


def test_data_from_an_exact_solution_that_is_not_periodic_are_refused(tmp_path, capsys) -> None:
    """``source: auto`` from exact = x² with periodic faces: ∫f = −2·|Ω|; the key is
    ``boundary`` (the source was not written)."""
    line = _refused(tmp_path, capsys, _doc(((0, 1), (0, 2)), PERIODIC, exact="x**2"), "boundary")
    assert "∫_Ω f dx = -4" in line


def test_an_explicit_source_against_exact_neumann_data(tmp_path, capsys) -> None:
    """Neumann ``value: exact`` is differentiated numerically (no torch at load time)."""
    bc = [{"faces": "all", "type": "neumann", "value": "exact"}]
    ok = _doc(((0, 1), (0, 1)), bc, exact="x**2 + y**3", source="-2 - 6*y")
    assert problem_from_dict(ok).gauge == GAUGE_MEAN_EXACT
    _refused(tmp_path, capsys, {**ok, "source": "-2"}, "source")


def test_the_ritz_loss_needs_the_same_condition(tmp_path, capsys) -> None:
    doc = _doc(source=1, train={"loss": "ritz"})
    _refused(tmp_path, capsys, doc, "source")


def test_a_reaction_without_u_is_a_source(tmp_path, capsys) -> None:
    """r(x) = 1 with f = 1 balances; r(x) = x with f = 1 does not (∫(f − r) = 1/2)."""
    assert problem_from_dict(_doc(source=1, reaction=1)).gauge == GAUGE_MEAN_ZERO
    line = _refused(tmp_path, capsys, _doc(source=1, reaction="x"), "source")
    assert "∫_Ω (f − r) dx = 0.5" in line


def test_the_tolerance_is_relative_to_the_data() -> None:
    """1e-6 of ∫|f| + ∮|g| (here 2): an imbalance of 1e-9 passes, 1e-4 does not."""
    for eps, ok in ((1e-9, True), (1e-4, False)):
        bc = [*ZERO_FLUX, {"faces": "x+", "type": "neumann", "value": -(1 - eps)}]
        doc = _doc(source=1, boundary=bc)
        if ok:
            assert problem_from_dict(doc).gauge == GAUGE_MEAN_ZERO
        else:
            with pytest.raises(ProblemError, match="tolerance 2e-06"):
                problem_from_dict(doc)


# ------------------------------------------------------------------ accepted, and the gauge


@pytest.mark.parametrize(
    ("doc", "gauge"),
    [
        # a 2D box whose Neumann data balance the source: ∫f = 2, ∮g = 4 · (−1/2)
        (_doc(((0, 1), (0, 1)), [{"faces": "all", "type": "neumann", "value": -0.5}],
              source=2), GAUGE_MEAN_ZERO),
        (_doc(((0, 1), (0, 2)), PERIODIC, source="sin(2*pi*x)*cos(pi*y)"), GAUGE_MEAN_ZERO),
        (_doc(((0, 1), (0, 1), (0, 1)), [{"faces": "all", "type": "neumann", "value": -0.5}],
              source=3), GAUGE_MEAN_ZERO),
        (_doc(DISK, [{"faces": "all", "type": "neumann", "value": -1}], source=2),
         GAUGE_MEAN_ZERO),
        (_doc(((0, 1),), [{"faces": "all", "type": "neumann", "value": "exact"}],
              exact="cos(pi*x) + 3"), GAUGE_MEAN_EXACT),
        # a periodic axis beside Neumann faces, data from exact
        (_doc(((0, 1), (0, 1)), [{"faces": ["y-", "y+"], "type": "neumann", "value": "exact"},
                                 {"faces": ["x-", "x+"], "type": "periodic"}],
              exact="sin(2*pi*x)*cos(pi*y)"), GAUGE_MEAN_EXACT),
        # the constant is fixed otherwise: no gauge, no check
        (_doc(source=1, boundary=[{"faces": "all", "type": "dirichlet", "value": 0}]), None),
        (_doc(source=1, boundary=[{"faces": "all", "type": "robin", "alpha": 1, "value": 0}]),
         None),
        (_doc(source=1, reaction="u"), None),
        (_doc(source=1, reaction="sinh(u)"), None),
    ],
)
def test_accepted_problems_and_their_gauge(doc: dict, gauge: str | None) -> None:
    assert problem_from_dict(doc).gauge == gauge


def test_heat_and_fit_have_no_gauge() -> None:
    heat = _doc(source=1, initial=0)  # ∫f ≠ 0 is fine: u grows linearly in time
    heat.update(pde="heat", domain={"box": [[0, 1]], "time": [0, 1]})
    p = problem_from_dict(heat)
    assert p.gauge is None and p.gauge_note is None
    fit = problem_from_dict({"pde": "fit", "domain": {"box": [[0, 1]]}, "exact": "x"})
    assert fit.gauge is None


def test_the_gauge_is_stated() -> None:
    p = problem_from_dict(_doc(source="cos(pi*x)"))
    assert p.gauge_note is not None and "mean(u)" in p.gauge_note and p.gauge_note.endswith("0")


def test_the_balance_numbers() -> None:
    """∫f and ∮ a g by quadrature: a 3D box and a disk (lattice and surface rules)."""
    p = problem_from_dict(_doc(((0, 1), (0, 2), (0, 1)), source="x*y*z + 4.75",
                               boundary=[{"faces": "all", "type": "neumann", "value": "-x"}],
                               diffusivity="1 + y"))
    b = flux_balance(p.domain, p.operator, p.source, p.exact, p.boundary)
    assert b is not None
    assert b.volume == pytest.approx(0.5 + 4.75 * 2, rel=1e-12)  # ∫xyz + ∫4.75
    # ∮ −a x: x+ face (x = 1): −∫(1 + y) = −4 (y ∈ [0, 2], z ∈ [0, 1]); x− (x = 0): 0;
    # y± faces: −∫x (1 + y) dx dz = −(1/2)(1 + y) at y = 0, 2: −1/2 − 3/2; z±: −2 · 2
    assert b.boundary == pytest.approx(-4 - 0.5 - 1.5 - 4, rel=1e-12)
    disk = problem_from_dict(_doc(DISK, [{"faces": "all", "type": "neumann", "value": -1}],
                                  source="2 + x"))
    b = flux_balance(disk.domain, disk.operator, disk.source, disk.exact, disk.boundary)
    assert b is not None and b.compatible
    assert b.volume == pytest.approx(2 * math.pi, rel=2e-3)
    assert b.boundary == pytest.approx(-2 * math.pi, rel=1e-6)


# ------------------------------------------------------------------ reference and network


def _mean(problem: Any, values: Any) -> float:
    pts, w = box_rule(list(problem.domain.box), 64)
    return float((w * values(pts)).sum() / w.sum())


@pytest.mark.parametrize(
    "doc",
    [
        _doc(source="pi**2*cos(pi*x)"),  # spectral / FD: bordered system
        _doc(source="(1 + x)*pi**2*cos(pi*x) + pi*sin(pi*x)", diffusivity="1 + x"),  # flux
        _doc(source="pi**2*cos(pi*x) + x - 0.5", reaction="x - 0.5"),  # r(x): flux, linear
        _doc(((0, 1), (0, 1)), PERIODIC, source="8*pi**2*sin(2*pi*x)*cos(2*pi*y)"),
    ],
)
def test_the_reference_has_mean_zero(doc: dict) -> None:
    from mscalepde.reference.solve import compute_reference

    p = problem_from_dict(doc)
    assert p.gauge == GAUGE_MEAN_ZERO
    ref = compute_reference(p, estimate=False)
    assert abs(_mean(p, ref)) < 1e-6
    if p.domain.space_dim == 1:  # the solution is cos(πx)
        x = np.linspace(0, 1, 101)[:, None]
        assert np.max(np.abs(ref(x) - np.cos(np.pi * x[:, 0]))) < 1e-3


def test_the_reference_follows_the_mean_of_exact() -> None:
    from mscalepde.reference.solve import compute_reference

    p = problem_from_dict(_doc(boundary=[{"faces": "all", "type": "neumann", "value": "exact"}],
                               exact="cos(pi*x) + 3"))
    assert abs(_mean(p, compute_reference(p, estimate=False)) - 3.0) < 1e-6


def _objective(doc: dict, **kw: Any) -> Any:
    from mscalepde.equations import Objective

    return Objective.from_problem(problem_from_dict(doc), dtype=torch.float64, **kw)


def test_the_gauge_is_one_residual_row_with_the_autograd_jacobian() -> None:
    """The gauge block is one row Σ w_i u(x_i) − ū; the Gauss–Newton phase sums its
    Jacobian chunk by chunk and gets autograd's gradient of Σ w_i u(x_i)."""
    from mscalepde.training.gauss_newton import Parameters, reduced_rows
    from tests.helpers import small_model

    doc = _doc(((0, 1), (0, 1)), [{"faces": "all", "type": "neumann", "value": "exact"}],
               exact="cos(pi*x)*cos(pi*y) + 2", train={"points": {"interior": 100}})
    obj = _objective(doc)
    gauge = [b for b in obj.blocks() if b.term == "gauge"]
    assert len(gauge) == 1 and gauge[0].rows == 1 and gauge[0].size == 100
    assert float(gauge[0].data[0]) == pytest.approx(2.0, abs=1e-12)  # the mean of exact
    model = small_model("mlp", 2, False)
    params = Parameters(model)
    (r,), (j,) = reduced_rows(model, gauge[0], 7, params)
    x, w = gauge[0].points[0], gauge[0].reduce
    mean = (w * model(x).reshape(-1)).sum()
    grads = torch.autograd.grad(mean, params.params)
    assert float(r) == pytest.approx(float(mean.detach()) - 2.0, rel=1e-12)
    torch.testing.assert_close(j.reshape(-1), torch.cat([g.reshape(-1) for g in grads]))
    assert set(obj.terms(model)) == {"pde", "boundary", "gauge"}


def test_the_ritz_energy_gets_the_gauge_term_and_curvature_row() -> None:
    obj = _objective(_doc(source="pi**2*cos(pi*x)", train={"loss": "ritz"}))
    from tests.helpers import small_model

    model = small_model("mlp", 1, False)
    assert "gauge" in obj.terms(model)
    rows = [b for b in obj.curvature_blocks() if b.term == "gauge"]
    assert len(rows) == 1 and float(rows[0].data[0]) == 0.0


def test_gauge_points_are_a_mean() -> None:
    for doc in (_doc(source=0), _doc(((0, 2), (0, 1)), PERIODIC, source=0), _doc(DISK, source=0)):
        p = problem_from_dict(doc)
        x, w = gauge_rule(p.domain, 1024)
        assert w.sum() == pytest.approx(1.0) and 200 <= len(x) <= 1024
        if p.domain.geometry is not None:
            assert np.all(p.domain.geometry.shape.contains(x))


def test_a_short_training_gives_a_mean_zero_network_close_to_the_solution() -> None:
    """−u″ = π² cos(πx), zero flux, exact cos(πx) (mean zero): Adam, then Gauss–Newton
    (the gauge is one more residual row there; its Jacobian passes the phase's autograd
    check in float64)."""
    from mscalepde.run.pipeline import solve

    doc = _doc(source="pi**2*cos(pi*x)", exact="cos(pi*x)", name="neumann1d",
               model={"arch": "mlp", "width": 16, "depth": 2},
               train={"optimizer": ["adam", {"gauss-newton": {"steps": 10}}], "steps": 200,
                      "lr": 1e-2, "points": {"interior": 64, "boundary": 2}, "log_every": 50,
                      "dtype": "float64"},
               diagnostics={"every": 0})
    run = solve(problem_from_dict(doc), write=False, baseline=False)
    assert "loss_gauge" in run.history.columns
    with torch.no_grad():
        mean = _mean(run.problem, lambda p: run.model(torch.as_tensor(p)).reshape(-1).numpy())
    assert abs(mean) < 1e-3
    assert run.summary["rel_l2"] < 1e-2
