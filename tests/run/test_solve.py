"""End to end: solve, the run folder, reproducibility, divergence, reloading, the CLI."""

from __future__ import annotations

import copy
import csv
import importlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

import mscalepde
from mscalepde import TrainingError, load_run, problem_from_dict, solve
from mscalepde.cli import main
from mscalepde.training.callbacks import Callback
from tests.helpers import POISSON1D, PROBLEMS


@pytest.mark.slow
def test_solve_writes_a_complete_run_folder(tmp_path, poisson1d):
    out = tmp_path / "run"
    r = solve(problem_from_dict(poisson1d), out=out)
    assert r.run_dir == out
    for name in (
        "config.yaml",
        "history.csv",
        "model.pt",
        "summary.json",
        "figures/solution.png",
        "figures/history.png",
    ):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "figures/solution.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    s = json.loads((out / "summary.json").read_text())
    for key in ("rel_l2", "max_error", "train_seconds", "steps", "seed", "versions"):
        assert key in s
    assert s["steps"] == 30 and s["seed"] == 0 and s["versions"]["torch"] == torch.__version__
    assert s["rel_l2"] == pytest.approx(r.summary["rel_l2"])
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["step"]) for r in rows] == [0, 10, 20, 30]
    assert {"time", "loss", "loss_pde", "loss_boundary", "rel_l2", "max_error"} <= set(rows[0])
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["train"]["steps"] == 30 and cfg["model"]["width"] == 16


@pytest.mark.slow
def test_saved_model_reloads_bit_identically(tmp_path, poisson1d):
    r = solve(problem_from_dict(poisson1d), out=tmp_path / "run")
    run = load_run(tmp_path / "run")
    model = run.model
    x = torch.linspace(0, 1, 101, dtype=torch.float32).reshape(-1, 1)
    with torch.no_grad():
        assert torch.equal(model(x), r.model(x))


def test_fixed_seed_reproduces_the_run_exactly(poisson1d):
    a = solve(problem_from_dict(poisson1d), write=False)
    b = solve(problem_from_dict(poisson1d), write=False)
    assert a.history.column("loss") == b.history.column("loss")
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(pa, pb)
    poisson1d["train"]["seed"] = 1
    c = solve(problem_from_dict(poisson1d), write=False)
    assert c.history.column("loss") != a.history.column("loss")


def test_float64_is_available(poisson1d):
    poisson1d["train"]["dtype"] = "float64"
    r = solve(problem_from_dict(poisson1d), write=False)
    assert next(r.model.parameters()).dtype == torch.float64
    assert r.summary["dtype"] == "float64"


def test_lbfgs_steps_are_logged_and_reduce_the_loss(poisson1d):
    poisson1d["train"].update(steps=200, lbfgs_steps=20, log_every=5)
    r = solve(problem_from_dict(poisson1d), write=False)
    phase = np.array(r.history.column("phase"))
    steps = np.array(r.history.column("step"))
    assert steps[-1] == 220 and (phase == 1).sum() == 4
    loss = np.array(r.history.column("loss"))
    assert loss[-1] < 0.7 * loss[steps == 200][0]


def test_learning_rate_decay_follows_the_schedule(poisson1d):
    poisson1d["train"].update(steps=30, decay={"every": 10, "factor": 0.5}, log_every=10)
    r = solve(problem_from_dict(poisson1d), write=False)
    assert r.history.column("lr") == [0.01, 0.01, 0.005, 0.0025]


