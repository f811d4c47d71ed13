"""Shapes from and to YAML: ``domain.shape`` parsed into a checked CSG tree (primitives,
set operations, names), one line per defect naming the key, and written back for
``config.yaml``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from mscalepde.errors import SchemaError
from mscalepde.geometry.box import MAX_DIM
from mscalepde.geometry.shapes import (
    EMPTY_TOLERANCE,
    OPERATION_CLASSES,
    OPERATIONS,
    PRIMITIVES,
    UNNAMED,
    Box,
    Ellipsoid,
    Geometry,
    Polygon,
    Shape,
)
from mscalepde.schema import (
    as_float_list,
    as_mapping,
    check_coordinate,
    check_length,
    describe,
    is_number,
    join,
)

#: Limits of a shape (README "Errors"): they keep ``mscalepde check`` under two seconds.
MAX_PRIMITIVES = 32
MAX_VERTICES = 10_000


def _point(value: Any, key: str, dim: int | None = None) -> tuple[float, ...]:
    if is_number(value):
        value = [value]
    vals = as_float_list(value, key)
    if dim is not None and len(vals) != dim:
        raise SchemaError(key, f"expected {dim} coordinates, got {len(vals)}")
    for i, v in enumerate(vals):
        check_coordinate(v, join(key, i) if len(vals) > 1 else key)
    return tuple(vals)


def _box(raw: Any, key: str) -> Box:
    if isinstance(raw, (list, tuple)) and len(raw) == 2 and all(is_number(v) for v in raw):
        raw = [raw]
    if not isinstance(raw, (list, tuple)) or not 1 <= len(raw) <= MAX_DIM:
        raise SchemaError(
            key, f"expected 1 to {MAX_DIM} intervals [[lo, hi], ...], got {describe(raw)}"
        )
    bounds = []
    for i, b in enumerate(raw):
        if (
            not isinstance(b, (list, tuple))
            or len(b) != 2
            or not all(is_number(v) and math.isfinite(float(v)) for v in b)
            or not float(b[0]) < float(b[1])
        ):
            raise SchemaError(join(key, i), f"expected [lo, hi] with lo < hi, got {describe(b)}")
        lo = check_coordinate(float(b[0]), join(key, i))
        hi = check_coordinate(float(b[1]), join(key, i))
        check_length(hi - lo, max(abs(lo), abs(hi)), join(key, i), "side")
        bounds.append((lo, hi))
    return Box(tuple(bounds))


def _ellipsoid(kind: str, raw: Any, key: str) -> Ellipsoid:
    spec = as_mapping(raw, key)
    radius_key = "radius" if kind == "ball" else "radii"
    for k in spec:
        if k not in ("center", radius_key):
            raise SchemaError(join(key, k), f"unknown key (a {kind} takes center and {radius_key})")
    if "center" not in spec:
        raise SchemaError(join(key, "center"), "is required")
    if radius_key not in spec:
        raise SchemaError(join(key, radius_key), "is required")
    center = _point(spec["center"], join(key, "center"))
    if kind == "ball":
        r = spec["radius"]
        if not is_number(r) or not float(r) > 0 or not math.isfinite(float(r)):
            raise SchemaError(join(key, "radius"), f"expected a number > 0, got {describe(r)}")
        radii = (float(r),) * len(center)
    else:
        radii = _point(spec["radii"], join(key, "radii"), len(center))
        if not all(r > 0 and math.isfinite(r) for r in radii):
            raise SchemaError(join(key, "radii"), f"expected numbers > 0, got {list(radii)}")
        want = {"ellipse": 2, "ellipsoid": 3}[kind]
        if len(center) != want:
            raise SchemaError(
                join(key, "center"),
                f"an {kind} is {want}D (use {'ellipsoid' if want == 2 else 'ellipse'} for "
                f"{len(center)}D), got {len(center)} coordinates",
            )
    if not 1 <= len(center) <= MAX_DIM:
        raise SchemaError(
            join(key, "center"), f"expected 1 to {MAX_DIM} coordinates, got {len(center)}"
        )
    scale = max(abs(c) for c in center)
    for r in set(radii):
        check_length(r, scale, join(key, radius_key), "radius")
    return Ellipsoid(center, radii)


def _crossing_pairs(v: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of non-adjacent closed edges of the polygon ``v`` that touch
    (proper crossings, touching endpoints, collinear overlaps).

    Sweep and prune: the edges sorted by the left end of their x-extent; edge i is tested
    only against the edges that start (in x) before it ends, and those candidate pairs are
    tested in one vectorised pass. The cost is O(m log m + k) for m edges and k pairs whose
    x-extents overlap (k ~ m for the polygons of a problem file; at most MAX_VERTICES²)."""
    m = len(v)
    a, b = v, np.roll(v, -1, axis=0)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    order = np.argsort(lo[:, 0], kind="stable")
    starts = lo[order, 0]
    ends = np.searchsorted(starts, hi[order, 0], side="right")
    counts = np.maximum(ends - np.arange(m) - 1, 0)  # candidates after each sorted edge
    first = np.repeat(np.arange(m), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    i, j = order[first], order[first + 1 + offsets]
    i, j = np.minimum(i, j), np.maximum(i, j)
    keep = (j != i + 1) & ~((i == 0) & (j == m - 1))  # adjacent edges: checked apart
    keep &= (lo[i, 1] <= hi[j, 1]) & (lo[j, 1] <= hi[i, 1])  # y-extents overlap too
    i, j = i[keep], j[keep]
    p1, p2, q1, q2 = a[i], b[i], a[j], b[j]

    def orient(u: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
        return (w[:, 0] - u[:, 0]) * (c[:, 1] - u[:, 1]) - (w[:, 1] - u[:, 1]) * (c[:, 0] - u[:, 0])

    def on(u: np.ndarray, w: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.all(
            (np.minimum(u, w) - 1e-15 <= c) & (c <= np.maximum(u, w) + 1e-15), axis=1
        )

    o1, o2, o3, o4 = orient(p1, p2, q1), orient(p1, p2, q2), orient(q1, q2, p1), orient(q1, q2, p2)
    hit = ((o1 * o2 < 0) & (o3 * o4 < 0)) | (
        ((o1 == 0) & on(p1, p2, q1))
        | ((o2 == 0) & on(p1, p2, q2))
        | ((o3 == 0) & on(q1, q2, p1))
        | ((o4 == 0) & on(q1, q2, p2))
    )
    pairs = sorted(zip(i[hit].tolist(), j[hit].tolist(), strict=True))
    return pairs


def _polygon(raw: Any, key: str) -> Polygon:
    if isinstance(raw, Mapping):
        spec = as_mapping(raw, key)
        for k in spec:
            if k != "vertices":
                raise SchemaError(join(key, k), "unknown key (a polygon takes vertices)")
        raw, key = spec.get("vertices"), join(key, "vertices")
    if not isinstance(raw, (list, tuple)) or len(raw) < 3:
        raise SchemaError(
            key, f"expected a list of at least 3 vertices [x, y], got {describe(raw)}"
        )
    if len(raw) > MAX_VERTICES:
        raise SchemaError(key, f"at most {MAX_VERTICES} vertices, got {len(raw)}")
    verts = []
    for i, v in enumerate(raw):
        if not isinstance(v, (list, tuple)) or not all(
            is_number(c) and math.isfinite(float(c)) for c in v
        ):
            raise SchemaError(
                join(key, i), f"expected a vertex [x, y] of finite numbers, got {describe(v)}"
            )
        if len(v) != 2:
            raise SchemaError(
                join(key, i), f"a polygon is 2D: expected a vertex [x, y], got {len(v)} coordinates"
            )
        verts.append((check_coordinate(float(v[0]), join(key, i)),
                      check_coordinate(float(v[1]), join(key, i))))
    if verts[0] == verts[-1]:
        verts.pop()  # a closed list repeats the first vertex
    v = np.array(verts)
    m = len(v)
    if m < 3:
        raise SchemaError(key, "expected at least 3 distinct vertices")
    for i in range(m):
        if np.all(v[i] == v[(i + 1) % m]):
            raise SchemaError(join(key, (i + 1) % m), f"repeats vertex {i} ({v[i].tolist()})")
    for i in range(m):  # adjacent edges meet only at their shared vertex (no fold back)
        j = (i + 1) % m
        d1, d2 = v[i] - v[j], v[(j + 1) % m] - v[j]
        cross = d1[0] * d2[1] - d1[1] * d2[0]
        if np.all(d1 == 0) or np.all(d2 == 0) or (cross == 0 and d1 @ d2 > 0):
            first, second = min(i, j), max(i, j)
            raise SchemaError(key, f"the polygon is not simple: edges {first} and {second} overlap")
    crossing = _crossing_pairs(v)
    if crossing:
        i, j = crossing[0]
        a1, a2, b1, b2 = v[i], v[(i + 1) % m], v[j], v[(j + 1) % m]
        raise SchemaError(
            key,
            f"the polygon is self-intersecting: edge {i} ({a1.tolist()} to {a2.tolist()}) "
            f"crosses edge {j} ({b1.tolist()} to {b2.tolist()})",
        )
    poly = Polygon(tuple(verts))
    extent = float(np.ptp(v, axis=0).max())
    if poly.volume() <= 1e-10 * extent**2:
        raise SchemaError(key, "the polygon has zero area")
    if poly.volume() / poly.surface_measure() <= 1e-6 * extent:  # mean width ~ 2·area/length
        raise SchemaError(key, "the polygon is too thin (a sliver: its width is ~0)")
    return poly


def parse_shape(raw: Any, key: str = "domain.shape") -> Shape:
    """A shape tree from its YAML form (see the module docstring); one-line
    :class:`SchemaError` naming the key on any defect, dimensions checked throughout."""
    shape = _parse(raw, key)
    count = sum(1 for _ in shape.walk())
    if count > MAX_PRIMITIVES:
        raise SchemaError(key, f"at most {MAX_PRIMITIVES} primitives in a shape, got {count}")
    _check_dims(shape, key, shape.dim)
    return shape


def _parse(raw: Any, key: str) -> Shape:
    spec = as_mapping(raw, key)
    kinds = [k for k in spec if k in PRIMITIVES + OPERATIONS]
    unknown = [k for k in spec if k not in PRIMITIVES + OPERATIONS + ("name",)]
    if unknown:
        raise SchemaError(
            join(key, unknown[0]),
            f"unknown key (a shape is one of {', '.join(PRIMITIVES + OPERATIONS)}, plus name)",
        )
    if len(kinds) != 1:
        raise SchemaError(
            key,
            f"expected exactly one of {', '.join(PRIMITIVES + OPERATIONS)}, got "
            + (", ".join(kinds) if kinds else "none"),
        )
    kind = kinds[0]
    name = spec.get("name")
    if name is not None:
        if (
            not isinstance(name, str)
            or not name.replace("_", "a").replace("-", "a").isalnum()
            or not (name[0].isalpha() or name[0] == "_")
        ):
            raise SchemaError(
                join(key, "name"),
                f"expected a name of letters, digits, _ and - (starting with a letter or _), got "
                f"{describe(name)}",
            )
        if name in ("all", UNNAMED) or name[0] in "xyz" and name[1:] in ("-", "+"):
            raise SchemaError(join(key, "name"), f"'{name}' is reserved; choose another name")
    sub = join(key, kind)
    node: Shape
    if kind == "box":
        node = _box(spec[kind], sub)
    elif kind in ("ball", "ellipse", "ellipsoid"):
        node = _ellipsoid(kind, spec[kind], sub)
    elif kind == "polygon":
        node = _polygon(spec[kind], sub)
    else:
        items = spec[kind]
        least = 2 if kind == "difference" else 1
        if not isinstance(items, list) or len(items) < least:
            raise SchemaError(
                sub, f"expected a list of at least {least} shapes, got {describe(items)}"
            )
        node = OPERATION_CLASSES[kind](tuple(_parse(s, join(sub, i)) for i, s in enumerate(items)))
    return dataclasses.replace(node, name=name)  # type: ignore[type-var]


def _check_dims(shape: Shape, key: str, dim: int) -> None:
    if shape.dim != dim:
        what = "a polygon is 2D" if isinstance(shape, Polygon) else f"this shape is {shape.dim}D"
        raise SchemaError(key, f"{what}, but the domain is {dim}D (from its first shape)")
    kind = type(shape).__name__.lower()
    for i, c in enumerate(shape.children()):
        _check_dims(c, join(join(key, kind), i), dim)


def geometry_from_yaml(raw: Any, key: str = "domain.shape") -> Geometry:
    """Parse and check a shape: refuse an empty domain or one below
    :data:`EMPTY_TOLERANCE` of its bounding box."""
    geo = Geometry(parse_shape(raw, key))
    lo, hi = (np.array(b) for b in zip(*geo.bounds))
    vol = geo.volume
    if np.any(hi <= lo) or vol <= EMPTY_TOLERANCE * float(np.prod(np.maximum(hi - lo, 0))):
        raise SchemaError(
            key,
            "the domain is empty (its measure is zero, or below 1e-4 of its bounding box: "
            "too thin to sample)",
        )
    if not geo.parts:
        raise SchemaError(key, "the domain has no boundary")
    return geo


def shape_to_yaml(shape: Shape) -> dict[str, Any]:
    """The YAML form of a shape (the inverse of :func:`parse_shape`)."""
    out: dict[str, Any]
    if isinstance(shape, Box):
        out = {"box": [list(b) for b in shape.bounds]}
    elif isinstance(shape, Ellipsoid):
        if len(set(shape.radii)) == 1:
            out = {"ball": {"center": list(shape.center), "radius": shape.radii[0]}}
        else:
            kind = "ellipse" if shape.dim == 2 else "ellipsoid"
            out = {kind: {"center": list(shape.center), "radii": list(shape.radii)}}
    elif isinstance(shape, Polygon):
        out = {"polygon": [list(v) for v in shape.vertices]}
    else:
        kind = type(shape).__name__.lower()
        out = {kind: [shape_to_yaml(c) for c in shape.children()]}
    if shape.name is not None:
        out["name"] = shape.name
    return out
