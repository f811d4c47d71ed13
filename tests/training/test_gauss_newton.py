"""The Gauss–Newton phase: Jacobians from the forward-Laplacian streams, the two forms of
the step, the least-squares optimum of a linear model, damping, precision and the
``train.optimizer`` schema (float64 throughout unless said otherwise)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from mscalepde import problem_from_dict, solve
from mscalepde.architectures import ARCHITECTURES
from mscalepde.calculus.derivatives import derivatives
from mscalepde.calculus.jet import Jet, JetSpec
from mscalepde.equations import Objective, ResidualBlock
from mscalepde.errors import MscaleError, ProblemError
from mscalepde.problem.validate import load_problem
from mscalepde.run.model import make_model
from mscalepde.training.callbacks import Callback
from mscalepde.training.gauss_newton import GaussNewton, GaussNewtonSettings, Parameters, block_rows
from tests.helpers import DIMS, POISSON1D, PROBLEMS, small_model
from tests.training.blocks import residual_blocks


def _autograd_rows(model, block: ResidualBlock, params: list[nn.Parameter]) -> tuple:
    """Reference: r by the autograd engine, J row by row by reverse mode."""
    qs = block.quantities(model, engine="autograd")
    res, jacs = [], []
    for q, g in zip(qs, block.data, strict=True):
        r = block.combine(q) - g
        rows = []
        for i in range(len(r)):
            gi = torch.autograd.grad(r[i], params, retain_graph=True, allow_unused=True)
            rows.append(
                torch.cat(
                    [
                        (torch.zeros_like(p) if a is None else a).reshape(-1)
                        for p, a in zip(params, gi, strict=True)
                    ]
                )
            )
        res.append(r.detach())
        jacs.append(torch.stack(rows))
    return res, jacs


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("dims", DIMS, ids=lambda d: f"{d[0]}d{'t' if d[1] else ''}")
def test_jacobian_matches_autograd(arch, dims):
    space_dim, has_time = dims
    if arch == "stmff" and not has_time:
        pytest.skip("stmff needs time")
    model = small_model(arch, space_dim, has_time)
    params = Parameters(model)
    for block in residual_blocks(space_dim, has_time):
        res, jacs = block_rows(model, block, slice(None), params)
        ref_r, ref_j = _autograd_rows(model, block, params.params)
        for r, j, rr, rj in zip(res, jacs, ref_r, ref_j, strict=True):
            assert j.shape == (block.size, params.count)
            assert torch.allclose(r, rr, rtol=1e-10, atol=1e-12)
            assert float((j - rj).abs().max()) <= 1e-10 * float(rj.abs().max())
        # Jᵀr is the autograd gradient of ½‖r‖² (first quantity of the block)
        r0 = block.combine(block.quantities(model, engine="autograd")[0]) - block.data[0]
        grad = torch.autograd.grad(0.5 * r0.square().sum(), params.params, allow_unused=True)
        ref = torch.cat(
            [
                (torch.zeros_like(p) if g is None else g).reshape(-1)
                for p, g in zip(params.params, grad, strict=True)
            ]
        )
        assert float((jacs[0].T @ res[0] - ref).norm()) <= 1e-10 * float(ref.norm()) + 1e-14


def test_trainable_fourier_matrix_goes_through_the_chain_rule():
    """B enters the jet as the derived weight 2πB: its columns come from the chain rule."""
    model = small_model("fourier", 2, False, trainable=True)
    params = Parameters(model)
    assert any(name.endswith("B") for name, _ in model.named_parameters())
    block = residual_blocks(2, False)[0]
    (r,), (j,) = block_rows(model, block, slice(None), params)
    (rr,), (rj,) = _autograd_rows(model, block, params.params)
    assert float((j - rj).abs().max()) <= 1e-10 * float(rj.abs().max())


def test_jacobian_chunks_give_the_same_rows():
    model = small_model("mlp", 2, False)
    params = Parameters(model)
    block = residual_blocks(2, False)[0]
    (_,), (whole,) = block_rows(model, block, slice(None), params)
    parts = [block_rows(model, block, slice(a, a + 3), params)[1][0] for a in range(0, 7, 3)]
    assert float((torch.cat(parts) - whole).abs().max()) <= 1e-13 * float(whole.abs().max())


def _objective(n_interior: int, width: int, **train):
    cfg = copy.deepcopy(POISSON1D)
    cfg["model"] = {"arch": "mlp", "width": width, "depth": 2}
    cfg["train"]["points"] = {"interior": n_interior, "boundary": 2}
    cfg["train"].update(train)
    p = problem_from_dict(cfg)
    model = make_model(p, torch.float64)
    obj = Objective.from_problem(p, dtype=torch.float64)
    return p, model, obj


def test_dual_and_primal_steps_agree():
    """Jᵀ(JJᵀ + λI)⁻¹R = (JᵀJ + λI)⁻¹JᵀR: the two forms take the same step."""
    steps = {}
    for form in ("dual", "primal"):
        p, model, obj = _objective(40, 8)  # 42 residuals, 97 parameters
        gn = GaussNewton(
            model, obj, p.train["weights"], GaussNewtonSettings(form=form, damping=1e-3)
        )
        theta0 = gn.params.vector()
        it = gn.iterate()
        assert it is not None and it.form == form
        steps[form] = theta0 - gn.params.vector()
    d, q = steps["dual"], steps["primal"]
    assert float((d - q).norm()) <= 1e-8 * float(d.norm())


def test_form_is_chosen_by_the_number_of_residuals():
    p, model, obj = _objective(40, 8)
    gn = GaussNewton(model, obj, p.train["weights"], GaussNewtonSettings())
    assert gn.form(42) == "dual" and gn.form(200) == "primal"


class LinearInParameters(nn.Module):
    """u(x) = Σ_j c_j φ_j(x) with fixed features φ_j(x) = sin(j π x): linear in c."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.c = nn.Linear(n, 1, bias=False, dtype=torch.float64)
        self.k = torch.arange(1, n + 1, dtype=torch.float64) * torch.pi

    def forward(self, x):
        return self.c(torch.sin(x * self.k))

    def jet(self, x, spec: JetSpec) -> Jet:
        h = Jet.input(x, spec).linear(self.k[:, None]).sin()
        return h.linear(self.c.weight)


