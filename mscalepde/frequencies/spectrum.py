"""The solution's spectrum, from which ``auto`` chooses frequencies (docs/design.md §9):
the exact solution, else a coarse classical reference, else the source, sampled on a
uniform grid, its boundary lift removed, and transformed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mscalepde.diagnostics.transforms import axis_wavenumbers, parseval_weights, transform_axes
from mscalepde.errors import MscaleError, SpectrumError
from mscalepde.frequencies.options import DATA_GRID, GRID_CAP, TIME_CAP

if TYPE_CHECKING:
    from mscalepde.problem.model import Problem


@dataclass
class Spectrum:
    """Energy of the solution per wave vector (space) and per temporal frequency (heat).

    ``k[a]``: angular wavenumbers of spatial axis a (1D); ``energy``: shape
    (len(k[0]), …); ``kt``/``energy_t``: the temporal marginal (heat), else None.
    """

    origin: str  # reference | source | exact
    detail: str
    box: tuple[tuple[float, float], ...]
    k: list[np.ndarray]
    energy: np.ndarray
    time: tuple[float, float] | None = None
    kt: np.ndarray | None = None
    energy_t: np.ndarray | None = None
    seconds: float = 0.0
    peak: float = 0.0  # max |u| sampled (before the lift): 0 only for a zero solution

    @property
    def lengths(self) -> list[float]:
        return [hi - lo for lo, hi in self.box]

    def radial(self) -> tuple[np.ndarray, np.ndarray]:
        """(|k|, E) of every spatial wave vector, sorted by |k| (for the figure)."""
        grids = np.meshgrid(*self.k, indexing="ij")
        knorm = np.sqrt(sum(g * g for g in grids)).ravel()
        order = np.argsort(knorm, kind="stable")
        return knorm[order], self.energy.ravel()[order]


def uniform_axis(lo: float, hi: float, n: int, periodic: bool) -> np.ndarray:
    """n interior points plus both faces (n + 2 nodes); periodic: n nodes, right end out."""
    if periodic:
        return lo + np.arange(n) * ((hi - lo) / n)
    return lo + np.arange(n + 2) * ((hi - lo) / (n + 1))


def time_axis(t0: float, t1: float, n: int) -> np.ndarray:
    return t0 + (np.arange(n) + 0.5) * ((t1 - t0) / n)  # DCT-II cell centres


def _pow2m1(n: int, lo: int, hi: int) -> int:
    """The smallest 2^p − 1 ≥ n within [lo, hi] (DST-I is fastest at n + 1 = 2^p)."""
    m = 1 << max(1, math.ceil(math.log2(max(n, 2) + 1)))
    return int(min(max(m - 1, lo), hi))


def remove_lift(values: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """R = Π_a (I − P_a) u over ``axes``: P_a interpolates linearly along axis a between
    the first and last node. R vanishes on every face of those axes (the Coons lift
    u − R carries the boundary values)."""
    r = np.array(values, dtype=np.float64)
    for a in axes:
        n = r.shape[a]
        s = np.linspace(0.0, 1.0, n).reshape([n if i == a else 1 for i in range(r.ndim)])
        first = np.take(r, [0], axis=a)
        last = np.take(r, [n - 1], axis=a)
        r = r - (first * (1.0 - s) + last * s)
    return r


def _transform(values: np.ndarray, kinds: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and mean-square Parseval weights along each axis by its kind
    (:func:`~mscalepde.diagnostics.transforms.transform_axes`); ``values`` are sampled on
    grids that include both ends, so a ``dst`` axis drops them first (DST-I on the interior
    nodes)."""
    c = np.asarray(values, dtype=np.float64)
    for a, kind in enumerate(kinds):
        if kind == "dst":
            c = np.take(c, np.arange(1, c.shape[a] - 1), axis=a)
    c = transform_axes(c, kinds)
    return c, parseval_weights(c.shape, kinds, mean=True)


def _wavenumbers(kind: str, n: int, length: float) -> np.ndarray:
    return np.abs(axis_wavenumbers(n, length, kind))


def _periodic_axes(problem: Problem) -> list[bool]:
    faces = problem.boundary
    return [
        bool(faces) and faces.get(f"{a}-") is not None and faces[f"{a}-"].type == "periodic"
        for a in problem.domain.axes
    ]


def _grid_sizes(problem: Problem) -> list[int]:
    return [DATA_GRID[problem.domain.space_dim]] * problem.domain.space_dim


