"""Compiling the loss with ``torch.compile`` (the trainer's ``compile`` setting).

``compile`` (``auto | on | off``) wraps the loss in ``torch.compile`` (the forward-Laplacian
engine makes the loss first-order differentiable, which compiles; double backward does not).
``auto`` times eager steps 2–21 (step 1 carries one-off start-up costs). It compiles only
when the expected saving over the remaining steps exceeds an estimate of the compile cost:

- on a CPU, 0.3 of the eager time saved against 30 s. A compiled step takes 0.5–0.75 of an
  eager one there, and compiles took 4–25 s (``benchmarks/README.md`` §4);
- on CUDA, 0.75 saved against 20 s per compile, two compiles when L-BFGS follows. On an
  H100/H200 a compiled step took 0.09–0.32 of an eager one, and compiles took 4–18 s
  (§6).

Any compile failure falls back to eager with a one-line warning. On CUDA the Adam phase
uses the ``reduce-overhead`` mode (CUDA graphs: one replay per step). L-BFGS's strong-Wolfe
line search evaluates the loss several times per iteration, sometimes without a backward
pass, so L-BFGS is recompiled without CUDA graphs. On an H100, CUDA-graph trees raised
"graph recording observed an input tensor deallocate" in the L-BFGS closure.

A run on several processes (:mod:`mscalepde.parallel`) trains eagerly: its loss holds an
all-reduce, and each rank's own timing must not decide a different compile.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from mscalepde.errors import first_line

Terms = Callable[[], dict[str, Tensor]]


def compile_terms(terms: Terms, cuda_graphs: bool) -> tuple[Terms | None, str]:
    """``(compiled terms, "")``, or ``(None, why)`` when compiling failed. With
    ``cuda_graphs`` (a CUDA model in the Adam phase) the ``reduce-overhead`` mode is used.
    The function is compiled at once (called once), so a failure is caught here."""
    try:
        fn = torch.compile(terms, mode="reduce-overhead" if cuda_graphs else None)
        if cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()
        fn()
    except Exception as exc:  # noqa: BLE001 - any backend failure: fall back
        return None, first_line(exc)
    return fn, ""


def worth_compiling(cuda: bool, step_seconds: float, adam_left: int, lbfgs_left: int) -> bool:
    """Compile when the expected saving beats the compile cost (module docstring)."""
    if cuda:
        saving, cost = 0.75, 20.0 * (2 if lbfgs_left else 1)
    else:
        saving, cost = 0.3, 30.0
    return saving * step_seconds * (adam_left + lbfgs_left) > cost