@pytest.mark.parametrize("form", ["dual", "primal"])
def test_linear_model_reaches_the_least_squares_optimum_in_one_undamped_step(form):
    """For a model linear in θ the Gauss–Newton step is the exact least-squares solve."""
    n = 6
    cfg = copy.deepcopy(POISSON1D)
    cfg["exact"] = "x*(1-x)*exp(x)"  # not in the span: a non-zero optimum residual
    cfg["train"]["points"] = {"interior": 40 if form == "primal" else 4, "boundary": 2}
    p = problem_from_dict(cfg)
    obj = Objective.from_problem(p, dtype=torch.float64)
    model = LinearInParameters(n)
    settings = GaussNewtonSettings(form=form, damping=1e-300, min_damping=1e-300)
    gn = GaussNewton(model, obj, p.train["weights"], settings)
    it = gn.iterate()
    assert it is not None and it.form == form
    # the optimum from an independent dense solve of the same weighted system
    blocks = obj.blocks()
    counts = {"pde": blocks[0].rows, "boundary": sum(b.rows for b in blocks[1:])}
    a_rows, b_rows = [], []
    for b in blocks:
        x = b.points[0]
        w = (p.train["weights"][b.term] / counts[b.term]) ** 0.5
        phi = torch.sin(x * model.k)
        a_rows.append(w * ((model.k**2) * phi if b.term == "pde" else phi))
        b_rows.append(w * b.data[0])
    a, rhs = torch.cat(a_rows), torch.cat(b_rows)
    expected = torch.linalg.lstsq(a, rhs[:, None]).solution[:, 0]
    got = model.c.weight.detach()[0]
    if form == "primal":
        assert torch.allclose(got, expected, rtol=1e-8, atol=1e-10)
    else:  # fewer residuals than parameters: interpolation, the loss is zero
        assert it.loss < 1e-20
    assert gn.loss() == pytest.approx(float((a @ got - rhs).square().sum()), rel=1e-8, abs=1e-24)


