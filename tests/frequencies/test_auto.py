"""Frequency-adaptive networks (issue 14): ``auto`` σ/scales/arch and ``model.adapt``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mscalepde import problem_from_dict, solve
from mscalepde.cli import main
from mscalepde.errors import ProblemError, SpectrumError, Stopped
from mscalepde.frequencies.adapt import FrequencyAdapter
from mscalepde.frequencies.select import band_scales, choose, resolve_auto
from mscalepde.frequencies.spectrum import estimate_spectrum, remove_lift
from mscalepde.run.model import make_model
from mscalepde.training.callbacks import Callback
from mscalepde.training.signals import StopRequest
from tests.helpers import StopAt

TWO_PI = 2 * math.pi


def _poisson(exact: str, box, model=None, **extra) -> dict:
    cfg = {
        "name": "synthetic",
        "pde": "poisson",
        "domain": {"box": box},
        "exact": exact,
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
        "model": model or {"arch": "auto"},
        "train": {"steps": 10, "points": {"interior": 64, "boundary": 8}, "device": "cpu",
                  "compile": "off", "optimizer": ["adam"]},
        "diagnostics": {"enabled": False},
    }
    cfg.update(extra)
    return cfg


def _covered(mode_cycles, bands, rel: float = 0.05) -> bool:
    """A mode (cycles per unit length, per axis) lies in a band: its |k| within the band's
    range and every axis within ``rel`` of the band's RMS frequency."""
    k = np.array(mode_cycles) * TWO_PI
    norm = float(np.linalg.norm(k))
    for b in bands:
        if b.added:
            continue
        in_range = b.k_lo * (1 - rel) <= norm <= b.k_hi * (1 + rel)
        axes = all(abs(ka - kk) <= rel * max(kk, 1.0) for ka, kk in zip(b.k_axes, k))
        if in_range and axes:
            return True
    return False


@pytest.mark.parametrize(
    "box, exact, modes, sigmas",
    [
        # bands at 1 and 20 cycles: σ = 1 and (20·1)^½
        ([[0, 1]], "sin(2*pi*x) + 0.1*sin(40*pi*x)", [[1.0], [20.0]], [1.0, 20**0.5]),
        # the lowest band (3 cycles per box length) lies above 2 cycles: a low band at one
        # cycle per box length (0.5 per unit) is kept, and is the geometric rule's ν_low
        ([[-1, 1]], "sin(3*pi*x) + 0.05*sin(24*pi*x)", [[1.5], [12.0]],
         [0.5, (1.5 * 0.5) ** 0.5, (12 * 0.5) ** 0.5]),
        ([[0, 2 * math.pi]], "sin(x) + 0.1*sin(16*x)", [[1 / TWO_PI], [16 / TWO_PI]],
         [1 / TWO_PI, 4 / TWO_PI]),
    ],
    ids=["unit", "symmetric", "two-pi"],
)
def test_bands_cover_known_modes_in_1d(box, exact, modes, sigmas):
    problem = problem_from_dict(_poisson(exact, box))
    sel = choose(problem)
    assert sel.spectrum.origin == "reference"
    for mode in modes:
        assert _covered(mode, sel.bands), (mode, [b.to_dict() for b in sel.bands])
    assert sel.arch == "mff" and sel.arch_auto
    # σ in cycles per unit length: the lowest band at its own frequency (at least one cycle
    # per box length), the others at the geometric mean with it
    assert sel.chosen["sigmas"] == pytest.approx(sigmas, rel=0.02)


def test_bands_cover_known_modes_in_2d_and_sigma_is_per_axis():
    exact = "sin(pi*x)*sin(pi*y) + 0.1*sin(2*pi*x)*sin(12*pi*y)"
    sel = choose(problem_from_dict(_poisson(exact, [[0, 1], [0, 1]])))
    assert _covered([0.5, 0.5], sel.bands) and _covered([1.0, 6.0], sel.bands)
    high = sel.chosen["sigmas"][-1]
    assert isinstance(high, list) and len(high) == 2  # anisotropic: one σ per axis
    assert high[1] > 2 * high[0]


