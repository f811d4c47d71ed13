"""Space–time domains, box faces and point samplers.

A domain is a box (or, with ``geometry``, a constructive shape inside its bounding box:
:mod:`.shapes`; then ``box`` is that bounding box and ``faces`` are the shape's named
boundary parts) Ω = [a_1, b_1] × … × [a_d, b_d] (d = 1 … ``MAX_DIM``; the axes are named
x, y, z for d ≤ 3 and x1, …, xd above: :func:`axis_names`),
optionally times a time interval [t0, t1] for evolution problems. Points are rows of an
array with the spatial coordinates first and t last (the network's input layout).

Faces are named ``x-``, ``x+``, ``y-``, … (``x1-``, ``x1+``, … for d > 3); the face ``x-``
is {x = a_1} (times the time interval for heat) with outward unit normal −e_x, ``x+`` is
{x = b_1} with normal +e_x.

Samplers draw from the unit cube [0, 1]^k and are mapped affinely:
- ``uniform``: i.i.d. uniform points (numpy ``default_rng(seed)``);
- ``sobol``: a scrambled Sobol' sequence (``scipy.stats.qmc.Sobol``), low discrepancy;
- ``grid``: a tensor-product grid of cell centres with m = ⌈n^{1/k}⌉ points per axis
  (so it returns m^k ≥ n points).
All samplers are deterministic given the seed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mscalepde.geometry.shapes import Geometry

AXES = ("x", "y", "z")
MAX_DIM = 10
"""The largest spatial dimension a problem may have. Above 3, everything that needs a
tensor grid of n^d points (references, spectral diagnostics, grid exports) is refused."""
SAMPLERS = ("uniform", "sobol", "grid")


def axis_names(space_dim: int) -> tuple[str, ...]:
    """Spatial variable names in column order: ``x, y, z`` for d ≤ 3, ``x1 … xd`` above
    (PINNacle's and most papers' convention for high-dimensional problems)."""
    if space_dim <= len(AXES):
        return AXES[:space_dim]
    return tuple(f"x{i + 1}" for i in range(space_dim))


def face_names(space_dim: int) -> list[str]:
    """``['x-', 'x+', ...]`` for the axes of a ``space_dim``-dimensional box."""
    return [f"{a}{s}" for a in axis_names(space_dim) for s in "-+"]


def face_axis(face: str, space_dim: int) -> int:
    """The axis index of a box face name (``'y+'`` → 1; ``'x4-'`` → 3 when d > 3)."""
    return axis_names(space_dim).index(face[:-1])


def opposite_face(face: str) -> str:
    """The face across the box from ``face`` (``'x-'`` ↔ ``'x+'``)."""
    return face[:-1] + ("+" if face.endswith("-") else "-")


@dataclass(frozen=True)
class Domain:
    """A spatial box (or a shape with that bounding box), optionally with a time interval."""

    box: tuple[tuple[float, float], ...]
    time: tuple[float, float] | None = None
    geometry: Geometry | None = None

    @property
    def is_box(self) -> bool:
        return self.geometry is None

    @property
    def space_dim(self) -> int:
        return len(self.box)

    @property
    def has_time(self) -> bool:
        return self.time is not None

    @property
    def axes(self) -> tuple[str, ...]:
        return axis_names(self.space_dim)

    @property
    def variables(self) -> tuple[str, ...]:
        """Input variable names in column order: spatial axes, then ``t``."""
        return self.axes + (("t",) if self.has_time else ())

    @property
    def bounds(self) -> list[tuple[float, float]]:
        """Interval of every input column (spatial axes, then time)."""
        return list(self.box) + ([self.time] if self.time is not None else [])

    @property
    def faces(self) -> list[str]:
        """Box faces ``x-``, ``x+``, … or the shape's named boundary parts."""
        if self.geometry is not None:
            return list(self.geometry.parts)
        return face_names(self.space_dim)

    def face_axis(self, face: str) -> int:
        if self.geometry is not None:
            raise ValueError(f"'{face}' is a part of a shape, not a box face")
        return face_axis(face, self.space_dim)

    def face_normal(self, face: str) -> np.ndarray:
        """Outward unit normal of a face (a vector of length ``space_dim``)."""
        n = np.zeros(self.space_dim)
        n[self.face_axis(face)] = -1.0 if face.endswith("-") else 1.0
        return n

    @property
    def time_span(self) -> float:
        return 1.0 if self.time is None else self.time[1] - self.time[0]

    @property
    def volume(self) -> float:
        """|Ω| times the time span (the interior quadrature's measure)."""
        if self.geometry is not None:
            return self.geometry.volume * self.time_span
        return math.prod(hi - lo for lo, hi in self.bounds)

    def face_measure(self, face: str) -> float:
        """(d−1)-dimensional measure of the face (or part) times the time span (1 for a
        point)."""
        if self.geometry is not None:
            return self.geometry.part_measure(face) * self.time_span
        axis = self.face_axis(face)
        m = 1.0
        for i, (lo, hi) in enumerate(self.bounds):
            if i != axis:
                m *= hi - lo
        return m