@pytest.mark.slow
def test_gauss_newton_from_initialisation_on_a_small_network(tmp_path, poisson1d):
    """A 16×2 tanh MLP on 64 points: 15 iterations from the random initialisation."""
    poisson1d["train"]["optimizer"] = [{"gauss-newton": {"steps": 15, "damping": 1e-3}}]
    r = solve(problem_from_dict(poisson1d), out=tmp_path / "run")
    assert r.summary["rel_l2"] < 2e-3
    assert r.summary["final_dtype"] == "float64" and r.summary["dtype"] == "float32"
    assert r.summary["gauss_newton_steps"] >= 5
    rows = [row for row in r.history if row["phase"] == 2.0 and row["step"] > 0]
    assert rows and all("damping" in row and "step_size" in row for row in rows)
    losses = [row["loss"] for row in rows]
    assert all(b < a for a, b in zip(losses, losses[1:]))  # LM accepts decreases only
    hist = (tmp_path / "run" / "history.csv").read_text().splitlines()[0]
    assert "damping" in hist and "step_size" in hist


def test_adam_then_gauss_newton_switches_precision_at_the_boundary(poisson1d):
    poisson1d["train"]["optimizer"] = ["adam", {"gauss-newton": {"steps": 3}}]
    poisson1d["train"]["steps"] = 20
    r = solve(problem_from_dict(poisson1d), write=False)
    names = [p["name"] for p in r.summary["phases"]]
    assert names == ["adam", "gauss-newton"]
    assert r.summary["adam_steps"] == 20
    assert next(r.model.parameters()).dtype == torch.float64
    phase = [row["phase"] for row in r.history]
    assert phase[0] == 0.0 and phase[-1] == 2.0


def test_line_search_method_also_converges(poisson1d):
    poisson1d["train"]["optimizer"] = [
        {"gauss-newton": {"steps": 8, "method": "line-search", "damping": 1e-8}}
    ]
    r = solve(problem_from_dict(poisson1d), write=False)
    rows = [row for row in r.history if row["phase"] == 2.0 and row["step"] > 0]
    assert rows and r.summary["rel_l2"] < r.history.rows[0]["rel_l2"]
    assert all(0 < row["step_size"] <= 1 for row in rows)
    losses = [row["loss"] for row in rows]
    assert all(b < a for a, b in zip(losses, losses[1:]))


def test_line_search_stops_at_the_grids_first_local_minimum(poisson1d):
    """The walk α = 1, ½, … stops once the loss rises again; on a unimodal profile the α it
    takes is the argmin over the whole grid (the ENGD recipe), at fewer loss evaluations."""
    p = problem_from_dict(poisson1d)
    torch.manual_seed(0)
    model = make_model(p, torch.float64)
    obj = Objective.from_problem(p, dtype=torch.float64)
    settings = GaussNewtonSettings(method="line-search", damping=1e-8, halvings=10)
    gn = GaussNewton(model, obj, p.train["weights"], settings)
    theta = gn.params.vector().clone()
    loss0 = gn.loss()
    seen: list[tuple[torch.Tensor, float]] = []
    plain = gn.loss

    def recording() -> float:
        value = plain()
        seen.append((gn.params.vector().clone(), value))
        return value

    gn.loss = recording  # type: ignore[method-assign]
    it = gn.iterate()
    assert it is not None and it.tries == len(seen) < settings.halvings + 1
    d = theta - seen[0][0]  # the first evaluation is at α = 1
    grid = []
    for k in range(settings.halvings + 1):
        gn.params.assign(theta - 0.5**k * d)
        grid.append(plain())
    best = min(range(len(grid)), key=grid.__getitem__)
    assert grid[best] < loss0
    assert it.step_size == 0.5**best and it.loss == pytest.approx(grid[best], rel=1e-12)
    assert seen[-1][1] >= it.loss  # it stopped on a rise, not at the grid's end


def test_resampling_every_iteration_changes_the_points(poisson1d):
    poisson1d["train"]["optimizer"] = [{"gauss-newton": {"steps": 3, "resample_every": 1}}]
    p = problem_from_dict(poisson1d)
    seen = []

    class Points(Callback):
        def on_step(self, trainer, step):
            seen.append(trainer.objective.x_interior.clone())

    solve(p, write=False, callbacks=[Points()])
    assert len(seen) == 3
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])


