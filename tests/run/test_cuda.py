"""The CUDA path: derivatives, training, compiled training (CUDA graphs) and the CLI on a GPU.

Skipped where torch sees no CUDA device (CI has none); run on a GPU machine with
``pytest tests/test_cuda.py`` (``benchmarks/gpu_check.sh`` does, and records the card).
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from mscalepde import load_run, problem_from_dict, solve
from mscalepde.architectures import ARCHITECTURES
from mscalepde.cli import main
from mscalepde.equations import Objective
from mscalepde.run.model import make_model
from mscalepde.training.settings import TrainSettings
from mscalepde.training.trainer import Trainer
from tests.helpers import POISSON1D, PROBLEMS, compare_engines, small_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

CUDA = torch.device("cuda")


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_forward_engine_on_cuda_matches_cpu_autograd(arch):
    """float64: the jet on the GPU against autograd on the CPU, parameter gradients too."""
    for space_dim, has_time in [(2, False), (1, True), (3, False)]:
        if arch == "stmff" and not has_time:
            continue
        compare_engines(small_model(arch, space_dim, has_time), space_dim, has_time, on=CUDA, n=300)


def _config(**train) -> dict:
    cfg = copy.deepcopy(POISSON1D)
    cfg["train"].update(train)
    return cfg


def test_float64_training_on_cuda_follows_the_cpu_run(tmp_path):
    """Same seed, float64: the GPU run's losses equal the CPU run's up to rounding."""
    runs = {}
    for device in ("cpu", "cuda"):
        cfg = _config(dtype="float64", steps=60, lbfgs_steps=5, device=device)
        runs[device] = solve(problem_from_dict(cfg), out=tmp_path / device)
    assert runs["cuda"].summary["device"].startswith("cuda")
    assert next(runs["cuda"].model.parameters()).is_cuda
    a = np.array(runs["cpu"].history.column("loss"))
    b = np.array(runs["cuda"].history.column("loss"))
    np.testing.assert_allclose(b, a, rtol=1e-7)
    # the checkpoint is saved from the GPU and loads on the CPU
    model = load_run(tmp_path / "cuda").model
    assert not next(model.parameters()).is_cuda
    x = torch.linspace(0, 1, 33, dtype=torch.float64).reshape(-1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), runs["cuda"].model(x.to(CUDA)).cpu())


def test_compiled_training_with_cuda_graphs_matches_eager():
    """``compile: on`` on CUDA uses ``reduce-overhead``; Adam and the L-BFGS closure (several
    evaluations per iteration) give the eager run's losses, with no fallback note."""
    losses = {}
    for mode in ("off", "on"):
        problem = problem_from_dict(_config(steps=40, lbfgs_steps=6, log_every=5))
        torch.manual_seed(0)
        model = make_model(problem, torch.float32).to(CUDA)
        objective = Objective.from_problem(problem, dtype=torch.float32, device=CUDA)
        settings = TrainSettings.from_mapping({**problem.train, "compile": mode})
        trainer = Trainer(model, objective, settings)
        history = trainer.run()
        assert trainer.compiled == (mode == "on"), trainer.notes
        # every Adam step replayed the CUDA graphs; L-BFGS did not use them
        assert trainer.cuda_graph_evaluations == (40 if mode == "on" else 0)
        assert not [n for n in trainer.notes if "compile failed" in n]
        losses[mode] = np.array(history.column("loss"))
    np.testing.assert_allclose(losses["on"], losses["off"], rtol=2e-3, atol=1e-7)
    assert losses["on"][-1] < losses["on"][0]


def test_compiled_lbfgs_alone_on_cuda():
    """``steps: 0`` with L-BFGS: compiled once, without CUDA graphs, and it trains."""
    problem = problem_from_dict(_config(steps=0, lbfgs_steps=8, log_every=4))
    model = make_model(problem, torch.float32).to(CUDA)
    objective = Objective.from_problem(problem, dtype=torch.float32, device=CUDA)
    trainer = Trainer(
        model, objective, TrainSettings.from_mapping({**problem.train, "compile": "on"})
    )
    loss = np.array(trainer.run().column("loss"))
    assert trainer.compiled and not trainer.notes
    assert trainer.cuda_graph_evaluations == 0  # L-BFGS never uses CUDA graphs
    assert loss[-1] < loss[0]


def test_cli_solves_the_default_problem_on_cuda(tmp_path, capsys):
    code = main(
        [
            "solve",
            str(PROBLEMS / "poisson1d_sin.yaml"),
            "--device",
            "cuda",
            "--quiet",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    s = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert s["device"].startswith("cuda") and s["status"] == "ok"
    assert s["rel_l2"] < 1e-3