def test_bands_cover_known_modes_with_time():
    cfg = {
        "name": "heat_modes",
        "pde": "heat",
        "diffusivity": 0.001,
        "domain": {"box": [[0, 1]], "time": [0, 1]},
        "exact": "exp(-t)*(sin(2*pi*x) + 0.2*sin(30*pi*x))",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
        "model": {"arch": "auto"},
        "train": {"steps": 5, "device": "cpu", "compile": "off"},
        "diagnostics": {"enabled": False},
    }
    sel = choose(problem_from_dict(cfg))
    assert _covered([1.0], sel.bands) and _covered([15.0], sel.bands)
    assert sel.arch == "stmff" and sel.bands_t
    assert sel.bands_t[0].k_norm / TWO_PI < 1.0  # e^{-t}: a low temporal band
    # heat weighs a band like a regression: σ_x at the band itself
    assert sel.chosen["sigmas_x"] == pytest.approx([1.0, 15.0], rel=0.02)
    assert sel.chosen["sigmas_t"] == [1.0]


def test_normalize_and_mscale_conventions():
    """normalize: true counts σ per half-length; MscaleDNN scales reach the band's
    normalised wavenumber k L/2 by powers of two."""
    exact = "sin(3*pi*x) + 0.05*sin(24*pi*x)"
    box = [[-1, 3]]  # L = 4
    plain = choose(problem_from_dict(_poisson(exact, box, {"arch": "mff", "sigmas": "auto"})))
    norm = choose(problem_from_dict(_poisson(
        exact, box, {"arch": "mff", "sigmas": "auto", "normalize": True})))
    for a, b in zip(plain.chosen["sigmas"], norm.chosen["sigmas"]):
        assert b == pytest.approx(a * 2.0, rel=1e-3)  # L/2 = 2
    sel = choose(problem_from_dict(_poisson(exact, box, {"arch": "mscale", "scales": "auto"})))
    top = 24 * math.pi * 4 / 2  # k L / 2
    scales = sel.chosen["scales"]
    assert scales[0] == 1.0 and all(b == 2 * a for a, b in zip(scales, scales[1:]))
    assert scales[-1] >= top > scales[-2]
    assert band_scales(sel.bands, [4.0]) == scales


def test_a_smooth_solution_gets_an_mlp():
    problem = problem_from_dict(_poisson("1 + x*x + sin(pi*x)", [[0, 1]]))
    resolved, sel = resolve_auto(problem)
    assert sel is not None and sel.arch == "mlp" and "smooth" in sel.reason
    assert resolved.model["arch"] == "mlp" and "auto" not in resolved.model
    # the lift keeps the non-zero boundary values from leaking into high frequencies
    # (without it the sine coefficients of 1 + x² decay like 1/k: every band selected)
    assert all(b.k_hi / TWO_PI < 2.0 for b in sel.bands)


def test_remove_lift_vanishes_on_every_face():
    x = np.linspace(0, 1, 9)
    y = np.linspace(0, 2, 11)
    X, Y = np.meshgrid(x, y, indexing="ij")
    r = remove_lift(1 + X + 3 * Y + X * Y + np.sin(5 * X) * np.cos(Y), [0, 1])
    for face in (r[0], r[-1], r[:, 0], r[:, -1]):
        assert np.abs(face).max() < 1e-12


def test_source_spectrum_when_no_classical_solve(monkeypatch):
    """Where the reference fails, û ≈ f̂/(ā|k|²): the bands come from the source."""
    from mscalepde.errors import ReferenceSolveError

    def fail(problem):
        raise ReferenceSolveError("solver refused")

    from mscalepde.frequencies import spectrum as spectrum_module

    monkeypatch.setattr(spectrum_module, "_coarse_reference", fail)
    cfg = _poisson("x", [[0, 1]])  # exact for the boundary data only
    cfg["source"] = "(2*pi)**2*sin(2*pi*x) + 0.1*(40*pi)**2*sin(40*pi*x)"
    spec = estimate_spectrum(problem_from_dict(cfg))
    assert spec.origin == "source" and "solver refused" in spec.detail
    sel = choose(problem_from_dict(cfg), spectrum=spec)
    assert _covered([1.0], sel.bands) and _covered([20.0], sel.bands)