class _Poison(Callback):
    """Corrupts a weight after step `at`, as an overflow would."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_step(self, trainer, step):
        if step == self.at:
            with torch.no_grad():
                next(trainer.model.parameters()).view(-1)[0] = float("nan")


@pytest.mark.slow
def test_nan_loss_stops_with_a_clear_error_and_keeps_the_last_good_state(tmp_path, poisson1d):
    out = tmp_path / "run"
    with pytest.raises(
        TrainingError, match=r"loss became nan at adam step 16.*restored to step 10"
    ):
        solve(problem_from_dict(poisson1d), out=out, callbacks=[_Poison(15)])
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == "diverged" and np.isfinite(s["rel_l2"])
    model = load_run(out).model
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert (out / "history.csv").read_text().count("\n") == 3  # header + steps 0 and 10


@pytest.mark.slow
def test_cli_divergence_exits_non_zero_with_one_line(tmp_path, capsys):
    path = PROBLEMS / "poisson1d_sin.yaml"
    code = main(
        [
            "solve",
            str(path),
            "--quiet",
            "--out",
            str(tmp_path / "r"),
            "--set",
            "train.lr=1e30",
            "--set",
            "train.steps=50",
        ]
    )
    err = capsys.readouterr().err
    assert code == 3 and err.count("\n") == 1 and "loss became" in err
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["status"] == "diverged"


def test_unwritable_run_folder_is_a_clean_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(
        ["solve", str(PROBLEMS / "poisson1d_sin.yaml"), "--quiet", "--out", str(blocker / "run")]
    )
    err = capsys.readouterr().err
    assert code == 4 and "cannot create the run folder" in err and "Traceback" not in err


def test_python_api_accepts_paths_overrides_and_section_changes(tmp_path):
    r = solve(
        PROBLEMS / "poisson1d_sin.yaml",
        write=False,
        overrides=["train.steps=5"],
        train={"optimizer": ["adam"]},
        model={"width": 8},
    )
    assert r.summary["steps"] == 5 and r.summary["parameters"] == (1 * 8 + 8) + (8 * 8 + 8) + (
        8 + 1
    )
    pred = r.predict(np.array([[0.0], [0.5]]))
    assert pred.shape == (2, 1)


@pytest.mark.slow
def test_default_problem_reaches_1e3_in_float32(tmp_path, capsys):
    """The README's quick default: relative L2 below 1e-3 with its shipped settings."""
    code = main(
        ["solve", str(PROBLEMS / "poisson1d_sin.yaml"), "--quiet", "--out", str(tmp_path / "r")]
    )
    assert code == 0
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["rel_l2"] < 1e-3 and s["dtype"] == "float32"
    out = capsys.readouterr().out
    assert "relative L2 error" in out and "parameters" in out


@pytest.mark.slow
def test_heat1d_reaches_1e2(tmp_path):
    """The shipped heat file's network, points and optimisers, in a short form (200 Adam
    steps + 6 Gauss–Newton iterations instead of 1000 + 20: 3.2e-4 with 300 + 8)."""
    schedule = "[{adam: {steps: 200}}, {gauss-newton: {steps: 6, decrease: 0.1}}]"
    r = solve(PROBLEMS / "heat1d.yaml", out=tmp_path / "r",
              overrides=[f"train.optimizer={schedule}"])
    assert r.summary["rel_l2"] < 1e-2


