"""``mscalepde bench``: every problem × model × seed runs, and the report summarises them."""

from __future__ import annotations

import csv

import pytest

from mscalepde.bench import ModelSpec
from mscalepde.cli import main
from tests.helpers import PROBLEMS


def test_model_spec_parsing():
    spec = ModelSpec.parse("fourier sigma=5 features=32 trainable=true sigmas=[1,10]")
    assert spec.section == {
        "arch": "fourier", "sigma": 5, "features": 32, "trainable": True, "sigmas": [1, 10]
    }
    with pytest.raises(Exception, match="KEY=VALUE"):
        ModelSpec.parse("mlp width")


@pytest.mark.slow
def test_bench_runs_all_combinations_and_writes_a_report(tmp_path, capsys):
    out = tmp_path / "b"
    code = main([
        "bench", str(PROBLEMS / "poisson1d_sin.yaml"),
        "--model", "mlp width=8 depth=1", "--model", "fourier sigma=1 features=4 width=8 depth=1",
        "--seeds", "0", "1", "--out", str(out),
        "--set", "train.steps=5", "--set", "train.lbfgs_steps=0",
    ])
    assert code == 0
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 4 and {r["seed"] for r in rows} == {"0", "1"}
    assert all(float(r["rel_l2"]) > 0 for r in rows)
    report = (out / "report.md").read_text()
    # two tables (errors; time to accuracy, speed, phases), one line per model in each
    assert report.count("| poisson1d_sin |") == 4 and "`fourier sigma=1" in report
    assert len(list((out / "runs").iterdir())) == 4
    assert (out / "figures" / "error_poisson1d_sin.png").is_file()
    assert "](figures/error_poisson1d_sin.png)" in report
    assert all(r["phases"] == "adam 300 + gauss-newton 30" and float(r["steps_per_second"]) > 0
               for r in rows)


def test_bench_validates_everything_before_running(tmp_path, capsys):
    code = main(["bench", str(PROBLEMS / "poisson1d_sin.yaml"), "--model", "mlp widht=3",
                 "--out", str(tmp_path / "b")])
    assert code == 2
    assert "model.widht: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "b" / "runs").exists()


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_others_complete(tmp_path):
    """A model whose Gauss–Newton system cannot fit (max_memory_gb) fails with its reason in
    results.csv and report.md; the other model's runs still finish."""
    out = tmp_path / "b"
    code = main([
        "bench", str(PROBLEMS / "poisson1d_sin.yaml"),
        "--model", "mlp width=8 depth=1", "--model", "mlp width=64 depth=3",
        "--seeds", "0", "--out", str(out),
        "--set", "train.optimizer=[{gauss-newton: {steps: 2, max_memory_gb: 0.01, solver: dense}}]",
    ])
    assert code == 0
    rows = {r["model"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["mlp width=8 depth=1"]["status"] == "ok"
    assert float(rows["mlp width=8 depth=1"]["rel_l2"]) > 0
    failed = rows["mlp width=64 depth=3"]
    assert failed["status"] == "failed" and "max_memory_gb" in failed["error"]
    report = (out / "report.md").read_text()
    assert "(1 failed)" in report and "Failed runs" in report


def test_error_figure_from_run_histories_and_staircase_semantics(tmp_path):
    """The comparison figure reads each run's history.csv; without diagnostics.npz there
    is no frequency figure (no training: written histories)."""
    import numpy as np

    from mscalepde.bench.figures import _staircase, error_figure, frequency_figure

    runs = {}
    for model, scale in (("mlp", 1.0), ("mff", 0.1)):
        dirs = []
        for seed in range(2):
            d = tmp_path / f"{model}-{seed}"
            d.mkdir()
            rows = ["step,time,rel_l2"] + [
                f"{s},{0.1 * s:.3f},{scale * 0.5 ** s * (1 + seed):.6g}" for s in range(6)
            ]
            (d / "history.csv").write_text("\n".join(rows) + "\n")
            dirs.append(d)
        runs[model] = dirs
    png = tmp_path / "error.png"
    assert error_figure(png, "p", runs) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not frequency_figure(tmp_path / "freq.png", "p", runs)
    t = np.array([0.0, 0.15, 1.0])
    vals = _staircase(t, np.array([0.1, 0.2]), np.array([3.0, 4.0]))
    assert list(vals) == [3.0, 3.0, 4.0]  # before the first time: the first value

