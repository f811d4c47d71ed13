"""Exact-count samplers on any domain (a box or a constructive shape, :mod:`.shapes`).

- **Interior** (Ω × [t0, t1]): points of the bounding box (× time) from the sampler
  (``uniform`` i.i.d., ``sobol`` one scrambled Sobol' sequence continued batch after batch)
  kept when inside Ω, until exactly n are found. Rejection keeps the uniform law on Ω;
  for Sobol' it keeps the low discrepancy of the accepted subsequence (the indicator of Ω
  has bounded variation on the box, so Koksma–Hlawka still applies with its own constant).
  ``grid``: the bounding box's cell-centre grid, kept inside Ω (about n points, not
  exactly n: a grid is a grid).
- **Boundary part** (∂Ω_name × [t0, t1]): points uniform by surface measure on the part's
  primitives (each chosen with probability ∝ its surface measure), kept where they lie on
  ∂Ω, with the domain's outward normal; exactly n, i.i.d. (``numpy.random.default_rng``),
  whatever the sampler. In 1D without time a part is a finite set of points, returned once
  each.
- **Initial** (Ω × {t0}): interior points of Ω at t0.

All are deterministic given the seed. Boxes take the original tensor samplers of
:mod:`.box`, so box domains draw exactly the points they always drew.
"""

from __future__ import annotations

import warnings

import numpy as np

from mscalepde.geometry.box import AXES, Domain, _scale, sample_face, unit_samples
from mscalepde.geometry.box import sample_initial as _box_initial
from mscalepde.geometry.box import sample_interior as _box_interior
from mscalepde.geometry.shapes import Geometry

#: batches are at least this large (a few calls of ``contains`` per draw)
MIN_BATCH = 1024
#: ... and at most this large (memory: a thin domain takes more batches instead)
MAX_BATCH = 1 << 20
#: give up after this many batches (a shape this thin is refused at load)
MAX_BATCHES = 200


def _volume_share(geometry: Geometry) -> float:
    """|Ω| over its bounding box's volume: the share of box points a rejection keeps."""
    lo, hi = (np.array(b) for b in zip(*geometry.bounds))
    return max(geometry.volume / float(np.prod(hi - lo)), 1e-6)


def _inside(
    geometry: Geometry, n: int, extra: list[tuple[float, float]], sampler: str, seed: int
) -> np.ndarray:
    """Exactly n points of Ω × extra (extra: time interval or nothing)."""
    bounds = list(geometry.bounds) + extra
    d = geometry.dim
    share = _volume_share(geometry)
    if sampler == "grid":
        m = int(np.ceil(n / share))
        if m > MAX_BATCH * 16:
            raise ValueError(
                f"a grid of {n} points in this thin domain needs {m} grid points; use sobol"
            )
        pts = _scale(unit_samples(m, len(bounds), "grid", seed), bounds)
        return pts[geometry.shape.contains(pts[:, :d])]
    batch = min(MAX_BATCH, max(MIN_BATCH, int(1.3 * n / share) + 64))
    if sampler == "sobol":
        from scipy.stats import qmc

        engine = qmc.Sobol(len(bounds), scramble=True, seed=seed)

        def draw() -> np.ndarray:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                return engine.random(batch)
    elif sampler == "uniform":
        rng = np.random.default_rng(seed)

        def draw() -> np.ndarray:
            return rng.random((batch, len(bounds)))
    else:
        raise ValueError(f"unknown sampler '{sampler}'")
    found: list[np.ndarray] = []
    count = 0
    # enough batches for n points at the estimated acceptance, with a wide margin
    batches = MAX_BATCHES + int(3 * n / (share * batch))
    for _ in range(batches):
        pts = _scale(draw(), bounds)
        pts = pts[geometry.shape.contains(pts[:, :d])]
        found.append(pts)
        count += len(pts)
        if count >= n:
            return np.concatenate(found)[:n]
    raise ValueError("the domain is too thin to sample (its measure is nearly zero)")