def unit_samples(n: int, k: int, sampler: str, seed: int) -> np.ndarray:
    """Points in [0, 1]^k from ``sampler`` (see module docstring); shape (n', k)."""
    if k == 0:
        return np.zeros((1, 0))
    if sampler == "uniform":
        return np.random.default_rng(seed).random((n, k))
    if sampler == "sobol":
        with warnings.catch_warnings():
            # Sobol' balance properties need n = 2^m; other n are still valid points.
            warnings.simplefilter("ignore", UserWarning)
            from scipy.stats import qmc  # 0.5 s to import: only when sampling

            return qmc.Sobol(k, scramble=True, seed=seed).random(n)
    if sampler == "grid":
        m = max(1, math.ceil(round(n ** (1.0 / k), 9)))
        ticks = (np.arange(m) + 0.5) / m
        mesh = np.meshgrid(*([ticks] * k), indexing="ij")
        return np.stack([g.ravel() for g in mesh], axis=1)
    raise ValueError(f"unknown sampler '{sampler}' (choose from {', '.join(SAMPLERS)})")


def _scale(unit: np.ndarray, bounds: list[tuple[float, float]]) -> np.ndarray:
    lo = np.array([b[0] for b in bounds], dtype=float)
    hi = np.array([b[1] for b in bounds], dtype=float)
    return lo + unit * (hi - lo)


def sample_interior(domain: Domain, n: int, sampler: str, seed: int) -> np.ndarray:
    """Points in Ω (× [t0, t1]); shape (n', D)."""
    bounds = domain.bounds
    return _scale(unit_samples(n, len(bounds), sampler, seed), bounds)


def sample_face(domain: Domain, face: str, n: int, sampler: str, seed: int) -> np.ndarray:
    """Points on a face (× [t0, t1]); the face coordinate is exactly a_i or b_i.

    A face of a 1D problem without time is a single point: one row is returned.
    """
    axis = domain.face_axis(face)
    bounds = domain.bounds
    free = [b for i, b in enumerate(bounds) if i != axis]
    pts = _scale(unit_samples(n, len(free), sampler, seed), free) if free else np.zeros((1, 0))
    value = bounds[axis][0] if face.endswith("-") else bounds[axis][1]
    return np.insert(pts, axis, value, axis=1)


def sample_initial(domain: Domain, n: int, sampler: str, seed: int) -> np.ndarray:
    """Points of Ω × {t0}; shape (n', D)."""
    if domain.time is None:
        raise ValueError("the domain has no time interval")
    pts = _scale(unit_samples(n, domain.space_dim, sampler, seed), list(domain.box))
    return np.concatenate([pts, np.full((len(pts), 1), domain.time[0])], axis=1)


def split_boundary_points(domain: Domain, faces: list[str], total: int) -> dict[str, int]:
    """Share ``total`` boundary points among ``faces`` in proportion to their measure
    (at least one point per face)."""
    measures = np.array([domain.face_measure(f) for f in faces])
    share = measures / measures.sum() if measures.sum() > 0 else np.ones(len(faces)) / len(faces)
    return {f: max(1, int(round(total * s))) for f, s in zip(faces, share)}


def tensor_grid(bounds: list[tuple[float, float]], counts: list[int]) -> list[np.ndarray]:
    """Per-axis coordinates of a uniform grid including both endpoints."""
    return [np.linspace(lo, hi, m) for (lo, hi), m in zip(bounds, counts)]


def grid_points(axes: list[np.ndarray]) -> np.ndarray:
    """Rows of the tensor product of 1D coordinate arrays ('ij' order)."""
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in mesh], axis=1)
