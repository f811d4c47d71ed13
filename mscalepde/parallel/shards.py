"""The collocation points of one run split into shards, one or more per process.

Every loss term of a residual loss is a mean over its rows,
L_k = (1/N_k) Σ_i r_{k,i}², N_k = Σ_s n_{k,s} over the shards s. Shard s holds n_{k,s} of
the rows and computes its own mean L_{k,s}, so

    L_k = Σ_s (n_{k,s} / N_k) · L_{k,s},

a sum over shards: each process adds the shares of its shards, and one all-reduce
(:meth:`~.comm.Communicator.sum`) adds the processes. Gradients are sums too, so Adam
all-reduces the gradient of the process's share; the Gauss–Newton step all-reduces JᵀJ and
JᵀR (dense) or every product Jᵀ(J v) (matrix-free), :mod:`mscalepde.training.gauss_newton`.
This is data parallelism over points, the one kind that leaves the iterates unchanged:
two processes with one shard each take the same steps as one process holding both shards
(tested to 1e-10 in float64).

**Which points.** Shard s of W draws ⌊n/W⌋ (+1 for the first n mod W shards) of each
term's n points, from its own seed stream: the points of the step whose seed is σ come
from :func:`shard_seed` (σ, s, W), a hash (numpy's ``SeedSequence``) of the three, so no
two shards and no two steps share a stream. A run of one process (W = 1) keeps σ itself:
its points are those of a run without this module.

Deep Ritz energies (whose boundary terms are per-face quadrature sums) and inverse
problems are not sharded; the pipeline refuses them with several processes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from mscalepde.parallel.comm import Communicator

if TYPE_CHECKING:
    from mscalepde.equations import Objective, ResidualBlock


def share(count: int, world: int, rank: int) -> int:
    """Shard ``rank``'s part of ``count`` points: ⌊count/W⌋, one more for the first
    ``count mod W`` shards."""
    return count // world + (1 if rank < count % world else 0)


def shard_seed(seed: int, rank: int, world: int) -> int:
    """The seed of shard ``rank`` of ``world`` for the points of seed ``seed`` (module
    docstring); ``seed`` itself when there is one shard."""
    if world == 1:
        return seed
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, rank, world]).generate_state(1)
    return int(state[0] & 0x7FFFFFFF)


class _Reduced(torch.autograd.Function):
    """The value of the whole sum over processes, the gradient of this process's share:
    forward returns ``total``, backward passes the gradient to ``share`` unchanged."""

    @staticmethod
    def forward(ctx: Any, part: Tensor, total: Tensor) -> Tensor:  # noqa: ARG004
        return total.clone()

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # noqa: ARG004
        return grad, None


class ShardedObjective:
    """The objective of a run whose points are split into ``world`` shards, of which this
    process holds ``shards`` (module docstring).

    ``make(counts, seed)`` builds one shard's objective (an
    :class:`~mscalepde.equations.Objective`) with those point counts and seed. ``terms``
    returns each loss term's value over every shard of every process, with the gradient
    of this process's share (so that the trainer's all-reduce of the gradients gives the
    gradient of the whole loss); ``blocks`` the residual blocks of this process's shards,
    and ``block_groups`` them shard by shard, for the Gauss–Newton step's sums in a fixed
    order."""

    ritz = False

    def __init__(
        self,
        make: Callable[[dict[str, int], int], Objective],
        counts: Mapping[str, int],
        seed: int,
        *,
        shards: Sequence[int],
        world: int,
        comm: Communicator,
    ) -> None:
        if not shards or any(not 0 <= s < world for s in shards):
            raise ValueError(f"shards {list(shards)} are not among 0..{world - 1}")
        self.shards = list(shards)
        self.world = world
        self.comm = comm
        self.seed = seed
        self.parts: list[Objective] = []
        for s in self.shards:
            mine = {k: share(int(v), world, s) for k, v in counts.items()}
            self.parts.append(make(mine, shard_seed(seed, s, world)))
        self._shares = self._term_shares()

    def _term_shares(self) -> list[dict[str, float]]:
        """n_{k,s} / N_k for every shard s of this process and term k (N_k summed over the
        processes)."""
        local = [self._rows(part.blocks()) for part in self.parts]
        names = sorted({k for rows in local for k in rows})
        mine = torch.tensor([float(sum(rows.get(k, 0) for rows in local)) for k in names],
                            dtype=torch.float64)
        totals = dict(zip(names, self.comm.sum(mine).tolist(), strict=True))
        return [{k: rows[k] / totals[k] for k in rows} for rows in local]

    @staticmethod
    def _rows(blocks: Sequence[ResidualBlock]) -> dict[str, int]:
        rows: dict[str, int] = {}
        for b in blocks:
            rows[b.term] = rows.get(b.term, 0) + b.rows
        return rows

    @property
    def dtype(self) -> torch.dtype:
        return self.parts[0].dtype

    def drawn(self, seed: int) -> ShardedObjective:
        """A copy whose shards hold the points of ``seed`` (this one keeps its own)."""
        other = copy.copy(self)
        other.parts = [p.drawn(shard_seed(seed, s, self.world))
                       for s, p in zip(self.shards, self.parts, strict=True)]
        other.seed = seed
        return other

    def resample(self, seed: int) -> None:
        """Draw every shard's points of the step with seed ``seed``."""
        self.seed = seed
        for s, part in zip(self.shards, self.parts, strict=True):
            part.resample(shard_seed(seed, s, self.world))

    def set_dtype(self, dtype: torch.dtype) -> None:
        for part in self.parts:
            part.set_dtype(dtype)

    def blocks(self) -> list[ResidualBlock]:
        return [b for part in self.parts for b in part.blocks()]

    def block_groups(self) -> list[list[ResidualBlock]]:
        return [part.blocks() for part in self.parts]

    def terms(self, model: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
        """L_k = Σ_s (n_{k,s}/N_k) L_{k,s} over every shard of every process (module
        docstring)."""
        local: dict[str, Tensor] = {}
        for part, shares in zip(self.parts, self._shares, strict=True):
            for k, v in part.terms(model).items():
                local[k] = shares[k] * v if k not in local else local[k] + shares[k] * v
        if self.comm.world == 1:
            return local
        names = list(local)  # the terms' order, the same on every rank
        totals = self.comm.sum(torch.stack([local[k].detach() for k in names]))
        return {k: _Reduced.apply(local[k], totals[i]) for i, k in enumerate(names)}
