"""Coefficients from data in a problem file (:mod:`mscalepde.expressions.data`).

``diffusivity``, ``source`` and ``reaction`` (a reaction r(x) that does not use u) accept,
besides an expression:

- ``{file: PATH, interpolate: linear | nearest, time: false}``: values at points, a data
  file written like a truth file with the value in the last column (columns x[, y, z][, t],
  value; a header may name them, the last column ``a``, ``f``, ``r`` or ``value``); a
  relative path is relative to the problem file. The points may form a tensor grid or be
  scattered. They must cover the domain's bounding box (no extrapolation beyond 1e-6 of
  its size), and no point may repeat;
- ``{blocks: {x: [edges], y: [edges], values: [[...], ...]}}``: piecewise constant on the
  cells of the edges, values[i][j] on [x_i, x_{i+1}) × [y_j, y_{j+1}); the edges must
  increase and span the domain.

A diffusivity read from data must be positive at every data value (a negative one is
refused with its row).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mscalepde.errors import SchemaError
from mscalepde.expressions.data import INTERPOLATIONS, DataField
from mscalepde.geometry import Domain
from mscalepde.problem.datafile import read_coefficient
from mscalepde.schema import as_bool, as_choice, as_float, as_mapping, as_str, check_unknown, join

COLUMN_NAMES = {"diffusivity": "a", "source": "f", "reaction": "r"}


def is_data(raw: Any) -> bool:
    """A data coefficient's mapping (``file`` or ``blocks``), not an expression."""
    return isinstance(raw, Mapping) and ("file" in raw or "blocks" in raw)


def data_coefficient(
    raw: Any, key: str, domain: Domain, origin: str, positive: bool = False
) -> DataField:
    """The :class:`DataField` of ``raw`` (module docstring); ``positive``: refuse values
    that are not > 0 (a diffusivity)."""
    spec = as_mapping(raw, key)
    what = key.split(".")[0].split("[")[0]
    if "blocks" in spec:
        check_unknown(spec, ("blocks",), key)
        return _blocks(spec["blocks"], join(key, "blocks"), domain, positive)
    check_unknown(spec, ("file", "interpolate", "time", "sha256"), key)
    time = as_bool(spec.get("time", False), join(key, "time"))
    if time and not domain.has_time:
        raise SchemaError(join(key, "time"), "the problem has no time interval")
    columns = domain.variables if time else domain.variables[: domain.space_dim]
    interpolate = as_choice(spec.get("interpolate", "linear"), join(key, "interpolate"),
                            INTERPOLATIONS)
    path = Path(as_str(spec["file"], join(key, "file"))).expanduser()
    if not path.is_absolute() and origin != "<dict>":
        path = Path(origin).resolve().parent / path
    name = COLUMN_NAMES.get(what, "value")
    points, values, sha = read_coefficient(path.resolve(), columns, name, join(key, "file"))
    want = spec.get("sha256")
    if want is not None and as_str(want, join(key, "sha256")) != sha:
        raise SchemaError(join(key, "sha256"), f"{path} has changed since this was written")
    if positive and not (values > 0).all():
        row = int(np.argmax(~(values > 0)))
        raise SchemaError(
            join(key, "file"), f"{path}: the diffusivity must be > 0, but data row {row + 1} "
            f"has {values[row]:.6g}"
        )
    if len(np.unique(points, axis=0)) != len(points):
        raise SchemaError(join(key, "file"), f"{path}: a point repeats (each once, please)")
    if len(points) < 2 ** len(columns) and interpolate == "linear":
        raise SchemaError(join(key, "file"), f"{path}: too few points to interpolate linearly")
    _covers(points.min(0), points.max(0), domain, columns, join(key, "file"), str(path))
    config = {"file": str(path.resolve()), "interpolate": interpolate, "sha256": sha}
    if time:
        config["time"] = True
    return DataField(columns, points=points, values=values, interpolate=interpolate,
                     config=config, label=f"data({path.name})")


def _covers(lo: np.ndarray, hi: np.ndarray, domain: Domain, columns: tuple[str, ...],
            key: str, what: str) -> None:
    for d, v in enumerate(columns):
        a, b = domain.bounds[d]
        tol = 1e-6 * (b - a)
        if lo[d] > a + tol or hi[d] < b - tol:
            raise SchemaError(
                key, f"{what}: the data span {v} in [{lo[d]:.6g}, {hi[d]:.6g}], the domain "
                f"[{a:.6g}, {b:.6g}]: they must cover it"
            )


def _blocks(raw: Any, key: str, domain: Domain, positive: bool) -> DataField:
    spec = as_mapping(raw, key)
    columns = domain.variables[: domain.space_dim]
    check_unknown(spec, (*columns, "values"), key)
    edges = []
    for v in columns:
        if v not in spec:
            raise SchemaError(join(key, v), f"is required: the block edges along {v}")
        e = spec[v]
        if not isinstance(e, list) or len(e) < 2:
            raise SchemaError(join(key, v), "expected at least two increasing edges")
        arr = np.array([as_float(c, join(join(key, v), i)) for i, c in enumerate(e)])
        if not np.all(np.diff(arr) > 0):
            raise SchemaError(join(key, v), "the edges must increase")
        edges.append(arr)
    _covers(np.array([e[0] for e in edges]), np.array([e[-1] for e in edges]), domain,
            columns, key, "the blocks")
    if "values" not in spec:
        raise SchemaError(join(key, "values"), "is required: one value per block")
    try:
        values = np.array(spec["values"], dtype=float)
    except (TypeError, ValueError):
        raise SchemaError(join(key, "values"), "expected nested lists of numbers") from None
    shape = tuple(len(e) - 1 for e in edges)
    if values.shape != shape:
        raise SchemaError(
            join(key, "values"), f"expected {' x '.join(map(str, shape))} values (one per "
            f"block), got the shape {' x '.join(map(str, values.shape)) or 'scalar'}"
        )
    if not np.isfinite(values).all():
        raise SchemaError(join(key, "values"), "every value must be finite")
    if positive and not (values > 0).all():
        raise SchemaError(join(key, "values"), f"the diffusivity must be > 0, got {values.min():g}")
    config = {"blocks": {**{v: e.tolist() for v, e in zip(columns, edges, strict=True)},
                         "values": values.tolist()}}
    return DataField(columns, values=values, edges=edges, config=config,
                     label=f"blocks({' x '.join(map(str, shape))})")
