"""A run on several processes, as the pipeline sets it up (:mod:`mscalepde.parallel`).

Rank r of W holds shard r of every draw of points (:class:`~mscalepde.parallel.shards.
ShardedObjective`); the network, the optimiser and every step are the same on all ranks.
Rank 0 alone writes the run folder, evaluates the error, runs the diagnostics and prints;
the other ranks train and return. What cannot be split yet is refused before any work, in
one line naming the key:

- ``train.loss: ritz``: its boundary terms are per-face quadrature sums (weights |face|/n
  of the shard's own n), not means;
- ``inverse``: the data term and the unknown coefficients' regularisation;
- ``model.adapt``: the network grows during training from rank 0's diagnostics alone.

``compile`` is switched off (the loss holds an all-reduce; :mod:`mscalepde.training.compile`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mscalepde.equations import Objective
from mscalepde.errors import ProblemError
from mscalepde.parallel.comm import Communicator
from mscalepde.parallel.shards import ShardedObjective
from mscalepde.problem.model import Problem
from mscalepde.run.model import make_objective

REFUSED = (
    ("train.loss", lambda p: p.train.get("loss") == "ritz", "the Ritz energy's boundary terms "
     "are per-face sums over each process's own points"),
    ("inverse", lambda p: p.inverse is not None, "an inverse problem's data and unknowns"),
    ("model.adapt", lambda p: bool(p.model.get("adapt")), "a network that grows from rank "
     "0's diagnostics"),
)


def check_parallel(problem: Problem, comm: Communicator) -> None:
    """Refuse what a run on several processes cannot split (module docstring)."""
    if comm.world == 1:
        return
    for key, applies, what in REFUSED:
        if applies(problem):
            raise ProblemError(problem.origin, key, f"a run on {comm.world} processes cannot "
                               f"split {what}; run it on one process")


def objective_factory(
    comm: Communicator, model: torch.nn.Module, dtype: torch.dtype, device: torch.device
) -> Callable[[Problem], Any]:
    """problem → its objective: the plain one on one process, else this rank's shard of
    the points (:class:`ShardedObjective`)."""

    def make(problem: Problem) -> Any:
        if comm.world == 1:
            return make_objective(problem, model, dtype=dtype, device=device)

        def shard(counts: dict[str, int], seed: int) -> Objective:
            return Objective.from_problem(problem, dtype=dtype, device=device, **counts,
                                          seed=seed)

        return ShardedObjective(shard, problem.train["points"], problem.train["seed"],
                                shards=[comm.rank], world=comm.world, comm=comm)

    return make