def _spectrum_of(
    problem: Problem, values: np.ndarray, origin: str, detail: str, started: float
) -> Spectrum:
    """Energy of ``values`` sampled on :func:`_sample_axes` (space, then time)."""
    dom = problem.domain
    periodic = _periodic_axes(problem)
    lift_axes = [a for a in range(dom.space_dim) if not periodic[a]]
    peak = float(np.max(np.abs(values))) if np.size(values) else 0.0
    values = remove_lift(values, lift_axes)
    kinds = ["fft" if p else "dst" for p in periodic] + (["dct"] if dom.has_time else [])
    c, w = _transform(values, kinds)
    energy = w * np.abs(c) ** 2
    k = [_wavenumbers(kinds[a], c.shape[a], hi - lo) for a, (lo, hi) in enumerate(dom.box)]
    kt = energy_t = None
    if dom.has_time:
        t0, t1 = dom.time  # type: ignore[misc]
        kt = _wavenumbers("dct", c.shape[-1], t1 - t0)
        energy_t = energy.sum(axis=tuple(range(dom.space_dim)))
        energy = energy.sum(axis=-1)
    if not np.all(np.isfinite(energy)):
        raise SpectrumError(f"{problem.origin}: model: auto: the {origin} is not finite")
    return Spectrum(
        origin=origin,
        detail=detail,
        box=tuple(dom.box),
        k=k,
        energy=energy,
        time=dom.time,
        kt=kt,
        energy_t=energy_t,
        seconds=time.perf_counter() - started,
        peak=peak,
    )


def _sample_axes(problem: Problem, sizes: Sequence[int], nt: int) -> list[np.ndarray]:
    dom = problem.domain
    periodic = _periodic_axes(problem)
    axes = [uniform_axis(lo, hi, n, p) for (lo, hi), n, p in zip(dom.box, sizes, periodic)]
    if dom.has_time and nt > 0:  # (nt = 0: the spatial axes alone)
        axes.append(time_axis(*dom.time, nt))  # type: ignore[misc]
    return axes


def estimate_spectrum(problem: Problem) -> Spectrum:
    """The solution's spectrum before training (module docstring, step 1)."""
    started = time.perf_counter()
    dom = problem.domain
    if problem.pde == "fit":  # the target is given: its own spectrum
        sizes = _grid_sizes(problem)
        nt = min(TIME_CAP, 2 * max(sizes)) if dom.has_time else 0
        axes = _sample_axes(problem, sizes, nt)
        values = problem_data(problem).exact(axes)
        return _spectrum_of(problem, values, "exact", "the fit target", started)
    from mscalepde.errors import ReferenceSolveError

    try:
        ref, how = _coarse_reference(problem)
    except ReferenceSolveError as exc:
        return _source_spectrum(problem, started, why=str(exc))
    except (RuntimeError, ValueError, ArithmeticError) as exc:  # e.g. autograd on a linear u
        return _source_spectrum(problem, started, why=f"{type(exc).__name__}: {exc}")
    axes = _reference_axes(problem, ref)
    values = ref.on_grid(axes)
    n_text = "×".join(str(v) for v in ref.n) + (f", {ref.nt} time steps" if dom.has_time else "")
    detail = f"{how} {ref.method} reference ({n_text}), sampled on " + "×".join(
        str(len(a)) for a in axes
    )
    return _spectrum_of(problem, values, "reference", detail, started)


def _reference_axes(problem: Problem, ref: Any) -> list[np.ndarray]:
    """Where to sample a reference: a uniform FD grid's own nodes (no interpolation in
    space), else a uniform grid of about twice its points per axis (capped so that the
    sample stays below about 4 million values); time on DCT-II cell centres."""
    dom = problem.domain
    periodic = _periodic_axes(problem)
    axes: list[np.ndarray] = []
    for a, ((lo, hi), n) in enumerate(zip(dom.box, ref.n)):
        kind = ref.kinds[a]
        if kind == "uniform":
            axes.append(np.asarray(ref.axes[a], dtype=float))
        elif kind == "periodic":
            axes.append(np.asarray(ref.axes[a], dtype=float)[:-1])  # last node = first
        else:
            axes.append(uniform_axis(lo, hi, _pow2m1(2 * int(n), 63, GRID_CAP[dom.space_dim]),
                                      periodic[a]))
    if dom.has_time:
        space = int(np.prod([len(a) for a in axes]))
        nt = _pow2m1(2 * max(len(ref.axes[-1]), 16), 31, TIME_CAP)
        while nt > 31 and space * nt > 4_000_000:
            nt = (nt + 1) // 2 - 1
        axes.append(time_axis(*dom.time, nt))  # type: ignore[misc]
    return axes


