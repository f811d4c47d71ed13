"""Heat in time: snapshots, the animation, probes (values checked against predict and the
exact solution), probe validation, and labelled colour bars."""

from __future__ import annotations

import copy
import csv

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml
from PIL import Image

from mscalepde import problem_from_dict, solve
from mscalepde.cli import main
from mscalepde.run import evolution, figures
from tests.helpers import POISSON1D

HEAT2D = {
    "name": "h2",
    "pde": "heat",
    "domain": {"box": [[0, 1], [0, 1]], "time": [0, 0.5]},
    "diffusivity": 0.05,
    "exact": "exp(-t)*sin(pi*x)*sin(pi*y)",
    "source": "auto",
    "initial": "exact",
    "boundary": [{"faces": "all", "type": "dirichlet", "value": "exact"}],
    "model": {"arch": "mlp", "width": 8, "depth": 2},
    "train": {"steps": 5, "points": {"interior": 64, "boundary": 16, "initial": 16}},
    "diagnostics": {"enabled": False, "probes": {"centre": [0.5, 0.5], "edge": [0.1, 0.3]}},
}


def test_heat_run_writes_snapshots_animation_and_probes(tmp_path):
    run = solve(problem_from_dict(copy.deepcopy(HEAT2D)), out=tmp_path / "run", animate=True)
    figs = tmp_path / "run" / "figures"
    assert (figs / "snapshots.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (figs / "probes.png").is_file()
    with Image.open(figs / "animation.gif") as gif:
        assert gif.n_frames == evolution.FRAMES
    rows = list(csv.reader((tmp_path / "run" / "probes.csv").open()))
    assert rows[0] == ["t", "centre_u", "centre_truth", "edge_u", "edge_truth"]
    table = np.array(rows[1:], dtype=float)
    t = table[:, 0]
    assert len(t) == evolution.TIMES and t[0] == 0.0 and t[-1] == 0.5
    x = np.column_stack([np.full_like(t, 0.1), np.full_like(t, 0.3), t])
    np.testing.assert_array_equal(table[:, 3], run.predict(x)[:, 0])
    np.testing.assert_allclose(table[:, 4], np.exp(-t) * np.sin(0.1 * np.pi) * np.sin(0.3 * np.pi),
                               rtol=1e-12)
    probe = run.summary["probes"]["centre"]
    assert probe["point"] == [0.5, 0.5] and probe["truth"] == pytest.approx(np.exp(-0.5))
    assert probe["max_error"] >= abs(probe["u"] - probe["truth"])


def test_steady_probes_are_one_row_each(tmp_path):
    data = copy.deepcopy(POISSON1D)
    data["diagnostics"] = {"every": 0, "probes": {"a": [0.25], "b": 0.5}}
    run = solve(problem_from_dict(data), out=tmp_path / "run")
    rows = list(csv.DictReader((tmp_path / "run" / "probes.csv").open()))
    assert [r["probe"] for r in rows] == ["a", "b"] and float(rows[1]["x"]) == 0.5
    assert float(rows[0]["truth"]) == pytest.approx(np.sin(0.25 * np.pi), rel=1e-12)
    assert float(rows[0]["u"]) == run.predict([[0.25]])[0, 0]
    assert not (tmp_path / "run" / "figures" / "probes.png").exists()


@pytest.mark.parametrize(
    ("probes", "message"),
    [
        ({"p": [0.5]}, "diagnostics.probes.p: expected 2 coordinate(s) (x, y), got 1"),
        ({"p": [0.5, 1.5]}, "diagnostics.probes.p: the point x=0.5, y=1.5 lies outside"),
        ({"p q": [0.5, 0.5]}, "a probe's name is a word"),
        ({"p": "centre"}, "expected a point [x, y, ...]"),
    ],
)
def test_bad_probes_are_one_line(tmp_path, capsys, probes, message):
    data = copy.deepcopy(HEAT2D)
    data["diagnostics"]["probes"] = probes
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["check", str(path)]) == 2
    out = capsys.readouterr().out
    assert message in out and len(out.strip().splitlines()) == 1


def test_every_colour_bar_is_labelled(monkeypatch, tmp_path):
    drawn = []
    monkeypatch.setattr(figures, "save_figure", lambda fig, path: drawn.append(fig))
    monkeypatch.setattr(evolution, "save_figure", lambda fig, path: drawn.append(fig))
    axes = [np.linspace(0, 1, 5), np.linspace(0, 1, 6)]
    field = np.random.default_rng(0).random((5, 6))
    figures.solution_figure(tmp_path / "s.png", axes, ["x", "y"], field, field + 0.1)
    run = solve(problem_from_dict(copy.deepcopy(HEAT2D)), write=False)
    evolution.snapshots_figure(tmp_path / "snap.png", run)
    labelled = []
    for fig in drawn:
        bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
        labelled.append(bool(bars) and all(ax.get_ylabel() for ax in bars))
        plt.close(fig)  # save_figure, replaced above, would have closed it
    assert len(drawn) == 2 and all(labelled)
