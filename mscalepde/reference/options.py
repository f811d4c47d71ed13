"""The ``reference`` section's schema (torch-free): the classical solver's method, size,
order, element and tolerances (docs/reference.md).
"""

from __future__ import annotations

from typing import Any

from mscalepde.errors import SchemaError
from mscalepde.schema import Option, choice_option, describe, float_option, int_option

FEM_METHOD = "fem"  # the method name of the finite-element reference


def _reference_order(value: Any, key: str) -> int:
    if value not in (2, 4) or isinstance(value, bool):
        raise SchemaError(key, f"expected 2 or 4, got {describe(value)}")
    return int(value)


def _element_order(value: Any, key: str) -> int:
    if value not in (1, 2) or isinstance(value, bool):
        raise SchemaError(key, f"expected 1 or 2 (P1 or P2 elements), got {describe(value)}")
    return int(value)


REFERENCE_OPTIONS: dict[str, Option] = {
    "method": Option(choice_option("auto", "fd", "spectral", "fem"), "auto", "reference solver"),
    "n": Option(int_option(4, 1 << 20), None, "points per axis (default: by method)"),
    "order": Option(_reference_order, 2, "FD order: 2, or 4 by Richardson extrapolation"),
    "nt": Option(int_option(1, 10_000_000), None, "time steps (Chebyshev: nodes - 1)"),
    "time_method": Option(
        choice_option("auto", "cn", "bdf", "chebyshev"), "auto", "heat time integrator"
    ),
    "solver": Option(choice_option("auto", "direct", "cg", "fast"), "auto", "FD linear solver"),
    "tol": Option(
        float_option(positive=True, maximum=1e-2), 1e-10, "spectral resolution / BDF tolerance"
    ),
    "element": Option(_element_order, 2, "FEM (domain.shape): Lagrange order, P1 or P2"),
    "h": Option(float_option(positive=True), None, "FEM: first mesh size (default diam / 16)"),
    "fem_tol": Option(
        float_option(positive=True, maximum=1e-1), 1e-6, "FEM: refine until this error"
    ),
    "fem_seconds": Option(float_option(positive=True), 120.0, "FEM: refinement time budget"),
}
