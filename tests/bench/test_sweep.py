"""Sweep files (issue 15): validation, report and figures, restart, failures, Dask."""

from __future__ import annotations

import copy
import csv
import sys

import pytest
import yaml

from mscalepde.bench import run_sweep
from mscalepde.cli import main
from tests.helpers import POISSON1D


def _write(tmp_path, sweep: dict, problem: dict | None = None):
    problem = copy.deepcopy(problem or POISSON1D)
    problem["train"].update({"steps": 20, "optimizer": ["adam", {"gauss-newton": {"steps": 5}}],
                             "dtype": "float64", "compile": "off", "log_every": 5,
                             "device": "cpu"})
    problem["diagnostics"] = {"every": 10}
    (tmp_path / "p1.yaml").write_text(yaml.safe_dump(problem))
    data = {"problems": ["p1.yaml"], "seeds": [0, 1], **sweep}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


VARIANTS = {
    "narrow": {"model": {"width": 8}},
    "fourier": {"model": {"arch": "fourier", "sigma": 1, "features": 4, "width": 8,
                          "depth": 1}},
}


def _rows(out):
    return list(csv.DictReader((out / "results.csv").open()))


@pytest.mark.slow
def test_a_small_sweep_gives_report_csv_and_figures(tmp_path, capsys):
    path = _write(tmp_path, {"models": VARIANTS, "budget": {"steps": 23}})
    out = tmp_path / "out"
    assert main(["bench", str(path), "--out", str(out)]) == 0
    rows = _rows(out)
    assert sorted((r["model"], r["seed"]) for r in rows) == [
        ("fourier", "0"), ("fourier", "1"), ("narrow", "0"), ("narrow", "1")]
    assert all(r["status"] == "ok" and r["steps"] == "23" for r in rows)  # the steps budget
    assert all(r["time_to_1e_1"] != "" and float(r["steps_per_second"]) > 0 for r in rows)
    report = (out / "report.md").read_text()
    for fig in ("error_p1.png", "frequencies_p1.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
        assert f"(figures/{fig})" in report
    assert "| p1 | `narrow` |" in report and "to 1e-2" in report


@pytest.mark.slow
def test_a_restarted_sweep_runs_only_the_missing_runs(tmp_path, capsys):
    path = _write(tmp_path, {"models": VARIANTS})
    out = tmp_path / "out"
    first = {(r.model, r.seed): r for r in run_sweep(path, out)}
    # an interrupted sweep: one run never started, one was cut short after its checkpoint
    gone = first[("narrow", 1)]
    cut = first[("fourier", 0)]
    import shutil

    shutil.rmtree(gone.run_dir)
    (tmp_path / "out" / "runs" / cut.run_dir.split("/")[-1] / "bench_row.json").unlink()
    capsys.readouterr()
    import io

    log = io.StringIO()
    again = {(r.model, r.seed): r for r in run_sweep(path, out, log=log)}
    text = log.getvalue()
    assert text.count("finished before: skipped") == 2
    assert again[("narrow", 1)].rel_l2 == gone.rel_l2  # rerun: same seed, same result
    assert again[("fourier", 0)].rel_l2 == cut.rel_l2  # continued from its checkpoint
    import json

    summary = json.loads((out / "runs" / cut.run_dir.split("/")[-1] / "summary.json")
                         .read_text())
    assert summary["resumed_from_step"] == 25
    # a changed setting is a new run, not a reuse
    path.write_text(path.read_text().replace("width: 8", "width: 9", 1))
    log = io.StringIO()
    run_sweep(path, out, log=log)
    assert log.getvalue().count("finished before: skipped") == 2


@pytest.mark.slow
def test_a_failing_variant_is_reported_and_the_others_complete(tmp_path):
    variants = {**VARIANTS, "too-big": {"model": {"width": 64, "depth": 3}, "train": {
        "optimizer": [{"gauss-newton": {"steps": 2, "max_memory_gb": 0.001,
                                        "solver": "dense"}}]}}}
    path = _write(tmp_path, {"models": variants, "seeds": [0]})
    out = tmp_path / "out"
    rows = {r.model: r for r in run_sweep(path, out)}
    assert rows["too-big"].status == "failed" and "max_memory_gb" in rows["too-big"].error
    assert rows["narrow"].status == rows["fourier"].status == "ok"
    assert "Failed runs" in (out / "report.md").read_text()


@pytest.mark.slow
def test_the_dask_path_gives_the_same_table_as_the_sequential_one(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = _write(tmp_path, {"models": VARIANTS, "seeds": [0]})  # one seed: 2 runs, not 4
    sequential = run_sweep(path, tmp_path / "seq")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        parallel = run_sweep(path, tmp_path / "dask", scheduler=cluster.scheduler_address)
    key = [(r.problem, r.model, r.seed, r.status, r.steps) for r in sequential]
    assert [(r.problem, r.model, r.seed, r.status, r.steps) for r in parallel] == key
    for a, b in zip(sequential, parallel, strict=True):
        assert b.rel_l2 == pytest.approx(a.rel_l2, rel=1e-9)  # float64: thread counts differ
    assert (tmp_path / "dask" / "figures" / "error_p1.png").is_file()


@pytest.mark.parametrize("sweep, key", [
    ({"problems": ["nope.yaml"], "models": {"a": {}}}, "problems[0]: no such problem file"),
    ({"models": {"a": {"model": {"widht": 3}}}}, "models.a.model.widht: unknown key"),
    ({"models": {"a": {"modle": {}}}}, "models.a.modle: unknown key"),
    ({"models": {"a": {}}, "budget": {"seconds": 0}}, "budget.seconds"),
    ({"models": {"a": {}}, "budget": {"steps": -1}}, "budget.steps"),
    ({"models": {}}, "models: expected a mapping"),
])
def test_bad_sweep_files_exit_2_with_one_line_naming_file_and_key(tmp_path, capsys, sweep,
                                                                    key):
    path = _write(tmp_path, sweep)
    code = main(["bench", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert str(path) in err and key in err, err
    assert not (tmp_path / "out" / "runs").exists()


def test_workers_zero_and_a_missing_dask_are_one_line_errors(tmp_path, capsys, monkeypatch):
    path = _write(tmp_path, {"models": {"a": {}}, "seeds": [0]})
    assert main(["bench", str(path), "--workers", "0"]) == 2
    assert "--workers: expected an integer >= 1, got 0" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    code = main(["bench", str(path), "--workers", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install -e '.[cluster]'" in err


@pytest.mark.slow
def test_a_resumed_budgeted_run_takes_no_extra_step(tmp_path):
    from mscalepde import problem_from_dict, solve
    from mscalepde.run.pipeline import resume_run

    cfg = copy.deepcopy(POISSON1D)
    cfg["train"].update({"steps": 100, "optimizer": ["adam"], "budget_steps": 7})
    solve(problem_from_dict(cfg), out=tmp_path / "run")
    again = resume_run(tmp_path / "run")
    assert again.summary["steps"] == 7
    assert sum("budget of 7 steps" in n for n in again.summary["notes"]) == 1


@pytest.mark.parametrize("extra, message", [
    ({"seeds": [0, 0]}, "seeds: a seed is listed twice"),
    ({"set": ["train.steps=-3"]}, ": set: train.steps"),
])
def test_duplicate_runs_and_bad_set_entries_are_named(tmp_path, capsys, extra, message):
    path = _write(tmp_path, {"models": {"a": {}}, **extra})
    assert main(["bench", str(path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and message in err, err


def test_an_unreachable_scheduler_is_one_line(tmp_path, capsys):
    pytest.importorskip("distributed")
    path = _write(tmp_path, {"models": {"a": {}}, "seeds": [0]})
    code = main(["bench", str(path), "--out", str(tmp_path / "o"), "--scheduler", "nonsense://x"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "--scheduler nonsense://x" in err, err
