"""The package default (issue 25): ``auto`` on shapes (the windowed spectrum), the network a
file without ``model`` gets, and the Gauss–Newton phase that ends when its loss stalls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

from mscalepde import load_problem, problem_from_dict, solve
from mscalepde.architectures.options import DEFAULT_MLP
from mscalepde.errors import Stopped
from mscalepde.frequencies.select import choose, resolve_auto
from mscalepde.frequencies.shape_spectrum import shape_spectrum
from mscalepde.training.signals import StopRequest
from tests.helpers import PROBLEMS, StopAt

TWO_PI = 2 * math.pi
DISC = {"shape": {"ball": {"center": [0, 0], "radius": 1}}}


def _disc(exact: str, model=None) -> dict:
    return {
        "name": "disc",
        "pde": "poisson",
        "domain": DISC,
        "exact": exact,
        "boundary": [{"type": "dirichlet", "value": "exact"}],
        "model": model or {"arch": "auto"},
        "train": {"steps": 5, "optimizer": ["adam"], "device": "cpu", "compile": "off",
                  "points": {"interior": 64, "boundary": 32}},
        "diagnostics": {"enabled": False},
    }


def test_a_mode_on_a_disc_is_found_and_the_window_adds_no_band():
    """u = x² + y² + 0.1 sin(2π·5x) on the unit disc: a band at 5 cycles per unit length
    (10 per box length), and nothing above it. The smooth part is 1 on the circle, so the
    window's edge would spread energy to every |k| if its side lobes counted."""
    sel = choose(problem_from_dict(_disc("x*x + y*y + 0.1*sin(10*pi*x)")))
    assert sel.arch == "mff"
    top = max(sel.bands, key=lambda b: b.k_norm)
    assert top.k_norm == pytest.approx(TWO_PI * 5, rel=0.1)
    assert abs(top.k_axes[0]) > 5 * abs(top.k_axes[1])  # along x
    assert all(b.k_lo < 1.5 * TWO_PI * 5 for b in sel.bands)
    assert "side lobes left out" in sel.spectrum.detail


def test_a_smooth_solution_on_a_disc_gets_the_low_band_alone():
    """1 + x² + y² does not vanish on the circle: windowed, its spectrum has side lobes up
    to the window's scale; none of them may become a band. A shape gets a Fourier network
    even so (its boundary layers are not peaks), with σ at the low band only."""
    problem, sel = resolve_auto(problem_from_dict(_disc("1 + x*x + y*y")))
    assert sel is not None and sel.arch == "mff" and "a shape" in sel.reason
    assert all(b.k_hi / TWO_PI * 2.0 <= 3.0 for b in sel.bands)  # box length 2
    assert problem.model["sigmas"] == [pytest.approx(0.5)]  # one cycle per box length


def test_a_smooth_solution_on_a_box_gets_the_default_mlp():
    cfg = _disc("1 + x*x + y*y")
    cfg["domain"] = {"box": [[-1, 1], [-1, 1]]}
    problem, sel = resolve_auto(problem_from_dict(cfg))
    assert sel is not None and sel.arch == "mlp" and "smooth" in sel.reason
    assert {k: problem.model[k] for k in DEFAULT_MLP} == DEFAULT_MLP


def test_an_exact_solution_undefined_outside_the_shape_is_read_inside_only():
    """sqrt(1.5 − x² − y²) is NaN in the corners of the disc's bounding box; the window is 0
    there, so the spectrum must not be."""
    spec = shape_spectrum(problem_from_dict(_disc("sqrt(1.5 - x*x - y*y)")))
    assert np.all(np.isfinite(spec.energy)) and spec.energy.sum() > 0


def test_heat_on_a_shape_gets_a_temporal_spectrum():
    cfg = _disc("exp(-t)*(x*x + y*y)")
    cfg.update(pde="heat", domain={**DISC, "time": [0, 1]})
    spec = shape_spectrum(problem_from_dict(cfg))
    assert spec.kt is not None and spec.energy_t is not None
    assert spec.kt[int(spec.energy_t.argmax())] < TWO_PI  # e^{-t}: a low temporal band


def test_the_fem_reference_gives_the_spectrum_without_exact():
    """PINNacle's Poisson 2d-C (no exact; the COMSOL truth is scattered points): the
    spectrum comes from a finite-element solve on the shape, and the steep layers at the
    holes' edges stay inside the low band (every band within 3 cycles per box length)."""
    p = load_problem(PROBLEMS / "pinnacle" / "poisson2d_classic.yaml", ["model.arch=auto"])
    sel = choose(p)
    assert "fem reference" in sel.spectrum.detail
    assert all(b.k_hi / TWO_PI <= 3.0 for b in sel.bands)  # box length 1


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("poisson1d_sin.yaml", {"arch": "auto"}),
        ("poisson2d_annulus.yaml", {"arch": "auto"}),  # a shape
        ("pinnacle/poisson5d.yaml", DEFAULT_MLP),  # d > 3: no grid spectrum
        ("inverse_robin_alpha.yaml", DEFAULT_MLP),  # unknowns: no forward spectrum
    ],
)
def test_a_file_without_model_gets_the_package_default(tmp_path, name, expected):
    data = yaml.safe_load((PROBLEMS / name).read_text())  # (none of them reads a file)
    data.pop("model")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(data))
    model = load_problem(path).model
    assert {k: model[k] for k in expected} == expected


