"""``--nproc N``: start N processes of one run on this machine.

The command line re-runs itself, without ``--nproc``, as N processes through torch's
elastic launcher (what ``torchrun --standalone --nproc_per_node N`` does: a rendezvous on a
free local port, ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_*`` set in each child, no
restarts). When one process fails or is killed, the launcher stops the others, and this
returns one line naming the first failed rank and its exit code instead of the launcher's
report. Several machines (a SLURM allocation) need ``torchrun`` itself (README).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import uuid
from collections.abc import Sequence

from mscalepde.errors import ParallelError


def without_nproc(argv: Sequence[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` / ``--nproc=N``."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def launch(nproc: int, argv: Sequence[str], threads: int) -> int:
    """Run ``python -m mscalepde ARGV`` as ``nproc`` processes with ``threads`` CPU
    threads each; the exit code: 0, the first failed rank's (3 when it was killed by a
    signal), after one line on stderr."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise ParallelError(f"--nproc: expected an integer >= 1, got {nproc}")
    # the launcher's own log lines (its report of a failure included): replaced by ours
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    os.environ["MSCALEPDE_THREADS"] = str(max(1, threads))  # per process (threads.py)
    config = LaunchConfig(
        min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
        rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0,
        monitor_interval=0.1, start_method="spawn",
    )
    try:
        elastic_launch(config, entrypoint=sys.executable)("-m", "mscalepde", *argv)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        code = int(failure.exitcode)
        print(f"error: rank {rank} of {nproc} {_describe(code)}; the other ranks were "
              f"stopped (a run folder keeps its last checkpoint)", file=sys.stderr)
        return code if code > 0 else 3
    except SignalException as exc:
        name = signal.Signals(exc.sigval).name
        print(f"interrupted by {name}: every rank was stopped (a run folder keeps its last "
              f"checkpoint)", file=sys.stderr)
        return 128 + int(exc.sigval)
    return 0