def _coarse_reference(problem: Problem) -> tuple[Any, str]:
    """The truth reference when the problem has no ``exact`` (cached: the errors need it
    anyway), else the same solve without its refinement study."""
    from mscalepde.reference.cache import get_reference
    from mscalepde.reference.solve import compute_reference

    if problem.exact is None:
        return get_reference(problem), "the cached"
    return compute_reference(problem, estimate=False), "a"


def problem_data(problem: Problem) -> Any:
    """The reference solvers' view of the problem's data on tensor grids (``source: auto``
    by the training derivative path)."""
    from mscalepde.reference.data import _Data

    return _Data(problem)


def _source_spectrum(problem: Problem, started: float, why: str) -> Spectrum:
    """û ≈ f̂ / (ā|k|²) (plus the initial condition for heat) where no classical solve is
    possible."""
    dom = problem.domain
    sizes = _grid_sizes(problem)
    data = ["source"]
    if dom.has_time and problem.initial is not None:
        data.append("initial")
    space_axes = _sample_axes(problem, sizes, 0)[: dom.space_dim]
    a_bar = mean_diffusivity(problem, space_axes)
    total = None
    parts = []
    for what in data:
        axes = list(space_axes)
        if dom.has_time:
            t = dom.time[0] if what == "initial" else 0.5 * sum(dom.time)  # type: ignore[index]
            axes.append(np.array([t]))
        try:
            values = getattr(problem_data(problem), what)(axes)
        except (MscaleError, RuntimeError, ValueError, ArithmeticError) as exc:
            raise SpectrumError(
                f"{problem.origin}: model: auto: no spectrum can be estimated: the "
                f"classical solve failed ({why}) and {exc}"
            ) from None
        spec = _spectrum_of(problem, values, "source", "", started)
        energy = spec.energy
        if what == "source":
            grids = np.meshgrid(*spec.k, indexing="ij")
            k2 = sum(g * g for g in grids)
            energy = energy / np.maximum(a_bar * k2, 1e-300) ** 2
        total = energy if total is None else total + energy
        parts.append(what)
        base = spec
    assert total is not None
    if not np.any(total > 0):
        raise SpectrumError(
            f"{problem.origin}: model: auto: no spectrum can be estimated: the classical "
            f"solve failed ({why}) and the {' and '.join(parts)} are zero"
        )
    base.energy = total
    base.detail = f"the {' and '.join(parts)} (û ≈ f̂/(ā|k|²), ā = {a_bar:.3g}): {why}"
    if dom.has_time:  # no temporal information: one low band
        base.kt = np.array([0.0])
        base.energy_t = np.array([float(total.sum())])
    base.seconds = time.perf_counter() - started
    return base


def mean_diffusivity(problem: Problem, axes: Sequence[np.ndarray]) -> float:
    op = problem.operator
    if op is None:
        return 1.0
    const = op.isotropic_constant
    if const is not None:
        return float(const)
    grids = np.meshgrid(*axes, indexing="ij")
    env = dict(zip(problem.domain.axes, grids))
    if problem.domain.has_time:
        env["t"] = np.full_like(grids[0], 0.5 * sum(problem.domain.time))  # type: ignore[arg-type]
    vals = [np.abs(np.asarray(e.numpy(env), dtype=float)).mean() for e in op.diffusivity]
    return float(np.mean(vals)) or 1.0


def save_spectrum(path: Any, spectrum: Spectrum) -> None:
    """``auto_spectrum.npz``: the wavenumbers per axis (``k_x``, …; ``k_t``), the energy
    arrays and the origin, written atomically."""
    from mscalepde.io import atomic_write_with

    data: dict[str, np.ndarray] = {
        f"k_{a}": np.asarray(k) for a, k in zip("xyz", spectrum.k)
    }
    data["energy"] = np.asarray(spectrum.energy)
    if spectrum.kt is not None and spectrum.energy_t is not None:
        data["k_t"] = np.asarray(spectrum.kt)
        data["energy_t"] = np.asarray(spectrum.energy_t)
    data["origin"] = np.array(spectrum.origin)
    data["detail"] = np.array(spectrum.detail)
    atomic_write_with(path, lambda buf: np.savez(buf, **data))
