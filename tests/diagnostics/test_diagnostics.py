"""Tests of the training-time spectral diagnostics (mscalepde.diagnostics).

Trainings are tiny (small nets, a few hundred full-batch steps, one torch thread) so the
file runs in well under a minute on a shared 2-core CPU.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import mscalepde as m
from mscalepde.diagnostics.fprinciple import default_delta, gaussian_filter_errors
from mscalepde.diagnostics.grid import DiagnosticGrid
from mscalepde.diagnostics.history import SpectralHistory
from mscalepde.diagnostics.monitor import SpectralMonitor
from mscalepde.diagnostics.report import format_report
from mscalepde.diagnostics.settings import DiagnosticSettings
from mscalepde.diagnostics.store import load_spectral
from mscalepde.diagnostics.transforms import diagnostic_grid
from mscalepde.errors import MscaleError, ProblemError, RunFolderError
from mscalepde.run.diagnose import diagnose_run
from mscalepde.run.model import make_model

PI = math.pi


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def fit_problem(seed=0, steps=1500, every=20, **diag):
    """docs/design.md §4: sin x + sin 3x + sin 5x sampled evenly on [−π, π], tanh MLP."""
    return m.problem_from_dict(
        {
            "name": "fprinciple",
            "pde": "fit",
            "domain": {"box": [[-PI, PI]]},
            "exact": "sin(x) + sin(3*x) + sin(5*x)",
            # un-normalised inputs: the first layer sees x in [−π, π]
            "model": {"arch": "mlp", "width": 64, "depth": 3, "activation": "tanh",
                      "normalize": False},
            "train": {"steps": steps, "lr": 3e-3, "points": {"interior": 201},
                      "sampler": "grid", "seed": seed, "log_every": 500,
                      "checkpoint_every": 0, "device": "cpu"},
            "diagnostics": {"every": every, **diag},
        }
    )


def poisson_problem(steps=150, **diag):
    """−u'' = f on [0, 1], u = sin(πx) + 0.2 sin(4πx): zero on the faces, so dst fits."""
    return m.problem_from_dict(
        {
            "name": "poisson-diag",
            "pde": "poisson",
            "domain": {"box": [[0, 1]]},
            "exact": "sin(pi*x) + 0.2*sin(4*pi*x)",
            "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
            "model": {"arch": "mlp", "width": 16, "depth": 2},
            "train": {"steps": steps, "lr": 1e-2, "points": {"interior": 64, "boundary": 2},
                      "log_every": 50, "checkpoint_every": 50, "device": "cpu"},
            "diagnostics": {"every": 10, "transform": "dst", "grid": 127, **diag},
        }
    )


def heat_problem(**diag):
    """u_t − u_xx / π² = f on [0, 1] × [0, 1], u = e^{−t} sin(πx) + 0.5 e^{−2t} sin(3πx)."""
    return m.problem_from_dict(
        {
            "name": "heat-diag",
            "pde": "heat",
            "diffusivity": 1 / PI**2,
            "domain": {"box": [[0, 1]], "time": [0, 1]},
            "exact": "exp(-t)*sin(pi*x) + 0.5*exp(-2*t)*sin(3*pi*x)",
            "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
            "model": {"arch": "mlp", "width": 8, "depth": 1},
            "train": {"steps": 12, "lr": 1e-2,
                      "points": {"interior": 32, "boundary": 4, "initial": 8},
                      "log_every": 5, "checkpoint_every": 0, "device": "cpu"},
            "diagnostics": {"every": 5, "transform": "dst", "grid": 63, **diag},
        }
    )


def run_with_monitor(problem, tmp_path=None, **kw):
    mon = SpectralMonitor(problem, dtype=torch.float32, device="cpu", strict=True,
                          run_dir=tmp_path, **kw)
    res = m.solve(problem, write=tmp_path is not None, out=tmp_path, callbacks=[mon])
    return mon, res


# --------------------------------------------------------------------------- F-Principle


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fprinciple_low_frequencies_first(seed):
    mon, _ = run_with_monitor(fit_problem(seed), threshold=0.1)
    out = mon.finish()
    rows = out["rows"]
    assert [r["wavenumber"] for r in rows] == [[1.0], [3.0], [5.0]]
    assert all(r["amplitude"] == pytest.approx(1.0, rel=1e-9) for r in rows)
    first = [r["first_resolved"] for r in rows]
    assert None not in first, out["table"]
    assert first[0] < first[1] < first[2], out["table"]
    # step 0 and the last step are recorded; every 20 steps in between
    steps = mon.histories[0].steps
    assert steps[0] == 0 and steps[-1] == 1500 and np.all(np.diff(steps) == 20)
    assert "first <0.1" in out["table"]


# --------------------------------------------------------------------------- building blocks


def test_settings_defaults_by_dimension():
    for box, n in (([[0, 1]], 512), ([[0, 1]] * 2, 128), ([[0, 1]] * 3, 32)):
        p = m.problem_from_dict({"pde": "fit", "domain": {"box": box}, "exact": "1 + x"})
        s = DiagnosticSettings.from_problem(p)
        assert s.grid == n and s.times is None and s.filter_points == 2000
        assert s.delta == pytest.approx(default_delta(p.domain.box)) and s.delta_default
    s = DiagnosticSettings.from_problem(heat_problem(grid=None))
    assert s.grid == 512 and s.times == (1.0,)
    s = DiagnosticSettings.from_problem(heat_problem(times=[1, 0.5, 0]))
    assert s.times == (0.0, 0.5, 1.0)
    assert DiagnosticSettings.from_dict(s.to_dict()) == s


def test_config_keys_validated():
    base = {"pde": "fit", "domain": {"box": [[0, 1]]}, "exact": "x"}
    p = m.problem_from_dict({**base, "diagnostics": {"bands": [0, 10, 100], "filter_points": 0}})
    assert p.diagnostics["bands"] == [0.0, 10.0, 100.0]
    assert p.diagnostics["enabled"] is True
    for bad in ({"bands": [0, 10, 5]}, {"bands": [3]}, {"filter_points": -1},
                {"enabled": "yes"}):
        with pytest.raises(ProblemError, match="diagnostics"):
            m.problem_from_dict({**base, "diagnostics": bad})


def test_filter_kernel_matches_gaussian_filter_errors():
    p = m.problem_from_dict({"pde": "fit", "domain": {"box": [[0, 1], [0, 2]]},
                             "exact": "sin(2*pi*x) + 0.3*sin(10*pi*y)"})
    s = DiagnosticSettings.from_problem(p, grid=48, filter_points=300, delta=2e-3)
    g = DiagnosticGrid(p.domain.box, s, seed=1)
    assert g.filter_index.size == 300 and np.all(np.diff(g.filter_index) > 0)
    u = g.truth(p)[0]
    h = u + 0.1 * np.cos(2 * PI * g.spatial[:, 1].reshape(g.shape))
    e = g.filter_errors(u, h)
    pts = g.spatial[g.filter_index]
    ref = gaussian_filter_errors(pts, u.ravel()[g.filter_index], h.ravel()[g.filter_index],
                                    2e-3)
    np.testing.assert_allclose(e, ref, rtol=1e-10)
    # the whole grid when it is smaller than filter_points; none with filter_points 0
    small = DiagnosticGrid(p.domain.box, DiagnosticSettings.from_problem(p, grid=8))
    assert small.filter_index.size == 64
    off = DiagnosticGrid(p.domain.box, DiagnosticSettings.from_problem(p, filter_points=0))
    assert all(math.isnan(v) for v in off.filter_errors(u[:128, :128], u[:128, :128]))


def test_every_zero_records_the_last_step_only_and_monitor_works_without_trainer():
    mon, _ = run_with_monitor(poisson_problem(steps=15, every=0))
    assert list(mon.histories[0].steps) == [15]
    mon2, _ = run_with_monitor(poisson_problem(steps=15, every=4))
    assert list(mon2.histories[0].steps) == [0, 4, 8, 12, 15]
    # a hand-written loop: record(model, step)
    p = poisson_problem()
    mon3 = SpectralMonitor(p, dtype=torch.float32, device="cpu", strict=True)
    model = m.make_model(p)
    mon3.record(model, 0)
    mon3.record(model, 7)
    assert list(mon3.histories[0].steps) == [0, 7]


def test_monitor_without_exact_uses_the_reference_and_can_be_turned_off():
    p = m.problem_from_dict(
        {"pde": "poisson", "domain": {"box": [[0, 1]]}, "source": "1",
         "boundary": [{"faces": "all", "type": "dirichlet", "value": 0}],
         "model": {"width": 4, "depth": 1}, "train": {"steps": 3, "device": "cpu"}}
    )
    mon, _ = run_with_monitor(p)
    out = mon.finish()
    assert out["enabled"] is True  # the truth is the classical reference solution
    off = SpectralMonitor(poisson_problem(enabled=False), dtype=torch.float32, device="cpu")
    assert off.enabled is False and "enabled" in off.note
    # a truth function (e.g. the reference solver) turns it on: −u'' = π² sin(πx)
    mon = SpectralMonitor(
        m.problem_from_dict({**p.config, "source": "pi**2*sin(pi*x)"}), dtype=torch.float32,
        device="cpu", strict=True, truth=lambda pts: np.sin(PI * pts[:, 0]), transform="dst",
    )
    assert mon.enabled
    mon.record(m.make_model(p), 0)
    assert [r["index"] for r in mon.rows()] == [[1]]


def test_errors_inside_the_monitor_do_not_stop_training():
    mon = SpectralMonitor(poisson_problem(steps=20), dtype=torch.float32, device="cpu")

    def boom(*a, **k):
        raise RuntimeError("no memory")

    mon.setup()
    mon.grid.evaluate = boom  # type: ignore[method-assign]
    res = m.solve(poisson_problem(steps=20), write=False, callbacks=[mon])
    assert res.summary["steps"] == 20
    out = mon.finish()
    assert "no memory" in out["note"] and not mon.enabled


def test_leakage_note_for_a_non_periodic_truth():
    p = poisson_problem(transform="fft")
    mon = SpectralMonitor(p, dtype=torch.float32, device="cpu", strict=True)
    mon.setup()
    # u(0) = u(1) = 0 but u'(0) ≠ u'(1): a kink of the periodic extension
    assert len(mon.notes) == 1 and "kink along x" in mon.notes[0]
    mon = SpectralMonitor(poisson_problem(), dtype=torch.float32, device="cpu", strict=True)
    mon.setup()
    assert mon.notes == []  # dst: u = 0 on the faces
    q = m.problem_from_dict(
        {"pde": "fit", "domain": {"box": [[0, 1]]}, "exact": "x",
         "diagnostics": {"transform": "fft"}}  # an explicit choice is kept, with its note
    )
    mon = SpectralMonitor(q, dtype=torch.float32, device="cpu", strict=True)
    mon.setup()
    assert any("not periodic along x" in n for n in mon.notes)


# --------------------------------------------------------------------------- run folder


@pytest.mark.slow
def test_run_folder_files_and_diagnose_threshold(tmp_path):
    mon, res = run_with_monitor(poisson_problem(), tmp_path)
    out = mon.finish(tmp_path)
    # overhead is measured and stored
    assert out["overhead_seconds"] > 0 and out["train_seconds"] > 0
    assert out["overhead_fraction"] == pytest.approx(out["overhead_seconds"] / out["train_seconds"])
    assert set(out["files"]["figures"]) == {f"figures/{n}.png" for n in
                                            ("fprinciple", "spectra", "filter_errors",
                                             "band_errors")}
    for f in out["files"]["figures"]:
        assert (tmp_path / f).stat().st_size > 1000
    json.dumps(out)  # JSON-safe
    rows = out["rows"]
    assert [r["index"] for r in rows] == [[1], [4]]
    assert rows[1]["amplitude"] == pytest.approx(0.2, rel=1e-9)

    # diagnostics.npz: readable as a plain SpectralHistory and as a diagnostics file
    h = SpectralHistory.from_npz(tmp_path / "diagnostics.npz")
    np.testing.assert_array_equal(h.delta_f, mon.histories[0].delta_f)
    saved = load_spectral(tmp_path / "diagnostics.npz")
    assert saved.overhead_seconds == pytest.approx(out["overhead_seconds"])
    assert saved.fields_complete and list(saved.field_steps) == list(h.steps)
    assert saved.fields.dtype == np.float32 and saved.fields.shape == (len(h.steps), 1, 127)
    # the last stored field is the final network on the grid
    final = res.predict(np.array(diagnostic_grid([(0, 1)], 127, "dst")).T)[:, 0]
    np.testing.assert_allclose(saved.fields[-1, 0], final, rtol=1e-6, atol=1e-7)

    # another threshold: the same Δ_F history, resolved steps recomputed accordingly
    thr = 0.3
    d = diagnose_run(tmp_path, threshold=thr)
    assert d["recomputed"] == {"history": "threshold", "final": False}
    h2 = SpectralHistory.from_npz(tmp_path / "diagnostics.npz")
    np.testing.assert_array_equal(h2.delta_f, h.delta_f)
    np.testing.assert_array_equal(h2.e_low, h.e_low)
    assert h2.threshold == thr
    for j, r in enumerate(d["rows"]):
        below = h.delta_f[:, j] < thr
        expect = int(h.steps[np.argmax(below)]) if below.any() else None
        assert r["first_resolved"] == expect
        assert r["threshold"] == thr
        assert r["final_delta_f"] == pytest.approx(out["rows"][j]["final_delta_f"])
    assert "first <0.3" in format_report(d)

    # magnitude-only Δ_F is recomputed from the stored fields (≤ the complex one) ...
    d = diagnose_run(tmp_path, magnitude=True, figures=False)
    assert d["recomputed"]["history"] == "fields"
    hm = SpectralHistory.from_npz(tmp_path / "diagnostics.npz")
    assert hm.magnitude and np.all(hm.delta_f <= h.delta_f + 1e-12)
    # ... and switching back reproduces the training-time history exactly
    diagnose_run(tmp_path, magnitude=False, threshold=0.05, figures=False)
    hb = SpectralHistory.from_npz(tmp_path / "diagnostics.npz")
    np.testing.assert_allclose(hb.delta_f, h.delta_f, rtol=1e-12)
    np.testing.assert_allclose(hb.band_error, h.band_error, rtol=1e-12)

    # a finer grid: only the final state is recomputed, the history is kept
    d = diagnose_run(tmp_path, grid=511)
    assert d["recomputed"] == {"history": "none", "final": True}
    assert any("only the final state" in n for n in d["notes"])
    assert [r["index"] for r in d["final_rows"]] == [[1], [4]]
    for fr, r in zip(d["final_rows"], out["rows"], strict=True):
        assert fr["step"] == 150
        # the same network: Δ_F of the leading modes hardly depends on the grid
        assert fr["delta_f"] == pytest.approx(r["final_delta_f"], rel=0.2, abs=1e-3)
    saved = load_spectral(tmp_path / "diagnostics.npz")
    np.testing.assert_array_equal(saved.histories[0].delta_f, h.delta_f)
    with np.load(tmp_path / "diagnostics.npz") as z:
        assert z["final__field"].shape == (1, 511)
        assert json.loads(str(z["final__settings_json"]))["grid"] == 511
    text = format_report(d)
    assert "final state recomputed from model.pt (grid 511/axis" in text
    json.dumps(d)


@pytest.mark.slow
def test_diagnose_into_another_folder_and_without_spectral_npz(tmp_path):
    run = tmp_path / "run"
    m.solve(poisson_problem(steps=10, enabled=False), out=run)  # no diagnostics.npz
    out = tmp_path / "out"
    d = diagnose_run(run, out=out, floor=1e-2)
    assert (out / "diagnostics.npz").exists() and (out / "figures" / "spectra.png").exists()
    assert not (run / "diagnostics.npz").exists()
    assert d["recomputed"] == {"history": "missing", "final": True}
    assert any("not found" in n for n in d["notes"])
    assert "final state only" in format_report(d)
    assert [r["index"] for r in d["rows"]] == [[1], [4]]
    assert d["rows"][0]["first_resolved"] in (None, 10)
    with pytest.raises(RunFolderError):
        diagnose_run(tmp_path / "missing")
    with pytest.raises(MscaleError, match="threshold"):
        diagnose_run(run, threshold=-1)


@pytest.mark.slow
def test_thinned_fields_recompute_partially(tmp_path):
    p = poisson_problem(steps=60, every=2)
    mon, _ = run_with_monitor(p, tmp_path, fields_budget=127 * 4 * 8)
    out = mon.finish(tmp_path, figures=False)
    saved = load_spectral(tmp_path / "diagnostics.npz")
    assert not saved.fields_complete
    assert len(saved.field_steps) <= 8 and saved.field_steps[-1] == 60
    assert any("fields kept" in n for n in out["notes"])
    d = diagnose_run(tmp_path, floor=0.5, figures=False)
    assert d["recomputed"]["history"] == "partial"
    assert [r["index"] for r in d["rows"]] == [[1]]  # the 0.2 mode is under the floor now
    # other bands and another filter width, from the same fields
    before = load_spectral(tmp_path / "diagnostics.npz").histories[0]
    d = diagnose_run(tmp_path, bands=[0, 10, 100, 1000], delta=1e-3, figures=False)
    after = load_spectral(tmp_path / "diagnostics.npz")
    h = after.histories[0]
    np.testing.assert_array_equal(h.band_pairs, [[0, 10], [10, 100], [100, 1000]])
    assert after.settings.delta == 1e-3 and not after.settings.delta_default
    assert not np.allclose(h.e_low, before.e_low[np.isin(before.steps, h.steps)])
    assert d["settings"]["bands"] == [0, 10, 100, 1000]
    # the training-time history (all 31 steps) is still in the file
    orig = after.original_histories[0]
    assert len(orig) == 31 and orig.threshold == 0.05
    np.testing.assert_array_equal(orig.delta_f, mon.histories[0].delta_f)


# --------------------------------------------------------------------------- 2D and heat


def test_two_dimensional_peaks_are_wave_vectors():
    p = m.problem_from_dict(
        {"pde": "fit", "domain": {"box": [[0, 2 * PI], [0, 2 * PI]]},
         "exact": "sin(x)*sin(2*y) + 0.5*cos(3*x)",
         "model": {"width": 8, "depth": 1},
         "train": {"steps": 5, "points": {"interior": 64}, "log_every": 5, "device": "cpu"},
         "diagnostics": {"every": 2, "grid": 32, "filter_points": 200}}
    )
    mon, _ = run_with_monitor(p)
    out = mon.finish()
    ks = [tuple(r["wavenumber"]) for r in out["rows"]]
    assert set(ks) == {(1.0, 2.0), (1.0, -2.0), (3.0, 0.0)}
    for r in out["rows"]:
        assert len(r["index"]) == 2
        assert r["k_norm"] == pytest.approx(math.hypot(*r["wavenumber"]))
        # sin x sin 2y = (cos(x − 2y) − cos(x + 2y)) / 2
        assert r["amplitude"] == pytest.approx(0.5, rel=1e-9)
    assert mon.grid.shape == (32, 32) and mon.grid.filter_index.size == 200
    assert "(1, 2)" in out["table"] and "(1, -2)" in out["table"]
    assert not np.isnan(mon.histories[0].e_low).any()


@pytest.mark.slow
def test_heat_final_time_by_default(tmp_path):
    mon, _ = run_with_monitor(heat_problem(), tmp_path)
    out = mon.finish(tmp_path)
    assert [r["time"] for r in out["rows"]] == [1.0, 1.0]
    amps = [r["amplitude"] for r in out["rows"]]
    np.testing.assert_allclose(amps, [math.exp(-1), 0.5 * math.exp(-2)], rtol=1e-9)
    assert "at t = 1:" in out["table"]
    assert list(mon.named_histories) == ["t=1"]
    assert (tmp_path / "figures" / "fprinciple.png").exists()
    assert list(mon.histories[0].steps) == [0, 5, 10, 12]


@pytest.mark.slow
def test_heat_at_chosen_times(tmp_path):
    mon, _ = run_with_monitor(heat_problem(times=[0, 0.5, 1]), tmp_path)
    out = mon.finish(tmp_path)
    assert len(mon.histories) == 3
    by_time = {}
    for r in out["rows"]:
        by_time.setdefault(r["time"], []).append(r["amplitude"])
    assert sorted(by_time) == [0.0, 0.5, 1.0]
    for t, amps in by_time.items():
        np.testing.assert_allclose(amps, [math.exp(-t), 0.5 * math.exp(-2 * t)], rtol=1e-9)
    figs = set(out["files"]["figures"])
    assert {"figures/fprinciple.png", "figures/fprinciple_t0.png",
            "figures/fprinciple_t0.5.png", "figures/spectra_t0.5.png"} <= figs
    saved = load_spectral(tmp_path / "diagnostics.npz")
    assert saved.times == (0.0, 0.5, 1.0) and saved.fields.shape[1:] == (3, 63)
    # the top level of diagnostics.npz is the latest time
    top = SpectralHistory.from_npz(tmp_path / "diagnostics.npz")
    np.testing.assert_array_equal(top.delta_f, mon.histories[2].delta_f)
    # other times after training: final state only
    d = diagnose_run(tmp_path, times=[0.25], figures=False)
    assert d["recomputed"]["final"] and "other times" in " ".join(d["notes"])
    assert [r["time"] for r in d["final_rows"]] == [0.25, 0.25]
    with np.load(tmp_path / "diagnostics.npz") as z:
        assert z["final__field"].shape == (1, 63)
    with pytest.raises(MscaleError):
        diagnose_run(tmp_path, times=[2.0])


def test_evaluation_and_diagnostics_build_no_graph_and_batch(monkeypatch):
    """Issue 6: the evaluation and diagnostics paths run under inference mode (no graph)
    and in large batches, whatever the grad mode of the caller."""
    from mscalepde.diagnostics.evaluation import GRID_POINTS, Evaluator, predict

    problem = poisson_problem()
    model = make_model(problem, torch.float32)
    calls = []

    def spy(x):
        calls.append((len(x), torch.is_inference_mode_enabled(), torch.is_grad_enabled()))
        return type(model).forward(model, x)

    monkeypatch.setattr(model, "forward", spy)
    with torch.enable_grad():
        Evaluator(problem, dtype=torch.float32, device="cpu")(model)
        settings = DiagnosticSettings.from_problem(problem)
        grid = DiagnosticGrid(problem.domain.box, settings)
        grid.evaluate(model, dtype=torch.float32, device="cpu")
        out = predict(model, np.linspace(0, 1, 2500)[:, None], dtype=torch.float32,
                      device="cpu", batch=1000)
    assert len(calls) == 5 and out.shape == (2500,)
    assert [n for n, _, _ in calls] == [GRID_POINTS[1], 127, 1000, 1000, 500]
    assert all(inf and not grad for _, inf, grad in calls)
