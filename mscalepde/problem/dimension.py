"""What a problem in more than three space dimensions may ask for.

A d-dimensional problem (d ≤ :data:`~mscalepde.geometry.box.MAX_DIM`, variables x1 … xd)
trains like any other: its points are sampled, never gridded. Everything that needs a
tensor grid of n^d points is out of reach above d = 3 (already 33^5 ≈ 3.9·10^7 nodes
for a coarse 5-D finite-difference solve) and is refused here, at load, in one line:

- the classical references (FD, spectral, FEM) and so a problem without ``exact`` or a
  ``truth`` file, since the error is then measured against such a reference;
- ``model: auto`` and ``model.adapt``, which read the spectrum of a grid solve;
- problems known up to a constant (pure Neumann or periodic), whose compatibility check
  integrates on a tensor quadrature;
- inverse problems (their field diagnostics are grid-based).

The error is measured at quasi-random (Sobol') points instead of a grid
(:mod:`mscalepde.diagnostics.evaluation`), and the spectral diagnostics are those of the
plane of the first two axes through the middle of the others
(:func:`mscalepde.diagnostics.settings.diagnostic_slice`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mscalepde.architectures import is_auto
from mscalepde.errors import SchemaError
from mscalepde.geometry.box import Domain

GRID_DIM = 3
"""The largest spatial dimension in which grid references and diagnostics run."""


def is_high_dimensional(domain: Domain) -> bool:
    """d > 3: sampled only, no grids."""
    return domain.space_dim > GRID_DIM


def no_grid_solver(d: int) -> str:
    """The one line a grid solver answers in d > 3 space dimensions."""
    return f"no classical (grid) solver runs in {d}D: it would need a grid of n^{d} points"


def check_high_dimension(
    domain: Domain,
    model: Mapping[str, Any],
    reference: Mapping[str, Any],
    has_truth: bool,
    gauge: Any,
) -> None:
    """Refuse (one line, naming the key) what a d > 3 problem cannot have; see the module
    docstring for why."""
    if not is_high_dimensional(domain):
        return
    d = domain.space_dim
    why = f"in {d}D (a grid of n^{d} points)"
    if reference.get("method", "auto") != "auto":
        raise SchemaError(
            "reference.method", f"no grid reference runs {why}; give exact or truth instead"
        )
    if not has_truth:
        raise SchemaError(
            "exact", f"is required in {d}D: no grid reference can stand in for it (a grid "
            f"of n^{d} points), or give truth: {{file: ...}}"
        )
    if is_auto(model):
        raise SchemaError(
            "model", f"auto reads the spectrum of a grid solve, which cannot run {why}; "
            "give sigmas or scales"
        )
    if model.get("adapt"):
        raise SchemaError("model.adapt", f"estimates its error on a grid, which cannot run {why}")
    if gauge is not None:
        raise SchemaError(
            "boundary", f"a problem known up to a constant (pure Neumann or periodic) cannot be "
            f"checked for compatibility {why}; fix u on some face (dirichlet or robin)"
        )