def _short_schedule(path) -> tuple[list[str], int]:
    """``--set`` overrides that keep a file's own optimiser phases (and their settings) but
    cut them to 20 Adam/L-BFGS steps and 1 Gauss–Newton iteration; the expected steps."""
    from mscalepde.problem.validate import load_problem

    phases = load_problem(path).config["train"].get("optimizer")
    if phases is None:
        return ["train.steps=50", "train.lbfgs_steps=2"], 52
    short, total = [], 0
    for entry in phases:
        name, settings = (entry, {}) if isinstance(entry, str) else next(iter(entry.items()))
        n = 1 if name == "gauss-newton" else 20
        short.append({name: {**settings, "steps": n}})
        total += n
    return [f"train.optimizer={json.dumps(short)}"], total


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(PROBLEMS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_problem_runs_a_short_schedule(path, tmp_path, capsys):
    overrides, total = _short_schedule(path)
    text = path.read_text()
    if "shape:" in text and "\nexact:" not in text:  # the FEM truth: a coarse one will do
        overrides.append("reference.fem_tol=1e-3")
    # the classical baseline is the same code for every file (tests/reference, test_shape_solve)
    args = ["solve", str(path), "--quiet", "--no-baseline", "--out", str(tmp_path / "r")]
    for o in overrides:
        args += ["--set", o]
    code = main(args)
    assert code == 0, capsys.readouterr().err
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["status"] == "ok" and s["steps"] == total


@pytest.mark.slow
def test_problem_without_exact_is_measured_against_the_reference(tmp_path, monkeypatch):
    """-u'' = 1, u(0) = u(1) = 0 has no `exact`: the classical reference is the truth."""
    monkeypatch.setenv("MSCALEPDE_CACHE", str(tmp_path / "cache"))
    data = copy.deepcopy(POISSON1D)
    del data["exact"]
    data["source"] = "1"
    data["boundary"] = [{"faces": "all", "type": "dirichlet", "value": 0}]
    r = solve(problem_from_dict(data), out=tmp_path / "r")
    s = r.summary
    assert s["truth"] == "reference" and s["reference"]["estimated_error"] < 1e-10
    x = np.linspace(0, 1, 2001)
    u = x * (1 - x) / 2
    err = np.linalg.norm(r.predict(x[:, None])[:, 0] - u) / np.linalg.norm(u)
    assert abs(s["rel_l2"] - err) < 1e-6 * max(1.0, err)
    assert s["classical_baseline"]["reached"] and s["diagnostics"]["enabled"]
    assert (tmp_path / "r" / "reference.npz").is_file()
    assert (tmp_path / "r" / "figures" / "solution.png").is_file()


def test_public_api_is_reexported():
    for name in mscalepde.__all__:
        assert hasattr(mscalepde, name), name
    assert "mlp" in mscalepde.ARCHITECTURES
    importlib.import_module("mscalepde.run.pipeline")  # the submodule must not shadow the function
    assert callable(mscalepde.solve) and mscalepde.solve.__name__ == "solve"


def test_help_and_check_do_not_import_torch():
    """`mscalepde --help` and `mscalepde check` start without torch (issue 16: start-up
    went from about 2 s to 0.1–0.2 s; benchmarks/README.md)."""
    code = (
        "import sys\n"
        "from mscalepde.cli import main\n"
        f"assert main(['check', {str(PROBLEMS / 'layered2d_ritz.yaml')!r},"
        f" {str(PROBLEMS / 'poisson1d_mscale_demo.yaml')!r}]) == 0\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'scipy.stats', 'matplotlib') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_both_derivative_engines_train_identically_in_float64(poisson1d):
    poisson1d["train"].update(dtype="float64", steps=20, log_every=5)
    runs = {}
    for engine in ("forward", "autograd"):
        poisson1d["train"]["engine"] = engine
        r = solve(problem_from_dict(poisson1d), write=False)
        assert r.summary["engine"] == engine
        runs[engine] = np.array(r.history.column("loss"))
    np.testing.assert_allclose(runs["forward"], runs["autograd"], rtol=1e-9)


def test_compile_auto_weighs_the_saving_against_the_compile_cost(poisson1d):
    """``compile: auto`` on a CPU: 0.3 of the remaining eager time against 30 s; a short run
    (30 steps here) stays eager."""
    from mscalepde.equations import Objective
    from mscalepde.run.model import make_model
    from mscalepde.training.settings import TrainSettings
    from mscalepde.training.trainer import Trainer

    problem = problem_from_dict(poisson1d)
    model = make_model(problem, torch.float32)
    objective = Objective.from_problem(problem, dtype=torch.float32, device=torch.device("cpu"))
    trainer = Trainer(model, objective, TrainSettings.from_mapping(problem.train))
    assert not trainer._auto_compile(0.1, 900, 100)  # saves 30 s: not more than the cost
    assert trainer._auto_compile(0.1, 1000, 10)  # saves 30.3 s
    assert trainer.settings.compile == "auto"
    trainer.run()
    assert not trainer.compiled and trainer.cuda_graph_evaluations == 0
