"""The solution's spectrum on a domain that is not a box (``model: auto`` on shapes,
docs/design.md §9).

A box's spectrum comes from a sine transform of the solution less its Coons lift
(:mod:`mscalepde.frequencies.spectrum`). On a shape Ω neither exists: the solution is only
defined in Ω, which fills part of its bounding box B. The spectrum is read instead from the
*windowed* field, as the spectral diagnostics read it (:mod:`mscalepde.diagnostics.window`):

1. **Truth.** ``exact`` where the problem has it, else a classical solve without its
   refinement study (the finite-element reference on Ω; a problem without ``exact`` or a
   truth file uses the cached truth reference, computed anyway for the errors).
2. **Window.** u is sampled at the cell centres of a uniform periodic grid of B
   (:data:`SHAPE_GRID` points per axis; heat: DCT-II cell centres in time) and multiplied by
   the C^∞ window w_Ω (1 deep inside Ω, 0 on ∂Ω and outside, transition width
   :data:`WINDOW_CELLS` cells). w_Ω u vanishes with all its derivatives on ∂B, so its
   discrete Fourier transform does not leak at the box's faces.
3. **The solution's own peaks.** (w_Ω u)^ = ŵ_Ω ∗ û: every mode of u is broadened by ŵ_Ω,
   whose side lobes are local maxima of their own. The local maxima of |(w_Ω u)^| above
   ``model.auto.floor`` are sifted by :func:`~mscalepde.diagnostics.window.windowed_peaks`
   (a maximum counts as u's own where it stands above twice the leakage the larger peaks
   predict through ŵ_Ω). The energy spectrum handed to the band selection keeps each
   accepted peak's main lobe (its 3^d neighbourhood) and nothing else, so neither the
   window's edges nor its side lobes become bands.

For heat the spatial peaks are found on the time-summed energy, and the temporal spectrum
is the DCT-II energy of w_Ω u summed over space, as on a box.

Anchors: the windowed periodogram (Harris, Proc. IEEE 66 (1978) 51) for step 2; the
leakage test is the diagnostics' own (docs/design.md §6).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from mscalepde.diagnostics.fprinciple import find_peaks
from mscalepde.diagnostics.transforms import axis_wavenumbers, parseval_weights, transform_axes
from mscalepde.diagnostics.window import shape_window, window_kernel, window_width, windowed_peaks
from mscalepde.errors import SpectrumError
from mscalepde.frequencies.options import AutoSettings
from mscalepde.frequencies.spectrum import Spectrum, time_axis

if TYPE_CHECKING:
    from mscalepde.problem.model import Problem

#: periodic sampling grid of the bounding box per axis, by spatial dimension
SHAPE_GRID = {1: 4096, 2: 256, 3: 64}
#: time levels (DCT-II cell centres) of a heat problem on a shape
SHAPE_TIME = 32
#: the window's transition width in grid cells (the diagnostics' default is 6)
WINDOW_CELLS = 6.0


def shape_axes(problem: Problem) -> list[np.ndarray]:
    """Cell centres of the bounding box (periodic grid), then time (heat)."""
    dom = problem.domain
    n = SHAPE_GRID[dom.space_dim]
    axes = [lo + (np.arange(n) + 0.5) * ((hi - lo) / n) for lo, hi in dom.box]
    if dom.has_time:
        axes.append(time_axis(*dom.time, SHAPE_TIME))  # type: ignore[misc]
    return axes


def _truth_values(problem: Problem, axes: list[np.ndarray], inside: np.ndarray) -> tuple[
    np.ndarray, str
]:
    """u on the grid ``axes`` (0 where ``inside`` is False in space: outside Ω an exact
    expression may be undefined) and where it came from."""
    dom = problem.domain
    shape = [len(a) for a in axes]
    grids = np.meshgrid(*axes[: dom.space_dim], indexing="ij")
    space = np.stack([g.reshape(-1) for g in grids], axis=1)[inside]
    if problem.exact is not None:
        exact, how = problem.exact, "the exact solution"

        def at(pts: np.ndarray, t: float | None) -> np.ndarray:
            env = {name: pts[:, i] for i, name in enumerate(dom.axes)}
            if t is not None:
                env["t"] = np.full(len(pts), t)
            return np.broadcast_to(np.asarray(exact.numpy(env), dtype=float), (len(pts),))
    else:
        from mscalepde.reference.cache import get_reference
        from mscalepde.reference.solve import compute_reference

        if problem.truth is None:
            ref, how = get_reference(problem), "the cached"
        else:
            ref, how = compute_reference(problem, estimate=False), "a"
        how = f"{how} {getattr(ref, 'method', 'classical')} reference"

        def at(pts: np.ndarray, t: float | None) -> np.ndarray:
            return ref(pts if t is None else np.column_stack([pts, np.full(len(pts), t)]))

    times = axes[dom.space_dim] if dom.has_time else [None]
    out = np.zeros((int(inside.size), len(times)))
    for j, t in enumerate(times):
        out[inside, j] = at(space, t)
    return out.reshape(shape), how


def shape_spectrum(problem: Problem, started: float | None = None) -> Spectrum:
    """The spectrum of a shape problem's solution (module docstring)."""
    started = time.perf_counter() if started is None else started
    dom = problem.domain
    assert dom.geometry is not None
    d = dom.space_dim
    axes = shape_axes(problem)
    n = len(axes[0])
    grids = np.meshgrid(*axes[:d], indexing="ij")
    points = np.stack([g.reshape(-1) for g in grids], axis=1)
    w = shape_window(dom.geometry.shape, points, window_width(dom.box, n, WINDOW_CELLS))
    inside = w > 0
    if not np.any(inside):
        raise SpectrumError(
            f"{problem.origin}: model: auto: the domain holds no cell of a {n}-point grid"
        )
    values, origin_text = _truth_values(problem, axes, inside)
    peak_value = float(np.max(np.abs(values)))
    space_shape = [len(a) for a in axes[:d]]
    field = values * w.reshape(space_shape + ([1] if dom.has_time else []))
    if not np.all(np.isfinite(field)):
        raise SpectrumError(f"{problem.origin}: model: auto: the {origin_text} is not finite")
    kinds = ["fft"] * d + (["dct"] if dom.has_time else [])
    c = transform_axes(field, kinds)
    energy_full = parseval_weights(c.shape, kinds, mean=True) * np.abs(c) ** 2
    energy = energy_full.sum(axis=-1) if dom.has_time else energy_full
    settings = AutoSettings.from_mapping(problem.model.get("auto"))
    magnitude = np.sqrt(energy)
    candidates = find_peaks(magnitude, tuple(dom.box), "fft", settings.floor)
    kernel = window_kernel(w.reshape(space_shape), "fft")
    kept, left_out = windowed_peaks(magnitude, candidates, kernel, "fft")
    mask = np.zeros(space_shape, dtype=bool)
    for p in kept:
        for index in (p.index, tuple(-i for i in p.index)):  # a real field's ± pair
            mask[tuple(i % m for i, m in zip(index, space_shape, strict=True))] = True
    lobe = ndimage.maximum_filter(mask, size=3, mode="wrap")
    own = np.where(lobe, energy, 0.0)
    k = [
        np.abs(axis_wavenumbers(m, hi - lo, "fft"))
        for m, (lo, hi) in zip(space_shape, dom.box, strict=True)
    ]
    kt = energy_t = None
    if dom.has_time:
        t0, t1 = dom.time  # type: ignore[misc]
        kt = np.abs(axis_wavenumbers(c.shape[-1], t1 - t0, "dct"))
        energy_t = energy_full.sum(axis=tuple(range(d)))
    detail = (
        f"{origin_text} × the window of Ω ({WINDOW_CELLS:g} cells) on a "
        + "×".join(str(m) for m in space_shape)
        + f" grid of the bounding box: {len(kept)} peaks of its own, {left_out} side lobes "
        "left out"
    )
    return Spectrum(
        origin="exact" if problem.exact is not None else "reference",
        detail=detail,
        box=tuple(dom.box),
        k=k,
        energy=own,
        time=dom.time,
        kt=kt,
        energy_t=energy_t,
        seconds=time.perf_counter() - started,
        peak=peak_value,
    )

