"""Keep freed memory in the process: no page faults in every training step on Linux/glibc.

A training step allocates and frees the same few dozen activation buffers every time (a
4096 × 100 float32 stream is 1.6 MB). glibc's ``malloc`` serves blocks above its mmap
threshold with fresh ``mmap`` calls and gives the top of the heap back to the kernel above
its trim threshold. So every step can return its buffers to the kernel and fault them in
again, zeroing each 4 KiB page. Measured on the 2-core benchmark machine (compiled
forward-Laplacian step, 4 × 100 MLP, N = 4096; ``benchmarks/README.md`` §4.5): 900–4200
minor page faults and 2–8 ms of kernel time per 20–30 ms step. With the settings below:
0–13 faults and 20.4–22.3 ms instead of 22.4–31.6 ms (1D Poisson); 2D 27.8–28.6 ms
instead of 30–36 ms.

:func:`retain_freed_memory` sets ``M_MMAP_THRESHOLD`` to 32 MiB, glibc's maximum, so
blocks up to 32 MiB come from the heap. It sets ``M_TRIM_THRESHOLD`` to 1 GiB, so freed
heap memory stays mapped for the next step. The process's resident size then stays at its
peak instead of shrinking between steps. Allocations above 32 MiB are still mapped and
unmapped each time.

This is process-wide. The command line calls it before training on a CPU, and so do
``benchmarks/speed.py`` and its DeepXDE worker, for every engine alike. Python users call
it themselves. ``MSCALEPDE_RETAIN_FREED_MEMORY=0`` turns it off. On other C libraries and
systems it does nothing. The same idea is why PyTorch's CPU performance guides recommend
jemalloc or tcmalloc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt thresholds)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
