"""CPU threads for training: how many, and how they wait.

**How many.** :func:`thread_count` takes, in order: an explicit request (``--threads N``,
:func:`set_threads`), ``MSCALEPDE_THREADS``, ``OMP_NUM_THREADS``, ``SLURM_CPUS_PER_TASK``, and
otherwise the number of CPUs this process may run on (its CPU affinity, which a batch
scheduler or ``taskset`` narrows; not the machine's core count).

**How they wait.** PyTorch's CPU build runs its parallel loops on GNU OpenMP (``libgomp``).
By default a libgomp worker that has finished its share of a loop *spins* — keeps its core
busy polling — for up to ~300 000 iterations before it sleeps, expecting the next parallel
region soon. On an idle machine that saves a wake-up per region. On a shared one it is
ruinous: a training step is a chain of small parallel regions, every spinning worker takes
a core from the other process, whose threads then delay the region's last chunk, which
keeps the spinners spinning. Measured on 2 cores (benchmarks/README.md §15): a small 2D
solve makes ~59 steps/s alone and 9–15 with a second training job beside it under the
default policy (shorter spin counts, 10⁴–3·10⁵, are as bad: 4–8), 36–41 with
``OMP_WAIT_POLICY=PASSIVE`` (idle workers sleep at once), 36–48 with one thread. Passive
waiting costs ~45 % on an idle machine (33 steps/s), so :func:`configure_threads` chooses it
only when the machine is busy when the run starts (:func:`busy`), unless the user set
``OMP_WAIT_POLICY`` themselves. The policy is read once, when libgomp starts, that is when
torch is imported: the command line calls :func:`configure_threads` before that.

**Oversubscribed.** :func:`load_warning` compares the 1-minute load average of the machine
with the CPUs left free for this run and returns a one-line warning naming the option.
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY = "PASSIVE"
SOURCES = ("MSCALEPDE_THREADS", "OMP_NUM_THREADS", "SLURM_CPUS_PER_TASK")


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_count(requested: int | None = None) -> tuple[int, str]:
    """(threads, where the number came from): see the module docstring."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"expected a number of threads >= 1, got {requested}")
        return int(requested), "--threads"
    for name in SOURCES:
        raw = os.environ.get(name, "").strip()
        if raw:
            try:
                value = int(raw.split(",")[0])  # OMP_NUM_THREADS may list nested levels
            except ValueError:
                continue
            if value >= 1:
                return value, name
    return available_cpus(), "CPU affinity"


def busy(threads: int) -> tuple[bool, float]:
    """(whether the machine's 1-minute load already fills the CPUs this run needs —
    load + threads > CPUs available —, the load)."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return False, 0.0
    return load + threads > available_cpus() + 0.5, load


def configure_threads(requested: int | None = None) -> tuple[int, str]:
    """Set the training threads (torch's intra-op pool) and, before torch starts, OpenMP's
    passive wait policy when the machine is busy (module docstring); returns (threads,
    source). Call it before importing torch for the wait policy to apply."""
    threads, source = thread_count(requested)
    if "OMP_WAIT_POLICY" not in os.environ and busy(threads)[0]:
        os.environ["OMP_WAIT_POLICY"] = WAIT_POLICY
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(threads)
    else:  # torch reads these when it starts
        os.environ["OMP_NUM_THREADS"] = str(threads)
        os.environ.setdefault("MKL_NUM_THREADS", str(threads))
    return threads, source


def load_warning(threads: int) -> str | None:
    """One line when the machine is busy (:func:`busy`), naming the option, else None."""
    full, load = busy(threads)
    if not full:
        return None
    return (
        f"warning: the machine is busy (load {load:.1f} on {available_cpus()} CPUs) and this "
        f"run uses {threads} threads; with --threads 1 (or MSCALEPDE_THREADS=1) it competes less"
    )


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for training from now on (the Python API's
    ``--threads``); the wait policy applies only if torch has not been imported yet."""
    configure_threads(threads)
