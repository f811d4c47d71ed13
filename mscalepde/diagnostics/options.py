"""The ``diagnostics`` section's schema (torch-free): keys, defaults and checks of the
spectral diagnostics (docs/design.md §2).
"""

from __future__ import annotations

from typing import Any

from mscalepde.errors import SchemaError
from mscalepde.geometry.box import MAX_DIM
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


MAX_PROBES = 64


def _probes(value: Any, key: str) -> dict[str, list[float]] | None:
    """Named probe points ``{name: [x, y, ...]}`` (their dimension and place in Ω are
    checked against the domain by the problem validator)."""
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise SchemaError(key, f"expected a mapping of names to points, got {describe(value)}")
    if len(value) > MAX_PROBES:
        raise SchemaError(key, f"{len(value)} probes; at most {MAX_PROBES}")
    out: dict[str, list[float]] = {}
    for name, point in value.items():
        where = join(key, str(name))
        if not isinstance(name, str) or not name.isidentifier():
            raise SchemaError(where, "a probe's name is a word (letters, digits, _)")
        if is_number(point):
            point = [point]
        if not isinstance(point, list) or not 1 <= len(point) <= MAX_DIM:
            raise SchemaError(where, f"expected a point [x, y, ...], got {describe(point)}")
        out[name] = [as_float(v, join(where, i)) for i, v in enumerate(point)]
    return out


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
    "transform": Option(
        choice_option("auto", "fft", "dst", "dct"),
        "auto",
        "spectral transform (auto: the one the truth on the box faces fits)",
    ),
    "window": Option(
        float_option(minimum=0.0, maximum=64.0),
        6.0,
        "width in grid cells of the smooth window of a shape (0: its indicator)",
    ),
    "magnitude": Option(bool_option(), False, "compare |ĥ| and |û| only (original papers)"),
    "floor": Option(float_option(positive=True, maximum=1.0), 1e-3, "peak floor, relative"),
    "times": Option(_times, None, "times of the heat diagnostics (default: final time)"),
    "delta": Option(float_option(positive=True), None, "variance δ of the Gaussian filter"),
    "enabled": Option(bool_option(), True, "record the spectral diagnostics while training"),
    "filter_points": Option(
        int_option(0, 20_000), 2000, "grid points subsampled for the Gaussian filter (0: off)"
    ),
    "bands": Option(_band_edges, None, "edges of the |k| bands (default: octaves)"),
    "probes": Option(
        _probes, None, "named points {name: [x, ...]}: u and the truth there (in time: heat)"
    ),
}