def test_legacy_steps_and_lbfgs_steps_map_onto_phases(poisson1d):
    poisson1d["train"].update(steps=7, lbfgs_steps=3)
    p = problem_from_dict(poisson1d)
    from mscalepde.training.settings import TrainSettings

    phases = TrainSettings.from_mapping(p.train).phases()
    assert [(ph.name, ph.steps) for ph in phases] == [("adam", 7), ("lbfgs", 3)]
    # train.steps still sets the Adam phase of an explicit optimizer list
    poisson1d["train"]["optimizer"] = ["adam", "gauss-newton"]
    p = problem_from_dict(poisson1d)
    phases = TrainSettings.from_mapping(p.train).phases()
    assert [(ph.name, ph.steps) for ph in phases] == [("adam", 7), ("gauss-newton", 30)]
    again = problem_from_dict(p.config, origin="again")
    assert again.train["optimizer"] == p.train["optimizer"]


def test_memory_limit_is_refused_before_training_naming_the_sizes(poisson1d):
    poisson1d["train"]["optimizer"] = [{"gauss-newton": {"max_memory_gb": 1e-6}}]
    with pytest.raises(MscaleError) as exc:
        solve(problem_from_dict(poisson1d), write=False)
    msg = str(exc.value)
    assert "train.optimizer[0].gauss-newton.max_memory_gb" in msg
    assert "66 residuals" in msg and "parameters" in msg and "\n" not in msg


def test_network_without_a_jet_is_refused():
    p, _, obj = _objective(10, 4)
    with pytest.raises(MscaleError, match="forward-Laplacian jet"):
        GaussNewton(nn.Linear(1, 1).double(), obj, p.train["weights"], GaussNewtonSettings())


@pytest.mark.parametrize(
    "value, key",
    [
        ("[adam, gauss-newtn]", "train.optimizer[1]"),
        ("[{gauss-newton: {dampng: 1}}]", "train.optimizer[0].gauss-newton.dampng"),
        ("[{gauss-newton: {method: foo}}]", "train.optimizer[0].gauss-newton.method"),
        ("[{adam: {steps: -1}}]", "train.optimizer[0].adam.steps"),
        ("[{adam: 1, lbfgs: 2}]", "train.optimizer[0]"),
        ("[]", "train.optimizer"),
    ],
)
def test_bad_optimizer_entry_is_one_line_naming_the_key(value, key, tmp_path):
    with pytest.raises(ProblemError) as exc:
        load_problem(PROBLEMS / "poisson1d_sin.yaml", [f"train.optimizer={value}"])
    assert f": {key}:" in str(exc.value)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mscalepde",
            "solve",
            str(PROBLEMS / "poisson1d_sin.yaml"),
            "--set",
            f"train.optimizer={value}",
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and err.count("\n") == 0 and key in err


def test_derivatives_with_a_tape_records_every_linear_map():
    from mscalepde.calculus.jet import LinearTape

    model = small_model("mlp", 2, False)
    tape = LinearTape()
    x = torch.rand(5, 2, dtype=torch.float64)
    d = derivatives(model, x, space_dim=2, tape=tape)  # the value alone, through the jet
    assert torch.allclose(d.u, model(x).reshape(-1))
    assert len(tape.records) == 4  # 3 hidden layers and the head
    assert all(z.shape[0] == 5 for rec in tape.records for z in rec[3])


@pytest.mark.slow
def test_summary_records_the_phases(tmp_path, poisson1d):
    poisson1d["train"]["optimizer"] = [{"adam": {"steps": 5}}, {"gauss-newton": {"steps": 2}}]
    solve(problem_from_dict(poisson1d), out=tmp_path / "r")
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert [p["name"] for p in s["phases"]] == ["adam", "gauss-newton"]
    assert s["phases"][0]["steps"] == 5 and s["gauss_newton_steps"] == 2


@pytest.mark.slow
def test_library_default_poisson1d_multiscale_reaches_1e_6():
    """The shipped file, as ``mscalepde solve`` runs it: rel L2 ≤ 1e-6 (issue 11)."""
    r = solve(PROBLEMS / "poisson1d_multiscale.yaml", write=False)
    assert r.summary["rel_l2"] <= 1e-6


def test_steps_override_sizes_the_package_default_instead_of_replacing_it(tmp_path):
    """A file silent on the optimiser gets [adam, gauss-newton]; ``--set train.steps=N``
    sizes that Adam phase and keeps the Gauss–Newton one."""
    import yaml

    from mscalepde.training.settings import TrainSettings

    data = yaml.safe_load((PROBLEMS / "poisson1d_sin.yaml").read_text())
    data.pop("train")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    for overrides, adam in (([], 500), (["train.steps=300"], 300)):
        p = load_problem(path, overrides)
        phases = TrainSettings.from_mapping(p.train).phases()
        assert [(ph.name, ph.steps) for ph in phases] == [("adam", adam), ("gauss-newton", 100)]
        assert phases[1].options["patience"] == 15