def sample_interior(domain: Domain, n: int, sampler: str, seed: int) -> np.ndarray:
    """Points in Ω (× [t0, t1]); shape (n, D) (about n for ``grid``)."""
    if domain.geometry is None:
        return _box_interior(domain, n, sampler, seed)
    extra = [domain.time] if domain.time is not None else []
    return _inside(domain.geometry, n, extra, sampler, seed)


def sample_initial(domain: Domain, n: int, sampler: str, seed: int) -> np.ndarray:
    """Points of Ω × {t0}; shape (n, D)."""
    if domain.geometry is None:
        return _box_initial(domain, n, sampler, seed)
    if domain.time is None:
        raise ValueError("the domain has no time interval")
    pts = _inside(domain.geometry, n, [], sampler, seed)
    return np.concatenate([pts, np.full((len(pts), 1), domain.time[0])], axis=1)


def sample_part(
    geometry: Geometry, name: str, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly n points of the boundary part ``name`` (uniform by surface measure) and the
    domain's outward unit normals there."""
    idx = [i for i, (_, nm) in enumerate(geometry.leaves) if nm == name]
    if not idx:
        raise ValueError(f"no boundary part '{name}'")
    if geometry.dim == 1:  # finite set of points
        xs, ns = [], []
        for i in idx:
            p = geometry.leaves[i][0]
            lo, hi = p.bbox()
            x, nrm = np.stack([lo, hi]), np.array([[-1.0], [1.0]])
            keep, nrm = geometry.boundary_filter(i, x, nrm)
            xs.append(x[keep])
            ns.append(nrm[keep])
        return np.concatenate(xs), np.concatenate(ns)
    weights = np.array([geometry.leaves[i][0].surface_measure() for i in idx])
    rate = geometry.part_measure(name) / weights.sum()  # share of draws kept
    if rate <= 0:
        raise ValueError(f"the boundary part '{name}' has zero measure")
    xs, ns = [], []
    count = 0
    for _ in range(MAX_BATCHES):
        m = max(256, int(1.5 * (n - count) / max(rate, 1e-3)) + 32)
        counts = rng.multinomial(m, weights / weights.sum())
        for i, k in zip(idx, counts):
            if k == 0:
                continue
            x, nrm = geometry.leaves[i][0].sample_surface(rng, int(k))
            keep, nrm = geometry.boundary_filter(i, x, nrm)
            xs.append(x[keep])
            ns.append(nrm[keep])
            count += int(keep.sum())
        if count >= n:
            # the batches are concatenated primitive by primitive: shuffle before cutting,
            # so the first n are uniform over the whole part
            x, nrm = np.concatenate(xs), np.concatenate(ns)
            order = rng.permutation(len(x))[:n]
            return x[order], nrm[order]
    raise ValueError(f"the boundary part '{name}' is too small to sample")


def sample_boundary(
    domain: Domain, face: str, n: int, sampler: str, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Points of a box face or a shape's part (× [t0, t1]) and their outward normals."""
    if domain.geometry is None:
        x = sample_face(domain, face, n, sampler, seed)
        return x, np.tile(domain.face_normal(face), (len(x), 1))
    rng = np.random.default_rng(seed)
    x, normal = sample_part(domain.geometry, face, n, rng)
    if domain.time is not None:
        if domain.space_dim == 1:  # the part's points in turn, n in all
            idx = np.arange(n) % len(x)
            x, normal = x[idx], normal[idx]
        t0, t1 = domain.time
        t = t0 + (t1 - t0) * rng.random((len(x), 1))
        x = np.concatenate([x, t], axis=1)
    return x, normal


def inside_mask(domain: Domain, points: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` (spatial columns first) lie in Ω (all, for a box)."""
    if domain.geometry is None:
        return np.ones(len(points), dtype=bool)
    return domain.geometry.shape.contains(points[:, : domain.space_dim])


__all__ = [
    "AXES",
    "inside_mask",
    "sample_boundary",
    "sample_initial",
    "sample_interior",
    "sample_part",
]
