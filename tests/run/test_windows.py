"""Time marching (``train.time_windows``, issue 25): one network per window, each started
from the previous one and fed its final state as initial data; the history, summary and
checkpoints know the windows, and a resumed run continues in the right window."""

from __future__ import annotations

import copy
import csv

import numpy as np
import pytest
import torch

from mscalepde import problem_from_dict, solve
from mscalepde.errors import ProblemError, Stopped
from mscalepde.problem.windows import window_edges
from mscalepde.run.checkpoint import load_checkpoint
from mscalepde.run.windows import NetworkInitial, WindowedModel
from mscalepde.training.signals import StopRequest
from tests.helpers import StopAt

HEAT = {
    "name": "march",
    "pde": "heat",
    "domain": {"box": [[0, 1]], "time": [0, 2]},
    "diffusivity": 0.1,
    "exact": "exp(-0.1*pi**2*t)*sin(pi*x)",
    "boundary": [{"type": "dirichlet", "value": "exact"}],
    "model": {"width": 20, "depth": 2},
    "train": {
        "time_windows": 4,
        "dtype": "float64",
        "log_every": 10,
        "points": {"interior": 300, "boundary": 60, "initial": 60},
        "optimizer": [{"adam": {"steps": 60, "lr": 0.01}}, {"gauss-newton": {"steps": 6}}],
    },
    "diagnostics": {"every": 30},
}


def _problem(**train):
    cfg = copy.deepcopy(HEAT)
    cfg["train"].update(train)
    return problem_from_dict(cfg)


@pytest.fixture(scope="module")
def marched(tmp_path_factory):
    return solve(_problem(), out=tmp_path_factory.mktemp("march") / "run")


def test_window_edges_are_equal_and_exact_at_the_ends():
    assert window_edges((0.0, 2.0), 4) == [0.0, 0.5, 1.0, 1.5, 2.0]
    e = window_edges((0.1, 0.7), 3)
    assert e[0] == 0.1 and e[-1] == 0.7 and np.allclose(np.diff(e), 0.2)


def test_a_row_goes_to_the_network_of_its_window():
    torch.manual_seed(0)
    nets = [torch.nn.Linear(2, 1).double() for _ in range(3)]
    model = WindowedModel(nets, [0.0, 0.3, 0.6, 0.9])
    t = torch.tensor([0.0, 0.1, 0.3, 0.45, 0.6, 0.9], dtype=torch.float64)
    x = torch.stack([torch.linspace(0, 1, 6, dtype=torch.float64), t], 1)
    want = [0, 0, 1, 1, 2, 2]  # t_k belongs to window k, t1 to the last
    assert model.window_of(t).tolist() == want
    out = model(x)
    for i, k in enumerate(want):
        assert torch.equal(out[i], nets[k](x[i : i + 1])[0])
    # a point put at t_k in float32 lands in window k as well
    assert model.window_of(torch.tensor([0.3, 0.6], dtype=torch.float32)).tolist() == [1, 2]


def test_marching_trains_every_window_and_reports_each(marched, tmp_path):
    s = marched.summary
    assert s["rel_l2"] < 1e-2  # measured 1.5e-3 (4 windows of 2×20 tanh, 60 Adam + 6 GN)
    assert [w["window"] for w in s["windows"]] == [0, 1, 2, 3]
    assert [(w["t0"], w["t1"]) for w in s["windows"]] == [(0, 0.5), (0.5, 1), (1, 1.5), (1.5, 2)]
    assert max(w["rel_l2"] for w in s["windows"]) < 1e-2
    assert s["steps"] == 4 * 66 and [p["steps"] for p in s["phases"]] == [60, 6] * 4
    rows = list(csv.DictReader((marched.run_dir / "history.csv").open()))
    windows = [float(r["window"]) for r in rows]
    assert windows == sorted(windows) and set(windows) == {0.0, 1.0, 2.0, 3.0}
    # the spectrum is read at each window's end, while that window trains
    assert marched.problem.diagnostics["times"] == [0.5, 1.0, 1.5, 2.0]
    assert (marched.run_dir / "figures" / "snapshots.png").is_file()


def test_each_window_starts_where_the_previous_one_ended(marched):
    model = marched.model
    assert isinstance(model, WindowedModel) and len(model.nets) == 4
    x = torch.linspace(0, 1, 51, dtype=torch.float64)
    for k in (1, 2, 3):
        t = model.edges[k]
        before = model.nets[k - 1](torch.stack([x, torch.full_like(x, t)], 1)).detach()
        after = model.nets[k](torch.stack([x, torch.full_like(x, t)], 1)).detach()
        scale = before.abs().max()
        assert (after - before).abs().max() < 5e-3 * scale  # the continuity the data impose
        initial = NetworkInitial(model.nets[k - 1], t, ("x", "t"), k)
        values = initial.torch({"x": x, "t": torch.zeros_like(x)})
        assert torch.equal(values, before.reshape(-1))


def test_a_reloaded_marching_run_predicts_the_same(marched):
    from mscalepde import load_run

    again = load_run(marched.run_dir)
    pts = np.array([[0.3, 0.2], [0.7, 0.5], [0.5, 1.99], [0.1, 1.0]])
    np.testing.assert_array_equal(again.predict(pts), marched.predict(pts))


@pytest.mark.slow
@pytest.mark.parametrize("stop_at", [140])  # inside the third window's Adam phase
def test_a_resumed_marching_run_equals_an_uninterrupted_one(tmp_path, marched, stop_at):
    run = tmp_path / "run"
    request = StopRequest()
    with pytest.raises(Stopped):
        solve(_problem(), out=run, callbacks=[StopAt(stop_at, request)], stop=request)
    saved = load_checkpoint(run)
    assert saved.step == stop_at
    resumed = solve(_problem(), resume=run)
    a, b = resumed.model.state_dict(), marched.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.rel_l2 == marched.rel_l2
    assert resumed.summary["windows"] == marched.summary["windows"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"pde": "poisson", "domain": {"box": [[0, 1]]}, "exact": "sin(pi*x)"}, "only heat"),
        ({"model": {"arch": "auto"}}, "not with model auto"),
    ],
)
def test_what_cannot_march_is_refused_in_one_line(change, words):
    cfg = copy.deepcopy(HEAT)
    cfg.update(change)
    with pytest.raises(ProblemError) as info:
        problem_from_dict(cfg)
    assert info.value.key == "train.time_windows" and words in str(info.value)


def test_a_window_length_must_divide_the_span():
    cfg = copy.deepcopy(HEAT)
    cfg["train"]["time_windows"] = {"length": 0.5}
    p = problem_from_dict(cfg)
    assert p.train["time_windows"] == 4 and p.config["train"]["time_windows"] == 4
    cfg["train"]["time_windows"] = {"length": 0.3}
    with pytest.raises(ProblemError) as info:
        problem_from_dict(cfg)
    msg = str(info.value)
    assert info.value.key == "train.time_windows.length" and "does not divide" in msg
    assert "6.667" in msg and "\n" not in msg


def test_one_window_is_the_plain_run():
    from mscalepde.run.model import make_model

    one = _problem(time_windows=1)
    assert not isinstance(make_model(one), WindowedModel)
    assert one.diagnostics["times"] is None