def test_damping_outside_its_limits_is_refused():
    with pytest.raises(ProblemError, match=r"gauss-newton\.damping: expected min_damping"):
        load_problem(
            PROBLEMS / "poisson1d_sin.yaml",
            ["train.optimizer=[{gauss-newton: {damping: 1.0e+7}}]"],
        )


def _two_layer_ritz(interface: bool):
    """−(a u')' = 4π² sin 2πx on [0, 1], a = 1 | 10 across x = 1/2, u = sin(2πx)/a: u is
    continuous with a kink at the interface (u' jumps tenfold)."""
    a = "where(x < 0.5, 1, 10)"
    model = {"arch": "mlp", "width": 16, "depth": 2, "activation": "tanh"}
    if interface:
        model["interface"] = "x - 0.5"
    return problem_from_dict(
        {
            "pde": "poisson",
            "domain": {"box": [[0, 1]]},
            "diffusivity": a,
            "exact": f"sin(2*pi*x) / {a}",
            "source": "4*pi**2*sin(2*pi*x)",
            "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
            "model": model,
            "train": {
                "loss": "ritz",
                "optimizer": [{"gauss-newton": {"steps": 40, "resample_every": 1}}],
                "points": {"interior": 512, "boundary": 2},
                "sampler": "sobol",
                "weights": {"boundary": 1.0e4},
                "dtype": "float64",
            },
            "diagnostics": {"enabled": False},
        }
    )


def test_ritz_gauss_newton_with_an_interface_feature_resolves_the_kink():
    """Energy natural gradient on the Ritz energy of a two-layer medium: with |x − 1/2| as
    an input (model.interface) the network has the solution's kink and the error is far
    below the smooth network's, which must smear it (measured: 1.3e-3 against 4.3e-2)."""
    with_feature = solve(_two_layer_ritz(True), write=False).summary["rel_l2"]
    without = solve(_two_layer_ritz(False), write=False).summary["rel_l2"]
    assert with_feature < 5e-3
    assert with_feature < without / 5


def test_keep_best_ends_on_the_iterate_with_the_lowest_validation_loss(poisson1d):
    """``keep_best``: every iteration's loss on one fixed validation draw (seed + 2^30) is a
    history column, and the phase ends with the parameters of its minimiser."""
    poisson1d["train"]["points"] = {"interior": 12, "boundary": 2}
    poisson1d["train"]["optimizer"] = [
        {"adam": {"steps": 20}},
        {"gauss-newton": {"steps": 8, "resample_every": 1, "keep_best": True}},
    ]
    p = problem_from_dict(poisson1d)
    seen: dict[int, torch.Tensor] = {}

    class Keep(Callback):
        def on_step(self, trainer, step):
            if step > 20:
                seen[step] = Parameters(trainer.model).vector().clone()

    r = solve(p, write=False, callbacks=[Keep()])
    rows = {int(row["step"]): row["validation_loss"] for row in r.history if row["phase"] == 2.0}
    assert sorted(rows) == sorted(seen) and len(rows) == 8
    best = min(rows, key=rows.__getitem__)
    assert torch.equal(Parameters(r.model).vector(), seen[best])
    notes = [n for n in r.summary.get("notes", []) if "keep_best" in n]
    assert len(notes) == (best != max(rows))
    # the column is the weighted loss on the draw with seed + 2^30, recomputed here
    val = Objective.from_problem(p, dtype=torch.float64).drawn(
        p.train["seed"] + GaussNewton.VALIDATION_SEED)
    terms = val.terms(r.model)
    value = sum(p.train["weights"].get(k, 1.0) * float(v.detach()) for k, v in terms.items())
    assert value == pytest.approx(rows[best], rel=1e-12)


def test_drawn_leaves_the_objectives_own_points_alone(poisson1d):
    obj = Objective.from_problem(problem_from_dict(poisson1d), dtype=torch.float64)
    before = obj.x_interior.clone()
    other = obj.drawn(obj.seed + 1)
    assert torch.equal(obj.x_interior, before) and not torch.equal(other.x_interior, before)
