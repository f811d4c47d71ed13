"""Who this process is in a run, and how it sums with the other processes.

A :class:`Communicator` is all that the trainer, the Gauss–Newton step and the sharded
objective (:mod:`.shards`) know of the other processes: a rank r ∈ {0 … W−1}, the world
size W, an elementwise sum over the ranks (all-reduce) and a maximum of a few numbers.
:class:`Single` is the one-process run, where every reduction is the identity, so a
single-process run executes exactly the operations it did before this package existed.
:class:`ProcessGroup` wraps ``torch.distributed``'s default group: gloo on CPU, NCCL on
CUDA (one GPU per process, ``cuda:LOCAL_RANK``).

A collective whose peer has died (a rank killed, a node lost) raises the backend's
``RuntimeError`` here; it is re-raised as one :class:`~mscalepde.errors.ParallelError`
line, so that the surviving ranks exit with code 3 and no traceback, leaving the run
folder's last checkpoint (written whole, by rank 0, :mod:`mscalepde.run.checkpoint`) to
resume from.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import timedelta

import torch
from torch import Tensor

from mscalepde.errors import ParallelError, first_line

#: How long a collective waits for a silent peer before the run fails (``MSCALEPDE_
#: PARALLEL_TIMEOUT`` seconds overrides it). A dead peer's closed socket fails at once;
#: this bounds the wait for a peer that hangs.
TIMEOUT_SECONDS = 600


class Communicator(ABC):
    """The ranks of one run (module docstring)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_root(self) -> bool:
        """Rank 0: the one process that writes the run folder and prints."""
        return self.rank == 0

    @abstractmethod
    def sum(self, t: Tensor) -> Tensor:
        """Σ over the ranks of ``t``, in place; returns ``t``."""

    @abstractmethod
    def max(self, values: Sequence[float]) -> list[float]:
        """The elementwise maximum of ``values`` over the ranks."""

    @abstractmethod
    def broadcast(self, tensors: Iterable[Tensor]) -> None:
        """Overwrite ``tensors`` with rank 0's, in place."""

    @abstractmethod
    def gather_rows(self, t: Tensor) -> Tensor:
        """Every rank's ``t`` (rows × …; the row counts may differ) stacked in rank order,
        on every rank."""

    def sum_float(self, value: float) -> float:
        """Σ over the ranks of a number (in float64)."""
        if self.world == 1:
            return value
        return float(self.sum(torch.tensor([value], dtype=torch.float64))[0])

    def sum_gradients(self, params: Sequence[Tensor]) -> None:
        """Replace every parameter's ``.grad`` by its sum over the ranks (one collective on
        the gradients flattened into one vector; a missing gradient counts as zero)."""
        if self.world == 1 or not params:
            return
        flat = torch.cat([
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params
        ])
        self.sum(flat)
        start = 0
        for p in params:
            part = flat[start : start + p.numel()].view_as(p)
            start += p.numel()
            if p.grad is None:
                p.grad = part.clone()
            else:
                p.grad.copy_(part)


class Single(Communicator):
    """A run of one process: every reduction is the identity."""

    def sum(self, t: Tensor) -> Tensor:
        return t

    def max(self, values: Sequence[float]) -> list[float]:
        return [float(v) for v in values]

    def broadcast(self, tensors: Iterable[Tensor]) -> None:
        return None

    def gather_rows(self, t: Tensor) -> Tensor:
        return t


class ProcessGroup(Communicator):
    """``torch.distributed``'s default process group (module docstring). ``device``: where
    the reductions run (the GPU of this rank for NCCL, the CPU for gloo)."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank = dist.get_rank()
        self.world = dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.device = device

    def _collective(self, what: str, call: object) -> None:
        try:
            call()  # type: ignore[operator]
        except RuntimeError as exc:  # a peer died, or the group timed out
            raise ParallelError(
                f"rank {self.rank} of {self.world}: {what} failed, another rank has stopped "
                f"or died ({first_line(exc, 160)}); the run folder keeps its last checkpoint"
            ) from None

    def sum(self, t: Tensor) -> Tensor:
        work = t if t.device == self.device else t.to(self.device)
        self._collective("a sum over the ranks", lambda: self._dist.all_reduce(work))
        if work is not t:
            t.copy_(work)
        return t

    def max(self, values: Sequence[float]) -> list[float]:
        t = torch.tensor(list(values), dtype=torch.float64, device=self.device)
        op = self._dist.ReduceOp.MAX
        self._collective("a maximum over the ranks", lambda: self._dist.all_reduce(t, op=op))
        return [float(v) for v in t.cpu()]

    def broadcast(self, tensors: Iterable[Tensor]) -> None:
        for t in tensors:
            work = t.detach() if t.device == self.device else t.detach().to(self.device)
            self._collective("a broadcast from rank 0",
                             lambda w=work: self._dist.broadcast(w, src=0))
            if work.data_ptr() != t.data_ptr():
                with torch.no_grad():
                    t.copy_(work)


    def gather_rows(self, t: Tensor) -> Tensor:
        counts = [int(c) for c in self.max([float(t.shape[0]) if r == self.rank else 0.0
                                            for r in range(self.world)])]
        pad = t.new_zeros((max(counts), *t.shape[1:]), device=self.device)
        pad[: t.shape[0]] = t
        parts = [torch.empty_like(pad) for _ in range(self.world)]
        self._collective("a gather over the ranks",
                         lambda: self._dist.all_gather(parts, pad))
        return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).to(t.device)


def launched_world() -> int:
    """The number of processes the launcher started (``WORLD_SIZE``; 1 without one)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def join(device_kind: str) -> Communicator:
    """This process's communicator: :class:`Single` unless a launcher (``torchrun``,
    ``--nproc``, SLURM through ``torchrun``) started several; then join their group with
    gloo (``device_kind`` ``cpu``) or NCCL (``cuda``), the rendezvous read from the
    environment (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``)."""
    if launched_world() == 1:
        return Single()
    import torch.distributed as dist

    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ParallelError(f"WORLD_SIZE is {launched_world()} but {', '.join(missing)} "
                            f"is not set; start the run with torchrun or --nproc")
    device = torch.device("cpu")
    if device_kind == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    try:
        seconds = float(os.environ.get("MSCALEPDE_PARALLEL_TIMEOUT", TIMEOUT_SECONDS))
    except ValueError:
        seconds = TIMEOUT_SECONDS
    if not dist.is_initialized():
        try:
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                    timeout=timedelta(seconds=seconds))
        except (RuntimeError, ValueError) as exc:
            raise ParallelError(f"cannot join the other ranks: {first_line(exc, 200)}") from None
    return ProcessGroup(device)


def leave(comm: Communicator, *, synchronise: bool = True) -> None:
    """Leave the process group (after the run; nothing for :class:`Single`).

    With ``synchronise`` (a rank that ended normally) a barrier first: a rank whose last
    collective has returned may destroy its gloo sockets while a peer is still receiving
    that collective's data, and the peer then dies in C++ (``terminate called without an
    active exception``, SIGABRT; seen in 2 of ~40 two-process runs on a loaded machine,
    docs/parallel.md). A barrier that fails (a peer already gone) is not an error here."""
    if isinstance(comm, ProcessGroup) and comm._dist.is_initialized():
        if synchronise:
            try:
                comm._dist.barrier()
            except Exception:  # noqa: BLE001 - a dead or departed peer: nothing to wait for
                pass
        comm._dist.destroy_process_group()