def test_source_spectrum_of_a_heat_problem_when_no_classical_solve(monkeypatch):
    """The heat fallback samples the source and the initial data in space alone (it used
    to build a time axis of zero points and divide by zero: PINNacle's Heat 2d-LT without
    a model section, whose 100-time-unit FD solve fails)."""
    from mscalepde.errors import ReferenceSolveError
    from mscalepde.frequencies import spectrum as spectrum_module

    def fail(problem):
        raise ReferenceSolveError("solver refused")

    monkeypatch.setattr(spectrum_module, "_coarse_reference", fail)
    cfg = _poisson("x", [[0, 1]])
    cfg.update(pde="heat", domain={"box": [[0, 1]], "time": [0, 1]},
               initial="sin(pi*x) + 0.1*sin(30*pi*x)", source="0")
    cfg["boundary"] = [{"faces": "all", "type": "dirichlet", "value": 0}]
    cfg.pop("exact")
    spec = estimate_spectrum(problem_from_dict(cfg))
    assert spec.origin == "source" and "initial" in spec.detail
    sel = choose(problem_from_dict(cfg), spectrum=spec)
    assert _covered([0.5], sel.bands) and _covered([15.0], sel.bands)


def test_no_spectrum_fails_with_one_clear_line(tmp_path, capsys):
    """A heat problem with zero data has a zero solution: nothing to choose from."""
    text = """
name: zero
pde: heat
diffusivity: 0.1
domain: {box: [[0, 1]], time: [0, 1]}
source: "0"
initial: "0"
boundary: [{faces: all, type: dirichlet, value: 0}]
model: {arch: mff, sigmas: auto}
train: {steps: 5, device: cpu}
"""
    path = tmp_path / "zero.yaml"
    path.write_text(text)
    with pytest.raises(SpectrumError, match="model: auto: no spectrum can be estimated"):
        resolve_auto(problem_from_dict(__import__("yaml").safe_load(text)))
    code = main(["solve", str(path), "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no spectrum can be estimated" in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "model, key, words",
    [
        ({"arch": "auto", "width": 10}, "model.width", "arch: auto chooses"),
        ({"arch": "mlp", "auto": {"delta": 1e-3}}, "model.auto", "only used with"),
        ({"arch": "mlp", "adapt": True}, "model.adapt", "needs an architecture"),
        ({"arch": "mff", "sigmas": "auto", "auto": {"delta": 2}}, "model.auto.delta", ""),
        ({"arch": "fourier", "sigma": "often"}, "model.sigma", ""),
    ],
)
def test_bad_auto_settings_name_the_key(model, key, words):
    with pytest.raises(ProblemError) as info:
        problem_from_dict(_poisson("sin(pi*x)", [[0, 1]], model))
    assert info.value.key == key and words in str(info.value)


def test_per_axis_sigma_needs_one_entry_per_input():
    cfg = _poisson("sin(pi*x)*sin(pi*y)", [[0, 1], [0, 1]],
                   {"arch": "mff", "sigmas": [1, [1, 2, 3]]})
    with pytest.raises(ProblemError, match="per-axis sigma needs 2 entries") as info:
        problem_from_dict(cfg)
    assert info.value.key == "model.sigmas[1]"
    cfg["model"]["sigmas"] = [1, [1, 4]]
    model = make_model(problem_from_dict(cfg))
    b = model.embeddings[1].B
    assert b.shape == (32, 2)
    assert b[:, 1].std() > 2 * b[:, 0].std()  # N(0, 1) in x, N(0, 16) in y


# ------------------------------------------------------------------ run folder


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    cfg = _poisson("sin(2*pi*x) + 0.1*sin(40*pi*x)", [[0, 1]])
    cfg["train"] = {"optimizer": [{"gauss-newton": {"steps": 3}}], "device": "cpu",
                    "points": {"interior": 256, "boundary": 2}, "compile": "off"}
    out = tmp_path_factory.mktemp("auto") / "run"
    return solve(problem_from_dict(cfg), out=out)


def test_run_folder_records_the_choice(auto_run):
    run = auto_run.run_dir
    s = json.loads((run / "summary.json").read_text())
    auto = s["auto"]
    assert auto["arch"] == "mff" and auto["arch_auto"] and auto["chosen"]["sigmas"]
    assert len(auto["bands"]) == 2 and auto["spectrum"]["origin"] == "reference"
    assert 0 < auto["seconds"] and "fraction_of_training" in auto
    assert (run / "figures" / "spectrum.png").stat().st_size > 1000
    with np.load(run / "auto_spectrum.npz") as z:
        assert z["energy"].shape == z["k_x"].shape and str(z["origin"]) == "reference"
    config = __import__("yaml").safe_load((run / "config.yaml").read_text())
    assert config["model"]["arch"] == "mff"
    assert config["model"]["sigmas"] == auto["chosen"]["sigmas"]


@pytest.mark.slow
def test_cli_prints_one_line_for_the_choice(tmp_path, capsys):
    cfg = _poisson("sin(2*pi*x) + 0.1*sin(40*pi*x)", [[0, 1]], {"arch": "mff", "sigmas": "auto"})
    cfg["train"]["steps"] = 3
    path = tmp_path / "p.yaml"
    path.write_text(__import__("yaml").safe_dump(cfg))
    assert main(["solve", str(path), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("auto:")]
    assert len(lines) == 1 and "sigmas = [1, 4.472]" in lines[0] and "2 band(s)" in lines[0]


# ------------------------------------------------------------------ adapt


def _laplacian(net, x):
    x = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
    return sum(torch.autograd.grad(g[:, i].sum(), x, retain_graph=True)[0][:, i]
               for i in range(x.shape[1]))


@pytest.mark.parametrize(
    "model, value",
    [
        ({"arch": "mff", "sigmas": [1]}, 6.0),
        ({"arch": "mff", "sigmas": [1, [1, 2]]}, [2.0, 5.0]),
        ({"arch": "mscale", "scales": [1, 2]}, 4.0),
    ],
)
def test_growing_leaves_the_function_and_its_laplacian_unchanged(model, value):
    cfg = _poisson("sin(pi*x)*sin(pi*y)", [[0, 1], [0, 1]], model)
    net = make_model(problem_from_dict(cfg), torch.float64)
    x = torch.rand(50, 2, dtype=torch.float64)
    before, lap_before = net(x), _laplacian(net, x)
    count = net.parameter_count()
    rng = torch.get_rng_state()
    net.grow(value, seed=3)
    assert torch.equal(torch.get_rng_state(), rng)  # the global generator untouched
    after, lap_after = net(x), _laplacian(net, x)
    # zero weights add exact zeros; only the BLAS's summation order may differ
    assert torch.allclose(before, after, rtol=1e-14, atol=1e-14)
    assert torch.allclose(lap_before, lap_after, rtol=1e-12, atol=1e-12)
    assert net.parameter_count() > count and net.band_values()[-1] == value


def test_growing_stmff_leaves_the_function_unchanged():
    cfg = {
        "name": "h", "pde": "heat", "diffusivity": 0.01,
        "domain": {"box": [[0, 1]], "time": [0, 1]}, "exact": "exp(-t)*sin(pi*x)",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
        "model": {"arch": "stmff", "sigmas_x": [1], "sigmas_t": [1, 2]},
    }
    net = make_model(problem_from_dict(cfg), torch.float64)
    x = torch.rand(40, 2, dtype=torch.float64)
    before = net(x)
    net.grow(8.0, seed=1)
    assert torch.allclose(before, net(x), rtol=1e-14, atol=1e-14)
    assert net.band_values() == [1.0, 8.0]


def _adapt_problem(steps: int = 60, every: int = 20) -> dict:
    cfg = _poisson("sin(2*pi*x) + 0.1*sin(40*pi*x)", [[0, 1]],
                   {"arch": "mff", "sigmas": [1], "features": 16, "width": 16,
                    "adapt": {"every": every}})
    cfg["train"] = {"optimizer": ["adam"], "steps": steps, "lr": 2e-3, "device": "cpu",
                    "dtype": "float64", "compile": "off", "checkpoint_every": 0,
                    "points": {"interior": 256, "boundary": 2}, "log_every": 10}
    return cfg


@pytest.mark.slow
def test_adapt_adds_the_missing_band_and_then_stops(tmp_path):
    result = solve(problem_from_dict(_adapt_problem()), out=tmp_path / "run")
    notes = result.summary["notes"]
    assert any("adapt: step 20: added sigma" in n and "20 cycles" in n for n in notes), notes
    assert any(n.startswith("adapt: band set unchanged at step 40") for n in notes), notes
    final = result.summary["adapt"]["final"]
    assert final[0] == 1.0 and final[1] == pytest.approx(math.sqrt(20.0), rel=0.05)
    # the run folder's config names the grown network: model.pt loads with it alone
    from mscalepde.run.folder import load_model

    _, model = load_model(tmp_path / "run")
    x = torch.rand(20, 1, dtype=torch.float64)
    assert torch.equal(model(x), result.model(x))


def _mscale_adapt_problem() -> dict:
    """MscaleDNN starting with scales [1, 2] on a 20-cycle mode: several scales are added
    in one step."""
    cfg = _adapt_problem()
    cfg["model"] = {"arch": "mscale", "scales": [1, 2], "width": 8, "depth": 2,
                    "adapt": {"every": 20}}
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize(
    "make, stop_at",
    [(_adapt_problem, 20), (_adapt_problem, 30), (_mscale_adapt_problem, 20)],
    ids=["at-the-growth-step", "after-it", "several-scales-at-once"],
)
def test_adapt_resumes_bit_for_bit(tmp_path, make, stop_at):
    """A run stopped at or after a growth resumes into the same grown network and ends
    bit for bit where the uninterrupted run ends."""
    full = solve(problem_from_dict(make()), write=False)
    request = StopRequest()
    run = tmp_path / "run"
    with pytest.raises(Stopped):
        solve(problem_from_dict(make()), out=run,
              callbacks=[StopAt(stop_at, request)], stop=request)
    resumed = solve(problem_from_dict(make()), resume=run)
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert resumed.summary["adapt"]["grown"] == full.summary["adapt"]["grown"]
    if make is _mscale_adapt_problem:  # 20 cycles on [0, 1]: k̃ = 20π·1/2 ≈ 63 → up to 64
        grown = [v for v, _ in full.summary["adapt"]["grown"]]
        assert grown == [64.0, 32.0, 16.0, 8.0, 4.0]
        seeds = [seed for _, seed in full.summary["adapt"]["grown"]]
        assert len(set(seeds)) == len(seeds)  # each new subnetwork its own weights


@pytest.mark.slow
def test_a_budget_ending_at_the_growth_step_extends(tmp_path):
    run = tmp_path / "run"
    cfg = _adapt_problem()
    cfg["train"]["budget_steps"] = 20
    solve(problem_from_dict(cfg), out=run)
    resumed = solve(problem_from_dict(_adapt_problem()), resume=run)
    full = solve(problem_from_dict(_adapt_problem()), write=False)
    sa, sb = full.model.state_dict(), resumed.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_heat_error_estimate_carries_the_missing_initial_mode():
    """For heat the missing mode solves the homogeneous equation (zero residual): only
    e(t0) = u0 − h(t0) carries it, and e follows its decay."""
    cfg = {
        "name": "heat_missing", "pde": "heat", "diffusivity": 1 / (20 * math.pi) ** 2,
        "domain": {"box": [[0, 1]], "time": [0, 1]},
        "exact": "exp(-t)*(sin(2*pi*x) + 0.2*sin(20*pi*x))",
        "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
        "model": {"arch": "mff", "sigmas": [[1, 1]], "adapt": True},
        "train": {"steps": 5, "device": "cpu"},
    }
    problem = problem_from_dict(cfg)
    adapter = FrequencyAdapter(problem, problem.model["adapt"])

    class Smooth(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

        def forward(self, xt):
            return torch.exp(-xt[:, 1:2]) * torch.sin(2 * math.pi * xt[:, :1]) + 0 * self.p

    _, e = adapter.estimate(Smooth())
    x, t = adapter.axes[0][1:-1], adapter.axes[1]
    missing = 0.2 * np.sin(20 * math.pi * x)[:, None] * np.exp(-t)[None, :]
    assert np.abs(e - missing).max() < 0.01
    # mff embeds (x, t): a grown σ keeps the t entry of the existing embeddings
    assert adapter._with_time(10.0, [[1.0, 1.0]]) == [10.0, 1.0]


@pytest.mark.parametrize(
    "model, key, words",
    [
        ({"arch": "mscale", "variant": 1, "adapt": True}, "model.adapt", "variant 2"),
        ({"arch": "mscale", "grown": [[[1, 2], 3]]}, "model.grown[0][0]", "one number"),
        ({"arch": "mff", "adapt": True, "interface": "x - 0.5"}, "model.adapt", "interface"),
        ({"arch": "auto", "grown": [[2.0, 1]]}, "model.grown", "needs an architecture"),
    ],
)
def test_bad_adapt_settings_name_the_key(model, key, words):
    with pytest.raises(ProblemError) as info:
        problem_from_dict(_poisson("sin(pi*x)", [[0, 1]], model))
    assert info.value.key == key and words in str(info.value)


def test_adapt_needs_an_equation_and_no_periodic_faces():
    cfg = {"name": "f", "pde": "fit", "domain": {"box": [[0, 1]]}, "exact": "sin(pi*x)",
           "model": {"arch": "mff", "adapt": True}}
    with pytest.raises(ProblemError, match="model.adapt: needs an equation"):
        problem_from_dict(cfg)
    cfg = _poisson("sin(2*pi*x)", [[0, 1]], {"arch": "mff", "adapt": True})
    cfg["boundary"] = [{"faces": "all", "type": "periodic"}]
    with pytest.raises(ProblemError, match="periodic"):
        problem_from_dict(cfg)


def test_auto_settings_reach_the_adapter():
    model = {"arch": "mff", "sigmas": [1], "adapt": True, "auto": {"gap": 3.0}}
    problem = problem_from_dict(_poisson("sin(pi*x)", [[0, 1]], model))
    assert FrequencyAdapter(problem, problem.model["adapt"]).auto.gap == 3.0


def test_auto_with_interface_gives_isotropic_sigma():
    exact = "sin(pi*x)*sin(pi*y) + 0.1*sin(2*pi*x)*sin(12*pi*y)"
    model = {"arch": "mff", "sigmas": "auto", "interface": "x - 0.5"}
    resolved, sel = resolve_auto(problem_from_dict(_poisson(exact, [[0, 1], [0, 1]], model)))
    assert all(not isinstance(v, list) for v in resolved.model["sigmas"])


def test_adapt_error_estimate_is_not_the_raw_residual():
    """The estimate e solves −Δ_h e = r: for a network missing the 20-cycle mode the
    estimate's amplitude is the missing amplitude (0.1), not (40π)² times it."""
    cfg = _adapt_problem()
    problem = problem_from_dict(cfg)
    adapter = FrequencyAdapter(problem, problem.model["adapt"])

    class Smooth(torch.nn.Module):  # the smooth part only
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

        def forward(self, x):
            return torch.sin(2 * math.pi * x) + 0 * self.p

    h, e = adapter.estimate(Smooth())
    x = adapter.axes[0][1:-1]
    missing = 0.1 * np.sin(40 * math.pi * x)
    assert np.abs(e - missing).max() < 0.01  # second-order FD on 1023 points
    assert np.abs(h - np.sin(2 * math.pi * x)).max() < 1e-12


@pytest.mark.slow
def test_a_gauss_newton_phase_after_growth_trains_the_grown_network():
    """The Gauss–Newton phase is rebuilt for the grown model (its Jacobian covers the new
    embedding's output layer), moves the new weights and lowers the loss."""
    cfg = _adapt_problem()
    cfg["train"]["optimizer"] = ["adam", {"gauss-newton": {"steps": 3}}]
    seen = {}

    class Watch(Callback):
        def on_step(self, trainer, step):
            if step == 60:  # the last Adam step
                seen["head"] = trainer.model.grown_heads[0].weight.detach().clone()

        def on_end(self, trainer):
            gn = trainer._gauss_newton[1][0]
            seen["gn"] = gn.params.count
            seen["model"] = trainer.model.parameter_count()

    result = solve(problem_from_dict(cfg), write=False, callbacks=[Watch()])
    assert result.summary["adapt"]["final"][1] == pytest.approx(math.sqrt(20.0), rel=0.05)
    assert seen["gn"] == seen["model"]
    moved = result.model.grown_heads[0].weight.detach() - seen["head"].to(torch.float64)
    assert moved.abs().max() > 1e-6
    losses = {row["step"]: row["loss"] for row in result.history}
    assert losses[63] < 0.5 * losses[60]
    assert result.summary["engine"] == "forward"


def test_arch_auto_with_adapt_on_a_smooth_solution_is_a_plain_mlp():
    problem = problem_from_dict(_poisson("sin(pi*x)", [[0, 1]], {"arch": "auto", "adapt": True}))
    resolved, sel = resolve_auto(problem)
    assert resolved.model["arch"] == "mlp" and "adapt" not in resolved.model


def test_network_plus_error_estimate_is_the_discrete_solution_whatever_the_network():
    """Dirichlet Poisson with a constant coefficient: h + e recovers u (up to the
    second-order FD error) from an untrained network, so the bands are the solution's."""
    cfg = _adapt_problem()
    problem = problem_from_dict(cfg)
    adapter = FrequencyAdapter(problem, problem.model["adapt"])
    net = make_model(problem, torch.float64)  # untrained, random σ = 1 features
    h, e = adapter.estimate(net)
    x = adapter.axes[0]
    u = np.sin(2 * math.pi * x) + 0.1 * np.sin(40 * math.pi * x)
    target = remove_lift(u, [0])[1:-1]
    assert np.abs(h + e - target).max() < 5e-3
    added = adapter.check(net)
    assert [round(float(v), 3) for v, _ in added] == [round(math.sqrt(20.0), 3)]


def test_a_linear_solution_gets_the_low_band_and_a_malformed_grown_is_one_line():
    cfg = _poisson("1 + x", [[0, 1]])
    cfg["source"] = 0  # the lift removes all of u = 1 + x: only the low band is left
    resolved, sel = resolve_auto(problem_from_dict(cfg))
    assert sel.arch == "mlp" and len(sel.bands) == 1 and sel.bands[0].added
    # source: auto of a linear exact (its Hessian has no autograd graph: zero, not an error)
    _, sel = resolve_auto(problem_from_dict(_poisson("1 + x", [[0, 1]])))
    assert sel.arch == "mlp" and sel.bands[0].added
    cfg = _poisson("sin(pi*x)", [[0, 1]], {"arch": "mff", "sigmas": [1], "grown": [[[1, 2], 3]]})
    with pytest.raises(ProblemError) as info:
        problem_from_dict(cfg)
    assert info.value.key == "model.grown[0][0]"
    cfg["model"]["grown"] = [[2.0, 2**70]]
    with pytest.raises(ProblemError, match="model.grown"):
        problem_from_dict(cfg)
    cfg["model"] = {"arch": "mff", "adapt": {"grid": 60000}}
    with pytest.raises(ProblemError, match="model.adapt.grid"):
        problem_from_dict(_poisson("sin(pi*x)*sin(pi*y)", [[0, 1], [0, 1]], cfg["model"]))


@pytest.mark.slow
def test_config_names_the_growth_while_the_run_goes_on(tmp_path):
    """A checkpoint after a growth rewrites config.yaml with model.grown, so the run
    folder loads (load_run) before the run ends."""
    from mscalepde.run.folder import load_model

    cfg = _adapt_problem()
    cfg["train"]["checkpoint_every"] = 30
    seen = {}

    class LoadAt(Callback):
        def on_step(self, trainer, step):
            if step == 31:
                _, model = load_model(tmp_path / "run")
                seen["bands"] = model.band_values()

    result = solve(problem_from_dict(cfg), out=tmp_path / "run", callbacks=[LoadAt()])
    assert seen["bands"] == result.model.band_values()
