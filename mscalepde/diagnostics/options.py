"""The ``diagnostics`` section's schema (torch-free): keys, defaults and checks of the
spectral diagnostics (docs/design.md §2).
"""

from __future__ import annotations

from typing import Any

from mscalepde.errors import SchemaError
from mscalepde.schema import (
    Option,
    as_float,
    bool_option,
    choice_option,
    describe,
    float_option,
    int_option,
    is_number,
    join,
)


def _times(value: Any, key: str) -> list[float] | None:
    if value is None:
        return None
    if is_number(value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise SchemaError(key, f"expected a list of times, got {describe(value)}")
    return [as_float(v, join(key, i)) for i, v in enumerate(value)]


def _band_edges(value: Any, key: str) -> list[float]:
    """Increasing edges e0 < e1 < ... (>= 0) of the |k| bands of the spectral diagnostics."""
    if not isinstance(value, list) or len(value) < 2:
        raise SchemaError(key, f"expected a list of 2 or more band edges, got {describe(value)}")
    edges = [as_float(v, join(key, i), minimum=0.0) for i, v in enumerate(value)]
    if any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
        raise SchemaError(key, f"expected increasing band edges, got {describe(value)}")
    return edges


DIAGNOSTICS_OPTIONS: dict[str, Option] = {
    "every": Option(int_option(0), 100, "steps between evaluations (0: end only)"),
    "grid": Option(int_option(8, 1 << 16), None, "points per axis (default by dimension)"),
    "threshold": Option(float_option(positive=True), 0.05, "Δ_F below which a mode is resolved"),
    "transform": Option(choice_option("fft", "dst", "dct"), "fft", "spectral transform"),
    "magnitude": Option(bool_option(), False, "compare |ĥ| and |û| only (original papers)"),
    "floor": Option(float_option(positive=True, maximum=1.0), 1e-3, "peak floor, relative"),
    "times": Option(_times, None, "times of the heat diagnostics (default: final time)"),
    "delta": Option(float_option(positive=True), None, "variance δ of the Gaussian filter"),
    "enabled": Option(bool_option(), True, "record the spectral diagnostics while training"),
    "filter_points": Option(
        int_option(0, 20_000), 2000, "grid points subsampled for the Gaussian filter (0: off)"
    ),
    "bands": Option(_band_edges, None, "edges of the |k| bands (default: octaves)"),
}
