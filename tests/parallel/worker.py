"""The training runs of the distributed tests, as a script: ``python -m
tests.parallel.worker OUT [single]``.

Launched by ``torch.distributed.run`` with 2 processes it trains on shard ``RANK`` of 2
(gloo); with ``single`` it trains in one process holding both shards, the union of the two
ranks' points. Either way: float64, 4 Adam steps and 3 Gauss–Newton iterations with new
points every step, on a 2D Poisson problem with Dirichlet and Neumann faces, with the
dense step in its dual form (J gathered from the ranks) and in its primal form (JᵀJ summed)
and with the matrix-free one; rank 0 (or the single process) saves, per variant, the
parameters after the Adam phase and at the end, and the loss history, to OUT.
"""

from __future__ import annotations

import sys

import torch

from mscalepde.equations import Objective
from mscalepde.parallel.comm import Communicator, Single, join, leave
from mscalepde.parallel.shards import ShardedObjective
from mscalepde.problem.validate import problem_from_dict
from mscalepde.run.model import make_model
from mscalepde.training.callbacks import Callback
from mscalepde.training.settings import TrainSettings
from mscalepde.training.trainer import Trainer

PROBLEM = {
    "name": "sharded",
    "pde": "poisson",
    "source": "auto",
    "domain": {"box": [[0, 1], [0, 1]]},
    "exact": "sin(pi*x)*sin(2*pi*y) + x*y",
    "boundary": [
        {"faces": ["x-", "x+", "y-"], "type": "dirichlet", "value": "exact"},
        {"faces": ["y+"], "type": "neumann", "value": "exact"},
    ],
    "model": {"arch": "mlp", "width": 12, "depth": 2, "activation": "tanh"},
    "diagnostics": {"enabled": False},
}


def train(variant: str) -> dict:
    solver, form = {"dual": ("dense", "dual"), "primal": ("dense", "primal"),
                    "cg": ("cg", "auto")}[variant]
    return {
        "dtype": "float64", "seed": 3, "compile": "off", "log_every": 1,
        "points": {"interior": 101, "boundary": 41},
        "optimizer": [
            {"adam": {"steps": 4, "lr": 0.01, "resample_every": 1}},
            {"gauss-newton": {"steps": 3, "resample_every": 1, "solver": solver, "form": form,
                              "forcing": 1e-10, "cg_tol": 1e-12, "rank": 20}},
        ],
    }


class AfterAdam(Callback):
    """Keeps the parameters at the end of the Adam phase."""

    def __init__(self) -> None:
        self.params: dict[str, torch.Tensor] = {}

    def on_step(self, trainer: Trainer, step: int) -> None:
        if step == 4:
            self.params = {k: v.clone() for k, v in trainer.model.state_dict().items()}


def run(solver: str, comm: Communicator, shards: list[int]) -> dict:
    """One run with ``solver``; what rank 0 saves."""
    problem = problem_from_dict({**PROBLEM, "train": train(solver)}, origin="worker")
    model = make_model(problem, torch.float64)

    def make(counts: dict, seed: int) -> Objective:
        return Objective.from_problem(problem, dtype=torch.float64, **counts, seed=seed)

    objective = ShardedObjective(make, problem.train["points"], problem.train["seed"],
                                 shards=shards, world=2, comm=comm)
    keep = AfterAdam()
    trainer = Trainer(model, objective, TrainSettings.from_mapping(problem.train),
                      callbacks=[keep], comm=comm)
    trainer.run()
    return {"adam": keep.params, "final": model.state_dict(),
            "loss": [r["loss"] for r in trainer.history.rows]}


def main(out: str, single: bool) -> None:
    torch.set_num_threads(1)
    comm = Single() if single else join("cpu")
    shards = [0, 1] if single else [comm.rank]
    saved = {variant: run(variant, comm, shards) for variant in ("dual", "primal", "cg")}
    if comm.is_root:
        torch.save(saved, out)
    leave(comm)


if __name__ == "__main__":
    main(sys.argv[1], len(sys.argv) > 2 and sys.argv[2] == "single")
