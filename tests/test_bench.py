"""``mscalepde bench``: every problem × model × seed runs, and the report summarises them."""

from __future__ import annotations

import csv

import pytest

from mscalepde.bench import ModelSpec
from mscalepde.cli import main

from .conftest import PROBLEMS


def test_model_spec_parsing():
    spec = ModelSpec.parse("fourier sigma=5 features=32 trainable=true sigmas=[1,10]")
    assert spec.section == {
        "arch": "fourier", "sigma": 5, "features": 32, "trainable": True, "sigmas": [1, 10]
    }
    with pytest.raises(Exception, match="KEY=VALUE"):
        ModelSpec.parse("mlp width")


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


def test_a_failing_run_is_recorded_and_the_others_complete(tmp_path):
    """A model whose Gauss–Newton system cannot fit (max_memory_gb) fails with its reason in
    results.csv and report.md; the other model's runs still finish."""
    out = tmp_path / "b"
    code = main([
        "bench", str(PROBLEMS / "poisson1d_sin.yaml"),
        "--model", "mlp width=8 depth=1", "--model", "mlp width=64 depth=3",
        "--seeds", "0", "--out", str(out),
        "--set", "train.optimizer=[{gauss-newton: {steps: 2, max_memory_gb: 0.01}}]",
    ])
    assert code == 0
    rows = {r["model"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["mlp width=8 depth=1"]["status"] == "ok"
    assert float(rows["mlp width=8 depth=1"]["rel_l2"]) > 0
    failed = rows["mlp width=64 depth=3"]
    assert failed["status"] == "failed" and "max_memory_gb" in failed["error"]
    report = (out / "report.md").read_text()
    assert "(1 failed)" in report and "Failed runs" in report