def test_time_windows_get_the_default_mlp():
    cfg = _disc("exp(-t)*(x*x + y*y)")
    cfg.update(pde="heat", domain={**DISC, "time": [0, 1]})
    cfg.pop("model")
    cfg["train"]["time_windows"] = 2
    model = problem_from_dict(cfg).model
    assert {k: model[k] for k in DEFAULT_MLP} == DEFAULT_MLP


STALL = {
    "name": "stall",
    "pde": "poisson",
    "domain": {"box": [[0, 1]]},
    "exact": "sin(pi*x)",
    "boundary": [{"type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": 16, "depth": 2},
    "train": {
        "dtype": "float64",
        "points": {"interior": 200, "boundary": 2},
        "optimizer": [
            {"adam": {"steps": 30, "lr": 0.01}},
            {"gauss-newton": {"steps": 200, "resample_every": 1, "patience": 4,
                              "stall": 0.5}},
        ],
        "device": "cpu",
        "compile": "off",
        "log_every": 10,
    },
    "diagnostics": {"enabled": False},
}


def test_gauss_newton_ends_when_its_loss_stalls_and_resumes_to_the_same_end(tmp_path):
    """On new points every iteration the loss reaches its sampling floor in a few dozen
    iterations; the phase ends there (a note says why), far before its 200 iterations.
    A run stopped inside the phase and resumed ends at the same iteration, bit for bit
    (the stall test's losses are in the checkpoint)."""
    whole = solve(problem_from_dict(STALL), write=False)
    gn = whole.summary["gauss_newton_steps"]
    assert 4 < gn < 200
    notes = [n for n in whole.summary["notes"] if "stalled" in n]
    assert len(notes) == 1 and f"iteration {gn + 1}" in notes[0]
    assert whole.rel_l2 < 1e-3
    run = tmp_path / "run"
    request = StopRequest()
    stop_at = 30 + gn - 1  # inside the stall window, before the phase ends
    with pytest.raises(Stopped):
        solve(problem_from_dict(STALL), out=run, callbacks=[StopAt(stop_at, request)],
              stop=request)
    resumed = solve(problem_from_dict(STALL), resume=run)
    assert resumed.summary["gauss_newton_steps"] == gn
    a, b = resumed.model.state_dict(), whole.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_adapt_on_a_shape_adds_the_band_the_network_lacks():
    """mff with σ = 1 alone on the disc whose solution has a 5-cycle mode: the first check
    reads the windowed spectrum and adds a σ for that band; the second adds nothing."""
    cfg = _disc("x*x + y*y + 0.1*sin(10*pi*x)",
                {"arch": "mff", "sigmas": [1], "features": 16, "width": 16, "depth": 1,
                 "adapt": {"every": 4}})
    cfg["train"]["steps"] = 10
    run = solve(problem_from_dict(cfg), write=False, baseline=False)
    notes = run.summary["notes"]
    added = [n for n in notes if "added sigma" in n]
    assert len(added) == 1 and "step 4" in added[0] and "5" in added[0]
    assert any("band set unchanged at step 8" in n for n in notes)


def test_auto_and_adapt_on_a_shape_compute_its_spectrum_once(monkeypatch):
    """``sigmas: auto`` with ``adapt`` on a shape: the adapter takes the spectrum ``auto``
    chose from (it does not change during training) instead of windowing the truth again."""
    import mscalepde.frequencies.adapt as adapt_module
    import mscalepde.frequencies.select as select_module

    calls: list[int] = []

    def counted(problem, started=None):
        calls.append(1)
        return shape_spectrum(problem, started)

    monkeypatch.setattr(select_module, "shape_spectrum", counted)
    monkeypatch.setattr(adapt_module, "shape_spectrum", counted)
    cfg = _disc("x*x + y*y + 0.1*sin(10*pi*x)",
                {"arch": "mff", "sigmas": "auto", "features": 16, "width": 16, "depth": 1,
                 "adapt": {"every": 4}})
    cfg["train"]["steps"] = 10
    run = solve(problem_from_dict(cfg), write=False, baseline=False)
    assert len(calls) == 1
    assert any("band set unchanged at step 4" in n for n in run.summary["notes"])


def test_points_default_by_dimension_and_a_term_set_keeps_the_others(tmp_path):
    """``train.points`` missing (or ``auto``) takes the counts by dimension; setting one
    term (in the file or with --set) leaves the others at theirs."""
    cfg = _disc("x*x + y*y")
    cfg["train"].pop("points")
    assert problem_from_dict(cfg).train["points"] == {
        "interior": 1500, "boundary": 400, "initial": 400}
    cfg["train"]["points"] = {"interior": 99}
    assert problem_from_dict(cfg).train["points"]["boundary"] == 400
    one_d = {**_disc("x*x"), "domain": {"box": [[0, 1]]}}
    one_d["train"].pop("points")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(one_d))
    points = load_problem(path, ["train.points.interior=9"]).train["points"]
    assert (points["interior"], points["boundary"]) == (9, 2)  # 1D: the two end points

