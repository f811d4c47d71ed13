"""Keep freed memory in the process: no page faults in every training step on Linux/glibc.

A training step allocates and frees the same few dozen activation buffers every time (a
4096 × 100 float32 stream is 1.6 MB). glibc's ``malloc`` serves blocks above its mmap
threshold with fresh ``mmap`` calls and gives the top of the heap back to the kernel above
its trim threshold. So every step can return its buffers to the kernel and fault them in
again, zeroing each 4 KiB page. Whether it does depends on the history of glibc's
adaptive thresholds, so it differs from process to process.

Measured on the 2-core benchmark machine (``benchmarks/README.md`` §4.6): a compiled
forward-Laplacian step of a 4 × 100 MLP, N = 4096, in six pairs of processes.

- Defaults: 930–2663 minor page faults and 2.1–5.5 ms of kernel time per step.
- With the settings below: 1–2 faults and 0.06–0.10 ms.
- Minimum step times fell from 20.4–21.9 ms to 19.3–20.3 ms, about 6 %.

:func:`retain_freed_memory` sets ``M_MMAP_THRESHOLD`` to 32 MiB, glibc's maximum, so
blocks up to 32 MiB come from the heap. It sets ``M_TRIM_THRESHOLD`` to 1 GiB, so freed
heap memory stays mapped for the next step. The process's resident size then stays at its
peak instead of shrinking between steps. Allocations above 32 MiB are still mapped and
unmapped each time.

This is process-wide. The command line calls it for ``solve`` and ``bench`` on any device
(a CUDA run's host-side buffers benefit too), and so do ``benchmarks/speed.py`` and its
DeepXDE worker, for every engine alike. Python users call
it themselves. ``MSCALEPDE_RETAIN_FREED_MEMORY=0`` turns it off. On other C libraries and
systems it does nothing. The same idea is why PyTorch's CPU performance guides recommend
jemalloc or tcmalloc.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
TRIM_THRESHOLD = 1 << 30
ENV = "MSCALEPDE_RETAIN_FREED_MEMORY"


def retain_freed_memory() -> bool:
    """Apply the glibc settings above; True when they were applied."""
    if os.environ.get(ENV, "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs
    except (OSError, AttributeError):
        return False  # musl's mallopt exists but returns 0: False below
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
